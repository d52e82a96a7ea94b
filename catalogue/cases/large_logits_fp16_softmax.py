"""Attention scores computed in float16 from large activations.

What happens:
    ``q @ k.T`` in float16 overflows to ``inf`` once a dot product passes 65504; the
    softmax then computes ``inf - inf`` = NaN for those rows, even though it subtracts the
    row maximum. Under autocast this shows up as NaN loss after some steps of training,
    when activations have grown.

Why:
    The dot product of two vectors of 64 features of magnitude ~40 is ~100 000, beyond
    float16. Scaling by ``1/sqrt(d)`` *after* the product is too late: the product itself
    overflowed.

Fix:
    Scale the query before the product (``(q / np.sqrt(d)) @ k.T``), and compute scores
    and softmax in float32 (``torch.autocast`` runs softmax in float32; the matmul is the
    risk). bfloat16 has float32's range.
"""

import numpy as np

from refattn.checks import check_finite
from refattn.errors import CheckFailure

from ._common import reference_weights, softmax

KIND = "nan"
EXPECTED = CheckFailure
MATCH = r"weights has \d+ NaN and \d+ infinite"
TAGS = ("fp16-overflow", "softmax-overflow")
MESSAGES = (r"overflow encountered in matmul", r"invalid value encountered in subtract")
SYMPTOMS = (
    "nan loss with fp16 mixed precision after some steps",
    "attention scores overflow in half precision",
)


def _inputs() -> np.ndarray:
    x = np.random.default_rng(0).standard_normal((1, 4, 64)) * 40  # large activations
    return x.astype(np.float16)  # (B, L, D)


# --8<-- [start:broken]
def broken() -> np.ndarray:
    x = _inputs()
    scores = x @ x.swapaxes(-1, -2) / np.float16(8.0)  # the product overflows first
    return softmax(scores)


# --8<-- [end:broken]


# --8<-- [start:fixed]
def fixed() -> np.ndarray:
    x = _inputs().astype(np.float32)  # scores and softmax in float32
    scores = (x / np.float32(8.0)) @ x.swapaxes(-1, -2)  # scale before the product
    return softmax(scores)


# --8<-- [end:fixed]


def reference() -> np.ndarray:
    x = _inputs().astype(np.float32)
    return reference_weights(x, x)


def detect(weights: np.ndarray) -> None:
    check_finite(weights, name="weights")
