"""The kernel's worker threads (refattn._threads): pinned, one per CPU, errors raised."""

from __future__ import annotations

import itertools
import os
import threading

import numpy as np
import pytest

from refattn import _threads, attention

pinnable = pytest.mark.skipif(
    not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2,
    reason="needs sched_setaffinity and two usable CPUs",
)


@pinnable
def test_workers_run_on_their_own_cpus_while_the_caller_waits() -> None:
    seen: list[tuple[str, frozenset[int]]] = []
    lock = threading.Lock()

    def worker() -> None:
        with lock:
            seen.append((threading.current_thread().name, frozenset(os.sched_getaffinity(0))))

    before = os.sched_getaffinity(0)
    _threads.run_workers(worker, 2)
    assert len(seen) == 2
    assert threading.main_thread().name not in {name for name, _ in seen}
    cpus = [cpu for _, cpu in seen]
    assert all(len(c) == 1 for c in cpus)
    assert cpus[0] != cpus[1]
    assert os.sched_getaffinity(0) == before  # the caller's own affinity is untouched


def test_an_error_in_a_worker_reaches_the_caller_after_all_workers_end() -> None:
    calls = itertools.count()
    ended: list[int] = []

    def worker() -> None:
        if next(calls) == 0:
            raise ValueError("boom")
        ended.append(1)

    with pytest.raises(ValueError, match="boom"):
        _threads.run_workers(worker, 2)
    assert ended == [1]


def test_concurrent_calls_share_the_threads_and_agree() -> None:
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((2, 4, 256, 32), dtype=np.float32) for _ in range(3))
    expected = attention(q, k, v, causal="top_left")
    results: list[np.ndarray] = []

    def call() -> None:
        results.append(np.asarray(attention(q, k, v, causal="top_left")))

    callers = [threading.Thread(target=call) for _ in range(3)]
    for t in callers:
        t.start()
    for t in callers:
        t.join()
    assert len(results) == 3
    for r in results:
        np.testing.assert_array_equal(r, expected)
