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
import functools
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
_MAXIMUM, _MINIMUM = np.maximum.reduce, np.minimum.reduce  # a.max() without its wrapper
_FEW = 64  # arrays this small are reduced in Python: a NumPy reduction costs ~1 µs


@dataclass(frozen=True)
class Poison:
    """Where the inputs held NaN or ±inf; each None when that input was finite.

    Shapes: ``rows (N, Hkv, G, L)`` query rows, ``keys (N, Hkv, S)`` key rows, ``values
    (N, Hkv, S, Dv)`` value entries.
    """

    rows: BoolArray | None
    keys: BoolArray | None
    values: BoolArray | None


def _max_abs(a: npt.NDArray[np.floating]) -> float:
    """``max |a|`` as a Python float (0 for an empty array); NaN if an entry is NaN.

    Small arrays through ``|a|`` (one reduction after a cheap temporary), large ones
    through max and min (two reductions, no temporary the size of ``a``).
    """
    if not a.size:
        return 0.0
    if a.size <= 4096:
        return float(_MAXIMUM(np.abs(a), axis=None))
    return max(float(_MAXIMUM(a, axis=None)), -float(_MINIMUM(a, axis=None)))


def _top(a: npt.NDArray[np.floating]) -> float:
    """``a.max()`` of a non-empty array as a Python float: NaN if an entry is NaN.

    A few entries are read as Python floats (exact), cheaper than a NumPy reduction.
    """
    if a.size <= _FEW:
        entries = a.ravel().tolist()
        if math.isfinite(sum(entries)):
            return float(max(entries))
    return float(_MAXIMUM(a, axis=None))


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


def _key_squares(key: npt.NDArray[np.floating]) -> npt.NDArray[np.floating] | None:
    """``(N, Hkv, S)``: ``|key_j|**2`` in the key's dtype, or None without keys or features.

    Called under :func:`_squares`' errstate: squares past the dtype are inf or NaN.
    """
    if not key.shape[2] or not key.shape[3]:
        return None
    squares: npt.NDArray[np.floating] = np.vecdot(key, key)
    return squares


def _query_squares(query: npt.NDArray[np.floating]) -> npt.NDArray[np.floating] | None:
    """``(N, Hkv, G, L)``: ``|query_i|**2`` in the query's dtype, or None without features."""
    if not query.shape[4]:
        return None
    squares: npt.NDArray[np.floating] = np.vecdot(query, query)
    return squares


@np.errstate(over="ignore", invalid="ignore")
def _squares(
    query: npt.NDArray[np.floating] | None, key: npt.NDArray[np.floating] | None
) -> tuple[npt.NDArray[np.floating] | None, npt.NDArray[np.floating] | None]:
    """:func:`_query_squares` and :func:`_key_squares` (None for an input not given).

    Squares past the dtype are inf, silently. ``np.errstate`` as a decorator costs half
    what the with-statement does, and is as thread-safe (its state is per context).
    """
    return (
        None if query is None else _query_squares(query),
        None if key is None else _key_squares(key),
    )


def _tiny(dtype: np.dtype[np.floating]) -> float:
    return _TINY[dtype] if dtype in _TINY else float(np.finfo(dtype).tiny)


def _largest_norm(squares: npt.NDArray[np.floating] | None, dim: int) -> float:
    """The largest norm :func:`_safe_sqrt` gives for ``squares``: one reduction, then math.

    ``float`` and ``math.sqrt`` round as NumPy's float64 cast and ``np.sqrt`` do, and both
    steps are monotone, so this is exactly ``_safe_sqrt(squares, dim).max()``; NaN or inf
    when an entry is.
    """
    if squares is None or not squares.size:
        return 0.0
    top = _top(squares)
    if math.isnan(top):
        return top
    return math.sqrt(top + dim * _tiny(squares.dtype))


def _safe_sqrt(squares: npt.NDArray[np.floating], dim: int) -> npt.NDArray[np.float64]:
    """Norms from sums of ``dim`` squares, never below the true norm.

    A square below the dtype's ``tiny`` may have flushed towards 0; adding ``dim * tiny``
    before the root puts back at least what was lost.
    """
    lost = dim * _tiny(squares.dtype)
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


_TINY = {np.dtype(t): float(np.finfo(t).tiny) for t in (np.float16, np.float32, np.float64)}
_MAX = {np.dtype(t): float(np.finfo(t).max) for t in (np.float16, np.float32, np.float64)}


def _dtype_max(dtype: np.dtype[np.floating]) -> float:
    return _MAX[dtype] if dtype in _MAX else float(np.finfo(dtype).max)


_LIMITS = {dtype: (_MAX[dtype] * _HEADROOM, _TINY[dtype]) for dtype in _MAX}  # for _fits


@dataclass(eq=False)  # not frozen: see Plan
class Prepared:
    """What :func:`prepare` found, for the kernel.

    The per-row and per-head norms are computed when first read: a call that fits in one
    block (:mod:`refattn._small`) needs only their maxima, which :func:`prepare` reads from
    one reduction each.

    Attributes:
        plan: finite inputs in a dtype that cannot overflow.
        poison: where the inputs were not finite, or None.
        query_norm_max: the largest of :attr:`query_norm` (float64; inf or NaN as it is).
        key_norm_max: the largest of :attr:`key_norm`.
        value_abs_max: the largest of :attr:`value_max`.
    """

    plan: Plan
    poison: Poison | None
    query_norm_max: float
    key_norm_max: float
    value_abs_max: float
    # the squares the norms are computed from; None when the input has no entries
    query_squares: npt.NDArray[np.floating] | None = dataclasses.field(repr=False, default=None)
    key_squares: npt.NDArray[np.floating] | None = dataclasses.field(repr=False, default=None)

    @functools.cached_property
    def query_norm(self) -> npt.NDArray[np.float64]:
        """``(N, Hkv, G, L)`` ``|query_i|`` (float64; inf if the squares overflow)."""
        query = self.plan.query
        if self.query_squares is None:
            return np.zeros(query.shape[:4])
        return _safe_sqrt(self.query_squares, query.shape[4])

    @functools.cached_property
    def key_norm(self) -> npt.NDArray[np.float64]:
        """``(N, Hkv)`` largest ``|key_j|`` (float64; inf if the squares overflow)."""
        key = self.plan.key
        if self.key_squares is None:
            return np.zeros(key.shape[:2])
        with np.errstate(invalid="ignore"):  # NaN squares stay NaN
            return _safe_sqrt(self.key_squares.max(axis=-1), key.shape[3])

    @functools.cached_property
    def value_max(self) -> npt.NDArray[np.float64]:
        """``(N, Hkv)`` largest ``|value|`` entry (float64)."""
        return _value_max(self.plan.value)


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
    limit, tiny = (
        _LIMITS[dtype] if dtype in _LIMITS else (_dtype_max(dtype) * _HEADROOM, _tiny(dtype))
    )
    if bounds is None:
        bounds = _logit_bound(plan, magnitudes[0], magnitudes[1])
    logit, raw, scaled = bounds
    values = magnitudes[2] * max(plan.key.shape[2], 1) / (1.0 - plan.dropout_p)
    root = math.sqrt(abs(plan.scale))
    return (
        logit * LOG2E <= limit
        and raw <= limit  # the matmul itself, before a softcap bounds it
        and scaled <= limit
        and values <= limit
        and (root == 0 or root >= tiny)  # sqrt(scale) must not be subnormal
        # nor may softcap round to 0 (0 / 0 in tanh's argument)
        and (
            plan.softcap is None or (plan.softcap <= limit and float(dtype.type(plan.softcap)) > 0)
        )
    )


def prepare(plan: Plan) -> Prepared:
    """The plan the kernel runs (finite inputs, a dtype that cannot overflow), and more.

    For finite input this costs a few reductions, which NaN and inf reach: the squared
    query and key norms (the kernel needs the norms anyway), max and min of the value.

    Raises:
        AttentionValueError: float64 inputs whose logits could exceed the float64 range.
    """
    query, key, value = plan.query, plan.key, plan.value
    dim = query.shape[4]
    rows = keys = values = None
    # each check reads one reduction: a max is NaN or inf exactly when an entry is
    query_squares, key_squares = _squares(query, key)
    query_bound = _largest_norm(query_squares, dim)
    key_bound = _largest_norm(key_squares, dim)
    max_v = _max_abs(value)
    if not math.isfinite(query_bound):
        query, rows = _clean(query, (4,))
        query_squares = _squares(query, None)[0]
        query_bound = _largest_norm(query_squares, dim)
    if not math.isfinite(key_bound):
        key, keys = _clean(key, (3,))
        key_squares = _squares(None, key)[1]
        key_bound = _largest_norm(key_squares, dim)
    if not math.isfinite(max_v):
        value, values = _clean(value, ())
        max_v = _max_abs(value)
    norm_bounds = (query_bound, key_bound)  # the largest norms, as the squares give them
    if not math.isfinite(key_bound):  # the squares overflowed: bound from the entries
        key_bound = _max_abs(key) * math.sqrt(key.shape[3])
    if not math.isfinite(query_bound):
        query_bound = _max_abs(query) * math.sqrt(dim)
    magnitudes = (query_bound, key_bound, max_v)
    poison = None
    if rows is not None or keys is not None or values is not None:
        poison = Poison(rows, keys, values)
        plan = dataclasses.replace(plan, query=query, key=key, value=value)

    dtype = plan.query.dtype
    bounds = _logit_bound(plan, query_bound, key_bound)
    if _fits(plan, dtype, magnitudes, bounds) and (
        dtype.itemsize == 8 or bounds[1] <= _ACCURATE_BOUND  # float64, or logits that small
    ):
        return Prepared(plan, poison, *norm_bounds, max_v, query_squares, key_squares)
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
            return Prepared(plan, poison, *norm_bounds, max_v, query_squares, key_squares)
    logit, raw, _ = _logit_bound(plan, query_bound, key_bound)
    raise AttentionValueError(
        f"the logits of this call may reach {max(logit, raw):.3g} in magnitude (bound from "
        f"|query|, |key|, scale={plan.scale:.3g}, softcap, bias and ALiBi), or the values sum to "
        f"{max_v * max(plan.key.shape[2], 1):.3g}: beyond what float64 "
        f"holds with headroom ({float(np.finfo(wide).max) * _HEADROOM / LOG2E:.3g}), so "
        f"the softmax would overflow. Rescale the inputs (softmax is invariant to adding "
        f"a constant to a row's logits, not to scaling them) or lower scale."
    )
