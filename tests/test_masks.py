"""Mask builders and conversions, checked against their definitions and against torch."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

import refattn
from refattn import masks
from refattn.errors import AttentionDTypeError, AttentionValueError


@pytest.mark.parametrize(("length_q", "length_k"), [(3, 5), (5, 3), (4, 4), (1, 7)])
@pytest.mark.parametrize("alignment", ["top_left", "bottom_right"])
def test_causal_is_window_unbounded_left(length_q: int, length_k: int, alignment: str) -> None:
    offset = 0 if alignment == "top_left" else length_k - length_q
    want = [[j <= i + offset for j in range(length_k)] for i in range(length_q)]
    got = masks.causal(length_q, length_k, alignment)  # type: ignore[arg-type]
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(masks.window(length_q, length_k, None, 0, alignment), want)  # type: ignore[arg-type]


def test_top_left_causal_matches_torch_is_causal() -> None:
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((1, 2, n, 8)).astype(np.float32) for n in (3, 6, 6))
    tq, tk, tv = (torch.from_numpy(x) for x in (q, k, v))
    want = torch.nn.functional.scaled_dot_product_attention(tq, tk, tv, is_causal=True).numpy()
    got = refattn.attention(q, k, v, attend_mask=masks.causal(3, 6, "top_left"))
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-5)


def test_window_matches_attention_window_argument() -> None:
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((2, 2, n, 4)) for n in (5, 9, 9))
    built = masks.window(5, 9, 2, 1, "bottom_right")
    a = refattn.attention(q, k, v, attend_mask=built)
    b = refattn.attention(q, k, v, window=(2, 1), window_alignment="bottom_right")
    np.testing.assert_allclose(a, b, rtol=1e-12)


def test_padding_and_combine() -> None:
    pad = masks.padding(np.array([1, 3]), 3)
    assert pad.shape == (2, 1, 1, 3)
    combined = masks.combine(masks.causal(3, 3, "top_left"), pad, None)
    assert combined is not None
    np.testing.assert_array_equal(combined[1, 0], np.tri(3, dtype=bool))
    np.testing.assert_array_equal(combined[0, 0], [[1, 0, 0]] * 3)
    assert masks.combine(None) is None


def test_torch_mha_masks_convert_to_the_same_attention() -> None:
    """torch MHA's True = ignore masks, converted, give torch MHA's own result."""
    rng = np.random.default_rng(0)
    embed, heads, length, batch = 8, 2, 5, 3
    mha = torch.nn.MultiheadAttention(embed, heads, batch_first=True, bias=False)
    x = rng.standard_normal((batch, length, embed)).astype(np.float32)
    pad = np.array([[False] * 5, [False] * 3 + [True] * 2, [False] * 4 + [True]])
    future = np.triu(np.ones((length, length), bool), 1)
    xt = torch.from_numpy(x)
    with torch.no_grad():
        want, _ = mha(
            xt,
            xt,
            xt,
            key_padding_mask=torch.from_numpy(pad),
            attn_mask=torch.from_numpy(future),
            need_weights=False,
        )
    w_q, w_k, w_v = mha.in_proj_weight.detach().numpy().reshape(3, embed, embed)

    def heads_of(w: np.ndarray) -> Any:
        return (x @ w.T).reshape(batch, length, heads, -1).transpose(0, 2, 1, 3)

    mask = masks.combine(masks.from_torch_key_padding_mask(pad), masks.from_torch_attn_mask(future))
    out = refattn.attention(heads_of(w_q), heads_of(w_k), heads_of(w_v), attend_mask=mask)
    merged = out.transpose(0, 2, 1, 3).reshape(batch, length, embed)
    got = merged @ mha.out_proj.weight.detach().numpy().T
    np.testing.assert_allclose(got, want.numpy(), rtol=1e-5, atol=1e-5)


def test_torch_attn_mask_three_d_needs_heads() -> None:
    mask = np.zeros((4, 3, 3), bool)
    assert masks.from_torch_attn_mask(mask, num_heads=2).shape == (2, 2, 3, 3)
    with pytest.raises(refattn.AttentionShapeError, match="num_heads"):
        masks.from_torch_attn_mask(mask)
    with pytest.raises(AttentionDTypeError, match="pass it as bias="):
        masks.from_torch_attn_mask(np.zeros((3, 3), np.float32))


def test_additive_round_trip_and_refusal_of_real_biases() -> None:
    keep = np.array([[True, False], [False, True]])
    np.testing.assert_array_equal(masks.from_additive(masks.to_additive(keep)), keep)
    np.testing.assert_array_equal(masks.from_additive(np.array([0.0, -1e9])), [True, False])
    with pytest.raises(AttentionValueError, match="it is a bias"):
        masks.from_additive(np.array([0.0, 0.5]))


def test_flash_padding() -> None:
    got = masks.from_flash_padding(np.array([[1, 1, 0], [1, 0, 0]]))
    np.testing.assert_array_equal(got, masks.padding(np.array([2, 1]), 3))
    with pytest.raises(AttentionValueError, match="0/1"):
        masks.from_flash_padding(np.array([[2, 1]]))
