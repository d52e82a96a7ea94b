"""Heads merged with a reshape but without the transpose.

What happens:
    No error. ``out.reshape(B, L, H * Dv)`` on the attention output ``(B, H, L, Dv)``
    returns the right shape with the wrong contents: output row 0 holds positions 0-3 of
    head 0, row 1 positions 4-5 of head 0 and 0-1 of head 1, and so on. In PyTorch,
    ``out.transpose(1, 2).view(B, L, H * Dv)`` raises ``RuntimeError: view size is not
    compatible with input tensor's size and stride``; dropping the transpose to silence
    it gives this silent bug. ``jnp.reshape`` and ``tf.reshape`` without the transpose
    scramble the heads just as silently.

Why:
    A reshape reads the array in memory order. With heads in front of positions, the
    first ``H * Dv`` numbers are the first positions of head 0, not position 0 of every
    head. The axes must be put in ``(B, L, H, Dv)`` order first.

Fix:
    ``out.transpose(0, 2, 1, 3).reshape(B, L, H * Dv)`` (PyTorch:
    ``out.transpose(1, 2).reshape(B, L, H * Dv)`` or ``.contiguous().view(...)``).

Sources:
    https://github.com/pytorch/pytorch/issues/67651 quantizable MHA: view without the transpose
    https://github.com/meta-pytorch/opacus/pull/825 heads spliced into time positions by a view
"""

import numpy as np

from refattn import attention
from refattn.checks import check_close
from refattn.errors import CheckFailure

from ._common import softmax

KIND = "silent"
EXPECTED = CheckFailure
MATCH = r"output differs from the reference at \d+ of \d+ entries"
TAGS = ("head-axis-order",)
MESSAGES = (r"view size is not compatible with input tensor's size and stride",)
SYMPTOMS = (
    "multi-head attention output is scrambled",
    "model trains worse with more heads",
    "reshape without transpose when merging heads",
    "view instead of transpose before concatenating heads",
)


def _inputs() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    q, k, v = rng.standard_normal((3, 2, 4, 6, 8))  # (B, H, L, D) each
    return q, k, v


def _heads_out() -> np.ndarray:
    q, k, v = _inputs()
    return softmax(q @ k.swapaxes(-1, -2) / np.sqrt(8)) @ v  # (B, H, L, Dv)


# --8<-- [start:broken]
def broken() -> np.ndarray:
    out = _heads_out()
    b, h, length, dv = out.shape
    return out.reshape(b, length, h * dv)  # memory order is (B, H, L, Dv)


# --8<-- [end:broken]


# --8<-- [start:fixed]
def fixed() -> np.ndarray:
    out = _heads_out()
    b, h, length, dv = out.shape
    return out.transpose(0, 2, 1, 3).reshape(b, length, h * dv)  # (B, L, H * Dv)


# --8<-- [end:fixed]


def reference() -> np.ndarray:
    out = attention(*_inputs())
    return np.concatenate([out[:, i] for i in range(out.shape[1])], axis=-1)


def detect(output: np.ndarray) -> None:
    check_close(output, reference())


TORCH_EXPECTED = RuntimeError
TORCH_MATCH = r"view size is not compatible with input tensor's size and stride"


def torch_broken() -> object:
    import torch

    out = torch.randn(2, 4, 6, 8)  # (B, H, L, Dv)
    # the correct transpose, then .view: refused, and dropping the transpose is the bug
    return out.transpose(1, 2).view(2, 6, 4 * 8)


def torch_fixed() -> object:
    import torch

    out = torch.from_numpy(_heads_out())  # (B, H, L, Dv)
    b, h, length, dv = out.shape
    return out.transpose(1, 2).reshape(b, length, h * dv)  # reshape copies when it must


JAX_KIND = "silent"
JAX_EXPECTED = CheckFailure
JAX_MATCH = MATCH
JAX_NOTE = "JAX has no `view` to refuse the merge: `reshape` without the transpose just runs."


def jax_broken() -> object:
    import jax.numpy as jnp

    out = jnp.asarray(_heads_out())  # (B, H, L, Dv)
    b, h, length, dv = out.shape
    return out.reshape(b, length, h * dv)


def jax_fixed() -> object:
    import jax.numpy as jnp

    out = jnp.asarray(_heads_out())
    b, h, length, dv = out.shape
    return out.transpose(0, 2, 1, 3).reshape(b, length, h * dv)


TF_KIND = "silent"
TF_EXPECTED = CheckFailure
TF_MATCH = MATCH


def tf_broken() -> object:
    import tensorflow as tf

    out = tf.constant(_heads_out())  # (B, H, L, Dv)
    b, h, length, dv = out.shape
    return tf.reshape(out, (b, length, h * dv))


def tf_fixed() -> object:
    import tensorflow as tf

    out = tf.constant(_heads_out())
    b, h, length, dv = out.shape
    return tf.reshape(tf.transpose(out, (0, 2, 1, 3)), (b, length, h * dv))
