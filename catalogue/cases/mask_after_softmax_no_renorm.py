"""Padding zeroed after the softmax, without renormalising.

What happens:
    No error. ``softmax(scores) * keep`` removes the padding's weight but leaves each row
    summing to less than one (here as low as 0.46), so outputs shrink by how much
    padding an example has.

Why:
    The softmax divides by the sum over *all* keys, padding included. Zeroing afterwards
    removes terms from the numerator only; the denominator still counts them.

Fix:
    Mask the scores before the softmax (``np.where(keep, scores, -np.inf)``), or divide by
    the new row sums after zeroing.

Sources:
    https://github.com/abisee/pointer-generator/issues/88 mask after the softmax (renormalised)
"""

import numpy as np

from refattn.checks import check_rows_sum_to_one
from refattn.errors import CheckFailure

from ._common import reference_weights, softmax

KIND = "silent"
EXPECTED = CheckFailure
MATCH = r"attention weights do not sum to one over the keys"
TAGS = ("mask-after-softmax",)
SYMPTOMS = (
    "attention weights do not sum to one",
    "output magnitude depends on padding length",
    "mask applied after the softmax",
    "attention weights zeroed after softmax",
)


def _inputs() -> tuple[np.ndarray, np.ndarray]:
    x = np.random.default_rng(0).standard_normal((2, 6, 4))  # (B, L, D)
    keep = np.arange(6) < np.array([[4], [6]])  # (B, S)
    return x, keep


# --8<-- [start:broken]
def broken() -> np.ndarray:
    x, keep = _inputs()
    weights = softmax(x @ x.swapaxes(-1, -2) / np.sqrt(4))
    return weights * keep[:, None, :]  # padding zeroed after the softmax


# --8<-- [end:broken]


# --8<-- [start:fixed]
def fixed() -> np.ndarray:
    x, keep = _inputs()
    scores = x @ x.swapaxes(-1, -2) / np.sqrt(4)
    return softmax(np.where(keep[:, None, :], scores, -np.inf))  # masked before


# --8<-- [end:fixed]


def reference() -> np.ndarray:
    x, keep = _inputs()
    return reference_weights(x, x, key_lengths=keep.sum(-1))


def detect(weights: np.ndarray) -> None:
    check_rows_sum_to_one(weights)


TORCH_KIND = "silent"
TORCH_EXPECTED = CheckFailure
TORCH_MATCH = MATCH


def torch_broken() -> object:
    import torch

    x, keep = (torch.from_numpy(a) for a in _inputs())
    weights = torch.softmax(x @ x.transpose(-1, -2) / 2.0, dim=-1)
    return weights * keep[:, None, :]  # padding zeroed after the softmax


def torch_fixed() -> object:
    import torch

    x, keep = (torch.from_numpy(a) for a in _inputs())
    scores = x @ x.transpose(-1, -2) / 2.0
    return torch.softmax(scores.masked_fill(~keep[:, None, :], float("-inf")), dim=-1)


JAX_KIND = "silent"
JAX_EXPECTED = CheckFailure
JAX_MATCH = MATCH


def jax_broken() -> object:
    import jax
    import jax.numpy as jnp

    x, keep = (jnp.asarray(a) for a in _inputs())
    weights = jax.nn.softmax(x @ x.swapaxes(-1, -2) / 2.0, axis=-1)
    return weights * keep[:, None, :]


def jax_fixed() -> object:
    import jax
    import jax.numpy as jnp

    x, keep = (jnp.asarray(a) for a in _inputs())
    scores = x @ x.swapaxes(-1, -2) / 2.0
    return jax.nn.softmax(scores, axis=-1, where=keep[:, None, :])  # masked before


TF_KIND = "silent"
TF_EXPECTED = CheckFailure
TF_MATCH = MATCH


def tf_broken() -> object:
    import tensorflow as tf

    x, keep = (tf.constant(a) for a in _inputs())
    weights = tf.nn.softmax(tf.matmul(x, x, transpose_b=True) / 2.0, axis=-1)
    return weights * tf.cast(keep[:, None, :], weights.dtype)  # zeroed after the softmax


def tf_fixed() -> object:
    import tensorflow as tf

    x, keep = (tf.constant(a) for a in _inputs())
    scores = tf.matmul(x, x, transpose_b=True) / 2.0
    return tf.nn.softmax(tf.where(keep[:, None, :], scores, float("-inf")), axis=-1)
