"""Scores without the ``1/sqrt(d)`` scale.

What happens:
    No error. With head size 256 and unit-variance queries and keys, the unscaled scores
    have a standard deviation of about 16, and the softmax saturates: each query puts
    almost all its weight on one key (largest weight per row 0.96 on average here,
    against 0.47 with the scale). The gradient through a saturated softmax is close
    to zero, so attention stops learning.

Why:
    A dot product of ``d`` independent unit-variance terms has variance ``d``. Dividing by
    ``sqrt(d)`` brings the scores back to unit variance whatever the head size; dividing by
    the wrong ``d`` (the model width instead of the head size) helps only partly.

Fix:
    ``scores = q @ k.T / np.sqrt(q.shape[-1])`` with the *head* size.

Sources:
    https://github.com/mlc-ai/mlc-llm/pull/3426 (a fallback path without 1/sqrt(d): peaked softmax)
    https://github.com/Graylab/DL4Proteins-notebooks/issues/12 (scaled by the model width)
"""

import numpy as np

from refattn.checks import check_close
from refattn.errors import CheckFailure

from ._common import reference_weights, softmax

KIND = "silent"
EXPECTED = CheckFailure
MATCH = r"weights differs from the reference at \d+ of \d+ entries"
TAGS = ("missing-scale",)
SYMPTOMS = (
    "scale multiplied instead of divided in the attention scores",
    "attention weights are one-hot",
    "attention does not learn, gradients vanish",
    "softmax saturates with large head dimension",
    "scores not divided by the square root of the head dimension",
    "attention is too sharp",
    "attention entropy collapses",
)


def _inputs() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    q, k = rng.standard_normal((2, 2, 6, 256))  # (B, L, D) each, D = 256
    return q, k


# --8<-- [start:broken]
def broken() -> np.ndarray:
    q, k = _inputs()
    return softmax(q @ k.swapaxes(-1, -2))  # std of the scores: sqrt(256) = 16


# --8<-- [end:broken]


# --8<-- [start:fixed]
def fixed() -> np.ndarray:
    q, k = _inputs()
    return softmax(q @ k.swapaxes(-1, -2) / np.sqrt(q.shape[-1]))  # unit variance


# --8<-- [end:fixed]


def reference() -> np.ndarray:
    q, k = _inputs()
    return reference_weights(q, k)


def detect(weights: np.ndarray) -> None:
    check_close(weights, reference(), name="weights")


TORCH_KIND = "silent"
TORCH_EXPECTED = CheckFailure
TORCH_MATCH = MATCH


def torch_broken() -> object:
    import torch

    q, k = (torch.from_numpy(a) for a in _inputs())
    return torch.softmax(q @ k.transpose(-2, -1), dim=-1)  # std of the scores: 16


def torch_fixed() -> object:
    import torch

    q, k = (torch.from_numpy(a) for a in _inputs())
    return torch.softmax(q @ k.transpose(-2, -1) / q.shape[-1] ** 0.5, dim=-1)


JAX_KIND = "silent"
JAX_EXPECTED = CheckFailure
JAX_MATCH = MATCH


def jax_broken() -> object:
    import jax
    import jax.numpy as jnp

    q, k = (jnp.asarray(a) for a in _inputs())
    return jax.nn.softmax(q @ k.swapaxes(-1, -2), axis=-1)


def jax_fixed() -> object:
    import jax
    import jax.numpy as jnp

    q, k = (jnp.asarray(a) for a in _inputs())
    return jax.nn.softmax(q @ k.swapaxes(-1, -2) / jnp.sqrt(q.shape[-1]), axis=-1)


TF_KIND = "silent"
TF_EXPECTED = CheckFailure
TF_MATCH = MATCH


def tf_broken() -> object:
    import tensorflow as tf

    q, k = (tf.constant(a) for a in _inputs())
    return tf.nn.softmax(tf.matmul(q, k, transpose_b=True), axis=-1)


def tf_fixed() -> object:
    import tensorflow as tf

    q, k = (tf.constant(a) for a in _inputs())
    return tf.nn.softmax(tf.matmul(q, k, transpose_b=True) / q.shape[-1] ** 0.5, axis=-1)
