"""Keys and values of different lengths.

What happens:
    ``weights @ v`` raises ``ValueError: matmul: Input operand 1 has a mismatch in its core
    dimension 0 ... (size 12 is different from 16)``: the weights have one column per key
    (16), the values one row per position (12). PyTorch's ``torch.matmul`` raises
    ``RuntimeError: Expected size for first two dimensions of batch2 tensor to be: [2, 16]
    but got: [2, 12]``, ``nn.MultiheadAttention`` an ``AssertionError: key shape ... does
    not match value shape ...``; JAX ``TypeError: dot_general requires contracting
    dimensions to have the same shape, got (16,) and (12,).``; TensorFlow
    ``InvalidArgumentError: Matrix size-incompatible: In[0]: [2,5,16], In[1]: [2,12,8]``.
    But ``F.scaled_dot_product_attention`` on these shapes as 4-D CPU inputs returned a
    result without complaint (torch 2.13); only with the math backend forced
    (``sdpa_kernel(SDPBackend.MATH)``) does it raise, so refattn refuses such inputs by
    name.

Why:
    Each key scores one value: ``S`` must be the same for both. Here the values were
    truncated to a different ``max_len`` than the keys (or padded separately).

Fix:
    Slice, pad and cache keys and values together, from the same positions.
"""

import numpy as np

from refattn import attention

from ._common import softmax

KIND = "exception"
EXPECTED = ValueError
MATCH = r"mismatch in its core dimension 0.*\(size 12 is different from 16\)"
TAGS = ("kv-length-mismatch",)
MESSAGES = (
    r"mismatch in its core dimension 0.*\(size \d+ is different from \d+\)",
    r"Expected size for first two dimensions of batch2 tensor",
    r"key shape .* does not match value shape",
    r"value shape should be \[[\d, ]+\]: but got",
    r"dot_general requires contracting dimensions to have the same shape",
    r"value length should equal key's S=\d+",
    r"Matrix size-incompatible: In\[0\]: \[[\d,]+\], In\[1\]: \[[\d,]+\]",
)
SYMPTOMS = ("keys and values have different lengths",)


def _inputs() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    q = rng.standard_normal((2, 5, 8))  # (B, L, D)
    k = rng.standard_normal((2, 16, 8))  # (B, S, D)
    v = rng.standard_normal((2, 16, 8))  # (B, S, Dv)
    return q, k, v


# --8<-- [start:broken]
def broken() -> np.ndarray:
    q, k, v = _inputs()
    v = v[:, :12]  # values truncated to another max_len than the keys
    return softmax(q @ k.swapaxes(-1, -2) / np.sqrt(8)) @ v


# --8<-- [end:broken]


# --8<-- [start:fixed]
def fixed() -> np.ndarray:
    q, k, v = _inputs()
    k, v = k[:, :12], v[:, :12]  # keys and values cut together
    return softmax(q @ k.swapaxes(-1, -2) / np.sqrt(8)) @ v


# --8<-- [end:fixed]


def reference() -> np.ndarray:
    q, k, v = _inputs()
    return attention(q[:, None], k[:, None, :12], v[:, None, :12])[:, 0]


TORCH_EXPECTED = RuntimeError
TORCH_MATCH = r"Expected size for first two dimensions of batch2 tensor to be: \[2, 16\]"


def torch_broken() -> object:
    import torch

    weights = torch.softmax(torch.randn(2, 5, 16), dim=-1)  # (B, L, S)
    v = torch.randn(2, 12, 8)  # (B, S', Dv)
    return torch.matmul(weights, v)


JAX_EXPECTED = TypeError
JAX_MATCH = (
    r"dot_general requires contracting dimensions to have the same shape, got \(16,\) and "
    r"\(12,\)"
)


def jax_broken() -> object:
    import jax
    import jax.numpy as jnp

    q, k, v = (jnp.asarray(a) for a in _inputs())
    v = v[:, :12]  # values truncated to another max_len than the keys
    return jax.nn.softmax(q @ k.swapaxes(-1, -2) / jnp.sqrt(8.0), axis=-1) @ v


def jax_fixed() -> object:
    import jax
    import jax.numpy as jnp

    q, k, v = (jnp.asarray(a) for a in _inputs())
    k, v = k[:, :12], v[:, :12]  # keys and values cut together
    return jax.nn.softmax(q @ k.swapaxes(-1, -2) / jnp.sqrt(8.0), axis=-1) @ v


TF_EXPECTED = "tensorflow.errors.InvalidArgumentError"
TF_MATCH = r"Matrix size-incompatible: In\[0\]: \[2,5,16\], In\[1\]: \[2,12,8\]"


def tf_broken() -> object:
    import tensorflow as tf

    q, k, v = (tf.constant(a) for a in _inputs())
    v = v[:, :12]  # values truncated to another max_len than the keys
    return tf.nn.softmax(tf.matmul(q, k, transpose_b=True) / 8**0.5, axis=-1) @ v


def tf_fixed() -> object:
    import tensorflow as tf

    q, k, v = (tf.constant(a) for a in _inputs())
    k, v = k[:, :12], v[:, :12]  # keys and values cut together
    return tf.nn.softmax(tf.matmul(q, k, transpose_b=True) / 8**0.5, axis=-1) @ v


def torch_fixed() -> object:
    import torch

    q, k, v = (torch.from_numpy(a) for a in _inputs())
    k, v = k[:, :12], v[:, :12]  # keys and values cut together
    return torch.matmul(torch.softmax(q @ k.transpose(-2, -1) / 8**0.5, dim=-1), v)
