"""A 0/1 mask added to the scores instead of applied.

What happens:
    No error. ``scores + keep`` with a float mask of 1 (keep) and 0 (pad) shifts the kept
    scores up by one: padding keeps ``e⁻¹ ≈ 37 %`` of the weight it would otherwise have
    relative to each real token, instead of none. Here the real queries of example 0 still
    put 2-15 % of their weight on its two padding keys.

Why:
    There are two mask conventions: *boolean* masks select (``where``/``masked_fill``), and
    *additive* masks hold ``0`` to keep and ``-inf`` to remove. A 0/1 mask is neither; added,
    it changes every score by at most 1. PyTorch's SDPA adds any float ``attn_mask`` too;
    Keras's ``MultiHeadAttention`` casts its ``attention_mask`` to bool, so there a 0/1
    float mask works.

Fix:
    Turn it into a boolean mask and select (``np.where(keep > 0, scores, -np.inf)``), or
    into an additive one: ``np.where(keep > 0, 0.0, -np.inf)``.

Sources:
    https://github.com/huggingface/transformers/issues/205 (why the 0/1 mask is not added)
    https://github.com/huggingface/transformers/issues/542 (adding a 0/1 mask to the scores)
"""

import numpy as np

from refattn.checks import check_no_weight_on_masked
from refattn.errors import CheckFailure

from ._common import reference_weights, softmax

KIND = "silent"
EXPECTED = CheckFailure
MATCH = r"masked \(query, key\) pairs got attention weight"
TAGS = ("mask-dtype",)
SYMPTOMS = (
    "attention mask has no effect",
    "float attention mask of ones and zeros is ignored",
    "0/1 attention mask added to the scores instead of -inf",
    "mask of ones and zeros added to the logits does nothing",
)


def _inputs() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 6, 4))  # (B, L, D)
    keep = (np.arange(6) < np.array([[4], [6]])).astype(np.float32)  # (B, S): 1.0 / 0.0
    return x, keep


# --8<-- [start:broken]
def broken() -> np.ndarray:
    x, keep = _inputs()
    scores = x @ x.swapaxes(-1, -2) / np.sqrt(4)
    return softmax(scores + keep[:, None, :])  # adds 1 to kept keys, 0 to padding


# --8<-- [end:broken]


# --8<-- [start:fixed]
def fixed() -> np.ndarray:
    x, keep = _inputs()
    scores = x @ x.swapaxes(-1, -2) / np.sqrt(4)
    additive = np.where(keep > 0, 0.0, -np.inf)  # 0 keeps, -inf removes
    return softmax(scores + additive[:, None, :])


# --8<-- [end:fixed]


def reference() -> np.ndarray:
    x, keep = _inputs()
    return reference_weights(x, x, attend_mask=keep[:, None, None, :] > 0)


def detect(weights: np.ndarray) -> None:
    _, keep = _inputs()
    check_no_weight_on_masked(weights, keep[:, None, :] > 0)


TORCH_KIND = "silent"
TORCH_EXPECTED = CheckFailure
TORCH_MATCH = MATCH
TORCH_NOTE = "SDPA adds any float attn_mask to the scores, so a 0/1 float mask leaks the same way."


def torch_broken() -> object:
    import torch
    import torch.nn.functional as F

    x, keep = (torch.from_numpy(a) for a in _inputs())
    x = x.float()
    one_hot = torch.eye(6).expand(2, 6, 6)  # values = one-hot keys: output = weights
    return F.scaled_dot_product_attention(x, x, one_hot, attn_mask=keep[:, None, :])  # added


def torch_fixed() -> object:
    import torch
    import torch.nn.functional as F

    x, keep = (torch.from_numpy(a) for a in _inputs())
    x = x.float()
    one_hot = torch.eye(6).expand(2, 6, 6)
    return F.scaled_dot_product_attention(x, x, one_hot, attn_mask=keep[:, None, :] > 0)


JAX_KIND = "silent"
JAX_EXPECTED = CheckFailure
JAX_MATCH = MATCH


def jax_broken() -> object:
    import jax
    import jax.numpy as jnp

    x, keep = (jnp.asarray(a) for a in _inputs())
    scores = x @ x.swapaxes(-1, -2) / 2.0
    return jax.nn.softmax(scores + keep[:, None, :], axis=-1)  # adds 1 to kept keys


def jax_fixed() -> object:
    import jax
    import jax.numpy as jnp

    x, keep = (jnp.asarray(a) for a in _inputs())
    scores = x @ x.swapaxes(-1, -2) / 2.0
    return jax.nn.softmax(scores + jnp.where(keep > 0, 0.0, -jnp.inf)[:, None, :], axis=-1)
