"""Cumulative sequence lengths (``cu_seqlens``, offsets) built without the leading zero.

What happens:
    Packed (varlen) attention describes ``B`` sequences laid end to end in a
    ``(total, H, D)`` tensor by ``B + 1`` offsets: ``[0, 3, 7]`` for lengths 3 and 4.
    ``np.cumsum(lengths)`` gives ``[3, 7]``, one short. A loop over the sequences reads
    ``cu_seqlens[b + 1]`` past the end: ``IndexError: index 2 is out of bounds for axis 0
    with size 2``. PyTorch's jagged nested tensors take the same offsets and refuse them:
    ``torch.nested.nested_tensor_from_jagged(values, offsets=[3, 7])`` raises
    ``RuntimeError: split_with_sizes expects split_sizes to sum exactly to 7 (input
    tensor's size at dimension 0), but got split_sizes=[4]``. flash-attn's
    ``flash_attn_varlen_func`` says ``RuntimeError: cu_seqlens_q must have shape
    (batch_size + 1)`` (GPU-only, not run here; source:
    https://github.com/Dao-AILab/flash-attention/issues/742).

Why:
    Offsets are fence posts: sequence ``b`` is ``values[cu[b]:cu[b + 1]]``, so the first
    one needs a ``0`` in front. Without it the first sequence is lost (its end is read as
    the second one's start) and the last has no end.

Fix:
    ``cu_seqlens = np.concatenate([[0], np.cumsum(lengths)])`` (PyTorch:
    ``F.pad(lengths.cumsum(0), (1, 0))``); check
    ``cu_seqlens[0] == 0``, ``cu_seqlens[-1] == total`` and ``len(cu_seqlens) == B + 1``.

Sources:
    https://github.com/Dao-AILab/flash-attention/issues/880
        (cu_seqlens of shape (batch_size + 1,): "It starts with 0, so equivalent to
        F.pad(seqlens.cumsum(), 1, 0)")
    https://github.com/Dao-AILab/flash-attention/issues/742
        ("RuntimeError: cu_seqlens_q must have shape (batch_size + 1)")
    https://github.com/NVlabs/alpamayo/issues/52 (the same error with flash_attention_2)
"""

import numpy as np

from refattn import attention

KIND = "exception"
EXPECTED = IndexError
MATCH = r"index 2 is out of bounds for axis 0 with size 2"
TAGS = ("packed-sequences",)
MESSAGES = (
    r"cu_seqlens_[qk] must have shape \(batch_size \+ 1\)",
    r"split_with_sizes expects split_sizes to sum exactly to \d+",
)
SYMPTOMS = (
    "varlen attention offsets missing the first zero",
    "cu_seqlens built with cumsum only",
)


def _inputs() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    packed = rng.standard_normal((7, 2, 4))  # (total, H, D): sequences of 3 and 4 tokens
    lengths = np.array([3, 4])
    return packed, lengths


def _varlen_attention(packed: np.ndarray, cu_seqlens: np.ndarray, batch: int) -> np.ndarray:
    out = np.empty_like(packed)
    for b in range(batch):
        start, end = cu_seqlens[b], cu_seqlens[b + 1]
        x = packed[start:end].transpose(1, 0, 2)  # (H, n, D)
        scores = x @ x.swapaxes(-1, -2) / 2.0
        weights = np.exp(scores - scores.max(-1, keepdims=True))
        out[start:end] = (weights / weights.sum(-1, keepdims=True) @ x).transpose(1, 0, 2)
    return out


# --8<-- [start:broken]
def broken() -> np.ndarray:
    packed, lengths = _inputs()
    cu_seqlens = np.cumsum(lengths)  # [3, 7]: B entries
    return _varlen_attention(packed, cu_seqlens, len(lengths))


# --8<-- [end:broken]


# --8<-- [start:fixed]
def fixed() -> np.ndarray:
    packed, lengths = _inputs()
    cu_seqlens = np.concatenate([[0], np.cumsum(lengths)])  # [0, 3, 7]: B + 1 entries
    assert cu_seqlens[-1] == len(packed)
    return _varlen_attention(packed, cu_seqlens, len(lengths))


# --8<-- [end:fixed]


def reference() -> np.ndarray:
    packed, _ = _inputs()
    parts = []
    for s in (slice(0, 3), slice(3, 7)):
        x = packed[s].transpose(1, 0, 2)  # (H, n, D)
        parts.append(attention(x, x, x).transpose(1, 0, 2))
    return np.concatenate(parts)


TORCH_EXPECTED = RuntimeError
TORCH_MATCH = (
    r"split_with_sizes expects split_sizes to sum exactly to 7 \(input tensor's size at "
    r"dimension 0\), but got split_sizes=\[4\]"
)


def _torch(offsets: list[int]) -> object:
    import torch
    import torch.nn.functional as F

    packed, _ = _inputs()
    values = torch.from_numpy(packed)
    nt = torch.nested.nested_tensor_from_jagged(values, offsets=torch.tensor(offsets))
    x = nt.transpose(1, 2)  # (B, H, j, D)
    return F.scaled_dot_product_attention(x, x, x).transpose(1, 2).values()


def torch_broken() -> object:
    return _torch([3, 7])  # lengths.cumsum(0)


def torch_fixed() -> object:
    return _torch([0, 3, 7])


JAX_ABSENT = (
    "`jax.nn.dot_product_attention` has no packed form with offsets: it takes padded "
    "`(B, T, N, H)` arrays and per-example `query_seq_lengths` / `key_value_seq_lengths`."
)
