"""Attention dropout passed unconditionally, so it is still on at inference.

What happens:
    ``F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout)`` is a function: it
    does not know that the module is in ``eval()``, so it keeps dropping attention weights
    at inference and the outputs change from call to call (run in
    ``catalogue/tests/test_case_facts.py``). The NumPy port of the same layer (dropout
    applied whenever ``dropout_p > 0``) returns output that differs from the model's
    deterministic answer here by up to 0.72. When a backend is forced, the same line fails
    instead: under ``sdpa_kernel(SDPBackend.FLASH_ATTENTION)`` on CPU, PyTorch warns
    ``Flash attention kernel not used because:`` and ``Both fused kernels do not support
    non-zero dropout.``, then raises ``RuntimeError: No available kernel.  Aborting
    execution.``. On GPU the same refusal has other causes, e.g. ``Flash Attention does
    not support non-null attn_mask`` (GPU-only, not run here; source:
    https://github.com/Dao-AILab/flash-attention/issues/1321), and flash-attn itself
    refuses float32 with ``RuntimeError: FlashAttention only support fp16 and bf16 data
    type`` (GPU-only, not run here; source: https://github.com/unslothai/unsloth/issues/827).

Why:
    ``nn.Dropout`` reads ``self.training``; a ``dropout_p`` argument does not. Forcing a
    single backend removes SDPA's fallback to the math kernel, so any feature that backend
    lacks (dropout on CPU; masks and dtypes on GPU) becomes an error; the warnings
    printed before it say which.

Fix:
    ``dropout_p=self.dropout if self.training else 0.0``. Force a backend only around calls
    it supports, or list several (``sdpa_kernel([SDPBackend.FLASH_ATTENTION,
    SDPBackend.MATH])``); read the warnings when "No available kernel" appears.

Sources:
    https://github.com/pytorch/torchtitan/issues/2065
        (only with SDPBackend.FLASH_ATTENTION: "RuntimeError: No available kernel. Aborting
        execution.")
    https://github.com/facebookresearch/fast3r/issues/42
        ("No available kernel. Aborting execution." from scaled_dot_product_attention)
    https://github.com/Dao-AILab/flash-attention/issues/1321
        (the UserWarnings that say why each backend was not used)
    https://github.com/FGA-DIKU/BONSAI/pull/344 (dropout_p=self.dropout if self.training else 0.0)
"""

import numpy as np

from refattn import attention
from refattn.checks import check_close
from refattn.errors import CheckFailure

KIND = "silent"
EXPECTED = CheckFailure
MATCH = r"output differs from the reference"
TAGS = ("backend-constraint",)
MESSAGES = (
    r"No available kernel\.\s+Aborting execution\.",
    r"Both fused kernels do not support non-zero dropout",
    r"Flash attention kernel not used because",
    r"Memory efficient kernel not used because",
    r"Flash Attention does not support non-null attn_mask",
    r"FlashAttention only support fp16 and bf16 data type",
)
SYMPTOMS = (
    "model outputs change between calls in eval mode",
    "sdpa_kernel flash attention raises no available kernel",
    "scaled_dot_product_attention dropout in eval",
    "outputs are not deterministic at inference",
    "different results every forward pass in eval mode",
    "dropout still active during evaluation",
)
DROPOUT = 0.1


def _inputs() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    q, k, v = rng.standard_normal((3, 1, 2, 4, 8))  # each (B, H, L, D)
    return q, k, v


def _attention(
    q: np.ndarray, k: np.ndarray, v: np.ndarray, dropout_p: float, rng: np.random.Generator
) -> np.ndarray:
    """The layer's attention with SDPA's arguments."""
    scores = q @ k.swapaxes(-1, -2) / np.sqrt(8)
    weights = np.exp(scores - scores.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)
    if dropout_p > 0:
        weights = weights * (rng.random(weights.shape) >= dropout_p) / (1 - dropout_p)
    return weights @ v


# --8<-- [start:broken]
def broken() -> np.ndarray:
    q, k, v = _inputs()
    rng = np.random.default_rng(1)  # the model is in eval(); the argument does not know
    return _attention(q, k, v, dropout_p=DROPOUT, rng=rng)


# --8<-- [end:broken]


# --8<-- [start:fixed]
def fixed() -> np.ndarray:
    q, k, v = _inputs()
    training = False  # model.training
    rng = np.random.default_rng(1)
    return _attention(q, k, v, dropout_p=DROPOUT if training else 0.0, rng=rng)


# --8<-- [end:fixed]


def reference() -> np.ndarray:
    return attention(*_inputs())


def detect(output: np.ndarray) -> None:
    check_close(output, reference())


TORCH_EXPECTED = RuntimeError
TORCH_MATCH = r"No available kernel\.\s+Aborting execution\."
TORCH_NOTE = (
    "With the flash backend forced (as many training scripts do) the same line is an error "
    "on CPU, after the warning `Both fused kernels do not support non-zero dropout.`"
)


def _torch(gate_on_training: bool) -> object:
    import torch
    import torch.nn.functional as F
    from torch.nn.attention import SDPBackend, sdpa_kernel

    class Attention(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.dropout = DROPOUT

        def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
            p = (self.dropout if self.training else 0.0) if gate_on_training else self.dropout
            return F.scaled_dot_product_attention(q, k, v, dropout_p=p)

    layer = Attention().eval()
    q, k, v = (torch.from_numpy(a) for a in _inputs())
    with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
        return layer(q, k, v)


def torch_broken() -> object:
    return _torch(gate_on_training=False)


def torch_fixed() -> object:
    return _torch(gate_on_training=True)
