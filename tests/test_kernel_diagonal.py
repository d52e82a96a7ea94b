"""The transposed path's diagonal split (refattn._kernel._split) against the loop reference.

Where the first half of a block's query rows sees no key past some column of a chunk (a
causal or window diagonal), the forward multiplies those keys with the second half only
and gives the first half weight exactly 0 there. Each case checks that the split ran and
compares with the float64 loop reference: causal alignments, windows, key and query
lengths, GQA, several key chunks per block, both ways of forming the output (rows split
or whole), rows left with no key, and the error those rows raise. The blocks here have
64 rows, fewer than the kernel splits (``_SPLIT_ROWS``): the tests lower that bound.
"""

from __future__ import annotations

from typing import Any
from unittest import mock

import numpy as np
import pytest

from refattn import _kernel, attention
from refattn.errors import FullyMaskedRowError
from tests.loop_reference import loop_attention

CASES: list[dict[str, Any]] = [
    {"causal": "top_left"},
    {"causal": "bottom_right"},
    {"window": (30, 0), "window_alignment": "bottom_right"},
    {"window": (None, 5), "causal": "top_left", "window_alignment": "top_left"},
    {"causal": "top_left", "key_lengths": np.array([131, 41])},
    {"causal": "bottom_right", "query_lengths": np.array([100, 7])},
]


def _run(q: Any, k: Any, v: Any, **options: Any) -> tuple[Any, int]:
    """``attention(q, k, v)`` and how many chunks went through the split."""
    calls = []
    original = _kernel._split

    def spy(*args: Any, **kwargs: Any) -> Any:
        calls.append(args[-1])
        return original(*args, **kwargs)

    with mock.patch.object(_kernel, "_split", spy):
        out = attention(q, k, v, **options)
    return out, len(calls)


def _inputs(seed: int, hq: int, hkv: int, length_q: int, length_k: int) -> tuple[Any, Any, Any]:
    rng = np.random.default_rng(seed)
    q = rng.standard_normal((2, hq, length_q, 8)).astype(np.float32)
    k = rng.standard_normal((2, hkv, length_k, 8)).astype(np.float32)
    v = rng.standard_normal((2, hkv, length_k, 4)).astype(np.float32)
    return q, k, v


@pytest.mark.parametrize("options", CASES)
@pytest.mark.parametrize(
    ("hq", "hkv", "length_q", "length_k", "block_bytes", "depth"),
    [
        (2, 2, 160, 160, _kernel._BLOCK_BYTES, _kernel._EXACT_DEPTH),  # one chunk per block
        (4, 2, 130, 140, 1 << 15, _kernel._EXACT_DEPTH),  # GQA, several chunks per block
        (2, 1, 140, 140, _kernel._BLOCK_BYTES, 16),  # the output not split by rows
    ],
)
def test_split_diagonal_matches_the_loop_reference(
    options: dict[str, Any],
    hq: int,
    hkv: int,
    length_q: int,
    length_k: int,
    block_bytes: int,
    depth: int,
) -> None:
    q, k, v = _inputs(length_q + len(options), hq, hkv, length_q, length_k)
    with (
        mock.patch.object(_kernel, "_BLOCK_BYTES", block_bytes),
        mock.patch.object(_kernel, "_EXACT_DEPTH", depth),
        mock.patch.object(_kernel, "_SPLIT_ROWS", 16),  # these blocks have 64 rows
    ):
        out, splits = _run(q, k, v, fully_masked="zero", **options)
    assert splits, "no chunk went through the diagonal split"
    expected, _, _ = loop_attention(q, k, v, fully_masked="zero", **options)
    np.testing.assert_allclose(out, expected, rtol=2e-5, atol=2e-6)


def test_split_rows_with_no_key_follow_the_policy() -> None:
    # bottom-right alignment with more queries than keys: the first 30 rows see nothing
    q, k, v = _inputs(3, 2, 2, 160, 130)
    with mock.patch.object(_kernel, "_SPLIT_ROWS", 16):
        out, splits = _run(q, k, v, causal="bottom_right", fully_masked="zero")
        assert splits
        with pytest.raises(FullyMaskedRowError, match="query row 0 of head 0"):
            attention(q, k, v, causal="bottom_right", fully_masked="raise")
    expected, _, _ = loop_attention(q, k, v, causal="bottom_right", fully_masked="zero")
    np.testing.assert_allclose(out, expected, rtol=2e-5, atol=2e-6)
    assert not out[:, :, :30].any()


def test_blocks_of_few_rows_are_not_split() -> None:
    # 64-row blocks: half of 32 rows is below _SPLIT_ROWS, the diagonal is computed whole
    q, k, v = _inputs(4, 2, 2, 160, 160)
    out, splits = _run(q, k, v, causal="top_left")
    assert splits == 0
    expected, _, _ = loop_attention(q, k, v, causal="top_left")
    np.testing.assert_allclose(out, expected, rtol=2e-5, atol=2e-6)
