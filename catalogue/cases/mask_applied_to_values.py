"""The padding mask multiplied into the values instead of the scores.

What happens:
    No error. ``v * keep[..., None]`` zeroes the padded value vectors, but the softmax still
    gives the padded keys their share of the weight. That share now multiplies zeros, so
    each output is shrunk towards zero by the weight the padding took.

Why:
    Masking decides *who gets weight*, which happens in the scores. Zeroing values changes
    what the padding contributes, not how much attention it takes from the real tokens.

Fix:
    Mask the scores before the softmax: ``np.where(keep[:, None, :], scores, -np.inf)``.
"""

import numpy as np

from refattn import attention
from refattn.checks import check_close
from refattn.errors import CheckFailure

from ._common import softmax

KIND = "silent"
EXPECTED = CheckFailure
MATCH = r"output differs from the reference at \d+ of \d+ entries"
TAGS = ("mask-after-softmax", "mask-missing")
SYMPTOMS = (
    "outputs of padded examples are smaller",
    "masking the values does not work",
    "padded keys still get attention weight",
)


def _inputs() -> tuple[np.ndarray, np.ndarray]:
    x = np.random.default_rng(0).standard_normal((2, 6, 4))  # (B, L, D)
    keep = np.arange(6) < np.array([[4], [6]])  # (B, S)
    return x, keep


# --8<-- [start:broken]
def broken() -> np.ndarray:
    x, keep = _inputs()
    v = x * keep[..., None]  # padded values zeroed
    return softmax(x @ x.swapaxes(-1, -2) / np.sqrt(4)) @ v  # scores unmasked


# --8<-- [end:broken]


# --8<-- [start:fixed]
def fixed() -> np.ndarray:
    x, keep = _inputs()
    scores = x @ x.swapaxes(-1, -2) / np.sqrt(4)
    return softmax(np.where(keep[:, None, :], scores, -np.inf)) @ x


# --8<-- [end:fixed]


def reference() -> np.ndarray:
    x, keep = _inputs()
    h = x[:, None]
    return attention(h, h, h, key_lengths=keep.sum(-1))[:, 0]


def detect(output: np.ndarray) -> None:
    check_close(output, reference())
