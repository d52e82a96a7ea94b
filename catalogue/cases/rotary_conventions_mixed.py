"""Queries rotated with the half-split rotary convention, keys with the interleaved one.

What happens:
    No error. Rotary embeddings pair features in one of two ways: half-split (GPT-NeoX,
    Hugging Face Llama's ``rotate_half``: feature ``i`` with ``i + D/2``) or interleaved
    (GPT-J, Meta's Llama and ``torch.view_as_complex``: ``2i`` with ``2i + 1``; flash-attn's
    ``rotary_interleaved=True`` too, GPU-only, not run here; source:
    https://github.com/Dao-AILab/flash-attention/blob/main/README.md). When queries go
    through one and keys through the other (a cache filled by a fused kernel, a port that
    rewrote one of the two helpers), the score of a (query, key) pair no longer depends on
    their distance only: shifting every position by 5 changes the weights here by up to
    0.24, which rotary attention never does.
    Using one convention for both but the other than the checkpoint's is silent too, and
    shows only as a worse model.

Why:
    Rotary attention works because ``R(m)ᵀR(n) = R(n - m)`` when queries and keys are
    rotated by the *same* rotation; two pairings are two different rotations, and their
    product depends on ``m`` and ``n`` separately. Checkpoints fix the convention: Hugging
    Face permutes Meta's q/k weights at conversion so that ``rotate_half`` applies (not run
    here; source: https://github.com/huggingface/transformers/issues/25199).

Fix:
    One rotary function for queries and keys, in the convention the weights were converted
    for (``rotate_half`` for Hugging Face checkpoints; the interleaved pairing only for
    GPT-J-style weights). Test the invariance: weights at positions ``p`` and ``p + 5``
    must agree.

Sources:
    https://github.com/huggingface/transformers/issues/25199
        (Llama RoPE in transformers is GPT-NeoX style, Meta's official code GPT-J style)
    https://github.com/EleutherAI/gpt-neox/issues/834 (rotate_half vs rotate_every_two)
    https://github.com/karpathy/nanochat/issues/264
        (half-split pairing with frequencies built for the interleaved convention)
    https://github.com/InternLM/lmdeploy/issues/2639 (permuting q/k weights between the two)
"""

import numpy as np

from refattn import attention
from refattn.checks import check_close
from refattn.errors import CheckFailure

from ._common import softmax
from ._rope import inverse_frequencies, rotate_complex, rotate_half_split, rotate_interleaved

KIND = "silent"
EXPECTED = CheckFailure
MATCH = r"weights at positions shifted by 5 differs from the reference"
TAGS = ("rotary-embedding",)
SYMPTOMS = (
    "rope rotate_half vs interleaved gives different outputs",
    "attention depends on absolute position after applying rotary embeddings",
    "model outputs garbage after porting rotary embedding code",
)
OFFSETS = (0, 5)


def _inputs() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    q, k = rng.standard_normal((2, 1, 1, 6, 8))  # each (B, H, L, D)
    return q, k


def _angles(offset: int) -> tuple[np.ndarray, np.ndarray]:
    angles = (offset + np.arange(6))[:, None] * inverse_frequencies(8)  # (L, D/2)
    return np.cos(angles), np.sin(angles)


# --8<-- [start:broken]
def broken() -> np.ndarray:
    q, k = _inputs()
    out = []
    for offset in OFFSETS:  # the same tokens, every position shifted by 5
        cos, sin = _angles(offset)
        q_rot = rotate_half_split(q, cos, sin)  # model code: rotate_half
        k_rot = rotate_interleaved(k, cos, sin)  # keys from an interleaved kernel
        out.append(softmax(q_rot @ k_rot.swapaxes(-1, -2) / np.sqrt(8)))
    return np.stack(out)  # (2, B, H, L, S)


# --8<-- [end:broken]


# --8<-- [start:fixed]
def fixed() -> np.ndarray:
    q, k = _inputs()
    out = []
    for offset in OFFSETS:
        cos, sin = _angles(offset)
        q_rot, k_rot = rotate_half_split(q, cos, sin), rotate_half_split(k, cos, sin)
        out.append(softmax(q_rot @ k_rot.swapaxes(-1, -2) / np.sqrt(8)))
    return np.stack(out)


# --8<-- [end:fixed]


def reference() -> np.ndarray:
    q, k = _inputs()
    out = []
    for offset in OFFSETS:
        positions = offset + np.arange(6)
        q_rot, k_rot = rotate_complex(q, positions), rotate_complex(k, positions)
        weights = attention(q_rot, k_rot, k_rot, return_weights=True).weights
        assert weights is not None
        out.append(weights)
    return np.stack(out)


def detect(weights: np.ndarray) -> None:
    check_close(weights[1], weights[0], name="weights at positions shifted by 5")


TORCH_KIND = "silent"
TORCH_EXPECTED = CheckFailure
TORCH_MATCH = MATCH


def _torch(interleaved_keys: bool) -> object:
    import torch

    def cat(parts: list[torch.Tensor]) -> torch.Tensor:
        return torch.cat(parts, dim=-1)

    q, k = (torch.from_numpy(a) for a in _inputs())
    inv_freq = 1.0 / (10000 ** (torch.arange(0, 8, 2, dtype=torch.float64) / 8))
    out = []
    for offset in OFFSETS:
        angles = torch.outer(offset + torch.arange(6, dtype=torch.float64), inv_freq)
        cos, sin = angles.cos(), angles.sin()
        q_rot = rotate_half_split(q, cos, sin, cat)
        rotate_k = rotate_interleaved if interleaved_keys else rotate_half_split
        k_rot = rotate_k(k, cos, sin, cat)
        out.append(torch.softmax(q_rot @ k_rot.transpose(-1, -2) / 8**0.5, dim=-1))
    return torch.stack(out)


def torch_broken() -> object:
    return _torch(interleaved_keys=True)


def torch_fixed() -> object:
    return _torch(interleaved_keys=False)


JAX_KIND = "silent"
JAX_EXPECTED = CheckFailure
JAX_MATCH = MATCH


def _jax(interleaved_keys: bool) -> object:
    import jax
    import jax.numpy as jnp

    def cat(parts: list[jax.Array]) -> jax.Array:
        return jnp.concatenate(parts, axis=-1)

    q, k = (jnp.asarray(a) for a in _inputs())
    inv_freq = 1.0 / (10000 ** (jnp.arange(0, 8, 2) / 8))
    out = []
    for offset in OFFSETS:
        angles = jnp.outer(offset + jnp.arange(6), inv_freq)
        cos, sin = jnp.cos(angles), jnp.sin(angles)
        q_rot = rotate_half_split(q, cos, sin, cat)
        rotate_k = rotate_interleaved if interleaved_keys else rotate_half_split
        k_rot = rotate_k(k, cos, sin, cat)
        out.append(jax.nn.softmax(q_rot @ k_rot.swapaxes(-1, -2) / 8**0.5, axis=-1))
    return jnp.stack(out)


def jax_broken() -> object:
    return _jax(interleaved_keys=True)


def jax_fixed() -> object:
    return _jax(interleaved_keys=False)
