"""refattn: a NumPy reference for batched attention, spelled as einsum.

The entry point is :func:`attention`; masks are built by :mod:`refattn.masks`; framework
semantics are reproduced by :mod:`refattn.compat`; every error is in :mod:`refattn.errors`.

The names below are imported on first use (PEP 562), so ``import refattn`` costs nothing
until one is used and the command line answers ``refattn diagnose`` without loading NumPy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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
    from refattn.multihead import (
        MultiHeadResult,
        merge_heads,
        multi_head_attention,
        project_heads,
    )
    from refattn.reference import AttentionOptions, AttentionResult, attention

# each public name and the module that defines it (a module name alone: the module itself)
_HOMES = {
    "AttentionArgumentError": "refattn.errors",
    "AttentionDTypeError": "refattn.errors",
    "AttentionGradients": "refattn.gradients",
    "AttentionMemoryError": "refattn.errors",
    "AttentionOptions": "refattn.reference",
    "AttentionResult": "refattn.reference",
    "AttentionShapeError": "refattn.errors",
    "AttentionValueError": "refattn.errors",
    "FullyMaskedRowError": "refattn.errors",
    "KVCache": "refattn.decoding",
    "MultiHeadResult": "refattn.multihead",
    "RefattnError": "refattn.errors",
    "attention": "refattn.reference",
    "attention_backward": "refattn.gradients",
    "decoding": "",
    "einsums": "",
    "errors": "",
    "masks": "",
    "merge_heads": "refattn.multihead",
    "multi_head_attention": "refattn.multihead",
    "multihead": "",
    "project_heads": "refattn.multihead",
}

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


def __getattr__(name: str) -> Any:
    """Import a public name of the package on its first use."""
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'refattn' has no attribute {name!r}")
    value = (
        importlib.import_module(f"refattn.{name}")
        if not home
        else getattr(importlib.import_module(home), name)
    )
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_HOMES))
