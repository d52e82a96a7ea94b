"""``torch.chunk`` returning fewer heads than asked, then indexed by head.

What happens:
    ``heads = torch.chunk(x, 8, dim=-1)`` on 12 features returns 6 chunks of 2, not 8, and
    the loop ``for h in range(num_heads): heads[h]`` raises ``IndexError: tuple index out
    of range`` at ``heads[6]``. The NumPy port of the same split (slices of
    ``ceil(12 / 8) = 2`` features) raises ``IndexError: list index out of range``.
    ``jnp.split`` and ``tf.split`` refuse the uneven split outright (``ValueError: array
    split does not result in an equal division``; ``InvalidArgumentError: Number of ways
    to split should evenly divide the split dimension``).

Why:
    ``torch.chunk`` makes chunks of ``ceil(size / chunks)`` and returns however many that
    gives, which may be fewer than asked: 12 features in 8 chunks of 2 are 6 chunks, and 4
    rows in 3 chunks are 2 (reported as a bug in pytorch#145026; it is documented
    behaviour). Code that splits heads with ``chunk`` and then indexes ``num_heads``
    heads assumes 8. ``np.array_split`` and ``torch.tensor_split`` do make 8 pieces, of
    unequal sizes: stacking those fails instead (see ``chunk_gives_unequal_heads``).

Fix:
    Require ``embed_dim % num_heads == 0`` where the layer is built, and split heads with a
    reshape: ``x.view(B, L, num_heads, head_dim)``, which fails loudly on a bad size. If
    you need exactly ``n`` pieces, ``torch.tensor_split(x, n, dim)`` returns ``n``.

Sources:
    https://github.com/pytorch/pytorch/issues/145026 torch.chunk(x, 3, 0) on 4 rows returns 2 chunks
"""

import numpy as np

KIND = "exception"
EXPECTED = IndexError
MATCH = r"list index out of range"
TAGS = ("head-index", "head-split")
SEED_CLAIMS = (
    (
        "004_4cf73df6a2e65df9.txt",
        "Example 2: unequal splitting with torch.chunk 'can cause issues with unequal "
        "dimensions' that end in an IndexError",
        "Not with the article's numbers: torch.chunk(x, 8) on 512 features gives 8 equal "
        "chunks of 64, the same as torch.split(x, 64). An IndexError needs code that "
        "indexes more heads than chunks exist, as here (torch.chunk(x, 8) on 12 features "
        "gives 6 chunks). Unequal pieces (np.array_split, torch.tensor_split) raise no "
        "IndexError: stacking them raises ValueError/RuntimeError, concatenating works.",
    ),
)
MESSAGES = (
    r"(?:list|tuple) index out of range",
    r"array split does not result in an equal division",
)
SYMPTOMS = (
    "index error in the loop over attention heads",
    "torch.chunk returns fewer heads than num_heads",
)

NUM_HEADS = 8


def _inputs() -> np.ndarray:
    return np.random.default_rng(0).standard_normal((2, 5, 12))  # (B, L, E): 12 % 8 != 0


# --8<-- [start:broken]
def broken() -> np.ndarray:
    x = _inputs()
    head_dim = -(-x.shape[-1] // NUM_HEADS)  # ceil(12 / 8) = 2, as torch.chunk does
    heads = [x[..., i : i + head_dim] for i in range(0, x.shape[-1], head_dim)]  # 6 heads
    return np.stack([heads[h] for h in range(NUM_HEADS)], axis=1)


# --8<-- [end:broken]


# --8<-- [start:fixed]
def fixed() -> np.ndarray:
    x = _inputs()
    num_heads = 6  # a head count that divides embed_dim (or change embed_dim)
    if x.shape[-1] % num_heads:
        raise ValueError(f"embed_dim {x.shape[-1]} is not divisible by {num_heads} heads")
    b, length, e = x.shape
    return x.reshape(b, length, num_heads, e // num_heads).transpose(0, 2, 1, 3)


# --8<-- [end:fixed]


TORCH_EXPECTED = IndexError
TORCH_MATCH = r"tuple index out of range"


def torch_broken() -> object:
    import torch

    x = torch.from_numpy(_inputs())
    heads = torch.chunk(x, NUM_HEADS, dim=-1)  # 6 chunks of 2 features, not 8
    return torch.stack([heads[h] for h in range(NUM_HEADS)], dim=1)


def torch_fixed() -> object:
    import torch

    x = torch.from_numpy(_inputs())
    num_heads = 6  # divides 12
    if x.shape[-1] % num_heads:
        raise ValueError(f"embed_dim {x.shape[-1]} is not divisible by {num_heads} heads")
    b, length, e = x.shape
    return x.view(b, length, num_heads, e // num_heads).transpose(1, 2)


JAX_EXPECTED = ValueError
JAX_MATCH = r"array split does not result in an equal division: rest is 4"
JAX_NOTE = "JAX has no `chunk`; `jnp.split` refuses a split into unequal heads."


def jax_broken() -> object:
    import jax.numpy as jnp

    x = jnp.asarray(_inputs())
    heads = jnp.split(x, NUM_HEADS, axis=-1)
    return jnp.stack([heads[h] for h in range(NUM_HEADS)], axis=1)


TF_EXPECTED = "tensorflow.errors.InvalidArgumentError"
TF_MATCH = r"Number of ways to split should evenly divide the split dimension, but got split_dim 2"
TF_NOTE = "`tf.split` refuses a split into unequal heads: the index is never reached."


def tf_broken() -> object:
    import tensorflow as tf

    x = tf.constant(_inputs())
    heads = tf.split(x, NUM_HEADS, axis=-1)
    return tf.stack([heads[h] for h in range(NUM_HEADS)], axis=1)
