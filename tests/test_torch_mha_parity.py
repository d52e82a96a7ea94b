"""refattn.compat.torch.multi_head_attention_forward against real torch 2.13 (CPU).

Same weights on both sides, over random configurations: layouts, packed or separate
projections (kdim/vdim), biases, bias_k/bias_v, add_zero_attn, boolean and float masks of
every accepted shape (with fully masked rows), need_weights, average_attn_weights and
the is_causal hint.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from refattn.compat.torch import multi_head_attention_forward as mha
from refattn.errors import AttentionDTypeError, AttentionShapeError, AttentionValueError

TOL = {np.float32: 2e-5, np.float64: 1e-10}


def torch_mha(**kwargs: Any) -> tuple[np.ndarray, np.ndarray | None]:
    """Real torch on NumPy inputs; array arguments become tensors."""
    tensors: dict[str, Any] = {
        n: torch.from_numpy(a) if isinstance(a, np.ndarray) else a for n, a in kwargs.items()
    }
    out, weights = F.multi_head_attention_forward(**tensors)
    return out.numpy(), None if weights is None else weights.numpy()


def weights_for(
    rng: np.random.Generator,
    embed: int,
    kdim: int,
    vdim: int,
    dtype: type,
    *,
    separate: bool,
    biases: bool,
) -> dict[str, Any]:
    def w(*shape: int) -> np.ndarray:
        x: np.ndarray = rng.standard_normal(shape) / np.sqrt(shape[-1])
        return x.astype(dtype)

    args: dict[str, Any] = {
        "in_proj_weight": None if separate else w(3 * embed, embed),
        "in_proj_bias": w(3 * embed) if biases else None,
        "out_proj_weight": w(embed, embed),
        "out_proj_bias": w(embed) if biases else None,
        "use_separate_proj_weight": separate,
    }
    if separate:
        args |= {"q_proj_weight": w(embed, embed), "k_proj_weight": w(embed, kdim)}
        args["v_proj_weight"] = w(embed, vdim)
    return args


@st.composite
def mha_cases(draw: Any) -> dict[str, Any]:
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    batched = draw(st.booleans())
    batch = draw(st.integers(1, 3)) if batched else 1
    heads = draw(st.sampled_from([1, 2, 4]))
    embed = heads * draw(st.sampled_from([1, 3, 8]))
    length_q, length_k = draw(st.integers(1, 9)), draw(st.integers(1, 11))
    separate = draw(st.booleans())
    kdim = draw(st.sampled_from([embed, 5])) if separate else embed
    vdim = draw(st.sampled_from([embed, 7])) if separate else embed
    self_attention = not separate and length_q == length_k and draw(st.booleans())
    lead = (batch,) if batched else ()

    def seq(length: int, features: int) -> np.ndarray:
        x = rng.standard_normal((length, *lead, features))
        return x.astype(dtype)

    query = seq(length_q, embed)
    key = query if self_attention else seq(length_k, kdim)
    value = query if self_attention else seq(length_k, vdim)
    case: dict[str, Any] = {
        "query": query,
        "key": key,
        "value": value,
        "embed_dim_to_check": embed,
        "num_heads": heads,
        "bias_k": None,
        "bias_v": None,
        "add_zero_attn": draw(st.booleans()),
        "dropout_p": 0.0,
        "need_weights": draw(st.booleans()),
        "average_attn_weights": draw(st.booleans()),
        "training": draw(st.booleans()),
    }
    case |= weights_for(
        rng, embed, kdim, vdim, dtype, separate=separate, biases=draw(st.booleans())
    )
    if draw(st.booleans()):
        case["bias_k"] = rng.standard_normal((1, 1, embed)).astype(dtype)
        case["bias_v"] = rng.standard_normal((1, 1, embed)).astype(dtype)

    mask_type = draw(st.sampled_from(["bool", "float"]))  # torch warns on mixed types

    def as_type(ignore: np.ndarray) -> np.ndarray:
        if mask_type == "bool":
            return ignore
        return np.where(ignore, -np.inf, rng.standard_normal(ignore.shape)).astype(dtype)

    if draw(st.booleans()):
        ignore = rng.random((*lead, length_k)) < 0.3
        if batched and draw(st.booleans()):
            ignore[-1] = True  # the last batch entry ignores every key
        case["key_padding_mask"] = as_type(ignore)
    mask_rank = draw(st.sampled_from([None, 2, 3]))
    if mask_rank is not None:
        shape = (length_q, length_k) if mask_rank == 2 else (batch * heads, length_q, length_k)
        ignore = rng.random(shape) < 0.3
        if draw(st.booleans()):
            ignore[..., 0, :] = True  # query 0 may attend nothing
        case["attn_mask"] = as_type(ignore)
        case["is_causal"] = draw(st.booleans())  # a hint torch may act on, see the docs
    return case


@settings(max_examples=250, deadline=None)
@given(mha_cases())
def test_matches_torch_mha(case: dict[str, Any]) -> None:
    dtype = case["query"].dtype.type
    want_out, want_w = torch_mha(**case)
    got_out, got_w = mha(**case)
    assert got_out.dtype == want_out.dtype
    assert got_out.shape == want_out.shape
    np.testing.assert_array_equal(np.isnan(got_out), np.isnan(want_out))
    np.testing.assert_allclose(got_out, want_out, rtol=TOL[dtype], atol=TOL[dtype])
    if want_w is None:
        assert got_w is None
        return
    assert got_w is not None
    assert got_w.shape == want_w.shape
    np.testing.assert_array_equal(np.isnan(got_w), np.isnan(want_w))
    np.testing.assert_allclose(got_w, want_w, rtol=TOL[dtype], atol=TOL[dtype])


def _self_attention_case(seed: int = 0, **extra: Any) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((4, 2, 8))  # (L, N, E)
    case: dict[str, Any] = {
        "query": x,
        "key": x,
        "value": x,
        "embed_dim_to_check": 8,
        "num_heads": 2,
        "bias_k": None,
        "bias_v": None,
        "add_zero_attn": False,
        "dropout_p": 0.0,
    }
    case |= weights_for(rng, 8, 8, 8, np.float64, separate=False, biases=True)
    return case | extra


def test_fully_masked_rows_nan_with_weights_bias_without() -> None:
    kpm = np.array([[False, False, True, False], [True, True, True, True]])
    case = _self_attention_case(key_padding_mask=kpm)
    for need_weights in (True, False):
        want_out, _ = torch_mha(**case, need_weights=need_weights)
        got_out, _ = mha(**case, need_weights=need_weights)
        if need_weights:  # every feature of batch 1 is NaN, batch 0 is finite
            assert np.isnan(want_out[:, 1]).all()
            assert np.isnan(got_out[:, 1]).all()
            assert np.isfinite(got_out[:, 0]).all()
        else:  # SDPA's zeros, then the output projection: out_proj_bias
            np.testing.assert_array_equal(want_out[:, 1], np.tile(case["out_proj_bias"], (4, 1)))
            np.testing.assert_array_equal(got_out[:, 1], np.tile(case["out_proj_bias"], (4, 1)))
        np.testing.assert_allclose(got_out, want_out, rtol=1e-10, atol=1e-10)


def test_module_fast_path_returns_nan_where_the_function_returns_zeros() -> None:
    """nn.MultiheadAttention's inference fast path is a third behaviour; we mirror the function."""
    torch.manual_seed(0)
    module = torch.nn.MultiheadAttention(8, 2, batch_first=True, dtype=torch.float64).eval()
    x = np.random.default_rng(0).standard_normal((2, 4, 8))  # (N, L, E): batch-first module
    kpm = np.array([[False, False, True, False], [True] * 4])
    xt = torch.from_numpy(x)
    with torch.no_grad():
        fast, _ = module(xt, xt, xt, key_padding_mask=torch.from_numpy(kpm), need_weights=False)
    params = {n: p.detach().numpy() for n, p in module.named_parameters()}
    x_seq = x.swapaxes(0, 1)  # (L, N, E)
    case = _self_attention_case(
        query=x_seq,
        key=x_seq,
        value=x_seq,
        key_padding_mask=kpm,
        need_weights=False,
        training=False,
    )
    case |= {"in_proj_weight": params["in_proj_weight"], "in_proj_bias": params["in_proj_bias"]}
    case |= {"out_proj_weight": params["out_proj.weight"], "out_proj_bias": params["out_proj.bias"]}
    functional, _ = torch_mha(**case)
    ours, _ = mha(**case)
    assert np.isnan(fast.numpy()[1]).all()  # fast path: NaN
    np.testing.assert_array_equal(functional[:, 1], np.tile(params["out_proj.bias"], (4, 1)))
    np.testing.assert_allclose(ours, functional, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(ours[:, 0], fast.numpy()[0], rtol=1e-10, atol=1e-10)


def test_one_fully_masked_head_spreads_nan_to_all_features() -> None:
    ignore = np.zeros((2 * 2, 4, 4), bool)  # (N * H, L, S), batch-major
    ignore[1 * 2 + 0, 3] = True  # batch 1, head 0, query 3: no key
    case = _self_attention_case(attn_mask=ignore)
    want_out, want_w = torch_mha(**case, average_attn_weights=False)
    got_out, got_w = mha(**case, average_attn_weights=False)
    assert got_w is not None
    assert want_w is not None
    assert np.isnan(want_out[3, 1]).all()  # all 8 features, though head 1 was fine
    assert np.isnan(got_out[3, 1]).all()
    assert np.isnan(got_w[1, 0, 3]).all()
    assert np.isfinite(got_w[1, 1, 3]).all()  # head 1's weights stay finite
    np.testing.assert_allclose(got_out, want_out, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(got_w, want_w, rtol=1e-10, atol=1e-10)


def test_is_causal_hint_drops_attn_mask_on_the_sdpa_path() -> None:
    rng = np.random.default_rng(1)
    not_causal = rng.random((4, 4)) < 0.4  # True = ignore; not a causal mask at all
    not_causal[:, 0] = False
    causal = np.triu(np.ones((4, 4), bool), 1)
    case = _self_attention_case(need_weights=False)
    hinted, _ = torch_mha(**case, attn_mask=not_causal, is_causal=True)
    as_causal, _ = torch_mha(**case, attn_mask=causal)
    as_given, _ = torch_mha(**case, attn_mask=not_causal)
    np.testing.assert_allclose(hinted, as_causal, rtol=1e-12, atol=1e-12)  # mask ignored
    assert not np.allclose(hinted, as_given)
    got, _ = mha(**case, attn_mask=not_causal, is_causal=True)
    np.testing.assert_allclose(got, hinted, rtol=1e-10, atol=1e-10)
    # with weights requested, the same hint is ignored and the mask is used
    got_w, _ = mha(**(case | {"need_weights": True}), attn_mask=not_causal, is_causal=True)
    np.testing.assert_allclose(got_w, as_given, rtol=1e-10, atol=1e-10)


def test_is_causal_needs_attn_mask_like_torch() -> None:
    case = _self_attention_case(is_causal=True)
    with pytest.raises(RuntimeError, match="Need attn_mask if specifying the is_causal hint"):
        torch_mha(**case)
    with pytest.raises(AttentionValueError, match="is_causal=True needs an attn_mask"):
        mha(**case)


def test_module_with_kdim_vdim_and_bias_kv() -> None:
    torch.manual_seed(0)
    module = torch.nn.MultiheadAttention(
        12, 3, bias=True, add_bias_kv=True, kdim=5, vdim=7, dtype=torch.float64
    )
    rng = np.random.default_rng(0)
    q = rng.standard_normal((6, 2, 12))
    k, v = rng.standard_normal((9, 2, 5)), rng.standard_normal((9, 2, 7))
    kpm = rng.random((2, 9)) < 0.3
    want_out, want_w = module(
        *(torch.from_numpy(x) for x in (q, k, v)), key_padding_mask=torch.from_numpy(kpm)
    )
    params = {n: p.detach().numpy() for n, p in module.named_parameters()}
    got_out, got_w = mha(
        q, k, v, 12, 3, None, params["in_proj_bias"], params["bias_k"], params["bias_v"],
        False, 0.0, params["out_proj.weight"], params["out_proj.bias"],
        key_padding_mask=kpm, use_separate_proj_weight=True,
        q_proj_weight=params["q_proj_weight"], k_proj_weight=params["k_proj_weight"],
        v_proj_weight=params["v_proj_weight"],
    )  # fmt: skip
    assert got_w is not None
    assert got_w.shape == (2, 6, 10)  # S + 1 for bias_k
    np.testing.assert_allclose(got_out, want_out.detach().numpy(), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(got_w, want_w.detach().numpy(), rtol=1e-10, atol=1e-10)


def test_static_k_and_v() -> None:
    rng = np.random.default_rng(3)
    case = _self_attention_case()
    static_k, static_v = rng.standard_normal((2, 2 * 2, 6, 4))  # (N * H, S', D), S' = 6
    case |= {"static_k": static_k, "static_v": static_v, "average_attn_weights": False}
    want_out, want_w = torch_mha(**case)
    got_out, got_w = mha(**case)
    assert got_w is not None
    assert want_w is not None
    assert got_w.shape == (2, 2, 4, 6)
    np.testing.assert_allclose(got_out, want_out, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(got_w, want_w, rtol=1e-10, atol=1e-10)


def _mix(case: dict[str, Any], per_head: np.ndarray) -> np.ndarray:
    """out_proj(weights @ v), from the returned per-head weights: (L, N, E)."""
    e, h = case["embed_dim_to_check"], case["num_heads"]
    w_v, b_v = case["in_proj_weight"][2 * e :], case["in_proj_bias"][2 * e :]
    v = (case["value"] @ w_v.T + b_v).reshape(*case["value"].shape[:2], h, e // h)  # (S, N, H, D)
    heads = np.einsum("nhls,snhd->lnhd", per_head, v).reshape(per_head.shape[2], -1, e)
    out: np.ndarray = heads @ case["out_proj_weight"].T + case["out_proj_bias"]
    return out


def test_dropout_weights_are_returned_after_dropout_like_torch() -> None:
    case = _self_attention_case(dropout_p=0.5, average_attn_weights=False)
    torch.manual_seed(0)
    want_out, want_w = torch_mha(**case)
    got_out, got_w = mha(**case, rng=np.random.default_rng(0))
    _, plain = torch_mha(**case, training=False)  # no dropout
    assert plain is not None
    for out, weights in ((want_out, want_w), (got_out, got_w)):
        assert weights is not None
        np.testing.assert_allclose(out, _mix(case, weights), rtol=1e-10, atol=1e-10)
        kept = weights != 0
        assert 0.3 < 1 - kept.mean() < 0.7  # about half dropped, the rest scaled by 2
        np.testing.assert_allclose(weights[kept], 2 * plain[kept], rtol=1e-10)
    inference, _ = mha(**case, training=False)
    np.testing.assert_allclose(inference, torch_mha(**case, training=False)[0], rtol=1e-10)


def test_dropout_needs_rng() -> None:
    case = _self_attention_case(dropout_p=0.1)
    with pytest.raises(AttentionValueError, match="needs an explicit rng, but got rng=None"):
        mha(**case)


@pytest.mark.parametrize(
    ("extra", "torch_error", "torch_match", "error", "match"),
    [
        pytest.param(
            {"attn_mask": np.zeros((4, 4), np.int64)},
            AssertionError,
            "only bool and floating types of attn_mask",
            AttentionDTypeError,
            "attn_mask should be boolean",
            id="int-mask",
        ),
        pytest.param(
            {"attn_mask": np.zeros((2, 4, 4), bool)},
            RuntimeError,
            "The shape of the 3D attn_mask",
            AttentionShapeError,
            r"batch-major \(N \* num_heads, L, S\)",
            id="3d-mask-per-batch-not-per-head",
        ),
        pytest.param(
            {"embed_dim_to_check": 6},
            AssertionError,
            "was expecting embedding dimension of 6",
            AttentionShapeError,
            "embed_dim_to_check=6",
            id="embed-dim",
        ),
        pytest.param(
            {"attn_mask": np.zeros((4, 4), np.float32)},
            RuntimeError,
            "Input dtypes must be the same",
            AttentionDTypeError,
            "attn_mask dtype should be float64",
            id="float32-mask-float64-query",
        ),
    ],
)
def test_rejects_what_torch_rejects(
    extra: dict[str, Any], torch_error: type, torch_match: str, error: type, match: str
) -> None:
    case = _self_attention_case(**extra)
    with pytest.raises(torch_error, match=torch_match):
        torch_mha(**case)
    with pytest.raises(error, match=match):
        mha(**case)


def test_float32_mask_float64_query_refused_on_the_sdpa_path() -> None:
    """With need_weights=False torch takes its SDPA path, which is wrong for this pair."""
    rng = np.random.default_rng(0)
    mask = rng.standard_normal((4, 300)).astype(np.float32)
    case = _self_attention_case(need_weights=False)
    case["key"] = case["value"] = rng.standard_normal((300, 2, 8))
    with pytest.raises(AttentionDTypeError, match="attn_mask dtype should be float64"):
        mha(**case, attn_mask=mask)
    right = mha(**case, attn_mask=mask.astype(np.float64))[0]
    np.testing.assert_allclose(
        torch_mha(**case, attn_mask=mask.astype(np.float64))[0], right, rtol=1e-10, atol=1e-10
    )
    assert np.abs(torch_mha(**case, attn_mask=mask)[0] - right).max() > 1e-3  # torch's bug


def _mha_args(**changes: Any) -> dict[str, Any]:
    rng = np.random.default_rng(3)
    x = rng.standard_normal((5, 2, 8)).astype(np.float32)  # (L, N, E)
    args: dict[str, Any] = {
        "query": x,
        "key": x,
        "value": x,
        "embed_dim_to_check": 8,
        "num_heads": 2,
        "in_proj_weight": rng.standard_normal((24, 8)).astype(np.float32),
        "in_proj_bias": None,
        "bias_k": None,
        "bias_v": None,
        "add_zero_attn": False,
        "dropout_p": 0.0,
        "out_proj_weight": rng.standard_normal((8, 8)).astype(np.float32),
        "out_proj_bias": None,
        "training": False,
    }
    return args | changes


@pytest.mark.parametrize(
    "kpm", [np.zeros((5, 2), bool), np.zeros((2, 3), bool), np.zeros((2, 6), bool)]
)
def test_wrong_key_padding_mask_refused_with_torchs_words(kpm: np.ndarray) -> None:
    """Transposed (S, N) or wrong-size masks: torch raises; refattn quotes what it says."""
    args = _mha_args(key_padding_mask=kpm)
    with pytest.raises(AssertionError) as torch_error:
        torch_mha(**args)
    with pytest.raises(AttentionShapeError) as ours:
        mha(**args)
    assert str(torch_error.value) in str(ours.value)
    if kpm.shape == (5, 2):
        assert "key_padding_mask.T" in str(ours.value)


def test_out_proj_weight_none_refused_like_torch() -> None:
    args = _mha_args(out_proj_weight=None)
    with pytest.raises(TypeError) as torch_error:
        torch_mha(**args)
    with pytest.raises(AttentionValueError) as ours:
        mha(**args)
    assert str(torch_error.value) in str(ours.value)


def test_nan_in_float_key_padding_mask_named_as_such() -> None:
    """torch returns NaN rows for a NaN in a float mask; refattn refuses it by its name."""
    kpm = np.zeros((2, 5), np.float32)
    kpm[0, 1] = np.nan
    args = _mha_args(key_padding_mask=kpm)
    out, _ = torch_mha(**args)
    assert np.isnan(out[:, 0]).all()  # the claim in the message: NaN rows
    with pytest.raises(AttentionValueError, match=r"^key_padding_mask should hold finite.*1 NaN"):
        mha(**args)


def test_nan_in_sdpa_float_mask_named_attn_mask() -> None:
    from refattn.compat.torch import scaled_dot_product_attention as sdpa

    rng = np.random.default_rng(4)
    q = rng.standard_normal((1, 2, 3, 4)).astype(np.float32)
    mask = np.zeros((3, 3), np.float32)
    mask[1, 2] = np.nan
    tq, tm = torch.from_numpy(q), torch.from_numpy(mask)
    out = F.scaled_dot_product_attention(tq, tq, tq, attn_mask=tm).numpy()
    assert np.isnan(out[:, :, 1]).all()  # torch: NaN rows
    with pytest.raises(AttentionValueError, match=r"^attn_mask should hold finite.*1 NaN"):
        sdpa(q, q, q, attn_mask=mask)


def test_tensors_numpy_cannot_read_get_a_named_error() -> None:
    """A tensor that requires grad, or bfloat16: numpy refuses it; refattn says how to fix."""
    from refattn import attention
    from refattn.errors import AttentionDTypeError

    for tensor in (
        torch.ones(1, 2, 3, 4, requires_grad=True),
        torch.ones(1, 2, 3, 4, dtype=torch.bfloat16),
    ):
        with pytest.raises((RuntimeError, TypeError)) as numpy_error:
            np.asarray(tensor)
        with pytest.raises(
            AttentionDTypeError, match=r"tensor\.detach\(\)\.cpu\(\)\.float\(\)"
        ) as ours:
            attention(tensor, tensor, tensor)
        assert str(numpy_error.value) in str(ours.value)
        assert "torch.Tensor" in str(ours.value)
