"""A ``(B, L, S)`` mask broadcast against ``(B, H, L, S)`` scores.

What happens:
    When the batch size equals the number of heads, no error: NumPy aligns the mask as
    ``(1, B, L, S)``, so head ``h`` of *every* example gets example ``h``'s mask. Examples
    attend to their padding in some heads and lose real tokens in others. With ``B != H`` it
    raises ``ValueError: operands could not be broadcast together`` (PyTorch SDPA with
    ``B = 2, H = 3``: ``RuntimeError: The size of tensor a (3) must match the size of tensor
    b (2) at non-singleton dimension 1``). PyTorch's SDPA reads a 3-D ``attn_mask`` the same
    way, silently when ``B == H``; refattn refuses 3-D masks and asks which you meant.

Why:
    Broadcasting aligns from the right, so a 3-D mask is taken as ``(H, L, S)`` by a 4-D
    score array. The batch axis of the mask needs a unit head axis after it.

Fix:
    ``mask[:, None]``, shape ``(B, 1, L, S)``; for a per-head mask, ``mask[None]``.
"""

import numpy as np

from refattn.checks import check_no_weight_on_masked
from refattn.errors import CheckFailure

from ._common import reference_weights, softmax

KIND = "silent"
EXPECTED = CheckFailure
MATCH = r"masked \(query, key\) pairs got attention weight"
TAGS = ("mask-shape", "mask-broadcast-axis")
MESSAGES = (
    r"has 3 dims .*ambiguous: \(B, L, S\) or \(H, L, S\)",
    r"operands could not be broadcast together with shapes \(\d+,\d+,\d+\) \(\d+,\d+,\d+,\d+\)",
)
SYMPTOMS = (
    "3d attention mask applied to the wrong heads",
    "padding leaks in some heads but not others",
    "mask works with batch size 1 but not with larger batches",
)


def _inputs() -> tuple[np.ndarray, np.ndarray]:
    x = np.random.default_rng(0).standard_normal((2, 2, 5, 4))  # (B, H, L, D): B == H
    keep = np.arange(5) < np.array([[3], [5]])  # (B, S)
    mask = np.broadcast_to(keep[:, None, :], (2, 5, 5))  # (B, L, S)
    return x, mask


# --8<-- [start:broken]
def broken() -> np.ndarray:
    x, mask = _inputs()
    scores = x @ x.swapaxes(-1, -2) / np.sqrt(4)  # (B, H, L, S)
    return softmax(np.where(mask, scores, -np.inf))  # mask read as (H, L, S)


# --8<-- [end:broken]


# --8<-- [start:fixed]
def fixed() -> np.ndarray:
    x, mask = _inputs()
    scores = x @ x.swapaxes(-1, -2) / np.sqrt(4)
    return softmax(np.where(mask[:, None], scores, -np.inf))  # (B, 1, L, S)


# --8<-- [end:fixed]


def reference() -> np.ndarray:
    x, mask = _inputs()
    return reference_weights(x, x, attend_mask=mask[:, None])


def detect(weights: np.ndarray) -> None:
    _, mask = _inputs()
    check_no_weight_on_masked(weights, mask[:, None])
