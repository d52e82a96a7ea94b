"""Every mutant names the mistake a hand-written implementation really makes.

The buggy implementations are in tests/testing_impls.py: plain NumPy, torch or jax.numpy,
each mistake applied by hand, sharing no code with refattn.testing.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from catalogue.taxonomy import TAGS
from refattn.testing import AttentionMismatch, Mutant, assert_attention_close, check, mutants
from refattn.testing.mistakes import by_name
from tests import testing_impls as impls

CASES = Path(__file__).resolve().parents[1] / "catalogue" / "cases"
NAMES = [m.name for m in mutants()]

# (mutant, convention) pairs: every mutant in at least two conventions. torch SDPA gets
# windows as a mask and has one fully-masked policy, so window and "zero rows" mutants
# are tested through flash-attn's and JAX's conventions instead.
NOT_IN_TORCH = {
    "window_alignment_swapped",
    "window_ignored",
    "window_left_too_wide",
    "window_left_too_narrow",
    "window_right_too_wide",
    "window_right_too_narrow",
    "fully_masked_rows_zero",
}
IN_FLASH = NOT_IN_TORCH - {"fully_masked_rows_zero"} | {
    "causal_alignment_swapped",
    "causal_ignored",
    "gqa_heads_tiled",
    "softmax_over_query_axis",
    "truncated_keys",
}
IN_JAX = {"fully_masked_rows_zero", "window_left_too_wide", "mask_inverted", "gqa_heads_tiled"}
# no convention of check() passes positions: rotary is tested through
# assert_attention_close, on NumPy arrays and on torch tensors (test_rotary_... below)
ROTARY = "rotary_convention_swapped"
PAIRS = (
    [(n, "refattn") for n in NAMES if n != ROTARY]
    + [(n, "torch_sdpa") for n in NAMES if n not in NOT_IN_TORCH | {ROTARY}]
    + [(n, "flash") for n in NAMES if n in IN_FLASH]
    + [(n, "jax") for n in NAMES if n in IN_JAX]
)
IMPLS: dict[str, Callable[..., Any]] = {
    "refattn": impls.numpy_attention,
    "torch_sdpa": impls.torch_sdpa,
    "flash": impls.flash_attn_func,
    "jax": impls.jax_attention,
}


def test_every_mutant_is_tested_in_two_conventions() -> None:
    for name in NAMES:
        if name != ROTARY:
            assert sum(n == name for n, _ in PAIRS) >= 2, name


@pytest.mark.parametrize("mutant", mutants(), ids=lambda m: m.name)
def test_mutant_tags_and_cases_exist(mutant: Mutant) -> None:
    assert mutant.tags
    assert all(t in TAGS for t in mutant.tags)
    if mutant.case is not None:
        assert (CASES / f"{mutant.case}.py").is_file()


@pytest.mark.parametrize(("name", "convention"), PAIRS, ids=lambda x: x)
def test_check_names_the_mistake(name: str, convention: str) -> None:
    if convention in ("torch_sdpa", "flash"):
        pytest.importorskip("torch")
    if convention == "jax":
        pytest.importorskip("jax")
    buggy = functools.partial(IMPLS[convention], mistake=name)
    report = check(buggy, convention, quick=True)
    assert not report.passed
    top = report.groups[0]
    assert top.mutant == name, str(report)
    assert top.tags == by_name(name).tags


# one hand-made call per mutant where the mistake shows, for assert_attention_close
def _call(name: str) -> tuple[Any, Any, Any, dict[str, Any]]:
    rng = np.random.default_rng(3)
    hq, hkv, length_q, length_k = 4, 2, 7, 7
    opts: dict[str, Any] = {}
    if "window" in name:
        length_q, length_k = 6, 11
        opts = {"window": (2, 1), "window_alignment": "bottom_right"}
    if name.startswith("causal"):
        length_q, length_k = 5, 9
        opts = {"causal": "bottom_right"}
    if name in ("mask_inverted", "zero_one_mask_added", "mask_after_softmax"):
        opts = {"attend_mask": rng.random((2, 1, length_q, length_k)) < 0.6}
    if name in ("padding_broadcast_along_query", "mask_ignored", "truncated_keys"):
        opts = {"key_lengths": np.array([7, 4])}
    if name.startswith("fully_masked"):
        policy = "uniform" if name.endswith("zero") else "zero"
        opts = {"key_lengths": np.array([0, 7]), "fully_masked": policy}
    if name == "truncated_keys":
        opts = {}
    if name == "scale_argument_ignored":
        opts = {"scale": 0.6}
    q = rng.standard_normal((2, hq, length_q, 16)).astype(np.float32)
    k = rng.standard_normal((2, hkv, length_k, 16)).astype(np.float32)
    v = rng.standard_normal((2, hkv, length_k, 16)).astype(np.float32)
    return q, k, v, opts


@pytest.mark.parametrize("name", [n for n in NAMES if n != ROTARY])
def test_assert_attention_close_names_the_mistake_made_by_hand(name: str) -> None:
    q, k, v, opts = _call(name)
    assert_attention_close(impls.numpy_attention(q, k, v, **opts), q, k, v, **opts)
    wrong = impls.numpy_attention(q, k, v, mistake=name, **opts)
    with pytest.raises(AttentionMismatch) as info:
        assert_attention_close(wrong, q, k, v, **opts)
    result = info.value.result
    assert result.explanation is not None, str(info.value)
    assert result.explanation.mutant == name, str(info.value)
    assert f"explained by mutant {name!r}" in str(info.value)


def test_softmax_over_queries_with_nan_columns_is_named() -> None:
    # a plain softmax over the query axis: a key column no query may see gives 0/0 = NaN
    torch = pytest.importorskip("torch")

    def sdpa(q: Any, k: Any, v: Any, attn_mask: Any = None, **kw: Any) -> Any:
        s = (q @ k.transpose(-2, -1)) / q.shape[-1] ** 0.5
        if kw.get("is_causal"):
            keep = torch.ones(s.shape[-2:], dtype=torch.bool).tril()
            s = s.masked_fill(~keep, float("-inf"))
        if attn_mask is not None:
            s = s.masked_fill(~attn_mask, float("-inf"))
        return torch.softmax(s, dim=-2) @ v

    report = check(sdpa, "torch_sdpa", quick=True)
    assert report.groups[0].mutant == "softmax_over_query_axis"
    nan_rows = [
        f
        for f in report.groups[0].failures
        if f.comparison is not None and f.comparison.nonfinite_rows is not None
        if f.comparison.nonfinite_rows.any()
    ]
    assert nan_rows  # the NaN variant explained configs too


def _rope(x: Any, cos: Any, sin: Any, interleaved: bool) -> Any:
    """Rotary embedding by hand: pairs (2i, 2i+1) or (i, i + D/2); works for NumPy and torch."""
    if interleaved:
        x1, x2 = x[..., 0::2], x[..., 1::2]
        rot = [x1 * cos - x2 * sin, x1 * sin + x2 * cos]  # pair i -> features 2i, 2i+1
        stacked = (
            np.stack(rot, -1) if isinstance(x, np.ndarray) else __import__("torch").stack(rot, -1)
        )
        return stacked.reshape(x.shape)
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    rot = [x1 * cos - x2 * sin, x1 * sin + x2 * cos]
    return (
        np.concatenate(rot, -1) if isinstance(x, np.ndarray) else __import__("torch").cat(rot, -1)
    )


@pytest.mark.parametrize("array", ["numpy", "torch"])
@pytest.mark.parametrize("interleaved", [False, True])
def test_rotary_convention_swapped_is_named(array: str, interleaved: bool) -> None:
    from refattn.rotary import rotary_tables
    from refattn.testing import Rotary

    rng = np.random.default_rng(5)
    q = rng.standard_normal((2, 4, 5, 16)).astype(np.float32)  # (B, H, L, D)
    k = rng.standard_normal((2, 4, 9, 16)).astype(np.float32)
    v = rng.standard_normal((2, 4, 9, 16)).astype(np.float32)
    inv_freq = 10000.0 ** (-np.arange(0, 16, 2) / 16)
    angles = np.arange(12)[:, None] * inv_freq[None, :]  # (P, D/2)
    cos, sin = np.cos(angles).astype(np.float32), np.sin(angles).astype(np.float32)
    if array == "torch":
        torch = pytest.importorskip("torch")
        q, k, v = (torch.from_numpy(x) for x in (q, k, v))
        cos, sin = torch.from_numpy(cos).float(), torch.from_numpy(sin).float()
    # the implementation applies the *other* convention than the model's
    qr = _rope(q, cos[4:9], sin[4:9], not interleaved)  # queries at positions S - L ..
    kr = _rope(k, cos[:9], sin[:9], not interleaved)
    out = impls.torch_sdpa(qr, kr, v) if array == "torch" else impls.numpy_attention(qr, kr, v)
    table = Rotary(*rotary_tables(12, 16), interleaved=interleaved)
    with pytest.raises(AttentionMismatch) as info:
        assert_attention_close(out, q, k, v, rotary=table)
    expl = info.value.result.explanation
    assert expl is not None
    assert expl.mutant == ROTARY
    assert expl.tags == ("rotary-embedding",)
    # with the model's convention it passes
    good_q = _rope(q, cos[4:9], sin[4:9], interleaved)
    good_k = _rope(k, cos[:9], sin[:9], interleaved)
    good = (
        impls.torch_sdpa(good_q, good_k, v)
        if array == "torch"
        else impls.numpy_attention(good_q, good_k, v)
    )
    assert_attention_close(good, q, k, v, rotary=table)
