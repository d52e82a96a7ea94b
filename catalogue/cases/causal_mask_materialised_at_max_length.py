"""A dense ``(max_len, max_len)`` causal mask built for the longest context the model allows.

What happens:
    The attention layer builds its causal mask once, for the configured context length,
    ``np.tril(np.ones((max_len, max_len), bool))``, and slices ``[:L, :L]`` at run time. The
    mask costs ``max_len²`` bytes whatever the input: 1 TiB for a 1M-token context, and
    256 TiB for the ``2**24`` used here (chosen so that the allocation fails everywhere,
    before any page is touched). NumPy raises ``MemoryError: Unable to allocate 256. TiB for
    an array with shape (16777216, 16777216) and data type bool``; PyTorch ``RuntimeError:
    [enforce fail at alloc_cpu.cpp:...] ... DefaultCPUAllocator: can't allocate memory: you
    tried to allocate 281474976710656 bytes``; JAX ``JaxRuntimeError: RESOURCE_EXHAUSTED:
    Out of memory allocating 281474976710656 bytes.``; TensorFlow ``ResourceExhaustedError:
    OOM when allocating tensor with shape[16777216,16777216]``. The same happens with dense
    ``(B, 1, L, L)`` padding-plus-causal masks or ``(B, H, L, L)`` scores at long ``L``.

Why:
    A causal mask is a rule (``j <= i``), not data; storing it is quadratic in the context,
    and dense scores are quadratic in the input. Fused kernels take ``is_causal`` and use
    memory linear in the sequence length (GPU-only, not run here; source:
    https://github.com/Dao-AILab/flash-attention/blob/main/README.md).

Fix:
    Build masks for the actual length, or better not at all: ``is_causal=True`` /
    ``causal="top_left"`` (``"bottom_right"`` with a cache), SDPA's fused kernels or refattn's
    ``memory_budget``; keep only per-token padding ``(B, S)`` as data.

Sources:
    https://github.com/TransformerLensOrg/TransformerLens/issues/479
        (a (n_ctx, n_ctx) causal_mask buffer per layer: ~86 GB for a 32768 context, 80 layers)
    https://github.com/huggingface/transformers/pull/46485
        (tril(ones(max_positions, max_positions)) at construction: O(n²) memory, OOM-killed)
    https://github.com/Blaizzy/mlx-embeddings/pull/68
        (a dense (batch, 1, seq, seq) mask: "Attempting to allocate 137438953472 bytes")
    https://github.com/hpcaitech/Open-Sora/issues/70 (expand_mask_4d tries to allocate 720 GB)
    https://github.com/hpcaitech/Open-Sora/issues/697
        (the PyTorch wording: "torch.cuda.OutOfMemoryError: CUDA out of memory. Tried to allocate")
"""

import numpy as np

from refattn import attention

try:
    from numpy._core._exceptions import _ArrayMemoryError as ArrayMemoryError
except ImportError:  # NumPy 1.x
    from numpy.core._exceptions import _ArrayMemoryError as ArrayMemoryError  # type: ignore[no-redef,import-not-found,unused-ignore]

KIND = "exception"
EXPECTED = ArrayMemoryError
MATCH = r"Unable to allocate 256\. TiB for an array with shape \(16777216, 16777216\)"
TAGS = ("memory-blowup",)
MESSAGES = (
    r"Unable to allocate [\d.]+ [KMGTP]iB for an array with shape",
    r"can't allocate memory: you tried to allocate \d+ bytes",
    r"RESOURCE_EXHAUSTED: Out of memory allocating \d+ bytes",
    r"OOM when allocating tensor with shape\[\d+,\d+",
    r"CUDA out of memory",
)
SYMPTOMS = (
    "out of memory building the attention mask for long sequences",
    "model runs out of memory at load time with a large max_position_embeddings",
    "attention memory grows quadratically with sequence length",
)
MAX_LEN = 2**24  # the configured context; the input itself has 6 tokens


def _inputs() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    q, k, v = rng.standard_normal((3, 1, 1, 6, 4))  # each (B, H, L, D)
    return q, k, v


def _attend(q: np.ndarray, k: np.ndarray, v: np.ndarray, keep: np.ndarray) -> np.ndarray:
    scores = np.where(keep, q @ k.swapaxes(-1, -2) / 2.0, -np.inf)
    weights = np.exp(scores - scores.max(-1, keepdims=True))
    return weights / weights.sum(-1, keepdims=True) @ v


# --8<-- [start:broken]
def broken() -> np.ndarray:
    q, k, v = _inputs()
    causal = np.tril(np.ones((MAX_LEN, MAX_LEN), dtype=bool))  # built once, for any input
    length = q.shape[-2]
    return _attend(q, k, v, causal[:length, :length])


# --8<-- [end:broken]


# --8<-- [start:fixed]
def fixed() -> np.ndarray:
    q, k, v = _inputs()
    length = q.shape[-2]
    causal = np.arange(length)[None, :] <= np.arange(length)[:, None]  # (L, L) for this input
    return _attend(q, k, v, causal)


# --8<-- [end:fixed]


def reference() -> np.ndarray:
    return attention(*_inputs(), causal="top_left")


TORCH_EXPECTED = RuntimeError
TORCH_MATCH = r"DefaultCPUAllocator: can't allocate memory: you tried to allocate 281474976710656"


def torch_broken() -> object:
    import torch
    import torch.nn.functional as F

    q, k, v = (torch.from_numpy(a) for a in _inputs())
    causal = torch.tril(torch.ones(MAX_LEN, MAX_LEN, dtype=torch.bool))  # a registered buffer
    return F.scaled_dot_product_attention(q, k, v, attn_mask=causal[:6, :6])


def torch_fixed() -> object:
    import torch
    import torch.nn.functional as F

    q, k, v = (torch.from_numpy(a) for a in _inputs())
    return F.scaled_dot_product_attention(q, k, v, is_causal=True)


JAX_EXPECTED = "jax.errors.JaxRuntimeError"
JAX_MATCH = r"RESOURCE_EXHAUSTED: Out of memory allocating 281474976710656 bytes"


def jax_broken() -> object:
    import jax
    import jax.numpy as jnp

    q, k, v = (jnp.asarray(a).transpose(0, 2, 1, 3) for a in _inputs())  # (B, T, N, H)
    causal = jnp.tril(jnp.ones((MAX_LEN, MAX_LEN), dtype=bool))
    return jax.nn.dot_product_attention(q, k, v, mask=causal[None, None, :6, :6])


def jax_fixed() -> object:
    import jax
    import jax.numpy as jnp

    q, k, v = (jnp.asarray(a).transpose(0, 2, 1, 3) for a in _inputs())
    return jax.nn.dot_product_attention(q, k, v, is_causal=True).transpose(0, 2, 1, 3)


TF_EXPECTED = "tensorflow.errors.ResourceExhaustedError"
TF_MATCH = r"OOM when allocating tensor with shape\[16777216,16777216\]"


def tf_broken() -> object:
    import tensorflow as tf

    q, k, v = (tf.constant(a) for a in _inputs())
    causal = tf.linalg.band_part(tf.ones((MAX_LEN, MAX_LEN), dtype=tf.bool), -1, 0)
    scores = tf.where(causal[:6, :6], tf.matmul(q, k, transpose_b=True) / 2.0, float("-inf"))
    return tf.matmul(tf.nn.softmax(scores, axis=-1), v)


def tf_fixed() -> object:
    import tensorflow as tf

    q, k, v = (tf.constant(a) for a in _inputs())
    causal = tf.range(6)[None, :] <= tf.range(6)[:, None]
    scores = tf.where(causal, tf.matmul(q, k, transpose_b=True) / 2.0, float("-inf"))
    return tf.matmul(tf.nn.softmax(scores, axis=-1), v)
