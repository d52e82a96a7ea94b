"""Cross-attention context not expanded to the beams of beam search.

What happens:
    Beam search runs ``num_beams`` hypotheses per example, so the decoder's queries have
    batch ``B * num_beams`` (here 2 * 3 = 6) while the encoder output still has ``B`` = 2.
    PyTorch's ``F.scaled_dot_product_attention`` (and ``q @ k.transpose``) raises
    ``RuntimeError: The size of tensor a (6) must match the size of tensor b (2) at
    non-singleton dimension 0``; NumPy's ``matmul`` ``ValueError: operands could not be
    broadcast together with remapped shapes``; ``jax.nn.dot_product_attention``
    ``ValueError: query shape should be [2, -1, -1, 8]: but got (6, 1, 1, 8)``; Keras'
    ``MultiHeadAttention`` ``InvalidArgumentError: Expected dimension 6 at axis 0 of the
    input shaped [2,7,2,4] but got dimension 2``.

Why:
    Beam search runs on ``B * num_beams`` rows, so every per-example input must be expanded
    to the beams; a tensor passed around that expansion — precomputed
    ``encoder_hidden_states``, image embeddings given to a captioning decoder — stays at
    ``B``; or it is expanded twice (``3`` vs ``9`` in the BLIP report). Greedy decoding
    (one beam) never shows it.

Fix:
    Expand the context exactly once, in beam order: ``np.repeat(context, num_beams,
    axis=0)`` (``context.repeat_interleave(num_beams, dim=0)``), so beam ``b * num_beams +
    i`` reads example ``b``; ``tile``/``repeat`` would pair beams with other examples.

Sources:
    https://github.com/salesforce/BLIP/issues/173 tensor a (3) vs b (9) at dimension 0, num_beams=3
    https://github.com/huggingface/transformers/issues/14668 encoder_hidden_states, num_beams > 1
"""

import numpy as np

from refattn import attention

from ._common import softmax

KIND = "exception"
EXPECTED = ValueError
MATCH = r"operands could not be broadcast together with remapped shapes .*\(6,1,8\)"
TAGS = ("batch-mismatch",)
SEED_CLAIMS = (
    (
        "004_4cf73df6a2e65df9.txt",
        "Section 2 and Example 2: batch-size discrepancies when concatenating head outputs "
        "cause IndexErrors",
        "False class: batch sizes that disagree raise ValueError in NumPy and RuntimeError "
        "in PyTorch ('The size of tensor a (6) must match the size of tensor b (2) at "
        "non-singleton dimension 0', 'Sizes of tensors must match except in dimension' for "
        "torch.cat), never IndexError.",
    ),
)
MESSAGES = (
    r"size of tensor a \(\d+\) must match the size of tensor b \(\d+\) at non-singleton "
    r"dimension 0",
    r"operands could not be broadcast together with remapped shapes",
    r"query shape should be \[\d+, -1, -1, \d+\]: but got",
    r"Expected dimension \d+ at axis 0 of the input shaped",
    r"must have compatible batch dimensions",
    r"all the input array dimensions except for the concatenation axis must match",
    r"Sizes of tensors must match except in dimension",
)
SYMPTOMS = (
    "encoder output not tiled to the beam width",
    "beam search fails but greedy decoding works",
    "num_beams > 1 raises a size mismatch at dimension 0",
    "encoder outputs not expanded for num_beams",
    "context batch size differs from query batch size in cross attention",
)

BEAMS = 3


def _inputs() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    context = rng.standard_normal((2, 7, 8))  # (B, S, D): encoder output per example
    query = rng.standard_normal((2 * BEAMS, 1, 8))  # (B * beams, 1, D): one decoder step
    return query, context


# --8<-- [start:broken]
def broken() -> np.ndarray:
    query, context = _inputs()
    scores = query @ context.swapaxes(-1, -2) / np.sqrt(8)  # batch 6 against batch 2
    return softmax(scores) @ context


# --8<-- [end:broken]


# --8<-- [start:fixed]
def fixed() -> np.ndarray:
    query, context = _inputs()
    context = np.repeat(context, BEAMS, axis=0)  # (B * beams, S, D), beam order
    scores = query @ context.swapaxes(-1, -2) / np.sqrt(8)
    return softmax(scores) @ context


# --8<-- [end:fixed]


def reference() -> np.ndarray:
    query, context = _inputs()
    c = np.repeat(context, BEAMS, axis=0)[:, None]
    return attention(query[:, None], c, c)[:, 0]


TORCH_EXPECTED = RuntimeError
TORCH_MATCH = (
    r"The size of tensor a \(6\) must match the size of tensor b \(2\) at non-singleton "
    r"dimension 0"
)


def torch_broken() -> object:
    import torch.nn.functional as F
    from torch import from_numpy

    query, context = (from_numpy(a)[:, None] for a in _inputs())  # (B, H, L, D)
    return F.scaled_dot_product_attention(query, context, context)


def torch_fixed() -> object:
    import torch.nn.functional as F
    from torch import from_numpy

    query, context = (from_numpy(a)[:, None] for a in _inputs())
    context = context.repeat_interleave(BEAMS, dim=0)  # beam order
    return F.scaled_dot_product_attention(query, context, context)[:, 0]


JAX_EXPECTED = ValueError
JAX_MATCH = r"query shape should be \[2, -1, -1, 8\]: but got \(6, 1, 1, 8\)"


def jax_broken() -> object:
    import jax
    import jax.numpy as jnp

    query, context = (jnp.asarray(a)[:, :, None] for a in _inputs())  # (B, T, N, H)
    return jax.nn.dot_product_attention(query, context, context)


def jax_fixed() -> object:
    import jax
    import jax.numpy as jnp

    query, context = (jnp.asarray(a)[:, :, None] for a in _inputs())
    context = jnp.repeat(context, BEAMS, axis=0)
    return jax.nn.dot_product_attention(query, context, context)[:, :, 0]


TF_EXPECTED = "tensorflow.errors.InvalidArgumentError"
TF_MATCH = r"Expected dimension 6 at axis 0 of the input shaped \[2,7,2,4\] but got dimension 2"


def tf_broken() -> object:
    import tensorflow as tf

    query, context = (tf.constant(a, tf.float32) for a in _inputs())
    layer = tf.keras.layers.MultiHeadAttention(num_heads=2, key_dim=4)
    return layer(query, context)  # query batch 6, value batch 2


def tf_fixed() -> object:
    import tensorflow as tf

    query, context = (tf.constant(a) for a in _inputs())
    context = tf.repeat(context, BEAMS, axis=0)
    scores = tf.matmul(query, context, transpose_b=True) / 8**0.5
    return tf.matmul(tf.nn.softmax(scores, axis=-1), context)
