"""A blockwise (flash-style) attention kernel that turns a fully masked key block into NaN.

What happens:
    Memory-efficient kernels walk the keys in blocks with an online softmax: a running
    maximum ``m``, a running sum ``l`` and an accumulator, rescaled by ``exp(m_old - m_new)``
    at each block. With left padding, the first block of keys is all padding for every
    query: the running maximum stays ``-inf``, ``exp(s - m) = exp(-inf - (-inf))`` is NaN,
    and the NaN survives every later block (``0 * NaN = NaN``). The whole output is NaN,
    although each row has 4 real keys and the plain softmax of the same scores is finite.
    Fused kernels have had exactly this class of bug: SDPA's memory-efficient kernel
    returned NaN for some mask patterns where the math path did not (GPU-only, not run
    here; source: https://github.com/pytorch/pytorch/issues/109517).

Why:
    The online softmax needs a finite reference point. A block where every logit is
    ``-inf`` has none, and ``-inf - (-inf)`` has no value; a full-row softmax only meets this
    when the *whole* row is masked.

Fix:
    Use a safe maximum in the exponent, ``m_safe = np.where(np.isneginf(m_new), 0, m_new)``,
    or skip blocks that are fully masked. When a fused kernel
    gives NaN, cross-check with the math path (``sdpa_kernel(SDPBackend.MATH)``) or with
    refattn; if only the fused path is NaN, the mask pattern is the trigger.

Sources:
    https://github.com/pytorch/pytorch/issues/109517
        (SDPA memory-efficient attention produces NaNs for certain mask patterns)
    https://github.com/facebookresearch/xformers/issues/722
        (NaNs with an arbitrary attn_bias mask in memory_efficient_attention)
    https://github.com/explosion/curated-transformers/pull/360
        (the memory-efficient SDPA kernel returns NaN for fully masked pieces)
"""

import numpy as np

from refattn import attention
from refattn.checks import check_finite
from refattn.errors import CheckFailure

KIND = "nan"
EXPECTED = CheckFailure
MATCH = r"output has \d+ NaN"
TAGS = ("backend-constraint", "inf-arithmetic")
SYMPTOMS = (
    "memory efficient attention returns nan but the math backend does not",
    "flash attention style kernel gives nan with left padding",
    "nan only with the fused attention kernel",
)
BLOCK = 4


def _inputs() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    q = rng.standard_normal((1, 1, 4, 4))  # (B, H, L, D)
    k = rng.standard_normal((1, 1, 8, 4))  # (B, H, S, D): keys 0-3 are left padding
    v = rng.standard_normal((1, 1, 8, 4))
    keep = np.arange(8) >= 4  # (S,)
    return q, k, v, keep


# --8<-- [start:broken]
def broken() -> np.ndarray:
    q, k, v, keep = _inputs()
    m = np.full((*q.shape[:-1], 1), -np.inf)  # running max
    total = np.zeros_like(m)  # running sum
    acc = np.zeros_like(q)
    for start in range(0, 8, BLOCK):
        s = q @ k[..., start : start + BLOCK, :].swapaxes(-1, -2) / 2.0
        s = np.where(keep[start : start + BLOCK], s, -np.inf)
        m_new = np.maximum(m, s.max(-1, keepdims=True))
        p = np.exp(s - m_new)  # -inf - (-inf) = NaN on a fully masked block
        scale = np.exp(m - m_new)
        total = total * scale + p.sum(-1, keepdims=True)
        acc = acc * scale + p @ v[..., start : start + BLOCK, :]
        m = m_new
    return acc / total


# --8<-- [end:broken]


# --8<-- [start:fixed]
def fixed() -> np.ndarray:
    q, k, v, keep = _inputs()
    m = np.full((*q.shape[:-1], 1), -np.inf)
    total = np.zeros_like(m)
    acc = np.zeros_like(q)
    for start in range(0, 8, BLOCK):
        s = q @ k[..., start : start + BLOCK, :].swapaxes(-1, -2) / 2.0
        s = np.where(keep[start : start + BLOCK], s, -np.inf)
        m_new = np.maximum(m, s.max(-1, keepdims=True))
        m_safe = np.where(np.isneginf(m_new), 0.0, m_new)  # a finite reference point
        p = np.exp(s - m_safe)
        scale = np.exp(m - m_safe)
        total = total * scale + p.sum(-1, keepdims=True)
        acc = acc * scale + p @ v[..., start : start + BLOCK, :]
        m = m_new
    return acc / total


# --8<-- [end:fixed]


def reference() -> np.ndarray:
    q, k, v, keep = _inputs()
    return attention(q, k, v, attend_mask=keep)


def detect(output: np.ndarray) -> None:
    check_finite(output)


TORCH_KIND = "nan"
TORCH_EXPECTED = CheckFailure
TORCH_MATCH = MATCH


def _torch(safe: bool) -> object:
    import torch

    q, k, v, keep = (torch.from_numpy(a) for a in _inputs())
    m = torch.full((*q.shape[:-1], 1), float("-inf"), dtype=q.dtype)
    total = torch.zeros_like(m)
    acc = torch.zeros_like(q)
    for start in range(0, 8, BLOCK):
        s = q @ k[..., start : start + BLOCK, :].transpose(-1, -2) / 2.0
        s = s.masked_fill(~keep[start : start + BLOCK], float("-inf"))
        m_new = torch.maximum(m, s.amax(-1, keepdim=True))
        ref = torch.where(torch.isneginf(m_new), 0.0, m_new) if safe else m_new
        p = torch.exp(s - ref)
        scale = torch.exp(m - ref)
        total = total * scale + p.sum(-1, keepdim=True)
        acc = acc * scale + p @ v[..., start : start + BLOCK, :]
        m = m_new
    return acc / total


def torch_broken() -> object:
    return _torch(safe=False)


def torch_fixed() -> object:
    return _torch(safe=True)


JAX_KIND = "nan"
JAX_EXPECTED = CheckFailure
JAX_MATCH = MATCH


def _jax(safe: bool) -> object:
    import jax.numpy as jnp

    q, k, v, keep = (jnp.asarray(a) for a in _inputs())
    m = jnp.full((*q.shape[:-1], 1), -jnp.inf)
    total = jnp.zeros_like(m)
    acc = jnp.zeros_like(q)
    for start in range(0, 8, BLOCK):
        s = q @ k[..., start : start + BLOCK, :].swapaxes(-1, -2) / 2.0
        s = jnp.where(keep[start : start + BLOCK], s, -jnp.inf)
        m_new = jnp.maximum(m, s.max(-1, keepdims=True))
        ref = jnp.where(jnp.isneginf(m_new), 0.0, m_new) if safe else m_new
        p = jnp.exp(s - ref)
        scale = jnp.exp(m - ref)
        total = total * scale + p.sum(-1, keepdims=True)
        acc = acc * scale + p @ v[..., start : start + BLOCK, :]
        m = m_new
    return acc / total


def jax_broken() -> object:
    return _jax(safe=False)


def jax_fixed() -> object:
    return _jax(safe=True)
