"""``Q @ K`` without the transpose, silent when the sequence length equals the head size.

What happens:
    No error: with ``L = S = D = 8`` the product ``q @ k`` has the shape of the scores,
    ``(B, 8, 8)``, and everything downstream runs. The output is simply wrong.

Why:
    ``q @ k`` contracts the query's features against the key's *positions*. When the two
    sizes are equal the shapes line up by accident; the same code raises as soon as the
    sequence length changes (see ``missing_transpose_raises``), often only in production.

Fix:
    Transpose the key: ``q @ k.swapaxes(-1, -2)``. Test with odd, distinct sizes
    (``L = 7, S = 11, D = 8``) so shape accidents cannot hide.
"""

import numpy as np

from refattn import attention
from refattn.checks import check_close
from refattn.errors import CheckFailure

from ._common import softmax

KIND = "silent"
EXPECTED = CheckFailure
MATCH = r"output differs from the reference at \d+ of \d+ entries"
TAGS = ("missing-transpose",)
SYMPTOMS = (
    "attention works for one sequence length and fails for another",
    "model does not learn, attention output looks wrong",
)


def _inputs() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    q, k, v = rng.standard_normal((3, 2, 8, 8))  # (B, L, D) each with L == D == 8
    return q, k, v


# --8<-- [start:broken]
def broken() -> np.ndarray:
    q, k, v = _inputs()
    return softmax(q @ k / np.sqrt(8)) @ v  # runs: (8, 8) @ (8, 8)


# --8<-- [end:broken]


# --8<-- [start:fixed]
def fixed() -> np.ndarray:
    q, k, v = _inputs()
    return softmax(q @ k.swapaxes(-1, -2) / np.sqrt(8)) @ v


# --8<-- [end:fixed]


def reference() -> np.ndarray:
    q, k, v = _inputs()
    return attention(q[:, None], k[:, None], v[:, None])[:, 0]


def detect(output: np.ndarray) -> None:
    check_close(output, reference())


TORCH_KIND = "silent"
TORCH_EXPECTED = CheckFailure
TORCH_MATCH = MATCH


def torch_broken() -> object:
    import torch

    q, k, v = (torch.from_numpy(a) for a in _inputs())
    return torch.softmax(q @ k / 8**0.5, dim=-1) @ v  # runs: (8, 8) @ (8, 8)


def torch_fixed() -> object:
    import torch

    q, k, v = (torch.from_numpy(a) for a in _inputs())
    return torch.softmax(q @ k.transpose(-2, -1) / 8**0.5, dim=-1) @ v


JAX_KIND = "silent"
JAX_EXPECTED = CheckFailure
JAX_MATCH = MATCH


def jax_broken() -> object:
    import jax
    import jax.numpy as jnp

    q, k, v = (jnp.asarray(a) for a in _inputs())
    return jax.nn.softmax(q @ k / jnp.sqrt(8.0), axis=-1) @ v


def jax_fixed() -> object:
    import jax
    import jax.numpy as jnp

    q, k, v = (jnp.asarray(a) for a in _inputs())
    return jax.nn.softmax(q @ k.swapaxes(-1, -2) / jnp.sqrt(8.0), axis=-1) @ v


TF_KIND = "silent"
TF_EXPECTED = CheckFailure
TF_MATCH = MATCH


def tf_broken() -> object:
    import tensorflow as tf

    q, k, v = (tf.constant(a) for a in _inputs())
    return tf.nn.softmax(tf.matmul(q, k) / 8**0.5, axis=-1) @ v  # runs: (8, 8) @ (8, 8)


def tf_fixed() -> object:
    import tensorflow as tf

    q, k, v = (tf.constant(a) for a in _inputs())
    return tf.nn.softmax(tf.matmul(q, k, transpose_b=True) / 8**0.5, axis=-1) @ v
