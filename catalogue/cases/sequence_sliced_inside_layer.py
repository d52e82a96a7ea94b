"""A layer that shortens its input, meeting the residual connection.

What happens:
    Attention itself runs: ``q``, ``k`` and ``v`` are all cut to 15 positions alike, and it
    returns ``(B, 15, E)``. The error comes one line later, at the residual add
    ``x + attn(x)``: ``ValueError: operands could not be broadcast together with shapes
    (10,20,16) (10,15,16)`` in NumPy, ``RuntimeError: The size of tensor a (20) must match
    the size of tensor b (15) at non-singleton dimension 1`` in PyTorch.

Why:
    Slicing (or resizing) inside the layer changes the sequence length for everything
    computed from it, consistently; only code that still holds the original ``x`` notices.

Fix:
    Don't change the sequence length inside an attention layer. To ignore positions, mask
    them (``key_lengths`` / a key-padding mask) and keep the shape.
"""

import numpy as np

from refattn import attention

from ._common import softmax

KIND = "exception"
EXPECTED = ValueError
MATCH = r"operands could not be broadcast together with shapes \(10,20,16\) \(10,15,16\)"
TAGS = ("kv-length-mismatch", "layout-confusion")
SEED_CLAIMS = (
    (
        "000_acdb1d09df8d8964.txt",
        "Example 3: slicing x = x[:, :x.shape[1]-5, :] inside the layer leads to 'a mismatch "
        "in the size of the query, key, and value matrices' and an exception",
        "False: q, k and v are sliced alike, so attention runs and returns 15 positions "
        "instead of 20 (the article's own try-block prints no error). The mismatch only "
        "surfaces where the output meets the unsliced input, e.g. a residual add.",
    ),
)
MESSAGES = (
    r"operands could not be broadcast together with shapes \(\d+,\d+,\d+\) \(\d+,\d+,\d+\)",
    r"size of tensor a \(\d+\) must match the size of tensor b \(\d+\) at non-singleton "
    r"dimension 1",
    r"add got incompatible shapes for broadcasting: \(\d+, \d+, \d+\), \(\d+, \d+, \d+\)",
)
SYMPTOMS = ("output sequence is shorter than the input", "residual connection shape mismatch")


def _inputs() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((10, 20, 16))  # (B, L, E)
    w = rng.standard_normal((3, 16, 16)) / 4  # query, key and value projections
    return x, w


def _attend(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    q, k, v = x @ w[0], x @ w[1], x @ w[2]
    return softmax(q @ k.transpose(0, 2, 1) / np.sqrt(16)) @ v


# --8<-- [start:broken]
def broken() -> np.ndarray:
    x, w = _inputs()
    out = _attend(x[:, : x.shape[1] - 5], w)  # the layer cuts 5 positions
    return x + out  # residual connection


# --8<-- [end:broken]


# --8<-- [start:fixed]
def fixed() -> np.ndarray:
    x, w = _inputs()
    return x + _attend(x, w)  # same length in and out


# --8<-- [end:fixed]


def reference() -> np.ndarray:
    x, w = _inputs()
    heads = x[:, None]  # (B, 1, L, E)
    return x + attention(heads @ w[0], heads @ w[1], heads @ w[2])[:, 0]


TORCH_EXPECTED = RuntimeError
TORCH_MATCH = r"The size of tensor a \(20\) must match the size of tensor b \(15\)"


def torch_broken() -> object:
    import torch

    x = torch.randn(10, 20, 128)
    cut = x[:, : x.shape[1] - 5, :]
    q, k, v = cut, cut, cut
    out = torch.softmax(q @ k.transpose(-2, -1), dim=-1) @ v
    return x + out


JAX_EXPECTED = TypeError
JAX_MATCH = r"add got incompatible shapes for broadcasting: \(10, 20, 16\), \(10, 15, 16\)"


def jax_broken() -> object:
    import jax
    import jax.numpy as jnp

    x, w = (jnp.asarray(a) for a in _inputs())
    cut = x[:, : x.shape[1] - 5]  # the layer cuts 5 positions
    q, k, v = cut @ w[0], cut @ w[1], cut @ w[2]
    out = jax.nn.softmax(q @ k.swapaxes(-1, -2) / 4.0, axis=-1) @ v
    return x + out  # residual connection


TF_EXPECTED = "tensorflow.errors.InvalidArgumentError"
TF_MATCH = r"Incompatible shapes: \[10,20,16\] vs\. \[10,15,16\] \[Op:AddV2\]"


def tf_broken() -> object:
    import tensorflow as tf

    x, w = (tf.constant(a) for a in _inputs())
    cut = x[:, : x.shape[1] - 5]  # the layer cuts 5 positions
    q, k, v = cut @ w[0], cut @ w[1], cut @ w[2]
    out = tf.nn.softmax(tf.matmul(q, k, transpose_b=True) / 4.0, axis=-1) @ v
    return x + out  # residual connection


def torch_fixed() -> object:
    import torch

    x, w = (torch.from_numpy(a) for a in _inputs())
    q, k, v = x @ w[0], x @ w[1], x @ w[2]  # same length in and out
    return x + torch.softmax(q @ k.transpose(-2, -1) / 4.0, dim=-1) @ v


def jax_fixed() -> object:
    import jax
    import jax.numpy as jnp

    x, w = (jnp.asarray(a) for a in _inputs())
    q, k, v = x @ w[0], x @ w[1], x @ w[2]
    return x + jax.nn.softmax(q @ k.swapaxes(-1, -2) / 4.0, axis=-1) @ v


def tf_fixed() -> object:
    import tensorflow as tf

    x, w = (tf.constant(a) for a in _inputs())
    q, k, v = x @ w[0], x @ w[1], x @ w[2]
    return x + tf.nn.softmax(tf.matmul(q, k, transpose_b=True) / 4.0, axis=-1) @ v
