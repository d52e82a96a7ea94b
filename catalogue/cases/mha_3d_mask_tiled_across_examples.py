"""A per-example mask expanded to ``(N * H, L, S)`` with ``repeat``, not ``repeat_interleave``.

What happens:
    No error. ``nn.MultiheadAttention`` reads a 3-D mask example-major: row ``n * H + h`` is
    example ``n``, head ``h``. ``mask.repeat(H, 1, 1)`` (``np.tile``) stacks the examples
    head-major instead, ``[m0, m1, m0, m1, ...]``, which has the right shape. So heads 1
    and 3 of example 0 get example 1's mask and heads 0 and 2 of example 1 get example 0's:
    here example 1 attends to its two padding keys in half its heads. A batch of one is
    unaffected, so single-example tests pass, and each example's output depends on its
    neighbours in the batch.

Why:
    ``repeat`` tiles the whole tensor; the folded layout needs each example's mask repeated
    in place, which is ``repeat_interleave(H, dim=0)`` (``np.repeat(mask, H, axis=0)``).

Fix:
    ``attn_mask.repeat_interleave(num_heads, dim=0)``; for plain padding pass
    ``key_padding_mask (N, S)`` and let the layer expand it.

Sources:
    https://github.com/line/lighthouse/pull/77
        (3-D attn_mask built with .repeat(nhead, 1, 1): heads use the wrong sample's padding
        mask; fixed with repeat_interleave)
    https://github.com/ArrowLuo/CLIP4Clip/issues/22
        (wrong masking for multi-head attention: repeat_interleave is the correct one)
    https://github.com/lsdefine/attention-is-all-you-need-keras/issues/36
        (Keras port: mask repeated in one order, heads folded in the other)
"""

import numpy as np

from refattn.checks import check_no_weight_on_masked
from refattn.errors import CheckFailure

from ._common import softmax

KIND = "silent"
EXPECTED = CheckFailure
MATCH = r"masked \(query, key\) pairs got attention weight"
TAGS = ("mask-broadcast-axis",)
SYMPTOMS = (
    "output of one example depends on the other examples in the batch",
    "attn_mask repeat vs repeat_interleave for multi-head attention",
    "padding mask applied to the wrong sample",
)
HEADS = 4


def _inputs() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 5, 16))  # (N, L, E)
    blocked = np.arange(5) >= np.array([[5], [3]])  # (N, S): example 1 has 3 tokens
    return x, np.ascontiguousarray(np.broadcast_to(blocked[:, None, :], (2, 5, 5)))


def _weights(x: np.ndarray, blocked: np.ndarray) -> np.ndarray:
    """Heads folded example-major, ``(N * H, L, S)``, as ``nn.MultiheadAttention`` does."""
    n, length, e = x.shape
    split = x.reshape(n, length, HEADS, e // HEADS).transpose(0, 2, 1, 3)  # (N, H, L, d)
    heads = split.reshape(n * HEADS, length, e // HEADS)
    scores = heads @ heads.swapaxes(-1, -2) / 2.0
    return softmax(np.where(blocked, -np.inf, scores))


# --8<-- [start:broken]
def broken() -> np.ndarray:
    x, blocked = _inputs()
    per_head = np.tile(blocked, (HEADS, 1, 1))  # m0 m1 m0 m1 ...: Tensor.repeat
    return _weights(x, per_head)


# --8<-- [end:broken]


# --8<-- [start:fixed]
def fixed() -> np.ndarray:
    x, blocked = _inputs()
    per_head = np.repeat(blocked, HEADS, axis=0)  # m0 m0 m0 m0 m1 ...: repeat_interleave
    return _weights(x, per_head)


# --8<-- [end:fixed]


def detect(weights: np.ndarray) -> None:
    _, blocked = _inputs()
    check_no_weight_on_masked(weights.reshape(2, HEADS, 5, 5), ~blocked[:, None])


TORCH_KIND = "silent"
TORCH_EXPECTED = CheckFailure
TORCH_MATCH = MATCH


def _torch(interleave: bool) -> object:
    import torch

    torch.manual_seed(0)
    mha = torch.nn.MultiheadAttention(16, HEADS, batch_first=True).double()
    x, blocked = (torch.from_numpy(a) for a in _inputs())
    if interleave:
        per_head = blocked.repeat_interleave(HEADS, dim=0)
    else:
        per_head = blocked.repeat(HEADS, 1, 1)
    _, weights = mha(x, x, x, attn_mask=per_head, need_weights=True, average_attn_weights=False)
    return weights  # (N, H, L, S)


def torch_broken() -> object:
    return _torch(interleave=False)


def torch_fixed() -> object:
    return _torch(interleave=True)


JAX_KIND = "silent"
JAX_EXPECTED = CheckFailure
JAX_MATCH = MATCH
JAX_NOTE = (
    "JAX has no `nn.MultiheadAttention`; code ported from PyTorch that folds heads into the "
    "batch axis and expands the mask with `jnp.tile` mixes the examples the same way."
)


def _jax(interleave: bool) -> object:
    import jax
    import jax.numpy as jnp

    x, blocked = (jnp.asarray(a) for a in _inputs())
    split = x.reshape(2, 5, HEADS, 16 // HEADS).transpose(0, 2, 1, 3)
    heads = split.reshape(2 * HEADS, 5, 16 // HEADS)  # example-major fold
    if interleave:
        per_head = jnp.repeat(blocked, HEADS, axis=0)
    else:
        per_head = jnp.tile(blocked, (HEADS, 1, 1))
    scores = jnp.where(per_head, -jnp.inf, heads @ heads.swapaxes(-1, -2) / 2.0)
    return jax.nn.softmax(scores, axis=-1)


def jax_broken() -> object:
    return _jax(interleave=False)


def jax_fixed() -> object:
    return _jax(interleave=True)
