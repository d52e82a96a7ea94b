"""``-1e9`` as a mask value in float16.

What happens:
    ``scores - 1e9 * pad`` with float16 NumPy arrays gives NaN in every row: ``1e9``
    becomes ``inf`` in float16 (NumPy warns ``overflow encountered in cast``) and
    ``inf * 0`` is NaN at every *kept* position. JAX (``jnp``) and TensorFlow do exactly the
    same: all 72 weights NaN. PyTorch does not: in torch, half ``scores - 1e9 * pad`` is
    ``-inf`` at padding and ``0`` elsewhere, and the softmax is finite and right. Its
    float16 trap is the other spelling, ``masked_fill(mask, -1e9)`` on a half tensor,
    which raises ``RuntimeError: value cannot be converted to type c10::Half without
    overflow`` (``at::Half`` in older versions).

Why:
    float16's largest finite value is 65504. Constants chosen for float32 (``1e9``,
    ``1e10``, ``-1e30``) overflow when they meet float16 arrays (``model.half()``, float16
    inputs). How the overflow shows differs: NumPy, JAX and TensorFlow turn ``1e9`` into
    ``inf`` before multiplying (``inf * 0 = NaN``); PyTorch multiplies first, so ``1e9 * 0``
    stays 0 and only ``masked_fill``'s range check trips.

Fix:
    Don't multiply a mask by a big number: select with ``np.where(keep, scores, -np.inf)``
    (``masked_fill(mask, float("-inf"))`` in PyTorch), and compute the softmax in float32.

Sources:
    https://github.com/NVIDIA/apex/issues/1052 (masked_fill(-1e9) on half scores)
    https://github.com/facebookresearch/fairseq/issues/3575 (encoder attn_mask in fp16)
"""

import numpy as np

from refattn.checks import check_finite
from refattn.errors import CheckFailure

from ._common import reference_weights, softmax

KIND = "nan"
EXPECTED = CheckFailure
MATCH = r"weights has \d+ NaN"
TAGS = ("fp16-overflow", "inf-arithmetic")
MESSAGES = (
    r"value cannot be converted to type (?:at|c10)::Half without overflow",
    r"overflow encountered in cast",
)
SYMPTOMS = (
    "nan in float16 attention after subtracting 1e9 times the mask",
    "masked_fill -1e9 fails in half precision",
)


def _inputs() -> tuple[np.ndarray, np.ndarray]:
    x = np.random.default_rng(0).standard_normal((2, 6, 4)).astype(np.float16)  # (B, L, D)
    pad = (np.arange(6) >= np.array([[4], [6]])).astype(np.float16)  # (B, S): 1 = padding
    return x, pad


# --8<-- [start:broken]
def broken() -> np.ndarray:
    x, pad = _inputs()
    scores = x @ x.swapaxes(-1, -2) / np.float16(2.0)  # float16 scores
    return softmax(scores - 1e9 * pad[:, None, :])  # 1e9 -> inf; inf * 0 -> NaN


# --8<-- [end:broken]


# --8<-- [start:fixed]
def fixed() -> np.ndarray:
    x, pad = _inputs()
    x = x.astype(np.float32)  # scores and softmax in float32
    scores = x @ x.swapaxes(-1, -2) / 2.0
    return softmax(np.where(pad[:, None, :] > 0, -np.inf, scores))


# --8<-- [end:fixed]


def reference() -> np.ndarray:
    x, pad = _inputs()
    x = x.astype(np.float32)  # refattn returns float16 for float16 input
    return reference_weights(x, x, attend_mask=pad[:, None, None, :] == 0)


def detect(weights: np.ndarray) -> None:
    check_finite(weights, name="weights")


TORCH_EXPECTED = RuntimeError
TORCH_MATCH = r"value cannot be converted to type (?:at|c10)::Half without overflow"


def torch_broken() -> object:
    import torch

    scores = torch.randn(2, 6, 6, dtype=torch.float16)
    pad = torch.arange(6) >= torch.tensor([[4], [6]])
    return scores.masked_fill(pad[:, None, :], -1e9)


def torch_fixed() -> object:
    import torch

    x, pad = (torch.from_numpy(a) for a in _inputs())
    x = x.float()  # scores and softmax in float32
    scores = x @ x.transpose(-2, -1) / 2.0
    return torch.softmax(scores.masked_fill(pad[:, None, :] > 0, float("-inf")), dim=-1)


TORCH_NOTE = (
    "PyTorch refuses masked_fill(mask, -1e9) on a half tensor. It does not make NumPy's NaN: "
    "in torch, half `scores - 1e9 * pad` is -inf at padding and unchanged elsewhere "
    "(1e9 * 0 stays 0), and its softmax is finite and right."
)

JAX_KIND = "nan"
JAX_EXPECTED = CheckFailure
JAX_MATCH = MATCH


def jax_broken() -> object:
    import jax
    import jax.numpy as jnp

    x, pad = (jnp.asarray(a) for a in _inputs())  # float16
    scores = x @ x.swapaxes(-1, -2) / 2.0  # float16 scores
    return jax.nn.softmax(scores - 1e9 * pad[:, None, :], axis=-1)  # 1e9 -> inf; inf * 0


def jax_fixed() -> object:
    import jax
    import jax.numpy as jnp

    x, pad = (jnp.asarray(a) for a in _inputs())
    x = x.astype(jnp.float32)  # scores and softmax in float32
    scores = x @ x.swapaxes(-1, -2) / 2.0
    return jax.nn.softmax(jnp.where(pad[:, None, :] > 0, -jnp.inf, scores), axis=-1)


TF_KIND = "nan"
TF_EXPECTED = CheckFailure
TF_MATCH = MATCH


def tf_broken() -> object:
    import tensorflow as tf

    x, pad = (tf.constant(a) for a in _inputs())  # float16
    scores = tf.matmul(x, x, transpose_b=True) / 2.0  # float16 scores
    return tf.nn.softmax(scores - 1e9 * pad[:, None, :], axis=-1)  # 1e9 -> inf; inf * 0


def tf_fixed() -> object:
    import tensorflow as tf

    x, pad = (tf.constant(a) for a in _inputs())
    x = tf.cast(x, tf.float32)  # scores and softmax in float32
    scores = tf.matmul(x, x, transpose_b=True) / 2.0
    return tf.nn.softmax(tf.where(pad[:, None, :] > 0, -float("inf"), scores), axis=-1)
