"""Grouped-query attention with key/value heads that were never expanded to the query heads.

What happens:
    A model with 8 query heads and 2 key/value heads (GQA) multiplies ``q (B, 8, L, D)``
    by ``kᵀ (B, 2, D, S)``. NumPy raises ``ValueError: operands could not be broadcast
    together with remapped shapes [original->remapped]: (1,8,4,8)->(1,8,newaxis,newaxis)
    (1,2,8,4)->(1,2,newaxis,newaxis)  and requested shape (4,4)``. PyTorch's
    ``F.scaled_dot_product_attention`` without ``enable_gqa=True`` raises ``RuntimeError:
    The size of tensor a (8) must match the size of tensor b (2) at non-singleton dimension
    1``; a ``jnp.einsum`` written for equal head counts raises ``ValueError: Size of label
    'h' for operand 1 (8) does not match previous terms (2).``; ``tf.matmul`` raises
    ``InvalidArgumentError: ... In[0] and In[1] must have compatible batch dimensions:
    [1,8,4,8] vs. [1,2,4,8] [Op:BatchMatMulV2]``.

Why:
    The head axes are matched one to one, and 8 and 2 do not broadcast. Each key/value head
    is meant to serve ``G = Hq // Hkv = 4`` consecutive query heads, and nothing in the call
    says so.

Fix:
    Tell the kernel (``enable_gqa=True`` in SDPA; ``jax.nn.dot_product_attention``
    groups heads by itself), or expand the key/value heads with ``repeat_interleave`` /
    ``np.repeat(k, G, axis=1)`` (never ``tile``: see ``gqa_kv_heads_tiled``). refattn's
    ``attention`` takes ``Hkv`` heads directly.

Sources:
    https://github.com/ModelTC/LightX2V/pull/1472
        (SDPA without enable_gqa: "The size of tensor a (32) must match the size of tensor b (8) at
        non-singleton dimension 1")
    https://github.com/tinygrad/tinygrad/pull/11097
        (enable_gqa and the repeat_interleave equivalent)
    https://github.com/keras-team/keras/pull/23081
        (Keras dot_product_attention: key/value heads broadcast with repeat_interleave)
"""

import numpy as np

from refattn import attention

KIND = "exception"
EXPECTED = ValueError
MATCH = r"operands could not be broadcast together with remapped shapes .*\(1,8,4,8\).*\(1,2,8,4\)"
TAGS = ("gqa-heads",)
MESSAGES = (
    r"size of tensor a \(\d+\) must match the size of tensor b \(\d+\) "
    r"at non-singleton dimension 1\b",
    r"Size of label 'h' for operand 1 \(\d+\) does not match previous terms \(\d+\)",
    r"must have compatible batch dimensions: \[[\d,]+\] vs\. \[[\d,]+\] \[Op:BatchMatMulV2\]",
    r"enable_gqa",
)
SYMPTOMS = (
    "grouped query attention shape mismatch in scaled_dot_product_attention",
    "num_key_value_heads smaller than num_attention_heads fails",
    "number of key value heads differs from number of query heads",
)


def _inputs() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    q = rng.standard_normal((1, 8, 4, 8))  # (B, Hq, L, D): 8 query heads
    k = rng.standard_normal((1, 2, 4, 8))  # (B, Hkv, S, D): 2 key/value heads
    v = rng.standard_normal((1, 2, 4, 8))
    return q, k, v


# --8<-- [start:broken]
def broken() -> np.ndarray:
    q, k, _ = _inputs()
    scores = q @ k.swapaxes(-1, -2) / np.sqrt(8)  # 8 heads against 2
    return scores


# --8<-- [end:broken]


# --8<-- [start:fixed]
def fixed() -> np.ndarray:
    q, k, v = _inputs()
    group = q.shape[1] // k.shape[1]  # 4 query heads per key/value head
    k, v = np.repeat(k, group, axis=1), np.repeat(v, group, axis=1)  # kv0 kv0 kv0 kv0 kv1 ...
    scores = q @ k.swapaxes(-1, -2) / np.sqrt(8)
    weights = np.exp(scores - scores.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)
    return weights @ v


# --8<-- [end:fixed]


def reference() -> np.ndarray:
    q, k, v = _inputs()
    return attention(q, k, v)  # Hq = 8, Hkv = 2: grouped by refattn


TORCH_EXPECTED = RuntimeError
TORCH_MATCH = (
    r"The size of tensor a \(8\) must match the size of tensor b \(2\) at non-singleton dimension 1"
)


def torch_broken() -> object:
    import torch
    import torch.nn.functional as F

    q, k, v = (torch.from_numpy(a) for a in _inputs())
    return F.scaled_dot_product_attention(q, k, v)  # enable_gqa defaults to False


def torch_fixed() -> object:
    import torch
    import torch.nn.functional as F

    q, k, v = (torch.from_numpy(a) for a in _inputs())
    return F.scaled_dot_product_attention(q, k, v, enable_gqa=True)


JAX_EXPECTED = ValueError
JAX_MATCH = r"Size of label 'h' for operand 1 \(8\) does not match previous terms \(2\)"
JAX_NOTE = (
    "`jax.nn.dot_product_attention` groups the heads itself (its layout is `(B, T, N, H)`); "
    "the mistake is a hand-written einsum that assumes equal head counts."
)


def jax_broken() -> object:
    import jax.numpy as jnp

    q, k, _ = (jnp.asarray(a) for a in _inputs())
    return jnp.einsum("bhld,bhsd->bhls", q, k)  # 8 query heads, 2 key heads


def jax_fixed() -> object:
    import jax
    import jax.numpy as jnp

    q, k, v = (jnp.asarray(a).transpose(0, 2, 1, 3) for a in _inputs())  # (B, T, N, H)
    return jax.nn.dot_product_attention(q, k, v).transpose(0, 2, 1, 3)


TF_EXPECTED = "tensorflow.errors.InvalidArgumentError"
TF_MATCH = (
    r"must have compatible batch dimensions: \[1,8,4,8\] vs\. \[1,2,4,8\] \[Op:BatchMatMulV2\]"
)


def tf_broken() -> object:
    import tensorflow as tf

    q, k, _ = (tf.constant(a) for a in _inputs())
    return tf.matmul(q, k, transpose_b=True)  # 8 heads against 2


def tf_fixed() -> object:
    import tensorflow as tf

    q, k, v = (tf.constant(a) for a in _inputs())
    k, v = tf.repeat(k, 4, axis=1), tf.repeat(v, 4, axis=1)
    weights = tf.nn.softmax(tf.matmul(q, k, transpose_b=True) / 8**0.5, axis=-1)
    return tf.matmul(weights, v)
