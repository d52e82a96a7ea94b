"""A ``(B, S)`` padding mask given where Keras and JAX want ``(B, T, S)`` / ``(B, N, T, S)``.

What happens:
    ``keras.layers.MultiHeadAttention(num_heads=4, ...)`` takes ``attention_mask`` of shape
    ``(B, T, S)`` and inserts the head axis itself. A token-level padding mask ``(2, 5)``
    becomes ``(1, 1, 2, 5)`` against scores ``(2, 4, 5, 5)``: ``InvalidArgumentError:
    Exception encountered when calling MultiHeadAttention.call(). ... Incompatible shapes:
    [2,4,5,5] vs. [1,1,2,5] [Op:LogicalAnd]``. ``jax.nn.dot_product_attention(mask=...)``
    raises ``TypeError: and got incompatible shapes for broadcasting: (2, 4, 5, 5), (1, 1,
    2, 5).``. The same convention written in NumPy (a Keras-style layer that adds the head
    axis with ``np.expand_dims(mask, -3)``) raises ``ValueError: operands could not be
    broadcast together with shapes (2,4,5,5) (1,2,5)``.

Why:
    Broadcasting aligns from the right, so ``(B, S)`` is read as ``(T, S)``: the batch
    axis meets the query axis. The layer needs to be told that every query of an example
    shares its key mask: a unit query axis.

Fix:
    ``attention_mask = padding_mask[:, None, :]`` (``(B, 1, S)``) for Keras;
    ``mask[:, None, None, :]`` for ``jax.nn.dot_product_attention``; or let Keras derive
    it from an ``Embedding(mask_zero=True)``'s mask (which also gives the padded queries
    all-zero weight rows).

Sources:
    https://github.com/keras-team/keras-hub/issues/783
        ("Incompatible shapes: [2,8,3,3] vs. [2,2,3,3] [Op:AddV2]" from a mask with a
        duplicated new axis)
    https://github.com/tensorflow/tensorflow/issues/58726
        (MultiHeadAttention attention_mask computation: Incompatible shapes ... [Op:AddV2])
    https://github.com/keras-team/keras/issues/21483 (Attention layer issue broadcasting mask)
"""

import numpy as np

from refattn import attention

KIND = "exception"
EXPECTED = ValueError
MATCH = r"operands could not be broadcast together with shapes \(2,4,5,5\) \(1,2,5\)"
TAGS = ("mask-shape",)
MESSAGES = (
    r"Incompatible shapes: \[\d+,\d+,\d+,\d+\] vs\. \[1,1,\d+,\d+\] \[Op:LogicalAnd\]",
    r"and got incompatible shapes for broadcasting: \([\d, ]+\), \(1, 1, \d+, \d+\)",
    r"operands could not be broadcast together with shapes \((\d+),\d+,\d+,(\d+)\) \(1,\1,\2\)",
)
SYMPTOMS = (
    "keras MultiHeadAttention attention_mask shape error with a padding mask",
    "attention_mask of shape (batch, seq_len) fails in MultiHeadAttention",
)
HEADS, KEY_DIM = 4, 2


def _inputs() -> tuple[np.ndarray, np.ndarray]:
    x = np.random.default_rng(0).standard_normal((2, 5, 8))  # (B, T, E)
    keep = np.arange(5) < np.array([[5], [3]])  # (B, S): True = real token
    return x, keep


def _keras_style(x: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
    """Keras' contract in NumPy (identity projections): ``attention_mask`` is ``(B, T, S)``."""
    b, t, e = x.shape
    h = x.reshape(b, t, HEADS, KEY_DIM).transpose(0, 2, 1, 3)  # (B, H, T, d)
    scores = h @ h.swapaxes(-1, -2) / np.sqrt(KEY_DIM)  # (B, H, T, S)
    mask = np.expand_dims(attention_mask, axis=-3)  # the layer adds the head axis
    scores = np.where(np.logical_and(np.ones(scores.shape, bool), mask), scores, -np.inf)
    weights = np.exp(scores - scores.max(-1, keepdims=True))
    out = weights / weights.sum(-1, keepdims=True) @ h
    return out.transpose(0, 2, 1, 3).reshape(b, t, e)


# --8<-- [start:broken]
def broken() -> np.ndarray:
    x, keep = _inputs()
    return _keras_style(x, attention_mask=keep)  # (B, S)


# --8<-- [end:broken]


# --8<-- [start:fixed]
def fixed() -> np.ndarray:
    x, keep = _inputs()
    return _keras_style(x, attention_mask=keep[:, None, :])  # (B, 1, S): every query


# --8<-- [end:fixed]


def reference() -> np.ndarray:
    x, keep = _inputs()
    h = x.reshape(2, 5, HEADS, KEY_DIM).transpose(0, 2, 1, 3)
    out = attention(h, h, h, attend_mask=keep[:, None, None, :])
    return out.transpose(0, 2, 1, 3).reshape(2, 5, 8)


TF_EXPECTED = "tensorflow.errors.InvalidArgumentError"
TF_MATCH = r"Incompatible shapes: \[2,4,5,5\] vs\. \[1,1,2,5\] \[Op:LogicalAnd\]"


def _keras_mha(mask: np.ndarray) -> object:
    import tensorflow as tf

    x, _ = _inputs()
    mha = tf.keras.layers.MultiHeadAttention(num_heads=HEADS, key_dim=KEY_DIM)
    mha(tf.constant(x), tf.constant(x))  # build, then identity projections
    eye = np.eye(8)
    split, bias = eye.reshape(8, HEADS, KEY_DIM), np.zeros((HEADS, KEY_DIM))
    out_kernel = eye.reshape(HEADS, KEY_DIM, 8)
    mha.set_weights([split, bias, split, bias, split, bias, out_kernel, np.zeros(8)])
    return mha(tf.constant(x), tf.constant(x), attention_mask=tf.constant(mask))


def tf_broken() -> object:
    _, keep = _inputs()
    return _keras_mha(keep)  # (B, S)


def tf_fixed() -> object:
    _, keep = _inputs()
    return _keras_mha(keep[:, None, :])  # (B, 1, S)


JAX_EXPECTED = TypeError
JAX_MATCH = r"and got incompatible shapes for broadcasting: \(2, 4, 5, 5\), \(1, 1, 2, 5\)\."


def jax_broken() -> object:
    import jax
    import jax.numpy as jnp

    x, keep = _inputs()
    h = jnp.asarray(x).reshape(2, 5, HEADS, KEY_DIM)  # (B, T, N, H)
    return jax.nn.dot_product_attention(h, h, h, mask=jnp.asarray(keep))


def jax_fixed() -> object:
    import jax
    import jax.numpy as jnp

    x, keep = _inputs()
    h = jnp.asarray(x).reshape(2, 5, HEADS, KEY_DIM)
    out = jax.nn.dot_product_attention(h, h, h, mask=jnp.asarray(keep)[:, None, None, :])
    return out.reshape(2, 5, 8)
