"""The einsum definition, numerics, edge sizes, policies, dropout and input safety."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import refattn
from refattn import einsums, masks
from tests.loop_reference import loop_attention, loop_dropout_keep


def _grouped(q: np.ndarray, hkv: int) -> np.ndarray:
    *batch, hq, length_q, dim = q.shape
    return q.reshape(*batch, hkv, hq // hkv, length_q, dim)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_blas_path_equals_plain_einsum(dtype: type) -> None:
    """The blocked matmul path computes exactly the math the einsum strings declare."""
    rng = np.random.default_rng(3)
    q: np.ndarray = rng.standard_normal((2, 6, 113, 24)).astype(dtype)
    k: np.ndarray = rng.standard_normal((2, 3, 203, 24)).astype(dtype)
    v: np.ndarray = rng.standard_normal((2, 3, 203, 16)).astype(dtype)
    scores = np.einsum(einsums.SCORES, _grouped(q, 3), k) / np.sqrt(24)
    weights = np.exp(scores - scores.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)
    want = np.einsum(einsums.MIX, weights, v).reshape(2, 6, 113, 16)
    got = refattn.attention(q, k, v, return_weights=True)
    assert got.weights is not None
    tol = 1e-12 if dtype == np.float64 else 2e-6
    np.testing.assert_allclose(got.output, want, rtol=tol, atol=tol)
    np.testing.assert_allclose(got.weights, weights.reshape(2, 6, 113, 203), rtol=tol, atol=tol)


def test_einsum_strings_are_portable_to_torch() -> None:
    torch = pytest.importorskip("torch")  # a parity-extra check; the suite installs torch
    rng = np.random.default_rng(0)
    q, k = rng.standard_normal((2, 2, 3, 4, 5)), rng.standard_normal((2, 2, 6, 5))
    got = torch.einsum(einsums.SCORES, torch.from_numpy(q), torch.from_numpy(k)).numpy()
    np.testing.assert_allclose(got, np.einsum(einsums.SCORES, q, k), rtol=1e-12)


@pytest.mark.parametrize(
    "shape",
    [
        pytest.param((1, 1, 1, 1, 1, 1), id="L=S=D=1"),
        pytest.param((2, 3, 1, 9, 4, 2), id="L=1"),
        pytest.param((1, 2, 7, 7, 1, 3), id="D=1"),
        pytest.param((1, 1, 113, 203, 5, 2), id="odd-113x203"),
    ],
)
def test_edge_sizes_match_loop_reference(shape: tuple[int, ...]) -> None:
    b, h, length_q, length_k, dim, dim_v = shape
    rng = np.random.default_rng(1)
    q = rng.standard_normal((b, h, length_q, dim))
    k = rng.standard_normal((b, h, length_k, dim))
    v = rng.standard_normal((b, h, length_k, dim_v))
    out, _, _ = loop_attention(q, k, v, causal="bottom_right")
    got = refattn.attention(q, k, v, causal="bottom_right")
    np.testing.assert_allclose(got, out, rtol=1e-10, atol=1e-12)


def test_empty_batch_and_empty_keys() -> None:
    q = np.zeros((0, 2, 3, 4), np.float32)
    assert refattn.attention(q, q, q).shape == (0, 2, 3, 4)
    k = np.zeros((1, 2, 0, 4), np.float32)
    out = refattn.attention(np.ones((1, 2, 3, 4), np.float32), k, k)
    assert out.shape == (1, 2, 3, 4)
    assert not out.any()  # no key at all: every row is fully masked, policy "zero"


def test_float16_is_computed_in_float32_and_returned_as_float16() -> None:
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((1, 2, 64, 16)).astype(np.float16) for _ in range(3))
    got = refattn.attention(q, k, v)
    assert got.dtype == np.float16
    want = refattn.attention(*(x.astype(np.float64) for x in (q, k, v)))
    # float32 accumulation: the only error left is float16's final rounding
    np.testing.assert_allclose(got.astype(np.float64), want, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("size", [1e4, -1e4])
def test_huge_logits_stay_finite(dtype: type, size: float) -> None:
    rng = np.random.default_rng(0)
    q: np.ndarray = np.full((1, 1, 4, 1), size, dtype)
    k: np.ndarray = rng.standard_normal((1, 1, 6, 1)).astype(dtype)
    v: np.ndarray = rng.standard_normal((1, 1, 6, 3)).astype(dtype)
    res = refattn.attention(q, k, v, scale=1.0, return_lse=True)
    assert res.lse is not None
    assert np.isfinite(res.output).all()
    assert np.isfinite(res.lse).all()
    # logits of +-1e4 make softmax one-hot on the largest (or smallest) key
    best = np.argmax(k[0, 0, :, 0] * np.sign(size))
    np.testing.assert_allclose(res.output[0, 0], np.repeat(v[0, 0, best][None], 4, 0), rtol=1e-3)


@pytest.mark.parametrize(
    ("policy", "check"),
    [
        pytest.param("zero", lambda out, v: np.all(out == 0), id="zero"),
        pytest.param("nan", lambda out, v: np.all(np.isnan(out)), id="nan"),
        pytest.param("uniform", lambda out, v: np.allclose(out, v.mean(0)), id="uniform"),
    ],
)
def test_fully_masked_policies(policy: Any, check: Any) -> None:
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((1, 1, 3, 4)) for _ in range(3))
    mask = np.array([[True, False, True], [False, False, False], [True, True, True]])
    res = refattn.attention(q, k, v, attend_mask=mask, fully_masked=policy, return_lse=True)
    assert res.lse is not None
    assert check(res.output[0, 0, 1], v[0, 0])
    assert res.lse[0, 0, 1] == -np.inf
    assert np.isfinite(res.output[0, 0, [0, 2]]).all()


def test_additive_minus_inf_bias_equals_boolean_mask() -> None:
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((2, 2, 5, 4)) for _ in range(3))
    mask = rng.random((2, 1, 5, 5)) < 0.6
    a = refattn.attention(q, k, v, attend_mask=mask)
    b = refattn.attention(q, k, v, bias=masks.to_additive(mask, np.float64))
    np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-15)  # two paths, float64 rounding


def test_dropout_with_keep_mask_matches_loop_reference() -> None:
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((1, 2, 4, 3)) for _ in range(3))
    keep = rng.random((1, 2, 4, 4)) >= 0.3
    out, _, _ = loop_attention(q, k, v, dropout_keep=keep, dropout_p=0.3)
    got = refattn.attention(q, k, v, dropout_p=0.3, dropout_keep=keep)
    np.testing.assert_allclose(got, out, rtol=1e-12)


def test_dropout_rng_is_explicit_and_reproducible() -> None:
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((1, 2, 4, 3)) for _ in range(3))
    a = refattn.attention(q, k, v, dropout_p=0.5, rng=np.random.default_rng(7))
    b = refattn.attention(q, k, v, dropout_p=0.5, rng=np.random.default_rng(7))
    keep = loop_dropout_keep(np.random.default_rng(7), 0.5, (1, 2, 4, 4))  # documented draw
    np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(a, refattn.attention(q, k, v, dropout_p=0.5, dropout_keep=keep))


def test_no_input_is_modified() -> None:
    rng = np.random.default_rng(0)
    args: dict[str, Any] = {
        "query": rng.standard_normal((2, 4, 5, 3)).astype(np.float32),
        "key": rng.standard_normal((2, 2, 6, 3)).astype(np.float32),
        "value": rng.standard_normal((2, 2, 6, 2)).astype(np.float32),
        "attend_mask": rng.random((2, 1, 5, 6)) < 0.7,
        "bias": rng.standard_normal((5, 6)).astype(np.float32),
        "key_lengths": np.array([6, 3]),
        "alibi_slopes": rng.random(4),
    }
    before = {name: arr.copy() for name, arr in args.items()}
    for arr in args.values():
        arr.flags.writeable = False  # any in-place write would raise
    refattn.attention(**args, softcap=2.0, causal="bottom_right", return_weights=True)
    for name, arr in args.items():
        np.testing.assert_array_equal(arr, before[name])


def test_key_value_may_broadcast_over_query_batch_dims() -> None:
    rng = np.random.default_rng(0)
    q = rng.standard_normal((3, 2, 4, 5, 8))
    k, v = rng.standard_normal((2, 4, 6, 8)), rng.standard_normal((1, 4, 6, 3))
    got = refattn.attention(q, k, v)
    for i in range(3):
        want = refattn.attention(q[i], k, np.broadcast_to(v, (2, 4, 6, 3)))
        np.testing.assert_allclose(got[i], want)


@pytest.mark.parametrize(
    ("logit_size", "value_size"),
    [
        pytest.param(55.0, 1.0, id="bounded-logits-unshifted"),
        pytest.param(200.0, 1.0, id="large-logits-shifted"),
        pytest.param(55.0, 1e30, id="huge-values-shifted"),
    ],
)
def test_float32_accuracy_on_both_softmax_paths(logit_size: float, value_size: float) -> None:
    """Whether or not the row max is subtracted, float32 stays at float32 accuracy."""
    rng = np.random.default_rng(0)
    q = rng.standard_normal((1, 2, 64, 16))
    q *= logit_size / np.linalg.norm(q, axis=-1, keepdims=True)  # |q_i| = logit_size
    k = rng.standard_normal((1, 2, 80, 16))
    k /= np.linalg.norm(k, axis=-1, keepdims=True)  # |k_j| = 1: logits within +-logit_size
    v = rng.standard_normal((1, 2, 80, 8)) * value_size
    q32, k32, v32 = (x.astype(np.float32) for x in (q, k, v))
    got = refattn.attention(q32, k32, v32, scale=1.0, return_lse=True)
    want = refattn.attention(
        *(x.astype(np.float64) for x in (q32, k32, v32)), scale=1.0, return_lse=True
    )
    assert np.isfinite(got.output).all()
    scale_of_output = np.abs(want.output).max()
    assert np.abs(got.output - want.output).max() <= 1e-5 * scale_of_output
    assert got.lse is not None
    assert want.lse is not None
    np.testing.assert_allclose(got.lse, want.lse, rtol=1e-6)
