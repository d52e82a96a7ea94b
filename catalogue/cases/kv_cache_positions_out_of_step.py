"""Decoding with the new token's position restarted at zero.

What happens:
    No error. Each decoding step adds position 0's embedding to the new token instead of
    position ``len(cache)``, so the step's output differs from running the whole sequence
    at once: the model generates from a sequence whose positions repeat.

Why:
    Without a cache the positions of a sequence are ``arange(L)``. With a cache the step
    only sees the one new token, and ``arange(1)`` is ``[0]``: the offset of the tokens
    already in the cache (``past_key_values_length`` in transformers) was dropped.

Fix:
    Offset the positions by the cache length: ``positions = arange(len(cache), len(cache)
    + L_new)``. A decode step must equal the last row of the full causal forward pass.
"""

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
