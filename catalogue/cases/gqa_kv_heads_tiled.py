"""Key/value heads repeated with ``tile``/``repeat`` instead of ``repeat_interleave``.

What happens:
    No error, a wrong output. With 4 query heads and 2 key/value heads, query heads 0-1
    belong to key/value head 0 and heads 2-3 to head 1. ``np.tile(k, (1, 2, 1, 1))`` (like
    ``torch.Tensor.repeat(1, 2, 1, 1)``, ``jnp.tile``, ``tf.tile``) lays the heads out as
    ``kv0 kv1 kv0 kv1``, so query head 1 reads key/value head 1 and query head 2 reads
    head 0: half the heads attend with another group's keys and values. The shapes are
    exactly right, so nothing complains; a checkpoint trained with grouped heads just
    produces worse text.

Why:
    ``tile``/``repeat`` copy the whole head axis ``G`` times; grouped-query attention needs
    each key/value head copied ``G`` times in place (``kv0 kv0 kv1 kv1``), which is
    ``repeat_interleave`` (``np.repeat``, ``jnp.repeat``, ``tf.repeat``) or Llama's
    ``repeat_kv`` (``k[:, :, None].expand(B, Hkv, G, S, D).reshape(B, Hkv * G, S, D)``).

Fix:
    ``np.repeat(k, G, axis=1)`` / ``k.repeat_interleave(G, dim=1)``, or no expansion at all:
    SDPA's ``enable_gqa=True``, ``jax.nn.dot_product_attention`` and refattn's
    ``attention`` take ``Hkv`` heads and group them in the right order.

Sources:
    https://github.com/onnx/onnx/pull/7274
        (ONNX Attention used Tile for GQA: [head0, head1, head0, head1]; torch uses
        repeat_interleave)
    https://github.com/apple/axlearn/pull/842 (jnp.repeat along the head axis vs the tiled order)
    https://github.com/jxiw/M1/issues/4 (does the repeat order of repeat_kv matter?)
"""

import numpy as np

from refattn import attention
from refattn.checks import check_close
from refattn.errors import CheckFailure

KIND = "silent"
EXPECTED = CheckFailure
MATCH = r"output differs from the reference"
TAGS = ("gqa-heads",)
SYMPTOMS = (
    "grouped query attention model outputs garbage after converting weights",
    "repeat_kv with repeat instead of repeat_interleave",
    "key value heads repeated in the wrong order",
)


def _inputs() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    q = rng.standard_normal((1, 4, 5, 8))  # (B, Hq, L, D)
    k = rng.standard_normal((1, 2, 5, 8))  # (B, Hkv, S, D)
    v = rng.standard_normal((1, 2, 5, 8))
    return q, k, v


def _attend(q: np.ndarray, k: np.ndarray, v: np.ndarray) -> np.ndarray:
    scores = q @ k.swapaxes(-1, -2) / np.sqrt(q.shape[-1])
    weights = np.exp(scores - scores.max(-1, keepdims=True))
    return weights / weights.sum(-1, keepdims=True) @ v


# --8<-- [start:broken]
def broken() -> np.ndarray:
    q, k, v = _inputs()
    group = q.shape[1] // k.shape[1]
    k, v = np.tile(k, (1, group, 1, 1)), np.tile(v, (1, group, 1, 1))  # kv0 kv1 kv0 kv1
    return _attend(q, k, v)


# --8<-- [end:broken]


# --8<-- [start:fixed]
def fixed() -> np.ndarray:
    q, k, v = _inputs()
    group = q.shape[1] // k.shape[1]
    k, v = np.repeat(k, group, axis=1), np.repeat(v, group, axis=1)  # kv0 kv0 kv1 kv1
    return _attend(q, k, v)


# --8<-- [end:fixed]


def reference() -> np.ndarray:
    return attention(*_inputs())


def detect(output: np.ndarray) -> None:
    check_close(output, reference())


TORCH_KIND = "silent"
TORCH_EXPECTED = CheckFailure
TORCH_MATCH = MATCH


def torch_broken() -> object:
    import torch
    import torch.nn.functional as F

    q, k, v = (torch.from_numpy(a) for a in _inputs())
    k, v = k.repeat(1, 2, 1, 1), v.repeat(1, 2, 1, 1)  # Tensor.repeat tiles
    return F.scaled_dot_product_attention(q, k, v)


def torch_fixed() -> object:
    import torch
    import torch.nn.functional as F

    q, k, v = (torch.from_numpy(a) for a in _inputs())
    k, v = k.repeat_interleave(2, dim=1), v.repeat_interleave(2, dim=1)
    return F.scaled_dot_product_attention(q, k, v)


JAX_KIND = "silent"
JAX_EXPECTED = CheckFailure
JAX_MATCH = MATCH


def jax_broken() -> object:
    import jax
    import jax.numpy as jnp

    q, k, v = (jnp.asarray(a) for a in _inputs())
    k, v = jnp.tile(k, (1, 2, 1, 1)), jnp.tile(v, (1, 2, 1, 1))
    weights = jax.nn.softmax(q @ k.swapaxes(-1, -2) / jnp.sqrt(8.0), axis=-1)
    return weights @ v


def jax_fixed() -> object:
    import jax
    import jax.numpy as jnp

    q, k, v = (jnp.asarray(a) for a in _inputs())
    k, v = jnp.repeat(k, 2, axis=1), jnp.repeat(v, 2, axis=1)
    weights = jax.nn.softmax(q @ k.swapaxes(-1, -2) / jnp.sqrt(8.0), axis=-1)
    return weights @ v


TF_KIND = "silent"
TF_EXPECTED = CheckFailure
TF_MATCH = MATCH


def tf_broken() -> object:
    import tensorflow as tf

    q, k, v = (tf.constant(a) for a in _inputs())
    k, v = tf.tile(k, [1, 2, 1, 1]), tf.tile(v, [1, 2, 1, 1])
    weights = tf.nn.softmax(tf.matmul(q, k, transpose_b=True) / 8**0.5, axis=-1)
    return tf.matmul(weights, v)


def tf_fixed() -> object:
    import tensorflow as tf

    q, k, v = (tf.constant(a) for a in _inputs())
    k, v = tf.repeat(k, 2, axis=1), tf.repeat(v, 2, axis=1)
    weights = tf.nn.softmax(tf.matmul(q, k, transpose_b=True) / 8**0.5, axis=-1)
    return tf.matmul(weights, v)
