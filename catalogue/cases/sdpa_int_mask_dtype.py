"""An integer ``attention_mask`` passed as an attention mask.

What happens:
    PyTorch's SDPA refuses it: ``RuntimeError: Expected attn_mask dtype to be bool or float
    or to match query dtype, but got attn_mask.dtype: long int ...``. A NumPy port of SDPA
    that, like torch, selects with boolean masks and *adds* every other mask, takes the
    ``int64`` 0/1 mask without complaint and adds it: padding keeps most of its weight.

Why:
    Tokenizers return ``attention_mask`` as ``int64`` with 1 = token, 0 = padding. Neither
    of the two mask conventions (boolean select, additive ``0``/``-inf``) is an integer
    0/1 mask; code that dispatches on ``dtype == bool`` sends it down the additive path.

Fix:
    Convert at the boundary: ``attn_mask = attention_mask.astype(bool)`` (``.bool()`` in
    PyTorch), shaped ``(B, 1, 1, S)``.
"""

import numpy as np

from catalogue.cases._common import reference_weights, softmax
from refattn.checks import check_no_weight_on_masked
from refattn.errors import CheckFailure

KIND = "silent"
EXPECTED = CheckFailure
MATCH = r"masked \(query, key\) pairs got attention weight"
TAGS = ("mask-dtype",)
MESSAGES = (
    r"Expected attn_mask dtype to be bool or float or to match query dtype",
    r"only bool and floating types of (?:key_padding_mask|attn_mask) are supported",
)
SYMPTOMS = ("tokenizer attention_mask passed to scaled_dot_product_attention",)


def _sdpa_weights(q: np.ndarray, k: np.ndarray, attn_mask: np.ndarray) -> np.ndarray:
    """A NumPy port of torch SDPA's masking: bool selects, anything else is added."""
    scores = q @ k.swapaxes(-1, -2) / np.sqrt(q.shape[-1])
    if attn_mask.dtype == bool:
        return softmax(np.where(attn_mask, scores, -np.inf))
    return softmax(scores + attn_mask)  # the weights, (B, H, L, S)


def _inputs() -> tuple[np.ndarray, np.ndarray]:
    x = np.random.default_rng(0).standard_normal((2, 1, 6, 4))  # (B, H, L, D)
    attention_mask = np.array([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]])  # int64, from a tokenizer
    return x, attention_mask


# --8<-- [start:broken]
def broken() -> np.ndarray:
    x, attention_mask = _inputs()
    return _sdpa_weights(x, x, attn_mask=attention_mask[:, None, None, :])  # int: added


# --8<-- [end:broken]


# --8<-- [start:fixed]
def fixed() -> np.ndarray:
    x, attention_mask = _inputs()
    return _sdpa_weights(x, x, attn_mask=attention_mask[:, None, None, :].astype(bool))


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
