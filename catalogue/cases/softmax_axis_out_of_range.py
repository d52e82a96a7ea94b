"""A softmax over axis 3 of three-dimensional scores.

What happens:
    ``scores.max(axis=3, keepdims=True)`` on ``(B, L, S)`` scores raises
    ``numpy.exceptions.AxisError: axis 3 is out of bounds for array of dimension 3`` (an
    ``AxisError`` is both a ``ValueError`` and an ``IndexError``). PyTorch's
    ``torch.softmax(scores, dim=3)`` raises ``IndexError: Dimension out of range (expected
    to be in range of [-3, 2], but got 3)``; ``jax.nn.softmax(scores, axis=3)`` a
    ``ValueError: axis 3 is out of bounds for array of dimension 3`` (NumPy's wording, a
    plain ``ValueError``); ``tf.nn.softmax(scores, axis=3)`` an ``InvalidArgumentError:
    `dim` must be in the range [-3, 3) where 3 is the number of dimensions in the input.
    Received: dim=3``. Each names the axis and the number of dimensions; none says
    "rank".

Why:
    The softmax was written for ``(B, H, L, S)`` scores with a head axis, and called on
    single-head scores without one. Counting axes from the front ties the code to one rank.

Fix:
    Softmax over ``axis=-1``: the key axis is last whatever the leading axes are.
"""

import numpy as np

from refattn import attention

KIND = "exception"
EXPECTED = np.exceptions.AxisError
MATCH = r"axis 3 is out of bounds for array of dimension 3"
TAGS = ("axis-out-of-range",)
MESSAGES = (
    r"axis -?\d+ is out of bounds for array of dimension \d+",
    r"Dimension out of range \(expected to be in range of \[-?\d+, -?\d+\], but got -?\d+\)",
    r"`dim` must be in the range \[-?\d+, \d+\) where \d+ is the number of dimensions",
    r"Invalid reduction dimension \(-?\d+ for input with \d+ dimension\(s\)",
)
SYMPTOMS = ("softmax dim out of range",)


def _inputs() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    q, k, v = rng.standard_normal((3, 2, 5, 8))  # (B, L, D): no head axis
    return q, k, v


# --8<-- [start:broken]
def broken() -> np.ndarray:
    q, k, v = _inputs()
    scores = q @ k.swapaxes(-1, -2) / np.sqrt(8)  # (B, L, S)
    e = np.exp(scores - scores.max(axis=3, keepdims=True))  # written for (B, H, L, S)
    return e / e.sum(axis=3, keepdims=True) @ v


# --8<-- [end:broken]


# --8<-- [start:fixed]
def fixed() -> np.ndarray:
    q, k, v = _inputs()
    scores = q @ k.swapaxes(-1, -2) / np.sqrt(8)
    e = np.exp(scores - scores.max(axis=-1, keepdims=True))  # the key axis is last
    return e / e.sum(axis=-1, keepdims=True) @ v


# --8<-- [end:fixed]


def reference() -> np.ndarray:
    q, k, v = _inputs()
    return attention(q[:, None], k[:, None], v[:, None])[:, 0]


TORCH_EXPECTED = IndexError
TORCH_MATCH = r"Dimension out of range \(expected to be in range of \[-3, 2\], but got 3\)"


def torch_broken() -> object:
    import torch

    scores = torch.randn(2, 5, 5)
    return torch.softmax(scores, dim=3)


JAX_EXPECTED = ValueError
JAX_MATCH = r"axis 3 is out of bounds for array of dimension 3"


def jax_broken() -> object:
    import jax
    import jax.numpy as jnp

    q, k, v = (jnp.asarray(a) for a in _inputs())
    scores = q @ k.swapaxes(-1, -2) / jnp.sqrt(8.0)  # (B, L, S)
    return jax.nn.softmax(scores, axis=3) @ v  # written for (B, H, L, S)


def jax_fixed() -> object:
    import jax
    import jax.numpy as jnp

    q, k, v = (jnp.asarray(a) for a in _inputs())
    scores = q @ k.swapaxes(-1, -2) / jnp.sqrt(8.0)
    return jax.nn.softmax(scores, axis=-1) @ v


TF_EXPECTED = "tensorflow.errors.InvalidArgumentError"
TF_MATCH = (
    r"`dim` must be in the range \[-3, 3\) where 3 is the number of dimensions in the input\. "
    r"Received: dim=3"
)


def tf_broken() -> object:
    import tensorflow as tf

    q, k, v = (tf.constant(a) for a in _inputs())
    scores = tf.matmul(q, k, transpose_b=True) / 8**0.5  # (B, L, S)
    return tf.nn.softmax(scores, axis=3) @ v  # written for (B, H, L, S)


def tf_fixed() -> object:
    import tensorflow as tf

    q, k, v = (tf.constant(a) for a in _inputs())
    scores = tf.matmul(q, k, transpose_b=True) / 8**0.5
    return tf.nn.softmax(scores, axis=-1) @ v


def torch_fixed() -> object:
    import torch

    q, k, v = (torch.from_numpy(a) for a in _inputs())
    scores = q @ k.transpose(-2, -1) / 8**0.5
    return torch.softmax(scores, dim=-1) @ v  # the key axis is last
