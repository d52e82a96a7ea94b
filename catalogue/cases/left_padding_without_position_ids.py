"""Batched generation with left padding and positions counted from the padded start.

What happens:
    No error. Prompts of different lengths are left-padded so that every row ends at the
    same column, and the padding is masked. But the positions are ``arange(L)`` for every
    row, so a 3-token prompt padded to 5 gets positions 2, 3, 4 instead of 0, 1, 2. The
    padding mask hides the pad tokens; it cannot undo the shifted position embeddings (or
    rotary angles). Here the last token's output of the padded row differs from the same
    prompt run alone by up to 2.4, while the unpadded row is exact: batched generation
    gives other text than one prompt at a time, only for the shorter prompts.

Why:
    Position ids come from the token's place in *its own* sequence; left padding moves the
    tokens and the default ``arange`` does not know. Hugging Face's ``generate`` computes
    them from the attention mask (not run here; source:
    https://github.com/unslothai/unsloth/pull/3795); a hand-written loop, a custom
    ``prepare_inputs`` or a forward pass outside ``generate`` often does not.

Fix:
    ``position_ids = attention_mask.cumsum(-1) - 1`` (pads set to 1:
    ``position_ids.masked_fill_(attention_mask == 0, 1)``), and pass them
    to the model at every step (the new token's position is the row's length).

Sources:
    https://github.com/unslothai/unsloth/issues/3699
        (batched generation with left padding produces incorrect output for shorter prompts)
    https://github.com/unslothai/unsloth/pull/3795 (position_ids from attention_mask)
    https://github.com/ndif-team/nnsight/pull/673
        (left-padded batches without position_ids silently mispredict shorter prompts)
    https://github.com/huggingface/transformers/issues/18478
        (left padding at inference without position_ids gives a different output)
"""

import numpy as np

from refattn import attention
from refattn.checks import check_close
from refattn.errors import CheckFailure

KIND = "silent"
EXPECTED = CheckFailure
MATCH = r"output differs from the reference"
TAGS = ("positions",)
SYMPTOMS = (
    "batched generation gives different output than generating one prompt at a time",
    "left padding changes the model output",
    "shorter prompts in the batch generate garbage",
    "batched generation worse than generating each prompt alone",
)


def _inputs() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 5, 4))  # (B, L, D) token embeddings, row 0 left-padded
    pos_table = rng.standard_normal((8, 4))  # learned absolute positions
    mask = np.arange(5) >= np.array([[2], [0]])  # (B, L): row 0 has 3 real tokens
    return x, pos_table, mask


def _last_token(h: np.ndarray, mask: np.ndarray) -> np.ndarray:
    scores = np.where(mask[:, None, :], h @ h.swapaxes(-1, -2) / 2.0, -np.inf)  # (B, L, L)
    weights = np.exp(scores - scores.max(-1, keepdims=True))
    out = weights / weights.sum(-1, keepdims=True) @ h
    return out[:, -1]  # (B, D): the token that predicts the next one


# --8<-- [start:broken]
def broken() -> np.ndarray:
    x, pos_table, mask = _inputs()
    position_ids = np.arange(5)[None, :].repeat(2, axis=0)  # 0..4 in every row
    h = x + pos_table[position_ids]
    return _last_token(h, mask)


# --8<-- [end:broken]


# --8<-- [start:fixed]
def fixed() -> np.ndarray:
    x, pos_table, mask = _inputs()
    position_ids = np.maximum(mask.cumsum(-1) - 1, 0)  # row 0: 0 0 0 1 2
    h = x + pos_table[position_ids]
    return _last_token(h, mask)


# --8<-- [end:fixed]


def reference() -> np.ndarray:
    """Each prompt alone, unpadded, at positions 0..n-1."""
    x, pos_table, mask = _inputs()
    rows = []
    for b in range(2):
        n = int(mask[b].sum())
        h = (x[b, 5 - n :] + pos_table[:n])[None, None]  # (1, 1, n, D)
        rows.append(attention(h, h, h, scale=0.5)[0, 0, -1])
    return np.stack(rows)


def detect(output: np.ndarray) -> None:
    check_close(output, reference())


TORCH_KIND = "silent"
TORCH_EXPECTED = CheckFailure
TORCH_MATCH = MATCH


def _torch(shift: bool) -> object:
    import torch
    import torch.nn.functional as F

    x, pos_table, mask = (torch.from_numpy(a) for a in _inputs())
    if shift:
        position_ids = (mask.long().cumsum(-1) - 1).clamp(min=0)
    else:
        position_ids = torch.arange(5).expand(2, 5)
    h = (x + pos_table[position_ids])[:, None]  # (B, 1, L, D)
    out = F.scaled_dot_product_attention(h, h, h, attn_mask=mask[:, None, None, :], scale=0.5)
    return out[:, 0, -1]


def torch_broken() -> object:
    return _torch(shift=False)


def torch_fixed() -> object:
    return _torch(shift=True)


JAX_KIND = "silent"
JAX_EXPECTED = CheckFailure
JAX_MATCH = MATCH


def _jax(shift: bool) -> object:
    import jax
    import jax.numpy as jnp

    x, pos_table, mask = (jnp.asarray(a) for a in _inputs())
    if shift:
        position_ids = jnp.maximum(jnp.cumsum(mask, axis=-1) - 1, 0)
    else:
        position_ids = jnp.broadcast_to(jnp.arange(5), (2, 5))
    h = (x + pos_table[position_ids])[:, :, None]  # (B, T, N=1, H)
    out = jax.nn.dot_product_attention(h, h, h, mask=mask[:, None, None, :], scale=0.5)
    return out[:, -1, 0]


def jax_broken() -> object:
    return _jax(shift=False)


def jax_fixed() -> object:
    return _jax(shift=True)
