"""Rotary angles computed in float16/bfloat16 after the model was cast to half precision.

What happens:
    No error, a wrong output that grows with the position. ``model.half()`` or
    ``model.to(torch.bfloat16)`` casts the rotary ``inv_freq`` buffer too, and the usual
    ``t = torch.arange(L).type_as(inv_freq)`` then counts positions in that dtype: float16
    holds integers exactly only up to 2048 (bfloat16 up to 256), so positions 2994..2999
    collapse onto even numbers (onto multiples of 16 in bfloat16), and ``t * inv_freq``
    rounds the angle to the dtype's spacing before ``cos``/``sin``. Here 11 tokens (the
    first 5 of a document and 6 near position 3000) get attention weights off by up to
    0.09 with a float16 table and 0.26 with a bfloat16 one (PyTorch). Even a bfloat16
    ``inv_freq`` times float32 positions (JAX) is off by 0.05: its 0.1 % frequency error
    times a distance of 3000 is a third of a radian: the error grows with the distance.

Why:
    A rotary angle ``position * frequency`` reaches thousands of radians; ``cos`` of it
    needs the angle to well under 0.01 rad, i.e. about 6 significant digits at 3000.
    float16 keeps 3-4, bfloat16 2-3.

Fix:
    Compute positions, ``inv_freq`` and the angles in float32 (or float64) whatever the
    model dtype, and cast only ``cos``/``sin`` to it: register ``inv_freq`` with
    ``persistent=False`` and call ``.float()`` on it in ``forward``; in JAX keep
    ``inv_freq`` float32 until after the outer product.

Sources:
    https://github.com/EleutherAI/gpt-neox/issues/1003
        (RotaryEmbedding wrong for some position/feature pairs in fp16 and bfloat16)
    https://github.com/huggingface/transformers/pull/29285 (RoPE loses precision in bfloat16)
    https://github.com/huggingface/transformers/issues/25681
        (LlamaRotaryEmbedding: wrong cache values after casting the model to float16/bfloat16)
    https://github.com/sgl-project/sglang-jax/issues/1472
        (JAX: inverse frequencies rounded to bfloat16 before the phase computation)
"""

import numpy as np

from refattn import attention
from refattn.checks import check_close
from refattn.errors import CheckFailure

from ._common import softmax
from ._rope import rotate_complex

KIND = "silent"
EXPECTED = CheckFailure
MATCH = r"weights differs from the reference"
TAGS = ("reduced-precision", "rotary-embedding")
SYMPTOMS = (
    "long context quality drops in bfloat16 but not float32",
    "rotary embeddings wrong after model.half()",
    "position ids above 256 rounded in bfloat16",
    "rope loses precision in bfloat16",
    "rotary cos sin cache wrong in float16",
)
POSITIONS = np.concatenate([np.arange(5), np.arange(2994, 3000)])  # start and near 3000
TORCH_FIXED_ATOL = 1e-4  # float32 angles near 3000 rad are good to about 2e-4 rad
JAX_FIXED_ATOL = 1e-4


def _inputs() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    q, k = rng.standard_normal((2, 1, 1, 11, 8))  # each (B, H, L, D)
    return q, k


def _rotate(x: np.ndarray, cos: np.ndarray, sin: np.ndarray) -> np.ndarray:
    h = x.shape[-1] // 2
    return x * cos + np.concatenate([-x[..., h:], x[..., :h]], axis=-1) * sin


def _weights(dtype: type) -> np.ndarray:
    q, k = _inputs()
    inv_freq: np.ndarray = (1.0 / 10000 ** (np.arange(0, 8, 2) / 8)).astype(dtype)  # model dtype
    t = POSITIONS.astype(inv_freq.dtype)  # positions in the same dtype
    freqs = np.outer(t, inv_freq)
    emb = np.concatenate([freqs, freqs], axis=-1)
    cos, sin = np.cos(emb).astype(np.float64), np.sin(emb).astype(np.float64)
    q, k = _rotate(q, cos, sin), _rotate(k, cos, sin)
    return softmax(q @ k.swapaxes(-1, -2) / np.sqrt(8))


# --8<-- [start:broken]
def broken() -> np.ndarray:
    return _weights(np.float16)  # inv_freq and positions in float16


# --8<-- [end:broken]


# --8<-- [start:fixed]
def fixed() -> np.ndarray:
    return _weights(np.float64)  # angles in full precision, cast afterwards if need be


# --8<-- [end:fixed]


def reference() -> np.ndarray:
    q, k = _inputs()
    q, k = rotate_complex(q, POSITIONS), rotate_complex(k, POSITIONS)
    weights = attention(q, k, k, return_weights=True).weights
    assert weights is not None
    return weights


def detect(weights: np.ndarray) -> None:
    check_close(weights, reference(), rtol=0.0, atol=1e-3, name="weights")


TORCH_KIND = "silent"
TORCH_EXPECTED = CheckFailure
TORCH_MATCH = MATCH


def _torch(dtype_name: str) -> object:
    import torch

    q, k = (torch.from_numpy(a).float() for a in _inputs())
    inv_freq = 1.0 / (10000 ** (torch.arange(0, 8, 2).float() / 8))
    inv_freq = inv_freq.to(getattr(torch, dtype_name))  # model.to(dtype) casts the buffer
    t = torch.from_numpy(POSITIONS).type_as(inv_freq)
    freqs = torch.outer(t, inv_freq)
    emb = torch.cat([freqs, freqs], dim=-1)
    cos, sin = emb.cos().float(), emb.sin().float()

    def rotate(x: torch.Tensor) -> torch.Tensor:
        return x * cos + torch.cat([-x[..., 4:], x[..., :4]], dim=-1) * sin

    q, k = rotate(q), rotate(k)
    return torch.softmax(q @ k.transpose(-1, -2) / 8**0.5, dim=-1)


def torch_broken() -> object:
    return _torch("bfloat16")


def torch_fixed() -> object:
    return _torch("float32")


JAX_KIND = "silent"
JAX_EXPECTED = CheckFailure
JAX_MATCH = MATCH


def _jax(freq_dtype: str) -> object:
    import jax
    import jax.numpy as jnp

    q, k = (jnp.asarray(a, dtype=jnp.float32) for a in _inputs())
    inv_freq = jnp.asarray(1.0 / 10000 ** (np.arange(0, 8, 2) / 8), dtype=freq_dtype)
    freqs = jnp.outer(jnp.asarray(POSITIONS, dtype=jnp.float32), inv_freq)  # float32 result
    emb = jnp.concatenate([freqs, freqs], axis=-1)
    cos, sin = jnp.cos(emb), jnp.sin(emb)

    def rotate(x: jax.Array) -> jax.Array:
        return x * cos + jnp.concatenate([-x[..., 4:], x[..., :4]], axis=-1) * sin

    q, k = rotate(q), rotate(k)
    return jax.nn.softmax(q @ k.swapaxes(-1, -2) / jnp.sqrt(8.0), axis=-1)


def jax_broken() -> object:
    return _jax("bfloat16")  # inv_freq cast to the model dtype before the product


def jax_fixed() -> object:
    return _jax("float32")
