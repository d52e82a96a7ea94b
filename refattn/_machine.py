"""What the benchmark runs on: the machine, its BLAS, and the roofline of both.

Used by :mod:`refattn.bench` only. Three things:

- :func:`benchmark_env`: the environment the benchmark re-executes itself with. Some of
  these machines set ``OPENBLAS_CORETYPE`` and ``OPENBLAS_L2_SIZE`` for older OpenBLAS
  builds; with a current NumPy they pin a slower GEMM kernel (about half the float32
  throughput). The benchmark drops both *for its own process only*; tests and CI keep them.
- :func:`describe`: CPU model, cores, NumPy and its BLAS with the kernel it really runs,
  torch and its threads, and what the benchmark changed in the environment.
- :func:`measure_rates`: the machine's float32 GEMM throughput and ``exp2`` throughput, from
  which :func:`roofline_seconds` gives the physical floor of one attention forward.
- :class:`CpuClock` and :func:`other_load`: how much of the machine other processes used
  while the benchmark ran (on a shared machine, the one thing that makes a run worthless).
"""

from __future__ import annotations

import ctypes
import os
import platform
import statistics
import time
from dataclasses import dataclass

import numpy as np

SLOW_BLAS_VARIABLES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
CLEANED_MARKER = "REFATTN_BENCH_UNSET"  # set in the re-executed process: what was unset


def benchmark_env(environ: dict[str, str]) -> dict[str, str] | None:
    """The environment to re-execute the benchmark with, or None when nothing to change.

    Args:
        environ: the current environment (not modified).

    Returns:
        A copy without :data:`SLOW_BLAS_VARIABLES`, recording what it removed under
        :data:`CLEANED_MARKER`; None when none of them is set or the process already is
        the re-executed one.
    """
    present = [f"{name}={environ[name]}" for name in SLOW_BLAS_VARIABLES if name in environ]
    if not present or CLEANED_MARKER in environ:
        return None
    env = {k: v for k, v in environ.items() if k not in SLOW_BLAS_VARIABLES}
    env[CLEANED_MARKER] = " ".join(present)
    return env


def _openblas_call(symbol_stem: str) -> str | None:
    """Call OpenBLAS's ``openblas_get_<stem>`` in the library NumPy has loaded."""
    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps if "openblas" in line.lower()}
    except OSError:
        return None
    for path in sorted(p for p in paths if p.startswith("/")):
        lib = ctypes.CDLL(path)
        for name in (
            f"scipy_openblas_get_{symbol_stem}64_",
            f"openblas_get_{symbol_stem}64_",
            f"openblas_get_{symbol_stem}",
        ):
            function = getattr(lib, name, None)
            if function is not None:
                function.restype = ctypes.c_char_p
                value: bytes = function()
                return value.decode()
    return None


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def describe() -> list[str]:
    """Markdown bullet lines: machine, libraries, BLAS kernel and environment changes."""
    np.ones(1) @ np.ones(1)  # make sure NumPy's BLAS is loaded before asking it
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    lines = [
        f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        f"- CPU: {_cpu_model()}, {cores} cores usable",
        f"- Python {platform.python_version()}, NumPy {np.__version__}",
        f"- NumPy's BLAS: {_openblas_call('config') or 'not OpenBLAS (kernel unknown)'}; "
        f"kernel in use: {_openblas_call('corename') or 'unknown'}",
    ]
    try:
        import torch

        lines.append(f"- torch {torch.__version__}, {torch.get_num_threads()} threads")
    except ImportError:
        lines.append("- torch: not installed (no torch peers)")
    unset = os.environ.get(CLEANED_MARKER)
    lines.append(
        f"- environment: unset {unset} for this benchmark process only (tests and CI keep it)"
        if unset
        else "- environment: unchanged (no OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE set)"
    )
    return lines


@dataclass(frozen=True)
class Rates:
    """Measured throughputs of this machine, all cores.

    Attributes:
        gemm_flops: float32 matrix-multiply floating-point operations per second.
        exp2_per_second: float32 ``np.exp2`` evaluations per second.
    """

    gemm_flops: float
    exp2_per_second: float


def measure_rates(repeat: int = 5) -> Rates:
    """Measure float32 GEMM and ``exp2`` throughput (medians of ``repeat`` runs)."""
    rng = np.random.default_rng(0)
    n = 2048
    a, b = (rng.standard_normal((n, n), dtype=np.float32) for _ in range(2))
    out = np.empty((n, n), np.float32)
    x = rng.standard_normal(1 << 24, dtype=np.float32)
    y = np.empty_like(x)
    np.matmul(a, b, out=out)
    np.exp2(x, out=y)
    gemm, exps = [], []
    for _ in range(repeat):
        start = time.perf_counter()
        np.matmul(a, b, out=out)
        gemm.append(time.perf_counter() - start)
        start = time.perf_counter()
        np.exp2(x, out=y)
        exps.append(time.perf_counter() - start)
    return Rates(2 * n**3 / statistics.median(gemm), x.size / statistics.median(exps))


def roofline_seconds(shape: tuple[int, int, int, int], causal: bool, rates: Rates) -> float:
    """The physical floor of one attention forward on ``(B, H, L, D)`` inputs, L = S.

    The two GEMMs (``Q·Kᵀ`` and ``P·V``, ``2·L·S·D`` flops each) at the measured GEMM rate,
    plus one ``exp2`` per score at the measured ``exp2`` rate. A causal mask keeps
    ``L·(L + 1) / 2`` of the ``L·S`` pairs.
    """
    batch, heads, length, dim = shape
    pairs = batch * heads * (length * (length + 1) / 2 if causal else length * length)
    return 4 * pairs * dim / rates.gemm_flops + pairs / rates.exp2_per_second


@dataclass(frozen=True)
class CpuClock:
    """CPU seconds at one instant: the whole machine's busy time and this process tree's.

    Attributes:
        wall: ``time.perf_counter()``.
        busy: seconds all CPUs spent not idle since boot (``/proc/stat``), None off Linux.
        own: this process's and its waited-for children's user + system seconds.
    """

    wall: float
    busy: float | None
    own: float

    @classmethod
    def now(cls) -> CpuClock:
        """The clock read now."""
        busy = None
        try:
            with open("/proc/stat") as stat:
                fields = [int(x) for x in stat.readline().split()[1:]]
            # user nice system idle iowait irq softirq steal ...: all but idle and iowait
            busy = (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")
        except (OSError, ValueError, IndexError):
            pass
        t = os.times()
        return cls(
            time.perf_counter(), busy, t.user + t.system + t.children_user + t.children_system
        )


def other_load(start: CpuClock, end: CpuClock, cores: int) -> float | None:
    """The share of the machine's CPU time between two readings used by other processes.

    Args:
        start: the clock read before the work.
        end: the clock read after it.
        cores: CPUs the machine has.

    Returns:
        ``(busy seconds - this process tree's seconds) / (wall seconds * cores)``, clipped
        to ``[0, 1]``; None when ``/proc/stat`` was unreadable.
    """
    if start.busy is None or end.busy is None or end.wall <= start.wall:
        return None
    other = (end.busy - start.busy) - (end.own - start.own)
    return min(max(other / ((end.wall - start.wall) * cores), 0.0), 1.0)
