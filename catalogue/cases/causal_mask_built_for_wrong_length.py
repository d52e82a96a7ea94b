"""A causal mask built for the maximum length, used on a shorter sequence.

What happens:
    ``np.where(causal, scores, -np.inf)`` with a ``(16, 16)`` mask and ``(2, 10, 10)``
    scores raises ``ValueError: operands could not be broadcast together with shapes
    (16,16) (2,10,10) ()``. In PyTorch, ``masked_fill`` with the registered ``(1, 1, 16,
    16)`` buffer raises ``RuntimeError: The size of tensor a (16) must match the size of
    tensor b (10) at non-singleton dimension 3``; ``jnp.where`` raises ``ValueError:
    Incompatible shapes for broadcasting: shapes=[(16, 16), (2, 10, 10), ()]`` and
    ``tf.where`` ``InvalidArgumentError: condition [16,16], then [2,10,10], and else []
    must be broadcastable [Op:SelectV2]``.

Why:
    The mask is built once, for ``max_len`` (a registered buffer in nanoGPT-style code),
    and each call must cut it to the current length; shorter batches or generation steps
    bring a different ``L``.

Fix:
    Slice it: ``causal[:L, :L]`` (``self.bias[:, :, :T, :T]`` in nanoGPT), or build the mask
    from the current shapes.

Sources:
    https://github.com/bentrevett/pytorch-seq2seq/issues/130 masked_fill: tensor a (1024) vs b (512)
"""

import numpy as np

from ._common import reference_weights, softmax

KIND = "exception"
EXPECTED = ValueError
MATCH = r"operands could not be broadcast together with shapes \(16,16\) \(2,10,10\)"
TAGS = ("causal-alignment", "mask-shape")
MESSAGES = (
    r"operands could not be broadcast together with shapes \((\d+),\1\) ",
    r"size of tensor a \(\d+\) must match the size of tensor b \(\d+\) at non-singleton "
    r"dimension 3",
    r"Incompatible shapes for broadcasting: shapes=\[\((\d+), \1\), ",
    r"condition \[(\d+),\1\], then \[[\d,]+\], and else \[\] must be broadcastable",
)
SYMPTOMS = (
    "causal mask shape error for shorter sequences",
    "works at full length but fails on a shorter batch",
    "generation fails after the first step with a size mismatch",
    "mask built for the maximum length does not match the input length",
    "causal mask buffer not sliced to the sequence length",
)

MAX_LEN = 16


def _inputs() -> tuple[np.ndarray, np.ndarray]:
    x = np.random.default_rng(0).standard_normal((2, 10, 4))  # (B, L, D): L = 10
    causal = np.tril(np.ones((MAX_LEN, MAX_LEN), dtype=bool))  # built once for max_len
    return x, causal


# --8<-- [start:broken]
def broken() -> np.ndarray:
    x, causal = _inputs()
    scores = x @ x.swapaxes(-1, -2) / np.sqrt(4)  # (B, 10, 10)
    return softmax(np.where(causal, scores, -np.inf))


# --8<-- [end:broken]


# --8<-- [start:fixed]
def fixed() -> np.ndarray:
    x, causal = _inputs()
    length = x.shape[1]
    scores = x @ x.swapaxes(-1, -2) / np.sqrt(4)
    return softmax(np.where(causal[:length, :length], scores, -np.inf))


# --8<-- [end:fixed]


def reference() -> np.ndarray:
    x = _inputs()[0]
    return reference_weights(x, x, causal="top_left")


TORCH_EXPECTED = RuntimeError
TORCH_MATCH = r"The size of tensor a \(16\) must match the size of tensor b \(10\) at non-singleton"


def torch_broken() -> object:
    import torch

    bias = torch.tril(torch.ones(MAX_LEN, MAX_LEN, dtype=torch.bool))[None, None]
    scores = torch.randn(2, 4, 10, 10)  # (B, H, L, L)
    return scores.masked_fill(~bias, float("-inf"))


def torch_fixed() -> object:
    import torch

    x = torch.from_numpy(_inputs()[0])
    bias = torch.tril(torch.ones(MAX_LEN, MAX_LEN, dtype=torch.bool))[None]  # registered once
    length = x.shape[1]
    scores = x @ x.transpose(-1, -2) / 2.0
    return torch.softmax(scores.masked_fill(~bias[:, :length, :length], float("-inf")), -1)


JAX_EXPECTED = ValueError
JAX_MATCH = r"Incompatible shapes for broadcasting: shapes=\[\(16, 16\), \(2, 10, 10\), \(\)\]"


def jax_broken() -> object:
    import jax
    import jax.numpy as jnp

    x = jnp.asarray(_inputs()[0])  # (B, 10, D)
    causal = jnp.tril(jnp.ones((MAX_LEN, MAX_LEN), dtype=bool))  # built for max_len
    scores = x @ x.swapaxes(-1, -2) / 2.0
    return jax.nn.softmax(jnp.where(causal, scores, -jnp.inf), axis=-1)


def jax_fixed() -> object:
    import jax
    import jax.numpy as jnp

    x = jnp.asarray(_inputs()[0])
    causal = jnp.tril(jnp.ones((MAX_LEN, MAX_LEN), dtype=bool))
    length = x.shape[1]
    scores = x @ x.swapaxes(-1, -2) / 2.0
    return jax.nn.softmax(jnp.where(causal[:length, :length], scores, -jnp.inf), axis=-1)


TF_EXPECTED = "tensorflow.errors.InvalidArgumentError"
TF_MATCH = r"condition \[16,16\], then \[2,10,10\], and else \[\] must be broadcastable"


def tf_broken() -> object:
    import tensorflow as tf

    x = tf.constant(_inputs()[0])  # (B, 10, D)
    causal = tf.linalg.band_part(tf.ones((MAX_LEN, MAX_LEN)), -1, 0) > 0  # built for max_len
    scores = tf.matmul(x, x, transpose_b=True) / 2.0
    return tf.nn.softmax(tf.where(causal, scores, float("-inf")), axis=-1)


def tf_fixed() -> object:
    import tensorflow as tf

    x = tf.constant(_inputs()[0])
    causal = tf.linalg.band_part(tf.ones((MAX_LEN, MAX_LEN)), -1, 0) > 0
    length = x.shape[1]
    scores = tf.matmul(x, x, transpose_b=True) / 2.0
    return tf.nn.softmax(tf.where(causal[:length, :length], scores, float("-inf")), axis=-1)
