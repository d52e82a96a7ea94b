"""Argument checks of :mod:`refattn.compat.flash_attn`, one function per argument kind.

Each raises a :mod:`refattn.errors` class naming the argument, what it got, what
flash-attn expects (quoting its C++ check where it has one) and the likely fix.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from refattn.errors import AttentionDTypeError, AttentionShapeError, AttentionValueError
from refattn.validation import as_array, real_number, see

FloatArray = npt.NDArray[np.floating]
IntArray = npt.NDArray[np.int32]


def float_array(name: str, x: object) -> FloatArray:
    """An array argument, float16, float32 or float64.

    Read by :func:`refattn.validation.as_array`: ragged lists, masked and object arrays are
    refused with named errors.
    """
    arr = as_array(name, x)
    if arr.dtype.kind != "f" or arr.dtype.itemsize > 8:
        raise AttentionDTypeError(
            f"{name} should be floating (flash-attn takes float16 or bfloat16; refattn "
            f"also float32 and float64): but got dtype {arr.dtype}. Convert with "
            f"{name}.astype(np.float32)."
        )
    return arr


# flash_api.cpp's message when an argument's dtype differs from the query's
_SAME_DTYPE = {
    "k": "query and key must have the same dtype",
    "v": "query and value must have the same dtype",
    "k_cache": "query and key must have the same dtype",
    "v_cache": "query and value must have the same dtype",
    "new k": "Key must have the same dtype as query",
    "new v": "Value must have the same dtype as query",
}


def same_dtype(q: FloatArray, x: FloatArray, name: str) -> None:
    if x.dtype != q.dtype:
        arg = name.removeprefix("new ")
        raise AttentionDTypeError(
            f"{arg} should have q's dtype {q.dtype}: but got {x.dtype}. flash-attn raises "
            f"'{_SAME_DTYPE[name]}'; cast with {arg}.astype(q.dtype)."
        )


def qkv(
    q: object, k: object, v: object, names: tuple[str, str, str]
) -> tuple[FloatArray, FloatArray, FloatArray]:
    arrays = tuple(float_array(n, x) for n, x in zip(names, (q, k, v), strict=True))
    for name, arr in zip(names[1:], arrays[1:], strict=True):
        same_dtype(arrays[0], arr, name)
    return arrays[0], arrays[1], arrays[2]


def rank(name: str, arr: npt.NDArray[np.generic], ndim: int, layout: str) -> None:
    if arr.ndim != ndim:
        raise AttentionShapeError(
            f"{name} shape should be {layout}: but got {arr.shape} ({arr.ndim} dims). "
            f"flash-attn's layout puts the sequence before the heads (BSHD); from refattn's "
            f"(B, H, L, D) use x.transpose(0, 2, 1, 3)."
        )


def stacked(name: str, arr: FloatArray, ndim: int, count: int, layout: str) -> None:
    """A packed ``qkv``/``kv`` argument: ``count`` tensors stacked on the axis after S."""
    axis = ndim - 3
    if arr.ndim != ndim or arr.shape[axis] != count:
        raise AttentionShapeError(
            f"{name} shape should be {layout}: but got {arr.shape}. Build it with "
            f"np.stack([{', '.join('qkv'[3 - count :])}], axis={axis}): the {count} tensors "
            f"are stacked on axis {axis}."
        )


def expect_shape(
    name: str, arr: npt.NDArray[np.generic], shape: tuple[int, ...], layout: str
) -> None:
    if arr.shape != tuple(shape):
        raise AttentionShapeError(
            f"{name} shape should be {tuple(int(n) for n in shape)} = {layout}: but got "
            f"{arr.shape}. flash-attn's CHECK_SHAPE raises '{name} must have shape (...)' "
            f"here; check the batch, length, head and feature axes."
        )


def heads(hq: int, hkv: int) -> None:
    if hkv == 0 or hq % hkv:
        raise AttentionShapeError(
            f"query heads Hq={hq} should be a multiple of key/value heads Hkv={hkv}: "
            f"flash-attn raises 'Number of heads in key/value must divide number of heads "
            f"in query'. Heads are axis 2 in flash-attn's (B, S, H, D) layout (axis 1 "
            f"when packed); check the axes were not swapped."
            + see("gqa_query_heads_not_a_multiple")
        )


def no_dropout(dropout_p: object) -> None:
    value = real_number("dropout_p", dropout_p, "a float, 0.0 here", "pass dropout_p=0.0")
    if value != 0.0:
        raise AttentionValueError(
            f"dropout_p should be 0.0 here: but got {dropout_p}. flash-attn draws its "
            f"dropout mask from a Philox stream on the GPU, which a reference cannot "
            f"reproduce. For dropout semantics use refattn.attention(..., dropout_p=p, "
            f"rng=np.random.default_rng(seed))."
        )


def scale(softmax_scale: object, dim: int) -> float:
    if softmax_scale is None:
        return float(dim) ** -0.5 if dim else 1.0
    fix = "pass a float, or None for D ** -0.5"
    value = real_number("softmax_scale", softmax_scale, "a float or None", fix)
    if not math.isfinite(value):
        raise AttentionValueError(
            f"softmax_scale should be finite: but got {softmax_scale!r}; {fix} (check how it "
            f"was computed, e.g. 1 / sqrt(0))."
        )
    return value


def softcap(softcap: object) -> float | None:
    fix = "pass 0.0 for no cap, or the model's cap (Gemma 2 uses 50.0)"
    value = real_number("softcap", softcap, "a float (0.0 = off)", fix)
    if math.isnan(value) or math.isinf(value):
        raise AttentionValueError(f"softcap should be finite: but got {softcap!r}; {fix}.")
    return value if value > 0 else None


def alibi(alibi_slopes: object, batch: int, hq: int) -> FloatArray | None:
    """flash-attn's slopes: float32 ``(Hq,)`` or ``(B, Hq)``, returned as ``(B, Hq)``."""
    if alibi_slopes is None:
        return None
    a = as_array("alibi_slopes", alibi_slopes)
    if a.dtype != np.float32:
        raise AttentionDTypeError(
            f"alibi_slopes should be float32: but got dtype {a.dtype}. flash-attn raises "
            f"'ALiBi slopes must have dtype fp32'; cast with alibi_slopes.astype(np.float32)."
        )
    if a.shape not in ((hq,), (batch, hq)):
        raise AttentionShapeError(
            f"alibi_slopes shape should be (Hq,) = ({hq},) or (B, Hq) = ({batch}, {hq}): but "
            f"got {a.shape}. Pass one slope per query head, optionally per sequence, e.g. "
            f"2 ** (-8 * (h + 1) / Hq) for h in range(Hq)."
        )
    if not np.isfinite(a).all():
        bad = a[~np.isfinite(a)].flat[0]
        raise AttentionValueError(
            f"alibi_slopes should be finite: but got {bad!r} in alibi_slopes of shape "
            f"{a.shape}; a NaN or infinite slope makes the logits NaN or -inf. Check how "
            f"the slopes were computed (e.g. 2 ** -x with x from a division by zero)."
        )
    return np.broadcast_to(a, (batch, hq))


# the message flash_api.cpp's TORCH_CHECK gives for a wrong dtype (it names some arguments
# by their C++ names)
_FLASH_DTYPE_MESSAGES = {
    "cu_seqlens_q": "cu_seqlens_q must have dtype int32",
    "cu_seqlens_k": "cu_seqlens_k must have dtype int32",
    "cache_seqlens": "seqlens_k must have dtype int32",
    "cache_leftpad": "leftpad_k must have dtype int32",
    "cache_batch_idx": "cache_batch_idx must have dtype int32",
    "block_table": "block_table must have dtype torch.int32",
}


def int32(name: str, x: object, shape: tuple[int, ...] | None) -> IntArray:
    arr = as_array(name, x)
    if arr.dtype != np.int32:
        what = f"flash-attn raises RuntimeError '{_FLASH_DTYPE_MESSAGES[name]}'"
        raise AttentionDTypeError(
            f"{name} should have dtype int32: but got {arr.dtype}; {what}. Convert with "
            f"np.asarray({name}, dtype=np.int32) (torch: {name}.to(torch.int32))."
        )
    if shape is not None and arr.shape != shape:
        raise AttentionShapeError(
            f"{name} shape should be {shape}: but got {arr.shape}. Pass one entry per "
            f"sequence of q (q.shape[0] = {shape[0] if shape else 0})."
        )
    return arr


def cu_seqlens(name: str, x: object, limit: int | None, limit_name: str) -> IntArray:
    cu = int32(name, x, None)
    if cu.ndim != 1 or cu.shape[0] < 2:
        raise AttentionShapeError(
            f"{name} shape should be (B + 1,) with B >= 1: but got {cu.shape}. It holds the "
            f"offsets of the sequences in the packed tensor, starting with 0, e.g. "
            f"np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32). flash-attn "
            f"raises 'batch size must be positive' for fewer than 2 entries."
        )
    if cu[0] != 0:
        raise AttentionValueError(
            f"{name}[0] should be 0: but got {int(cu[0])}. cu_seqlens are cumulative "
            f"offsets and start at 0; prepend the 0 (np.concatenate([[0], np.cumsum(lens)])). "
            f"flash-attn does not check this and reads sequence 0 from the wrong rows."
            + see("cu_seqlens_without_leading_zero")
        )
    steps = np.diff(cu.astype(np.int64))
    if (steps < 0).any():
        b = int(np.flatnonzero(steps < 0)[0])
        raise AttentionValueError(
            f"{name} should be non-decreasing: but got {name}[{b}]={int(cu[b])} > "
            f"{name}[{b + 1}]={int(cu[b + 1])}. It holds cumulative offsets: pass "
            f"np.cumsum(lengths), not the lengths themselves."
        )
    if limit is not None and cu[-1] > limit:
        raise AttentionValueError(
            f"{name}[-1] should be <= {limit_name} = {limit}: but got {int(cu[-1])}. The "
            f"sequences end past the packed tensor; flash-attn does not check and reads out "
            f"of bounds. Check the offsets were computed from the same batch as the tensor."
        )
    return cu


def max_seqlen(name: str, value: object, lengths: npt.NDArray[np.int32], what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise AttentionValueError(
            f"{name} should be an int: but got {value!r} of type {type(value).__name__}. "
            f"Pass an upper bound of the lengths, e.g. int(np.diff(cu_seqlens).max())."
        )
    longest = int(lengths.max()) if lengths.size else 0
    if int(value) < longest:
        raise AttentionValueError(
            f"{name} should be >= the longest {what} sequence ({longest}): but got {value}. "
            f"flash-attn uses it as an upper bound to size its grid and rewrite windows; "
            f"too small can leave rows uncomputed. Pass int(np.diff(cu_seqlens).max())."
        )
    return int(value)


def block_table(
    x: object, batch: int, num_blocks: int, page: int, lengths: npt.NDArray[np.integer]
) -> IntArray:
    """Check the pages each sequence reads (positions ``< lengths[b]``) exist."""
    table = int32("block_table", x, None)
    if table.ndim != 2 or table.shape[0] != batch:
        raise AttentionShapeError(
            f"block_table shape should be (B, max_num_blocks_per_seq) with B={batch}: but got "
            f"{table.shape}. Pass one row of page indices per sequence."
        )
    room = table.shape[1] * page
    for b in range(batch):
        length = int(lengths[b])
        if length > room:
            raise AttentionValueError(
                f"sequence {b}'s keys should fit its block_table row of {table.shape[1]} "
                f"pages of {page} = {room} slots: but got {length} keys. flash-attn raises "
                f"'Paged KV cache: max(seqlens_k) ... exceeds the capacity addressable by "
                f"block_table' (or reads past the table). Allocate more columns."
            )
        used = table[b, : -(-length // page)]
        if used.size and (used.min() < 0 or used.max() >= num_blocks):
            raise AttentionValueError(
                f"block_table[{b}] should hold page indices in [0, num_blocks) = "
                f"[0, {num_blocks}) for the {used.size} pages sequence {b} reads: but got "
                f"{used.tolist()}. flash-attn does not check and reads outside the cache. "
                f"Only the first ceil(length / page_block_size) entries of a row are read."
            )
    return table


def cache(
    name: str, x: object, dtype: np.dtype[np.floating], dim: int, *, writable: bool
) -> FloatArray:
    arr = float_array(name, x)
    # in-place writes must reach the caller's memory: an ndarray, or an object whose array
    # view is its own storage (a CPU torch tensor); a list would be converted to a copy
    if writable and not (isinstance(x, np.ndarray) or np.may_share_memory(arr, np.asarray(x))):
        raise AttentionDTypeError(
            f"{name} should be a numpy.ndarray (or a CPU torch tensor) when k and v are "
            f"given: but got {type(x).__name__}, which converts to a copy. New keys are "
            f"written into the cache in place, as flash-attn does: pass an array the caller "
            f"keeps, e.g. np.zeros((B, S_cache, Hkv, D), q.dtype)."
        )
    if arr.dtype != dtype:
        raise AttentionDTypeError(
            f"{name} should have q's dtype {dtype}: but got {arr.dtype}. flash-attn raises "
            f"'{_SAME_DTYPE[name]}'; build the cache in q's dtype (np.zeros(..., q.dtype))."
        )
    rank(name, arr, 4, "(B_cache, S_cache, Hkv, D) or (num_blocks, page_block_size, Hkv, D)")
    if arr.shape[3] != dim:
        raise AttentionShapeError(
            f"{name} feature size should equal q's D={dim}: but got shape {arr.shape}. Check "
            f"the cache is (..., Hkv, D) in flash-attn's layout, heads before features."
        )
    if writable and not arr.flags.writeable:
        raise AttentionValueError(
            f"{name} should be writable: but got a read-only array; new keys and values are "
            f"written into it in place. Pass {name}.copy()."
        )
    return arr


def rotary_tables(
    cos: object,
    sin: object,
    dtype: np.dtype[np.floating],
    dim: int,
    capacity: int,
    knew: FloatArray | None,
) -> tuple[FloatArray, FloatArray]:
    if cos is None or sin is None:
        given = "rotary_cos" if sin is None else "rotary_sin"
        raise AttentionValueError(
            f"rotary_cos and rotary_sin should be given together: but got only {given}. "
            f"flash-attn raises 'If rotary cos is provided, rotary sin must also be "
            f"provided'; pass both tables, or neither for no rotary."
        )
    if knew is None:
        raise AttentionValueError(
            "rotary_cos/rotary_sin should come with new keys k and v: but got k=None. "
            "flash-attn raises 'If rotary cos/sin are provided, new key / value to be "
            "appended to KV cache must also be provided' (the cache holds keys already "
            "rotated); pass k and v, or rotate q yourself with refattn.rotary.apply_rotary."
        )
    c, s = float_array("rotary_cos", cos), float_array("rotary_sin", sin)
    if c.dtype != dtype or s.dtype != dtype:
        raise AttentionDTypeError(
            f"rotary_cos and rotary_sin should have q's dtype {dtype}: but got {c.dtype} and "
            f"{s.dtype}. flash-attn raises 'rotary_cos must have the same dtype as query'; "
            f"cast them with .astype(q.dtype)."
        )
    if c.ndim != 2 or c.shape != s.shape:
        raise AttentionShapeError(
            f"rotary_cos and rotary_sin should both be (P, R/2): but got {c.shape} and "
            f"{s.shape}. Pass tables cos(p * theta_i), sin(p * theta_i) with one row per "
            f"position p and one column per rotated pair i (refattn.rotary builds them)."
        )
    rotary_dim = 2 * c.shape[1]
    if rotary_dim > dim or rotary_dim % 16:
        raise AttentionShapeError(
            f"rotary dim R = 2 * rotary_cos.shape[1] should be a multiple of 16 and <= D = "
            f"{dim}: but got R = {rotary_dim}. flash-attn raises 'Only rotary dimensions "
            f"divisible by 16 are currently supported' / 'rotary_dim must be <= headdim'. "
            f"Check the tables are (P, R/2), not (P, R)."
        )
    if c.shape[0] < capacity:
        raise AttentionShapeError(
            f"rotary_cos should have at least as many positions as the cache ({capacity}): "
            f"but got {c.shape[0]}. flash-attn raises 'cos/sin seqlen must be at least the "
            f"seqlen of KV cache'; build the tables for the cache's capacity."
            + see("position_table_too_short")
        )
    return c, s


def positions_fit(name: str, positions: npt.NDArray[np.integer], table: int) -> None:
    if positions.size and positions.max() >= table:
        raise AttentionValueError(
            f"rotary positions of {name} should be below the {table} rows of the cos/sin "
            f"tables: but got positions up to {int(positions.max())}, past which flash-attn "
            f"would read. Queries are rotated at cache_seqlens[b] + i; make the tables "
            f"longer or Sq shorter." + see("position_table_too_short")
        )


def _overlap(a: npt.NDArray[np.generic], b: npt.NDArray[np.generic]) -> bool:
    """Whether two arrays share memory; False when numpy gives up."""
    try:
        return bool(np.shares_memory(a, b))  # exact: interleaved views do not overlap
    except np.exceptions.TooHardError:  # pragma: no cover - exotic strides
        return False


def no_aliasing(caches: dict[str, FloatArray], inputs: dict[str, FloatArray]) -> None:
    """Refuse caches that overlap each other or an input, before anything is written.

    New keys and values are written into ``k_cache``/``v_cache`` in place: if the two
    caches share memory the values overwrite the keys, and if ``q``, ``k`` or ``v`` is a
    view of a cache it changes under the call; both give a silently wrong result.
    """
    (k_name, k_arr), (v_name, v_arr) = caches.items()
    if _overlap(k_arr, v_arr):
        raise AttentionValueError(
            f"{v_name} should not share memory with {k_name} when k and v are given: but got "
            f"overlapping arrays (the same array passed twice?). The new values would "
            f"overwrite the new keys; pass two separate caches, e.g. v_cache = "
            f"np.zeros_like(k_cache)."
        )
    for cache_name, cache_arr in caches.items():
        for name, arr in inputs.items():
            if _overlap(cache_arr, arr):
                raise AttentionValueError(
                    f"{name} should not share memory with {cache_name} when new keys are "
                    f"written: but got a view of it. The in-place write would change {name} "
                    f"during the call; pass a copy, {name}.copy()."
                )


def paged_writes(
    table: IntArray,
    page: int,
    seqlens: npt.NDArray[np.integer],
    lens_k: npt.NDArray[np.integer],
) -> None:
    """Refuse a paged write that lands on a slot another sequence writes or reads.

    Sequence ``b`` writes positions ``seqlens[b] .. lens_k[b] - 1`` and reads ``0 ..
    lens_k[b] - 1``. flash-attn runs the sequences in parallel, so a slot written by one and
    read or written by another gets a result that depends on scheduling. Pages shared only
    for reading (a common prompt prefix) are fine.
    """
    owner: dict[int, int] = {}
    for b in range(table.shape[0]):
        positions = np.arange(int(seqlens[b]), int(lens_k[b]))
        for flat in table[b, positions // page].astype(np.int64) * page + positions % page:
            owner.setdefault(int(flat), b)
            if owner[int(flat)] != b:
                raise AttentionValueError(
                    f"block_table should give each sequence its own slots for the new keys: "
                    f"but got sequences {owner[int(flat)]} and {b} both writing page "
                    f"{int(flat) // page}, slot {int(flat) % page}. flash-attn writes them in "
                    f"parallel, so which value lands is a race; give each sequence its own "
                    f"pages for the positions it appends (share only full prefix pages)."
                )
    for b in range(table.shape[0]):
        positions = np.arange(int(lens_k[b]))
        for flat in table[b, positions // page].astype(np.int64) * page + positions % page:
            writer = owner.get(int(flat), b)
            if writer != b:
                raise AttentionValueError(
                    f"block_table should not let sequence {b} read a slot sequence {writer} "
                    f"writes: but got page {int(flat) // page}, slot {int(flat) % page} in "
                    f"both. flash-attn runs the sequences in parallel, so sequence {b} reads "
                    f"either the old or the new key; give sequence {writer} its own page "
                    f"for the positions it appends."
                )
