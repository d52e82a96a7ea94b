"""Boolean attention masks: builders and conversions from other conventions.

Every mask refattn builds or returns means **True = query i may attend key j** and
broadcasts against the scores ``(..., Hq, L, S)``. In the pictures ``#`` is a kept
(query, key) pair and ``.`` a removed one; rows are queries, columns keys.

The causal and window masks here are the same ones :func:`refattn.attention` applies for
``causal=`` and ``window=``; building them is only needed to inspect, combine or export.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from refattn.errors import AttentionDTypeError, AttentionShapeError, AttentionValueError
from refattn.validation import Alignment, _alignment_offset

BoolArray = npt.NDArray[np.bool_]


def _check_sizes(length_q: int, length_k: int) -> None:
    for name, value in (("length_q", length_q), ("length_k", length_k)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
            raise AttentionValueError(f"{name} should be a non-negative int: but got {value!r}.")


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
    _check_sizes(length_q, length_k)
    offset = _alignment_offset("alignment", alignment, length_q, length_k)
    return np.tri(length_q, length_k, offset, dtype=bool)


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
    _check_sizes(length_q, length_k)
    offset = _alignment_offset("alignment", alignment, length_q, length_k)
    diff = np.arange(length_k)[None, :] - np.arange(length_q)[:, None] - offset
    keep = np.ones((length_q, length_k), dtype=bool)
    for name, side in (("left", left), ("right", right)):
        if side is not None and (isinstance(side, bool) or side < 0):
            raise AttentionValueError(
                f"window {name} should be >= 0 or None (unbounded): but got {side!r}."
            )
    if left is not None:
        keep &= diff >= -left
    if right is not None:
        keep &= diff <= right
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
    arr = np.asarray(lengths)
    if arr.dtype.kind not in "iu" or arr.ndim != 1:
        raise AttentionValueError(
            f"lengths should be a 1-D integer array (B,): but got shape {arr.shape} and "
            f"dtype {arr.dtype}."
        )
    if arr.size and (arr.min() < 0 or arr.max() > length_k):
        raise AttentionValueError(
            f"lengths should lie in [0, S] = [0, {length_k}]: but got {arr.tolist()}."
        )
    return (np.arange(length_k)[None, :] < arr[:, None])[:, None, None, :]


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
            result = result & arr
        except ValueError:
            raise AttentionShapeError(
                f"masks[{index}] shape {arr.shape} does not broadcast against the "
                f"masks before it, combined shape {result.shape}."
            ) from None
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
    arr = np.asarray(attn_mask)
    if arr.dtype != np.bool_:
        raise AttentionDTypeError(
            f"attn_mask should be a boolean torch MHA mask (True = ignore): but got dtype "
            f"{arr.dtype}. A float torch mask is additive: pass it as bias=."
        )
    if arr.ndim == 2:
        return ~arr
    if arr.ndim == 3 and num_heads and arr.shape[0] % num_heads == 0:
        return ~arr.reshape(-1, num_heads, *arr.shape[1:])
    raise AttentionShapeError(
        f"attn_mask shape should be (L, S), or (B * num_heads, L, S) with num_heads given: "
        f"but got {arr.shape} with num_heads={num_heads}."
    )


def from_torch_key_padding_mask(key_padding_mask: npt.ArrayLike) -> BoolArray:
    """Convert torch MHA's ``key_padding_mask`` ``(B, S)``, True = pad, to ``(B, 1, 1, S)``.

    Examples:
        >>> from_torch_key_padding_mask([[False, True]])[0, 0, 0]
        array([ True, False])
    """
    arr = np.asarray(key_padding_mask)
    if arr.dtype != np.bool_ or arr.ndim != 2:
        raise AttentionValueError(
            f"key_padding_mask should be boolean (B, S) with True = padding: but got "
            f"shape {arr.shape} and dtype {arr.dtype}."
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
    arr = np.asarray(mask)
    if arr.dtype.kind != "f":
        raise AttentionDTypeError(
            f"mask should be an additive floating mask: but got dtype {arr.dtype}."
        )
    removed = arr <= -1e4 if arr.dtype == np.float16 else arr <= -1e9
    ok = removed | (arr == 0)
    if not ok.all():
        bad = arr[~ok].flat[0]
        raise AttentionValueError(
            f"mask holds {bad!r}, neither 0 nor a large negative value: it is a bias, "
            f"not a mask. Pass it to attention as bias=."
        )
    return ~removed


def to_additive(mask: npt.ArrayLike, dtype: npt.DTypeLike = np.float32) -> npt.NDArray[np.floating]:
    """Additive mask (0 where True, ``-inf`` where False), for APIs that take a float mask.

    Examples:
        >>> to_additive(np.array([True, False]))
        array([  0., -inf], dtype=float32)
    """
    arr = _as_bool("mask", mask)
    return np.where(arr, 0, -np.inf).astype(dtype)


def from_flash_padding(attention_mask: npt.ArrayLike) -> BoolArray:
    """Convert a flash-attn / Hugging Face padding mask ``(B, S)`` (1 = token, 0 = pad).

    This is the ``attention_mask`` that ``flash_attn.bert_padding.unpad_input`` reads.
    Returns ``(B, 1, 1, S)`` True = attend.

    Examples:
        >>> from_flash_padding([[1, 1, 0]])[0, 0, 0]
        array([ True,  True, False])
    """
    arr = np.asarray(attention_mask)
    if arr.ndim != 2 or arr.dtype.kind not in "biu" or not np.isin(arr, (0, 1)).all():
        raise AttentionValueError(
            f"attention_mask should be (B, S) of 0/1 (1 = token): but got shape {arr.shape}, "
            f"dtype {arr.dtype}."
        )
    present: BoolArray = arr != 0
    return present[:, None, None, :]


def render(mask: npt.ArrayLike) -> str:
    """Draw a 2-D mask ``(L, S)``: ``#`` kept, ``.`` removed, one line per query."""
    arr = _as_bool("mask", mask)
    if arr.ndim != 2:
        raise AttentionShapeError(f"render takes a 2-D (L, S) mask: but got shape {arr.shape}.")
    return "\n".join("".join("#" if x else "." for x in row) for row in arr)


def _as_bool(name: str, mask: npt.ArrayLike) -> BoolArray:
    arr = np.asarray(mask)
    if arr.dtype != np.bool_:
        raise AttentionDTypeError(
            f"{name} should be boolean (True = may attend): but got dtype {arr.dtype}."
        )
    return arr
