"""A rolling KV cache: the new query rotated at the cache length, its keys at their old positions.

What happens:
    No error, wrong weights. A sliding cache keeps the last 4 tokens (6..9) and drops the
    rest; their keys were stored *after* rotary embedding, at positions 6..9. The next token
    (position 10) is rotated at ``len(cache) = 4``, as if positions had been re-assigned
    inside the cache, but the cached keys were not re-rotated: the query now sits 2..5
    positions *before* keys it should follow by 1..4, and the weights differ from the
    uncached model by up to 0.13. Rotating the query at 10 gives the right weights, and so
    would re-rotating the kept keys at 0..3 with the query at 4 (StreamingLLM's way):
    rotary attention only sees distances.

Why:
    Rotary keys carry their position. A cache evicting tokens must keep queries and keys in
    one frame: absolute positions for both (post-rotary cache), or cache-relative positions
    for both (pre-rotary cache, re-rotated at every step). Mixing the two shifts every
    distance. StreamingLLM also keeps the first tokens ("attention sinks") when evicting;
    that changes quality, not this arithmetic.

Fix:
    Track the absolute position of the next token separately from the cache length
    (``cache_position``), or store keys before rotation and rotate the whole window at
    every step with positions ``0 .. len(cache)``.

Sources:
    https://github.com/mit-han-lab/streaming-llm/issues/53
        (positions within the cache: keys cached before the rotary transformation)
    https://github.com/mit-han-lab/streaming-llm/issues/73
        (re-assigning positions in a rolling KV cache with attention sinks)
    https://github.com/huggingface/transformers/issues/35350
        (SinkCache over post-RoPE keys: confused positions during inference)
    https://github.com/awslabs/keys_values/issues/140
        (evicting KV cache corrupts generation; shown via RoPE relativity)
    https://github.com/MemTensor/MemOS/issues/2315
        (post-RoPE cache fragments concatenated without re-rotating them to their new
        positions)
"""

import numpy as np

from refattn import attention
from refattn.checks import check_close
from refattn.errors import CheckFailure

from ._common import softmax
from ._rope import inverse_frequencies, rotate_complex, rotate_half_split

KIND = "silent"
EXPECTED = CheckFailure
MATCH = r"weights differs from the reference"
TAGS = ("kv-cache", "positions")
SYMPTOMS = (
    "generation degrades once the sliding window cache is full",
    "sink cache or rolling cache gives garbage after eviction",
    "position ids reset to the cache length",
)
KEPT = np.arange(6, 10)  # absolute positions of the tokens still in the cache
NEW = 10  # absolute position of the token being decoded
D = 32  # head size


def _inputs() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    q = rng.standard_normal((1, 1, 1, D))  # (B, H, 1, D): the new token
    k = rng.standard_normal((1, 1, 5, D))  # (B, H, 5, D): 4 kept tokens + the new one
    return q, k


def _rot(x: np.ndarray, positions: np.ndarray) -> np.ndarray:
    angles = np.asarray(positions)[:, None] * inverse_frequencies(D)
    return rotate_half_split(x, np.cos(angles), np.sin(angles))


def _cache() -> np.ndarray:
    """Keys of tokens 6..9 as the cache holds them: rotated at their absolute positions."""
    _, k = _inputs()
    return _rot(k[..., :4, :], KEPT)


# --8<-- [start:broken]
def broken() -> np.ndarray:
    q, k = _inputs()
    cached = _cache()  # rotated at 6..9
    position = cached.shape[-2]  # 4: the cache length, not the token's position
    q_rot, k_new = _rot(q, np.array([position])), _rot(k[..., 4:, :], np.array([position]))
    keys = np.concatenate([cached, k_new], axis=-2)
    return softmax(q_rot @ keys.swapaxes(-1, -2) / np.sqrt(D))


# --8<-- [end:broken]


# --8<-- [start:fixed]
def fixed() -> np.ndarray:
    q, k = _inputs()
    cached = _cache()
    position = NEW  # tracked apart from the cache length
    q_rot, k_new = _rot(q, np.array([position])), _rot(k[..., 4:, :], np.array([position]))
    keys = np.concatenate([cached, k_new], axis=-2)
    return softmax(q_rot @ keys.swapaxes(-1, -2) / np.sqrt(D))


# --8<-- [end:fixed]


def reference() -> np.ndarray:
    q, k = _inputs()
    q_rot = rotate_complex(q, np.array([NEW]))
    k_rot = rotate_complex(k, np.append(KEPT, NEW))
    weights = attention(q_rot, k_rot, k_rot, return_weights=True).weights
    assert weights is not None
    return weights


def detect(weights: np.ndarray) -> None:
    check_close(weights, reference(), name="weights")


TORCH_KIND = "silent"
TORCH_EXPECTED = CheckFailure
TORCH_MATCH = MATCH


def _torch(position: int) -> object:
    import torch

    def cat(parts: list[torch.Tensor]) -> torch.Tensor:
        return torch.cat(parts, dim=-1)

    def rot(x: torch.Tensor, positions: list[int]) -> torch.Tensor:
        inv_freq = torch.from_numpy(inverse_frequencies(D))
        angles = torch.outer(torch.tensor(positions, dtype=torch.float64), inv_freq)
        return rotate_half_split(x, angles.cos(), angles.sin(), cat)

    q, k = (torch.from_numpy(a) for a in _inputs())
    cached = rot(k[..., :4, :], KEPT.tolist())
    keys = torch.cat([cached, rot(k[..., 4:, :], [position])], dim=-2)
    return torch.softmax(rot(q, [position]) @ keys.transpose(-1, -2) / D**0.5, dim=-1)


def torch_broken() -> object:
    return _torch(position=len(KEPT))  # cache length


def torch_fixed() -> object:
    return _torch(position=NEW)


JAX_KIND = "silent"
JAX_EXPECTED = CheckFailure
JAX_MATCH = MATCH


def _jax(position: int) -> object:
    import jax
    import jax.numpy as jnp

    def cat(parts: list[jax.Array]) -> jax.Array:
        return jnp.concatenate(parts, axis=-1)

    def rot(x: jax.Array, positions: list[int]) -> jax.Array:
        angles = jnp.outer(jnp.asarray(positions), jnp.asarray(inverse_frequencies(D)))
        return rotate_half_split(x, jnp.cos(angles), jnp.sin(angles), cat)

    q, k = (jnp.asarray(a) for a in _inputs())
    cached = rot(k[..., :4, :], KEPT.tolist())
    keys = jnp.concatenate([cached, rot(k[..., 4:, :], [position])], axis=-2)
    return jax.nn.softmax(rot(q, [position]) @ keys.swapaxes(-1, -2) / D**0.5, axis=-1)


def jax_broken() -> object:
    return _jax(position=len(KEPT))


def jax_fixed() -> object:
    return _jax(position=NEW)
