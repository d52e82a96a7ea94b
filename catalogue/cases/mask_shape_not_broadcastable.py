"""A key-padding mask applied to the scores without its broadcast axes.

What happens:
    ``np.where(keep, scores, -np.inf)`` with a ``(B, S)`` mask and ``(B, H, L, S)`` scores
    raises ``ValueError: operands could not be broadcast together with shapes (2,6) (2,4,5,6)
    ()``. Every framework refuses it, each in its own words (see the tabs): PyTorch's
    ``masked_fill`` ``RuntimeError: The size of tensor a (2) must match the size of tensor b
    (5) at non-singleton dimension 2``, ``jnp.where`` ``ValueError: Incompatible shapes for
    broadcasting: shapes=[(2, 6), (2, 4, 5, 6), ()]``, ``tf.where`` ``InvalidArgumentError:
    condition [2,6], then [2,4,5,6], and else [] must be broadcastable [Op:SelectV2]`` (an
    additive mask in TensorFlow: ``Incompatible shapes: [2,4,5,6] vs. [2,6] [Op:AddV2]``).
    Single-head ``(B, L, S)`` scores fail the same way: the seed articles'
    ``scores.masked_fill(mask == 0, float('-inf'))`` with a ``(10, 20)`` mask raises
    ``The size of tensor a (10) must match the size of tensor b (20) at non-singleton
    dimension 1``, and ``torch.bmm(q, k.transpose(1, 2)) - 1e9 * mask.float()`` with a
    ``(32, 20)`` mask ``The size of tensor a (20) must match the size of tensor b (32) at
    non-singleton dimension 1``. Not an ``IndexError`` anywhere. When the batch size
    happens to equal the length the mask broadcasts and silently masks queries instead of
    keys (``key_padding_broadcast_along_query``).

Why:
    Broadcasting aligns shapes from the right: ``(2, 6)`` is read as ``(1, 1, 2, 6)``, so the
    batch size meets the query length (2 against 5). A padding mask is per example and per
    key; it needs unit axes for the heads and the queries.

Fix:
    ``keep[:, None, None, :]``, shape ``(B, 1, 1, S)`` (``(B, 1, S)`` for single-head
    scores); refattn's ``key_lengths`` builds it. Name the mask for its meaning (``keep``,
    ``pad``) rather than testing ``mask == 0``, which is right only for a True-means-keep
    mask.

Sources:
    https://github.com/lucidrains/vit-pytorch/issues/71 (a (B, N) mask, (B, H, N, N) scores)
    https://github.com/hyunwoongko/transformer/issues/32 (a mask without the head axis)
"""

import numpy as np

from ._common import reference_weights, softmax

KIND = "exception"
EXPECTED = ValueError
MATCH = r"operands could not be broadcast together with shapes \(2,6\) \(2,4,5,6\)"
TAGS = ("mask-shape",)
SEED_CLAIMS = (
    (
        "000_acdb1d09df8d8964.txt",
        "Example 2 (fixed layer): scores.masked_fill(mask == 0, float('-inf')) with a "
        "(batch_size, sequence_length) mask makes attention(x, mask) work and print its "
        "output shape",
        "False: the masking line itself raises RuntimeError ('The size of tensor a (10) "
        "must match the size of tensor b (20) at non-singleton dimension 1'), so the "
        "article's try block prints 'Error: ...' instead of a shape; the mask needs "
        "mask[:, None, :]. Even then, mask == 0 reads False as padding (right only for a "
        "True = keep mask), and a random mask that drops every key of an example (odds "
        "2**-20 per example here) gives that example NaN rows (see fully_masked_row_nan).",
    ),
    (
        "004_4cf73df6a2e65df9.txt",
        "Example 3: failing to apply the padding mask 'will lead to attempts to access "
        "indices beyond the bounds of valid tokens, resulting in an IndexError'",
        "False: attention never indexes by token, so an unmasked pad is a silent leak of "
        "weight onto padding (see padding_not_masked), not an IndexError.",
    ),
    (
        "004_4cf73df6a2e65df9.txt",
        "Example 3: torch.softmax(torch.bmm(q, k.transpose(1, 2)) - 1e9 * mask.float(), "
        "dim=-1) is 'the correct approach' (the snippet also uses q and k it never defines)",
        "False: with the article's sizes (batch 32, max_len 20) it raises RuntimeError ('The "
        "size of tensor a (20) must match the size of tensor b (32) at non-singleton "
        "dimension 1'); the mask needs mask[:, None, :]. With batch == max_len it runs and "
        "masks the wrong axis (see key_padding_broadcast_along_query).",
    ),
    (
        "004_4cf73df6a2e65df9.txt",
        "Section 3: padding that is not handled in the attention calculation 'can result in "
        "index errors'",
        "False: mishandled padding gives silent leaks, broadcasting errors (ValueError or "
        "RuntimeError) or NaN for fully masked rows, never an IndexError.",
    ),
)
MESSAGES = (
    r"operands could not be broadcast together with shapes",
    r"size of tensor a \(\d+\) must match the size of tensor b \(\d+\) at non-singleton",
    r"Incompatible shapes: \[[\d,]+\] vs\. \[[\d,]+\]",
    r"Incompatible shapes for broadcasting: shapes=\[",
    r"condition \[[\d,]+\], then \[[\d,]+\], and else \[[\d,]*\] must be broadcastable",
    r"Expected key_padded_mask\.shape\[0\] to be \d+, but got \d+",
    r"The shape of the [23]D attn_mask is torch\.Size\(\[[\d, ]+\]\), but should be",
)
SYMPTOMS = (
    "padding mask does not broadcast to the attention scores",
    "masked_fill fails when adding a padding mask to multi-head attention",
    "masked_fill fails with a padding mask",
    "attention works without a mask but fails when the mask is passed",
    "padding mask subtraction shape error",
    "index error from padding in self-attention",
)


def _inputs() -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(0)
    q = rng.standard_normal((2, 4, 5, 8))  # (B, H, L, D)
    k = rng.standard_normal((2, 4, 6, 8))  # (B, H, S, D)
    keep = np.arange(6) < np.array([[6], [4]])  # (B, S): True = real token
    return q, k, keep


# --8<-- [start:broken]
def broken() -> np.ndarray:
    q, k, keep = _inputs()
    scores = q @ k.swapaxes(-1, -2) / np.sqrt(8)  # (B, H, L, S)
    return softmax(np.where(keep, scores, -np.inf))  # (B, S) against (B, H, L, S)


# --8<-- [end:broken]


# --8<-- [start:fixed]
def fixed() -> np.ndarray:
    q, k, keep = _inputs()
    scores = q @ k.swapaxes(-1, -2) / np.sqrt(8)
    return softmax(np.where(keep[:, None, None, :], scores, -np.inf))  # (B, 1, 1, S)


# --8<-- [end:fixed]


def reference() -> np.ndarray:
    q, k, keep = _inputs()
    return reference_weights(q, k, key_lengths=keep.sum(-1))


TORCH_EXPECTED = RuntimeError
TORCH_MATCH = (
    r"The size of tensor a \(2\) must match the size of tensor b \(5\) at non-singleton "
    r"dimension 2"
)


def torch_broken() -> object:
    import torch

    q, k, keep = (torch.from_numpy(a) for a in _inputs())
    scores = q @ k.transpose(-2, -1) / 8**0.5  # (B, H, L, S)
    return torch.softmax(scores.masked_fill(~keep, float("-inf")), dim=-1)  # (B, S)


def torch_fixed() -> object:
    import torch

    q, k, keep = (torch.from_numpy(a) for a in _inputs())
    scores = q @ k.transpose(-2, -1) / 8**0.5
    return torch.softmax(scores.masked_fill(~keep[:, None, None, :], float("-inf")), dim=-1)


JAX_EXPECTED = ValueError
JAX_MATCH = r"Incompatible shapes for broadcasting: shapes=\[\(2, 6\), \(2, 4, 5, 6\), \(\)\]"


def jax_broken() -> object:
    import jax
    import jax.numpy as jnp

    q, k, keep = (jnp.asarray(a) for a in _inputs())
    scores = q @ k.swapaxes(-1, -2) / jnp.sqrt(8.0)  # (B, H, L, S)
    return jax.nn.softmax(jnp.where(keep, scores, -jnp.inf), axis=-1)  # (B, S)


def jax_fixed() -> object:
    import jax
    import jax.numpy as jnp

    q, k, keep = (jnp.asarray(a) for a in _inputs())
    scores = q @ k.swapaxes(-1, -2) / jnp.sqrt(8.0)
    return jax.nn.softmax(jnp.where(keep[:, None, None, :], scores, -jnp.inf), axis=-1)


TF_EXPECTED = "tensorflow.errors.InvalidArgumentError"
TF_MATCH = (
    r"condition \[2,6\], then \[2,4,5,6\], and else \[\] must be broadcastable "
    r"\[Op:SelectV2\]"
)
TF_NOTE = (
    "TensorFlow names the op: tf.where fails in SelectV2 with the three shapes it was "
    "given; the same mask added to the scores fails in AddV2 ('Incompatible shapes')."
)


def tf_broken() -> object:
    import tensorflow as tf

    q, k, keep = (tf.constant(a) for a in _inputs())
    scores = tf.matmul(q, k, transpose_b=True) / 8**0.5  # (B, H, L, S)
    return tf.nn.softmax(tf.where(keep, scores, -float("inf")), axis=-1)  # (B, S)


def tf_fixed() -> object:
    import tensorflow as tf

    q, k, keep = (tf.constant(a) for a in _inputs())
    scores = tf.matmul(q, k, transpose_b=True) / 8**0.5
    return tf.nn.softmax(tf.where(keep[:, None, None, :], scores, -float("inf")), axis=-1)
