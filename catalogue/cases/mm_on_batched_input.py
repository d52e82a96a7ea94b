"""A 2-D matrix product (``np.dot``, ``torch.mm``) used on batched input.

What happens:
    ``np.dot(q, k.transpose(0, 2, 1))`` on ``(B, L, D)`` arrays does not raise: for 3-D
    arrays ``np.dot`` pairs *every* batch element with every other, giving ``(B, L, B, S)``
    scores. The error comes one line later, at ``@ v``: ``ValueError: operands could not be
    broadcast together with remapped shapes [original->remapped]: (2,5,2,5)->(2,5,newaxis,
    newaxis) (2,5,8)->(2,newaxis,newaxis)``, which names neither ``np.dot`` nor the batch.
    JAX's ``jnp.dot`` does the same as NumPy; its error at ``@ v`` reads ``ValueError:
    Incompatible types for matmul arguments: float32[2,5,2,5] and float32[2,5,8]``.
    PyTorch's ``torch.mm`` refuses at once:
    ``RuntimeError: self must be a matrix``; ``torch.bmm`` on 4-D heads ``(B, H, L, D)``
    raises ``RuntimeError: batch1 must be a 3D tensor``.

Why:
    ``np.dot`` is the matrix product for 2-D arrays only; on N-D arrays it is a sum over
    the last axis of ``a`` and the second-to-last of ``b`` for every pair of leading
    indices. ``matmul`` (``@``) instead treats leading axes as a batch.

Fix:
    Use ``@``/``np.matmul`` (``torch.matmul``/``torch.bmm``) or an einsum with ``...``.
    A 2-D *weight* is not the problem: ``x @ w`` broadcasts it over the batch.
"""

import numpy as np

from refattn import attention

from ._common import softmax

KIND = "exception"
EXPECTED = ValueError
MATCH = r"could not be broadcast together with remapped shapes.*\(2,5,2,5\)"
TAGS = ("batched-matmul",)
SEED_CLAIMS = (
    (
        "004_4cf73df6a2e65df9.txt",
        "Section 1: weight matrices designed for a single sequence, applied to a batch, "
        "'will invariably lead to shape mismatches'",
        "False for weights: x @ w with a 2-D weight (and nn.Linear) broadcasts over the "
        "batch in NumPy and PyTorch. What breaks is a 2-D *operation* on batched operands: "
        "torch.mm raises RuntimeError, np.dot silently pairs every batch element with every "
        "other.",
    ),
)
MESSAGES = (
    r"broadcast together with remapped shapes",
    r"(?:self|mat2) must be a matrix",
    r"batch[12] must be a 3D tensor",
    r"Incompatible types for matmul arguments: \w+\[[\d,]+\] and \w+\[[\d,]+\]",
)
SYMPTOMS = (
    "scores have an extra batch dimension",
    "torch.mm fails on a batch",
    "np.dot gives a 4-D result on 3-D arrays",
)


def _inputs() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    q, k, v = rng.standard_normal((3, 2, 5, 8))  # (B, L, D) each
    return q, k, v


# --8<-- [start:broken]
def broken() -> np.ndarray:
    q, k, v = _inputs()
    scores = np.dot(q, k.transpose(0, 2, 1)) / np.sqrt(8)  # (B, L, B, S), not (B, L, S)
    return softmax(scores) @ v


# --8<-- [end:broken]


# --8<-- [start:fixed]
def fixed() -> np.ndarray:
    q, k, v = _inputs()
    scores = q @ k.transpose(0, 2, 1) / np.sqrt(8)  # matmul batches: (B, L, S)
    return softmax(scores) @ v


# --8<-- [end:fixed]


def reference() -> np.ndarray:
    q, k, v = _inputs()
    return attention(q[:, None], k[:, None], v[:, None])[:, 0]


TORCH_EXPECTED = RuntimeError
TORCH_MATCH = r"self must be a matrix"


def torch_broken() -> object:
    import torch

    q, k = torch.randn(2, 5, 8), torch.randn(2, 5, 8)
    return torch.mm(q, k.transpose(1, 2))


JAX_EXPECTED = ValueError
JAX_MATCH = r"Incompatible types for matmul arguments: float32\[2,5,2,5\] and float32\[2,5,8\]"
JAX_NOTE = (
    "jnp.dot pairs every batch element with every other, as np.dot does; the error comes at "
    "@ v and quotes the (B, L, B, S) scores: Incompatible types for matmul arguments."
)


def jax_broken() -> object:
    import jax
    import jax.numpy as jnp

    q, k, v = (jnp.asarray(a) for a in _inputs())
    scores = jnp.dot(q, k.transpose(0, 2, 1)) / jnp.sqrt(8.0)  # (B, L, B, S)
    return jax.nn.softmax(scores, axis=-1) @ v


def jax_fixed() -> object:
    import jax
    import jax.numpy as jnp

    q, k, v = (jnp.asarray(a) for a in _inputs())
    scores = jnp.matmul(q, k.transpose(0, 2, 1)) / jnp.sqrt(8.0)  # batched: (B, L, S)
    return jax.nn.softmax(scores, axis=-1) @ v


def torch_fixed() -> object:
    import torch

    q, k, v = (torch.from_numpy(a) for a in _inputs())
    scores = torch.bmm(q, k.transpose(1, 2)) / 8**0.5  # batched: (B, L, S)
    return torch.bmm(torch.softmax(scores, dim=-1), v)
