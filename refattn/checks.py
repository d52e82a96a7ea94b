"""Checks for attention output: run them on your own code's results, too.

Each check raises :class:`~refattn.errors.CheckFailure` (an ``AssertionError``) whose
message says what was found, where, and the likely cause; it returns None when the
output is healthy. The catalogue's detectors are built from these.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from refattn.errors import (
    AttentionDTypeError,
    AttentionShapeError,
    AttentionValueError,
    CheckFailure,
)
from refattn.validation import as_array, real_number


def _numeric(name: str, array: npt.ArrayLike) -> npt.NDArray[np.generic]:
    """The array to check, refusing what is not numbers (a bad input, not a symptom)."""
    arr = as_array(name, array)
    if arr.dtype.kind not in "biuf":
        raise AttentionDTypeError(
            f"{name} should be a real numeric array: but got dtype {arr.dtype}. Pass the "
            f"attention output or weights as a NumPy array (e.g. tensor.detach().numpy())."
        )
    return arr


def _tolerance(name: str, value: object) -> float:
    tol = real_number(name, value, "a finite number >= 0", f"pass e.g. {name}=1e-5")
    if not (tol >= 0 and np.isfinite(tol)):
        raise AttentionValueError(
            f"{name} should be a finite number >= 0: but got {value!r}. Pass e.g. "
            f"{name}=1e-5 (float32) or 1e-12 (float64)."
        )
    return tol


def _where(index: tuple[np.intp, ...]) -> str:
    return "[" + ", ".join(str(int(i)) for i in index) + "]"


def check_finite(array: npt.ArrayLike, name: str = "output") -> None:
    """Raise if ``array`` holds NaN or infinity.

    Args:
        array: any shape, e.g. an attention output ``(B, H, L, Dv)``.
        name: what to call it in the message.

    Raises:
        CheckFailure: naming how many entries are NaN or infinite and the first one.

    Examples:
        >>> check_finite(np.array([0.0, 1.0]))
        >>> check_finite(np.array([0.0, np.nan]))
        Traceback (most recent call last):
        ...
        refattn.errors.CheckFailure: output has 1 NaN and 0 infinite of 2 entries, first at [1]: ...
    """
    arr = _numeric(name, array)
    bad = ~np.isfinite(arr)
    if not bad.any():
        return
    nan, inf = int(np.isnan(arr).sum()), int(np.isinf(arr).sum())
    first = _where(tuple(np.argwhere(bad)[0]))
    raise CheckFailure(
        f"{name} has {nan} NaN and {inf} infinite of {arr.size} entries, first at {first}: "
        f"a softmax over a fully masked row (all -inf) gives NaN, and float16 overflows "
        f"past 65504 (inf, then inf - inf = NaN)."
    )


def check_rows_sum_to_one(
    weights: npt.ArrayLike, *, atol: float = 1e-5, allow_empty_rows: bool = False
) -> None:
    """Raise if attention weights ``(..., L, S)`` do not sum to one over the key axis.

    Args:
        weights: ``(..., L, S)``, softmax probabilities.
        atol: tolerated deviation of each row sum from 1.
        allow_empty_rows: accept rows of zeros (fully masked rows under policy "zero").

    Raises:
        CheckFailure: naming the first row whose sum is off and the sum it has.

    Examples:
        >>> check_rows_sum_to_one(np.full((2, 4), 0.25))
    """
    w = _numeric("weights", weights).astype(np.float64)
    atol = _tolerance("atol", atol)
    if w.ndim < 2:
        raise AttentionShapeError(
            f"weights should have at least 2 dims (..., L, S): but got shape {w.shape}. "
            f"Pass attention weights, e.g. refattn.attention(..., return_weights=True)"
            f".weights; for a single row pass weights[None]."
        )
    sums = w.sum(axis=-1)
    bad = ~(np.abs(sums - 1) <= atol)
    if allow_empty_rows:
        bad &= ~(np.abs(sums) <= atol)
    if not bad.any():
        return
    index = tuple(np.argwhere(bad)[0])
    columns_sum = w.sum(axis=-2)
    hint = (
        "the columns sum to one instead: softmax was taken over the query axis"
        if w.ndim >= 2 and np.allclose(columns_sum, 1, atol=atol)
        else "weights were masked or scaled after the softmax without renormalising"
    )
    raise CheckFailure(
        f"attention weights do not sum to one over the keys: row {_where(index)} sums to "
        f"{sums[index]:.6g} ({int(bad.sum())} bad rows of {bad.size}); {hint}."
    )


def check_no_weight_on_masked(
    weights: npt.ArrayLike, attend_mask: npt.ArrayLike, *, atol: float = 1e-6
) -> None:
    """Raise if any (query, key) pair the mask removes got attention weight.

    Args:
        weights: ``(..., L, S)`` attention weights.
        attend_mask: boolean, True = may attend, broadcastable to ``weights``.
        atol: largest weight tolerated on a removed pair.

    Raises:
        CheckFailure: naming how many removed pairs leaked and the first one.

    Examples:
        >>> check_no_weight_on_masked(np.array([[1.0, 0.0]]), np.array([[True, False]]))
    """
    w = _numeric("weights", weights)
    atol = _tolerance("atol", atol)
    mask = _numeric("attend_mask", attend_mask).astype(bool)
    try:
        mask = np.broadcast_to(mask, w.shape)
    except ValueError:
        raise AttentionShapeError(
            f"attend_mask shape should broadcast to the weights {w.shape}: but got "
            f"{mask.shape}. Pass the mask the weights were computed with, e.g. "
            f"mask[:, None, None, :] for a (B, S) padding mask."
        ) from None
    leaked = ~mask & (np.abs(w) > atol)
    if not leaked.any():
        return
    index = tuple(np.argwhere(leaked)[0])
    raise CheckFailure(
        f"{int(leaked.sum())} masked (query, key) pairs got attention weight, first at "
        f"{_where(index)} with weight {float(w[index]):.3g}: the mask was not applied, "
        f"applied with the wrong polarity (True = ignore vs True = attend), or broadcast "
        f"along the wrong axis."
    )


def check_close(
    output: npt.ArrayLike,
    expected: npt.ArrayLike,
    *,
    rtol: float = 1e-5,
    atol: float = 1e-6,
    name: str = "output",
) -> None:
    """Raise if ``output`` differs from ``expected`` (e.g. ``refattn.attention``'s answer).

    Args:
        output: what the code under test computed.
        expected: the reference, same shape.
        rtol: relative tolerance.
        atol: absolute tolerance.
        name: what to call ``output`` in the message.

    Raises:
        CheckFailure: naming the shapes if they differ, else the largest difference and
            where it is.

    Examples:
        >>> check_close(np.ones(3), np.ones(3))
    """
    got, want = _numeric(name, output), _numeric("expected", expected)
    rtol, atol = _tolerance("rtol", rtol), _tolerance("atol", atol)
    if got.shape != want.shape:
        raise CheckFailure(
            f"{name} has shape {got.shape}, the reference {want.shape}: a transpose or "
            f"head merge put the axes in another order."
        )
    diff = np.abs(got.astype(np.float64) - want.astype(np.float64))
    bad = ~(diff <= atol + rtol * np.abs(want))
    if not bad.any():
        return
    index = tuple(np.argwhere(bad)[0])
    raise CheckFailure(
        f"{name} differs from the reference at {int(bad.sum())} of {bad.size} entries, "
        f"first at {_where(index)}: {float(got[index]):.6g} vs {float(want[index]):.6g} "
        f"(largest difference {float(np.nanmax(np.where(np.isnan(diff), np.inf, diff))):.3g})."
    )
