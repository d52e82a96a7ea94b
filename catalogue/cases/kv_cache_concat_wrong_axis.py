"""A key/value cache extended along the feature axis.

What happens:
    ``np.concatenate([cache_k, k_new], axis=-1)`` raises ``ValueError: all the input array
    dimensions except for the concatenation axis must match exactly, but along dimension 2,
    the array at index 0 has size 6 and the array at index 1 has size 1``; PyTorch's
    ``torch.cat`` says ``Sizes of tensors must match except in dimension 3`` and JAX a
    ``TypeError``, ``Cannot concatenate arrays with shapes that differ``. On the very first
    step, with one cached position, the concatenation does not raise: the cache silently
    becomes ``(B, H, 1, 2D)`` and the next ``q @ k.T`` fails instead (NumPy: matmul
    core-dimension mismatch, size 16 vs 8; PyTorch: ``Expected size for first two
    dimensions of batch2 tensor``).

Why:
    One decoding step adds one position, so the cache grows along the sequence axis
    ``-2``. Along ``-1`` it would append features instead, which only the sequence sizes
    (6 cached, 1 new) happen to stop.

Fix:
    Concatenate along the sequence axis: ``np.concatenate([cache_k, k_new], axis=-2)``.
"""

import numpy as np

from refattn import attention

from ._common import softmax

KIND = "exception"
EXPECTED = ValueError
MATCH = r"except for the concatenation axis must match exactly, but along dimension 2"
TAGS = ("kv-cache",)
MESSAGES = (
    r"Sizes of tensors must match except in dimension",
    r"all the input array dimensions except for the concatenation axis must match",
    r"ConcatOp : Dimension \d+ in both shapes must be equal",
    r"Cannot concatenate arrays with shapes that differ in dimensions other than the one",
)
SYMPTOMS = ("decoding with kv cache fails on the second step", "past_key_values shape error")


def _inputs() -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(0)
    cache_k, cache_v = rng.standard_normal((2, 1, 2, 6, 8))  # (B, H, S, D): 6 cached steps
    q, k_new, v_new = rng.standard_normal((3, 1, 2, 1, 8))  # (B, H, 1, D): the new token
    return q, k_new, v_new, cache_k, cache_v


# --8<-- [start:broken]
def broken() -> np.ndarray:
    q, k_new, v_new, cache_k, cache_v = _inputs()
    k = np.concatenate([cache_k, k_new], axis=-1)  # features axis: 6 vs 1 positions
    v = np.concatenate([cache_v, v_new], axis=-1)
    return softmax(q @ k.swapaxes(-1, -2) / np.sqrt(8)) @ v


# --8<-- [end:broken]


# --8<-- [start:fixed]
def fixed() -> np.ndarray:
    q, k_new, v_new, cache_k, cache_v = _inputs()
    k = np.concatenate([cache_k, k_new], axis=-2)  # (1, 2, 7, 8): one more step
    v = np.concatenate([cache_v, v_new], axis=-2)
    return softmax(q @ k.swapaxes(-1, -2) / np.sqrt(8)) @ v


# --8<-- [end:fixed]


def reference() -> np.ndarray:
    q, k_new, v_new, cache_k, cache_v = _inputs()
    k, v = np.concatenate([cache_k, k_new], -2), np.concatenate([cache_v, v_new], -2)
    return attention(q, k, v, causal="bottom_right")


TORCH_EXPECTED = RuntimeError
TORCH_MATCH = r"Sizes of tensors must match except in dimension 3"


def torch_broken() -> object:
    import torch

    cache_k = torch.randn(1, 2, 6, 8)
    k_new = torch.randn(1, 2, 1, 8)
    return torch.cat([cache_k, k_new], dim=-1)
