r"""Multi-head attention: input projections, head split, :func:`refattn.attention`, merge.

Layout is batch-first: inputs ``(..., L, E)``. Projection weights follow ``torch.nn.Linear``:
a weight ``(out_features, in_features)`` maps ``x`` to ``x @ weight.T + bias``. The head
split and merge are the projections themselves, spelled as einsum with the weight viewed
per head (one legend everywhere: ``H`` heads, ``D`` head dim, ``Dv`` value head dim,
``E`` input features, ``O`` output features):

| step | einsum | weight view |
| --- | --- | --- |
| project and split | ``"...le,hde->...hld"`` (:data:`PROJECT`) | ``(H * D, E)`` → ``(H, D, E)`` |
| merge and project | ``"...hlv,ohv->...lo"`` (:data:`MERGE`) | ``(O, H * Dv)`` → ``(O, H, Dv)`` |

Splitting ``H * D`` as ``(H, D)`` (head-major) is torch's ``x.view(L, N, H, D)`` and
Hugging Face's ``x.view(B, L, H, D)``; reading it as ``(D, H)`` is the classic porting bug,
and why every reshape here is spelled out.
"""

from __future__ import annotations

from typing import Literal, NamedTuple, Unpack, overload

import numpy as np
import numpy.typing as npt

from refattn.errors import AttentionDTypeError, AttentionShapeError, AttentionValueError
from refattn.reference import AttentionOptions, attention
from refattn.validation import (
    _OPTION_NAMES,
    as_array,
    check_keywords,
    flag,
    float_array,
    see,
)

FloatArray = npt.NDArray[np.floating]

PROJECT = "...le,hde->...hld"
"""Project and split: x ``(..., L, E)`` · weight ``(H, D, E)`` → heads ``(..., H, L, D)``."""

MERGE = "...hlv,ohv->...lo"
"""Merge and project: heads ``(..., H, L, Dv)`` · weight ``(O, H, Dv)`` → ``(..., L, O)``."""


class MultiHeadResult(NamedTuple):
    """What :func:`multi_head_attention` returns with ``return_weights=True``.

    Attributes:
        output: ``(..., L, O)``, the input dtype.
        weights: ``(..., Hq, L, S)`` per head, or ``(..., L, S)`` with
            ``average_weights=True``: softmax probabilities before dropout.
    """

    output: FloatArray
    weights: FloatArray


def _shape(shape: tuple[int, ...]) -> str:
    return str(tuple(int(n) for n in shape))


def _float(name: str, x: npt.ArrayLike, dtype: np.dtype[np.floating] | None) -> FloatArray:
    arr = float_array(name, x)
    if dtype is not None and arr.dtype != dtype:
        raise AttentionDTypeError(
            f"{name} dtype should be the query's {dtype}: but got {arr.dtype}. Cast the "
            f"weights and inputs to one dtype, e.g. {name}.astype(query.dtype); mixed "
            f"precision hides which precision the result has."
        )
    return arr


def _count(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise AttentionValueError(
            f"{name} should be a positive int: but got {value!r} of type "
            f"{type(value).__name__}. Pass the number of heads, e.g. {name}=8; it must "
            f"divide the projection's output size." + see("head_split_not_divisible")
        )
    return int(value)


def project_heads(
    x: npt.ArrayLike,
    weight: npt.ArrayLike,
    bias: npt.ArrayLike | None = None,
    *,
    num_heads: int,
    name: str = "x",
    weight_name: str | None = None,
    bias_name: str | None = None,
) -> FloatArray:
    """Project ``(..., L, E)`` with a ``torch.nn.Linear`` weight and split it into heads.

    ``weight (H * D, E)`` is viewed as ``(H, D, E)``: output feature ``h * D + d`` is head
    ``h``'s feature ``d``. The result is ``einsum(PROJECT, x, weight) + bias``.

    Args:
        x: ``(..., L, E)`` floating.
        weight: ``(H * D, E)``, same dtype as ``x``.
        bias: ``(H * D,)`` or None.
        num_heads: ``H``.
        name: the argument name used in error messages (``"query"``, ``"key"``, ...).
        weight_name: the weight's name in error messages, as the caller spelled it
            (``"in_proj_weight"``); default ``"<name> weight"``.
        bias_name: likewise for the bias; default ``"<name> bias"``.

    Returns:
        ``(..., H, L, D)``.

    Raises:
        AttentionShapeError: ``x`` without a feature axis, a weight whose input size is not
            ``E`` or whose output size does not split into ``num_heads``, a bias of the
            wrong size.
        AttentionDTypeError: non-floating or mixed dtypes.

    Examples:
        >>> import numpy as np
        >>> x = np.ones((2, 5, 8), dtype=np.float32)  # (B, L, E)
        >>> w = np.ones((4 * 3, 8), dtype=np.float32)  # (H * D, E), H=4, D=3
        >>> project_heads(x, w, num_heads=4).shape  # (B, H, L, D)
        (2, 4, 5, 3)
    """
    heads = _count("num_heads", num_heads)
    arr = _float(name, x, None)
    w_name = weight_name or f"{name} weight"
    b_name = bias_name or f"{name} bias"
    w = _float(w_name, weight, arr.dtype)
    if arr.ndim < 2:
        raise AttentionShapeError(
            f"{name} shape should be (..., L, E): but got {_shape(arr.shape)}. Add a "
            f"length axis: {name}[None, :] for a single token."
        )
    features = arr.shape[-1]
    if w.ndim != 2 or w.shape[1] != features or w.shape[0] % heads:
        raise AttentionShapeError(
            f"{w_name} shape should be (H * D, E) = ({heads} * D, {features}) for {name} "
            f"(torch.nn.Linear layout, out x in): but got {_shape(w.shape)} for {name} "
            f"{_shape(arr.shape)}. If the first axis is {features}, the weight is "
            f"transposed (x @ W layout): pass weight.T."
        )
    dim = w.shape[0] // heads
    out: FloatArray = np.einsum(PROJECT, arr, w.reshape(heads, dim, features), optimize=True)
    if bias is not None:
        b = _float(b_name, bias, arr.dtype)
        if b.shape != (heads * dim,):
            raise AttentionShapeError(
                f"{b_name} shape should be (H * D,) = ({heads * dim},) for {name}: but "
                f"got {_shape(b.shape)}. Pass the bias of the same torch.nn.Linear as the "
                f"weight, one entry per output feature."
            )
        out = out + b.reshape(heads, 1, dim)  # (H, 1, D) broadcasts over (..., H, L, D)
    return out


def merge_heads(
    heads: npt.ArrayLike,
    weight: npt.ArrayLike | None = None,
    bias: npt.ArrayLike | None = None,
) -> FloatArray:
    """Merge heads ``(..., H, L, Dv)`` to ``(..., L, H * Dv)``, then project if given a weight.

    With ``weight (O, H * Dv)`` (``torch.nn.Linear`` layout, viewed as ``(O, H, Dv)``) the
    result is ``einsum(MERGE, heads, weight) + bias``, shape ``(..., L, O)``; without it, the
    heads concatenated along features, head-major (feature ``h * Dv + v``).

    Args:
        heads: ``(..., H, L, Dv)`` floating.
        weight: ``(O, H * Dv)`` or None.
        bias: ``(O,)`` or None (only with a weight).

    Returns:
        ``(..., L, O)``, or ``(..., L, H * Dv)`` without a weight.

    Raises:
        AttentionShapeError: a weight whose input size is not ``H * Dv``, a bias of the
            wrong size.
        AttentionDTypeError: non-floating or mixed dtypes.

    Examples:
        >>> import numpy as np
        >>> heads = np.arange(2 * 4 * 3, dtype=np.float64).reshape(2, 4, 3)  # (H, L, Dv)
        >>> merge_heads(heads)[0]  # position 0: head 0's features, then head 1's
        array([ 0.,  1.,  2., 12., 13., 14.])
        >>> merge_heads(heads, np.ones((5, 6))).shape  # (L, O)
        (4, 5)
    """
    arr = _float("heads", heads, None)
    if arr.ndim < 3:
        raise AttentionShapeError(
            f"heads shape should be (..., H, L, Dv): but got {_shape(arr.shape)}. Pass "
            f"refattn.attention's output; for one head add the axis with heads[None]."
        )
    *batch, num, length, dim_v = arr.shape
    if weight is None:
        if bias is not None:
            raise AttentionValueError(
                f"out_proj_bias should be given only with out_proj_weight: but got "
                f"out_proj_bias of shape {_shape(as_array('out_proj_bias', bias).shape)} and "
                f"out_proj_weight=None. Pass "
                f"out_proj_weight too, or drop out_proj_bias for unprojected heads."
            )
        merged: FloatArray = np.moveaxis(arr, -3, -2).reshape(*batch, length, num * dim_v)
        return merged  # (..., L, H * Dv)
    w = _float("out_proj_weight", weight, arr.dtype)
    if w.ndim != 2 or w.shape[1] != num * dim_v:
        raise AttentionShapeError(
            f"out_proj_weight shape should be (O, H * Dv) = (O, {num} * {dim_v}) (torch.nn."
            f"Linear layout, out x in): but got {_shape(w.shape)} for heads "
            f"{_shape(arr.shape)}. If its second axis is O and first is {num * dim_v}, it "
            f"is transposed: pass out_proj_weight.T."
        )
    # (O, H, Dv), spelled with O: reshape(-1, ...) cannot infer O when H * Dv is 0
    w_heads = w.reshape(w.shape[0], num, dim_v)
    out: FloatArray = np.einsum(MERGE, arr, w_heads, optimize=True)
    if bias is not None:
        b = _float("out_proj_bias", bias, arr.dtype)
        if b.shape != (w.shape[0],):
            raise AttentionShapeError(
                f"out_proj_bias shape should be (O,) = ({w.shape[0]},): but got "
                f"{_shape(b.shape)}. Pass the bias of the same torch.nn.Linear as "
                f"out_proj_weight, one entry per output feature."
            )
        out = out + b
    return out


@overload
def multi_head_attention(
    query: npt.ArrayLike,
    key: npt.ArrayLike | None = ...,
    value: npt.ArrayLike | None = ...,
    *,
    num_heads: int,
    num_kv_heads: int | None = ...,
    in_proj_weight: npt.ArrayLike | None = ...,
    in_proj_bias: npt.ArrayLike | None = ...,
    q_proj_weight: npt.ArrayLike | None = ...,
    k_proj_weight: npt.ArrayLike | None = ...,
    v_proj_weight: npt.ArrayLike | None = ...,
    q_proj_bias: npt.ArrayLike | None = ...,
    k_proj_bias: npt.ArrayLike | None = ...,
    v_proj_bias: npt.ArrayLike | None = ...,
    out_proj_weight: npt.ArrayLike | None = ...,
    out_proj_bias: npt.ArrayLike | None = ...,
    return_weights: Literal[False] = ...,
    average_weights: bool = ...,
    **options: Unpack[AttentionOptions],
) -> FloatArray: ...
@overload
def multi_head_attention(
    query: npt.ArrayLike,
    key: npt.ArrayLike | None = ...,
    value: npt.ArrayLike | None = ...,
    *,
    num_heads: int,
    num_kv_heads: int | None = ...,
    in_proj_weight: npt.ArrayLike | None = ...,
    in_proj_bias: npt.ArrayLike | None = ...,
    q_proj_weight: npt.ArrayLike | None = ...,
    k_proj_weight: npt.ArrayLike | None = ...,
    v_proj_weight: npt.ArrayLike | None = ...,
    q_proj_bias: npt.ArrayLike | None = ...,
    k_proj_bias: npt.ArrayLike | None = ...,
    v_proj_bias: npt.ArrayLike | None = ...,
    out_proj_weight: npt.ArrayLike | None = ...,
    out_proj_bias: npt.ArrayLike | None = ...,
    return_weights: Literal[True],
    average_weights: bool = ...,
    **options: Unpack[AttentionOptions],
) -> MultiHeadResult: ...


def multi_head_attention(
    query: npt.ArrayLike,
    key: npt.ArrayLike | None = None,
    value: npt.ArrayLike | None = None,
    *,
    num_heads: int,
    num_kv_heads: int | None = None,
    in_proj_weight: npt.ArrayLike | None = None,
    in_proj_bias: npt.ArrayLike | None = None,
    q_proj_weight: npt.ArrayLike | None = None,
    k_proj_weight: npt.ArrayLike | None = None,
    v_proj_weight: npt.ArrayLike | None = None,
    q_proj_bias: npt.ArrayLike | None = None,
    k_proj_bias: npt.ArrayLike | None = None,
    v_proj_bias: npt.ArrayLike | None = None,
    out_proj_weight: npt.ArrayLike | None = None,
    out_proj_bias: npt.ArrayLike | None = None,
    return_weights: bool = False,
    average_weights: bool = False,
    **options: Unpack[AttentionOptions],
) -> FloatArray | MultiHeadResult:
    """Multi-head attention with projections, batch-first ``(..., L, E)``.

    Steps, each a function of this module or the core::

        q = project_heads(query, Wq, bq, num_heads=Hq)      # (..., Hq, L, D)
        k = project_heads(key, Wk, bk, num_heads=Hkv)       # (..., Hkv, S, D)
        v = project_heads(value, Wv, bv, num_heads=Hkv)     # (..., Hkv, S, Dv)
        o = refattn.attention(q, k, v, **options)           # (..., Hq, L, Dv)
        out = merge_heads(o, out_proj_weight, out_proj_bias)  # (..., L, O)

    Projection weights are ``torch.nn.Linear`` weights ``(out_features, in_features)``,
    given either packed or separate:

    - packed ``in_proj_weight ((Hq + 2 * Hkv) * D, E)``, rows ``[q | k | v]``, with
      ``in_proj_bias ((Hq + 2 * Hkv) * D,)``: query, key and value all have ``E``
      features (torch ``nn.MultiheadAttention``'s ``in_proj_weight`` when ``Hkv = Hq``);
    - separate ``q_proj_weight (Hq * D, Eq)``, ``k_proj_weight (Hkv * D, Ek)``,
      ``v_proj_weight (Hkv * Dv, Ev)`` with optional ``q/k/v_proj_bias``: key and value
      may have their own feature sizes (torch's ``kdim``/``vdim``) and ``Dv`` may differ
      from ``D``.

    Args:
        query: ``(..., L, Eq)`` floating.
        key: ``(..., S, Ek)``; None for self-attention (``key = query``). Cross-attention
            when given; leading dims broadcast against query's.
        value: ``(..., S, Ev)``; None means ``value = key``.
        num_heads: ``Hq``, the number of query heads.
        num_kv_heads: ``Hkv``, a divisor of ``Hq`` (GQA; 1 is MQA); default ``Hq``. Query
            head ``h`` reads key/value head ``h // (Hq // Hkv)``.
        in_proj_weight: packed projection weight, see above.
        in_proj_bias: packed projection bias.
        q_proj_weight: separate query projection ``(Hq * D, Eq)``.
        k_proj_weight: separate key projection ``(Hkv * D, Ek)``.
        v_proj_weight: separate value projection ``(Hkv * Dv, Ev)``.
        q_proj_bias: ``(Hq * D,)`` or None.
        k_proj_bias: ``(Hkv * D,)`` or None.
        v_proj_bias: ``(Hkv * Dv,)`` or None.
        out_proj_weight: ``(O, Hq * Dv)``; None returns the merged heads ``(..., L,
            Hq * Dv)`` unprojected.
        out_proj_bias: ``(O,)`` or None.
        return_weights: also return the attention weights (before dropout).
        average_weights: with ``return_weights``, average them over heads:
            ``(..., L, S)`` instead of ``(..., Hq, L, S)``.
        **options: every other keyword of :func:`refattn.attention`, applied to the
            per-head scores ``(..., Hq, L, S)``: ``attend_mask`` (True = attend),
            ``bias``, ``causal``, ``window``, ``key_lengths``, ``query_lengths``,
            ``alibi_slopes``, ``softcap``, ``scale`` (default ``1 / sqrt(D)``),
            ``fully_masked``, dropout. A key-padding mask ``(B, S)`` is spelled
            ``mask[:, None, None, :]``.

    Returns:
        ``(..., L, O)``, or a :class:`MultiHeadResult` ``(output, weights)`` when
        ``return_weights`` is set.

    Raises:
        AttentionShapeError: a weight whose shape does not fit its input or the head
            counts, key and value of different lengths, and everything
            :func:`refattn.attention` refuses.
        AttentionDTypeError: non-floating inputs or weights of another dtype than query.
        AttentionValueError: missing or conflicting weights, bad head counts.
        AttentionArgumentError: ``return_lse`` or another keyword that is not an option of
            :func:`refattn.attention`.

    Examples:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> x = rng.standard_normal((2, 5, 16))  # (B, L, E)
        >>> w_qkv = rng.standard_normal((3 * 16, 16)) / 4  # packed, 4 heads of D=4
        >>> w_o = rng.standard_normal((16, 16)) / 4
        >>> out = multi_head_attention(
        ...     x, num_heads=4, in_proj_weight=w_qkv, out_proj_weight=w_o, causal="top_left"
        ... )
        >>> out.shape  # (B, L, O)
        (2, 5, 16)
        >>> memory = rng.standard_normal((2, 7, 6))  # cross-attention, kdim = vdim = 6
        >>> res = multi_head_attention(
        ...     x, memory, num_heads=4, num_kv_heads=2,
        ...     q_proj_weight=w_qkv[:16], k_proj_weight=np.ones((8, 6)),
        ...     v_proj_weight=np.ones((8, 6)), return_weights=True, average_weights=True,
        ... )
        >>> res.output.shape, res.weights.shape  # (B, L, Hq * Dv), (B, L, S)
        ((2, 5, 16), (2, 5, 7))
    """
    check_keywords(
        {name: v for name, v in options.items() if name not in _OPTION_NAMES},
        "to multi_head_attention",
    )
    flag("return_weights", return_weights)
    flag("average_weights", average_weights)
    hq = _count("num_heads", num_heads)
    hkv = hq if num_kv_heads is None else _count("num_kv_heads", num_kv_heads)
    if hq % hkv:
        raise AttentionValueError(
            f"num_heads should be a multiple of num_kv_heads: but got num_heads={hq}, "
            f"num_kv_heads={hkv}. GQA shares each key/value head between Hq // Hkv query "
            f"heads; check the two counts were not swapped."
        )
    q_in = _float("query", query, None)
    k_in = q_in if key is None else _float("key", key, q_in.dtype)
    v_in = k_in if value is None else _float("value", value, q_in.dtype)
    inputs = (("query", q_in, "L, Eq"), ("key", k_in, "S, Ek"), ("value", v_in, "S, Ev"))
    for name, arr, axes in inputs:
        if arr.ndim < 2:
            raise AttentionShapeError(
                f"{name} shape should be (..., {axes}): but got {_shape(arr.shape)}. Layout is "
                f"batch-first; add a length axis with {name}[None, :] for a single token."
            )
    if k_in.shape[-2] != v_in.shape[-2]:
        raise AttentionShapeError(
            f"value length should equal key's S={k_in.shape[-2]}: but got value "
            f"{_shape(v_in.shape)} and key {_shape(k_in.shape)}. Layout is batch-first "
            f"(..., S, E): transpose a (S, B, E) input with x.swapaxes(0, 1)."
        )

    weights = _split_weights(
        hq,
        hkv,
        in_proj_weight,
        in_proj_bias,
        (q_proj_weight, k_proj_weight, v_proj_weight),
        (q_proj_bias, k_proj_bias, v_proj_bias),
    )
    (wq, bq), (wk, bk), (wv, bv) = weights
    packed = in_proj_weight is not None

    def names(letter: str) -> dict[str, str]:
        if packed:
            return {"weight_name": "in_proj_weight", "bias_name": "in_proj_bias"}
        return {"weight_name": f"{letter}_proj_weight", "bias_name": f"{letter}_proj_bias"}

    q = project_heads(q_in, wq, bq, num_heads=hq, name="query", **names("q"))  # (..., Hq, L, D)
    k = project_heads(k_in, wk, bk, num_heads=hkv, name="key", **names("k"))  # (..., Hkv, S, D)
    v = project_heads(v_in, wv, bv, num_heads=hkv, name="value", **names("v"))  # (..., Hkv, S, Dv)
    if q.shape[-1] != k.shape[-1]:
        raise AttentionShapeError(
            f"query and key head dims should be equal: but got D={q.shape[-1]} from the "
            f"query projection ({_shape(np.shape(wq))} for {hq} heads) and D={k.shape[-1]} "
            f"from the key projection ({_shape(np.shape(wk))} for {hkv} heads). The key "
            f"projection has Hkv * D rows; check num_kv_heads."
        )
    if not return_weights:
        out = attention(q, k, v, **options)  # (..., Hq, L, Dv)
        return merge_heads(out, out_proj_weight, out_proj_bias)  # (..., L, O)
    res = attention(q, k, v, return_weights=True, **options)
    assert res.weights is not None
    probs = res.weights.mean(axis=-3) if average_weights else res.weights
    return MultiHeadResult(merge_heads(res.output, out_proj_weight, out_proj_bias), probs)


Projection = tuple[npt.ArrayLike, npt.ArrayLike | None]


def _split_weights(
    hq: int,
    hkv: int,
    packed: npt.ArrayLike | None,
    packed_bias: npt.ArrayLike | None,
    separate: tuple[npt.ArrayLike | None, npt.ArrayLike | None, npt.ArrayLike | None],
    separate_bias: tuple[npt.ArrayLike | None, npt.ArrayLike | None, npt.ArrayLike | None],
) -> tuple[Projection, Projection, Projection]:
    """Return ``((Wq, bq), (Wk, bk), (Wv, bv))`` from packed or separate weights."""
    names = ("q_proj_weight", "k_proj_weight", "v_proj_weight")
    given = [n for n, w in zip(names, separate, strict=True) if w is not None]
    if packed is not None:
        if given or any(b is not None for b in separate_bias):
            raise AttentionValueError(
                f"in_proj_weight was given together with separate projections: they "
                f"should not be mixed, but got in_proj_weight and "
                f"{', '.join(given) or 'q/k/v_proj_bias'}. Pass either the packed "
                f"in_proj_weight (and in_proj_bias) or the three separate weights."
            )
        w = as_array("in_proj_weight", packed)
        rows = hq + 2 * hkv
        if w.ndim != 2 or w.shape[0] % rows:
            raise AttentionShapeError(
                f"in_proj_weight shape should be ((Hq + 2 * Hkv) * D, E) = ({rows} * D, E) "
                f"for Hq={hq}, Hkv={hkv}: but got {_shape(w.shape)}. Rows are packed "
                f"[q | k | v]; for key/value feature sizes other than the query's, pass "
                f"q_proj_weight, k_proj_weight and v_proj_weight instead."
            )
        dim = w.shape[0] // rows
        cuts = np.cumsum([hq * dim, hkv * dim])
        wq, wk, wv = np.split(w, cuts)
        if packed_bias is None:
            return (wq, None), (wk, None), (wv, None)
        b = as_array("in_proj_bias", packed_bias)
        if b.shape != (w.shape[0],):
            raise AttentionShapeError(
                f"in_proj_bias shape should be ({w.shape[0]},), one per row of "
                f"in_proj_weight: but got {_shape(b.shape)}. Pass the packed [q | k | v] "
                f"bias of the same layer as in_proj_weight."
            )
        bq, bk, bv = np.split(b, cuts)
        return (wq, bq), (wk, bk), (wv, bv)
    if packed_bias is not None:
        raise AttentionValueError(
            "in_proj_bias should be given only with in_proj_weight: but got in_proj_bias "
            "and separate weights. With separate weights pass q_proj_bias, k_proj_bias "
            "and v_proj_bias."
        )
    if len(given) != 3:
        missing = [n for n, w in zip(names, separate, strict=True) if w is None]
        raise AttentionValueError(
            f"projection weights should be given: but got no in_proj_weight, missing "
            f"{', '.join(missing)}. Pass in_proj_weight (packed) or all of q_proj_weight, "
            f"k_proj_weight and v_proj_weight."
        )
    sq, sk, sv = separate
    assert sq is not None
    assert sk is not None
    assert sv is not None
    return (sq, separate_bias[0]), (sk, separate_bias[1]), (sv, separate_bias[2])
