"""Statements in case prose that no variant runs, run here (issue 14: no unrun claims).

Each test names the case whose docstring makes the statement. torch is installed by the
test setup (CI installs it), so these fail rather than skip without it.
"""

from __future__ import annotations

import numpy as np
import pytest

from catalogue import get


def test_chunk_gives_unequal_heads_split_and_chunk_counts() -> None:
    """chunk_gives_unequal_heads: chunk/split piece counts and sizes as stated."""
    import torch

    assert [p.shape[-1] for p in torch.chunk(torch.zeros(2, 5, 100), 8, -1)] == [13] * 7 + [9]
    assert len(torch.chunk(torch.zeros(10), 8)) == 5
    split = [p.shape[-1] for p in torch.split(torch.zeros(2, 5, 100), 100 // 8, -1)]
    assert split == [12] * 8 + [4]
    x = torch.randn(32, 20, 512)
    chunks, pieces = torch.chunk(x, 8, -1), torch.split(x, 64, -1)
    assert len(chunks) == len(pieces) == 8
    assert all(
        torch.equal(a, b) and a.shape == (32, 20, 64) for a, b in zip(chunks, pieces, strict=True)
    )
    assert torch.cat(torch.chunk(torch.zeros(2, 5, 100), 8, -1), -1).shape == (2, 5, 100)
    sizes = [p.shape[-1] for p in np.array_split(np.zeros((2, 5, 100)), 8, axis=-1)]
    assert sizes == [13] * 4 + [12] * 4


def test_head_list_shorter_than_heads_chunk_counts() -> None:
    """head_list_shorter_than_heads: 12 in 8 chunks gives 6, 4 rows in 3 gives 2."""
    import torch

    assert [c.shape[-1] for c in torch.chunk(torch.zeros(2, 5, 12), 8, -1)] == [2] * 6
    assert len(torch.chunk(torch.zeros(4, 3), 3, 0)) == 2
    pieces = torch.tensor_split(torch.zeros(2, 5, 12), 8, -1)
    assert [p.shape[-1] for p in pieces] == [2] * 4 + [1] * 4
    with pytest.raises(RuntimeError, match="stack expects each tensor to be equal size"):
        torch.stack(pieces, 1)
    assert torch.cat(pieces, -1).shape == (2, 5, 12)


def test_numpy_warnings_the_cases_quote() -> None:
    """The RuntimeWarnings quoted by exp_without_max_subtraction, finfo_min_arithmetic_float16,
    fully_masked_row_nan, mask_times_minus_inf and minus_1e9_in_float16."""
    for case_id, warning in (
        ("exp_without_max_subtraction", "overflow encountered in exp"),
        ("finfo_min_arithmetic_float16", "overflow encountered in cast"),
        ("fully_masked_row_nan", "invalid value encountered in subtract"),
        ("mask_times_minus_inf", "invalid value encountered in multiply"),
        ("minus_1e9_in_float16", "overflow encountered in cast"),
    ):
        case = get(case_id)
        assert warning in " ".join((case.module.__doc__ or "").split())
        with pytest.warns(RuntimeWarning, match=warning):
            case.module.broken()


def test_tilde_on_int_mask_warns_and_returns_nan_without_errstate() -> None:
    """tilde_on_int_mask: its ``np.where`` softmax, run without the ``errstate`` that
    ``broken()`` wraps it in, warns as quoted and returns NaN for every row."""
    from catalogue.cases._common import softmax

    case = get("tilde_on_int_mask").module
    warning = "RuntimeWarning: invalid value encountered in subtract"
    assert warning in " ".join((case.__doc__ or "").split())
    x, keep = case._inputs()
    scores = x @ x.swapaxes(-1, -2) / np.sqrt(4)
    with pytest.warns(RuntimeWarning, match="invalid value encountered in subtract"):
        weights = softmax(np.where((~keep)[:, None, :], -np.inf, scores))
    assert np.isnan(weights).all()


def test_lengths_longer_than_padded_refattn_message() -> None:
    """lengths_longer_than_padded: refattn refuses lengths past S with the quoted message."""
    from refattn import attention
    from refattn.errors import AttentionValueError

    hidden, lengths = get("lengths_longer_than_padded").module._inputs()
    x = hidden[:, None]  # (B, 1, 16, E)
    with pytest.raises(
        AttentionValueError, match=r"should lie in \[0, S\] = \[0, 16\]: but got 20"
    ):
        attention(x, x, x, key_lengths=lengths)


def test_exp_overflow_threshold() -> None:
    """exp_without_max_subtraction: float32 exp overflows past 88.7, float16 past 11.1."""
    with np.errstate(over="ignore"):
        assert np.isfinite(np.exp(np.float32(88.7)))
        assert np.isinf(np.exp(np.float32(88.8)))
        assert np.isfinite(np.exp(np.float16(11.08)))
        assert np.isinf(np.exp(np.float16(11.1)))


def test_heads_merged_without_transpose_fix_spellings() -> None:
    """heads_merged_without_transpose: ``.contiguous().view`` after the transpose equals
    ``.reshape``, where the bare ``.view`` is refused (the PyTorch variant)."""
    import torch

    out = torch.randn(2, 4, 6, 8)  # (B, H, L, Dv)
    merged = out.transpose(1, 2).contiguous().view(2, 6, 32)
    assert torch.equal(merged, out.transpose(1, 2).reshape(2, 6, 32))
    assert torch.equal(merged[:, :, 8:16], out[:, 1])  # position-major: head 1's features


def test_left_padding_without_position_ids_fix_formula() -> None:
    """left_padding_without_position_ids: the Fix's position ids, run in torch."""
    import torch

    doc = " ".join((get("left_padding_without_position_ids").module.__doc__ or "").split())
    assert "``position_ids.masked_fill_(attention_mask == 0, 1)``" in doc
    attention_mask = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]])
    position_ids = attention_mask.cumsum(-1) - 1
    position_ids.masked_fill_(attention_mask == 0, 1)
    assert position_ids.tolist() == [[1, 1, 0, 1, 2], [0, 1, 2, 3, 4]]
    assert attention_mask.sum(-1).tolist() == [3, 5]  # the next token's position per row
