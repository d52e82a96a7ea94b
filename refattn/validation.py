"""Validation of every argument of :func:`refattn.attention`, run before any math.

Each check raises one of refattn's errors with a message that names the argument, what it
got, what it should be and the likely fix. :func:`validate` returns a :class:`Plan`: the
inputs broadcast, flattened and cast to the compute dtype, ready for the kernel.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from refattn.errors import AttentionDTypeError, AttentionShapeError, AttentionValueError

Alignment = Literal["top_left", "bottom_right"]
Policy = Literal["zero", "uniform", "nan", "raise"]
ALIGNMENTS: tuple[str, ...] = ("top_left", "bottom_right")
POLICIES: tuple[str, ...] = ("zero", "uniform", "nan", "raise")
DEFAULT_MEMORY_BUDGET = 256 << 20  # bytes of (..., Hq, L, S) scores before the online path


@dataclass(frozen=True)
class Plan:
    """Validated inputs in the kernel's layout.

    Shapes: ``N`` is the product of the broadcast batch shape, ``G = Hq // Hkv``.
    """

    batch_shape: tuple[int, ...]
    num_q_heads: int
    out_dtype: np.dtype[np.floating]
    query: npt.NDArray[np.floating]  # (N, Hkv, G, L, D), compute dtype (may be a view)
    scale: float
    key: npt.NDArray[np.floating]  # (N, Hkv, S, D), compute dtype
    value: npt.NDArray[np.floating]  # (N, Hkv, S, Dv), compute dtype
    attend_mask: npt.NDArray[np.bool_] | None  # (N, Hkv, G, L, S) view
    bias: npt.NDArray[np.floating] | None  # (N, Hkv, G, L, S) view
    alibi_slopes: npt.NDArray[np.floating] | None  # (N, Hkv, G)
    causal_offset: int | None  # query i may see key j iff j <= i + offset
    window: tuple[int | None, int | None, int] | None  # (left, right, offset)
    key_lengths: npt.NDArray[np.intp] | None  # (N,)
    query_lengths: npt.NDArray[np.intp] | None  # (N,)
    softcap: float | None
    fully_masked: Policy
    dropout_keep: npt.NDArray[np.bool_] | None  # (N, Hkv, G, L, S) view
    dropout_p: float
    memory_budget: int  # bytes of score tensor past which keys are walked in chunks


def see(case_id: str) -> str:
    """The sentence that points an error message at the catalogue case explaining it."""
    return f" Explained by catalogue case {case_id} (python -m catalogue show {case_id})."


def _shape(shape: tuple[int, ...]) -> str:
    return str(tuple(int(n) for n in shape))


def _as_float_array(name: str, x: object) -> npt.NDArray[np.floating]:
    arr = np.asarray(x)
    if arr.dtype.kind != "f":
        kind = {
            "i": "an integer",
            "u": "an unsigned integer",
            "b": "a boolean",
            "c": "a complex",
        }.get(arr.dtype.kind, "a non-numeric")
        fix = f"convert it with {name}.astype(np.float32)"
        if arr.dtype.kind == "c":
            fix = "attention is defined for real inputs; split real and imaginary parts"
        raise AttentionDTypeError(
            f"{name} has {kind} dtype {arr.dtype}: expected a floating dtype "
            f"(float16, float32 or float64); {fix}."
        )
    return arr


def _check_rank(name: str, arr: npt.NDArray[np.generic], axes: str) -> None:
    if arr.ndim < 3:
        raise AttentionShapeError(
            f"{name} shape should be (..., {axes}): but got {_shape(arr.shape)}, "
            f"which has {arr.ndim} dims and no head axis. Add one: {name}[None] for a "
            f"single head, or reshape (B, L, H*D) to (B, H, L, D) with "
            f"x.reshape(B, L, H, D).transpose(0, 2, 1, 3)."
        )


def _broadcast_batch(
    query: npt.NDArray[np.floating],
    key: npt.NDArray[np.floating],
    value: npt.NDArray[np.floating],
) -> tuple[int, ...]:
    try:
        return np.broadcast_shapes(query.shape[:-3], key.shape[:-3], value.shape[:-3])
    except ValueError:
        raise AttentionShapeError(
            f"batch dims of query {_shape(query.shape[:-3])}, key {_shape(key.shape[:-3])} "
            f"and value {_shape(value.shape[:-3])} do not broadcast together "
            f"(shapes: query {_shape(query.shape)}, key {_shape(key.shape)}, value "
            f"{_shape(value.shape)}). Leading dims must be equal or 1; check that q, k and "
            f"v come from the same batch and were not transposed differently."
        ) from None


def _to_score_view(
    name: str,
    arr: npt.NDArray[np.generic],
    batch: tuple[int, ...],
    hq: int,
    hkv: int,
    length_q: int,
    length_k: int,
) -> npt.NDArray[Any]:
    """Broadcast a mask-like array to ``(*batch, Hq, L, S)`` and view it as 5-D kernel layout."""
    target = (*batch, hq, length_q, length_k)
    if arr.ndim == 3 and len(target) > 3:
        raise AttentionShapeError(
            f"{name} has 3 dims {_shape(arr.shape)}, which is ambiguous: (B, L, S) or "
            f"(H, L, S)? Scores have shape {_shape(target)}. Spell a per-batch mask as "
            f"{name}[:, None] (B, 1, L, S) and a per-head mask as {name}[None] "
            f"(1, H, L, S). (torch SDPA silently reads a 3-D mask as (H, L, S).)"
            + see("three_d_mask_read_as_heads")
        )
    try:
        full = np.broadcast_to(arr, target)
    except ValueError:
        raise AttentionShapeError(
            f"{name} shape should broadcast to the scores (..., Hq, L, S) = "
            f"{_shape(target)}: but got {_shape(arr.shape)}. Trailing axes are matched "
            f"first: a key-padding mask (B, S) must be spelled {name}[:, None, None, :] "
            f"(B, 1, 1, S); a per-query mask needs shape (L, S)."
            + see("mask_shape_not_broadcastable")
        ) from None
    n = math.prod(batch)
    return full.reshape(n, hkv, hq // hkv, length_q, length_k)


def _lengths(
    name: str, x: object, batch: tuple[int, ...], limit: int, axis: str
) -> npt.NDArray[np.intp]:
    arr = np.asarray(x)
    if arr.dtype.kind not in "iu":
        raise AttentionDTypeError(
            f"{name} has dtype {arr.dtype}: expected integer lengths, one per batch "
            f"entry; convert with np.asarray({name}, dtype=np.int64)."
        )
    try:
        full = np.broadcast_to(arr, batch)
    except ValueError:
        raise AttentionShapeError(
            f"{name} shape should broadcast to the batch shape {_shape(batch)}: but got "
            f"{_shape(arr.shape)}. Give one length per batch entry."
        ) from None
    if full.size and (full.min() < 0 or full.max() > limit):
        bad = full[(full < 0) | (full > limit)].flat[0]
        raise AttentionValueError(
            f"{name} should lie in [0, {axis}] = [0, {limit}]: but got {bad}. A length "
            f"larger than the padded {axis} usually means the lengths were computed "
            f"before truncation, or include special tokens the arrays do not have."
            + see("lengths_longer_than_padded")
        )
    return np.ascontiguousarray(full.reshape(-1)).astype(np.intp, copy=False)


def _alignment_offset(name: str, alignment: object, length_q: int, length_k: int) -> int:
    if alignment not in ALIGNMENTS:
        extra = ""
        if isinstance(alignment, bool):
            extra = (
                " A bare bool is ambiguous when L != S: use 'top_left' for torch/JAX "
                "is_causal=True or 'bottom_right' for flash-attn and KV-cache decoding."
            )
        raise AttentionValueError(
            f"{name} should be one of {ALIGNMENTS}: but got {alignment!r}.{extra}"
            + see("top_left_causal_for_kv_cache")
        )
    return 0 if alignment == "top_left" else length_k - length_q


def _window(
    window: object, alignment: object, causal: object, length_q: int, length_k: int
) -> tuple[int | None, int | None, int]:
    if not (isinstance(window, tuple | list) and len(window) == 2):
        raise AttentionValueError(
            f"window should be a pair (left, right) of inclusive offsets: but got "
            f"{window!r}. Use None for an unbounded side, e.g. (128, 0) for a causal "
            f"sliding window of 129 keys."
        )
    sides: list[int | None] = []
    for side, value in zip(("left", "right"), window, strict=True):
        if value is None:
            sides.append(None)
            continue
        if isinstance(value, bool) or not isinstance(value, int | np.integer):
            raise AttentionValueError(
                f"window {side} should be a non-negative int or None: but got {value!r}."
            )
        if value < 0:
            raise AttentionValueError(
                f"window {side} should be >= 0 or None (unbounded): but got {value}. "
                f"flash-attn spells an unbounded side -1; refattn spells it None."
            )
        sides.append(int(value))
    if alignment is None:
        alignment = causal
    if alignment is None:
        if length_q != length_k:
            raise AttentionValueError(
                f"window_alignment is needed when L != S (L={length_q}, S={length_k}): "
                f"'bottom_right' aligns the last query with the last key (flash-attn), "
                f"'top_left' aligns the first with the first (JAX local_window_size)."
            )
        alignment = "top_left"
    offset = _alignment_offset("window_alignment", alignment, length_q, length_k)
    return sides[0], sides[1], offset


def validate(
    query: object,
    key: object,
    value: object,
    *,
    attend_mask: object = None,
    bias: object = None,
    causal: object = None,
    window: object = None,
    window_alignment: object = None,
    key_lengths: object = None,
    query_lengths: object = None,
    alibi_slopes: object = None,
    softcap: object = None,
    scale: object = None,
    fully_masked: object = "zero",
    dropout_p: object = 0.0,
    rng: object = None,
    dropout_keep: object = None,
    memory_budget: object = None,
) -> Plan:
    """Check every argument of :func:`refattn.attention` and build the kernel's :class:`Plan`.

    Raises:
        AttentionShapeError: shapes that do not fit together.
        AttentionDTypeError: dtypes attention cannot use.
        AttentionValueError: values out of range.
    """
    q = _as_float_array("query", query)
    k = _as_float_array("key", key)
    v = _as_float_array("value", value)
    _check_rank("query", q, "Hq, L, D")
    _check_rank("key", k, "Hkv, S, D")
    _check_rank("value", v, "Hkv, S, Dv")
    if not q.dtype == k.dtype == v.dtype:
        raise AttentionDTypeError(
            f"query, key and value should share one dtype: but got {q.dtype}, {k.dtype} "
            f"and {v.dtype}. Cast them to one, e.g. key.astype(query.dtype); mixed "
            f"precision hides which precision the result has."
        )
    *_, hq, length_q, dim = q.shape
    *_, hkv, length_k, dim_k = k.shape
    *_, hkv_v, length_v, dim_v = v.shape
    if dim_k != dim:
        raise AttentionShapeError(
            f"key feature size should equal query's D={dim}: but got key shape "
            f"{_shape(k.shape)} with D={dim_k} (query {_shape(q.shape)}). Q·Kᵀ contracts "
            f"the last axis; the query and key projections must have the same output size."
            + see("qk_dim_mismatch")
        )
    if length_v != length_k:
        raise AttentionShapeError(
            f"value length should equal key's S={length_k}: but got value shape "
            f"{_shape(v.shape)} with S={length_v} (key {_shape(k.shape)}). Every key needs "
            f"exactly one value; check slicing or caching of one but not the other."
            + see("value_sliced_separately")
        )
    if hkv_v != hkv:
        raise AttentionShapeError(
            f"value heads should equal key's Hkv={hkv}: but got value shape "
            f"{_shape(v.shape)} with {hkv_v} heads (key {_shape(k.shape)})."
        )
    if hkv == 0 or hq % hkv:
        raise AttentionShapeError(
            f"query heads Hq={hq} should be a multiple of key/value heads Hkv={hkv} "
            f"(query {_shape(q.shape)}, key {_shape(k.shape)}): GQA maps query head h to "
            f"kv head h // (Hq // Hkv). Check the head axis is at -3 in all three arrays."
            + see("head_split_not_divisible")
        )
    batch = _broadcast_batch(q, k, v)
    n = math.prod(batch)
    groups = hq // hkv

    compute = np.dtype(np.float64) if q.dtype == np.float64 else np.dtype(np.float32)
    scale_value = 1.0 / math.sqrt(dim) if scale is None and dim else scale
    if scale is None and not dim:
        scale_value = 1.0
    if isinstance(scale_value, bool) or not isinstance(scale_value, int | float | np.number):
        raise AttentionValueError(f"scale should be a real number or None: but got {scale!r}.")
    if not math.isfinite(float(scale_value)):
        raise AttentionValueError(f"scale should be finite: but got {scale!r}.")

    q5 = np.broadcast_to(q, (*batch, hq, length_q, dim)).reshape(n, hkv, groups, length_q, dim)
    q5 = q5.astype(compute, copy=False)
    k4 = np.broadcast_to(k, (*batch, hkv, length_k, dim)).reshape(n, hkv, length_k, dim)
    v4 = np.broadcast_to(v, (*batch, hkv, length_k, dim_v)).reshape(n, hkv, length_k, dim_v)
    k4 = np.ascontiguousarray(k4, dtype=compute)
    v4 = np.ascontiguousarray(v4, dtype=compute)

    def score_view(name: str, arr: npt.NDArray[np.generic]) -> npt.NDArray[Any]:
        return _to_score_view(name, arr, batch, hq, hkv, length_q, length_k)

    mask5 = None
    if attend_mask is not None:
        m = np.asarray(attend_mask)
        if m.dtype != np.bool_:
            hint = (
                "for an additive 0/-inf mask pass it as bias=; for a 0/1 mask where 1 "
                "means attend use attend_mask=mask.astype(bool)"
            )
            raise AttentionDTypeError(
                f"attend_mask should be boolean (True = may attend): but got dtype "
                f"{m.dtype}; {hint}. A torch nn.MultiheadAttention mask (True = ignore) "
                f"must be inverted: refattn.masks.from_torch_attn_mask(mask) or "
                f"refattn.masks.from_torch_key_padding_mask(mask)." + see("zero_one_mask_added")
            )
        mask5 = score_view("attend_mask", m)

    bias5 = None
    if bias is not None:
        b = np.asarray(bias)
        if b.dtype.kind != "f":
            raise AttentionDTypeError(
                f"bias should be a floating array added to the logits: but got dtype "
                f"{b.dtype}. A boolean mask goes to attend_mask=; an integer 0/1 mask is "
                f"not a bias (adding it shifts logits by 1 instead of masking)."
            )
        if np.isnan(b).any() or np.isposinf(b).any():
            raise AttentionValueError(
                "bias should hold finite values or -inf (to mask): but it contains "
                "NaN or +inf, which makes softmax NaN. Check how the bias was built."
                + see("mask_times_minus_inf")
            )
        bias5 = score_view("bias", b)

    slopes: npt.NDArray[np.floating] | None = None
    if alibi_slopes is not None:
        a = np.asarray(alibi_slopes)
        if a.dtype.kind != "f":
            raise AttentionDTypeError(
                f"alibi_slopes should be floating, one per query head: but got dtype {a.dtype}."
            )
        try:
            full = np.broadcast_to(a, (*batch, hq))
        except ValueError:
            raise AttentionShapeError(
                f"alibi_slopes shape should be (Hq,) or (..., Hq) with Hq={hq}: but got "
                f"{_shape(a.shape)}."
            ) from None
        slopes = full.reshape(n, hkv, groups).astype(compute)

    causal_offset = None
    if causal is not None:
        causal_offset = _alignment_offset("causal", causal, length_q, length_k)

    window_spec = None
    if window is not None:
        window_spec = _window(window, window_alignment, causal, length_q, length_k)
    elif window_alignment is not None:
        raise AttentionValueError("window_alignment was given without a window.")

    klen = (
        None if key_lengths is None else _lengths("key_lengths", key_lengths, batch, length_k, "S")
    )
    qlen = (
        None
        if query_lengths is None
        else _lengths("query_lengths", query_lengths, batch, length_q, "L")
    )

    cap = None
    if softcap is not None:
        if (
            isinstance(softcap, bool)
            or not isinstance(softcap, int | float | np.number)
            or not (math.isfinite(float(softcap)) and float(softcap) > 0)
        ):
            raise AttentionValueError(
                f"softcap should be a positive finite number or None: but got {softcap!r}."
            )
        cap = float(softcap)

    if fully_masked not in POLICIES:
        raise AttentionValueError(
            f"fully_masked should be one of {POLICIES}: but got {fully_masked!r}."
        )

    budget = DEFAULT_MEMORY_BUDGET if memory_budget is None else memory_budget
    if isinstance(budget, bool) or not isinstance(budget, int | np.integer) or budget < 0:
        raise AttentionValueError(
            f"memory_budget should be a number of bytes >= 0 or None: but got {memory_budget!r}."
        )

    keep5, p = _dropout(dropout_p, rng, dropout_keep, score_view, (*batch, hq, length_q, length_k))

    return Plan(
        batch_shape=batch,
        num_q_heads=hq,
        out_dtype=q.dtype,
        query=q5,
        scale=float(scale_value),
        key=k4,
        value=v4,
        attend_mask=mask5,
        bias=bias5,
        alibi_slopes=slopes,
        causal_offset=causal_offset,
        window=window_spec,
        key_lengths=klen,
        query_lengths=qlen,
        softcap=cap,
        fully_masked=fully_masked,  # type: ignore[arg-type]
        dropout_keep=keep5,
        dropout_p=p,
        memory_budget=int(budget),
    )


def _dropout(
    dropout_p: object,
    rng: object,
    dropout_keep: object,
    score_view: Callable[[str, npt.NDArray[np.generic]], npt.NDArray[Any]],
    score_shape: tuple[int, ...],
) -> tuple[npt.NDArray[np.bool_] | None, float]:
    if isinstance(dropout_p, bool) or not isinstance(dropout_p, int | float | np.number):
        raise AttentionValueError(f"dropout_p should be a float in [0, 1): but got {dropout_p!r}.")
    p = float(dropout_p)
    if not 0.0 <= p < 1.0:
        raise AttentionValueError(
            f"dropout_p should lie in [0, 1): but got {p}. It is the probability of "
            f"dropping a weight; 1 would drop everything."
        )
    if p == 0.0:
        if dropout_keep is not None:
            raise AttentionValueError(
                "dropout_keep was given with dropout_p=0: give the probability the keep-mask "
                "was drawn with, since kept weights are scaled by 1 / (1 - dropout_p)."
            )
        return None, 0.0
    if dropout_keep is not None:
        if rng is not None:
            raise AttentionValueError("give either rng or dropout_keep, not both.")
        keep = np.asarray(dropout_keep)
        if keep.dtype != np.bool_:
            raise AttentionDTypeError(
                f"dropout_keep should be boolean (True = keep): but got dtype {keep.dtype}."
            )
        return score_view("dropout_keep", keep), p
    if not isinstance(rng, np.random.Generator):
        raise AttentionValueError(
            f"dropout_p={p} needs an explicit rng (a numpy.random.Generator, e.g. "
            f"np.random.default_rng(0)) or an explicit dropout_keep mask: but got rng="
            f"{rng!r}. refattn keeps no hidden random state."
        )
    keep = rng.random(score_shape) >= p
    return score_view("dropout_keep", keep), p
