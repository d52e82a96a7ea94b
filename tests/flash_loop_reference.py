"""An independent float64 reference for flash-attn 2's three functions: plain loops.

Written from flash-attn's documented semantics (``flash_attn/flash_attn_interface.py``
docstrings, ``tests/test_flash_attn.py::attention_ref``) and the facts read from its C++
(``csrc/flash_attn/flash_api.cpp``: window rewriting; ``csrc/flash_attn/src/mask.h``:
causal ALiBi adds ``slope * j``; ``softmax.h``: LSE ``+inf`` for a row with no key). It
imports nothing from refattn: one scalar logit at a time, its own rotary.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]


@dataclass
class Rules:
    """The window the kernel runs with; ``None`` for an unbounded side."""

    lo: int | None  # keys j >= i + sk - sq - lo
    hi: int | None  # keys j <= i + sk - sq + hi
    causal_kernel: bool  # the kernel's causal branch (ALiBi as slope * j)


def kernel_rules(
    causal: bool,
    window: tuple[int, int],
    sq_entry: int,
    sk_entry: int,
    alibi: bool,
    clip_first: bool,
) -> Rules:
    """flash_api.cpp's rewriting, spelled out step by step.

    ``sq_entry``/``sk_entry``: the lengths the C++ entry point sees. ``clip_first``: mha_fwd
    clips windows to the key length before applying causal; varlen and kvcache after.
    """
    left, right = window
    if clip_first:
        left = -1 if left >= sk_entry else left
        right = -1 if right >= sk_entry else right
    if sq_entry == 1 and not alibi:
        causal = False
    if causal:
        right = 0
    if not clip_first:
        left = -1 if left >= sk_entry else left
        right = -1 if right >= sk_entry else right
    if left < 0 and right == 0:
        return Rules(None, 0, True)
    if left < 0 and right < 0:
        return Rules(None, None, False)
    if left < 0:
        left = sk_entry
    if right < 0:
        right = sk_entry
    return Rules(left, right, False)


def allowed(i: int, j: int, sq: int, sk: int, rules: Rules) -> bool:
    """May query ``i`` see key ``j`` of a sequence with ``sq`` queries and ``sk`` keys."""
    centre = i + sk - sq
    if rules.lo is not None and j < centre - rules.lo:
        return False
    return not (rules.hi is not None and j > centre + rules.hi)


def sequence_attention(
    q: Any,
    k: Any,
    v: Any,
    rules: Rules,
    scale: float,
    softcap: float,
    slopes: Any,
) -> tuple[F64, F64]:
    """One sequence: ``q (sq, Hq, D)``, ``k``, ``v`` ``(sk, Hkv, D)``.

    Returns ``out (sq, Hq, D)`` and ``lse (Hq, sq)`` as the kernel writes it.
    """
    q, k, v = (np.asarray(x, dtype=np.float64) for x in (q, k, v))
    sq, hq, _ = q.shape
    sk, hkv = k.shape[0], k.shape[1]
    group = hq // hkv
    out = np.zeros((sq, hq, v.shape[2]))
    lse = np.full((hq, sq), np.inf)
    for h in range(hq):
        kv_head = h // group
        slope = 0.0 if slopes is None else float(slopes[h])
        for i in range(sq):
            logits: list[tuple[int, float]] = []
            for j in range(sk):
                if not allowed(i, j, sq, sk, rules):
                    continue
                s = scale * float(np.dot(q[i, h], k[j, kv_head]))
                if softcap > 0:
                    s = softcap * math.tanh(s / softcap)
                s -= slope * abs(i + sk - sq - j)
                logits.append((j, s))
            if not logits:
                continue  # zeros, LSE +inf
            top = max(s for _, s in logits)
            total = sum(math.exp(s - top) for _, s in logits)
            for j, s in logits:
                out[i, h] += math.exp(s - top) / total * v[j, kv_head]
            lse[h, i] = top + math.log(total)
            if rules.causal_kernel:
                lse[h, i] += slope * (i + sk - sq)  # mask.h: causal ALiBi adds slope * j
    return out, lse


def rotate(x: Any, cos: Any, sin: Any, position: int, interleaved: bool) -> F64:
    """Rotate one vector ``x (D,)`` at ``position`` with tables ``(P, R/2)``, in float64."""
    x = np.array(x, dtype=np.float64)
    half = len(cos[position])
    y: F64 = x.copy()
    for i in range(half):
        a, b = (2 * i, 2 * i + 1) if interleaved else (i, i + half)
        c, s = float(cos[position][i]), float(sin[position][i])
        y[a] = x[a] * c - x[b] * s
        y[b] = x[a] * s + x[b] * c
    return y


def func(
    q: Any,
    k: Any,
    v: Any,
    *,
    causal: bool = False,
    window: tuple[int, int] = (-1, -1),
    softcap: float = 0.0,
    slopes: Any = None,
    scale: float | None = None,
) -> tuple[F64, F64]:
    """flash_attn_func: ``(B, Sq, Hq, D)`` -> ``out (B, Sq, Hq, D)``, ``lse (B, Hq, Sq)``."""
    q, k, v = (np.asarray(x, dtype=np.float64) for x in (q, k, v))
    batch, sq, hq, dim = q.shape
    sk = k.shape[1]
    scale = dim**-0.5 if scale is None else scale
    rules = kernel_rules(causal, window, sq, sk, slopes is not None, clip_first=True)
    out = np.zeros(q.shape)
    lse = np.full((batch, hq, sq), np.inf)
    for b in range(batch):
        sl = None if slopes is None else np.broadcast_to(slopes, (batch, hq))[b]
        out[b], lse[b] = sequence_attention(q[b], k[b], v[b], rules, scale, softcap, sl)
    return out, lse


def varlen(
    q: Any,
    k: Any,
    v: Any,
    cu_q: Any,
    cu_k: Any,
    max_q: int,
    max_k: int,
    *,
    causal: bool = False,
    window: tuple[int, int] = (-1, -1),
    softcap: float = 0.0,
    slopes: Any = None,
    block_table: Any = None,
    scale: float | None = None,
) -> tuple[F64, F64]:
    """flash_attn_varlen_func: ``out (total_q, Hq, D)``, ``lse (Hq, total_q)``; NaN rows
    past ``cu_q[-1]``."""
    q, k, v = (np.asarray(x, dtype=np.float64) for x in (q, k, v))
    total_q, hq, dim = q.shape
    batch = len(cu_q) - 1
    rules = kernel_rules(causal, window, max_q, max_k, slopes is not None, clip_first=False)
    out = np.full(q.shape, np.nan)
    lse = np.full((hq, total_q), np.nan)
    for b in range(batch):
        q0, q1, k0, k1 = int(cu_q[b]), int(cu_q[b + 1]), int(cu_k[b]), int(cu_k[b + 1])
        if block_table is None:
            keys, values = k[k0:k1], v[k0:k1]
        else:
            page = k.shape[1]
            idx = [(int(block_table[b][p // page]), p % page) for p in range(k1 - k0)]
            keys = np.array([k[n, s] for n, s in idx]).reshape(k1 - k0, *k.shape[2:])
            values = np.array([v[n, s] for n, s in idx]).reshape(k1 - k0, *v.shape[2:])
        sl = None if slopes is None else np.broadcast_to(slopes, (batch, hq))[b]
        scale_b = dim**-0.5 if scale is None else scale
        o, lse_b = sequence_attention(q[q0:q1], keys, values, rules, scale_b, softcap, sl)
        out[q0:q1], lse[:, q0:q1] = o, lse_b
    return out, lse


def kvcache(
    q: Any,
    k_cache: Any,
    v_cache: Any,
    k: Any = None,
    v: Any = None,
    *,
    cos: Any = None,
    sin: Any = None,
    interleaved: bool = True,
    cache_seqlens: Any = None,
    cache_batch_idx: Any = None,
    cache_leftpad: Any = None,
    block_table: Any = None,
    causal: bool = False,
    window: tuple[int, int] = (-1, -1),
    softcap: float = 0.0,
    slopes: Any = None,
    scale: float | None = None,
) -> tuple[F64, F64, F64, F64]:
    """flash_attn_with_kvcache on copies: ``(out, lse, k_cache_after, v_cache_after)``."""
    q = np.asarray(q, dtype=np.float64)
    kc = np.array(k_cache, dtype=np.float64)
    vc = np.array(v_cache, dtype=np.float64)
    batch, sq, hq, dim = q.shape
    new = 0 if k is None else np.asarray(k).shape[1]
    paged = block_table is not None
    capacity = len(block_table[0]) * kc.shape[1] if paged else kc.shape[1]
    if cache_seqlens is None:
        seqlens = [capacity] * batch
    elif np.ndim(cache_seqlens) == 0:
        seqlens = [int(cache_seqlens)] * batch
    else:
        seqlens = [int(n) for n in cache_seqlens]
    rows = list(range(batch)) if cache_batch_idx is None else [int(r) for r in cache_batch_idx]
    pads = [0] * batch if cache_leftpad is None else [int(p) for p in cache_leftpad]
    rules = kernel_rules(causal, window, sq, capacity, slopes is not None, clip_first=False)
    moving = rules.causal_kernel or rules.lo is not None or rules.hi is not None

    def slot(b: int, p: int) -> tuple[int, int]:
        if paged:
            page = kc.shape[1]
            return int(block_table[b][p // page]), p % page
        return rows[b], p

    out = np.zeros(q.shape)
    lse = np.full((batch, hq, sq), np.inf)
    for b in range(batch):
        qb = q[b].copy()
        if cos is not None:
            for i in range(sq):
                pos = seqlens[b] + (i if moving else 0)
                for h in range(hq):
                    qb[i, h] = rotate(q[b, i, h], cos, sin, pos, interleaved)
        for j in range(new):
            n, s = slot(b, seqlens[b] + j)
            for h in range(kc.shape[2]):
                key = np.asarray(k, dtype=np.float64)[b, j, h]
                if cos is not None:
                    key = rotate(key, cos, sin, seqlens[b] + j, interleaved)
                kc[n, s, h] = key
                vc[n, s, h] = np.asarray(v, dtype=np.float64)[b, j, h]
        positions = range(pads[b], seqlens[b] + new)
        keys = np.array([kc[slot(b, p)] for p in positions]).reshape(-1, *kc.shape[2:])
        values = np.array([vc[slot(b, p)] for p in positions]).reshape(-1, *vc.shape[2:])
        sl = None if slopes is None else np.broadcast_to(slopes, (batch, hq))[b]
        scale_b = dim**-0.5 if scale is None else scale
        out[b], lse[b] = sequence_attention(qb, keys, values, rules, scale_b, softcap, sl)
    return out, lse, kc, vc
