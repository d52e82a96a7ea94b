"""Error classes raised by refattn.

Bad input raises a subclass of :class:`RefattnError` that also subclasses the builtin
a caller would expect (``ValueError`` for shapes and values, ``TypeError`` for dtypes),
so existing ``except ValueError`` handlers keep working; an allocation that cannot fit
in memory raises :class:`AttentionMemoryError` (a ``MemoryError``) before allocating. Checks from
:mod:`refattn.checks` raise :class:`CheckFailure`, an ``AssertionError``.
"""

from __future__ import annotations


class RefattnError(Exception):
    """Base class of every error refattn raises on purpose."""


class AttentionShapeError(RefattnError, ValueError):
    """An argument's shape does not fit the others (sizes, ranks, broadcasting)."""


class AttentionDTypeError(RefattnError, TypeError):
    """An argument's dtype is not one attention can use (integer, complex, mixed)."""


class AttentionValueError(RefattnError, ValueError):
    """An argument's value is out of range (a probability, a window, a length, a policy)."""


class AttentionArgumentError(RefattnError, TypeError):
    """A keyword the function does not take (e.g. ``return_weights`` where no weights exist)."""


class AttentionMemoryError(RefattnError, MemoryError):
    """An array the call would allocate is larger than this machine's memory.

    Raised before allocating, with the number of bytes needed and what to do instead.
    """


class FullyMaskedRowError(RefattnError, ValueError):
    """A query row may attend to no key and the policy is ``fully_masked="raise"``."""


class CheckFailure(RefattnError, AssertionError):
    """A check from :mod:`refattn.checks` found a symptom in attention output."""
