"""A key transpose written for four axes, applied to three.

What happens:
    ``k.transpose(0, 1, 3, 2)`` on a ``(B, S, D)`` key raises ``ValueError: axes don't
    match array``. PyTorch's ``k.transpose(2, 3)`` raises ``IndexError: Dimension out of
    range (expected to be in range of [-3, 2], but got 3)``.

Why:
    The code was written for ``(B, H, S, D)`` keys; a single-head (or unbatched) caller
    passes one axis fewer. NumPy's ``transpose`` needs a permutation of *all* axes, and
    axis 3 does not exist.

Fix:
    Swap the last two axes, whatever comes before them: ``k.swapaxes(-1, -2)`` (PyTorch:
    ``k.transpose(-2, -1)``, or ``k.mT``).
"""

import numpy as np

from catalogue.cases._common import softmax
from refattn import attention

KIND = "exception"
EXPECTED = ValueError
MATCH = r"axes don't match array"
TAGS = ("axis-out-of-range", "layout-confusion")
MESSAGES = (
    r"axes don't match array",
    r"Dimension out of range \(expected to be in range of \[-?\d+, -?\d+\], but got -?\d+\)",
    r"axis\d?: axis -?\d+ is out of bounds for array of dimension \d+",
    r"transpose permutation isn't a permutation of operand dimensions",
)
SYMPTOMS = ("transpose fails for a single head",)


def _inputs() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    q, k, v = rng.standard_normal((3, 2, 5, 8))  # (B, S, D): no head axis
    return q, k, v


# --8<-- [start:broken]
def broken() -> np.ndarray:
    q, k, v = _inputs()
    scores = q @ k.transpose(0, 1, 3, 2) / np.sqrt(8)  # written for (B, H, S, D)
    return softmax(scores) @ v


# --8<-- [end:broken]


# --8<-- [start:fixed]
def fixed() -> np.ndarray:
    q, k, v = _inputs()
    scores = q @ k.swapaxes(-1, -2) / np.sqrt(8)  # any number of leading axes
    return softmax(scores) @ v


# --8<-- [end:fixed]


def reference() -> np.ndarray:
    q, k, v = _inputs()
    return attention(q[:, None], k[:, None], v[:, None])[:, 0]


TORCH_EXPECTED = IndexError
TORCH_MATCH = r"Dimension out of range \(expected to be in range of \[-3, 2\], but got 3\)"


def torch_broken() -> object:
    import torch

    k = torch.randn(2, 5, 8)
    return k.transpose(2, 3)
