"""A query row whose every key is masked.

What happens:
    The softmax of a row of ``-inf`` is NaN: the row max is ``-inf``, ``-inf - (-inf)`` is
    NaN (NumPy warns ``RuntimeWarning: invalid value encountered in subtract``). The NaN
    row spreads through ``@ v`` into the output and, in training, into every gradient.
    ``torch.softmax``, ``jax.nn.softmax`` and ``tf.nn.softmax`` give NaN too. PyTorch's
    ``F.scaled_dot_product_attention`` returns zeros for such a row (run in the PyTorch
    variant's fix).

Why:
    Padded *queries* (here, example 1's rows 3..5 under a query-and-key padding mask) or a
    causal mask combined with left padding leave rows with nothing to attend to, and
    ``exp(-inf) / 0`` has no value.

Fix:
    Decide what such a row means and say it: zero the rows that have no key
    (``np.where(row_has_key, weights, 0)``, what SDPA does; refattn's
    ``fully_masked="zero"``), or mask padded queries only at the loss.

Sources:
    https://github.com/pytorch/pytorch/issues/41508 NaN gradients when padded rows are fully masked
    https://github.com/pytorch/pytorch/issues/27968 a length-0 example's weights are all NaN
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
    "nan when a sequence is entirely padding",
    "row with every key masked returns nan",
    "empty sequence in the batch gives nan",
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


TORCH_KIND = "nan"
TORCH_EXPECTED = CheckFailure
TORCH_MATCH = MATCH
TORCH_NOTE = (
    "`F.softmax` of the masked scores is NaN, but `F.scaled_dot_product_attention` itself "
    "returns zeros for a fully masked row: the fix below reads SDPA's weights out by "
    "giving it the identity matrix as values."
)


def torch_broken() -> object:
    import torch

    x, pair = (torch.from_numpy(a) for a in _inputs())
    scores = x @ x.transpose(-1, -2) / 2.0
    return torch.softmax(scores.masked_fill(~pair, float("-inf")), dim=-1)


def torch_fixed() -> object:
    import torch
    import torch.nn.functional as F

    x, pair = (torch.from_numpy(a)[:, None] for a in _inputs())  # (B, 1, L, D), (B, 1, L, S)
    eye = torch.eye(x.shape[-2], dtype=x.dtype).expand(x.shape[0], 1, -1, -1)
    return F.scaled_dot_product_attention(x, x, eye, attn_mask=pair)[:, 0]  # the weights


JAX_KIND = "nan"
JAX_EXPECTED = CheckFailure
JAX_MATCH = MATCH


def jax_broken() -> object:
    import jax
    import jax.numpy as jnp

    x, pair = (jnp.asarray(a) for a in _inputs())
    scores = x @ x.swapaxes(-1, -2) / 2.0
    return jax.nn.softmax(jnp.where(pair, scores, -jnp.inf), axis=-1)


def jax_fixed() -> object:
    import jax
    import jax.numpy as jnp

    x, pair = (jnp.asarray(a) for a in _inputs())
    scores = x @ x.swapaxes(-1, -2) / 2.0
    row_has_key = pair.any(axis=-1, keepdims=True)
    safe = jnp.where(row_has_key, jnp.where(pair, scores, -jnp.inf), 0.0)
    return jnp.where(row_has_key, jax.nn.softmax(safe, axis=-1), 0.0)


TF_KIND = "nan"
TF_EXPECTED = CheckFailure
TF_MATCH = MATCH


def tf_broken() -> object:
    import tensorflow as tf

    x, pair = (tf.constant(a) for a in _inputs())
    scores = tf.matmul(x, x, transpose_b=True) / 2.0
    return tf.nn.softmax(tf.where(pair, scores, float("-inf")), axis=-1)


def tf_fixed() -> object:
    import tensorflow as tf

    x, pair = (tf.constant(a) for a in _inputs())
    scores = tf.matmul(x, x, transpose_b=True) / 2.0
    row_has_key = tf.reduce_any(pair, axis=-1, keepdims=True)
    safe = tf.where(row_has_key, tf.where(pair, scores, float("-inf")), 0.0)
    return tf.where(row_has_key, tf.nn.softmax(safe, axis=-1), 0.0)
