"""Autoregressive decoding with a growing key/value cache.

A decoder computes each new token's query, key and value once, appends the key and value
to a cache and attends the new queries to everything cached. The new queries are the
*last* ``L`` positions of a sequence of ``S`` cached keys, so causality is aligned
**bottom-right**: query ``i`` sees keys ``j <= i + S - L``. With top-left alignment
(torch and JAX ``is_causal``) a single decoded token would see only key 0, the first
token of the prompt: the classic bug of porting a training-time attention to a decode
loop. :meth:`KVCache.attend` always aligns bottom-right.
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
    check_allocation,
    check_keywords,
    float_array,
    see,
)

FloatArray = npt.NDArray[np.floating]


def _shape(shape: tuple[int, ...]) -> str:
    return str(tuple(int(n) for n in shape))


class KVCache:
    """A key/value cache ``(..., Hkv, S, D)`` / ``(..., Hkv, S, Dv)`` that grows along ``S``.

    Storage is over-allocated and doubled when full, so appending one token at a time
    costs amortised ``O(1)`` copies per token; :attr:`keys` and :attr:`values` are views
    of the filled part.

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

    @property
    def length(self) -> int:
        """``S``, the number of cached positions."""
        return self._length

    @property
    def keys(self) -> FloatArray:
        """The cached keys ``(..., Hkv, S, D)``, a read-only view."""
        view = self._keys[..., : self._length, :]
        view.flags.writeable = False
        return view

    @property
    def values(self) -> FloatArray:
        """The cached values ``(..., Hkv, S, Dv)``, a read-only view."""
        view = self._values[..., : self._length, :]
        view.flags.writeable = False
        return view

    def append(self, key: npt.ArrayLike, value: npt.ArrayLike) -> None:
        """Append ``T >= 1`` new positions: key ``(..., Hkv, T, D)``, value ``(..., Hkv, T, Dv)``.

        Raises:
            AttentionShapeError: head, feature or leading dims that differ from the cache's.
            AttentionDTypeError: a dtype other than the cache's.

        Examples:
            >>> import numpy as np
            >>> cache = KVCache(np.zeros((1, 2, 3, 4)), np.zeros((1, 2, 3, 4)))
            >>> cache.append(np.ones((1, 2, 2, 4)), np.ones((1, 2, 2, 4)))
            >>> cache.keys.shape
            (1, 2, 5, 4)
        """
        k = self._check("key", key, self._keys.dtype)
        v = self._check("value", value, self._keys.dtype)
        self._check_pair(k, v, self._keys)
        if v.shape[-1] != self._values.shape[-1]:
            raise AttentionShapeError(
                f"value feature size should be the cache's Dv={self._values.shape[-1]}: but "
                f"got value {_shape(v.shape)}. Append the values of the same projection "
                f"the cache was built from." + see("kv_cache_concat_wrong_axis")
            )
        new = k.shape[-2]
        end = self._length + new
        if end > self._keys.shape[-2]:
            capacity = self._capacity_for(end, new)
            keys = self._grow(self._keys, capacity)
            self._values = self._grow(self._values, capacity)
            self._keys = keys
        self._keys[..., self._length : end, :] = k
        self._values[..., self._length : end, :] = v
        self._length = end

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
        self.append(key, value)
        try:
            return self._attend(query, self._length, options)
        except BaseException:
            self._keys, self._values, self._length = saved
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
    def _check_pair(k: FloatArray, v: FloatArray, cache: FloatArray | None) -> None:
        if k.shape[:-1] != v.shape[:-1]:
            raise AttentionShapeError(
                f"key and value should agree on (..., Hkv, T): but got key "
                f"{_shape(k.shape)} and value {_shape(v.shape)}. Every key needs exactly "
                f"one value: slice or append both the same way." + see("value_sliced_separately")
            )
        if cache is None:
            return
        want = ", ".join([*(str(n) for n in cache.shape[:-2]), "T", str(cache.shape[-1])])
        if k.shape[:-2] != cache.shape[:-2] or k.shape[-1] != cache.shape[-1]:
            raise AttentionShapeError(
                f"key shape should be (..., Hkv, T, D) = ({want}), like the cache's: but got "
                f"{_shape(k.shape)}. Check the head axis is at -3 and the new token's "
                f"length axis at -2 (a single token is (..., Hkv, 1, D))."
                + see("kv_cache_concat_wrong_axis")
            )
