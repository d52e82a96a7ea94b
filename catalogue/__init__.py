"""The catalogue of attention failures: one module per case in ``catalogue/cases``.

A case module is a contract that the runner, the CLI, ``diagnose`` and the docs site rely
on; its names are stable:

- module docstring: the page prose. A title line, then sections ``What happens``,
  ``Why`` and ``Fix``.
- ``KIND``: ``"exception"`` (``broken()`` raises), ``"nan"`` (it silently returns NaN or
  inf) or ``"silent"`` (it silently returns a wrong result).
- ``EXPECTED``: the exception class; ``MATCH``: a regex its message must match.
- ``TAGS``: a tuple of tags from :mod:`catalogue.taxonomy`.
- ``broken()``: the minimal NumPy code a user would write; ``fixed()``: the corrected
  code, returning its result. Deterministic, tiny, no I/O. Snippet markers
  ``# --8<-- [start:broken]`` / ``[end:broken]`` (likewise ``fixed``) surround them.
- ``detect(output)``, for ``"nan"`` and ``"silent"``: raises ``EXPECTED`` (matching
  ``MATCH``) on ``broken()``'s output and passes on ``fixed()``'s. Built from
  :mod:`refattn.checks`.

Optional:

- ``reference()``: what ``fixed()`` must return, computed with :func:`refattn.attention`.
- ``TORCH_EXPECTED``, ``TORCH_MATCH`` and ``torch_broken()``: the same mistake in PyTorch
  and the exception torch really raises (run when torch is installed).
- ``SEED_CLAIMS``: what a seed article claimed about this mistake and what running it
  shows, as ``(article, claim, reality)`` triples.
- ``MESSAGES``: regexes of framework error messages (NumPy, PyTorch, JAX, TensorFlow)
  this case explains, for ``diagnose``; ``SYMPTOMS``: phrases of symptoms in words.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass
from functools import cache
from types import ModuleType

from . import cases as _cases_package


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
