"""Softmax over the batch axis.

What happens:
    No error. ``softmax(scores, axis=0)`` on ``(B, L, S)`` scores normalises each (query,
    key) pair across the examples of the batch: an example's attention depends on the
    other examples, and its rows do not sum to one. PyTorch's ``F.softmax(scores)``
    without ``dim`` does exactly this on 3-D input, with only a ``UserWarning: Implicit
    dimension choice for softmax has been deprecated``.

Why:
    The softmax must run over the keys (the last axis). Any other axis mixes things that
    should be independent: queries (see ``softmax_over_query_axis``) or, here, examples.

Fix:
    ``softmax(scores, axis=-1)``; always pass the axis explicitly.

Sources:
    https://github.com/lucasjinreal/pytorch_chatbot/issues/4 (attn_weights = F.softmax( without dim)
    https://github.com/PetrochukM/PyTorch-NLP/issues/2 (nn.Softmax(dim=0) in an attention layer)
"""

import numpy as np

from refattn.checks import check_rows_sum_to_one
from refattn.errors import CheckFailure

from ._common import reference_weights, softmax

KIND = "silent"
EXPECTED = CheckFailure
MATCH = r"attention weights do not sum to one over the keys"
TAGS = ("softmax-axis",)
MESSAGES = (r"Implicit dimension choice for softmax has been deprecated",)
SYMPTOMS = (
    "results depend on the other examples in the batch",
    "softmax computed over the batch dimension",
)


def _inputs() -> np.ndarray:
    return np.random.default_rng(0).standard_normal((3, 5, 4))  # (B, L, D)


# --8<-- [start:broken]
def broken() -> np.ndarray:
    x = _inputs()
    return softmax(x @ x.swapaxes(-1, -2) / np.sqrt(4), axis=0)  # over the batch


# --8<-- [end:broken]


# --8<-- [start:fixed]
def fixed() -> np.ndarray:
    x = _inputs()
    return softmax(x @ x.swapaxes(-1, -2) / np.sqrt(4), axis=-1)


# --8<-- [end:fixed]


def reference() -> np.ndarray:
    x = _inputs()
    return reference_weights(x, x)


def detect(weights: np.ndarray) -> None:
    check_rows_sum_to_one(weights)


TORCH_KIND = "silent"
TORCH_EXPECTED = CheckFailure
TORCH_MATCH = MATCH
TORCH_NOTE = (
    "F.softmax without dim picks dim 0 for 3-D input: over the batch, with only a "
    "UserWarning ('Implicit dimension choice for softmax has been deprecated')."
)


def torch_broken() -> object:
    import torch.nn.functional as F
    from torch import from_numpy

    x = from_numpy(_inputs())
    return F.softmax(x @ x.transpose(-2, -1) / 2.0)  # no dim: dim 0 for 3-D input


def torch_fixed() -> object:
    import torch.nn.functional as F
    from torch import from_numpy

    x = from_numpy(_inputs())
    return F.softmax(x @ x.transpose(-2, -1) / 2.0, dim=-1)


JAX_KIND = "silent"
JAX_EXPECTED = CheckFailure
JAX_MATCH = MATCH


def jax_broken() -> object:
    import jax
    import jax.numpy as jnp

    x = jnp.asarray(_inputs())
    return jax.nn.softmax(x @ x.swapaxes(-1, -2) / 2.0, axis=0)  # over the batch


def jax_fixed() -> object:
    import jax
    import jax.numpy as jnp

    x = jnp.asarray(_inputs())
    return jax.nn.softmax(x @ x.swapaxes(-1, -2) / 2.0, axis=-1)


TF_KIND = "silent"
TF_EXPECTED = CheckFailure
TF_MATCH = MATCH


def tf_broken() -> object:
    import tensorflow as tf

    x = tf.constant(_inputs())
    return tf.nn.softmax(tf.matmul(x, x, transpose_b=True) / 2.0, axis=0)  # over the batch


def tf_fixed() -> object:
    import tensorflow as tf

    x = tf.constant(_inputs())
    return tf.nn.softmax(tf.matmul(x, x, transpose_b=True) / 2.0, axis=-1)
