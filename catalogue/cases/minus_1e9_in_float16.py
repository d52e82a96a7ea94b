"""``-1e9`` as a mask value in float16.

What happens:
    ``scores - 1e9 * pad`` with float16 arrays gives NaN in every row: ``1e9`` becomes
    ``inf`` in float16 (NumPy warns ``overflow encountered in cast``) and ``inf * 0`` is
    NaN at every *kept* position. PyTorch refuses earlier: ``masked_fill(mask, -1e9)`` on a
    half tensor raises ``RuntimeError: value cannot be converted to type c10::Half without
    overflow`` (``at::Half`` in older versions).

Why:
    float16's largest finite value is 65504. Constants chosen for float32 (``1e9``,
    ``1e10``, ``-1e30``) overflow when the arithmetic happens in half precision, as under
    autocast or after ``model.half()``.

Fix:
    Don't multiply a mask by a big number: select with ``np.where(keep, scores, -np.inf)``
    (or ``np.finfo(scores.dtype).min``), and compute the softmax in float32.
"""

import numpy as np

from refattn.checks import check_finite
from refattn.errors import CheckFailure

from ._common import reference_weights, softmax

KIND = "nan"
EXPECTED = CheckFailure
MATCH = r"weights has \d+ NaN"
TAGS = ("fp16-overflow", "inf-arithmetic")
MESSAGES = (
    r"value cannot be converted to type (?:at|c10)::Half without overflow",
    r"overflow encountered in cast",
)
SYMPTOMS = (
    "nan with fp16 mixed precision and attention mask",
    "masked_fill -1e9 fails in half precision",
)


def _inputs() -> tuple[np.ndarray, np.ndarray]:
    x = np.random.default_rng(0).standard_normal((2, 6, 4)).astype(np.float16)  # (B, L, D)
    pad = (np.arange(6) >= np.array([[4], [6]])).astype(np.float16)  # (B, S): 1 = padding
    return x, pad


# --8<-- [start:broken]
def broken() -> np.ndarray:
    x, pad = _inputs()
    scores = x @ x.swapaxes(-1, -2) / np.float16(2.0)  # float16 scores
    return softmax(scores - 1e9 * pad[:, None, :])  # 1e9 -> inf; inf * 0 -> NaN


# --8<-- [end:broken]


# --8<-- [start:fixed]
def fixed() -> np.ndarray:
    x, pad = _inputs()
    x = x.astype(np.float32)  # scores and softmax in float32
    scores = x @ x.swapaxes(-1, -2) / 2.0
    return softmax(np.where(pad[:, None, :] > 0, -np.inf, scores))


# --8<-- [end:fixed]


def reference() -> np.ndarray:
    x, pad = _inputs()
    x = x.astype(np.float32)  # refattn returns float16 for float16 input
    return reference_weights(x, x, attend_mask=pad[:, None, None, :] == 0)


def detect(weights: np.ndarray) -> None:
    check_finite(weights, name="weights")


TORCH_EXPECTED = RuntimeError
TORCH_MATCH = r"value cannot be converted to type (?:at|c10)::Half without overflow"


def torch_broken() -> object:
    import torch

    scores = torch.randn(2, 6, 6, dtype=torch.float16)
    pad = torch.arange(6) >= torch.tensor([[4], [6]])
    return scores.masked_fill(pad[:, None, :], -1e9)
