"""``scores - 1e9 * mask`` with a ``(B, S)`` mask on ``(B, L, S)`` scores.

What happens:
    PyTorch raises ``RuntimeError: The size of tensor a (20) must match the size of tensor
    b (32) at non-singleton dimension 1``; NumPy raises ``ValueError: operands could not be
    broadcast together with shapes (32,20,20) (32,20)``. When the batch size happens to
    equal the sequence length it runs and silently masks by *query* row instead (see
    ``key_padding_broadcast_along_query``). No ``IndexError`` anywhere: an unmasked pad is
    a silent leak, not an out-of-bounds access.

Why:
    The padding mask has one entry per example and key; against ``(B, L, S)`` scores its
    batch axis lines up with the query axis. ``-1e9`` itself is fine in float32 (not in
    float16: see ``minus_1e9_in_float16``).

Fix:
    ``scores - 1e9 * mask[:, None, :]``, shape ``(B, 1, S)``.
"""

import numpy as np

from ._common import reference_weights, softmax

KIND = "exception"
EXPECTED = ValueError
MATCH = r"operands could not be broadcast together with shapes \(32,20,20\) \(32,20\)"
TAGS = ("mask-shape", "mask-broadcast-axis")
SEED_CLAIMS = (
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
        "masks the wrong axis.",
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
    r"size of tensor a \(\d+\) must match the size of tensor b \(\d+\) at non-singleton "
    r"dimension 1",
    r"operands could not be broadcast together with shapes \(\d+,\d+,\d+\) \(\d+,\d+\)",
)
SYMPTOMS = (
    "padding mask subtraction shape error",
    "index error from padding in self-attention",
    "padding mask masks queries instead of keys",
)


def _inputs() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 20, 8)).astype(np.float32)  # (B, L, D): the article's sizes
    lengths = rng.integers(5, 21, size=32)
    mask = np.arange(20) >= lengths[:, None]  # (B, S): True = padding, as in the article
    return x, mask


# --8<-- [start:broken]
def broken() -> np.ndarray:
    x, mask = _inputs()
    scores = x @ x.swapaxes(1, 2)  # (B, L, S)
    return softmax(scores - 1e9 * mask.astype(np.float32))  # (B, S) against (B, L, S)


# --8<-- [end:broken]


# --8<-- [start:fixed]
def fixed() -> np.ndarray:
    x, mask = _inputs()
    scores = x @ x.swapaxes(1, 2)
    return softmax(scores - 1e9 * mask[:, None, :].astype(np.float32))  # (B, 1, S)


# --8<-- [end:fixed]


def reference() -> np.ndarray:
    x, mask = _inputs()
    return reference_weights(x, x, scale=1.0, attend_mask=~mask[:, None, None, :])


TORCH_EXPECTED = RuntimeError
TORCH_MATCH = r"The size of tensor a \(20\) must match the size of tensor b \(32\) at non-singleton"


def torch_broken() -> object:
    import torch

    batch_size, max_len, embedding_dim = 32, 20, 512
    seq_lengths = torch.randint(5, max_len + 1, (batch_size,))
    mask = torch.arange(max_len).expand(batch_size, max_len) >= seq_lengths.unsqueeze(1)
    q = k = torch.randn(batch_size, max_len, embedding_dim)  # undefined in the article
    return torch.softmax(torch.bmm(q, k.transpose(1, 2)) - 1e9 * mask.float(), dim=-1)
