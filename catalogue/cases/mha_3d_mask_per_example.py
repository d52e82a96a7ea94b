"""A per-example ``(N, L, S)`` mask where ``nn.MultiheadAttention`` wants ``(N * H, L, S)``.

What happens:
    ``nn.MultiheadAttention(16, num_heads=4)`` with a 3-D ``attn_mask`` of shape ``(2, 5, 5)``
    (one mask per example) raises ``RuntimeError: The shape of the 3D attn_mask is
    torch.Size([2, 5, 5]), but should be (8, 5, 5).``: a 3-D mask is per example *and* per
    head. The same shapes in NumPy, scores ``(N * H, L, S)`` and mask ``(N, L, S)``, raise
    ``ValueError: operands could not be broadcast together with shapes (2,5,5) () (8,5,5)``.
    Keras has the opposite convention: ``MultiHeadAttention`` takes the per-example
    ``(B, T, S)`` mask and adds the head axis itself, so a PyTorch-style ``(B * H, T, S)``
    mask fails there: ``Incompatible shapes: [2,4,5,5] vs. [8,1,5,5] [Op:LogicalAnd]``.

Why:
    PyTorch folds the heads into the batch axis, example-major (index ``n * H + h``), and
    reads a 3-D mask in that folded layout; a 2-D mask is shared by every example. There is
    no per-example 3-D form.

Fix:
    Repeat each example's mask once per head, example-major:
    ``attn_mask.repeat_interleave(num_heads, dim=0)`` (never ``repeat``: see
    ``mha_3d_mask_tiled_across_examples``); for padding alone use ``key_padding_mask
    (N, S)``; in Keras pass ``(B, T, S)``.

Sources:
    https://github.com/pytorch/pytorch/issues/64706
        (the expected 3-D shape is (bsz * num_heads, tgt_len, src_len), not (bsz, ...))
    https://github.com/pytorch/pytorch/issues/97605 (MultiheadAttention forward shape of attn_mask)
    https://github.com/ArcInstitute/state/pull/213
        (mask shape corrected from [B, S, S] to one with the head count)
"""

import numpy as np

KIND = "exception"
EXPECTED = ValueError
MATCH = r"operands could not be broadcast together with shapes \(2,5,5\) \(\) \(8,5,5\)"
TAGS = ("mask-shape",)
MESSAGES = (
    r"The shape of the 3D attn_mask is torch\.Size\(\[[\d, ]+\]\), but should be \(\d+, \d+, \d+\)",
    r"Incompatible shapes: \[\d+,\d+,(\d+),(\d+)\] vs\. \[\d+,1,\1,\2\] \[Op:LogicalAnd\]",
    r"operands could not be broadcast together with shapes "
    r"\(\d+,(\d+),(\d+)\) (?:\(\) )?\(\d+,\1,\2\)",
)
SYMPTOMS = (
    "3D attention mask for MultiheadAttention has the wrong shape",
    "attn_mask per batch element in nn.MultiheadAttention",
)
HEADS = 4


def _inputs() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 5, 16))  # (N, L, E)
    blocked = np.arange(5) >= np.array([[5], [3]])  # (N, S): example 1 has 3 tokens
    return x, np.broadcast_to(blocked[:, None, :], (2, 5, 5))  # (N, L, S), True = blocked


def _scores(x: np.ndarray) -> np.ndarray:
    """Heads folded into the batch axis, example-major, as ``nn.MultiheadAttention`` does."""
    n, length, e = x.shape
    split = x.reshape(n, length, HEADS, e // HEADS).transpose(0, 2, 1, 3)  # (N, H, L, d)
    heads = split.reshape(n * HEADS, length, e // HEADS)  # (N * H, L, d)
    return heads @ heads.swapaxes(-1, -2) / 2.0


# --8<-- [start:broken]
def broken() -> np.ndarray:
    x, blocked = _inputs()
    scores = _scores(x)  # (8, 5, 5)
    return np.where(blocked, -np.inf, scores)  # (2, 5, 5) against (8, 5, 5)


# --8<-- [end:broken]


# --8<-- [start:fixed]
def fixed() -> np.ndarray:
    x, blocked = _inputs()
    scores = _scores(x)
    per_head = np.repeat(blocked, HEADS, axis=0)  # (8, 5, 5): example 0 x4, example 1 x4
    return np.where(per_head, -np.inf, scores)


# --8<-- [end:fixed]


TORCH_EXPECTED = RuntimeError
TORCH_MATCH = (
    r"The shape of the 3D attn_mask is torch\.Size\(\[2, 5, 5\]\), but should be \(8, 5, 5\)\."
)


def _mha() -> object:
    import torch

    torch.manual_seed(0)
    return torch.nn.MultiheadAttention(16, HEADS, batch_first=True).double()


def torch_broken() -> object:
    import torch

    x, blocked = (torch.from_numpy(np.ascontiguousarray(a)) for a in _inputs())
    mha: torch.nn.MultiheadAttention = _mha()  # type: ignore[assignment]
    return mha(x, x, x, attn_mask=blocked)[0]


def torch_fixed() -> object:
    import torch

    x, blocked = (torch.from_numpy(np.ascontiguousarray(a)) for a in _inputs())
    mha: torch.nn.MultiheadAttention = _mha()  # type: ignore[assignment]
    return mha(x, x, x, attn_mask=blocked.repeat_interleave(HEADS, dim=0))[0]


TF_EXPECTED = "tensorflow.errors.InvalidArgumentError"
TF_MATCH = r"Incompatible shapes: \[2,4,5,5\] vs\. \[8,1,5,5\] \[Op:LogicalAnd\]"
TF_NOTE = (
    "The mirror image: Keras `MultiHeadAttention` wants the per-example `(B, T, S)` mask "
    "(True = attend) and adds the head axis itself; the PyTorch `(B * H, T, S)` layout fails."
)


def _keras_layer() -> object:
    import tensorflow as tf

    tf.keras.utils.set_random_seed(0)
    return tf.keras.layers.MultiHeadAttention(num_heads=HEADS, key_dim=4)


def tf_broken() -> object:
    import tensorflow as tf

    x, blocked = _inputs()
    mha = _keras_layer()
    per_head = np.repeat(~blocked, HEADS, axis=0)  # (8, 5, 5), as PyTorch wants it
    return mha(tf.constant(x), tf.constant(x), attention_mask=tf.constant(per_head))  # type: ignore[operator]


def tf_fixed() -> object:
    import tensorflow as tf

    x, blocked = _inputs()
    mha = _keras_layer()
    return mha(tf.constant(x), tf.constant(x), attention_mask=tf.constant(~blocked))  # type: ignore[operator]


JAX_ABSENT = (
    "`jax.nn` has no multi-head layer that folds heads into the batch axis: "
    "`jax.nn.dot_product_attention` takes its mask as `(B, N, T, S)`, heads on their own axis."
)
