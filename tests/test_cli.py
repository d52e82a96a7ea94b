"""The ``refattn`` command line, run as a user runs it (``python -m refattn``, a subprocess).

The console script itself (``refattn``) is installed from the built wheel and run in
``tests/test_packaging.py``; here the same ``entry`` runs through ``python -m refattn``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import types
import warnings
from pathlib import Path

import pytest

import catalogue
from catalogue.runner import run_broken
from refattn import cli

ROOT = Path(__file__).resolve().parent.parent
CASES = ROOT / "catalogue" / "cases"


def broken_of(case: catalogue.Case) -> str:
    """What NumPy ``broken()`` did, as the runner words it."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return run_broken(case)[0]


def refattn(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "refattn", *args],
        cwd=ROOT,
        input=stdin,
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "80"},
    )


def _code_between_markers(case_id: str, part: str) -> str:
    text = (CASES / f"{case_id}.py").read_text()
    start, end = f"# --8<-- [start:{part}]\n", f"# --8<-- [end:{part}]"
    return text[text.index(start) + len(start) : text.index(end)].strip()


def test_help_names_every_subcommand() -> None:
    result = refattn("--help")
    assert result.returncode == 0, result.stderr
    for command in ("cases", "diagnose", "check", "bench"):
        assert re.search(rf"^\s+{command}\s", result.stdout, re.M), command
    assert refattn("cases", "--help").stdout.count("list") >= 1


def test_list_prints_every_case_with_its_title() -> None:
    result = refattn("cases", "list")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    cases = catalogue.all_cases()
    assert len(lines) == len(cases) == len(list(CASES.glob("[!_]*.py")))
    for line, case in zip(lines, cases, strict=True):
        ident, title = line.split(None, 1)
        assert ident == case.id
        assert title == cli.plain(case.title)
        assert "``" not in title


def test_list_by_tag_and_as_json() -> None:
    tagged = {c.id for c in catalogue.all_cases() if "mask-polarity" in c.tags}
    assert tagged
    result = refattn("cases", "list", "--tag", "mask-polarity")
    assert {line.split()[0] for line in result.stdout.splitlines()} == tagged
    rows = json.loads(refattn("cases", "list", "--tag", "mask-polarity", "--json").stdout)
    assert {r["id"] for r in rows} == tagged
    assert all(r["title"] and "mask-polarity" in r["tags"] for r in rows)


def test_unknown_tag_is_one_line_with_a_suggestion() -> None:
    result = refattn("cases", "list", "--tag", "mask_polarity")
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert "unknown tag 'mask_polarity'" in result.stderr
    assert "did you mean mask-polarity" in result.stderr


@pytest.mark.parametrize(
    ("args", "suggested"),
    [
        (("cases", "show", "fully_masked_row"), "fully_masked_row_nan"),
        (("cases", "run", "qk_dim_mismatc"), "qk_dim_mismatch"),
    ],
)
def test_unknown_case_is_one_line_with_suggestions(args: tuple[str, ...], suggested: str) -> None:
    result = refattn(*args)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "KeyError" not in result.stderr
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith(f"refattn: no catalogue case {args[-1]!r}; did you mean ")
    assert suggested in result.stderr


def test_show_renders_a_case_for_a_terminal() -> None:
    case = catalogue.get("fully_masked_row_nan")
    result = refattn("cases", "show", case.id)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.splitlines()[0] == case.title
    for head in ("What happens", "Why", "Fix", "Broken code", "Fixed code"):
        assert re.search(rf"^{head}$", out, re.M), head
    assert "``" not in out  # RST literals turned into plain text
    assert "the row max is -inf" in " ".join(out.split())
    for part in ("broken", "fixed"):  # the code cut from the module, indented, whole
        code = _code_between_markers(case.id, part)
        assert "\n".join("    " + line if line else "" for line in code.splitlines()) in out
    # what really happens, printed in full
    assert re.search(rf"NumPy broken: +{re.escape(broken_of(case))}  \[as claimed\]", out)
    assert "RuntimeWarning: invalid value encountered in subtract" in out  # labelled, not loose
    assert "Warning" not in result.stderr
    assert f"catalogue/{case.id}/" in out


def test_show_gives_every_framework_variant() -> None:
    case = next(c for c in catalogue.all_cases() if c.has_torch)
    out = refattn("cases", "show", case.id).stdout
    assert "PyTorch broken: " in out
    assert "NumPy broken: " in out


def test_run_keeps_warnings_and_logs_out_of_its_table_and_never_truncates() -> None:
    tag = "fp16-overflow"  # NumPy warns on every one; TensorFlow logs a float16 fallback
    chosen = [c for c in catalogue.all_cases() if tag in c.tags]
    result = refattn("cases", "run", "--tag", tag)
    assert result.returncode == 0, result.stdout
    assert result.stderr == ""  # no RuntimeWarning lines interleaved, no framework log
    rows = [line for line in result.stdout.splitlines()[1:] if line.strip()]
    assert [row.split()[0] for row in rows[:-1]] == [c.id for c in chosen]
    assert rows[-1] == f"{len(chosen)} as claimed, 0 not"
    for case in chosen:  # in a pipe, nothing is cut
        message = broken_of(case)
        assert len(message) > 100
        assert f"as claimed      {message}" in result.stdout


def test_run_one_case_prints_it_whole() -> None:
    case, message = max(((c, broken_of(c)) for c in catalogue.all_cases()), key=lambda p: len(p[1]))
    assert len(message) > 65
    result = refattn("cases", "run", case.id)
    assert result.returncode == 0
    assert f"{case.id}  [as claimed]" in result.stdout
    assert re.search(rf"NumPy broken: +{re.escape(message)}  \[as claimed\]", result.stdout)
    assert "..." not in result.stdout.replace(message, "")


def test_list_into_a_closed_pipe_is_quiet() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "refattn", "cases", "list"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None
    assert process.stderr is not None
    process.stdout.close()  # the reader is gone before anything is written
    err = process.stderr.read().decode()
    assert process.wait() == 0
    assert err == ""


def test_list_into_head_is_quiet() -> None:
    command = f"{sys.executable} -m refattn cases list | head -n 2"
    result = subprocess.run(command, shell=True, cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0
    assert len(result.stdout.splitlines()) == 2
    assert "BrokenPipeError" not in result.stderr
    assert "Traceback" not in result.stderr


def test_python_m_catalogue_still_works() -> None:
    old = subprocess.run(
        [sys.executable, "-m", "catalogue", "list"], cwd=ROOT, capture_output=True, text=True
    )
    assert old.returncode == 0
    assert old.stdout == refattn("cases", "list").stdout
    shown = subprocess.run(
        [sys.executable, "-m", "catalogue", "show", "qk_dim_mismatch"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert shown.returncode == 0
    assert "Broken code" in shown.stdout


def test_diagnose_prints_plain_text_and_the_next_command() -> None:
    result = refattn("diagnose", "softmax of all -inf gives nan")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("1. ")
    assert "``" not in result.stdout
    assert "refattn cases show " in result.stdout
    empty = refattn("diagnose", stdin="")
    assert empty.returncode == 2
    assert empty.stderr.startswith("refattn: diagnose: give a message")


def test_bench_help_reaches_the_benchmark() -> None:
    result = refattn("bench", "--help")
    assert result.returncode == 0, result.stderr
    assert "--quick" in result.stdout
    assert result.stdout.startswith("usage: refattn bench ")


def test_check_reaches_refattn_testing() -> None:
    result = refattn("check", "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: refattn check")


def test_check_dispatches_to_refattn_testing(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[list[str]] = []

    def main(argv: list[str]) -> int:
        seen.append(argv)
        return 7

    fake = types.ModuleType("refattn.testing.cli")
    fake.main = main  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "refattn.testing.cli", fake)
    assert cli.main(["check", "--strict", "x.py"]) == 7
    assert seen == [["--strict", "x.py"]]


def test_check_without_refattn_testing_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "refattn.testing.cli", None)
    assert cli.main(["check"]) == 2
    err = capsys.readouterr().err
    assert (
        err
        == "refattn: 'refattn check' is not available in this install (no refattn.testing.cli)\n"
    )


def test_catalogue_found_in_a_checkout_and_unrelated_catalogue_refused(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "refattn.catalogue", None)
    assert cli.load_catalogue() is catalogue  # the checkout's top-level package
    pypi = types.ModuleType("catalogue")
    pypi.create = lambda *a: None  # type: ignore[attr-defined]  # PyPI's API, no all_cases
    monkeypatch.setitem(sys.modules, "catalogue", pypi)
    assert cli.main(["cases", "list"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("refattn: refattn's catalogue is not installed")
    assert err.count("\n") == 1


@pytest.mark.parametrize(
    ("rst", "text"),
    [
        ("``q @ k``", "q @ k"),
        (":func:`refattn.attention` and ``x``", "refattn.attention and x"),
        ("*padded* rows, ``*batch``", "padded rows, *batch"),
        ("**never** `mask`", "never mask"),
        ("2 * 3 * 4", "2 * 3 * 4"),
    ],
)
def test_plain_turns_rst_into_plain_text(rst: str, text: str) -> None:
    assert cli.plain(rst) == text


def test_sources_keep_one_url_per_item_and_prose_is_rewrapped() -> None:
    sources = (
        "    https://example.org/a (the first\n        report)\n"
        "    https://example.org/b (the second)\n"
    )
    assert cli._fill(sources).splitlines() == [
        "  https://example.org/a (the first report)",
        "  https://example.org/b (the second)",
    ]
    prose = "    Masks ``True`` rows:\n    see\n    https://example.org/c for ``more``.\n"
    assert cli._fill(prose) == "  Masks True rows: see https://example.org/c for more."


def test_diagnose_at_a_terminal_without_a_message_says_how_instead_of_waiting() -> None:
    controller, terminal = os.openpty()
    try:
        result = subprocess.run(
            [sys.executable, "-m", "refattn", "diagnose"],
            cwd=ROOT,
            stdin=terminal,
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        os.close(terminal)
        os.close(controller)
    assert result.returncode == 2
    assert result.stderr.startswith("refattn: diagnose: give a message as an argument")
