"""MkDocs hook: the runs shown on the testing page (docs/testing.md), made at build time.

The page's markers are replaced by what really happens while the site builds:

- ``<!-- testing:cli my_attention -->`` and ``<!-- testing:cli my_attention_fixed -->``:
  ``python -m refattn check docs/snippets/<module>.py:attention --convention torch_sdpa``
  run through :func:`refattn.testing.cli.main`, its output and exit code;
- ``<!-- testing:pytest my_attention -->`` and ``... my_attention_fixed -->``: every case
  of ``docs/snippets/test_my_attention.py`` run against that module (called directly, not
  through pytest), and the message of the first failure;
- ``<!-- testing:mutants -->``: the table of mutants, from :func:`refattn.testing.mutants`.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import itertools
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
SNIPPETS = ROOT / "docs" / "snippets"
PAGE = "testing.md"


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
    with contextlib.redirect_stdout(out):
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


def render(markdown: str) -> str:
    """The page with every marker replaced by a run made now."""

    def block(match: re.Match[str]) -> str:
        kind, name = match.group(1), match.group(2)
        if kind == "mutants":
            return mutant_table()
        _, text = cli_run(name) if kind == "cli" else pytest_run(name)
        return f"```text\n{text}\n```"

    return re.sub(r"<!-- testing:(cli|pytest|mutants) ?(\w*) -->", block, markdown)


def on_page_markdown(markdown: str, page: Any, **kwargs: Any) -> str:
    """Render the testing page's runs; other pages pass through."""
    if page.file.src_uri != PAGE:
        return markdown
    return render(markdown)
