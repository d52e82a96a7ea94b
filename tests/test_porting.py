"""The porting guide's PyTorch snippet equals refattn.attention."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import numpy as np
import torch

import refattn

SNIPPETS = Path(__file__).resolve().parent.parent / "docs" / "snippets"


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, SNIPPETS / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_torch_snippet_matches_reference() -> None:
    snippet = _load("porting_torch")
    assert (snippet.SCORES, snippet.MIX) == (refattn.einsums.SCORES, refattn.einsums.MIX)
    rng = np.random.default_rng(0)
    q = rng.standard_normal((2, 6, 5, 8))
    k, v = rng.standard_normal((2, 3, 7, 8)), rng.standard_normal((2, 3, 7, 4))
    mask = rng.random((2, 1, 5, 7)) < 0.6
    mask[0, 0, 2] = False  # a fully masked row
    got = snippet.attention(*map(torch.from_numpy, (q, k, v)), torch.from_numpy(mask)).numpy()
    want = refattn.attention(q, k, v, attend_mask=mask)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    assert not got[0, :, 2].any()
