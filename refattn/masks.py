"""Boolean attention masks: builders and conversions from other conventions.

Every mask refattn builds or returns means **True = query i may attend key j** and
broadcasts against the scores ``(..., Hq, L, S)``. In the pictures ``#`` is a kept
(query, key) pair and ``.`` a removed one; rows are queries, columns keys.

The causal and window masks here are the same ones :func:`refattn.attention` applies for
``causal=`` and ``window=``; building them is only needed to inspect, combine or export.

Arguments are checked as :func:`refattn.attention` checks them (the same window sides,
alignments, integer sizes and lengths are accepted), and a mask larger than the memory
available raises :class:`~refattn.errors.AttentionMemoryError` before it is allocated.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from refattn.errors import AttentionDTypeError, AttentionShapeError, AttentionValueError
from refattn.validation import (
    Alignment,
    _alignment_offset,
    as_array,
    check_allocation,
    see,
    window_side,
)

BoolArray = npt.NDArray[np.bool_]


def _size(name: str, value: object) -> int:
    if isinstance(value, bool | np.bool_) or not isinstance(value, int | np.integer) or value < 0:
        raise AttentionValueError(
            f"{name} should be a non-negative int: but got {value!r} of type "
            f"{type(value).__name__}. Pass the sequence length as an int, e.g. "
            f"{name}=x.shape[-2]."
        )
    return int(value)


def _check_sizes(builder: str, length_q: object, length_k: object, copies: int = 1) -> None:
    """Refuse bad sizes and masks that cannot fit in memory, before building them.

    ``copies`` boolean ``(L, S)`` arrays live at once, next to the int64 row and key
    index vectors ``(L + S,)`` that ``np.tri`` builds: a tall or wide mask (``L = 10**10,
    S = 1``) needs far more for its indices than for itself.
    """
    rows, cols = _size("length_q", length_q), _size("length_k", length_k)
    fix = (
        "Pass causal=/window= to refattn.attention instead: it applies them block by "
        "block without building the mask."
    )
    name = f"masks.{builder}({rows}, {cols}, ...)"
    check_allocation(name, "a boolean (L, S) mask", (rows, cols), copies, fix)
    check_allocation(
        name,
        f"{copies} boolean (L, S) mask(s) plus int64 row and key indices (L + S,), in bytes",
        (rows * cols * copies + 8 * (rows + cols),),
        1,
        fix,
    )


def causal(length_q: int, length_k: int, alignment: Alignment) -> BoolArray:
    """Causal mask ``(L, S)``: query ``i`` sees keys ``j <= i + offset``.

    ``offset`` is 0 for ``"top_left"`` (torch/JAX ``is_causal``) and ``S - L`` for
    ``"bottom_right"`` (flash-attn, the last query aligned with the last key, as when
    decoding with a KV cache).

    Examples:
        >>> print(render(causal(3, 5, "top_left")))
        #....
        ##...
        ###..
        >>> print(render(causal(3, 5, "bottom_right")))
        ###..
        ####.
        #####
    """
    _check_sizes("causal", length_q, length_k)
    offset = _alignment_offset("alignment", alignment, int(length_q), int(length_k))
    return np.tri(int(length_q), int(length_k), offset, dtype=bool)


def window(
    length_q: int,
    length_k: int,
    left: int | None,
    right: int | None,
    alignment: Alignment,
) -> BoolArray:
    """Sliding-window mask ``(L, S)``: query ``i`` sees ``i' - left <= j <= i' + right``.

    ``i' = i`` for ``"top_left"`` (JAX ``local_window_size``) and ``i' = i + S - L`` for
    ``"bottom_right"`` (flash-attn ``window_size``). Offsets are inclusive; None leaves
    a side unbounded, so ``window(L, S, None, 0, a)`` equals ``causal(L, S, a)``.

    Examples:
        >>> print(render(window(4, 4, 1, 0, "top_left")))
        #...
        ##..
        .##.
        ..##
        >>> print(render(window(2, 5, 1, 1, "bottom_right")))
        ..###
        ...##
    """
    low, high = window_side("left", left), window_side("right", right)
    _check_sizes("window", length_q, length_k, copies=2)
    rows, cols = int(length_q), int(length_k)
    offset = _alignment_offset("alignment", alignment, rows, cols)
    reach = rows + cols  # a side longer than this removes nothing: clip it for np.tri
    low = None if low is None else min(low, reach)
    high = None if high is None else min(high, reach)
    # j - i - offset <= right is np.tri(k=offset + right); >= -left is its complement
    keep = (
        np.ones((rows, cols), dtype=bool)
        if high is None
        else np.tri(rows, cols, offset + high, dtype=bool)
    )
    if low is not None:
        keep &= ~np.tri(rows, cols, offset - low - 1, dtype=bool)
    return keep


def padding(lengths: npt.ArrayLike, length_k: int) -> BoolArray:
    """Key-padding mask ``(B, 1, 1, S)`` from lengths ``(B,)``: keys ``j < lengths[b]``.

    The two singleton axes are the head and query axes, so the mask broadcasts against
    scores ``(B, H, L, S)`` along the right axes (a ``(B, S)`` mask would broadcast
    ``B`` against ``L``).

    Examples:
        >>> padding([2, 4], 4)[:, 0, 0]
        array([[ True,  True, False, False],
               [ True,  True,  True,  True]])
    """
    arr = as_array("lengths", lengths)
    if arr.size == 0 and arr.ndim == 1:
        arr = arr.astype(np.intp)  # [] reads as float64; an empty batch has no lengths
    if arr.dtype.kind not in "iu" or arr.ndim != 1:
        raise AttentionValueError(
            f"lengths should be a 1-D integer array (B,): but got shape {arr.shape} and "
            f"dtype {arr.dtype}. Pass one int per batch entry, e.g. "
            f"np.asarray(lengths, dtype=np.int64)."
        )
    size = _size("length_k", length_k)
    if arr.size and (arr.min() < 0 or arr.max() > size):
        raise AttentionValueError(
            f"lengths should lie in [0, S] = [0, {size}]: but got {arr.tolist()}. Pass "
            f"length_k= the padded key length, and lengths counted after truncation."
            + see("lengths_longer_than_padded")
        )
    for what, shape, itemsize in (
        ("a boolean (B, 1, 1, S) mask", (arr.size, 1, 1, size), 1),
        (
            "a boolean (B, S) mask plus int64 key indices (S,), in bytes",
            (arr.size * size + 8 * size,),
            1,
        ),
    ):
        check_allocation(
            f"masks.padding(lengths, {size})",
            what,
            shape,
            itemsize,
            "Pass key_lengths=lengths to refattn.attention instead: it needs no mask.",
        )
    return (np.arange(size)[None, :] < arr[:, None])[:, None, None, :]


def combine(*masks: npt.ArrayLike | None) -> BoolArray | None:
    """Intersection of boolean masks (a pair survives only if every mask keeps it).

    None entries are skipped; returns None when there is nothing to combine. Shapes must
    broadcast together.

    Examples:
        >>> m = combine(causal(3, 3, "top_left"), padding([2], 3))
        >>> print(render(m[0, 0]))
        #..
        ##.
        ##.
    """
    result: BoolArray | None = None
    for index, mask in enumerate(masks):
        if mask is None:
            continue
        arr = _as_bool(f"masks[{index}]", mask)
        if result is None:
            result = arr
            continue
        try:
            shape = np.broadcast_shapes(result.shape, arr.shape)
        except ValueError:
            raise AttentionShapeError(
                f"masks[{index}] shape should broadcast against the masks before it, "
                f"combined shape {result.shape}: but got {arr.shape}. Give a (B, S) padding "
                f"mask its head and query axes, mask[:, None, None, :]."
                + see("mask_shape_not_broadcastable")
            ) from None
        check_allocation(
            "masks.combine(...)",
            "the combined boolean mask",
            shape,
            1,
            "Pass the masks to refattn.attention separately (attend_mask=, causal=, "
            "key_lengths=): it combines them block by block.",
        )
        result = result & arr
    return result


def from_torch_attn_mask(attn_mask: npt.ArrayLike, num_heads: int | None = None) -> BoolArray:
    """Invert a torch ``nn.MultiheadAttention`` boolean ``attn_mask`` (True = **ignore**).

    A 2-D ``(L, S)`` mask is returned inverted; a 3-D ``(B * num_heads, L, S)`` mask, as
    torch MHA takes it, is returned as ``(B, num_heads, L, S)``. A float ``attn_mask`` is
    additive in torch: pass it to :func:`refattn.attention` as ``bias=`` instead.

    Examples:
        >>> print(render(from_torch_attn_mask(np.triu(np.ones((3, 3), bool), 1))))
        #..
        ##.
        ###
    """
    arr = as_array("attn_mask", attn_mask)
    if arr.dtype != np.bool_:
        raise AttentionDTypeError(
            f"attn_mask should be a boolean torch MHA mask (True = ignore): but got dtype "
            f"{arr.dtype}. A float torch mask is additive: pass it as bias= to "
            f"refattn.attention instead." + see("mha_mask_polarity_into_sdpa")
        )
    if num_heads is not None and (
        isinstance(num_heads, bool | np.bool_)
        or not isinstance(num_heads, int | np.integer)
        or num_heads < 1
    ):
        raise AttentionValueError(
            f"num_heads should be a positive int or None: but got {num_heads!r}. Pass the "
            f"number of heads the (B * num_heads, L, S) mask was repeated for."
        )
    if arr.ndim == 2:
        return ~arr
    if arr.ndim == 3 and num_heads and arr.shape[0] % num_heads == 0:
        return ~arr.reshape(-1, int(num_heads), *arr.shape[1:])
    raise AttentionShapeError(
        f"attn_mask shape should be (L, S), or (B * num_heads, L, S) with num_heads given: "
        f"but got {arr.shape} with num_heads={num_heads}. Pass num_heads= for a 3-D mask "
        f"(its first axis must be a multiple of it)."
    )


def from_torch_key_padding_mask(key_padding_mask: npt.ArrayLike) -> BoolArray:
    """Convert torch MHA's ``key_padding_mask`` ``(B, S)``, True = pad, to ``(B, 1, 1, S)``.

    Examples:
        >>> from_torch_key_padding_mask([[False, True]])[0, 0, 0]
        array([ True, False])
    """
    arr = as_array("key_padding_mask", key_padding_mask)
    if arr.dtype != np.bool_ or arr.ndim != 2:
        raise AttentionValueError(
            f"key_padding_mask should be boolean (B, S) with True = padding: but got "
            f"shape {arr.shape} and dtype {arr.dtype}. Convert a 0/1 mask with "
            f"mask.astype(bool); for an unbatched (S,) mask pass mask[None]."
            + see("mha_mask_polarity_into_sdpa")
        )
    return ~arr[:, None, None, :]


def from_additive(mask: npt.ArrayLike) -> BoolArray:
    """Boolean mask from an additive 0/-inf mask (0 = attend, ``-inf`` = removed).

    Large negative finite values such as ``-1e9`` or ``finfo.min`` also count as removed;
    any other non-zero value is a real bias and refused (pass it as ``bias=``).

    Examples:
        >>> from_additive(np.array([0.0, -np.inf, -1e9]))
        array([ True, False, False])
    """
    arr = as_array("mask", mask)
    if arr.dtype.kind != "f":
        raise AttentionDTypeError(
            f"mask should be an additive floating mask (0 = attend, -inf = removed): but "
            f"got dtype {arr.dtype}. A boolean mask needs no conversion; convert a 0/1 "
            f"mask with mask.astype(bool)."
        )
    if np.isnan(arr).any():
        raise AttentionValueError(
            f"mask should hold 0 or large negative values: but got {int(np.isnan(arr).sum())} "
            f"NaN entries (shape {arr.shape}). Build additive masks with np.where(keep, 0.0, "
            f"-np.inf), not keep * -np.inf (0 * -inf is NaN)." + see("mask_times_minus_inf")
        )
    removed = arr <= -1e4 if arr.dtype == np.float16 else arr <= -1e9
    ok = removed | (arr == 0)
    if not ok.all():
        bad = arr[~ok].flat[0]
        raise AttentionValueError(
            f"mask should hold only 0 or large negative values: but got {bad!r}, so it is "
            f"a bias, not a mask. Pass it to refattn.attention as bias= instead."
        )
    return ~removed


def to_additive(mask: npt.ArrayLike, dtype: npt.DTypeLike = np.float32) -> npt.NDArray[np.floating]:
    """Additive mask (0 where True, ``-inf`` where False), for APIs that take a float mask.

    Examples:
        >>> to_additive(np.array([True, False]))
        array([  0., -inf], dtype=float32)
    """
    arr = _as_bool("mask", mask)
    try:
        target = np.dtype(dtype)
    except TypeError:
        target = None
    if target is None or target.kind != "f" or target.itemsize > 8:
        raise AttentionDTypeError(
            f"dtype should be float16, float32 or float64: but got {dtype!r}. An additive "
            f"mask needs -inf, which only floating dtypes hold (an int32 mask would hold "
            f"-2147483648); pass dtype=np.float32 or the query's dtype."
            + see("sdpa_int_mask_dtype")
        )
    check_allocation(
        "masks.to_additive(mask)",
        f"an additive {target} mask",
        arr.shape,
        8 + target.itemsize,  # built in float64, then cast
        "Pass the boolean mask to refattn.attention as attend_mask= instead.",
    )
    additive: npt.NDArray[np.floating] = np.where(arr, 0.0, -np.inf).astype(target)
    return additive


def from_flash_padding(attention_mask: npt.ArrayLike) -> BoolArray:
    """Convert a flash-attn / Hugging Face padding mask ``(B, S)`` (1 = token, 0 = pad).

    This is the ``attention_mask`` that ``flash_attn.bert_padding.unpad_input`` reads.
    Returns ``(B, 1, 1, S)`` True = attend.

    Examples:
        >>> from_flash_padding([[1, 1, 0]])[0, 0, 0]
        array([ True,  True, False])
    """
    arr = as_array("attention_mask", attention_mask)
    if arr.ndim != 2 or arr.dtype.kind not in "biu" or not np.isin(arr, (0, 1)).all():
        raise AttentionValueError(
            f"attention_mask should be (B, S) of 0/1 (1 = token): but got shape {arr.shape}, "
            f"dtype {arr.dtype}. Pass the tokenizer's attention_mask as is; for an "
            f"unbatched (S,) mask pass mask[None]."
        )
    present: BoolArray = arr != 0
    return present[:, None, None, :]


def render(mask: npt.ArrayLike) -> str:
    """Draw a 2-D mask ``(L, S)``: ``#`` kept, ``.`` removed, one line per query."""
    arr = _as_bool("mask", mask)
    if arr.ndim != 2:
        raise AttentionShapeError(
            f"mask should be 2-D (L, S) for render: but got shape {arr.shape}. Pass one "
            f"slice, e.g. render(mask[0, 0]) for batch 0, head 0."
        )
    check_allocation(
        "masks.render(mask)",
        "a picture of (L, S) characters (Python strings, about 64 bytes each while built)",
        arr.shape,
        64,
        "Render a slice, e.g. render(mask[:64, :64]).",
    )
    return "\n".join("".join("#" if x else "." for x in row) for row in arr)


def _as_bool(name: str, mask: npt.ArrayLike) -> BoolArray:
    arr = as_array(name, mask)
    if arr.dtype != np.bool_:
        raise AttentionDTypeError(
            f"{name} should be boolean (True = may attend): but got dtype {arr.dtype}. "
            f"Convert a 0/1 mask with mask.astype(bool); an additive mask with "
            f"refattn.masks.from_additive(mask)." + see("zero_one_mask_added")
        )
    return arr
