"""``masked_fill(mask == 0, -inf)`` with a ``(B, S)`` padding mask on ``(B, L, S)`` scores.

What happens:
    PyTorch raises ``RuntimeError: The size of tensor a (10) must match the size of tensor
    b (20) at non-singleton dimension 1``; the NumPy spelling
    ``np.where(mask == 0, -np.inf, scores)`` raises ``ValueError: operands could not be
    broadcast together with shapes (10,20) () (10,20,20)``.

Why:
    The mask has one entry per example and key, ``(B, S)``; aligned from the right against
    ``(B, L, S)`` its batch axis meets the query axis (10 against 20). The comparison
    ``mask == 0`` also hard-codes a polarity: it treats ``False`` as padding, right
    only for a True-means-keep mask. And a random mask, as in the article, can remove every
    key of an example (odds ``2⁻²⁰`` per example at 20 keys); with the shape fixed, that
    example's softmax rows are all NaN.

Fix:
    ``scores.masked_fill(~keep[:, None, :], float("-inf"))`` with a boolean mask named for
    its meaning, built from the real lengths.
"""

import numpy as np

from ._common import reference_weights, softmax

KIND = "exception"
EXPECTED = ValueError
MATCH = r"operands could not be broadcast together with shapes \(10,20\) \(\) \(10,20,20\)"
TAGS = ("mask-shape", "mask-polarity")
SEED_CLAIMS = (
    (
        "000_acdb1d09df8d8964.txt",
        "Example 2 (fixed layer): scores.masked_fill(mask == 0, float('-inf')) with a "
        "(batch_size, sequence_length) mask makes attention(x, mask) work and print its "
        "output shape",
        "False: the masking line itself raises RuntimeError ('The size of tensor a (10) "
        "must match the size of tensor b (20) at non-singleton dimension 1'), so the "
        "article's try block prints 'Error: ...' instead of a shape; the mask needs "
        "mask[:, None, :]. Even then, mask == 0 reads False as padding (right only for a "
        "True = keep mask), and a random mask that drops every key of an example (odds "
        "2**-20 per example here) gives that example NaN rows.",
    ),
)
MESSAGES = (
    r"size of tensor a \(\d+\) must match the size of tensor b \(\d+\) at non-singleton "
    r"dimension \d+",
    r"operands could not be broadcast together with shapes",
)
SYMPTOMS = (
    "masked_fill fails with a padding mask",
    "attention works without a mask but fails when the mask is passed",
)


def _inputs() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((10, 20, 8))  # (B, L, D): the article's sizes
    lengths = rng.integers(5, 21, size=10)
    mask = np.arange(20) < lengths[:, None]  # (B, S): True = real token
    return x, mask


# --8<-- [start:broken]
def broken() -> np.ndarray:
    x, mask = _inputs()
    scores = x @ x.swapaxes(-1, -2) / np.sqrt(8)  # (B, L, S)
    return softmax(np.where(mask == 0, -np.inf, scores))  # (B, S) against (B, L, S)


# --8<-- [end:broken]


# --8<-- [start:fixed]
def fixed() -> np.ndarray:
    x, keep = _inputs()
    scores = x @ x.swapaxes(-1, -2) / np.sqrt(8)
    return softmax(np.where(keep[:, None, :], scores, -np.inf))  # (B, 1, S)


# --8<-- [end:fixed]


def reference() -> np.ndarray:
    x, keep = _inputs()
    return reference_weights(x, x, key_lengths=keep.sum(-1))


TORCH_EXPECTED = RuntimeError
TORCH_MATCH = r"The size of tensor a \(10\) must match the size of tensor b \(20\) at non-singleton"


def torch_broken() -> object:
    import torch

    batch_size, sequence_length = 10, 20
    scores = torch.randn(batch_size, sequence_length, sequence_length)
    mask = torch.randint(0, 2, (batch_size, sequence_length)).bool()  # as in the article
    return scores.masked_fill(mask == 0, float("-inf"))
