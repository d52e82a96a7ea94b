"""What several cases share, written the way users write it (not part of any snippet's bug)."""

from typing import Any

import numpy as np

from refattn import attention


def softmax(scores: np.ndarray, axis: int = -1) -> np.ndarray:
    """The usual max-subtracted softmax over ``axis`` (the key axis by default)."""
    shifted = np.exp(scores - scores.max(axis=axis, keepdims=True))
    return shifted / shifted.sum(axis=axis, keepdims=True)


def reference_weights(query: np.ndarray, key: np.ndarray, **options: Any) -> np.ndarray:
    """The attention weights ``(..., L, S)`` refattn computes: what a fixed mask case returns.

    ``query (..., H, L, D)`` and ``key (..., H, S, D)``; three-dimensional ``(B, L, D)``
    inputs are one head, and so are their weights ``(B, L, S)``. ``options`` go to
    :func:`refattn.attention` (masks, ``causal``, ``key_lengths``, ``scale``).
    """
    single_head = query.ndim == 3
    if single_head:
        query, key = query[:, None], key[:, None]
    weights = attention(query, key, key, return_weights=True, **options).weights
    assert weights is not None
    return weights[:, 0] if single_head else weights
