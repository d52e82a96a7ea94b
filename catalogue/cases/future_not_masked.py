"""A decoder without a causal mask.

What happens:
    No error. Each position attends to the positions after it: here query 0 puts 80 % of
    its weight on later keys, and all 15 future pairs get weight. In training, position
    ``i`` can read token ``i + 1``, the one it is asked to predict, so the loss looks too
    good; at generation time those tokens do not exist yet.

Why:
    Self-attention is symmetric in time unless a mask removes keys after the query. An
    autoregressive model needs query ``i`` to see keys ``0 .. i`` only.

Fix:
    Mask with ``np.tril(np.ones((L, S), bool))`` (or ``is_causal=True`` in PyTorch's SDPA;
    refattn: ``causal="top_left"``, or ``"bottom_right"`` when decoding with a cache).
"""

import numpy as np

from refattn.checks import check_no_weight_on_masked
from refattn.errors import CheckFailure

from ._common import reference_weights, softmax

KIND = "silent"
EXPECTED = CheckFailure
MATCH = r"masked \(query, key\) pairs got attention weight"
TAGS = ("mask-missing",)
SYMPTOMS = (
    "training loss is suspiciously low but generation is garbage",
    "decoder attends to future tokens",
)


def _inputs() -> np.ndarray:
    return np.random.default_rng(0).standard_normal((1, 6, 4))  # (B, L, D)


# --8<-- [start:broken]
def broken() -> np.ndarray:
    x = _inputs()
    scores = x @ x.swapaxes(-1, -2) / np.sqrt(4)  # (B, L, L)
    return softmax(scores)  # no causal mask


# --8<-- [end:broken]


# --8<-- [start:fixed]
def fixed() -> np.ndarray:
    x = _inputs()
    scores = x @ x.swapaxes(-1, -2) / np.sqrt(4)
    causal = np.tril(np.ones((6, 6), dtype=bool))  # query i sees keys 0..i
    return softmax(np.where(causal, scores, -np.inf))


# --8<-- [end:fixed]


def reference() -> np.ndarray:
    x = _inputs()
    return reference_weights(x, x, causal="top_left")


def detect(weights: np.ndarray) -> None:
    check_no_weight_on_masked(weights, np.tril(np.ones((6, 6), dtype=bool)))
