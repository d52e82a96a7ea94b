"""A batch-first input read as sequence-first.

What happens:
    No error when the shapes allow it. A ``(B, L, E)`` batch fed to code that expects
    ``(L, B, E)`` — as ``torch.nn.MultiheadAttention`` does unless ``batch_first=True`` —
    makes every position attend across the *batch*: token ``l`` of example ``b`` mixes
    with token ``l`` of the other examples, and never sees its own sequence. Run here with
    ``nn.MultiheadAttention`` itself and, the other way round, with
    ``jax.nn.dot_product_attention`` and Keras' ``MultiHeadAttention`` (both batch first)
    given sequence-first input.

Why:
    Attention treats the first axis it is told about as the sequence. With the axes
    swapped, the "sequence" is the batch and the "batch" is the positions. Only the sizes
    could have told them apart, and ``nn.MultiheadAttention`` checks only ``E``.

Fix:
    Pass ``batch_first=True`` to ``nn.MultiheadAttention`` (or transpose the input to
    ``(L, B, E)``), and name axes in comments after every reshape: ``# (B, L, E)``.

Sources:
    https://github.com/aipixel/AEMatter/issues/3 batch-first input to a batch_first=False layer
    https://github.com/om-ai-lab/OmDet/issues/19 batch inference inconsistent until batch_first=True
"""

from typing import Any

import numpy as np

from refattn import attention
from refattn.checks import check_close
from refattn.errors import CheckFailure

from ._common import softmax

KIND = "silent"
EXPECTED = CheckFailure
MATCH = r"output differs from the reference at \d+ of \d+ entries"
TAGS = ("layout-confusion",)
MESSAGES = (r"was expecting embedding dimension of \d+, but got \d+",)
SYMPTOMS = (
    "examples in a batch influence each other",
    "results change with batch size",
    "batch_first confusion in MultiheadAttention",
    "batch_first missing in nn.MultiheadAttention",
    "attention mixes examples across the batch",
    "sequence and batch axes swapped",
)


def _inputs() -> np.ndarray:
    return np.random.default_rng(0).standard_normal((3, 5, 8))  # (B, L, E), batch first


def _self_attention(x: np.ndarray) -> np.ndarray:
    """Attention for sequence-first input ``(L, B, E)``, like nn.MultiheadAttention."""
    x = x.swapaxes(0, 1)  # (B, L, E)
    out = softmax(x @ x.swapaxes(-1, -2) / np.sqrt(x.shape[-1])) @ x
    return out.swapaxes(0, 1)  # back to (L, B, E)


# --8<-- [start:broken]
def broken() -> np.ndarray:
    x = _inputs()  # (B, L, E)
    return _self_attention(x)  # read as (L, B, E): attends across the batch


# --8<-- [end:broken]


# --8<-- [start:fixed]
def fixed() -> np.ndarray:
    x = _inputs()  # (B, L, E)
    return _self_attention(x.swapaxes(0, 1)).swapaxes(0, 1)  # (L, B, E) in, (B, L, E) out


# --8<-- [end:fixed]


def reference() -> np.ndarray:
    x = _inputs()[:, None]  # (B, 1, L, E)
    return attention(x, x, x)[:, 0]


def detect(output: np.ndarray) -> None:
    check_close(output, reference())


TORCH_KIND = "silent"
TORCH_EXPECTED = CheckFailure
TORCH_MATCH = MATCH
TORCH_NOTE = (
    "`nn.MultiheadAttention` checks only `E`: the `(B, L, E)` batch runs through its "
    "default `batch_first=False`. Its projections are set to the identity here, so the "
    "output can be compared with plain attention."
)


def _mha(batch_first: bool) -> Any:
    import torch

    mha = torch.nn.MultiheadAttention(8, 1, bias=False, batch_first=batch_first)
    with torch.no_grad():  # identity projections: plain single-head attention
        mha.in_proj_weight.copy_(torch.eye(8).repeat(3, 1))
        mha.out_proj.weight.copy_(torch.eye(8))
    return mha.double()


def torch_broken() -> object:
    import torch

    x = torch.from_numpy(_inputs())  # (B, L, E)
    mha = _mha(batch_first=False)  # the default: expects (L, B, E)
    with torch.no_grad():
        return mha(x, x, x, need_weights=False)[0]


def torch_fixed() -> object:
    import torch

    x = torch.from_numpy(_inputs())
    mha = _mha(batch_first=True)
    with torch.no_grad():
        return mha(x, x, x, need_weights=False)[0]


JAX_KIND = "silent"
JAX_EXPECTED = CheckFailure
JAX_MATCH = MATCH
JAX_NOTE = (
    "The same confusion the other way round: code ported from a sequence-first PyTorch "
    "model keeps `(L, B, E)`, and `jax.nn.dot_product_attention`, which reads `(B, T, N, "
    "H)`, takes the positions for the batch."
)


def jax_broken() -> object:
    import jax
    import jax.numpy as jnp

    x = jnp.asarray(_inputs()).swapaxes(0, 1)[:, :, None]  # (L, B, 1, E), sequence first
    out = jax.nn.dot_product_attention(x, x, x)  # read as (B, T, N, H)
    return out[:, :, 0].swapaxes(0, 1)  # back to (B, L, E)


def jax_fixed() -> object:
    import jax
    import jax.numpy as jnp

    x = jnp.asarray(_inputs())[:, :, None]  # (B, L, 1, E): batch first, as JAX wants
    return jax.nn.dot_product_attention(x, x, x)[:, :, 0]


TF_KIND = "silent"
TF_EXPECTED = CheckFailure
TF_MATCH = MATCH
TF_NOTE = (
    "Keras' `MultiHeadAttention` is always batch first; sequence-first `(L, B, E)` input "
    "kept from a PyTorch port is read with the positions as the batch. Its projections are "
    "set to the identity here."
)


def _keras_mha() -> Any:
    import tensorflow as tf

    layer = tf.keras.layers.MultiHeadAttention(1, 8, use_bias=False, dtype="float64")
    x = tf.zeros((1, 1, 8), tf.float64)
    layer(x, x)  # builds the weights
    eye = np.eye(8)  # identity projections: plain single-head attention
    layer.set_weights([eye[:, None], eye[:, None], eye[:, None], eye[None]])
    return layer


def tf_broken() -> object:
    import tensorflow as tf

    x = tf.transpose(tf.constant(_inputs()), (1, 0, 2))  # (L, B, E), sequence first
    out = _keras_mha()(x, x)  # read as (B, T, E)
    return tf.transpose(out, (1, 0, 2))  # back to (B, L, E)


def tf_fixed() -> object:
    import tensorflow as tf

    x = tf.constant(_inputs())  # (B, L, E): batch first, as Keras wants
    return _keras_mha()(x, x)
