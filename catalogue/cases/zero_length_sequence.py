"""An empty sequence reaches attention.

What happens:
    A softmax over zero keys fails in the max-subtraction: NumPy raises
    ``ValueError: zero-size array to reduction operation maximum which has no identity``.
    Taking the last token of an empty sequence, ``h[-1]``, raises
    ``IndexError: index -1 is out of bounds for dimension 0 with size 0`` in PyTorch
    (``... for axis 0 with size 0`` in NumPy).

Why:
    Filtering (empty documents, a truncation to zero, a bucket with no tokens) leaves an
    example with ``S = 0``. There is nothing to normalise over and no last token; the code
    silently assumed at least one.

Fix:
    Drop empty examples before batching, or pad them to one masked position and treat a
    row with no keys by policy (refattn's ``fully_masked="zero"`` returns zeros).
"""

import numpy as np

from catalogue.cases._common import softmax
from refattn import attention

KIND = "exception"
EXPECTED = ValueError
MATCH = r"zero-size array to reduction operation maximum which has no identity"
TAGS = ("ragged-lengths",)
SEED_CLAIMS = (
    (
        "004_4cf73df6a2e65df9.txt",
        "Section 3: 'extremely short sequences' make a poorly designed attention "
        "mechanism fail with index errors",
        "Only for empty sequences, and not in attention itself: the softmax over zero keys "
        "raises ValueError (NumPy) or returns an empty tensor (PyTorch); the IndexError "
        "comes from taking the last token of an empty sequence. A one-token sequence works.",
    ),
)
MESSAGES = (
    r"zero-size array to reduction operation",
    r"index -1 is out of bounds for (?:dimension|axis) 0 with size 0",
)
SYMPTOMS = ("crash on an empty sequence", "error when a document has no tokens")


def _inputs() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    q = rng.standard_normal((3, 4))  # (L, D)
    k = rng.standard_normal((0, 4))  # (S, D): an empty context
    v = rng.standard_normal((0, 4))
    return q, k, v


# --8<-- [start:broken]
def broken() -> np.ndarray:
    q, k, v = _inputs()
    return softmax(q @ k.T / np.sqrt(4)) @ v  # max over zero keys


# --8<-- [end:broken]


# --8<-- [start:fixed]
def fixed() -> np.ndarray:
    q, k, v = _inputs()
    if k.shape[0] == 0:  # no keys: attend to nothing, return zeros
        return np.zeros((q.shape[0], v.shape[1]))
    return softmax(q @ k.T / np.sqrt(4)) @ v


# --8<-- [end:fixed]


def reference() -> np.ndarray:
    q, k, v = _inputs()
    return attention(q[None], k[None], v[None], fully_masked="zero")[0]


TORCH_EXPECTED = IndexError
TORCH_MATCH = r"index -1 is out of bounds for dimension 0 with size 0"


def torch_broken() -> object:
    import torch

    hidden = torch.randn(0, 8)  # (L, E) of an empty sequence
    return hidden[-1]  # the "last token" for a classifier head
