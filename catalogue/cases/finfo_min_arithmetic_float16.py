"""A ``finfo.min`` mask built for float32, used in float16.

What happens:
    The additive mask ``np.where(pair, 0, np.finfo(np.float32).min)`` is cast to the
    scores' float16: ``-3.4e38`` becomes ``-inf`` (NumPy warns ``overflow encountered in
    cast``). ``finfo.min`` was chosen precisely so that a padded query row, whose every key
    is masked, stays finite; as ``-inf`` the row is NaN again. The same happens in float16
    itself with arithmetic on ``finfo(float16).min`` (-65504): adding a second mask
    (``-65504 + -65504``) or subtracting a bias overflows to ``-inf``.

Why:
    float16 ends at 65504. ``finfo.min`` is finite only in its own dtype, and only until
    something is added to it.

Fix:
    Take ``finfo`` of the dtype the arithmetic runs in (``np.finfo(scores.dtype).min``),
    combine masks as booleans and apply them once, and run the softmax in float32.
    refattn's ``fully_masked="uniform"`` gives what this mask means: uniform weights.
"""

import numpy as np

from refattn.checks import check_finite
from refattn.errors import CheckFailure

from ._common import reference_weights, softmax

KIND = "nan"
EXPECTED = CheckFailure
MATCH = r"weights has \d+ NaN"
TAGS = ("fp16-overflow", "inf-arithmetic", "fully-masked-row")
MESSAGES = (r"overflow encountered in cast", r"finfo\(.*\)\.min")
SYMPTOMS = ("nan in padded rows with float16 and finfo min mask",)


def _inputs() -> tuple[np.ndarray, np.ndarray]:
    x = np.random.default_rng(0).standard_normal((1, 5, 4)).astype(np.float16)  # (B, L, D)
    valid = np.array([[True, True, True, False, False]])  # (B, L): 2 padded positions
    pair = valid[:, :, None] & valid[:, None, :]  # (B, L, S): padded queries see nothing
    return x, pair


# --8<-- [start:broken]
def broken() -> np.ndarray:
    x, pair = _inputs()
    scores = x @ x.swapaxes(-1, -2) / np.float16(2.0)  # float16
    bias = np.where(pair, 0.0, np.finfo(np.float32).min).astype(scores.dtype)  # -> -inf
    return softmax(scores + bias)


# --8<-- [end:broken]


# --8<-- [start:fixed]
def fixed() -> np.ndarray:
    x, pair = _inputs()
    scores = x.astype(np.float32) @ x.astype(np.float32).swapaxes(-1, -2) / 2.0
    bias = np.where(pair, 0.0, np.finfo(scores.dtype).min).astype(scores.dtype)
    return softmax(scores + bias)  # padded rows: uniform and finite


# --8<-- [end:fixed]


def reference() -> np.ndarray:
    x, pair = _inputs()
    x = x.astype(np.float32)  # refattn returns float16 for float16 input
    return reference_weights(x, x, attend_mask=pair[:, None], fully_masked="uniform")


def detect(weights: np.ndarray) -> None:
    check_finite(weights, name="weights")
