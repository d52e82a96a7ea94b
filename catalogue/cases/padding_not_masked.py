"""Padding keys left unmasked.

What happens:
    No error and no NaN. Every query spreads part of its attention over the padding
    positions (here the three real queries of example 0 put 31-45 % of their weight on its
    three zero-padded keys), so real tokens get less weight and the output depends on how
    much padding the batch happened to have. Output and autograd gradients stay finite.

Why:
    Softmax normalises over every key it is given. Padding vectors are ordinary numbers
    (zeros or a pad embedding) with ordinary scores; only a mask removes them.

Fix:
    Mask padded keys before the softmax: ``np.where(keep[:, None, :], scores, -np.inf)``
    (refattn: ``key_lengths=lengths``).
"""

import numpy as np

from refattn.checks import check_no_weight_on_masked
from refattn.errors import CheckFailure

from ._common import reference_weights, softmax

KIND = "silent"
EXPECTED = CheckFailure
MATCH = r"masked \(query, key\) pairs got attention weight"
TAGS = ("mask-missing",)
SEED_CLAIMS = (
    (
        "000_acdb1d09df8d8964.txt",
        "Example 2: without masking, padding tokens influence the softmax and 'result in "
        "NaN gradients during training'",
        "Half true: padding does take attention weight, silently, but nothing becomes NaN: "
        "the output and its autograd gradients stay finite. NaN comes from the opposite "
        "mistake, a row with every key masked (see fully_masked_row_nan).",
    ),
)
SYMPTOMS = (
    "results change with the amount of padding in the batch",
    "model attends to padding tokens",
    "output differs between batched and unbatched inference",
    "no attention mask passed for a padded batch",
    "padding tokens change the result",
)


def _inputs() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 6, 4))  # (B, L, D)
    x[0, 3:] = 0.0  # example 0 has 3 tokens, then zero padding
    keep = np.arange(6) < np.array([[3], [6]])  # (B, S)
    return x, keep


# --8<-- [start:broken]
def broken() -> np.ndarray:
    x, _ = _inputs()
    scores = x @ x.swapaxes(-1, -2) / np.sqrt(4)
    return softmax(scores)  # padding keys never masked


# --8<-- [end:broken]


# --8<-- [start:fixed]
def fixed() -> np.ndarray:
    x, keep = _inputs()
    scores = x @ x.swapaxes(-1, -2) / np.sqrt(4)
    return softmax(np.where(keep[:, None, :], scores, -np.inf))


# --8<-- [end:fixed]


def reference() -> np.ndarray:
    x, keep = _inputs()
    return reference_weights(x, x, key_lengths=keep.sum(-1))


def detect(weights: np.ndarray) -> None:
    _, keep = _inputs()
    check_no_weight_on_masked(weights, keep[:, None, :])


TORCH_KIND = "silent"
TORCH_EXPECTED = CheckFailure
TORCH_MATCH = MATCH


def torch_broken() -> object:
    import torch

    x, _ = (torch.from_numpy(a) for a in _inputs())
    return torch.softmax(x @ x.transpose(-2, -1) / 2.0, dim=-1)  # padding keys never masked


def torch_fixed() -> object:
    import torch

    x, keep = (torch.from_numpy(a) for a in _inputs())
    scores = x @ x.transpose(-2, -1) / 2.0
    return torch.softmax(scores.masked_fill(~keep[:, None, :], float("-inf")), dim=-1)


JAX_KIND = "silent"
JAX_EXPECTED = CheckFailure
JAX_MATCH = MATCH


def jax_broken() -> object:
    import jax
    import jax.numpy as jnp

    x, _ = (jnp.asarray(a) for a in _inputs())
    return jax.nn.softmax(x @ x.swapaxes(-1, -2) / 2.0, axis=-1)  # padding keys never masked


def jax_fixed() -> object:
    import jax
    import jax.numpy as jnp

    x, keep = (jnp.asarray(a) for a in _inputs())
    scores = x @ x.swapaxes(-1, -2) / 2.0
    return jax.nn.softmax(jnp.where(keep[:, None, :], scores, -jnp.inf), axis=-1)


TF_KIND = "silent"
TF_EXPECTED = CheckFailure
TF_MATCH = MATCH


def tf_broken() -> object:
    import tensorflow as tf

    x, _ = (tf.constant(a) for a in _inputs())
    return tf.nn.softmax(tf.matmul(x, x, transpose_b=True) / 2.0, axis=-1)  # never masked


def tf_fixed() -> object:
    import tensorflow as tf

    x, keep = (tf.constant(a) for a in _inputs())
    scores = tf.matmul(x, x, transpose_b=True) / 2.0
    return tf.nn.softmax(tf.where(keep[:, None, :], scores, -float("inf")), axis=-1)
