"""An additive float mask in another dtype than a half-precision query.

What happens:
    The model runs in float16; the additive mask (0 to attend, ``-inf`` to ignore) was
    built in NumPy, where ``np.where(keep, 0.0, -np.inf)`` is float64. PyTorch's SDPA refuses
    it: ``RuntimeError: Expected attn_mask dtype to be bool or float or to match query
    dtype, but got attn_mask.dtype: double and  query.dtype: c10::Half instead.`` (a
    bfloat16 mask with a float16 query is refused the same way in the ComfyUI report
    below). NumPy and a hand-written JAX ``scores + mask`` do not
    refuse: they promote the float16 scores to the mask's dtype and return float64
    (float32 in JAX) attention, twice or four times the memory, and the next float16 layer
    gets an unexpected dtype.

Why:
    A float mask is added to the scores, so its dtype takes part in type promotion.
    SDPA's fused kernels need one dtype and check it; NumPy and JAX promote silently.

Fix:
    Use a boolean mask (True = attend), which has no float dtype to disagree; or cast the
    additive mask to the query's dtype where it is built (``mask.to(q.dtype)``,
    ``mask.astype(q.dtype)``); ``jax.nn.dot_product_attention`` casts a ``bias`` to the
    query's dtype itself.

Sources:
    https://github.com/Comfy-Org/ComfyUI/issues/8118
        ("Expected attn_mask dtype to be bool or float or to match query dtype, but got
        attn_mask.dtype: struct c10::BFloat16 and query.dtype: struct c10::Half instead.")
    https://github.com/seal-rg/recurrent-pretraining/issues/23 (the same message with a long mask)
    https://github.com/mlfoundations/open_clip/issues/484
        (float32 mask with a bfloat16 query on CPU under torch 2.0)
    https://github.com/foundation-model-stack/foundation-model-stack/pull/215
        (fixed by making the mask boolean)
"""

import numpy as np

from refattn.errors import CheckFailure

KIND = "silent"
EXPECTED = CheckFailure
MATCH = r"output is float(64|32), the query float16"
TAGS = ("mask-dtype",)
MESSAGES = (
    r"Expected attn_mask dtype to be bool or (float or )?to match query dtype",
    r"attn_mask\.dtype: [\w:. ]+ and +query\.dtype",
)
SYMPTOMS = (
    "attention mask dtype error with half precision model",
    "sdpa fails with a float64 mask from numpy",
    "attention output comes back as float32 in a float16 model",
)


def _inputs() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    q, k, v = rng.standard_normal((3, 1, 2, 4, 8)).astype(np.float16)  # (B, H, L, D)
    keep = np.arange(4) < np.array([[[[3]]]])  # (1, 1, 1, S): the last key is padding
    return q, k, v, keep


def _attend(q: np.ndarray, k: np.ndarray, v: np.ndarray, mask: np.ndarray) -> np.ndarray:
    scores = q @ k.swapaxes(-1, -2) / np.float16(np.sqrt(8)) + mask
    weights = np.exp(scores - scores.max(-1, keepdims=True))
    return weights / weights.sum(-1, keepdims=True) @ v


# --8<-- [start:broken]
def broken() -> np.ndarray:
    q, k, v, keep = _inputs()
    mask = np.where(keep, 0.0, -np.inf)  # float64
    return _attend(q, k, v, mask)  # promoted to float64


# --8<-- [end:broken]


# --8<-- [start:fixed]
def fixed() -> np.ndarray:
    q, k, v, keep = _inputs()
    mask = np.where(keep, 0.0, -np.inf).astype(q.dtype)  # the query's dtype
    return _attend(q, k, v, mask)


# --8<-- [end:fixed]


def detect(output: np.ndarray) -> None:
    if output.dtype != np.float16:
        raise CheckFailure(
            f"output is {output.dtype}, the query float16: a float mask of another dtype "
            f"promoted the scores; cast the mask to the query's dtype or make it boolean."
        )


TORCH_EXPECTED = RuntimeError
TORCH_MATCH = (
    r"Expected attn_mask dtype to be bool or float or to match query dtype, but got "
    r"attn_mask\.dtype: double and  query\.dtype: c10::Half instead\."
)


def torch_broken() -> object:
    import torch
    import torch.nn.functional as F

    q, k, v, keep = (torch.from_numpy(a) for a in _inputs())
    mask = torch.from_numpy(np.where(keep.numpy(), 0.0, -np.inf))  # float64 from NumPy
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)


def torch_fixed() -> object:
    import torch
    import torch.nn.functional as F

    q, k, v, keep = (torch.from_numpy(a) for a in _inputs())
    return F.scaled_dot_product_attention(q, k, v, attn_mask=keep)  # boolean: no dtype clash


JAX_KIND = "silent"
JAX_EXPECTED = CheckFailure
JAX_MATCH = MATCH
JAX_NOTE = (
    "A hand-written `scores + mask` promotes float16 scores and a float32 mask to float32; "
    "`jax.nn.dot_product_attention(bias=...)` returns the query's float16 (the fix below)."
)


def jax_broken() -> object:
    import jax
    import jax.numpy as jnp

    q, k, v, keep = (jnp.asarray(a) for a in _inputs())
    mask = jnp.where(keep, 0.0, -jnp.inf).astype(jnp.float32)
    scores = q @ k.swapaxes(-1, -2) / jnp.float16(8**0.5) + mask  # float32 now
    return jax.nn.softmax(scores, axis=-1) @ v


def jax_fixed() -> object:
    import jax
    import jax.numpy as jnp

    q, k, v, keep = (jnp.asarray(a).swapaxes(1, 2) for a in _inputs())  # (B, T, N, H)
    bias = jnp.where(keep, 0.0, -jnp.inf).astype(jnp.float32)  # (1, 1, 1, S)
    return jax.nn.dot_product_attention(q, k, v, bias=bias).swapaxes(1, 2)
