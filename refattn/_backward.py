"""Blocked analytic backward pass, recomputed from the log-sum-exp as flash attention does.

For one query row, with ``P`` the softmax weights, ``M`` the dropout keep-mask scaled by
``1 / (1 - p)`` (all ones without dropout) and ``O = (P * M) V`` the output::

    dV   = (P * M)^T dO                      (summed over the G query heads of a kv head)
    dP   = (dO V^T) * M
    dX   = P * (dP - rowsum(dO * O))         (gradient of the final logits = of the bias)
    dX'  = dX * (1 - tanh^2)                 (through the softcap, when there is one)
    dQ   = scale * dX' K,   dK = scale * dX'^T Q

With a sink logit ``z`` per head, ``P_sink = exp(z - lse)`` is the sink's share of the
row (``lse`` includes it); the sink has no value, so ``dX`` keeps the form above and::

    dz   = -sum over rows of P_sink * rowsum(dO * O)

``P`` is recomputed block by block as ``exp(logits - lse)``, so no ``(L, S)`` matrix is
ever stored. A fully masked row has ``lse = -inf``; using ``+inf`` in its place makes its
recomputed ``P`` exactly 0, so its gradients are 0 (policy ``"zero"``).

Calls whose rows see few enough keys take :mod:`refattn._backward_fused` instead: one
pass per block, without the forward. The chunked path here serves longer rows, inputs
holding NaN or inf, and ``fully_masked="raise"``.

Non-finite inputs follow the forward's rule (:mod:`refattn._numerics`): the gradients are
those of the inputs with non-finite entries replaced by 0, except that a row whose output
holds a NaN, or whose upstream gradient holds a NaN or inf, gets NaN gradients for its
query and for every key, value and bias entry it may attend; masked pairs carry nothing.
"""

from __future__ import annotations

import dataclasses
import math
import threading
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from refattn import _backward_fused, _kernel, _numerics, _ordered
from refattn.validation import Plan

FloatArray = npt.NDArray[np.floating]


@dataclass
class Gradients:
    """Gradients in the kernel's layout.

    Shapes: query ``(N, Hkv, G, L, D)``, key ``(N, Hkv, S, D)``, value
    ``(N, Hkv, S, Dv)``, bias ``(N, Hkv, G, L, S)`` or None, sinks ``(N, Hkv, G)`` or None.
    """

    query: FloatArray
    key: FloatArray
    value: FloatArray
    bias: FloatArray | None
    sinks: FloatArray | None = None


def run_backward(plan: Plan, grad_out: FloatArray, *, need_bias: bool) -> Gradients:
    """Gradients of ``sum(attention(plan) * grad_out)``; ``grad_out (N, Hkv, G, L, Dv)``."""
    prepared = _numerics.prepare(plan)
    dtype = prepared.plan.query.dtype
    grad_out = grad_out.astype(dtype, copy=False)
    if prepared.poison is None and plan.fully_masked != "raise":
        flat = _backward_fused.batch_as_heads(prepared)  # small calls: one block, not N
        one = prepared if flat is None else flat
        tasks = _kernel.make_tasks(one.plan, columns=_backward_fused.cut_columns(one.plan))
        if _backward_fused.fits(one.plan, tasks):
            rows = one.plan.query.shape[:4] + grad_out.shape[4:]
            q, k, v, b, s = _backward_fused.run_backward(
                one, grad_out.reshape(rows), tasks, need_bias=need_bias
            )
            if flat is None:
                return Gradients(q, k, v, b, s)
            heads = prepared.plan.key.shape[:2]  # (N, Hkv) again

            def split(grad: FloatArray) -> FloatArray:
                return grad.reshape(*heads, *grad.shape[2:])

            return Gradients(
                split(q),
                split(k),
                split(v),
                b if b is None else split(b),
                s if s is None else split(s),
            )
    forward = _kernel.run(plan, need_weights=False, prepared=prepared)
    plan = prepared.plan
    length_k = plan.key.shape[2]
    scaled = _kernel.scaled_inputs(plan)
    poisoned = forward.poisoned  # rows given NaN: recomputed as dead rows, NaN put back after
    upstream = grad_out  # as given, for the "uniform" rows that read every value
    # a non-finite upstream gradient poisons its row like a non-finite input does
    bad_grad: npt.NDArray[np.bool_] = np.asarray(~np.isfinite(grad_out).all(axis=-1))
    if bad_grad.any():
        grad_out = np.where(bad_grad[..., None], 0, grad_out)
        poisoned = bad_grad if poisoned is None else poisoned | bad_grad
    gone = np.isneginf(forward.lse) if poisoned is None else np.isneginf(forward.lse) | poisoned
    lse = np.where(gone, np.inf, forward.lse)
    out = np.where(gone[..., None], 0, forward.out)  # a gone row's P is 0: its delta unused
    delta = np.einsum("nhgld,nhgld->nhgl", grad_out, out)  # rowsum(dO * O)
    nan_keys = None if poisoned is None else np.zeros(plan.key.shape[:3], dtype=bool)
    grad_query = np.zeros_like(plan.query, dtype=dtype)
    grad_bias = np.zeros((*plan.query.shape[:4], length_k), dtype) if need_bias else None
    grad_key = np.zeros_like(plan.key)
    grad_value = np.zeros_like(plan.value)
    local = threading.local()  # per thread: its tasks' dK and dV accumulators
    lock = threading.Lock()
    keep_scale = 1.0 / (1.0 - plan.dropout_p)

    def body(task: _kernel.Task, buffer: FloatArray) -> None:
        n, h0, h1, r0, r1 = task.n, task.h0, task.h1, task.r0, task.r1
        heads, groups, rows = h1 - h0, plan.query.shape[2], r1 - r0
        bad_rows = None  # poisoned rows of this task, (h, G*rows, 1)
        if poisoned is not None:
            bad = poisoned[n, h0:h1, :, r0:r1].reshape(heads, groups * rows, 1)
            bad_rows = bad if bad.any() else None
        rows_of = (heads, groups * rows, -1)
        d_out = grad_out[n, h0:h1, :, r0:r1].reshape(rows_of)
        q = plan.query[n, h0:h1, :, r0:r1].reshape(rows_of)
        row_lse = lse[n, h0:h1, :, r0:r1].reshape(heads, groups * rows, 1)
        row_delta = delta[n, h0:h1, :, r0:r1].reshape(heads, groups * rows, 1)
        d_scaled = d_out
        if fold_scale:  # scale * dX = P * (scale * dO V^T - scale * delta): (rows, D) work
            d_scaled = d_out * dtype.type(plan.scale)
            row_delta = row_delta * dtype.type(plan.scale)
        d_query = np.zeros((heads, groups * rows, q.shape[2]), dtype)
        width = task.hi - task.lo  # this task's dK and dV rows, added to the others' in turn
        grads = _accumulators(heads, width)
        # keys in chunks: only (rows, chunk) blocks exist at a time, O(L + S) per worker
        for lo in range(task.lo, task.hi, chunk):
            hi = min(task.hi, lo + chunk)
            sub = dataclasses.replace(task, lo=lo, hi=hi)
            part = tuple(g[:, lo - task.lo : hi - task.lo] for g in grads)
            _chunk(sub, buffer, part, (d_out, d_scaled), q, row_lse, row_delta, d_query, bad_rows)
        grad_query[n, h0:h1, :, r0:r1] = d_query.reshape(heads, groups, rows, -1)
        if width:
            adds.add(task, grads)

    def _accumulators(heads: int, width: int) -> tuple[FloatArray, FloatArray]:
        """This thread's zeroed dK ``(h, width, D)`` and dV ``(h, width, Dv)`` of a task.

        Kept for the thread's next task: a fresh array per task would fault in its pages
        again every time.
        """
        shapes = ((heads, width, plan.key.shape[3]), (heads, width, plan.value.shape[3]))
        kept = getattr(local, "grads", None)
        if kept is None or any(b.size < math.prod(s) for b, s in zip(kept, shapes, strict=True)):
            kept = tuple(np.empty(math.prod(s), dtype) for s in shapes)
            local.grads = kept
        d_k, d_v = (b[: math.prod(s)].reshape(s) for b, s in zip(kept, shapes, strict=True))
        d_k.fill(0)
        d_v.fill(0)
        return d_k, d_v

    def _chunk(
        task: _kernel.Task,
        buffer: FloatArray,
        grads: tuple[FloatArray, ...],
        d_outs: tuple[FloatArray, FloatArray],
        q: FloatArray,
        row_lse: FloatArray,
        row_delta: FloatArray,
        d_query: FloatArray,
        bad_rows: npt.NDArray[np.bool_] | None,
    ) -> None:
        """Add one key chunk's share of dQ (to ``d_query``), dK and dV (to ``grads``).

        ``grads``: the chunk's rows of the task's dK ``(h, chunk, D)`` and dV
        ``(h, chunk, Dv)``. ``d_outs``: dO, and dO times ``scale`` when ``fold_scale``
        (else dO again).
        """
        chunk_key, chunk_value = grads
        d_out, d_scaled = d_outs
        n, h0, h1, r0, r1, lo, hi = task.n, task.h0, task.h1, task.r0, task.r1, task.lo, task.hi
        flat, tanh = _kernel.logits(plan, scaled, task, buffer, keep_tanh=True)
        shape4 = (h1 - h0, plan.query.shape[2], r1 - r0, hi - lo)  # (h, G, rows, width)
        reads = None  # allowed pairs of poisoned rows, (h, G*rows, width)
        if bad_rows is not None and nan_keys is not None:
            reads = (flat > -np.inf) & bad_rows
            with lock:
                nan_keys[n, h0:h1, lo:hi] |= reads.any(axis=1)
        flat -= row_lse
        flat *= flat.dtype.type(_kernel.LOG2E)
        probs = np.exp2(flat, out=flat)  # P, (h, G*rows, width)
        value = plan.value[n, h0:h1, lo:hi]
        keep = None
        flags = _kernel.keep_block(plan, task)
        if flags is not None:
            keep = flags.reshape(probs.shape) * keep_scale
        kept = probs if keep is None else probs * keep
        chunk_value += kept.transpose(0, 2, 1) @ d_out
        d_probs = d_scaled @ value.transpose(0, 2, 1)
        if keep is not None:
            d_probs *= keep
        d_probs -= row_delta
        d_logits = np.multiply(probs, d_probs, out=d_probs)
        if grad_bias is not None:
            grad_bias[n, h0:h1, :, r0:r1, lo:hi] = d_logits.reshape(shape4)
            if reads is not None:
                block = grad_bias[n, h0:h1, :, r0:r1, lo:hi]
                block[reads.reshape(shape4)] = np.nan
        if tanh is not None:
            d_logits *= (1 - tanh * tanh).reshape(d_logits.shape)
        if not fold_scale:
            d_logits *= plan.scale
        d_query += d_logits @ plan.key[n, h0:h1, lo:hi]
        chunk_key += d_logits.transpose(0, 2, 1) @ q

    # The scale multiplies dO and delta (O(L) work) instead of every (L, S) entry, unless the
    # bias gradient needs dX itself or an extreme scale could round dO badly.
    fold_scale = grad_bias is None and 1e-3 <= abs(plan.scale) <= 1.0
    tasks = _kernel.make_tasks(plan)
    chunk = _kernel.cache_chunk(plan, tasks)

    def _commit(task: _kernel.Task, parts: tuple[FloatArray, ...]) -> None:
        grad_key[task.n, task.h0 : task.h1, task.lo : task.hi] += parts[0]
        grad_value[task.n, task.h0 : task.h1, task.lo : task.hi] += parts[1]

    adds = _ordered.OrderedAdds(tasks, _commit)  # in list order: the same bits every call
    _kernel.for_each_task(plan, tasks, adds.guarded(body), chunk=chunk)
    if plan.fully_masked == "uniform" and length_k:
        # a fully masked row returns mean(V): each value gets 1/S of the row's dO
        dead = np.isneginf(forward.lse)[..., None]
        grad_value += (np.where(dead, upstream, 0).sum(axis=(2, 3)) / length_k)[:, :, None, :]
    grad_sinks = None
    if plan.sinks is not None:
        with np.errstate(invalid="ignore"):  # -inf sinks: exp(-inf - lse) is 0
            p_sink = np.exp(plan.sinks[..., None] - lse)  # (N, Hkv, G, L); 0 for gone rows
        grad_sinks = -np.einsum("nhgl,nhgl->nhg", np.nan_to_num(p_sink, nan=0.0), delta)
        if poisoned is not None:  # every row reads its head's sink
            grad_sinks[poisoned.any(axis=-1) & np.isfinite(plan.sinks)] = np.nan
    if poisoned is not None and nan_keys is not None:
        grad_query[poisoned] = np.nan
        grad_key[nan_keys] = np.nan
        grad_value[nan_keys] = np.nan
    return Gradients(grad_query, grad_key, grad_value, grad_bias, grad_sinks)
