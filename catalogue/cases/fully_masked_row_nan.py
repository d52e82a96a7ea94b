"""A query row whose every key is masked.

What happens:
    The softmax of a row of ``-inf`` is NaN: the row max is ``-inf``, ``-inf - (-inf)`` is
    NaN (NumPy warns ``RuntimeWarning: invalid value encountered in subtract``). The NaN
    row spreads through ``@ v`` into the output and, in training, into every gradient.
    PyTorch's ``F.softmax`` gives NaN too; SDPA (since 2.5) and flash-attn return zeros,
    JAX/Flax the mean of the values.

Why:
    Padded *queries* (here, example 1's rows 3..5 under a query-and-key padding mask) or a
    causal mask combined with left padding leave rows with nothing to attend to, and
    ``exp(-inf) / 0`` has no value.

Fix:
    Decide what such a row means and say it: zero the rows that have no key
    (``np.where(row_has_key, weights, 0)``, what SDPA does; refattn's
    ``fully_masked="zero"``), or mask padded queries only at the loss.
"""

import numpy as np

from refattn.checks import check_finite
from refattn.errors import CheckFailure

from ._common import reference_weights, softmax

KIND = "nan"
EXPECTED = CheckFailure
MATCH = r"weights has \d+ NaN"
TAGS = ("fully-masked-row",)
MESSAGES = (r"fully.masked|every key (?:is )?masked|all keys masked",)
SYMPTOMS = (
    "loss becomes nan after adding a padding mask",
    "nan in attention output for padded positions",
    "softmax of all -inf gives nan",
)


def _inputs() -> tuple[np.ndarray, np.ndarray]:
    x = np.random.default_rng(0).standard_normal((2, 6, 4))  # (B, L, D)
    valid = np.arange(6) < np.array([[6], [3]])  # (B, L): example 1 has 3 tokens
    pair = valid[:, :, None] & valid[:, None, :]  # (B, L, S): query and key both real
    return x, pair


# --8<-- [start:broken]
def broken() -> np.ndarray:
    x, pair = _inputs()
    scores = x @ x.swapaxes(-1, -2) / np.sqrt(4)
    return softmax(np.where(pair, scores, -np.inf))  # padded query rows: all -inf


# --8<-- [end:broken]


# --8<-- [start:fixed]
def fixed() -> np.ndarray:
    x, pair = _inputs()
    scores = x @ x.swapaxes(-1, -2) / np.sqrt(4)
    row_has_key = pair.any(axis=-1, keepdims=True)
    safe = np.where(pair, scores, -np.inf)
    safe = np.where(row_has_key, safe, 0.0)  # a finite row, zeroed below
    return np.where(row_has_key, softmax(safe), 0.0)


# --8<-- [end:fixed]


def reference() -> np.ndarray:
    x, pair = _inputs()
    return reference_weights(x, x, attend_mask=pair[:, None], fully_masked="zero")


def detect(weights: np.ndarray) -> None:
    check_finite(weights, name="weights")
