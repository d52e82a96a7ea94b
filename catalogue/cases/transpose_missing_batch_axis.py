"""A key transpose written for a batch axis, applied to an unbatched key.

What happens:
    ``k.transpose(0, 1, 3, 2)``, written for ``(B, H, S, D)`` keys, raises ``ValueError:
    axes don't match array`` on an unbatched ``(H, S, D)`` key; ``np.swapaxes(k, 2, 3)``
    raises ``numpy.exceptions.AxisError: axis2: axis 3 is out of bounds for array of
    dimension 3``. PyTorch's ``k.transpose(2, 3)`` raises ``IndexError: Dimension out of
    range (expected to be in range of [-3, 2], but got 3)``; JAX's ``k.transpose(0, 1, 3,
    2)`` ``ValueError: axis 3 is out of bounds for array of dimension 3``; TensorFlow's
    ``tf.transpose(k, [0, 1, 3, 2])`` ``InvalidArgumentError: transpose expects a vector of
    size 3. But input(1) is a vector of size 4 [Op:Transpose]``.

Why:
    The code counts axes from the front, so it only works at the rank it was written for.
    A caller that passes one example without its batch axis (or one head without its head
    axis) shifts the key-feature axis from 3 to 2, and axis 3 does not exist. NumPy's
    ``transpose`` needs a permutation of *all* axes.

Fix:
    Swap the last two axes, whatever comes before them: ``k.swapaxes(-1, -2)`` (PyTorch:
    ``k.transpose(-2, -1)``, or ``k.mT``).
"""

import numpy as np

from refattn import attention

from ._common import softmax

KIND = "exception"
EXPECTED = ValueError
MATCH = r"axes don't match array"
TAGS = ("axis-out-of-range", "layout-confusion")
MESSAGES = (
    r"axes don't match array",
    r"Dimension out of range \(expected to be in range of \[-?\d+, -?\d+\], but got -?\d+\)",
    r"axis\d?: axis -?\d+ is out of bounds for array of dimension \d+",
    r"transpose permutation isn't a permutation of operand dimensions",
    r"transpose expects a vector of size \d+\. But input\(1\) is a vector of size \d+",
)
SYMPTOMS = ("transpose fails on a single example", "attention works batched but not unbatched")


def _inputs() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    q, k, v = rng.standard_normal((3, 4, 5, 8))  # (H, S, D) each: one example, no batch axis
    return q, k, v


# --8<-- [start:broken]
def broken() -> np.ndarray:
    q, k, v = _inputs()
    scores = q @ k.transpose(0, 1, 3, 2) / np.sqrt(8)  # written for (B, H, S, D)
    return softmax(scores) @ v


# --8<-- [end:broken]


# --8<-- [start:fixed]
def fixed() -> np.ndarray:
    q, k, v = _inputs()
    scores = q @ k.swapaxes(-1, -2) / np.sqrt(8)  # any number of leading axes
    return softmax(scores) @ v


# --8<-- [end:fixed]


def reference() -> np.ndarray:
    return attention(*_inputs())  # (H, L, D): no batch dims


TORCH_EXPECTED = IndexError
TORCH_MATCH = r"Dimension out of range \(expected to be in range of \[-3, 2\], but got 3\)"


def torch_broken() -> object:
    import torch

    k = torch.randn(4, 5, 8)  # (H, S, D): one example, no batch axis
    return k.transpose(2, 3)  # written for (B, H, S, D)


JAX_EXPECTED = ValueError
JAX_MATCH = r"axis 3 is out of bounds for array of dimension 3"
JAX_NOTE = (
    "JAX names the axis instead of NumPy's 'axes don't match array': k.transpose(0, 1, 3, 2) "
    "on a 3-D key raises ValueError: axis 3 is out of bounds for array of dimension 3."
)


def jax_broken() -> object:
    import jax
    import jax.numpy as jnp

    q, k, v = (jnp.asarray(a) for a in _inputs())
    scores = q @ k.transpose(0, 1, 3, 2) / jnp.sqrt(8.0)  # written for (B, H, S, D)
    return jax.nn.softmax(scores, axis=-1) @ v


def jax_fixed() -> object:
    import jax
    import jax.numpy as jnp

    q, k, v = (jnp.asarray(a) for a in _inputs())
    scores = q @ k.swapaxes(-1, -2) / jnp.sqrt(8.0)
    return jax.nn.softmax(scores, axis=-1) @ v


TF_EXPECTED = "tensorflow.errors.InvalidArgumentError"
TF_MATCH = r"transpose expects a vector of size 3\. But input\(1\) is a vector of size 4"


def tf_broken() -> object:
    import tensorflow as tf

    q, k, v = (tf.constant(a) for a in _inputs())
    scores = q @ tf.transpose(k, [0, 1, 3, 2]) / 8**0.5  # written for (B, H, S, D)
    return tf.nn.softmax(scores, axis=-1) @ v


def tf_fixed() -> object:
    import tensorflow as tf

    q, k, v = (tf.constant(a) for a in _inputs())
    scores = tf.matmul(q, k, transpose_b=True) / 8**0.5  # swaps the last two axes
    return tf.nn.softmax(scores, axis=-1) @ v


def torch_fixed() -> object:
    import torch

    q, k, v = (torch.from_numpy(a) for a in _inputs())
    scores = q @ k.transpose(-2, -1) / 8**0.5  # any number of leading axes
    return torch.softmax(scores, dim=-1) @ v
