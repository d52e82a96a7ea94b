"""The porting guide's snippets (PyTorch, JAX, TensorFlow) equal refattn.attention."""

from __future__ import annotations

import importlib
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


def _inputs() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Grouped-query heads (6 query heads over 3 key/value heads), a mask, a masked row."""
    rng = np.random.default_rng(0)
    q = rng.standard_normal((2, 6, 5, 8))
    k, v = rng.standard_normal((2, 3, 7, 8)), rng.standard_normal((2, 3, 7, 4))
    mask = rng.random((2, 1, 5, 7)) < 0.6
    mask[0, 0, 2] = False  # a fully masked row
    return q, k, v, mask


def _check(snippet: ModuleType, got: np.ndarray) -> None:
    assert (snippet.SCORES, snippet.MIX) == (refattn.einsums.SCORES, refattn.einsums.MIX)
    q, k, v, mask = _inputs()
    want = refattn.attention(q, k, v, attend_mask=mask)
    assert got.shape == want.shape == (2, 6, 5, 4)
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    assert not got[0, :, 2].any()  # the fully masked row is zeros, as refattn's default


def test_torch_snippet_matches_reference() -> None:
    snippet = _load("porting_torch")
    q, k, v, mask = _inputs()
    got = snippet.attention(*map(torch.from_numpy, (q, k, v)), torch.from_numpy(mask)).numpy()
    _check(snippet, got)


def test_jax_snippet_matches_reference() -> None:
    jax = importlib.import_module("jax")  # the parity extra; imported only by this test
    x64 = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)  # float64 end to end, as the reference
    try:
        snippet = _load("porting_jax")
        q, k, v, mask = _inputs()
        got = np.asarray(snippet.attention(*map(jax.numpy.asarray, (q, k, v, mask))))
    finally:
        jax.config.update("jax_enable_x64", x64)
    _check(snippet, got)


def test_tf_snippet_matches_reference() -> None:
    tf = importlib.import_module("tensorflow")  # tensorflow-cpu, in the parity extra
    snippet = _load("porting_tf")
    q, k, v, mask = _inputs()
    got = snippet.attention(*map(tf.constant, (q, k, v, mask))).numpy()
    _check(snippet, got)
