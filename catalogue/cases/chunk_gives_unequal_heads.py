"""Heads split with ``array_split``/``chunk`` when the size does not divide.

What happens:
    ``np.array_split(x, 8, axis=-1)`` on 100 features returns 8 pieces of 13 and 12
    features; stacking them into a head axis raises ``ValueError: all input arrays must
    have the same shape``. ``torch.chunk`` returns pieces of 13 (the last of 9) and
    ``torch.stack`` raises ``RuntimeError: stack expects each tensor to be equal size``;
    ``jnp.stack`` of ``jnp.array_split``'s pieces ``ValueError: All input arrays must have
    the same shape``. TensorFlow's ``tf.split(x, 8)`` refuses the split itself:
    ``InvalidArgumentError: Number of ways to split should evenly divide the split
    dimension``.

Why:
    ``array_split`` and ``chunk`` never fail on an uneven split: they return unequal pieces
    (``torch.chunk`` makes pieces of ``ceil(E / H)`` and so may return fewer than asked:
    10 features in 8 chunks give 5). ``torch.split(x, E // H)`` is no cure: on 100
    features it returns 9 pieces, 8 of 12 and one of 4. When the size divides, as 512 into
    8, ``torch.chunk(x, 8)`` and ``torch.split(x, 64)`` return the same 8 equal pieces.

Fix:
    Make ``embed_dim`` a multiple of ``num_heads`` and split with a reshape, which fails at
    the split with a clear shape instead of at a later stack.
"""

import numpy as np

KIND = "exception"
EXPECTED = ValueError
MATCH = r"all input arrays must have the same shape"
TAGS = ("head-split", "head-index")
SEED_CLAIMS = (
    (
        "004_4cf73df6a2e65df9.txt",
        "Example 2: torch.chunk(input, num_heads, dim=-1) 'can cause issues with unequal "
        "dimensions' and IndexErrors; torch.split(input, head_dim, dim=-1) is the fix",
        "False for its own sizes: with embedding_dim 512 and 8 heads, torch.chunk(x, 8, -1) "
        "and torch.split(x, 64, -1) return the same 8 tensors (32, 20, 64) and nothing "
        "fails. With 100 features chunk returns 7 pieces of 13 and one of 9, and split(x, "
        "100 // 8) returns 9 pieces (8 of 12, one of 4), so split is no fix. Neither raises "
        "and torch.cat of the pieces works; torch.stack raises RuntimeError 'stack expects "
        "each tensor to be equal size'. No IndexError unless code indexes past the pieces "
        "(see head_list_shorter_than_heads).",
    ),
)
MESSAGES = (
    r"all input arrays must have the same shape",
    r"stack expects each tensor to be equal size",
    r"Shapes of all inputs must match",
    r"Number of ways to split should evenly divide the split dimension",
)
SYMPTOMS = ("heads have different sizes", "torch.chunk gives fewer heads than expected")


def _inputs() -> np.ndarray:
    return np.random.default_rng(0).standard_normal((2, 5, 100))  # (B, L, E): E = 100


# --8<-- [start:broken]
def broken() -> np.ndarray:
    x = _inputs()
    heads = np.array_split(x, 8, axis=-1)  # widths 13, 13, 13, 13, 12, 12, 12, 12
    return np.stack(heads, axis=1)  # (B, H, L, D) wanted


# --8<-- [end:broken]


# --8<-- [start:fixed]
def fixed() -> np.ndarray:
    x = _inputs()
    b, length, e = x.shape
    num_heads = 4  # divides 100: heads of 25
    return x.reshape(b, length, num_heads, e // num_heads).transpose(0, 2, 1, 3)


# --8<-- [end:fixed]


TORCH_EXPECTED = RuntimeError
TORCH_MATCH = r"stack expects each tensor to be equal size"


def torch_broken() -> object:
    import torch

    x = torch.randn(2, 5, 100)
    heads = torch.chunk(x, 8, dim=-1)  # 7 chunks of 13, one of 9
    return torch.stack(heads, dim=1)


def torch_fixed() -> object:
    import torch

    x = torch.from_numpy(_inputs())
    b, length, e = x.shape
    num_heads = 4  # divides 100
    return x.view(b, length, num_heads, e // num_heads).transpose(1, 2)  # (B, H, L, D)


JAX_EXPECTED = ValueError
JAX_MATCH = r"All input arrays must have the same shape\. Got \(2, 5, 13\)"


def jax_broken() -> object:
    import jax.numpy as jnp

    x = jnp.asarray(_inputs())
    heads = jnp.array_split(x, 8, axis=-1)  # widths 13 and 12
    return jnp.stack(heads, axis=1)


def jax_fixed() -> object:
    import jax.numpy as jnp

    x = jnp.asarray(_inputs())
    b, length, e = x.shape
    return x.reshape(b, length, 4, e // 4).transpose(0, 2, 1, 3)


TF_EXPECTED = "tensorflow.errors.InvalidArgumentError"
TF_MATCH = r"Number of ways to split should evenly divide the split dimension, but got split_dim 2"
TF_NOTE = (
    "`tf.split(x, 8, axis=-1)` refuses the uneven split itself, before any stack: "
    "TensorFlow has no `chunk` that returns unequal pieces."
)


def tf_broken() -> object:
    import tensorflow as tf

    x = tf.constant(_inputs())
    heads = tf.split(x, 8, axis=-1)  # 100 features into 8 heads
    return tf.stack(heads, axis=1)


def tf_fixed() -> object:
    import tensorflow as tf

    x = tf.constant(_inputs())
    b, length, e = x.shape
    return tf.transpose(tf.reshape(x, (b, length, 4, e // 4)), (0, 2, 1, 3))
