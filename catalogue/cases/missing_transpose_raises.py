"""Scores computed as ``Q @ K`` instead of ``Q @ Kᵀ``.

What happens:
    ``q @ k`` on ``(B, L, D)`` arrays raises ``ValueError: matmul: Input operand 1 has a
    mismatch in its core dimension 0 ... (size 5 is different from 8)`` in NumPy; PyTorch's
    ``torch.matmul`` raises ``RuntimeError: Expected size for first two dimensions of batch2
    tensor to be: [32, 512] but got: [32, 20]``. Neither is an ``IndexError``.

Why:
    ``(L, D) @ (S, D)`` contracts ``D`` against ``S``: it is only defined when the key is
    transposed to ``(D, S)``. The sizes in the message are the head size and the key length.

Fix:
    Transpose the last two axes of the key: ``q @ k.swapaxes(-1, -2)`` (``k.transpose(-2,
    -1)`` in PyTorch), or spell it ``np.einsum("...ld,...sd->...ls", q, k)``.
"""

import numpy as np

from refattn import attention

from ._common import softmax

KIND = "exception"
EXPECTED = ValueError
MATCH = (
    r"matmul: Input operand 1 has a mismatch in its core dimension 0.*size 5 is different from 8"
)
TAGS = ("missing-transpose",)
SEED_CLAIMS = (
    (
        "004_4cf73df6a2e65df9.txt",
        "Example 1: torch.matmul(q, k) 'results in an IndexError', caused by not handling the "
        "batch size; torch.bmm(q, k.transpose(1, 2)) fixes it",
        "False cause and class: torch.matmul raises RuntimeError ('Expected size for first "
        "two dimensions of batch2 tensor to be: [32, 512] but got: [32, 20]'), NumPy a "
        "ValueError. matmul batches fine; the bug is the missing transpose, which the "
        "article's fix adds.",
    ),
)
MESSAGES = (
    r"mismatch in its core dimension 0.*\(size \d+ is different from \d+\)",
    r"Expected size for first two dimensions of batch2 tensor",
    r"Dimensions must be equal, but are \d+ and \d+ for .*(?:MatMul|BatchMatMul)",
    r"dot_general requires contracting dimensions to have the same shape, got \(\d+,\) "
    r"and \(\d+,\)",
    r"Matrix size-incompatible: In\[0\]: \[[\d,]+\], In\[1\]: \[[\d,]+\]",
)
SYMPTOMS = (
    "matmul of query and key fails",
    "forgot to transpose the key",
    "q @ k fails with the head size and the sequence length in the message",
)


def _inputs() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    q, k, v = rng.standard_normal((3, 2, 5, 8))  # (B, L, D) each: L = 5, D = 8
    return q, k, v


# --8<-- [start:broken]
def broken() -> np.ndarray:
    q, k, v = _inputs()
    scores = q @ k / np.sqrt(8)  # (B, L, D) @ (B, S, D): D meets S
    return softmax(scores) @ v


# --8<-- [end:broken]


# --8<-- [start:fixed]
def fixed() -> np.ndarray:
    q, k, v = _inputs()
    scores = q @ k.swapaxes(-1, -2) / np.sqrt(8)  # (B, L, S)
    return softmax(scores) @ v


# --8<-- [end:fixed]


def reference() -> np.ndarray:
    q, k, v = _inputs()
    return attention(q[:, None], k[:, None], v[:, None])[:, 0]


TORCH_EXPECTED = RuntimeError
TORCH_MATCH = r"Expected size for first two dimensions of batch2 tensor to be: \[32, 512\]"


def torch_broken() -> object:
    import torch

    q, k = torch.randn(32, 20, 512), torch.randn(32, 20, 512)  # the article's sizes
    return torch.matmul(q, k) / (512**0.5)


JAX_EXPECTED = TypeError
JAX_MATCH = (
    r"dot_general requires contracting dimensions to have the same shape, got \(8,\) and \(5,\)"
)


def jax_broken() -> object:
    import jax
    import jax.numpy as jnp

    q, k, v = (jnp.asarray(a) for a in _inputs())
    scores = q @ k / jnp.sqrt(8.0)  # (B, L, D) @ (B, S, D)
    return jax.nn.softmax(scores, axis=-1) @ v


def jax_fixed() -> object:
    import jax
    import jax.numpy as jnp

    q, k, v = (jnp.asarray(a) for a in _inputs())
    scores = q @ k.swapaxes(-1, -2) / jnp.sqrt(8.0)
    return jax.nn.softmax(scores, axis=-1) @ v


TF_EXPECTED = "tensorflow.errors.InvalidArgumentError"
TF_MATCH = r"Matrix size-incompatible: In\[0\]: \[2,5,8\], In\[1\]: \[2,5,8\]"


def tf_broken() -> object:
    import tensorflow as tf

    q, k, v = (tf.constant(a) for a in _inputs())
    scores = tf.matmul(q, k) / 8**0.5  # (B, L, D) @ (B, S, D)
    return tf.matmul(tf.nn.softmax(scores, axis=-1), v)


def tf_fixed() -> object:
    import tensorflow as tf

    q, k, v = (tf.constant(a) for a in _inputs())
    scores = tf.matmul(q, k, transpose_b=True) / 8**0.5
    return tf.matmul(tf.nn.softmax(scores, axis=-1), v)


def torch_fixed() -> object:
    import torch

    q, k, v = (torch.from_numpy(a) for a in _inputs())
    scores = torch.matmul(q, k.transpose(-2, -1)) / 8**0.5  # (B, L, S)
    return torch.softmax(scores, dim=-1) @ v
