"""Framework behaviour that case pages state beside their variants, run here.

Each test backs one sentence of a case's docstring or ``FW_NOTE`` that the case's own
variants do not run (another spelling of the mistake, another framework's wording). torch,
jax and tensorflow-cpu are installed by the test setup, so these fail rather than skip.
"""

from __future__ import annotations

import re


def _message(fn: object) -> tuple[type[BaseException], str]:
    try:
        fn()  # type: ignore[operator]
    except Exception as error:
        return type(error), str(error)
    raise AssertionError("returned without an exception")


# mask_shape_not_broadcastable: the seed articles' single-head spellings
def test_seed_masked_fill_eq_zero_on_a_batch_length_mask() -> None:
    import torch

    batch_size, sequence_length = 10, 20
    scores = torch.randn(batch_size, sequence_length, sequence_length)
    mask = torch.randint(0, 2, (batch_size, sequence_length)).bool()  # as in article 000
    kind, text = _message(lambda: scores.masked_fill(mask == 0, float("-inf")))
    assert kind is RuntimeError
    assert re.search(
        r"The size of tensor a \(10\) must match the size of tensor b \(20\) at "
        r"non-singleton dimension 1",
        text,
    )


def test_seed_minus_1e9_times_mask_on_bmm_scores() -> None:
    import torch

    batch_size, max_len, embedding_dim = 32, 20, 512  # article 004, Example 3
    seq_lengths = torch.randint(5, max_len + 1, (batch_size,))
    mask = torch.arange(max_len).expand(batch_size, max_len) >= seq_lengths.unsqueeze(1)
    q = k = torch.randn(batch_size, max_len, embedding_dim)
    kind, text = _message(
        lambda: torch.softmax(torch.bmm(q, k.transpose(1, 2)) - 1e9 * mask.float(), dim=-1)
    )
    assert kind is RuntimeError
    assert re.search(
        r"The size of tensor a \(20\) must match the size of tensor b \(32\) at "
        r"non-singleton dimension 1",
        text,
    )


def test_tf_additive_mask_without_axes_fails_in_addv2() -> None:
    import tensorflow as tf

    scores = tf.zeros((2, 4, 5, 6))
    bias = tf.zeros((2, 6))
    kind, text = _message(lambda: scores + bias)
    assert kind is tf.errors.InvalidArgumentError
    assert re.search(r"Incompatible shapes: \[2,4,5,6\] vs\. \[2,6\] \[Op:AddV2\]", text)
