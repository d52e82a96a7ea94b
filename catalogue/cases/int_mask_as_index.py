"""An integer 0/1 mask used as an index.

What happens:
    No error. ``scores[..., pad] = -np.inf`` with ``pad = np.array([0, 0, 0, 0, 1, 1])``
    is *fancy indexing*: it sets columns 0 and 1 to ``-inf``. The first two tokens are
    hidden from every query and the padding is attended.

Why:
    NumPy (and PyTorch) index with a boolean array by position of ``True``, but with an
    integer array by *value*. A 0/1 mask read from a file, built with ``astype(int)`` or
    returned as ``int64`` by a tokenizer (``attention_mask``) is an integer array. (A
    ``uint8`` tensor is read as a mask by PyTorch, but assigning through it raises
    ``RuntimeError: masked_fill_ only supports boolean masks``.)

Fix:
    Convert first: ``pad.astype(bool)`` (better, keep masks boolean from the start).
"""

import numpy as np

from refattn.checks import check_no_weight_on_masked
from refattn.errors import CheckFailure

from ._common import reference_weights, softmax

KIND = "silent"
EXPECTED = CheckFailure
MATCH = r"masked \(query, key\) pairs got attention weight"
TAGS = ("mask-dtype",)
MESSAGES = (r"masked_fill_ only supports boolean masks, but got mask with dtype",)
SYMPTOMS = ("first tokens are never attended", "attention_mask from the tokenizer is ignored")


def _inputs() -> tuple[np.ndarray, np.ndarray]:
    x = np.random.default_rng(0).standard_normal((1, 6, 4))  # (B, L, D)
    pad = np.array([0, 0, 0, 0, 1, 1])  # int64: 1 = padding
    return x, pad


# --8<-- [start:broken]
def broken() -> np.ndarray:
    x, pad = _inputs()
    scores = x @ x.swapaxes(-1, -2) / np.sqrt(4)
    scores[..., pad] = -np.inf  # integer index: columns 0 and 1
    return softmax(scores)


# --8<-- [end:broken]


# --8<-- [start:fixed]
def fixed() -> np.ndarray:
    x, pad = _inputs()
    scores = x @ x.swapaxes(-1, -2) / np.sqrt(4)
    scores[..., pad.astype(bool)] = -np.inf  # boolean index: the padded columns
    return softmax(scores)


# --8<-- [end:fixed]


def reference() -> np.ndarray:
    x, pad = _inputs()
    return reference_weights(x, x, attend_mask=pad == 0)


def detect(weights: np.ndarray) -> None:
    _, pad = _inputs()
    check_no_weight_on_masked(weights, pad == 0)
