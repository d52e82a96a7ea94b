"""Blocked execution of the attention math for a validated :class:`~refattn.validation.Plan`.

The math is :data:`refattn.einsums.SCORES` then :data:`refattn.einsums.MIX`; here each
contraction runs as a BLAS matmul over one block: some kv heads of one batch entry, all
``G`` query heads of each stacked, a range of query rows, and only the key columns those
rows can see at all (so blocks a causal mask, a window, key lengths or segment ids remove
entirely are never computed). The forward walks a block's keys in chunks of about 512
columns (``_FORWARD_COLUMNS``, rows sized so a chunk's scores fit ``_BLOCK_BYTES``), joined
by an online softmax, so the softmax passes read cache, not memory, and the score GEMM
writes a cache-sized output; each block scales its own query rows and key chunks into
small buffers. Only ``return_weights`` takes whole rows at once. Blocks of few query rows
(causal blocks, mostly) whose rows need no max shift compute their logits transposed
(``key . query.T``), which OpenBLAS runs faster for such shapes (:func:`_block_transposed`).
Blocks run on a few threads (see :mod:`refattn._threads`).

Two exact rewrites make the passes cheaper:

- The softmax uses ``exp2(log2(e) * (x - max))``: a multiply and ``exp2`` together cost
  less than ``exp`` in float32. Logits themselves stay in natural units, rounded as torch's
  reference path rounds them (query and key each times ``sqrt(scale)``, then the matmul):
  multiplying by ``log2(e)`` only after the max is subtracted rounds small numbers, not
  large logits, so large logits lose no accuracy to the rewrite. (Unshifted rows, below,
  use ``exp`` itself, since their logits are not small; so do blocks where some weight
  underflows or a mask left ``-inf``, where NumPy's ``exp2`` is ~10x slower than ``exp``.)
- The row maximum is only subtracted where it is needed. Softmax is shift invariant; the
  shift only prevents overflow. By Cauchy-Schwarz ``|q_i . k_j| <= |q_i| max_j |k_j|``, so
  where that bound (in natural units) is at most 60 no ``exp`` can overflow or underflow to
  zero, and the unshifted softmax is as accurate as the shifted one, but for one case: a
  row of exactly equal logits over thousands of keys sums equal rounded weights, and the
  float32 sum drifts one way (59 ulps at 4096 keys, where the shifted path's weights are
  exactly 1 and sum exactly). Rows past the bound, and calls with a bias, ALiBi or sinks,
  take the shifted path.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from refattn import _threads
from refattn._layout import DrawnKeep
from refattn._numerics import LOG2E, Poison, Prepared, prepare
from refattn.errors import FullyMaskedRowError
from refattn.validation import Plan, see

FloatArray = npt.NDArray[np.floating]
BoolArray = npt.NDArray[np.bool_]

__all__ = [
    "LOG2E",
    "Outputs",
    "Task",
    "cache_chunk",
    "for_each_task",
    "keep_block",
    "logits",
    "make_tasks",
    "run",
]
_BLOCK_BYTES = 1 << 20  # one block's score buffer: fits in L2
_MAX_ROWS, _MIN_ROWS = 512, 64
_MIN_CHUNK = 16  # key columns per chunk of the online path, at the least
_UNSHIFTED_BOUND = 60.0  # natural-log units; e**60 leaves float32 ~1e12 of headroom
_CAUSAL_BLOCKS = 8  # at least this many row blocks per head when masks can skip keys
_SPLIT_ROWS = 64  # half a block's rows, at least, for _block_transposed to split its diagonal
_PARALLEL_MIN_WORK = 1 << 18  # score entries below which threads cost more than they give
_FORWARD_COLUMNS = 512  # key columns a forward block is sized for (it walks keys in chunks)
_EXP2_LOWEST = -86.0  # natural units: log2(e) * -86 > -125, so exp2 stays normal in float32
_MINIMUM = np.minimum.reduce  # a.min() without its wrapper
_TINY = {np.dtype(t): float(np.finfo(t).tiny) for t in (np.float32, np.float64)}
# OpenBLAS sums a product's inner dimension in one pass up to at least this depth: a
# sum over fewer terms (the trailing ones exact zeros) then rounds as the whole one
_EXACT_DEPTH = 256


@dataclass
class Outputs:
    """What the kernel writes: output ``(N, Hkv, G, L, Dv)``, lse ``(N, Hkv, G, L)``."""

    out: FloatArray
    lse: FloatArray
    weights: FloatArray | None  # (N, Hkv, G, L, S)
    poisoned: BoolArray | None = None  # (N, Hkv, G, L): rows given NaN by a non-finite input


@dataclass(frozen=True)
class Task:
    n: int
    h0: int
    h1: int
    r0: int
    r1: int
    lo: int  # key columns [lo, hi) the rows can see
    hi: int
    unshifted: bool


def _key_range(plan: Plan, n: int, r0: int, r1: int, length_k: int) -> tuple[int, int]:
    """Columns ``[lo, hi)`` that any of query rows ``[r0, r1)`` of batch entry ``n`` may see."""
    lo, hi = 0, length_k
    if plan.segments is not None:
        lo, hi = plan.segments.key_range(n, r0, r1)
        hi = min(hi, length_k)
    if plan.key_lengths is not None:
        hi = min(hi, int(plan.key_lengths[n]))
    if plan.causal_offset is not None:
        hi = min(hi, r1 + plan.causal_offset)
    if plan.window is not None:
        left, right, offset = plan.window
        if right is not None:
            hi = min(hi, r1 + offset + right)
        if left is not None:
            lo = max(lo, r0 + offset - left)
    return lo, max(hi, lo)


def _structural_band(
    plan: Plan, n: int, r0: int, r1: int, lo: int, hi: int
) -> tuple[int, npt.NDArray[np.bool_]] | None:
    """Causal, window and query-length removals of a block, as ``(c0, removed)``.

    Only the band of key columns some row must drop is built: ``removed (rows, width)``
    covers absolute columns ``c0 .. c0 + width``; every other column of the block is kept.
    None when the block needs no structural masking at all.
    """
    c0, c1 = hi, lo  # empty band
    if plan.causal_offset is not None and r0 + plan.causal_offset + 1 < hi:
        c0, c1 = min(c0, max(lo, r0 + plan.causal_offset + 1)), hi
    if plan.window is not None:
        left, right, offset = plan.window
        if right is not None and r0 + offset + right + 1 < hi:
            c0, c1 = min(c0, max(lo, r0 + offset + right + 1)), hi
        if left is not None and r1 - 1 + offset - left > lo:
            c0, c1 = lo, max(c1, min(hi, r1 - 1 + offset - left))
    query_length = None if plan.query_lengths is None else int(plan.query_lengths[n])
    if query_length is not None and r1 > query_length:
        c0, c1 = lo, hi
    else:
        query_length = None
    if c0 >= c1:
        return None
    removed = _removed_pattern(
        r1 - r0,
        c0 - r0,
        c1 - c0,
        plan.causal_offset,
        plan.window,
        None if query_length is None else query_length - r0,
    )
    return c0, removed


@functools.lru_cache(maxsize=64)
def _removed_pattern(
    rows: int,
    first_column: int,
    width: int,
    causal_offset: int | None,
    window: tuple[int | None, int | None, int] | None,
    valid_rows: int | None,
) -> npt.NDArray[np.bool_]:
    """Pairs removed in a band, in coordinates relative to the block's first query row.

    It depends only on these relative numbers, so every block with the same geometry (all
    heads, most rows of a causal mask) shares one read-only array.
    """
    row = np.arange(rows)[:, None]
    diff = np.arange(first_column, first_column + width)[None, :] - row  # key - query index
    removed = np.zeros((rows, width), dtype=bool)
    if causal_offset is not None:
        removed |= diff > causal_offset
    if window is not None:
        left, right, offset = window
        if right is not None:
            removed |= diff > offset + right
        if left is not None:
            removed |= diff < offset - left
    if valid_rows is not None:
        removed |= row >= valid_rows
    removed.flags.writeable = False
    return removed


def logits(
    plan: Plan,
    scaled: tuple[FloatArray, FloatArray],
    task: Task,
    buffer: FloatArray,
    *,
    keep_tanh: bool = False,
    operands: tuple[FloatArray, FloatArray] | None = None,
) -> tuple[FloatArray, FloatArray | None]:
    """Logits of one task (natural units), every step before the softmax applied.

    Args:
        plan: the validated call.
        scaled: :func:`scaled_inputs`: query ``(N, Hkv, G, L, D)`` and key
            ``(N, Hkv, S, D)``, whose product is ``scale * query . key``.
        task: which heads, rows and key columns.
        buffer: scratch space of at least ``h * G * rows * width`` elements.
        keep_tanh: also return the softcap's ``tanh`` values.
        operands: the task's scaled query rows ``(h, G * rows, D)`` and its scaled keys,
            transposed, ``(h, D, width)`` (see :class:`_TaskInputs`), to use instead of
            slices of ``scaled``; or None.

    Returns:
        ``s (h, G * rows, width)``, a view of ``buffer``, and ``tanh (h, G, rows, width)``
        of the softcap, which the backward pass needs (None unless asked for).
    """
    n, h0, h1, r0, r1, lo, hi = task.n, task.h0, task.h1, task.r0, task.r1, task.lo, task.hi
    query, key = scaled
    heads, groups, rows, width = h1 - h0, query.shape[2], r1 - r0, hi - lo
    flat = buffer[: heads * groups * rows * width].reshape(heads, groups * rows, width)
    if operands is None:
        q = query[n, h0:h1, :, r0:r1].reshape(heads, groups * rows, -1)
        np.matmul(q, key[n, h0:h1, lo:hi].transpose(0, 2, 1), out=flat)  # einsums.SCORES
    else:
        np.matmul(operands[0], operands[1], out=flat)
    s = flat.reshape(heads, groups, rows, width)  # (h, G, rows, width)

    tanh = None
    if plan.softcap is not None:
        cap = s.dtype.type(plan.softcap)
        with np.errstate(over="ignore"):  # past the range, tanh(±inf) = ±1 is exact
            s /= cap
        np.tanh(s, out=s)
        tanh = s.copy() if keep_tanh else None
        s *= cap
    if plan.bias is not None:
        s += plan.bias[n, h0:h1, :, r0:r1, lo:hi].astype(s.dtype, copy=False)
    if plan.alibi_slopes is not None:
        if plan.segments is not None:  # distances within each segment
            distance = plan.segments.distance(n, r0, r1, lo, hi)
        else:
            distance = np.abs(
                np.arange(r0, r1)[:, None]
                + (plan.key.shape[2] - query.shape[3])
                - np.arange(lo, hi)[None, :]
            )
        s -= plan.alibi_slopes[n, h0:h1, :, None, None] * distance.astype(s.dtype)
    band = _structural_band(plan, n, r0, r1, lo, hi)
    if band is not None:
        c0, removed = band
        np.copyto(s[..., c0 - lo : c0 - lo + removed.shape[1]], -np.inf, where=removed)
    if plan.segments is not None:
        np.copyto(s, -np.inf, where=~plan.segments.allowed(n, r0, r1, lo, hi))
    if plan.attend_mask is not None:
        np.copyto(s, -np.inf, where=~plan.attend_mask[n, h0:h1, :, r0:r1, lo:hi])
    return flat, tanh


def sink_rows(plan: Plan, task: Task) -> FloatArray | None:
    """The sink logit of each row of ``task``, ``(h, G * rows, 1)``; None without sinks."""
    if plan.sinks is None:
        return None
    heads, groups, rows = task.h1 - task.h0, plan.query.shape[2], task.r1 - task.r0
    sinks = plan.sinks[task.n, task.h0 : task.h1, :, None]  # (h, G, 1)
    return np.repeat(sinks, rows, axis=2).reshape(heads, groups * rows, 1)


def _block(
    plan: Plan,
    res: Outputs,
    scaled: tuple[FloatArray, FloatArray],
    task: Task,
    buffer: FloatArray,
    ones: FloatArray,
    poison: Poison | None,
    inputs: _TaskInputs | None = None,
) -> None:
    """Attention for one task; ``scaled`` as in :func:`logits`, unless ``inputs`` are given."""
    n, h0, h1, r0, r1, lo, hi = task.n, task.h0, task.h1, task.r0, task.r1, task.lo, task.hi
    heads, groups, rows, width = h1 - h0, plan.query.shape[2], r1 - r0, hi - lo
    operands = None if inputs is None else inputs.operands(task)
    flat, _ = logits(plan, scaled, task, buffer, operands=operands)
    s = flat.reshape(heads, groups, rows, width)
    hits = _Hits() if poison is None else _Hits().read(poison, task, flat)

    shift = None
    sink = sink_rows(plan, task)
    if not task.unshifted and (width or sink is not None):
        # A row with no allowed key has max -inf; shifting it by 0 instead keeps every
        # exp2 at exactly 0, so its sum is 0 and no finite fill constant is needed.
        # A sink joins the max: it is one more logit of every row (with no value).
        if width:
            shift = np.max(flat, axis=-1, keepdims=True)
        else:  # no key columns at all: only the sink
            shift = np.full((heads, groups * rows, 1), -np.inf, flat.dtype)
        if sink is not None:
            np.maximum(shift, sink, out=shift)
        shift[np.isneginf(shift)] = 0
        flat -= shift
    _exp(flat, task.unshifted)
    total = np.matmul(flat, ones[:width])  # row sums as a gemv, (h, G * rows)
    if sink is not None and shift is not None:
        total += np.exp(sink - shift)[..., 0]  # the sink's share of the denominator
    if res.weights is not None:
        safe = np.where(total == 0, 1, total)
        res.weights[n, h0:h1, :, r0:r1, lo:hi] = s / safe.reshape(heads, groups, rows, 1)
    _drop(plan, task, s)
    out = np.matmul(flat, plan.value[n, h0:h1, lo:hi])  # einsums.MIX on this block
    if task.unshifted and _underflowed(plan, task, out, total):
        shifted = dataclasses.replace(task, unshifted=False)
        _block(plan, res, scaled, shifted, buffer, ones, poison, inputs)
        return
    _finish(plan, res, task, out, total, shift, poison, hits)


def _exp(flat: FloatArray, unshifted: bool) -> None:
    """``exp`` in place: shifted logits ``x - max`` (at most 0) as ``exp2(x * log2(e))``.

    The multiply rounds ``x - max``, small for the weights that matter; an unshifted
    logit can be as large as 60, so there ``exp`` itself, which rounds nothing first.
    NumPy's float32 ``exp2`` leaves its vector loop for every lane whose result
    underflows (``-inf`` from a mask included) and runs ~10x slower there; ``exp`` does
    not. So a block whose smallest shifted logit may underflow takes ``exp`` itself
    (one reduction decides; rounding as the unshifted path's).
    """
    if unshifted or not flat.size or float(_MINIMUM(flat, axis=None)) < _EXP2_LOWEST:
        np.exp(flat, out=flat)
    else:
        flat *= flat.dtype.type(LOG2E)
        np.exp2(flat, out=flat)


def _underflowed(plan: Plan, task: Task, out: FloatArray, total: FloatArray) -> bool:
    """Whether an unshifted block's sums ``out (h, G * rows, Dv)`` came near underflow.

    Unshifted weights can be as small as ``exp(-60)``; times tiny values their products
    fall among the subnormals and lose the relative precision the shifted path keeps
    (its largest weight is 1). Sums that small are rare: such a block is recomputed with
    the shift. Exact zeros from value columns that are zero over the block are exact.
    """
    tiny = _TINY[out.dtype] if out.dtype in _TINY else float(np.finfo(out.dtype).tiny)
    limit = 16 * max(task.hi - task.lo, 1) * tiny
    size = np.abs(out)
    if not size.size or float(size.min()) >= limit:  # the common case: one reduction decides
        return False
    small = size < limit
    small &= (total > 0)[..., None]  # a row with no allowed key sums exactly 0
    if not small.any():
        return False
    value = plan.value[task.n, task.h0 : task.h1, task.lo : task.hi]  # (h, width, Dv)
    nonzero = np.maximum(value.max(axis=1), -value.min(axis=1)) > 0  # (h, Dv)
    return bool((small & nonzero[:, None, :]).any())


def _block_online(
    plan: Plan,
    res: Outputs,
    scaled: tuple[FloatArray, FloatArray],
    task: Task,
    buffer: FloatArray,
    ones: FloatArray,
    chunk: int,
    poison: Poison | None,
    inputs: _TaskInputs | None = None,
) -> None:
    """The same as :func:`_block`, over key chunks with an online (running) softmax.

    Only ``rows x chunk`` logits exist at a time. Rows needing the max shift keep a running
    maximum ``m``; when a chunk raises it, what was accumulated is rescaled by
    ``exp(m_old - m_new)`` (flash attention's recurrence). ``m`` stays ``-inf`` until a
    row meets an allowed key: such a row shifts by 0 (its sums are exactly 0, so nothing
    is lost) and is never rescaled into NaN. Unshifted rows need no running maximum: each
    chunk's weights and sums simply add up.
    """
    n, h0, h1 = task.n, task.h0, task.h1
    heads, groups, rows = h1 - h0, plan.query.shape[2], task.r1 - task.r0
    dtype = plan.query.dtype
    dim_v = plan.value.shape[3]
    acc = np.zeros((heads, groups * rows, dim_v), dtype=dtype)
    part = np.empty_like(acc)  # one chunk's weights times value
    total = np.zeros((heads, groups * rows), dtype=dtype)
    running = None if task.unshifted else np.full((heads, groups * rows, 1), -np.inf, dtype)
    sink = sink_rows(plan, task)
    if sink is not None and running is not None:  # the sink starts the running max
        running = sink.astype(dtype)
        total += np.where(np.isneginf(sink), 0, 1)[..., 0]  # exp(sink - running)
    hits = _Hits()
    for start in range(task.lo, task.hi, chunk):
        sub = Task(n, h0, h1, task.r0, task.r1, start, min(task.hi, start + chunk), task.unshifted)
        operands = None if inputs is None else inputs.operands(sub)
        flat, _ = logits(plan, scaled, sub, buffer, operands=operands)
        if poison is not None:
            hits.read(poison, sub, flat)
        if running is not None:
            new = np.maximum(running, np.max(flat, axis=-1, keepdims=True))
            shift = np.where(np.isneginf(new), 0, new)  # nothing allowed yet: see _block
            rescale = np.exp(running - shift)  # 0 while running is -inf
            acc *= rescale
            total *= rescale[..., 0]
            flat -= shift
            running = new
        _exp(flat, running is None)
        total += np.matmul(flat, ones[: sub.hi - sub.lo])
        _drop(plan, sub, flat.reshape(heads, groups, rows, -1))
        acc += np.matmul(flat, plan.value[n, h0:h1, sub.lo : sub.hi], out=part)
    if running is None and _underflowed(plan, task, acc, total):
        unshifted = dataclasses.replace(task, unshifted=False)
        _block_online(plan, res, scaled, unshifted, buffer, ones, chunk, poison, inputs)
        return
    final = None if running is None else np.where(np.isneginf(running), 0, running)
    _finish(plan, res, task, acc, total, final, poison, hits)


def _transposed(plan: Plan, task: Task, poison: Poison | None) -> bool:
    """Whether the forward computes ``task`` as :func:`_block_transposed` does.

    Unshifted blocks of at most 128 stacked query rows, with nothing but causal, window and
    length masks (and finite inputs); calls that fit one block of ``_MIN_ROWS`` rows stay
    on :func:`_block`, which :mod:`refattn._small` reproduces bit for bit.
    """
    stacked = plan.query.shape[2] * (task.r1 - task.r0)
    return (
        task.unshifted
        and poison is None
        and 2 <= stacked <= 128
        and plan.query.shape[3] > _MIN_ROWS
        and plan.bias is None
        and plan.alibi_slopes is None
        and plan.sinks is None
        and plan.softcap is None
        and plan.segments is None
        and plan.attend_mask is None
        and plan.dropout_keep is None
    )


def _block_transposed(
    plan: Plan,
    res: Outputs,
    task: Task,
    buffer: FloatArray,
    ones: FloatArray,
    chunk: int,
    inputs: _TaskInputs,
) -> None:
    """:func:`_block` / :func:`_block_online` for unshifted rows, logits stored transposed.

    ``s.T = key . query.T`` is the same products as ``query . key.T``, but OpenBLAS runs it
    faster when the block has few query rows (the narrow operand is the one transposed):
    the logits stay ``(h, width, G * rows)``; the row sums are ``ones . s.T`` and the
    output ``(s.T).T . value``. Unshifted rows need no maximum, so each key chunk's
    weights and sums just add up.

    Where the first half of the rows sees no key past some column inside a chunk (the
    diagonal of a causal mask), the keys past it are multiplied with the second half
    only, and the first half's weights there are set to exactly 0: see :func:`_split`.
    """
    n, h0, h1, r0, r1 = task.n, task.h0, task.h1, task.r0, task.r1
    heads, groups, rows = h1 - h0, plan.query.shape[2], r1 - r0
    stacked = groups * rows
    query_t = np.ascontiguousarray(inputs.query.transpose(0, 2, 1))  # (h, D, G * rows)
    half = rows // 2
    # keys from `cut` on are removed for every row of the first half; blocks too small to
    # save more than the extra NumPy calls cost (on two threads, each call passes the GIL)
    # are not split
    split = half >= _SPLIT_ROWS
    cut = _key_range(plan, n, r0, r0 + half, plan.key.shape[2])[1] if split else task.hi
    acc: FloatArray | None = None
    total: FloatArray | None = None
    for start in range(task.lo, task.hi, chunk):
        end = min(task.hi, start + chunk)
        width = end - start
        sub = Task(n, h0, h1, r0, r1, start, end, True)
        key = inputs.operands(sub)[1].transpose(0, 2, 1)  # scaled (h, width, D)
        value = plan.value[n, h0:h1, start:end]
        s_t = buffer[: heads * width * stacked].reshape(heads, width, stacked)
        a = min(max(cut, start), end) - start  # columns [a, width): second half only
        band = _structural_band(plan, n, r0, r1, start, end)
        if a >= width or a < _MIN_CHUNK or width - a < _MIN_CHUNK:
            np.matmul(key, query_t, out=s_t)  # einsums.SCORES, transposed
            _mask_transposed(s_t, band, start, groups, rows, 0, width, 0)
            np.exp(s_t, out=s_t)
            part = np.matmul(s_t.transpose(0, 2, 1), value)  # einsums.MIX
        else:
            part = _split(s_t, key, query_t, value, band, start, groups, half, a)
        sums = np.matmul(ones[:width], s_t)  # (h, G * rows)
        if acc is None or total is None:
            acc, total = part, sums
        else:
            acc += part
            total += sums
    assert acc is not None
    assert total is not None
    if _underflowed(plan, task, acc, total):  # rare: the shifted path, as _block does
        shifted = dataclasses.replace(task, unshifted=False)
        if task.hi - task.lo > chunk:
            _block_online(
                plan, res, (plan.query, plan.key), shifted, buffer, ones, chunk, None, inputs
            )
        else:
            _block(plan, res, (plan.query, plan.key), shifted, buffer, ones, None, inputs)
        return
    _finish(plan, res, task, acc, total, None)


def _mask_transposed(
    s_t: FloatArray,
    band: tuple[int, npt.NDArray[np.bool_]] | None,
    start: int,
    groups: int,
    rows: int,
    c0: int,
    c1: int,
    first: int,
) -> None:
    """``-inf`` where ``band`` removes pairs, in columns ``[c0, c1)`` and rows from ``first``.

    ``s_t (h, width, G * rows)`` holds the transposed logits of key columns from ``start``;
    ``band`` is :func:`_structural_band`'s ``(first column, removed (rows, band width))``.
    """
    if band is None:
        return
    b0, removed = band
    lo, hi = max(c0, b0 - start), min(c1, b0 - start + removed.shape[1])
    if lo >= hi:
        return
    cols = s_t.reshape(s_t.shape[0], s_t.shape[1], groups, rows)[:, lo:hi, :, first:]
    pattern = removed[first:, lo - (b0 - start) : hi - (b0 - start)]
    np.copyto(cols, -np.inf, where=pattern.T[:, None, :])


def _split(
    s_t: FloatArray,
    key: FloatArray,
    query_t: FloatArray,
    value: FloatArray,
    band: tuple[int, npt.NDArray[np.bool_]] | None,
    start: int,
    groups: int,
    half: int,
    a: int,
) -> FloatArray:
    """A key chunk of :func:`_block_transposed` the first ``half`` rows see only up to ``a``.

    The logits of columns ``[a, width)`` are computed for the other rows only; the first
    half's weights there are exactly 0 (what ``exp(-inf)`` gives), and its output sums
    only columns ``[0, a)`` (in one BLAS pass of the same depth as the whole product's,
    so it rounds the same). Fills ``s_t (h, width, G * rows)`` with the weights and
    returns the chunk's output ``(h, G * rows, Dv)``.
    """
    heads, width, stacked = s_t.shape
    rows = stacked // groups
    s4 = s_t.reshape(heads, width, groups, rows)
    q4 = query_t.reshape(heads, query_t.shape[1], groups, rows).transpose(0, 2, 1, 3)
    np.matmul(key[:, :a], query_t, out=s_t[:, :a])  # einsums.SCORES, transposed
    np.matmul(key[:, None, a:], q4[..., half:], out=s4[:, a:, :, half:].transpose(0, 2, 1, 3))
    _mask_transposed(s_t, band, start, groups, rows, 0, a, 0)
    _mask_transposed(s_t, band, start, groups, rows, a, width, half)
    np.exp(s_t[:, :a], out=s_t[:, :a])
    right = s4[:, a:, :, half:]
    np.exp(right, out=right)
    s4[:, a:, :, :half] = 0
    if a > _EXACT_DEPTH and width > _EXACT_DEPTH:  # the two would round differently
        whole: FloatArray = np.matmul(s_t.transpose(0, 2, 1), value)  # einsums.MIX
        return whole
    part = np.empty((heads, stacked, value.shape[2]), s_t.dtype)
    p4 = part.reshape(heads, groups, rows, -1)
    w4 = s4.transpose(0, 2, 3, 1)  # (h, G, rows, width): the weights, transposed view
    np.matmul(w4[:, :, :half, :a], value[:, None, :a], out=p4[:, :, :half])  # einsums.MIX
    np.matmul(w4[:, :, half:], value[:, None], out=p4[:, :, half:])
    return part


class _Hits:
    """Rows and output entries of a block that read a non-finite key or value entry.

    Read from a block's logits before the softmax: a pair is allowed iff its logit is not
    ``-inf`` (the kernel's inputs are finite, so no other logit is ``-inf``).
    """

    def __init__(self) -> None:
        self.rows: BoolArray | None = None  # (h, G * rows)
        self.values: BoolArray | None = None  # (h, G * rows, Dv)

    def read(self, poison: Poison, task: Task, flat: FloatArray) -> _Hits:
        """Add the hits of logits ``flat (h, G * rows, width)`` of ``task``."""
        where = (task.n, slice(task.h0, task.h1), slice(task.lo, task.hi))
        if poison.keys is not None:
            bad = poison.keys[where]  # (h, width)
            cols = np.flatnonzero(bad.any(axis=0))
            if cols.size:
                reads = (flat[..., cols] > -np.inf) & bad[:, None, cols]
                hit: BoolArray = np.asarray(reads.any(axis=-1))
                self.rows = hit if self.rows is None else self.rows | hit
        if poison.values is not None:
            bad_values = poison.values[where]  # (h, width, Dv)
            cols = np.flatnonzero(bad_values.any(axis=(0, 2)))
            if cols.size:
                allowed = (flat[..., cols] > -np.inf).astype(np.float32)
                hit = np.asarray(np.matmul(allowed, bad_values[:, cols].astype(np.float32)) > 0)
                self.values = hit if self.values is None else self.values | hit
        return self


def keep_block(plan: Plan, task: Task) -> npt.NDArray[np.bool_] | None:
    """The dropout keep-mask of ``task``, ``(h, G, rows, width)``; None without dropout."""
    keep = plan.dropout_keep
    if keep is None:
        return None
    if isinstance(keep, DrawnKeep):  # drawn here, for this block only
        groups = plan.query.shape[2]
        heads = range(task.h0 * groups, task.h1 * groups)
        flags = keep.block(task.n, heads, range(task.r0, task.r1), range(task.lo, task.hi))
        return flags.reshape(task.h1 - task.h0, groups, task.r1 - task.r0, task.hi - task.lo)
    block: npt.NDArray[np.bool_] = keep[
        task.n, task.h0 : task.h1, :, task.r0 : task.r1, task.lo : task.hi
    ]
    return block


def _drop(plan: Plan, task: Task, weights: FloatArray) -> None:
    """Dropout, in place, on unnormalised weights ``(h, G, rows, width)`` of ``task``."""
    keep = keep_block(plan, task)
    if keep is not None:
        weights *= keep
        weights *= 1.0 / (1.0 - plan.dropout_p)


def _finish(
    plan: Plan,
    res: Outputs,
    task: Task,
    out: FloatArray,
    total: FloatArray,
    shift: FloatArray | None,
    poison: Poison | None = None,
    hits: _Hits | None = None,
) -> None:
    """Normalise ``out (h, G * rows, Dv)`` by the row sums ``total``; write output and lse.

    Then NaN where an allowed pair read a non-finite input (see :mod:`refattn._numerics`).
    """
    heads, groups, rows = task.h1 - task.h0, plan.query.shape[2], task.r1 - task.r0
    where = (task.n, slice(task.h0, task.h1), slice(None), slice(task.r0, task.r1))
    if poison is None and (not total.size or float(_MINIMUM(total, axis=None)) > 0):
        # the common case (no row without keys): straight into the outputs, few NumPy calls
        lse = res.lse[where]
        np.log(total.reshape(heads, groups, rows), out=lse)
        if shift is not None:
            lse += shift.reshape(heads, groups, rows)
        np.divide(
            out.reshape(heads, groups, rows, -1),
            total.reshape(heads, groups, rows, 1),
            out=res.out[where],
        )
        return
    dead = total == 0
    any_dead = bool(dead.any())
    if any_dead:
        with np.errstate(divide="ignore"):  # a dead row's lse is log(0) = -inf
            lse = np.log(total)
        out /= np.where(dead, 1, total)[..., None]
    else:
        lse = np.log(total)
        out /= total[..., None]
    if shift is not None:
        lse += shift[..., 0]
    out4 = out.reshape(heads, groups, rows, -1)
    dead4 = dead.reshape(heads, groups, rows)
    if any_dead:
        _fill_dead_rows(plan, res, out4, dead4, task, poison)
    if poison is not None and hits is not None:
        nan_rows = hits.rows
        if poison.rows is not None:  # a non-finite query poisons its row unless it is dead
            bad_q = poison.rows[where].reshape(heads, groups * rows) & ~dead
            nan_rows = bad_q if nan_rows is None else nan_rows | bad_q
        poisoned = np.zeros((heads, groups * rows), dtype=bool)
        if nan_rows is not None:
            out[nan_rows] = np.nan
            lse[nan_rows] = np.nan
            poisoned |= nan_rows
            if res.weights is not None:
                block = res.weights[where]
                block[nan_rows.reshape(heads, groups, rows)] = np.nan
        if hits.values is not None:
            out[hits.values] = np.nan
            poisoned |= hits.values.any(axis=-1)
        if res.poisoned is not None:
            res.poisoned[where] = poisoned.reshape(heads, groups, rows)
    res.lse[where] = lse.reshape(heads, groups, rows)
    res.out[where] = out4


def _fill_dead_rows(
    plan: Plan,
    res: Outputs,
    out: FloatArray,
    dead: npt.NDArray[np.bool_],
    task: Task,
    poison: Poison | None,
) -> None:
    """Apply the fully-masked-row policy to rows ``dead`` ``(h, G, rows)`` of one block."""
    policy = plan.fully_masked
    weights = None
    if res.weights is not None:
        weights = res.weights[task.n, task.h0 : task.h1, :, task.r0 : task.r1]
    length_k = plan.value.shape[2]
    if policy in ("zero", "raise"):  # "raise" is raised by run(), in index order
        out[dead] = 0
    elif policy == "nan":
        out[dead] = np.nan
        if weights is not None:
            weights[dead] = np.nan
    else:  # uniform: every key equally, masked or not (what JAX and Flax return)
        means = np.full((task.h1 - task.h0, plan.value.shape[3]), np.nan, out.dtype)
        if length_k:
            means = plan.value[task.n, task.h0 : task.h1].mean(axis=1)
        if poison is not None and poison.values is not None and length_k:
            # every key is attended, so a non-finite value entry reaches every such row
            means[poison.values[task.n, task.h0 : task.h1].any(axis=1)] = np.nan
        means = np.broadcast_to(means[..., None, None, :], out.shape)
        out[dead] = means[dead]
        if weights is not None:
            weights[dead] = 1.0 / length_k if length_k else np.nan


def _unshifted_rows(plan: Plan, key_scaled: bool, prepared: Prepared) -> npt.NDArray[np.bool_]:
    """Rows ``(N, Hkv, G, L)`` whose logits are provably too small to need the max shift.

    ``key_scaled``: whether the key carries a share of the scale (see :func:`_factors`).
    """
    query = plan.query
    shape = query.shape[:4]
    if (
        plan.bias is not None
        or plan.alibi_slopes is not None
        or plan.sinks is not None
        or plan.key.shape[2] == 0
    ):
        return np.zeros(shape, dtype=bool)
    # exp(bound) times the value sum must stay far from overflow as well (the other end,
    # underflow, is checked on each block's sums: see _underflowed)
    headroom = float(np.finfo(query.dtype).max) * 1e-6 / max(plan.key.shape[2], 1)
    small_cap = plan.softcap is not None and plan.softcap <= _UNSHIFTED_BOUND
    # the scaled query carries all of |scale| when the key is unscaled, else its root
    root = math.sqrt(abs(plan.scale))
    q_factor, k_factor = (root, root) if key_scaled else (abs(plan.scale), 1.0)
    # the bounds below, from the largest norms: every row passes when these do (products
    # of non-negative floats round monotonically), without the per-row norms
    top = (
        0.0
        if small_cap
        else prepared.query_norm_max * (prepared.key_norm_max * (q_factor * k_factor))
    )
    if top <= _UNSHIFTED_BOUND and prepared.value_abs_max * math.exp(_UNSHIFTED_BOUND) <= headroom:
        return np.ones(shape, dtype=bool)
    v_max = prepared.value_max
    with np.errstate(invalid="ignore", over="ignore"):
        if small_cap:
            bound = np.zeros(shape)
        else:
            k_norm = prepared.key_norm * (q_factor * k_factor)  # (N, Hkv): the smaller side
            bound = prepared.query_norm * k_norm[:, :, None, None]
        ok_values = v_max * math.exp(_UNSHIFTED_BOUND) <= headroom  # (N, Hkv)
        result: npt.NDArray[np.bool_] = (bound <= _UNSHIFTED_BOUND) & ok_values[:, :, None, None]
    return result


def _tasks(
    plan: Plan, unshifted: npt.NDArray[np.bool_], workers: int, columns: int | None
) -> list[Task]:
    """Tasks whose ``rows x min(S, columns)`` score block fits ``_BLOCK_BYTES``."""
    n_batch, hkv, groups, length_q, _ = plan.query.shape
    length_k = plan.key.shape[2]
    width = length_k if columns is None else min(length_k, columns)
    row_bytes = max(width, 1) * plan.key.itemsize * groups
    rows = _MAX_ROWS
    while rows > _MIN_ROWS and rows * row_bytes > _BLOCK_BYTES:
        rows //= 2
    if plan.causal_offset is not None or plan.window is not None or plan.segments is not None:
        while rows > _MIN_ROWS and rows * _CAUSAL_BLOCKS > length_q:  # some blocks get skipped
            rows //= 2
    rows = max(1, min(rows, length_q))
    heads = max(1, min(hkv, _BLOCK_BYTES // (rows * row_bytes)))
    while (
        workers > 1
        and n_batch * -(-hkv // heads) * -(-length_q // rows) < 4 * workers
        and (heads > 1 or rows > _MIN_ROWS)
    ):  # enough tasks to share among the threads
        if heads > 1:
            heads = max(1, heads // 2)
        else:
            rows = max(1, rows // 2)
    tasks = []
    every = bool(unshifted.all())  # then no task needs its own reduction (the common case)
    for n in range(n_batch):
        for r0 in range(0, length_q, rows):
            r1 = min(length_q, r0 + rows)
            lo, hi = _key_range(plan, n, r0, r1, length_k)
            for h0 in range(0, hkv, heads):
                h1 = min(hkv, h0 + heads)
                safe = every or bool(unshifted[n, h0:h1, :, r0:r1].all())
                tasks.append(Task(n, h0, h1, r0, r1, lo, hi, safe))
    tasks.sort(key=lambda t: -(t.hi - t.lo) * (t.r1 - t.r0) * (t.h1 - t.h0))  # longest first
    return tasks


def _factors(plan: Plan) -> tuple[float | None, float | None]:
    """What :func:`scaled_inputs` multiplies query and key by (None: taken as they are)."""
    root = math.sqrt(abs(plan.scale))
    if root == 1.0:
        return (None if plan.scale > 0 else -1.0), None
    _, _, groups, length_q, dim = plan.query.shape
    if groups * length_q < dim and plan.query.size:
        info = np.finfo(plan.query.dtype)
        largest = max(float(plan.query.max()), -float(plan.query.min()))
        if (
            float(info.tiny) <= abs(plan.scale)
            and abs(plan.scale) * largest <= float(info.max) / 16
        ):
            return plan.scale, None
    return (root if plan.scale > 0 else -root), root


def scaled_inputs(plan: Plan) -> tuple[FloatArray, FloatArray]:
    """Query and key each times ``sqrt(|scale|)`` (the query also by its sign).

    Their product is ``scale * query . key``, rounded as torch's reference path rounds it.
    When each kv head has fewer query rows than features (decoding), a scaled copy of the
    keys would cost as much as the call: the whole scale goes into the query instead.
    """
    q_factor, k_factor = _factors(plan)
    dtype = plan.query.dtype
    query: FloatArray = plan.query
    if q_factor == -1.0 and k_factor is None:
        query = np.negative(plan.query)
    elif q_factor is not None:
        query = np.multiply(plan.query, dtype.type(q_factor))
    key: FloatArray = plan.key if k_factor is None else np.multiply(plan.key, dtype.type(k_factor))
    return query, key


class _TaskInputs:
    """One task's scaled query rows, and its keys scaled chunk by chunk, for the forward.

    The numbers :func:`scaled_inputs` gives, made per task on the worker threads into
    small buffers that stay in cache, instead of whole scaled copies of query and key made
    before the threads start (each a serial pass that also faults in fresh memory).
    """

    def __init__(
        self, plan: Plan, factors: tuple[float | None, float | None], task: Task, chunk: int
    ) -> None:
        self.plan, self.factor = plan, factors[1]
        dtype = plan.query.dtype
        q = plan.query[task.n, task.h0 : task.h1, :, task.r0 : task.r1]  # (h, G, rows, D)
        heads, groups, rows, dim = q.shape
        self.query = np.empty((heads, groups * rows, dim), dtype)
        scaled = self.query.reshape(q.shape)
        if factors[0] is None:
            np.copyto(scaled, q)
        else:
            np.multiply(q, dtype.type(factors[0]), out=scaled)
        width = min(task.hi - task.lo, chunk)
        self.keys = np.empty(0 if self.factor is None else heads * width * dim, dtype)

    def operands(self, task: Task) -> tuple[FloatArray, FloatArray]:
        """Scaled query rows ``(h, G * rows, D)`` and keys, transposed, ``(h, D, width)``."""
        key = self.plan.key[task.n, task.h0 : task.h1, task.lo : task.hi]  # (h, width, D)
        if self.factor is None:
            return self.query, key.transpose(0, 2, 1)
        scaled = self.keys[: key.size].reshape(key.shape)
        np.multiply(key, key.dtype.type(self.factor), out=scaled)
        return self.query, scaled.transpose(0, 2, 1)


def make_tasks(
    plan: Plan,
    scaled: tuple[FloatArray, FloatArray] | None = None,
    prepared: Prepared | None = None,
    *,
    columns: int | None = None,
) -> list[Task]:
    """Cut ``plan`` into cache-sized tasks; ``scaled`` inputs enable the unshifted path.

    ``columns``: the key columns a task's body holds at once when it walks keys in chunks
    (None: all of them), so rows are sized for ``rows x columns`` blocks. The forward
    (:func:`run`) cuts with ``_FORWARD_COLUMNS``, or None when it returns the weights.
    """
    if scaled is None or prepared is None:
        unshifted = np.zeros(plan.query.shape[:4], dtype=bool)
    else:
        unshifted = _unshifted_rows(plan, scaled[1] is not plan.key, prepared)
    return _cut(plan, unshifted, columns)


def _cut(plan: Plan, unshifted: npt.NDArray[np.bool_], columns: int | None) -> list[Task]:
    """:func:`make_tasks` once the unshifted rows are known."""
    n_batch, hkv, groups, length_q, _ = plan.query.shape
    if n_batch * hkv * groups * length_q * plan.key.shape[2] < _PARALLEL_MIN_WORK:
        workers = 1  # for_each_task runs such calls serially: no point cutting for threads
    else:
        workers = _threads.worker_count()
    return _tasks(plan, unshifted, workers, columns)


def for_each_task(
    plan: Plan,
    tasks: list[Task],
    body: Callable[[Task, FloatArray], None],
    *,
    chunk: int | None = None,
) -> None:
    """Run ``body(task, buffer)`` for every task, on the worker threads when it pays.

    ``buffer`` is a per-thread scratch array large enough for any task's logits, or for
    ``chunk`` key columns of them when the body works over key chunks. Tasks are handed
    out in list order (the backward's :mod:`refattn._ordered` relies on it: a task only
    ever waits for earlier ones).
    """
    if not tasks:
        return
    groups, dtype = plan.query.shape[2], plan.query.dtype
    if len(tasks) == 1:  # one block (tiny calls): no thread machinery
        t = tasks[0]
        width = t.hi - t.lo if chunk is None else min(t.hi - t.lo, chunk)
        body(t, np.empty((t.h1 - t.h0) * groups * (t.r1 - t.r0) * width, dtype=dtype))
        return
    sizes = [(t.h1 - t.h0) * groups * (t.r1 - t.r0) * (t.hi - t.lo) for t in tasks]
    widest = max(
        (t.h1 - t.h0) * groups * (t.r1 - t.r0) * min(t.hi - t.lo, chunk or t.hi - t.lo)
        for t in tasks
    )
    counter = itertools.count()
    failed = False

    def worker() -> None:
        nonlocal failed
        buffer = np.empty(widest, dtype=dtype)
        while not failed:
            index = next(counter)
            if index >= len(tasks):
                return
            try:
                body(tasks[index], buffer)
            except BaseException:
                failed = True
                raise

    workers = min(_threads.worker_count(), len(tasks))
    if workers == 1 or sum(sizes) < _PARALLEL_MIN_WORK:
        worker()
    else:
        with _threads.single_threaded_blas():
            _threads.run_workers(worker, workers)


def cache_chunk(plan: Plan, tasks: list[Task]) -> int:
    """Key columns per chunk such that the widest task's ``rows x chunk`` block fits in cache."""
    rows = max(((t.h1 - t.h0) * plan.query.shape[2] * (t.r1 - t.r0) for t in tasks), default=1)
    return int(max(_MIN_CHUNK, _BLOCK_BYTES // (rows * plan.query.itemsize)))


def run(
    plan: Plan,
    *,
    need_weights: bool,
    prepared: Prepared | None = None,
) -> Outputs:
    """Compute attention for every block of ``plan``; shapes as in :class:`Outputs`.

    ``plan`` first goes through :func:`refattn._numerics.prepare` (or ``prepared`` is its
    result): the outputs are in the dtype it chose, float64 when float32 could overflow.
    """
    prepared = prepare(plan) if prepared is None else prepared
    plan, poison = prepared.plan, prepared.poison
    n_batch, hkv, groups, length_q, _ = plan.query.shape
    length_k, dim_v = plan.value.shape[2], plan.value.shape[3]
    dtype = plan.query.dtype
    res = Outputs(
        out=np.empty((n_batch, hkv, groups, length_q, dim_v), dtype=dtype),
        lse=np.empty((n_batch, hkv, groups, length_q), dtype=dtype),
        weights=np.zeros((n_batch, hkv, groups, length_q, length_k), dtype=dtype)
        if need_weights
        else None,
        poisoned=None if poison is None else np.zeros((n_batch, hkv, groups, length_q), bool),
    )
    factors = _factors(plan)  # each task scales its own rows and keys: see _TaskInputs
    unshifted = _unshifted_rows(plan, factors[1] is not None, prepared)
    ones = np.ones(length_k, dtype=dtype)
    if need_weights:  # every block whole: the weights are normalised by the whole row
        tasks = _cut(plan, unshifted, None)
        chunk = None
    else:  # keys in cache-sized chunks (an online softmax), whatever the memory budget
        tasks = _cut(plan, unshifted, _FORWARD_COLUMNS)
        chunk = cache_chunk(plan, tasks) if tasks else None
    unscaled = (plan.query, plan.key)  # logits reads the task's own inputs instead

    def body(task: Task, buffer: FloatArray) -> None:
        inputs = _TaskInputs(plan, factors, task, chunk or max(task.hi - task.lo, 1))
        if chunk is not None and task.hi > task.lo and _transposed(plan, task, poison):
            _block_transposed(plan, res, task, buffer, ones, chunk, inputs)
        elif chunk is not None and task.hi - task.lo > chunk:
            _block_online(plan, res, unscaled, task, buffer, ones, chunk, poison, inputs)
        else:
            _block(plan, res, unscaled, task, buffer, ones, poison, inputs)

    for_each_task(plan, tasks, body, chunk=chunk)
    if plan.fully_masked == "raise":
        _raise_on_dead_row(plan, res.lse)
    return res


def _raise_on_dead_row(plan: Plan, lse: FloatArray) -> None:
    """Raise for the first (in index order) row whose log-sum-exp is -inf."""
    dead = np.isneginf(lse)  # (N, Hkv, G, L): exactly the rows with no allowed key
    if not dead.any():
        return
    n, h, g, i = (int(x) for x in np.argwhere(dead)[0])
    batch_index = np.unravel_index(n, plan.batch_shape) if plan.batch_shape else ()
    raise FullyMaskedRowError(
        f"query row {i} of head {h * dead.shape[2] + g} at batch index "
        f"{tuple(int(x) for x in batch_index)} may attend to no key ({int(dead.sum())} such "
        f"rows in all): every key is removed by the masks, lengths, window or causal "
        f"alignment. Choose fully_masked='zero' (torch SDPA, flash-attn), 'uniform' (JAX) "
        f"or 'nan', or check the mask polarity (True = may attend)." + see("fully_masked_row_nan")
    )
