"""Rotary embeddings applied to ``(B, S, H, D)`` by a helper that reads positions from axis -2.

What happens:
    No error. A rotary helper written for ``(..., S, D)`` takes the positions from
    ``x.shape[-2]``. Given queries and keys in the ``(B, S, H, D)`` layout (straight from
    ``x.view(B, S, H, D)``, before the transpose to heads-first), it rotates along the
    *heads*: head ``h`` of every token gets angle ``h * freq``, and all 6 tokens share
    the same rotations. Attention loses its sense of order; here the weights differ from
    rotary at the token positions by up to 0.25.

Why:
    ``rotate(x)`` cannot see which axis is the sequence: a helper that builds its table
    from ``x.shape[-2]`` gets an ``(H, D)`` table and broadcasts it without complaint.

Fix:
    Transpose to ``(B, H, S, D)`` before rotating (or pass the sequence axis and
    ``position_ids`` explicitly and broadcast the table as ``(1, S, 1, D)``); compare
    with a reference that rotates ``(B, H, S, D)`` at the token positions.

Sources:
    https://github.com/mlfoundations/open_lm/issues/4
        (rotary position embedding applied on the head dimension instead of the sequence
        dimension)
    https://github.com/pytorch/executorch/pull/2010
        (kv-cache branch: rotary frequencies not sliced at start_pos:start_pos + seqlen)
    https://github.com/ByteDance-Seed/VeOmni/pull/162
        (a (bs, seq, nhead, ...) tensor given to a helper that assumes (bs, nhead, seq, ...))
"""

import numpy as np

from refattn import attention
from refattn.checks import check_close
from refattn.errors import CheckFailure

from ._common import softmax
from ._rope import inverse_frequencies, rotate_complex, rotate_half_split

KIND = "silent"
EXPECTED = CheckFailure
MATCH = r"weights differs from the reference"
TAGS = ("rotary-embedding", "layout-confusion")
SYMPTOMS = (
    "rotary embedding applied over the head dimension",
    "model ignores token order after adding rope",
)


def _inputs() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    q, k = rng.standard_normal((2, 1, 6, 2, 8))  # each (B, S, H, D): 6 tokens, 2 heads
    return q, k


def apply_rotary(x: np.ndarray) -> np.ndarray:
    """The model's helper: ``x`` is ``(..., seq, dim)``."""
    angles = np.arange(x.shape[-2])[:, None] * inverse_frequencies(x.shape[-1])
    return rotate_half_split(x, np.cos(angles), np.sin(angles))


# --8<-- [start:broken]
def broken() -> np.ndarray:
    q, k = _inputs()  # (B, S, H, D)
    q, k = apply_rotary(q), apply_rotary(k)  # rotated along H
    q, k = q.transpose(0, 2, 1, 3), k.transpose(0, 2, 1, 3)  # (B, H, S, D)
    return softmax(q @ k.swapaxes(-1, -2) / np.sqrt(8))


# --8<-- [end:broken]


# --8<-- [start:fixed]
def fixed() -> np.ndarray:
    q, k = _inputs()
    q, k = q.transpose(0, 2, 1, 3), k.transpose(0, 2, 1, 3)  # (B, H, S, D) first
    q, k = apply_rotary(q), apply_rotary(k)  # rotated along S
    return softmax(q @ k.swapaxes(-1, -2) / np.sqrt(8))


# --8<-- [end:fixed]


def reference() -> np.ndarray:
    q, k = (a.transpose(0, 2, 1, 3) for a in _inputs())
    positions = np.arange(6)
    q, k = rotate_complex(q, positions), rotate_complex(k, positions)
    weights = attention(q, k, k, return_weights=True).weights
    assert weights is not None
    return weights


def detect(weights: np.ndarray) -> None:
    check_close(weights, reference(), name="weights")


TORCH_KIND = "silent"
TORCH_EXPECTED = CheckFailure
TORCH_MATCH = MATCH


def _torch(transpose_first: bool) -> object:
    import torch

    def rotary(x: torch.Tensor) -> torch.Tensor:
        inv_freq = torch.from_numpy(inverse_frequencies(x.shape[-1]))
        angles = torch.outer(torch.arange(x.shape[-2], dtype=torch.float64), inv_freq)
        return rotate_half_split(x, angles.cos(), angles.sin(), lambda p: torch.cat(p, dim=-1))

    q, k = (torch.from_numpy(a) for a in _inputs())
    if transpose_first:
        q, k = q.transpose(1, 2), k.transpose(1, 2)
        q, k = rotary(q), rotary(k)
    else:
        q, k = rotary(q), rotary(k)
        q, k = q.transpose(1, 2), k.transpose(1, 2)
    return torch.softmax(q @ k.transpose(-1, -2) / 8**0.5, dim=-1)


def torch_broken() -> object:
    return _torch(transpose_first=False)


def torch_fixed() -> object:
    return _torch(transpose_first=True)


JAX_KIND = "silent"
JAX_EXPECTED = CheckFailure
JAX_MATCH = MATCH


def _jax(transpose_first: bool) -> object:
    import jax
    import jax.numpy as jnp

    def rotary(x: jax.Array) -> jax.Array:
        angles = jnp.outer(jnp.arange(x.shape[-2]), jnp.asarray(inverse_frequencies(8)))
        cat = lambda p: jnp.concatenate(p, axis=-1)  # noqa: E731
        return rotate_half_split(x, jnp.cos(angles), jnp.sin(angles), cat)

    q, k = (jnp.asarray(a) for a in _inputs())
    if transpose_first:
        q, k = rotary(q.transpose(0, 2, 1, 3)), rotary(k.transpose(0, 2, 1, 3))
    else:
        q, k = rotary(q).transpose(0, 2, 1, 3), rotary(k).transpose(0, 2, 1, 3)
    return jax.nn.softmax(q @ k.swapaxes(-1, -2) / 8**0.5, axis=-1)


def jax_broken() -> object:
    return _jax(transpose_first=False)


def jax_fixed() -> object:
    return _jax(transpose_first=True)
