"""The forward's transposed-logits path (refattn._kernel._block_transposed) at real sizes.

It takes unshifted blocks of few query rows with only causal, window and length masks, so
float32 calls of more than 64 query rows reach it; each is compared with the float64 loop
reference, and the path is checked to have run.
"""

from __future__ import annotations

from typing import Any
from unittest import mock

import numpy as np
import pytest

from refattn import _kernel, attention
from tests.loop_reference import loop_attention

CASES: list[dict[str, Any]] = [
    {"causal": "top_left"},
    {"causal": "bottom_right"},
    {"window": (40, 0), "window_alignment": "bottom_right"},
    {"window": (None, 3), "causal": "top_left"},
    {"causal": "top_left", "key_lengths": np.array([95, 77])},
    {"causal": "bottom_right", "query_lengths": np.array([90, 9])},
]


@pytest.mark.parametrize("options", CASES)
@pytest.mark.parametrize(
    ("hq", "hkv", "length_q", "length_k"), [(2, 2, 130, 130), (4, 2, 100, 200)]
)
def test_transposed_blocks_match_the_loop_reference(
    options: dict[str, Any], hq: int, hkv: int, length_q: int, length_k: int
) -> None:
    rng = np.random.default_rng(length_q + len(options))
    q = rng.standard_normal((2, hq, length_q, 8)).astype(np.float32)
    k = rng.standard_normal((2, hkv, length_k, 8)).astype(np.float32)
    v = rng.standard_normal((2, hkv, length_k, 4)).astype(np.float32)
    calls = []
    original = _kernel._block_transposed

    def spy(*args: Any, **kwargs: Any) -> None:
        calls.append(args[2])
        original(*args, **kwargs)

    with mock.patch.object(_kernel, "_block_transposed", spy):
        out = attention(q, k, v, fully_masked="zero", **options)
    assert calls, "the transposed path did not run"
    expected, _, _ = loop_attention(q, k, v, fully_masked="zero", **options)
    np.testing.assert_allclose(out, expected, rtol=2e-5, atol=2e-6)
