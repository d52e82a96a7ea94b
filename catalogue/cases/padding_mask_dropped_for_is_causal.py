"""A padding mask and ``is_causal=True`` together in SDPA, "fixed" by dropping the mask.

What happens:
    A decoder with padding passes both ``attn_mask`` (the padding) and ``is_causal=True``
    to ``F.scaled_dot_product_attention``. The math backend refuses the pair,
    ``RuntimeError:
    _scaled_dot_product_attention: Explicit attn_mask should not be set when
    is_causal=True`` (run here with ``sdpa_kernel(SDPBackend.MATH)``, as when cross-checking
    a fused kernel). The common fix, keeping ``is_causal`` and dropping the mask (or a
    wrapper that replaces the mask by the causal one when ``is_causal`` is set) runs
    and silently attends to the padding: here queries 2 and 3 put weight on padded
    key 2.

Why:
    ``is_causal`` is a shortcut for *one* mask, the causal one; SDPA has no "and also this
    mask" mode in every backend. Padding and causality are two constraints, and only their
    intersection is right.

Fix:
    Pass one boolean mask that is both: ``attn_mask = causal & keep[:, None, None, :]``
    with ``is_causal=False``; refattn:
    ``causal="top_left"`` with ``key_lengths`` or ``attend_mask``.

Sources:
    https://github.com/nari-labs/dia/pull/170
        ("RuntimeError: _scaled_dot_product_attention: Explicit attn_mask should not be set
        when is_causal=True"; fixed by disabling the mask)
    https://github.com/huggingface/transformers/issues/37807
        (is_causal would ignore the provided mask; with padding transformers passes a mask
        and is_causal=False)
    https://github.com/vllm-project/vllm/pull/6043 ("attn_mask doesn't work with is_casual=True")
"""

import numpy as np

from refattn.checks import check_no_weight_on_masked
from refattn.errors import CheckFailure

from ._common import reference_weights, softmax

KIND = "silent"
EXPECTED = CheckFailure
MATCH = r"masked \(query, key\) pairs got attention weight"
TAGS = ("backend-constraint", "mask-missing")
MESSAGES = (r"Explicit attn_mask should not be set when is_causal=True",)
SYMPTOMS = (
    "scaled_dot_product_attention with both attn_mask and is_causal",
    "padding ignored when using is_causal",
)


def _inputs() -> tuple[np.ndarray, np.ndarray]:
    x = np.random.default_rng(0).standard_normal((1, 4, 8))  # (B, L, D)
    keep = np.array([[True, True, False, True]])  # (B, S): token 2 is padding
    return x, keep


def _sdpa_like(x: np.ndarray, attn_mask: np.ndarray | None, is_causal: bool) -> np.ndarray:
    """A wrapper with SDPA's arguments, written the way the "fix" usually is."""
    scores = x @ x.swapaxes(-1, -2) / np.sqrt(8)
    if is_causal:
        attn_mask = np.tril(np.ones((4, 4), dtype=bool))  # the causal mask replaces any other
    if attn_mask is not None:
        scores = np.where(attn_mask, scores, -np.inf)
    return softmax(scores)


# --8<-- [start:broken]
def broken() -> np.ndarray:
    x, keep = _inputs()
    return _sdpa_like(x, attn_mask=keep[:, None, :], is_causal=True)  # padding dropped


# --8<-- [end:broken]


# --8<-- [start:fixed]
def fixed() -> np.ndarray:
    x, keep = _inputs()
    causal = np.tril(np.ones((4, 4), dtype=bool))
    return _sdpa_like(x, attn_mask=causal & keep[:, None, :], is_causal=False)  # both


# --8<-- [end:fixed]


def reference() -> np.ndarray:
    x, keep = _inputs()
    return reference_weights(x, x, attend_mask=keep[:, None, None, :], causal="top_left")


def detect(weights: np.ndarray) -> None:
    _, keep = _inputs()
    allowed = np.tril(np.ones((4, 4), dtype=bool)) & keep[:, None, :]
    check_no_weight_on_masked(weights, allowed)


TORCH_EXPECTED = RuntimeError
TORCH_MATCH = (
    r"_scaled_dot_product_attention: Explicit attn_mask should not be set when is_causal=True"
)


def torch_broken() -> object:
    import torch
    import torch.nn.functional as F
    from torch.nn.attention import SDPBackend, sdpa_kernel

    x, keep = (torch.from_numpy(a) for a in _inputs())
    q = x[:, None]  # (B, 1, L, D)
    with sdpa_kernel(SDPBackend.MATH):
        return F.scaled_dot_product_attention(
            q, q, q, attn_mask=keep[:, None, None, :], is_causal=True
        )


def torch_fixed() -> object:
    import torch
    import torch.nn.functional as F
    from torch.nn.attention import SDPBackend, sdpa_kernel

    x, keep = (torch.from_numpy(a) for a in _inputs())
    q = x[:, None]
    allowed = torch.ones(4, 4, dtype=torch.bool).tril() & keep[:, None, None, :]
    eye = torch.eye(4, dtype=q.dtype)[None, None]  # values = identity: the output is the weights
    with sdpa_kernel(SDPBackend.MATH):
        weights = F.scaled_dot_product_attention(q, q, eye, attn_mask=allowed)
    return weights[:, 0]  # (B, L, S)
