"""Query and key projections with different output sizes.

What happens:
    ``q @ k.T`` raises: NumPy a ``ValueError`` from ``matmul`` naming a core-dimension
    mismatch, PyTorch a ``RuntimeError`` about the batch2 tensor's size.

Why:
    ``Q·Kᵀ`` contracts the feature axis, so the query and key projections must produce
    the same number of features. A key projection built with the value size (128) next
    to a query projection of size 64 cannot be multiplied.

Fix:
    Give the key projection the query's output size (``key_dim``); only the value
    projection may differ (``Dv``).
"""

import numpy as np

from refattn import attention

KIND = "exception"
EXPECTED = ValueError
MATCH = r"matmul: Input operand 1 has a mismatch in its core dimension 0"
TAGS = ("qk-dim-mismatch",)
SEED_CLAIMS = (
    (
        "000_acdb1d09df8d8964.txt",
        "Example 1: a key projection of size 128 next to a query of 64 makes torch.matmul "
        "raise a runtime error",
        "True: torch raises RuntimeError ('Expected size for first two dimensions of batch2 "
        "tensor'); NumPy raises ValueError from matmul.",
    ),
)
MESSAGES = (
    r"mismatch in its core dimension 0.*\(size \d+ is different from \d+\)",
    r"Expected size for first two dimensions of batch2 tensor",
    r"mat1 and mat2 shapes cannot be multiplied",
    r"dot_general requires contracting dimensions to have the same shape",
    r"Matrix size-incompatible: In\[0\]: \[[\d,]+\], In\[1\]: \[[\d,]+\]",
)


def _inputs() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((10, 20, 128))  # (B, L, input_dim)
    w_q = rng.standard_normal((128, 64))  # query projection: 64 features
    w_v = rng.standard_normal((128, 128))  # value projection: 128 features
    return x, w_q, w_v


# --8<-- [start:broken]
def broken() -> np.ndarray:
    x, w_q, w_v = _inputs()
    q, k, v = x @ w_q, x @ w_v, x @ w_v  # key projection built with the value size
    scores = q @ k.transpose(0, 2, 1) / np.sqrt(64)
    weights = np.exp(scores - scores.max(-1, keepdims=True))
    return (weights / weights.sum(-1, keepdims=True)) @ v


# --8<-- [end:broken]


# --8<-- [start:fixed]
def fixed() -> np.ndarray:
    x, w_q, w_v = _inputs()
    w_k = np.random.default_rng(1).standard_normal((128, 64))  # key size = query size
    q, k, v = x @ w_q, x @ w_k, x @ w_v
    scores = q @ k.transpose(0, 2, 1) / np.sqrt(64)
    weights = np.exp(scores - scores.max(-1, keepdims=True))
    return (weights / weights.sum(-1, keepdims=True)) @ v


# --8<-- [end:fixed]


def reference() -> np.ndarray:
    x, w_q, w_v = _inputs()
    w_k = np.random.default_rng(1).standard_normal((128, 64))
    return attention((x @ w_q)[:, None], (x @ w_k)[:, None], (x @ w_v)[:, None])[:, 0]


TORCH_EXPECTED = RuntimeError
TORCH_MATCH = r"Expected size for first two dimensions of batch2 tensor to be: \[10, 64\]"


def torch_broken() -> object:
    import torch

    x = torch.randn(10, 20, 128)
    q = torch.nn.Linear(128, 64)(x)
    k = torch.nn.Linear(128, 128)(x)
    return torch.matmul(q, k.transpose(-2, -1))


JAX_EXPECTED = TypeError
JAX_MATCH = (
    r"dot_general requires contracting dimensions to have the same shape, got \(64,\) and "
    r"\(128,\)"
)


def jax_broken() -> object:
    import jax.numpy as jnp

    x, w_q, w_v = (jnp.asarray(a) for a in _inputs())
    q, k = x @ w_q, x @ w_v  # key projection built with the value size
    return q @ k.swapaxes(-1, -2)


TF_EXPECTED = "tensorflow.errors.InvalidArgumentError"
TF_MATCH = r"Matrix size-incompatible: In\[0\]: \[10,20,64\], In\[1\]: \[10,20,128\]"


def tf_broken() -> object:
    import tensorflow as tf

    x, w_q, w_v = (tf.constant(a) for a in _inputs())
    q, k = x @ w_q, x @ w_v  # key projection built with the value size
    return tf.matmul(q, k, transpose_b=True)


def torch_fixed() -> object:
    import torch

    x, w_q, w_v = (torch.from_numpy(a) for a in _inputs())
    w_k = torch.from_numpy(np.random.default_rng(1).standard_normal((128, 64)))  # as w_q
    q, k, v = x @ w_q, x @ w_k, x @ w_v
    return torch.softmax(torch.matmul(q, k.transpose(-2, -1)) / 8.0, dim=-1) @ v


def tf_fixed() -> object:
    import tensorflow as tf

    x, w_q, w_v = (tf.constant(a) for a in _inputs())
    w_k = tf.constant(np.random.default_rng(1).standard_normal((128, 64)))  # as w_q
    q, k, v = x @ w_q, x @ w_k, x @ w_v
    return tf.nn.softmax(tf.matmul(q, k, transpose_b=True) / 8.0, axis=-1) @ v
