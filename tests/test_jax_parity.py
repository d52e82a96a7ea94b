"""refattn.compat.jax.dot_product_attention against real jax.nn.dot_product_attention (CPU).

JAX computes its softmax in float32 even for float64 input, so every comparison here
uses float32-level tolerances.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from refattn.compat.jax import dot_product_attention as dpa
from refattn.errors import AttentionDTypeError, AttentionShapeError, AttentionValueError

TOL = 2e-5


# One compiled function per geometry and static option: eager JAX compiles each op for
# every new shape (~0.8 s a call), which would make a random search slow.
_JAX_DPA = jax.jit(jax.nn.dot_product_attention, static_argnames=("is_causal", "local_window_size"))


def jax_dpa(*args: np.ndarray, **kwargs: Any) -> np.ndarray:
    return np.asarray(_JAX_DPA(*args, **kwargs))


# (batched, B, N, K, T, S, H): few geometries, so the compiled functions are reused.
GEOMETRIES = [
    (True, 2, 4, 2, 5, 11, 8),
    (True, 3, 3, 3, 13, 4, 9),
    (True, 1, 6, 1, 1, 17, 4),  # MQA, one decoded token
    (True, 2, 2, 2, 7, 7, 1),
    (False, 1, 4, 2, 6, 9, 8),  # unbatched (T, N, H)
]


@st.composite
def jax_cases(draw: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """Return (refattn arguments, the same for JAX with masks spelled at full shape).

    JAX gets every optional input at its full broadcast shape, neutral when refattn's is
    absent (zero bias, all-True mask, full lengths): the same math, one compiled function.
    """
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    batched, batch, heads, kv_heads, length_q, length_k, dim = draw(st.sampled_from(GEOMETRIES))
    lead = (batch,) if batched else ()
    case: dict[str, Any] = {
        "query": rng.standard_normal((*lead, length_q, heads, dim)).astype(np.float32),
        "key": rng.standard_normal((*lead, length_k, kv_heads, dim)).astype(np.float32),
        "value": rng.standard_normal((*lead, length_k, kv_heads, dim)).astype(np.float32),
        "is_causal": draw(st.booleans()),
    }
    full = (batch, heads, length_q, length_k)
    score_shapes = [
        full,
        (1, heads, length_q, length_k),
        (batch, 1, length_q, length_k),
        (heads, length_q, length_k),  # 3-D: JAX reads it as (1, N, T, S)
        (length_q, length_k),
        (1, 1, 1, length_k),
    ]
    if draw(st.booleans()):
        shape = draw(st.sampled_from(score_shapes))
        bias = rng.standard_normal(shape).astype(np.float32)
        if draw(st.booleans()):  # -inf entries: whole rows sometimes
            bias[rng.random(shape) < draw(st.sampled_from([0.3, 0.9, 1.0]))] = -np.inf
        case["bias"] = bias
    if draw(st.booleans()):
        shape = draw(st.sampled_from(score_shapes))
        case["mask"] = rng.random(shape) < draw(st.sampled_from([0.3, 0.7]))
    if draw(st.booleans()):
        case["scale"] = draw(st.floats(0.05, 2.0))
    if batched and draw(st.booleans()):
        case["query_seq_lengths"] = rng.integers(0, length_q + 1, batch).astype(np.int32)
    if batched and draw(st.booleans()):
        case["key_value_seq_lengths"] = rng.integers(0, length_k + 1, batch).astype(np.int32)
    window = draw(st.sampled_from([None, 2, (1, 0), (0, 3)]))
    if window is not None:
        case["local_window_size"] = window

    def at_full(x: np.ndarray) -> np.ndarray:
        return np.broadcast_to(x.reshape((1,) * (4 - x.ndim) + x.shape), full)

    jax_case = dict(case)
    jax_case["bias"] = at_full(case.get("bias", np.zeros((), np.float32)))
    jax_case["mask"] = at_full(case.get("mask", np.ones((), bool)))
    if batched:
        jax_case.setdefault("query_seq_lengths", np.full(batch, length_q, np.int32))
        jax_case.setdefault("key_value_seq_lengths", np.full(batch, length_k, np.int32))
    jax_case.setdefault("scale", 1 / np.sqrt(dim))
    if not batched:  # JAX's 3-D inputs take 3-D (N, T, S) masks
        jax_case["bias"], jax_case["mask"] = jax_case["bias"][0], jax_case["mask"][0]
    return case, jax_case


@settings(max_examples=150, deadline=None)
@given(jax_cases())
def test_matches_jax(cases: tuple[dict[str, Any], dict[str, Any]]) -> None:
    case, jax_case = cases
    want = jax_dpa(**jax_case)
    got = dpa(**case)
    assert got.shape == want.shape == case["query"].shape
    assert got.dtype == want.dtype
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_allclose(got, want, rtol=TOL, atol=TOL)


def test_three_d_bias_and_unbatched_read_like_jax() -> None:
    rng = np.random.default_rng(0)
    q = rng.standard_normal((4, 2, 8)).astype(np.float32)  # (T, N, H): unbatched
    k, v = (rng.standard_normal((6, 2, 8)).astype(np.float32) for _ in range(2))
    bias = rng.standard_normal((2, 4, 6)).astype(np.float32)  # (N, T, S)
    want = np.asarray(jax.nn.dot_product_attention(q, k, v, bias=bias))  # eager, as users call it
    np.testing.assert_allclose(dpa(q, k, v, bias=bias), want, rtol=TOL, atol=TOL)


def _qkv(shape_q: tuple[int, ...], shape_kv: tuple[int, ...], seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s).astype(np.float32) for s in (shape_q, shape_kv, shape_kv)]


def test_fully_masked_row_is_mean_of_value() -> None:
    q, k, v = _qkv((2, 3, 4, 8), (2, 5, 2, 8))  # GQA: 4 query heads, 2 kv heads
    mask = np.ones((2, 4, 3, 5), bool)
    mask[1, 3, 2] = False  # batch 1, head 3 (kv head 1), query 2: no key
    want = jax_dpa(q, k, v, mask=mask)
    got = dpa(q, k, v, mask=mask)
    mean_v = v[1, :, 1].mean(axis=0)  # over all S keys of kv head 1
    np.testing.assert_allclose(want[1, 2, 3], mean_v, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(got[1, 2, 3], mean_v, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(got, want, rtol=TOL, atol=TOL)


def test_neg_inf_bias_rows_follow_jax() -> None:
    """A row whose allowed keys all have bias -inf: uniform over mask-removed keys, else NaN."""
    q, k, v = _qkv((1, 2, 1, 4), (1, 4, 1, 4))
    bias = np.zeros((1, 1, 2, 4), np.float32)
    bias[0, 0, :, 1:] = -np.inf  # both rows: keys 1..3 are -inf
    mask = np.ones((1, 1, 2, 4), bool)
    mask[0, 0, 0, 0] = False  # row 0: key 0 removed by the mask, the rest -inf
    want = jax_dpa(q, k, v, bias=bias, mask=mask)
    got = dpa(q, k, v, bias=bias, mask=mask)
    np.testing.assert_allclose(want[0, 0, 0], v[0, 0, 0], rtol=1e-6)  # only the removed key
    np.testing.assert_allclose(got[0, 0, 0], v[0, 0, 0], rtol=1e-6)
    np.testing.assert_allclose(got[0, 1, 0], v[0, 0, 0], rtol=1e-6)  # row 1: key 0 alone
    nan_bias = np.full((1, 1, 2, 4), -np.inf, np.float32)
    assert np.isnan(jax_dpa(q, k, v, bias=nan_bias)).all()
    assert np.isnan(dpa(q, k, v, bias=nan_bias)).all()


def test_padded_queries_are_zero() -> None:
    q, k, v = _qkv((2, 5, 2, 4), (2, 6, 2, 4))
    lengths = np.array([3, 5], np.int32)
    want = jax_dpa(q, k, v, query_seq_lengths=lengths)
    got = dpa(q, k, v, query_seq_lengths=lengths)
    assert (got[0, 3:] == 0).all()
    assert (want[0, 3:] == 0).all()
    assert (got[0, :3] != 0).all()
    np.testing.assert_allclose(got, want, rtol=TOL, atol=TOL)


def test_causal_and_window_are_top_left_when_t_differs_from_s() -> None:
    q, k, v = _qkv((1, 3, 1, 4), (1, 7, 1, 4))
    want = jax_dpa(q, k, v, is_causal=True, local_window_size=(1, 0))
    got = dpa(q, k, v, is_causal=True, local_window_size=(1, 0))
    np.testing.assert_allclose(got[0, 0, 0], v[0, 0, 0], rtol=1e-6)  # query 0 sees key 0 only
    np.testing.assert_allclose(got, want, rtol=TOL, atol=TOL)


@pytest.mark.parametrize("seed", range(4))
def test_float64_under_x64(seed: int) -> None:
    rng = np.random.default_rng(seed)
    q = rng.standard_normal((2, 6, 4, 8))
    k, v = rng.standard_normal((2, 9, 2, 8)), rng.standard_normal((2, 9, 2, 8))
    mask = rng.random((2, 1, 6, 9)) < 0.5
    with jax.enable_x64(True):
        want = jax_dpa(q, k, v, mask=mask, is_causal=True)
    got = dpa(q, k, v, mask=mask, is_causal=True)
    assert want.dtype == got.dtype == np.float64
    np.testing.assert_allclose(got, want, rtol=TOL, atol=TOL)  # JAX's softmax is float32


def test_rejects_non_bool_mask_like_jax() -> None:
    q, k, v = _qkv((1, 2, 1, 4), (1, 3, 1, 4))
    mask = np.ones((1, 1, 2, 3), np.int32)
    with pytest.raises(ValueError, match="mask dtype should be bool"):
        jax_dpa(q, k, v, mask=mask)
    with pytest.raises(AttentionDTypeError, match="mask dtype should be bool"):
        dpa(q, k, v, mask=mask)


def test_rejects_heads_not_multiple_like_jax() -> None:
    q, k, v = _qkv((1, 2, 3, 4), (1, 3, 2, 4))
    with pytest.raises(ValueError, match="must be a multiple"):
        jax_dpa(q, k, v)
    with pytest.raises(AttentionShapeError, match="should be a multiple of key/value heads"):
        dpa(q, k, v)


def test_rejects_value_shape_unlike_key_like_jax() -> None:
    q, k, _ = _qkv((1, 2, 1, 4), (1, 3, 1, 4))
    v = np.zeros((1, 3, 1, 5), np.float32)
    with pytest.raises(ValueError, match="value shape should be"):
        jax_dpa(q, k, v)
    with pytest.raises(AttentionShapeError, match="value shape should be"):
        dpa(q, k, v)


def test_rejects_negative_window() -> None:
    q, k, v = _qkv((1, 2, 1, 4), (1, 3, 1, 4))
    with pytest.raises(AttentionValueError, match=r"local_window_size\[0\] should be >= 0"):
        dpa(q, k, v, local_window_size=(-1, 2))


def test_no_keys_gives_zeros_like_jax() -> None:
    q, k, v = _qkv((1, 3, 2, 4), (1, 0, 2, 4))
    want = jax_dpa(q, k, v)
    np.testing.assert_array_equal(want, np.zeros_like(q))  # what JAX really returns
    np.testing.assert_array_equal(dpa(q, k, v), want)


def test_lengths_past_the_axis_refused_under_the_callers_name() -> None:
    """JAX accepts a query length past T silently (nothing padded); refattn names it."""
    q, k, v = _qkv((1, 3, 2, 4), (1, 3, 2, 4))
    lengths = np.array([5], np.int32)
    silent = jax_dpa(q, k, v, query_seq_lengths=lengths)
    np.testing.assert_allclose(silent, jax_dpa(q, k, v), rtol=1e-6)  # the claim in the message
    with pytest.raises(AttentionValueError, match=r"query_seq_lengths should lie in \[0, T\]"):
        dpa(q, k, v, query_seq_lengths=lengths)
    with pytest.raises(AttentionValueError, match=r"key_value_seq_lengths should lie in \[0, S\]"):
        dpa(q, k, v, key_value_seq_lengths=np.array([-1], np.int32))


@pytest.mark.parametrize("size", [1.5, "ab", (1.5, 2), (1, 2, 3), True, (None, 1)])
def test_bad_window_sizes_refused_by_name(size: Any) -> None:
    q, k, v = _qkv((1, 3, 2, 4), (1, 3, 2, 4))
    with pytest.raises(AttentionValueError, match=r"local_window_size.* should be"):
        dpa(q, k, v, local_window_size=size)
