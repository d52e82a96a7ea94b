"""A key/value cache extended along the feature axis.

What happens:
    ``np.concatenate([cache_k, k_new], axis=-1)`` raises ``ValueError: all the input array
    dimensions except for the concatenation axis must match exactly, but along dimension 2,
    the array at index 0 has size 6 and the array at index 1 has size 1``; PyTorch's
    ``torch.cat`` says ``Sizes of tensors must match except in dimension 3``, JAX a
    ``TypeError: Cannot concatenate arrays with shapes that differ in dimensions other
    than the one being concatenated`` and TensorFlow's ``tf.concat``
    ``InvalidArgumentError: ConcatOp : Dimension 2 in both shapes must be equal``. On the
    very first step, with one cached position, the sizes agree and the concatenation
    cannot complain: the cache becomes ``(B, H, 1, 2D)``, and only a later product with
    it can fail.

Why:
    One decoding step adds one position, so the cache grows along the sequence axis
    ``-2``. Along ``-1`` it would append features instead, which only the sequence sizes
    (6 cached, 1 new) happen to stop.

Fix:
    Concatenate along the sequence axis: ``np.concatenate([cache_k, k_new], axis=-2)``.

Sources:
    https://github.com/deepspeedai/Megatron-DeepSpeed/pull/112 past keys joined on the wrong axis
"""

import numpy as np

from refattn import attention

from ._common import softmax

KIND = "exception"
EXPECTED = ValueError
MATCH = r"except for the concatenation axis must match exactly, but along dimension 2"
TAGS = ("kv-cache",)
MESSAGES = (
    r"Sizes of tensors must match except in dimension",
    r"all the input array dimensions except for the concatenation axis must match",
    r"ConcatOp : Dimension \d+ in both shapes must be equal",
    r"Cannot concatenate arrays with shapes that differ in dimensions other than the one",
)
SYMPTOMS = ("decoding with kv cache fails on the second step", "past_key_values shape error")


def _inputs() -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(0)
    cache_k, cache_v = rng.standard_normal((2, 1, 2, 6, 8))  # (B, H, S, D): 6 cached steps
    q, k_new, v_new = rng.standard_normal((3, 1, 2, 1, 8))  # (B, H, 1, D): the new token
    return q, k_new, v_new, cache_k, cache_v


# --8<-- [start:broken]
def broken() -> np.ndarray:
    q, k_new, v_new, cache_k, cache_v = _inputs()
    k = np.concatenate([cache_k, k_new], axis=-1)  # features axis: 6 vs 1 positions
    v = np.concatenate([cache_v, v_new], axis=-1)
    return softmax(q @ k.swapaxes(-1, -2) / np.sqrt(8)) @ v


# --8<-- [end:broken]


# --8<-- [start:fixed]
def fixed() -> np.ndarray:
    q, k_new, v_new, cache_k, cache_v = _inputs()
    k = np.concatenate([cache_k, k_new], axis=-2)  # (1, 2, 7, 8): one more step
    v = np.concatenate([cache_v, v_new], axis=-2)
    return softmax(q @ k.swapaxes(-1, -2) / np.sqrt(8)) @ v


# --8<-- [end:fixed]


def reference() -> np.ndarray:
    q, k_new, v_new, cache_k, cache_v = _inputs()
    k, v = np.concatenate([cache_k, k_new], -2), np.concatenate([cache_v, v_new], -2)
    return attention(q, k, v, causal="bottom_right")


TORCH_EXPECTED = RuntimeError
TORCH_MATCH = r"Sizes of tensors must match except in dimension 3"


def torch_broken() -> object:
    import torch

    cache_k = torch.randn(1, 2, 6, 8)
    k_new = torch.randn(1, 2, 1, 8)
    return torch.cat([cache_k, k_new], dim=-1)


def torch_fixed() -> object:
    import torch

    q, k_new, v_new, cache_k, cache_v = (torch.from_numpy(a) for a in _inputs())
    k = torch.cat([cache_k, k_new], dim=-2)  # the sequence axis
    v = torch.cat([cache_v, v_new], dim=-2)
    return torch.nn.functional.scaled_dot_product_attention(q, k, v)


JAX_EXPECTED = TypeError
JAX_MATCH = (
    r"Cannot concatenate arrays with shapes that differ in dimensions other than the one "
    r"being concatenated: concatenating along dimension 3 for shapes \(1, 2, 6, 8\), "
    r"\(1, 2, 1, 8\)"
)


def jax_broken() -> object:
    import jax.numpy as jnp

    _, k_new, _, cache_k, _ = (jnp.asarray(a) for a in _inputs())
    return jnp.concatenate([cache_k, k_new], axis=-1)


def jax_fixed() -> object:
    import jax
    import jax.numpy as jnp

    q, k_new, v_new, cache_k, cache_v = (jnp.asarray(a).swapaxes(1, 2) for a in _inputs())
    k = jnp.concatenate([cache_k, k_new], axis=1)  # (B, S, N, H): the sequence axis is 1
    v = jnp.concatenate([cache_v, v_new], axis=1)
    return jax.nn.dot_product_attention(q, k, v).swapaxes(1, 2)  # back to (B, H, 1, D)


TF_EXPECTED = "tensorflow.errors.InvalidArgumentError"
TF_MATCH = r"ConcatOp : Dimension 2 in both shapes must be equal: shape\[0\] = \[1,2,6,8\]"


def tf_broken() -> object:
    import tensorflow as tf

    _, k_new, _, cache_k, _ = (tf.constant(a) for a in _inputs())
    return tf.concat([cache_k, k_new], axis=-1)


def tf_fixed() -> object:
    import tensorflow as tf

    q, k_new, v_new, cache_k, cache_v = (tf.constant(a) for a in _inputs())
    k = tf.concat([cache_k, k_new], axis=-2)
    v = tf.concat([cache_v, v_new], axis=-2)
    return tf.matmul(tf.nn.softmax(tf.matmul(q, k, transpose_b=True) / 8**0.5, axis=-1), v)
