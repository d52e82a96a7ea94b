"""One test per bad-input class: the error class and the key words of its message."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import refattn
from refattn.errors import (
    AttentionDTypeError,
    AttentionShapeError,
    AttentionValueError,
    FullyMaskedRowError,
    RefattnError,
)

RNG = np.random.default_rng(0)
Q = RNG.standard_normal((2, 4, 3, 8)).astype(np.float32)  # (B, Hq, L, D)
K = RNG.standard_normal((2, 2, 5, 8)).astype(np.float32)  # (B, Hkv, S, D)
V = RNG.standard_normal((2, 2, 5, 6)).astype(np.float32)  # (B, Hkv, S, Dv)


def _call(**changes: Any) -> Any:
    args = {"query": Q, "key": K, "value": V, **changes}
    return refattn.attention(args.pop("query"), args.pop("key"), args.pop("value"), **args)


CASES = [
    pytest.param(
        {"key": K[..., :7]},
        AttentionShapeError,
        r"key feature size should equal query's D=8.*D=7",
        id="qk-dim-mismatch",
    ),
    pytest.param(
        {"value": V[:, :, :4]},
        AttentionShapeError,
        r"value length should equal key's S=5.*S=4",
        id="kv-length-mismatch",
    ),
    pytest.param(
        {"value": V[:, :1]},
        AttentionShapeError,
        r"value heads should equal key's Hkv=2",
        id="kv-heads-mismatch",
    ),
    pytest.param(
        {"key": np.concatenate([K, K, K])[:3], "value": np.concatenate([V, V, V])[:3]},
        AttentionShapeError,
        r"batch dims of query, key and value should broadcast.*query \(2,\), key \(3,\)",
        id="batch-not-broadcast",
    ),
    pytest.param(
        {"key": K[:, :1].repeat(3, 1), "value": V[:, :1].repeat(3, 1)},
        AttentionShapeError,
        r"Hq=4 should be a multiple of key/value heads Hkv=3",
        id="gqa-not-multiple",
    ),
    pytest.param(
        {"query": Q[0, 0]},
        AttentionShapeError,
        r"query shape should be \(\.\.\., "
        r"Hq, L, D\): but got \(3, 8\)",
        id="no-head-axis",
    ),
    pytest.param(
        {"attend_mask": np.ones((2, 5), bool)},
        AttentionShapeError,
        r"attend_mask shape should broadcast to the scores .*\(2, 4, 3, 5\).*"
        r"\[:, None, None, :\]",
        id="mask-shape",
    ),
    pytest.param(
        {"attend_mask": np.ones((2, 3, 5), bool)},
        AttentionShapeError,
        r"attend_mask should have 2 or 4\+ dims.*3 dims \(2, 3, 5\), which is ambiguous"
        r".*\[:, None\].*\[None\]",
        id="mask-3d-ambiguous",
    ),
    pytest.param(
        {"bias": np.zeros((4, 4))},
        AttentionShapeError,
        r"bias shape should broadcast",
        id="bias-shape",
    ),
    pytest.param(
        {"query": Q.astype(np.int64), "key": K.astype(np.int64), "value": V.astype(np.int64)},
        AttentionDTypeError,
        r"query dtype should be floating.*an integer dtype int64.*astype\(np.float32\)",
        id="integer-dtype",
    ),
    pytest.param(
        {"query": Q.astype(np.complex64)},
        AttentionDTypeError,
        r"query dtype should be floating.*a complex dtype complex64",
        id="complex-dtype",
    ),
    pytest.param(
        {"key": K.astype(np.float64)},
        AttentionDTypeError,
        r"should share one dtype: but got float32, float64 and float32",
        id="mixed-dtype",
    ),
    pytest.param(
        {"attend_mask": np.ones((3, 5), np.float32)},
        AttentionDTypeError,
        r"attend_mask should be boolean.*float32.*bias=",
        id="mask-float-dtype",
    ),
    pytest.param(
        {"attend_mask": np.ones((3, 5), np.int64)},
        AttentionDTypeError,
        r"attend_mask should be boolean.*int64.*astype\(bool\)",
        id="mask-int-dtype",
    ),
    pytest.param(
        {"bias": np.ones((3, 5), bool)},
        AttentionDTypeError,
        r"bias should be a floating array.*bool",
        id="bias-bool-dtype",
    ),
    pytest.param(
        {"bias": np.full((3, 5), np.inf)},
        AttentionValueError,
        r"bias should hold finite values or -inf.*\+inf",
        id="bias-posinf",
    ),
    pytest.param(
        {"window": (-1, 0), "causal": "top_left"},
        AttentionValueError,
        r"window left should be >= 0 or None.*-1",
        id="window-negative",
    ),
    pytest.param({"window": 3}, AttentionValueError, r"window should be a pair", id="window-shape"),
    pytest.param(
        {"window": (2, 2)},
        AttentionValueError,
        r"window_alignment should be given when L != S \(L=3, S=5\)",
        id="window-alignment",
    ),
    pytest.param(
        {"causal": True},
        AttentionValueError,
        r"causal should be one of.*A bare bool is ambiguous",
        id="causal-bool",
    ),
    pytest.param(
        {"key_lengths": [5, 6]},
        AttentionValueError,
        r"key_lengths should lie in \[0, S\] = \[0, 5\]: but got 6",
        id="key-lengths-range",
    ),
    pytest.param(
        {"query_lengths": [-1, 2]},
        AttentionValueError,
        r"query_lengths should lie in \[0, L\] = \[0, 3\]: but got -1",
        id="query-lengths-range",
    ),
    pytest.param(
        {"key_lengths": [1, 2, 3]},
        AttentionShapeError,
        r"key_lengths shape should broadcast to the batch shape \(2,\)",
        id="key-lengths-shape",
    ),
    pytest.param(
        {"key_lengths": [1.5, 2.0]},
        AttentionDTypeError,
        r"key_lengths has dtype float64: expected integer",
        id="key-lengths-dtype",
    ),
    pytest.param(
        {"dropout_p": 1.0, "rng": np.random.default_rng(0)},
        AttentionValueError,
        r"dropout_p should lie in \[0, 1\): but got 1.0",
        id="dropout-range",
    ),
    pytest.param(
        {"dropout_p": 0.1},
        AttentionValueError,
        r"rng should be a numpy.random.Generator when dropout_p=0.1",
        id="dropout-no-rng",
    ),
    pytest.param(
        {"dropout_keep": np.ones((3, 5), bool)},
        AttentionValueError,
        r"dropout_p should be > 0 when dropout_keep is given",
        id="dropout-keep-no-p",
    ),
    pytest.param(
        {"softcap": 0.0},
        AttentionValueError,
        r"softcap should be a positive finite number",
        id="softcap-zero",
    ),
    pytest.param(
        {"fully_masked": "ignore"},
        AttentionValueError,
        r"fully_masked should be one of \('zero', 'uniform', 'nan', 'raise'\)",
        id="policy-unknown",
    ),
    pytest.param(
        {"alibi_slopes": np.ones(3)},
        AttentionShapeError,
        r"alibi_slopes shape should be \(Hq,\) or \(\.\.\., Hq\) with Hq=4",
        id="alibi-shape",
    ),
    pytest.param(
        {"scale": float("nan")}, AttentionValueError, r"scale should be finite", id="scale-nan"
    ),
]


@pytest.mark.parametrize(("changes", "error", "match"), CASES)
def test_bad_input_raises_named_error(changes: dict[str, Any], error: type, match: str) -> None:
    with pytest.raises(error, match=match) as info:
        _call(**changes)
    assert isinstance(info.value, RefattnError)


def test_errors_subclass_builtin_classes() -> None:
    with pytest.raises(ValueError, match="value length"):
        _call(value=V[:, :, :4])
    with pytest.raises(TypeError, match="share one dtype"):
        _call(key=K.astype(np.float64))


def test_fully_masked_raise_names_the_row() -> None:
    mask = np.ones((3, 5), bool)
    mask[2] = False
    with pytest.raises(FullyMaskedRowError, match=r"query row 2 of head 0 at batch index \(0,\)"):
        _call(attend_mask=mask, fully_masked="raise")


def test_three_d_mask_allowed_when_scores_are_three_d() -> None:
    mask = RNG.random((4, 3, 5)) < 0.5
    out = refattn.attention(Q[0], K[0], V[0], attend_mask=mask)
    assert out.shape == (4, 3, 6)


@pytest.mark.parametrize(("changes", "error", "match"), CASES)
def test_message_says_expected_got_and_a_fix(
    changes: dict[str, Any], error: type, match: str
) -> None:
    """Every message above in the one form: expected, what it got, then a fix."""
    import re

    with pytest.raises(error) as info:
        _call(**changes)
    message = str(info.value)
    assert re.search(r"\b(should|expected)\b", message), message
    got = message.find("got")
    assert got >= 0, message
    fix = re.compile(
        r"\b(pass|use|call|convert|cast|drop|split|check|add|reshape|spell|give|project|"
        r"choose|set|build)\b",
        re.IGNORECASE,
    )
    assert fix.search(message, got), message
