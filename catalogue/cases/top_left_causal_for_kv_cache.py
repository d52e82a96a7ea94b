"""A top-left causal mask used while decoding with a KV cache.

What happens:
    No error. With 2 new queries against 6 cached-plus-new keys, ``np.tril(np.ones((L,
    S)))`` lets the first new token see only key 0 and the second keys 0 and 1: the newest
    tokens ignore almost all of the context. PyTorch's SDPA ``is_causal=True`` is aligned
    the same way (top-left) when ``L != S``.

Why:
    ``tril`` anchors the diagonal at the top-left corner: query ``i`` sees keys ``0 .. i``.
    With a cache, the queries are the *last* ``L`` positions, so query ``i`` is position
    ``S - L + i`` and must see keys ``0 .. S - L + i``: the diagonal anchored bottom-right.

Fix:
    ``np.tril(np.ones((L, S), bool), k=S - L)`` (refattn: ``causal="bottom_right"``; it is
    flash-attn's convention since 2.1, GPU-only, not run here; source:
    https://github.com/Dao-AILab/flash-attention/blob/main/README.md). For a single new
    token, no mask at all.

Sources:
    https://github.com/pytorch/pytorch/issues/108108 (SDPA's causal mask is top-left)
    https://github.com/pytorch/pytorch/issues/144858 (is_causal fails with a KV cache)
"""

import numpy as np

from refattn.checks import check_close
from refattn.errors import CheckFailure

from ._common import reference_weights, softmax

KIND = "silent"
EXPECTED = CheckFailure
MATCH = r"weights differs from the reference at \d+ of \d+ entries"
TAGS = ("causal-alignment", "kv-cache")
SYMPTOMS = (
    "generation with kv cache ignores the context",
    "is_causal with different query and key lengths",
    "causal mask wrong when the query is shorter than the keys",
    "decoding one token with is_causal attends only to the first key",
)


def _inputs() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    q = rng.standard_normal((1, 2, 4))  # (B, L, D): the 2 newest positions
    k = rng.standard_normal((1, 6, 4))  # (B, S, D): 4 cached + 2 new
    return q, k


# --8<-- [start:broken]
def broken() -> np.ndarray:
    q, k = _inputs()
    length, keys = q.shape[1], k.shape[1]
    causal = np.tril(np.ones((length, keys), dtype=bool))  # top-left: query i sees 0..i
    return softmax(np.where(causal, q @ k.swapaxes(-1, -2) / np.sqrt(4), -np.inf))


# --8<-- [end:broken]


# --8<-- [start:fixed]
def fixed() -> np.ndarray:
    q, k = _inputs()
    length, keys = q.shape[1], k.shape[1]
    causal = np.tril(np.ones((length, keys), dtype=bool), k=keys - length)  # bottom-right
    return softmax(np.where(causal, q @ k.swapaxes(-1, -2) / np.sqrt(4), -np.inf))


# --8<-- [end:fixed]


def reference() -> np.ndarray:
    q, k = _inputs()
    return reference_weights(q, k, causal="bottom_right")


def detect(weights: np.ndarray) -> None:
    check_close(weights, reference(), name="weights")


TORCH_KIND = "silent"
TORCH_EXPECTED = CheckFailure
TORCH_MATCH = MATCH


def torch_broken() -> object:
    import torch
    import torch.nn.functional as F

    q, k = (torch.from_numpy(a) for a in _inputs())  # 2 new queries, 6 keys
    one_hot = torch.eye(6, dtype=q.dtype)[None]  # values = one-hot keys: output = weights
    return F.scaled_dot_product_attention(q, k, one_hot, is_causal=True)  # top-left


def torch_fixed() -> object:
    import torch
    import torch.nn.functional as F

    q, k = (torch.from_numpy(a) for a in _inputs())
    one_hot = torch.eye(6, dtype=q.dtype)[None]
    length, keys = q.shape[1], k.shape[1]
    causal = torch.ones(length, keys, dtype=torch.bool).tril(diagonal=keys - length)
    return F.scaled_dot_product_attention(q, k, one_hot, attn_mask=causal)  # bottom-right


JAX_KIND = "silent"
JAX_EXPECTED = CheckFailure
JAX_MATCH = MATCH


def jax_broken() -> object:
    import jax
    import jax.numpy as jnp

    q, k = (jnp.asarray(a) for a in _inputs())
    causal = jnp.tril(jnp.ones((q.shape[1], k.shape[1]), dtype=bool))  # top-left
    return jax.nn.softmax(jnp.where(causal, q @ k.swapaxes(-1, -2) / 2.0, -jnp.inf), axis=-1)


def jax_fixed() -> object:
    import jax
    import jax.numpy as jnp

    q, k = (jnp.asarray(a) for a in _inputs())
    length, keys = q.shape[1], k.shape[1]
    causal = jnp.tril(jnp.ones((length, keys), dtype=bool), k=keys - length)  # bottom-right
    return jax.nn.softmax(jnp.where(causal, q @ k.swapaxes(-1, -2) / 2.0, -jnp.inf), axis=-1)


TF_KIND = "silent"
TF_EXPECTED = CheckFailure
TF_MATCH = MATCH


def tf_broken() -> object:
    import tensorflow as tf

    q, k = (tf.constant(a) for a in _inputs())
    length, keys = q.shape[1], k.shape[1]
    causal = tf.linalg.band_part(tf.ones((length, keys), tf.bool), -1, 0)  # top-left
    scores = tf.matmul(q, k, transpose_b=True) / 2.0
    return tf.nn.softmax(tf.where(causal, scores, -float("inf")), axis=-1)


def tf_fixed() -> object:
    import tensorflow as tf

    q, k = (tf.constant(a) for a in _inputs())
    length, keys = q.shape[1], k.shape[1]
    rows, cols = tf.range(length)[:, None], tf.range(keys)[None, :]
    causal = cols <= rows + (keys - length)  # bottom-right: query i is position S - L + i
    scores = tf.matmul(q, k, transpose_b=True) / 2.0
    return tf.nn.softmax(tf.where(causal, scores, -float("inf")), axis=-1)
