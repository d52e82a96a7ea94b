"""Grouped-query attention with a query head count that the key/value head count does not divide.

What happens:
    6 query heads over 4 key/value heads: the group size ``6 // 4`` floors to 1, so query
    heads 4 and 5 look for key/value heads 4 and 5, which do not exist. A per-head loop in
    NumPy raises ``IndexError: index 4 is out of bounds for axis 1 with size 4``. PyTorch's
    SDPA with ``enable_gqa=True`` raises ``RuntimeError: Number of heads in key and value
    must divide the number of heads in `` (the message ends there);
    ``jax.nn.dot_product_attention`` raises ``ValueError: The number of query heads must be
    a multiple of key/value heads, but got 6 vs 4``. Kernels that skip the check map heads
    wrongly or leave outputs unwritten instead (GPU-only, not run here; source:
    https://github.com/fla-org/flash-linear-attention/issues/1029).

Why:
    Each key/value head serves ``G = Hq / Hkv`` query heads, so ``Hq`` must be a multiple
    of ``Hkv``. A config edited by hand (``num_attention_heads`` changed, ``num_key_value_heads``
    not), or heads split across tensor-parallel ranks, breaks that silently until the first
    forward pass.

Fix:
    Validate where the layer is built: ``if num_heads % num_kv_heads: raise ValueError(...)``,
    with head counts that divide (here 8 query heads over 4). refattn's ``attention`` refuses
    ``Hq % Hkv != 0`` with a message naming both counts.

Sources:
    https://github.com/tenstorrent/polaris/issues/412
        (k.repeat(1, num_heads // num_kv_heads, ...) assumes divisibility; integer division
        silently gives the wrong number of heads)
    https://github.com/fla-org/flash-linear-attention/issues/1029
        (non-divisible GQA head counts leave outputs unwritten or read invalid KV heads)
    https://github.com/keras-team/keras/pull/23081
        (num_query_heads must be divisible by num_kv_heads: a check asked for in review)
"""

import numpy as np

from refattn import attention

KIND = "exception"
EXPECTED = IndexError
MATCH = r"index 4 is out of bounds for axis 1 with size 4"
TAGS = ("gqa-heads",)
MESSAGES = (
    r"Number of heads in key and value must divide the number of heads in",
    r"The number of query heads must be a multiple of key/value heads, but got \d+ vs \d+",
)
SYMPTOMS = (
    "num_attention_heads not divisible by num_key_value_heads",
    "grouped query attention with an odd number of heads",
)


def _inputs(query_heads: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    q = rng.standard_normal((1, query_heads, 4, 8))  # (B, Hq, L, D)
    k = rng.standard_normal((1, 4, 4, 8))  # (B, Hkv, S, D): 4 key/value heads
    v = rng.standard_normal((1, 4, 4, 8))
    return q, k, v


def _grouped(q: np.ndarray, k: np.ndarray, v: np.ndarray) -> np.ndarray:
    group = q.shape[1] // k.shape[1]  # 6 // 4 == 1
    out = np.empty_like(q)
    for h in range(q.shape[1]):
        kh, vh = k[:, h // group], v[:, h // group]  # the key/value head of query head h
        scores = q[:, h] @ kh.swapaxes(-1, -2) / np.sqrt(8)
        weights = np.exp(scores - scores.max(-1, keepdims=True))
        out[:, h] = weights / weights.sum(-1, keepdims=True) @ vh
    return out


# --8<-- [start:broken]
def broken() -> np.ndarray:
    q, k, v = _inputs(query_heads=6)  # 6 is not a multiple of 4
    return _grouped(q, k, v)


# --8<-- [end:broken]


# --8<-- [start:fixed]
def fixed() -> np.ndarray:
    q, k, v = _inputs(query_heads=8)  # head counts that divide
    if q.shape[1] % k.shape[1]:
        raise ValueError(f"{q.shape[1]} query heads are not a multiple of {k.shape[1]}")
    return _grouped(q, k, v)


# --8<-- [end:fixed]


def reference() -> np.ndarray:
    return attention(*_inputs(query_heads=8))


TORCH_EXPECTED = RuntimeError
TORCH_MATCH = r"Number of heads in key and value must divide the number of heads in"


def _torch(query_heads: int) -> object:
    import torch
    import torch.nn.functional as F

    q, k, v = (torch.from_numpy(a) for a in _inputs(query_heads))
    return F.scaled_dot_product_attention(q, k, v, enable_gqa=True)


def torch_broken() -> object:
    return _torch(query_heads=6)


def torch_fixed() -> object:
    return _torch(query_heads=8)


JAX_EXPECTED = ValueError
JAX_MATCH = r"The number of query heads must be a multiple of key/value heads, but got 6 vs 4"


def _jax(query_heads: int) -> object:
    import jax
    import jax.numpy as jnp

    q, k, v = (jnp.asarray(a).transpose(0, 2, 1, 3) for a in _inputs(query_heads))  # BTNH
    return jax.nn.dot_product_attention(q, k, v).transpose(0, 2, 1, 3)


def jax_broken() -> object:
    return _jax(query_heads=6)


def jax_fixed() -> object:
    return _jax(query_heads=8)
