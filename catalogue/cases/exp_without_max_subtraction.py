"""A softmax written as ``exp(x) / sum(exp(x))``.

What happens:
    With logits past 88.7 in float32 (here up to 160), ``np.exp`` overflows to ``inf``
    (NumPy warns ``overflow encountered in exp``) and the row's sum is ``inf``: the weight
    that should be largest becomes ``inf / inf`` = NaN, the others 0, and the NaN flows
    through ``@ v`` into the output. ``torch.exp``, ``jnp.exp`` and ``tf.exp`` overflow the
    same way, without a warning. In float16 it starts at logits of about 11.1.

Why:
    ``exp`` exceeds float32's largest value (3.4e38) at 88.7. Unscaled scores of large
    activations, or a temperature below one, get there easily. The softmax is unchanged
    by subtracting any constant from a row; subtracting the row maximum makes every
    exponent at most 0.

Fix:
    ``e = np.exp(scores - scores.max(-1, keepdims=True)); e / e.sum(-1, keepdims=True)``
    (or ``scipy.special.softmax``, ``torch.softmax``, ``jax.nn.softmax``,
    ``tf.nn.softmax``, which already do this).
"""

import numpy as np

from refattn.checks import check_finite
from refattn.errors import CheckFailure

from ._common import reference_weights

KIND = "nan"
EXPECTED = CheckFailure
MATCH = r"weights has \d+ NaN"
TAGS = ("softmax-overflow",)
MESSAGES = (r"overflow encountered in exp", r"invalid value encountered in (?:true_)?divide")
SYMPTOMS = (
    "softmax returns nan for large inputs",
    "attention weights become nan when logits are large",
    "exp overflows in a hand written softmax",
    "softmax gives inf for large scores",
)


def _inputs() -> np.ndarray:
    return (np.random.default_rng(0).standard_normal((1, 5, 8)) * 4).astype(np.float32)


# --8<-- [start:broken]
def broken() -> np.ndarray:
    x = _inputs()
    scores = x @ x.swapaxes(-1, -2)  # up to a few hundred
    e = np.exp(scores)  # overflows past 88.7
    return e / e.sum(axis=-1, keepdims=True)


# --8<-- [end:broken]


# --8<-- [start:fixed]
def fixed() -> np.ndarray:
    x = _inputs()
    scores = x @ x.swapaxes(-1, -2)
    e = np.exp(scores - scores.max(axis=-1, keepdims=True))  # every exponent <= 0
    return e / e.sum(axis=-1, keepdims=True)


# --8<-- [end:fixed]


def reference() -> np.ndarray:
    x = _inputs()
    return reference_weights(x, x, scale=1.0)


def detect(weights: np.ndarray) -> None:
    check_finite(weights, name="weights")


TORCH_KIND = "nan"
TORCH_EXPECTED = CheckFailure
TORCH_MATCH = MATCH


def torch_broken() -> object:
    import torch

    x = torch.from_numpy(_inputs())
    scores = x @ x.transpose(-1, -2)
    e = torch.exp(scores)  # inf past 88.7, no warning
    return e / e.sum(dim=-1, keepdim=True)


def torch_fixed() -> object:
    import torch

    x = torch.from_numpy(_inputs())
    return torch.softmax(x @ x.transpose(-1, -2), dim=-1)  # subtracts the row max


JAX_KIND = "nan"
JAX_EXPECTED = CheckFailure
JAX_MATCH = MATCH


def jax_broken() -> object:
    import jax.numpy as jnp

    x = jnp.asarray(_inputs())
    e = jnp.exp(x @ x.swapaxes(-1, -2))
    return e / e.sum(axis=-1, keepdims=True)


def jax_fixed() -> object:
    import jax
    import jax.numpy as jnp

    x = jnp.asarray(_inputs())
    return jax.nn.softmax(x @ x.swapaxes(-1, -2), axis=-1)


TF_KIND = "nan"
TF_EXPECTED = CheckFailure
TF_MATCH = MATCH


def tf_broken() -> object:
    import tensorflow as tf

    x = tf.constant(_inputs())
    e = tf.exp(tf.matmul(x, x, transpose_b=True))
    return e / tf.reduce_sum(e, axis=-1, keepdims=True)


def tf_fixed() -> object:
    import tensorflow as tf

    x = tf.constant(_inputs())
    return tf.nn.softmax(tf.matmul(x, x, transpose_b=True), axis=-1)
