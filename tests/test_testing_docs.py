"""The testing page (docs/testing.md): its snippets and the runs its hook shows."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _hook() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "testing_page", ROOT / "docs" / "hooks" / "testing_page.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_buggy_snippet_fails_with_its_mistake_named_and_the_fix_passes() -> None:
    pytest.importorskip("torch")
    hook = _hook()
    code, text = hook.cli_run("my_attention")
    assert code == 1
    assert re.search(r"- \d+ configs: gqa_heads_tiled \(gqa-heads\)", text)
    assert "unexplained" not in text  # the one mistake explains every failure
    code, text = hook.cli_run("my_attention_fixed")
    assert code == 0
    assert text.endswith("PASSED\n$ echo $?\n0")


def test_pytest_snippet_fails_on_the_bug_and_passes_on_the_fix() -> None:
    pytest.importorskip("torch")
    hook = _hook()
    failures, text = hook.pytest_run("my_attention")
    assert failures == 2  # heads_kv=2 in float32 and bfloat16; 4 and 1 heads are unaffected
    assert "explained by mutant 'gqa_heads_tiled'" in text
    assert "heads 1, 2 (of 4)" in text
    failures, text = hook.pytest_run("my_attention_fixed")
    assert failures == 0
    assert "6 passed" in text


def test_page_renders_every_marker_and_the_site_lists_it() -> None:
    pytest.importorskip("torch")
    page = (ROOT / "docs" / "testing.md").read_text()
    rendered = _hook().render(page)
    assert "<!-- testing:" not in rendered
    for name in ("gqa_heads_tiled", "causal_alignment_swapped", "mask_inverted"):
        assert f"| `{name}` |" in rendered
    for snippet in re.findall(r'--8<-- "([^"]+)"', page):
        assert (ROOT / snippet).is_file()
    config = (ROOT / "mkdocs.yml").read_text()
    assert "  - Test your attention: testing.md\n" in config
    assert "  - docs/hooks/testing_page.py\n" in config


def test_only_the_fix_differs_between_the_two_snippets() -> None:
    buggy = (ROOT / "docs" / "snippets" / "my_attention.py").read_text().splitlines()
    fixed = (ROOT / "docs" / "snippets" / "my_attention_fixed.py").read_text().splitlines()
    changed = [(a, b) for a, b in zip(buggy, fixed, strict=True) if a != b]
    assert [b.split("=")[1].split("(")[0].strip() for _, b in changed] == [
        "k.repeat_interleave",
        "v.repeat_interleave",
    ]


def test_python_dash_m_refattn_check_runs_the_same_main() -> None:
    import subprocess

    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "refattn",
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
    assert '"passed": true' in proc.stdout
