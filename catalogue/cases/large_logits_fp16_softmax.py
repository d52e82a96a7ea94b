"""Attention scores computed in float16 from large activations.

What happens:
    ``q @ k.T`` in float16 overflows to ``inf`` once a dot product passes 65504; the
    softmax then computes ``inf - inf`` = NaN for those rows, even though it subtracts the
    row maximum. ``torch``, ``jax.numpy`` and ``tf`` in float16 give the same NaN rows. In
    mixed-precision training this shows up as NaN loss after some steps, when
    activations have grown.

Why:
    The dot product of two vectors of 64 features of magnitude ~40 is ~100 000, beyond
    float16. Scaling by ``1/sqrt(d)`` *after* the product is too late: the product itself
    overflowed.

Fix:
    Scale the query before the product (``(q / np.sqrt(d)) @ k.T``), and compute scores
    and softmax in float32. bfloat16 has float32's range. ``torch.autocast`` on CUDA runs
    ``matmul`` in float16 and ``softmax`` in float32, so there the matmul is the risk
    (GPU-only, not run here; source:
    https://github.com/pytorch/pytorch/blob/main/docs/source/amp.rst).

Sources:
    https://github.com/pytorch/pytorch/blob/main/docs/source/amp.rst autocast op lists
    https://github.com/pytorch/pytorch/issues/119131 fp16 SDPA NaN: the q·k product reaches 784449
    https://github.com/ultralytics/ultralytics/pull/24990 query pre-scaled to keep q·k in fp16 range
"""

import numpy as np

from refattn.checks import check_finite
from refattn.errors import CheckFailure

from ._common import reference_weights, softmax

KIND = "nan"
EXPECTED = CheckFailure
MATCH = r"weights has \d+ NaN and \d+ infinite"
TAGS = ("fp16-overflow", "softmax-overflow")
MESSAGES = (r"overflow encountered in matmul", r"invalid value encountered in subtract")
SYMPTOMS = (
    "nan loss with fp16 mixed precision after some steps",
    "attention scores overflow in half precision",
)


def _inputs() -> np.ndarray:
    x = np.random.default_rng(0).standard_normal((1, 4, 64)) * 40  # large activations
    return x.astype(np.float16)  # (B, L, D)


# --8<-- [start:broken]
def broken() -> np.ndarray:
    x = _inputs()
    scores = x @ x.swapaxes(-1, -2) / np.float16(8.0)  # the product overflows first
    return softmax(scores)


# --8<-- [end:broken]


# --8<-- [start:fixed]
def fixed() -> np.ndarray:
    x = _inputs().astype(np.float32)  # scores and softmax in float32
    scores = (x / np.float32(8.0)) @ x.swapaxes(-1, -2)  # scale before the product
    return softmax(scores)


# --8<-- [end:fixed]


def reference() -> np.ndarray:
    x = _inputs().astype(np.float32)
    return reference_weights(x, x)


def detect(weights: np.ndarray) -> None:
    check_finite(weights, name="weights")


TORCH_KIND = "nan"
TORCH_EXPECTED = CheckFailure
TORCH_MATCH = MATCH
TORCH_NOTE = (
    "Run here on CPU with `float16` tensors (what `autocast` on CUDA gives the matmul): "
    "the product is `inf` and `torch.softmax` returns NaN."
)


def torch_broken() -> object:
    import torch

    x = torch.from_numpy(_inputs())  # float16
    scores = x @ x.transpose(-1, -2) / 8.0  # the product overflows first
    return torch.softmax(scores, dim=-1)


def torch_fixed() -> object:
    import torch

    x = torch.from_numpy(_inputs()).float()  # scores and softmax in float32
    return torch.softmax((x / 8.0) @ x.transpose(-1, -2), dim=-1)


JAX_KIND = "nan"
JAX_EXPECTED = CheckFailure
JAX_MATCH = MATCH


def jax_broken() -> object:
    import jax
    import jax.numpy as jnp

    x = jnp.asarray(_inputs())  # float16
    return jax.nn.softmax(x @ x.swapaxes(-1, -2) / 8.0, axis=-1)


def jax_fixed() -> object:
    import jax
    import jax.numpy as jnp

    x = jnp.asarray(_inputs()).astype(jnp.float32)
    return jax.nn.softmax((x / 8.0) @ x.swapaxes(-1, -2), axis=-1)


TF_KIND = "nan"
TF_EXPECTED = CheckFailure
TF_MATCH = MATCH


def tf_broken() -> object:
    import tensorflow as tf

    x = tf.constant(_inputs())  # float16
    return tf.nn.softmax(tf.matmul(x, x, transpose_b=True) / 8.0, axis=-1)


def tf_fixed() -> object:
    import tensorflow as tf

    x = tf.cast(tf.constant(_inputs()), tf.float32)
    return tf.nn.softmax(tf.matmul(x / 8.0, x, transpose_b=True), axis=-1)
