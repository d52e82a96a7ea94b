"""A negative pad id (-100 or -1) used as an embedding index.

What happens:
    NumPy wraps negative indices: with a vocabulary of 128, id ``-100`` reads row 28 and
    ``-1`` the last row, so every padded position silently gets some real token's
    embedding. No error, wrong input to attention. JAX (``table[ids]`` and ``jnp.take``)
    and Keras's ``Embedding`` wrap the same way. PyTorch's ``nn.Embedding`` refuses both
    with ``IndexError: index out of range in self``, and a bare ``tf.gather`` with
    ``indices[0,3] = -100 is not in [0, 128)``. Only a vocabulary smaller than 100 makes
    NumPy raise for ``-100`` (``index -100 is out of bounds for axis 0 with size 50``); JAX
    then clamps (``table[ids]``) or returns NaN (``jnp.take``).

Why:
    ``-100`` (the label ignore index of cross-entropy) and ``-1`` are conventions for "no
    token" in labels, not rows of the table. Labels fed as input ids, or a collator that
    pads inputs with the label pad value, put them into the lookup. NumPy reads a negative
    index as counting from the end; PyTorch's embedding does not, so ported code changes
    behaviour without a word.

Fix:
    Pad inputs with a real id (``tokenizer.pad_token_id``) and mask it, or replace negative
    ids before the lookup and zero their rows: ``table[np.where(ids >= 0, ids, 0)]``.

Sources:
    https://github.com/pytorch/pytorch/issues/14844 (pad value -1 into nn.Embedding)
"""

import numpy as np

from refattn.checks import check_close
from refattn.errors import CheckFailure

KIND = "silent"
EXPECTED = CheckFailure
MATCH = r"lookup differs from the reference at \d+ of \d+ entries"
TAGS = ("token-out-of-range",)
MESSAGES = (r"index out of range in self", r"index -\d+ is out of bounds for axis 0")
SYMPTOMS = (
    "padding tokens get the embedding of a real token",
    "pad id -100 index error in embedding",
    "works in numpy but index out of range in pytorch",
)

PAD = -100  # the label ignore index, used as an input pad id


def _inputs() -> tuple[np.ndarray, np.ndarray]:
    table = np.random.default_rng(0).standard_normal((128, 4))  # (vocab, E)
    ids = np.array([[3, 7, 9, PAD, PAD], [4, 1, PAD, PAD, PAD]])  # (B, L), padded with -100
    return table, ids


# --8<-- [start:broken]
def broken() -> np.ndarray:
    table, ids = _inputs()
    return table[ids]  # -100 wraps around to row 128 - 100 = 28


# --8<-- [end:broken]


# --8<-- [start:fixed]
def fixed() -> np.ndarray:
    table, ids = _inputs()
    valid = ids >= 0
    return np.where(valid[..., None], table[np.where(valid, ids, 0)], 0.0)


# --8<-- [end:fixed]


def detect(output: np.ndarray) -> None:
    table, ids = _inputs()
    expected = np.zeros(ids.shape + table.shape[1:])  # zero rows at the padded positions
    for b, i in zip(*np.nonzero(ids >= 0), strict=True):
        expected[b, i] = table[ids[b, i]]
    check_close(output, expected, name="lookup")


TORCH_EXPECTED = IndexError
TORCH_MATCH = r"index out of range in self"
TORCH_NOTE = (
    "PyTorch refuses instead of wrapping: nn.Embedding reads no negative id, so the same "
    "batch that NumPy, JAX and Keras embed silently raises here."
)


def torch_broken() -> object:
    import torch

    embedding = torch.nn.Embedding(128, 4)
    return embedding(torch.tensor([[3, 7, 9, PAD, PAD]]))


JAX_KIND = "silent"
JAX_EXPECTED = CheckFailure
JAX_MATCH = MATCH
JAX_NOTE = (
    "JAX wraps a negative id that is within the table as NumPy does (-100 reads row 28, "
    "with table[ids] and jnp.take alike); only ids past the table differ: indexing clamps "
    "them to the last row, jnp.take fills them with NaN."
)


def jax_broken() -> object:
    import jax.numpy as jnp

    table, ids = (jnp.asarray(a) for a in _inputs())
    return table[ids]  # -100 wraps around to row 28, as in NumPy


def jax_fixed() -> object:
    import jax.numpy as jnp

    table, ids = (jnp.asarray(a) for a in _inputs())
    valid = ids >= 0
    return jnp.where(valid[..., None], table[jnp.where(valid, ids, 0)], 0.0)


TF_KIND = "silent"
TF_EXPECTED = CheckFailure
TF_MATCH = MATCH
TF_NOTE = (
    "Keras's Embedding wraps -100 to row 28 like NumPy, silently; a bare tf.gather refuses "
    "it: indices[0,3] = -100 is not in [0, 128)."
)


def tf_broken() -> object:
    import tensorflow as tf

    table, ids = _inputs()
    init = tf.keras.initializers.Constant(table)
    embedding = tf.keras.layers.Embedding(len(table), table.shape[1], embeddings_initializer=init)
    return embedding(tf.constant(ids))  # -100 reads row 28


def torch_fixed() -> object:
    import torch

    table, ids = (torch.from_numpy(a) for a in _inputs())
    embedding = torch.nn.Embedding.from_pretrained(table)  # type: ignore[no-untyped-call]
    valid = ids >= 0
    return embedding(ids.clamp(min=0)) * valid[..., None]  # pads: row 0, then zeroed


def tf_fixed() -> object:
    import tensorflow as tf

    table, ids = _inputs()
    init = tf.keras.initializers.Constant(table)
    embedding = tf.keras.layers.Embedding(len(table), table.shape[1], embeddings_initializer=init)
    valid = tf.constant(ids >= 0)
    rows = embedding(tf.maximum(tf.constant(ids), 0))  # pads: row 0, then zeroed
    return tf.where(valid[..., None], rows, 0.0)
