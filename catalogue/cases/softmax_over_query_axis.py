"""Softmax over the query axis instead of the key axis.

What happens:
    No error. ``softmax(scores, axis=-2)`` (``dim=1`` on ``(B, L, S)`` scores in PyTorch)
    normalises each *column*: every key distributes one unit of attention over the
    queries, and a query's weights no longer sum to one (here from 0.66 to 1.64).

Why:
    Scores are ``(..., L, S)``: one row per query, one column per key. Each query needs a
    distribution over the keys, so the softmax runs over the last axis. With square
    self-attention scores both axes have the same size and the mistake runs.

Fix:
    ``softmax(scores, axis=-1)``. Check rows: ``weights.sum(-1)`` is all ones.

Sources:
    https://github.com/labmlai/annotated_deep_learning_paper_implementations/issues/146 (dim=1)
    https://github.com/nerminnuraydogan/vision-transformer/issues/1 (softmax along the wrong dim)
"""

import numpy as np

from refattn.checks import check_rows_sum_to_one
from refattn.errors import CheckFailure

from ._common import reference_weights, softmax

KIND = "silent"
EXPECTED = CheckFailure
MATCH = r"the columns sum to one instead: softmax was taken over the query axis"
TAGS = ("softmax-axis",)
SYMPTOMS = (
    "attention weights do not sum to one over keys",
    "softmax over the wrong dim",
    "softmax over dim 1 instead of the last dim",
    "columns of the attention matrix sum to one instead of rows",
)


def _inputs() -> np.ndarray:
    return np.random.default_rng(0).standard_normal((1, 6, 4))  # (B, L, D)


# --8<-- [start:broken]
def broken() -> np.ndarray:
    x = _inputs()
    return softmax(x @ x.swapaxes(-1, -2) / np.sqrt(4), axis=-2)  # over queries


# --8<-- [end:broken]


# --8<-- [start:fixed]
def fixed() -> np.ndarray:
    x = _inputs()
    return softmax(x @ x.swapaxes(-1, -2) / np.sqrt(4), axis=-1)  # over keys


# --8<-- [end:fixed]


def reference() -> np.ndarray:
    x = _inputs()
    return reference_weights(x, x)


def detect(weights: np.ndarray) -> None:
    check_rows_sum_to_one(weights)


TORCH_KIND = "silent"
TORCH_EXPECTED = CheckFailure
TORCH_MATCH = MATCH


def torch_broken() -> object:
    import torch

    x = torch.from_numpy(_inputs())
    return torch.softmax(x @ x.transpose(-2, -1) / 2.0, dim=1)  # (B, L, S): over queries


def torch_fixed() -> object:
    import torch

    x = torch.from_numpy(_inputs())
    return torch.softmax(x @ x.transpose(-2, -1) / 2.0, dim=-1)  # over keys


JAX_KIND = "silent"
JAX_EXPECTED = CheckFailure
JAX_MATCH = MATCH


def jax_broken() -> object:
    import jax
    import jax.numpy as jnp

    x = jnp.asarray(_inputs())
    return jax.nn.softmax(x @ x.swapaxes(-1, -2) / 2.0, axis=1)  # over queries


def jax_fixed() -> object:
    import jax
    import jax.numpy as jnp

    x = jnp.asarray(_inputs())
    return jax.nn.softmax(x @ x.swapaxes(-1, -2) / 2.0, axis=-1)


TF_KIND = "silent"
TF_EXPECTED = CheckFailure
TF_MATCH = MATCH


def tf_broken() -> object:
    import tensorflow as tf

    x = tf.constant(_inputs())
    return tf.nn.softmax(tf.matmul(x, x, transpose_b=True) / 2.0, axis=1)  # over queries


def tf_fixed() -> object:
    import tensorflow as tf

    x = tf.constant(_inputs())
    return tf.nn.softmax(tf.matmul(x, x, transpose_b=True) / 2.0, axis=-1)
