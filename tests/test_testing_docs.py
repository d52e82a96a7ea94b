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


def test_live_runs_equal_the_record_so_the_page_never_shows_a_stale_one() -> None:
    pytest.importorskip("torch")
    hook = _hook()
    page = (ROOT / "docs" / "testing.md").read_text()
    recorded = hook.load_captures()
    assert sorted(recorded) == sorted(hook.run_keys(page))
    assert len(recorded) == 4
    live = hook.live_captures()
    # decimal numbers (measured errors) may differ in their last digits between machines
    assert {k: hook.normalised(v) for k, v in live.items()} == {
        k: hook.normalised(v) for k, v in recorded.items()
    }, f"run `{hook.RECORD_COMMAND}` if the change is meant"
    assert hook.dump_captures(recorded) == hook.CAPTURES.read_text()  # the format it writes


def test_normalised_hides_measured_errors_and_keeps_counts() -> None:
    hook = _hook()
    text = "54 of 77 configs passed, 23 failed\nmax error 1.2 against allowed 1.06e-06; 1.13e+06 x"
    assert (
        hook.normalised(text)
        == "54 of 77 configs passed, 23 failed\nmax error # against allowed #; # x"
    )
    assert hook.normalised("76 of 77") != hook.normalised("77 of 77")


WITHOUT_FRAMEWORKS = """
import sys
for name in ("torch", "jax", "jaxlib", "tensorflow"):
    sys.modules[name] = None  # import fails: not installed
import importlib.util, json
spec = importlib.util.spec_from_file_location("testing_page", sys.argv[1])
hook = importlib.util.module_from_spec(spec)
spec.loader.exec_module(hook)
page = open(sys.argv[2], encoding="utf-8").read()
print(json.dumps({"installed": hook.torch_installed(), "page": hook.render(page)}))
"""


def test_without_torch_the_page_shows_the_recorded_runs_and_says_so() -> None:
    import json
    import subprocess

    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            WITHOUT_FRAMEWORKS,
            str(ROOT / "docs" / "hooks" / "testing_page.py"),
            str(ROOT / "docs" / "testing.md"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout)
    assert out["installed"] is False
    rendered = out["page"]
    hook = _hook()
    assert "<!-- testing:" not in rendered
    assert "| `gqa_heads_tiled` |" in rendered  # the mutant table needs NumPy only
    for text in hook.load_captures().values():
        assert f"```text\n{text}\n```\n\n{hook.RECORDED_NOTE}" in rendered
    assert rendered.count(hook.RECORDED_NOTE) == 4


def test_a_live_run_that_differs_from_the_record_fails_the_build(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from mkdocs.exceptions import PluginError

    hook = _hook()
    recorded = hook.load_captures()["cli my_attention_fixed"]
    assert "77 of 77 configs passed" in recorded
    marker = "<!-- testing:cli my_attention_fixed -->"
    monkeypatch.setattr(hook, "live_run", lambda key: recorded)
    assert hook.render(marker, live=True) == f"```text\n{recorded}\n```"  # live: no note
    stale = recorded.replace("77 of 77", "76 of 77")
    monkeypatch.setattr(hook, "live_run", lambda key: stale)
    with pytest.raises(PluginError, match=r"differs from docs/snippets/testing_captures\.json"):
        hook.render(marker, live=True)
    monkeypatch.setattr(hook, "load_captures", dict)  # nothing recorded
    with pytest.raises(PluginError, match="is not recorded and PyTorch is not installed"):
        hook.render(marker, live=False)
