"""The command line `refattn check MODULE:FUNCTION --convention NAME [--json] [--quick]`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from refattn.testing import configs
from refattn.testing.cli import main
from tests.testing_impls import numpy_attention

ROOT = Path(__file__).resolve().parents[1]


def gqa_tiled(q: Any, k: Any, v: Any, **options: Any) -> Any:
    return numpy_attention(q, k, v, mistake="gqa_heads_tiled", **options)


def test_correct_implementation_passes_with_json(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["tests.testing_impls:numpy_attention", "--convention", "refattn", "--json"])
    data = json.loads(capsys.readouterr().out)
    assert code == 0
    assert data["passed"] is True
    assert data["failed"] == 0
    assert data["configs"] > 50
    assert data["explanations"] == []


def test_buggy_implementation_fails_and_is_named(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["check", "tests.test_testing_cli:gqa_tiled", "--convention", "refattn"]
    code = main([*argv, "--json", "--quick"])
    data = json.loads(capsys.readouterr().out)
    assert code == 1
    assert data["passed"] is False
    assert data["failed"] > 0
    top = data["explanations"][0]
    assert top == {
        "mutant": "gqa_heads_tiled",
        "tags": ["gqa-heads"],
        "case": None,
        "configs": top["configs"],
        "description": top["description"],
        "smallest_config": top["smallest_config"],
    }
    assert sum(e["configs"] for e in data["explanations"]) == data["failed"]
    code = main([*argv, "--quick"])
    text = capsys.readouterr().out
    assert code == 1
    assert "gqa_heads_tiled (gqa-heads)" in text
    assert text.rstrip().endswith("FAILED")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        pytest.param(["refattn:attention"], "required: --convention", id="no-convention"),
        pytest.param(["nocolon", "--convention", "refattn"], "MODULE:FUNCTION", id="no-colon"),
        pytest.param(
            ["no_such_module_xyz:f", "--convention", "refattn"],
            "cannot import 'no_such_module_xyz': ModuleNotFoundError",
            id="no-module",
        ),
        pytest.param(
            ["refattn:nope", "--convention", "refattn"], "has no attribute 'nope'", id="no-attr"
        ),
        pytest.param(
            ["refattn:__doc__", "--convention", "refattn"], "is not callable", id="not-callable"
        ),
        pytest.param(
            ["refattn:attention", "--convention", "pytorch"], "invalid choice", id="convention"
        ),
    ],
)
def test_usage_errors_exit_2_with_one_line(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("refattn check: error: ")
    assert message in err


def test_python_dash_m_runs_the_command() -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "refattn.testing",
            "check",
            "refattn:attention",
            "--convention",
            "refattn",
            "--quick",
            "--json",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["passed"] is True
    assert proc.stderr == ""  # no progress bar when stdout is not a terminal


def test_progress_bar_only_on_a_terminal(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    argv = ["refattn:attention", "--convention", "refattn", "--quick"]
    assert main(argv) == 0
    assert capsys.readouterr().err == ""
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    assert main(argv) == 0
    err = capsys.readouterr().err
    n = len(configs("refattn", quick=True))
    assert f"] 1/{n} configs" in err
    assert f"] {n}/{n} configs" in err
