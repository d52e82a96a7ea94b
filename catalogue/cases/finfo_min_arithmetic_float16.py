"""A ``finfo.min`` mask built for float32, used in float16.

What happens:
    The additive mask ``np.where(pair, 0, np.finfo(np.float32).min)`` is cast to the
    scores' float16: ``-3.4e38`` becomes ``-inf`` (NumPy warns ``overflow encountered in
    cast``). ``finfo.min`` was chosen precisely so that a padded query row, whose every key
    is masked, stays finite; as ``-inf`` the row is NaN again. PyTorch (``.to(torch.float16)``),
    JAX (``.astype``) and TensorFlow (``tf.cast``) cast it to ``-inf`` without a warning,
    and their softmax gives the same NaN rows. The same happens in float16
    itself with arithmetic on ``finfo(float16).min`` (-65504): adding a second mask
    (``-65504 + -65504``) or subtracting a bias overflows to ``-inf``.

Why:
    float16 ends at 65504. ``finfo.min`` is finite only in its own dtype, and only until
    something is added to it.

Fix:
    Take ``finfo`` of the dtype the arithmetic runs in (``np.finfo(scores.dtype).min``),
    combine masks as booleans and apply them once, and run the softmax in float32.
    refattn's ``fully_masked="uniform"`` gives what this mask means: uniform weights.

Sources:
    https://github.com/microsoft/onnxscript/pull/2992 float32's lowest cast to float16 is -inf
    https://github.com/huggingface/transformers/pull/17306 finfo(float16).min - 16 = -inf, NaN rows
    https://github.com/NVIDIA-NeMo/Automodel/pull/2658 two finfo.min planes summed overflow
"""

import numpy as np

from refattn.checks import check_finite
from refattn.errors import CheckFailure

from ._common import reference_weights, softmax

KIND = "nan"
EXPECTED = CheckFailure
MATCH = r"weights has \d+ NaN"
TAGS = ("fp16-overflow", "inf-arithmetic", "fully-masked-row")
MESSAGES = (r"overflow encountered in cast", r"finfo\(.*\)\.min")
SYMPTOMS = (
    "nan in padded rows with float16 and finfo min mask",
    "adding two finfo min masks gives -inf",
    "combined causal and padding masks overflow",
)


def _inputs() -> tuple[np.ndarray, np.ndarray]:
    x = np.random.default_rng(0).standard_normal((1, 5, 4)).astype(np.float16)  # (B, L, D)
    valid = np.array([[True, True, True, False, False]])  # (B, L): 2 padded positions
    pair = valid[:, :, None] & valid[:, None, :]  # (B, L, S): padded queries see nothing
    return x, pair


# --8<-- [start:broken]
def broken() -> np.ndarray:
    x, pair = _inputs()
    scores = x @ x.swapaxes(-1, -2) / np.float16(2.0)  # float16
    bias = np.where(pair, 0.0, np.finfo(np.float32).min).astype(scores.dtype)  # -> -inf
    return softmax(scores + bias)


# --8<-- [end:broken]


# --8<-- [start:fixed]
def fixed() -> np.ndarray:
    x, pair = _inputs()
    scores = x.astype(np.float32) @ x.astype(np.float32).swapaxes(-1, -2) / 2.0
    bias = np.where(pair, 0.0, np.finfo(scores.dtype).min).astype(scores.dtype)
    return softmax(scores + bias)  # padded rows: uniform and finite


# --8<-- [end:fixed]


def reference() -> np.ndarray:
    x, pair = _inputs()
    x = x.astype(np.float32)  # refattn returns float16 for float16 input
    return reference_weights(x, x, attend_mask=pair[:, None], fully_masked="uniform")


def detect(weights: np.ndarray) -> None:
    check_finite(weights, name="weights")


TORCH_KIND = "nan"
TORCH_EXPECTED = CheckFailure
TORCH_MATCH = MATCH


def torch_broken() -> object:
    import torch

    x, pair = (torch.from_numpy(a) for a in _inputs())
    scores = x @ x.transpose(-1, -2) / 2.0  # float16
    bias = torch.where(pair, 0.0, torch.finfo(torch.float32).min).to(scores.dtype)  # -inf
    return torch.softmax(scores + bias, dim=-1)


def torch_fixed() -> object:
    import torch

    x, pair = (torch.from_numpy(a) for a in _inputs())
    x = x.float()
    scores = x @ x.transpose(-1, -2) / 2.0
    bias = torch.where(pair, 0.0, torch.finfo(scores.dtype).min)
    return torch.softmax(scores + bias, dim=-1)


JAX_KIND = "nan"
JAX_EXPECTED = CheckFailure
JAX_MATCH = MATCH


def jax_broken() -> object:
    import jax
    import jax.numpy as jnp

    x, pair = (jnp.asarray(a) for a in _inputs())
    scores = x @ x.swapaxes(-1, -2) / 2.0  # float16
    bias = jnp.where(pair, 0.0, jnp.finfo(jnp.float32).min).astype(scores.dtype)  # type: ignore[no-untyped-call]
    return jax.nn.softmax(scores + bias, axis=-1)


def jax_fixed() -> object:
    import jax
    import jax.numpy as jnp

    x, pair = (jnp.asarray(a) for a in _inputs())
    x = x.astype(jnp.float32)
    scores = x @ x.swapaxes(-1, -2) / 2.0
    bias = jnp.where(pair, 0.0, jnp.finfo(scores.dtype).min)  # type: ignore[no-untyped-call]
    return jax.nn.softmax(scores + bias, axis=-1)


TF_KIND = "nan"
TF_EXPECTED = CheckFailure
TF_MATCH = MATCH


def tf_broken() -> object:
    import tensorflow as tf

    x, pair = (tf.constant(a) for a in _inputs())
    scores = tf.matmul(x, x, transpose_b=True) / 2.0  # float16
    bias = tf.cast(tf.where(pair, 0.0, tf.float32.min), scores.dtype)  # -inf
    return tf.nn.softmax(scores + bias, axis=-1)


def tf_fixed() -> object:
    import tensorflow as tf

    x, pair = (tf.constant(a) for a in _inputs())
    x = tf.cast(x, tf.float32)
    scores = tf.matmul(x, x, transpose_b=True) / 2.0
    bias = tf.where(pair, 0.0, scores.dtype.min)
    return tf.nn.softmax(scores + bias, axis=-1)
