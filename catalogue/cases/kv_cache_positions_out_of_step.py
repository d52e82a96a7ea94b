"""Decoding with the new token's position restarted at zero.

What happens:
    No error. Each decoding step adds position 0's embedding to the new token instead of
    position ``len(cache)``, so the step's output differs from running the whole sequence
    at once: the model generates from a sequence whose positions repeat. The same step
    written with ``torch``, ``jax.numpy`` or ``tf`` runs just as quietly.

Why:
    Without a cache the positions of a sequence are ``arange(L)``. With a cache the step
    only sees the one new token, and ``arange(1)`` is ``[0]``: the offset of the tokens
    already in the cache (``past_key_values_length`` in transformers) was dropped.

Fix:
    Offset the positions by the cache length: ``positions = arange(len(cache), len(cache)
    + L_new)``. A decode step must equal the last row of the full causal forward pass.
"""

from typing import Any

import numpy as np

from refattn import attention
from refattn.checks import check_close
from refattn.errors import CheckFailure

from ._common import softmax

KIND = "silent"
EXPECTED = CheckFailure
MATCH = r"decode step differs from the reference"
TAGS = ("kv-cache",)
MESSAGES = ()
SYMPTOMS = (
    "generation with kv cache differs from generation without cache",
    "model repeats itself when using past_key_values",
    "rotary positions wrong during cached decoding",
)


def _inputs() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    tokens = rng.standard_normal((6, 4))  # (L, E): 5 cached tokens and the new one
    positions = rng.standard_normal((16, 4))  # (max_len, E): learned position table
    return tokens, positions


def _step(tokens: np.ndarray, positions: np.ndarray, new_position: int) -> np.ndarray:
    cache = tokens[:-1] + positions[: len(tokens) - 1]  # keys/values cached earlier
    new = tokens[-1:] + positions[new_position]  # (1, E)
    keys = np.concatenate([cache, new])
    return softmax(new @ keys.T / np.sqrt(4)) @ keys


# --8<-- [start:broken]
def broken() -> np.ndarray:
    tokens, positions = _inputs()
    new_position = np.arange(1)[0]  # positions of the step's one token: restarts at 0
    return _step(tokens, positions, new_position)


# --8<-- [end:broken]


# --8<-- [start:fixed]
def fixed() -> np.ndarray:
    tokens, positions = _inputs()
    cache_length = len(tokens) - 1
    new_position = np.arange(cache_length, cache_length + 1)[0]  # offset by the cache
    return _step(tokens, positions, new_position)


# --8<-- [end:fixed]


def reference() -> np.ndarray:
    tokens, positions = _inputs()
    x = (tokens + positions[: len(tokens)])[None]  # the whole sequence at once
    return attention(x, x, x, causal="top_left")[0, -1:]


def detect(output: np.ndarray) -> None:
    check_close(output, reference(), name="decode step")


TORCH_KIND = "silent"
TORCH_EXPECTED = CheckFailure
TORCH_MATCH = MATCH


def _torch_step(new_position: Any) -> object:
    import torch

    tokens, positions = (torch.from_numpy(a) for a in _inputs())
    cache = tokens[:-1] + positions[: len(tokens) - 1]  # keys/values cached earlier
    new = tokens[-1:] + positions[new_position]  # (1, E)
    keys = torch.cat([cache, new])
    return torch.softmax(new @ keys.T / 2.0, dim=-1) @ keys


def torch_broken() -> object:
    import torch

    new_position = torch.arange(1)  # positions of the step's one token: restarts at 0
    return _torch_step(new_position)


def torch_fixed() -> object:
    import torch

    cache_length = len(_inputs()[0]) - 1
    new_position = torch.arange(cache_length, cache_length + 1)  # offset by the cache
    return _torch_step(new_position)


JAX_KIND = "silent"
JAX_EXPECTED = CheckFailure
JAX_MATCH = MATCH


def _jax_step(new_position: Any) -> object:
    import jax
    import jax.numpy as jnp

    tokens, positions = (jnp.asarray(a) for a in _inputs())
    cache = tokens[:-1] + positions[: len(tokens) - 1]
    new = tokens[-1:] + positions[new_position]  # (1, E)
    keys = jnp.concatenate([cache, new])
    return jax.nn.softmax(new @ keys.T / 2.0, axis=-1) @ keys


def jax_broken() -> object:
    import jax.numpy as jnp

    return _jax_step(jnp.arange(1))  # restarts at 0


def jax_fixed() -> object:
    import jax.numpy as jnp

    cache_length = len(_inputs()[0]) - 1
    return _jax_step(jnp.arange(cache_length, cache_length + 1))


TF_KIND = "silent"
TF_EXPECTED = CheckFailure
TF_MATCH = MATCH


def _tf_step(new_position: Any) -> object:
    import tensorflow as tf

    tokens, positions = (tf.constant(a) for a in _inputs())
    cache = tokens[:-1] + positions[: len(tokens) - 1]
    new = tokens[-1:] + tf.gather(positions, new_position)  # (1, E)
    keys = tf.concat([cache, new], axis=0)
    weights = tf.nn.softmax(tf.matmul(new, keys, transpose_b=True) / 2.0, axis=-1)
    return tf.matmul(weights, keys)


def tf_broken() -> object:
    import tensorflow as tf

    return _tf_step(tf.range(1))  # restarts at 0


def tf_fixed() -> object:
    import tensorflow as tf

    cache_length = len(_inputs()[0]) - 1
    return _tf_step(tf.range(cache_length, cache_length + 1))
