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
    segment_ids: Any = None,
    key_segment_ids: Any = None,
    sinks: Any = None,
) -> tuple[F64, F64, F64]:
    """Return (output (..., Hq, L, Dv), weights (..., Hq, L, S), lse (..., Hq, L)).

    With ``segment_ids`` (``key_segment_ids`` defaults to them), query ``i`` sees key
    ``j`` only when both ids are equal and ``>= 0``, and causal, window and ALiBi use
    positions counted within the segment (a token's position: how many earlier tokens
    on its axis share its id) and the segment's own lengths ``sq``, ``sk``. ``sinks``
    ``(Hq,)`` or ``(..., Hq)`` adds ``exp(sink)`` to each row's denominator (no value).
    """
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

    sink = None if sinks is None else np.broadcast_to(sinks, (*batch, hq)).astype(np.float64)
    seg_q = seg_k = None
    if segment_ids is not None:
        seg_q = np.broadcast_to(segment_ids, (*batch, length_q))
        ids_k = segment_ids if key_segment_ids is None else key_segment_ids
        seg_k = np.broadcast_to(ids_k, (*batch, length_k))

    def positions(b: tuple[int, ...], i: int, j: int) -> tuple[int, int, int, int]:
        """(query position, key position, sq, sk) of pair (i, j), per segment if any."""
        if seg_q is None or seg_k is None:
            return i, j, length_q, length_k
        qs, ks = [int(x) for x in seg_q[b]], [int(x) for x in seg_k[b]]
        sid = qs[i]
        pos_q = sum(1 for t in range(i) if qs[t] == sid)
        pos_k = sum(1 for t in range(j) if ks[t] == ks[j])
        return pos_q, pos_k, qs.count(sid), ks.count(sid)

    def aligned(alignment: str | None, sq: int, sk: int) -> int:
        return sk - sq if alignment == "bottom_right" else 0

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
                    pi, pj, sq, sk = positions(b, i, j)
                    if slopes is not None:
                        x -= float(slopes[b][h]) * abs(pi + sk - sq - pj)
                    allowed = bool(mask[b][h, i, j]) and bool(j < klen[b]) and bool(i < qlen[b])
                    if seg_q is not None and seg_k is not None:
                        allowed = allowed and int(seg_q[b][i]) == int(seg_k[b][j]) >= 0
                    if causal is not None:
                        allowed = allowed and pj <= pi + aligned(causal, sq, sk)
                    if window is not None:
                        left, right = window
                        rel = pj - (pi + aligned(window_alignment or causal, sq, sk))
                        allowed = allowed and (left is None or rel >= -left)
                        allowed = allowed and (right is None or rel <= right)
                    logits.append(x if allowed else -math.inf)
                sink_logit = -math.inf if sink is None else float(sink[b][h])
                top = max([*logits, sink_logit])
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
                total = sum(exps) + math.exp(sink_logit - top)
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
