"""Autoregressive decoding with a growing key/value cache.

A decoder computes each new token's query, key and value once, appends the key and value
to a cache and attends the new queries to everything cached. The new queries are the
*last* ``L`` positions of a sequence of ``S`` cached keys, so causality is aligned
**bottom-right**: query ``i`` sees keys ``j <= i + S - L``. With top-left alignment
(torch and JAX ``is_causal``) a single decoded token would see only key 0, the first
token of the prompt: the classic bug of porting a training-time attention to a decode
loop. :meth:`KVCache.attend` always aligns bottom-right.

:meth:`KVCache.paged` builds the same cache on a *paged* layout, the one vLLM and
flash-attn's ``flash_attn_with_kvcache(..., block_table=...)`` use: keys and values live in
a shared pool of fixed-size blocks ``(num_blocks, page_block_size, Hkv, D)`` and a block
table ``(B, max_blocks)`` maps sequence ``b``'s logical block ``n`` (its positions
``n * page_block_size`` to ``(n + 1) * page_block_size - 1``) to the physical block
``block_table[b, n]`` of the pool. Position ``p`` of sequence ``b`` is stored at
``pool[block_table[b, p // page_block_size], p % page_block_size]``.
"""

from __future__ import annotations

from typing import Unpack

import numpy as np
import numpy.typing as npt

from refattn.errors import (
    AttentionDTypeError,
    AttentionMemoryError,
    AttentionShapeError,
    AttentionValueError,
)
from refattn.reference import AttentionOptions, attention
from refattn.validation import (
    _OPTION_NAMES,
    _kind,
    as_array,
    check_allocation,
    check_keywords,
    float_array,
    see,
)

FloatArray = npt.NDArray[np.floating]
IntArray = npt.NDArray[np.integer]


def _shape(shape: tuple[int, ...]) -> str:
    return str(tuple(int(n) for n in shape))


def _read_only(arr: FloatArray) -> FloatArray:
    view = arr.view()
    view.flags.writeable = False
    return view


def _positive_int(name: str, value: object, what: str) -> int:
    if isinstance(value, bool | np.bool_) or not isinstance(value, int | np.integer) or value < 1:
        raise AttentionValueError(
            f"{name} should be an int >= 1: but got {value!r} of type "
            f"{type(value).__name__}. Pass {what}."
        )
    return int(value)


def _block_table(x: object, batch: int) -> IntArray:
    """A copy of the block table ``(B, max_blocks)`` in its integer dtype, or a named error."""
    table = as_array("block_table", x)
    if table.dtype.kind not in "iu":
        raise AttentionDTypeError(
            f"block_table should be an integer array of physical block indices: but got "
            f"{_kind(table.dtype)} dtype {table.dtype}. Convert with "
            f"np.asarray(block_table, dtype=np.int32) (flash-attn wants int32)."
        )
    if table.ndim != 2 or table.shape[0] != batch:
        raise AttentionShapeError(
            f"block_table shape should be (B, max_blocks) with B={batch} (key's batch): but "
            f"got {_shape(table.shape)}. Pass one row per sequence, listing the pool blocks "
            f"of its positions 0..page_block_size-1, page_block_size..., in order."
        )
    return table.copy()


def _table_entries(table: IntArray, num_blocks: int) -> None:
    if table.size and (table.min() < 0 or table.max() >= num_blocks):
        b, n = (int(i) for i in np.argwhere((table < 0) | (table >= num_blocks))[0])
        raise AttentionValueError(
            f"block_table entries should lie in [0, num_blocks) = [0, {num_blocks}): but got "
            f"block_table[{b}, {n}] = {int(table[b, n])}. Each entry is a block of the pool: "
            f"pass num_blocks= the pool size, and list only allocated blocks (a table padded "
            f"with -1 needs its padding columns dropped)."
        )
    values, counts = np.unique(table, return_counts=True)
    if (counts > 1).any():
        twice = int(values[counts > 1][0])
        where = [tuple(int(i) for i in ix) for ix in np.argwhere(table == twice)]
        raise AttentionValueError(
            f"block_table should list each physical block once: but got block {twice} at "
            f"{where}. Two logical blocks on one physical block overwrite each other's "
            f"keys; give each its own block (shared prefixes are not modelled)."
        )


class KVCache:
    """A key/value cache ``(..., Hkv, S, D)`` / ``(..., Hkv, S, Dv)`` that grows along ``S``.

    Storage is over-allocated and doubled when full, so appending one token at a time
    costs amortised ``O(1)`` copies per token; :attr:`keys` and :attr:`values` are views
    of the filled part. :meth:`paged` builds the cache on a pool of fixed-size blocks
    ``(num_blocks, page_block_size, Hkv, D)`` mapped by a block table instead (vLLM's and
    flash-attn's paged layout), with the same methods.

    Args:
        key: the prompt's keys ``(..., Hkv, S0, D)`` (prefill); ``S0`` may be 0.
        value: the prompt's values ``(..., Hkv, S0, Dv)``, same dtype and leading dims.
        capacity: initial storage length along ``S``; default ``max(S0, 16)``.

    A call that raises leaves the cache as it was: arguments are checked before anything
    is stored, and :meth:`step` undoes its append when the attention fails.

    Raises:
        AttentionShapeError: key and value whose shapes do not fit together.
        AttentionDTypeError: non-floating or mixed dtypes.
        AttentionValueError: a capacity that is not an int >= ``S0``.
        AttentionMemoryError: a capacity larger than this machine's memory.

    Examples:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> k, v = rng.standard_normal((2, 1, 2, 5, 8))  # (B, Hkv, S0, D): 5 prompt tokens
        >>> cache = KVCache(k, v)
        >>> q = rng.standard_normal((1, 4, 1, 8))  # (B, Hq, 1, D): one new token, GQA
        >>> k1, v1 = rng.standard_normal((2, 1, 2, 1, 8))
        >>> cache.step(q, k1, v1).shape, cache.length  # attends to 6 keys
        ((1, 4, 1, 8), 6)
    """

    def __init__(self, key: npt.ArrayLike, value: npt.ArrayLike, capacity: int | None = None):
        k, v = self._check("key", key, None), self._check("value", value, None)
        if v.dtype != k.dtype:
            raise AttentionDTypeError(
                f"value dtype should be key's {k.dtype}: but got {v.dtype}. Cast one of "
                f"them, e.g. value.astype(key.dtype); the cache stores one dtype and "
                f"attention refuses mixed ones."
            )
        self._check_pair(k, v, None)
        length = int(k.shape[-2])
        if capacity is None:
            capacity = max(length, 16)
        if (
            isinstance(capacity, bool | np.bool_)
            or not isinstance(capacity, int | np.integer)
            or capacity < length
        ):
            raise AttentionValueError(
                f"capacity should be an int >= the prompt length S0={length}: but got "
                f"{capacity!r}. Pass None for max(S0, 16) (storage doubles when full), or "
                f"the longest sequence you will decode."
            )
        capacity = int(capacity)
        for name, arr in (("key", k), ("value", v)):
            check_allocation(
                f"KVCache(capacity={capacity})",
                f"{name} storage (..., Hkv, capacity, {'D' if name == 'key' else 'Dv'})",
                (*arr.shape[:-2], capacity, arr.shape[-1]),
                arr.dtype.itemsize,
                "Pass a smaller capacity, or None: storage doubles when full, so a "
                "capacity is only a hint.",
            )
        self._keys = np.empty((*k.shape[:-2], capacity, k.shape[-1]), dtype=k.dtype)
        self._values = np.empty((*v.shape[:-2], capacity, v.shape[-1]), dtype=v.dtype)
        self._keys[..., :length, :] = k
        self._values[..., :length, :] = v
        self._length = length
        self._table: IntArray | None = None  # paged mode: (B, max_blocks), see paged()

    @classmethod
    def paged(
        cls,
        key: npt.ArrayLike,
        value: npt.ArrayLike,
        block_table: npt.ArrayLike,
        page_block_size: int,
        num_blocks: int | None = None,
    ) -> KVCache:
        """A cache whose positions live in blocks of a shared pool, mapped by a block table.

        Layout (flash-attn's ``flash_attn_with_kvcache`` with ``block_table``, vLLM's
        paged attention):

        - key pool ``(num_blocks, page_block_size, Hkv, D)`` and value pool
          ``(num_blocks, page_block_size, Hkv, Dv)``: :attr:`key_pool`, :attr:`value_pool`,
          zero-filled at the start;
        - block table ``(B, max_blocks)``: sequence ``b``'s position ``p`` is stored at
          ``pool[block_table[b, p // page_block_size], p % page_block_size]``, so the cache
          holds at most ``max_blocks * page_block_size`` positions per sequence
          (:attr:`capacity`).

        The API is the dense cache's, in refattn's ``(B, H, S, D)`` layout: :meth:`append`,
        :meth:`attend`, :meth:`step`, and :attr:`keys` / :attr:`values` gathered through the
        table to ``(B, Hkv, S, D)``. Every sequence of the batch has the same length.
        The pools and table can be handed to
        :func:`refattn.compat.flash_attn.flash_attn_with_kvcache` as ``k_cache``, ``v_cache``
        and ``block_table`` to read the cache (build the table as int32, as flash-attn
        wants; the table keeps the dtype it was given).

        Args:
            key: the prompt's keys ``(B, Hkv, S0, D)``; ``S0`` may be 0.
            value: the prompt's values ``(B, Hkv, S0, Dv)``, same dtype.
            block_table: integers ``(B, max_blocks)``, each in ``[0, num_blocks)``, no
                physical block listed twice (sequences do not share blocks). Copied.
            page_block_size: positions per block, an int >= 1.
            num_blocks: blocks in the pool; default ``block_table.max() + 1``.

        Raises:
            AttentionShapeError: a block table that is not ``(B, max_blocks)``; key and
                value that do not fit together or are not 4-D.
            AttentionDTypeError: a block table that is not integer; key/value dtypes.
            AttentionValueError: a block-table entry outside ``[0, num_blocks)`` or listed
                twice; a prompt longer than the table's capacity; a bad
                ``page_block_size`` or ``num_blocks``.
            AttentionMemoryError: a pool larger than this machine's memory.

        Examples:
            >>> import numpy as np
            >>> rng = np.random.default_rng(0)
            >>> k, v = rng.standard_normal((2, 1, 2, 3, 8))  # (B, Hkv, S0, D): 3 prompt tokens
            >>> table = np.array([[2, 0]], dtype=np.int32)  # blocks 2 then 0 of a pool of 3
            >>> cache = KVCache.paged(k, v, table, page_block_size=2, num_blocks=3)
            >>> cache.key_pool.shape, cache.capacity
            ((3, 2, 2, 8), 4)
            >>> bool((cache.key_pool[2, 1] == k[0, :, 1]).all())  # position 1: block 2, slot 1
            True
        """
        k, v = cls._check("key", key, None), cls._check("value", value, None)
        if v.dtype != k.dtype:
            raise AttentionDTypeError(
                f"value dtype should be key's {k.dtype}: but got {v.dtype}. Cast one of "
                f"them, e.g. value.astype(key.dtype); the cache stores one dtype and "
                f"attention refuses mixed ones."
            )
        cls._check_pair(k, v, None)
        if k.ndim != 4:
            raise AttentionShapeError(
                f"key shape should be (B, Hkv, S0, D) for a paged cache: but got "
                f"{_shape(k.shape)}. A block table has one row per sequence: flatten extra "
                f"batch axes with key.reshape(-1, *key.shape[-3:]) (the same for value)."
            )
        page = _positive_int(
            "page_block_size", page_block_size, "the number of positions per block, e.g. 16"
        )
        table = _block_table(block_table, int(k.shape[0]))
        if num_blocks is None:
            blocks = int(table.max()) + 1 if table.size else 0
        else:
            blocks = _positive_int("num_blocks", num_blocks, "the pool's number of blocks")
        _table_entries(table, blocks)
        cache = cls.__new__(cls)
        cache._table = table
        cache._length = 0
        length = int(k.shape[-2])
        cache._check_room(length, length, table, page)
        for name, arr in (("key", k), ("value", v)):
            check_allocation(
                f"KVCache.paged(num_blocks={blocks}, page_block_size={page})",
                f"the {name} pool (num_blocks, page_block_size, Hkv, "
                f"{'D' if name == 'key' else 'Dv'})",
                (blocks, page, arr.shape[1], arr.shape[3]),
                arr.dtype.itemsize,
                "Pass fewer or smaller blocks: the pool needs only as many blocks as the "
                "block table lists.",
            )
        cache._keys = np.zeros((blocks, page, k.shape[1], k.shape[3]), dtype=k.dtype)
        cache._values = np.zeros((blocks, page, v.shape[1], v.shape[3]), dtype=v.dtype)
        cache._store(k, v)
        return cache

    @property
    def is_paged(self) -> bool:
        """Whether the cache was built by :meth:`paged`."""
        return self._table is not None

    @property
    def page_block_size(self) -> int | None:
        """Positions per block of a paged cache; None for a dense one."""
        return None if self._table is None else int(self._keys.shape[1])

    @property
    def capacity(self) -> int:
        """Positions the storage holds now (dense: grows when full; paged: fixed)."""
        if self._table is None:
            return int(self._keys.shape[-2])
        return int(self._table.shape[1]) * int(self._keys.shape[1])

    @property
    def block_table(self) -> IntArray | None:
        """The block table ``(B, max_blocks)`` of a paged cache (read-only); None if dense."""
        if self._table is None:
            return None
        view = self._table.view()
        view.flags.writeable = False
        return view

    @property
    def key_pool(self) -> FloatArray | None:
        """The key pool ``(num_blocks, page_block_size, Hkv, D)`` (read-only); None if dense."""
        return None if self._table is None else _read_only(self._keys)

    @property
    def value_pool(self) -> FloatArray | None:
        """The value pool ``(num_blocks, page_block_size, Hkv, Dv)`` (read-only); None if dense."""
        return None if self._table is None else _read_only(self._values)

    @property
    def length(self) -> int:
        """``S``, the number of cached positions."""
        return self._length

    @property
    def keys(self) -> FloatArray:
        """The cached keys ``(..., Hkv, S, D)``, read-only (paged: gathered, a copy)."""
        if self._table is not None:
            return _read_only(self._gather(self._keys))
        return _read_only(self._keys[..., : self._length, :])

    @property
    def values(self) -> FloatArray:
        """The cached values ``(..., Hkv, S, Dv)``, read-only (paged: gathered, a copy)."""
        if self._table is not None:
            return _read_only(self._gather(self._values))
        return _read_only(self._values[..., : self._length, :])

    def _slots(self, start: int, stop: int) -> tuple[IntArray, IntArray]:
        """Physical (block ``(B, T)``, slot ``(T,)``) of positions ``start .. stop - 1``."""
        assert self._table is not None
        page = int(self._keys.shape[1])
        positions = np.arange(start, stop)
        return self._table[:, positions // page], positions % page

    def _gather(self, pool: FloatArray) -> FloatArray:
        """``(num_blocks, page, Hkv, D)`` pool -> ``(B, Hkv, S, D)`` through the block table."""
        blocks, slots = self._slots(0, self._length)
        return pool[blocks, slots].transpose(0, 2, 1, 3)  # (B, S, Hkv, D) -> (B, Hkv, S, D)

    def append(self, key: npt.ArrayLike, value: npt.ArrayLike) -> None:
        """Append ``T >= 1`` new positions: key ``(..., Hkv, T, D)``, value ``(..., Hkv, T, Dv)``.

        Raises:
            AttentionShapeError: head, feature or leading dims that differ from the cache's.
            AttentionDTypeError: a dtype other than the cache's.
            AttentionValueError: (paged) more positions than the block table holds.

        Examples:
            >>> import numpy as np
            >>> cache = KVCache(np.zeros((1, 2, 3, 4)), np.zeros((1, 2, 3, 4)))
            >>> cache.append(np.ones((1, 2, 2, 4)), np.ones((1, 2, 2, 4)))
            >>> cache.keys.shape
            (1, 2, 5, 4)
        """
        self._append_checked(*self._checked(key, value))

    def _checked(self, key: npt.ArrayLike, value: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
        """New keys and values checked against the cache: ``(..., Hkv, T, D)``, ``(..., Dv)``."""
        k = self._check("key", key, self._keys.dtype)
        v = self._check("value", value, self._keys.dtype)
        if self._table is None:
            lead = tuple(int(n) for n in self._keys.shape[:-2])
        else:  # pool (num_blocks, page, Hkv, D): new keys are (B, Hkv, T, D)
            lead = (int(self._table.shape[0]), int(self._keys.shape[2]))
        self._check_pair(k, v, (lead, int(self._keys.shape[-1])))
        if v.shape[-1] != self._values.shape[-1]:
            raise AttentionShapeError(
                f"value feature size should be the cache's Dv={self._values.shape[-1]}: but "
                f"got value {_shape(v.shape)}. Append the values of the same projection "
                f"the cache was built from." + see("kv_cache_concat_wrong_axis")
            )
        if self._table is not None:
            end = self._length + int(k.shape[-2])
            self._check_room(end, int(k.shape[-2]), self._table, int(self._keys.shape[1]))
        return k, v

    def _append_checked(self, k: FloatArray, v: FloatArray) -> None:
        new = k.shape[-2]
        end = self._length + new
        if self._table is None and end > self._keys.shape[-2]:
            capacity = self._capacity_for(end, new)
            keys = self._grow(self._keys, capacity)
            self._values = self._grow(self._values, capacity)
            self._keys = keys
        self._store(k, v)

    def _store(self, k: FloatArray, v: FloatArray) -> None:
        """Write checked ``(..., Hkv, T, D)`` keys and values after the cached positions."""
        end = self._length + int(k.shape[-2])
        if self._table is None:
            self._keys[..., self._length : end, :] = k
            self._values[..., self._length : end, :] = v
        else:
            blocks, slots = self._slots(self._length, end)  # (B, T), (T,)
            self._keys[blocks, slots] = k.transpose(0, 2, 1, 3)  # (B, T, Hkv, D)
            self._values[blocks, slots] = v.transpose(0, 2, 1, 3)
        self._length = end

    @staticmethod
    def _check_room(end: int, new: int, table: IntArray, page: int) -> None:
        room = int(table.shape[1]) * page
        if end > room:
            raise AttentionValueError(
                f"cache length after adding {new} positions should be at most the block "
                f"table's capacity max_blocks * page_block_size = {table.shape[1]} * {page} "
                f"= {room}: but got {end}, a sequence outgrowing its blocks. Build the "
                f"cache with a block table of more columns (one more block per "
                f"{page} positions); a paged cache does not allocate blocks itself."
                + see("kv_cache_written_past_capacity")
            )

    def attend(self, query: npt.ArrayLike, **options: Unpack[AttentionOptions]) -> FloatArray:
        """Attend the newest ``L`` positions' queries to the whole cache, causally.

        ``query (..., Hq, L, D)`` holds the queries of the last ``L`` cached positions
        (append their keys first); the causal mask is aligned bottom-right, so query
        ``i`` sees keys ``j <= i + S - L``.

        Args:
            query: ``(..., Hq, L, D)`` with ``L <= S``.
            **options: other keywords of :func:`refattn.attention` (``window``,
                ``alibi_slopes``, ``softcap``, ``scale``, ...); ``causal`` is fixed to
                ``"bottom_right"``.

        Returns:
            ``(..., Hq, L, Dv)``.

        Raises:
            AttentionShapeError: ``L > S`` (queries for positions not in the cache).
            AttentionValueError: a ``causal`` option.
            AttentionArgumentError: ``return_weights``/``return_lse`` or an unknown keyword.

        Examples:
            >>> import numpy as np
            >>> cache = KVCache(np.zeros((1, 3, 4)), np.arange(12.0).reshape(1, 3, 4))
            >>> cache.attend(np.zeros((1, 1, 4)))  # uniform over 3 keys: the mean value
            array([[[4., 5., 6., 7.]]])
        """
        self._check_options(options)
        return self._attend(query, self._length, options)

    def _check_options(self, options: AttentionOptions) -> None:
        check_keywords(
            {name: value for name, value in options.items() if name not in _OPTION_NAMES},
            "to KVCache.attend/step",
        )
        if "causal" in options:
            raise AttentionValueError(
                f"causal should not be passed to KVCache.attend: but got "
                f"causal={options['causal']!r}. Decoding is causal and aligned "
                f"'bottom_right' (the queries are the last L cached positions): drop it; "
                f"for other masks call refattn.attention(query, cache.keys, cache.values, "
                f"...)." + see("top_left_causal_for_kv_cache")
            )

    def _attend(self, query: npt.ArrayLike, length: int, options: AttentionOptions) -> FloatArray:
        q = float_array("query", query)
        if q.ndim >= 3 and q.shape[-2] > length:
            raise AttentionShapeError(
                f"query length should be at most the cached length S={length}: but "
                f"got L={q.shape[-2]} (query {_shape(q.shape)}). The queries belong to the "
                f"last L cached positions: append their keys and values first."
            )
        aligned = AttentionOptions(**options)
        aligned["causal"] = "bottom_right"
        return attention(q, self.keys, self.values, **aligned)

    def step(
        self,
        query: npt.ArrayLike,
        key: npt.ArrayLike,
        value: npt.ArrayLike,
        **options: Unpack[AttentionOptions],
    ) -> FloatArray:
        """Append ``key``/``value`` for ``T`` new positions, then attend their ``query``.

        Equal to ``append(key, value)`` then ``attend(query, **options)``, except that a
        call that raises (a bad query or option included) leaves the cache unchanged, so it
        can be retried.

        Examples:
            >>> import numpy as np
            >>> cache = KVCache(np.zeros((1, 0, 4)), np.zeros((1, 0, 4)))  # empty prompt
            >>> cache.step(np.ones((1, 1, 4)), np.ones((1, 1, 4)), np.full((1, 1, 4), 7.0))
            array([[[7., 7., 7., 7.]]])
        """
        self._check_options(options)
        float_array("query", query)
        saved = (self._keys, self._values, self._length)
        k, v = self._checked(key, value)
        overwritten = None
        if self._table is not None:
            # the paged pool is written in place: keep what the new positions' slots held
            blocks, slots = self._slots(self._length, self._length + int(k.shape[-2]))
            overwritten = (blocks, slots, self._keys[blocks, slots], self._values[blocks, slots])
        self._append_checked(k, v)
        try:
            return self._attend(query, self._length, options)
        except BaseException:
            self._keys, self._values, self._length = saved
            if overwritten is not None:
                blocks, slots, old_k, old_v = overwritten
                self._keys[blocks, slots] = old_k
                self._values[blocks, slots] = old_v
            raise

    def _capacity_for(self, end: int, new: int) -> int:
        """Double the storage (amortised O(1) appends), or grow to ``end`` if that won't fit."""
        for capacity in (max(end, 2 * int(self._keys.shape[-2])), end):
            try:
                for name, arr in (("key", self._keys), ("value", self._values)):
                    check_allocation(
                        f"append of {new} positions",
                        f"{name} storage grown to capacity {capacity}",
                        (*arr.shape[:-2], capacity, arr.shape[-1]),
                        arr.dtype.itemsize,
                        "Append fewer positions, or start a new cache for a new sequence.",
                    )
            except AttentionMemoryError:
                if capacity == end:
                    raise
                continue
            return capacity
        raise AssertionError("unreachable")  # pragma: no cover

    @staticmethod
    def _grow(arr: FloatArray, capacity: int) -> FloatArray:
        grown = np.empty((*arr.shape[:-2], capacity, arr.shape[-1]), dtype=arr.dtype)
        grown[..., : arr.shape[-2], :] = arr
        return grown

    @staticmethod
    def _check(name: str, x: npt.ArrayLike, dtype: np.dtype[np.floating] | None) -> FloatArray:
        arr = float_array(name, x)
        if dtype is not None and arr.dtype != dtype:
            raise AttentionDTypeError(
                f"{name} dtype should be the cache's {dtype}: but got {arr.dtype}. Cast it "
                f"with {name}.astype({dtype.name}) (the cache keeps the prompt's dtype)."
            )
        if arr.ndim < 3:
            raise AttentionShapeError(
                f"{name} shape should be (..., Hkv, T, D): but got {_shape(arr.shape)}. "
                f"Add the head axis: {name}[None] for one head, or split heads with "
                f"refattn.multihead.project_heads." + see("kv_cache_concat_wrong_axis")
            )
        return arr

    @staticmethod
    def _check_pair(
        k: FloatArray, v: FloatArray, cache: tuple[tuple[int, ...], int] | None
    ) -> None:
        """``cache``: the leading dims ``(..., Hkv)`` and ``D`` new keys must have."""
        if k.shape[:-1] != v.shape[:-1]:
            raise AttentionShapeError(
                f"key and value should agree on (..., Hkv, T): but got key "
                f"{_shape(k.shape)} and value {_shape(v.shape)}. Every key needs exactly "
                f"one value: slice or append both the same way." + see("value_sliced_separately")
            )
        if cache is None:
            return
        lead, dim = cache
        want = ", ".join([*(str(n) for n in lead), "T", str(dim)])
        if k.shape[:-2] != lead or k.shape[-1] != dim:
            raise AttentionShapeError(
                f"key shape should be (..., Hkv, T, D) = ({want}), like the cache's: but got "
                f"{_shape(k.shape)}. Check the head axis is at -3 and the new token's "
                f"length axis at -2 (a single token is (..., Hkv, 1, D))."
                + see("kv_cache_concat_wrong_axis")
            )
