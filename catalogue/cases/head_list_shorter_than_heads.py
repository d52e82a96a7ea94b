"""Indexing more heads than the split produced.

What happens:
    The loop over ``num_heads`` raises ``IndexError: list index out of range`` at
    ``heads[6]``: splitting 12 features into chunks of ``ceil(12 / 8) = 2`` gave only 6
    heads. With ``torch.chunk``, which returns a tuple, the same loop raises
    ``IndexError: tuple index out of range``.

Why:
    ``torch.chunk(x, 8, dim=-1)`` on 12 features makes chunks of ``ceil(12 / 8) = 2``
    features, so only 6 chunks exist, and the code (like the list of slices here) assumed
    8. ``np.array_split`` and ``torch.tensor_split`` do make 8 pieces, of sizes 2 and 1:
    no IndexError, but ``np.stack`` of the heads raises ``ValueError: all input arrays
    must have the same shape`` (``torch.stack``: ``RuntimeError: stack expects each tensor
    to be equal size``; see ``chunk_gives_unequal_heads``), while concatenating the
    head outputs silently works.

Fix:
    Require ``embed_dim % num_heads == 0`` up front, and split heads with a reshape:
    ``x.reshape(B, L, num_heads, head_dim)``, which fails loudly on a bad size.
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
MESSAGES = (r"(?:list|tuple) index out of range",)
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

    x = torch.randn(2, 5, 12)
    heads = torch.chunk(x, NUM_HEADS, dim=-1)  # 6 chunks of 2 features
    return torch.stack([heads[h] for h in range(NUM_HEADS)], dim=1)
