"""Query, key and value in ``(B, S, H, D)`` handed to a kernel that reads ``(B, H, S, D)``.

What happens:
    No error, a wrong output of the right shape. Projections reshaped to ``(B, S, H, D)``
    (what ``x.view(B, S, H, D)`` gives, and flash-attn's layout: GPU-only, not run here;
    source: https://github.com/Dao-AILab/flash-attention/blob/main/README.md) go straight
    into ``F.scaled_dot_product_attention``, which reads ``(B, H, S, D)``: the sequence axis
    is taken for heads and the heads for the sequence, so each token attends over the
    *heads* of one position. JAX has the mirror image: ``jax.nn.dot_product_attention``
    reads ``(B, T, N, H)``, and a ``(B, N, T, H)`` tensor from PyTorch-style code runs and
    returns attention over the wrong axis. Every size fits a batched matmul, so nothing
    fails.

Why:
    Kernels name their axes in their docs only: ``BSHD``/``BTNH``
    (``jax.nn.dot_product_attention``) and ``BHSD``/``BNTH`` (SDPA, refattn, most
    hand-written attention). A batched matmul over the last two axes
    accepts either.

Fix:
    Transpose at the boundary, ``q.transpose(1, 2)`` into SDPA and back out, and name
    the layout in variable names or asserts (``assert q.shape[1] == num_heads``). refattn's
    ``attention`` takes ``(..., H, L, D)``.

Sources:
    https://github.com/pytorch/pytorch/issues/152257
        (SDPA takes (B, H, S, D); (B, S, H, D) callers must permute)
    https://github.com/ByteDance-Seed/VeOmni/pull/162
        (kv of shape (bs, seq, nhead, ...) given to repeat_kv, which assumes (bs, nhead, seq, ...))
    https://github.com/thu-ml/SageAttention/pull/306
        (head count read from axis 1 for "HND" and axis 2 for "NHD")
    https://github.com/jax-ml/jax/pull/20380 (jax fused attention: BTNH by default, BNTH added)
"""

import numpy as np

from refattn import attention
from refattn.checks import check_close
from refattn.errors import CheckFailure

KIND = "silent"
EXPECTED = CheckFailure
MATCH = r"output differs from the reference"
TAGS = ("kernel-layout",)
SYMPTOMS = (
    "attention output wrong after switching from flash_attn_func to scaled_dot_product_attention",
    "jax dot_product_attention gives different results than my attention",
    "forgot transpose(1, 2) before sdpa",
    "flash attention expects batch seqlen nheads headdim",
    "sequence and head axes swapped for the attention kernel",
)


def _inputs() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    q, k, v = rng.standard_normal((3, 1, 6, 2, 4))  # each (B, S, H, D): 6 tokens, 2 heads
    return q, k, v


def _attend_bhsd(q: np.ndarray, k: np.ndarray, v: np.ndarray) -> np.ndarray:
    """A kernel that reads ``(B, H, S, D)``."""
    scores = np.einsum("bhld,bhsd->bhls", q, k) / np.sqrt(q.shape[-1])
    weights = np.exp(scores - scores.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)
    return np.einsum("bhls,bhsd->bhld", weights, v)


# --8<-- [start:broken]
def broken() -> np.ndarray:
    q, k, v = _inputs()  # (B, S, H, D)
    return _attend_bhsd(q, k, v)  # read as (B, H, S, D): attends over the 2 heads


# --8<-- [end:broken]


# --8<-- [start:fixed]
def fixed() -> np.ndarray:
    q, k, v = (a.transpose(0, 2, 1, 3) for a in _inputs())  # (B, H, S, D)
    return _attend_bhsd(q, k, v).transpose(0, 2, 1, 3)  # back to (B, S, H, D)


# --8<-- [end:fixed]


def reference() -> np.ndarray:
    q, k, v = (a.transpose(0, 2, 1, 3) for a in _inputs())
    return attention(q, k, v).transpose(0, 2, 1, 3)  # (B, S, H, D)


def detect(output: np.ndarray) -> None:
    check_close(output, reference())


TORCH_KIND = "silent"
TORCH_EXPECTED = CheckFailure
TORCH_MATCH = MATCH


def torch_broken() -> object:
    import torch
    import torch.nn.functional as F

    q, k, v = (torch.from_numpy(a) for a in _inputs())  # (B, S, H, D)
    return F.scaled_dot_product_attention(q, k, v)  # SDPA reads (B, H, S, D)


def torch_fixed() -> object:
    import torch
    import torch.nn.functional as F

    q, k, v = (torch.from_numpy(a).transpose(1, 2) for a in _inputs())
    return F.scaled_dot_product_attention(q, k, v).transpose(1, 2)


JAX_KIND = "silent"
JAX_EXPECTED = CheckFailure
JAX_MATCH = MATCH
JAX_NOTE = (
    "The mirror image: `jax.nn.dot_product_attention` reads `(B, T, N, H)`, and a "
    "`(B, N, T, H)` array from PyTorch-style code runs without complaint."
)


def jax_broken() -> object:
    import jax
    import jax.numpy as jnp

    q, k, v = (jnp.asarray(a).transpose(0, 2, 1, 3) for a in _inputs())  # (B, N, T, H)
    out = jax.nn.dot_product_attention(q, k, v)  # read as (B, T, N, H)
    return out.transpose(0, 2, 1, 3)


def jax_fixed() -> object:
    import jax
    import jax.numpy as jnp

    q, k, v = (jnp.asarray(a) for a in _inputs())  # already (B, T, N, H)
    return jax.nn.dot_product_attention(q, k, v)
