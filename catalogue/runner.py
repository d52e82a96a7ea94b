"""Run a case and report what really happened, for the tests, the CLI and the docs.

Every variant of a case (NumPy, and PyTorch, JAX, TensorFlow when the case has them and
the framework is installed) is run: ``broken`` must raise the claimed exception, or for
``"nan"``/``"silent"`` variants return something the case's ``detect`` refuses with the
claimed exception; ``fixed`` must run, pass ``detect`` and match ``reference()``. The
outcome strings are deterministic (see :func:`normalise`), so they can be
recorded in ``catalogue/outcomes.json`` and compared.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import numpy as np

from . import FRAMEWORK_MODULES, FRAMEWORKS, Case, Variant


@dataclass(frozen=True)
class VariantOutcome:
    """What running one framework variant showed.

    Attributes:
        framework: ``"numpy"``, ``"torch"``, ``"jax"`` or ``"tf"``.
        kind: the variant's kind.
        broken: what its broken function did, e.g. ``"RuntimeError: The size of ..."``.
        broken_ok: whether that is what the case claims (class and message pattern).
        fixed: ``"ok"``, what went wrong with its fixed function, or None when it has none.
        fixed_ok: whether the fixed function ran clean, passed ``detect`` and matched
            ``reference()``; None when it has none.
    """

    framework: str
    kind: str
    broken: str
    broken_ok: bool
    fixed: str | None
    fixed_ok: bool | None

    @property
    def ok(self) -> bool:
        """Broken as claimed, and fixed (if any) clean."""
        return self.broken_ok and self.fixed_ok is not False

    def record(self) -> dict[str, str | None]:
        """The part of the outcome ``catalogue/outcomes.json`` keeps."""
        return {"kind": self.kind, "broken": self.broken, "fixed": self.fixed}


@dataclass(frozen=True)
class Outcome:
    """What running one case showed.

    Attributes:
        broken: what NumPy ``broken()`` did, e.g. ``"ValueError: matmul: ..."``.
        broken_ok: whether that is what the case claims (class and message pattern).
        fixed: ``"ok"``, or what went wrong with ``fixed()``.
        fixed_ok: whether ``fixed()`` ran clean, passed ``detect`` and matched
            ``reference()``.
        torch: what ``torch_broken()`` did, or None when the case has none or torch is
            not installed.
        torch_ok: whether the torch variant is as claimed (fixed included), or None.
        variants: the outcome of every variant that ran, by framework (``numpy`` first).
        not_installed: frameworks the case has variants for that are not installed.
    """

    broken: str
    broken_ok: bool
    fixed: str
    fixed_ok: bool
    torch: str | None
    torch_ok: bool | None
    variants: dict[str, VariantOutcome] = field(default_factory=dict)
    not_installed: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """Every variant that ran is as claimed."""
        return all(v.ok for v in self.variants.values())


_ADDRESS = re.compile(r"\b0x[0-9a-fA-F]{6,}\b")
_TF_NODE = re.compile(r"\{\{function_node [^}]*\}\} ?")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def normalise(text: str) -> str:
    """``text`` without what changes between runs and machines.

    Memory addresses become ``0x…``; TensorFlow's ``{{function_node ...}}`` prefix, which
    names the device and the kernel build (``_MklBatchMatMulV2`` with oneDNN), and the
    terminal colour codes Keras puts around it are dropped.
    """
    return _ANSI.sub("", _TF_NODE.sub("", _ADDRESS.sub("0x…", text)))


def _describe(error: BaseException) -> str:
    return normalise(f"{type(error).__name__}: {error}")


@cache
def installed(framework: str) -> bool:
    """Whether ``framework``'s module can be imported here."""
    return importlib.util.find_spec(FRAMEWORK_MODULES[framework]) is not None


def resolve(expected: type[BaseException] | str) -> type[BaseException]:
    """The exception class ``expected`` names (a class, or its dotted import path)."""
    if not isinstance(expected, str):
        return expected
    parts = expected.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        try:
            found: Any = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for name in parts[cut:]:
            found = getattr(found, name)
        if isinstance(found, type) and issubclass(found, BaseException):
            return found
        break
    raise TypeError(f"{expected!r} does not name an exception class")


def to_numpy(value: object) -> Any:
    """A framework's output as NumPy: torch tensors, tf tensors, jax arrays, tuples of them."""
    if isinstance(value, tuple | list):
        return tuple(to_numpy(v) for v in value)
    if hasattr(value, "detach"):  # torch
        tensor: Any = value.detach().cpu()
        if str(tensor.dtype) == "torch.bfloat16":
            tensor = tensor.float()
        return tensor.numpy()
    if hasattr(value, "numpy") and not isinstance(value, np.ndarray):  # tf
        return np.asarray(value.numpy())
    return np.asarray(value)


def _raises(fn: object, expected: type[BaseException] | str, pattern: str) -> tuple[str, bool]:
    """Call ``fn``; return what happened and whether it raised ``expected`` matching."""
    try:
        fn()  # type: ignore[operator]
    except BaseException as error:
        ok = type(error) is resolve(expected) and bool(re.search(pattern, str(error)))
        return _describe(error), ok
    return "returned without an exception", False


def _run_broken(case: Case, variant: Variant) -> tuple[str, bool]:
    if variant.kind == "exception":
        return _raises(variant.broken, variant.expected, variant.match)
    try:
        output = variant.broken()
        if variant.framework != "numpy":
            output = to_numpy(output)
    except BaseException as error:
        return f"raised {_describe(error)} instead of returning", False
    detect = getattr(case.module, "detect", None)
    if detect is None:
        return "returned; the case has no detect() to judge it", False
    what, ok = _raises(lambda: detect(output), variant.expected, variant.match)
    symptom = "NaN/inf" if variant.kind == "nan" else "a wrong result"
    return f"returned {symptom}; detect raised {round_decimals(what)}", ok


_DECIMAL = re.compile(r"(?<![\w.])-?\d+\.\d+(?:e[-+]?\d+)?(?!\w|\.\d)")


def round_decimals(text: str) -> str:
    """Decimals in ``text`` to 4 significant digits.

    A detector's message quotes values computed by the variant (``-0.434529 vs
    -0.0643316``); float32 results from another CPU or kernel build can differ in the
    last digits, so the recorded outcome keeps only the digits that do not.
    """
    return _DECIMAL.sub(lambda m: f"{float(m.group()):.4g}", text)


def _run_fixed(case: Case, variant: Variant) -> tuple[str | None, bool | None]:
    if variant.fixed is None:
        return None, None
    m = case.module
    try:
        result = variant.fixed()
        if variant.framework != "numpy":
            result = to_numpy(result)
        if hasattr(m, "detect"):
            m.detect(result)
        if hasattr(m, "reference"):
            np.testing.assert_allclose(
                np.asarray(result, dtype=np.float64),
                np.asarray(m.reference(), dtype=np.float64),
                rtol=variant.fixed_rtol,
                atol=variant.fixed_atol,
            )
    except BaseException as error:
        return _describe(error), False
    return "ok", True


def run_variant(case: Case, framework: str) -> VariantOutcome | None:
    """Run ``case``'s variant for ``framework``; None when it has none or it is not installed."""
    variant = case.variant(framework)
    if variant is None or not installed(framework):
        return None
    broken, broken_ok = _run_broken(case, variant)
    fixed, fixed_ok = _run_fixed(case, variant)
    return VariantOutcome(framework, variant.kind, broken, broken_ok, fixed, fixed_ok)


def run_broken(case: Case) -> tuple[str, bool]:
    """Run NumPy ``broken()`` (and ``detect`` for silent kinds)."""
    variant = case.variant("numpy")
    assert variant is not None
    return _run_broken(case, variant)


def run_fixed(case: Case) -> tuple[str, bool]:
    """Run NumPy ``fixed()``, its detector and its reference comparison."""
    variant = case.variant("numpy")
    assert variant is not None
    what, ok = _run_fixed(case, variant)
    return what or "ok", bool(ok)


def run_torch(case: Case) -> tuple[str | None, bool | None]:
    """Run the PyTorch variant when the case has one and torch is importable."""
    outcome = run_variant(case, "torch")
    return (None, None) if outcome is None else (outcome.broken, outcome.ok)


def run(case: Case) -> Outcome:
    """Run every variant of ``case`` whose framework is installed."""
    variants: dict[str, VariantOutcome] = {}
    missing = []
    for fw in FRAMEWORKS:
        if case.variant(fw) is None:
            continue
        outcome = run_variant(case, fw)
        if outcome is None:
            missing.append(fw)
        else:
            variants[fw] = outcome
    numpy_outcome = variants["numpy"]
    torch_outcome = variants.get("torch")
    return Outcome(
        numpy_outcome.broken,
        numpy_outcome.broken_ok,
        numpy_outcome.fixed or "ok",
        bool(numpy_outcome.fixed_ok),
        None if torch_outcome is None else torch_outcome.broken,
        None if torch_outcome is None else torch_outcome.ok,
        variants,
        tuple(missing),
    )
