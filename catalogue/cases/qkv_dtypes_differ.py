"""Query, key and value in different dtypes: a float16 query against a float32 key/value cache.

What happens:
    The query comes out of a projection run in float16 (``model.half()``, autocast), the
    key and value from a cache kept in float32. PyTorch's SDPA refuses:
    ``RuntimeError: Expected query, key, and value to have the same dtype, but got
    query.dtype: c10::Half key.dtype: float and value.dtype: float instead.``;
    ``jax.nn.dot_product_attention`` raises ``ValueError: query dtype should be float32, but
    got float16`` (the key/value's dtype is the one the query is told to match), and a
    hand-written TensorFlow ``tf.matmul(q, k, transpose_b=True)`` raises
    ``InvalidArgumentError: cannot compute BatchMatMulV2 as input #1(zero-based) was
    expected to be a half tensor but is a float tensor``. Hand-written NumPy attention
    does not refuse: it promotes and returns float32 attention from a float16 query, twice
    the memory, and the dtype surprise moves to the next layer. refattn's own
    ``attention`` refuses the mix with an ``AttentionDTypeError`` naming the three dtypes.
    Kernels refuse with their own words:
    xFormers ``Query/Key/Value should either all have the same dtype``, flash-attn
    ``query and key must have the same dtype`` (GPU-only, not run here; sources:
    https://github.com/facebookresearch/xformers/issues/934,
    https://github.com/Dao-AILab/flash-attention/issues/732).

Why:
    One of the three left out of the precision change: a cache allocated in float32 before
    ``model.half()``, a projection outside the autocast region, a rotary table in float32
    multiplying a half query, an adapter (LoRA, IP-Adapter) whose weights load in another
    dtype. Fused kernels compute in one dtype and check it; NumPy and ``jax.numpy`` promote
    silently.

Fix:
    Cast to one dtype right before the attention call, usually the query's (the model's):
    ``k, v = k.to(q.dtype), v.to(q.dtype)`` (``astype`` in NumPy and JAX, ``tf.cast`` in
    TensorFlow); better, allocate the cache in the model's dtype and cast adapters and
    tables when the model is cast.

Sources:
    https://github.com/cubiq/ComfyUI_IPAdapter_plus/issues/395
        ("Expected query, key, and value to have the same dtype, but got query.dtype:
        struct c10::Half key.dtype: float and value.dtype: float instead.")
    https://github.com/nari-labs/dia/pull/45
        (the same with a bfloat16 query on CPU; fixed by casting k and v to the query's dtype)
    https://github.com/hiyouga/LlamaFactory/issues/539 (float32 query, float16 value under QLoRA)
    https://github.com/facebookresearch/xformers/issues/934
        ("Query/Key/Value should either all have the same dtype, or (in the quantized case)
        Key/Value should have dtype torch.int32")
    https://github.com/huggingface/diffusers/issues/6774
        (xFormers refusal under mixed precision, fixed by casting the query to float16)
    https://github.com/Dao-AILab/flash-attention/issues/732
        ("query and key must have the same dtype")
    https://github.com/Leeroo-AI/mergoo/pull/15 (the flash-attn refusal with use_cache=True)
    https://github.com/tinygrad/tinygrad/pull/5100
        (attention returned another dtype than its half inputs)
"""

import numpy as np

from refattn import attention
from refattn.checks import check_close
from refattn.errors import CheckFailure

KIND = "silent"
EXPECTED = CheckFailure
MATCH = r"output is float32, the query float16"
TAGS = ("reduced-precision",)
MESSAGES = (
    r"Expected query, key,? and value to have the same dtype",
    r"query\.dtype: [\w:. ]+ key\.dtype: [\w:. ]+ and value\.dtype",
    r"Query/Key/Value should either all have the same dtype",
    r"query and key must have the same dtype",
    r"(?:query|value) dtype should be \w+, but got \w+",
    r"query, key and value should share one dtype",
    r"cannot compute BatchMatMulV2 as input #1\(zero-based\) was expected to be a "
    r"(?:half|bfloat16|float) tensor but is a (?:half|bfloat16|float) tensor",
)
SYMPTOMS = (
    "query key and value have different dtypes",
    "float16 query with float32 key value cache",
    "attention output comes back as float32 in a float16 model",
    "key value cache kept in float32 after model.half()",
)
FIXED_ATOL = 2e-3  # float16 attention of unit-scale inputs, against float64


def _inputs() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    q, k, v = rng.standard_normal((3, 1, 2, 4, 8))  # each (B, H, L, D)
    return q.astype(np.float16), k.astype(np.float32), v.astype(np.float32)  # cache float32


def _attend(q: np.ndarray, k: np.ndarray, v: np.ndarray) -> np.ndarray:
    scores = q @ k.swapaxes(-1, -2) / q.shape[-1] ** 0.5  # (B, H, L, S)
    weights = np.exp(scores - scores.max(-1, keepdims=True))
    return weights / weights.sum(-1, keepdims=True) @ v  # (B, H, L, D)


# --8<-- [start:broken]
def broken() -> np.ndarray:
    q, k, v = _inputs()
    return _attend(q, k, v)  # float16 @ float32: promoted to float32


# --8<-- [end:broken]


# --8<-- [start:fixed]
def fixed() -> np.ndarray:
    q, k, v = _inputs()
    return _attend(q, k.astype(q.dtype), v.astype(q.dtype))  # the query's (model's) dtype


# --8<-- [end:fixed]


def _expected() -> np.ndarray:
    """The float64 attention (refattn) over the float16 values the fix attends over."""
    q, k, v = (a.astype(np.float16).astype(np.float64) for a in _inputs())
    return attention(q, k, v)


def detect(output: np.ndarray) -> None:
    if output.dtype != np.float16:
        raise CheckFailure(
            f"output is {output.dtype}, the query float16: key or value in another dtype "
            f"promoted the attention; cast them to the query's dtype."
        )
    check_close(output, _expected(), rtol=0.0, atol=FIXED_ATOL, name="output")


TORCH_EXPECTED = RuntimeError
TORCH_MATCH = (
    r"Expected query, key, and value to have the same dtype, but got query\.dtype: "
    r"c10::Half key\.dtype: float and value\.dtype: float instead\."
)


def torch_broken() -> object:
    import torch
    import torch.nn.functional as F

    q, k, v = (torch.from_numpy(a) for a in _inputs())
    return F.scaled_dot_product_attention(q, k, v)


def torch_fixed() -> object:
    import torch
    import torch.nn.functional as F

    q, k, v = (torch.from_numpy(a) for a in _inputs())
    return F.scaled_dot_product_attention(q, k.to(q.dtype), v.to(q.dtype))


JAX_EXPECTED = ValueError
JAX_MATCH = r"query dtype should be float32, but got float16"
JAX_NOTE = (
    "The message names the key/value's float32 as the dtype the query should have: the "
    "float16 query is the odd one out."
)


def jax_broken() -> object:
    import jax
    import jax.numpy as jnp

    q, k, v = (jnp.asarray(a).swapaxes(1, 2) for a in _inputs())  # (B, T, N, H)
    return jax.nn.dot_product_attention(q, k, v).swapaxes(1, 2)


def jax_fixed() -> object:
    import jax
    import jax.numpy as jnp

    q, k, v = (jnp.asarray(a).swapaxes(1, 2) for a in _inputs())  # (B, T, N, H)
    out = jax.nn.dot_product_attention(q, k.astype(q.dtype), v.astype(q.dtype))
    return out.swapaxes(1, 2)


TF_EXPECTED = "tensorflow.errors.InvalidArgumentError"
TF_MATCH = (
    r"cannot compute BatchMatMulV2 as input #1\(zero-based\) was expected to be a half "
    r"tensor but is a float tensor"
)
TF_NOTE = (
    "`tf.matmul` does not promote: the first product of a float16 query and a float32 key fails."
)


def _tf(cast: bool) -> object:
    import tensorflow as tf

    q, k, v = (tf.constant(a) for a in _inputs())
    if cast:
        k, v = tf.cast(k, q.dtype), tf.cast(v, q.dtype)
    scores = tf.matmul(q, k, transpose_b=True) / q.shape[-1] ** 0.5  # (B, H, L, S)
    return tf.matmul(tf.nn.softmax(scores, axis=-1), v)


def tf_broken() -> object:
    return _tf(False)


def tf_fixed() -> object:
    return _tf(True)
