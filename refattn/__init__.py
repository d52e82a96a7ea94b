"""refattn: a NumPy reference for batched attention, spelled as einsum.

The entry point is :func:`attention`; masks are built by :mod:`refattn.masks`; framework
semantics are reproduced by :mod:`refattn.compat`; every error is in :mod:`refattn.errors`.
"""

from refattn import decoding, einsums, errors, masks, multihead
from refattn.decoding import KVCache
from refattn.errors import (
    AttentionArgumentError,
    AttentionDTypeError,
    AttentionMemoryError,
    AttentionShapeError,
    AttentionValueError,
    FullyMaskedRowError,
    RefattnError,
)
from refattn.gradients import AttentionGradients, attention_backward
from refattn.multihead import MultiHeadResult, merge_heads, multi_head_attention, project_heads
from refattn.reference import AttentionOptions, AttentionResult, attention

__all__ = [
    "AttentionArgumentError",
    "AttentionDTypeError",
    "AttentionGradients",
    "AttentionMemoryError",
    "AttentionOptions",
    "AttentionResult",
    "AttentionShapeError",
    "AttentionValueError",
    "FullyMaskedRowError",
    "KVCache",
    "MultiHeadResult",
    "RefattnError",
    "attention",
    "attention_backward",
    "decoding",
    "einsums",
    "errors",
    "masks",
    "merge_heads",
    "multi_head_attention",
    "multihead",
    "project_heads",
]
