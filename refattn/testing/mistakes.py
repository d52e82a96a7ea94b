r"""Mutants: the reference call with one known mistake applied.

Each :class:`Mutant` turns a call into the call a mistaken implementation effectively
makes (or None when the mistake cannot show on this call: swapping the causal alignment
changes nothing when ``L == S``). It is tied to the taxonomy tags of the mistake
(``catalogue/taxonomy.py``) and to the catalogue case that shows it, when one exists.

The rotary mutant applies only to calls that involve a rotary embedding
(``assert_attention_close(..., rotary=Rotary(...))``); the conventions of
:func:`~refattn.testing.check` pass no positions, so the battery never involves one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from refattn.testing import _naive
from refattn.testing._naive import F64, Call

MutantFn = Callable[[Call], Sequence[Call]]


@dataclass(frozen=True)
class Mutant:
    """One known mistake.

    Attributes:
        name: identifier, e.g. ``"causal_alignment_swapped"``.
        description: what the mistaken code does, one sentence.
        tags: taxonomy tags, spelled as in ``catalogue/taxonomy.py``.
        case: the catalogue case id showing the mistake, or None.
        apply: the call(s) a mistaken implementation makes instead of ``call``; empty when
            the mistake cannot show on this call.
    """

    name: str
    description: str
    tags: tuple[str, ...]
    case: str | None
    apply: MutantFn


def _opts(call: Call, **changes: Any) -> Call:
    """``call`` with options changed; a value None removes the option."""
    opts = {k: v for k, v in call.options.items() if k not in changes}
    opts.update({k: v for k, v in changes.items() if v is not None})
    return replace(call, options=opts)


def _lengths(call: Call) -> tuple[int, int]:
    return call.query.shape[-2], call.key.shape[-2]


def _swap(alignment: str) -> str:
    return "top_left" if alignment == "bottom_right" else "bottom_right"


def _causal_swapped(call: Call) -> Sequence[Call]:
    causal = call.options.get("causal")
    length_q, length_k = _lengths(call)
    if causal is None or length_q == length_k:
        return []
    changes: dict[str, Any] = {"causal": _swap(causal)}
    if call.options.get("window") is not None:
        align = call.options.get("window_alignment") or causal
        changes["window_alignment"] = _swap(align) if align == causal else align
    return [_opts(call, **changes)]


def _window_alignment_swapped(call: Call) -> Sequence[Call]:
    window = call.options.get("window")
    length_q, length_k = _lengths(call)
    if window is None or length_q == length_k:
        return []
    align = call.options.get("window_alignment") or call.options.get("causal")
    return [_opts(call, window_alignment=_swap(str(align)))]


def _mask_inverted(call: Call) -> Sequence[Call]:
    mask = call.options.get("attend_mask")
    return [] if mask is None else [_opts(call, attend_mask=~np.asarray(mask, dtype=bool))]


def _padding_along_query(call: Call) -> Sequence[Call]:
    length_q, length_k = _lengths(call)
    if length_q != length_k:
        return []  # a (B, S) mask read as (B, S, 1) only broadcasts when L == S
    out = []
    lengths = call.options.get("key_lengths")
    if lengths is not None:  # padded *queries* removed instead of padded keys
        rows = call.options.get("query_lengths")
        rows = lengths if rows is None else np.minimum(np.asarray(rows), np.asarray(lengths))
        out.append(_opts(call, key_lengths=None, query_lengths=rows))
    mask = call.options.get("attend_mask")
    if mask is not None and np.ndim(mask) >= 2 and np.shape(mask)[-2] == 1:
        out.append(_opts(call, attend_mask=np.swapaxes(np.asarray(mask), -1, -2)))
    return out


def _mask_ignored(call: Call) -> Sequence[Call]:
    if call.options.get("attend_mask") is None and call.options.get("key_lengths") is None:
        return []
    return [_opts(call, attend_mask=None, key_lengths=None)]


def _causal_ignored(call: Call) -> Sequence[Call]:
    causal = call.options.get("causal")
    if causal is None:
        return []
    align = call.options.get("window_alignment") or causal
    window = call.options.get("window")
    return [_opts(call, causal=None, window_alignment=align if window is not None else None)]


def _window_ignored(call: Call) -> Sequence[Call]:
    if call.options.get("window") is None:
        return []
    return [_opts(call, window=None, window_alignment=None)]


def _key_padding_mask(call: Call) -> F64 | None:
    lengths = call.options.get("key_lengths")
    if lengths is None:
        return None
    length_k = call.key.shape[-2]
    lens = np.asarray(lengths)[..., None, None, None]  # (..., 1, 1, 1)
    return (np.arange(length_k) < lens).astype(np.float64)  # (..., 1, 1, S)


def _zero_one_added(call: Call) -> Sequence[Call]:
    mask = call.options.get("attend_mask")
    pad = _key_padding_mask(call)
    if mask is None and pad is None:
        return []
    added = np.zeros(())
    if mask is not None:
        added = added + np.asarray(mask, dtype=np.float64)
    if pad is not None:
        added = added + pad
    bias = call.options.get("bias")
    if bias is not None:
        added = added + np.asarray(bias, dtype=np.float64)
    return [_opts(call, attend_mask=None, key_lengths=None, bias=added)]


def _gqa_tiled(call: Call) -> Sequence[Call]:
    hq, hkv = call.query.shape[-3], call.key.shape[-3]
    if hkv == 1 or hq == hkv:
        return []
    reps = [1] * call.key.ndim
    reps[-3] = hq // hkv
    # query head h reads kv head h % Hkv (tile) instead of h // G (repeat_interleave)
    return [replace(call, key=np.tile(call.key, reps), value=np.tile(call.value, reps))]


def _scale(value: Callable[[int], float]) -> MutantFn:
    def apply(call: Call) -> Sequence[Call]:
        if call.options.get("scale") is not None:
            return []
        return [_opts(call, scale=value(call.query.shape[-1]))]

    return apply


def _scale_ignored(call: Call) -> Sequence[Call]:
    scale = call.options.get("scale")
    if scale is None or np.isclose(scale, call.query.shape[-1] ** -0.5):
        return []
    return [_opts(call, scale=None)]


def _softmax_over_queries(call: Call) -> Sequence[Call]:
    out = [replace(call, softmax_axis=-2)]  # with L = 1 every weight is 1: a sum of value
    if (~_naive.allowed(call).any(axis=-2)).any():  # a key no query may see: 0/0 or zeros
        out.append(replace(call, softmax_axis=-2, empty_softmax_nan=True))
    return out


def _merged_without_transpose(call: Call) -> Sequence[Call]:
    q = call.query
    if q.ndim != 4 or q.shape[1] == 1 or q.shape[2] == 1:
        return []
    return [replace(call, merge_without_transpose=True)]


def _policy(policy: str) -> MutantFn:
    def apply(call: Call) -> Sequence[Call]:
        if call.options.get("fully_masked", "zero") == policy:
            return []
        if not _naive.fully_masked_rows(call).any():
            return []
        return [_opts(call, fully_masked=policy)]

    return apply


def _window_side(side: int, delta: int) -> MutantFn:
    def apply(call: Call) -> Sequence[Call]:
        window = call.options.get("window")
        if window is None or window[side] is None or window[side] + delta < 0:
            return []
        new = list(window)
        new[side] = window[side] + delta
        return [_opts(call, window=tuple(new))]

    return apply


def _truncated_keys(call: Call) -> Sequence[Call]:
    length_q, length_k = _lengths(call)
    candidates = {length_k - 1, length_q}
    candidates |= {2**p for p in range(12)}
    candidates |= {m * b for b in (16, 32, 64) for m in range(1, length_k // b + 1)}
    lengths = call.options.get("key_lengths")
    out = []
    for t in sorted(c for c in candidates if 0 < c < length_k):
        new = t if lengths is None else np.minimum(np.asarray(lengths), t)
        out.append(_opts(call, key_lengths=new))
    return out


def _rotary_swapped(call: Call) -> Sequence[Call]:
    r = call.rotary
    return [] if r is None else [replace(call, rotary=replace(r, interleaved=not r.interleaved))]


def _after_softmax(call: Call) -> Sequence[Call]:
    if bool(_naive.allowed(call).all()):
        return []
    return [replace(call, mask_after_softmax=True)]


MUTANTS: tuple[Mutant, ...] = (
    Mutant(
        "causal_alignment_swapped",
        "aligns the causal mask top-left where bottom-right is meant, or the reverse (L != S)",
        ("causal-alignment",),
        "top_left_causal_for_kv_cache",
        _causal_swapped,
    ),
    Mutant(
        "window_alignment_swapped",
        "centres the sliding window on the other diagonal (top-left vs bottom-right)",
        ("causal-alignment", "window-size"),
        None,
        _window_alignment_swapped,
    ),
    Mutant(
        "mask_inverted",
        "reads the boolean mask with the other polarity (True = ignore instead of attend)",
        ("mask-polarity",),
        "mha_mask_polarity_into_sdpa",
        _mask_inverted,
    ),
    Mutant(
        "padding_broadcast_along_query",
        "broadcasts the key-padding mask along the query axis ((B, S, 1) instead of (B, 1, S))",
        ("mask-broadcast-axis",),
        "key_padding_broadcast_along_query",
        _padding_along_query,
    ),
    Mutant(
        "mask_ignored",
        "ignores the attention/padding mask: padded keys are attended",
        ("mask-missing",),
        "padding_not_masked",
        _mask_ignored,
    ),
    Mutant(
        "causal_ignored",
        "applies no causal mask: queries attend to future keys",
        ("mask-missing",),
        "future_not_masked",
        _causal_ignored,
    ),
    Mutant(
        "window_ignored",
        "applies no sliding window",
        ("window-size",),
        None,
        _window_ignored,
    ),
    Mutant(
        "zero_one_mask_added",
        "adds the 0/1 mask to the logits as a bias instead of removing the masked keys",
        ("mask-dtype",),
        "zero_one_mask_added",
        _zero_one_added,
    ),
    Mutant(
        "gqa_heads_tiled",
        "maps query head h to kv head h % Hkv (tile) instead of h // (Hq // Hkv) "
        "(repeat_interleave)",
        ("gqa-heads",),
        None,
        _gqa_tiled,
    ),
    Mutant(
        "no_scale",
        "omits the 1/sqrt(D) scale of the logits",
        ("missing-scale",),
        "missing_scale_saturates",
        _scale(lambda d: 1.0),
    ),
    Mutant(
        "scale_one_over_d",
        "scales the logits by 1/D instead of 1/sqrt(D)",
        ("missing-scale",),
        "missing_scale_saturates",
        _scale(lambda d: 1.0 / d),
    ),
    Mutant(
        "scale_argument_ignored",
        "ignores the scale it is given and uses 1/sqrt(D)",
        ("missing-scale",),
        None,
        _scale_ignored,
    ),
    Mutant(
        "softmax_over_query_axis",
        "takes the softmax over the query axis instead of the key axis",
        ("softmax-axis",),
        "softmax_over_query_axis",
        _softmax_over_queries,
    ),
    Mutant(
        "heads_merged_without_transpose",
        "merges (B, H, L, Dv) into (B, L, H*Dv) with a reshape and no transpose",
        ("head-axis-order",),
        "heads_merged_without_transpose",
        _merged_without_transpose,
    ),
    Mutant(
        "fully_masked_rows_nan",
        "returns NaN for a query row with no allowed key",
        ("fully-masked-row",),
        "fully_masked_row_nan",
        _policy("nan"),
    ),
    Mutant(
        "fully_masked_rows_mean_of_value",
        "returns the mean of value over all keys for a row with no allowed key (JAX)",
        ("fully-masked-row",),
        "fully_masked_row_nan",
        _policy("uniform"),
    ),
    Mutant(
        "fully_masked_rows_zero",
        "returns zeros for a row with no allowed key (torch >= 2.5, flash-attn)",
        ("fully-masked-row",),
        "fully_masked_row_nan",
        _policy("zero"),
    ),
    Mutant(
        "window_left_too_wide",
        "lets the sliding window reach one key further back (left + 1)",
        ("window-size",),
        None,
        _window_side(0, +1),
    ),
    Mutant(
        "window_left_too_narrow",
        "stops the sliding window one key short on the left (left - 1)",
        ("window-size",),
        None,
        _window_side(0, -1),
    ),
    Mutant(
        "window_right_too_wide",
        "lets the sliding window reach one key further ahead (right + 1)",
        ("window-size",),
        None,
        _window_side(1, +1),
    ),
    Mutant(
        "window_right_too_narrow",
        "stops the sliding window one key short on the right (right - 1)",
        ("window-size",),
        None,
        _window_side(1, -1),
    ),
    Mutant(
        "truncated_keys",
        "reads only the first keys/values (another length than S: a block, L, S - 1)",
        ("kv-length-mismatch",),
        "value_sliced_separately",
        _truncated_keys,
    ),
    Mutant(
        "rotary_convention_swapped",
        "applies the rotary embedding with the other pairing (half-split vs interleaved)",
        ("rotary-embedding",),
        "rotary_conventions_mixed",
        _rotary_swapped,
    ),
    Mutant(
        "mask_after_softmax",
        "zeroes the masked weights after the softmax without renormalising",
        ("mask-after-softmax",),
        "mask_after_softmax_no_renorm",
        _after_softmax,
    ),
)


def mutants() -> tuple[Mutant, ...]:
    """Every mutant, in a fixed order."""
    return MUTANTS


def by_name(name: str) -> Mutant:
    """The mutant called ``name``.

    Raises:
        KeyError: no such mutant.
    """
    for m in MUTANTS:
        if m.name == name:
            return m
    raise KeyError(f"no mutant {name!r}; known: {', '.join(m.name for m in MUTANTS)}")


def explain(
    actual: F64,
    call: Call,
    wrong: npt.NDArray[np.bool_],
    dtype: str,
    factor: float,
    floor_ulps: float,
) -> list[Any]:
    """The mutants whose output matches ``actual`` on every wrong row, best first.

    Ranked by the fraction of all rows matched, then by the error ratio.
    """
    from refattn.testing.comparison import Explanation, match_mutant

    found: list[Explanation] = []
    for mutant in MUTANTS:
        best: tuple[float, float] | None = None
        for variant in mutant.apply(call):
            score = match_mutant(actual, variant, wrong, dtype, factor, floor_ulps)
            if score is not None and (best is None or (score[0], -score[1]) > (best[0], -best[1])):
                best = score
        if best is not None:
            found.append(
                Explanation(mutant.name, mutant.description, mutant.tags, mutant.case, *best)
            )
    found.sort(key=lambda e: (-e.rows_matched, e.error_ratio))
    return found
