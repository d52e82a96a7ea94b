"""The catalogue of attention failures: one module per case in ``catalogue/cases``.

A case module is a contract (second edition) that the runner, the CLI, ``diagnose``,
the tests and the docs site rely on; its names are stable.

The NumPy pair (every case):

- module docstring: the page prose. A title line, then sections ``What happens``,
  ``Why`` and ``Fix``; optionally a final ``Sources:`` section, one URL per line with a
  few words each (real public reports the case is built on, found with the search tool).
  Behaviour seen only on a GPU is never presented as run: a sentence marked
  "(GPU-only, not run here; source: URL)".
- ``KIND``: ``"exception"`` (``broken()`` raises), ``"nan"`` (it silently returns NaN or
  inf) or ``"silent"`` (it silently returns a wrong result).
- ``EXPECTED``: the exception class; ``MATCH``: a regex its message must match
  (``re.search``).
- ``TAGS``: a tuple of tags from :mod:`catalogue.taxonomy`.
- ``broken()``: the minimal NumPy code a user would write; ``fixed()``: the corrected
  code, returning its result. Deterministic, tiny, no I/O. Snippet markers
  ``# --8<-- [start:broken]`` / ``[end:broken]`` (likewise ``fixed``) surround them.
- ``detect(output)``, for ``"nan"`` and ``"silent"``: raises ``EXPECTED`` (matching
  ``MATCH``) on ``broken()``'s output and passes on ``fixed()``'s. Built from
  :mod:`refattn.checks`.

Optional:

- ``reference()``: what ``fixed()`` (and every ``fw_fixed()``) must return, computed with
  :func:`refattn.attention`.
- ``SEED_CLAIMS``: what a seed article claimed about this mistake and what running it
  shows, as ``(article, claim, reality)`` triples.
- ``MESSAGES``: regexes of framework error messages (NumPy, PyTorch, JAX, TensorFlow)
  this case explains, for ``diagnose``; ``SYMPTOMS``: phrases of symptoms in words.

Framework variants, for FW in ``TORCH``, ``JAX``, ``TF`` (function prefix fw in
``torch``, ``jax``, ``tf``; see :data:`FRAMEWORKS`):

- ``fw_broken()``: the same mistake as users of that framework write it (``torch``,
  ``F.scaled_dot_product_attention``, ``nn.MultiheadAttention``; ``jax.numpy``,
  ``jax.nn.dot_product_attention``; ``tf``, ``tf.keras.layers.MultiHeadAttention``),
  importing the framework inside the function. Tiny, deterministic, CPU only.
- ``FW_KIND``: ``"exception"`` (the default), ``"nan"`` or ``"silent"``: what really
  happens in that framework, which may differ from ``KIND``.
- ``FW_EXPECTED``, ``FW_MATCH``: for ``"exception"``, the class the framework raises and
  a regex of its real message. A class that lives inside the framework (TensorFlow's
  ``InvalidArgumentError``) is given as its dotted import path, a string such as
  ``"tensorflow.errors.InvalidArgumentError"``, so the case module imports without the
  framework; the runner resolves it when the framework is there. The raised class must
  be exactly that class. For ``"nan"``/``"silent"``, ``fw_broken()`` returns an
  array-like (a tuple of them is converted item by item) that the runner converts to
  NumPy (torch ``.detach().cpu().numpy()``, bfloat16 via float32; tf ``.numpy()``;
  jax ``np.asarray``) and gives to the case's ``detect``, which must raise
  ``FW_EXPECTED`` matching ``FW_MATCH`` (``FW_EXPECTED = EXPECTED`` is fine).
- ``fw_fixed()`` (optional, encouraged): the fix in that framework; returns an
  array-like that passes ``detect`` (when the case has one) and matches ``reference()``
  (when the case has one) within ``rtol=FW_FIXED_RTOL`` (default ``1e-5``) and
  ``atol=FW_FIXED_ATOL`` (default ``1e-6``), compared in float64. Wider tolerances only
  for float16/bfloat16 cases.
- ``FW_NOTE`` (optional): one or two sentences for the page on how this framework
  differs; only claims the variant runs.
- ``FW_ABSENT = "why"``: the framework cannot make this mistake at all (no such API); no
  function then. A framework that refuses the input is an ``"exception"`` variant, not
  absent.

The historic names ``TORCH_EXPECTED`` / ``TORCH_MATCH`` / ``torch_broken()`` are the
PyTorch variant of this scheme.

Recorded outcomes: ``catalogue/outcomes.json``, written by ``python -m catalogue.record``
(all cases, or the ids given), holds per case and per variant the kind and the outcome
strings :mod:`catalogue.runner` produced. ``pytest catalogue`` asserts every live outcome
equals the recorded one; the docs build shows live outcomes for installed frameworks
(failing if they differ from the record) and the recorded ones otherwise.

Inside ``catalogue/`` imports are relative (``from ._common import softmax``,
``from . import Case``): the package ships under refattn's namespace in the wheel.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from types import ModuleType

from . import cases as _cases_package

FRAMEWORKS: tuple[str, ...] = ("numpy", "torch", "jax", "tf")
"""Variant names, in page-tab order."""

FRAMEWORK_LABELS: dict[str, str] = {
    "numpy": "NumPy",
    "torch": "PyTorch",
    "jax": "JAX",
    "tf": "TensorFlow",
}
"""How pages and the CLI name each framework."""

FRAMEWORK_MODULES: dict[str, str] = {
    "numpy": "numpy",
    "torch": "torch",
    "jax": "jax",
    "tf": "tensorflow",
}
"""The module a variant needs installed to run."""

KINDS: tuple[str, ...] = ("exception", "nan", "silent")


@dataclass(frozen=True)
class Variant:
    """One framework's version of a case's mistake.

    Attributes:
        framework: one of :data:`FRAMEWORKS`.
        kind: ``"exception"``, ``"nan"`` or ``"silent"``.
        expected: the exception class, or its dotted import path (see the module doc).
        match: regex the exception's message must match.
        broken: the function making the mistake.
        fixed: the function with the fix, or None.
        note: ``FW_NOTE``, or None.
        fixed_rtol: relative tolerance of ``fixed`` against ``reference()``.
        fixed_atol: absolute tolerance of ``fixed`` against ``reference()``.
    """

    framework: str
    kind: str
    expected: type[BaseException] | str
    match: str
    broken: Callable[[], object]
    fixed: Callable[[], object] | None
    note: str | None = None
    fixed_rtol: float = 1e-5
    fixed_atol: float = 1e-6

    @property
    def label(self) -> str:
        """``"PyTorch"`` and so on."""
        return FRAMEWORK_LABELS[self.framework]

    @property
    def expected_name(self) -> str:
        """The expected exception's class name (without resolving a dotted path)."""
        if isinstance(self.expected, str):
            return self.expected.rsplit(".", 1)[-1]
        return self.expected.__name__


@dataclass(frozen=True)
class Case:
    """One catalogue case: its id and its module."""

    id: str
    module: ModuleType

    @property
    def title(self) -> str:
        """The first line of the module docstring."""
        return (self.module.__doc__ or "").strip().splitlines()[0]

    @property
    def kind(self) -> str:
        """``"exception"``, ``"nan"`` or ``"silent"``."""
        return str(self.module.KIND)

    @property
    def tags(self) -> tuple[str, ...]:
        """Taxonomy tags."""
        return tuple(self.module.TAGS)

    @property
    def has_torch(self) -> bool:
        """Whether the case shows the same mistake in PyTorch."""
        return hasattr(self.module, "torch_broken")

    @property
    def variants(self) -> dict[str, Variant]:
        """Every variant the case has, by framework, in :data:`FRAMEWORKS` order."""
        found = {}
        for fw in FRAMEWORKS:
            variant = self.variant(fw)
            if variant is not None:
                found[fw] = variant
        return found

    @property
    def frameworks(self) -> dict[str, str]:
        """The kind of each variant, by framework (``numpy`` always first)."""
        return {fw: v.kind for fw, v in self.variants.items()}

    @property
    def absent(self) -> dict[str, str]:
        """Why a framework cannot make this mistake (``FW_ABSENT``), by framework."""
        return {
            fw: str(getattr(self.module, f"{fw.upper()}_ABSENT"))
            for fw in FRAMEWORKS[1:]
            if hasattr(self.module, f"{fw.upper()}_ABSENT")
        }

    @property
    def sources(self) -> tuple[str, ...]:
        """The URLs of the docstring's ``Sources:`` section."""
        doc = self.module.__doc__ or ""
        _, found, section = doc.partition("\nSources:\n")
        return tuple(re.findall(r"https?://\S+[^\s.,;)]", section)) if found else ()

    def variant(self, framework: str) -> Variant | None:
        """The variant for ``framework`` (``"numpy"``, ``"torch"``, ``"jax"``, ``"tf"``)."""
        m = self.module
        if framework == "numpy":
            return Variant("numpy", self.kind, m.EXPECTED, m.MATCH, m.broken, m.fixed)
        if framework not in FRAMEWORKS:
            raise KeyError(f"unknown framework {framework!r}; frameworks: {FRAMEWORKS}")
        broken = getattr(m, f"{framework}_broken", None)
        if broken is None:
            return None
        up = framework.upper()
        return Variant(
            framework,
            str(getattr(m, f"{up}_KIND", "exception")),
            getattr(m, f"{up}_EXPECTED"),
            str(getattr(m, f"{up}_MATCH")),
            broken,
            getattr(m, f"{framework}_fixed", None),
            getattr(m, f"{up}_NOTE", None),
            float(getattr(m, f"{up}_FIXED_RTOL", 1e-5)),
            float(getattr(m, f"{up}_FIXED_ATOL", 1e-6)),
        )


@cache
def all_cases() -> tuple[Case, ...]:
    """Every case, sorted by id."""
    found = []
    for info in pkgutil.iter_modules(_cases_package.__path__):
        if not info.name.startswith("_"):
            module = importlib.import_module(f"{_cases_package.__name__}.{info.name}")
            found.append(Case(info.name, module))
    return tuple(sorted(found, key=lambda c: c.id))


def get(case_id: str) -> Case:
    """The case called ``case_id``.

    Raises:
        KeyError: naming the closest ids when there is no such case.
    """
    for case in all_cases():
        if case.id == case_id:
            return case
    close = [c.id for c in all_cases() if case_id.split("_")[0] in c.id][:5]
    raise KeyError(f"no catalogue case {case_id!r}; similar: {close or 'none'}")
