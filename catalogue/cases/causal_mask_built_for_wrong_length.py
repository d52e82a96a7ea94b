"""A causal mask built for the maximum length, used on a shorter sequence.

What happens:
    ``np.where(causal, scores, -np.inf)`` with a ``(16, 16)`` mask and ``(2, 10, 10)``
    scores raises ``ValueError: operands could not be broadcast together with shapes
    (16,16) (2,10,10) ()``. In PyTorch, ``masked_fill`` with the registered ``(1, 1, 16,
    16)`` buffer raises ``RuntimeError: The size of tensor a (16) must match the size of
    tensor b (10) at non-singleton dimension 3`` (adding a float mask instead: ``a (10)`` and
    ``b (16)``).

Why:
    The mask is built once, for ``max_len`` (a registered buffer in nanoGPT-style code),
    and each call must cut it to the current length; shorter batches or generation steps
    bring a different ``L``.

Fix:
    Slice it: ``causal[:L, :L]`` (``self.bias[:, :, :T, :T]`` in nanoGPT), or build the mask
    from the current shapes.
"""

import numpy as np

from ._common import reference_weights, softmax

KIND = "exception"
EXPECTED = ValueError
MATCH = r"operands could not be broadcast together with shapes \(16,16\) \(2,10,10\)"
TAGS = ("causal-alignment", "mask-shape")
MESSAGES = (
    r"operands could not be broadcast together with shapes \((\d+),\1\) ",
    r"size of tensor a \(\d+\) must match the size of tensor b \(\d+\) at non-singleton "
    r"dimension 3",
)
SYMPTOMS = (
    "causal mask shape error for shorter sequences",
    "works at full length but fails on a shorter batch",
    "generation fails after the first step with a size mismatch",
)

MAX_LEN = 16


def _inputs() -> tuple[np.ndarray, np.ndarray]:
    x = np.random.default_rng(0).standard_normal((2, 10, 4))  # (B, L, D): L = 10
    causal = np.tril(np.ones((MAX_LEN, MAX_LEN), dtype=bool))  # built once for max_len
    return x, causal


# --8<-- [start:broken]
def broken() -> np.ndarray:
    x, causal = _inputs()
    scores = x @ x.swapaxes(-1, -2) / np.sqrt(4)  # (B, 10, 10)
    return softmax(np.where(causal, scores, -np.inf))


# --8<-- [end:broken]


# --8<-- [start:fixed]
def fixed() -> np.ndarray:
    x, causal = _inputs()
    length = x.shape[1]
    scores = x @ x.swapaxes(-1, -2) / np.sqrt(4)
    return softmax(np.where(causal[:length, :length], scores, -np.inf))


# --8<-- [end:fixed]


def reference() -> np.ndarray:
    x = _inputs()[0]
    return reference_weights(x, x, causal="top_left")


TORCH_EXPECTED = RuntimeError
TORCH_MATCH = r"The size of tensor a \(16\) must match the size of tensor b \(10\) at non-singleton"


def torch_broken() -> object:
    import torch

    bias = torch.tril(torch.ones(MAX_LEN, MAX_LEN, dtype=torch.bool))[None, None]
    scores = torch.randn(2, 4, 10, 10)  # (B, H, L, L)
    return scores.masked_fill(~bias, float("-inf"))
