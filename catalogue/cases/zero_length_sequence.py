"""An empty sequence reaches attention.

What happens:
    A hand-written softmax over zero keys fails in its max-subtraction: NumPy raises
    ``ValueError: zero-size array to reduction operation maximum which has no identity``,
    PyTorch ``IndexError: max(): Expected reduction dim 1 to have non-zero size``.
    ``torch.softmax`` and ``scaled_dot_product_attention`` do not raise: they return an
    empty weight matrix and an all-zero output. Taking the last token of an empty
    sequence, ``h[-1]``, raises ``IndexError: index -1 is out of bounds for axis 0 with
    size 0`` (PyTorch: ``... for dimension 0 with size 0``). JAX's ``max`` raises like
    NumPy's (``zero-size array to reduction operation max which has no identity``);
    TensorFlow's ``reduce_max`` returns ``-inf`` for an empty row, and the same hand-written
    softmax then returns the all-zero output without an error.

Why:
    Filtering (empty documents, a truncation to zero, a bucket with no tokens) leaves an
    example with ``S = 0``. There is nothing to normalise over and no last token; the code
    silently assumed at least one.

Fix:
    Drop empty examples before batching, or pad them to one masked position and treat a
    row with no keys by policy (refattn's ``fully_masked="zero"`` returns zeros).
"""

import numpy as np

from refattn import attention

from ._common import softmax

KIND = "exception"
EXPECTED = ValueError
MATCH = r"zero-size array to reduction operation maximum which has no identity"
TAGS = ("ragged-lengths",)
SEED_CLAIMS = (
    (
        "004_4cf73df6a2e65df9.txt",
        "Section 3: 'extremely short sequences' make a poorly designed attention "
        "mechanism fail with index errors",
        "Only empty sequences fail, and a one-token sequence works. Over zero keys a "
        "hand-written max-subtracted softmax raises IndexError in PyTorch ('max(): "
        "Expected reduction dim 1 to have non-zero size') and ValueError in NumPy; "
        "torch.softmax and scaled_dot_product_attention silently return zeros. Taking the "
        "last token of an empty sequence raises IndexError in both.",
    ),
)
MESSAGES = (
    r"zero-size array to reduction operation (?:maximum|max) which has no identity",
    r"Expected reduction dim -?\d+ to have non-zero size",
    r"index -1 is out of bounds for (?:dimension|axis) 0 with size 0",
    r"index is out of bounds for axis 0 with size 0",
)
SYMPTOMS = ("crash on an empty sequence", "error when a document has no tokens")


def _inputs() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    q = rng.standard_normal((3, 4))  # (L, D)
    k = rng.standard_normal((0, 4))  # (S, D): an empty context
    v = rng.standard_normal((0, 4))
    return q, k, v


# --8<-- [start:broken]
def broken() -> np.ndarray:
    q, k, v = _inputs()
    return softmax(q @ k.T / np.sqrt(4)) @ v  # max over zero keys


# --8<-- [end:broken]


# --8<-- [start:fixed]
def fixed() -> np.ndarray:
    q, k, v = _inputs()
    if k.shape[0] == 0:  # no keys: attend to nothing, return zeros
        return np.zeros((q.shape[0], v.shape[1]))
    return softmax(q @ k.T / np.sqrt(4)) @ v


# --8<-- [end:fixed]


def reference() -> np.ndarray:
    q, k, v = _inputs()
    return attention(q[None], k[None], v[None], fully_masked="zero")[0]


TORCH_EXPECTED = IndexError
TORCH_MATCH = r"max\(\): Expected reduction dim 1 to have non-zero size"


def torch_broken() -> object:
    import torch

    q, k, v = torch.randn(3, 4), torch.randn(0, 4), torch.randn(0, 4)  # an empty context
    scores = q @ k.T / 2
    weights = torch.exp(scores - scores.max(dim=-1, keepdim=True).values)
    return (weights / weights.sum(dim=-1, keepdim=True)) @ v


JAX_EXPECTED = ValueError
JAX_MATCH = r"zero-size array to reduction operation max which has no identity"


def jax_broken() -> object:
    import jax.numpy as jnp

    q, k, v = (jnp.asarray(a) for a in _inputs())
    scores = q @ k.T / 2.0
    weights = jnp.exp(scores - scores.max(axis=-1, keepdims=True))  # max over zero keys
    return (weights / weights.sum(axis=-1, keepdims=True)) @ v


def jax_fixed() -> object:
    import jax
    import jax.numpy as jnp

    q, k, v = (jnp.asarray(a) for a in _inputs())
    if k.shape[0] == 0:  # no keys: attend to nothing, return zeros
        return jnp.zeros((q.shape[0], v.shape[1]))
    return jax.nn.softmax(q @ k.T / 2.0, axis=-1) @ v


def torch_fixed() -> object:
    import torch

    q, k, v = (torch.from_numpy(a) for a in _inputs())
    if k.shape[0] == 0:  # no keys: attend to nothing, return zeros
        return torch.zeros(q.shape[0], v.shape[1], dtype=q.dtype)
    return torch.softmax(q @ k.T / 2.0, dim=-1) @ v
