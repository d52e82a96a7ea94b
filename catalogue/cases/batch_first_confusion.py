"""A batch-first input read as sequence-first.

What happens:
    No error when the shapes allow it. A ``(B, L, E)`` batch fed to code that expects
    ``(L, B, E)`` — as ``torch.nn.MultiheadAttention`` does unless ``batch_first=True`` —
    makes every position attend across the *batch*: token ``l`` of example ``b`` mixes
    with token ``l`` of the other examples, and never sees its own sequence.

Why:
    Attention treats the first axis it is told about as the sequence. With the axes
    swapped, the "sequence" is the batch and the "batch" is the positions. Only the sizes
    could have told them apart, and ``nn.MultiheadAttention`` checks only ``E``.

Fix:
    Pass ``batch_first=True`` to ``nn.MultiheadAttention`` (or transpose the input to
    ``(L, B, E)``), and name axes in comments after every reshape: ``# (B, L, E)``.
"""

import numpy as np

from refattn import attention
from refattn.checks import check_close
from refattn.errors import CheckFailure

from ._common import softmax

KIND = "silent"
EXPECTED = CheckFailure
MATCH = r"output differs from the reference at \d+ of \d+ entries"
TAGS = ("layout-confusion",)
MESSAGES = (r"was expecting embedding dimension of \d+, but got \d+",)
SYMPTOMS = (
    "examples in a batch influence each other",
    "results change with batch size",
    "batch_first confusion in MultiheadAttention",
)


def _inputs() -> np.ndarray:
    return np.random.default_rng(0).standard_normal((3, 5, 8))  # (B, L, E), batch first


def _self_attention(x: np.ndarray) -> np.ndarray:
    """Attention for sequence-first input ``(L, B, E)``, like nn.MultiheadAttention."""
    x = x.swapaxes(0, 1)  # (B, L, E)
    out = softmax(x @ x.swapaxes(-1, -2) / np.sqrt(x.shape[-1])) @ x
    return out.swapaxes(0, 1)  # back to (L, B, E)


# --8<-- [start:broken]
def broken() -> np.ndarray:
    x = _inputs()  # (B, L, E)
    return _self_attention(x)  # read as (L, B, E): attends across the batch


# --8<-- [end:broken]


# --8<-- [start:fixed]
def fixed() -> np.ndarray:
    x = _inputs()  # (B, L, E)
    return _self_attention(x.swapaxes(0, 1)).swapaxes(0, 1)  # (L, B, E) in, (B, L, E) out


# --8<-- [end:fixed]


def reference() -> np.ndarray:
    x = _inputs()[:, None]  # (B, 1, L, E)
    return attention(x, x, x)[:, 0]


def detect(output: np.ndarray) -> None:
    check_close(output, reference())
