"""refattn.compat.torch.scaled_dot_product_attention against real torch 2.13 (CPU)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from refattn.compat.torch import scaled_dot_product_attention as sdpa
from refattn.errors import AttentionDTypeError, AttentionShapeError, AttentionValueError

TOL = {np.float32: 2e-5, np.float64: 1e-10}


def torch_sdpa(q: np.ndarray, k: np.ndarray, v: np.ndarray, **kwargs: Any) -> Any:
    """Real torch SDPA on NumPy inputs; array keyword arguments become tensors."""
    tensor_kwargs: dict[str, Any] = {
        n: torch.from_numpy(a) if isinstance(a, np.ndarray) else a for n, a in kwargs.items()
    }
    qt, kt, vt = torch.from_numpy(q), torch.from_numpy(k), torch.from_numpy(v)
    return F.scaled_dot_product_attention(qt, kt, vt, **tensor_kwargs).numpy()


@st.composite
def sdpa_cases(draw: Any) -> dict[str, Any]:
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    batch = draw(st.sampled_from([(), (2,), (1, 3)]))
    hkv = draw(st.integers(1, 3))
    gqa = draw(st.booleans())
    hq = hkv * draw(st.integers(2, 3)) if gqa else hkv
    length_q, length_k = draw(st.integers(1, 40)), draw(st.integers(1, 40))
    dim = draw(st.sampled_from([1, 8, 16, 33]))
    dim_v = draw(st.sampled_from([dim, 5]))
    case: dict[str, Any] = {
        "query": rng.standard_normal((*batch, hq, length_q, dim)).astype(dtype),
        "key": rng.standard_normal((*batch, hkv, length_k, dim)).astype(dtype),
        "value": rng.standard_normal((*batch, hkv, length_k, dim_v)).astype(dtype),
        "is_causal": draw(st.booleans()),
        "enable_gqa": gqa,
    }
    if draw(st.booleans()):
        case["scale"] = draw(st.floats(0.01, 2.0))
    mask_kind = draw(st.sampled_from([None, "bool", "float", "bool_rows_dead"]))
    shape = draw(
        st.sampled_from(
            [
                (length_q, length_k),
                (*batch, 1, length_q, length_k),
                (*batch, hq, length_q, length_k),
                (1, length_k),
            ]
        )
    )
    if mask_kind is not None and not case["is_causal"]:
        mask = rng.random(shape) < 0.6
        if mask_kind == "bool_rows_dead" and len(shape) >= 2:
            mask[..., 0, :] = False  # a fully masked query row
        if mask_kind == "float":
            case["attn_mask"] = np.where(mask, rng.standard_normal(shape), -np.inf).astype(dtype)
            if dtype == np.float32 and draw(st.booleans()):
                case["attn_mask"] = case["attn_mask"].astype(np.float32)
        else:
            case["attn_mask"] = mask
    return case


@settings(max_examples=250, deadline=None)
@given(sdpa_cases())
def test_matches_torch_sdpa(case: dict[str, Any]) -> None:
    dtype = case["query"].dtype.type
    options = {n: a for n, a in case.items() if n not in ("query", "key", "value")}
    want = torch_sdpa(case["query"], case["key"], case["value"], **options)
    got = sdpa(**case)
    assert got.dtype == want.dtype
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=TOL[dtype], atol=TOL[dtype])


def test_three_d_mask_read_as_heads_like_torch() -> None:
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((2, 4, 6, 8)).astype(np.float32) for _ in range(3))
    mask = rng.random((4, 6, 6)) < 0.5  # (H, L, S) to torch; would be ambiguous to refattn
    want = torch_sdpa(q, k, v, attn_mask=mask)
    np.testing.assert_allclose(sdpa(q, k, v, attn_mask=mask), want, rtol=2e-5, atol=2e-5)


def test_large_logits_float16() -> None:
    rng = np.random.default_rng(0)
    q = (rng.standard_normal((1, 2, 16, 8)) * 30).astype(np.float16)
    k = (rng.standard_normal((1, 2, 16, 8)) * 30).astype(np.float16)
    v = rng.standard_normal((1, 2, 16, 8)).astype(np.float16)
    want = torch_sdpa(q, k, v)
    got = sdpa(q, k, v)
    assert got.dtype == np.float16
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got.astype(np.float32), want.astype(np.float32), atol=2e-3)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        pytest.param(
            {"attn_mask": np.zeros((3, 5), np.int64)},
            AttentionDTypeError,
            "attn_mask dtype should be bool",
            id="int-mask",
        ),
        pytest.param(
            {"attn_mask": np.zeros((3, 5), np.float64)},
            AttentionDTypeError,
            "float32 or the query's dtype",
            id="float64-mask-float32-query",
        ),
    ],
)
def test_rejects_what_torch_rejects(kwargs: dict[str, Any], error: type, match: str) -> None:
    q = np.zeros((1, 2, 3, 4), np.float32)
    k = v = np.zeros((1, 2, 5, 4), np.float32)
    with pytest.raises(RuntimeError, match="Expected attn_mask dtype"):
        torch_sdpa(q, k, v, **kwargs)
    with pytest.raises(error, match=match):
        sdpa(q, k, v, **kwargs)


def test_one_d_mask_rejected_like_torch() -> None:
    q = k = v = np.zeros((1, 2, 3, 4), np.float32)
    mask = np.ones(3, bool)
    with pytest.raises(IndexError, match="Dimension out of range"):
        torch_sdpa(q, k, v, attn_mask=mask)
    with pytest.raises(AttentionShapeError, match="at least 2 dims"):
        sdpa(q, k, v, attn_mask=mask)


def test_float32_mask_with_float64_query_raises_where_torch_is_wrong() -> None:
    rng = np.random.default_rng(0)
    q = rng.standard_normal((1, 1, 3, 8))
    k, v = rng.standard_normal((1, 1, 300, 8)), rng.standard_normal((1, 1, 300, 8))
    mask = rng.standard_normal((3, 300)).astype(np.float32)
    right = torch_sdpa(q, k, v, attn_mask=mask.astype(np.float64))
    np.testing.assert_allclose(sdpa(q, k, v, attn_mask=mask.astype(np.float64)), right, rtol=1e-10)
    assert np.abs(torch_sdpa(q, k, v, attn_mask=mask) - right).max() > 0.1  # torch's bug
    with pytest.raises(AttentionDTypeError, match=r"astype\(np.float64\)"):
        sdpa(q, k, v, attn_mask=mask)


def test_gqa_needs_enable_gqa_like_torch() -> None:
    q = np.zeros((1, 4, 3, 4), np.float32)
    k = v = np.zeros((1, 2, 5, 4), np.float32)
    with pytest.raises(RuntimeError, match="must match the size"):
        torch_sdpa(q, k, v)
    with pytest.raises(AttentionShapeError, match="enable_gqa=True"):
        sdpa(q, k, v)


def test_mask_with_is_causal_raises_like_torch() -> None:
    q = k = v = np.zeros((2, 3, 4), np.float32)
    mask = np.ones((3, 3), bool)
    with pytest.raises(RuntimeError, match="attn_mask should not be set when is_causal"):
        torch_sdpa(q, k, v, attn_mask=mask, is_causal=True)
    with pytest.raises(AttentionValueError, match="attn_mask and is_causal=True"):
        sdpa(q, k, v, attn_mask=mask, is_causal=True)


def test_key_value_length_mismatch_raises_where_torch_is_silent() -> None:
    q = np.zeros((1, 2, 3, 4), np.float32)
    k, v = np.zeros((1, 2, 5, 4), np.float32), np.zeros((1, 2, 4, 4), np.float32)
    torch_sdpa(q, k, v)  # torch: no error
    with pytest.raises(AttentionShapeError, match="value length should equal key's S=5"):
        sdpa(q, k, v)
