"""MkDocs hook: the runs shown on the testing page (docs/testing.md).

The page's markers are replaced by runs of the tutorial's snippets:

- ``<!-- testing:cli my_attention -->`` and ``<!-- testing:cli my_attention_fixed -->``:
  ``python -m refattn check docs/snippets/<module>.py:attention --convention torch_sdpa``
  run through :func:`refattn.testing.cli.main`, its output and exit code;
- ``<!-- testing:pytest my_attention -->`` and ``... my_attention_fixed -->``: every case
  of ``docs/snippets/test_my_attention.py`` run against that module (called directly, not
  through pytest), and the message of the first failure;
- ``<!-- testing:mutants -->``: the table of mutants, from :func:`refattn.testing.mutants`
  (NumPy only: always made at build).

The snippets need PyTorch. When it is installed, the runs are made while the site builds
and compared with the record, ``docs/snippets/testing_captures.json``; the build fails if
one differs (decimal numbers, the measured errors, are left out of the comparison: their
last digits depend on the machine's float kernels). When PyTorch is not installed (the
docs-only install of ``make serve``), the page shows the recorded runs and says so.
``python docs/hooks/testing_page.py --record`` records the runs again.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import itertools
import json
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from mkdocs.exceptions import PluginError

ROOT = Path(__file__).resolve().parents[2]
SNIPPETS = ROOT / "docs" / "snippets"
CAPTURES = SNIPPETS / "testing_captures.json"
PAGE = "testing.md"
MARKER = re.compile(r"<!-- testing:(cli|pytest|mutants) ?(\w*) -->")
RECORD_COMMAND = "python docs/hooks/testing_page.py --record"
RECORDED_NOTE = (
    "*Recorded run: PyTorch was not installed when this page was built, so this is the run "
    "stored in `docs/snippets/testing_captures.json`.*"
)


def _module(name: str) -> ModuleType:
    path = SNIPPETS / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(SNIPPETS))  # the test module imports my_attention
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(SNIPPETS))
    return module


def cli_run(name: str) -> tuple[int, str]:
    """The CLI on ``docs/snippets/<name>.py:attention``: (exit code, shown text)."""
    from refattn.testing.cli import main

    target = f"docs/snippets/{name}.py:attention"
    out = io.StringIO()
    with contextlib.redirect_stdout(out):  # not a terminal: no progress bar
        code = main([str(ROOT / target), "--convention", "torch_sdpa"])
    command = f"$ python -m refattn check {target} --convention torch_sdpa"
    return code, f"{command}\n{out.getvalue().rstrip()}\n$ echo $?\n{code}"


def pytest_run(name: str) -> tuple[int, str]:
    """Every case of the test snippet against ``name``: (failures, shown text)."""
    import torch

    tests = _module("test_my_attention")
    tests.__dict__["attention"] = _module(name).attention  # as `from my_attention import` gives
    failures: list[str] = []
    cases = list(itertools.product([torch.float32, torch.bfloat16], [4, 2, 1]))
    for dtype, heads_kv in cases:
        try:
            tests.test_attention_matches_refattn(heads_kv, dtype)
        except AssertionError as exc:
            failures.append(f"heads_kv={heads_kv}, dtype={dtype}:\n{type(exc).__name__}: {exc}")
    head = (
        f"test_attention_matches_refattn, {len(cases)} cases: {len(cases) - len(failures)} passed"
    )
    head += f", {len(failures)} failed" if failures else ""
    return len(failures), head + ("\n\nfirst failure, " + failures[0] if failures else "")


def mutant_table() -> str:
    """Markdown table: mutant, what the mistaken code does, tags, catalogue case."""
    from refattn.testing import mutants

    rows = ["| mutant | what the code does | tags | catalogue case |", "| --- | --- | --- | --- |"]
    for m in mutants():
        case = f"[{m.case}](catalogue/{m.case}.md)" if m.case else "—"
        tags = ", ".join(f"`{t}`" for t in m.tags)
        rows.append(f"| `{m.name}` | {m.description} | {tags} | {case} |")
    return "\n".join(rows)


def torch_installed() -> bool:
    """Whether PyTorch imports here (the snippets' framework)."""
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def run_keys(markdown: str) -> list[str]:
    """The page's runs, ``"cli my_attention"``, ``"pytest my_attention_fixed"``..., in order."""
    return [f"{m.group(1)} {m.group(2)}" for m in MARKER.finditer(markdown) if m.group(2)]


def live_run(key: str) -> str:
    """The text of run ``key`` (``"cli NAME"`` or ``"pytest NAME"``), made now."""
    kind, name = key.split(" ")
    _, text = cli_run(name) if kind == "cli" else pytest_run(name)
    return text


def live_captures(markdown: str | None = None) -> dict[str, str]:
    """Every run of the page (docs/testing.md unless given), made now (needs PyTorch)."""
    page = (ROOT / "docs" / PAGE).read_text("utf-8") if markdown is None else markdown
    return {key: live_run(key) for key in run_keys(page)}


def load_captures() -> dict[str, str]:
    """The recorded runs: ``{key: shown text}`` (empty when there is no record)."""
    if not CAPTURES.exists():
        return {}
    data: dict[str, str] = json.loads(CAPTURES.read_text("utf-8"))
    return data


def dump_captures(captures: dict[str, str]) -> str:
    """The record's text for ``captures`` (sorted keys, one deterministic text)."""
    return json.dumps(captures, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def normalised(text: str) -> str:
    """``text`` with every decimal number (a measured error, ``1.06e-06``, ``2.59``) as ``#``.

    Counts (configs, rows, heads, exit codes) stay: they are what a run shows.
    """
    return re.sub(r"\d+\.\d+(?:e[+-]?\d+)?|\d+e[+-]?\d+", "#", text)


def render(markdown: str, live: bool | None = None) -> str:
    """The page with every marker replaced by its run.

    Args:
        markdown: the page's text.
        live: make the runs now (and fail on a difference from the record) or show the
            recorded ones; None: live when PyTorch is installed.

    Raises:
        PluginError: a live run differs from the record, or a run is not recorded and
            cannot be made here.
    """
    live = torch_installed() if live is None else live
    recorded = load_captures()

    def block(match: re.Match[str]) -> str:
        kind, name = match.group(1), match.group(2)
        if kind == "mutants":
            return mutant_table()
        key = f"{kind} {name}"
        if live:
            text = live_run(key)
            if key not in recorded or normalised(text) != normalised(recorded[key]):
                raise PluginError(
                    f"testing page: the run {key!r} differs from docs/snippets/"
                    f"testing_captures.json (live:\n{text}\nrecorded:\n{recorded.get(key)}\n); "
                    f"if meant, run {RECORD_COMMAND}"
                )
            return f"```text\n{text}\n```"
        if key not in recorded:
            raise PluginError(
                f"testing page: the run {key!r} is not recorded and PyTorch is not installed; "
                f"run {RECORD_COMMAND} where it is"
            )
        return f"```text\n{recorded[key]}\n```\n\n{RECORDED_NOTE}"

    return MARKER.sub(block, markdown)


def on_page_markdown(markdown: str, page: Any, **kwargs: Any) -> str:
    """Render the testing page's runs; other pages pass through."""
    if page.file.src_uri != PAGE:
        return markdown
    return render(markdown)


def main(argv: list[str]) -> int:
    """``--record``: make every run of the page now and write the record."""
    if argv != ["--record"]:
        print(f"usage: {RECORD_COMMAND}", file=sys.stderr)
        return 2
    CAPTURES.write_text(dump_captures(live_captures()), "utf-8")
    print(f"wrote {CAPTURES.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
