"""Rotary position embeddings as model code writes them (the user's code in the rotary cases).

The functions take the array's own ``cat`` (``np.concatenate``, ``torch.cat``,
``jnp.concatenate`` along the last axis) so the same lines serve NumPy, PyTorch and JAX;
``cos`` and ``sin`` are ``(L, D/2)``, one angle per position and frequency pair.
"""

from collections.abc import Callable
from typing import Any

import numpy as np

Cat = Callable[[list[Any]], Any]


def np_cat(parts: list[Any]) -> Any:
    """``np.concatenate`` along the last axis."""
    return np.concatenate(parts, axis=-1)


def inverse_frequencies(dim: int, base: float = 10000.0) -> np.ndarray:
    """``(dim/2,)`` rotary frequencies ``base ** (-2i / dim)``, float64."""
    return base ** (-np.arange(0, dim, 2) / dim)


def rotate_half_split(x: Any, cos: Any, sin: Any, cat: Cat = np_cat) -> Any:
    """GPT-NeoX / Hugging Face Llama: feature ``i`` pairs with ``i + D/2``."""
    h = x.shape[-1] // 2
    x1, x2 = x[..., :h], x[..., h:]
    return cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin])


def rotate_interleaved(x: Any, cos: Any, sin: Any, cat: Cat = np_cat) -> Any:
    """GPT-J / Meta's Llama (complex view): feature ``2i`` pairs with ``2i + 1``."""
    x0, x1 = x[..., 0::2], x[..., 1::2]
    pairs = cat([(x0 * cos - x1 * sin)[..., None], (x1 * cos + x0 * sin)[..., None]])
    return pairs.reshape(tuple(x.shape))


def rotate_complex(x: np.ndarray, positions: np.ndarray, dim: int | None = None) -> np.ndarray:
    """Half-split rotary written another way, for references: multiply by ``e^{i·angle}``.

    Args:
        x: ``(..., L, D)``.
        positions: ``(L,)`` positions.
        dim: how many leading features to rotate (partial rotary); all by default.
    """
    dim = x.shape[-1] if dim is None else dim
    h = dim // 2
    angles = np.asarray(positions, dtype=np.float64)[:, None] * inverse_frequencies(dim)
    z = (x[..., :h] + 1j * x[..., h:dim]) * np.exp(1j * angles)
    return np.concatenate([z.real, z.imag, x[..., dim:]], axis=-1)
