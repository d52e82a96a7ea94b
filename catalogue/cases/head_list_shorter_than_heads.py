"""Indexing more heads than the split produced.

What happens:
    ``heads[h]`` raises ``IndexError: list index out of range`` (NumPy's ``array_split``
    returns a list); with ``torch.chunk``, which returns a tuple,
    ``IndexError: tuple index out of range``.

Why:
    ``torch.chunk(x, 8, dim=-1)`` on 12 features makes chunks of ``ceil(12 / 8) = 2``
    features, so only 6 chunks exist; ``np.array_split`` makes 8 pieces but of sizes 2 and
    1. Either way the loop over ``num_heads`` assumes 8 equal pieces that are not there.

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
        "Partly: an IndexError happens only when code indexes more heads than the split "
        "produced, as here (torch.chunk(x, 8) on 12 features gives 6 chunks). Unequal "
        "pieces themselves fail later with a RuntimeError/ValueError, not an IndexError.",
    ),
)
MESSAGES = (r"(?:list|tuple) index out of range",)
SYMPTOMS = ("index error in the loop over attention heads",)

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
