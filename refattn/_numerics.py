"""What the kernel does with extreme and non-finite inputs, decided once per call.

Two rules, applied to the validated :class:`~refattn.validation.Plan` before any block
runs, so that every path (dense, key-chunked, causal block-skipping, backward) sees the
same inputs:

- **No overflow from finite input.** The kernel computes logits, their differences and
  the value sums in the compute dtype. When a bound on the logits (from ``|query|``,
  ``|key|``, ``scale``, ``softcap``, ``bias``, ALiBi and the ``sinks``), on
  ``sqrt(|scale|)`` times the query and key, or on the value sums shows that any of
  these could overflow in float32 (or ``softcap`` would round to 0), the call is
  computed in float64: the result is then float64 math's (what torch gives when nothing
  overflows), rounded to the output dtype.
  A float64 call past the float64 range raises :class:`~refattn.errors.AttentionValueError`.
  float32 calls whose logits may exceed ``1e3`` in magnitude compute them in float64 too:
  float32 logits that large are off by ``~1e3 * eps``, which would set the output's error.
- **Masked means absent.** Non-finite entries of ``query``, ``key`` and ``value`` are
  replaced by 0 for the arithmetic and recorded in a :class:`Poison`; the kernel then puts
  NaN exactly where an allowed (query, key) pair reads one (see :func:`refattn.attention`).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from refattn._layout import BatchIndexed
from refattn.errors import AttentionValueError
from refattn.validation import Plan

LOG2E = 1.4426950408889634
_HEADROOM = 1.0 / 16  # logits stay below finfo.max / 16: differences cannot overflow
# Past this bound on |scale * q . k| float32 logits are wrong by more than ~eps * 1e3: the
# output's error is then set by how the matmul happened to round, about torch's but
# uncorrelated with it. Such rare calls compute their logits in float64 instead.
_ACCURATE_BOUND = 1e3

BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class Poison:
    """Where the inputs held NaN or ±inf; each None when that input was finite.

    Shapes: ``rows (N, Hkv, G, L)`` query rows, ``keys (N, Hkv, S)`` key rows, ``values
    (N, Hkv, S, Dv)`` value entries.
    """

    rows: BoolArray | None
    keys: BoolArray | None
    values: BoolArray | None


def _largest(a: npt.NDArray[np.floating]) -> float:
    """``a.max()`` as a Python float (0 for an empty array); NaN if any entry is NaN."""
    return float(a.max()) if a.size else 0.0


def _max_abs(a: npt.NDArray[np.floating]) -> float:
    """``max |a|`` as a Python float (0 for an empty array), without a temporary."""
    if not a.size:
        return 0.0
    return max(float(a.max()), -float(a.min()))


def compact(a: npt.NDArray[np.generic]) -> npt.NDArray[np.generic]:
    """The data behind a broadcast view: axes of stride 0 cut to length 1 (no copy)."""
    return a[tuple(slice(0, 1) if st == 0 else slice(None) for st in a.strides)]


def _clean(
    a: npt.NDArray[np.floating], bad_axes: tuple[int, ...]
) -> tuple[npt.NDArray[np.floating], BoolArray | None]:
    """``a`` with non-finite entries replaced by 0, and where they were (any over axes)."""
    finite = np.isfinite(a)
    if finite.all():
        return a, None
    cleaned = np.where(finite, a, 0).astype(a.dtype, copy=False)
    bad = ~finite
    return cleaned, (bad.any(axis=bad_axes) if bad_axes else bad)


def _key_norms(key: npt.NDArray[np.floating]) -> npt.NDArray[np.float64]:
    """``(N, Hkv)``: the largest ``|key_j|`` of each head; inf or NaN past the dtype."""
    if not key.shape[2] or not key.shape[3]:
        return np.zeros(key.shape[:2])
    squares = np.einsum("nhsd,nhsd->nhs", key, key).max(axis=-1)  # under prepare's errstate
    return _safe_sqrt(squares, key.shape[3])


def _query_norms(query: npt.NDArray[np.floating]) -> npt.NDArray[np.float64]:
    """``(N, Hkv, G, L)``: ``|query_i|`` of each row; inf or NaN past the dtype."""
    if not query.shape[4]:
        return np.zeros(query.shape[:4])
    squares = np.einsum("nhgld,nhgld->nhgl", query, query)  # under prepare's errstate
    return _safe_sqrt(squares, query.shape[4])


def _safe_sqrt(squares: npt.NDArray[np.floating], dim: int) -> npt.NDArray[np.float64]:
    """Norms from sums of ``dim`` squares, never below the true norm.

    A square below the dtype's ``tiny`` may have flushed towards 0; adding ``dim * tiny``
    before the root puts back at least what was lost.
    """
    lost = dim * float(np.finfo(squares.dtype).tiny)
    norms: npt.NDArray[np.float64] = np.sqrt(squares.astype(np.float64) + lost)
    return norms


def _value_max(value: npt.NDArray[np.floating]) -> npt.NDArray[np.float64]:
    """``(N, Hkv)``: the largest ``|value|`` entry of each head (NaN if any is NaN)."""
    if not value.shape[2] or not value.shape[3]:
        return np.zeros(value.shape[:2])
    top: npt.NDArray[np.float64] = np.maximum(
        value.max(axis=(2, 3)), -value.min(axis=(2, 3))
    ).astype(np.float64)
    return top


@dataclass(frozen=True)
class Prepared:
    """What :func:`prepare` found, for the kernel.

    Attributes:
        plan: finite inputs in a dtype that cannot overflow.
        poison: where the inputs were not finite, or None.
        query_norm: ``(N, Hkv, G, L)`` ``|query_i|`` (float64; inf if the squares overflow).
        key_norm: ``(N, Hkv)`` largest ``|key_j|`` (float64; inf if the squares overflow).
        value_max: ``(N, Hkv)`` largest ``|value|`` entry (float64).
    """

    plan: Plan
    poison: Poison | None
    query_norm: npt.NDArray[np.float64]
    key_norm: npt.NDArray[np.float64]
    value_max: npt.NDArray[np.float64]


def _logit_bound(plan: Plan, query_bound: float, key_bound: float) -> tuple[float, float, float]:
    """Bounds on ``|final logit|``, on the matmul and on the scaled query and key.

    Args:
        plan: the call.
        query_bound: at least the largest ``|query_i|`` (vector norm).
        key_bound: at least the largest ``|key_j|`` (vector norm), so any ``|key|`` entry.

    Returns:
        ``|final logit|``; ``|scale * query . key|`` (before a softcap bounds it);
        ``sqrt(|scale|)`` times ``|query|`` or ``|key|``. All in natural units.
    """
    dim = plan.query.shape[4]
    root = math.sqrt(abs(plan.scale))
    scaled = root * max(query_bound, key_bound)
    # |q . k| <= |q| |k|; a Python float product overflows to inf without a warning
    raw = (root * query_bound) * (root * key_bound) if dim else 0.0
    qk = raw if plan.softcap is None else min(raw, plan.softcap)
    bias = 0.0
    if plan.bias is not None:
        bias_view = plan.bias.array if isinstance(plan.bias, BatchIndexed) else plan.bias
        b: npt.NDArray[np.floating] = compact(bias_view)  # type: ignore[assignment]
        if b.size:  # -inf entries are masks; validation refused NaN and +inf
            top = float(b.max())
            bottom = float(np.min(b, where=~np.isneginf(b), initial=np.inf))
            bias = max(abs(top), abs(bottom)) if bottom != np.inf else 0.0
    alibi = 0.0
    if plan.alibi_slopes is not None and plan.alibi_slopes.size:
        span = max(plan.query.shape[3], plan.key.shape[2])
        alibi = _max_abs(plan.alibi_slopes.astype(np.float64)) * span
    logit = qk + bias + alibi
    if plan.sinks is not None and plan.sinks.size:  # a sink is one more logit of each row
        finite = plan.sinks[np.isfinite(plan.sinks)]
        logit = max(logit, _max_abs(finite.astype(np.float64)))
    return logit, raw, scaled


def _fits(
    plan: Plan,
    dtype: np.dtype[np.floating],
    magnitudes: tuple[float, float, float],
    bounds: tuple[float, float, float] | None = None,
) -> bool:
    """Whether every intermediate of ``plan`` provably stays finite in ``dtype``.

    ``magnitudes``: bounds on ``|query_i|`` and ``|key_j|``, max ``|value|`` entry;
    ``bounds``: :func:`_logit_bound` of them, when already computed.
    """
    info = np.finfo(dtype)
    limit = float(info.max) * _HEADROOM
    if bounds is None:
        bounds = _logit_bound(plan, magnitudes[0], magnitudes[1])
    logit, raw, scaled = bounds
    values = magnitudes[2] * max(plan.key.shape[2], 1) / (1.0 - plan.dropout_p)
    root = math.sqrt(abs(plan.scale))
    checks = [
        logit * LOG2E <= limit,
        raw <= limit,  # the matmul itself, before a softcap bounds it
        scaled <= limit,
        values <= limit,
        root == 0 or root >= float(info.tiny),  # sqrt(scale) must not be subnormal
    ]
    if plan.softcap is not None:  # nor may softcap round to 0 (0 / 0 in tanh's argument)
        checks.append(plan.softcap <= limit and float(dtype.type(plan.softcap)) > 0)
    return all(checks)


def prepare(plan: Plan) -> Prepared:
    """The plan the kernel runs (finite inputs, a dtype that cannot overflow), and more.

    For finite input this costs a few reductions, which NaN and inf reach: the query and
    key norms the kernel needs anyway, max and min of the value.

    Raises:
        AttentionValueError: float64 inputs whose logits could exceed the float64 range.
    """
    query, key, value = plan.query, plan.key, plan.value
    rows = keys = values = None
    # each check reads one reduction: a max is NaN or inf exactly when an entry is
    with np.errstate(over="ignore", invalid="ignore"):  # squares past the dtype: inf or NaN
        query_norm = _query_norms(query)
        query_bound = _largest(query_norm)
        if not math.isfinite(query_bound):
            query, rows = _clean(query, (4,))
            query_norm = _query_norms(query)
            query_bound = _largest(query_norm)
        key_norm = _key_norms(key)
        key_bound = _largest(key_norm)
        if not math.isfinite(key_bound):
            key, keys = _clean(key, (3,))
            key_norm = _key_norms(key)
            key_bound = _largest(key_norm)
    value_max = _value_max(value)
    max_v = _largest(value_max)
    if not math.isfinite(max_v):
        value, values = _clean(value, ())
        value_max = _value_max(value)
        max_v = _largest(value_max)
    if not math.isfinite(key_bound):  # the squares overflowed: bound from the entries
        key_bound = _max_abs(key) * math.sqrt(key.shape[3])
    if not math.isfinite(query_bound):
        query_bound = _max_abs(query) * math.sqrt(query.shape[4])
    magnitudes = (query_bound, key_bound, max_v)
    poison = None
    if rows is not None or keys is not None or values is not None:
        poison = Poison(rows, keys, values)
        plan = dataclasses.replace(plan, query=query, key=key, value=value)
    dtype = plan.query.dtype
    bounds = _logit_bound(plan, query_bound, key_bound)
    if _fits(plan, dtype, magnitudes, bounds) and (
        dtype == np.float64 or bounds[1] <= _ACCURATE_BOUND
    ):
        return Prepared(plan, poison, query_norm, key_norm, value_max)
    wide = np.dtype(np.float64)
    if plan.query.dtype != wide:
        plan = dataclasses.replace(
            plan,
            query=plan.query.astype(wide),
            key=plan.key.astype(wide),
            value=plan.value.astype(wide),
            alibi_slopes=None if plan.alibi_slopes is None else plan.alibi_slopes.astype(wide),
            sinks=None if plan.sinks is None else plan.sinks.astype(wide),
        )
        if _fits(plan, wide, magnitudes):
            return Prepared(plan, poison, query_norm, key_norm, value_max)
    logit, raw, _ = _logit_bound(plan, query_bound, key_bound)
    raise AttentionValueError(
        f"the logits of this call may reach {max(logit, raw):.3g} in magnitude (bound from "
        f"|query|, |key|, scale={plan.scale:.3g}, softcap, bias and ALiBi), or the values sum to "
        f"{max_v * max(plan.key.shape[2], 1):.3g}: beyond what float64 "
        f"holds with headroom ({float(np.finfo(wide).max) * _HEADROOM / LOG2E:.3g}), so "
        f"the softmax would overflow. Rescale the inputs (softmax is invariant to adding "
        f"a constant to a row's logits, not to scaling them) or lower scale."
    )
