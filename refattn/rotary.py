r"""Rotary position embeddings (RoPE) in both conventions, on NumPy arrays.

A rotary embedding turns each pair of features of a query or key at position ``p`` by the
angle ``p * inv_freq[i]``, so that ``q_p · k_r`` depends on ``p - r`` only. Models differ in
**which features form a pair**:

| convention | pair ``i`` (``i < R/2``) | flash-attn |
| --- | --- | --- |
| half-split, "GPT-NeoX" (HF Llama, NeoX) | ``i`` and ``i + R/2`` | ``rotary_interleaved=False`` |
| interleaved, "GPT-J" (GPT-J, Meta's Llama) | ``2i`` and ``2i + 1`` | ``rotary_interleaved=True`` |

``R`` is the **rotary dim**: only features ``[0, R)`` turn, features ``[R, D)`` pass
through unchanged (partial rotary, e.g. GPT-NeoX's ``rotary_pct``). For a pair ``(x1, x2)``
and angle ``theta``::

    x1' = x1 * cos(theta) - x2 * sin(theta)
    x2' = x1 * sin(theta) + x2 * cos(theta)

Weights trained with one convention give wrong attention (no error) when the other is
applied: the two differ by a permutation of the features inside ``[0, R)``.

Shapes: ``x`` is ``(..., L, D)`` (refattn's ``(B, H, L, D)``; transpose flash-attn's
``(B, L, H, D)`` with ``x.swapaxes(-3, -2)``), ``cos`` and ``sin`` are ``(P, R/2)`` tables
indexed by position.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from refattn.errors import AttentionDTypeError, AttentionShapeError, AttentionValueError
from refattn.validation import check_allocation, flag

FloatArray = npt.NDArray[np.floating]

__all__ = ["apply_rotary", "packed_positions", "rotary_tables"]

_TABLE_DTYPES = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))


def rotary_tables(
    num_positions: int,
    rotary_dim: int,
    *,
    base: float = 10000.0,
    dtype: npt.DTypeLike = np.float32,
) -> tuple[FloatArray, FloatArray]:
    r"""The ``cos`` and ``sin`` tables of positions ``0 .. num_positions - 1``.

    ``inv_freq[i] = base ** (-2i / R)`` and ``angle[p, i] = p * inv_freq[i]``, computed in
    float64 and then cast to ``dtype`` (flash-attn's ``RotaryEmbedding`` computes them in
    float32; at positions in the tens of thousands the float32 angles already differ).

    Args:
        num_positions: ``P``, number of positions in the table.
        rotary_dim: ``R``, the number of rotated features; even.
        base: the frequency base ``theta`` (10000 in most models).
        dtype: dtype of the returned tables: float16, float32 or float64.

    Returns:
        ``(cos, sin)``, each ``(P, R/2)`` in ``dtype``.

    Raises:
        AttentionValueError: a negative ``num_positions``, an odd or negative ``rotary_dim``,
            a non-positive ``base``.
        AttentionDTypeError: a ``dtype`` other than float16, float32 or float64 (an integer
            or bool table would truncate cos and sin to 0 and 1).
        AttentionMemoryError: tables larger than the memory available.

    Examples:
        >>> cos, sin = rotary_tables(4, 8)
        >>> cos.shape, cos.dtype
        ((4, 4), dtype('float32'))
    """
    for name, value in (("num_positions", num_positions), ("rotary_dim", rotary_dim)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
            raise AttentionValueError(f"{name} should be a non-negative int: but got {value!r}.")
    if rotary_dim % 2:
        raise AttentionValueError(
            f"rotary_dim should be even (features turn in pairs): but got {rotary_dim}. "
            f"Use an even number of rotated features, e.g. {rotary_dim - 1}."
        )
    if not float(base) > 0:
        raise AttentionValueError(f"base should be a positive number: but got {base!r}.")
    try:
        kind = np.dtype(dtype)
    except TypeError:
        kind = np.dtype(object)  # not a dtype at all: refused below
    table_dtype = next((t for t in _TABLE_DTYPES if t == kind), None)
    if table_dtype is None:
        raise AttentionDTypeError(
            f"dtype should be float16, float32 or float64: but got {dtype!r}. cos and sin "
            f"lie in [-1, 1]: an integer or bool table truncates them to 0 and 1. Pass "
            f"dtype=np.float32 (or your model's float dtype)."
        )
    half = rotary_dim // 2
    check_allocation(
        f"rotary_tables({num_positions}, {rotary_dim})",
        "float64 angle, cos and sin tables (P, R/2)",
        (num_positions, half),
        3 * 8 + 2 * table_dtype.itemsize,
        "Build tables only for the positions you use (the largest position + 1).",
    )
    exponents = np.arange(0, rotary_dim, 2, dtype=np.float64) / max(rotary_dim, 1)
    inv_freq = float(base) ** -exponents  # (R/2,)
    angles = np.outer(np.arange(num_positions, dtype=np.float64), inv_freq)  # (P, R/2)
    return np.cos(angles).astype(table_dtype), np.sin(angles).astype(table_dtype)


def apply_rotary(
    x: npt.ArrayLike,
    cos: npt.ArrayLike,
    sin: npt.ArrayLike,
    *,
    interleaved: bool = False,
    positions: npt.ArrayLike | None = None,
    offset: npt.ArrayLike = 0,
) -> FloatArray:
    r"""Rotate the first ``R = 2 * cos.shape[-1]`` features of ``x`` by their positions.

    The row of ``x`` at sequence index ``l`` takes position ``p = positions[..., l] +
    offset`` (``positions`` defaults to ``0 .. L-1``) and is turned by
    ``cos[p]``, ``sin[p]``. The math runs in float32 (float64 for float64 ``x``) and the
    result is cast back to ``x``'s dtype, as flash-attn's kernels do.

    Args:
        x: ``(..., L, D)`` floating, e.g. queries ``(B, H, L, D)``.
        cos: ``(P, R/2)`` table, ``R <= D``; from :func:`rotary_tables` or a model's cache.
        sin: ``(P, R/2)``, same shape.
        interleaved: False for the half-split "GPT-NeoX" pairs ``(i, i + R/2)``; True
            for the interleaved "GPT-J" pairs ``(2i, 2i + 1)``.
        positions: integers broadcastable to ``(..., L)``: the position of each row.
            None means ``0 .. L-1``.
        offset: integers broadcastable to ``(...)`` (one per leading index, e.g. a cache
            length per batch entry ``(B, 1)`` for ``(B, H, L, D)``), added to positions.

    Returns:
        ``(..., L, D)`` in ``x``'s dtype; features ``[R, D)`` are ``x``'s, unchanged.

    Raises:
        AttentionDTypeError: non-floating ``x``, ``cos`` or ``sin``; non-integer positions.
        AttentionShapeError: tables of different shapes, ``R > D``, positions that do not
            broadcast.
        AttentionValueError: a position outside ``[0, P)``; a non-bool ``interleaved``.

    Examples:
        >>> import numpy as np
        >>> cos, sin = rotary_tables(16, 4)
        >>> x = np.ones((2, 3, 5, 6), dtype=np.float32)  # (B, H, L, D), R = 4 of D = 6
        >>> y = apply_rotary(x, cos, sin, offset=np.array([[0], [7]]))
        >>> y.shape, bool((y[..., 4:] == 1).all())
        ((2, 3, 5, 6), True)
    """
    interleaved = flag("interleaved", interleaved)
    arr = np.asarray(x)
    tab_cos, tab_sin = np.asarray(cos), np.asarray(sin)
    for name, a in (("x", arr), ("cos", tab_cos), ("sin", tab_sin)):
        if a.dtype.kind != "f":
            raise AttentionDTypeError(
                f"{name} should be floating: but got dtype {a.dtype}; convert it with "
                f"{name}.astype(np.float32)."
            )
    if arr.ndim < 2:
        raise AttentionShapeError(
            f"x shape should be (..., L, D): but got {arr.shape}. Add a sequence axis."
        )
    if tab_cos.ndim != 2 or tab_cos.shape != tab_sin.shape:
        raise AttentionShapeError(
            f"cos and sin should both be (P, R/2) tables: but got cos {tab_cos.shape} and "
            f"sin {tab_sin.shape}. flash-attn's rotary_cos/rotary_sin have this layout; "
            f"a (P, R) table (HF's, with both halves repeated) should be cut to [:, :R/2]."
        )
    length, dim = arr.shape[-2], arr.shape[-1]
    half = tab_cos.shape[1]
    rotary_dim = 2 * half
    if rotary_dim > dim:
        raise AttentionShapeError(
            f"rotary dim R = 2 * cos.shape[1] = {rotary_dim} should be <= the feature size "
            f"D = {dim} of x {arr.shape}: but it is larger. Check the tables are (P, R/2), "
            f"not (P, R)."
        )
    pos = _positions(positions, offset, arr.shape[:-1], length)
    if pos.size and (pos.min() < 0 or pos.max() >= tab_cos.shape[0]):
        bad = int(pos[(pos < 0) | (pos >= tab_cos.shape[0])].flat[0])
        raise AttentionValueError(
            f"positions should lie in [0, P) = [0, {tab_cos.shape[0]}) of the cos/sin "
            f"tables: but got {bad}. Build longer tables, or check the offset (a cache "
            f"length) was not added twice."
        )
    compute = np.dtype(np.float64) if arr.dtype == np.float64 else np.dtype(np.float32)
    c: FloatArray = np.take(tab_cos.astype(compute), pos, axis=0)  # (..., L, R/2)
    s: FloatArray = np.take(tab_sin.astype(compute), pos, axis=0)
    xr: FloatArray = arr[..., :rotary_dim].astype(compute)
    if interleaved:
        x1, x2 = xr[..., 0::2], xr[..., 1::2]
    else:
        x1, x2 = xr[..., :half], xr[..., half:]
    y1 = x1 * c - x2 * s
    y2 = x1 * s + x2 * c
    out = arr.copy()
    if interleaved:
        out[..., 0:rotary_dim:2] = y1
        out[..., 1:rotary_dim:2] = y2
    else:
        out[..., :half] = y1
        out[..., half:rotary_dim] = y2
    return out


def packed_positions(cu_seqlens: npt.ArrayLike, total: int | None = None) -> npt.NDArray[np.intp]:
    r"""Position of each token of a packed batch **within its own sequence**.

    Packed sequences restart at position 0: token ``t`` of sequence ``b`` (rows
    ``cu_seqlens[b] <= t < cu_seqlens[b + 1]``) has position ``t - cu_seqlens[b]``.
    Rotating a packed batch with ``0 .. total-1`` instead gives every document after the
    first the positions of its place in the pack, with no error.

    Args:
        cu_seqlens: integers ``(B + 1,)``, starting at 0, non-decreasing.
        total: number of packed rows; rows past ``cu_seqlens[-1]`` get position 0.
            Default ``cu_seqlens[-1]``.

    Returns:
        ``(total,)`` integer positions, to pass as ``positions=`` to :func:`apply_rotary`
        (on ``x`` of shape ``(..., total, D)``).

    Raises:
        AttentionDTypeError: non-integer ``cu_seqlens``.
        AttentionShapeError: ``cu_seqlens`` not 1-D with at least one entry.
        AttentionValueError: not starting at 0, decreasing, or past ``total``.
        AttentionMemoryError: ``total`` positions larger than the memory available.

    Examples:
        >>> packed_positions([0, 3, 4, 6]).tolist()
        [0, 1, 2, 0, 0, 1]
    """
    cu = np.asarray(cu_seqlens)
    if cu.dtype.kind not in "iu":
        raise AttentionDTypeError(
            f"cu_seqlens should hold integers: but got dtype {cu.dtype}. They are offsets "
            f"of the sequences in the packed axis, e.g. np.cumsum(lengths) after a 0."
        )
    if cu.ndim != 1 or cu.size == 0:
        raise AttentionShapeError(
            f"cu_seqlens shape should be (B + 1,): but got {cu.shape}. Prepend 0 to the "
            f"cumulative lengths: np.concatenate([[0], np.cumsum(lengths)])."
        )
    end = int(cu[-1]) if total is None else int(total)
    if cu[0] != 0 or (np.diff(cu.astype(np.int64)) < 0).any() or cu[-1] > end:
        raise AttentionValueError(
            f"cu_seqlens should start at 0, never decrease and end at most at total={end}: "
            f"but got {cu.tolist()}. Pass offsets (np.cumsum of the lengths after a 0), "
            f"not the lengths."
        )
    check_allocation(
        f"packed_positions(cu_seqlens ending at {end})",
        "int64 row, owner, start and position vectors (total,)",
        (end,),
        5 * 8,
        "Check cu_seqlens holds offsets into the packed axis (its last entry is the "
        "number of packed rows), not positions or byte counts.",
    )
    rows = np.arange(end)
    starts = np.zeros(end, dtype=np.intp)
    owner = np.searchsorted(cu, rows, side="right") - 1  # sequence of each row
    inside = rows < cu[-1]
    starts[inside] = cu[owner[inside]]
    out: npt.NDArray[np.intp] = np.where(inside, rows - starts, 0).astype(np.intp)
    return out


def _positions(
    positions: npt.ArrayLike | None,
    offset: npt.ArrayLike,
    rows: tuple[int, ...],
    length: int,
) -> npt.NDArray[np.intp]:
    """Positions of every row, broadcast to ``rows = (..., L)``."""
    base = np.arange(length) if positions is None else np.asarray(positions)
    off = np.asarray(offset)
    for name, a in (("positions", base), ("offset", off)):
        if a.dtype.kind not in "iu":
            raise AttentionDTypeError(
                f"{name} should hold integers: but got dtype {a.dtype}. Positions index "
                f"the cos/sin tables; convert with np.asarray({name}, dtype=np.int64)."
            )
    try:
        pos = np.broadcast_to(base, rows) + np.broadcast_to(off[..., None], rows)
    except ValueError:
        raise AttentionShapeError(
            f"positions {base.shape} should broadcast to (..., L) = {rows} and offset "
            f"{off.shape} to (...) = {rows[:-1]}: but they do not. For x (B, H, L, D) a "
            f"per-sequence offset is (B, 1)."
        ) from None
    out: npt.NDArray[np.intp] = pos.astype(np.intp, copy=False)
    return out
