"""A preallocated KV cache written one token past its capacity.

What happens:
    A static cache holds ``max_len = 4`` positions and the prompt filled them; the next
    decoded token is written at position 4. NumPy raises ``IndexError: index 4 is out of
    bounds for axis 2 with size 4``; PyTorch ``IndexError: index 4 is out of bounds for
    dimension 2 with size 4``. JAX does not raise: ``lax.dynamic_update_slice`` clamps the
    start to 3 and overwrites the last cached token, and ``cache.at[:, :, 4].set(k)`` drops
    the update; either way decoding continues with a wrong cache (both run in
    ``catalogue/tests/test_case_facts.py``).

Why:
    A preallocated cache needs a bound check at every write: the prompt length plus the
    tokens generated must stay within ``max_len`` (``max_cache_len``, ``max_seq_len``).
    Generation loops that take ``max_new_tokens`` from the request and ``max_len`` from the
    config never compare the two.

Fix:
    Check ``pos < capacity`` before writing and stop, grow the cache
    (``np.concatenate`` / ``torch.cat``), or evict deliberately (a sliding window, keeping
    positions consistent: ``evicted_cache_positions_out_of_step``); size the cache as
    ``prompt_len + max_new_tokens``.

Sources:
    https://github.com/karpathy/nanochat/pull/627
        (bounds checking in KVCache.advance() to prevent overflow beyond max_seq_len)
    https://github.com/huggingface/candle/pull/3035
        (kv cache max_seq_len must exceed current_seq_len + input seq_len)
    https://github.com/jax-ml/jax/pull/34257
        (dynamic_update_slice clamps out-of-bound start indices)
"""

import numpy as np

from refattn import attention

KIND = "exception"
EXPECTED = IndexError
MATCH = r"index 4 is out of bounds for axis 2 with size 4"
TAGS = ("kv-cache",)
MESSAGES = (r"index \d+ is out of bounds for (axis|dimension) 2 with size \d+",)
SYMPTOMS = (
    "index out of bounds in the kv cache after many generated tokens",
    "generation crashes when exceeding max_seq_len",
    "static cache too small for prompt plus new tokens",
)
CAPACITY = 4


def _inputs() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    cache_k, cache_v = rng.standard_normal((2, 1, 1, CAPACITY, 4))  # full: 4 prompt tokens
    q, k_new = rng.standard_normal((2, 1, 1, 1, 4))  # (B, H, 1, D): the 5th token
    return cache_k, cache_v, q, k_new


def _attend(q: np.ndarray, k: np.ndarray, v: np.ndarray) -> np.ndarray:
    scores = q @ k.swapaxes(-1, -2) / 2.0
    weights = np.exp(scores - scores.max(-1, keepdims=True))
    return weights / weights.sum(-1, keepdims=True) @ v


# --8<-- [start:broken]
def broken() -> np.ndarray:
    cache_k, cache_v, q, k_new = _inputs()
    pos = 4  # prompt length: the next free slot
    cache_k[:, :, pos] = k_new[:, :, 0]  # the cache has slots 0..3
    cache_v[:, :, pos] = k_new[:, :, 0]
    return _attend(q, cache_k[:, :, : pos + 1], cache_v[:, :, : pos + 1])


# --8<-- [end:broken]


# --8<-- [start:fixed]
def fixed() -> np.ndarray:
    cache_k, cache_v, q, k_new = _inputs()
    pos = 4
    if pos >= cache_k.shape[2]:  # full: grow (or stop, or evict on purpose)
        cache_k = np.concatenate([cache_k, np.zeros_like(cache_k)], axis=2)
        cache_v = np.concatenate([cache_v, np.zeros_like(cache_v)], axis=2)
    cache_k[:, :, pos] = k_new[:, :, 0]
    cache_v[:, :, pos] = k_new[:, :, 0]
    return _attend(q, cache_k[:, :, : pos + 1], cache_v[:, :, : pos + 1])


# --8<-- [end:fixed]


def reference() -> np.ndarray:
    cache_k, cache_v, q, k_new = _inputs()
    keys = np.concatenate([cache_k, k_new], axis=2)
    values = np.concatenate([cache_v, k_new], axis=2)
    return attention(q, keys, values)


TORCH_EXPECTED = IndexError
TORCH_MATCH = r"index 4 is out of bounds for dimension 2 with size 4"


def _torch(grow: bool) -> object:
    import torch
    import torch.nn.functional as F

    cache_k, cache_v, q, k_new = (torch.from_numpy(a) for a in _inputs())
    pos = 4
    if grow and pos >= cache_k.shape[2]:
        cache_k = torch.cat([cache_k, torch.zeros_like(cache_k)], dim=2)
        cache_v = torch.cat([cache_v, torch.zeros_like(cache_v)], dim=2)
    cache_k[:, :, pos] = k_new[:, :, 0]
    cache_v[:, :, pos] = k_new[:, :, 0]
    return F.scaled_dot_product_attention(q, cache_k[:, :, : pos + 1], cache_v[:, :, : pos + 1])


def torch_broken() -> object:
    return _torch(grow=False)


def torch_fixed() -> object:
    return _torch(grow=True)
