"""A True-means-ignore padding mask passed where True means attend.

What happens:
    No error. ``nn.MultiheadAttention``'s ``key_padding_mask`` marks padding with ``True``;
    ``F.scaled_dot_product_attention`` and ``np.where(mask, scores, -inf)`` keep the
    ``True`` positions. Passed from one to the other, every query attends *only* to
    padding: here all weight lands on keys 4-5 (example 0) and 3-5 (example 1); torch's
    SDPA likewise returns attention over the padded positions only. An example without
    padding has every key removed: NaN rows in a hand-written softmax, zeros from SDPA
    (torch 2.13).

Why:
    The two APIs use opposite polarities for a boolean mask, and both accept the other's
    mask without complaint: it has the right shape and dtype.

Fix:
    Invert at the boundary: ``attend = ~key_padding_mask``, and name masks after their
    meaning (refattn's ``attend_mask``; ``refattn.masks.from_torch_key_padding_mask``).
"""

import numpy as np

from refattn.checks import check_no_weight_on_masked
from refattn.errors import CheckFailure

from ._common import reference_weights, softmax

KIND = "silent"
EXPECTED = CheckFailure
MATCH = r"masked \(query, key\) pairs got attention weight"
TAGS = ("mask-polarity",)
SYMPTOMS = (
    "model attends only to padding tokens",
    "key_padding_mask inverted when switching to scaled_dot_product_attention",
)


def _inputs() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 6, 4))  # (B, L, D)
    key_padding_mask = np.arange(6) >= np.array([[4], [3]])  # (B, S): True = padding
    return x, key_padding_mask


# --8<-- [start:broken]
def broken() -> np.ndarray:
    x, key_padding_mask = _inputs()
    scores = x @ x.swapaxes(-1, -2) / np.sqrt(4)
    return softmax(np.where(key_padding_mask[:, None, :], scores, -np.inf))  # keeps the pads


# --8<-- [end:broken]


# --8<-- [start:fixed]
def fixed() -> np.ndarray:
    x, key_padding_mask = _inputs()
    attend = ~key_padding_mask  # True = may attend
    scores = x @ x.swapaxes(-1, -2) / np.sqrt(4)
    return softmax(np.where(attend[:, None, :], scores, -np.inf))


# --8<-- [end:fixed]


def reference() -> np.ndarray:
    x, key_padding_mask = _inputs()
    return reference_weights(x, x, attend_mask=~key_padding_mask[:, None, None, :])


def detect(weights: np.ndarray) -> None:
    _, key_padding_mask = _inputs()
    check_no_weight_on_masked(weights, ~key_padding_mask[:, None, :])
