"""A token id at or past the vocabulary size.

What happens:
    The embedding lookup raises ``IndexError: index 1000 is out of bounds for axis 0 with
    size 1000`` in NumPy and ``IndexError: index out of range in self`` in PyTorch (on a GPU
    a device-side assert ``srcIndex < srcSelectDimSize``: GPU-only, not run here; source:
    https://github.com/NVIDIA/garak/issues/199). Keras's
    ``Embedding`` says ``indices[0,3] = 1000 is not in [0, 1000) [Op:GatherV2]``. JAX
    raises nothing: indexing clamps the id to the last row (``jnp.take`` returns a row of
    NaN instead).

Why:
    Ids run from 0 to ``vocab_size - 1``. Special tokens added to the tokenizer after the
    embedding was built (a new ``[PAD]`` or ``<|im_end|>``) get ids ``vocab_size`` and up,
    which the table has no row for.

Fix:
    Grow the embedding with the tokenizer (``model.resize_token_embeddings(len(tokenizer))``
    in transformers), or check ``ids.max() < vocab_size`` where the batch is built.

Sources:
    https://github.com/NVIDIA/garak/issues/199 (srcIndex < srcSelectDimSize on long inputs)
    https://github.com/huggingface/transformers/issues/15867 (index out of range in self)
"""

import numpy as np

KIND = "exception"
EXPECTED = IndexError
MATCH = r"index 1000 is out of bounds for axis 0 with size 1000"
TAGS = ("token-out-of-range",)
MESSAGES = (
    r"index out of range in self",
    r"srcIndex < srcSelectDimSize",
    r"indices\[[\d,]+\] = \d+ is not in \[0, \d+\)",
    r"index \d+ is out of bounds for axis 0 with size \d+",
)
SYMPTOMS = (
    "index error after adding special tokens to the tokenizer",
    "cuda device-side assert triggered in embedding",
    "token id larger than the vocabulary size",
    "embedding not resized after adding tokens to the tokenizer",
)

VOCAB, WIDTH = 1000, 8


def _inputs() -> tuple[np.ndarray, np.ndarray]:
    table = np.random.default_rng(0).standard_normal((VOCAB, WIDTH))  # (vocab, E)
    ids = np.array([[5, 17, 999, VOCAB]])  # VOCAB: the id of a newly added [PAD] token
    return table, ids


# --8<-- [start:broken]
def broken() -> np.ndarray:
    table, ids = _inputs()
    return table[ids]


# --8<-- [end:broken]


# --8<-- [start:fixed]
def fixed() -> np.ndarray:
    table, ids = _inputs()
    extra = np.zeros((ids.max() + 1 - len(table), WIDTH))  # rows for the new tokens
    table = np.concatenate([table, extra])  # resize the embedding with the tokenizer
    return table[ids]


# --8<-- [end:fixed]


TORCH_EXPECTED = IndexError
TORCH_MATCH = r"index out of range in self"


def torch_broken() -> object:
    import torch

    embedding = torch.nn.Embedding(VOCAB, WIDTH)
    return embedding(torch.tensor([[5, 17, 999, VOCAB]]))


TF_EXPECTED = "tensorflow.errors.InvalidArgumentError"
TF_MATCH = r"indices\[0,3\] = 1000 is not in \[0, 1000\)"


def tf_broken() -> object:
    import tensorflow as tf

    embedding = tf.keras.layers.Embedding(VOCAB, WIDTH)
    return embedding(tf.constant([[5, 17, 999, VOCAB]]))
