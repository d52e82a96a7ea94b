"""Blocked execution of the attention math for a validated :class:`~refattn.validation.Plan`.

The math is :data:`refattn.einsums.SCORES` then :data:`refattn.einsums.MIX`; here each
contraction runs as a BLAS matmul over one block of query rows (all ``G`` query heads of a
kv head stacked), restricted to the key columns the block can see at all. Blocks are
independent, so a small thread pool runs them on every core (NumPy's matmul and ufuncs
release the GIL).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from refattn.errors import FullyMaskedRowError
from refattn.validation import Plan

FloatArray = npt.NDArray[np.floating]

_ROWS_TARGET = 128  # query rows per block, all G heads of a kv head together
_PARALLEL_MIN_WORK = 1 << 18  # score entries below which threads cost more than they give
_pool: ThreadPoolExecutor | None = None


def _get_pool() -> ThreadPoolExecutor:
    global _pool
    if _pool is None:
        _pool = ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix="refattn")
    return _pool


@dataclass
class Outputs:
    """What the kernel writes: output ``(N, Hkv, G, L, Dv)``, lse ``(N, Hkv, G, L)``."""

    out: FloatArray
    lse: FloatArray
    weights: FloatArray | None  # (N, Hkv, G, L, S)


def _key_range(plan: Plan, n: int, r0: int, r1: int, length_k: int) -> tuple[int, int]:
    """Columns ``[lo, hi)`` that any of query rows ``[r0, r1)`` of batch entry ``n`` may see."""
    lo, hi = 0, length_k
    if plan.key_lengths is not None:
        hi = min(hi, int(plan.key_lengths[n]))
    if plan.causal_offset is not None:
        hi = min(hi, r1 - 1 + plan.causal_offset + 1)
    if plan.window is not None:
        left, right, offset = plan.window
        if right is not None:
            hi = min(hi, r1 - 1 + offset + right + 1)
        if left is not None:
            lo = max(lo, r0 + offset - left)
    lo = max(lo, 0)
    return lo, max(hi, lo)


def _structural_mask(
    plan: Plan, n: int, r0: int, r1: int, lo: int, hi: int
) -> npt.NDArray[np.bool_] | None:
    """Causal, window and query-length mask of one block ``(Lb, Sc)``; None if all pass."""
    rows = np.arange(r0, r1)[:, None]
    diff = np.arange(lo, hi)[None, :] - rows  # key index minus query index
    allowed: npt.NDArray[np.bool_] | None = None

    def both(cond: npt.NDArray[np.bool_]) -> npt.NDArray[np.bool_]:
        return cond if allowed is None else allowed & cond

    if plan.causal_offset is not None and hi - 1 - r0 > plan.causal_offset:
        allowed = both(diff <= plan.causal_offset)
    if plan.window is not None:
        left, right, offset = plan.window
        if right is not None and hi - 1 - r0 > offset + right:
            allowed = both(diff <= offset + right)
        if left is not None and lo - (r1 - 1) < offset - left:
            allowed = both(diff >= offset - left)
    if plan.query_lengths is not None and r1 > plan.query_lengths[n]:
        allowed = both(rows < plan.query_lengths[n])
    return allowed


def _block(plan: Plan, res: Outputs, n: int, h: int, r0: int, r1: int) -> None:
    """Attention for query rows ``[r0, r1)`` of every query head in kv group ``(n, h)``."""
    length_q, length_k = plan.query.shape[3], plan.key.shape[2]
    lo, hi = _key_range(plan, n, r0, r1, length_k)
    q = plan.query[n, h, :, r0:r1]  # (G, Lb, D), already scaled
    s = np.matmul(q, plan.key[n, h, lo:hi].T)  # (G, Lb, Sc): einsums.SCORES on this block

    if plan.softcap is not None:
        s /= plan.softcap
        np.tanh(s, out=s)
        s *= plan.softcap
    if plan.bias is not None:
        s += plan.bias[n, h, :, r0:r1, lo:hi]
    if plan.alibi_slopes is not None:
        distance = np.abs(
            np.arange(r0, r1)[:, None] + (length_k - length_q) - np.arange(lo, hi)[None, :]
        )
        s -= plan.alibi_slopes[n, h, :, None, None] * distance

    allowed = _structural_mask(plan, n, r0, r1, lo, hi)
    if plan.attend_mask is not None:
        block_mask = plan.attend_mask[n, h, :, r0:r1, lo:hi]
        allowed = block_mask if allowed is None else allowed & block_mask
    if allowed is not None:
        np.copyto(s, -np.inf, where=~allowed)

    # Stable softmax. A row with no allowed key has max -inf; shifting it by 0 instead
    # keeps exp() at exactly 0 there, so its sum is 0 and no finite fill is needed.
    if hi > lo:
        row_max = s.max(axis=-1, keepdims=True)
    else:
        row_max = np.full((*s.shape[:-1], 1), -np.inf, dtype=s.dtype)
    shift = np.where(np.isneginf(row_max), 0, row_max)
    s -= shift
    np.exp(s, out=s)
    total = s.sum(axis=-1, keepdims=True)  # (G, Lb, 1); 0 exactly for fully masked rows

    with np.errstate(divide="ignore"):
        res.lse[n, h, :, r0:r1] = (shift + np.log(total))[..., 0]
    dead = total[..., 0] == 0
    safe_total = np.where(total == 0, 1, total)
    if res.weights is not None:
        res.weights[n, h, :, r0:r1, lo:hi] = s / safe_total
    if plan.dropout_keep is not None:
        s *= plan.dropout_keep[n, h, :, r0:r1, lo:hi]
        s *= 1.0 / (1.0 - plan.dropout_p)
    out = np.matmul(s, plan.value[n, h, lo:hi])  # (G, Lb, Dv): einsums.MIX on this block
    out /= safe_total
    if dead.any():
        _fill_dead_rows(plan, res, out, dead, n, h, r0, r1)
    res.out[n, h, :, r0:r1] = out


def _fill_dead_rows(
    plan: Plan,
    res: Outputs,
    out: FloatArray,
    dead: npt.NDArray[np.bool_],
    n: int,
    h: int,
    r0: int,
    r1: int,
) -> None:
    """Apply the fully-masked-row policy to rows ``dead`` (G, Lb) of one block."""
    policy = plan.fully_masked
    if policy == "raise":
        g, i = (int(x) for x in np.argwhere(dead)[0])
        head = h * dead.shape[0] + g
        batch_index = np.unravel_index(n, plan.batch_shape) if plan.batch_shape else ()
        raise FullyMaskedRowError(
            f"query row {r0 + i} of head {head} at batch index {tuple(map(int, batch_index))} "
            f"may attend to no key ({int(dead.sum())} such rows in this block alone): every "
            f"key is removed by the masks, lengths, window or causal alignment. Choose "
            f"fully_masked='zero' (torch SDPA, flash-attn), 'uniform' (JAX) or 'nan', or "
            f"check the mask polarity (True = may attend)."
        )
    value = plan.value[n, h]
    length_k = value.shape[0]
    weights = None if res.weights is None else res.weights[n, h, :, r0:r1]
    if policy == "zero":
        out[dead] = 0
    elif policy == "nan":
        out[dead] = np.nan
        if weights is not None:
            weights[dead] = np.nan
    else:  # uniform: every key equally, masked or not (what JAX and Flax return)
        out[dead] = value.mean(axis=0) if length_k else np.nan
        if weights is not None:
            weights[dead] = 1.0 / length_k if length_k else np.nan


def run(plan: Plan, *, need_weights: bool) -> Outputs:
    """Compute attention for every block of ``plan``; shapes as in :class:`Outputs`."""
    n_batch, hkv, groups, length_q, _ = plan.query.shape
    length_k, dim_v = plan.value.shape[2], plan.value.shape[3]
    dtype = plan.query.dtype
    res = Outputs(
        out=np.empty((n_batch, hkv, groups, length_q, dim_v), dtype=dtype),
        lse=np.empty((n_batch, hkv, groups, length_q), dtype=dtype),
        weights=np.zeros((n_batch, hkv, groups, length_q, length_k), dtype=dtype)
        if need_weights
        else None,
    )
    rows = max(1, _ROWS_TARGET // groups)
    tasks = [
        (n, h, r0, min(r0 + rows, length_q))
        for n in range(n_batch)
        for h in range(hkv)
        for r0 in range(0, length_q, rows)
    ]
    work = n_batch * hkv * groups * length_q * max(length_k, 1)
    if len(tasks) > 1 and work >= _PARALLEL_MIN_WORK and (os.cpu_count() or 1) > 1:
        # list() re-raises the first exception a block raised (e.g. FullyMaskedRowError).
        list(_get_pool().map(lambda t: _block(plan, res, *t), tasks))
    else:
        for t in tasks:
            _block(plan, res, *t)
    return res
