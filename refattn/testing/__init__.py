"""Test attention code against refattn, and name the known mistake when it differs.

- :func:`assert_attention_close`: one output against the float64 reference, with a
  tolerance measured for the call (never picked per dtype), row by row.
- :mod:`refattn.testing.mistakes`: the reference with one known mistake applied, each tied
  to the catalogue; they explain failures.
- :func:`configs`: a battery of calls that find real bugs, as plain data.
- :func:`check`: drive a callable in one convention (``"refattn"``, ``"torch_sdpa"``,
  ``"jax"``, ``"flash"``) through the battery; a :class:`Report` groups the failures by
  explanation. ``python -m refattn.testing check MODULE:FUNCTION --convention NAME`` is
  the command line.

Frameworks are imported only when their convention is used.
"""

from refattn.testing.battery import Config, configs
from refattn.testing.comparison import (
    AttentionMismatch,
    Comparison,
    Explanation,
    Rotary,
    assert_attention_close,
    compare,
)
from refattn.testing.harness import Report, check
from refattn.testing.mistakes import Mutant, mutants

__all__ = [
    "AttentionMismatch",
    "Comparison",
    "Config",
    "Explanation",
    "Mutant",
    "Report",
    "Rotary",
    "assert_attention_close",
    "check",
    "compare",
    "configs",
    "mutants",
]
