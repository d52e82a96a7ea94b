r"""A plain float64 attention with switches for known mistakes, and a low-precision model.

:func:`evaluate` spells :func:`refattn.attention`'s semantics in a dozen lines of NumPy
(the tests check it against the reference), with three switches the mutants need that
``attention``'s options cannot express: the softmax axis, the mask applied after the
softmax, and heads merged without the transpose. Given a ``rounding`` it also models a
naive low-precision run: the final logits, the weights and the output each rounded to the
dtype, as a framework computing attention in that dtype does.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]
Rounding = Callable[[F64], F64]


@dataclass(frozen=True)
class Rotary:
    """A rotary embedding the implementation applies to query and key before attention.

    Key ``j`` is at position ``j`` and query ``i`` at ``i + S - L`` (the last query at the
    last key's position, as when decoding with a KV cache); see :mod:`refattn.rotary`.

    Attributes:
        cos: ``(P, R/2)`` table, ``P >= S``.
        sin: ``(P, R/2)`` table.
        interleaved: False for the half-split "GPT-NeoX" pairs ``(i, i + R/2)``, True for
            the interleaved "GPT-J" pairs ``(2i, 2i + 1)``.
    """

    cos: npt.NDArray[np.floating[Any]]
    sin: npt.NDArray[np.floating[Any]]
    interleaved: bool = False


@dataclass(frozen=True)
class Call:
    """One attention call in refattn's layout, with the switches of a mistake.

    Attributes:
        query: ``(..., Hq, L, D)`` float64.
        key: ``(..., Hkv, S, D)`` float64.
        value: ``(..., Hkv, S, Dv)`` float64.
        options: :func:`refattn.attention`'s keyword arguments.
        softmax_axis: ``-1`` (keys, right) or ``-2`` (queries, a mistake).
        mask_after_softmax: softmax of the unmasked logits, then the removed weights
            zeroed without renormalising (a mistake).
        merge_without_transpose: output ``(B, H, L, Dv)`` read back as ``(B, L, H, Dv)``
            memory (a mistake).
        empty_softmax_nan: a softmax over only ``-inf`` gives NaN (``0 / 0``) instead of
            zero weights, as a plain softmax does.
        rotary: a rotary embedding applied to query and key first, or None.
    """

    query: F64
    key: F64
    value: F64
    options: Mapping[str, Any] = field(default_factory=dict)
    softmax_axis: int = -1
    mask_after_softmax: bool = False
    merge_without_transpose: bool = False
    empty_softmax_nan: bool = False
    rotary: Rotary | None = None


def _round_bfloat16(x: F64) -> F64:
    """Round to the nearest bfloat16 (ties to even), NaN and inf kept."""
    f = np.asarray(x, dtype=np.float32)
    bits = f.view(np.uint32).astype(np.uint64)
    bits = (bits + np.uint64(0x7FFF) + ((bits >> np.uint64(16)) & np.uint64(1))) & np.uint64(
        0xFFFF0000
    )
    out = bits.astype(np.uint32).view(np.float32).astype(np.float64)
    return np.where(np.isfinite(f), out, f.astype(np.float64))


def _round_to(dtype: type[np.floating[Any]]) -> Rounding:
    def rnd(x: F64) -> F64:
        with np.errstate(over="ignore"):
            return np.asarray(x).astype(dtype).astype(np.float64)

    return rnd


EPS: dict[str, float] = {
    "float16": 2.0**-10,
    "bfloat16": 2.0**-7,
    "float32": 2.0**-23,
    "float64": 2.0**-52,
}
ROUNDING: dict[str, Rounding] = {
    "float16": _round_to(np.float16),
    "bfloat16": _round_bfloat16,
    "float32": _round_to(np.float32),
    "float64": lambda x: x,
}


def effective_scale(call: Call) -> float:
    """The scale the call uses: ``options["scale"]`` or ``1 / sqrt(D)``."""
    scale = call.options.get("scale")
    return float(1.0 / np.sqrt(call.query.shape[-1])) if scale is None else float(scale)


def allowed(call: Call) -> npt.NDArray[np.bool_]:
    """``(..., Hq, L, S)``: True where every mask of the call keeps key j for query i."""
    opts = call.options
    q, k = call.query, call.key
    length_q, length_k = q.shape[-2], k.shape[-2]
    batch = np.broadcast_shapes(q.shape[:-3], k.shape[:-3], call.value.shape[:-3])
    keep = np.ones((*batch, q.shape[-3], length_q, length_k), dtype=bool)
    if opts.get("attend_mask") is not None:
        keep = keep & np.asarray(opts["attend_mask"], dtype=bool)
    i = np.arange(length_q)[:, None]
    j = np.arange(length_k)[None, :]
    offsets = {"top_left": 0, "bottom_right": length_k - length_q}
    causal = opts.get("causal")
    if causal is not None:
        keep = keep & (j <= i + offsets[causal])
    window = opts.get("window")
    if window is not None:
        align = str(opts.get("window_alignment") or causal)
        diff = j - i - offsets[align]
        left, right = window
        if left is not None:
            keep = keep & (diff >= -left)
        if right is not None:
            keep = keep & (diff <= right)
    for name, axis in (("key_lengths", j), ("query_lengths", i)):
        if opts.get(name) is not None:
            lengths = np.broadcast_to(np.asarray(opts[name]), batch)[..., None, None, None]
            keep = keep & (axis < lengths)
    return keep


def rotated(call: Call) -> tuple[F64, F64]:
    """Query and key after the call's rotary embedding (themselves without one)."""
    if call.rotary is None:
        return call.query, call.key
    from refattn.rotary import apply_rotary

    r = call.rotary
    offset = call.key.shape[-2] - call.query.shape[-2]
    q = apply_rotary(call.query, r.cos, r.sin, interleaved=r.interleaved, offset=offset)
    k = apply_rotary(call.key, r.cos, r.sin, interleaved=r.interleaved)
    return np.asarray(q, dtype=np.float64), np.asarray(k, dtype=np.float64)


def _repeat_kv(call: Call, x: F64) -> F64:
    """``(..., Hkv, S, .)`` to ``(..., Hq, S, .)``: query head h reads kv head h // G."""
    return np.repeat(x, call.query.shape[-3] // x.shape[-3], axis=-3)


def logits(call: Call) -> F64:
    """``(..., Hq, L, S)`` final logits in float64: scale, softcap, bias, ALiBi; -inf removed."""
    opts = call.options
    q, k = rotated(call)
    k_rep = _repeat_kv(call, k)  # (..., Hq, S, D)
    out: F64 = (q @ np.swapaxes(k_rep, -1, -2)) * effective_scale(call)
    if opts.get("softcap") is not None:
        cap = float(opts["softcap"])
        out = cap * np.tanh(out / cap)
    if opts.get("bias") is not None:
        out = out + np.asarray(opts["bias"], dtype=np.float64)
    if opts.get("alibi_slopes") is not None:
        length_q, length_k = q.shape[-2], k.shape[-2]
        dist = np.abs(
            np.arange(length_q)[:, None] + length_k - length_q - np.arange(length_k)[None, :]
        )
        slopes = np.asarray(opts["alibi_slopes"], dtype=np.float64)[..., None, None]
        out = out - slopes * dist
    if not call.mask_after_softmax:
        out = np.where(allowed(call), out, -np.inf)
    return out


def _softmax(x: F64, axis: int, empty: float = 0.0) -> F64:
    top = np.max(x, axis=axis, keepdims=True, initial=-np.inf)  # -inf over 0 keys
    top = np.where(np.isfinite(top), top, 0.0)
    e = np.exp(x - top)
    total = np.sum(e, axis=axis, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, e / np.where(total > 0, total, 1.0), empty)


def evaluate(call: Call, precision: str | None = None) -> F64:
    """``(..., Hq, L, Dv)``: the call's output in float64, or modelled in low precision.

    Args:
        call: the call and its mistake switches.
        precision: None for exact float64; else a dtype name (``"float16"``,
            ``"bfloat16"``, ``"float32"``, ``"float64"``) whose naive run is modelled: the
            dot products carry an error of half a unit of ``scale * |q| . |k|`` with a
            fixed pseudo-random sign, and the logits, the weights and the output are each
            rounded to the dtype.
    """
    rnd: Rounding = (lambda x: x) if precision is None else ROUNDING[precision]
    lg = logits(call)
    if precision is not None:
        mag = (np.abs(call.query) @ np.swapaxes(np.abs(_repeat_kv(call, call.key)), -1, -2)) * abs(
            effective_scale(call)
        )
        sign = np.random.default_rng(0).choice(np.array([-1.0, 1.0]), size=mag.shape)
        with np.errstate(invalid="ignore"):
            lg = lg + 0.5 * EPS[precision] * mag * sign
    v = _repeat_kv(call, call.value)
    with np.errstate(over="ignore", invalid="ignore"):
        empty = np.nan if call.empty_softmax_nan else 0.0
        weights = _softmax(rnd(lg), call.softmax_axis, empty)
    if call.mask_after_softmax:
        weights = weights * allowed(call)
    weights = rnd(weights)
    out: F64 = rnd(weights @ v)  # (..., Hq, L, Dv)
    dead = ~np.isfinite(lg).any(axis=-1, keepdims=True)  # (..., Hq, L, 1)
    if call.softmax_axis == -1 and not call.mask_after_softmax and dead.any():
        policy = call.options.get("fully_masked", "zero")
        fill = {"zero": np.zeros_like(out), "nan": np.full_like(out, np.nan)}.get(policy)
        if fill is None and v.shape[-2] == 0:  # "uniform" over S = 0 keys: undefined
            fill = np.full_like(out, np.nan)
        if fill is None:  # "uniform": mean of value over all S keys
            fill = np.broadcast_to(rnd(v.mean(axis=-2, keepdims=True)), out.shape)
        out = np.where(dead, fill, out)
    if call.merge_without_transpose and out.ndim == 4:
        b, h, length, dv = out.shape
        out = np.ascontiguousarray(out).reshape(b, length, h, dv).transpose(0, 2, 1, 3)
    return out


def fully_masked_rows(call: Call) -> npt.NDArray[np.bool_]:
    """``(..., Hq, L)``: rows where the call removes every key."""
    return np.asarray(~np.isfinite(logits(call)).any(axis=-1))
