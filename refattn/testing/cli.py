r"""Command line: ``refattn check MODULE:FUNCTION --convention NAME [--json] [--quick]``.

Also ``python -m refattn.testing check ...``. Exit code 0 when every config passes, 1 when
some fail, 2 on a usage error (one line on stderr). With ``--json`` stdout is one JSON
object: ``passed``, ``configs``, ``failed`` and ``explanations`` (known mistakes, most
configs first, then failures no known mistake explains, with ``mutant`` null). A progress
bar is drawn on stderr only when stdout is a terminal.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from refattn.testing.battery import CONVENTIONS
from refattn.testing.harness import check

PROG = "refattn check"


class UsageError(Exception):
    """A bad command line; the message is one line."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def _parser() -> _Parser:
    p = _Parser(
        prog=PROG,
        description="Check an attention implementation against refattn's reference and "
        "name the known mistake when it differs.",
    )
    p.add_argument("target", metavar="MODULE:FUNCTION", help="e.g. mypkg.attn:attention")
    p.add_argument(
        "--convention",
        required=True,
        choices=CONVENTIONS,
        metavar="NAME",
        help=f"how FUNCTION is called: one of {', '.join(CONVENTIONS)}",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--quick", action="store_true", help="run the quick subset (seconds)")
    return p


def load(target: str) -> Callable[..., Any]:
    """The callable named by ``MODULE:FUNCTION`` (a module path or a ``.py`` file).

    Raises:
        UsageError: a malformed target, a module that does not import, a missing name.
    """
    module_name, sep, attr = target.partition(":")
    if not sep or not module_name or not attr:
        raise UsageError(
            f"target should be MODULE:FUNCTION (e.g. mypkg.attn:attention): got {target!r}"
        )
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # like `python -m`: modules beside you import
    try:
        if module_name.endswith(".py"):
            path = Path(module_name)
            if not path.is_file():
                raise UsageError(f"no file {module_name!r}")
            spec = importlib.util.spec_from_file_location(path.stem, path)
            assert spec is not None
            assert spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
        else:
            module = importlib.import_module(module_name)
    except UsageError:
        raise
    except Exception as exc:
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise UsageError(f"cannot import {module_name!r}: {type(exc).__name__}: {first}") from None
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise UsageError(f"module {module_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise UsageError(f"{target!r} is not callable (got {type(obj).__name__})")
    return obj  # type: ignore[no-any-return]


def _progress_bar(done: int, total: int) -> None:
    width = 30
    filled = width * done // total
    sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} configs")
    if done == total:
        sys.stderr.write("\r" + " " * (width + 24) + "\r")
    sys.stderr.flush()


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit code (0 pass, 1 fail, 2 usage error).

    Args:
        argv: the arguments after ``refattn check`` (a leading ``check`` is accepted too);
            None reads ``sys.argv[1:]``.
    """
    args_in = list(sys.argv[1:] if argv is None else argv)
    if args_in[:1] == ["check"]:
        args_in = args_in[1:]
    try:
        args = _parser().parse_args(args_in)
        fn = load(args.target)
        progress = _progress_bar if sys.stdout.isatty() and not args.json else None
        try:
            report = check(fn, args.convention, quick=args.quick, progress=progress)
        except ImportError as exc:
            raise UsageError(
                f"convention {args.convention!r} needs its framework installed: {exc}"
            ) from None
    except UsageError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(report.to_json()))
    else:
        print(report)
        print("PASSED" if report.passed else "FAILED")
    return 0 if report.passed else 1
