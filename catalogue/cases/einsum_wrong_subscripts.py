"""An einsum written for one sequence, run on batched heads.

What happens:
    ``np.einsum("ld,sd->ls", q, k)`` on ``(B, H, L, D)`` arrays raises ``ValueError:
    operand has more dimensions than subscripts given in einstein sum, but no '...' ellipsis
    provided to broadcast the extra dimensions.`` PyTorch's ``torch.einsum`` says
    ``RuntimeError: einsum(): the number of subscripts in the equation (2) does not match
    the number of dimensions (4) for operand 0 and no ellipsis was given``; ``jnp.einsum``
    ``ValueError: Einstein sum subscript 'ld' does not contain the correct number of
    indices for operand 0.``; ``tf.einsum`` ``InvalidArgumentError: Expected input 0 to
    have rank 2 but got: 4 [Op:Einsum]``.

Why:
    Each operand needs one subscript per axis. The equation names the two axes of one
    sequence's matrix; the batch and head axes have no letters.

Fix:
    Name every axis (``"bhld,bhsd->bhls"``) or let ``...`` carry the leading ones
    (``"...ld,...sd->...ls"``). refattn spells its scores ``"...hgld,...hsd->...hgls"``
    (``refattn.einsums.SCORES``: the query's heads viewed as ``(Hkv, G)`` groups for
    grouped-query attention), with ``...`` for the batch axes.
"""

import numpy as np

from refattn import attention

from ._common import softmax

KIND = "exception"
EXPECTED = ValueError
MATCH = r"operand has more dimensions than subscripts given in einstein sum"
TAGS = ("batched-matmul",)
MESSAGES = (
    r"operand has more dimensions than subscripts given in einstein sum",
    r"einsum\(\): the number of subscripts in the equation \(\d+\) does not match",
    r"einstein sum subscripts string contains too many subscripts",
    r"Einstein sum subscript .* does not contain the correct number of indices",
    r"Expected input \d+ to have rank \d+ but got: \d+ \[Op:Einsum\]",
)
SYMPTOMS = (
    "einsum fails after adding a batch dimension",
    "einsum subscripts do not match the number of dimensions",
)


def _inputs() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    q, k, v = rng.standard_normal((3, 2, 4, 5, 8))  # (B, H, L, D) each
    return q, k, v


# --8<-- [start:broken]
def broken() -> np.ndarray:
    q, k, v = _inputs()
    scores = np.einsum("ld,sd->ls", q, k) / np.sqrt(8)  # subscripts for one (L, D) matrix
    return np.einsum("ls,sd->ld", softmax(scores), v)


# --8<-- [end:broken]


# --8<-- [start:fixed]
def fixed() -> np.ndarray:
    q, k, v = _inputs()
    scores = np.einsum("...ld,...sd->...ls", q, k) / np.sqrt(8)  # (B, H, L, S)
    return np.einsum("...ls,...sd->...ld", softmax(scores), v)


# --8<-- [end:fixed]


def reference() -> np.ndarray:
    q, k, v = _inputs()
    return attention(q, k, v)


TORCH_EXPECTED = RuntimeError
TORCH_MATCH = r"einsum\(\): the number of subscripts in the equation \(2\) does not match"


def torch_broken() -> object:
    import torch

    q, k = torch.randn(2, 4, 5, 8), torch.randn(2, 4, 5, 8)
    return torch.einsum("ld,sd->ls", q, k)


def torch_fixed() -> object:
    import torch

    q, k, v = (torch.from_numpy(a) for a in _inputs())
    scores = torch.einsum("...ld,...sd->...ls", q, k) / 8**0.5  # (B, H, L, S)
    return torch.einsum("...ls,...sd->...ld", torch.softmax(scores, -1), v)


JAX_EXPECTED = ValueError
JAX_MATCH = r"Einstein sum subscript 'ld' does not contain the correct number of indices"


def jax_broken() -> object:
    import jax.numpy as jnp

    q, k, _ = (jnp.asarray(a) for a in _inputs())
    return jnp.einsum("ld,sd->ls", q, k)


def jax_fixed() -> object:
    import jax
    import jax.numpy as jnp

    q, k, v = (jnp.asarray(a) for a in _inputs())
    scores = jnp.einsum("...ld,...sd->...ls", q, k) / jnp.sqrt(8.0)
    return jnp.einsum("...ls,...sd->...ld", jax.nn.softmax(scores, axis=-1), v)


TF_EXPECTED = "tensorflow.errors.InvalidArgumentError"
TF_MATCH = r"Expected input 0 to have rank 2 but got: 4"


def tf_broken() -> object:
    import tensorflow as tf

    q, k, _ = (tf.constant(a) for a in _inputs())
    return tf.einsum("ld,sd->ls", q, k)


def tf_fixed() -> object:
    import tensorflow as tf

    q, k, v = (tf.constant(a) for a in _inputs())
    scores = tf.einsum("...ld,...sd->...ls", q, k) / 8**0.5
    return tf.einsum("...ls,...sd->...ld", tf.nn.softmax(scores, axis=-1), v)
