"""An independent float64 reference: plain Python loops over (batch, head, query, key).

It shares no code with refattn: it reads the documented semantics and spells them one
scalar at a time, so a bug in refattn's vectorised path cannot hide in it too.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]


def loop_attention(
    q: npt.ArrayLike,
    k: npt.ArrayLike,
    v: npt.ArrayLike,
    *,
    attend_mask: Any = None,
    bias: Any = None,
    causal: str | None = None,
    window: tuple[int | None, int | None] | None = None,
    window_alignment: str | None = None,
    key_lengths: Any = None,
    query_lengths: Any = None,
    alibi_slopes: Any = None,
    softcap: float | None = None,
    scale: float | None = None,
    fully_masked: str = "zero",
    dropout_keep: Any = None,
    dropout_p: float = 0.0,
) -> tuple[F64, F64, F64]:
    """Return (output (..., Hq, L, Dv), weights (..., Hq, L, S), lse (..., Hq, L))."""
    q, k, v = (np.asarray(x, dtype=np.float64) for x in (q, k, v))
    *_, hq, length_q, dim = q.shape
    hkv, length_k, dim_v = k.shape[-3], k.shape[-2], v.shape[-1]
    batch = np.broadcast_shapes(q.shape[:-3], k.shape[:-3], v.shape[:-3])
    q = np.broadcast_to(q, (*batch, hq, length_q, dim))
    k = np.broadcast_to(k, (*batch, hkv, length_k, dim))
    v = np.broadcast_to(v, (*batch, hkv, length_k, dim_v))
    full = (*batch, hq, length_q, length_k)
    mask = np.ones(full, bool) if attend_mask is None else np.broadcast_to(attend_mask, full)
    add = np.zeros(full) if bias is None else np.broadcast_to(bias, full).astype(np.float64)
    keep = np.ones(full, bool) if dropout_keep is None else np.broadcast_to(dropout_keep, full)
    klen = np.broadcast_to(length_k if key_lengths is None else key_lengths, batch)
    qlen = np.broadcast_to(length_q if query_lengths is None else query_lengths, batch)
    slopes = None if alibi_slopes is None else np.broadcast_to(alibi_slopes, (*batch, hq))
    scale = 1.0 / math.sqrt(dim) if scale is None else scale
    group = hq // hkv

    def offset(alignment: str | None) -> int:
        return length_k - length_q if alignment == "bottom_right" else 0

    window_offset = offset(window_alignment or causal)
    out = np.zeros((*batch, hq, length_q, dim_v))
    weights = np.zeros(full)
    lse = np.zeros((*batch, hq, length_q))
    for b in np.ndindex(*batch):
        for h in range(hq):
            kh = h // group
            for i in range(length_q):
                logits: list[float] = []
                for j in range(length_k):
                    x = scale * sum(
                        float(q[b][h, i, d]) * float(k[b][kh, j, d]) for d in range(dim)
                    )
                    if softcap is not None:
                        x = softcap * math.tanh(x / softcap)
                    x += float(add[b][h, i, j])
                    if slopes is not None:
                        x -= float(slopes[b][h]) * abs(i + length_k - length_q - j)
                    allowed = bool(mask[b][h, i, j]) and bool(j < klen[b]) and bool(i < qlen[b])
                    if causal is not None:
                        allowed = allowed and j <= i + offset(causal)
                    if window is not None:
                        left, right = window
                        rel = j - (i + window_offset)
                        allowed = allowed and (left is None or rel >= -left)
                        allowed = allowed and (right is None or rel <= right)
                    logits.append(x if allowed else -math.inf)
                top = max(logits, default=-math.inf)
                if top == -math.inf:
                    lse[b][h, i] = -math.inf
                    if fully_masked == "uniform":
                        weights[b][h, i, :] = 1.0 / length_k
                        out[b][h, i] = [
                            sum(v[b][kh, j, e] for j in range(length_k)) / length_k
                            for e in range(dim_v)
                        ]
                    elif fully_masked == "nan":
                        weights[b][h, i, :] = math.nan
                        out[b][h, i] = math.nan
                    elif fully_masked == "raise":
                        raise ValueError("fully masked row")
                    continue
                exps = [math.exp(x - top) for x in logits]
                total = sum(exps)
                lse[b][h, i] = top + math.log(total)
                for j in range(length_k):
                    weights[b][h, i, j] = exps[j] / total
                for e in range(dim_v):
                    out[b][h, i, e] = sum(
                        exps[j] / total * (keep[b][h, i, j] / (1 - dropout_p)) * v[b][kh, j, e]
                        for j in range(length_k)
                    )
    return out, weights, lse


def loop_dropout_keep(rng: np.random.Generator, p: float, shape: tuple[int, ...]) -> Any:
    """The keep-mask ``attention(..., dropout_p=p, rng=rng)`` documents, one entry at a time.

    One seed ``rng.integers(0, 2**63)``; entry ``e`` (C order over ``shape``, the scores
    ``(..., Hq, L, S)``) is kept iff the top 53 bits of
    ``splitmix64(seed + (e + 1) * 0x9E3779B97F4A7C15)``, over ``2**53``, are ``>= p``.
    Spelled with Python integers, independently of refattn's vectorised draw.
    """
    seed = int(rng.integers(0, 2**63))
    wrap = (1 << 64) - 1

    def uniform(e: int) -> float:
        z = (seed + (e + 1) * 0x9E3779B97F4A7C15) & wrap
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & wrap
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & wrap
        z ^= z >> 31
        return (z >> 11) / 2.0**53

    flat = [uniform(e) >= p for e in range(math.prod(shape))]
    return np.array(flat, dtype=bool).reshape(shape)
