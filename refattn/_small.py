"""Calls that fit in one block: the kernel's arithmetic, without its tiling and threads.

When every batch entry of a call is a single block of :mod:`refattn._kernel` (all heads,
all query rows, keys up to what the rows can see) and the call runs serially (too little
work for threads) and without key chunks, the kernel's work is a loop over batch entries
of the same few NumPy operations on arrays of the same shapes. :func:`run` does each of
those operations once, over the stacked batch: the same BLAS calls on the same matrices,
the same element-wise steps, so the result is the kernel's, bit for bit
(``tests/test_small_calls.py`` compares them over many options). It saves the per-block
bookkeeping (tasks, their key ranges, one loop turn per batch entry), which is most of a
tiny call's time.

It takes only calls whose masking needs nothing per batch entry: ``causal``, ``window``,
``attend_mask``, ``softcap`` and ``scale``; finite inputs (:class:`Prepared` without
poison); no bias, ALiBi, sinks, dropout, lengths, segments or returned weights. Anything
else, and any rare branch of the kernel (rows that may attend nothing, unshifted sums near
underflow, batch entries that would take different branches), is left to the kernel:
:func:`run` then returns None, having changed nothing.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from refattn import _kernel
from refattn._numerics import Prepared
from refattn.validation import Plan

FloatArray = npt.NDArray[np.floating]

_INFO = {np.dtype(t): np.finfo(t) for t in (np.float32, np.float64)}
_TINY = {dtype: float(info.tiny) for dtype, info in _INFO.items()}
_FOLD_LIMIT = {dtype: float(info.max) / 16 for dtype, info in _INFO.items()}  # the kernel's
_HEADROOM = {dtype: float(info.max) * 1e-6 for dtype, info in _INFO.items()}  # the kernel's
_EXP_BOUND = math.exp(_kernel._UNSHIFTED_BOUND)


def _one_block(prepared: Prepared, plan: Plan) -> bool:
    """Whether the kernel would run ``plan`` (prepared's) as one serial block per entry."""
    if (
        prepared.poison is not None
        or plan.bias is not None
        or plan.alibi_slopes is not None
        or plan.sinks is not None
        or plan.segments is not None
        or plan.dropout_keep is not None
        or plan.key_lengths is not None
        or plan.query_lengths is not None
        or not (plan.attend_mask is None or isinstance(plan.attend_mask, np.ndarray))
    ):
        return False
    n_batch, hkv, groups, length_q, _ = plan.query.shape
    length_k, itemsize = plan.key.shape[2], plan.key.itemsize
    scores = n_batch * hkv * groups * length_q * length_k
    return bool(
        length_q <= _kernel._MIN_ROWS  # every row block holds at least _MIN_ROWS rows
        and hkv * groups * length_q * max(length_k, 1) * itemsize <= _kernel._BLOCK_BYTES
        and scores < _kernel._PARALLEL_MIN_WORK  # serial: no cutting for threads
    )  # keys: a block this small is narrower than the kernel's cache-sized key chunks


def _scaled(prepared: Prepared) -> tuple[FloatArray, FloatArray, bool]:
    """:func:`refattn._kernel.scaled_inputs`, and whether the key is the plan's own.

    The kernel folds the whole scale into the query when ``|scale| * max |query|`` is far
    from overflow; the largest query norm bounds ``max |query|`` (to a rounding, hence the
    margin), so only calls near the limit read the query's extremes as the kernel does.
    """
    plan = prepared.plan
    query, key, scale = plan.query, plan.key, plan.scale
    dtype = query.dtype
    root = math.sqrt(abs(scale))
    if root == 1.0:
        return (query if scale > 0 else np.negative(query)), key, True
    _, _, groups, length_q, dim = query.shape
    if groups * length_q < dim and query.size:
        limit = _FOLD_LIMIT[dtype]
        if _TINY[dtype] <= abs(scale):
            largest = prepared.query_norm_max * (1 + 2**-20)
            if not abs(scale) * largest <= limit:
                largest = max(float(query.max()), -float(query.min()))
            if abs(scale) * largest <= limit:
                return np.multiply(query, dtype.type(scale)), key, True
    factor = dtype.type(root)
    scaled_q: FloatArray = np.multiply(query, factor if scale > 0 else -factor)
    scaled_k: FloatArray = np.multiply(key, factor)
    return scaled_q, scaled_k, False


def _unshifted(prepared: Prepared, key_is_plain: bool) -> bool | None:
    """:func:`refattn._kernel._unshifted_rows` for whole batch entries.

    True when every row may skip the max shift, False when none may, None when batch
    entries differ (the kernel then treats them differently: not a case for this path).
    """
    plan = prepared.plan
    length_k = plan.key.shape[2]
    if length_k == 0:
        return False
    headroom = _HEADROOM[plan.query.dtype] / max(length_k, 1)
    bound_limit = _kernel._UNSHIFTED_BOUND
    root = math.sqrt(abs(plan.scale))
    factor = abs(plan.scale) * 1.0 if key_is_plain else root * root  # the kernel's factors
    small_cap = plan.softcap is not None and plan.softcap <= bound_limit
    # the largest bound and value over the call: all rows pass when these do (monotone)
    top = 0.0 if small_cap else prepared.query_norm_max * (prepared.key_norm_max * factor)
    if top <= bound_limit and prepared.value_abs_max * _EXP_BOUND <= headroom:
        return True
    with np.errstate(invalid="ignore", over="ignore"):
        if small_cap:
            bound = np.zeros(plan.query.shape[:2])
        else:
            rows = prepared.query_norm.max(axis=(2, 3))  # (N, Hkv)
            bound = rows * (prepared.key_norm * factor)
        ok = (bound <= bound_limit) & (prepared.value_max * _EXP_BOUND <= headroom)
    per_entry = ok.all(axis=1)
    if per_entry.all():
        return True
    return False if not per_entry.any() else None


def _ones(width: int, dtype: np.dtype[np.floating]) -> FloatArray:
    """A read-only ``(width, 1)`` column of ones: the row sums as a matrix-vector product."""
    key = (width, dtype)
    ones = _ONES.get(key)
    if ones is None:
        ones = np.ones((width, 1), dtype)
        ones.flags.writeable = False
        if width <= 4096:
            _ONES[key] = ones
    return ones


_ONES: dict[tuple[int, np.dtype[np.floating]], FloatArray] = {}


def run(prepared: Prepared, need_lse: bool) -> tuple[FloatArray, FloatArray | None] | None:
    """Attention for a call that fits in one block per batch entry, or None.

    Args:
        prepared: what :func:`refattn._numerics.prepare` returned for the call.
        need_lse: also return the log-sum-exp.

    Returns:
        ``out (N, Hkv, G * L, Dv)`` and ``lse (N, Hkv, G * L, 1)`` (None unless asked for)
        in the prepared plan's dtype, exactly what :func:`refattn._kernel.run` returns (in
        its shapes once reshaped); or None when the call is not one this path takes (see
        the module docstring).
    """
    plan = prepared.plan
    if not _one_block(prepared, plan):
        return None
    n_batch, hkv, groups, length_q, dim = plan.query.shape
    length_k = plan.key.shape[2]
    query, key, key_is_plain = _scaled(prepared)
    unshifted = _unshifted(prepared, key_is_plain)
    if unshifted is None:
        return None
    structural = plan.causal_offset is not None or plan.window is not None
    lo, hi = 0, length_k
    if structural:  # the same for every entry: no key lengths, no segments
        lo, hi = _kernel._key_range(plan, 0, 0, length_q, length_k)
    width = hi - lo
    value = plan.value
    if width != length_k:
        key, value = key[:, :, lo:hi], value[:, :, lo:hi]

    # _kernel.logits, every batch entry at once. With one (batch entry, kv head) the
    # products are 2-D, through np.dot: np.matmul's result bit for bit (tested), at a
    # third of its per-call overhead
    single = n_batch * hkv == 1
    lead = () if single else (n_batch, hkv)
    q = query.reshape(*lead, groups * length_q, dim)
    k_t = key.reshape(*lead, width, dim).swapaxes(-1, -2)
    v = value.reshape(*lead, width, value.shape[3])
    flat: FloatArray = np.dot(q, k_t) if single else np.matmul(q, k_t)  # einsums.SCORES
    band = _kernel._structural_band(plan, 0, 0, length_q, lo, hi) if structural else None
    if plan.softcap is not None or band is not None or plan.attend_mask is not None:
        s = flat.reshape(n_batch, hkv, groups, length_q, width)
        if plan.softcap is not None:
            cap = s.dtype.type(plan.softcap)
            with np.errstate(over="ignore"):  # past the range, tanh(±inf) = ±1 is exact
                s /= cap
            np.tanh(s, out=s)
            s *= cap
        if band is not None:
            c0, removed = band
            np.copyto(s[..., c0 - lo : c0 - lo + removed.shape[1]], -np.inf, where=removed)
        if plan.attend_mask is not None:
            np.copyto(s, -np.inf, where=~plan.attend_mask[..., lo:hi])

    # _kernel._block
    shift = None
    if not unshifted and width:
        shift = np.max(flat, axis=-1, keepdims=True)
        shift[np.isneginf(shift)] = 0
        flat -= shift
    _kernel._exp(flat, unshifted)
    ones = _ones(width, flat.dtype)
    total: FloatArray = np.dot(flat, ones) if single else np.matmul(flat, ones)  # (..., 1)
    out: FloatArray = np.dot(flat, v) if single else np.matmul(flat, v)  # einsums.MIX
    if unshifted and out.size:  # _kernel._underflowed: its rare cases go to the kernel
        limit = 16 * max(width, 1) * _TINY[out.dtype]
        if not float(np.abs(out).min()) >= limit:  # NaN too: the kernel decides
            return None

    # _kernel._finish
    if np.count_nonzero(total) < total.size:  # a row that may attend nothing
        return None
    out /= total
    lse = None
    if need_lse:
        lse = np.log(total)
        if shift is not None:
            lse += shift
    return out, lse
