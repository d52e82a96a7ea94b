"""The built wheel, installed as a user installs it: beside PyPI's ``catalogue``.

The wheel is built from this checkout (``pip wheel --no-deps``; pip fetches hatchling) and
installed into a fresh venv under a temporary directory together with ``numpy`` and
``catalogue==2.0.10`` (the spaCy/thinc/srsly dependency whose name the repository's
``catalogue/`` folder shares). Needs the package registry, as ``make test`` does.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _case_ids() -> list[str]:
    return sorted(p.stem for p in (ROOT / "catalogue" / "cases").glob("[!_]*.py"))


Build = tuple[Path, list[str]]
"""The wheel and the case ids of the checkout it was built from."""


def _run(args: list[str | Path], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.fixture(scope="module")
def build(tmp_path_factory: pytest.TempPathFactory) -> Build:
    out = tmp_path_factory.mktemp("wheel")
    case_ids = _case_ids()
    built = _run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", out, ROOT], cwd=out
    )
    assert built.returncode == 0, built.stderr
    (found,) = out.glob("refattn-*.whl")
    return found, case_ids


@pytest.fixture(scope="module")
def wheel(build: Build) -> Path:
    return build[0]


@pytest.fixture(scope="module")
def case_ids(build: Build) -> list[str]:
    return build[1]


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with numpy, PyPI's catalogue 2.0.10 and the wheel (no other deps)."""
    home = tmp_path_factory.mktemp("user")
    env = home / "venv"
    assert _run([sys.executable, "-m", "venv", env], cwd=home).returncode == 0
    pip: list[str | Path] = [env / "bin" / "python", "-m", "pip", "install", "--quiet"]
    deps = _run([*pip, "numpy", "catalogue==2.0.10"], cwd=home)
    assert deps.returncode == 0, deps.stderr
    ours = _run([*pip, "--no-deps", wheel], cwd=home)
    assert ours.returncode == 0, ours.stderr
    return env


def _python(venv: Path, code: str) -> subprocess.CompletedProcess[str]:
    # run from the venv's parent, never from the checkout, so nothing of the repo is on sys.path
    return _run([venv / "bin" / "python", "-c", code], cwd=venv.parent)


def test_wheel_installs_only_refattns_namespace(wheel: Path, case_ids: list[str]) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    assert {n.split("/")[0] for n in names} == {"refattn", "refattn-0.1.0.dist-info"}
    assert "refattn/catalogue/__init__.py" in names
    shipped = sorted(
        n.removeprefix("refattn/catalogue/cases/").removesuffix(".py")
        for n in names
        if n.startswith("refattn/catalogue/cases/") and not n.split("/")[-1].startswith("_")
    )
    assert shipped == case_ids
    assert not [n for n in names if "/tests/" in n]  # catalogue/tests stays in the repo
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "[console_scripts]\nrefattn = refattn.cli:entry" in text


def test_pypi_catalogue_keeps_working_beside_refattn(venv: Path, case_ids: list[str]) -> None:
    result = _python(
        venv,
        "import catalogue, refattn.catalogue as ours\n"
        "registry = catalogue.create('h16', 'readers')\n"
        "registry.register('x', func=len)\n"
        "assert registry.get('x') is len\n"
        "print(catalogue.__file__)\n"
        "print(len(ours.all_cases()))\n",
    )
    assert result.returncode == 0, result.stderr
    pypi_file, count = result.stdout.split()
    assert "site-packages/catalogue/" in pypi_file
    assert int(count) == len(case_ids)
    check = _run([venv / "bin" / "python", "-m", "pip", "check"], cwd=venv.parent)
    assert check.returncode == 0, check.stdout


def test_import_refattn_needs_numpy_only(venv: Path) -> None:
    result = _python(
        venv,
        "import sys\n"
        "before = set(sys.modules)\n"
        "import refattn, refattn.masks, refattn.compat\n"
        "new = {m.split('.')[0] for m in set(sys.modules) - before}\n"
        "print(' '.join(sorted(new - set(sys.stdlib_module_names))))\n",
    )
    assert result.returncode == 0, result.stderr
    assert set(result.stdout.split()) <= {"refattn", "numpy"}
    assert "numpy" in result.stdout.split()
    frameworks = _python(
        venv,
        "import importlib.util as u\n"
        "print([u.find_spec(n) for n in ('torch', 'jax', 'tensorflow')])",
    )
    assert frameworks.stdout.strip() == "[None, None, None]"  # none installed: none needed


def test_console_script_help(venv: Path) -> None:
    result = _run([venv / "bin" / "refattn", "--help"], cwd=venv.parent)
    assert result.returncode == 0, result.stderr
    assert "cases" in result.stdout
    assert "diagnose" in result.stdout


def test_console_script_reads_the_installed_catalogue(venv: Path, case_ids: list[str]) -> None:
    listed = _run([venv / "bin" / "refattn", "cases", "list"], cwd=venv.parent)
    assert listed.returncode == 0, listed.stderr
    assert [line.split()[0] for line in listed.stdout.splitlines()] == case_ids
    shown = _run([venv / "bin" / "refattn", "cases", "show", "qk_dim_mismatch"], cwd=venv.parent)
    assert shown.returncode == 0, shown.stderr
    assert "Broken code\n    def broken()" in shown.stdout  # source cut from the installed module
    assert "NumPy broken:" in shown.stdout
    assert "(recorded; not installed here)" in shown.stdout  # torch is absent: the record shows
    diagnosed = _run(
        [
            venv / "bin" / "refattn",
            "diagnose",
            "--json",
            "mat1 and mat2 shapes cannot be multiplied",
        ],
        cwd=venv.parent,
    )
    assert diagnosed.returncode == 0, diagnosed.stderr
    module = _run([venv / "bin" / "python", "-m", "refattn.catalogue", "list"], cwd=venv.parent)
    assert module.returncode == 0, module.stderr
    assert module.stdout == listed.stdout


def test_editable_install_of_the_checkout(tmp_path: Path) -> None:
    """What ``make`` does for ``.venv``: the repo root on sys.path, the CLI finds ``catalogue``."""
    env = tmp_path / "venv"
    assert _run([sys.executable, "-m", "venv", env], cwd=tmp_path).returncode == 0
    pip: list[str | Path] = [env / "bin" / "python", "-m", "pip", "install", "--quiet"]
    installed = _run([*pip, "numpy", "--no-deps", "-e", ROOT], cwd=tmp_path)
    assert installed.returncode == 0, installed.stderr
    (pth,) = (env / "lib").glob("python3.*/site-packages/_refattn.pth")
    assert pth.read_text().split() == [str(ROOT)]
    where = _python(env, "import catalogue, refattn; print(catalogue.__file__, refattn.__file__)")
    assert where.stdout.split() == [
        str(ROOT / "catalogue" / "__init__.py"),
        str(ROOT / "refattn" / "__init__.py"),
    ]
    listed = _run([env / "bin" / "refattn", "cases", "list"], cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert "fully_masked_row_nan" in listed.stdout


def test_metadata_license_and_description(wheel: Path) -> None:
    archive = zipfile.ZipFile(wheel)
    assert (
        archive.read("refattn-0.1.0.dist-info/licenses/LICENSE") == (ROOT / "LICENSE").read_bytes()
    )
    assert (ROOT / "LICENSE").read_text().startswith("MIT License\n")
    headers, _, body = archive.read("refattn-0.1.0.dist-info/METADATA").decode().partition("\n\n")
    assert "License-Expression: MIT" in headers
    summary = next(line for line in headers.splitlines() if line.startswith("Summary: "))
    assert summary.startswith("Summary: A NumPy reference for batched attention")
    lines = [line for line in body.splitlines() if line.strip()]
    assert lines[0] == "# refattn"
    assert not lines[1].startswith(("make", "`", "```"))  # a sentence says what it is first
    assert "Project-URL" not in headers  # no address is known; none is invented


def test_readme_gives_the_two_commands_the_install_and_the_cli() -> None:
    readme = (ROOT / "README.md").read_text()
    first_block = readme.split("```sh\n", 1)[1].split("```", 1)[0].splitlines()
    assert [line.split("#")[0].strip() for line in first_block] == ["make serve", "make test"]
    for needed in (
        "pip install /path/to/refattn",
        "[parity]",
        ".venv/bin/refattn",
        "source .venv/bin/activate",
        "make serve PORT=8001",
        "3.11",
        " MB",
        " GB",
    ):
        assert needed in readme, needed
    assert "python -m catalogue list --tag" not in readme  # the CLI is `refattn` now
