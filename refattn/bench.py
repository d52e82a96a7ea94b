"""Benchmark: ``python -m refattn.bench [--repeat N] [--quick]``.

Prints one table measured in one run: refattn's default path against torch SDPA (its fused
CPU kernel, when torch is installed), plain ``np.einsum``, the seed articles' naive NumPy,
and the two-GEMM floor (``Q·Kᵀ`` and ``P·V`` as two whole matmuls, no softmax). Times are
medians over interleaved repeats; ratios are to torch measured in the same run, since
absolute times drift on shared machines. Not a test: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from refattn import attention, einsums

F32 = npt.NDArray[np.float32]
Peer = Callable[[F32, F32, F32, bool], object]


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
            start = time.perf_counter()
            fn(q, k, v, causal)
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def main(argv: list[str] | None = None) -> None:
    """Print the benchmark table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="only (2, 8, 1024, 64)")
    args = parser.parse_args(argv)

    peers: dict[str, Peer] = {"refattn": _refattn}
    torch_peer = _torch_peer()
    if torch_peer is not None:
        peers["torch SDPA"] = torch_peer
    peers |= {"two GEMMs": _two_gemms, "naive NumPy": _naive, "np.einsum": _plain_einsum}
    shapes = [(2, 8, 1024, 64)]
    if not args.quick:
        shapes += [(4, 8, 256, 64), (1, 8, 1024, 128), (1, 16, 2048, 64)]
    base = "torch SDPA" if torch_peer is not None else "refattn"
    print(f"float32 forward, median of {args.repeat}, ms (ratio to {base}, same run)\n")
    print("| (B, H, L, D) | causal | " + " | ".join(peers) + " |")
    print("| --- | --- | " + " | ".join("---" for _ in peers) + " |")
    for shape in shapes:
        for causal in (False, True):
            slow = {"np.einsum"} if shape[2] > 1024 else set()
            chosen = {n: p for n, p in peers.items() if n not in slow}
            med = measure(chosen, shape, causal, args.repeat)
            cells = [
                f"{med[n] * 1e3:.1f} ({med[n] / med[base]:.2f}×)" if n in med else "skipped"
                for n in peers
            ]
            print(f"| {shape} | {'yes' if causal else 'no'} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
