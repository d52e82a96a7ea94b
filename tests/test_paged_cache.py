"""Paged KVCache: decoding equals full causal attention, flash-attn's paged cache, and a
float64 loop; its layout is the documented one; bad block tables get named errors; a call
that raises leaves the cache (pool included) as it was."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from refattn import KVCache, attention
from refattn.compat.flash_attn import flash_attn_with_kvcache
from refattn.errors import (
    AttentionDTypeError,
    AttentionShapeError,
    AttentionValueError,
    FullyMaskedRowError,
    RefattnError,
)
from tests.loop_reference import loop_attention

PROMPT, TOTAL = 5, 13
# float32 results agree with float64 to a few units of float32 rounding (outputs are O(1))
TOL = {np.float32: 4e-6, np.float64: 1e-12}


def sequence(
    seed: int, dtype: Any, batch: int = 2, hq: int = 4, hkv: int = 2, dim: int = 8
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    q = rng.standard_normal((batch, hq, TOTAL, dim)).astype(dtype)  # (B, Hq, T, D)
    k = rng.standard_normal((batch, hkv, TOTAL, dim)).astype(dtype)  # (B, Hkv, T, D)
    v = rng.standard_normal((batch, hkv, TOTAL, dim)).astype(dtype)  # (B, Hkv, T, D)
    return q, k, v


def shuffled_table(seed: int, batch: int, page: int, spare: int = 3) -> tuple[np.ndarray, int]:
    """A block table (B, ceil(TOTAL / page)) of distinct blocks drawn from a larger pool."""
    columns = -(-TOTAL // page)
    num_blocks = batch * columns + spare
    rng = np.random.default_rng(seed)
    table = rng.permutation(num_blocks)[: batch * columns].reshape(batch, columns)
    return table.astype(np.int32), num_blocks


def close(actual: np.ndarray, expected: np.ndarray, dtype: Any) -> None:
    np.testing.assert_allclose(actual, expected, rtol=TOL[dtype], atol=TOL[dtype])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("page", [1, 3, 4, 16])
@pytest.mark.parametrize(("hq", "hkv"), [(4, 2), (3, 1), (2, 2)])
def test_paged_decoding_equals_full_causal_attention_and_flash_attn(
    dtype: Any, page: int, hq: int, hkv: int
) -> None:
    q, k, v = sequence(page + 10 * hq + hkv, dtype, hq=hq, hkv=hkv)
    batch = q.shape[0]
    table, num_blocks = shuffled_table(page, batch, page)
    truth, _, _ = loop_attention(q, k, v, causal="bottom_right")  # float64 loops
    full = attention(q, k, v, causal="bottom_right")  # one call on the whole sequence
    close(full, truth, dtype)

    cache = KVCache.paged(k[..., :PROMPT, :], v[..., :PROMPT, :], table, page, num_blocks)
    # flash-attn's paged cache with the same table, in its (B, S, H, D) layout
    k_pool = np.zeros((num_blocks, page, hkv, q.shape[-1]), dtype)
    v_pool = np.zeros_like(k_pool)
    seqlens = np.zeros(batch, np.int32)

    def flash(rows: slice) -> np.ndarray:
        out = flash_attn_with_kvcache(
            q[..., rows, :].transpose(0, 2, 1, 3),
            k_pool,
            v_pool,
            k[..., rows, :].transpose(0, 2, 1, 3),
            v[..., rows, :].transpose(0, 2, 1, 3),
            cache_seqlens=seqlens,
            block_table=table,
            causal=True,
        )
        seqlens[:] += rows.stop - rows.start
        return out.transpose(0, 2, 1, 3)  # back to (B, Hq, L, D)

    prompt = slice(0, PROMPT)
    out = cache.attend(q[..., prompt, :])
    close(out, truth[..., prompt, :], dtype)
    close(out, full[..., prompt, :], dtype)
    close(out, flash(prompt), dtype)
    # one token at a time, then a chunk of two
    for start, stop in [*((t, t + 1) for t in range(PROMPT, TOTAL - 2)), (TOTAL - 2, TOTAL)]:
        rows = slice(start, stop)
        out = cache.step(q[..., rows, :], k[..., rows, :], v[..., rows, :])
        assert out.shape == (batch, hq, stop - start, q.shape[-1])
        assert out.dtype == dtype
        close(out, truth[..., rows, :], dtype)
        close(out, full[..., rows, :], dtype)
        close(out, flash(rows), dtype)
    assert cache.length == TOTAL
    np.testing.assert_array_equal(cache.keys, k)
    np.testing.assert_array_equal(cache.values, v)
    # both wrote every position to the same physical slot, and nothing else
    assert cache.key_pool is not None
    assert cache.value_pool is not None
    np.testing.assert_array_equal(cache.key_pool, k_pool)
    np.testing.assert_array_equal(cache.value_pool, v_pool)


def test_pools_and_table_read_by_flash_attn_give_the_same_attention() -> None:
    q, k, v = sequence(5, np.float64)
    table, num_blocks = shuffled_table(5, 2, page=4)
    cache = KVCache.paged(k, v, table, 4, num_blocks)
    assert cache.block_table is not None
    assert cache.block_table.dtype == np.int32  # kept as given, so flash-attn takes it
    assert cache.key_pool is not None
    assert cache.value_pool is not None
    out = flash_attn_with_kvcache(
        q[..., -3:, :].transpose(0, 2, 1, 3),
        cache.key_pool,
        cache.value_pool,
        cache_seqlens=np.full(2, TOTAL, np.int32),
        block_table=cache.block_table,
        causal=True,
    )  # reads only: no new keys, so the read-only pools are accepted
    assert out.shape == (2, 3, 4, 8)  # (B, Sq, Hq, D)
    np.testing.assert_allclose(
        out.transpose(0, 2, 1, 3), cache.attend(q[..., -3:, :]), rtol=1e-12, atol=1e-12
    )


def test_pool_layout_is_the_documented_one() -> None:
    # position p of sequence b sits at pool[block_table[b, p // page], p % page]
    _q, k, v = sequence(1, np.float64, hkv=2, dim=3)
    table = np.array([[4, 0, 6], [1, 5, 2]], np.int64)
    cache = KVCache.paged(k[..., :7, :], v[..., :7, :], table, page_block_size=3, num_blocks=8)
    pool = cache.key_pool
    assert pool is not None
    assert pool.shape == (8, 3, 2, 3)
    assert cache.capacity == 9
    assert cache.page_block_size == 3
    assert cache.is_paged
    written = np.zeros(pool.shape[:2], bool)
    for b in range(2):
        for p in range(7):
            block, slot = int(table[b, p // 3]), p % 3
            np.testing.assert_array_equal(pool[block, slot], k[b, :, p])  # (Hkv, D)
            written[block, slot] = True
    assert not pool[~written].any()  # blocks 3 and 7 and the unused slots stay zero
    assert cache.values.shape == (2, 2, 7, 3)


def test_paged_equals_dense_with_options() -> None:
    q, k, v = sequence(2, np.float64)
    table, num_blocks = shuffled_table(2, 2, page=4)
    paged = KVCache.paged(k[..., :PROMPT, :], v[..., :PROMPT, :], table, 4, num_blocks)
    full = attention(
        q, k, v, causal="bottom_right", window=(3, 0), softcap=4.0, alibi_slopes=[0.5, 0.25, 1, 2]
    )
    options: dict[str, Any] = {
        "window": (3, 0),
        "softcap": 4.0,
        "alibi_slopes": [0.5, 0.25, 1, 2],
    }
    for t in range(PROMPT, TOTAL):
        rows = slice(t, t + 1)
        out = paged.step(q[..., rows, :], k[..., rows, :], v[..., rows, :], **options)
        np.testing.assert_allclose(out, full[..., rows, :], rtol=1e-12, atol=1e-12)


def test_block_table_is_copied_and_read_only() -> None:
    _, k, v = sequence(3, np.float64)
    table = np.array([[0, 1, 2, 3], [4, 5, 6, 7]])
    cache = KVCache.paged(k[..., :PROMPT, :], v[..., :PROMPT, :], table, 4)
    table[:] = 0  # the caller reuses its array
    assert cache.block_table is not None
    np.testing.assert_array_equal(cache.block_table, [[0, 1, 2, 3], [4, 5, 6, 7]])
    np.testing.assert_array_equal(cache.keys, k[..., :PROMPT, :])
    with pytest.raises(ValueError, match="read-only"):
        cache.block_table[0, 0] = 3
    with pytest.raises(ValueError, match="read-only"):
        cache.key_pool[0, 0] = 3  # type: ignore[index]
    dense = KVCache(k, v)
    assert dense.block_table is None
    assert dense.key_pool is None
    assert not dense.is_paged


def _paged(**changes: Any) -> KVCache:
    k = np.zeros((2, 1, 3, 4))
    args: dict[str, Any] = {
        "key": k,
        "value": k,
        "block_table": np.array([[0, 1], [2, 3]], np.int32),
        "page_block_size": 2,
        "num_blocks": 4,
        **changes,
    }
    return KVCache.paged(**args)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (
            lambda: _paged(block_table=np.array([[0.0, 1.0], [2.0, 3.0]])),
            AttentionDTypeError,
            r"block_table should be an integer array .* but got a floating dtype float64",
        ),
        (
            lambda: _paged(block_table=np.ones((2, 2), bool)),
            AttentionDTypeError,
            r"block_table should be an integer array .* but got a boolean dtype bool",
        ),
        (
            lambda: _paged(block_table=np.arange(4, dtype=np.int32)),
            AttentionShapeError,
            r"block_table shape should be \(B, max_blocks\) with B=2 .* but got \(4,\)",
        ),
        (
            lambda: _paged(block_table=np.array([[0, 1]], np.int32)),
            AttentionShapeError,
            r"block_table shape should be \(B, max_blocks\) with B=2 .* but got \(1, 2\)",
        ),
        (
            lambda: _paged(block_table=np.array([[0, 1], [2, 4]], np.int32)),
            AttentionValueError,
            r"entries should lie in \[0, num_blocks\) = \[0, 4\): but got block_table\[1, 1\] = 4",
        ),
        (
            lambda: _paged(block_table=np.array([[0, -1], [2, 3]], np.int32)),
            AttentionValueError,
            r"but got block_table\[0, 1\] = -1",
        ),
        (
            lambda: _paged(block_table=np.array([[0, 1], [1, 3]], np.int32)),
            AttentionValueError,
            r"each physical block once: but got block 1 at \[\(0, 1\), \(1, 0\)\]",
        ),
        (
            lambda: _paged(key=np.zeros((2, 1, 5, 4)), value=np.zeros((2, 1, 5, 4))),
            AttentionValueError,
            r"capacity max_blocks \* page_block_size = 2 \* 2 = 4: but got 5, a sequence "
            r"outgrowing its blocks",
        ),
        (
            lambda: _paged(page_block_size=0),
            AttentionValueError,
            r"page_block_size should be an int >= 1: but got 0",
        ),
        (
            lambda: _paged(page_block_size=2.0),
            AttentionValueError,
            r"page_block_size should be an int >= 1: but got 2.0 of type float",
        ),
        (
            lambda: _paged(num_blocks=True),
            AttentionValueError,
            r"num_blocks should be an int >= 1: but got True",
        ),
        (
            lambda: _paged(key=np.zeros((1, 2, 1, 3, 4)), value=np.zeros((1, 2, 1, 3, 4))),
            AttentionShapeError,
            r"key shape should be \(B, Hkv, S0, D\) for a paged cache: but got \(1, 2, 1, 3, 4\)",
        ),
        (
            lambda: _paged().append(np.zeros((2, 1, 2, 4)), np.zeros((2, 1, 2, 4))),
            AttentionValueError,
            r"after adding 2 positions should be at most .* = 4: but got 5, a sequence "
            r"outgrowing its blocks",
        ),
        (
            lambda: _paged().append(np.zeros((1, 1, 1, 4)), np.zeros((1, 1, 1, 4))),
            AttentionShapeError,
            r"key shape should be \(\.\.\., Hkv, T, D\) = \(2, 1, T, 4\), like the cache's",
        ),
    ],
)
def test_paged_errors_are_named(call: Callable[[], object], error: type, match: str) -> None:
    with pytest.raises(error, match=match) as caught:
        call()
    message = str(caught.value)
    assert " should " in message
    assert "but got" in message
    assert message.rstrip().endswith(".")
    assert len(message.split(". ")) >= 2


def test_default_pool_size_is_the_largest_block_plus_one() -> None:
    cache = _paged(block_table=np.array([[6, 1], [2, 3]], np.int32), num_blocks=None)
    assert cache.key_pool is not None
    assert cache.key_pool.shape == (7, 2, 1, 4)


# A paged cache under a random sequence of calls, valid and invalid; the model is the list
# of positions appended by calls that returned. Unlike the dense cache, the pool is written
# in place, so the pool itself is compared too.
OPS = st.lists(
    st.tuples(
        st.sampled_from(["append", "step", "attend"]),
        st.sampled_from(
            ["ok", "bad_query", "bad_key", "bad_value", "bad_option", "dead_row", "too_long"]
        ),
        st.integers(1, 3),
    ),
    min_size=1,
    max_size=8,
)


USED_BY = {
    "append": ("bad_key", "bad_value", "too_long"),
    "attend": ("bad_query", "bad_option", "dead_row"),
    "step": ("bad_key", "bad_value", "too_long", "bad_query", "bad_option", "dead_row"),
}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 2**32 - 1), OPS, st.sampled_from([1, 2, 3]))
def test_paged_cache_unchanged_by_any_call_that_raises(
    seed: int, ops: list[tuple[str, str, int]], page: int
) -> None:
    rng = np.random.default_rng(seed)
    columns = -(-25 // page)  # room for the prompt and 8 calls of up to 3 positions
    table = rng.permutation(2 * columns + 2)[: 2 * columns].reshape(2, columns)
    prompt_k = rng.standard_normal((2, 2, 1, 4)).astype(np.float32)
    prompt_v = rng.standard_normal((2, 2, 1, 3)).astype(np.float32)
    cache = KVCache.paged(prompt_k, prompt_v, table, page, 2 * columns + 2)
    keys, values = [prompt_k], [prompt_v]
    for op, kind, new in ops:
        if kind == "too_long":
            new = cache.capacity - cache.length + 1
        k = rng.standard_normal((2, 2, new, 4)).astype(np.float32)
        v = rng.standard_normal((2, 2, new, 3)).astype(np.float32)
        q = rng.standard_normal((2, 4, new, 4)).astype(np.float32)
        options: dict[str, Any] = {}
        if kind == "bad_query":
            q = q[..., :3]
        elif kind == "bad_key":
            k = k.astype(np.float64)
        elif kind == "bad_value":
            v = v[..., :2]
        elif kind == "bad_option":
            options = {"window": (1.5, 0)}
        elif kind == "dead_row":
            options = {"attend_mask": np.zeros((new, 1), bool), "fully_masked": "raise"}
        assert cache.key_pool is not None
        assert cache.value_pool is not None
        before = (cache.length, cache.keys, cache.values, cache.key_pool.copy(),
                  cache.value_pool.copy())  # fmt: skip
        try:
            if op == "append":
                cache.append(k, v)
            elif op == "step":
                cache.step(q, k, v, **options)
            else:
                cache.attend(q[..., : min(new, cache.length), :], **options)
        except RefattnError as error:
            raised: RefattnError | None = error
        else:
            raised = None
        if raised is not None:
            assert kind in USED_BY[op]
            if kind == "dead_row" and op == "step":
                assert type(raised) is FullyMaskedRowError  # raised after the append
            assert cache.length == before[0]
            for now, then in zip(
                (cache.keys, cache.values, cache.key_pool, cache.value_pool),
                before[1:],
                strict=True,
            ):
                np.testing.assert_array_equal(now, then)
            continue
        assert kind not in USED_BY[op]  # every bad argument the call reads is refused
        if op != "attend":
            keys.append(k)
            values.append(v)
        np.testing.assert_array_equal(cache.keys, np.concatenate(keys, axis=-2))
        np.testing.assert_array_equal(cache.values, np.concatenate(values, axis=-2))
