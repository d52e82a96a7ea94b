"""Validation of every argument of :func:`refattn.attention`, run before any math.

Each check raises one of refattn's errors with one message in one form: ``<argument>
should be <expected>: but got <value, shape or dtype>. <fix>``, and the catalogue case
that explains it where there is one. :func:`validate` returns a :class:`Plan`: the inputs
broadcast, flattened and cast to the compute dtype, ready for the kernel.

The checks every public function shares live here, so each bad input is refused the same
way wherever it enters: :func:`as_array` (masked arrays, ragged lists, object arrays,
array-likes numpy cannot read), :func:`float_array` (also non-float and ``np.longdouble``),
:func:`window_side`, :func:`real_number`, :func:`flag`, :func:`check_keywords` (options a
function does not take) and :func:`check_allocation` (arrays larger than the memory
available, refused before allocating).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from refattn import _segments
from refattn._layout import BatchIndexed, DrawnKeep, score_layout
from refattn.errors import (
    AttentionArgumentError,
    AttentionDTypeError,
    AttentionMemoryError,
    AttentionShapeError,
    AttentionValueError,
)

Alignment = Literal["top_left", "bottom_right"]
Policy = Literal["zero", "uniform", "nan", "raise"]
ALIGNMENTS: tuple[str, ...] = ("top_left", "bottom_right")
POLICIES: tuple[str, ...] = ("zero", "uniform", "nan", "raise")
DEFAULT_MEMORY_BUDGET = 256 << 20  # bytes of (..., Hq, L, S) scores before the online path


@dataclass(eq=False)
class Plan:
    """Validated inputs in the kernel's layout; never modified (``dataclasses.replace``).

    Shapes: ``N`` is the product of the broadcast batch shape, ``G = Hq // Hkv``. Not a
    frozen dataclass only because building a frozen one costs ~2 µs, a tenth of a tiny
    call.
    """

    batch_shape: tuple[int, ...]
    num_q_heads: int
    out_dtype: np.dtype[np.floating]
    query: npt.NDArray[np.floating]  # (N, Hkv, G, L, D), compute dtype (may be a view)
    scale: float
    key: npt.NDArray[np.floating]  # (N, Hkv, S, D), compute dtype
    value: npt.NDArray[np.floating]  # (N, Hkv, S, Dv), compute dtype
    attend_mask: npt.NDArray[np.bool_] | BatchIndexed | None  # (N, Hkv, G, L, S) view
    bias: npt.NDArray[np.floating] | BatchIndexed | None  # (N, Hkv, G, L, S) view
    alibi_slopes: npt.NDArray[np.floating] | None  # (N, Hkv, G)
    causal_offset: int | None  # query i may see key j iff j <= i + offset
    window: tuple[int | None, int | None, int] | None  # (left, right, offset)
    key_lengths: npt.NDArray[np.intp] | None  # (N,)
    query_lengths: npt.NDArray[np.intp] | None  # (N,)
    softcap: float | None
    fully_masked: Policy
    dropout_keep: npt.NDArray[np.bool_] | BatchIndexed | DrawnKeep | None  # see _layout
    dropout_p: float
    memory_budget: int  # bytes of score tensor past which keys are walked in chunks
    # packed sequences; when set, causal and window live in it (causal_offset, window None)
    segments: _segments.Segments | None = None
    sinks: npt.NDArray[np.floating] | None = None  # (N, Hkv, G) logits, compute dtype


def see(case_id: str) -> str:
    """The sentence that points an error message at the catalogue case explaining it."""
    return f" Explained by catalogue case {case_id} (python -m catalogue show {case_id})."


def _shape(shape: tuple[int, ...]) -> str:
    return str(tuple(int(n) for n in shape))


def _bytes(n: int) -> str:
    size, unit = float(n), "bytes"
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"):
        if size < 1024 or unit == "EiB":
            break
        size /= 1024
    return f"{n} bytes" if unit == "bytes" else f"{size:.1f} {unit}"


CHECK_FROM = 1 << 28  # allocations below 256 MiB are not checked against memory_limit()


def memory_limit() -> int | None:
    """Bytes no single array refattn allocates may exceed: the memory available now.

    The smaller of the physical memory and, on Linux, ``MemAvailable`` (what can be
    allocated without swapping); None where the platform says neither (then nothing is
    checked up front).
    """
    try:
        limit: int | None = int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        limit = None
    try:
        with open("/proc/meminfo", encoding="ascii") as info:
            for line in info:
                if line.startswith("MemAvailable:"):
                    available = int(line.split()[1]) * 1024
                    limit = available if limit is None else min(limit, available)
                    break
    except (OSError, ValueError, IndexError):
        pass
    return limit


def check_allocation(name: str, what: str, shape: tuple[int, ...], itemsize: int, fix: str) -> None:
    """Raise :class:`AttentionMemoryError` before allocating ``shape`` if it cannot fit.

    Args:
        name: the argument that asks for the array, as the caller spelled it
            (``"return_weights=True"``, ``"capacity=10**12"``).
        what: what the array is, e.g. ``"the weights (..., Hq, L, S)"``.
        shape: the array's shape.
        itemsize: bytes per entry.
        fix: what to do instead, a sentence.
    """
    nbytes = math.prod(map(int, shape)) * int(itemsize)
    if nbytes < CHECK_FROM:
        return  # not worth reading the memory state for
    limit = memory_limit()
    if limit is not None and nbytes > limit:
        raise AttentionMemoryError(
            f"{name} needs {what} of shape {_shape(shape)}, {_bytes(nbytes)} ({nbytes} "
            f"bytes): expected at most the {_bytes(limit)} of memory this machine has "
            f"available, but got a request larger than that, which would fail (or swap for "
            f"hours). {fix}"
        )


def as_array(name: str, x: object) -> npt.NDArray[Any]:
    """``np.asarray(x)``, refusing what it would read wrongly: masked arrays, ragged lists.

    Every array argument of refattn's public functions goes through here.
    """
    if isinstance(x, np.ma.MaskedArray):
        raise AttentionDTypeError(
            f"{name} should be a plain ndarray: but got a numpy masked array "
            f"(np.ma.MaskedArray of shape {_shape(np.shape(x))}), whose mask refattn would "
            f"silently ignore (it reads only the data). Pass np.ma.getdata({name}) and express "
            f"the mask as attend_mask= (True = may attend), key_lengths= or bias= (-inf)."
        )
    try:
        arr = np.asarray(x)
    except Exception as err:  # any array-like's conversion error, named
        if not isinstance(x, list | tuple):
            raise AttentionDTypeError(
                f"{name} should be a NumPy array or array-like: but got a "
                f"{type(x).__module__}.{type(x).__name__} that numpy cannot convert "
                f"({err}). Convert it yourself, e.g. tensor.detach().cpu().float().numpy() "
                f"for a torch tensor (bfloat16 included) or np.asarray(x, np.float32)."
            ) from None
        raise AttentionShapeError(
            f"{name} should be a rectangular array or equally long nested lists: but got a "
            f"{type(x).__name__} numpy cannot read ({err}). A ragged list "
            f"(rows of different lengths) has no shape: pad the rows to one length and pass "
            f"the true lengths as key_lengths= / query_lengths=." + see("padding_not_masked")
        ) from None
    big = _big_ints(arr) if arr.dtype == np.object_ else []
    if big:
        raise AttentionValueError(
            f"{name} should hold integers in int64's range [-2**63, 2**63): but got {big[0]}, "
            f"which NumPy can only store as a Python object. Check how the value was "
            f"computed (an overflow, a product of sizes, a missing division)."
        )
    if arr.dtype == np.object_:
        raise AttentionDTypeError(
            f"{name} has dtype object (got a {type(x).__name__} of shape "
            f"{_shape(arr.shape)}): expected a numeric array. Object arrays come from "
            f"ragged lists or mixed entries (None, strings, arrays of different shapes); "
            f"pad the rows to one length and convert with np.asarray({name}, "
            f"dtype=np.float32)."
        )
    return arr


def _big_ints(arr: npt.NDArray[Any]) -> list[int]:
    """An object array's ints past int64, when it holds only ints (NumPy's reason then)."""
    entries = list(arr.flat)
    if not entries or not all(isinstance(e, int) and not isinstance(e, bool) for e in entries):
        return []
    return [e for e in entries if not -(2**63) <= e < 2**63]


_F32, _F64 = np.dtype(np.float32), np.dtype(np.float64)
_PLAIN_FLOATS = frozenset(np.dtype(t) for t in (np.float16, np.float32, np.float64))
_BOOLS = (bool, np.bool_)
_INTS = (int, np.integer)


def _kind(dtype: np.dtype[Any]) -> str:
    if dtype.kind == "V" and "float" in dtype.name:  # ml_dtypes' bfloat16, float8_*
        return "an ml_dtypes floating"
    return {
        "i": "an integer",
        "u": "an unsigned integer",
        "b": "a boolean",
        "c": "a complex",
        "f": "a floating",
    }.get(dtype.kind, "a non-numeric")


def float_array(name: str, x: object) -> npt.NDArray[np.floating]:
    """``as_array`` that also requires float16, float32 or float64.

    ``np.longdouble`` is refused everywhere: refattn computes in float32 or float64, and
    returning float128 would claim a precision the result does not have.
    """
    if type(x) is np.ndarray and x.dtype in _PLAIN_FLOATS:  # passes every check below
        return x
    arr = as_array(name, x)
    if arr.dtype.kind == "f" and arr.dtype.itemsize > 8:
        raise AttentionDTypeError(
            f"{name} dtype should be float16, float32 or float64: but got {arr.dtype} "
            f"(np.longdouble). refattn computes in float32 or float64 and would return a "
            f"{arr.dtype} no more accurate than float64; convert with "
            f"{name}.astype(np.float64)."
        )
    return _as_float_array(name, arr)


def _as_float_array(name: str, x: object) -> npt.NDArray[np.floating]:
    arr = np.asarray(x)
    if arr.dtype.kind != "f":
        kind = _kind(arr.dtype)
        fix = f"convert it with {name}.astype(np.float32)"
        if arr.dtype.kind == "c":
            fix = (
                "attention is defined for real inputs: pass the real and imaginary parts "
                "as separate real arrays"
            )
        raise AttentionDTypeError(
            f"{name} dtype should be floating (float16, float32 or float64): but got "
            f"{kind} dtype {arr.dtype}; {fix}."
        )
    return arr


def _check_rank(name: str, arr: npt.NDArray[np.generic], axes: str) -> None:
    if arr.ndim < 3:
        raise AttentionShapeError(
            f"{name} shape should be (..., {axes}): but got {_shape(arr.shape)}, "
            f"which has {arr.ndim} dims and no head axis. Add one: {name}[None] for a "
            f"single head, or reshape (B, L, H*D) to (B, H, L, D) with "
            f"x.reshape(B, L, H, D).transpose(0, 2, 1, 3)."
        )


def _broadcast_batch(
    query: npt.NDArray[np.floating],
    key: npt.NDArray[np.floating],
    value: npt.NDArray[np.floating],
) -> tuple[int, ...]:
    batch = query.shape[:-3]
    if batch == key.shape[:-3] == value.shape[:-3]:  # what np.broadcast_shapes returns
        return batch
    try:
        return np.broadcast_shapes(query.shape[:-3], key.shape[:-3], value.shape[:-3])
    except ValueError:
        raise AttentionShapeError(
            f"batch dims of query, key and value should broadcast together (each equal or "
            f"1): but got query {_shape(query.shape[:-3])}, key {_shape(key.shape[:-3])} "
            f"and value {_shape(value.shape[:-3])}, which do not broadcast (shapes: query "
            f"{_shape(query.shape)}, key {_shape(key.shape)}, value {_shape(value.shape)}). "
            f"Check that q, k and v come from the same batch and were not transposed "
            f"differently."
        ) from None


def _broadcast(
    arr: npt.NDArray[np.floating], shape: tuple[int, ...], flat: tuple[int, ...]
) -> npt.NDArray[np.floating]:
    """``np.broadcast_to(arr, shape).reshape(flat)``: read-only, a view where reshape allows.

    Cheaper when no axis grows: then ``arr.reshape`` alone, itself a new view.
    """
    if arr.shape != shape:
        return np.broadcast_to(arr, shape).reshape(flat)
    view = arr.reshape(flat)
    view.setflags(write=False)  # the kernel must never write into the caller's arrays
    return view


def _to_score_view(
    name: str,
    arr: npt.NDArray[np.generic],
    batch: tuple[int, ...],
    hq: int,
    hkv: int,
    length_q: int,
    length_k: int,
) -> npt.NDArray[Any] | BatchIndexed:
    """Broadcast a mask-like array to ``(*batch, Hq, L, S)`` and view it as 5-D kernel layout."""
    target = (*batch, hq, length_q, length_k)
    if arr.ndim == 3 and len(target) > 3:
        raise AttentionShapeError(
            f"{name} should have 2 or 4+ dims when the scores {_shape(target)} have more "
            f"than 3: but got 3 dims {_shape(arr.shape)}, which is ambiguous: (B, L, S) or "
            f"(H, L, S)? Spell a per-batch mask as "
            f"{name}[:, None] (B, 1, L, S) and a per-head mask as {name}[None] "
            f"(1, H, L, S). (torch SDPA silently reads a 3-D mask as (H, L, S).)"
            + see("three_d_mask_read_as_heads")
        )
    lead = len(target) - arr.ndim
    if (
        lead >= 0
        and arr.shape == target[lead:]
        and math.prod(target[:lead]) == 1
        and arr.flags.c_contiguous
    ):  # no axis grows: broadcast_to would only prepend unit axes, and this is a view
        view = arr.reshape(math.prod(batch), hkv, hq // hkv, length_q, length_k)
        view.setflags(write=False)
        return view
    try:
        full = np.broadcast_to(arr, target)
    except ValueError:
        raise AttentionShapeError(
            f"{name} shape should broadcast to the scores (..., Hq, L, S) = "
            f"{_shape(target)}: but got {_shape(arr.shape)}. Trailing axes are matched "
            f"first: pass a key-padding mask (B, S) as {name}[:, None, None, :] "
            f"(B, 1, 1, S); a per-query mask needs shape (L, S)."
            + see("mask_shape_not_broadcastable")
        ) from None
    return score_layout(full, batch, hkv, hq // hkv)  # refattn._layout: never a copy


def _lengths(
    name: str, x: object, batch: tuple[int, ...], limit: int, axis: str
) -> npt.NDArray[np.intp]:
    arr = as_array(name, x)
    if arr.dtype.kind not in "iu":
        raise AttentionDTypeError(
            f"{name} has dtype {arr.dtype}: expected integer lengths, one per batch entry, "
            f"but got {_preview(arr)}; convert with np.asarray({name}, dtype=np.int64)."
        )
    try:
        full = np.broadcast_to(arr, batch)
    except ValueError:
        raise AttentionShapeError(
            f"{name} shape should broadcast to the batch shape {_shape(batch)}: but got "
            f"{_shape(arr.shape)}. Pass one length per batch entry, shape {_shape(batch)} "
            f"(or a scalar for all)."
        ) from None
    if full.size and (full.min() < 0 or full.max() > limit):
        bad = full[(full < 0) | (full > limit)].flat[0]
        raise AttentionValueError(
            f"{name} should lie in [0, {axis}] = [0, {limit}]: but got {bad}. Pass lengths "
            f"counted after truncation: a length larger than the padded {axis} usually "
            f"means the lengths were computed "
            f"before truncation, or include special tokens the arrays do not have."
            + see("lengths_longer_than_padded")
        )
    return np.ascontiguousarray(full.reshape(-1)).astype(np.intp, copy=False)


def _alignment_offset(name: str, alignment: object, length_q: int, length_k: int) -> int:
    if not isinstance(alignment, str) or alignment not in ALIGNMENTS:
        extra = f" Pass {name}='top_left' (torch/JAX is_causal) or 'bottom_right' (flash-attn)."
        if isinstance(alignment, bool | np.bool_):
            extra = (
                " A bare bool is ambiguous when L != S: use 'top_left' for torch/JAX "
                "is_causal=True or 'bottom_right' for flash-attn and KV-cache decoding."
            )
        raise AttentionValueError(
            f"{name} should be one of {ALIGNMENTS}: but got {alignment!r}.{extra}"
            + see("top_left_causal_for_kv_cache")
        )
    return 0 if alignment == "top_left" else length_k - length_q


def window_side(name: str, value: object) -> int | None:
    """One side of a window: None (unbounded) or an int >= 0; anything else is refused.

    Shared by :func:`refattn.attention`'s ``window``, :func:`refattn.masks.window` and the
    JAX adapter's ``local_window_size``, so all three accept exactly the same values.
    """
    if value is None:
        return None
    if isinstance(value, bool | np.bool_) or not isinstance(value, int | np.integer):
        fix = "pass an int, or None for an unbounded side"
        if isinstance(value, float | np.floating) and math.isfinite(value):
            fix = f"pass int({value!r}) if that is what you meant (offsets count keys)"
        elif isinstance(value, float | np.floating):
            fix = "pass None for an unbounded side (NaN and inf are not offsets)"
        elif isinstance(value, str):
            fix = f"pass int({value!r}) if it came from a config or command line"
        raise AttentionValueError(
            f"{name} should be a non-negative int or None (unbounded): but got {value!r} "
            f"of type {type(value).__name__}; {fix}."
        )
    if value < 0:
        raise AttentionValueError(
            f"{name} should be >= 0 or None (unbounded): but got {value}. flash-attn "
            f"spells an unbounded side -1; refattn spells it None: pass None."
        )
    return int(value)


def flag(name: str, value: object) -> bool:
    """A bool (Python or NumPy); anything else, truthy or not, is refused."""
    if not isinstance(value, _BOOLS):
        raise AttentionValueError(
            f"{name} should be a bool: but got {value!r} of type {type(value).__name__}. "
            f"Pass {name}=True or {name}=False."
        )
    return bool(value)


def real_number(name: str, value: object, expected: str, fix: str) -> float:
    """A real Python or NumPy scalar as float; bools, complex, strings and arrays refused."""
    if isinstance(value, bool | np.bool_) or not isinstance(
        value, int | float | np.integer | np.floating
    ):
        hint = fix
        if isinstance(value, complex | np.complexfloating):
            hint = f"attention is defined for real numbers: pass {name}=abs(x) or x.real"
        elif isinstance(value, np.ndarray) and value.size == 1:
            hint = f"pass a Python number, {name}=float(x)"
        raise AttentionValueError(
            f"{name} should be {expected}: but got {value!r} of type "
            f"{type(value).__name__}; {hint}."
        )
    return float(value)


def _preview(arr: npt.NDArray[Any]) -> str:
    """A short description of an array for messages: its values if few, else its shape."""
    if arr.size <= 6:
        return f"{arr.tolist()!r}"
    return f"an array of shape {_shape(arr.shape)}"


def _window(
    window: object, alignment: object, causal: object, length_q: int, length_k: int
) -> tuple[int | None, int | None, int]:
    if not (isinstance(window, tuple | list) and len(window) == 2):
        raise AttentionValueError(
            f"window should be a pair (left, right) of inclusive offsets: but got "
            f"{window!r}. Pass a tuple, with None for an unbounded side, e.g. "
            f"window=(128, 0) for a causal sliding window of 129 keys."
        )
    sides = [
        window_side(f"window {side}", value)
        for side, value in zip(("left", "right"), window, strict=True)
    ]
    if alignment is None:
        alignment = causal
    if alignment is None:
        if length_q != length_k:
            raise AttentionValueError(
                f"window_alignment should be given when L != S (L={length_q}, S={length_k}): but "
                f"got None (and causal=None). Pass window_alignment='bottom_right' to align "
                f"the last query with the last key (flash-attn) or 'top_left' to align the "
                f"first with the first (JAX local_window_size)."
                + see("causal_mask_built_for_wrong_length")
            )
        alignment = "top_left"
    offset = _alignment_offset("window_alignment", alignment, length_q, length_k)
    return sides[0], sides[1], offset


def _segment_array(
    name: str, x: object, batch: tuple[int, ...], length: int, axis: str
) -> npt.NDArray[np.intp]:
    """Integer ids broadcast to ``(*batch, length)`` and flattened to ``(N, length)``."""
    arr = as_array(name, x)
    if arr.dtype.kind not in "iu":
        raise AttentionDTypeError(
            f"{name} should hold integer segment ids, one per token: but got dtype "
            f"{arr.dtype} ({_preview(arr)}). Convert with np.asarray({name}, dtype=np.int32); "
            f"ids are compared for equality, a negative id marks padding."
        )
    try:
        full = np.broadcast_to(arr, (*batch, length))
    except ValueError:
        raise AttentionShapeError(
            f"{name} shape should broadcast to (..., {axis}) = {_shape((*batch, length))}: "
            f"but got {_shape(arr.shape)}. Pass one id per token, e.g. shape (B, {axis}), "
            f"or ({axis},) for every batch entry alike."
        ) from None
    if arr.dtype == np.uint64 and arr.size and int(arr.max()) > np.iinfo(np.intp).max:
        raise AttentionValueError(
            f"{name} should fit in int64: but got {int(arr.max())}. Renumber the segments "
            f"0, 1, 2, ... (only equality matters)."
        )
    flat = full.reshape(-1, length) if batch else full.reshape(1, length)
    return np.ascontiguousarray(flat, dtype=np.intp)


def _segment_plan(
    segment_ids: object,
    key_segment_ids: object,
    batch: tuple[int, ...],
    length_q: int,
    length_k: int,
    causal: object,
    window: object,
    window_alignment: object,
) -> _segments.Segments:
    """Check ``segment_ids``/``key_segment_ids`` and build the per-segment positions."""
    if segment_ids is None:
        raise AttentionValueError(
            "segment_ids should be given with key_segment_ids: but got segment_ids=None. "
            "Pass the queries' ids (..., L) as segment_ids= and the keys' (..., S) as "
            "key_segment_ids=."
        )
    q_ids = _segment_array("segment_ids", segment_ids, batch, length_q, "L")
    if key_segment_ids is None:
        if length_q != length_k:
            raise AttentionValueError(
                f"key_segment_ids should be given when L != S (L={length_q}, S={length_k}): "
                f"but got None. segment_ids (..., L) labels the queries; pass the keys' "
                f"labels (..., S) as key_segment_ids= (e.g. for cached keys before the "
                f"queries). They default to segment_ids only when L == S."
                + see("causal_mask_built_for_wrong_length")
            )
        k_ids = _segment_array("segment_ids", segment_ids, batch, length_k, "S")
    else:
        k_ids = _segment_array("key_segment_ids", key_segment_ids, batch, length_k, "S")
    if causal is not None:
        _alignment_offset("causal", causal, length_q, length_k)
    sides: tuple[int | None, int | None] | None = None
    alignment = None
    if window is not None:
        if not (isinstance(window, tuple | list) and len(window) == 2):
            _window(window, window_alignment, causal, length_q, length_k)  # raises
            raise AssertionError("unreachable: _window refuses a window that is not a pair")
        sides = (window_side("window left", window[0]), window_side("window right", window[1]))
        alignment = window_alignment if window_alignment is not None else causal
        if alignment is None:
            if key_segment_ids is not None:
                raise AttentionValueError(
                    "window_alignment should be given with a window and key_segment_ids: "
                    "but got None (and causal=None). Each segment has its own query and key "
                    "counts sq, sk: pass window_alignment='bottom_right' to centre the window "
                    "on p + sk - sq (flash-attn varlen) or 'top_left' to centre it on p."
                )
            alignment = "top_left"  # shared ids: every segment has sq == sk
        _alignment_offset("window_alignment", alignment, length_q, length_k)
    return _segments.build(
        q_ids,
        k_ids,
        None if causal is None else str(causal),
        sides,
        None if alignment is None else str(alignment),
    )


def _sinks(
    sinks: object, batch: tuple[int, ...], hq: int, hkv: int, compute: np.dtype[np.floating]
) -> npt.NDArray[np.floating]:
    """Attention-sink logits ``(Hq,)`` or ``(..., Hq)`` as ``(N, Hkv, G)`` in ``compute``."""
    a = as_array("sinks", sinks)
    if a.dtype.kind != "f":
        raise AttentionDTypeError(
            f"sinks should be floating logits, one per query head: but got dtype {a.dtype} "
            f"({_preview(a)}). Convert with np.asarray(sinks, dtype=np.float32)."
        )
    a = float_array("sinks", a)
    try:
        full = np.broadcast_to(a, (*batch, hq))
    except ValueError:
        raise AttentionShapeError(
            f"sinks shape should be (Hq,) or (..., Hq) with Hq={hq}: but got "
            f"{_shape(a.shape)}. Pass one sink logit per query head (gpt-oss keeps them as "
            f"a parameter of shape (num_attention_heads,))."
        ) from None
    bad = np.isnan(a) | np.isposinf(a)
    if bad.any():
        raise AttentionValueError(
            f"sinks should be finite, or -inf for a head without a sink: but got "
            f"{float(a[bad].flat[0])} in sinks of shape {_shape(a.shape)}. A NaN or +inf sink "
            f"takes or poisons every row's whole softmax; check how the sinks were loaded."
        )
    n = math.prod(batch)
    # like ALiBi slopes: sinks past the compute dtype's range stay float64 (prepare widens)
    finite = np.abs(a[np.isfinite(a)])
    fits = float(np.max(finite, initial=0.0)) <= float(np.finfo(compute).max)
    return np.ascontiguousarray(
        full.reshape(n, hkv, hq // hkv), dtype=compute if fits else np.float64
    )


def validate(
    query: object,
    key: object,
    value: object,
    *,
    attend_mask: object = None,
    bias: object = None,
    causal: object = None,
    window: object = None,
    window_alignment: object = None,
    key_lengths: object = None,
    query_lengths: object = None,
    alibi_slopes: object = None,
    softcap: object = None,
    scale: object = None,
    fully_masked: object = "zero",
    dropout_p: object = 0.0,
    rng: object = None,
    dropout_keep: object = None,
    memory_budget: object = None,
    segment_ids: object = None,
    key_segment_ids: object = None,
    sinks: object = None,
    **unknown: object,
) -> Plan:
    """Check every argument of :func:`refattn.attention` and build the kernel's :class:`Plan`.

    :func:`refattn.attention` calls :func:`validate_positional`, the same checks with its
    options passed by position (matching 21 keywords costs ~1.5 µs per call).

    Raises:
        AttentionShapeError: shapes that do not fit together.
        AttentionDTypeError: dtypes attention cannot use.
        AttentionValueError: values out of range.
        AttentionArgumentError: a keyword :func:`refattn.attention` does not take.
        AttentionMemoryError: an output larger than this machine's memory.
    """
    check_keywords(unknown)
    return validate_positional(
        query, key, value, attend_mask, bias, causal, window, window_alignment, key_lengths,
        query_lengths, alibi_slopes, softcap, scale, fully_masked, dropout_p, rng,
        dropout_keep, memory_budget, segment_ids, key_segment_ids, sinks,
    )  # fmt: skip


def validate_positional(
    query: object,
    key: object,
    value: object,
    attend_mask: object,
    bias: object,
    causal: object,
    window: object,
    window_alignment: object,
    key_lengths: object,
    query_lengths: object,
    alibi_slopes: object,
    softcap: object,
    scale: object,
    fully_masked: object,
    dropout_p: object,
    rng: object,
    dropout_keep: object,
    memory_budget: object,
    segment_ids: object,
    key_segment_ids: object,
    sinks: object,
) -> Plan:
    """:func:`validate`, every option given, by position in that order (no other keyword)."""
    q = float_array("query", query)
    k = float_array("key", key)
    v = float_array("value", value)
    if q.ndim < 3 or k.ndim < 3 or v.ndim < 3:
        _check_rank("query", q, "Hq, L, D")
        _check_rank("key", k, "Hkv, S, D")
        _check_rank("value", v, "Hkv, S, Dv")
    if not q.dtype == k.dtype == v.dtype:
        raise AttentionDTypeError(
            f"query, key and value should share one dtype: but got {q.dtype}, {k.dtype} "
            f"and {v.dtype}. Cast them to one, e.g. key.astype(query.dtype); mixed "
            f"precision hides which precision the result has."
        )
    hq, length_q, dim = q.shape[-3:]
    hkv, length_k, dim_k = k.shape[-3:]
    hkv_v, length_v, dim_v = v.shape[-3:]
    if dim_k != dim:
        raise AttentionShapeError(
            f"key feature size should equal query's D={dim}: but got key shape "
            f"{_shape(k.shape)} with D={dim_k} (query {_shape(q.shape)}). Q·Kᵀ contracts "
            f"the last axis: project query and key to the same head size D."
            + see("qk_dim_mismatch")
        )
    if length_v != length_k:
        raise AttentionShapeError(
            f"value length should equal key's S={length_k}: but got value shape "
            f"{_shape(v.shape)} with S={length_v} (key {_shape(k.shape)}). Every key needs "
            f"exactly one value; check slicing or caching of one but not the other."
            + see("value_sliced_separately")
        )
    if hkv_v != hkv:
        raise AttentionShapeError(
            f"value heads should equal key's Hkv={hkv}: but got value shape "
            f"{_shape(v.shape)} with {hkv_v} heads (key {_shape(k.shape)}). Project key and "
            f"value with the same number of kv heads, and check the head axis is at -3."
        )
    if hq == 0:
        raise AttentionShapeError(
            f"query should have at least one head: but got Hq=0 (query {_shape(q.shape)}). "
            f"Check the head axis is at -3: (..., Hq, L, D)."
        )
    if hkv == 0 or hq % hkv:
        raise AttentionShapeError(
            f"query heads Hq={hq} should be a multiple of key/value heads Hkv={hkv}: but "
            f"got query {_shape(q.shape)}, key {_shape(k.shape)}. GQA maps query head h to "
            f"kv head h // (Hq // Hkv). Check the head axis is at -3 in all three arrays."
            + see("gqa_query_heads_not_a_multiple")
        )
    batch = _broadcast_batch(q, k, v)
    n = math.prod(batch)
    groups = hq // hkv

    compute = _F64 if q.dtype == _F64 else _F32
    if scale is None:
        scale_value = 1.0 / math.sqrt(dim) if dim else 1.0
    else:
        scale_value = real_number(
            "scale", scale, "a real number or None", "pass a float, or None for 1 / sqrt(D)"
        )
    if not math.isfinite(scale_value):
        raise AttentionValueError(
            f"scale should be finite: but got {scale!r}. Pass None for the default "
            f"1 / sqrt(D) = {1.0 / math.sqrt(dim) if dim else 1.0:.6g}, or check how the "
            f"scale was computed (e.g. 1 / sqrt(0))." + see("missing_scale_saturates")
        )
    itemsize = max(compute.itemsize, q.dtype.itemsize)
    if n * hq * length_q * dim_v * itemsize >= CHECK_FROM:  # else check_allocation returns
        check_allocation(
            "attention",
            "the output (..., Hq, L, Dv)",
            (*batch, hq, length_q, dim_v),
            itemsize,
            "Split the batch or the queries into several calls.",
        )

    if q.shape[:-3] == k.shape[:-3] == v.shape[:-3]:  # nothing to broadcast: read-only views
        q5 = q.reshape(n, hkv, groups, length_q, dim)
        k4 = k.reshape(n, hkv, length_k, dim)
        v4 = v.reshape(n, hkv, length_k, dim_v)
        q5.setflags(write=False)  # the kernel must never write into the caller's arrays
        k4.setflags(write=False)
        v4.setflags(write=False)
    else:
        q5 = _broadcast(q, (*batch, hq, length_q, dim), (n, hkv, groups, length_q, dim))
        k4 = _broadcast(k, (*batch, hkv, length_k, dim), (n, hkv, length_k, dim))
        v4 = _broadcast(v, (*batch, hkv, length_k, dim_v), (n, hkv, length_k, dim_v))
    if q.dtype != compute:  # float16: computed in float32
        q5 = q5.astype(compute)
    if not (k4.flags.c_contiguous and k4.dtype == compute):
        k4 = np.ascontiguousarray(k4, dtype=compute)
    if not (v4.flags.c_contiguous and v4.dtype == compute):
        v4 = np.ascontiguousarray(v4, dtype=compute)

    def score_view(name: str, arr: npt.NDArray[np.generic]) -> npt.NDArray[Any] | BatchIndexed:
        return _to_score_view(name, arr, batch, hq, hkv, length_q, length_k)

    mask5 = None
    if attend_mask is not None:
        m = as_array("attend_mask", attend_mask)
        if m.dtype != np.bool_:
            hint = (
                "for an additive 0/-inf mask pass it as bias=; for a 0/1 mask where 1 "
                "means attend use attend_mask=mask.astype(bool)"
            )
            raise AttentionDTypeError(
                f"attend_mask should be boolean (True = may attend): but got dtype "
                f"{m.dtype}; {hint}. A torch nn.MultiheadAttention mask (True = ignore) "
                f"must be inverted: refattn.masks.from_torch_attn_mask(mask) or "
                f"refattn.masks.from_torch_key_padding_mask(mask)." + see("zero_one_mask_added")
            )
        mask5 = score_view("attend_mask", m)

    bias5 = None
    if bias is not None:
        b = as_array("bias", bias)
        if b.dtype.kind != "f":
            raise AttentionDTypeError(
                f"bias should be a floating array added to the logits: but got dtype "
                f"{b.dtype}. Pass a boolean mask as attend_mask= instead; an integer 0/1 "
                f"mask is not a bias (adding it shifts logits by 1 instead of masking)."
                + see("zero_one_mask_added")
            )
        b = float_array("bias", b)
        nan, posinf = int(np.isnan(b).sum()), int(np.isposinf(b).sum())
        if nan or posinf:
            raise AttentionValueError(
                f"bias should hold finite values or -inf (to mask): but got {nan} NaN and "
                f"{posinf} +inf entries (bias shape {_shape(b.shape)}), which make softmax "
                f"NaN. Build masks as np.where(mask, 0.0, -np.inf), not mask * -np.inf, "
                f"and check how the bias was computed." + see("mask_times_minus_inf")
            )
        bias5 = score_view("bias", b)

    slopes: npt.NDArray[np.floating] | None = None
    if alibi_slopes is not None:
        a = as_array("alibi_slopes", alibi_slopes)
        if a.dtype.kind != "f":
            raise AttentionDTypeError(
                f"alibi_slopes should be floating, one per query head: but got dtype "
                f"{a.dtype} ({_preview(a)}). Convert with np.asarray(alibi_slopes, "
                f"dtype=np.float32)."
            )
        a = float_array("alibi_slopes", a)
        try:
            full = np.broadcast_to(a, (*batch, hq))
        except ValueError:
            raise AttentionShapeError(
                f"alibi_slopes shape should be (Hq,) or (..., Hq) with Hq={hq}: but got "
                f"{_shape(a.shape)}. Pass one slope per query head, e.g. the geometric "
                f"sequence 2 ** (-8 * (h + 1) / Hq) for h in range(Hq)."
            ) from None
        if not np.isfinite(a).all():
            bad = a[~np.isfinite(a)].flat[0]
            raise AttentionValueError(
                f"alibi_slopes should be finite: but got {bad!r} in alibi_slopes of shape "
                f"{_shape(a.shape)}; a NaN or infinite slope turns the logits off the "
                f"diagonal into NaN or -inf. Check how the slopes were computed (e.g. 2 ** -x with "
                f"x from a division by zero)."
            )
        # slopes past the compute dtype's range stay float64 (cast, they would become inf):
        # _numerics.prepare then finds the logit bound too large and computes in float64
        fits = float(np.max(np.abs(a), initial=0.0)) <= float(np.finfo(compute).max)
        slopes = full.reshape(n, hkv, groups).astype(compute if fits else np.float64)

    causal_offset = None
    if causal is not None:
        causal_offset = _alignment_offset("causal", causal, length_q, length_k)

    segments = None
    if segment_ids is not None or key_segment_ids is not None:
        segments = _segment_plan(
            segment_ids, key_segment_ids, batch, length_q, length_k, causal, window,
            window_alignment,
        )  # fmt: skip
        causal_offset = None  # per segment, in segments

    window_spec = None
    if window is not None and segments is None:
        window_spec = _window(window, window_alignment, causal, length_q, length_k)
    elif window_alignment is not None and window is None:
        raise AttentionValueError(
            f"window_alignment should be given only with a window: but got "
            f"window_alignment={window_alignment!r} and window=None. Pass window=(left, "
            f"right) too, or drop window_alignment (causal= has its own alignment)."
        )

    klen = (
        None if key_lengths is None else _lengths("key_lengths", key_lengths, batch, length_k, "S")
    )
    qlen = (
        None
        if query_lengths is None
        else _lengths("query_lengths", query_lengths, batch, length_q, "L")
    )

    cap = None
    if softcap is not None:
        fix = "pass None for no cap, or the model's cap (Gemma 2 uses 50.0 for attention logits)"
        cap = real_number("softcap", softcap, "a positive finite number or None", fix)
        if not (math.isfinite(cap) and cap > 0):
            raise AttentionValueError(
                f"softcap should be a positive finite number or None: but got {softcap!r}; "
                f"{fix}. softcap * tanh(logits / softcap) needs softcap > 0."
            )

    if not isinstance(fully_masked, str) or fully_masked not in POLICIES:
        raise AttentionValueError(
            f"fully_masked should be one of {POLICIES}: but got {fully_masked!r}. Pass "
            f"'zero' (torch SDPA, flash-attn), 'uniform' (JAX), 'nan' or 'raise'."
            + see("fully_masked_row_nan")
        )
    if fully_masked == "uniform" and length_k == 0 and n * hq * length_q:
        raise AttentionValueError(
            f"fully_masked should not be 'uniform' without keys: but got "
            f"fully_masked='uniform' with S=0 (key {_shape(k.shape)}), where every row is "
            f"fully masked and the mean of value over 0 keys is undefined. Pass "
            f"fully_masked='zero' (zeros) or 'nan', or skip the call for an empty "
            f"sequence." + see("zero_length_sequence")
        )

    budget = DEFAULT_MEMORY_BUDGET if memory_budget is None else memory_budget
    if isinstance(budget, _BOOLS) or not isinstance(budget, _INTS) or budget < 0:
        raise AttentionValueError(
            f"memory_budget should be an int number of bytes >= 0, or None: but got "
            f"{memory_budget!r} of type {type(memory_budget).__name__}. Pass an int such "
            f"as 256 << 20 (256 MiB, the default when None); 0 walks keys in chunks always."
        )

    keep5: npt.NDArray[np.bool_] | BatchIndexed | DrawnKeep | None = None
    p = 0.0
    if not (type(dropout_p) is float and dropout_p == 0.0 and rng is None and dropout_keep is None):
        score_shape = (*batch, hq, length_q, length_k)
        keep5, p = _dropout(dropout_p, rng, dropout_keep, score_view, score_shape)
    sink_logits = None if sinks is None else _sinks(sinks, batch, hq, hkv, compute)

    return Plan(  # positionally, in the order of Plan's fields: a quarter of the keywords' cost
        batch,  # batch_shape
        hq,  # num_q_heads
        q.dtype,  # out_dtype
        q5,  # query
        float(scale_value),  # scale
        k4,  # key
        v4,  # value
        mask5,  # attend_mask
        bias5,  # bias
        slopes,  # alibi_slopes
        causal_offset,  # causal_offset
        window_spec,  # window
        klen,  # key_lengths
        qlen,  # query_lengths
        cap,  # softcap
        fully_masked,  # type: ignore[arg-type]  # fully_masked
        keep5,  # dropout_keep
        p,  # dropout_p
        int(budget),  # memory_budget
        segments,  # segments
        sink_logits,  # sinks
    )


def _dropout(
    dropout_p: object,
    rng: object,
    dropout_keep: object,
    score_view: Callable[[str, npt.NDArray[np.generic]], npt.NDArray[Any] | BatchIndexed],
    score_shape: tuple[int, ...],
) -> tuple[npt.NDArray[np.bool_] | BatchIndexed | DrawnKeep | None, float]:
    p = real_number(
        "dropout_p", dropout_p, "a float in [0, 1)", "pass a float such as 0.1, or 0.0 for none"
    )
    if rng is not None and not isinstance(rng, np.random.Generator):
        raise AttentionValueError(
            f"rng should be a numpy.random.Generator or None: but got {rng!r} of type "
            f"{type(rng).__name__}. Pass rng=np.random.default_rng(seed); a seed or the "
            f"legacy np.random.RandomState is not accepted."
        )
    if not 0.0 <= p < 1.0:
        raise AttentionValueError(
            f"dropout_p should lie in [0, 1): but got {dropout_p!r}. It is the probability "
            f"of dropping a weight (1 would drop everything): pass e.g. 0.1, or 0.0 at "
            f"inference."
        )
    if p == 0.0:
        if dropout_keep is not None:
            raise AttentionValueError(
                "dropout_p should be > 0 when dropout_keep is given: but got dropout_p=0 and "
                "a dropout_keep mask. Pass dropout_p= the probability the keep-mask was "
                "drawn with, since kept weights are scaled by 1 / (1 - dropout_p); or drop "
                "dropout_keep."
            )
        return None, 0.0
    if dropout_keep is not None:
        if rng is not None:
            raise AttentionValueError(
                f"rng should be None when dropout_keep is given: but got rng={rng!r} and a "
                f"dropout_keep. Pass only one, rng to draw the keep-mask or dropout_keep to "
                f"supply it."
            )
        keep = as_array("dropout_keep", dropout_keep)
        if keep.dtype != np.bool_:
            raise AttentionDTypeError(
                f"dropout_keep should be boolean (True = keep): but got dtype {keep.dtype}. "
                f"Convert a 0/1 keep-mask with dropout_keep.astype(bool)."
            )
        return score_view("dropout_keep", keep), p
    if not isinstance(rng, np.random.Generator):
        raise AttentionValueError(
            f"rng should be a numpy.random.Generator when dropout_p={p} > 0: but got rng="
            f"{rng!r}. Pass rng=np.random.default_rng(0) or an explicit dropout_keep mask "
            f"(dropout_p=0.0 at inference); refattn keeps no hidden random state."
        )
    return DrawnKeep(rng, p, score_shape), p  # drawn block by block: see refattn._layout


_OPTION_NAMES = (
    "attend_mask",
    "bias",
    "causal",
    "window",
    "window_alignment",
    "key_lengths",
    "query_lengths",
    "alibi_slopes",
    "softcap",
    "scale",
    "fully_masked",
    "dropout_p",
    "rng",
    "dropout_keep",
    "memory_budget",
    "segment_ids",
    "key_segment_ids",
    "sinks",
)


def check_keywords(unknown: Mapping[str, object], where: str = "to this function") -> None:
    """Refuse keywords that are not options of :func:`refattn.attention`, naming the fix.

    ``return_weights`` and ``return_lse`` are flags of :func:`refattn.attention` itself:
    functions that pass ``**options`` on (:func:`refattn.multi_head_attention`,
    :meth:`refattn.KVCache.attend`, :func:`refattn.attention_backward`) return no weights or
    log-sum-exp of their own.
    """
    if not unknown:
        return
    name, value = next(iter(unknown.items()))
    if name in ("return_weights", "return_lse"):
        fix = (
            f"{name} is a flag of refattn.attention only: call refattn.attention(query, key, "
            f"value, {name}=True, ...) with the same options to get them"
        )
    else:
        import difflib

        close = difflib.get_close_matches(name, _OPTION_NAMES, n=1)
        fix = (
            f"did you mean {close[0]}=? Rename the keyword"
            if close
            else f"pass one of {', '.join(_OPTION_NAMES)}"
        )
    raise AttentionArgumentError(
        f"{name} should not be passed {where} (expected only the options of "
        f"refattn.attention): but got {name}={value!r}; {fix}."
    )


def check_returns(plan: Plan, return_weights: object, return_lse: object) -> None:
    """Check :func:`refattn.attention`'s ``return_*`` flags and the weights' memory up front."""
    flag("return_lse", return_lse)
    if flag("return_weights", return_weights):
        length_q, length_k = plan.query.shape[3], plan.key.shape[2]
        itemsize = plan.query.itemsize
        if plan.out_dtype != plan.query.dtype:
            itemsize += plan.out_dtype.itemsize
        check_allocation(
            "return_weights=True",
            "the weights (..., Hq, L, S)",
            (*plan.batch_shape, plan.num_q_heads, length_q, length_k),
            itemsize,
            "Drop return_weights: the output alone is computed in blocks within "
            "memory_budget. For the normaliser of each row pass return_lse=True "
            "((..., Hq, L) only); to inspect weights, call attention on a slice of the "
            "queries, e.g. query[..., :1024, :].",
        )


def check_backward(
    grad_output: object, plan: Plan, fully_masked: object
) -> npt.NDArray[np.floating]:
    """Check :func:`refattn.attention_backward`'s own arguments after :func:`validate`.

    Args:
        grad_output: the upstream gradient, expected ``(..., Hq, L, Dv)`` in the query's
            dtype (the output's shape and dtype).
        plan: what :func:`validate` returned for the same inputs and options.
        fully_masked: the policy given, already validated by :func:`validate`.

    Returns:
        ``grad_output`` as an array.
    """
    if fully_masked == "nan":
        raise AttentionValueError(
            "fully_masked should be 'zero', 'uniform' or 'raise' for attention_backward: but "
            "got 'nan', whose rows have no gradient. Pass fully_masked='zero' (torch SDPA) or "
            "'uniform' (JAX)."
        )
    grad = as_array("grad_output", grad_output)
    if grad.dtype.kind != "f":
        raise AttentionDTypeError(
            f"grad_output dtype should be the query's {plan.out_dtype}: but got "
            f"{_kind(grad.dtype)} dtype {grad.dtype} (shape {_shape(grad.shape)}). Pass the "
            f"gradient of the loss with respect to attention's output, in its dtype."
        )
    out_shape = (
        *plan.batch_shape,
        plan.num_q_heads,
        plan.query.shape[3],
        plan.value.shape[3],
    )
    if grad.shape != out_shape:
        raise AttentionShapeError(
            f"grad_output shape should be the output's {_shape(out_shape)}: but got "
            f"{_shape(grad.shape)}. Pass the gradient of the loss with respect to "
            f"attention's output (same shape, the broadcast batch included)."
        )
    if grad.dtype != plan.out_dtype:
        raise AttentionDTypeError(
            f"grad_output dtype should be the query's {plan.out_dtype}: but got "
            f"{grad.dtype}. Cast it with grad_output.astype(query.dtype)."
        )
    return grad
