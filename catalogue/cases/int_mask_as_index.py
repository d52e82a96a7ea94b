"""An integer 0/1 mask used as an index.

What happens:
    No error. ``scores[..., pad] = -np.inf`` with ``pad = np.array([0, 0, 0, 0, 1, 1])``
    is *fancy indexing*: it sets columns 0 and 1 to ``-inf``. The first two tokens are
    hidden from every query and the padding is attended. PyTorch (``scores[..., pad] =
    float("-inf")`` with an int64 tensor) and JAX (``scores.at[..., pad].set(-jnp.inf)``) do
    exactly the same; TensorFlow refuses the assignment (``TypeError: ... EagerTensor'
    object does not support item assignment``).

Why:
    NumPy, PyTorch and JAX index with a boolean array by position of ``True``, but with an
    integer array by *value*. A 0/1 mask read from a file, built with ``astype(int)`` or
    returned as ``int64`` by a tokenizer (``attention_mask``) is an integer array.

Fix:
    Convert first: ``pad.astype(bool)`` (better, keep masks boolean from the start).
"""

import numpy as np

from refattn.checks import check_no_weight_on_masked
from refattn.errors import CheckFailure

from ._common import reference_weights, softmax

KIND = "silent"
EXPECTED = CheckFailure
MATCH = r"masked \(query, key\) pairs got attention weight"
TAGS = ("mask-dtype",)
MESSAGES = (r"masked_fill_ only supports boolean masks, but got mask with dtype",)
SYMPTOMS = ("first tokens are never attended", "attention_mask from the tokenizer is ignored")


def _inputs() -> tuple[np.ndarray, np.ndarray]:
    x = np.random.default_rng(0).standard_normal((1, 6, 4))  # (B, L, D)
    pad = np.array([0, 0, 0, 0, 1, 1])  # int64: 1 = padding
    return x, pad


# --8<-- [start:broken]
def broken() -> np.ndarray:
    x, pad = _inputs()
    scores = x @ x.swapaxes(-1, -2) / np.sqrt(4)
    scores[..., pad] = -np.inf  # integer index: columns 0 and 1
    return softmax(scores)


# --8<-- [end:broken]


# --8<-- [start:fixed]
def fixed() -> np.ndarray:
    x, pad = _inputs()
    scores = x @ x.swapaxes(-1, -2) / np.sqrt(4)
    scores[..., pad.astype(bool)] = -np.inf  # boolean index: the padded columns
    return softmax(scores)


# --8<-- [end:fixed]


def reference() -> np.ndarray:
    x, pad = _inputs()
    return reference_weights(x, x, attend_mask=pad == 0)


def detect(weights: np.ndarray) -> None:
    _, pad = _inputs()
    check_no_weight_on_masked(weights, pad == 0)


TORCH_KIND = "silent"
TORCH_EXPECTED = CheckFailure
TORCH_MATCH = MATCH
TORCH_NOTE = (
    "Assigning through an int64 index tensor is the same fancy indexing as in NumPy: "
    "columns 0 and 1 are hidden, no error."
)


def torch_broken() -> object:
    import torch

    x, pad = (torch.from_numpy(a) for a in _inputs())  # pad: int64, 1 = padding
    scores = x @ x.transpose(-1, -2) / 2.0
    scores[..., pad] = float("-inf")  # integer index: columns 0 and 1
    return torch.softmax(scores, dim=-1)


def torch_fixed() -> object:
    import torch

    x, pad = (torch.from_numpy(a) for a in _inputs())
    scores = x @ x.transpose(-1, -2) / 2.0
    return torch.softmax(scores.masked_fill(pad.bool(), float("-inf")), dim=-1)


JAX_KIND = "silent"
JAX_EXPECTED = CheckFailure
JAX_MATCH = MATCH


def jax_broken() -> object:
    import jax
    import jax.numpy as jnp

    x, pad = (jnp.asarray(a) for a in _inputs())  # pad: int32 under JAX's defaults
    scores = x @ x.swapaxes(-1, -2) / 2.0
    scores = scores.at[..., pad].set(-jnp.inf)  # integer index: columns 0 and 1
    return jax.nn.softmax(scores, axis=-1)


def jax_fixed() -> object:
    import jax
    import jax.numpy as jnp

    x, pad = (jnp.asarray(a) for a in _inputs())
    scores = x @ x.swapaxes(-1, -2) / 2.0
    return jax.nn.softmax(jnp.where(pad.astype(bool), -jnp.inf, scores), axis=-1)


TF_EXPECTED = TypeError
TF_MATCH = (
    r"'tensorflow\.python\.framework\.ops\.EagerTensor' object does not support item assignment"
)
TF_NOTE = (
    "TensorFlow tensors cannot be assigned through an index at all, so this mistake cannot "
    "be written; the fix masks with `tf.where` on the mask cast to booleans."
)


def tf_broken() -> object:
    import tensorflow as tf

    x, pad = (tf.constant(a) for a in _inputs())
    scores = tf.matmul(x, x, transpose_b=True) / 2.0
    scores[..., pad] = float("-inf")  # integer index, as in NumPy
    return tf.nn.softmax(scores, axis=-1)


def tf_fixed() -> object:
    import tensorflow as tf

    x, pad = (tf.constant(a) for a in _inputs())
    scores = tf.matmul(x, x, transpose_b=True) / 2.0
    return tf.nn.softmax(tf.where(tf.cast(pad, tf.bool), float("-inf"), scores), axis=-1)
