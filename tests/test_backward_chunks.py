"""The backward over key chunks: gradients against torch autograd, and its memory.

The backward walks each block's keys in chunks of ``_kernel.cache_chunk`` columns.
Patching ``_kernel._BLOCK_BYTES`` down to 64 bytes makes every chunk 16 keys wide, so
small calls cross many chunk boundaries; the gradients are checked against torch
autograd through a float64 attention written out by hand here (softcap, bias, masks,
dropout), independent of refattn.
"""

from __future__ import annotations

from typing import Any
from unittest import mock

import numpy as np
import pytest
import torch

from refattn import _kernel, _threads, attention_backward
from refattn.errors import AttentionValueError
from tests.traced_memory import peak_bytes

MIB = 1 << 20


def _torch_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    bias: torch.Tensor | None,
    allowed: np.ndarray,
    softcap: float | None,
    keep: np.ndarray | None,
    p: float,
) -> torch.Tensor:
    """softmax(cap(q k^T / sqrt(D)) + bias, masked) (dropout) v; fully masked rows give 0."""
    s = q @ k.transpose(-1, -2) / np.sqrt(q.shape[-1])
    if softcap is not None:
        s = softcap * torch.tanh(s / softcap)
    if bias is not None:
        s = s + bias
    mask = torch.from_numpy(allowed)
    s = s.masked_fill(~mask, -torch.inf)
    dead = ~mask.any(dim=-1, keepdim=True)
    weights = torch.softmax(s.masked_fill(dead, 0.0), dim=-1).masked_fill(dead, 0.0)
    if keep is not None:
        weights = weights * torch.from_numpy(keep) / (1 - p)
    out: torch.Tensor = weights @ v
    return out


@pytest.mark.parametrize("seed", range(12))
def test_chunked_backward_matches_torch_autograd(seed: int) -> None:
    rng = np.random.default_rng(seed)
    length_q, length_k, dim = int(rng.integers(1, 90)), int(rng.integers(17, 90)), 8
    q, k, v = (rng.standard_normal((2, 2, n, dim)) for n in (length_q, length_k, length_k))
    allowed = rng.random((2, 2, length_q, length_k)) < 0.8
    options: dict[str, Any] = {"attend_mask": allowed}
    if seed % 2:
        options["causal"] = "bottom_right"
        allowed = allowed & (
            np.arange(length_k)[None, :] <= np.arange(length_q)[:, None] + length_k - length_q
        )
    softcap = 3.0 if seed % 3 == 0 else None
    if softcap is not None:
        options["softcap"] = softcap
    bias = 2 * rng.standard_normal((1, 2, length_q, length_k)) if seed % 4 < 2 else None
    options["bias"] = bias
    keep = rng.random((2, 2, length_q, length_k)) < 0.7 if seed % 5 == 0 else None
    if keep is not None:
        options.update(dropout_p=0.3, dropout_keep=keep)
    upstream = rng.standard_normal((2, 2, length_q, dim))

    tensors = {n: torch.tensor(a, requires_grad=True) for n, a in (("q", q), ("k", k), ("v", v))}
    bias_t = None if bias is None else torch.tensor(bias, requires_grad=True)
    out: Any = _torch_attention(
        tensors["q"], tensors["k"], tensors["v"], bias_t, allowed, softcap, keep, 0.3
    )
    out.backward(torch.from_numpy(upstream))
    with mock.patch.object(_kernel, "_BLOCK_BYTES", 64):
        assert _kernel.cache_chunk(_plan_like(q), []) == _kernel._MIN_CHUNK < length_k
        grads = attention_backward(upstream, q, k, v, **options)
    for name, got in (("q", grads.query), ("k", grads.key), ("v", grads.value)):
        want = tensors[name].grad
        assert want is not None
        np.testing.assert_allclose(got, want.numpy(), rtol=1e-9, atol=1e-11, err_msg=name)
    if bias_t is not None:
        assert grads.bias is not None
        assert bias_t.grad is not None
        np.testing.assert_allclose(grads.bias, bias_t.grad.numpy(), rtol=1e-9, atol=1e-11)


def _plan_like(q: np.ndarray) -> Any:
    """The two fields :func:`refattn._kernel.cache_chunk` reads, for a float64 query."""

    class _Plan:
        query = q[:, :, None]

    return _Plan()


def test_non_finite_key_poisons_the_same_gradients_chunked_or_not() -> None:
    rng = np.random.default_rng(7)
    q, k, v = (rng.standard_normal((1, 2, 70, 4)) for _ in range(3))
    k[0, 1, 40, 2] = np.nan  # read by rows 40.. of head 1 under the causal mask
    upstream = rng.standard_normal(q.shape)
    whole = attention_backward(upstream, q, k, v, causal="top_left")
    with mock.patch.object(_kernel, "_BLOCK_BYTES", 64):
        chunked = attention_backward(upstream, q, k, v, causal="top_left")
    assert np.isnan(whole.query[0, 1, 40:]).all()
    assert np.isfinite(whole.query[0, 1, :40]).all()
    for a, b in zip(whole[:3], chunked[:3], strict=True):
        np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


def test_bias_gradient_can_be_skipped() -> None:
    rng = np.random.default_rng(8)
    q, k, v = (rng.standard_normal((1, 2, 5, 4)) for _ in range(3))
    bias = rng.standard_normal((5, 5))
    upstream = rng.standard_normal(q.shape)
    full = attention_backward(upstream, q, k, v, bias=bias)
    skipped = attention_backward(upstream, q, k, v, bias=bias, bias_gradient=False)
    assert full.bias is not None
    assert full.bias.shape == bias.shape
    assert skipped.bias is None
    for a, b in zip(full[:3], skipped[:3], strict=True):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(AttentionValueError, match="bias_gradient should be a bool: but got 1"):
        attention_backward(upstream, q, k, v, bias=bias, bias_gradient=1)  # type: ignore[arg-type]


def test_backward_memory_is_linear_in_the_lengths() -> None:
    """64 query rows against 131072 keys: a (rows, S) block would be 32 MiB per array."""
    rng = np.random.default_rng(9)
    length_q, length_k, dim = 64, 1 << 17, 4
    q = rng.standard_normal((1, 1, length_q, dim)).astype(np.float32)
    k, v = (rng.standard_normal((1, 1, length_k, dim)).astype(np.float32) for _ in range(2))
    upstream = rng.standard_normal(q.shape).astype(np.float32)
    peak = peak_bytes(lambda: attention_backward(upstream, q, k, v, memory_budget=0))
    workers = _threads.worker_count() + 1
    # per worker: dK and dV partials (S, D) and their sums, plus a few cache-sized blocks
    linear = 3 * (k.nbytes + v.nbytes) * workers + 4 * _kernel._BLOCK_BYTES * workers
    row_block = length_q * length_k * 4  # one (rows, S) float32 block: 32 MiB
    assert peak <= linear < 2 * row_block, (peak / MIB, linear / MIB)
