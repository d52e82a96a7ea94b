"""``make serve``: what it installs, the port it takes, the page it gives for a missing URL.

The install and serve times on a fresh clone are measured by hand (README); tests never
assert wall time.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shlex
import socket
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SERVER = ROOT / "docs" / "hooks" / "serve_site.py"
_spec = importlib.util.spec_from_file_location("serve_site", SERVER)
assert _spec is not None
assert _spec.loader is not None
serve_site = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(serve_site)

HEAVY = {"torch", "jax", "jaxlib", "tensorflow", "tensorflow-cpu", "scipy", "playwright"}
TOOLS = {"ruff", "mypy", "pytest", "hypothesis"}


def _make_dry_run(target: str, *args: str) -> list[str]:
    """The commands ``make TARGET`` would run on a fresh clone (``-B``: nothing is made)."""
    result = subprocess.run(
        ["make", "-n", "-B", target, *args], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return result.stdout.splitlines()


def test_serve_installs_the_docs_extra_only() -> None:
    lines = _make_dry_run("serve")
    installs = [shlex.split(line) for line in lines if " pip install " in line]
    assert len(installs) == 1
    (spec,) = [a for a in installs[0] if a.startswith(".[")]
    assert spec == ".[docs]"
    # what pip resolves for it, against the registry, installing nothing
    report = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--dry-run",
            "--ignore-installed",
            "--quiet",
            "--report",
            "-",
            spec,
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    names = {item["metadata"]["name"].lower() for item in json.loads(report.stdout)["install"]}
    assert {"refattn", "numpy", "mkdocs", "mkdocs-material", "latex2mathml"} <= names
    assert not names & (HEAVY | TOOLS), names & (HEAVY | TOOLS)


def test_test_installs_everything_and_ci_runs_it() -> None:
    lines = _make_dry_run("test")
    assert any("-e '.[test,parity,dev,docs]'" in line for line in lines)
    assert (ROOT / ".ci" / "run").read_text().strip().splitlines()[-1] == "make test"


def test_serve_port_is_chosen_on_the_command_line() -> None:
    (serve,) = [line for line in _make_dry_run("serve", "PORT=8123") if "serve_site.py" in line]
    assert "--port 8123" in serve
    assert "NO_MKDOCS_2_WARNING := 1" in (ROOT / "Makefile").read_text()


def test_python_version_is_stated_as_in_pyproject() -> None:
    makefile = (ROOT / "Makefile").read_text()
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert 'requires-python = ">=3.11"' in pyproject
    assert "python3 (>= 3.11)" in makefile
    assert "< (3, 11)" in makefile
    assert not re.search(r"3\.10", makefile)
    assert "3.11" in (ROOT / "README.md").read_text()


@pytest.fixture
def site(tmp_path: Path) -> Path:
    (tmp_path / "index.html").write_text("<h1>home</h1>")
    (tmp_path / "404.html").write_text('<link rel="stylesheet" href="/a.css"><h1>404 styled</h1>')
    return tmp_path


@pytest.fixture
def served(site: Path) -> Iterator[str]:
    server = serve_site.bind(0, site)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_missing_page_gets_the_sites_404_page(served: str, site: Path) -> None:
    assert urllib.request.urlopen(served + "/").read() == b"<h1>home</h1>"
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(served + "/catalogue/no_such_case/")
    assert missing.value.code == 404
    assert missing.value.read() == (site / "404.html").read_bytes()
    assert missing.value.headers["Content-Type"] == "text/html; charset=utf-8"


def test_port_in_use_is_one_line(site: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, str(SERVER), "--port", str(port)],
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONPATH": ""},
            timeout=60,
        )
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr == (
        f"serve: port {port} is already in use (another `make serve`?); "
        f"choose another: make serve PORT={port + 1}\n"
    )


def test_no_built_site_is_one_line(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            str(SERVER),
            "--port",
            "0",
            "--site",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr == f"serve: no site in {tmp_path}; build it first (make serve)\n"


# What the docs-only install (`make serve`) lacks: everything outside numpy + the docs extra.
NOT_IN_DOCS_INSTALL = sorted(
    {"torch", "jax", "jaxlib", "tensorflow", "keras", "scipy", "playwright", "pytest"}
    | {"hypothesis", "ruff", "mypy", "black"}
)

BUILD_WITHOUT = """
import runpy, sys
for name in sys.argv[2].split(","):
    sys.modules[name] = None  # import fails, importlib.util.find_spec gives None: not installed
sys.argv = ["mkdocs", "build", "--strict", "--site-dir", sys.argv[1]]
runpy.run_module("mkdocs", run_name="__main__")
"""


def test_site_builds_quietly_with_the_docs_install_only(tmp_path: Path) -> None:
    """The build ``make serve`` runs, with every package it does not install made absent."""
    result = subprocess.run(
        [sys.executable, "-c", BUILD_WITHOUT, str(tmp_path), ",".join(NOT_IN_DOCS_INSTALL)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "index.html").is_file()
    assert (tmp_path / "404.html").is_file()
    output = result.stdout + result.stderr
    assert "end of life" not in output
    assert "not included in the" not in output  # the case pages are not_in_nav
    assert len(output.splitlines()) <= 6, output
