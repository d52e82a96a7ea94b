"""Cross-attention context from an encoder of another width.

What happens:
    Projecting the context to keys raises ``ValueError: matmul: Input operand 1 has a
    mismatch in its core dimension 0 ... (size 512 is different from 768)`` in NumPy;
    PyTorch's ``nn.Linear`` raises ``RuntimeError: mat1 and mat2 shapes cannot be
    multiplied (14x768 and 512x64)``; JAX's ``@`` ``TypeError: dot_general requires
    contracting dimensions to have the same shape, got (768,) and (512,).``; a Keras
    ``Dense`` layer built on the decoder's width ``ValueError: Input 0 ... is incompatible
    with the layer: expected axis -1 of input shape to have value 512, but received input
    with shape (2, 7, 768)``.

Why:
    The key and value projections were built for the decoder's width (512) but receive
    the encoder's output (768 features, e.g. a BERT-base encoder). Self-attention never
    showed it, because there query and context have the same width.

Fix:
    Size the key/value projections from the context: ``(context_dim, head_dim)`` —
    ``kdim=vdim=768`` in ``nn.MultiheadAttention`` — or project the context to the model
    width first.

Sources:
    https://github.com/huggingface/transformers/issues/10779 encoder and decoder of other widths
    https://github.com/huggingface/transformers/issues/6645 pretrained encoder 512 with GPT-2 1024
"""

import numpy as np

from refattn import attention

from ._common import softmax

KIND = "exception"
EXPECTED = ValueError
MATCH = r"mismatch in its core dimension 0.*\(size 512 is different from 768\)"
TAGS = ("projection-width",)
MESSAGES = (
    r"mat1 and mat2 shapes cannot be multiplied \(\d+x\d+ and \d+x\d+\)",
    r"mismatch in its core dimension 0.*\(size \d+ is different from \d+\)",
    r"Matrix size-incompatible: In\[0\]: \[\d+,\d+\], In\[1\]: \[\d+,\d+\]",
    r"was expecting embedding dimension of \d+, but got \d+",
    r"dot_general requires contracting dimensions to have the same shape, got \(\d+,\) and",
    r"expected axis -1 of input shape to have value \d+, but received input with shape",
)
SYMPTOMS = (
    "cross attention with encoder outputs of a different hidden size",
    "encoder hidden size differs from decoder hidden size",
    "kdim and vdim needed for cross attention",
)


def _inputs() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 5, 512))  # (B, L, 512): decoder states
    context = rng.standard_normal((2, 7, 768))  # (B, S, 768): encoder outputs
    w = rng.standard_normal((3, 768, 64)) / 16  # weights for up to 768 input features
    return x, context, w


# --8<-- [start:broken]
def broken() -> np.ndarray:
    x, context, w = _inputs()
    w_q, w_k, w_v = w[:, :512]  # all three built for the decoder width
    q, k, v = x @ w_q, context @ w_k, context @ w_v
    return softmax(q @ k.swapaxes(-1, -2) / np.sqrt(64)) @ v


# --8<-- [end:broken]


# --8<-- [start:fixed]
def fixed() -> np.ndarray:
    x, context, w = _inputs()
    w_q, w_k, w_v = w[0, :512], w[1], w[2]  # keys and values sized from the context
    q, k, v = x @ w_q, context @ w_k, context @ w_v
    return softmax(q @ k.swapaxes(-1, -2) / np.sqrt(64)) @ v


# --8<-- [end:fixed]


def reference() -> np.ndarray:
    x, context, w = _inputs()
    q, k, v = x @ w[0, :512], context @ w[1], context @ w[2]
    return attention(q[:, None], k[:, None], v[:, None])[:, 0]


TORCH_EXPECTED = RuntimeError
TORCH_MATCH = r"mat1 and mat2 shapes cannot be multiplied \(14x768 and 512x64\)"


def torch_broken() -> object:
    import torch

    context = torch.randn(2, 7, 768)
    to_key = torch.nn.Linear(512, 64)
    return to_key(context)


def torch_fixed() -> object:
    import torch

    x, context, w = (torch.from_numpy(a) for a in _inputs())
    to_q = torch.nn.Linear(512, 64, bias=False, dtype=torch.float64)
    to_k = torch.nn.Linear(768, 64, bias=False, dtype=torch.float64)  # sized from the context
    to_v = torch.nn.Linear(768, 64, bias=False, dtype=torch.float64)
    with torch.no_grad():  # the case's weights, so the result can be compared
        to_q.weight.copy_(w[0, :512].T)
        to_k.weight.copy_(w[1].T)
        to_v.weight.copy_(w[2].T)
        q, k, v = to_q(x), to_k(context), to_v(context)
        return torch.nn.functional.scaled_dot_product_attention(q, k, v)


JAX_EXPECTED = TypeError
JAX_MATCH = r"dot_general requires contracting dimensions to have the same shape, got \(768,\)"


def jax_broken() -> object:
    import jax.numpy as jnp

    _, context, w = (jnp.asarray(a) for a in _inputs())
    w_k = w[1, :512]  # built for the decoder width
    return context @ w_k


TF_EXPECTED = ValueError
TF_MATCH = r"expected axis -1 of input shape to have value 512, but received input with shape"


def tf_broken() -> object:
    import tensorflow as tf

    x, context, _ = (tf.constant(a, tf.float32) for a in _inputs())
    to_key = tf.keras.layers.Dense(64, name="to_key")
    to_key(x)  # built on the decoder states: 512 input features
    return to_key(context)  # the encoder's 768
