"""``~`` used to invert an integer 0/1 mask.

What happens:
    ``~keep`` on an integer mask ``[1, 1, 1, 1, 0, 0]`` gives ``[-2, -2, -2, -2, -1, -1]``:
    bitwise NOT, not logical NOT. Every entry is non-zero, so
    ``np.where(~keep, -np.inf, scores)`` removes every key and the softmax returns NaN for
    every row, with ``RuntimeWarning: invalid value encountered in subtract`` (the row max
    is ``-inf``, and ``-inf - (-inf)`` is NaN). PyTorch behaves the same on integer tensors.

Why:
    ``~`` is logical NOT only for booleans. Masks from tokenizers and data loaders are
    ``int64``; inverting them with ``~`` (which works on the boolean masks in examples)
    silently computes something else.

Fix:
    Make the mask boolean first: ``pad = keep == 0`` (or ``~keep.astype(bool)``).
"""

import numpy as np

from refattn.checks import check_finite
from refattn.errors import CheckFailure

from ._common import reference_weights, softmax

KIND = "nan"
EXPECTED = CheckFailure
MATCH = r"weights has \d+ NaN"
TAGS = ("mask-dtype", "mask-polarity", "fully-masked-row")
SYMPTOMS = ("all attention weights are nan after inverting the mask",)


def _inputs() -> tuple[np.ndarray, np.ndarray]:
    x = np.random.default_rng(0).standard_normal((1, 6, 4))  # (B, L, D)
    keep = np.array([[1, 1, 1, 1, 0, 0]])  # int64, 1 = token
    return x, keep


# --8<-- [start:broken]
def broken() -> np.ndarray:
    x, keep = _inputs()
    scores = x @ x.swapaxes(-1, -2) / np.sqrt(4)
    pad = ~keep  # bitwise NOT of int64: -2 and -1, all "True"
    with np.errstate(invalid="ignore"):  # NumPy warns: invalid value in subtract
        return softmax(np.where(pad[:, None, :], -np.inf, scores))


# --8<-- [end:broken]


# --8<-- [start:fixed]
def fixed() -> np.ndarray:
    x, keep = _inputs()
    scores = x @ x.swapaxes(-1, -2) / np.sqrt(4)
    pad = keep == 0  # boolean
    return softmax(np.where(pad[:, None, :], -np.inf, scores))


# --8<-- [end:fixed]


def reference() -> np.ndarray:
    x, keep = _inputs()
    return reference_weights(x, x, attend_mask=keep > 0)


def detect(weights: np.ndarray) -> None:
    check_finite(weights, name="weights")
