from __future__ import annotations

import functools
import importlib
from typing import Any

import numpy as np
import pytest

from refattn import attention
from refattn.testing import (
    AttentionMismatch,
    Config,
    _naive,
    assert_attention_close,
    compare,
    configs,
)
from refattn.testing._naive import Call
from tests.loop_reference import loop_attention
from tests.testing_impls import numpy_attention


def _inputs(
    shape_q: tuple[int, ...] = (2, 4, 7, 16),
    shape_kv: tuple[int, ...] = (2, 2, 9, 16),
    dtype: Any = np.float32,
    seed: int = 0,
) -> tuple[Any, Any, Any]:
    rng = np.random.default_rng(seed)
    q = rng.standard_normal(shape_q).astype(dtype)
    k = rng.standard_normal(shape_kv).astype(dtype)
    v = rng.standard_normal(shape_kv).astype(dtype)
    return q, k, v


@pytest.mark.parametrize("config", configs("refattn"), ids=lambda c: c.id)
def test_mutant_engine_is_the_reference_without_a_mistake(config: Config) -> None:
    # the engine the mutants run on must be refattn.attention itself when no switch is set
    q, k, v = config.inputs()
    opts = config.options()
    got = _naive.evaluate(Call(q, k, v, opts))
    want = attention(q, k, v, **opts)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_mutant_engine_matches_the_loop_reference() -> None:
    q, k, v = _inputs(dtype=np.float64)
    opts: dict[str, Any] = {
        "causal": "bottom_right",
        "window": (3, 1),
        "key_lengths": np.array([9, 5]),
    }
    out, _, _ = loop_attention(q, k, v, **opts)
    np.testing.assert_allclose(_naive.evaluate(Call(q, k, v, opts)), out, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_correct_outputs_pass_in_every_dtype(dtype: Any) -> None:
    q, k, v = _inputs(dtype=dtype)
    cases: list[dict[str, Any]] = [
        {},
        {"causal": "bottom_right"},
        {"key_lengths": np.array([9, 0])},
    ]
    for opts in cases:
        res = assert_attention_close(attention(q, k, v, **opts), q, k, v, **opts)
        assert res.passed
        assert res.max_error <= res.allowed_error
        # an independent naive NumPy implementation passes too
        assert_attention_close(numpy_attention(q, k, v, **opts), q, k, v, **opts)


def test_measured_tolerance_catches_what_allclose_atol_1e_2_passes() -> None:
    # a GQA kernel whose query heads read another group's keys and values: with many keys
    # and small values its output is close to the right one element-wise, but unrelated
    rng = np.random.default_rng(1)
    q = (0.5 * rng.standard_normal((1, 4, 256, 16))).astype(np.float32)
    k = rng.standard_normal((1, 2, 256, 16)).astype(np.float32)
    v = (0.02 * rng.standard_normal((1, 2, 256, 16))).astype(np.float32)
    right = attention(q, k, v)
    wrong = attention(q, np.tile(k, (1, 2, 1, 1)), np.tile(v, (1, 2, 1, 1)))
    assert np.allclose(wrong, right, atol=1e-2)  # the usual test says PASS
    corr = np.corrcoef(wrong.ravel(), right.ravel())[0, 1]
    assert corr < 0.6  # but half the heads are unrelated to the right output
    with pytest.raises(AttentionMismatch, match="gqa_heads_tiled") as info:
        assert_attention_close(wrong, q, k, v)
    expl = info.value.result.explanation
    assert expl is not None
    assert expl.tags == ("gqa-heads",)
    assert "heads 1, 2 (of 4)" in info.value.result.where


def test_structured_error_in_one_head_is_found_per_row() -> None:
    # an error well under the global max error of the output, confined to one head:
    # the per-row allowance catches it and the message says where it is
    q, k, v = _inputs()
    out = attention(q, k, v)
    bad = out.copy()
    bad[1, 2] += 2e-5 * np.sign(bad[1, 2])
    res = compare(bad, q, k, v)
    assert not res.passed
    assert res.wrong_rows is not None
    assert res.wrong_rows[1, 2].all()
    assert res.wrong_rows.sum() == 7
    assert "batch entries 1 (of 2)" in res.where
    assert "heads 2 (of 4)" in res.where
    assert "all 7 query rows" in res.where


def test_row_pattern_is_described() -> None:
    # L > S: bottom-right leaves rows 0..3 without keys; top-left differs on rows 0..7
    q, k, v = _inputs(shape_q=(2, 4, 9, 16), shape_kv=(2, 2, 5, 16))
    right = attention(q, k, v, causal="bottom_right")
    wrong = attention(q, k, v, causal="top_left")
    res = compare(wrong, q, k, v, causal="bottom_right")
    assert "query rows i < 8 (of 9)" in res.where
    assert res.explanation is not None
    assert res.explanation.mutant == "causal_alignment_swapped"
    assert res.explanation.case == "top_left_causal_for_kv_cache"
    assert not np.allclose(right, wrong)


def test_message_is_a_few_lines_naming_error_place_and_mistake() -> None:
    q, k, v = _inputs()
    wrong = numpy_attention(q, k, v, mistake="gqa_heads_tiled")
    with pytest.raises(AssertionError) as info:
        assert_attention_close(wrong, q, k, v)
    msg = str(info.value)
    lines = msg.splitlines()
    assert 3 <= len(lines) <= 6
    assert "max error" in lines[1]
    assert "allowed" in lines[1]
    assert lines[2].startswith("  where:")
    assert "gqa_heads_tiled" in msg
    assert "gqa-heads" in msg


def test_wrong_shape_dtype_and_nan_pattern_fail() -> None:
    q, k, v = _inputs()
    out = attention(q, k, v)
    with pytest.raises(AttentionMismatch, match=r"shape \(2, 4, 16, 7\) should be \(2, 4, 7, 16\)"):
        assert_attention_close(out.transpose(0, 1, 3, 2), q, k, v)
    with pytest.raises(
        AttentionMismatch, match="dtype float64 should be the inputs' dtype float32"
    ):
        assert_attention_close(out.astype(np.float64), q, k, v)
    nan = out.copy()
    nan[0, 0, 3, 1] = np.nan
    with pytest.raises(AttentionMismatch, match="NaN/inf pattern differs in 1 rows") as info:
        assert_attention_close(nan, q, k, v)
    rows = info.value.result.nonfinite_rows
    assert rows is not None
    assert rows.sum() == 1


def test_nan_rows_expected_by_the_policy_pass() -> None:
    q, k, v = _inputs()
    opts: dict[str, Any] = {"key_lengths": np.array([0, 9]), "fully_masked": "nan"}
    out = attention(q, k, v, **opts)
    assert np.isnan(out[0]).all()
    assert_attention_close(out, q, k, v, **opts)
    with pytest.raises(AttentionMismatch, match="fully_masked_rows_nan"):
        assert_attention_close(out, q, k, v, key_lengths=np.array([0, 9]))


def test_torch_tensors_and_bfloat16_are_judged_in_their_precision() -> None:
    torch = importlib.import_module("torch")
    q, k, v = (torch.from_numpy(x) for x in _inputs(shape_kv=(2, 4, 9, 16)))
    sdpa = torch.nn.functional.scaled_dot_product_attention
    for dtype in (torch.float16, torch.bfloat16, torch.float32):
        qd, kd, vd = (x.to(dtype) for x in (q, k, v))
        res = assert_attention_close(sdpa(qd, kd, vd), qd, kd, vd)
        assert res.dtype == str(dtype).removeprefix("torch.")
    qd, kd, vd = (x.to(torch.bfloat16) for x in (q, k, v))
    scaled = functools.partial(sdpa, scale=1.0)
    with pytest.raises(AttentionMismatch, match="no_scale"):
        assert_attention_close(scaled(qd, kd, vd), qd, kd, vd)


def test_dropout_is_refused() -> None:
    q, k, v = _inputs()
    with pytest.raises(ValueError, match=r"deterministic calls, but got dropout_p=0\.1"):
        compare(attention(q, k, v), q, k, v, dropout_p=0.1)
