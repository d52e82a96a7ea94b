"""The padding mask multiplied into the values instead of the scores.

What happens:
    No error. ``v * keep[..., None]`` zeroes the padded value vectors, but the softmax still
    gives the padded keys their share of the weight. That share now multiplies zeros, so
    each output is shrunk towards zero by the weight the padding took.

Why:
    Masking decides *who gets weight*, which happens in the scores. Zeroing values changes
    what the padding contributes, not how much attention it takes from the real tokens.

Fix:
    Mask the scores before the softmax: ``np.where(keep[:, None, :], scores, -np.inf)``.

Sources:
    https://github.com/ilivans/tf-rnn-attention/issues/11 zero states at padding, softmax unmasked
"""

import numpy as np

from refattn import attention
from refattn.checks import check_close
from refattn.errors import CheckFailure

from ._common import softmax

KIND = "silent"
EXPECTED = CheckFailure
MATCH = r"output differs from the reference at \d+ of \d+ entries"
TAGS = ("mask-after-softmax", "mask-missing")
SYMPTOMS = (
    "outputs of padded examples are smaller",
    "masking the values does not work",
    "padded keys still get attention weight",
)


def _inputs() -> tuple[np.ndarray, np.ndarray]:
    x = np.random.default_rng(0).standard_normal((2, 6, 4))  # (B, L, D)
    keep = np.arange(6) < np.array([[4], [6]])  # (B, S)
    return x, keep


# --8<-- [start:broken]
def broken() -> np.ndarray:
    x, keep = _inputs()
    v = x * keep[..., None]  # padded values zeroed
    return softmax(x @ x.swapaxes(-1, -2) / np.sqrt(4)) @ v  # scores unmasked


# --8<-- [end:broken]


# --8<-- [start:fixed]
def fixed() -> np.ndarray:
    x, keep = _inputs()
    scores = x @ x.swapaxes(-1, -2) / np.sqrt(4)
    return softmax(np.where(keep[:, None, :], scores, -np.inf)) @ x


# --8<-- [end:fixed]


def reference() -> np.ndarray:
    x, keep = _inputs()
    h = x[:, None]
    return attention(h, h, h, key_lengths=keep.sum(-1))[:, 0]


def detect(output: np.ndarray) -> None:
    check_close(output, reference())


TORCH_KIND = "silent"
TORCH_EXPECTED = CheckFailure
TORCH_MATCH = MATCH


def torch_broken() -> object:
    import torch.nn.functional as F
    from torch import from_numpy

    x, keep = (from_numpy(a) for a in _inputs())
    v = x * keep[..., None]  # padded values zeroed
    return F.scaled_dot_product_attention(x, x, v)  # no attn_mask


def torch_fixed() -> object:
    import torch.nn.functional as F
    from torch import from_numpy

    x, keep = (from_numpy(a) for a in _inputs())
    return F.scaled_dot_product_attention(x, x, x, attn_mask=keep[:, None, :])  # True = attend


JAX_KIND = "silent"
JAX_EXPECTED = CheckFailure
JAX_MATCH = MATCH


def jax_broken() -> object:
    import jax
    import jax.numpy as jnp

    x, keep = (jnp.asarray(a)[:, :, None] for a in _inputs())  # (B, T, N=1, H)
    v = x * keep[..., None]
    return jax.nn.dot_product_attention(x, x, v)[:, :, 0]  # no mask


def jax_fixed() -> object:
    import jax
    import jax.numpy as jnp

    x, keep = (jnp.asarray(a) for a in _inputs())
    h = x[:, :, None]  # (B, T, N=1, H)
    mask = keep[:, None, None, :]  # (B, N, T, S): True = attend
    return jax.nn.dot_product_attention(h, h, h, mask=mask)[:, :, 0]


TF_KIND = "silent"
TF_EXPECTED = CheckFailure
TF_MATCH = MATCH


def tf_broken() -> object:
    import tensorflow as tf

    x, keep = (tf.constant(a) for a in _inputs())
    v = x * tf.cast(keep[..., None], x.dtype)  # padded values zeroed
    weights = tf.nn.softmax(tf.matmul(x, x, transpose_b=True) / 2.0, axis=-1)  # unmasked
    return tf.matmul(weights, v)


def tf_fixed() -> object:
    import tensorflow as tf

    x, keep = (tf.constant(a) for a in _inputs())
    scores = tf.matmul(x, x, transpose_b=True) / 2.0
    weights = tf.nn.softmax(tf.where(keep[:, None, :], scores, float("-inf")), axis=-1)
    return tf.matmul(weights, x)
