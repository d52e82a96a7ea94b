"""The analytic backward against central finite differences and against torch autograd."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import refattn
from refattn.compat.torch import scaled_dot_product_attention_backward as sdpa_backward
from refattn.errors import AttentionShapeError, AttentionValueError
from tests.test_reference import configs


def _numeric_gradient(fn: Any, x: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    grad = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        plus, minus = x.copy(), x.copy()
        plus[index] += eps
        minus[index] -= eps
        grad[index] = (fn(plus) - fn(minus)) / (2 * eps)
    return grad


@settings(max_examples=60, deadline=None)
@given(configs(), st.integers(0, 2**32 - 1))
def test_matches_finite_differences(cfg: dict[str, Any], seed: int) -> None:
    cfg = dict(cfg)
    if cfg["fully_masked"] == "nan":
        cfg["fully_masked"] = "zero"
    if "bias" in cfg:
        cfg["bias"] = np.where(np.isinf(cfg["bias"]), -np.inf, cfg["bias"])
    arrays = {"q": cfg.pop("q"), "k": cfg.pop("k"), "v": cfg.pop("v")}
    if "bias" in cfg:
        arrays["bias"] = cfg.pop("bias")
    out = refattn.attention(arrays["q"], arrays["k"], arrays["v"], bias=arrays.get("bias"), **cfg)
    upstream = np.random.default_rng(seed).standard_normal(out.shape)
    grads = refattn.attention_backward(
        upstream, arrays["q"], arrays["k"], arrays["v"], bias=arrays.get("bias"), **cfg
    )

    def loss(name: str, x: np.ndarray) -> float:
        args = {**arrays, name: x}
        result = refattn.attention(args["q"], args["k"], args["v"], bias=args.get("bias"), **cfg)
        return float((result * upstream).sum())

    for name, got in (
        ("q", grads.query),
        ("k", grads.key),
        ("v", grads.value),
        ("bias", grads.bias),
    ):
        if name not in arrays:
            assert got is None
            continue
        x = arrays[name]
        finite = np.isfinite(x)  # -inf bias entries have no gradient to check
        want = _numeric_gradient(lambda y, name=name: loss(name, y), np.where(finite, x, -1e300))
        assert got is not None
        assert got.shape == x.shape
        np.testing.assert_allclose(got[finite], want[finite], rtol=1e-5, atol=1e-6)


@st.composite
def torch_cases(draw: Any) -> dict[str, Any]:
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    hkv = draw(st.integers(1, 2))
    gqa = draw(st.booleans())
    hq = hkv * 2 if gqa else hkv
    batch, length_q, length_k = (
        draw(st.integers(1, 2)),
        draw(st.integers(1, 70)),
        draw(st.integers(1, 70)),
    )
    dim = draw(st.sampled_from([4, 16]))
    case: dict[str, Any] = {
        "query": rng.standard_normal((batch, hq, length_q, dim)).astype(dtype),
        "key": rng.standard_normal((batch, hkv, length_k, dim)).astype(dtype),
        "value": rng.standard_normal((batch, hkv, length_k, dim)).astype(dtype),
        "enable_gqa": gqa,
        "is_causal": draw(st.booleans()),
    }
    if not case["is_causal"] and draw(st.booleans()):
        mask = rng.random((batch, 1, length_q, length_k)) < 0.6
        mask[..., 0, :] = False  # a fully masked row: zero gradients
        case["attn_mask"] = mask
    if draw(st.booleans()):
        case["scale"] = draw(st.floats(0.05, 1.0))
    return case


@settings(max_examples=80, deadline=None)
@given(torch_cases(), st.integers(0, 2**32 - 1))
def test_matches_torch_autograd(case: dict[str, Any], seed: int) -> None:
    dtype = case["query"].dtype
    tensors = {n: torch.tensor(case[n], requires_grad=True) for n in ("query", "key", "value")}
    options: dict[str, Any] = {
        n: (torch.from_numpy(a) if isinstance(a, np.ndarray) else a)
        for n, a in case.items()
        if n not in tensors
    }
    out: Any = torch.nn.functional.scaled_dot_product_attention(
        tensors["query"], tensors["key"], tensors["value"], **options
    )
    upstream = np.random.default_rng(seed).standard_normal(tuple(out.shape)).astype(dtype)
    out.backward(torch.from_numpy(upstream))
    got = sdpa_backward(upstream, **case)
    tol = 2e-5 if dtype == np.float32 else 1e-10
    for name, grad in zip(("query", "key", "value"), got, strict=True):
        want = tensors[name].grad
        assert want is not None
        assert grad.dtype == dtype
        np.testing.assert_allclose(grad, want.numpy(), rtol=tol, atol=tol)


def test_fully_masked_rows_have_zero_finite_gradients() -> None:
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((1, 1, 3, 4)) for _ in range(3))
    mask = np.array([[True, True, False], [False, False, False], [True, False, False]])
    grads = refattn.attention_backward(np.ones((1, 1, 3, 4)), q, k, v, attend_mask=mask)
    assert np.isfinite(grads.query).all()
    assert not grads.query[0, 0, 1].any()
    assert not grads.value[0, 0, 2].any()  # key 2 is seen by no row


def test_uniform_policy_sends_gradient_to_every_value() -> None:
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((1, 1, 2, 3)) for _ in range(3))
    mask = np.zeros((2, 2), bool)
    upstream = rng.standard_normal((1, 1, 2, 3))
    grads = refattn.attention_backward(upstream, q, k, v, attend_mask=mask, fully_masked="uniform")
    np.testing.assert_allclose(grads.value[0, 0], np.tile(upstream[0, 0].sum(0) / 2, (2, 1)))
    assert not grads.query.any()


def test_backward_refuses_nan_policy_and_bad_grad_shape() -> None:
    q = np.zeros((1, 1, 2, 3))
    with pytest.raises(AttentionValueError, match="for attention_backward: but got 'nan'"):
        refattn.attention_backward(q, q, q, q, fully_masked="nan")
    with pytest.raises(AttentionShapeError, match=r"grad_output shape should be the output's"):
        refattn.attention_backward(np.zeros((1, 1, 2, 4)), q, q, q)


def test_broadcast_inputs_get_summed_gradients() -> None:
    rng = np.random.default_rng(0)
    q = rng.standard_normal((3, 2, 4, 5))
    k, v = rng.standard_normal((1, 2, 6, 5)), rng.standard_normal((2, 6, 5))
    upstream = rng.standard_normal((3, 2, 4, 5))
    grads = refattn.attention_backward(upstream, q, k, v)
    assert grads.key.shape == k.shape
    assert grads.value.shape == v.shape
    full = refattn.attention_backward(
        upstream, q, np.repeat(k, 3, 0), np.broadcast_to(v, (3, 2, 6, 5))
    )
    np.testing.assert_allclose(grads.key[0], full.key.sum(0), rtol=1e-12)
    np.testing.assert_allclose(grads.value, full.value.sum(0), rtol=1e-12)
