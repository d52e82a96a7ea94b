"""A decoder without a causal mask.

What happens:
    No error. Each position attends to the positions after it: here query 0 puts 80 % of
    its weight on later keys, and all 15 future pairs get weight. In training, position
    ``i`` can read token ``i + 1``, the one it is asked to predict, so the loss looks too
    good; at generation time those tokens do not exist yet.

Why:
    Self-attention is symmetric in time unless a mask removes keys after the query. An
    autoregressive model needs query ``i`` to see keys ``0 .. i`` only.

Fix:
    Mask with ``np.tril(np.ones((L, S), bool))`` (or ``is_causal=True`` in PyTorch's SDPA;
    refattn: ``causal="top_left"``, or ``"bottom_right"`` when decoding with a cache).
"""

import numpy as np

from refattn.checks import check_no_weight_on_masked
from refattn.errors import CheckFailure

from ._common import reference_weights, softmax

KIND = "silent"
EXPECTED = CheckFailure
MATCH = r"masked \(query, key\) pairs got attention weight"
TAGS = ("mask-missing",)
SYMPTOMS = (
    "training loss is suspiciously low but generation is garbage",
    "decoder attends to future tokens",
    "model sees the next token during training",
    "no causal mask in the decoder",
    "validation loss near zero but generation is bad",
)


def _inputs() -> np.ndarray:
    return np.random.default_rng(0).standard_normal((1, 6, 4))  # (B, L, D)


# --8<-- [start:broken]
def broken() -> np.ndarray:
    x = _inputs()
    scores = x @ x.swapaxes(-1, -2) / np.sqrt(4)  # (B, L, L)
    return softmax(scores)  # no causal mask


# --8<-- [end:broken]


# --8<-- [start:fixed]
def fixed() -> np.ndarray:
    x = _inputs()
    scores = x @ x.swapaxes(-1, -2) / np.sqrt(4)
    causal = np.tril(np.ones((6, 6), dtype=bool))  # query i sees keys 0..i
    return softmax(np.where(causal, scores, -np.inf))


# --8<-- [end:fixed]


def reference() -> np.ndarray:
    x = _inputs()
    return reference_weights(x, x, causal="top_left")


def detect(weights: np.ndarray) -> None:
    check_no_weight_on_masked(weights, np.tril(np.ones((6, 6), dtype=bool)))


TORCH_KIND = "silent"
TORCH_EXPECTED = CheckFailure
TORCH_MATCH = MATCH
TORCH_NOTE = (
    "Nothing in PyTorch flags it: `F.scaled_dot_product_attention` is unmasked unless "
    "given `is_causal=True` or a mask. The fix reads SDPA's weights out with identity values."
)


def torch_broken() -> object:
    import torch

    x = torch.from_numpy(_inputs())
    return torch.softmax(x @ x.transpose(-1, -2) / 2.0, dim=-1)  # no causal mask


def torch_fixed() -> object:
    import torch
    import torch.nn.functional as F

    x = torch.from_numpy(_inputs())[:, None]  # (B, 1, L, D)
    eye = torch.eye(6, dtype=x.dtype).expand(1, 1, 6, 6)
    return F.scaled_dot_product_attention(x, x, eye, is_causal=True)[:, 0]  # the weights


JAX_KIND = "silent"
JAX_EXPECTED = CheckFailure
JAX_MATCH = MATCH


def jax_broken() -> object:
    import jax
    import jax.numpy as jnp

    x = jnp.asarray(_inputs())
    return jax.nn.softmax(x @ x.swapaxes(-1, -2) / 2.0, axis=-1)


def jax_fixed() -> object:
    import jax
    import jax.numpy as jnp

    x = jnp.asarray(_inputs())
    causal = jnp.tril(jnp.ones((6, 6), dtype=bool))
    return jax.nn.softmax(jnp.where(causal, x @ x.swapaxes(-1, -2) / 2.0, -jnp.inf), axis=-1)


TF_KIND = "silent"
TF_EXPECTED = CheckFailure
TF_MATCH = MATCH


def tf_broken() -> object:
    import tensorflow as tf

    x = tf.constant(_inputs())
    return tf.nn.softmax(tf.matmul(x, x, transpose_b=True) / 2.0, axis=-1)  # no causal mask


def tf_fixed() -> object:
    import tensorflow as tf

    x = tf.constant(_inputs())
    causal = tf.linalg.band_part(tf.ones((6, 6)), -1, 0) > 0  # lower triangle
    scores = tf.matmul(x, x, transpose_b=True) / 2.0
    return tf.nn.softmax(tf.where(causal, scores, float("-inf")), axis=-1)
