r"""Compare an attention output with refattn's float64 reference, with a measured tolerance.

The tolerance is never picked per dtype. For each call it is measured: the float64
reference (:func:`refattn.attention` on the inputs in float64) against a naive run of the
same math in the output's dtype (logits, weights and output each rounded to it, as a
framework computing attention in that dtype does). ``actual`` passes when, **row by row**
(one query row of one head), its error is at most ``factor`` times that baseline error plus
a floor of ``floor_ulps`` units in the last place of ``max |value|``. Checking rows, not
only the global maximum, catches errors that are small element-wise but structured (a
whole head, every row past the cache length). The NaN/inf pattern, the shape and the dtype
must match too.

When ``actual`` fails, each mutant of :mod:`refattn.testing.mistakes` (the same call with
one known mistake) is compared with it under the same measured tolerance; mutants that
match every wrong row are the explanations.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from refattn.errors import AttentionArgumentError, AttentionValueError
from refattn.reference import attention
from refattn.testing import _naive
from refattn.testing._naive import EPS, Call, Rotary
from refattn.validation import _OPTION_NAMES, check_keywords

F64 = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

DEFAULT_FACTOR = 2.0
DEFAULT_FLOOR_ULPS = 2.0
_MUTANT_SLACK = 2.0  # a mutant's own low-precision error is measured too; this absorbs the rest


@dataclass(frozen=True)
class Explanation:
    """A known mistake whose output matches ``actual`` where it is wrong.

    Attributes:
        mutant: the mutant's name (see :func:`refattn.testing.mutants`).
        description: what the mistaken code does, one sentence.
        tags: taxonomy tags (``catalogue/taxonomy.py``).
        case: the catalogue case id that shows the mistake, or None.
        rows_matched: fraction of all rows where ``actual`` matches the mutant.
        error_ratio: mean over the wrong rows of error / allowed error against the mutant.
    """

    mutant: str
    description: str
    tags: tuple[str, ...]
    case: str | None
    rows_matched: float
    error_ratio: float


@dataclass
class Comparison:
    """The structured result of :func:`compare` (also on :class:`AttentionMismatch`).

    Attributes:
        passed: True when shape, dtype, NaN/inf pattern and every row are within tolerance.
        dtype: the dtype ``actual`` was judged in (``"bfloat16"`` for bfloat16 tensors).
        expected_dtype: the inputs' dtype, which the output should have.
        shape: ``actual``'s shape.
        expected_shape: the reference's shape ``(..., Hq, L, Dv)``.
        max_error: largest ``|actual - reference|`` over finite entries.
        allowed_error: the allowed error at that entry's row.
        baseline_error: largest error of the naive low-precision run.
        factor: the multiple of the baseline error allowed.
        floor: the absolute floor added to the allowed error.
        wrong_rows: ``(..., Hq, L)`` boolean, True for rows out of tolerance (or with a
            wrong NaN/inf pattern); None when shapes differ.
        nonfinite_rows: ``(..., Hq, L)``, rows whose NaN/inf pattern differs.
        problems: one line per problem found (shape, dtype, NaN, error).
        where: where the wrong rows are, in words.
        explanations: mutants that match, best first (may be empty).
    """

    passed: bool
    dtype: str
    expected_dtype: str
    shape: tuple[int, ...]
    expected_shape: tuple[int, ...]
    max_error: float = 0.0
    allowed_error: float = 0.0
    baseline_error: float = 0.0
    factor: float = DEFAULT_FACTOR
    floor: float = 0.0
    wrong_rows: BoolArray | None = None
    nonfinite_rows: BoolArray | None = None
    problems: list[str] = field(default_factory=list)
    where: str = ""
    explanations: list[Explanation] = field(default_factory=list)

    @property
    def explanation(self) -> Explanation | None:
        """The best explanation, or None."""
        return self.explanations[0] if self.explanations else None

    def message(self) -> str:
        """The few lines :class:`AttentionMismatch` shows."""
        if self.passed:
            return (
                f"attention output matches the float64 reference: max error "
                f"{self.max_error:.3g}, allowed {self.allowed_error:.3g}"
            )
        lines = ["attention output differs from refattn's float64 reference:"]
        lines += [f"  {p}" for p in self.problems]
        if self.where:
            lines.append(f"  where: {self.where}")
        if self.explanations:
            best = self.explanations[0]
            case = f"; catalogue case {best.case}" if best.case else ""
            lines.append(
                f"  explained by mutant {best.mutant!r} ({', '.join(best.tags)}{case}): "
                f"{best.description}"
            )
            others = [e.mutant for e in self.explanations[1:4]]
            if others:
                lines.append(f"  also consistent with: {', '.join(others)}")
        elif self.wrong_rows is not None and self.wrong_rows.any():
            lines.append("  no known mistake explains it (no mutant matches the wrong rows)")
        return "\n".join(lines)


class AttentionMismatch(AssertionError):
    """Raised by :func:`assert_attention_close`; the :class:`Comparison` is ``.result``."""

    def __init__(self, result: Comparison) -> None:
        super().__init__(result.message())
        self.result = result


def dtype_name(x: Any) -> str:
    """The dtype name of a NumPy array, torch tensor or JAX array (``"bfloat16"`` kept)."""
    dt = getattr(x, "dtype", None)
    if dt is None:
        return str(np.asarray(x).dtype)
    return str(dt).removeprefix("torch.")


def to_numpy(x: Any) -> npt.NDArray[Any]:
    """A NumPy array from a NumPy array, torch tensor or JAX array; bfloat16 as float32."""
    if type(x).__module__.startswith("torch"):
        x = x.detach().cpu()
        if dtype_name(x) == "bfloat16":
            x = x.float()
        return np.asarray(x.numpy())
    arr = np.asarray(x)
    if arr.dtype.name == "bfloat16":
        arr = arr.astype(np.float32)
    return arr


def _options64(options: Mapping[str, Any]) -> dict[str, Any]:
    for name in ("return_weights", "return_lse"):
        if name in options:
            raise AttentionArgumentError(
                f"{name} should not be passed to refattn.testing's compare or "
                f"assert_attention_close: but got {name}={options[name]!r}. They judge the "
                f"output (..., Hq, L, Dv) only: drop {name}, and pass result.output as "
                f"actual when it came from a return_weights/return_lse call."
            )
    unknown = {name: v for name, v in options.items() if name not in _OPTION_NAMES}
    check_keywords(unknown, "to refattn.testing's compare or assert_attention_close")
    out: dict[str, Any] = {}
    for name, value in options.items():
        if name in ("dropout_p", "rng", "dropout_keep", "memory_budget"):
            if name == "dropout_p" and value:
                raise AttentionValueError(
                    "dropout_p should be 0.0: refattn.testing compares deterministic calls, "
                    f"but got dropout_p={value!r}. Test with dropout_p=0.0 (and dropout "
                    f"statistics separately)."
                )
            continue
        if value is None or isinstance(value, str | int | float | tuple):
            out[name] = value
        else:
            arr = to_numpy(value)
            out[name] = arr.astype(np.float64) if arr.dtype.kind == "f" else arr
    return out


def _tolerance_argument(name: str, value: object) -> float:
    """``factor`` or ``floor_ulps`` as a float, refusing what would pass any output."""
    if isinstance(value, bool | np.bool_) or not isinstance(
        value, int | float | np.integer | np.floating
    ):
        raise AttentionValueError(
            f"{name} should be a finite number >= 0: but got {value!r} of type "
            f"{type(value).__name__}. Pass a number such as {name}=2.0 (the default)."
        )
    number = float(value)
    if not (math.isfinite(number) and number >= 0):
        raise AttentionValueError(
            f"{name} should be a finite number >= 0: but got {number!r}. A NaN or infinite "
            f"tolerance passes any output (error > NaN is False) and a negative one fails "
            f"every output; pass a number such as {name}=2.0 (the default)."
        )
    return number


def _rotary64(rotary: Rotary | None) -> Rotary | None:
    if rotary is None:
        return None
    cos, sin = (to_numpy(t).astype(np.float64) for t in (rotary.cos, rotary.sin))
    return Rotary(cos, sin, bool(rotary.interleaved))


def _describe_axis(flags: BoolArray, noun: str, symbol: str) -> str:
    """``flags`` (n,) over one axis, in words: 'all 4 heads', 'rows i >= 3 of 7', ..."""
    n = flags.size
    idx = np.flatnonzero(flags)
    if idx.size == n:
        return f"all {n} {noun}"
    first, last = int(idx[0]), int(idx[-1])
    if idx.size == 1:
        return f"{noun} {first} (of {n})"
    contiguous = idx.size == last - first + 1
    if contiguous and last == n - 1 and first > 0:
        return f"{noun} {symbol} >= {first} (of {n})"
    if contiguous and first == 0:
        return f"{noun} {symbol} < {last + 1} (of {n})"
    shown = ", ".join(str(int(i)) for i in idx[:8]) + (", ..." if idx.size > 8 else "")
    return f"{noun} {shown} (of {n})"


def describe_rows(wrong: BoolArray) -> str:
    """Where the wrong rows ``(..., Hq, L)`` are: batch entries, heads, query rows."""
    rows: BoolArray = wrong.reshape(-1, *wrong.shape[-2:])  # (B, Hq, L)
    per_batch = np.asarray(rows.any(axis=(1, 2)))
    per_head = np.asarray(rows.any(axis=(0, 2)))
    per_row = np.asarray(rows.any(axis=(0, 1)))
    total = int(rows.sum())
    parts = [f"{total} of {rows.size} rows (one query of one head)"]
    parts.append(_describe_axis(per_batch, "batch entries", "b"))
    parts.append(_describe_axis(per_head, "heads", "h"))
    parts.append(_describe_axis(per_row, "query rows", "i"))
    return "; ".join(parts)


@dataclass(frozen=True)
class _Tolerance:
    allowed_max: F64  # (..., Hq, L)
    allowed_rms: F64
    floor: float
    baseline_max: float


def _row_stats(diff: F64) -> tuple[F64, F64]:
    err = np.where(np.isfinite(diff), np.abs(diff), 0.0)
    return err.max(axis=-1, initial=0.0), np.sqrt(np.mean(err**2, axis=-1))


def _tolerance(
    exact: F64, model: F64, value: F64, dtype: str, factor: float, floor_ulps: float
) -> _Tolerance:
    """Allowed error per row, from the model run's error against the exact output."""
    base_max, base_rms = _row_stats(model - exact)
    finite = np.where(np.isfinite(exact), np.abs(exact), 0.0)
    mag = finite.max(axis=-1, initial=0.0)
    vmax = float(np.max(np.abs(value[np.isfinite(value)]), initial=0.0)) or 1.0
    floor = floor_ulps * EPS[dtype] * vmax
    # a row whose model error happens to be ~0 still gets the typical relative error
    rel = base_max[mag > 0] / mag[mag > 0]
    typical = float(np.median(rel)) if rel.size else 0.0
    rel_rms = base_rms[mag > 0] / mag[mag > 0]
    typical_rms = float(np.median(rel_rms)) if rel_rms.size else 0.0
    allowed_max = factor * np.maximum(base_max, typical * mag) + floor
    allowed_rms = factor * np.maximum(base_rms, typical_rms * mag) + floor
    return _Tolerance(allowed_max, allowed_rms, floor, float(base_max.max(initial=0.0)))


def _wrong_rows(actual: F64, expected: F64, tol: _Tolerance) -> tuple[BoolArray, BoolArray, F64]:
    """Rows out of tolerance, rows with another NaN/inf pattern, and err / allowed per row."""
    nonfinite = (~np.isfinite(actual) != ~np.isfinite(expected)).any(axis=-1)
    both = np.isfinite(actual) & np.isfinite(expected)
    err_max, err_rms = _row_stats(np.where(both, actual - expected, 0.0))
    with np.errstate(divide="ignore", invalid="ignore"):  # factor = floor_ulps = 0
        ratio = np.maximum(err_max / tol.allowed_max, err_rms / tol.allowed_rms)
    ratio = np.where(np.isnan(ratio), 0.0, ratio)  # 0 / 0: no error where none is allowed
    return nonfinite | (ratio > 1.0), nonfinite, ratio


def compare(
    actual: Any,
    query: Any,
    key: Any,
    value: Any,
    *,
    factor: float = DEFAULT_FACTOR,
    floor_ulps: float = DEFAULT_FLOOR_ULPS,
    explain: bool = True,
    rotary: Rotary | None = None,
    **options: Any,
) -> Comparison:
    r"""Compare ``actual`` with the reference; never raises on a mismatch.

    Args:
        actual: the output to judge, ``(..., Hq, L, Dv)`` (NumPy, torch or JAX).
        query: ``(..., Hq, L, D)``, the inputs ``actual`` was computed from.
        key: ``(..., Hkv, S, D)``.
        value: ``(..., Hkv, S, Dv)``.
        factor: allowed multiple of the naive low-precision run's error.
        floor_ulps: absolute floor, in units of ``eps(dtype) * max |value|``.
        explain: look for the mutants that explain a failure.
        rotary: a :class:`Rotary` embedding ``actual``'s implementation applied to the
            (unrotated) ``query`` and ``key`` first, or None.
        **options: :func:`refattn.attention`'s keyword arguments for the call.

    Returns:
        A :class:`Comparison`.

    Raises:
        AttentionValueError: ``factor`` or ``floor_ulps`` not a finite number ``>= 0``; a
            nonzero ``dropout_p``.
        AttentionArgumentError: ``return_weights``, ``return_lse`` or a keyword that is not
            an option of :func:`refattn.attention`.
    """
    q64, k64, v64 = (to_numpy(x).astype(np.float64) for x in (query, key, value))
    return compare_arrays(
        to_numpy(actual),
        dtype_name(actual),
        Call(q64, k64, v64, _options64(options), rotary=_rotary64(rotary)),
        dtype_name(query),
        factor=factor,
        floor_ulps=floor_ulps,
        explain=explain,
    )


def compare_arrays(
    act: npt.NDArray[Any],
    dtype: str,
    call: Call,
    expected_dtype: str,
    *,
    factor: float = DEFAULT_FACTOR,
    floor_ulps: float = DEFAULT_FLOOR_ULPS,
    explain: bool = True,
) -> Comparison:
    """:func:`compare` on NumPy arrays already in refattn's layout.

    Args:
        act: ``actual`` as a NumPy array (bfloat16 as float32).
        dtype: ``actual``'s dtype name.
        call: the float64 inputs and :func:`refattn.attention`'s options.
        expected_dtype: the dtype the output should have.
        factor: allowed multiple of the naive low-precision run's error.
        floor_ulps: absolute floor, in units of ``eps(dtype) * max |value|``.
        explain: look for the mutants that explain a failure.

    Returns:
        A :class:`Comparison`.

    Raises:
        AttentionValueError: ``factor`` or ``floor_ulps`` not a finite number ``>= 0``.
    """
    factor = _tolerance_argument("factor", factor)
    floor_ulps = _tolerance_argument("floor_ulps", floor_ulps)
    v64, opts = call.value, dict(call.options)
    q64, k64 = _naive.rotated(call)
    reference = np.asarray(attention(q64, k64, v64, **opts), dtype=np.float64)
    result = Comparison(
        passed=False,
        dtype=dtype,
        expected_dtype=expected_dtype,
        shape=tuple(act.shape),
        expected_shape=tuple(reference.shape),
        factor=factor,
    )
    if act.shape != reference.shape:
        result.problems.append(
            f"shape {tuple(act.shape)} should be {tuple(reference.shape)} (..., Hq, L, Dv)"
        )
        return result
    if act.dtype.kind != "f":
        result.problems.append(f"dtype {dtype} is not floating; expected {expected_dtype}")
        return result
    if dtype != expected_dtype:
        result.problems.append(f"dtype {dtype} should be the inputs' dtype {expected_dtype}")
    judge = expected_dtype if expected_dtype in EPS else "float64"
    if dtype in EPS and EPS[dtype] > EPS[judge]:
        judge = dtype  # an output in a lower precision is judged in that precision
    model = _naive.evaluate(call, judge)
    tol = _tolerance(reference, model, v64, judge, factor, floor_ulps)
    act64 = act.astype(np.float64)
    wrong, nonfinite, ratio = _wrong_rows(act64, reference, tol)
    finite = np.isfinite(act64) & np.isfinite(reference)
    err = np.where(finite, np.abs(act64 - reference), 0.0)
    flat = int(np.argmax(err)) if err.size else 0
    result.max_error = float(err.flat[flat]) if err.size else 0.0
    if err.size:
        row_index = np.unravel_index(flat, err.shape)[:-1]
        result.allowed_error = float(tol.allowed_max[row_index])
    result.baseline_error = tol.baseline_max
    result.floor = tol.floor
    result.wrong_rows, result.nonfinite_rows = wrong, nonfinite
    if nonfinite.any():
        n_act = int((~np.isfinite(act64)).any(axis=-1).sum())
        n_ref = int((~np.isfinite(reference)).any(axis=-1).sum())
        result.problems.append(
            f"NaN/inf pattern differs in {int(nonfinite.sum())} rows "
            f"(actual has {n_act} rows with NaN/inf, the reference {n_ref})"
        )
    if (ratio > 1.0).any():
        worst = np.unravel_index(
            int(np.argmax(np.where(np.isfinite(ratio), ratio, 0))), ratio.shape
        )
        result.problems.append(
            f"max error {result.max_error:.3g} against allowed {result.allowed_error:.3g} "
            f"({factor:g} x the naive {judge} run's error {tol.baseline_max:.3g} + floor "
            f"{tol.floor:.3g}); worst row {tuple(int(i) for i in worst)} at "
            f"{float(ratio[worst]):.3g} x its allowance"
        )
    if wrong.any():
        result.where = describe_rows(wrong)
    result.passed = not result.problems
    if not result.passed and explain and wrong.any():
        from refattn.testing.mistakes import explain as find_explanations

        result.explanations = find_explanations(act64, call, wrong, judge, factor, floor_ulps)
    return result


def match_mutant(
    actual: F64,
    call: Call,
    wrong: BoolArray,
    dtype: str,
    factor: float,
    floor_ulps: float,
) -> tuple[float, float] | None:
    """How well ``actual`` matches one mutant call: (rows matched, mean error ratio).

    None when the mutant does not match every row in ``wrong``.
    """
    try:
        exact = _naive.evaluate(call)
    except (ValueError, TypeError):
        return None
    if exact.shape != actual.shape:
        return None
    model = _naive.evaluate(call, dtype)
    tol = _tolerance(exact, model, call.value, dtype, _MUTANT_SLACK * factor, floor_ulps)
    bad, _, ratio = _wrong_rows(actual, exact, tol)
    if (bad & wrong).any():
        return None
    return float(1.0 - bad.mean()), float(np.mean(ratio[wrong]))


def assert_attention_close(
    actual: Any,
    query: Any,
    key: Any,
    value: Any,
    *,
    factor: float = DEFAULT_FACTOR,
    floor_ulps: float = DEFAULT_FLOOR_ULPS,
    explain: bool = True,
    rotary: Rotary | None = None,
    **options: Any,
) -> Comparison:
    r"""Assert that ``actual`` is ``refattn.attention(query, key, value, **options)``.

    The tolerance is measured for this call (see :mod:`refattn.testing.comparison`): row by
    row, ``actual``'s error against the float64 reference must be at most ``factor``
    times the error of a naive run in ``actual``'s dtype, plus a floor. Shape, dtype and
    the NaN/inf pattern must match.

    Args:
        actual: ``(..., Hq, L, Dv)``: a NumPy array, torch tensor or JAX array.
        query: ``(..., Hq, L, D)``, what ``actual`` was computed from.
        key: ``(..., Hkv, S, D)``.
        value: ``(..., Hkv, S, Dv)``.
        factor: allowed multiple of the naive low-precision run's error (2, as in
            flash-attn's tests).
        floor_ulps: absolute floor in units of ``eps(dtype) * max |value|``.
        explain: on failure, name the known mistakes (mutants) that match ``actual``.
        rotary: a :class:`Rotary` embedding applied to the (unrotated) ``query`` and
            ``key`` before attention, when ``actual``'s implementation applies one.
        **options: :func:`refattn.attention`'s keyword arguments (``causal``,
            ``attend_mask``, ``key_lengths``, ``fully_masked`` ...).

    Returns:
        The :class:`Comparison` when it passes.

    Raises:
        AttentionMismatch: an ``AssertionError`` whose message says how large the error
            is against the allowed one, where it is, and which known mistake explains it;
            ``.result`` holds the :class:`Comparison`.

    Examples:
        >>> import numpy as np
        >>> from refattn.testing import assert_attention_close
        >>> rng = np.random.default_rng(0)
        >>> q, k, v = (rng.standard_normal((1, 2, 5, 8), dtype=np.float32) for _ in "qkv")
        >>> logits = q @ k.transpose(0, 1, 3, 2)  # forgot the 1/sqrt(D) scale
        >>> w = np.exp(logits - logits.max(-1, keepdims=True))
        >>> out = (w / w.sum(-1, keepdims=True)) @ v
        >>> try:
        ...     assert_attention_close(out, q, k, v)
        ... except AssertionError as e:
        ...     print(e.result.explanation.mutant)
        no_scale
    """
    result = compare(
        actual,
        query,
        key,
        value,
        factor=factor,
        floor_ulps=floor_ulps,
        explain=explain,
        rotary=rotary,
        **options,
    )
    if not result.passed:
        raise AttentionMismatch(result)
    return result


__all__ = [
    "AttentionMismatch",
    "Comparison",
    "Explanation",
    "Rotary",
    "assert_attention_close",
    "compare",
    "describe_rows",
]
