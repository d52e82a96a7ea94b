"""Lengths counted before truncation, used after it.

What happens:
    Gathering each example's last token with ``h[np.arange(B), lengths - 1]`` raises
    ``IndexError: index 19 is out of bounds for axis 1 with size 16`` (PyTorch:
    ``... for dimension 1 with size 16``; TensorFlow's ``tf.gather_nd`` on CPU:
    ``InvalidArgumentError: indices[1] = [1, 19] does not index into param shape
    [3,16,8]``). refattn refuses such ``key_lengths`` with an
    ``AttentionValueError``: ``key_lengths should lie in [0, S] = [0, 16]: but got 20``.

Why:
    The lengths were computed from the raw token lists, then the batch was truncated to
    ``max_len = 16``. An example of 20 tokens keeps length 20 but has only 16 positions.
    A padding mask built from them, ``arange(16) < lengths``, is the same as with the
    clipped lengths, so attention hides the mistake; the first index that uses a length
    as a position fails.

Fix:
    Clip the lengths when you truncate: ``lengths = np.minimum(lengths, max_len)``, or
    compute them from the padded batch.
"""

import numpy as np

KIND = "exception"
EXPECTED = IndexError
MATCH = r"index 19 is out of bounds for axis 1 with size 16"
TAGS = ("ragged-lengths",)
MESSAGES = (
    r"index \d+ is out of bounds for (?:axis|dimension) 1 with size \d+",
    r"(?:key|query)_lengths should lie in \[0, [SL]\]",
    r"indices\[\d+\] = \[[\d, ]+\] does not index into param shape",
)
SYMPTOMS = (
    "index error when gathering the last token",
    "lengths larger than max_len",
    "per-example sequence lengths ignored by the attention",
)

MAX_LEN = 16


def _inputs() -> tuple[np.ndarray, np.ndarray]:
    lengths = np.array([5, 20, 3])  # counted before truncation
    hidden = np.random.default_rng(0).standard_normal((3, MAX_LEN, 8))  # (B, L, E), truncated
    return hidden, lengths


# --8<-- [start:broken]
def broken() -> np.ndarray:
    hidden, lengths = _inputs()
    return hidden[np.arange(len(hidden)), lengths - 1]  # (B, E): the last real token


# --8<-- [end:broken]


# --8<-- [start:fixed]
def fixed() -> np.ndarray:
    hidden, lengths = _inputs()
    lengths = np.minimum(lengths, hidden.shape[1])  # clip with the truncation
    return hidden[np.arange(len(hidden)), lengths - 1]


# --8<-- [end:fixed]


TORCH_EXPECTED = IndexError
TORCH_MATCH = r"index 19 is out of bounds for dimension 1 with size 16"


def torch_broken() -> object:
    import torch

    hidden = torch.randn(3, MAX_LEN, 8)
    lengths = torch.tensor([5, 20, 3])
    return hidden[torch.arange(3), lengths - 1]


def torch_fixed() -> object:
    import torch

    hidden, lengths = (torch.from_numpy(a) for a in _inputs())
    lengths = lengths.clamp(max=hidden.shape[1])  # clip with the truncation
    return hidden[torch.arange(len(hidden)), lengths - 1]


TF_EXPECTED = "tensorflow.errors.InvalidArgumentError"
TF_MATCH = r"indices\[1\] = \[1, 19\] does not index into param shape \[3,16,8\]"


def tf_broken() -> object:
    import tensorflow as tf

    hidden, lengths = tf.constant(_inputs()[0]), tf.constant(_inputs()[1], tf.int32)
    last = tf.stack([tf.range(3), lengths - 1], axis=1)  # (B, 2): (example, position)
    return tf.gather_nd(hidden, last)


def tf_fixed() -> object:
    import tensorflow as tf

    hidden, lengths = tf.constant(_inputs()[0]), tf.constant(_inputs()[1], tf.int32)
    lengths = tf.minimum(lengths, hidden.shape[1])
    return tf.gather_nd(hidden, tf.stack([tf.range(3), lengths - 1], axis=1))
