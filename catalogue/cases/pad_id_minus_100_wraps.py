"""A negative pad id (-1) used as an embedding index.

What happens:
    NumPy reads index ``-1`` as "the last row": every padded position silently gets the
    embedding of the last token of the vocabulary. No error, wrong input to attention.
    PyTorch's ``nn.Embedding`` refuses it with ``IndexError: index out of range in self``,
    and ``-100`` (the label ignore index) fails the same way in both frameworks.

Why:
    ``-1`` and ``-100`` are conventions for "no token" in labels and padding, not valid
    rows. NumPy (and JAX, which clamps out-of-range gathers) accepts negative indices;
    PyTorch's embedding does not. Ported code changes behaviour without a word.

Fix:
    Pad with a real id (``tokenizer.pad_token_id``) and mask it, or replace negative ids
    before the lookup and zero their rows: ``np.where(ids >= 0, ids, 0)``.
"""

import numpy as np

from refattn.checks import check_close
from refattn.errors import CheckFailure

KIND = "silent"
EXPECTED = CheckFailure
MATCH = r"lookup differs from the reference at \d+ of \d+ entries"
TAGS = ("token-out-of-range",)
MESSAGES = (r"index out of range in self", r"index -\d+ is out of bounds for axis 0")
SYMPTOMS = ("padding tokens get the embedding of the last token", "pad id -100 index error")

PAD = -1


def _inputs() -> tuple[np.ndarray, np.ndarray]:
    table = np.random.default_rng(0).standard_normal((50, 4))  # (vocab, E)
    ids = np.array([[3, 7, 9, PAD, PAD], [4, 1, PAD, PAD, PAD]])  # (B, L), padded with -1
    return table, ids


# --8<-- [start:broken]
def broken() -> np.ndarray:
    table, ids = _inputs()
    return table[ids]  # -1 wraps around to the last row


# --8<-- [end:broken]


# --8<-- [start:fixed]
def fixed() -> np.ndarray:
    table, ids = _inputs()
    valid = ids >= 0
    return np.where(valid[..., None], table[np.where(valid, ids, 0)], 0.0)


# --8<-- [end:fixed]


def detect(output: np.ndarray) -> None:
    table, ids = _inputs()
    expected = np.zeros(ids.shape + table.shape[1:])
    for b, i in zip(*np.nonzero(ids >= 0), strict=True):
        expected[b, i] = table[ids[b, i]]
    check_close(output, expected, name="lookup")


TORCH_EXPECTED = IndexError
TORCH_MATCH = r"index out of range in self"


def torch_broken() -> object:
    import torch

    embedding = torch.nn.Embedding(50, 4)
    return embedding(torch.tensor([[3, 7, 9, PAD, PAD]]))
