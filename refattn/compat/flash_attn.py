r"""flash-attn 2 semantics on NumPy arrays: the forward functions of its Python interface.

``flash_attn_func``, ``flash_attn_varlen_func`` and ``flash_attn_with_kvcache``, and the
packed-argument variants ``flash_attn_qkvpacked_func``, ``flash_attn_kvpacked_func``,
``flash_attn_varlen_qkvpacked_func`` and ``flash_attn_varlen_kvpacked_func`` (the same
calls on ``qkv``/``kv`` stacked along one axis). Forward only: no gradients.

Import as ``from refattn.compat.flash_attn import flash_attn_func``; it needs neither a GPU
nor flash-attn. Same names, argument order and defaults as ``flash_attn/flash_attn_interface.py``
of flash-attn 2 (Dao-AILab/flash-attention); layouts are flash-attn's ``(B, S, H, D)``
(BSHD) and packed ``(total, H, D)``.

**What was read.** The Python docstrings in ``flash_attn/flash_attn_interface.py``; the
argument rewriting in ``csrc/flash_attn/flash_api.cpp`` (``mha_fwd``, ``mha_varlen_fwd``,
``mha_fwd_kvcache``, ``set_params_fprop``); the kernel's masking, LSE and early exit in
``csrc/flash_attn/src/flash_fwd_kernel.h``, ``mask.h``, ``softmax.h`` and
``block_info.h``; rotary in ``csrc/flash_attn/src/rotary.h`` and
``flash_attn/layers/rotary.py``; the test oracle ``attention_ref`` and
``test_flash_attn_kvcache`` in ``tests/test_flash_attn.py``. What the kernel really
computes, where it differs from the docstrings, is followed and listed here:

1. **Window rewriting** (``flash_api.cpp``). Let ``Sk`` be the key length the C++ entry
   point sees (``flash_attn_func``: ``k.shape[1]``; varlen: ``max_seqlen_k``;
   ``with_kvcache``: the cache capacity, ``k_cache.shape[1]`` or
   ``max_num_blocks_per_seq * page_block_size``). Then, in this order (varlen and
   ``with_kvcache`` do step 1 after 3): (1) a side ``>= Sk`` becomes ``-1``; (2)
   ``causal`` is dropped when the query length is 1 and there is no ALiBi (it changes
   nothing then); (3) ``causal`` sets the right side to 0; (4) ``set_params_fprop``: causal is
   ``left < 0 and right == 0``; otherwise a single negative side becomes ``Sk``.
   Step 4 means ``window_size=(w, -1)`` is **not** "unbounded on the right": the right
   side becomes ``Sk``, which removes keys when the query length exceeds ``Sk + 1``
   (query ``i`` then sees no key right of ``i + 2 Sk - Sq``). Step 1 means a right side
   ``>= Sk`` **is** unbounded, though the documented rule would bound it when
   ``Sq > Sk``. Both are reproduced.
2. **Mask** (``mask.h``), per sequence with its own lengths ``sq``, ``sk``: query ``i``
   sees key ``j`` iff ``i + sk - sq - left <= j <= i + sk - sq + right`` (a causal mask:
   only the right bound with ``right = 0``): bottom-right aligned, per sequence.
3. **A row with no allowed key** (``softmax.h`` ``normalize_softmax_lse``, and the early
   exit of ``flash_fwd_kernel.h``): output **zeros**, LSE **+inf** (not ``-inf``). A
   batch with no keys at all (``Sk == 0``) returns zeros and ``+inf`` too.
4. **ALiBi** (``mask.h``): the bias is ``-slope * |i + sk - sq - j|`` as documented; but
   when the kernel runs causal (``left < 0, right == 0`` after rewriting) it adds
   ``slope * j`` instead, which gives the same output (softmax is shift invariant per
   row) and an LSE larger by ``slope * (i + sk - sq)``. The LSE returned here is the
   kernel's.
5. **Softcap** ``> 0``: logits ``softcap * tanh(scale * q·k / softcap)``, before ALiBi and
   masks. ``softcap <= 0`` switches it off (flash-attn's "0.0 means deactivated").
6. **LSE** is float32, the natural log-sum-exp of the final logits (after scale, softcap
   and ALiBi); ``(B, Hq, Sq)`` for the padded functions, ``(Hq, total_q)`` for varlen.
7. ``return_attn_probs=True`` returns ``(out, softmax_lse, S_dmask)``; flash-attn only
   fills ``S_dmask`` when ``dropout_p > 0``, otherwise it is an **empty tensor of shape
   (0,)** in the query dtype. That is what is returned here (dropout is refused, see
   below). For the probabilities call :func:`refattn.attention` with
   ``return_weights=True``.

Deliberate differences, each raising a :mod:`refattn.errors` class instead of a silent
result:

- ``dropout_p > 0``: flash-attn draws its keep-mask from a Philox stream on the GPU that
  cannot be reproduced; use :func:`refattn.attention` with ``dropout_p`` and ``rng``.
- Index arrays (``cu_seqlens_*``, ``cache_seqlens``, ``cache_batch_idx``, ``cache_leftpad``,
  ``block_table``) must be int32, as flash-attn's C++ checks require (it raises
  ``RuntimeError: cu_seqlens_q must have dtype int32`` for int64).
- Values flash-attn does not check and then reads or writes out of bounds, or leaves
  uncomputed, are refused: non-monotone or too-long ``cu_seqlens``, ``max_seqlen_q/k``
  smaller than a sequence (they are upper bounds; ``max_seqlen_q`` sizes flash-attn's grid
  of query tiles, and a smaller one can leave rows uncomputed), block-table entries
  outside ``[0, num_blocks)``, cache lengths plus new tokens past the cache, left padding
  past the cache length, rotary tables too short for the positions used, duplicate
  ``cache_batch_idx`` with new keys (flash-attn: "might come from any of the duplicate
  indices"), and likewise a block table under which two sequences write the same paged
  slot, or one reads a slot another writes (pages shared only for reading are accepted).
  With new keys, caches that share memory with each other or with ``q``/``k``/``v`` are
  refused too: the in-place write would corrupt them.
- Inputs may be float16, float32 or float64 (flash-attn takes float16 and bfloat16 only;
  NumPy has no bfloat16). float16 is computed in float32, like the kernel.
- flash-attn 2's CUDA kernel requires ``page_block_size % 256 == 0`` and head dims up to
  256; neither limit is imposed here (flash-attn 3 takes any page size).

Two kernel details are *not* reproduced and are documented instead: when
``flash_attn_varlen_func`` gets ``max_seqlen_q == 1`` with GQA and no window or ALiBi,
flash-attn takes a fast path that ignores ``cu_seqlens_q`` (query row ``b`` is sequence
``b``); that layout is refused here unless ``cu_seqlens_q`` is ``0, 1, ..., B``. And in
``flash_attn_with_kvcache`` the kernel copies new keys into the cache only inside the key
tiles some query tile reads (``n_block_copy_min`` in ``flash_fwd_kernel.h``), so with
more new keys than queries and a left window that does not reach back to the first of
them, those no query sees may not be written; here every new key is written.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, overload

import numpy as np
import numpy.typing as npt

from refattn.compat import _flash_checks as check
from refattn.errors import AttentionShapeError, AttentionValueError
from refattn.reference import attention
from refattn.rotary import apply_rotary
from refattn.validation import flag, see

FloatArray = npt.NDArray[np.floating]
IntArray = npt.NDArray[np.int32]

__all__ = [
    "flash_attn_func",
    "flash_attn_kvpacked_func",
    "flash_attn_qkvpacked_func",
    "flash_attn_varlen_func",
    "flash_attn_varlen_kvpacked_func",
    "flash_attn_varlen_qkvpacked_func",
    "flash_attn_with_kvcache",
]


# ----------------------------------------------------------------------------------------
# flash_attn_func
# ----------------------------------------------------------------------------------------


@overload
def flash_attn_func(
    q: npt.ArrayLike,
    k: npt.ArrayLike,
    v: npt.ArrayLike,
    dropout_p: float = ...,
    softmax_scale: float | None = ...,
    causal: bool = ...,
    window_size: tuple[int, int] = ...,
    softcap: float = ...,
    alibi_slopes: npt.ArrayLike | None = ...,
    deterministic: bool = ...,
    return_attn_probs: Literal[False] = ...,
) -> FloatArray: ...
@overload
def flash_attn_func(
    q: npt.ArrayLike,
    k: npt.ArrayLike,
    v: npt.ArrayLike,
    dropout_p: float = ...,
    softmax_scale: float | None = ...,
    causal: bool = ...,
    window_size: tuple[int, int] = ...,
    softcap: float = ...,
    alibi_slopes: npt.ArrayLike | None = ...,
    deterministic: bool = ...,
    *,
    return_attn_probs: Literal[True],
) -> tuple[FloatArray, FloatArray, FloatArray]: ...
@overload
def flash_attn_func(
    q: npt.ArrayLike,
    k: npt.ArrayLike,
    v: npt.ArrayLike,
    dropout_p: float = ...,
    softmax_scale: float | None = ...,
    causal: bool = ...,
    window_size: tuple[int, int] = ...,
    softcap: float = ...,
    alibi_slopes: npt.ArrayLike | None = ...,
    deterministic: bool = ...,
    return_attn_probs: bool = ...,
) -> FloatArray | tuple[FloatArray, FloatArray, FloatArray]: ...


def flash_attn_func(
    q: npt.ArrayLike,
    k: npt.ArrayLike,
    v: npt.ArrayLike,
    dropout_p: float = 0.0,
    softmax_scale: float | None = None,
    causal: bool = False,
    window_size: tuple[int, int] = (-1, -1),
    softcap: float = 0.0,
    alibi_slopes: npt.ArrayLike | None = None,
    deterministic: bool = False,
    return_attn_probs: bool = False,
) -> FloatArray | tuple[FloatArray, FloatArray, FloatArray]:
    """``flash_attn.flash_attn_func`` (flash-attn 2) on NumPy arrays.

    Query ``i`` of a batch entry sees keys ``i + Sk - Sq - left <= j <= i + Sk - Sq +
    right`` (bottom-right aligned; ``-1`` is an unbounded side, after the rewriting in
    this module's notes); ``causal`` is ``right = 0``. Query head ``h`` reads key/value
    head ``h // (Hq // Hkv)``. A row with no allowed key returns zeros.

    Args:
        q: ``(B, Sq, Hq, D)`` floating.
        k: ``(B, Sk, Hkv, D)``, same dtype; ``Hq`` a multiple of ``Hkv``.
        v: ``(B, Sk, Hkv, D)``, same dtype.
        dropout_p: must be 0.0 (flash-attn's dropout stream cannot be reproduced).
        softmax_scale: multiplies ``q·k``; default ``D ** -0.5``.
        causal: bottom-right aligned causal mask.
        window_size: ``(left, right)``; a negative side is unbounded.
        softcap: ``> 0`` caps logits to ``(-softcap, softcap)``; ``<= 0`` is off.
        alibi_slopes: float32 ``(Hq,)`` or ``(B, Hq)``.
        deterministic: accepted and ignored (it only concerns flash-attn's backward).
        return_attn_probs: also return ``softmax_lse`` and ``S_dmask`` (see module notes).

    Returns:
        ``out (B, Sq, Hq, D)`` in ``q``'s dtype; with ``return_attn_probs``, the tuple
        ``(out, softmax_lse (B, Hq, Sq) float32, S_dmask (0,) empty)``.

    Raises:
        AttentionShapeError: shapes flash-attn's ``CHECK_SHAPE`` rejects, head counts that
            do not divide.
        AttentionDTypeError: non-floating or mixed dtypes, ALiBi slopes not float32.
        AttentionValueError: ``dropout_p > 0``, a bad ``window_size``.

    Examples:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> q = rng.standard_normal((2, 3, 4, 8)).astype(np.float32)  # (B, Sq, Hq, D)
        >>> kv = rng.standard_normal((2, 5, 2, 8)).astype(np.float32)  # (B, Sk, Hkv, D)
        >>> out, lse, s_dmask = flash_attn_func(q, kv, kv, causal=True, return_attn_probs=True)
        >>> out.shape, lse.shape, lse.dtype, s_dmask.shape
        ((2, 3, 4, 8), (2, 4, 3), dtype('float32'), (0,))
    """
    qa, ka, va = check.qkv(q, k, v, ("q", "k", "v"))
    check.rank("q", qa, 4, "(B, Sq, Hq, D)")
    check.rank("k", ka, 4, "(B, Sk, Hkv, D)")
    check.rank("v", va, 4, "(B, Sk, Hkv, D)")
    batch, length_q, hq, dim = qa.shape
    length_k, hkv = ka.shape[1], ka.shape[2]
    check.expect_shape("k", ka, (batch, length_k, hkv, dim), "(B, Sk, Hkv, D)")
    check.expect_shape("v", va, (batch, length_k, hkv, dim), "(B, Sk, Hkv, D)")
    check.heads(hq, hkv)
    check.no_dropout(dropout_p)
    slopes = check.alibi(alibi_slopes, batch, hq)
    mask = _flash_mask(causal, window_size, length_q, length_k, slopes is not None, "fwd")
    scale = check.scale(softmax_scale, dim)
    cap = check.softcap(softcap)
    flag("deterministic", deterministic)
    flag("return_attn_probs", return_attn_probs)

    out = np.zeros(qa.shape, dtype=qa.dtype)
    lse = np.full((batch, hq, length_q), np.inf, dtype=np.float32)
    if length_q and length_k:
        o, row_lse = _attend(
            qa.transpose(0, 2, 1, 3), ka.transpose(0, 2, 1, 3), va.transpose(0, 2, 1, 3),
            mask, scale, cap, slopes,
        )  # fmt: skip
        out[...] = o.transpose(0, 2, 1, 3)
        lse[...] = row_lse
    if return_attn_probs:
        return out, lse, np.empty((0,), dtype=qa.dtype)
    return out


# ----------------------------------------------------------------------------------------
# flash_attn_varlen_func
# ----------------------------------------------------------------------------------------


@overload
def flash_attn_varlen_func(
    q: npt.ArrayLike,
    k: npt.ArrayLike,
    v: npt.ArrayLike,
    cu_seqlens_q: npt.ArrayLike,
    cu_seqlens_k: npt.ArrayLike,
    max_seqlen_q: int,
    max_seqlen_k: int,
    dropout_p: float = ...,
    softmax_scale: float | None = ...,
    causal: bool = ...,
    window_size: tuple[int, int] = ...,
    softcap: float = ...,
    alibi_slopes: npt.ArrayLike | None = ...,
    deterministic: bool = ...,
    return_attn_probs: Literal[False] = ...,
    block_table: npt.ArrayLike | None = ...,
) -> FloatArray: ...
@overload
def flash_attn_varlen_func(
    q: npt.ArrayLike,
    k: npt.ArrayLike,
    v: npt.ArrayLike,
    cu_seqlens_q: npt.ArrayLike,
    cu_seqlens_k: npt.ArrayLike,
    max_seqlen_q: int,
    max_seqlen_k: int,
    dropout_p: float = ...,
    softmax_scale: float | None = ...,
    causal: bool = ...,
    window_size: tuple[int, int] = ...,
    softcap: float = ...,
    alibi_slopes: npt.ArrayLike | None = ...,
    deterministic: bool = ...,
    *,
    return_attn_probs: Literal[True],
    block_table: npt.ArrayLike | None = ...,
) -> tuple[FloatArray, FloatArray, FloatArray]: ...
@overload
def flash_attn_varlen_func(
    q: npt.ArrayLike,
    k: npt.ArrayLike,
    v: npt.ArrayLike,
    cu_seqlens_q: npt.ArrayLike,
    cu_seqlens_k: npt.ArrayLike,
    max_seqlen_q: int,
    max_seqlen_k: int,
    dropout_p: float = ...,
    softmax_scale: float | None = ...,
    causal: bool = ...,
    window_size: tuple[int, int] = ...,
    softcap: float = ...,
    alibi_slopes: npt.ArrayLike | None = ...,
    deterministic: bool = ...,
    return_attn_probs: bool = ...,
    block_table: npt.ArrayLike | None = ...,
) -> FloatArray | tuple[FloatArray, FloatArray, FloatArray]: ...


def flash_attn_varlen_func(
    q: npt.ArrayLike,
    k: npt.ArrayLike,
    v: npt.ArrayLike,
    cu_seqlens_q: npt.ArrayLike,
    cu_seqlens_k: npt.ArrayLike,
    max_seqlen_q: int,
    max_seqlen_k: int,
    dropout_p: float = 0.0,
    softmax_scale: float | None = None,
    causal: bool = False,
    window_size: tuple[int, int] = (-1, -1),
    softcap: float = 0.0,
    alibi_slopes: npt.ArrayLike | None = None,
    deterministic: bool = False,
    return_attn_probs: bool = False,
    block_table: npt.ArrayLike | None = None,
) -> FloatArray | tuple[FloatArray, FloatArray, FloatArray]:
    """``flash_attn.flash_attn_varlen_func`` (flash-attn 2) on packed NumPy arrays.

    Sequence ``b`` owns query rows ``cu_seqlens_q[b]:cu_seqlens_q[b+1]`` and key rows
    ``cu_seqlens_k[b]:cu_seqlens_k[b+1]``; a query attends only to keys of its own
    sequence, with causal masks and windows aligned bottom-right **per sequence** (its own
    ``sq``, ``sk``). Empty sequences are allowed.

    With ``block_table`` the keys are a paged cache: sequence ``b``'s key ``p`` (``p <
    cu_seqlens_k[b+1] - cu_seqlens_k[b]``) is ``k[block_table[b, p // page], p % page]``.

    Args:
        q: ``(total_q, Hq, D)`` floating.
        k: ``(total_k, Hkv, D)``, or ``(num_blocks, page_block_size, Hkv, D)`` with
            ``block_table``.
        v: like ``k``.
        cu_seqlens_q: int32 ``(B + 1,)``, starts at 0, non-decreasing,
            ``cu_seqlens_q[-1] <= total_q``. Rows past ``cu_seqlens_q[-1]`` belong to no
            sequence: flash-attn leaves them uninitialised; here they are NaN.
        cu_seqlens_k: int32 ``(B + 1,)``, likewise (``<= total_k`` without a block table).
        max_seqlen_q: an upper bound of the query lengths (flash-attn sizes its grid
            and rewrites ``causal`` with it).
        max_seqlen_k: an upper bound of the key lengths (windows are rewritten with it).
        dropout_p: must be 0.0.
        softmax_scale: default ``D ** -0.5``.
        causal: per-sequence bottom-right causal mask.
        window_size: ``(left, right)``, negative = unbounded (see module notes).
        softcap: ``> 0`` to cap logits.
        alibi_slopes: float32 ``(Hq,)`` or ``(B, Hq)``.
        deterministic: ignored (backward only).
        return_attn_probs: also return ``softmax_lse (Hq, total_q)`` and an empty
            ``S_dmask``.
        block_table: int32 ``(B, max_num_blocks_per_seq)``, a paged key/value cache.

    Returns:
        ``out (total_q, Hq, D)``; or ``(out, softmax_lse (Hq, total_q) float32, S_dmask
        (0,))`` with ``return_attn_probs``.

    Raises:
        AttentionShapeError: wrong ranks or sizes, ``cu_seqlens`` of different lengths.
        AttentionDTypeError: index arrays that are not int32, mixed float dtypes.
        AttentionValueError: ``cu_seqlens`` not starting at 0, decreasing or past the
            tensor; maxima below a sequence's length; block-table entries out of range.

    Examples:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> cu = np.array([0, 3, 3, 7], dtype=np.int32)  # lengths 3, 0, 4
        >>> q = rng.standard_normal((7, 2, 8)).astype(np.float32)  # (total, H, D)
        >>> flash_attn_varlen_func(q, q, q, cu, cu, 4, 4, causal=True).shape
        (7, 2, 8)
    """
    qa, ka, va = check.qkv(q, k, v, ("q", "k", "v"))
    check.rank("q", qa, 3, "(total_q, Hq, D)")
    total_q, hq, dim = qa.shape
    paged = block_table is not None
    if paged:
        check.rank("k", ka, 4, "(num_blocks, page_block_size, Hkv, D) with a block_table")
        num_blocks, page, hkv = ka.shape[0], ka.shape[1], ka.shape[2]
        check.expect_shape("k", ka, (num_blocks, page, hkv, dim), "(num_blocks, page, Hkv, D)")
        check.expect_shape("v", va, ka.shape, "(num_blocks, page, Hkv, D), k's shape")
    else:
        check.rank("k", ka, 3, "(total_k, Hkv, D)")
        hkv = ka.shape[1]
        check.expect_shape("k", ka, (ka.shape[0], hkv, dim), "(total_k, Hkv, D)")
        check.expect_shape("v", va, ka.shape, "(total_k, Hkv, D), k's shape")
    check.heads(hq, hkv)
    cu_q = check.cu_seqlens("cu_seqlens_q", cu_seqlens_q, total_q, "total_q = q.shape[0]")
    limit_k = None if paged else int(ka.shape[0])
    cu_k = check.cu_seqlens("cu_seqlens_k", cu_seqlens_k, limit_k, "total_k = k.shape[0]")
    if cu_q.shape != cu_k.shape:
        raise AttentionShapeError(
            f"cu_seqlens_q and cu_seqlens_k should both have B + 1 entries: but got "
            f"{cu_q.shape[0]} and {cu_k.shape[0]}. Each sequence needs a query range and a "
            f"key range (an empty one is two equal entries). flash-attn raises "
            f"'cu_seqlens_k must have shape (batch_size + 1)'; pass offsets of the same "
            f"batch for both."
        )
    batch = cu_q.shape[0] - 1
    lens_q, lens_k = np.diff(cu_q), np.diff(cu_k)
    max_q = check.max_seqlen("max_seqlen_q", max_seqlen_q, lens_q, "query")
    max_k = check.max_seqlen("max_seqlen_k", max_seqlen_k, lens_k, "key")
    check.no_dropout(dropout_p)
    slopes = check.alibi(alibi_slopes, batch, hq)
    mask = _flash_mask(causal, window_size, max_q, max_k, slopes is not None, "varlen")
    table = None
    if paged:
        table = check.block_table(block_table, batch, ka.shape[0], ka.shape[1], lens_k)
    plain = np.array_equal(cu_q, np.arange(batch + 1)) and total_q == batch
    if mask.fast_path and hq > hkv and not plain:
        raise AttentionValueError(
            f"max_seqlen_q=1 with GQA (Hq={hq}, Hkv={hkv}), no window and no ALiBi sends "
            f"flash-attn down a fast path that ignores cu_seqlens_q and reshapes q to "
            f"(B, ...), query row b being sequence b: but cu_seqlens_q = {cu_q.tolist()} "
            f"with total_q = {total_q} is not 0, 1, ..., B with B rows. Drop the empty "
            f"sequences and padding rows, or pass max_seqlen_q=2 to take the general path."
        )
    scale = check.scale(softmax_scale, dim)
    cap = check.softcap(softcap)
    flag("deterministic", deterministic)
    flag("return_attn_probs", return_attn_probs)

    # rows past cu_seqlens_q[-1] are uninitialised in flash-attn; NaN shows a read of them
    # (with max_seqlen_k == 0, mha_varlen_fwd zeroes the whole output and fills LSE +inf)
    out = np.full(qa.shape, np.nan if max_k else 0.0, dtype=qa.dtype)
    lse = np.full((hq, total_q), np.nan if max_k else np.inf, dtype=np.float32)
    for b in range(batch):
        rows = slice(int(cu_q[b]), int(cu_q[b + 1]))
        if table is None:
            keys, values = ka[cu_k[b] : cu_k[b + 1]], va[cu_k[b] : cu_k[b + 1]]
        else:
            keys, values = _gather_paged(ka, va, table[b], int(lens_k[b]))
        o, row_lse = _attend_sequence(
            qa[rows], keys, values, mask, scale, cap, None if slopes is None else slopes[b]
        )
        out[rows], lse[:, rows] = o, row_lse
    if return_attn_probs:
        return out, lse, np.empty((0,), dtype=qa.dtype)
    return out


# ----------------------------------------------------------------------------------------
# the packed-argument variants: q, k, v stacked on one axis
# ----------------------------------------------------------------------------------------


def flash_attn_qkvpacked_func(
    qkv: npt.ArrayLike,
    dropout_p: float = 0.0,
    softmax_scale: float | None = None,
    causal: bool = False,
    window_size: tuple[int, int] = (-1, -1),
    softcap: float = 0.0,
    alibi_slopes: npt.ArrayLike | None = None,
    deterministic: bool = False,
    return_attn_probs: bool = False,
) -> FloatArray | tuple[FloatArray, FloatArray, FloatArray]:
    """``flash_attn.flash_attn_qkvpacked_func``: :func:`flash_attn_func` on ``qkv[:, :, i]``.

    Args:
        qkv: ``(B, S, 3, H, D)``: query, key and value stacked on axis 2 (no GQA).
        dropout_p: must be 0.0.
        softmax_scale: default ``D ** -0.5``.
        causal: bottom-right causal mask (here ``Sq == Sk``).
        window_size: ``(left, right)``, negative = unbounded.
        softcap: ``> 0`` to cap logits.
        alibi_slopes: float32 ``(H,)`` or ``(B, H)``.
        deterministic: ignored.
        return_attn_probs: also return ``softmax_lse`` and an empty ``S_dmask``.

    Returns:
        As :func:`flash_attn_func`: ``out (B, S, H, D)``, or the triple.

    Raises:
        AttentionShapeError: ``qkv`` not ``(B, S, 3, H, D)``; otherwise as
            :func:`flash_attn_func`.
    """
    packed = check.float_array("qkv", qkv)
    check.stacked("qkv", packed, 5, 3, "(B, S, 3, H, D)")
    return flash_attn_func(
        packed[:, :, 0], packed[:, :, 1], packed[:, :, 2], dropout_p, softmax_scale, causal,
        window_size, softcap, alibi_slopes, deterministic, return_attn_probs,
    )  # fmt: skip


def flash_attn_kvpacked_func(
    q: npt.ArrayLike,
    kv: npt.ArrayLike,
    dropout_p: float = 0.0,
    softmax_scale: float | None = None,
    causal: bool = False,
    window_size: tuple[int, int] = (-1, -1),
    softcap: float = 0.0,
    alibi_slopes: npt.ArrayLike | None = None,
    deterministic: bool = False,
    return_attn_probs: bool = False,
) -> FloatArray | tuple[FloatArray, FloatArray, FloatArray]:
    """``flash_attn.flash_attn_kvpacked_func``: :func:`flash_attn_func` on ``kv[:, :, i]``.

    Args:
        q: ``(B, Sq, Hq, D)``.
        kv: ``(B, Sk, 2, Hkv, D)``: key and value stacked on axis 2.
        dropout_p: must be 0.0.
        softmax_scale: default ``D ** -0.5``.
        causal: bottom-right causal mask.
        window_size: ``(left, right)``, negative = unbounded.
        softcap: ``> 0`` to cap logits.
        alibi_slopes: float32 ``(Hq,)`` or ``(B, Hq)``.
        deterministic: ignored.
        return_attn_probs: also return ``softmax_lse`` and an empty ``S_dmask``.

    Returns:
        As :func:`flash_attn_func`.

    Raises:
        AttentionShapeError: ``kv`` not ``(B, Sk, 2, Hkv, D)``; otherwise as
            :func:`flash_attn_func`.
    """
    packed = check.float_array("kv", kv)
    check.stacked("kv", packed, 5, 2, "(B, Sk, 2, Hkv, D)")
    return flash_attn_func(
        q, packed[:, :, 0], packed[:, :, 1], dropout_p, softmax_scale, causal, window_size,
        softcap, alibi_slopes, deterministic, return_attn_probs,
    )  # fmt: skip


def flash_attn_varlen_qkvpacked_func(
    qkv: npt.ArrayLike,
    cu_seqlens: npt.ArrayLike,
    max_seqlen: int,
    dropout_p: float = 0.0,
    softmax_scale: float | None = None,
    causal: bool = False,
    window_size: tuple[int, int] = (-1, -1),
    softcap: float = 0.0,
    alibi_slopes: npt.ArrayLike | None = None,
    deterministic: bool = False,
    return_attn_probs: bool = False,
) -> FloatArray | tuple[FloatArray, FloatArray, FloatArray]:
    """``flash_attn.flash_attn_varlen_qkvpacked_func``: varlen on ``qkv[:, i]``.

    :func:`flash_attn_varlen_func` with one ``cu_seqlens`` for queries and keys.

    Args:
        qkv: ``(total, 3, H, D)``.
        cu_seqlens: int32 ``(B + 1,)``.
        max_seqlen: an upper bound of the sequence lengths.
        dropout_p: must be 0.0.
        softmax_scale: default ``D ** -0.5``.
        causal: per-sequence causal mask.
        window_size: ``(left, right)``, negative = unbounded.
        softcap: ``> 0`` to cap logits.
        alibi_slopes: float32 ``(H,)`` or ``(B, H)``.
        deterministic: ignored.
        return_attn_probs: also return ``softmax_lse (H, total)`` and an empty ``S_dmask``.

    Returns:
        As :func:`flash_attn_varlen_func`.

    Raises:
        AttentionShapeError: ``qkv`` not ``(total, 3, H, D)``; otherwise as
            :func:`flash_attn_varlen_func`.
    """
    packed = check.float_array("qkv", qkv)
    check.stacked("qkv", packed, 4, 3, "(total, 3, H, D)")
    return flash_attn_varlen_func(
        packed[:, 0], packed[:, 1], packed[:, 2], cu_seqlens, cu_seqlens, max_seqlen,
        max_seqlen, dropout_p, softmax_scale, causal, window_size, softcap, alibi_slopes,
        deterministic, return_attn_probs,
    )  # fmt: skip


def flash_attn_varlen_kvpacked_func(
    q: npt.ArrayLike,
    kv: npt.ArrayLike,
    cu_seqlens_q: npt.ArrayLike,
    cu_seqlens_k: npt.ArrayLike,
    max_seqlen_q: int,
    max_seqlen_k: int,
    dropout_p: float = 0.0,
    softmax_scale: float | None = None,
    causal: bool = False,
    window_size: tuple[int, int] = (-1, -1),
    softcap: float = 0.0,
    alibi_slopes: npt.ArrayLike | None = None,
    deterministic: bool = False,
    return_attn_probs: bool = False,
) -> FloatArray | tuple[FloatArray, FloatArray, FloatArray]:
    """``flash_attn.flash_attn_varlen_kvpacked_func``: varlen on ``kv[:, i]``.

    :func:`flash_attn_varlen_func` with keys and values stacked in ``kv``.

    Args:
        q: ``(total_q, Hq, D)``.
        kv: ``(total_k, 2, Hkv, D)``: key and value stacked on axis 1.
        cu_seqlens_q: int32 ``(B + 1,)``.
        cu_seqlens_k: int32 ``(B + 1,)``.
        max_seqlen_q: an upper bound of the query lengths.
        max_seqlen_k: an upper bound of the key lengths.
        dropout_p: must be 0.0.
        softmax_scale: default ``D ** -0.5``.
        causal: per-sequence causal mask.
        window_size: ``(left, right)``, negative = unbounded.
        softcap: ``> 0`` to cap logits.
        alibi_slopes: float32 ``(Hq,)`` or ``(B, Hq)``.
        deterministic: ignored.
        return_attn_probs: also return ``softmax_lse`` and an empty ``S_dmask``.

    Returns:
        As :func:`flash_attn_varlen_func`.

    Raises:
        AttentionShapeError: ``kv`` not ``(total_k, 2, Hkv, D)``; otherwise as
            :func:`flash_attn_varlen_func`.
    """
    packed = check.float_array("kv", kv)
    check.stacked("kv", packed, 4, 2, "(total_k, 2, Hkv, D)")
    return flash_attn_varlen_func(
        q, packed[:, 0], packed[:, 1], cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k,
        dropout_p, softmax_scale, causal, window_size, softcap, alibi_slopes, deterministic,
        return_attn_probs,
    )  # fmt: skip


# ----------------------------------------------------------------------------------------
# flash_attn_with_kvcache
# ----------------------------------------------------------------------------------------


@overload
def flash_attn_with_kvcache(
    q: npt.ArrayLike,
    k_cache: npt.ArrayLike,
    v_cache: npt.ArrayLike,
    k: npt.ArrayLike | None = ...,
    v: npt.ArrayLike | None = ...,
    rotary_cos: npt.ArrayLike | None = ...,
    rotary_sin: npt.ArrayLike | None = ...,
    cache_seqlens: int | npt.ArrayLike | None = ...,
    cache_batch_idx: npt.ArrayLike | None = ...,
    cache_leftpad: npt.ArrayLike | None = ...,
    block_table: npt.ArrayLike | None = ...,
    softmax_scale: float | None = ...,
    causal: bool = ...,
    window_size: tuple[int, int] = ...,
    softcap: float = ...,
    rotary_interleaved: bool = ...,
    alibi_slopes: npt.ArrayLike | None = ...,
    num_splits: int = ...,
    return_softmax_lse: Literal[False] = ...,
) -> FloatArray: ...
@overload
def flash_attn_with_kvcache(
    q: npt.ArrayLike,
    k_cache: npt.ArrayLike,
    v_cache: npt.ArrayLike,
    k: npt.ArrayLike | None = ...,
    v: npt.ArrayLike | None = ...,
    rotary_cos: npt.ArrayLike | None = ...,
    rotary_sin: npt.ArrayLike | None = ...,
    cache_seqlens: int | npt.ArrayLike | None = ...,
    cache_batch_idx: npt.ArrayLike | None = ...,
    cache_leftpad: npt.ArrayLike | None = ...,
    block_table: npt.ArrayLike | None = ...,
    softmax_scale: float | None = ...,
    causal: bool = ...,
    window_size: tuple[int, int] = ...,
    softcap: float = ...,
    rotary_interleaved: bool = ...,
    alibi_slopes: npt.ArrayLike | None = ...,
    num_splits: int = ...,
    *,
    return_softmax_lse: Literal[True],
) -> tuple[FloatArray, FloatArray]: ...
@overload
def flash_attn_with_kvcache(
    q: npt.ArrayLike,
    k_cache: npt.ArrayLike,
    v_cache: npt.ArrayLike,
    k: npt.ArrayLike | None = ...,
    v: npt.ArrayLike | None = ...,
    rotary_cos: npt.ArrayLike | None = ...,
    rotary_sin: npt.ArrayLike | None = ...,
    cache_seqlens: int | npt.ArrayLike | None = ...,
    cache_batch_idx: npt.ArrayLike | None = ...,
    cache_leftpad: npt.ArrayLike | None = ...,
    block_table: npt.ArrayLike | None = ...,
    softmax_scale: float | None = ...,
    causal: bool = ...,
    window_size: tuple[int, int] = ...,
    softcap: float = ...,
    rotary_interleaved: bool = ...,
    alibi_slopes: npt.ArrayLike | None = ...,
    num_splits: int = ...,
    return_softmax_lse: bool = ...,
) -> FloatArray | tuple[FloatArray, FloatArray]: ...


def flash_attn_with_kvcache(
    q: npt.ArrayLike,
    k_cache: npt.ArrayLike,
    v_cache: npt.ArrayLike,
    k: npt.ArrayLike | None = None,
    v: npt.ArrayLike | None = None,
    rotary_cos: npt.ArrayLike | None = None,
    rotary_sin: npt.ArrayLike | None = None,
    cache_seqlens: int | npt.ArrayLike | None = None,
    cache_batch_idx: npt.ArrayLike | None = None,
    cache_leftpad: npt.ArrayLike | None = None,
    block_table: npt.ArrayLike | None = None,
    softmax_scale: float | None = None,
    causal: bool = False,
    window_size: tuple[int, int] = (-1, -1),
    softcap: float = 0.0,
    rotary_interleaved: bool = True,
    alibi_slopes: npt.ArrayLike | None = None,
    num_splits: int = 0,
    return_softmax_lse: bool = False,
) -> FloatArray | tuple[FloatArray, FloatArray]:
    """``flash_attn.flash_attn_with_kvcache`` (flash-attn 2) on NumPy arrays.

    Warning:
        **``k_cache`` and ``v_cache`` are modified in place** when ``k`` and ``v`` are
        given, exactly as flash-attn does: the new keys (after rotary) and values are
        written at positions ``cache_seqlens[b] .. cache_seqlens[b] + Snew - 1`` of
        sequence ``b``'s cache row (``cache_batch_idx[b]``, or the pages of
        ``block_table[b]``). ``cache_seqlens`` itself is **not** advanced: the caller adds
        ``Snew`` before the next step. Pass copies if the caches must stay unchanged.

    Sequence ``b`` then attends to its cache positions ``cache_leftpad[b] ..
    cache_seqlens[b] + Snew - 1`` (``sk`` keys), causal and windows aligned bottom-right
    on those keys. Without ``cache_seqlens`` every sequence uses the whole cache.

    Rotary (``rotary_cos``/``rotary_sin`` given, which needs ``k``): new key ``j`` of
    sequence ``b`` is rotated at position ``cache_seqlens[b] + j``; query ``i`` at
    ``cache_seqlens[b] + i`` when the kernel runs causal or windowed, and at
    ``cache_seqlens[b]`` for every query otherwise (as flash-attn documents and its test
    reproduces). ``rotary_interleaved=True`` pairs features ``(2i, 2i+1)`` (GPT-J),
    ``False`` pairs ``(i, i + R/2)`` (GPT-NeoX); see :mod:`refattn.rotary`.

    Args:
        q: ``(B, Sq, Hq, D)`` floating.
        k_cache: a writable ``numpy.ndarray`` of q's dtype (a CPU torch tensor works too:
            its NumPy view shares its memory), ``(B_cache, S_cache, Hkv, D)``, or
            ``(num_blocks, page_block_size, Hkv, D)`` with ``block_table``.
        v_cache: like ``k_cache``.
        k: ``(B, Snew, Hkv, D)`` new keys, or None.
        v: ``(B, Snew, Hkv, D)`` new values, given with ``k``.
        rotary_cos: ``(P, R/2)`` in q's dtype, ``R % 16 == 0``, ``R <= D``, ``P`` at least
            the cache capacity.
        rotary_sin: ``(P, R/2)``, like ``rotary_cos``.
        cache_seqlens: int, or int32 ``(B,)``: tokens already in each cache row, counted
            from position 0 (left padding included). Required with ``k``.
        cache_batch_idx: int32 ``(B,)``: the cache row of each sequence (dense cache only).
        cache_leftpad: int32 ``(B,)``: the first valid position of each cache row (dense
            cache only).
        block_table: int32 ``(B, max_num_blocks_per_seq)``: page ``n`` of sequence ``b``
            is ``k_cache[block_table[b, n]]``.
        softmax_scale: default ``D ** -0.5``.
        causal: bottom-right causal mask.
        window_size: ``(left, right)``, negative = unbounded (see module notes).
        softcap: ``> 0`` to cap logits.
        rotary_interleaved: rotary pairing, see above.
        alibi_slopes: float32 ``(Hq,)`` or ``(B, Hq)``.
        num_splits: accepted; splitting keys does not change the result beyond rounding.
        return_softmax_lse: also return ``softmax_lse (B, Hq, Sq)`` float32.

    Returns:
        ``out (B, Sq, Hq, D)`` in q's dtype, or ``(out, softmax_lse)``.

    Raises:
        AttentionShapeError: shapes that do not fit, head counts that do not divide.
        AttentionDTypeError: index arrays that are not int32, caches that are not writable
            arrays of q's dtype, mixed float dtypes.
        AttentionValueError: ``cache_seqlens + Snew`` past the cache, out-of-range block
            table or batch indices, arguments flash-attn refuses together; with new keys,
            caches that share memory with each other or with q, k or v (the in-place
            write would corrupt them).

    Examples:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> k_cache = np.zeros((1, 8, 1, 16), dtype=np.float32)  # room for 8 tokens
        >>> v_cache = np.zeros_like(k_cache)
        >>> x = rng.standard_normal((1, 3, 1, 16)).astype(np.float32)  # 3 new tokens
        >>> out = flash_attn_with_kvcache(x, k_cache, v_cache, x, x, cache_seqlens=0, causal=True)
        >>> bool((k_cache[0, :3] == x[0]).all()), bool((k_cache[0, 3:] == 0).all())
        (True, True)
    """
    qa = check.float_array("q", q)
    check.rank("q", qa, 4, "(B, Sq, Hq, D)")
    batch, length_q, hq, dim = qa.shape
    if batch == 0:
        raise AttentionShapeError(
            f"q should hold at least one sequence: but got shape {qa.shape}. flash-attn "
            f"raises 'batch size must be positive'; skip the call for an empty batch."
        )
    paged = block_table is not None
    kc = check.cache("k_cache", k_cache, qa.dtype, dim, writable=k is not None)
    vc = check.cache("v_cache", v_cache, qa.dtype, dim, writable=k is not None)
    check.expect_shape("v_cache", vc, kc.shape, "k_cache's shape")
    hkv = kc.shape[2]
    check.heads(hq, hkv)
    table = None
    if paged:
        if cache_batch_idx is not None or cache_leftpad is not None:
            which = "cache_batch_idx" if cache_batch_idx is not None else "cache_leftpad"
            raise AttentionValueError(
                f"{which} should be None with a block_table: but got both. flash-attn 2 "
                f"refuses the pair ('Paged KVcache does not support cache_batch_idx', 'We "
                f"don't support Paged KV and leftpad_k running at the same time yet'). Fold "
                f"it into the block table instead."
            )
        table = check.int32("block_table", block_table, None)
        if table.ndim != 2 or table.shape[0] != batch:
            raise AttentionShapeError(
                f"block_table should be (B, max_num_blocks_per_seq) with B={batch}: but "
                f"got shape {table.shape}. Pass one row of page indices per sequence."
            )
        capacity = table.shape[1] * kc.shape[1]
    else:
        capacity = kc.shape[1]

    knew = vnew = None
    length_new = 0
    if k is not None or v is not None:
        if k is None or v is None:
            raise AttentionValueError(
                f"k and v should be given together: but got only "
                f"{'k' if v is None else 'v'}. flash-attn raises 'If key is supplied, value "
                f"must also be passed in'; pass both, or neither to only read the cache."
            )
        knew, vnew = check.float_array("k", k), check.float_array("v", v)
        check.same_dtype(qa, knew, "new k")
        check.same_dtype(qa, vnew, "new v")
        check.rank("k", knew, 4, "(B, Snew, Hkv, D)")
        length_new = knew.shape[1]
        check.expect_shape("k", knew, (batch, length_new, hkv, dim), "(B, Snew, Hkv, D)")
        check.expect_shape("v", vnew, knew.shape, "k's shape (B, Snew, Hkv, D)")
        if cache_seqlens is None:
            raise AttentionValueError(
                "cache_seqlens should be given with new keys k (it says where they go): but "
                "got None. flash-attn raises 'If key is supplied, seqlens_k must also be "
                "passed in'; pass the number of tokens already in each cache row."
            )
        if length_q > capacity:
            raise AttentionValueError(
                f"q length should be <= the cache capacity {capacity} when k is given: but "
                f"got Sq={length_q}. flash-attn raises 'If key is supplied, it must have "
                f"seqlen <= the seqlen of the KV cache'; split q into chunks, or grow the cache."
            )

    if knew is not None and vnew is not None:
        check.no_aliasing({"k_cache": kc, "v_cache": vc}, {"q": qa, "k": knew, "v": vnew})

    if cache_seqlens is None:
        seqlens = np.full(batch, capacity, dtype=np.int64)
    elif isinstance(cache_seqlens, int | np.integer) and not isinstance(cache_seqlens, bool):
        # a Python int past int64 would overflow np.full: clip, the range check below refuses it
        seqlens = np.full(batch, min(max(int(cache_seqlens), -1), capacity + 1), dtype=np.int64)
    else:
        seqlens = check.int32("cache_seqlens", cache_seqlens, (batch,)).astype(np.int64)
    if (seqlens < 0).any() or (seqlens + length_new > capacity).any():
        b = int(np.flatnonzero((seqlens < 0) | (seqlens + length_new > capacity))[0])
        raise AttentionValueError(
            f"cache_seqlens[{b}] + Snew should lie in [0, {capacity}] (the cache capacity): "
            f"but got cache_seqlens[{b}]={_seqlen(cache_seqlens, b)} with Snew={length_new}. "
            f"flash-attn does not check this for a dense cache and writes past the row. "
            f"Grow the cache, or check cache_seqlens was advanced by Snew once per step."
            + see("kv_cache_positions_out_of_step")
        )

    rows = np.arange(batch)
    if cache_batch_idx is not None:
        rows = check.int32("cache_batch_idx", cache_batch_idx, (batch,)).astype(np.int64)
        if rows.size and (rows.min() < 0 or rows.max() >= kc.shape[0]):
            raise AttentionValueError(
                f"cache_batch_idx should lie in [0, B_cache) = [0, {kc.shape[0]}): but got "
                f"{rows.tolist()}. Each entry picks the cache row of one sequence: pass "
                f"indices of existing rows."
            )
        if knew is not None and np.unique(rows).size != rows.size:
            raise AttentionValueError(
                f"cache_batch_idx should hold distinct rows when new keys are written: but "
                f"got {rows.tolist()}. flash-attn documents that the values written 'might "
                f"come from any of the duplicate indices'. Give each sequence its own row."
            )
    elif not paged and kc.shape[0] < batch:
        raise AttentionShapeError(
            f"k_cache should have at least B={batch} rows without cache_batch_idx: but got "
            f"shape {kc.shape}. Pass cache_batch_idx to pick rows."
        )
    leftpad = np.zeros(batch, dtype=np.int64)
    if cache_leftpad is not None:
        leftpad = check.int32("cache_leftpad", cache_leftpad, (batch,)).astype(np.int64)
        if (leftpad < 0).any() or (leftpad > seqlens).any():
            raise AttentionValueError(
                f"cache_leftpad should lie in [0, cache_seqlens[b]]: but got "
                f"{leftpad.tolist()} with cache_seqlens {seqlens.tolist()}. Left padding "
                f"counts the empty slots before a row's first token, inside cache_seqlens: "
                f"pass cache_seqlens counted from position 0, padding included."
            )
    lens_k = seqlens + length_new
    if table is not None:
        table = check.block_table(table, batch, kc.shape[0], kc.shape[1], lens_k)
        if length_new:
            check.paged_writes(table, kc.shape[1], seqlens, lens_k)

    slopes = check.alibi(alibi_slopes, batch, hq)
    mask = _flash_mask(causal, window_size, length_q, capacity, slopes is not None, "kvcache")
    scale = check.scale(softmax_scale, dim)
    cap = check.softcap(softcap)
    if isinstance(num_splits, bool) or not isinstance(num_splits, int | np.integer):
        raise AttentionValueError(
            f"num_splits should be an int: but got {num_splits!r} of type "
            f"{type(num_splits).__name__}. Pass 0 to let flash-attn choose (the result does "
            f"not depend on it beyond rounding)."
        )
    interleaved = flag("rotary_interleaved", rotary_interleaved)
    flag("return_softmax_lse", return_softmax_lse)

    q_rot = qa
    if rotary_cos is not None or rotary_sin is not None:
        cos, sin = check.rotary_tables(rotary_cos, rotary_sin, qa.dtype, dim, capacity, knew)
        steps = np.arange(length_q) if (mask.causal or mask.local) else np.zeros(length_q, int)
        q_pos = seqlens[:, None] + steps[None, :]  # (B, Sq)
        k_pos = seqlens[:, None] + np.arange(length_new)[None, :]  # (B, Snew)
        check.positions_fit("q", q_pos, cos.shape[0])
        check.positions_fit("k", k_pos, cos.shape[0])
        # refattn.rotary wants (..., L, D): move the head axis in front of the sequence axis
        q_rot = apply_rotary(
            qa.swapaxes(1, 2), cos, sin, interleaved=interleaved,
            positions=q_pos[:, None, :],
        ).swapaxes(1, 2)  # fmt: skip
        assert knew is not None
        knew = apply_rotary(
            knew.swapaxes(1, 2), cos, sin, interleaved=interleaved,
            positions=k_pos[:, None, :],
        ).swapaxes(1, 2)  # fmt: skip

    if knew is not None and vnew is not None:
        for b in range(batch):
            positions = np.arange(int(seqlens[b]), int(lens_k[b]))
            if table is None:
                kc[rows[b], positions] = knew[b]
                vc[rows[b], positions] = vnew[b]
            else:
                page = kc.shape[1]
                pages, slots = table[b, positions // page], positions % page
                kc[pages, slots] = knew[b]
                vc[pages, slots] = vnew[b]

    out = np.zeros(qa.shape, dtype=qa.dtype)
    lse = np.full((batch, hq, length_q), np.inf, dtype=np.float32)
    for b in range(batch):
        if table is None:
            span = slice(int(leftpad[b]), int(lens_k[b]))
            keys, values = kc[rows[b], span], vc[rows[b], span]
        else:
            keys, values = _gather_paged(kc, vc, table[b], int(lens_k[b]))
        o, row_lse = _attend_sequence(
            q_rot[b], keys, values, mask, scale, cap, None if slopes is None else slopes[b]
        )
        out[b], lse[b] = o, row_lse
    if return_softmax_lse:
        return out, lse
    return out


def _seqlen(cache_seqlens: object, b: int) -> int:
    """``cache_seqlens[b]`` as given (an int for every sequence, or an int32 array)."""
    if isinstance(cache_seqlens, int | np.integer):
        return int(cache_seqlens)
    return int(np.asarray(cache_seqlens)[b])


# ----------------------------------------------------------------------------------------
# the mask flash-attn's kernel runs, after its C++ entry points rewrite the arguments
# ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Mask:
    """Kernel masking after ``flash_api.cpp`` and ``set_params_fprop`` rewrite the window."""

    causal: bool  # key j <= i + sk - sq
    local: bool  # i + sk - sq - left <= j <= i + sk - sq + right
    left: int
    right: int
    fast_path: bool  # seqlenq_ngroups_swapped candidate (before the head-count test)


def _flash_mask(
    causal: object,
    window_size: object,
    length_q: int,
    length_k: int,
    has_alibi: bool,
    entry: Literal["fwd", "varlen", "kvcache"],
) -> _Mask:
    """Follow ``mha_fwd`` / ``mha_varlen_fwd`` / ``mha_fwd_kvcache`` then ``set_params_fprop``.

    ``length_q``, ``length_k`` are the lengths the entry point sees (``max_seqlen_*`` for
    varlen, the cache capacity for kvcache).
    """
    flag("causal", causal)
    if not (isinstance(window_size, tuple | list) and len(window_size) == 2) or any(
        isinstance(w, bool) or not isinstance(w, int | np.integer) for w in window_size
    ):
        raise AttentionValueError(
            f"window_size should be a pair of ints (left, right), -1 for an unbounded side: "
            f"but got {window_size!r}. Pass e.g. (127, 0) with causal=True for a 128-key "
            f"sliding window, or (-1, -1) for none."
        )
    left, right = int(window_size[0]), int(window_size[1])
    is_causal = bool(causal)

    def clip_to_keys(side: int) -> int:
        return -1 if side >= length_k else side

    if entry == "fwd":
        left, right = clip_to_keys(left), clip_to_keys(right)
    if length_q == 1 and not has_alibi:
        is_causal = False  # flash_api.cpp: "causal=true is the same as causal=false in this case"
    if is_causal:
        right = 0
    fast_path = length_q == 1 and left < 0 and right < 0 and not has_alibi
    if entry != "fwd":
        left, right = clip_to_keys(left), clip_to_keys(right)
    # set_params_fprop
    kernel_causal = left < 0 and right == 0
    if left < 0 and right >= 0:
        left = length_k
    if left >= 0 and right < 0:
        right = length_k
    local = (left >= 0 or right >= 0) and not kernel_causal
    return _Mask(kernel_causal, local, left, right, fast_path)


# ----------------------------------------------------------------------------------------
# attention of one sequence, or of a batch of equal-length sequences
# ----------------------------------------------------------------------------------------


def _attend(
    q: FloatArray,
    k: FloatArray,
    v: FloatArray,
    mask: _Mask,
    scale: float,
    softcap: float | None,
    slopes: FloatArray | None,
) -> tuple[FloatArray, npt.NDArray[np.float32]]:
    """``q (..., Hq, sq, D)``, ``k``/``v`` ``(..., Hkv, sk, D)`` -> out and the kernel's LSE.

    ``slopes`` broadcasts to ``(..., Hq)``. Returns ``out (..., Hq, sq, D)`` and
    ``lse (..., Hq, sq)`` float32 (``+inf`` for a row with no key).
    """
    length_q, length_k = q.shape[-2], k.shape[-2]
    res = attention(
        q, k, v,
        causal="bottom_right" if mask.causal else None,
        window=(mask.left, mask.right) if mask.local else None,
        window_alignment="bottom_right" if mask.local else None,
        alibi_slopes=slopes,
        softcap=softcap,
        scale=scale,
        fully_masked="zero",
        return_lse=True,
    )  # fmt: skip
    assert res.lse is not None
    lse = np.where(np.isneginf(res.lse), np.inf, res.lse)
    if slopes is not None and mask.causal:
        # mask.h adds slope * j under a causal mask instead of -slope * |i + sk - sq - j|
        shift = np.arange(length_q) + length_k - length_q  # (sq,)
        lse = lse + np.asarray(slopes, dtype=np.float64)[..., None] * shift
    return res.output, lse.astype(np.float32)


def _attend_sequence(
    q: FloatArray,
    k: FloatArray,
    v: FloatArray,
    mask: _Mask,
    scale: float,
    softcap: float | None,
    slopes: FloatArray | None,
) -> tuple[FloatArray, npt.NDArray[np.float32]]:
    """One sequence in flash-attn's layout: ``q (sq, Hq, D)``, ``k``/``v`` ``(sk, Hkv, D)``.

    Returns ``out (sq, Hq, D)`` and ``lse (Hq, sq)``.
    """
    length_q, hq = q.shape[0], q.shape[1]
    if length_q == 0 or k.shape[0] == 0:
        return np.zeros(q.shape, q.dtype), np.full((hq, length_q), np.inf, np.float32)
    out, lse = _attend(q.swapaxes(0, 1), k.swapaxes(0, 1), v.swapaxes(0, 1), mask, scale,
                       softcap, slopes)  # fmt: skip
    return out.swapaxes(0, 1), lse


def _gather_paged(
    k_pages: FloatArray, v_pages: FloatArray, table_row: IntArray, length: int
) -> tuple[FloatArray, FloatArray]:
    """Keys ``0 .. length-1`` of one sequence from ``(num_blocks, page, Hkv, D)`` pages."""
    positions = np.arange(length)
    page = k_pages.shape[1]
    pages, slots = table_row[positions // page], positions % page
    return k_pages[pages, slots], v_pages[pages, slots]
