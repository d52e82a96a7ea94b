"""``~`` used to invert an integer 0/1 mask.

What happens:
    ``~keep`` on an integer mask ``[1, 1, 1, 1, 0, 0]`` gives ``[-2, -2, -2, -2, -1, -1]``:
    bitwise NOT, not logical NOT. Every entry is non-zero, so
    ``np.where(~keep, -np.inf, scores)`` removes every key and the softmax returns NaN for
    every row, with ``RuntimeWarning: invalid value encountered in subtract`` (the row max
    is ``-inf``, and ``-inf - (-inf)`` is NaN). JAX behaves the same: ``jnp.where`` takes
    any non-zero as True. PyTorch and TensorFlow refuse the int mask instead: ``torch.where``
    raises ``RuntimeError: where expected condition to be a boolean tensor, but got a tensor
    with dtype Long`` (``masked_fill``: ``masked_fill_ only supports boolean masks, but got
    mask with dtype long int``; SDPA: ``Expected attn_mask dtype to be bool or float or to
    match query dtype``), ``tf.where`` ``InvalidArgumentError: cannot compute SelectV2 as
    input #0(zero-based) was expected to be a bool tensor but is a int64 tensor``.

Why:
    ``~`` is logical NOT only for booleans. Masks from tokenizers and data loaders are
    ``int64``; inverting them with ``~`` (which works on the boolean masks in examples)
    silently computes something else.

Fix:
    Make the mask boolean first: ``pad = keep == 0`` (or ``~keep.astype(bool)``).

Sources:
    https://github.com/ZikangZhou/HiVT/issues/44 (~ on a padding mask)
    https://github.com/PaddlePaddle/PaddleFormers/pull/4033 (~ on a 0/1 int: ~0 = -1)
"""

import numpy as np

from refattn.checks import check_finite
from refattn.errors import CheckFailure

from ._common import reference_weights, softmax

KIND = "nan"
EXPECTED = CheckFailure
MATCH = r"weights has \d+ NaN"
TAGS = ("mask-dtype", "mask-polarity", "fully-masked-row")
MESSAGES = (
    r"where expected condition to be a boolean tensor, but got a tensor with dtype",
    r"masked_fill_? only supports boolean masks, but got mask with dtype",
    r"was expected to be a bool tensor but is a int\d+ tensor",
)
SYMPTOMS = ("all attention weights are nan after inverting the mask",)


def _inputs() -> tuple[np.ndarray, np.ndarray]:
    x = np.random.default_rng(0).standard_normal((1, 6, 4))  # (B, L, D)
    keep = np.array([[1, 1, 1, 1, 0, 0]])  # int64, 1 = token
    return x, keep


# --8<-- [start:broken]
def broken() -> np.ndarray:
    x, keep = _inputs()
    scores = x @ x.swapaxes(-1, -2) / np.sqrt(4)
    pad = ~keep  # bitwise NOT of int64: -2 and -1, all "True"
    with np.errstate(invalid="ignore"):  # NumPy warns: invalid value in subtract
        return softmax(np.where(pad[:, None, :], -np.inf, scores))


# --8<-- [end:broken]


# --8<-- [start:fixed]
def fixed() -> np.ndarray:
    x, keep = _inputs()
    scores = x @ x.swapaxes(-1, -2) / np.sqrt(4)
    pad = keep == 0  # boolean
    return softmax(np.where(pad[:, None, :], -np.inf, scores))


# --8<-- [end:fixed]


def reference() -> np.ndarray:
    x, keep = _inputs()
    return reference_weights(x, x, attend_mask=keep > 0)


def detect(weights: np.ndarray) -> None:
    check_finite(weights, name="weights")


TORCH_EXPECTED = RuntimeError
TORCH_MATCH = r"where expected condition to be a boolean tensor, but got a tensor with dtype Long"
TORCH_NOTE = (
    "PyTorch does not make this mistake silently: ~ on an int64 tensor is bitwise too, but "
    "torch.where, masked_fill and scaled_dot_product_attention all refuse an int64 mask."
)


def torch_broken() -> object:
    import torch

    x, keep = (torch.from_numpy(a) for a in _inputs())
    scores = x @ x.transpose(-2, -1) / 2.0
    pad = ~keep  # bitwise NOT of int64: -2 and -1
    return torch.softmax(torch.where(pad[:, None, :], float("-inf"), scores), dim=-1)


def torch_fixed() -> object:
    import torch

    x, keep = (torch.from_numpy(a) for a in _inputs())
    scores = x @ x.transpose(-2, -1) / 2.0
    pad = keep == 0  # boolean
    return torch.softmax(torch.where(pad[:, None, :], float("-inf"), scores), dim=-1)


JAX_KIND = "nan"
JAX_EXPECTED = CheckFailure
JAX_MATCH = MATCH


def jax_broken() -> object:
    import jax
    import jax.numpy as jnp

    x, keep = (jnp.asarray(a) for a in _inputs())
    pad = ~keep  # bitwise NOT: -2 and -1, all "True" to jnp.where
    scores = x @ x.swapaxes(-1, -2) / 2.0
    return jax.nn.softmax(jnp.where(pad[:, None, :], -jnp.inf, scores), axis=-1)


def jax_fixed() -> object:
    import jax
    import jax.numpy as jnp

    x, keep = (jnp.asarray(a) for a in _inputs())
    pad = keep == 0  # boolean
    scores = x @ x.swapaxes(-1, -2) / 2.0
    return jax.nn.softmax(jnp.where(pad[:, None, :], -jnp.inf, scores), axis=-1)


TF_EXPECTED = "tensorflow.errors.InvalidArgumentError"
TF_MATCH = (
    r"cannot compute SelectV2 as input #0\(zero-based\) was expected to be a bool tensor but "
    r"is a int64 tensor"
)
TF_NOTE = (
    "TensorFlow refuses the int mask: ~ is bitwise on int64 tensors too, but tf.where wants "
    "a bool condition."
)


def tf_broken() -> object:
    import tensorflow as tf

    x, keep = (tf.constant(a) for a in _inputs())
    scores = tf.matmul(x, x, transpose_b=True) / 2.0
    pad = ~keep  # bitwise NOT of int64
    return tf.nn.softmax(tf.where(pad[:, None, :], -float("inf"), scores), axis=-1)


def tf_fixed() -> object:
    import tensorflow as tf

    x, keep = (tf.constant(a) for a in _inputs())
    scores = tf.matmul(x, x, transpose_b=True) / 2.0
    pad = keep == 0  # boolean
    return tf.nn.softmax(tf.where(pad[:, None, :], -float("inf"), scores), axis=-1)
