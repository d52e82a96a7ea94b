r"""Packed sequences (``segment_ids``): which keys each query may see, per segment.

Query ``i`` may attend key ``j`` only when ``segment_q[i] == segment_k[j] >= 0``; a
negative id is padding. Everything that depends on positions is counted **within the
segment**: the position of a token is its rank among the tokens of its own segment on
its own axis (for a contiguous run, its offset from the run's first token), and a segment
with ``sq`` queries and ``sk`` keys aligns them as ``refattn.attention`` aligns a whole
call: ``"top_left"`` (query position ``p`` sees key positions ``<= p``) or
``"bottom_right"`` (``<= p + sk - sq``, flash-attn varlen's alignment). Segments need not
be contiguous: ranks are defined for any arrangement.

All arrays are built once per call, ``(N, L)`` for queries and ``(N, S)`` for keys, so the
kernel reads each block's mask as a comparison of two small vectors.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.intp]


@dataclass(frozen=True)
class Segments:
    """Segment ids and within-segment positions of a call.

    Shapes: ``N`` the flattened batch, ``L`` queries, ``S`` keys.

    Attributes:
        query_ids: ``(N, L)``; negative = padding.
        key_ids: ``(N, S)``; negative = padding.
        key_pos: ``(N, S)`` rank of each key within its segment.
        causal_pos: ``(N, L)`` the aligned query position ``p'`` (key positions ``<= p'``
            are visible), or None without ``causal``.
        window: ``(left, right)`` inclusive sides (None = unbounded), or None.
        window_pos: ``(N, L)`` the query position the window is centred on, or None.
        alibi_pos: ``(N, L)`` query position aligned bottom-right (``p + sk - sq``), the
            centre of ALiBi's distance.
        key_lo: ``(N, L)`` first key index query ``i`` may see (``S`` when none).
        key_hi: ``(N, L)`` one past the last (``0`` when none).
    """

    query_ids: IntArray
    key_ids: IntArray
    key_pos: IntArray
    causal_pos: IntArray | None
    window: tuple[int | None, int | None] | None
    window_pos: IntArray | None
    alibi_pos: IntArray
    key_lo: IntArray
    key_hi: IntArray

    def allowed(self, n: int, r0: int, r1: int, lo: int, hi: int) -> npt.NDArray[np.bool_]:
        """``(rows, width)``: which pairs of query rows ``[r0, r1)``, keys ``[lo, hi)`` survive."""
        q_ids = self.query_ids[n, r0:r1, None]
        ok: npt.NDArray[np.bool_] = (q_ids == self.key_ids[n, None, lo:hi]) & (q_ids >= 0)
        key_pos = self.key_pos[n, None, lo:hi]
        if self.causal_pos is not None:
            ok &= key_pos <= self.causal_pos[n, r0:r1, None]
        if self.window is not None and self.window_pos is not None:
            left, right = self.window
            centre = self.window_pos[n, r0:r1, None]
            if left is not None:
                ok &= key_pos >= centre - left
            if right is not None:
                ok &= key_pos <= centre + right
        return ok

    def distance(self, n: int, r0: int, r1: int, lo: int, hi: int) -> IntArray:
        """``(rows, width)``: ALiBi's ``|p + sk - sq - key position|`` within the segment."""
        d: IntArray = np.abs(self.alibi_pos[n, r0:r1, None] - self.key_pos[n, None, lo:hi])
        return d

    def key_range(self, n: int, r0: int, r1: int) -> tuple[int, int]:
        """Key columns ``[lo, hi)`` any of query rows ``[r0, r1)`` may see (maybe empty)."""
        if r1 <= r0:
            return 0, 0
        return int(self.key_lo[n, r0:r1].min()), int(self.key_hi[n, r0:r1].max())


def _ranks(ids: IntArray) -> tuple[IntArray, IntArray, IntArray]:
    """Rank of each entry among equal ids of its row, and the stable sort behind it.

    Args:
        ids: ``(N, T)``.

    Returns:
        ``ranks (N, T)``, ``order (N, T)`` (stable argsort of each row) and the sorted
        ids ``(N, T)``.
    """
    order = np.argsort(ids, axis=1, kind="stable")
    sorted_ids = np.take_along_axis(ids, order, axis=1)
    index = np.broadcast_to(np.arange(ids.shape[1]), ids.shape)
    first = np.ones(ids.shape, dtype=bool)
    first[:, 1:] = sorted_ids[:, 1:] != sorted_ids[:, :-1]
    start = np.maximum.accumulate(np.where(first, index, 0), axis=1)
    ranks = np.empty_like(ids)
    np.put_along_axis(ranks, order, index - start, axis=1)
    return ranks, order, sorted_ids


def build(
    query_ids: IntArray,
    key_ids: IntArray,
    causal: str | None,
    window: tuple[int | None, int | None] | None,
    window_alignment: str | None,
) -> Segments:
    """The :class:`Segments` of validated ids ``query_ids (N, L)``, ``key_ids (N, S)``.

    ``causal`` and ``window_alignment`` are ``"top_left"``, ``"bottom_right"`` or None.
    """
    q_rank, _, _ = _ranks(query_ids)
    k_rank, k_order, k_sorted = _ranks(key_ids)
    n_batch = query_ids.shape[0]
    length_k = key_ids.shape[1]
    q_sorted = np.sort(query_ids, axis=1)
    count_q = np.empty_like(query_ids)
    k_first = np.empty_like(query_ids)  # where the query's segment starts in sorted keys
    count_k = np.empty_like(query_ids)
    for n in range(n_batch):
        ids = query_ids[n]
        count_q[n] = np.searchsorted(q_sorted[n], ids, "right") - np.searchsorted(
            q_sorted[n], ids, "left"
        )
        k_first[n] = np.searchsorted(k_sorted[n], ids, "left")
        count_k[n] = np.searchsorted(k_sorted[n], ids, "right") - k_first[n]
    shift = count_k - count_q  # sk - sq of each query's segment

    def aligned(alignment: str | None) -> IntArray:
        return q_rank + shift if alignment == "bottom_right" else q_rank

    causal_pos = None if causal is None else aligned(causal)
    window_pos = None if window is None else aligned(window_alignment or causal)
    # the visible key ranks [first, last] of each query, then their key indices
    first = np.zeros_like(query_ids)
    last = count_k - 1
    if causal_pos is not None:
        last = np.minimum(last, causal_pos)
    if window is not None and window_pos is not None:
        if window[0] is not None:
            first = np.maximum(first, window_pos - window[0])
        if window[1] is not None:
            last = np.minimum(last, window_pos + window[1])
    empty = (first > last) | (query_ids < 0)
    key_lo = np.full_like(query_ids, length_k)
    key_hi = np.zeros_like(query_ids)
    if length_k:
        pick_first = np.clip(k_first + first, 0, length_k - 1)
        pick_last = np.clip(k_first + last, 0, length_k - 1)
        lo = np.take_along_axis(k_order, pick_first, axis=1)
        hi = np.take_along_axis(k_order, pick_last, axis=1) + 1
        key_lo = np.where(empty, length_k, lo)
        key_hi = np.where(empty, 0, hi)
    return Segments(
        query_ids=query_ids,
        key_ids=key_ids,
        key_pos=k_rank,
        causal_pos=causal_pos,
        window=window,
        window_pos=window_pos,
        alibi_pos=q_rank + shift,
        key_lo=key_lo,
        key_hi=key_hi,
    )
