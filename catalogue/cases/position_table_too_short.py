"""A sequence longer than the position-embedding table.

What happens:
    Looking up positions ``0 .. L-1`` in a learned table of ``max_len`` rows raises
    ``IndexError: index 16 is out of bounds for axis 0 with size 16`` in NumPy;
    ``nn.Embedding`` in PyTorch raises ``IndexError: index out of range in self``; Keras's
    ``Embedding`` an ``InvalidArgumentError: ... indices[16] = 16 is not in [0, 16)
    [Op:GatherV2]``. JAX does not raise: indexing clamps out-of-range rows, so positions 16
    to 19 all silently get row 15 (``jnp.take`` fills them with NaN instead).

Why:
    The table has one row per position the model was built for. A sequence of 20 tokens
    asks for rows 16 to 19, which do not exist. Lookups like this one are one source of
    ``IndexError`` in transformer code; the other is a dimension argument past the rank
    (PyTorch's ``IndexError: Dimension out of range``, see ``softmax_axis_out_of_range``
    and ``transpose_missing_batch_axis``). Shape mismatches in matmuls, additions and
    concatenations raise ``ValueError`` or ``RuntimeError`` instead.

Fix:
    Truncate (or window) the input to ``max_len`` tokens, or build the table for the
    longest sequence you will see (or use a position scheme without a table, such as
    rotary or ALiBi).

Sources:
    https://github.com/allenai/longformer/issues/187 (index out of range with a long input)
"""

import numpy as np

KIND = "exception"
EXPECTED = IndexError
MATCH = r"index 16 is out of bounds for axis 0 with size 16"
TAGS = ("position-out-of-range",)
SEED_CLAIMS = (
    (
        "004_4cf73df6a2e65df9.txt",
        "Title and introduction: IndexErrors in self-attention come from input "
        "dimensionality mismatches, batch-size mismatches at concatenation and padding",
        "False: matmul and concatenation mismatches raise ValueError (NumPy) or "
        "RuntimeError (PyTorch). IndexErrors come from lookups such as this position "
        "table, token ids past the vocabulary and lengths past the padded length, and from "
        "a dim argument past the tensor's rank (torch's 'Dimension out of range' is an "
        "IndexError): a rank mistake, not a size mismatch.",
    ),
)
MESSAGES = (
    r"index \d+ is out of bounds for axis 0 with size \d+",
    r"index out of range in self",
    r"indices\[[\d,]+\] = \d+ is not in \[0, \d+\)",
)
SYMPTOMS = (
    "index error with longer sequences",
    "crash when input is longer than max_position_embeddings",
    "sequence longer than 512 tokens crashes",
    "input exceeds the maximum sequence length",
)


def _inputs() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    tokens = rng.standard_normal((2, 20, 8))  # (B, L, E): 20 tokens
    positions = rng.standard_normal((16, 8))  # (max_len, E): built for 16
    return tokens, positions


# --8<-- [start:broken]
def broken() -> np.ndarray:
    tokens, positions = _inputs()
    length = tokens.shape[1]
    return tokens + positions[np.arange(length)]  # rows 16..19 do not exist


# --8<-- [end:broken]


# --8<-- [start:fixed]
def fixed() -> np.ndarray:
    tokens, positions = _inputs()
    tokens = tokens[:, : positions.shape[0]]  # truncate to the table's max_len
    return tokens + positions[np.arange(tokens.shape[1])]


# --8<-- [end:fixed]


TORCH_EXPECTED = IndexError
TORCH_MATCH = r"index out of range in self"


def torch_broken() -> object:
    import torch

    positions = torch.nn.Embedding(16, 8)
    return positions(torch.arange(20))


TF_EXPECTED = "tensorflow.errors.InvalidArgumentError"
TF_MATCH = r"indices\[16\] = 16 is not in \[0, 16\)"


def tf_broken() -> object:
    import tensorflow as tf

    positions = tf.keras.layers.Embedding(16, 8)  # built for max_len 16
    return positions(tf.range(20))
