"""``python -m catalogue list | show | run | diagnose``: the catalogue from the command line.

The same as ``refattn cases list | show | run`` and ``refattn diagnose`` (see
:mod:`refattn.cli`), kept for checkouts of the repository.
"""

from __future__ import annotations

import sys

from refattn import cli


def refattn_argv(argv: list[str]) -> list[str]:
    """``python -m catalogue``'s arguments as ``refattn``'s: ``show X`` -> ``cases show X``."""
    return ["cases", *argv] if argv[:1] in (["list"], ["show"], ["run"]) else list(argv)


def main(argv: list[str] | None = None) -> int:
    """Run ``python -m catalogue`` with ``argv``; return the exit status."""
    return cli.main(refattn_argv(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    cli.entry(refattn_argv(sys.argv[1:]))
