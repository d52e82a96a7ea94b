"""``import refattn`` loads its public names on first use (PEP 562)."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

import refattn


def test_every_public_name_has_a_home_and_is_the_defining_module_s_object() -> None:
    assert set(refattn._HOMES) == set(refattn.__all__)
    for name, home in refattn._HOMES.items():
        module = importlib.import_module(home or f"refattn.{name}")
        expected = module if not home else getattr(module, name)
        assert getattr(refattn, name) is expected, name
        assert name in dir(refattn)


def test_an_unknown_name_raises_attribute_error_naming_it() -> None:
    with pytest.raises(AttributeError, match="'no_such_name'"):
        _ = refattn.no_such_name


def _loads_numpy(code: str) -> bool:
    probe = f"{code}\nimport sys\nprint('numpy' in sys.modules)"
    run = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return run.stdout.strip().splitlines()[-1] == "True"


def test_import_and_the_diagnose_command_do_not_load_numpy() -> None:
    assert not _loads_numpy("import refattn")
    diagnose = (
        "import contextlib, io, sys\n"
        "from refattn.cli import entry\n"
        "sys.argv = ['refattn', 'diagnose', 'RuntimeError: The size of tensor a (8) must "
        "match the size of tensor b (2) at non-singleton dimension 1']\n"
        "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
        "    entry()"
    )
    assert not _loads_numpy(diagnose)
    assert _loads_numpy("from refattn import attention")
