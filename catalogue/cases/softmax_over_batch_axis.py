"""Softmax over the batch axis.

What happens:
    No error. ``softmax(scores, axis=0)`` on ``(B, L, S)`` scores normalises each (query,
    key) pair across the examples of the batch: an example's attention depends on the
    other examples, and its rows do not sum to one. PyTorch's ``F.softmax(scores)``
    without ``dim`` does exactly this on 3-D input, with only a ``UserWarning: Implicit
    dimension choice for softmax has been deprecated``.

Why:
    The softmax must run over the keys (the last axis). Any other axis mixes things that
    should be independent: queries (see ``softmax_over_query_axis``) or, here, examples.

Fix:
    ``softmax(scores, axis=-1)``; always pass the axis explicitly.
"""

import numpy as np

from refattn.checks import check_rows_sum_to_one
from refattn.errors import CheckFailure

from ._common import reference_weights, softmax

KIND = "silent"
EXPECTED = CheckFailure
MATCH = r"attention weights do not sum to one over the keys"
TAGS = ("softmax-axis",)
MESSAGES = (r"Implicit dimension choice for softmax has been deprecated",)
SYMPTOMS = ("results depend on the other examples in the batch",)


def _inputs() -> np.ndarray:
    return np.random.default_rng(0).standard_normal((3, 5, 4))  # (B, L, D)


# --8<-- [start:broken]
def broken() -> np.ndarray:
    x = _inputs()
    return softmax(x @ x.swapaxes(-1, -2) / np.sqrt(4), axis=0)  # over the batch


# --8<-- [end:broken]


# --8<-- [start:fixed]
def fixed() -> np.ndarray:
    x = _inputs()
    return softmax(x @ x.swapaxes(-1, -2) / np.sqrt(4), axis=-1)


# --8<-- [end:fixed]


def reference() -> np.ndarray:
    x = _inputs()
    return reference_weights(x, x)


def detect(weights: np.ndarray) -> None:
    check_rows_sum_to_one(weights)
