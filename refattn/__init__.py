"""refattn: a NumPy reference for batched attention, spelled as einsum.

The entry point is :func:`attention`; masks are built by :mod:`refattn.masks`; framework
semantics are reproduced by :mod:`refattn.compat`; every error is in :mod:`refattn.errors`.
"""

from refattn import einsums, errors, masks
from refattn.errors import (
    AttentionDTypeError,
    AttentionShapeError,
    AttentionValueError,
    FullyMaskedRowError,
    RefattnError,
)
from refattn.gradients import AttentionGradients, attention_backward
from refattn.reference import AttentionOptions, AttentionResult, attention

__all__ = [
    "AttentionDTypeError",
    "AttentionGradients",
    "AttentionOptions",
    "AttentionResult",
    "AttentionShapeError",
    "AttentionValueError",
    "FullyMaskedRowError",
    "RefattnError",
    "attention",
    "attention_backward",
    "einsums",
    "errors",
    "masks",
]
