"""A key-padding mask applied to four-dimensional scores without new axes.

What happens:
    ``np.where(keep, scores, -np.inf)`` with a ``(B, S)`` mask and ``(B, H, L, S)`` scores
    raises ``ValueError: operands could not be broadcast together with shapes (2,6) (2,4,5,6)
    ()``. PyTorch's ``masked_fill`` raises ``RuntimeError: The size of tensor a (2) must
    match the size of tensor b (5) at non-singleton dimension 2``, JAX ``Incompatible shapes
    for broadcasting``, Keras and TensorFlow ``Incompatible shapes: [..] vs. [..]``.

Why:
    Broadcasting aligns shapes from the right: ``(2, 6)`` is read as ``(1, 1, 2, 6)``, so the
    batch size meets the query length (2 against 5). A padding mask is per example and per
    key; it needs unit axes for the heads and the queries.

Fix:
    ``keep[:, None, None, :]``, shape ``(B, 1, 1, S)``; refattn's ``key_lengths`` builds it.
"""

import numpy as np

from ._common import reference_weights, softmax

KIND = "exception"
EXPECTED = ValueError
MATCH = r"operands could not be broadcast together with shapes \(2,6\) \(2,4,5,6\)"
TAGS = ("mask-shape",)
MESSAGES = (
    r"operands could not be broadcast together with shapes",
    r"size of tensor a \(\d+\) must match the size of tensor b \(\d+\) at non-singleton",
    r"Incompatible shapes: \[[\d,]+\] vs\. \[[\d,]+\]",
    r"Incompatible shapes for broadcasting: shapes=\[",
    r"Expected key_padded_mask\.shape\[0\] to be \d+, but got \d+",
    r"The shape of the [23]D attn_mask is torch\.Size\(\[[\d, ]+\]\), but should be",
    r"mask shape should be \(B, L\)",
)
SYMPTOMS = (
    "padding mask does not broadcast to the attention scores",
    "masked_fill fails when adding a padding mask to multi-head attention",
)


def _inputs() -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(0)
    q = rng.standard_normal((2, 4, 5, 8))  # (B, H, L, D)
    k = rng.standard_normal((2, 4, 6, 8))  # (B, H, S, D)
    keep = np.arange(6) < np.array([[6], [4]])  # (B, S): True = real token
    return q, k, keep


# --8<-- [start:broken]
def broken() -> np.ndarray:
    q, k, keep = _inputs()
    scores = q @ k.swapaxes(-1, -2) / np.sqrt(8)  # (B, H, L, S)
    return softmax(np.where(keep, scores, -np.inf))  # (B, S) against (B, H, L, S)


# --8<-- [end:broken]


# --8<-- [start:fixed]
def fixed() -> np.ndarray:
    q, k, keep = _inputs()
    scores = q @ k.swapaxes(-1, -2) / np.sqrt(8)
    return softmax(np.where(keep[:, None, None, :], scores, -np.inf))  # (B, 1, 1, S)


# --8<-- [end:fixed]


def reference() -> np.ndarray:
    q, k, keep = _inputs()
    return reference_weights(q, k, key_lengths=keep.sum(-1))


TORCH_EXPECTED = RuntimeError
TORCH_MATCH = r"The size of tensor a \(\d+\) must match the size of tensor b \(\d+\)"


def torch_broken() -> object:
    import torch

    scores = torch.randn(2, 4, 5, 6)  # (B, H, L, S)
    keep = torch.arange(6) < torch.tensor([[6], [4]])  # (B, S)
    return scores.masked_fill(~keep, float("-inf"))
