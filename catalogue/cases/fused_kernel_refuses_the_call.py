"""A fused attention kernel forced on a call it does not support: it refuses, no fallback.

What happens:
    A layer whose value heads are wider than its query/key heads (q, k with head size 8,
    v with 16, as in MLA-style layers) runs under
    ``sdpa_kernel(SDPBackend.FLASH_ATTENTION)``. On CPU, PyTorch warns ``Flash attention
    kernel not used because:`` and ``Flash attention requires q,k,v to have the same last
    dimension. Got Query.size(-1): 8, Key.size(-1): 8, Value.size(-1): 16 instead.``, then
    raises ``RuntimeError: No available kernel.  Aborting execution.``; the same call with
    SDPA left to choose returns the right answer. ``jax.nn.dot_product_attention(...,
    implementation="cudnn")`` on CPU raises ``RuntimeError: cuDNN is not detected.``, and
    ``tf.keras.ops.dot_product_attention(..., flash_attention=True)`` raises ``ValueError:
    Flash attention is not supported in tensorflow backend.``. The NumPy variant models a
    hand-written tiled kernel that, like flash-attn 2, takes one head size for q, k and v
    and refuses anything else with its own ``RuntimeError``. Real kernels refuse on their
    own lists: flash-attn 3 with ``RuntimeError: Only support head size 64, 128, and 256
    for now``, vLLM's PagedAttention with ``head_size (100) is not supported``, xFormers
    with ``` `flshattF@...` is not supported because: ```, a Triton kernel with
    ``AssertionError: N_CTX must be divisible by BLOCK_MIN=32``, a Pallas TPU kernel with
    ``kv_seq_len=4992 should be divisible by block_k_major=512`` (GPU- and TPU-only, not
    run here; sources: https://github.com/Dao-AILab/flash-attention/issues/1290,
    https://github.com/vllm-project/vllm/issues/336,
    https://github.com/facebookresearch/xformers/issues/1263,
    https://github.com/amorehead/jvp_flash_attention/issues/13,
    https://github.com/pytorch/xla/pull/8671).

Why:
    A fused kernel is compiled for a few head sizes, dtypes, devices and mask forms; the
    dispatcher (SDPA, xFormers, vLLM's backend selector, ``implementation=None`` in JAX)
    picks one that accepts the call and otherwise falls back to the plain math path.
    Forcing one kernel, or calling a kernel library directly, removes that fallback, so
    the kernel's own limit becomes the error. Nothing is wrong with the attention math.

Fix:
    Let the dispatcher choose (no ``sdpa_kernel`` context, ``implementation=None``,
    ``flash_attention=None``), or list a fallback
    (``sdpa_kernel([SDPBackend.FLASH_ATTENTION, SDPBackend.MATH])``). Calling a kernel
    library directly: check its limits first and route other calls to the math path, or
    pad the head size to one it supports (zero columns in q and k do not change
    ``q·kᵀ``; keep the softmax scale of the real head size and slice the output).
    Read the warnings or the per-operator reasons printed with the refusal: they name
    the limit.

Sources:
    https://github.com/Dao-AILab/flash-attention/issues/1290
        ("RuntimeError: Only support head size 64, 128, and 256 for now" from flash-attn 3)
    https://github.com/vllm-project/vllm/issues/336
        ("ValueError: head_size (100) is not supported. Supported head sizes: [64, 80, 96, 128]")
    https://github.com/facebookresearch/xformers/issues/1263
        (No operator found for memory_efficient_attention_forward: each operator "is not
        supported because" of head-dim, bias type, GPU capability)
    https://github.com/Dao-AILab/flash-attention/issues/952
        (value head size different from query/key head size: "v must have shape ...
        head_size_og"; not planned)
    https://github.com/Dao-AILab/flash-attention/issues/632
        (key_dim != value_dim works through SDPA's math path, not through flash-attn)
    https://github.com/amorehead/jvp_flash_attention/issues/13
        ("AssertionError: N_CTX must be divisible by BLOCK_MIN=32" from a Triton kernel)
    https://github.com/pytorch/xla/pull/8671
        (Pallas flash attention on TPU: "kv_seq_len=4992 should be divisible by
        block_k_major=512")
"""

import numpy as np

from refattn import attention

from ._common import softmax

KIND = "exception"
EXPECTED = RuntimeError
MATCH = r"tiled kernel supports one head size in \(8, 16\) for q, k and v; got q/k 8, v 16"
TAGS = ("backend-constraint",)
MESSAGES = (
    r"No available kernel\.\s+Aborting execution\.",
    r"requires q,k,v to have the same last dimension",
    r"No viable backend for scaled_dot_product_attention was found",
    r"Only support head size [\d, ]+(?:and \d+ )?for now",
    r"only supports? head (?:dimension|dim|size)",
    r"head_size \(\d+\) is not supported",
    r"Head size \d+ is not supported by PagedAttention",
    r"Unsupported head size",
    r"`\w+(?:@[\w.+-]+)?` is not supported because",
    r"No operator found for `memory_efficient_attention_\w+`",
    r"(?:must|should) be divisible by (?:BLOCK|block_)\w*",
    r"v must have shape \(batch_size, seqlen_k, num_heads_k, head_size_og\)",
    r"cuDNN is not detected",
    r"Flash attention is not supported in tensorflow backend",
)
SYMPTOMS = (
    "flash attention does not support this head size",
    "fused attention kernel refuses the input",
    "sdpa_kernel forced backend raises no available kernel",
    "xformers memory efficient attention not supported for these inputs",
    "vllm head size not supported",
    "flash attention refuses different head sizes for q, k and v",
)

HEAD_SIZES = (8, 16)  # the head sizes the tiled kernel was "compiled" for
BLOCK = 2  # keys per tile


def _inputs() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    q = rng.standard_normal((1, 2, 4, 8))  # (B, H, L, D): D = 8
    k = rng.standard_normal((1, 2, 4, 8))  # (B, H, S, D)
    v = rng.standard_normal((1, 2, 4, 16))  # (B, H, S, Dv): Dv = 16, wider value heads
    return q, k, v


def _supports(q: np.ndarray, k: np.ndarray, v: np.ndarray) -> bool:
    d = q.shape[-1]
    return d == k.shape[-1] == v.shape[-1] and d in HEAD_SIZES and k.shape[-2] % BLOCK == 0


def _tiled_kernel(q: np.ndarray, k: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Online-softmax attention over key tiles of BLOCK, one head size for q, k and v."""
    if not _supports(q, k, v):
        raise RuntimeError(
            f"tiled kernel supports one head size in {HEAD_SIZES} for q, k and v; "
            f"got q/k {q.shape[-1]}, v {v.shape[-1]}"
        )
    scale = 1 / np.sqrt(q.shape[-1])
    acc = np.zeros_like(q)  # (B, H, L, D): sized from the query's head size
    row_max = np.full((*q.shape[:-1], 1), -np.inf)
    row_sum = np.zeros((*q.shape[:-1], 1))
    for start in range(0, k.shape[-2], BLOCK):
        scores = q @ k[..., start : start + BLOCK, :].swapaxes(-1, -2) * scale
        new_max = np.maximum(row_max, scores.max(-1, keepdims=True))
        weights = np.exp(scores - new_max)
        correction = np.exp(row_max - new_max)
        acc = acc * correction + weights @ v[..., start : start + BLOCK, :]
        row_sum = row_sum * correction + weights.sum(-1, keepdims=True)
        row_max = new_max
    return acc / row_sum


def _math(q: np.ndarray, k: np.ndarray, v: np.ndarray) -> np.ndarray:
    """The plain path: any head sizes, any length."""
    return softmax(q @ k.swapaxes(-1, -2) / np.sqrt(q.shape[-1])) @ v


# --8<-- [start:broken]
def broken() -> np.ndarray:
    q, k, v = _inputs()
    return _tiled_kernel(q, k, v)  # the fast kernel, forced, whatever the shapes


# --8<-- [end:broken]


# --8<-- [start:fixed]
def fixed() -> np.ndarray:
    q, k, v = _inputs()
    if _supports(q, k, v):  # dispatch: the kernel when it can, else the math path
        return _tiled_kernel(q, k, v)
    return _math(q, k, v)


# --8<-- [end:fixed]


def reference() -> np.ndarray:
    return attention(*_inputs())


TORCH_EXPECTED = RuntimeError
TORCH_MATCH = r"No available kernel\.\s+Aborting execution\."
TORCH_NOTE = (
    "On CPU the refusal comes with the warnings `Flash attention kernel not used because:` "
    "and `Flash attention requires q,k,v to have the same last dimension.`; the error "
    "itself only says `No available kernel.  Aborting execution.`"
)


def _torch(backends: list[object]) -> object:
    import torch.nn.functional as F
    from torch import from_numpy
    from torch.nn.attention import sdpa_kernel

    q, k, v = (from_numpy(a) for a in _inputs())
    with sdpa_kernel(backends):  # type: ignore[arg-type]
        return F.scaled_dot_product_attention(q, k, v)


def torch_broken() -> object:
    from torch.nn.attention import SDPBackend

    return _torch([SDPBackend.FLASH_ATTENTION])


def torch_fixed() -> object:
    from torch.nn.attention import SDPBackend

    return _torch([SDPBackend.FLASH_ATTENTION, SDPBackend.MATH])


JAX_EXPECTED = RuntimeError
JAX_MATCH = r"cuDNN is not detected"
JAX_NOTE = (
    'On CPU `implementation="cudnn"` is refused outright; `implementation=None` lets JAX '
    "pick the XLA path. `jax.nn.dot_product_attention` takes one head size for q, k and v, "
    "so both variants attend to v's two halves (head size 8 each) and join the outputs."
)


def _jax(implementation: str | None) -> object:
    import jax
    import jax.numpy as jnp

    q, k, v = (jnp.asarray(a).transpose(0, 2, 1, 3) for a in _inputs())  # BTNH
    halves = [
        jax.nn.dot_product_attention(q, k, v[..., i : i + 8], implementation=implementation)  # type: ignore[arg-type]
        for i in (0, 8)
    ]  # attention is linear in v's columns
    return jnp.concatenate(halves, axis=-1).transpose(0, 2, 1, 3)


def jax_broken() -> object:
    return _jax("cudnn")


def jax_fixed() -> object:
    return _jax(None)


TF_EXPECTED = ValueError
TF_MATCH = r"Flash attention is not supported in tensorflow backend"
TF_NOTE = (
    "Keras' `dot_product_attention` on the TensorFlow backend has no flash kernel; "
    "`flash_attention=True` is refused, `flash_attention=None` (the default) runs."
)


def _tf(flash: bool | None) -> object:
    import tensorflow as tf

    q, k, v = (tf.transpose(tf.constant(a), (0, 2, 1, 3)) for a in _inputs())  # BTNH
    out = tf.keras.ops.dot_product_attention(q, k, v, flash_attention=flash)
    return tf.transpose(out, (0, 2, 1, 3))


def tf_broken() -> object:
    return _tf(True)


def tf_fixed() -> object:
    return _tf(None)
