"""An output projection sized from the key head size instead of the value head size.

What happens:
    The merged heads ``(B, L, H * Dv)`` meet an output weight built for ``H * D`` inputs:
    ``ValueError: matmul: Input operand 1 has a mismatch in its core dimension 0 ... (size
    64 is different from 96)`` in NumPy, ``RuntimeError: mat1 and mat2 shapes cannot be
    multiplied (10x96 and 64x32)`` from PyTorch's ``nn.Linear``, ``TypeError:
    dot_general requires contracting dimensions to have the same shape, got (96,) and
    (64,).`` from JAX.

Why:
    Attention returns one value vector per head, so the merged width is ``H * Dv``. When
    values have another head size than queries and keys (``Dv`` in refattn, a value
    projection of its own width in a hand-written layer), the output projection must take
    ``H * Dv`` features. ``nn.MultiheadAttention`` cannot make this mistake: its ``vdim``
    is the width of the value *input*, which ``v_proj`` maps to ``embed_dim`` (weight
    ``(embed_dim, vdim)``), so its ``out_proj`` always takes ``embed_dim`` features.

Fix:
    Build the output projection as ``(num_heads * value_head_dim, embed_dim)``.
"""

import numpy as np

from refattn import attention

from ._common import softmax

KIND = "exception"
EXPECTED = ValueError
MATCH = r"mismatch in its core dimension 0.*\(size 64 is different from 96\)"
TAGS = ("projection-width",)
MESSAGES = (
    r"mat1 and mat2 shapes cannot be multiplied \(\d+x\d+ and \d+x\d+\)",
    r"mismatch in its core dimension 0.*\(size \d+ is different from \d+\)",
    r"Matrix size-incompatible",
)
SYMPTOMS = ("output projection shape error when value dim differs",)

B, L, H, D, DV, E = 2, 5, 4, 16, 24, 32


def _merged_heads() -> np.ndarray:
    rng = np.random.default_rng(0)
    q, k = rng.standard_normal((2, B, H, L, D))
    v = rng.standard_normal((B, H, L, DV))  # values have their own head size
    out = softmax(q @ k.swapaxes(-1, -2) / np.sqrt(D)) @ v  # (B, H, L, Dv)
    return out.transpose(0, 2, 1, 3).reshape(B, L, H * DV)  # (B, L, H * Dv) = (2, 5, 96)


def _w_out(rows: int) -> np.ndarray:
    return np.random.default_rng(1).standard_normal((rows, E)) / np.sqrt(rows)


# --8<-- [start:broken]
def broken() -> np.ndarray:
    merged = _merged_heads()
    w_out = _w_out(H * D)  # sized from the key head size: 64 rows
    return merged @ w_out


# --8<-- [end:broken]


# --8<-- [start:fixed]
def fixed() -> np.ndarray:
    merged = _merged_heads()
    w_out = _w_out(H * DV)  # sized from the value head size: 96 rows
    return merged @ w_out


# --8<-- [end:fixed]


def reference() -> np.ndarray:
    rng = np.random.default_rng(0)
    q, k = rng.standard_normal((2, B, H, L, D))
    v = rng.standard_normal((B, H, L, DV))
    out = attention(q, k, v).transpose(0, 2, 1, 3).reshape(B, L, H * DV)
    return out @ _w_out(H * DV)


TORCH_EXPECTED = RuntimeError
TORCH_MATCH = r"mat1 and mat2 shapes cannot be multiplied \(10x96 and 64x32\)"


def torch_broken() -> object:
    import torch

    merged = torch.randn(B, L, H * DV)
    out_proj = torch.nn.Linear(H * D, E)
    return out_proj(merged)


JAX_EXPECTED = TypeError
JAX_MATCH = (
    r"dot_general requires contracting dimensions to have the same shape, got \(96,\) and "
    r"\(64,\)"
)


def jax_broken() -> object:
    import jax.numpy as jnp

    merged = jnp.asarray(_merged_heads())  # (B, L, H * Dv)
    w_out = jnp.asarray(_w_out(H * D))  # sized from the key head size: 64 rows
    return merged @ w_out


def jax_fixed() -> object:
    import jax.numpy as jnp

    merged = jnp.asarray(_merged_heads())
    w_out = jnp.asarray(_w_out(H * DV))  # sized from the value head size: 96 rows
    return merged @ w_out


TF_EXPECTED = "tensorflow.errors.InvalidArgumentError"
TF_MATCH = r"Matrix size-incompatible: In\[0\]: \[2,5,96\], In\[1\]: \[64,32\]"


def tf_broken() -> object:
    import tensorflow as tf

    merged = tf.constant(_merged_heads())  # (B, L, H * Dv)
    w_out = tf.constant(_w_out(H * D))  # sized from the key head size: 64 rows
    return tf.matmul(merged, w_out)


def tf_fixed() -> object:
    import tensorflow as tf

    merged = tf.constant(_merged_heads())
    w_out = tf.constant(_w_out(H * DV))  # sized from the value head size: 96 rows
    return tf.matmul(merged, w_out)


def torch_fixed() -> object:
    import torch

    merged = torch.from_numpy(_merged_heads())
    out_proj = torch.nn.Linear(H * DV, E, bias=False, dtype=merged.dtype)  # H * Dv inputs
    with torch.no_grad():
        out_proj.weight.copy_(torch.from_numpy(_w_out(H * DV)).T)  # the case's weights
    return out_proj(merged)
