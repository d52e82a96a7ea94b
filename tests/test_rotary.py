"""refattn.rotary against torch code written like flash-attn's apply_rotary_emb_torch.

The torch reference below follows ``flash_attn/layers/rotary.py`` (``rotate_half`` and
``apply_rotary_emb_torch``): tables repeated to the rotary dim, ``x * cos +
rotate_half(x) * sin`` on the first ``R`` features, the rest concatenated unchanged.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from refattn.errors import AttentionDTypeError, AttentionShapeError, AttentionValueError
from refattn.rotary import apply_rotary, packed_positions, rotary_tables


def rotate_half_torch(x: Any, interleaved: bool) -> Any:
    if not interleaved:
        x1, x2 = x.chunk(2, dim=-1)
        return torch.cat((-x2, x1), dim=-1)
    x1, x2 = x[..., ::2], x[..., 1::2]
    return torch.stack((-x2, x1), dim=-1).flatten(-2)


def apply_rotary_emb_torch(x: Any, cos: Any, sin: Any, interleaved: bool) -> Any:
    """x (B, S, H, D); cos, sin (S, R/2) or (B, S, R/2), as flash-attn's reference."""
    ro_dim = cos.shape[-1] * 2
    if interleaved:
        cos, sin = cos.repeat_interleave(2, dim=-1), sin.repeat_interleave(2, dim=-1)
    else:
        cos, sin = torch.cat([cos, cos], dim=-1), torch.cat([sin, sin], dim=-1)
    cos, sin = cos.unsqueeze(-2), sin.unsqueeze(-2)  # "... d -> ... 1 d": broadcast over H
    rotated = x[..., :ro_dim] * cos + rotate_half_torch(x[..., :ro_dim], interleaved) * sin
    return torch.cat([rotated, x[..., ro_dim:]], dim=-1)


@pytest.mark.parametrize("interleaved", [False, True])
@pytest.mark.parametrize(("dim", "rotary_dim"), [(16, 16), (24, 8), (10, 6)])
def test_matches_flash_attn_torch_reference(interleaved: bool, dim: int, rotary_dim: int) -> None:
    rng = np.random.default_rng(0)
    batch, length, heads = 2, 7, 3
    x = rng.standard_normal((batch, length, heads, dim))  # flash-attn's (B, S, H, D)
    cos, sin = rotary_tables(32, rotary_dim, dtype=np.float64)
    offsets = np.array([0, 9])  # per-sequence offsets, like seqlen_offsets in flash-attn
    positions = offsets[:, None] + np.arange(length)  # (B, S)
    want = apply_rotary_emb_torch(
        torch.from_numpy(x), torch.from_numpy(cos[positions]), torch.from_numpy(sin[positions]),
        interleaved,
    ).numpy()  # fmt: skip
    # refattn's layout is (..., L, D): heads before the sequence
    got = apply_rotary(
        x.swapaxes(1, 2), cos, sin, interleaved=interleaved, offset=offsets[:, None]
    ).swapaxes(1, 2)
    np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-13)
    np.testing.assert_array_equal(got[..., rotary_dim:], x[..., rotary_dim:])
    explicit = apply_rotary(x.swapaxes(1, 2), cos, sin, interleaved=interleaved,
                            positions=positions[:, None, :]).swapaxes(1, 2)  # fmt: skip
    np.testing.assert_array_equal(explicit, got)


def test_float32_rounds_like_a_float32_computation() -> None:
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4, 5, 32)).astype(np.float32)
    cos, sin = rotary_tables(8, 32)
    got = apply_rotary(x, cos, sin)
    assert got.dtype == np.float32
    want = apply_rotary_emb_torch(
        torch.from_numpy(x)[None].transpose(1, 2), torch.from_numpy(cos[:5]),
        torch.from_numpy(sin[:5]), False,
    )[0].transpose(0, 1).numpy()  # fmt: skip
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


def test_tables_are_float64_angles_then_cast() -> None:
    cos, sin = rotary_tables(50000, 8, base=10000.0, dtype=np.float64)
    p, i = 49999, 3
    angle = p * 10000.0 ** (-2 * i / 8)
    assert cos[p, i] == np.cos(angle)
    assert sin[p, i] == np.sin(angle)
    cos32, _ = rotary_tables(50000, 8)
    assert cos32.dtype == np.float32
    np.testing.assert_array_equal(cos32, cos.astype(np.float32))


@pytest.mark.parametrize("interleaved", [False, True])
def test_scores_depend_on_relative_position_only(interleaved: bool) -> None:
    rng = np.random.default_rng(2)
    q, k = rng.standard_normal(16), rng.standard_normal(16)
    cos, sin = rotary_tables(64, 16, dtype=np.float64)

    def score(p: int, r: int) -> float:
        qp = apply_rotary(q[None], cos, sin, interleaved=interleaved, offset=p)
        kr = apply_rotary(k[None], cos, sin, interleaved=interleaved, offset=r)
        return float(qp[0] @ kr[0])

    assert score(10, 3) == pytest.approx(score(40, 33), rel=1e-12)
    assert score(10, 3) != pytest.approx(score(10, 4), rel=1e-6)


def test_conventions_differ_by_a_feature_permutation() -> None:
    rng = np.random.default_rng(3)
    x = rng.standard_normal((5, 8))
    cos, sin = rotary_tables(5, 8, dtype=np.float64)
    perm = np.array([0, 2, 4, 6, 1, 3, 5, 7])  # interleaved pairs -> half-split pairs
    neox = apply_rotary(x[:, perm], cos, sin, interleaved=False)
    gptj = apply_rotary(x, cos, sin, interleaved=True)
    np.testing.assert_allclose(neox, gptj[:, perm], rtol=1e-14, atol=1e-14)
    assert not np.allclose(apply_rotary(x, cos, sin, interleaved=False), gptj)


@pytest.mark.parametrize("interleaved", [False, True])
def test_packed_positions_restart_per_sequence(interleaved: bool) -> None:
    rng = np.random.default_rng(4)
    lengths = [3, 0, 1, 4]
    cu = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
    x = rng.standard_normal((2, 8, 16))  # (H, total, D), packed
    cos, sin = rotary_tables(8, 16, dtype=np.float64)
    got = apply_rotary(x, cos, sin, interleaved=interleaved, positions=packed_positions(cu))
    for b in range(len(lengths)):
        rows = slice(int(cu[b]), int(cu[b + 1]))
        alone = apply_rotary(x[:, rows], cos, sin, interleaved=interleaved)  # from position 0
        np.testing.assert_array_equal(got[:, rows], alone)
    assert packed_positions(cu, total=10).tolist() == [0, 1, 2, 0, 0, 1, 2, 3, 0, 0]
    with pytest.raises(AttentionValueError, match="should start at 0, never decrease"):
        packed_positions(np.array([0, 3, 2]))
    with pytest.raises(AttentionDTypeError, match="cu_seqlens should hold integers"):
        packed_positions(np.array([0.0, 3.0]))


def test_errors_name_the_argument() -> None:
    cos, sin = rotary_tables(4, 8)
    x = np.ones((2, 3, 8), np.float32)
    with pytest.raises(
        AttentionValueError, match=r"positions should lie in \[0, P\) = \[0, 4\).*but got 4"
    ):
        apply_rotary(x, cos, sin, offset=3)
    with pytest.raises(AttentionShapeError, match=r"rotary dim R = 2 \* cos\.shape\[1\] = 8"):
        apply_rotary(x[..., :6], cos, sin)
    with pytest.raises(AttentionShapeError, match=r"cos and sin should both be \(P, R/2\)"):
        apply_rotary(x, cos, sin[:, :2])
    with pytest.raises(AttentionDTypeError, match="x should be floating"):
        apply_rotary(x.astype(np.int32), cos, sin)
    with pytest.raises(AttentionDTypeError, match="offset should hold integers"):
        apply_rotary(x, cos, sin, offset=1.0)
    with pytest.raises(AttentionShapeError, match="should broadcast"):
        apply_rotary(x, cos, sin, offset=np.zeros(3, int))
    with pytest.raises(AttentionValueError, match="rotary_dim should be even"):
        rotary_tables(4, 7)
