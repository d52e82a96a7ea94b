"""A sliding window of ``w`` tokens passed as flash-attention's ``window_size=(w, w)``.

What happens:
    No error, a wrong output. A model trained with ``sliding_window = 3`` (Mistral's
    meaning: each query sees itself and the 2 tokens before it) is run through a kernel
    whose window is a pair of *offsets*, ``(left, right)``, both inclusive:
    ``jax.nn.dot_product_attention(local_window_size=...)``, refattn's ``window``, and
    flash-attn's ``window_size`` (GPU-only, not run here; source:
    https://github.com/Dao-AILab/flash-attention/blob/main/README.md). ``(3, 3)`` keeps
    ``2 * 3 + 1 = 7`` keys per query, three of them in the future; in JAX with
    ``is_causal=True`` as well it still keeps 4, one more than the model was trained on.
    Here query 0 of 8 puts weight on keys 1-3, which it must not see.

Why:
    "Window size" means three things: a count of keys including the query (Mistral,
    Hugging Face eager masks), a left offset (flash-attn ``window_size[0]``, which is
    ``sliding_window - 1``: not run here; source: https://github.com/zml/zml/pull/763), or a
    symmetric radius. Every convention accepts every integer.

Fix:
    Convert once, where the config is read: ``left = sliding_window - 1``, ``right = 0``
    and causal; refattn ``attention(..., causal="top_left", window=(w - 1, 0))``. Check on a
    short sequence that each row keeps exactly ``min(i + 1, w)`` keys.

Sources:
    https://github.com/huggingface/transformers/issues/39408
        (window_size=(sliding_window, sliding_window): 2 * sliding_window + 1 keys)
    https://github.com/huggingface/transformers/pull/40163
        (the fix: flash sliding window size off by one against sdpa)
    https://github.com/huggingface/transformers/issues/29623
        (eager mask keeps 2048 keys for sliding_window=2048, flash one more)
    https://github.com/zml/zml/pull/763
        (window_size_left is inclusive of the current position: sliding_window - 1)
"""

import numpy as np

from refattn import attention
from refattn.checks import check_close
from refattn.errors import CheckFailure

KIND = "silent"
EXPECTED = CheckFailure
MATCH = r"output differs from the reference"
TAGS = ("window-size",)
SYMPTOMS = (
    "sliding window attention off by one between flash attention and eager",
    "outputs differ between attn_implementation flash_attention_2 and sdpa with sliding window",
    "local attention attends to future tokens",
)
SLIDING_WINDOW = 3  # keys per query, the query included (Mistral's config meaning)


def _inputs() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    q, k, v = rng.standard_normal((3, 1, 1, 8, 4))  # each (B, H, L, D)
    return q, k, v


def _attend(q: np.ndarray, k: np.ndarray, v: np.ndarray, keep: np.ndarray) -> np.ndarray:
    scores = np.where(keep, q @ k.swapaxes(-1, -2) / 2.0, -np.inf)
    weights = np.exp(scores - scores.max(-1, keepdims=True))
    return weights / weights.sum(-1, keepdims=True) @ v


# --8<-- [start:broken]
def broken() -> np.ndarray:
    q, k, v = _inputs()
    i, j = np.arange(8)[:, None], np.arange(8)[None, :]
    left, right = SLIDING_WINDOW, SLIDING_WINDOW  # flash-style window_size=(w, w)
    keep = (j >= i - left) & (j <= i + right)  # 7 keys, 3 in the future
    return _attend(q, k, v, keep)


# --8<-- [end:broken]


# --8<-- [start:fixed]
def fixed() -> np.ndarray:
    q, k, v = _inputs()
    i, j = np.arange(8)[:, None], np.arange(8)[None, :]
    left, right = SLIDING_WINDOW - 1, 0  # w keys: the query and the w - 1 before it
    keep = (j >= i - left) & (j <= i + right)
    return _attend(q, k, v, keep)


# --8<-- [end:fixed]


def reference() -> np.ndarray:
    return attention(*_inputs(), causal="top_left", window=(SLIDING_WINDOW - 1, 0))


def detect(output: np.ndarray) -> None:
    check_close(output, reference())


TORCH_KIND = "silent"
TORCH_EXPECTED = CheckFailure
TORCH_MATCH = MATCH


def torch_broken() -> object:
    import torch
    import torch.nn.functional as F

    q, k, v = (torch.from_numpy(a) for a in _inputs())
    i, j = torch.arange(8)[:, None], torch.arange(8)[None, :]
    w = SLIDING_WINDOW
    band = (j >= i - w) & (j <= i + w)  # window_size=(w, w) as a mask
    return F.scaled_dot_product_attention(q, k, v, attn_mask=band)


def torch_fixed() -> object:
    import torch
    import torch.nn.functional as F

    q, k, v = (torch.from_numpy(a) for a in _inputs())
    i, j = torch.arange(8)[:, None], torch.arange(8)[None, :]
    band = (j <= i) & (j > i - SLIDING_WINDOW)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=band)


JAX_KIND = "silent"
JAX_EXPECTED = CheckFailure
JAX_MATCH = MATCH
JAX_NOTE = (
    "`jax.nn.dot_product_attention`'s `local_window_size=(left, right)` are inclusive "
    "offsets like flash-attn's `window_size`: `(3, 3)` keeps 7 keys."
)


def jax_broken() -> object:
    import jax
    import jax.numpy as jnp

    q, k, v = (jnp.asarray(a).transpose(0, 2, 1, 3) for a in _inputs())  # (B, T, N, H)
    w = SLIDING_WINDOW
    out = jax.nn.dot_product_attention(q, k, v, local_window_size=(w, w))
    return out.transpose(0, 2, 1, 3)


def jax_fixed() -> object:
    import jax
    import jax.numpy as jnp

    q, k, v = (jnp.asarray(a).transpose(0, 2, 1, 3) for a in _inputs())
    out = jax.nn.dot_product_attention(
        q, k, v, is_causal=True, local_window_size=(SLIDING_WINDOW - 1, 0)
    )
    return out.transpose(0, 2, 1, 3)
