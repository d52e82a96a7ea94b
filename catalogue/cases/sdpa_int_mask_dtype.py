"""An integer ``attention_mask`` passed as an attention mask.

What happens:
    The framework APIs refuse it, loudly: PyTorch's SDPA raises ``RuntimeError: Expected
    attn_mask dtype to be bool or float or to match query dtype, but got attn_mask.dtype:
    long int ...``, ``nn.MultiheadAttention`` ``AssertionError: only bool and floating
    types of key_padding_mask are supported``, JAX's ``dot_product_attention``
    ``ValueError: mask dtype should be bool, but got int32``; Keras's
    ``MultiHeadAttention`` casts the 0/1 mask to bool and masks correctly. The silent
    version lives in hand-written code: NumPy code that, like SDPA, selects with boolean
    masks and *adds* any other mask takes the ``int64`` 0/1 mask without complaint. Real
    keys get ``+1``, padding ``+0``, and the padding still takes up to 15% of a real
    token's attention (32% unmasked).

Why:
    Tokenizers return ``attention_mask`` as ``int64`` with 1 = token, 0 = padding. It is
    neither a boolean select mask nor an additive ``0``/``-inf`` mask; adding it only
    multiplies the real keys' odds by ``e``.

Fix:
    Convert at the boundary: ``keep = attention_mask.astype(bool)`` (``.bool()`` in
    PyTorch), shaped ``(B, 1, 1, S)``, then ``np.where(keep, scores, -np.inf)``.

Sources:
    https://github.com/seal-rg/recurrent-pretraining/issues/23 (int64 mask into SDPA)
    https://github.com/huggingface/transformers/pull/1120 (attention mask dtype to bool)
"""

import numpy as np

from refattn.checks import check_no_weight_on_masked
from refattn.errors import CheckFailure

from ._common import reference_weights, softmax

KIND = "silent"
EXPECTED = CheckFailure
MATCH = r"masked \(query, key\) pairs got attention weight"
TAGS = ("mask-dtype",)
MESSAGES = (
    r"Expected attn_mask dtype to be bool or float or to match query dtype",
    r"only bool and floating types of (?:key_padding_mask|attn_mask) are supported",
    r"mask dtype should be bool, but got int\d+",
)
SYMPTOMS = (
    "tokenizer attention_mask passed to scaled_dot_product_attention",
    "padding still gets attention after adding the mask",
    "integer attention mask rejected by sdpa",
)


def _inputs() -> tuple[np.ndarray, np.ndarray]:
    x = np.random.default_rng(0).standard_normal((2, 1, 6, 4))  # (B, H, L, D)
    attention_mask = np.array([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]])  # int64, from a tokenizer
    return x, attention_mask


# --8<-- [start:broken]
def broken() -> np.ndarray:
    x, attention_mask = _inputs()
    scores = x @ x.swapaxes(-1, -2) / np.sqrt(4)  # (B, H, L, S)
    mask = attention_mask[:, None, None, :]  # int64 0/1: not bool, so it is added
    return softmax(scores + mask)


# --8<-- [end:broken]


# --8<-- [start:fixed]
def fixed() -> np.ndarray:
    x, attention_mask = _inputs()
    scores = x @ x.swapaxes(-1, -2) / np.sqrt(4)
    keep = attention_mask[:, None, None, :].astype(bool)  # True = attend
    return softmax(np.where(keep, scores, -np.inf))


# --8<-- [end:fixed]


def reference() -> np.ndarray:
    x, attention_mask = _inputs()
    return reference_weights(x, x, key_lengths=attention_mask.sum(-1))


def detect(weights: np.ndarray) -> None:
    _, attention_mask = _inputs()
    check_no_weight_on_masked(weights, attention_mask[:, None, None, :] > 0)


TORCH_EXPECTED = RuntimeError
TORCH_MATCH = r"Expected attn_mask dtype to be bool or float or to match query dtype"


def torch_broken() -> object:
    import torch

    x = torch.randn(2, 1, 6, 4)
    attention_mask = torch.tensor([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]])
    return torch.nn.functional.scaled_dot_product_attention(
        x, x, x, attn_mask=attention_mask[:, None, None, :]
    )


TORCH_NOTE = (
    "PyTorch does not have the silent version: SDPA refuses the int64 mask outright "
    "(nn.MultiheadAttention too), so the fix is the same .bool() conversion."
)

JAX_EXPECTED = ValueError
JAX_MATCH = r"mask dtype should be bool, but got int32"
JAX_NOTE = "jax.nn.dot_product_attention refuses a mask that is not boolean, as SDPA does."


def jax_broken() -> object:
    import jax
    import jax.numpy as jnp

    x, attention_mask = _inputs()
    q = jnp.asarray(x.transpose(0, 2, 1, 3))  # (B, T, N, H), JAX's layout
    mask = jnp.asarray(attention_mask)[:, None, None, :]  # int 0/1 from a tokenizer
    return jax.nn.dot_product_attention(q, q, q, mask=mask)


def torch_fixed() -> object:
    import torch
    import torch.nn.functional as F

    x, attention_mask = (torch.from_numpy(a) for a in _inputs())
    keep = attention_mask[:, None, None, :].bool()  # True = attend
    one_hot = torch.eye(6, dtype=x.dtype).expand(2, 1, 6, 6)  # output = weight matrix
    return F.scaled_dot_product_attention(x, x, one_hot, attn_mask=keep)
