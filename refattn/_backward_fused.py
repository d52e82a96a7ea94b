"""The backward in one pass per block of query rows, without running the forward.

When every key a block of query rows can see fits in one ``(rows, width)`` buffer of at
most 8 MiB (64 rows by 32768 float32 keys), the backward needs neither the forward's
output nor its log-sum-exp: the block's logits are recomputed once, whole, and with
``e = exp(s - max)`` and ``t = rowsum(e)`` (the sink's ``exp(z - max)`` included, so
``P = e / t``)::

    dO'   = dO / t                            (a row scale, O(rows * Dv) work)
    dP'   = (dO' V^T) * M                     = dP / t
    delta = rowsum(e * dP')                   = rowsum(P * dP) = rowsum(dO * O)
    dX    = e * (dP' - delta / t)             = P * (dP - delta)
    dV    = (e * M)^T dO'                     = (P * M)^T dO

(``M`` the scaled dropout keep-mask, as in :mod:`refattn._backward`). No pass over the
block normalises ``P``: the ``1 / t`` rides on ``dO``'s rows. That is five matmuls per
block (logits, dP, dV, dQ, dK) where the forward followed by the chunked backward runs
seven. When no bias gradient is asked and ``1e-3 <= |scale| <= 1``, ``dO'`` is also
multiplied by ``scale`` for dP (so ``dX`` comes out times ``scale``, what dQ and dK
need), again O(rows) work instead of O(rows * width).

Each block is held transposed, ``(width, rows)``: with ``D = 64`` OpenBLAS computes the
logits and dP about a third faster into that shape than into ``(rows, width)``, and dV and
dK then read it as it lies. Without masks, bias, ALiBi or softcap the block applies the
causal, window and length band itself; with them it takes the kernel's logits as they lie,
``(rows, width)``, through a transposed view (a copy would cost more than it saves). A
row whose logits are provably small shifts by their bound, not their maximum
(:class:`_Bounds`), inside the logits' matmul.

dQ goes straight into its rows. dK and dV rows are assigned by the first block that
reaches them and added to by later ones, in the order the tasks are listed whatever
order the threads end them in (:mod:`refattn._ordered`: repeated calls agree bit for
bit); a head block only one task reaches gets them straight from its matmuls. Scratch
stays with each thread between calls (up to ``_KEEP_BYTES``), and a call small enough to
run serially takes its batch entries as heads of one block (:func:`batch_as_heads`).

A row whose upstream gradient holds NaN or inf gets NaN gradients for its query and for
every key, value and bias entry it may attend (:mod:`refattn._backward`'s rule): its
``dO`` is taken as 0, so it adds nothing, and the NaN are put back at the end. Calls with
a non-finite input, ``fully_masked="raise"``, and blocks wider than that budget go
through :func:`refattn._backward.run_backward`'s forward + chunked backward.
"""

from __future__ import annotations

import dataclasses
import math
import threading
from typing import Any

import numpy as np
import numpy.typing as npt

from refattn import _kernel, _ordered
from refattn._layout import BatchIndexed, DrawnKeep
from refattn._numerics import Prepared
from refattn.validation import Plan

FloatArray = npt.NDArray[np.floating]
_BOUND_MIN_SCORES = 1 << 16  # below this many scores, _Bounds' setup costs more than it saves
_BUFFERS = 8  # a block may be this many of the kernel's blocks (8 MiB: 64 rows by 32768 keys)
_WIDE_ROWS = 128  # rows per kernel block at or below which the backward cuts for half the keys
# Each thread keeps up to this many bytes of scratch between calls: a fresh page costs a
# fault on first touch (several µs each on these VMs; a loop calling the backward alone at
# (4, 8, 256, 64) faulted ~3300 pages per call, ~1500 now). Past it (long rows, large
# blocks) scratch is allocated per call, as before.
_KEEP_BYTES = 4 << 20
_FRESH_BYTES = 1 << 15  # below this, scratch is simply allocated
_SCRATCH = threading.local()
_NORMAL_EXPONENT = -64.0  # a removed pair's stand-in while exp2 runs: 2**-64 is a normal float32
# a block's causal / window / length band: its part of the logits and the removed pairs in it
_Band = tuple[FloatArray, npt.NDArray[np.bool_]]
# scratch slots: the block, dP, the bound's keys and queries, dO / t, its scaled copy, dV, dK
_BLOCK, _SECOND, _KEYS, _QUERIES, _D_VALUE, _D_SCALED, _D_V, _D_K = range(8)


def _slots(store: threading.local) -> dict[int, FloatArray]:
    """The arrays ``store`` holds for this thread, by slot."""
    kept: dict[int, FloatArray] | None = getattr(store, "arrays", None)
    if kept is None:
        kept = {}
        store.arrays = kept
    return kept


def _scratch(
    slot: int, size: int, dtype: np.dtype[np.floating], call: threading.local
) -> FloatArray:
    """``size`` elements of this thread's array ``slot``, contents undefined.

    Each slot is one array its caller uses at a time, and a thread runs one task at a time.
    While the thread's kept arrays total at most ``_KEEP_BYTES`` the array is kept between
    calls; otherwise only for the call (``call``, a ``threading.local`` of the call).
    """
    if size * dtype.itemsize <= _FRESH_BYTES:
        return np.empty(size, dtype)  # small: malloc's own pool, cheaper than a lookup
    kept, local = _slots(_SCRATCH), _slots(call)
    for arrays in (kept, local):
        array = arrays.get(slot)
        if array is not None and array.dtype == dtype and array.size >= size:
            return array[:size]
    array = np.empty(size, dtype)
    held = sum(a.nbytes for s, a in kept.items() if s != slot)
    (kept if held + array.nbytes <= _KEEP_BYTES else local)[slot] = array
    return array


class _Bounds:
    """Shifts each row by a bound on its logits, inside the logits' matmul, when it is safe.

    By Cauchy-Schwarz ``|logit| <= b = |scale| |q_i| max_j |k_j|``. Shifting a row by ``b``
    instead of its maximum keeps every ``e = exp(logit - b)`` at most 1 and at least
    ``exp(-2b)``, and the matmul computes ``log2(e) * (logit - b)`` itself through one more
    column, ``[k_j, 1] . [log2(e) scale q_i, -log2(e) b]``: no pass over the block finds the
    maximum, subtracts it or converts to base 2. Only rows with ``b <= 30`` take it (so
    every ``e`` of an allowed pair is a normal number), and only while ``1 / rowsum(e) <=
    exp(2b)`` times dO and V cannot overflow in dP; other tasks shift by the maximum.
    """

    _LIMIT = 30.0  # natural-log units

    def __init__(self, prepared: Prepared, d_out: float, call: threading.local) -> None:
        """``d_out``: the largest ``|dO|`` (of the finite upstream gradient), at least 1."""
        plan = self.plan = prepared.plan
        dtype = plan.query.dtype
        # prepare() has the squared norms (in the input dtype: inf past its range)
        query_sq, key_sq = prepared.query_squares, prepared.key_squares
        with np.errstate(over="ignore", invalid="ignore"):
            if query_sq is None:
                query_sq = np.einsum("nhgld,nhgld->nhgl", plan.query, plan.query)
            if key_sq is None:
                key_sq = np.einsum("nhsd,nhsd->nhs", plan.key, plan.key)
        self.query_norm = np.sqrt(query_sq.astype(np.float64))
        self.key_sq = key_sq.astype(np.float64, copy=False)
        big = float(np.finfo(dtype).max) / 16
        value = max(prepared.value_abs_max, 1.0)
        # |dP'| <= |dO| exp(2b) |V| Dv must stay below big
        room = big / (d_out * value * max(plan.value.shape[3], 1))
        self.limit = min(self._LIMIT, 0.5 * math.log(room)) if room > 1 else 0.0
        self.call = call

    def shifted_logits(
        self, task: _kernel.Task, q: FloatArray, key: FloatArray, flat: FloatArray
    ) -> bool:
        """Fill ``flat (h, width, rows)`` with ``log2(e) * (logit - b)``, if the task may."""
        n, h0, h1, r0, r1, lo, hi = task.n, task.h0, task.h1, task.r0, task.r1, task.lo, task.hi
        heads, rows, dim = q.shape
        key_norm = np.sqrt(self.key_sq[n, h0:h1, lo:hi].max(axis=1))  # (h,)
        bound = self.query_norm[n, h0:h1, :, r0:r1].reshape(heads, rows) * key_norm[:, None]
        bound *= abs(self.plan.scale)
        if not float(bound.max()) <= self.limit:  # NaN or inf from overflowed squares too
            return False
        width = hi - lo
        size = heads * width * (dim + 1)
        keys = _scratch(_KEYS, size, q.dtype, self.call).reshape(heads, width, dim + 1)
        keys[..., :dim] = key
        keys[..., dim] = 1
        size = heads * rows * (dim + 1)
        queries = _scratch(_QUERIES, size, q.dtype, self.call).reshape(heads, rows, dim + 1)
        np.multiply(q, q.dtype.type(self.plan.scale * _kernel.LOG2E), out=queries[..., :dim])
        queries[..., dim] = bound * -_kernel.LOG2E
        np.matmul(keys, queries.transpose(0, 2, 1), out=flat)  # einsums.SCORES, shifted
        return True


def batch_as_heads(prepared: Prepared) -> Prepared | None:
    """``prepared`` with its ``N`` batch entries as ``N * Hkv`` kv heads of one entry, or None.

    Only for calls small enough to run serially (the kernel's threads would not start),
    where nothing differs between batch entries but the arrays (no key or query lengths,
    segments or drawn dropout) and ``N > 1``: every head's arithmetic
    stays the same, bit for bit, but the batch takes one block instead of one per entry,
    which is most of a small call's time. None otherwise (the call is left as it is).
    """
    plan = prepared.plan
    n_batch, hkv = plan.query.shape[:2]
    if (
        n_batch < 2
        or math.prod(plan.query.shape[:4]) * plan.key.shape[2] >= _kernel._PARALLEL_MIN_WORK
        or plan.key_lengths is not None
        or plan.query_lengths is not None
        or plan.segments is not None
        or isinstance(plan.dropout_keep, DrawnKeep)
    ):
        return None

    def merged(array: Any) -> Any:  # an (N, Hkv, ...) array, a BatchIndexed one, or None
        if isinstance(array, BatchIndexed):  # (*batch, Hkv, ...): copied when it must be
            full, axes = array.array, len(array.batch) + 1
            return full.reshape(1, n_batch * hkv, *full.shape[axes:])
        return None if array is None else array.reshape(1, n_batch * hkv, *array.shape[2:])

    flat = dataclasses.replace(
        plan,
        batch_shape=(),
        query=merged(plan.query),
        key=merged(plan.key),
        value=merged(plan.value),
        attend_mask=merged(plan.attend_mask),
        bias=merged(plan.bias),
        alibi_slopes=merged(plan.alibi_slopes),
        dropout_keep=merged(plan.dropout_keep),
        sinks=merged(plan.sinks),
    )
    return dataclasses.replace(
        prepared,
        plan=flat,
        query_squares=merged(prepared.query_squares),
        key_squares=merged(prepared.key_squares),
    )


def cut_columns(plan: Plan) -> int | None:
    """Key columns to size the one-pass path's row blocks for (``make_tasks``' ``columns``).

    Rows of every key, without causal, window or segments, that give the kernel's cut at
    most 128 rows per 1 MiB block (float32: ``S`` from 2048) are cut for half the keys:
    twice the rows per block, so half the row blocks add into each dK and dV row. Measured
    single thread at (1, 16, 2048, 64) 0.93-0.97x and at (1, 4, 4096, 64) 0.90x the time;
    at ``S = 1024`` (256 rows already) it did not help. None: the kernel's own cut.
    """
    if plan.causal_offset is not None or plan.window is not None or plan.segments is not None:
        return None
    length_k: int = plan.key.shape[2]
    row_bytes = length_k * plan.query.shape[2] * plan.query.itemsize
    if row_bytes * _WIDE_ROWS < _kernel._BLOCK_BYTES:
        return None
    return max(length_k // 2, 1)


def fits(plan: Plan, tasks: list[_kernel.Task]) -> bool:
    """Whether the widest task's ``(rows, width)`` block fits the fused path's budget."""
    groups = plan.query.shape[2]
    widest = max(((t.h1 - t.h0) * groups * (t.r1 - t.r0) * (t.hi - t.lo) for t in tasks), default=0)
    return widest * plan.query.itemsize <= _BUFFERS * _kernel._BLOCK_BYTES


def run_backward(
    prepared: Prepared, grad_out: FloatArray, tasks: list[_kernel.Task], *, need_bias: bool
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray | None, FloatArray | None]:
    """Gradients of ``sum(attention(plan) * grad_out)`` for a prepared, finite ``plan``.

    Args:
        prepared: :func:`refattn._numerics.prepare` of the call, with no poison.
        grad_out: ``(N, Hkv, G, L, Dv)`` in the prepared plan's dtype.
        tasks: :func:`refattn._kernel.make_tasks` of the prepared plan, each within
            :func:`fits`.
        need_bias: also return the gradient of the final logits (= of the bias).

    Returns:
        query ``(N, Hkv, G, L, D)``, key ``(N, Hkv, S, D)``, value ``(N, Hkv, S, Dv)``,
        bias ``(N, Hkv, G, L, S)`` or None, sinks ``(N, Hkv, G)`` or None.
    """
    plan = prepared.plan
    dtype = plan.query.dtype
    groups = plan.query.shape[2]
    length_k, dim_v = plan.value.shape[2], plan.value.shape[3]
    rows_shape = plan.query.shape[:4]  # (N, Hkv, G, L)
    # logits as scale * (q . k) from the task's own query rows: no scaled copies of q and k
    q_only = 1e-3 <= abs(plan.scale) <= 1.0
    root = math.sqrt(abs(plan.scale))
    q_factor = dtype.type(plan.scale if q_only else math.copysign(root, plan.scale))
    k_factor = dtype.type(root)
    # dX comes out times scale when dO is scaled; the bias gradient needs dX itself
    fold = not need_bias and 1e-3 <= abs(plan.scale) <= 1.0
    scale = dtype.type(plan.scale)
    keep_scale = 1.0 / (1.0 - plan.dropout_p)
    ones = np.ones(length_k, dtype)
    grad_query = np.empty(plan.query.shape, dtype)  # every row block writes its rows
    # dK and dV rows are assigned by the first block that reaches them and added to by the
    # others (``filled``), and zeroed at the end where no block did: np.zeros then += would
    # touch every fresh page twice (a read fault maps the zero page, the write faults again)
    grad_key = np.empty(plan.key.shape, dtype)
    grad_value = np.empty(plan.value.shape, dtype)
    grad_bias = np.zeros((*rows_shape, length_k), dtype) if need_bias else None
    # the sink gradient's rowsum(dO * O) (times scale when fold) and sink share per row
    delta = np.zeros(rows_shape, dtype) if plan.sinks is not None else None
    p_sink = np.zeros(rows_shape, dtype) if plan.sinks is not None else None
    dead = np.zeros(rows_shape, bool) if plan.fully_masked == "uniform" else None
    upstream = grad_out  # as given, for the "uniform" rows that read every value
    poisoned = None  # (N, Hkv, G, L): rows whose upstream gradient is not finite
    top, bottom = (float(grad_out.max()), float(grad_out.min())) if grad_out.size else (0, 0)
    if not (math.isfinite(top) and math.isfinite(bottom)):
        poisoned = np.asarray(~np.isfinite(grad_out).all(axis=-1))  # NaN reaches max and min
    nan_keys = None if poisoned is None else np.zeros(plan.key.shape[:3], bool)
    if poisoned is not None:
        grad_out = np.where(poisoned[..., None], 0, grad_out)
        top, bottom = float(grad_out.max()), float(grad_out.min())
    lock = threading.Lock()
    reach: dict[tuple[int, int], int] = {}  # tasks per head block
    for t in tasks:
        reach[t.n, t.h0] = reach.get((t.n, t.h0), 0) + 1
    sole = {head for head, count in reach.items() if count == 1}
    # nothing to track when each kv head is in one task, which reaches every key (no task
    # at all, as with no query rows, leaves every key to be zeroed)
    whole = (
        len(sole) == len(reach)
        and sum(t.h1 - t.h0 for t in tasks) == math.prod(plan.key.shape[:2])
        and all(t.lo == 0 and t.hi == length_k for t in tasks)
    )
    filled = None if whole else np.zeros(plan.key.shape[:3], bool)  # (N, Hkv, S)
    call = threading.local()  # scratch past _KEEP_BYTES, kept for this call only

    # masks, bias, ALiBi or a softcap: the kernel's logits, transposed into place
    options = (plan.softcap, plan.bias, plan.alibi_slopes, plan.segments, plan.attend_mask)
    rich = any(option is not None for option in options)
    dim = plan.query.shape[4]
    bounds = None
    scores = math.prod(rows_shape) * length_k
    if not rich and plan.sinks is None and q_only and dim and scores >= _BOUND_MIN_SCORES:
        bounds = _Bounds(prepared, max(abs(top), abs(bottom), 1.0), call)

    def _logits(
        task: _kernel.Task, q: FloatArray, key: FloatArray, buffer: FloatArray
    ) -> tuple[FloatArray, FloatArray | None, bool, _Band | None]:
        """Logits of ``task`` in ``buffer``, as ``(h, width, rows)``; the softcap's tanh too.

        ``q (h, rows, D)`` and ``key (h, width, D)`` unscaled. The flag says the logits
        are ``log2(e) * (logit - bound)`` instead, ready for exp2. Last, the band this
        function set to -inf (:func:`_mask_band`), None when it set none.
        """
        heads, rows, width = q.shape[0], q.shape[1], key.shape[1]
        if rich:  # laid out (h, rows, width) by the kernel; the view is transposed
            scaled_q = q * q_factor
            scaled_k = key if q_only else key * k_factor
            by_rows, tanh = _kernel.logits(
                plan,
                (plan.query, plan.key),
                task,
                buffer,
                keep_tanh=True,
                operands=(scaled_q, scaled_k.transpose(0, 2, 1)),
            )
            tanh_t = None if tanh is None else tanh.reshape(by_rows.shape).transpose(0, 2, 1)
            return by_rows.transpose(0, 2, 1), tanh_t, False, None
        flat = buffer[: heads * rows * width].reshape(heads, width, rows)
        if bounds is not None and bounds.shifted_logits(task, q, key, flat):
            return flat, None, True, _mask_band(task, flat)
        scaled_k = key if q_only else key * k_factor
        np.matmul(scaled_k, (q * q_factor).transpose(0, 2, 1), out=flat)  # einsums.SCORES
        return flat, None, False, _mask_band(task, flat)

    def _mask_band(task: _kernel.Task, flat: FloatArray) -> _Band | None:
        """-inf where causal alignment, window or query lengths remove a pair of ``flat``.

        Returns the band's part of ``flat``, ``(h, columns, G, r1 - r0)``, and where in it
        pairs were removed, ``(columns, 1, r1 - r0)``; None when no pair was.
        """
        n, r0, r1, lo, hi = task.n, task.r0, task.r1, task.lo, task.hi
        band = _kernel._structural_band(plan, n, r0, r1, lo, hi)
        if band is None:
            return None
        c0, removed = band  # (r1 - r0, columns c0 ..)
        by_group = flat.reshape(flat.shape[0], hi - lo, -1, r1 - r0)
        part = by_group[:, c0 - lo : c0 - lo + removed.shape[1]]
        where = removed.T[:, None, :]
        np.copyto(part, -np.inf, where=where)
        return part, where

    def body(task: _kernel.Task, given: FloatArray) -> None:
        n, h0, h1, r0, r1, lo, hi = task.n, task.h0, task.h1, task.r0, task.r1, task.lo, task.hi
        heads, rows, width = h1 - h0, groups * (r1 - r0), hi - lo
        where = (n, slice(h0, h1), slice(None), slice(r0, r1))
        block4 = (heads, groups, r1 - r0)
        sink = _kernel.sink_rows(plan, task)  # (h, rows, 1)
        if width == 0:  # no key: the rows are dead, or hold only their sink
            grad_query[where] = 0
            empty = np.ones((heads, rows), bool) if sink is None else np.isneginf(sink[..., 0])
            if dead is not None:
                dead[where] = empty.reshape(block4)
            if p_sink is not None:
                p_sink[where] = np.where(empty, 0, 1).reshape(block4)
            return
        q = plan.query[where].reshape(heads, rows, -1)
        key = plan.key[n, h0:h1, lo:hi]
        size = heads * rows * width
        # this thread's kept scratch when small (see _KEEP_BYTES), else the kernel's buffer
        large = size * given.itemsize > _KEEP_BYTES
        buffer = given if large else _scratch(_BLOCK, size, dtype, call)
        # the block is (h, width, rows): held so when the logits are ours (BLAS runs these
        # shapes faster), a transposed view of the kernel's (h, rows, width) otherwise
        flat, tanh, ready, band = _logits(task, q, key, buffer)
        reads = None  # allowed pairs of poisoned rows, (h, width, rows)
        if poisoned is not None and nan_keys is not None:
            bad_rows = poisoned[where].reshape(heads, 1, rows)
            if bad_rows.any():
                reads = (flat > -np.inf) & bad_rows
                with lock:
                    nan_keys[n, h0:h1, lo:hi] |= reads.any(axis=2)
        sink_t = None if sink is None else sink[..., 0][:, None, :]
        if not ready:
            # A row with no allowed key has max -inf; shifting it by 0 keeps its e at 0.
            shift = np.max(flat, axis=1, keepdims=True)  # (h, 1, rows)
            if sink_t is not None:
                np.maximum(shift, sink_t, out=shift)
            shift[np.isneginf(shift)] = 0
            flat -= shift
            flat *= flat.dtype.type(_kernel.LOG2E)
        if band is not None:  # NumPy's exp2 is ~10x slower on lanes that underflow (-inf)
            np.copyto(band[0], _NORMAL_EXPONENT, where=band[1])
        e = np.exp2(flat, out=flat)  # (h, width, rows)
        if band is not None:
            np.copyto(band[0], 0, where=band[1])  # what exp2(-inf) gives
        total = np.matmul(ones[:width], e)  # (h, rows)
        if sink_t is not None:
            sink_share = np.exp(sink_t - shift)[:, 0]  # 0 for a -inf sink
            total += sink_share
        empty = total == 0
        inv = 1 / np.where(empty, 1, total) if empty.any() else 1 / total
        d_value = _scratch(_D_VALUE, heads * rows * dim_v, dtype, call)
        d_value = d_value.reshape(heads, rows, dim_v)
        np.multiply(grad_out[where].reshape(heads, rows, dim_v), inv[..., None], out=d_value)
        d_scaled = d_value  # dO / t, times scale when fold
        if fold:
            d_scaled = _scratch(_D_SCALED, d_value.size, dtype, call)
            d_scaled = np.multiply(d_value, scale, out=d_scaled.reshape(d_value.shape))
        keep = _kernel.keep_block(plan, task)
        if keep is not None:
            keep_t = keep.reshape(heads, rows, width).transpose(0, 2, 1) * keep_scale
        kept = e if keep is None else e * keep_t
        # a kv head no other task reaches: dV and dK straight into their rows
        alone = (n, h0) in sole
        if alone:
            d_v = np.matmul(kept, d_value, out=grad_value[n, h0:h1, lo:hi])
        else:
            d_v = _scratch(_D_V, heads * width * dim_v, dtype, call)
            d_v = np.matmul(kept, d_value, out=d_v.reshape(heads, width, dim_v))
        value = plan.value[n, h0:h1, lo:hi]
        if rich:  # in the logits' layout
            second = _scratch(_SECOND, size, dtype, call).reshape(heads, rows, width)
            np.matmul(d_scaled, value.transpose(0, 2, 1), out=second)  # dP' (times scale)
            d_probs = second.transpose(0, 2, 1)
        else:
            d_probs = _scratch(_SECOND, size, dtype, call).reshape(heads, width, rows)
            np.matmul(value, d_scaled.transpose(0, 2, 1), out=d_probs)  # dP' (times scale)
        if keep is not None:
            d_probs *= keep_t
        row_delta = np.einsum("hwr,hwr->hr", e, d_probs)
        d_probs -= (row_delta * inv)[:, None, :]
        d_logits = np.multiply(d_probs, e, out=d_probs)  # dX (times scale when fold)
        if grad_bias is not None:
            by_rows = d_logits.transpose(0, 2, 1).reshape(*block4, width)
            grad_bias[n, h0:h1, :, r0:r1, lo:hi] = by_rows
            if reads is not None:
                block = grad_bias[n, h0:h1, :, r0:r1, lo:hi]
                block[reads.transpose(0, 2, 1).reshape(block.shape)] = np.nan
        if tanh is not None:
            d_logits *= 1 - tanh * tanh
        if not fold:
            d_logits *= scale
        # dQ straight into its rows: (h, G, rows, width) @ (h, 1, width, D)
        by_group = d_logits.reshape(heads, width, *block4[1:]).transpose(0, 2, 3, 1)
        np.matmul(by_group, key[:, None], out=grad_query[where])
        if alone:
            np.matmul(d_logits, q, out=grad_key[n, h0:h1, lo:hi])
            if filled is not None:
                filled[n, h0:h1, lo:hi] = True
        else:
            _add_keys_values(task, d_logits, q, d_v)
        if dead is not None:
            dead[where] = empty.reshape(block4)
        if p_sink is not None and delta is not None and sink is not None:
            p_sink[where] = (sink_share * inv).reshape(block4)
            delta[where] = row_delta.reshape(block4)

    def _add_keys_values(
        task: _kernel.Task, d_logits: FloatArray, q: FloatArray, d_v: FloatArray
    ) -> None:
        """Assign or add one task's dK (``d_logits @ q``) and ``d_v`` in its turn."""
        heads, width, dim = task.h1 - task.h0, task.hi - task.lo, q.shape[2]
        d_k = _scratch(_D_K, heads * width * dim, q.dtype, call)
        d_k = np.matmul(d_logits, q, out=d_k.reshape(heads, width, dim))
        adds.add(task, (d_k, d_v))

    def _commit(task: _kernel.Task, parts: tuple[FloatArray, ...]) -> None:
        """Assign (rows no block reached yet) or add dK and dV parts into their rows."""
        n, h0, h1, lo, hi = task.n, task.h0, task.h1, task.lo, task.hi
        d_k, d_v = parts
        assert filled is not None  # a head block of several tasks is never ``whole``
        fresh = ~filled[n, h0, lo:hi]  # the task's heads share the same columns
        if fresh.all():
            grad_key[n, h0:h1, lo:hi] = d_k
            grad_value[n, h0:h1, lo:hi] = d_v
        elif not fresh.any():
            grad_key[n, h0:h1, lo:hi] += d_k
            grad_value[n, h0:h1, lo:hi] += d_v
        else:
            for out, part in ((grad_key, d_k), (grad_value, d_v)):
                block = out[n, h0:h1, lo:hi]  # a view: writes reach the gradient
                block[:, fresh] = part[:, fresh]
                block[:, ~fresh] += part[:, ~fresh]
        filled[n, h0:h1, lo:hi] = True

    adds = _ordered.OrderedAdds(tasks, _commit)  # in list order: the same bits every call
    _kernel.for_each_task(plan, tasks, adds.guarded(body))
    if filled is not None and not filled.all():  # keys no row may see (lengths, windows)
        grad_key[~filled] = 0
        grad_value[~filled] = 0
    if dead is not None and length_k:
        # a fully masked row returns mean(V): each value gets 1/S of the row's dO
        grad_value += (np.where(dead[..., None], upstream, 0).sum(axis=(2, 3)) / length_k)[
            :, :, None, :
        ]
    grad_sinks = None
    if p_sink is not None and delta is not None:
        grad_sinks = -np.einsum("nhgl,nhgl->nhg", p_sink, delta)
        if fold:
            grad_sinks /= scale
        if poisoned is not None and plan.sinks is not None:  # every row reads its sink
            grad_sinks[poisoned.any(axis=-1) & np.isfinite(plan.sinks)] = np.nan
    if poisoned is not None and nan_keys is not None:
        grad_query[poisoned] = np.nan
        grad_key[nan_keys] = np.nan
        grad_value[nan_keys] = np.nan
    return grad_query, grad_key, grad_value, grad_bias, grad_sinks
