"""Several documents packed into one row with a plain causal mask.

What happens:
    No error. Packing a 3-token and a 4-token document into one row of 7 and running causal
    attention (``is_causal=True``, ``jax.nn.dot_product_attention(is_causal=True)``) lets
    every token of the second document attend to the first: here the second document's
    outputs differ from running it alone, the first document's do not. The loss still goes
    down, so nothing looks wrong, but each example is conditioned on an unrelated one and
    its position ids start at 3.

Why:
    A causal mask knows the order of the tokens, not where documents end. Packing needs a
    block-diagonal causal mask (``segment_ids[i] == segment_ids[j] and j <= i``), or a
    varlen kernel told the boundaries (flash-attn's ``cu_seqlens``, or Hugging Face's
    position ids that restart at 0: not run here; source:
    https://github.com/huggingface/transformers/pull/46634), and the positions restarted
    per document.

Fix:
    Build the segment mask from the document ids and combine it with the causal one (JAX:
    ``mask=``; SDPA: a boolean ``attn_mask``; refattn: ``attend_mask`` with
    ``causal="top_left"``), or unpack into a padded batch.

Sources:
    https://github.com/huggingface/trl/issues/784 (packing does not adjust attention masks)
    https://github.com/huggingface/transformers/issues/25452 (packing without cross-contamination)
    https://github.com/huggingface/transformers/pull/46634
        (packed-sequence mask ignored when a 2-D attention_mask is passed: is_causal fast path)
    https://github.com/alex-hh/profam/issues/495
        (sequence packing: attention applied across documents)
"""

import numpy as np

from refattn import attention
from refattn.checks import check_close
from refattn.errors import CheckFailure

KIND = "silent"
EXPECTED = CheckFailure
MATCH = r"output differs from the reference"
TAGS = ("packed-sequences", "mask-missing")
SYMPTOMS = (
    "packed sequences attend to each other",
    "cross-document attention when packing",
    "loss differs between packed and unpacked training",
)
SEGMENTS = np.array([0, 0, 0, 1, 1, 1, 1])  # document id of each packed token


def _inputs() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    q, k, v = rng.standard_normal((3, 1, 1, 7, 4))  # each (B, H, T, D), 2 documents packed
    return q, k, v


def _attend(q: np.ndarray, k: np.ndarray, v: np.ndarray, keep: np.ndarray) -> np.ndarray:
    scores = np.where(keep, q @ k.swapaxes(-1, -2) / 2.0, -np.inf)
    weights = np.exp(scores - scores.max(-1, keepdims=True))
    return weights / weights.sum(-1, keepdims=True) @ v


# --8<-- [start:broken]
def broken() -> np.ndarray:
    q, k, v = _inputs()
    causal = np.tril(np.ones((7, 7), dtype=bool))  # order only
    return _attend(q, k, v, causal)


# --8<-- [end:broken]


# --8<-- [start:fixed]
def fixed() -> np.ndarray:
    q, k, v = _inputs()
    causal = np.tril(np.ones((7, 7), dtype=bool))
    same_document = SEGMENTS[:, None] == SEGMENTS[None, :]
    return _attend(q, k, v, causal & same_document)


# --8<-- [end:fixed]


def reference() -> np.ndarray:
    """Each document on its own, concatenated."""
    q, k, v = _inputs()
    parts = [
        attention(q[..., s, :], k[..., s, :], v[..., s, :], causal="top_left")
        for s in (slice(0, 3), slice(3, 7))
    ]
    return np.concatenate(parts, axis=-2)


def detect(output: np.ndarray) -> None:
    check_close(output, reference())


TORCH_KIND = "silent"
TORCH_EXPECTED = CheckFailure
TORCH_MATCH = MATCH


def torch_broken() -> object:
    import torch
    import torch.nn.functional as F

    q, k, v = (torch.from_numpy(a) for a in _inputs())
    return F.scaled_dot_product_attention(q, k, v, is_causal=True)


def torch_fixed() -> object:
    import torch
    import torch.nn.functional as F

    q, k, v = (torch.from_numpy(a) for a in _inputs())
    seg = torch.from_numpy(SEGMENTS)
    keep = (seg[:, None] == seg[None, :]) & torch.ones(7, 7, dtype=torch.bool).tril()
    return F.scaled_dot_product_attention(q, k, v, attn_mask=keep)


JAX_KIND = "silent"
JAX_EXPECTED = CheckFailure
JAX_MATCH = MATCH


def jax_broken() -> object:
    import jax
    import jax.numpy as jnp

    q, k, v = (jnp.asarray(a).transpose(0, 2, 1, 3) for a in _inputs())  # (B, T, N, H)
    return jax.nn.dot_product_attention(q, k, v, is_causal=True).transpose(0, 2, 1, 3)


def jax_fixed() -> object:
    import jax
    import jax.numpy as jnp

    q, k, v = (jnp.asarray(a).transpose(0, 2, 1, 3) for a in _inputs())
    seg = jnp.asarray(SEGMENTS)
    same = (seg[:, None] == seg[None, :])[None, None]  # (1, 1, T, S)
    out = jax.nn.dot_product_attention(q, k, v, mask=same, is_causal=True)
    return out.transpose(0, 2, 1, 3)
