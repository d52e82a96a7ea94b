"""The layouts page's NumPy example, run by tests/test_flash_attn.py."""

import numpy as np

from refattn import attention
from refattn.compat.flash_attn import flash_attn_varlen_func, flash_attn_with_kvcache
from refattn.rotary import apply_rotary, packed_positions, rotary_tables

rng = np.random.default_rng(0)

# --8<-- [start:packed]
# Three sequences of lengths 3, 1 and 4 packed into one (total, H, D) tensor.
lengths = [3, 1, 4]
cu_seqlens = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)  # int32, as flash-attn
q, k, v = (rng.standard_normal((8, 2, 16)).astype(np.float32) for _ in range(3))
out = flash_attn_varlen_func(q, k, v, cu_seqlens, cu_seqlens, 4, 4, causal=True)  # (8, 2, 16)

# The same attention spelled with refattn's explicit mask: same sequence, and causal inside it.
segment = np.repeat(np.arange(len(lengths)), lengths)  # (8,) sequence id of each token
mask = (segment[:, None] == segment[None, :]) & np.tri(8, dtype=bool)  # (L, S)
heads_first = (q.transpose(1, 0, 2), k.transpose(1, 0, 2), v.transpose(1, 0, 2))  # (H, L, D)
same = attention(*heads_first, attend_mask=mask).transpose(1, 0, 2)
np.testing.assert_allclose(out, same, rtol=1e-5, atol=1e-6)
# --8<-- [end:packed]

# --8<-- [start:paged]
# A paged cache: 6 pages of 4 slots; sequence 0 owns pages 5, 2 and sequence 1 pages 0, 3.
k_cache = np.zeros((6, 4, 2, 16), np.float32)  # (num_blocks, page_block_size, Hkv, D)
v_cache = np.zeros_like(k_cache)
block_table = np.array([[5, 2], [0, 3]], np.int32)  # (B, max_num_blocks_per_seq)
q_new, k_new, v_new = (rng.standard_normal((2, 3, 2, 16)).astype(np.float32) for _ in range(3))
seqlens = np.array([0, 0], np.int32)  # tokens already cached per sequence
new = {"k": k_new, "v": v_new, "cache_seqlens": seqlens, "block_table": block_table}
out = flash_attn_with_kvcache(q_new, k_cache, v_cache, **new, causal=True)  # (2, 3, 2, 16)
# The new keys were written into the pages IN PLACE; cache_seqlens is the caller's to advance.
assert (k_cache[0, :3] == k_new[1]).all()  # sequence 1, keys 0..2 -> page 0, slots 0..2
seqlens += 3
# --8<-- [end:paged]

# --8<-- [start:rotary]
cos, sin = rotary_tables(64, 16)  # (P, R/2): angles in float64, cast to float32
x = rng.standard_normal((1, 2, 5, 32)).astype(np.float32)  # (B, H, L, D): R = 16 of D = 32
neox = apply_rotary(x, cos, sin, interleaved=False, offset=7)  # positions 7..11, GPT-NeoX
gptj = apply_rotary(x, cos, sin, interleaved=True, offset=7)  # the same, GPT-J pairs
assert (neox[..., 16:] == x[..., 16:]).all()  # features past R are not rotated
assert not np.allclose(neox, gptj)  # the conventions are not interchangeable

# A packed batch restarts positions at 0 for each sequence: 0 1 2 | 0 | 0 1 2 3
positions = packed_positions(cu_seqlens)  # cu_seqlens of the packed example above
q_rot = apply_rotary(q.swapaxes(0, 1), cos, sin, positions=positions)  # q as (H, total, D)
# --8<-- [end:rotary]
