"""Head outputs of different batch sizes concatenated.

What happens:
    ``np.concatenate(heads, axis=-1)`` raises ``ValueError: all the input array dimensions
    except for the concatenation axis must match exactly, but along dimension 0, the array
    at index 0 has size 4 and the array at index 3 has size 3``; ``torch.cat`` raises
    ``RuntimeError: Sizes of tensors must match except in dimension 2. Expected size 4 but
    got size 3 for tensor number 3 in the list.`` Not an ``IndexError``.

Why:
    One head was computed from a different batch than the others: here, a cached result
    from the last, smaller batch of an epoch. Concatenation joins along one axis and
    needs every other axis equal.

Fix:
    Compute all heads from the same batch in one call (split heads with a reshape and
    merge them with ``transpose`` + ``reshape``), and never cache per-batch tensors across
    batches.
"""

import numpy as np

from ._common import softmax

KIND = "exception"
EXPECTED = ValueError
MATCH = r"except for the concatenation axis must match exactly, but along dimension 0"
TAGS = ("batch-mismatch",)
SEED_CLAIMS = (
    (
        "004_4cf73df6a2e65df9.txt",
        "Section 2 and Example 2: batch-size discrepancies when concatenating head outputs "
        "cause IndexErrors",
        "False class: concatenation raises ValueError in NumPy and RuntimeError in PyTorch "
        "('Sizes of tensors must match except in dimension 2'), never IndexError.",
    ),
)
MESSAGES = (
    r"all the input array dimensions except for the concatenation axis must match",
    r"Sizes of tensors must match except in dimension",
    r"ConcatOp : Dimension(?:s of inputs should match| \d+ in both shapes must be equal)",
    r"Cannot concatenate arrays with shapes that differ in dimensions other than",
)
SYMPTOMS = ("error on the last batch of the epoch", "concatenating attention heads fails")


def _head(x: np.ndarray) -> np.ndarray:
    return softmax(x @ x.swapaxes(-1, -2) / np.sqrt(x.shape[-1])) @ x  # (B, L, D)


def _inputs() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    batch = rng.standard_normal((4, 6, 4, 8))  # (B, L, H, D): this batch
    last = rng.standard_normal((3, 6, 4, 8))  # the previous, smaller batch
    return batch, last


# --8<-- [start:broken]
def broken() -> np.ndarray:
    batch, last = _inputs()
    heads = [_head(batch[:, :, h]) for h in range(3)] + [_head(last[:, :, 3])]  # stale head
    return np.concatenate(heads, axis=-1)


# --8<-- [end:broken]


# --8<-- [start:fixed]
def fixed() -> np.ndarray:
    batch, _ = _inputs()
    heads = [_head(batch[:, :, h]) for h in range(batch.shape[2])]
    return np.concatenate(heads, axis=-1)  # (B, L, H * D)


# --8<-- [end:fixed]


TORCH_EXPECTED = RuntimeError
TORCH_MATCH = r"Sizes of tensors must match except in dimension 2"


def torch_broken() -> object:
    import torch

    heads = [torch.randn(4, 6, 8) for _ in range(3)] + [torch.randn(3, 6, 8)]
    return torch.cat(heads, dim=-1)
