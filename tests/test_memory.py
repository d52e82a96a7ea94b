"""Memory of score-shaped inputs: nothing ``(..., Hq, L, S)``-sized is materialised.

Measured with tracemalloc, which NumPy reports its array allocations to. Each test
compares the peak of a call against the same call without the input in question, with a
bound derived from the kernel's block size, far below the whole-tensor copy the old
code made (issue 11: +541 MiB for dropout at (1, 4, 4096, 32), +233 MiB for a 2 MiB
broadcast mask).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from unittest import mock

import numpy as np

from refattn import _kernel, _threads, attention, attention_backward
from tests.loop_reference import loop_dropout_keep
from tests.traced_memory import peak_bytes

MIB = 1 << 20


def _block_allowance() -> int:
    """Scratch the blocked kernel may hold: a few block-sized buffers per worker thread."""
    return 8 * _kernel._BLOCK_BYTES * (_threads.worker_count() + 1)


def test_dropout_with_rng_is_drawn_per_block() -> None:
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((1, 2, 4096, 8)).astype(np.float32) for _ in range(3))
    scores = 2 * 4096 * 4096
    plain = peak_bytes(lambda: attention(q, k, v))
    dropped = peak_bytes(lambda: attention(q, k, v, dropout_p=0.1, rng=np.random.default_rng(1)))
    # the whole keep-mask would be scores * 8 bytes drawn in float64 (256 MiB) + 32 MiB bool
    assert dropped - plain <= _block_allowance() < scores  # even a bool mask is bigger


def test_broadcast_mask_bias_keep_over_a_multi_dim_batch_are_not_copied() -> None:
    rng = np.random.default_rng(2)
    q, k, v = (rng.standard_normal((8, 8, 1, 512, 8)).astype(np.float32) for _ in range(3))
    mask = rng.random((8, 1, 1, 512, 512)) < 0.7  # 2 MiB, 16 MiB once broadcast to (8, 8)
    bias = rng.standard_normal((8, 1, 1, 512, 512)).astype(np.float32)  # 8 MiB -> 64 MiB
    plain = peak_bytes(lambda: attention(q, k, v))
    calls: dict[str, Callable[[], Any]] = {
        "attend_mask": lambda: attention(q, k, v, attend_mask=mask),
        "bias": lambda: attention(q, k, v, bias=bias),
        "dropout_keep": lambda: attention(q, k, v, dropout_p=0.3, dropout_keep=mask),
    }
    for name, call in calls.items():
        extra = peak_bytes(call) - plain
        assert extra <= _block_allowance() // 2 < 16 * MIB, (name, extra / MIB)


def test_drawn_keep_mask_is_the_documented_one_on_every_path() -> None:
    """Same generator state, same mask: dense, chunked, small blocks, and the backward."""
    rng = np.random.default_rng(3)
    q, k, v = (rng.standard_normal((2, 3, 9, 4)) for _ in range(3))
    keep = loop_dropout_keep(np.random.default_rng(4), 0.4, (2, 3, 9, 9))
    want = attention(q, k, v, dropout_p=0.4, dropout_keep=keep, causal="top_left")
    runs = [attention(q, k, v, dropout_p=0.4, rng=np.random.default_rng(4), causal="top_left")]
    with mock.patch.object(_kernel, "_BLOCK_BYTES", 64):
        runs.append(
            attention(
                q,
                k,
                v,
                dropout_p=0.4,
                rng=np.random.default_rng(4),
                causal="top_left",
                memory_budget=0,
            )
        )
    for got in runs:
        np.testing.assert_allclose(got, want, rtol=1e-12)
    grad = rng.standard_normal(want.shape)
    g_keep = attention_backward(grad, q, k, v, dropout_p=0.4, dropout_keep=keep)
    g_rng = attention_backward(grad, q, k, v, dropout_p=0.4, rng=np.random.default_rng(4))
    for a, b in zip(g_keep[:3], g_rng[:3], strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12)
    assert 0.5 < keep.mean() < 0.7  # about 1 - p of the entries kept
