"""Regressions for the adversarial sweep of issue 11 (findings 1-12).

Each test reproduces one finding of the sweep report and fails without its fix: a silent
wrong result, a raw exception, a leaked warning, or a message that says the wrong thing.
Expected values come from float64 loops (tests/loop_reference.py) or real torch 2.13.
"""

from __future__ import annotations

import importlib
import warnings
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import refattn
import refattn.compat.torch as CT
import refattn.masks as M
import refattn.rotary as R
import refattn.validation
from refattn.errors import (
    AttentionArgumentError,
    AttentionDTypeError,
    AttentionMemoryError,
    AttentionShapeError,
    AttentionValueError,
)
from refattn.multihead import merge_heads
from refattn.testing import assert_attention_close, check, compare
from tests.loop_reference import loop_attention

# untyped handles: these tests pass what the signatures forbid, on purpose
ct_mha: Any = CT.multi_head_attention_forward
loose_compare: Any = compare
loose_assert: Any = assert_attention_close
loose_attention: Any = refattn.attention
loose_backward: Any = refattn.attention_backward
torch_mha: Any = F.multi_head_attention_forward


def _qk() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    q = rng.standard_normal((1, 2, 4, 8)).astype(np.float32)
    k = rng.standard_normal((1, 2, 4, 8)).astype(np.float32)
    return q, k


# --- 1: NaN/inf/negative tolerances passed any output -----------------------------------


@pytest.mark.parametrize("name", ["factor", "floor_ulps"])
@pytest.mark.parametrize("value", [float("nan"), float("inf"), -1.0, "1", None, True])
def test_bad_tolerance_is_refused(name: str, value: object) -> None:
    q, k = _qk()
    wrong = refattn.attention(q, k, k)  # causal forgotten: must never pass
    with pytest.raises(AttentionValueError, match=rf"{name} should be a finite number >= 0"):
        loose_assert(wrong, q, k, k, causal="top_left", **{name: value})
    with pytest.raises(AttentionValueError, match=rf"{name} should be a finite number >= 0"):
        loose_compare(wrong, q, k, k, causal="top_left", **{name: value})


def test_valid_tolerances_still_judge() -> None:
    q, k = _qk()
    wrong = refattn.attention(q, k, k)
    assert not compare(wrong, q, k, k, causal="top_left", factor=0, floor_ulps=0).passed
    right = refattn.attention(q, k, k, causal="top_left")
    result = loose_compare(right, q, k, k, causal="top_left", factor=np.float32(2), floor_ulps=1)
    assert result.passed


# --- 2: torch MHA adapter with no keys --------------------------------------------------


def _mha_weights(embed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    return {
        "in_proj_weight": rng.standard_normal((3 * embed, embed)).astype(np.float32),
        "in_proj_bias": rng.standard_normal(3 * embed).astype(np.float32),
        "out_proj_weight": rng.standard_normal((embed, embed)).astype(np.float32),
        "out_proj_bias": rng.standard_normal(embed).astype(np.float32),
    }


def _mha_args(q: Any, k: Any, v: Any, embed: int, w: dict[str, Any]) -> tuple[Any, ...]:
    return (q, k, v, embed, 2, w["in_proj_weight"], w["in_proj_bias"], None, None, False, 0.0)


def _both_mha(
    q: np.ndarray, k: np.ndarray, need_weights: bool
) -> tuple[tuple[Any, Any], tuple[Any, Any]]:
    embed = q.shape[-1]
    w = _mha_weights(embed)
    ours = ct_mha(
        *_mha_args(q, k, k, embed, w),
        w["out_proj_weight"],
        w["out_proj_bias"],
        training=False,
        need_weights=need_weights,
    )
    t = {n: torch.from_numpy(a) for n, a in w.items()}
    theirs = torch_mha(
        *_mha_args(torch.from_numpy(q), torch.from_numpy(k), torch.from_numpy(k), embed, t),
        t["out_proj_weight"],
        t["out_proj_bias"],
        training=False,
        need_weights=need_weights,
    )
    return ours, theirs


@pytest.mark.parametrize("need_weights", [True, False])
@pytest.mark.parametrize("batched", [True, False])
def test_mha_adapter_without_keys_matches_torch(need_weights: bool, batched: bool) -> None:
    q = np.random.default_rng(0).standard_normal((3, 2, 8)).astype(np.float32)
    k0 = np.zeros((0, 2, 8), np.float32)
    if not batched:
        q, k0 = q[:, 0], k0[:, 0]
    (out, weights), (t_out, t_weights) = _both_mha(q, k0, need_weights)
    assert np.isfinite(t_out.numpy()).all()  # torch: the output projection of zeros
    np.testing.assert_allclose(out, t_out.numpy(), rtol=1e-6, atol=1e-6)
    if need_weights:
        assert weights is not None
        assert weights.shape == tuple(t_weights.shape)


# --- 3: key/value batch of 1 broadcast where torch raises --------------------------------


@pytest.mark.parametrize("kv_batch", [1, 3])
def test_mha_adapter_refuses_key_batch_that_differs(kv_batch: int) -> None:
    rng = np.random.default_rng(0)
    q = rng.standard_normal((3, 2, 8)).astype(np.float32)
    k = rng.standard_normal((3, kv_batch, 8)).astype(np.float32)
    w = _mha_weights(8)
    t = {n: torch.from_numpy(a) for n, a in w.items()}
    tk = torch.from_numpy(k)
    with pytest.raises(RuntimeError):
        torch_mha(
            *_mha_args(torch.from_numpy(q), tk, tk, 8, t),
            t["out_proj_weight"],
            t["out_proj_bias"],
            training=False,
        )
    with pytest.raises(AttentionShapeError, match=r"key batch size N should equal the query"):
        ct_mha(*_mha_args(q, k, k, 8, w), w["out_proj_weight"], w["out_proj_bias"], training=False)


def test_mha_adapter_refuses_value_batch_that_differs() -> None:
    rng = np.random.default_rng(0)
    q = rng.standard_normal((3, 2, 8)).astype(np.float32)
    w = _mha_weights(8)
    v = q[:, :1]
    with pytest.raises(AttentionShapeError, match=r"value batch size N should equal"):
        ct_mha(
            q, q, v, 8, 2, None, w["in_proj_bias"], None, None, False, 0.0,
            w["out_proj_weight"], w["out_proj_bias"], training=False,
            use_separate_proj_weight=True, q_proj_weight=w["in_proj_weight"][:8],
            k_proj_weight=w["in_proj_weight"][8:16], v_proj_weight=w["in_proj_weight"][16:],
        )  # fmt: skip


# --- 4, 5, 7: rotary --------------------------------------------------------------------


@pytest.mark.parametrize("value", ["no", 1, 0, None, np.array(True)])
def test_apply_rotary_refuses_non_bool_interleaved(value: object) -> None:
    x = np.random.default_rng(0).standard_normal((1, 1, 4, 8)).astype(np.float32)
    cos, sin = R.rotary_tables(4, 8)
    with pytest.raises(AttentionValueError, match="interleaved should be a bool"):
        R.apply_rotary(x, cos, sin, interleaved=value)  # type: ignore[arg-type]
    assert not np.array_equal(  # the two layouts differ on this input
        R.apply_rotary(x, cos, sin, interleaved=bool(np.bool_(True))),
        R.apply_rotary(x, cos, sin, interleaved=False),
    )


@pytest.mark.parametrize("dtype", [np.int32, np.int64, bool, np.complex64, np.uint8, "U3"])
def test_rotary_tables_refuse_non_float_dtypes(dtype: Any) -> None:
    with pytest.raises(AttentionDTypeError, match="dtype should be float16, float32 or float64"):
        R.rotary_tables(4, 8, dtype=dtype)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64, "f8"])
def test_rotary_tables_float_dtypes_match_float64_math(dtype: Any) -> None:
    cos, sin = R.rotary_tables(5, 6, dtype=dtype)
    assert cos.dtype == np.dtype(dtype)
    assert sin.dtype == np.dtype(dtype)
    inv = 10000.0 ** -(np.arange(0, 6, 2) / 6)
    angles = np.arange(5)[:, None] * inv[None, :]
    np.testing.assert_array_equal(cos, np.cos(angles).astype(dtype))
    np.testing.assert_array_equal(sin, np.sin(angles).astype(dtype))


def test_rotary_allocations_are_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(refattn.validation, "memory_limit", lambda: 16 << 30)
    with pytest.raises(AttentionMemoryError, match=r"rotary_tables\(1000000000000, 8\)"):
        R.rotary_tables(10**12, 8)
    with pytest.raises(AttentionMemoryError, match=r"packed_positions"):
        R.packed_positions(np.array([0, 10**12]))
    assert R.packed_positions(np.array([0, 2, 5])).tolist() == [0, 1, 0, 1, 2]


# --- 6: mask builders' int64 temporaries ------------------------------------------------


@pytest.mark.parametrize(
    "build",
    [
        lambda: M.causal(10**10, 1, "top_left"),
        lambda: M.causal(1, 10**10, "top_left"),
        lambda: M.causal(10**10, 0, "bottom_right"),
        lambda: M.window(5 * 10**9, 1, 1, 0, "top_left"),  # two 5 GB boolean copies
        lambda: M.window(1, 5 * 10**9, None, 3, "bottom_right"),
        lambda: M.padding([1], 10**10),
    ],
    ids=["causal_tall", "causal_wide", "causal_empty", "window_tall", "window_wide", "padding"],
)
def test_mask_builders_count_their_index_temporaries(
    monkeypatch: pytest.MonkeyPatch, build: Any
) -> None:
    # 16 GiB: the 10 GB of boolean results fit, the 40-80 GB of int64 indices do not
    monkeypatch.setattr(refattn.validation, "memory_limit", lambda: 16 << 30)
    with pytest.raises(AttentionMemoryError, match=r"int64 .*indices"):
        build()


def test_small_masks_are_unchanged() -> None:
    i, j = np.arange(3)[:, None], np.arange(5)[None, :]
    np.testing.assert_array_equal(M.causal(3, 5, "bottom_right"), j <= i + 2)
    np.testing.assert_array_equal(M.window(3, 5, 1, 0, "top_left"), (j <= i) & (j >= i - 1))
    np.testing.assert_array_equal(M.padding([2, 0], 3)[:, 0, 0], [[1, 1, 0], [0, 0, 0]])


# --- 8: refattn.testing raw exceptions --------------------------------------------------


@pytest.mark.parametrize(("policy", "fill"), [("zero", 0.0), ("nan", np.nan)])
def test_compare_with_no_keys_follows_fully_masked(policy: str, fill: float) -> None:
    q, k = _qk()
    k0 = k[:, :, :0]
    right = np.full((1, 2, 4, 8), fill, np.float32)
    opts = {} if policy == "zero" else {"fully_masked": policy}
    assert loose_compare(right, q, k0, k0, **opts).passed
    loose_assert(right, q, k0, k0, **opts)
    wrong = np.full((1, 2, 4, 8), 1.0 if policy == "zero" else 0.0, np.float32)
    assert not loose_compare(wrong, q, k0, k0, **opts).passed


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"return_weights": True}, "return_weights should not be passed"),
        ({"return_lse": True}, "return_lse should not be passed"),
        ({"foo": 1}, "foo should not be passed"),
        ({"casual": "top_left"}, "did you mean causal="),
    ],
)
def test_compare_refuses_keywords_it_cannot_judge(options: dict[str, Any], match: str) -> None:
    q, k = _qk()
    out = refattn.attention(q, k, k)
    with pytest.raises(AttentionArgumentError, match=match):
        loose_compare(out, q, k, k, **options)
    with pytest.raises(AttentionArgumentError, match=match):
        loose_assert(out, q, k, k, **options)


def test_compare_refuses_dropout_with_a_named_error() -> None:
    q, k = _qk()
    out = refattn.attention(q, k, k)
    with pytest.raises(AttentionValueError, match=r"dropout_p should be 0\.0"):
        compare(out, q, k, k, dropout_p=0.5, rng=np.random.default_rng(0))


@pytest.mark.parametrize("convention", ["nope", "", ["refattn"], None])
def test_check_refuses_unknown_convention(convention: object) -> None:
    with pytest.raises(AttentionValueError, match="convention should be one of"):
        check(refattn.attention, convention, quick=True)  # type: ignore[arg-type]


@pytest.mark.parametrize("fn", [42, None, "refattn.attention"])
def test_check_refuses_a_non_callable(fn: object) -> None:
    with pytest.raises(AttentionArgumentError, match="fn should be a callable"):
        check(fn, "refattn", quick=True)  # type: ignore[arg-type]


# --- 9: torch MHA adapter and merge_heads with E = 0 ------------------------------------


def test_mha_adapter_with_zero_embedding_is_named_where_torch_divides_by_zero() -> None:
    z = np.zeros((3, 2, 0), np.float32)
    w0, b0 = np.zeros((0, 0), np.float32), np.zeros(0, np.float32)
    tz, tw, tb = torch.from_numpy(z), torch.from_numpy(w0), torch.from_numpy(b0)
    with pytest.raises(ZeroDivisionError):
        torch_mha(tz, tz, tz, 0, 2, tw, tb, None, None, False, 0.0, tw, tb, training=False)
    with pytest.raises(AttentionShapeError, match=r"embed_dim E should be positive.*E=0"):
        ct_mha(z, z, z, 0, 2, w0, b0, None, None, False, 0.0, w0, b0, training=False)


def test_merge_heads_with_zero_features_projects_to_zeros() -> None:
    heads = np.zeros((2, 3, 0), np.float32)  # (H, L, Dv = 0)
    out = merge_heads(heads, np.zeros((5, 0), np.float32), np.arange(5, dtype=np.float32))
    np.testing.assert_array_equal(out, np.broadcast_to(np.arange(5, dtype=np.float32), (3, 5)))
    z = np.zeros((2, 3, 0), np.float32)  # (N, L, E = 0)
    w0 = np.zeros((0, 0), np.float32)
    empty = refattn.multi_head_attention(z, num_heads=2, in_proj_weight=w0, out_proj_weight=w0)
    assert empty.shape == (2, 3, 0)


# --- 10: ALiBi slopes past float32's range with a float32 query -------------------------


@pytest.mark.parametrize("memory_budget", [None, 0])
@pytest.mark.parametrize("slope", [1e300, -1e300, 1e39, 3.5e38])
def test_huge_alibi_slopes_compute_in_float64(memory_budget: int | None, slope: float) -> None:
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((1, 2, 4, 8)).astype(np.float32) for _ in "qkv")
    slopes = np.array([slope, 0.5])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no RuntimeWarning may leak
        out = refattn.attention(q, k, v, alibi_slopes=slopes, memory_budget=memory_budget)
    q64, k64, v64 = (x.astype(np.float64) for x in (q, k, v))
    expected = loop_attention(q64, k64, v64, alibi_slopes=slopes)[0]
    assert out.dtype == np.float32
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("memory_budget", [None, 0])
@pytest.mark.parametrize("sink", [1e300, -1e300, 1e39])
def test_huge_sinks_compute_in_float64(memory_budget: int | None, sink: float) -> None:
    # not in the sweep, the same class as finding 10: the sinks were cast to float32 first
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((1, 2, 4, 8)).astype(np.float32) for _ in "qkv")
    sinks = np.array([sink, 0.3])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = refattn.attention(q, k, v, sinks=sinks, memory_budget=memory_budget)
        grads = refattn.attention_backward(np.ones_like(q), q, k, v, sinks=sinks)
    q64, k64, v64 = (x.astype(np.float64) for x in (q, k, v))
    expected = loop_attention(q64, k64, v64, sinks=sinks)[0]
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)
    assert np.isfinite(grads.query).all()


# --- 11: messages -----------------------------------------------------------------------


def test_float_block_table_is_called_floating() -> None:
    k = np.zeros((2, 1, 3, 4))
    with pytest.raises(AttentionDTypeError, match=r"but got a floating dtype float64"):
        refattn.KVCache.paged(
            key=k,
            value=k,
            block_table=np.array([[0.0, 1.0], [2.0, 3.0]]),
            page_block_size=2,
            num_blocks=4,
        )


def test_bfloat16_query_is_called_floating() -> None:
    ml_dtypes = importlib.import_module("ml_dtypes")
    q = np.zeros((1, 1, 2, 4), np.float32)
    with pytest.raises(AttentionDTypeError, match=r"an ml_dtypes floating dtype bfloat16"):
        refattn.attention(q.astype(ml_dtypes.bfloat16), q, q)


def test_integer_past_int64_is_named() -> None:
    q, k = _qk()
    big = r"int64's range .* but got 2361183241434822606848"
    with pytest.raises(AttentionValueError, match=big):
        refattn.attention(q, k, k, key_lengths=[2**71, 1])
    with pytest.raises(AttentionDTypeError, match="dtype object"):  # still a ragged/mixed list
        loose_attention(q, k, k, key_lengths=[None, 1])


def test_float_memory_budget_message_asks_for_an_int() -> None:
    q, k = _qk()
    with pytest.raises(AttentionValueError, match=r"should be an int .* 1000000.0 of type float"):
        loose_attention(q, k, k, memory_budget=1e6)


def test_string_grad_output_reports_its_dtype() -> None:
    q, k = _qk()
    with pytest.raises(AttentionDTypeError, match=r"grad_output dtype .* non-numeric dtype <U1"):
        loose_backward("x", q, k, k)


def test_sdpa_mask_with_is_causal_message_matches_torch() -> None:
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((1, 2, 4, 8)).astype(np.float32) for _ in "qkv")
    mask = rng.random((4, 4)) > 0.3
    np.fill_diagonal(mask, True)
    tq, tk, tv, tm = (torch.from_numpy(x) for x in (q, k, v, mask))
    # torch's fused 4-D CPU kernel does not raise: it applies both masks
    both = F.scaled_dot_product_attention(tq, tk, tv, attn_mask=tm, is_causal=True)
    tril = torch.from_numpy(mask & np.tri(4, 4, dtype=bool))
    np.testing.assert_allclose(
        both.numpy(), F.scaled_dot_product_attention(tq, tk, tv, attn_mask=tril).numpy()
    )
    with pytest.raises(RuntimeError, match="Explicit attn_mask should not be set"):
        F.scaled_dot_product_attention(tq[0], tk[0], tv[0], attn_mask=tm, is_causal=True)
    with pytest.raises(AttentionValueError, match=r"3-D inputs raise .* applies both"):
        CT.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=True)


# --- 12 (documented, not changed): SDPA shapes stricter than torch ----------------------


def test_sdpa_shapes_torch_broadcasts_are_refused_by_name() -> None:
    q = np.random.default_rng(0).standard_normal((1, 2, 4, 8)).astype(np.float32)
    t = torch.from_numpy(q)
    assert F.scaled_dot_product_attention(t[0, 0], t[0, 0], t[0, 0]).shape == (4, 8)
    assert F.scaled_dot_product_attention(t, t[:, :1], t[:, :1]).shape == (1, 2, 4, 8)
    with pytest.raises(AttentionShapeError):
        CT.scaled_dot_product_attention(q[0, 0], q[0, 0], q[0, 0])
    with pytest.raises(AttentionShapeError, match="enable_gqa=True"):
        CT.scaled_dot_product_attention(q, q[:, :1], q[:, :1])
    assert "2-D (L, E) query" in (CT.scaled_dot_product_attention.__doc__ or "")
