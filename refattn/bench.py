"""Benchmark: ``python -m refattn.bench [--repeat N] [--quick] [--only T] [--shapes S]``.

Prints four tables measured in one run (``--only forward,tiny`` picks some of them,
``--shapes`` some of the five forward shapes):

1. forward: refattn's default path against torch SDPA (its fused CPU kernel, when torch is
   installed), plain ``np.einsum``, the seed articles' naive NumPy, and the two-GEMM floor
   (``Q·Kᵀ`` and ``P·V`` as two whole matmuls, no softmax);
2. forward + backward against torch SDPA with autograd;
3. long sequences: time and peak RSS of the full (query-blocked) and the chunked (online
   softmax) path, each call in a fresh process so its peak memory is its own;
4. tiny calls: microseconds per call at ``(1, 1, 4, 8)`` and ``(2, 4, 16, 32)`` against
   naive NumPy and torch SDPA, where per-call overhead is all there is.

Times are medians over interleaved repeats, with a short pause between peers so that one
peer's spinning BLAS/OpenMP threads do not slow the next; ratios are to peers measured in
the same run, since absolute times drift on shared machines. Beside them stands the
roofline floor: the two GEMMs at this machine's measured GEMM rate plus one ``exp2`` per
score at its measured ``exp2`` rate (:mod:`refattn._machine`).

The benchmark unsets ``OPENBLAS_CORETYPE`` and ``OPENBLAS_L2_SIZE`` for its own process
(it re-executes itself without them and says so): set for older OpenBLAS builds, they pin a
current NumPy to a slower GEMM kernel. Tests and CI keep them as they are.

Not a test: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from refattn import attention, attention_backward, einsums
from refattn._machine import (
    CpuClock,
    Rates,
    benchmark_env,
    describe,
    measure_rates,
    other_load,
    roofline_seconds,
)
from refattn.validation import Alignment

F32 = npt.NDArray[np.float32]
Peer = Callable[[F32, F32, F32, bool], object]

PAUSE_SECONDS = 0.05  # between peers, so one's spinning threads have stopped for the next
SHAPES = [(2, 8, 1024, 64), (4, 8, 256, 64), (1, 8, 1024, 128), (1, 16, 2048, 64), (1, 32, 512, 64)]


def _naive(q: F32, k: F32, v: F32, causal: bool) -> object:
    """What the seed articles write: whole score matrix, softmax, matmul."""
    scores = q @ k.transpose(0, 1, 3, 2) / np.sqrt(q.shape[-1])
    if causal:
        length_q, length_k = scores.shape[-2:]
        scores = np.where(np.tri(length_q, length_k, dtype=bool), scores, -np.inf)
    weights = np.exp(scores - scores.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)
    return weights @ v


def _plain_einsum(q: F32, k: F32, v: F32, causal: bool) -> object:
    """The einsum strings run by ``np.einsum`` as written (no BLAS)."""
    b, h, length_q, dim = q.shape
    scores = np.einsum(einsums.SCORES, q.reshape(b, h, 1, length_q, dim), k) / np.sqrt(dim)
    if causal:
        scores = np.where(np.tri(length_q, k.shape[2], dtype=bool), scores, -np.inf)
    weights = np.exp(scores - scores.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)
    return np.einsum(einsums.MIX, weights, v)


def _two_gemms(q: F32, k: F32, v: F32, causal: bool) -> object:
    """The floor of whole-matrix NumPy: the two matmuls alone, no softmax."""
    scores = q @ k.transpose(0, 1, 3, 2)
    return scores @ v


def _refattn(q: F32, k: F32, v: F32, causal: bool) -> object:
    return attention(q, k, v, causal="top_left" if causal else None)


def _torch_peer() -> Peer | None:
    try:
        import torch
        import torch.nn.functional as F
    except ImportError:
        return None

    def run(q: F32, k: F32, v: F32, causal: bool) -> object:
        qt, kt, vt = (torch.from_numpy(x) for x in (q, k, v))
        with torch.no_grad():
            return F.scaled_dot_product_attention(qt, kt, vt, is_causal=causal)

    return run


def measure(
    peers: dict[str, Peer], shape: tuple[int, int, int, int], causal: bool, repeat: int
) -> dict[str, float]:
    """Median seconds per peer, peers interleaved in every repeat."""
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal(shape, dtype=np.float32) for _ in range(3))
    times: dict[str, list[float]] = {name: [] for name in peers}
    for fn in peers.values():  # warm-up
        fn(q, k, v, causal)
    for _ in range(repeat):
        for name, fn in peers.items():
            time.sleep(PAUSE_SECONDS)
            start = time.perf_counter()
            fn(q, k, v, causal)
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def forward_table(
    repeat: int,
    shapes: list[tuple[int, int, int, int]],
    rates: Rates,
    ratios: dict[str, dict[str, float]] | None = None,
) -> list[str]:
    """Forward times of every peer at a few sizes, and the roofline floor, as markdown lines.

    When ``ratios`` is given, it receives each row's ratios to the base peer, for the plot.
    """
    peers: dict[str, Peer] = {"refattn": _refattn}
    torch_peer = _torch_peer()
    if torch_peer is not None:
        peers["torch SDPA"] = torch_peer
    peers |= {"two GEMMs": _two_gemms, "naive NumPy": _naive, "np.einsum": _plain_einsum}
    base = "torch SDPA" if torch_peer is not None else "refattn"
    rows: list[tuple[str, float]] = []
    lines = [
        f"float32 forward, median of {repeat}, ms (ratio to {base}, same run); roofline floor "
        "and refattn's distance from it",
        "",
        "| (B, H, L, D) | causal | " + " | ".join(peers) + " | roofline floor | refattn / floor |",
        "| --- | --- | " + " | ".join("---" for _ in peers) + " | --- | --- |",
    ]
    for shape in shapes:
        for causal in (False, True):
            slow = {"np.einsum"} if shape[2] > 1024 else set()
            chosen = {n: p for n, p in peers.items() if n not in slow}
            med = measure(chosen, shape, causal, repeat)
            cells = [
                f"{med[n] * 1e3:.1f} ({med[n] / med[base]:.2f}×)" if n in med else "skipped"
                for n in peers
            ]
            floor = roofline_seconds(shape, causal, rates)
            cells += [f"{floor * 1e3:.1f}", f"{med['refattn'] / floor:.2f}×"]
            label = f"{shape} {'causal' if causal else 'plain'}"
            lines.append(f"| {shape} | {'yes' if causal else 'no'} | " + " | ".join(cells) + " |")
            rows.append((label, med["refattn"] / med[base]))
            if ratios is not None:
                ratios[label] = {n: med[n] / med[base] for n in med}
    if base != "refattn":
        lines += ["", summary(rows, f"refattn / {base}")]
    return lines


def summary(ratios: list[tuple[str, float]], what: str) -> str:
    """One line: the geometric mean and the largest of ``(row, ratio)`` pairs."""
    mean = math.exp(statistics.fmean(math.log(r) for _, r in ratios))
    row, worst = max(ratios, key=lambda item: item[1])
    return f"{what}: geometric mean {mean:.2f}×, largest {worst:.2f}× at {row}"


TINY_SHAPES = [(1, 1, 4, 8), (2, 4, 16, 32)]
TINY_CALLS = 100  # calls per timed sample: a tiny call is too short to time alone
TINY_ROUNDS = 3  # rounds = this times --repeat: short samples, many of them, so a burst of
# other work on the machine moves few of them


def measure_calls(
    peers: dict[str, Peer], shape: tuple[int, int, int, int], causal: bool, repeat: int
) -> tuple[dict[str, float], dict[str, float]]:
    """Seconds per call per peer, and ratios to the last peer, over interleaved rounds.

    Each round times :data:`TINY_CALLS` calls of every peer in turn. Returns the median
    time per peer and, per peer, the median over rounds of its time over the last peer's
    in the same round (robust to load that slows a whole round).
    """
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal(shape, dtype=np.float32) for _ in range(3))
    times: dict[str, list[float]] = {name: [] for name in peers}
    for fn in peers.values():  # warm-up
        for _ in range(TINY_CALLS):
            fn(q, k, v, causal)
    for _ in range(TINY_ROUNDS * repeat):
        for name, fn in peers.items():
            time.sleep(PAUSE_SECONDS)
            start = time.perf_counter()
            for _ in range(TINY_CALLS):
                fn(q, k, v, causal)
            times[name].append((time.perf_counter() - start) / TINY_CALLS)
    base = times[list(peers)[-1]]
    ratios = {
        n: statistics.median(a / b for a, b in zip(t, base, strict=True)) for n, t in times.items()
    }
    return {name: statistics.median(t) for name, t in times.items()}, ratios


def tiny_table(repeat: int) -> list[str]:
    """Per-call time at tiny shapes, where overhead (checks, planning) is all there is."""
    peers: dict[str, Peer] = {"refattn": _refattn}
    torch_peer = _torch_peer()
    if torch_peer is not None:
        peers["torch SDPA"] = torch_peer
    peers["naive NumPy"] = _naive  # last: the base of the ratios
    lines = [
        f"float32 tiny calls, µs per call: median of {TINY_ROUNDS * repeat} rounds, each "
        f"timing {TINY_CALLS} calls of every peer in turn (ratio to naive NumPy: median over "
        "rounds of the two times in the same round)",
        "",
        "| (B, H, L, D) | causal | " + " | ".join(peers) + " |",
        "| --- | --- | " + " | ".join("---" for _ in peers) + " |",
    ]
    for shape in TINY_SHAPES:
        for causal in (False, True):
            med, ratio = measure_calls(peers, shape, causal, repeat)
            cells = [f"{med[n] * 1e6:.1f} ({ratio[n]:.2f}×)" for n in peers]
            lines.append(f"| {shape} | {'yes' if causal else 'no'} | " + " | ".join(cells) + " |")
    return lines


def _child(path: str, length: int, causal: bool) -> None:
    """One long-sequence forward in this (fresh) process; prints seconds and peak RSS."""
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((1, 1, length, 64), dtype=np.float32) for _ in range(3))
    start = time.perf_counter()
    if path == "naive":
        _naive(q, k, v, causal)
    else:
        attention(q, k, v, causal="top_left" if causal else None)
    seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "rss_mib": _peak_rss_mib()}))


def _peak_rss_mib() -> float:
    """This process's peak resident memory.

    Linux's ``VmHWM`` starts afresh at exec; ``ru_maxrss`` would carry over the parent's
    peak from before the fork, which here is the benchmark's own.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def long_table(lengths: list[int]) -> list[str]:
    """Time and peak RSS, each in a fresh process, of refattn and of naive NumPy."""
    lines = [
        "single head, D = 64, float32, one call per fresh process: seconds / peak RSS MiB "
        "(refattn walks keys in chunks with an online softmax at every size)",
        "",
        "| L = S | causal | refattn | naive NumPy |",
        "| --- | --- | --- | --- |",
    ]
    for length in lengths:
        for causal in (False, True):
            cells: dict[str, dict[str, float] | None] = {}
            for path in ("refattn", "naive"):
                if path == "naive" and length > 8192:
                    cells[path] = None  # its score matrix alone would be >= 1 GiB
                    continue
                cmd = [sys.executable, "-m", "refattn.bench", "--child", path, str(length)]
                result = subprocess.run(
                    [*cmd, "causal" if causal else "plain"],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                cells[path] = json.loads(result.stdout)

            def fmt(cell: dict[str, float] | None) -> str:
                return (
                    "skipped"
                    if cell is None
                    else f"{cell['seconds']:.2f} s / {cell['rss_mib']:.0f}"
                )

            lines.append(
                f"| {length} | {'yes' if causal else 'no'} | {fmt(cells['refattn'])} | "
                f"{fmt(cells['naive'])} |"
            )
    return lines


def _refattn_train_step(q: F32, k: F32, v: F32, causal: bool) -> object:
    alignment: Alignment | None = "top_left" if causal else None
    attention(q, k, v, causal=alignment)
    return attention_backward(np.ones_like(q), q, k, v, causal=alignment)


def _torch_train_step() -> Peer | None:
    try:
        import torch
        import torch.nn.functional as F
    except ImportError:
        return None

    def run(q: F32, k: F32, v: F32, causal: bool) -> object:
        leaves = [torch.tensor(x, requires_grad=True) for x in (q, k, v)]
        out: Any = F.scaled_dot_product_attention(leaves[0], leaves[1], leaves[2], is_causal=causal)
        out.backward(torch.ones_like(out))
        return leaves

    return run


def backward_table(repeat: int, shapes: list[tuple[int, int, int, int]]) -> list[str]:
    """Forward + backward of refattn against torch SDPA's forward + autograd backward."""
    torch_step = _torch_train_step()
    if torch_step is None:
        return ["forward + backward: torch is not installed, nothing to compare with"]
    lines = [
        f"float32 forward + backward, median of {repeat}, ms",
        "",
        "| (B, H, L, D) | causal | refattn | torch SDPA + autograd | ratio |",
        "| --- | --- | --- | --- | --- |",
    ]
    rows: list[tuple[str, float]] = []
    for shape in shapes:
        for causal in (False, True):
            peers = {"refattn": _refattn_train_step, "torch": torch_step}
            med = measure(peers, shape, causal, repeat)
            rows.append(
                (f"{shape} {'causal' if causal else 'plain'}", med["refattn"] / med["torch"])
            )
            lines.append(
                f"| {shape} | {'yes' if causal else 'no'} | {med['refattn'] * 1e3:.1f} | "
                f"{med['torch'] * 1e3:.1f} | {rows[-1][1]:.2f}× |"
            )
    return [*lines, "", summary(rows, "refattn / torch SDPA + autograd")]


SECTIONS = ("forward", "backward", "long", "tiny")
LONG_LENGTHS = [4096, 8192, 16384, 32768]


def _shape_name(shape: tuple[int, ...]) -> str:
    return "x".join(str(n) for n in shape)


def _split(values: list[str] | None) -> list[str]:
    """``--x a,b --x c`` as ``[a, b, c]`` (empty items dropped)."""
    return [item.strip() for value in values or [] for item in value.split(",") if item.strip()]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The benchmark's command line.

    Besides the parser's own attributes, the namespace carries ``sections`` (the tables to
    run, in :data:`SECTIONS` order) and ``shapes`` (the forward and forward + backward
    shapes, a subset of :data:`SHAPES` in its order).
    """
    shape_names = ", ".join(f"{i} = {_shape_name(s)}" for i, s in enumerate(SHAPES, 1))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--repeat", type=int, default=7, help="interleaved repeats per row, medians (default 7)"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="only (2, 8, 1024, 64), and no long-sequence table unless --only names it",
    )
    parser.add_argument(
        "--only",
        action="append",
        metavar="TABLE",
        help=f"run only these tables ({', '.join(SECTIONS)}; repeatable or comma-separated)",
    )
    parser.add_argument(
        "--shapes",
        action="append",
        metavar="SHAPE",
        help=f"forward and forward + backward at these shapes only, by number or BxHxLxD "
        f"({shape_names}; repeatable or comma-separated)",
    )
    parser.add_argument(
        "--write-docs",
        action="store_true",
        help="also write docs/benchmarks.md and its plot (a full run: no --only or --shapes)",
    )
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error(f"--repeat must be at least 1, got {args.repeat}")
    only = _split(args.only)
    unknown = [name for name in only if name not in SECTIONS]
    if unknown:
        parser.error(
            f"--only: unknown table {', '.join(map(repr, unknown))}; choose from "
            f"{', '.join(SECTIONS)}"
        )
    if args.only is not None and not only:
        parser.error(f"--only needs at least one of {', '.join(SECTIONS)}")
    if only:
        args.sections = [name for name in SECTIONS if name in only]
    else:
        args.sections = [name for name in SECTIONS if not (args.quick and name == "long")]
    by_name = {_shape_name(s): s for s in SHAPES} | {str(i): s for i, s in enumerate(SHAPES, 1)}
    picked = _split(args.shapes)
    unknown = [name for name in picked if name not in by_name]
    if unknown:
        parser.error(
            f"--shapes: unknown shape {', '.join(map(repr, unknown))}; choose from {shape_names}"
        )
    if args.shapes is not None and not picked:
        parser.error(f"--shapes needs at least one of {shape_names}")
    if picked:
        chosen = {by_name[name] for name in picked}
        args.shapes = [s for s in SHAPES if s in chosen]
    else:
        args.shapes = SHAPES[:1] if args.quick else list(SHAPES)
    if args.write_docs and (only or picked):
        parser.error("--write-docs writes the whole page from one run: drop --only and --shapes")
    return args


def main(argv: list[str] | None = None) -> None:
    """Print the benchmark tables."""
    args = parse_args(argv)
    if args.child:
        path, length, causal = args.child
        _child(path, int(length), causal == "causal")
        return
    env = benchmark_env(dict(os.environ))
    if env is not None:  # run again without the slow-BLAS settings, this process only
        arguments = sys.argv[1:] if argv is None else argv
        os.execve(sys.executable, [sys.executable, "-m", "refattn.bench", *arguments], env)
    start = CpuClock.now()
    rates = measure_rates()
    machine = [
        "Machine and method",
        "",
        *describe(),
        f"- measured: float32 GEMM {rates.gemm_flops / 1e9:.0f} GFLOP/s, exp2 "
        f"{rates.exp2_per_second / 1e9:.2f} G/s (all cores); the roofline floor of a forward "
        "is its two GEMMs and one exp2 per score at these rates",
        f"- peers interleaved in every repeat, {PAUSE_SECONDS * 1e3:.0f} ms pause between "
        "peers; medians; ratios only between peers of the same run",
    ]
    ratios: dict[str, dict[str, float]] = {}
    sections = [machine]
    for name in args.sections:
        if name == "forward":
            sections.append(forward_table(args.repeat, args.shapes, rates, ratios))
        elif name == "backward":
            sections.append(backward_table(args.repeat, args.shapes))
        elif name == "long":
            sections.append(long_table(LONG_LENGTHS[:1] if args.quick else LONG_LENGTHS))
        else:
            sections.append(tiny_table(args.repeat))
    load = other_load(start, CpuClock.now(), os.cpu_count() or 1)
    machine.append(
        "- other processes' share of the machine's CPU during this run: "
        + ("unknown (no /proc/stat)" if load is None else f"{load:.0%}")
        + " (from /proc/stat; a run where it is more than a few percent is not a fair one)"
    )
    text = "\n\n".join("\n".join(lines) for lines in sections)
    print(text)
    if args.write_docs:
        Path("docs/assets").mkdir(parents=True, exist_ok=True)
        Path("docs/assets/benchmark.svg").write_text(ratio_plot(ratios))
        Path("docs/benchmarks.md").write_text(
            "# Benchmarks\n\nWritten by `python -m refattn.bench --write-docs` on one of the "
            "project's 2-core machines; every ratio compares peers measured in the same "
            "run.\n\n![forward time relative to torch SDPA](assets/benchmark.svg)\n\n" + text + "\n"
        )


def ratio_plot(ratios: dict[str, dict[str, float]]) -> str:
    """An SVG bar chart of forward-time ratios to the base peer, on a log2 axis."""
    peers = sorted({n for row in ratios.values() for n in row}, key=list(_COLOURS).index)
    bar, gap, left, width = 9, 10, 230, 420
    lo, hi = -1.0, 6.0  # log2 of 0.5x .. 64x
    rows = list(ratios.items())
    height = 40 + len(rows) * (len(peers) * bar + gap) + 30

    def x(ratio: float) -> float:
        return left + (min(max(math.log2(ratio), lo), hi) - lo) / (hi - lo) * width

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{left + width + 150}" '
        f'height="{height}" font-family="sans-serif" font-size="11">',
        f'<text x="{left}" y="14">time / torch SDPA time (log scale), lower is better</text>',
    ]
    for tick in (0.5, 1, 2, 4, 8, 16, 32, 64):
        parts.append(
            f'<line x1="{x(tick):.1f}" y1="22" x2="{x(tick):.1f}" y2="{height - 24}" '
            f'stroke="#ccc"/><text x="{x(tick):.1f}" y="{height - 10}" '
            f'text-anchor="middle">{tick:g}×</text>'
        )
    y = 30
    for label, row in rows:
        parts.append(
            f'<text x="{left - 6}" y="{y + len(peers) * bar / 2 + 4}" '
            f'text-anchor="end">{label}</text>'
        )
        for name in peers:
            if name in row:
                parts.append(
                    f'<rect x="{left}" y="{y}" width="{x(row[name]) - left:.1f}" '
                    f'height="{bar - 1}" fill="{_COLOURS[name]}"><title>{name}: '
                    f"{row[name]:.2f}×</title></rect>"
                )
            y += bar
        y += gap
    for i, name in enumerate(peers):
        parts.append(
            f'<rect x="{left + width + 20}" y="{30 + i * 16}" width="10" height="10" '
            f'fill="{_COLOURS[name]}"/>'
            f'<text x="{left + width + 36}" y="{39 + i * 16}">{name}</text>'
        )
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


_COLOURS = {
    "refattn": "#3f51b5",
    "torch SDPA": "#ef6c00",
    "two GEMMs": "#9e9e9e",
    "naive NumPy": "#8d6e63",
    "np.einsum": "#c62828",
}


if __name__ == "__main__":
    main()
