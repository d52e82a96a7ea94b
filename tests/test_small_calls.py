"""Small calls take the short way (one block per batch entry) and still run every check.

Issue 18: a call at ``(1, 1, 4, 8)`` cost ~10x naive NumPy, partly because the kernel
cut work far too small for its threads into several blocks that then ran serially. Work is
counted here (blocks), never timed.
"""

from __future__ import annotations

import numpy as np
import pytest

from refattn import _kernel, _numerics, _threads, attention
from refattn.errors import AttentionDTypeError, AttentionShapeError, AttentionValueError
from refattn.validation import validate
from tests.loop_reference import loop_attention


@pytest.mark.parametrize("shape", [(1, 1, 4, 8), (2, 4, 16, 32), (3, 2, 1, 4)])
def test_small_calls_are_one_block_per_batch_entry(shape: tuple[int, ...]) -> None:
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal(shape).astype(np.float32) for _ in range(3))
    plan = validate(q, k, v)
    prepared = _numerics.prepare(plan)
    tasks = _kernel.make_tasks(plan, _kernel.scaled_inputs(plan), prepared)
    assert len(tasks) == shape[0]
    want = loop_attention(q.astype(np.float64), k, v)[0]
    np.testing.assert_allclose(attention(q, k, v), want, rtol=2e-6, atol=2e-6)


def test_large_calls_are_still_shared_among_threads() -> None:
    q = np.zeros((1, 8, 1024, 64), np.float32)
    plan = validate(q, q, q)
    tasks = _kernel.make_tasks(plan)
    assert len(tasks) >= 4 * _threads.worker_count()


def test_small_calls_still_refuse_bad_input() -> None:
    q = np.ones((1, 1, 4, 8), np.float32)
    with pytest.raises(AttentionDTypeError, match="share one dtype"):
        attention(q, q.astype(np.float64), q)
    with pytest.raises(AttentionShapeError, match="value length should equal key's S=4"):
        attention(q, q, q[:, :, :3])
    with pytest.raises(AttentionValueError, match="scale should be finite"):
        attention(q, q, q, scale=float("inf"))
    nan_q = q.copy()
    nan_q[0, 0, 1, 3] = np.nan  # masked means absent: only row 1 is NaN
    out = attention(nan_q, q, q)
    assert np.isnan(out[0, 0, 1]).all()
    assert np.isfinite(np.delete(out[0, 0], 1, axis=0)).all()
