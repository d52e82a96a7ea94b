"""A causal mask built as ``triu(ones, diagonal=0)``: each token is hidden from itself.

What happens:
    The "future" set is ``np.triu(np.ones((L, L)), k=1)`` (strictly above the diagonal);
    with ``k=0`` (``torch.triu(..., diagonal=0)``, the default) the diagonal is masked too.
    Query 0 then has no key left: its row of scores is all ``-inf`` and the softmax gives
    NaN, which spreads through
    ``@ v`` and the loss. The other queries lose their own token without any error. PyTorch
    (``masked_fill`` + ``softmax``), JAX (``jax.nn.softmax``) and TensorFlow
    (``tf.nn.softmax``) give the same NaN row.

Why:
    ``triu``'s default keeps the diagonal. As the set of *allowed* keys, ``tril(ones)`` with
    the diagonal is right; as the set of *masked* keys, the diagonal must be excluded:
    ``triu(ones, 1)``. Swapping one for the other without the offset shifts the mask by one.

Fix:
    Mask ``np.triu(np.ones((L, L), bool), k=1)`` (``torch.triu(..., diagonal=1)``), or say
    what may be attended, ``tril`` with the diagonal; better, ``is_causal=True`` /
    ``causal="top_left"``. A check that every row keeps at least one key catches it.

Sources:
    https://github.com/pbloem/former/issues/10
        (triu_indices with offset 0 creates a row of all -inf: a row of NaNs after softmax)
    https://github.com/karpathy/nanoGPT/issues/170 (tril vs triu for the causal mask)
    https://github.com/rasbt/LLMs-from-scratch/issues/60
        (CausalAttention registers torch.triu(torch.ones(...), diagonal=1) as the mask)
"""

import numpy as np

from refattn.checks import check_finite
from refattn.errors import CheckFailure

from ._common import reference_weights, softmax

KIND = "nan"
EXPECTED = CheckFailure
MATCH = r"weights has \d+ NaN"
TAGS = ("fully-masked-row",)
SYMPTOMS = (
    "first row of attention is nan with a causal mask",
    "loss is nan from the first step with causal masking",
    "token cannot attend to itself",
    "first token is nan with a causal mask",
    "diagonal masked in the causal mask",
)


def _inputs() -> np.ndarray:
    return np.random.default_rng(0).standard_normal((1, 5, 4))  # (B, L, D)


# --8<-- [start:broken]
def broken() -> np.ndarray:
    x = _inputs()
    scores = x @ x.swapaxes(-1, -2) / 2.0
    future = np.triu(np.ones((5, 5), dtype=bool))  # k=0: the diagonal too
    return softmax(np.where(future, -np.inf, scores))


# --8<-- [end:broken]


# --8<-- [start:fixed]
def fixed() -> np.ndarray:
    x = _inputs()
    scores = x @ x.swapaxes(-1, -2) / 2.0
    future = np.triu(np.ones((5, 5), dtype=bool), k=1)  # strictly after the query
    return softmax(np.where(future, -np.inf, scores))


# --8<-- [end:fixed]


def reference() -> np.ndarray:
    x = _inputs()
    return reference_weights(x, x, causal="top_left")


def detect(weights: np.ndarray) -> None:
    check_finite(weights, name="weights")


TORCH_KIND = "nan"
TORCH_EXPECTED = CheckFailure
TORCH_MATCH = MATCH


def _torch(diagonal: int) -> object:
    import torch

    x = torch.from_numpy(_inputs())
    scores = x @ x.transpose(-1, -2) / 2.0
    future = torch.triu(torch.ones(5, 5), diagonal=diagonal).bool()
    return torch.softmax(scores.masked_fill(future, float("-inf")), dim=-1)


def torch_broken() -> object:
    return _torch(diagonal=0)


def torch_fixed() -> object:
    return _torch(diagonal=1)


JAX_KIND = "nan"
JAX_EXPECTED = CheckFailure
JAX_MATCH = MATCH


def _jax(k: int) -> object:
    import jax
    import jax.numpy as jnp

    x = jnp.asarray(_inputs())
    scores = x @ x.swapaxes(-1, -2) / 2.0
    future = jnp.triu(jnp.ones((5, 5), dtype=bool), k=k)
    return jax.nn.softmax(jnp.where(future, -jnp.inf, scores), axis=-1)


def jax_broken() -> object:
    return _jax(k=0)


def jax_fixed() -> object:
    return _jax(k=1)


TF_KIND = "nan"
TF_EXPECTED = CheckFailure
TF_MATCH = MATCH


def _tf(strict: bool) -> object:
    import tensorflow as tf

    x = tf.constant(_inputs())
    scores = tf.matmul(x, x, transpose_b=True) / 2.0
    upper = tf.linalg.band_part(tf.ones((5, 5)), 0, -1)  # diagonal and above
    if strict:
        upper -= tf.linalg.band_part(tf.ones((5, 5)), 0, 0)  # without the diagonal
    return tf.nn.softmax(tf.where(upper > 0, float("-inf"), scores), axis=-1)


def tf_broken() -> object:
    return _tf(strict=False)


def tf_fixed() -> object:
    return _tf(strict=True)
