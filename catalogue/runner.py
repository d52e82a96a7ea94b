"""Run a case and report what really happened, for the tests, the CLI and the docs."""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from . import Case


@dataclass(frozen=True)
class Outcome:
    """What running one case showed.

    Attributes:
        broken: what ``broken()`` did, e.g. ``"ValueError: matmul: ..."``.
        broken_ok: whether that is what the case claims (class and message pattern).
        fixed: ``"ok"``, or what went wrong with ``fixed()``.
        fixed_ok: whether ``fixed()`` ran clean, passed ``detect`` and matched
            ``reference()``.
        torch: what ``torch_broken()`` did, or None when the case has none or torch is
            not installed.
        torch_ok: whether that is the claimed torch exception, or None.
    """

    broken: str
    broken_ok: bool
    fixed: str
    fixed_ok: bool
    torch: str | None
    torch_ok: bool | None


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


def _raises(fn: object, expected: type[BaseException], pattern: str) -> tuple[str, bool]:
    """Call ``fn``; return what happened and whether it raised ``expected`` matching."""
    try:
        fn()  # type: ignore[operator]
    except BaseException as error:
        return _describe(error), type(error) is expected and bool(re.search(pattern, str(error)))
    return "returned without an exception", False


def run_broken(case: Case) -> tuple[str, bool]:
    """Run ``broken()`` (and ``detect`` for silent kinds)."""
    m = case.module
    if case.kind == "exception":
        return _raises(m.broken, m.EXPECTED, m.MATCH)
    try:
        output = m.broken()
    except BaseException as error:
        return f"raised {_describe(error)} instead of returning", False
    what, ok = _raises(lambda: m.detect(output), m.EXPECTED, m.MATCH)
    symptom = "NaN/inf" if case.kind == "nan" else "a wrong result"
    return f"returned {symptom}; detect raised {what}", ok


def run_fixed(case: Case) -> tuple[str, bool]:
    """Run ``fixed()``, its detector and its reference comparison."""
    m = case.module
    try:
        result = m.fixed()
        if hasattr(m, "detect"):
            m.detect(result)
        if hasattr(m, "reference"):
            np.testing.assert_allclose(result, m.reference(), rtol=1e-5, atol=1e-6)
    except BaseException as error:
        return _describe(error), False
    return "ok", True


def run_torch(case: Case) -> tuple[str | None, bool | None]:
    """Run ``torch_broken()`` when the case has one and torch is importable."""
    m = case.module
    if not case.has_torch:
        return None, None
    try:
        import torch  # noqa: F401
    except ImportError:
        return None, None
    return _raises(m.torch_broken, m.TORCH_EXPECTED, m.TORCH_MATCH)


def run(case: Case) -> Outcome:
    """Run every part of ``case``."""
    broken, broken_ok = run_broken(case)
    fixed, fixed_ok = run_fixed(case)
    torch_what, torch_ok = run_torch(case)
    return Outcome(broken, broken_ok, fixed, fixed_ok, torch_what, torch_ok)
