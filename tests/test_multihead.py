"""refattn.multi_head_attention against projections spelled with matmul and the loop reference."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from refattn import masks
from refattn.errors import AttentionDTypeError, AttentionShapeError, AttentionValueError
from refattn.multihead import merge_heads, multi_head_attention, project_heads
from tests.loop_reference import loop_attention

TOL = 1e-10


def split(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, heads: int) -> np.ndarray:
    """Linear, then (..., L, H * D) -> (..., H, L, D): the textbook spelling."""
    y: np.ndarray = x @ w.T + (0 if b is None else b)
    return np.swapaxes(y.reshape(*y.shape[:-1], heads, -1), -2, -3)


def loop_mha(
    query: np.ndarray,
    key: np.ndarray,
    value: np.ndarray,
    p: dict[str, Any],
    hq: int,
    hkv: int,
    **options: Any,
) -> tuple[np.ndarray, np.ndarray]:
    q = split(query, p["q_proj_weight"], p.get("q_proj_bias"), hq)  # (..., Hq, L, D)
    k = split(key, p["k_proj_weight"], p.get("k_proj_bias"), hkv)  # (..., Hkv, S, D)
    v = split(value, p["v_proj_weight"], p.get("v_proj_bias"), hkv)  # (..., Hkv, S, Dv)
    out, weights, _ = loop_attention(q, k, v, **options)  # (..., Hq, L, Dv)
    merged = np.swapaxes(out, -2, -3).reshape(*out.shape[:-3], out.shape[-2], -1)
    projected: np.ndarray = merged @ p["out_proj_weight"].T + p["out_proj_bias"]
    return projected, weights


def random_params(
    rng: np.random.Generator, hq: int, hkv: int, dim: int, dim_v: int, eq: int, ek: int, ev: int
) -> dict[str, Any]:
    def w(*shape: int) -> np.ndarray:
        x: np.ndarray = rng.standard_normal(shape) / np.sqrt(shape[-1])
        return x

    return {
        "q_proj_weight": w(hq * dim, eq),
        "k_proj_weight": w(hkv * dim, ek),
        "v_proj_weight": w(hkv * dim_v, ev),
        "q_proj_bias": w(hq * dim),
        "k_proj_bias": w(hkv * dim),
        "v_proj_bias": w(hkv * dim_v),
        "out_proj_weight": w(11, hq * dim_v),
        "out_proj_bias": w(11),
    }


CONFIGS = [
    pytest.param((4, 4, 3, 3, 12, 12, 12), id="mha"),
    pytest.param((4, 2, 3, 5, 8, 6, 7), id="gqa-kdim-vdim-dv"),
    pytest.param((6, 1, 2, 2, 5, 5, 9), id="mqa"),
    pytest.param((1, 1, 7, 4, 3, 3, 3), id="one-head"),
]


@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize("seed", range(3))
def test_separate_weights_match_loop_reference(config: tuple[int, ...], seed: int) -> None:
    hq, hkv, dim, dim_v, eq, ek, ev = config
    rng = np.random.default_rng(seed)
    length_q, length_k = 5, 7  # cross-attention, L != S
    query = rng.standard_normal((2, length_q, eq))
    key = rng.standard_normal((2, length_k, ek))
    value = rng.standard_normal((2, length_k, ev))
    p = random_params(rng, hq, hkv, dim, dim_v, eq, ek, ev)
    attend = rng.random((2, 1, length_q, length_k)) < 0.7
    options: dict[str, Any] = {
        "attend_mask": attend,
        "causal": "bottom_right",
        "key_lengths": np.array([7, 5]),
    }
    want_out, want_w = loop_mha(query, key, value, p, hq, hkv, **options)
    res = multi_head_attention(
        query, key, value, num_heads=hq, num_kv_heads=hkv, return_weights=True, **p, **options
    )
    assert res.output.shape == (2, length_q, 11)
    assert res.weights.shape == (2, hq, length_q, length_k)
    np.testing.assert_allclose(res.output, want_out, rtol=TOL, atol=TOL)
    np.testing.assert_allclose(res.weights, want_w, rtol=TOL, atol=TOL)
    avg = multi_head_attention(
        query,
        key,
        value,
        num_heads=hq,
        num_kv_heads=hkv,
        return_weights=True,
        average_weights=True,
        **p,
        **options,
    )
    np.testing.assert_allclose(avg.weights, want_w.mean(axis=1), rtol=TOL, atol=TOL)


def test_packed_equals_separate_self_attention() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 6, 8))
    p = random_params(rng, 4, 2, 2, 2, 8, 8, 8)
    packed = np.concatenate([p["q_proj_weight"], p["k_proj_weight"], p["v_proj_weight"]])
    packed_bias = np.concatenate([p["q_proj_bias"], p["k_proj_bias"], p["v_proj_bias"]])
    assert packed.shape == ((4 + 2 * 2) * 2, 8)
    got = multi_head_attention(
        x,
        num_heads=4,
        num_kv_heads=2,
        in_proj_weight=packed,
        in_proj_bias=packed_bias,
        out_proj_weight=p["out_proj_weight"],
        out_proj_bias=p["out_proj_bias"],
        causal="top_left",
    )
    want, _ = loop_mha(x, x, x, p, 4, 2, causal="top_left")
    np.testing.assert_allclose(got, want, rtol=TOL, atol=TOL)


def test_gqa_equals_mha_with_each_kv_head_repeated() -> None:
    """Query head h reads kv head h // G: repeating kv head rows G times gives plain MHA."""
    rng = np.random.default_rng(1)
    hq, hkv, dim = 6, 2, 3
    x, memory = rng.standard_normal((2, 4, 5)), rng.standard_normal((2, 9, 5))
    p = random_params(rng, hq, hkv, dim, dim, 5, 5, 5)
    repeated: dict[str, Any] = dict(p)
    for name in ("k_proj_weight", "k_proj_bias", "v_proj_weight", "v_proj_bias"):
        per_head = p[name].reshape(hkv, dim, *p[name].shape[1:])
        repeated[name] = np.repeat(per_head, hq // hkv, axis=0).reshape(
            hq * dim, *p[name].shape[1:]
        )
    gqa = multi_head_attention(x, memory, num_heads=hq, num_kv_heads=hkv, **p)
    mha = multi_head_attention(x, memory, num_heads=hq, **repeated)
    np.testing.assert_allclose(gqa, mha, rtol=TOL, atol=TOL)
    tiled: dict[str, Any] = dict(
        repeated
    )  # np.tile maps head h to h % Hkv: a different, wrong model
    for name in ("k_proj_weight", "v_proj_weight"):
        per_head = p[name].reshape(hkv, dim, -1)
        tiled[name] = np.tile(per_head, (hq // hkv, 1, 1)).reshape(hq * dim, -1)
    assert not np.allclose(gqa, multi_head_attention(x, memory, num_heads=hq, **tiled))


def test_heads_split_head_major() -> None:
    x = np.arange(2 * 6, dtype=np.float64).reshape(2, 6)  # (L, E), E = H * D = 3 * 2
    heads = project_heads(x, np.eye(6), num_heads=3)  # (H, L, D)
    assert heads.shape == (3, 2, 2)
    np.testing.assert_array_equal(heads[1], x[:, 2:4])  # head 1 = features 2..3
    np.testing.assert_array_equal(merge_heads(heads), x)  # merge inverts split
    np.testing.assert_array_equal(merge_heads(heads, np.eye(6), np.zeros(6)), x)


def test_options_forwarded_to_core() -> None:
    rng = np.random.default_rng(2)
    x = rng.standard_normal((1, 5, 4))
    p = random_params(rng, 2, 2, 2, 2, 4, 4, 4)
    by_name = multi_head_attention(x, num_heads=2, causal="top_left", **p)
    by_mask = multi_head_attention(x, num_heads=2, attend_mask=masks.causal(5, 5, "top_left"), **p)
    np.testing.assert_allclose(by_name, by_mask, rtol=TOL, atol=TOL)
    nan = multi_head_attention(x, num_heads=2, key_lengths=[0], fully_masked="nan", **p)
    assert np.isnan(nan).all()


def test_unprojected_output_is_merged_heads() -> None:
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 6))  # unbatched (L, E)
    p = random_params(rng, 3, 3, 2, 2, 6, 6, 6)
    del p["out_proj_weight"], p["out_proj_bias"]
    out = multi_head_attention(x, num_heads=3, **p)
    q, k, v = (split(x, p[f"{n}_proj_weight"], p[f"{n}_proj_bias"], 3) for n in "qkv")
    heads, _, _ = loop_attention(q, k, v)  # (H, L, Dv)
    np.testing.assert_allclose(out, np.swapaxes(heads, 0, 1).reshape(4, 6), rtol=TOL, atol=TOL)


def _base() -> dict[str, Any]:
    rng = np.random.default_rng(0)
    p = random_params(rng, 2, 2, 3, 3, 6, 6, 6)
    return {"query": np.zeros((1, 4, 6)), "num_heads": 2, **p}


@pytest.mark.parametrize(
    ("change", "error", "match"),
    [
        pytest.param(
            {"q_proj_weight": np.zeros((6, 5))},
            AttentionShapeError,
            r"q_proj_weight shape should be \(H \* D, E\) = \(2 \* D, 6\)",
            id="weight-in-features",
        ),
        pytest.param(
            {"k_proj_weight": np.zeros((6, 7)).T},
            AttentionShapeError,
            "is transposed",
            id="transposed-weight",
        ),
        pytest.param(
            {"num_kv_heads": 4, "num_heads": 6},
            AttentionValueError,
            "num_heads should be a multiple of num_kv_heads",
            id="heads-not-multiple",
        ),
        pytest.param(
            {"v_proj_weight": None},
            AttentionValueError,
            "missing v_proj_weight",
            id="missing-weight",
        ),
        pytest.param(
            {"in_proj_weight": np.zeros((18, 6))},
            AttentionValueError,
            "in_proj_weight was given together with separate projections",
            id="packed-and-separate",
        ),
        pytest.param(
            {"key": np.zeros((1, 5, 6)), "value": np.zeros((1, 4, 6))},
            AttentionShapeError,
            "value length should equal key's S=5",
            id="key-value-lengths",
        ),
        pytest.param(
            {"k_proj_weight": np.zeros((4, 6)), "k_proj_bias": None},
            AttentionShapeError,
            "query and key head dims should be equal: but got D=3",
            id="head-dims",
        ),
        pytest.param(
            {"query": np.zeros((1, 4, 6), np.float32)},
            AttentionDTypeError,
            "q_proj_weight dtype should be the query's float32",
            id="mixed-dtype",
        ),
        pytest.param(
            {"out_proj_weight": np.zeros((6, 5))},
            AttentionShapeError,
            r"out_proj_weight shape should be \(O, H \* Dv\) = \(O, 2 \* 3\)",
            id="out-proj",
        ),
        pytest.param(
            {"query": np.zeros(6)},
            AttentionShapeError,
            r"query shape should be \(\.\.\., L, Eq\)",
            id="no-length-axis",
        ),
    ],
)
def test_errors_name_the_argument(change: dict[str, Any], error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        multi_head_attention(**(_base() | change))


def test_packed_rows_must_split_into_heads() -> None:
    with pytest.raises(
        AttentionShapeError, match=r"\(\(Hq \+ 2 \* Hkv\) \* D, E\) = \(6 \* D, E\)"
    ):
        multi_head_attention(np.zeros((1, 4, 6)), num_heads=2, in_proj_weight=np.zeros((16, 6)))
