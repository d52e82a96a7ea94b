"""Score-shaped inputs the kernel reads block by block, never materialised whole.

The kernel indexes every ``(..., Hq, L, S)`` input as ``x[n, h0:h1, :, r0:r1, lo:hi]`` in
its 5-D layout ``(N, Hkv, G, L, S)``, ``N`` the product of the batch dims. Two inputs
cannot be a plain view in that layout without a copy of the whole score tensor:

- :class:`BatchIndexed`: a broadcast ``attend_mask``, ``bias`` or ``dropout_keep`` whose
  batch dims do not merge into one axis (``(B1, 1, ...)`` broadcast over ``(B1, B2)``).
  Reshaping it to ``(N, ...)`` would copy every broadcast entry; instead batch entry ``n``
  is looked up as its multi-index.
- :class:`DrawnKeep`: the dropout keep-mask drawn from an ``rng``. One 64-bit seed is drawn
  from the generator (``rng.integers(2**63)``); entry ``e`` of the ``(..., Hq, L, S)``
  scores in C order is kept iff ``u(e) >= dropout_p``, where ``u(e)`` is the top 53 bits,
  over ``2**53``, of ``splitmix64(seed + (e + 1) * 0x9E3779B97F4A7C15)``. Each block draws
  only its own entries, so the mask depends on the seed alone: not on block sizes,
  threads or ``memory_budget``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


class BatchIndexed:
    """A ``(*batch, Hkv, G, L, S)`` view read as ``(N, Hkv, G, L, S)`` without a copy."""

    def __init__(self, full: npt.NDArray[Any], batch: tuple[int, ...]) -> None:
        self.array = full
        self.batch = batch
        self.shape = (math.prod(batch), *full.shape[len(batch) :])
        self.dtype = full.dtype

    def __getitem__(self, index: tuple[Any, ...]) -> npt.NDArray[Any]:
        """``index[0]`` is the flat batch entry ``n`` (an int); the rest as in NumPy."""
        first, *rest = index
        where = np.unravel_index(int(first), self.batch) if self.batch else ()
        block: npt.NDArray[Any] = self.array[(*where, *rest)]
        return block


def score_layout(
    full: npt.NDArray[Any], batch: tuple[int, ...], hkv: int, groups: int
) -> npt.NDArray[Any] | BatchIndexed:
    """``full (*batch, Hq, L, S)`` in the kernel's layout: a view, or a :class:`BatchIndexed`."""
    length_q, length_k = full.shape[-2:]
    split = full.reshape(*batch, hkv, groups, length_q, length_k)  # splitting never copies
    try:
        flat: npt.NDArray[Any] = np.reshape(
            split, (math.prod(batch), hkv, groups, length_q, length_k), copy=False
        )
    except ValueError:  # the batch dims do not merge without copying
        return BatchIndexed(split, batch)
    return flat


def _splitmix64(x: npt.NDArray[np.uint64]) -> None:
    """splitmix64's finaliser, in place (uint64 arithmetic wraps, as the algorithm wants)."""
    x ^= x >> np.uint64(30)
    x *= _MIX1
    x ^= x >> np.uint64(27)
    x *= _MIX2
    x ^= x >> np.uint64(31)


class DrawnKeep:
    """The dropout keep-mask of the scores ``(*batch, Hq, L, S)``, drawn block by block."""

    def __init__(self, rng: np.random.Generator, p: float, score_shape: tuple[int, ...]) -> None:
        self.seed = np.uint64(rng.integers(0, 2**63))
        self.p = p
        *batch, self.num_q_heads, self.length_q, self.length_k = score_shape
        self.shape = (math.prod(batch), self.num_q_heads, self.length_q, self.length_k)

    def block(self, n: int, heads: range, rows: range, cols: range) -> npt.NDArray[np.bool_]:
        """Keep flags ``(len(heads), len(rows), len(cols))`` of batch entry ``n``."""
        h = np.arange(heads.start, heads.stop, dtype=np.uint64)[:, None, None]
        i = np.arange(rows.start, rows.stop, dtype=np.uint64)[None, :, None]
        j = np.arange(cols.start, cols.stop, dtype=np.uint64)[None, None, :]
        row = (np.uint64(n) * np.uint64(self.num_q_heads) + h) * np.uint64(self.length_q) + i
        state = row * np.uint64(self.length_k) + j  # the entry's C-order index e
        state += np.uint64(1)
        state *= _GOLDEN
        state += self.seed
        _splitmix64(state)
        # (state >> 11) / 2**53 >= p  <=>  state >= ceil(p * 2**53) << 11, exactly
        threshold = np.uint64(math.ceil(self.p * 2.0**53) << 11)
        keep: npt.NDArray[np.bool_] = state >= threshold
        return keep

    def full(self) -> npt.NDArray[np.bool_]:
        """The whole mask ``(N, Hq, L, S)``; for tests and small calls only."""
        n_batch, hq, length_q, length_k = self.shape
        return np.stack(
            [self.block(n, range(hq), range(length_q), range(length_k)) for n in range(n_batch)]
        )
