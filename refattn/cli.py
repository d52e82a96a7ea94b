"""``refattn``, the command line (also ``python -m refattn``).

Subcommands:

- ``refattn cases list [--tag TAG] [--json]``: the catalogue's cases, with their titles.
- ``refattn cases show ID``: one case as text: what happens, why, the fix, the broken and
  fixed code, what running it really does here, and its page on the docs site.
- ``refattn cases run [ID ... | --tag TAG] [--full]``: run cases and print what really
  happened (one line per case; every variant in full for the ids given or with ``--full``).
- ``refattn diagnose [MESSAGE] [--top N] [--json]``: from an error message, a traceback
  (on standard input) or a symptom in words to the cases that explain it.
- ``refattn check ...``: the checks of :mod:`refattn.testing` (``refattn check --help``).
- ``refattn bench ...``: the benchmark (``refattn bench --help``).

The catalogue is ``refattn.catalogue`` in an installed wheel and the top-level
``catalogue`` package in a checkout of the repository; both are found. Errors are one line
on standard error, exit status 2; output piped into ``head`` stops quietly.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import importlib
import inspect
import json
import os
import re
import shutil
import sys
import tempfile
import textwrap
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from types import ModuleType
from typing import Any

SITE = "http://127.0.0.1:8000"
"""Where ``make serve`` serves the docs site (``make serve PORT=...`` moves it)."""


class CliError(Exception):
    """A problem the user can fix: printed as one line, exit status 2."""


# --- finding the catalogue ---------------------------------------------------------------


def load_catalogue() -> ModuleType:
    """The catalogue package: ``refattn.catalogue`` (wheel) or ``catalogue`` (checkout).

    A ``catalogue`` that is another distribution's (PyPI's ``catalogue``, a dependency of
    spaCy) is recognised and skipped.

    Raises:
        CliError: when neither is importable.
    """
    for name in ("refattn.catalogue", "catalogue"):
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as error:
            if error.name in (name, "refattn.catalogue"):
                continue
            raise
        if hasattr(module, "all_cases") and hasattr(module, "get"):
            return module
    raise CliError(
        "refattn's catalogue is not installed: neither refattn.catalogue (an installed "
        "refattn wheel) nor the repository's catalogue/ (a checkout, run from its root) "
        "is importable"
    )


def _submodule(name: str) -> ModuleType:
    return importlib.import_module(f"{load_catalogue().__name__}.{name}")


def _cases() -> tuple[Any, ...]:
    return tuple(load_catalogue().all_cases())


def _suggest(word: str, choices: Sequence[str]) -> list[str]:
    """Up to five of ``choices`` close to ``word``, the closest kind of match only.

    The same name spelled with other separators or case wins outright; then names that
    start with ``word`` or nearly equal it; then looser spellings and shared words.
    """

    def norm(text: str) -> str:
        return re.sub(r"[\s_\-]+", "", text.lower())

    exact = [c for c in choices if norm(c) == norm(word)]
    if exact:
        return exact
    near = [c for c in choices if norm(c).startswith(norm(word))]
    near += [c for c in difflib.get_close_matches(word, choices, 5, 0.85) if c not in near]
    if near:
        return near[:5]
    close = difflib.get_close_matches(word, choices, n=5, cutoff=0.5)
    parts = {p for p in re.split(r"[_\-\s]+", word.lower()) if len(p) > 2}
    for choice in choices:
        shares = word.lower() in choice or parts & set(re.split(r"[_\-]", choice))
        if shares and choice not in close:
            close.append(choice)
    return close[:5]


def _did_you_mean(close: list[str]) -> str:
    if not close:
        return ""
    return (
        f"did you mean {close[0]}? "
        if len(close) == 1
        else f"did you mean one of {', '.join(close)}? "
    )


def find_case(case_id: str) -> Any:
    """The case called ``case_id``.

    Raises:
        CliError: naming the closest ids when there is no such case.
    """
    cases = _cases()
    for case in cases:
        if case.id == case_id:
            return case
    hint = _did_you_mean(_suggest(case_id, [c.id for c in cases]))
    raise CliError(
        f"no catalogue case {case_id!r}; {hint}('refattn cases list' shows all {len(cases)})"
    )


# --- rendering -----------------------------------------------------------------------------

_RST = re.compile(
    r"``(?P<literal>.+?)``"  # ``code``
    r"|:[\w:]+:`~?(?P<role>[^`]+?)`"  # :func:`refattn.attention`
    r"|`(?P<tick>[^`]+?)`_*"  # `interpreted` and `link`_
    r"|\*\*(?P<strong>[^*]+?)\*\*"  # **strong**
    r"|(?<![\w*])\*(?P<em>[^*\s](?:[^*]*[^*\s])?)\*(?![\w*])",  # *emphasis*
    re.S,
)


def plain(text: str) -> str:
    """ReStructuredText inline markup turned into plain text: ````a```` -> ``a``."""

    def strip(match: re.Match[str]) -> str:
        return next(group for group in match.groups() if group is not None)

    return _RST.sub(strip, text)


_ITEM = re.compile(r"(?:[-*]|\d+\.)\s|https?://")
"""A line that starts a list item or a source (``Sources:`` lists one URL per line)."""


def _fill(text: str, indent: str = "  ") -> str:
    """Plain text, re-wrapped to the terminal: paragraphs, and list items or URLs each alone."""
    width = max(60, min(100, shutil.get_terminal_size((100, 24)).columns)) - 1
    blocks = []
    for para in re.split(r"\n\s*\n", textwrap.dedent(text).strip()):
        lines = [line.strip() for line in para.splitlines()]
        listed = bool(_ITEM.match(lines[0]))  # a list: each item (or URL) on its own lines
        items: list[list[str]] = []
        for line in lines:
            if not items or (listed and _ITEM.match(line)):
                items.append([])
            items[-1].append(line)
        hang = "    " if listed else ""
        blocks.append(
            "\n".join(
                textwrap.fill(
                    plain(" ".join(item)),
                    width,
                    initial_indent=indent,
                    subsequent_indent=indent + hang,
                    break_on_hyphens=False,
                    break_long_words=False,
                )
                for item in items
            )
        )
    return "\n\n".join(blocks)


def doc_sections(doc: str) -> list[tuple[str, str]]:
    """A case docstring's ``Name:`` sections (``What happens``, ``Why``, ``Fix``, ...)."""
    body = doc.strip().split("\n", 1)[1] if "\n" in doc.strip() else ""
    sections = []
    for block in re.split(r"\n(?=[A-Z][A-Za-z ]+:\n)", body.strip()):
        head, found, text = block.partition(":\n")
        if found:
            sections.append((head.strip(), text))
    return sections


def snippet(module: ModuleType, part: str) -> str:
    """The code between a case module's ``# --8<-- [start:part]`` and ``[end:part]``."""
    try:
        source = inspect.getsource(module)
    except (OSError, TypeError):
        return ""
    found = re.search(rf"# --8<-- \[start:{part}\]\n(.*?)# --8<-- \[end:{part}\]", source, re.S)
    return found.group(1).strip() if found else ""


_FRAMEWORK_LOG = re.compile(
    r"(?P<header>WARNING: All log messages before absl::InitializeLog\(\) is called.*)"
    r"|(?P<level>[IWEF])\d{4} [\d:.]+\s+\d+ \w+\.cc:\d+\] (?P<text>.*)"
    r"|(?P<more>To enable the following instructions: .* rebuild TensorFlow.*)"
)


@dataclasses.dataclass
class Caught:
    """What running cases printed besides their results."""

    warnings: list[str] = dataclasses.field(default_factory=list)
    logged: list[str] = dataclasses.field(default_factory=list)


@contextmanager
def _stderr_logs_caught(caught: Caught) -> Iterator[None]:
    """Take TensorFlow's C++ log lines off file descriptor 2; everything else passes.

    TensorFlow logs them (oneDNN notices, CPU features, a float16 fallback) before any
    setting it reads takes effect, so they are caught here rather than switched off; the
    warning- and error-level ones are kept in ``caught.logged``.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            kept = []
            for line in sink.read().decode(errors="replace").splitlines(keepends=True):
                match = _FRAMEWORK_LOG.match(line)
                if match is None:
                    kept.append(line)
                elif match["level"] in ("W", "E", "F"):
                    caught.logged.append(match["text"].strip())
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()


@contextmanager
def _quietly() -> Iterator[Caught]:
    """Run cases with their warnings and framework logs caught, not printed among results."""
    caught = Caught()
    with _stderr_logs_caught(caught), warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        try:
            yield caught
        finally:
            caught.warnings += [f"{w.category.__name__}: {w.message}" for w in seen]


_LABELS = {"numpy": "NumPy", "torch": "PyTorch", "jax": "JAX", "tf": "TensorFlow"}

Row = tuple[str, str, "bool | None"]
"""``(label, what happened, as claimed?)``; None: not judged (a recorded outcome)."""


def _recorded() -> Mapping[str, Any]:
    """``catalogue/outcomes.json`` (what each variant did where its framework ran)."""
    try:
        loaded: Mapping[str, Any] = _submodule("record").load()
    except (ImportError, AttributeError, OSError, ValueError):
        return {}
    return loaded


def outcome_rows(outcome: Any, recorded: Mapping[str, Any] | None = None) -> list[Row]:
    """Every part of a runner outcome, one row each.

    Args:
        outcome: what :func:`catalogue.runner.run` returned: per-framework ``variants``
            (each with ``broken``, ``broken_ok``, ``fixed``, ``fixed_ok``), or only the
            NumPy ``broken``/``fixed`` fields.
        recorded: the case's entry of ``catalogue/outcomes.json``, shown for frameworks
            the case has but that are not installed here.
    """
    variants: Mapping[str, Any] = getattr(outcome, "variants", None) or {"numpy": outcome}
    rows: list[Row] = []
    for framework, variant in variants.items():
        label = _LABELS.get(framework, framework)
        rows.append((f"{label} broken", str(variant.broken), variant.broken_ok))
        if getattr(variant, "fixed", None) is not None:
            rows.append((f"{label} fixed", str(variant.fixed), variant.fixed_ok))
    for framework in getattr(outcome, "not_installed", ()):
        label = _LABELS.get(framework, framework)
        entry = (recorded or {}).get(framework)
        if not entry:
            rows.append((f"{label}", "not installed here, nothing recorded", None))
            continue
        rows.append(
            (f"{label} broken", f"{entry.get('broken')} (recorded; not installed here)", None)
        )
        if entry.get("fixed") is not None:
            rows.append((f"{label} fixed", f"{entry['fixed']} (recorded)", None))
    return rows


def _all_as_claimed(rows: list[Row]) -> bool:
    return all(ok is not False for _, _, ok in rows)


def _mark(ok: bool | None) -> str:
    return {True: "as claimed", False: "NOT AS CLAIMED", None: ""}[ok]


def _print_rows(rows: list[Row], caught: Caught) -> None:
    """Outcome rows, then the warnings and framework logs of the run, each labelled."""
    width = max(len(label) for label, _, _ in rows) + 1
    for label, text, ok in rows:
        mark = f"  [{_mark(ok)}]" if ok is not None else ""
        print(f"  {label + ':':{width}s} {text}{mark}")
    for line in sorted(set(caught.warnings)):
        print(f"  {'warned:':{width}s} {line}")
    for line in sorted(set(caught.logged)):
        print(f"  {'logged:':{width}s} {line}")


# --- cases ---------------------------------------------------------------------------------


def _check_tag(tag: str | None) -> None:
    if tag is None:
        return
    tags = list(_submodule("taxonomy").TAGS)
    if tag not in tags:
        close = _suggest(tag, tags)
        known = "('refattn cases list --json' shows each case's tags)"
        if not close:
            known = f"(tags: {', '.join(tags)})"
        raise CliError(f"unknown tag {tag!r}; {_did_you_mean(close)}{known}")


def cases_list(tag: str | None, as_json: bool) -> int:
    """Print the cases (id and title), optionally only those with ``tag``."""
    _check_tag(tag)
    chosen = [c for c in _cases() if tag is None or tag in c.tags]
    if as_json:
        rows = [
            {
                "id": c.id,
                "title": c.title,
                "kind": c.kind,
                "tags": list(c.tags),
                "expected": getattr(c.module.EXPECTED, "__name__", str(c.module.EXPECTED)),
            }
            for c in chosen
        ]
        print(json.dumps(rows, indent=2))
        return 0
    width = max((len(c.id) for c in chosen), default=0)
    for c in chosen:
        print(f"{c.id:{width}s}  {plain(c.title)}")
    return 0


def cases_show(case_id: str) -> int:
    """Print one case as a terminal reader wants it."""
    case = find_case(case_id)
    module = case.module
    print(plain(case.title))
    print("=" * min(len(plain(case.title)), 100))
    print(f"id: {case.id}   kind: {case.kind}   tags: {', '.join(case.tags)}")
    for head, text in doc_sections(module.__doc__ or ""):
        print(f"\n{head}\n{_fill(text)}")
    for part in ("broken", "fixed"):
        code = snippet(module, part)
        if code:
            print(f"\n{part.capitalize()} code\n{textwrap.indent(code, '    ')}")
    with _quietly() as caught:
        outcome = _submodule("runner").run(case)
    rows = outcome_rows(outcome, _recorded().get(case.id))
    print("\nWhat running it shows")
    _print_rows(rows, caught)
    for article, claim, reality in getattr(module, "SEED_CLAIMS", ()):
        print(
            f"\nSeed article {article} claimed\n{_fill(claim)}\nRunning it shows\n{_fill(reality)}"
        )
    print(
        f"\nDocs page: catalogue/{case.id}/ on the site ({SITE}/catalogue/{case.id}/ "
        f"while `make serve` runs); source: catalogue/cases/{case.id}.py"
    )
    return 0


def cases_run(ids: list[str], full: bool, tag: str | None = None) -> int:
    """Run cases (by id, by tag, or all); exit status 1 if any did not do what it claims."""
    _check_tag(tag)
    chosen = [find_case(i) for i in ids] or [c for c in _cases() if tag is None or tag in c.tags]
    blocks = full or bool(ids)
    recorded = _recorded()
    failures = 0
    width = max(len(c.id) for c in chosen)
    columns = shutil.get_terminal_size((100, 24)).columns
    if not blocks:
        print(f"{'case':{width}s}  {'result':14s}  what NumPy broken() did")
    for case in chosen:
        with _quietly() as caught:
            rows = outcome_rows(_submodule("runner").run(case), recorded.get(case.id))
        ok = _all_as_claimed(rows)
        failures += not ok
        if blocks:
            print(f"\n{case.id}  [{_mark(ok)}]")
            _print_rows(rows, caught)
            continue
        broken = rows[0][1]
        room = columns - width - 18
        if sys.stdout.isatty() and len(broken) > room > 10:
            broken = broken[: room - 3] + "..."
        print(f"{case.id:{width}s}  {_mark(ok):14s}  {broken}")
    print(f"\n{len(chosen) - failures} as claimed, {failures} not")
    return 1 if failures else 0


# --- diagnose ------------------------------------------------------------------------------


def _fix_of(doc: str) -> str:
    """The first paragraph of a case docstring's Fix section, as plain text."""
    _, _, fix = doc.partition("Fix:")
    return plain(" ".join(fix.strip().split("\n\n")[0].split()))


def run_diagnose(message: str | None, top: int, as_json: bool) -> int:
    """From a message (argument or stdin) to the cases that explain it."""
    if message is None and sys.stdin.isatty():
        raise CliError(
            "diagnose: give a message as an argument, or pipe one in: refattn diagnose < error.txt"
        )
    text = message if message is not None else sys.stdin.read()
    if not text.strip():
        raise CliError("diagnose: give a message as an argument or on standard input")
    diagnose_module = _submodule("diagnose")
    matches = diagnose_module.diagnose(text, top=top)
    if as_json:
        rows = [
            {
                "id": m.case.id,
                "title": m.case.title,
                "tags": list(m.case.tags),
                "score": m.score,
                "why": m.why,
                "fix": m.fix,
                "page": f"catalogue/{m.case.id}/",
            }
            for m in matches
        ]
        print(json.dumps(rows, indent=2))
        return 0
    if not matches:
        family = diagnose_module.nearest_family(text)
        near = f"; the nearest family is '{family}' (refattn cases list)" if family else ""
        print(f"no catalogue case explains this message{near}")
        return 1
    for rank, m in enumerate(matches, 1):
        print(f"{rank}. {plain(m.case.title)}  [{m.case.id}; {', '.join(m.case.tags)}]")
        print(f"   why: {m.why}")
        print(f"   fix: {m.fix or _fix_of(m.case.module.__doc__ or '')}")
        print(f"   more: refattn cases show {m.case.id}; {SITE}/catalogue/{m.case.id}/\n")
    return 0


# --- check and bench: other modules' command lines -------------------------------------------


def run_check(argv: list[str]) -> int:
    """``refattn check``: :func:`refattn.testing.cli.main`, when that module exists."""
    try:
        module = importlib.import_module("refattn.testing.cli")
    except ModuleNotFoundError as error:
        if error.name in ("refattn.testing", "refattn.testing.cli"):
            raise CliError(
                "'refattn check' is not available in this install (no refattn.testing.cli)"
            ) from None
        raise
    main: Callable[[list[str]], int | None] = module.main
    return int(main(argv) or 0)


def run_bench(argv: list[str]) -> int:
    """``refattn bench``: :func:`refattn.bench.main`."""
    from refattn import bench

    program, sys.argv[0] = sys.argv[0], "refattn bench"  # its usage line names the command
    try:
        bench.main(argv)
    finally:
        sys.argv[0] = program
    return 0


# --- the parser ----------------------------------------------------------------------------

_PASS_THROUGH: dict[str, Callable[[list[str]], int]] = {"check": run_check, "bench": run_bench}


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("refattn")
    except PackageNotFoundError:
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    """The ``refattn`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="refattn",
        description="refattn: a NumPy reference for batched attention and a catalogue of "
        "how attention code breaks.",
        epilog="Examples: refattn cases list --tag mask-polarity | refattn cases show "
        "fully_masked_row_nan | refattn diagnose < traceback.txt",
    )
    parser.add_argument("--version", action="version", version=f"refattn {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p_cases = sub.add_parser("cases", help="the catalogue of attention failures")
    cases = p_cases.add_subparsers(dest="action", required=True, metavar="ACTION")
    p_list = cases.add_parser("list", help="list cases with their titles")
    p_list.add_argument("--tag", help="only cases with this taxonomy tag")
    p_list.add_argument("--json", action="store_true", help="print JSON")
    p_show = cases.add_parser("show", help="one case: what happens, code, real outcome, page")
    p_show.add_argument("id", help="a case id, e.g. fully_masked_row_nan")
    p_run = cases.add_parser("run", help="run cases and print what really happened")
    p_run.add_argument("ids", nargs="*", help="case ids (default: every case)")
    p_run.add_argument("--tag", help="only cases with this taxonomy tag")
    p_run.add_argument("--full", action="store_true", help="every variant's outcome in full")

    p_diag = sub.add_parser("diagnose", help="from an error message or symptom to cases")
    p_diag.add_argument("message", nargs="?", help="the message; read from stdin if absent")
    p_diag.add_argument("--top", type=int, default=3, help="how many cases (default 3)")
    p_diag.add_argument("--json", action="store_true", help="print JSON")

    sub.add_parser("check", help="refattn.testing's checks (refattn check --help)", add_help=False)
    sub.add_parser("bench", help="the benchmark (refattn bench --help)", add_help=False)
    return parser


def dispatch(args: argparse.Namespace) -> int:
    """Run the parsed subcommand."""
    if args.command in _PASS_THROUGH:
        return _PASS_THROUGH[args.command]([])
    if args.command == "diagnose":
        return run_diagnose(args.message, args.top, args.json)
    if args.action == "list":
        return cases_list(args.tag, args.json)
    if args.action == "show":
        return cases_show(args.id)
    if args.ids and args.tag:
        raise CliError("cases run: give case ids or --tag, not both")
    return cases_run(args.ids, args.full, args.tag)


def main(argv: list[str] | None = None) -> int:
    """Run ``refattn`` with ``argv`` (default: the command line); return the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's Python-side info logs
    try:
        if argv and argv[0] in _PASS_THROUGH:
            return _PASS_THROUGH[argv[0]](argv[1:])
        return dispatch(build_parser().parse_args(argv))
    except CliError as error:
        print(f"refattn: {error}", file=sys.stderr)
        return 2


def entry(argv: list[str] | None = None) -> None:
    """The console script: :func:`main`, quiet when a pipe closes or on Ctrl-C."""
    try:
        code = main(argv)
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader (`| head`) has gone: point stdout at devnull so the interpreter's
        # final flush does not raise again, and stop quietly.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        code = 0
    except KeyboardInterrupt:
        code = 130
    sys.exit(code)
