"""NaN in the padded positions of the values.

What happens:
    The padded keys are masked correctly and get weight exactly 0, yet every output row
    of the padded example is NaN: ``weights @ v`` computes ``0 * NaN`` for the padded rows
    of ``v``, and that is NaN. Here the NaN came from normalising the all-zero padding vectors
    (``v / np.linalg.norm(v)``, 0/0).

Why:
    Masking removes padding from the softmax, not from the arithmetic: the matrix product
    still multiplies every value row by its weight. Any NaN or inf in padding (0/0 in a
    normalisation, ``np.empty`` buffers, a log of 0) reaches every query.

Fix:
    Zero the padded positions of ``v`` (and ``k``) before attention:
    ``np.where(valid[..., None], v, 0.0)``, or avoid producing NaN there (``norm +
    eps``).

Sources:
    https://github.com/pytorch/pytorch/issues/101967 (SDPA NaN from NaN in masked positions)
    https://github.com/pytorch/pytorch/issues/41508 (0 * NaN = NaN through the attention bmm)
"""

import numpy as np

from refattn import attention
from refattn.checks import check_finite
from refattn.errors import CheckFailure

from ._common import softmax

KIND = "nan"
EXPECTED = CheckFailure
MATCH = r"output has \d+ NaN"
TAGS = ("nan-in-padding",)
SYMPTOMS = (
    "nan output even though padding is masked",
    "nan in attention output only for padded batches",
)


def _inputs() -> tuple[np.ndarray, np.ndarray]:
    x = np.random.default_rng(0).standard_normal((2, 5, 4))  # (B, L, D)
    valid = np.arange(5) < np.array([[3], [5]])  # (B, S)
    x[~valid] = 0.0  # zero padding
    return x, valid


# --8<-- [start:broken]
def broken() -> np.ndarray:
    x, valid = _inputs()
    with np.errstate(invalid="ignore"):  # NumPy warns: invalid value in divide
        v = x / np.linalg.norm(x, axis=-1, keepdims=True)  # padding: 0 / 0 = NaN
    scores = np.where(valid[:, None, :], x @ x.swapaxes(-1, -2) / 2.0, -np.inf)
    return softmax(scores) @ v  # weight 0 * NaN = NaN


# --8<-- [end:broken]


# --8<-- [start:fixed]
def fixed() -> np.ndarray:
    x, valid = _inputs()
    with np.errstate(invalid="ignore"):
        v = x / np.linalg.norm(x, axis=-1, keepdims=True)
    v = np.where(valid[..., None], v, 0.0)  # padding zeroed
    scores = np.where(valid[:, None, :], x @ x.swapaxes(-1, -2) / 2.0, -np.inf)
    return softmax(scores) @ v


# --8<-- [end:fixed]


def reference() -> np.ndarray:
    x, valid = _inputs()
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    v = np.where(valid[..., None], x / np.where(valid[..., None], norm, 1.0), 0.0)
    return attention(x[:, None], x[:, None], v[:, None], key_lengths=valid.sum(-1))[:, 0]


def detect(output: np.ndarray) -> None:
    check_finite(output)


TORCH_KIND = "nan"
TORCH_EXPECTED = CheckFailure
TORCH_MATCH = MATCH


def torch_broken() -> object:
    import torch

    x, valid = (torch.from_numpy(a) for a in _inputs())
    v = x / x.norm(dim=-1, keepdim=True)  # padding: 0 / 0 = NaN, no warning
    scores = (x @ x.transpose(-2, -1) / 2.0).masked_fill(~valid[:, None, :], float("-inf"))
    return torch.softmax(scores, dim=-1) @ v  # weight 0 * NaN = NaN


def torch_fixed() -> object:
    import torch

    x, valid = (torch.from_numpy(a) for a in _inputs())
    v = (x / x.norm(dim=-1, keepdim=True)).masked_fill(~valid[..., None], 0.0)
    scores = (x @ x.transpose(-2, -1) / 2.0).masked_fill(~valid[:, None, :], float("-inf"))
    return torch.softmax(scores, dim=-1) @ v


JAX_KIND = "nan"
JAX_EXPECTED = CheckFailure
JAX_MATCH = MATCH


def jax_broken() -> object:
    import jax
    import jax.numpy as jnp

    x, valid = (jnp.asarray(a) for a in _inputs())
    v = x / jnp.linalg.norm(x, axis=-1, keepdims=True)  # padding: 0 / 0 = NaN
    scores = jnp.where(valid[:, None, :], x @ x.swapaxes(-1, -2) / 2.0, -jnp.inf)
    return jax.nn.softmax(scores, axis=-1) @ v


def jax_fixed() -> object:
    import jax
    import jax.numpy as jnp

    x, valid = (jnp.asarray(a) for a in _inputs())
    v = jnp.where(valid[..., None], x / jnp.linalg.norm(x, axis=-1, keepdims=True), 0.0)
    scores = jnp.where(valid[:, None, :], x @ x.swapaxes(-1, -2) / 2.0, -jnp.inf)
    return jax.nn.softmax(scores, axis=-1) @ v


TF_KIND = "nan"
TF_EXPECTED = CheckFailure
TF_MATCH = MATCH


def tf_broken() -> object:
    import tensorflow as tf

    x, valid = (tf.constant(a) for a in _inputs())
    v = x / tf.norm(x, axis=-1, keepdims=True)  # padding: 0 / 0 = NaN
    scores = tf.where(valid[:, None, :], tf.matmul(x, x, transpose_b=True) / 2.0, -float("inf"))
    return tf.nn.softmax(scores, axis=-1) @ v  # weight 0 * NaN = NaN


def tf_fixed() -> object:
    import tensorflow as tf

    x, valid = (tf.constant(a) for a in _inputs())
    v = tf.where(valid[..., None], x / tf.norm(x, axis=-1, keepdims=True), 0.0)
    scores = tf.where(valid[:, None, :], tf.matmul(x, x, transpose_b=True) / 2.0, -float("inf"))
    return tf.nn.softmax(scores, axis=-1) @ v
