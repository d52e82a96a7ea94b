"""A ``(B, L, S)`` mask broadcast against ``(B, H, L, S)`` scores.

What happens:
    When the batch size equals the number of heads, no error: NumPy aligns the mask as
    ``(1, B, L, S)``, so head ``h`` of *every* example gets example ``h``'s mask. Examples
    attend to their padding in some heads and lose real tokens in others. PyTorch's SDPA,
    JAX's ``dot_product_attention`` and ``tf.where`` read a 3-D mask the same way, silently
    when ``B == H``. With ``B != H`` and several heads it raises (NumPy ``ValueError:
    operands could not be broadcast together``; PyTorch SDPA with ``B = 2, H = 3``:
    ``RuntimeError: The size of tensor a (3) must match the size of tensor b (2) at
    non-singleton dimension 1``). With a single head it does not raise in NumPy either:
    ``(B, L, S)`` against ``(B, 1, L, S)`` broadcasts to ``(B, B, L, S)``, ``B`` copies of
    the scores each under another example's mask; PyTorch's SDPA refuses that one
    (``RuntimeError: output with shape [2, 1, 5, 5] doesn't match the broadcast shape [2,
    2, 5, 5]``). refattn refuses 3-D masks and asks which you meant.

Why:
    Broadcasting aligns from the right, so a 3-D mask is taken as ``(H, L, S)`` by a 4-D
    score array. The batch axis of the mask needs a unit head axis after it.

Fix:
    ``mask[:, None]``, shape ``(B, 1, L, S)``; for a per-head mask, ``mask[None]``.

Sources:
    https://github.com/lucidrains/graph-transformer-pytorch/pull/2 (batch broadcast to heads)
    https://github.com/hyunwoongko/transformer/issues/32 (a (B, L, L) mask, (B, H, L, L) scores)
"""

import numpy as np

from refattn.checks import check_no_weight_on_masked
from refattn.errors import CheckFailure

from ._common import reference_weights, softmax

KIND = "silent"
EXPECTED = CheckFailure
MATCH = r"masked \(query, key\) pairs got attention weight"
TAGS = ("mask-shape", "mask-broadcast-axis")
MESSAGES = (
    r"3 dims .*ambiguous: \(B, L, S\) or \(H, L, S\)",
    r"operands could not be broadcast together with shapes \(\d+,\d+,\d+\) \(\d+,\d+,\d+,\d+\)",
    r"output with shape \[\d+, 1, \d+, \d+\] doesn't match the broadcast shape",
)
SYMPTOMS = (
    "3d attention mask applied to the wrong heads",
    "padding leaks in some heads but not others",
    "mask works with batch size 1 but not with larger batches",
    "output has an extra axis the size of the batch after masking",
)


def _inputs() -> tuple[np.ndarray, np.ndarray]:
    x = np.random.default_rng(0).standard_normal((2, 2, 5, 5))  # (B, H, L, D): B == H
    keep = np.arange(5) < np.array([[3], [5]])  # (B, S)
    mask = np.broadcast_to(keep[:, None, :], (2, 5, 5))  # (B, L, S)
    return x, mask


# --8<-- [start:broken]
def broken() -> np.ndarray:
    x, mask = _inputs()
    scores = x @ x.swapaxes(-1, -2) / np.sqrt(5)  # (B, H, L, S)
    return softmax(np.where(mask, scores, -np.inf))  # mask read as (H, L, S)


# --8<-- [end:broken]


# --8<-- [start:fixed]
def fixed() -> np.ndarray:
    x, mask = _inputs()
    scores = x @ x.swapaxes(-1, -2) / np.sqrt(5)
    return softmax(np.where(mask[:, None], scores, -np.inf))  # (B, 1, L, S)


# --8<-- [end:fixed]


def reference() -> np.ndarray:
    x, mask = _inputs()
    return reference_weights(x, x, attend_mask=mask[:, None])


def detect(weights: np.ndarray) -> None:
    _, mask = _inputs()
    check_no_weight_on_masked(weights, mask[:, None])


TORCH_KIND = "silent"
TORCH_EXPECTED = CheckFailure
TORCH_MATCH = MATCH


def torch_broken() -> object:
    import torch
    import torch.nn.functional as F

    x, mask = (torch.from_numpy(a.copy()) for a in _inputs())
    one_hot = torch.eye(5, dtype=x.dtype).expand(2, 2, 5, 5)  # output = weight matrix
    return F.scaled_dot_product_attention(x, x, one_hot, attn_mask=mask)  # (B, L, S) mask


def torch_fixed() -> object:
    import torch
    import torch.nn.functional as F

    x, mask = (torch.from_numpy(a.copy()) for a in _inputs())
    one_hot = torch.eye(5, dtype=x.dtype).expand(2, 2, 5, 5)
    return F.scaled_dot_product_attention(x, x, one_hot, attn_mask=mask[:, None])


JAX_KIND = "silent"
JAX_EXPECTED = CheckFailure
JAX_MATCH = MATCH
JAX_NOTE = (
    "jax.nn.dot_product_attention takes a 3-D mask the same way: it broadcasts (B, L, S) as "
    "(N, T, S) against its (B, N, T, S) logits, without a word when B == N."
)


def jax_broken() -> object:
    import jax
    import jax.numpy as jnp

    x, mask = _inputs()
    q = jnp.asarray(x.transpose(0, 2, 1, 3))  # (B, T, N, H), JAX's layout
    one_hot = jnp.broadcast_to(jnp.eye(5)[None, :, None, :], (2, 5, 2, 5))  # output = weights
    out = jax.nn.dot_product_attention(q, q, one_hot, mask=jnp.asarray(mask))  # (B, L, S)
    return out.transpose(0, 2, 1, 3)  # (B, N, T, S)


def jax_fixed() -> object:
    import jax
    import jax.numpy as jnp

    x, mask = _inputs()
    q = jnp.asarray(x.transpose(0, 2, 1, 3))
    one_hot = jnp.broadcast_to(jnp.eye(5)[None, :, None, :], (2, 5, 2, 5))
    out = jax.nn.dot_product_attention(q, q, one_hot, mask=jnp.asarray(mask)[:, None])
    return out.transpose(0, 2, 1, 3)


TF_KIND = "silent"
TF_EXPECTED = CheckFailure
TF_MATCH = MATCH


def tf_broken() -> object:
    import tensorflow as tf

    x, mask = (tf.constant(a) for a in _inputs())
    scores = tf.matmul(x, x, transpose_b=True) / 5**0.5  # (B, H, L, S)
    return tf.nn.softmax(tf.where(mask, scores, -float("inf")), axis=-1)  # read as (H, L, S)


def tf_fixed() -> object:
    import tensorflow as tf

    x, mask = (tf.constant(a) for a in _inputs())
    scores = tf.matmul(x, x, transpose_b=True) / 5**0.5
    return tf.nn.softmax(tf.where(mask[:, None], scores, -float("inf")), axis=-1)
