"""KV-cache decoding equals full causal attention; top-left alignment does not."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from refattn import attention
from refattn.decoding import KVCache
from refattn.errors import AttentionDTypeError, AttentionShapeError, AttentionValueError
from refattn.multihead import merge_heads, multi_head_attention, project_heads

TOL = 1e-12
PROMPT, TOTAL = 5, 11  # 5 prompt tokens, then 6 decoded ones


def sequence(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    q = rng.standard_normal((2, 4, TOTAL, 8))  # (B, Hq, T, D)
    k = rng.standard_normal((2, 2, TOTAL, 8))  # (B, Hkv, T, D): GQA
    v = rng.standard_normal((2, 2, TOTAL, 3))  # (B, Hkv, T, Dv)
    return q, k, v


@pytest.mark.parametrize("capacity", [None, 1 * PROMPT, 64])
def test_token_by_token_equals_full_causal_attention(capacity: int | None) -> None:
    q, k, v = sequence()
    full = attention(q, k, v, causal="bottom_right")  # (B, Hq, T, Dv); L = S here
    cache = KVCache(k[..., :PROMPT, :], v[..., :PROMPT, :], capacity=capacity)
    np.testing.assert_allclose(cache.attend(q[..., :PROMPT, :]), full[..., :PROMPT, :], atol=TOL)
    for t in range(PROMPT, TOTAL):
        step = slice(t, t + 1)
        out = cache.step(q[..., step, :], k[..., step, :], v[..., step, :])  # (B, Hq, 1, Dv)
        assert out.shape == (2, 4, 1, 3)
        np.testing.assert_allclose(out, full[..., step, :], rtol=TOL, atol=TOL)
    assert cache.length == TOTAL
    np.testing.assert_array_equal(cache.keys, k)
    np.testing.assert_array_equal(cache.values, v)


def test_chunks_of_several_tokens_equal_full_rows() -> None:
    q, k, v = sequence(1)
    full = attention(q, k, v, causal="bottom_right")
    cache = KVCache(k[..., :PROMPT, :], v[..., :PROMPT, :])
    for start, stop in ((PROMPT, 8), (8, TOTAL)):  # L = 3 queries against S = 8, then 11 keys
        chunk = slice(start, stop)
        out = cache.step(q[..., chunk, :], k[..., chunk, :], v[..., chunk, :])
        np.testing.assert_allclose(out, full[..., chunk, :], rtol=TOL, atol=TOL)


def test_top_left_alignment_sees_only_the_first_prompt_token() -> None:
    """The porting bug: a decoded token with is_causal-style (top-left) masking."""
    q, k, v = sequence(2)
    full = attention(q, k, v, causal="bottom_right")
    cache = KVCache(k[..., : PROMPT + 1, :], v[..., : PROMPT + 1, :])
    new_q = q[..., PROMPT : PROMPT + 1, :]  # (B, Hq, 1, D): L = 1, S = 6
    wrong = attention(new_q, cache.keys, cache.values, causal="top_left")
    # query 0 of a top-left mask sees key 0 only: every head returns the first value
    first_value = np.repeat(v[..., :1, :], 2, axis=1)  # kv head h // 2 for query head h
    np.testing.assert_allclose(wrong, first_value, rtol=TOL, atol=TOL)
    right = cache.attend(new_q)
    np.testing.assert_allclose(right, full[..., PROMPT : PROMPT + 1, :], rtol=TOL, atol=TOL)
    assert np.abs(wrong - right).max() > 0.1
    # a chunk of 3: top-left hides the newest keys from every query of the chunk
    chunk = KVCache(k[..., :8, :], v[..., :8, :])
    wrong3 = attention(q[..., 5:8, :], chunk.keys, chunk.values, causal="top_left")
    assert not np.allclose(wrong3, full[..., 5:8, :])
    np.testing.assert_allclose(chunk.attend(q[..., 5:8, :]), full[..., 5:8, :], atol=TOL)


def test_options_pass_through() -> None:
    q, k, v = sequence(3)
    full = attention(q, k, v, causal="bottom_right", window=(2, 0), softcap=5.0)
    cache = KVCache(k[..., :PROMPT, :], v[..., :PROMPT, :])
    for t in range(PROMPT, TOTAL):
        s = slice(t, t + 1)
        out = cache.step(q[..., s, :], k[..., s, :], v[..., s, :], window=(2, 0), softcap=5.0)
        np.testing.assert_allclose(out, full[..., s, :], rtol=TOL, atol=TOL)


def test_decoder_layer_with_projections_equals_multi_head_attention() -> None:
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, TOTAL, 12))  # (B, T, E)
    w_q, w_k, w_v = (rng.standard_normal((n, 12)) / 4 for n in (12, 6, 6))
    w_o = rng.standard_normal((12, 12)) / 4
    kw: dict[str, Any] = {"q_proj_weight": w_q, "k_proj_weight": w_k, "v_proj_weight": w_v}
    full = multi_head_attention(
        x, num_heads=4, num_kv_heads=2, out_proj_weight=w_o, causal="bottom_right", **kw
    )
    prompt = x[:, :PROMPT]
    cache = KVCache(
        project_heads(prompt, w_k, num_heads=2), project_heads(prompt, w_v, num_heads=2)
    )
    for t in range(PROMPT, TOTAL):
        token = x[:, t : t + 1]  # (B, 1, E)
        heads = cache.step(
            project_heads(token, w_q, num_heads=4),  # (B, Hq, 1, D)
            project_heads(token, w_k, num_heads=2),  # (B, Hkv, 1, D)
            project_heads(token, w_v, num_heads=2),
        )
        out = merge_heads(heads, w_o)  # (B, 1, E)
        np.testing.assert_allclose(out, full[:, t : t + 1], rtol=TOL, atol=TOL)


def test_cache_views_are_read_only() -> None:
    cache = KVCache(np.zeros((1, 2, 4)), np.zeros((1, 2, 4)))
    with pytest.raises(ValueError, match="read-only"):
        cache.keys[0, 0, 0] = 1.0


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        pytest.param(
            lambda c: c.attend(np.zeros((1, 2, 4, 4))),
            AttentionShapeError,
            "query length should be at most the cached length S=3",
            id="query-longer-than-cache",
        ),
        pytest.param(
            lambda c: c.attend(np.zeros((1, 2, 1, 4)), causal="top_left"),
            AttentionValueError,
            "causal should not be passed to KVCache.attend",
            id="causal-option",
        ),
        pytest.param(
            lambda c: c.append(np.zeros((1, 1, 1, 4)), np.zeros((1, 1, 1, 4))),
            AttentionShapeError,
            r"key shape should be \(\.\.\., Hkv, T, D\) = \(1, 2, T, 4\)",
            id="wrong-heads",
        ),
        pytest.param(
            lambda c: c.append(np.zeros((1, 2, 1, 4)), np.zeros((1, 2, 2, 4))),
            AttentionShapeError,
            r"key and value should agree on \(\.\.\., Hkv, T\)",
            id="key-value-lengths",
        ),
        pytest.param(
            lambda c: c.append(np.zeros((1, 2, 1, 4), np.float32), np.zeros((1, 2, 1, 4))),
            AttentionDTypeError,
            "key dtype should be the cache's float64",
            id="dtype",
        ),
        pytest.param(
            lambda c: c.append(np.zeros((2, 1, 4)), np.zeros((2, 1, 4))),
            AttentionShapeError,
            r"key shape should be \(\.\.\., Hkv, T, D\)",
            id="missing-batch-axis",
        ),
    ],
)
def test_errors(call: Callable[[KVCache], object], error: type, match: str) -> None:
    cache = KVCache(np.zeros((1, 2, 3, 4)), np.zeros((1, 2, 3, 4)))
    with pytest.raises(error, match=match):
        call(cache)
