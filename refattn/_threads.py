"""Threads for the blocked kernel, without oversubscribing NumPy's OpenBLAS.

The kernel runs blocks on a small thread pool (NumPy's matmul and ufuncs release the
GIL). Each block's matmuls are small; if OpenBLAS also threads them, Python threads x BLAS
threads fight for two cores and the whole call runs about 2x slower. So while the kernel
runs, the OpenBLAS bundled with NumPy is set to one thread through its own C entry points
(what threadpoolctl does), reference counted, and restored afterwards. When those entry
points cannot be found, the kernel runs its blocks serially and lets the BLAS thread.

The blocks run on refattn's own threads, one pinned to each CPU the process may use,
while the calling thread waits. Unpinned, short bursts of work on these threads often share
one CPU: a Linux scheduler that packs threads onto few CPUs (as on small virtual machines)
wakes a pool thread next to the thread that woke it and does not spread them out within a
call of a few milliseconds. A thread that cannot be pinned (no ``sched_setaffinity``, or
the process may use fewer CPUs than there are workers) runs unpinned, as before.
"""

from __future__ import annotations

import ctypes
import glob
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from typing import Any

import numpy as np

_SYMBOLS = (
    ("scipy_openblas_get_num_threads64_", "scipy_openblas_set_num_threads64_"),
    ("scipy_openblas_get_num_threads", "scipy_openblas_set_num_threads"),
    ("openblas_get_num_threads64_", "openblas_set_num_threads64_"),
    ("openblas_get_num_threads", "openblas_set_num_threads"),
)

_lock = threading.Lock()
_blas: tuple[Any, Any] | None = None
_probed = False
_users = 0
_saved = 1
_pool: ThreadPoolExecutor | None = None
# os.cpu_count() reads /sys on each call (tens of µs on a loaded machine): read it once
_CPUS = os.cpu_count() or 1


def _probe() -> tuple[Any, Any] | None:
    """Find get/set thread-count functions of NumPy's bundled OpenBLAS, once."""
    global _blas, _probed
    with _lock:
        if _probed:
            return _blas
        _probed = True
        libdir = os.path.dirname(os.path.abspath(np.__file__)) + ".libs"
        for path in sorted(glob.glob(os.path.join(libdir, "*openblas*"))):
            try:
                lib = ctypes.CDLL(path)
            except OSError:
                continue
            for get_name, set_name in _SYMBOLS:
                get, set_ = getattr(lib, get_name, None), getattr(lib, set_name, None)
                if get is not None and set_ is not None:
                    get.restype, get.argtypes = ctypes.c_int, []
                    set_.restype, set_.argtypes = None, [ctypes.c_int]
                    _blas = (get, set_)
                    return _blas
        return None


def worker_count() -> int:
    """Threads to run blocks on: the BLAS's own thread count, or 1 if it is not ours to set."""
    blas = _probe()
    if blas is None:
        return 1
    return max(1, min(int(blas[0]()) if _users == 0 else _saved, _CPUS))


@contextmanager
def single_threaded_blas() -> Iterator[None]:
    """Hold OpenBLAS at one thread for the duration; nested and concurrent uses are counted."""
    global _users, _saved
    blas = _probe()
    assert blas is not None, "single_threaded_blas needs worker_count() > 1 first"
    with _lock:
        if _users == 0:
            _saved = max(1, int(blas[0]()))
            if _saved != 1:
                blas[1](1)
        _users += 1
    try:
        yield
    finally:
        with _lock:
            _users -= 1
            if _users == 0 and _saved != 1:
                blas[1](_saved)


def _reset_after_fork() -> None:
    """A forked child has none of the parent's threads: forget the pool and the count."""
    global _pool, _users, _lock, _pinned, _pinned_cpus, _pinned_busy
    _pool, _users, _lock = None, 0, threading.Lock()
    _pinned, _pinned_cpus, _pinned_busy = [], [], threading.Lock()


os.register_at_fork(after_in_child=_reset_after_fork)


def _allowed_cpus() -> list[int]:
    """The CPUs this process may run on, in order; empty where that cannot be read."""
    try:
        return sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return []


def _pin(cpu: int) -> None:
    """Run the calling (pool) thread on ``cpu`` only; left unpinned if the OS refuses."""
    with suppress(OSError):
        os.sched_setaffinity(0, {cpu})


def _pinned_pools(count: int) -> list[ThreadPoolExecutor] | None:
    """``count`` one-thread pools, each pinned to its own allowed CPU; None if too few CPUs."""
    global _pinned, _pinned_cpus
    cpus = _allowed_cpus()
    if len(cpus) < count or not hasattr(os, "sched_setaffinity"):
        return None
    if cpus != _pinned_cpus:  # first use, or the process's CPUs changed: new pools
        old, _pinned, _pinned_cpus = _pinned, [], cpus
        for pool in old:
            pool.shutdown(wait=False)
    while len(_pinned) < count:
        cpu = cpus[len(_pinned)]
        _pinned.append(
            ThreadPoolExecutor(
                max_workers=1,
                thread_name_prefix=f"refattn_cpu{cpu}",
                initializer=_pin,
                initargs=(cpu,),
            )
        )
    return _pinned[:count]


_pinned: list[ThreadPoolExecutor] = []
_pinned_cpus: list[int] = []
_pinned_busy = threading.Lock()  # held while one call's workers use the pinned threads


def run_workers(worker: Callable[[], None], count: int) -> None:
    """Run ``worker`` on ``count`` threads and wait for all of them.

    The threads are the pinned ones (see the module docstring) while the caller waits; when
    another call is using them, or they cannot be had, the caller runs ``worker`` itself on
    one of the ``count`` threads, the others from an unpinned pool.
    """
    if _pinned_busy.acquire(blocking=False):
        try:
            with _lock:
                pools = _pinned_pools(count)
            if pools is not None:
                futures = [pool.submit(worker) for pool in pools]
                for future in futures:  # all of them finish before the first error is raised
                    future.exception()
                for future in futures:
                    future.result()
                return
        finally:
            _pinned_busy.release()
    global _pool
    with _lock:
        if _pool is None or _pool._max_workers < count - 1:
            _pool = ThreadPoolExecutor(max_workers=max(1, count - 1), thread_name_prefix="refattn")
        pool = _pool
    futures = [pool.submit(worker) for _ in range(count - 1)]
    try:
        worker()
    finally:
        for future in futures:
            future.result()
