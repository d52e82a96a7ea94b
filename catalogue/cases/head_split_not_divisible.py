"""An embedding size that the number of heads does not divide.

What happens:
    Splitting ``(B, L, 100)`` into 8 heads with ``x.reshape(B, L, 8, 100 // 8)`` raises
    ``ValueError: cannot reshape array of size 1000 into shape (2,5,8,12)``; PyTorch's
    ``view`` raises ``RuntimeError: shape '[2, 5, 8, 12]' is invalid for input of size
    1000``; JAX's ``reshape`` raises ``TypeError: cannot reshape array of shape (2, 5,
    100) (size 1000) into shape (2, 5, 8, 12) (size 960)``; TensorFlow's ``tf.reshape``
    ``InvalidArgumentError: Input to reshape is a tensor with 1000 values, but the
    requested shape has 960 [Op:Reshape]``.

Why:
    ``head_dim = embed_dim // num_heads`` rounds 12.5 down to 12, and 8 heads of 12
    features hold 96 of the 100 features.

Fix:
    Choose ``embed_dim`` and ``num_heads`` with ``embed_dim % num_heads == 0`` (here 10
    heads of 10, or 4 of 25), and check it where the layer is built.

Sources:
    https://github.com/rasbt/LLMs-from-scratch/issues/444 d_out must be divisible by num_heads
    https://github.com/emadeldeen24/TS-TCC/issues/30 can't divide axis of length 100 in chunks of 3
"""

import numpy as np

KIND = "exception"
EXPECTED = ValueError
MATCH = r"cannot reshape array of size 1000 into shape \(2,5,8,12\)"
TAGS = ("head-split",)
MESSAGES = (
    r"cannot reshape array of size \d+ into shape",
    r"shape '\[[-\d, ]+\]' is invalid for input of size \d+",
    r"embed_dim must be divisible by num_heads",
    r"cannot reshape array of shape \([\d, ]*\) \(size \d+\) into shape",
    r"Input to reshape is a tensor with \d+ values, but the requested shape has \d+",
    r"can't divide axis of length \d+ in chunks of \d+",
)
SYMPTOMS = (
    "reshape error when splitting into heads",
    "embedding dimension must be divisible by the number of heads",
    "hidden size not divisible by the number of heads",
)


def _inputs() -> np.ndarray:
    return np.random.default_rng(0).standard_normal((2, 5, 100))  # (B, L, E): E = 100


# --8<-- [start:broken]
def broken() -> np.ndarray:
    x = _inputs()
    num_heads = 8
    b, length, e = x.shape
    return x.reshape(b, length, num_heads, e // num_heads)  # 8 * 12 != 100


# --8<-- [end:broken]


# --8<-- [start:fixed]
def fixed() -> np.ndarray:
    x = _inputs()
    num_heads = 10
    b, length, e = x.shape
    if e % num_heads:
        raise ValueError(f"embed_dim {e} is not divisible by num_heads {num_heads}")
    return x.reshape(b, length, num_heads, e // num_heads).transpose(0, 2, 1, 3)  # (B, H, L, D)


# --8<-- [end:fixed]


TORCH_EXPECTED = RuntimeError
TORCH_MATCH = r"shape '\[2, 5, 8, 12\]' is invalid for input of size 1000"


def torch_broken() -> object:
    import torch

    x = torch.randn(2, 5, 100)
    return x.view(2, 5, 8, 100 // 8)


def torch_fixed() -> object:
    import torch

    x = torch.from_numpy(_inputs())
    num_heads = 10
    b, length, e = x.shape
    if e % num_heads:
        raise ValueError(f"embed_dim {e} is not divisible by num_heads {num_heads}")
    return x.view(b, length, num_heads, e // num_heads).transpose(1, 2)  # (B, H, L, D)


JAX_EXPECTED = TypeError
JAX_MATCH = (
    r"cannot reshape array of shape \(2, 5, 100\) \(size 1000\) into shape \(2, 5, 8, 12\) "
    r"\(size 960\)"
)


def jax_broken() -> object:
    import jax.numpy as jnp

    x = jnp.asarray(_inputs())
    b, length, e = x.shape
    return x.reshape(b, length, 8, e // 8)


def jax_fixed() -> object:
    import jax.numpy as jnp

    x = jnp.asarray(_inputs())
    b, length, e = x.shape
    return x.reshape(b, length, 10, e // 10).transpose(0, 2, 1, 3)


TF_EXPECTED = "tensorflow.errors.InvalidArgumentError"
TF_MATCH = r"Input to reshape is a tensor with 1000 values, but the requested shape has 960"


def tf_broken() -> object:
    import tensorflow as tf

    x = tf.constant(_inputs())
    b, length, e = x.shape
    return tf.reshape(x, (b, length, 8, e // 8))  # split_heads of the TF tutorial


def tf_fixed() -> object:
    import tensorflow as tf

    x = tf.constant(_inputs())
    b, length, e = x.shape
    return tf.transpose(tf.reshape(x, (b, length, 10, e // 10)), (0, 2, 1, 3))
