"""Property tests: the flash-attn adapter changes none of its inputs, except that
``flash_attn_with_kvcache`` writes the new keys and values into the caches, exactly at
their slots, as flash-attn does; and a call that raises changes nothing.

Calls are drawn with valid and invalid arguments alike; inputs include non-contiguous views.
"""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from refattn.compat import flash_attn as fa
from refattn.errors import RefattnError

SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _snapshot(arrays: list[np.ndarray]) -> list[tuple[Any, ...]]:
    return [(a.copy(), a.dtype, a.shape, a.strides, a.flags.writeable) for a in arrays]


def _assert_same(arrays: list[np.ndarray], before: list[tuple[Any, ...]]) -> None:
    for a, (copy, dtype, shape, strides, writeable) in zip(arrays, before, strict=True):
        assert (a.dtype, a.shape, a.strides, a.flags.writeable) == (
            dtype,
            shape,
            strides,
            writeable,
        )
        np.testing.assert_array_equal(a, copy)


def _array(rng: np.random.Generator, view: bool, *shape: int) -> np.ndarray:
    x = rng.standard_normal(shape).astype(np.float32)
    if view:  # a non-contiguous view of a bigger array
        x = np.ascontiguousarray(np.swapaxes(x, -1, -2)).swapaxes(-1, -2)
    return x


def _options(draw: Any, rng: np.random.Generator, hq: int) -> dict[str, Any]:
    options: dict[str, Any] = {"causal": draw(st.booleans())}
    if draw(st.booleans()):
        options["window_size"] = (draw(st.integers(-1, 3)), draw(st.integers(-1, 3)))
    if draw(st.booleans()):
        options["softcap"] = draw(st.sampled_from([0.0, 5.0, float("nan")]))
    if draw(st.booleans()):
        slopes = rng.random(hq).astype(draw(st.sampled_from([np.float32, np.float64])))
        if draw(st.booleans()):
            slopes[0] = np.nan
        options["alibi_slopes"] = slopes
    return options


@SETTINGS
@given(st.data(), st.integers(0, 2**32 - 1))
def test_func_and_varlen_leave_inputs_untouched(data: Any, seed: int) -> None:
    rng = np.random.default_rng(seed)
    view = data.draw(st.booleans())
    hkv = data.draw(st.integers(1, 2))
    hq = hkv * data.draw(st.integers(1, 2))
    q = _array(rng, view, 2, 3, hq, 16)
    k = _array(rng, view, 2, 4, hkv, 16)
    v = _array(rng, view, 2, 4, hkv, 16)
    options = _options(data.draw, rng, hq)
    inputs = [q, k, v, *(x for x in options.values() if isinstance(x, np.ndarray))]
    before = _snapshot(inputs)
    with contextlib.suppress(RefattnError):
        fa.flash_attn_func(q, k, v, **options)
    _assert_same(inputs, before)

    lengths = rng.integers(0, 4, 3)
    cu = np.concatenate([[0], np.cumsum(lengths)]).astype(
        data.draw(st.sampled_from([np.int32, np.int64]))
    )
    total = int(cu[-1]) + data.draw(st.integers(0, 1))
    qp, kp, vp = (_array(rng, view, total, h, 16) for h in (hq, hkv, hkv))
    inputs = [qp, kp, vp, cu, *(x for x in options.values() if isinstance(x, np.ndarray))]
    before = _snapshot(inputs)
    with contextlib.suppress(RefattnError):
        fa.flash_attn_varlen_func(qp, kp, vp, cu, cu, 4, 4, **options)
    _assert_same(inputs, before)


@SETTINGS
@given(st.data(), st.integers(0, 2**32 - 1))
def test_kvcache_writes_only_the_new_slots(data: Any, seed: int) -> None:
    rng = np.random.default_rng(seed)
    paged = data.draw(st.booleans())
    hkv = data.draw(st.integers(1, 2))
    hq = hkv * data.draw(st.integers(1, 2))
    batch, new, page = 2, data.draw(st.integers(0, 3)), 4
    q = _array(rng, data.draw(st.booleans()), batch, data.draw(st.integers(1, 2)), hq, 16)
    if paged:
        table = rng.permutation(6)[:4].reshape(batch, 2).astype(np.int32)
        k_cache = _array(rng, False, 6, page, hkv, 16)
    else:
        k_cache = _array(rng, False, batch, 8, hkv, 16)
    v_cache = _array(rng, False, *k_cache.shape)
    knew = _array(rng, data.draw(st.booleans()), batch, new, hkv, 16)
    vnew = _array(rng, False, batch, new, hkv, 16)
    seqlens = rng.integers(0, 8 - new + data.draw(st.integers(0, 1)), batch).astype(np.int32)
    kwargs: dict[str, Any] = {"cache_seqlens": seqlens, **_options(data.draw, rng, hq)}
    if paged:
        kwargs["block_table"] = table
    if data.draw(st.booleans()):
        kwargs["return_softmax_lse"] = data.draw(st.sampled_from([True, np.ones(2)]))
    read_only = [q, knew, vnew, seqlens, *(x for x in kwargs.values() if isinstance(x, np.ndarray))]
    before = _snapshot(read_only)
    caches = (k_cache.copy(), v_cache.copy())
    try:
        fa.flash_attn_with_kvcache(q, k_cache, v_cache, knew, vnew, **kwargs)
    except RefattnError:
        np.testing.assert_array_equal(k_cache, caches[0])  # refused: nothing written
        np.testing.assert_array_equal(v_cache, caches[1])
        _assert_same(read_only, before)
        return
    _assert_same(read_only, before)
    # the new keys and values, and nothing else, went to positions seqlens[b] + j
    expect_k, expect_v = caches
    for b in range(batch):
        for j in range(new):
            p = int(seqlens[b]) + j
            slot = (table[b, p // page], p % page) if paged else (b, p)
            expect_k[slot] = knew[b, j]
            expect_v[slot] = vnew[b, j]
    np.testing.assert_array_equal(k_cache, expect_k)
    np.testing.assert_array_equal(v_cache, expect_v)
