"""A key-padding mask that broadcasts along the query axis.

What happens:
    No error when the batch size equals the query length. ``np.where(keep, scores, -inf)``
    with a ``(B, S)`` mask and ``(B, L, S)`` scores reads the mask as ``(1, B, S)``: query
    ``l`` of *every* example gets the padding of example ``l``. Here (lengths 3, 2, 1) the
    first query of examples 1 and 2 puts weight on their padding keys, while the last query
    of example 0 sees only key 0. PyTorch's ``scores.masked_fill(~keep, float("-inf"))``,
    ``jnp.where`` and ``tf.where`` broadcast the same way, just as silently.

Why:
    Broadcasting aligns from the right and lines the mask's batch axis up with the query
    axis. With ``B != L`` it raises (see ``mask_shape_not_broadcastable``); with ``B == L``
    the shapes fit by accident, often only in a test with tiny sizes.

Fix:
    Give the mask a query axis: ``keep[:, None, :]``, shape ``(B, 1, S)``.
"""

import numpy as np

from refattn.checks import check_no_weight_on_masked
from refattn.errors import CheckFailure

from ._common import reference_weights, softmax

KIND = "silent"
EXPECTED = CheckFailure
MATCH = r"masked \(query, key\) pairs got attention weight"
TAGS = ("mask-broadcast-axis",)
SYMPTOMS = (
    "padding mask works only for some batch sizes",
    "model attends to padding despite the mask",
    "padding mask applied to the query rows instead of the keys",
)


def _inputs() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 3, 4))  # (B, L, D) with B == L == 3
    keep = np.arange(3) < np.array([[3], [2], [1]])  # (B, S): True = real token
    return x, keep


# --8<-- [start:broken]
def broken() -> np.ndarray:
    x, keep = _inputs()
    scores = x @ x.swapaxes(-1, -2) / np.sqrt(4)  # (B, L, S)
    return softmax(np.where(keep, scores, -np.inf))  # keep read as (1, B, S)


# --8<-- [end:broken]


# --8<-- [start:fixed]
def fixed() -> np.ndarray:
    x, keep = _inputs()
    scores = x @ x.swapaxes(-1, -2) / np.sqrt(4)
    return softmax(np.where(keep[:, None, :], scores, -np.inf))  # (B, 1, S)


# --8<-- [end:fixed]


def reference() -> np.ndarray:
    x, keep = _inputs()
    return reference_weights(x, x, key_lengths=keep.sum(-1))


def detect(weights: np.ndarray) -> None:
    _, keep = _inputs()
    check_no_weight_on_masked(weights, keep[:, None, :])


TORCH_KIND = "silent"
TORCH_EXPECTED = CheckFailure
TORCH_MATCH = MATCH


def torch_broken() -> object:
    import torch

    x, keep = (torch.from_numpy(a) for a in _inputs())
    scores = x @ x.transpose(-1, -2) / 2.0  # (B, L, S)
    return torch.softmax(scores.masked_fill(~keep, float("-inf")), dim=-1)  # (1, B, S)


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
    scores = x @ x.swapaxes(-1, -2) / 2.0
    return jax.nn.softmax(jnp.where(keep, scores, -jnp.inf), axis=-1)


def jax_fixed() -> object:
    import jax
    import jax.numpy as jnp

    x, keep = (jnp.asarray(a) for a in _inputs())
    scores = x @ x.swapaxes(-1, -2) / 2.0
    return jax.nn.softmax(jnp.where(keep[:, None, :], scores, -jnp.inf), axis=-1)


TF_KIND = "silent"
TF_EXPECTED = CheckFailure
TF_MATCH = MATCH


def tf_broken() -> object:
    import tensorflow as tf

    x, keep = (tf.constant(a) for a in _inputs())
    scores = tf.matmul(x, x, transpose_b=True) / 2.0
    return tf.nn.softmax(tf.where(keep, scores, float("-inf")), axis=-1)


def tf_fixed() -> object:
    import tensorflow as tf

    x, keep = (tf.constant(a) for a in _inputs())
    scores = tf.matmul(x, x, transpose_b=True) / 2.0
    return tf.nn.softmax(tf.where(keep[:, None, :], scores, float("-inf")), axis=-1)
