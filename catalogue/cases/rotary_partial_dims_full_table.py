"""Partial rotary (the first ``rotary_dim`` features) with a cos/sin table for the whole head.

What happens:
    Models such as GPT-NeoX, Phi and GLM rotate only part of each head
    (``partial_rotary_factor`` / ``rotary_pct``): here 4 of 8 features. The cos/sin table
    was built for the full head size, ``(L, 8)``, and multiplies the rotated slice
    ``(B, H, L, 4)``. NumPy raises ``ValueError: operands could not be broadcast together
    with shapes (1,2,5,4) (5,8)``; PyTorch ``RuntimeError: The size of tensor a (4) must
    match the size of tensor b (8) at non-singleton dimension 3``; JAX ``ValueError:
    Incompatible shapes for broadcasting: shapes=[(1, 2, 5, 4), (5, 8)]``.

Why:
    The frequencies ``base ** (-2i / d)`` depend on ``d``: a partial rotary needs a table
    built with ``d = rotary_dim``, applied to ``x[..., :rotary_dim]``, and the rest of the
    features passed through unrotated. Building the table from ``head_dim`` both breaks the
    shape and (when it is sliced to fit) gives the wrong frequencies.

Fix:
    ``inv_freq = base ** (-np.arange(0, rotary_dim, 2) / rotary_dim)``; rotate
    ``x[..., :rotary_dim]`` and concatenate ``x[..., rotary_dim:]`` back.

Sources:
    https://github.com/labmlai/annotated_deep_learning_paper_implementations/issues/244
        ("The size of tensor a (3) must match the size of tensor b (4) at non-singleton
        dimension 3": rotary on 3 features, cos_cached for 4)
    https://github.com/labmlai/annotated_deep_learning_paper_implementations/issues/215
        (the same error in the rotary example)
    https://github.com/vllm-project/vllm-ascend/pull/6581
        (partial RoPE with rotary_dim: "The expanded size of the tensor (128) must match the
        existing size (64) at non-singleton dimension 3")
"""

import numpy as np

from refattn import attention

from ._rope import rotate_complex

KIND = "exception"
EXPECTED = ValueError
MATCH = r"operands could not be broadcast together with shapes \(1,2,5,4\) \(5,8\)"
TAGS = ("rotary-embedding",)
MESSAGES = (
    r"size of tensor a \(\d+\) must match the size of tensor b \(\d+\) at "
    r"non-singleton dimension 3",
    r"expanded size of the tensor \(\d+\) must match the existing size \(\d+\) at "
    r"non-singleton dimension 3",
)
SYMPTOMS = (
    "apply_rotary_pos_emb shape mismatch with partial_rotary_factor",
    "rotary embedding applied to part of the head dimension fails",
)
HEAD_DIM, ROTARY_DIM = 8, 4


def _inputs() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    q, k, v = rng.standard_normal((3, 1, 2, 5, HEAD_DIM))  # each (B, H, L, D)
    return q, k, v


def _rotate(x: np.ndarray, cos: np.ndarray, sin: np.ndarray) -> np.ndarray:
    """Hugging Face style: ``x * cos + rotate_half(x) * sin`` with ``(L, d)`` tables."""
    h = x.shape[-1] // 2
    return x * cos + np.concatenate([-x[..., h:], x[..., :h]], axis=-1) * sin


def _table(dim: int) -> tuple[np.ndarray, np.ndarray]:
    inv_freq = 1.0 / 10000 ** (np.arange(0, dim, 2) / dim)
    freqs = np.arange(5)[:, None] * inv_freq
    emb = np.concatenate([freqs, freqs], axis=-1)  # (L, dim)
    return np.cos(emb), np.sin(emb)


def _attend(q: np.ndarray, k: np.ndarray, v: np.ndarray) -> np.ndarray:
    scores = q @ k.swapaxes(-1, -2) / np.sqrt(HEAD_DIM)
    weights = np.exp(scores - scores.max(-1, keepdims=True))
    return weights / weights.sum(-1, keepdims=True) @ v


# --8<-- [start:broken]
def broken() -> np.ndarray:
    q, k, v = _inputs()
    cos, sin = _table(HEAD_DIM)  # (5, 8): built for the whole head
    q_rot = _rotate(q[..., :ROTARY_DIM], cos, sin)  # (1, 2, 5, 4) * (5, 8)
    k_rot = _rotate(k[..., :ROTARY_DIM], cos, sin)
    q = np.concatenate([q_rot, q[..., ROTARY_DIM:]], axis=-1)
    k = np.concatenate([k_rot, k[..., ROTARY_DIM:]], axis=-1)
    return _attend(q, k, v)


# --8<-- [end:broken]


# --8<-- [start:fixed]
def fixed() -> np.ndarray:
    q, k, v = _inputs()
    cos, sin = _table(ROTARY_DIM)  # (5, 4): frequencies of the rotated part
    q_rot = _rotate(q[..., :ROTARY_DIM], cos, sin)
    k_rot = _rotate(k[..., :ROTARY_DIM], cos, sin)
    q = np.concatenate([q_rot, q[..., ROTARY_DIM:]], axis=-1)  # the rest passes through
    k = np.concatenate([k_rot, k[..., ROTARY_DIM:]], axis=-1)
    return _attend(q, k, v)


# --8<-- [end:fixed]


def reference() -> np.ndarray:
    q, k, v = _inputs()
    positions = np.arange(5)
    q, k = rotate_complex(q, positions, ROTARY_DIM), rotate_complex(k, positions, ROTARY_DIM)
    return attention(q, k, v)


TORCH_EXPECTED = RuntimeError
TORCH_MATCH = r"The size of tensor a \(4\) must match the size of tensor b \(8\) at non-singleton"


def _torch(table_dim: int) -> object:
    import torch
    import torch.nn.functional as F

    def rotate_half(x: torch.Tensor) -> torch.Tensor:
        h = x.shape[-1] // 2
        return torch.cat([-x[..., h:], x[..., :h]], dim=-1)

    q, k, v = (torch.from_numpy(a) for a in _inputs())
    inv_freq = 1.0 / 10000 ** (torch.arange(0, table_dim, 2, dtype=torch.float64) / table_dim)
    freqs = torch.outer(torch.arange(5, dtype=torch.float64), inv_freq)
    emb = torch.cat([freqs, freqs], dim=-1)
    cos, sin = emb.cos(), emb.sin()
    q_r, q_pass = q[..., :ROTARY_DIM], q[..., ROTARY_DIM:]
    k_r, k_pass = k[..., :ROTARY_DIM], k[..., ROTARY_DIM:]
    q = torch.cat([q_r * cos + rotate_half(q_r) * sin, q_pass], dim=-1)
    k = torch.cat([k_r * cos + rotate_half(k_r) * sin, k_pass], dim=-1)
    return F.scaled_dot_product_attention(q, k, v)


def torch_broken() -> object:
    return _torch(HEAD_DIM)  # table for the whole head


def torch_fixed() -> object:
    return _torch(ROTARY_DIM)


JAX_EXPECTED = ValueError
JAX_MATCH = r"Incompatible shapes for broadcasting: shapes=\[\(1, 2, 5, 4\), \(5, 8\)\]"


def _jax(table_dim: int) -> object:
    import jax
    import jax.numpy as jnp

    def rotate_half(x: jax.Array) -> jax.Array:
        h = x.shape[-1] // 2
        return jnp.concatenate([-x[..., h:], x[..., :h]], axis=-1)

    q, k, v = (jnp.asarray(a) for a in _inputs())
    inv_freq = 1.0 / 10000 ** (jnp.arange(0, table_dim, 2) / table_dim)
    freqs = jnp.outer(jnp.arange(5), inv_freq)
    emb = jnp.concatenate([freqs, freqs], axis=-1)
    cos, sin = jnp.cos(emb), jnp.sin(emb)
    q_r, k_r = q[..., :ROTARY_DIM], k[..., :ROTARY_DIM]
    q = jnp.concatenate([q_r * cos + rotate_half(q_r) * sin, q[..., ROTARY_DIM:]], axis=-1)
    k = jnp.concatenate([k_r * cos + rotate_half(k_r) * sin, k[..., ROTARY_DIM:]], axis=-1)
    weights = jax.nn.softmax(q @ k.swapaxes(-1, -2) / jnp.sqrt(float(HEAD_DIM)), axis=-1)
    return weights @ v


def jax_broken() -> object:
    return _jax(HEAD_DIM)


def jax_fixed() -> object:
    return _jax(ROTARY_DIM)
