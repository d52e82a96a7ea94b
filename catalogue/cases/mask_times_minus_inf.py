"""An additive mask built by multiplying with ``-inf``.

What happens:
    ``(1 - keep) * -np.inf`` is ``-inf`` where ``keep`` is 0, but ``0 * -inf`` is NaN
    where ``keep`` is 1 (NumPy warns ``invalid value encountered in multiply``). Every
    kept position is NaN, so every row of the softmax is NaN. PyTorch, JAX and TensorFlow
    compute the same NaN (PyTorch without a warning).

Why:
    IEEE arithmetic has no value for ``0 · ∞``. The idiom ``(1 - mask) * -1e9`` works
    because ``1e9`` is finite; swapping in ``-inf`` "to be exact" breaks it.

Fix:
    Select instead of multiplying: ``np.where(keep, 0.0, -np.inf)`` (PyTorch:
    ``torch.zeros_like(scores).masked_fill(~keep, float("-inf"))``).

Sources:
    https://github.com/cerebroai/reformers/issues/3 ((1 - mask) * float('-inf') in TF gives NaN)
"""

import numpy as np

from refattn.checks import check_finite
from refattn.errors import CheckFailure

from ._common import reference_weights, softmax

KIND = "nan"
EXPECTED = CheckFailure
MATCH = r"weights has \d+ NaN"
TAGS = ("inf-arithmetic",)
MESSAGES = (r"invalid value encountered in multiply",)
SYMPTOMS = (
    "all attention weights are nan with an additive -inf mask",
    "multiplying the mask by -inf gives nan",
    "zero times inf gives nan in the mask",
)


def _inputs() -> tuple[np.ndarray, np.ndarray]:
    x = np.random.default_rng(0).standard_normal((2, 5, 4))  # (B, L, D)
    keep = (np.arange(5) < np.array([[3], [5]])).astype(np.float64)  # (B, S): 1.0 = keep
    return x, keep


# --8<-- [start:broken]
def broken() -> np.ndarray:
    x, keep = _inputs()
    bias = (1.0 - keep) * -np.inf  # 0 * -inf = NaN where keep == 1
    return softmax(x @ x.swapaxes(-1, -2) / np.sqrt(4) + bias[:, None, :])


# --8<-- [end:broken]


# --8<-- [start:fixed]
def fixed() -> np.ndarray:
    x, keep = _inputs()
    bias = np.where(keep > 0, 0.0, -np.inf)
    return softmax(x @ x.swapaxes(-1, -2) / np.sqrt(4) + bias[:, None, :])


# --8<-- [end:fixed]


def reference() -> np.ndarray:
    x, keep = _inputs()
    return reference_weights(x, x, key_lengths=keep.sum(-1).astype(int))


def detect(weights: np.ndarray) -> None:
    check_finite(weights, name="weights")


TORCH_KIND = "nan"
TORCH_EXPECTED = CheckFailure
TORCH_MATCH = MATCH


def torch_broken() -> object:
    import torch

    x, keep = (torch.from_numpy(a) for a in _inputs())
    bias = (1.0 - keep) * float("-inf")  # 0 * -inf = NaN where keep == 1, no warning
    return torch.softmax(x @ x.transpose(-2, -1) / 2.0 + bias[:, None, :], dim=-1)


def torch_fixed() -> object:
    import torch

    x, keep = (torch.from_numpy(a) for a in _inputs())
    bias = torch.zeros_like(keep).masked_fill(keep == 0, float("-inf"))
    return torch.softmax(x @ x.transpose(-2, -1) / 2.0 + bias[:, None, :], dim=-1)


JAX_KIND = "nan"
JAX_EXPECTED = CheckFailure
JAX_MATCH = MATCH


def jax_broken() -> object:
    import jax
    import jax.numpy as jnp

    x, keep = (jnp.asarray(a) for a in _inputs())
    bias = (1.0 - keep) * -jnp.inf  # 0 * -inf = NaN where keep == 1
    return jax.nn.softmax(x @ x.swapaxes(-1, -2) / 2.0 + bias[:, None, :], axis=-1)


def jax_fixed() -> object:
    import jax
    import jax.numpy as jnp

    x, keep = (jnp.asarray(a) for a in _inputs())
    bias = jnp.where(keep > 0, 0.0, -jnp.inf)
    return jax.nn.softmax(x @ x.swapaxes(-1, -2) / 2.0 + bias[:, None, :], axis=-1)


TF_KIND = "nan"
TF_EXPECTED = CheckFailure
TF_MATCH = MATCH


def tf_broken() -> object:
    import tensorflow as tf

    x, keep = (tf.constant(a) for a in _inputs())
    bias = (1.0 - keep) * -float("inf")  # 0 * -inf = NaN where keep == 1
    return tf.nn.softmax(tf.matmul(x, x, transpose_b=True) / 2.0 + bias[:, None, :], axis=-1)


def tf_fixed() -> object:
    import tensorflow as tf

    x, keep = (tf.constant(a) for a in _inputs())
    bias = tf.where(keep > 0, 0.0, -float("inf"))
    return tf.nn.softmax(
        tf.matmul(x, x, transpose_b=True) / 2.0 + tf.cast(bias, x.dtype)[:, None, :], axis=-1
    )
