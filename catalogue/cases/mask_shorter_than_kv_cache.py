"""A padding mask kept at the prompt's length while the KV cache grows.

What happens:
    Decoding step by step with a cache, the new query ``(B, H, 1, D)`` attends to every
    cached key: here 8 prompt tokens plus 4 generated ones, ``S = 12``. The attention mask
    still has the prompt's 8 columns. NumPy raises ``ValueError: operands could not be
    broadcast together with shapes (1,1,1,8) (1,2,1,12) ()``; PyTorch's SDPA ``RuntimeError:
    The size of tensor a (12) must match the size of tensor b (8) at non-singleton dimension
    3``; JAX ``ValueError: Incompatible shapes for broadcasting: shapes=[(1, 1, 1, 8), (1, 2,
    1, 12), ()]``; TensorFlow ``condition [1,1,1,8], then [1,2,1,12], and else [] must be
    broadcastable [Op:SelectV2]``. Hugging Face models that check it first say
    ``ValueError: Attention mask should be of size (1, 1, 1, 230), but is
    torch.Size([1, 1, 1, 8])`` (transformers is not run here; source:
    https://github.com/huggingface/transformers/issues/30809).

Why:
    The mask describes every key the query may see, cached ones included, so its last axis
    must be the cache length, not the length of the tokens passed in this step. Loops that
    reuse ``past_key_values`` (multi-turn chat, speculative decoding, a custom ``generate``)
    pass the new ``input_ids``' mask only.

Fix:
    Append a column of ones for every token added to the cache
    (``mask = np.concatenate([mask, np.ones((B, n_new), bool)], -1)``;
    ``torch.cat([attention_mask, attention_mask.new_ones(B, n_new)], -1)``), so that
    ``mask.shape[-1] == past_length + new_length``; refattn: ``key_lengths``.

Sources:
    https://github.com/huggingface/transformers/issues/30809
        (Phi in Llava: "Attention mask should be of size (1, 1, 1, 230), but is torch.Size([1, 1, 1,
        8])" with past_key_values)
    https://github.com/huggingface/transformers/pull/16829
        (the mask must have length len(past_key_values) + len(input_ids))
    https://github.com/MoonshotAI/Moonlight/issues/18
        ("Attention mask should be of size (1, 1, 1, 30), but is torch.Size([1, 1, 1, 29])")
"""

import numpy as np

from refattn import attention

KIND = "exception"
EXPECTED = ValueError
MATCH = r"operands could not be broadcast together with shapes \(1,1,1,8\) \(1,2,1,12\)"
TAGS = ("kv-cache", "mask-shape")
MESSAGES = (
    r"Attention mask should be of size \([\d, ]+\), but is torch\.Size\(\[[\d, ]+\]\)",
    r"size of tensor a \(\d+\) must match the size of tensor b \(\d+\) "
    r"at non-singleton dimension 3",
    r"operands could not be broadcast together with shapes \(1,1,1,\d+\) \([\d,]+\)",
    r"Incompatible shapes for broadcasting: shapes=\[\(1, 1, 1, \d+\), \(1, \d+, 1, \d+\)",
    r"condition \[1,1,1,\d+\], then \[1,\d+,1,\d+\], and else",
)
SYMPTOMS = (
    "attention mask shape error on the second generation step",
    "past_key_values with attention_mask of the new tokens only",
    "mask length does not grow with the kv cache",
)


def _inputs() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    q = rng.standard_normal((1, 2, 1, 4))  # (B, H, 1, D): the newest token
    k = rng.standard_normal((1, 2, 12, 4))  # (B, H, S, D): 8 prompt + 4 generated
    v = rng.standard_normal((1, 2, 12, 4))
    prompt_mask = np.arange(8) >= 2  # (8,): the prompt was left-padded by 2
    return q, k, v, prompt_mask[None, None, None, :]  # (1, 1, 1, 8)


def _attend(q: np.ndarray, k: np.ndarray, v: np.ndarray, mask: np.ndarray) -> np.ndarray:
    scores = np.where(mask, q @ k.swapaxes(-1, -2) / 2.0, -np.inf)
    weights = np.exp(scores - scores.max(-1, keepdims=True))
    return weights / weights.sum(-1, keepdims=True) @ v


# --8<-- [start:broken]
def broken() -> np.ndarray:
    q, k, v, mask = _inputs()
    return _attend(q, k, v, mask)  # 8 mask columns, 12 cached keys


# --8<-- [end:broken]


# --8<-- [start:fixed]
def fixed() -> np.ndarray:
    q, k, v, mask = _inputs()
    new = k.shape[-2] - mask.shape[-1]  # tokens added to the cache since the prompt
    mask = np.concatenate([mask, np.ones((1, 1, 1, new), dtype=bool)], axis=-1)
    return _attend(q, k, v, mask)


# --8<-- [end:fixed]


def reference() -> np.ndarray:
    q, k, v, _ = _inputs()
    keep = np.arange(12) >= 2
    return attention(q, k, v, attend_mask=keep[None, None, None, :])


TORCH_EXPECTED = RuntimeError
TORCH_MATCH = (
    r"The size of tensor a \(12\) must match the size of tensor b \(8\) "
    r"at non-singleton dimension 3"
)


def torch_broken() -> object:
    import torch
    import torch.nn.functional as F

    q, k, v, mask = (torch.from_numpy(a) for a in _inputs())
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)


def torch_fixed() -> object:
    import torch
    import torch.nn.functional as F

    q, k, v, mask = (torch.from_numpy(a) for a in _inputs())
    mask = torch.cat([mask, mask.new_ones(1, 1, 1, k.shape[-2] - mask.shape[-1])], dim=-1)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)


JAX_EXPECTED = ValueError
JAX_MATCH = (
    r"Incompatible shapes for broadcasting: shapes=\[\(1, 1, 1, 8\), \(1, 2, 1, 12\), \(\)\]"
)


def jax_broken() -> object:
    import jax
    import jax.numpy as jnp

    q, k, v, mask = (jnp.asarray(a) for a in _inputs())
    scores = jnp.where(mask, q @ k.swapaxes(-1, -2) / 2.0, -jnp.inf)
    return jax.nn.softmax(scores, axis=-1) @ v


def jax_fixed() -> object:
    import jax
    import jax.numpy as jnp

    q, k, v, mask = (jnp.asarray(a) for a in _inputs())
    mask = jnp.concatenate([mask, jnp.ones((1, 1, 1, 4), dtype=bool)], axis=-1)
    scores = jnp.where(mask, q @ k.swapaxes(-1, -2) / 2.0, -jnp.inf)
    return jax.nn.softmax(scores, axis=-1) @ v


TF_EXPECTED = "tensorflow.errors.InvalidArgumentError"
TF_MATCH = r"condition \[1,1,1,8\], then \[1,2,1,12\], and else \[\] must be broadcastable"


def tf_broken() -> object:
    import tensorflow as tf

    q, k, v, mask = (tf.constant(a) for a in _inputs())
    scores = tf.matmul(q, k, transpose_b=True) / 2.0
    scores = tf.where(mask, scores, float("-inf"))
    return tf.matmul(tf.nn.softmax(scores, axis=-1), v)


def tf_fixed() -> object:
    import tensorflow as tf

    q, k, v, mask = (tf.constant(a) for a in _inputs())
    mask = tf.concat([mask, tf.ones((1, 1, 1, 4), dtype=tf.bool)], axis=-1)
    scores = tf.where(mask, tf.matmul(q, k, transpose_b=True) / 2.0, float("-inf"))
    return tf.matmul(tf.nn.softmax(scores, axis=-1), v)
