"""A top-left causal mask used while decoding with a KV cache.

What happens:
    No error. With 2 new queries against 6 cached-plus-new keys, ``np.tril(np.ones((L,
    S)))`` lets the first new token see only key 0 and the second keys 0 and 1: the newest
    tokens ignore almost all of the context. PyTorch's SDPA ``is_causal=True`` is aligned
    the same way (top-left) when ``L != S``.

Why:
    ``tril`` anchors the diagonal at the top-left corner: query ``i`` sees keys ``0 .. i``.
    With a cache, the queries are the *last* ``L`` positions, so query ``i`` is position
    ``S - L + i`` and must see keys ``0 .. S - L + i``: the diagonal anchored bottom-right.

Fix:
    ``np.tril(np.ones((L, S), bool), k=S - L)`` (flash-attn's convention; refattn:
    ``causal="bottom_right"``). For a single new token, no mask at all.
"""

import numpy as np

from refattn.checks import check_close
from refattn.errors import CheckFailure

from ._common import reference_weights, softmax

KIND = "silent"
EXPECTED = CheckFailure
MATCH = r"weights differs from the reference at \d+ of \d+ entries"
TAGS = ("causal-alignment", "kv-cache")
SYMPTOMS = (
    "generation with kv cache ignores the context",
    "is_causal with different query and key lengths",
)


def _inputs() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    q = rng.standard_normal((1, 2, 4))  # (B, L, D): the 2 newest positions
    k = rng.standard_normal((1, 6, 4))  # (B, S, D): 4 cached + 2 new
    return q, k


# --8<-- [start:broken]
def broken() -> np.ndarray:
    q, k = _inputs()
    length, keys = q.shape[1], k.shape[1]
    causal = np.tril(np.ones((length, keys), dtype=bool))  # top-left: query i sees 0..i
    return softmax(np.where(causal, q @ k.swapaxes(-1, -2) / np.sqrt(4), -np.inf))


# --8<-- [end:broken]


# --8<-- [start:fixed]
def fixed() -> np.ndarray:
    q, k = _inputs()
    length, keys = q.shape[1], k.shape[1]
    causal = np.tril(np.ones((length, keys), dtype=bool), k=keys - length)  # bottom-right
    return softmax(np.where(causal, q @ k.swapaxes(-1, -2) / np.sqrt(4), -np.inf))


# --8<-- [end:fixed]


def reference() -> np.ndarray:
    q, k = _inputs()
    return reference_weights(q, k, causal="bottom_right")


def detect(weights: np.ndarray) -> None:
    check_close(weights, reference(), name="weights")
