"""The core against the independent loop reference, over hypothesis-drawn configurations."""

from __future__ import annotations

from typing import Any
from unittest import mock

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import refattn
from refattn import _kernel
from tests.loop_reference import loop_attention


@st.composite
def configs(draw: Any) -> dict[str, Any]:
    batch = tuple(draw(st.lists(st.integers(1, 2), max_size=2)))
    hkv = draw(st.integers(1, 2))
    hq = hkv * draw(st.integers(1, 3))
    length_q, length_k = draw(st.integers(1, 6)), draw(st.integers(1, 7))
    dim, dim_v = draw(st.integers(1, 5)), draw(st.integers(1, 4))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    # key/value may drop leading batch dims and broadcast against the query's
    kv_batch = batch[draw(st.integers(0, len(batch))) :] if batch else ()
    cfg: dict[str, Any] = {
        "q": rng.standard_normal((*batch, hq, length_q, dim)) * 2,
        "k": rng.standard_normal((*kv_batch, hkv, length_k, dim)) * 2,
        "v": rng.standard_normal((*kv_batch, hkv, length_k, dim_v)),
    }
    score_shape = (*batch, hq, length_q, length_k)
    if draw(st.booleans()):
        mask_shape = draw(
            st.sampled_from(
                [
                    (length_q, length_k),
                    (1, length_k),
                    score_shape,
                    (*batch, 1, 1, length_k),
                ]
            )
        )
        cfg["attend_mask"] = rng.random(mask_shape) < 0.7
    if draw(st.booleans()):
        bias = rng.standard_normal(draw(st.sampled_from([(length_q, length_k), score_shape])))
        if draw(st.booleans()):
            bias[rng.random(bias.shape) < 0.2] = -np.inf
        cfg["bias"] = bias
    cfg["causal"] = draw(st.sampled_from([None, "top_left", "bottom_right"]))
    if draw(st.booleans()):
        side = st.one_of(st.none(), st.integers(0, 4))
        cfg["window"] = (draw(side), draw(side))
        if cfg["causal"] is None:
            cfg["window_alignment"] = draw(st.sampled_from(["top_left", "bottom_right"]))
    if batch and draw(st.booleans()):
        cfg["key_lengths"] = rng.integers(0, length_k + 1, size=batch)
    if batch and draw(st.booleans()):
        cfg["query_lengths"] = rng.integers(0, length_q + 1, size=batch)
    if draw(st.booleans()):
        cfg["alibi_slopes"] = rng.random(hq)
    if draw(st.booleans()):
        cfg["softcap"] = draw(st.floats(0.5, 5.0))
    if draw(st.booleans()):
        cfg["scale"] = draw(st.floats(-2.0, 2.0))
    cfg["fully_masked"] = draw(st.sampled_from(["zero", "uniform", "nan"]))
    return cfg


def _run_both(cfg: dict[str, Any], dtype: type) -> tuple[Any, Any]:
    kwargs = {name: val for name, val in cfg.items() if name not in ("q", "k", "v")}
    q, k, v = (cfg[n].astype(dtype) for n in ("q", "k", "v"))
    got = refattn.attention(q, k, v, return_weights=True, return_lse=True, **kwargs)
    want = loop_attention(q, k, v, **kwargs)
    return got, want


@settings(max_examples=300, deadline=None)
@given(configs())
def test_float64_matches_loop_reference(cfg: dict[str, Any]) -> None:
    got, (out, weights, lse) = _run_both(cfg, np.float64)
    np.testing.assert_allclose(got.output, out, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(got.weights, weights, rtol=1e-10, atol=1e-12)
    assert got.lse is not None
    np.testing.assert_allclose(got.lse, lse, rtol=1e-10, atol=1e-12)


@settings(max_examples=100, deadline=None)
@given(configs())
def test_float32_matches_loop_reference(cfg: dict[str, Any]) -> None:
    got, (out, weights, _) = _run_both(cfg, np.float32)
    assert got.output.dtype == np.float32
    np.testing.assert_allclose(got.output, out, rtol=2e-5, atol=2e-5)
    np.testing.assert_allclose(got.weights, weights, rtol=2e-5, atol=2e-6)


@pytest.mark.parametrize(
    ("length_q", "length_k"), [pytest.param(113, 203, id="odd"), pytest.param(1, 300, id="L=1")]
)
@pytest.mark.parametrize("causal", [None, "top_left", "bottom_right"])
def test_odd_sizes_across_blocks(length_q: int, length_k: int, causal: Any) -> None:
    """Sizes that span several row blocks and the threaded path, against direct NumPy."""
    rng = np.random.default_rng(1)
    q = rng.standard_normal((2, 6, length_q, 24))
    k = rng.standard_normal((2, 3, length_k, 24))
    v = rng.standard_normal((2, 3, length_k, 10))
    mask = rng.random((2, 1, 1, length_k)) < 0.8
    got = refattn.attention(q, k, v, attend_mask=mask, causal=causal)
    kk, vv = np.repeat(k, 2, axis=1), np.repeat(v, 2, axis=1)
    logits = q @ np.swapaxes(kk, -1, -2) / np.sqrt(24)
    allowed = np.broadcast_to(mask, logits.shape)
    if causal is not None:
        offset = 0 if causal == "top_left" else length_k - length_q
        allowed = allowed & np.tri(length_q, length_k, offset, dtype=bool)
    logits = np.where(allowed, logits, -np.inf)
    top = logits.max(-1, keepdims=True)
    top = np.where(np.isinf(top), 0, top)
    w = np.exp(logits - top)
    total = w.sum(-1, keepdims=True)
    want = np.where(total > 0, (w @ vv) / np.where(total > 0, total, 1), 0)
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


@settings(max_examples=150, deadline=None)
@given(configs())
def test_online_softmax_over_key_chunks_matches_loop_reference(cfg: dict[str, Any]) -> None:
    """memory_budget=0 forces the online path; tiny blocks make it cut keys in 16s."""
    rng = np.random.default_rng(0)
    cfg = dict(cfg)
    for name in ("k", "v"):  # long enough key axes to span several chunks
        reps = -(-40 // cfg[name].shape[-2])
        cfg[name] = np.concatenate([cfg[name]] * reps, axis=-2)[..., :40, :]
        cfg[name] = cfg[name] + 0.1 * rng.standard_normal(cfg[name].shape)
    for name in ("attend_mask", "bias"):
        if name in cfg:
            arr = cfg[name]
            cfg[name] = np.concatenate([arr] * -(-40 // arr.shape[-1]), axis=-1)[..., :40]
    cfg.pop("key_lengths", None)
    kwargs = {name: val for name, val in cfg.items() if name not in ("q", "k", "v")}
    with mock.patch.object(_kernel, "_BLOCK_BYTES", 64):
        got = refattn.attention(
            cfg["q"], cfg["k"], cfg["v"], memory_budget=0, return_lse=True, **kwargs
        )
    out, _, lse = loop_attention(cfg["q"], cfg["k"], cfg["v"], **kwargs)
    np.testing.assert_allclose(got.output, out, rtol=1e-10, atol=1e-12)
    assert got.lse is not None
    np.testing.assert_allclose(got.lse, lse, rtol=1e-10, atol=1e-12)
