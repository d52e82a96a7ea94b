"""A True-means-ignore padding mask passed where True means attend.

What happens:
    No error. ``nn.MultiheadAttention``'s ``key_padding_mask`` marks padding with ``True``;
    ``F.scaled_dot_product_attention`` and ``np.where(mask, scores, -inf)`` keep the
    ``True`` positions. Passed from one to the other, every query attends *only* to
    padding: here all weight lands on keys 4-5 (example 0) and 3-5 (example 1). torch's
    SDPA, ``jax.nn.softmax(scores, where=mask)`` and Keras's ``MultiHeadAttention``
    (``attention_mask``) all read True as "attend" and return attention over the padded
    positions only. An example without padding has every key removed: NaN rows in a
    hand-written softmax, zeros from SDPA (torch 2.13, CPU).

Why:
    The two APIs use opposite polarities for a boolean mask, and both accept the other's
    mask without complaint: it has the right shape and dtype.

Fix:
    Invert at the boundary: ``attend = ~key_padding_mask``, and name masks after their
    meaning (refattn's ``attend_mask``; ``refattn.masks.from_torch_key_padding_mask``).

Sources:
    https://github.com/lucidrains/halonet-pytorch/issues/4 (the attention mask should be reversed)
    https://github.com/mlwithme/TransformerTranslation/issues/2 (which polarity masked_fill wants)
"""

import numpy as np

from refattn.checks import check_no_weight_on_masked
from refattn.errors import CheckFailure

from ._common import reference_weights, softmax

KIND = "silent"
EXPECTED = CheckFailure
MATCH = r"masked \(query, key\) pairs got attention weight"
TAGS = ("mask-polarity",)
SYMPTOMS = (
    "model attends only to padding tokens",
    "key_padding_mask inverted when switching to scaled_dot_product_attention",
    "True means ignore in key_padding_mask but attend in sdpa",
)


def _inputs() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 6, 4))  # (B, L, D)
    key_padding_mask = np.arange(6) >= np.array([[4], [3]])  # (B, S): True = padding
    return x, key_padding_mask


# --8<-- [start:broken]
def broken() -> np.ndarray:
    x, key_padding_mask = _inputs()
    scores = x @ x.swapaxes(-1, -2) / np.sqrt(4)
    return softmax(np.where(key_padding_mask[:, None, :], scores, -np.inf))  # keeps the pads


# --8<-- [end:broken]


# --8<-- [start:fixed]
def fixed() -> np.ndarray:
    x, key_padding_mask = _inputs()
    attend = ~key_padding_mask  # True = may attend
    scores = x @ x.swapaxes(-1, -2) / np.sqrt(4)
    return softmax(np.where(attend[:, None, :], scores, -np.inf))


# --8<-- [end:fixed]


def reference() -> np.ndarray:
    x, key_padding_mask = _inputs()
    return reference_weights(x, x, attend_mask=~key_padding_mask[:, None, None, :])


def detect(weights: np.ndarray) -> None:
    _, key_padding_mask = _inputs()
    check_no_weight_on_masked(weights, ~key_padding_mask[:, None, :])


TORCH_KIND = "silent"
TORCH_EXPECTED = CheckFailure
TORCH_MATCH = MATCH


def torch_broken() -> object:
    import torch
    import torch.nn.functional as F

    x, key_padding_mask = (torch.from_numpy(a) for a in _inputs())  # True = padding
    one_hot = torch.eye(6, dtype=x.dtype).expand(2, 6, 6)  # values = one-hot keys:
    # the output is SDPA's weight matrix
    return F.scaled_dot_product_attention(x, x, one_hot, attn_mask=key_padding_mask[:, None, :])


def torch_fixed() -> object:
    import torch
    import torch.nn.functional as F

    x, key_padding_mask = (torch.from_numpy(a) for a in _inputs())
    one_hot = torch.eye(6, dtype=x.dtype).expand(2, 6, 6)
    attend = ~key_padding_mask  # SDPA: True = may attend
    return F.scaled_dot_product_attention(x, x, one_hot, attn_mask=attend[:, None, :])


JAX_KIND = "silent"
JAX_EXPECTED = CheckFailure
JAX_MATCH = MATCH


def jax_broken() -> object:
    import jax
    import jax.numpy as jnp

    x, key_padding_mask = (jnp.asarray(a) for a in _inputs())  # True = padding, from torch
    scores = x @ x.swapaxes(-1, -2) / 2.0
    return jax.nn.softmax(scores, axis=-1, where=key_padding_mask[:, None, :])  # True = use


def jax_fixed() -> object:
    import jax
    import jax.numpy as jnp

    x, key_padding_mask = (jnp.asarray(a) for a in _inputs())
    scores = x @ x.swapaxes(-1, -2) / 2.0
    return jax.nn.softmax(scores, axis=-1, where=~key_padding_mask[:, None, :])


TF_KIND = "silent"
TF_EXPECTED = CheckFailure
TF_MATCH = MATCH
TF_NOTE = (
    "Keras's MultiHeadAttention also reads True as 'attend', so a torch key_padding_mask "
    "passed as attention_mask puts all the weight on the padding."
)


def tf_broken() -> object:
    import tensorflow as tf

    x, key_padding_mask = _inputs()  # True = padding, from a torch pipeline
    init = tf.keras.initializers.GlorotUniform(seed=0)
    mha = tf.keras.layers.MultiHeadAttention(num_heads=1, key_dim=4, kernel_initializer=init)
    _, weights = mha(
        x, x, attention_mask=key_padding_mask[:, None, :], return_attention_scores=True
    )
    return weights[:, 0]  # (B, L, S) of the one head
