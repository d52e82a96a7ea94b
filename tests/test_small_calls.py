"""Small calls take the short way (one block per batch entry) and still run every check.

Issue 18: a call at ``(1, 1, 4, 8)`` cost ~10x naive NumPy, partly because the kernel
cut work far too small for its threads into several blocks that then ran serially. Work is
counted here (blocks), never timed.
"""

from __future__ import annotations

import numpy as np
import pytest

from refattn import _kernel, _numerics, _small, _threads, attention
from refattn.errors import (
    AttentionDTypeError,
    AttentionShapeError,
    AttentionValueError,
    FullyMaskedRowError,
)
from refattn.validation import validate
from tests.loop_reference import loop_attention


@pytest.mark.parametrize("shape", [(1, 1, 4, 8), (2, 4, 16, 32), (3, 2, 1, 4)])
def test_small_calls_are_one_block_per_batch_entry(shape: tuple[int, ...]) -> None:
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal(shape).astype(np.float32) for _ in range(3))
    plan = validate(q, k, v)
    prepared = _numerics.prepare(plan)
    tasks = _kernel.make_tasks(plan, _kernel.scaled_inputs(plan), prepared)
    assert len(tasks) == shape[0]
    want = loop_attention(q.astype(np.float64), k, v)[0]
    np.testing.assert_allclose(attention(q, k, v), want, rtol=2e-6, atol=2e-6)


def test_large_calls_are_still_shared_among_threads() -> None:
    q = np.zeros((1, 8, 1024, 64), np.float32)
    plan = validate(q, q, q)
    tasks = _kernel.make_tasks(plan)
    assert len(tasks) >= 4 * _threads.worker_count()


def test_small_calls_still_refuse_bad_input() -> None:
    q = np.ones((1, 1, 4, 8), np.float32)
    with pytest.raises(AttentionDTypeError, match="share one dtype"):
        attention(q, q.astype(np.float64), q)
    with pytest.raises(AttentionShapeError, match="value length should equal key's S=4"):
        attention(q, q, q[:, :, :3])
    with pytest.raises(AttentionValueError, match="scale should be finite"):
        attention(q, q, q, scale=float("inf"))
    nan_q = q.copy()
    nan_q[0, 0, 1, 3] = np.nan  # masked means absent: only row 1 is NaN
    out = attention(nan_q, q, q)
    assert np.isnan(out[0, 0, 1]).all()
    assert np.isfinite(np.delete(out[0, 0], 1, axis=0)).all()


# --- the one-block path (refattn._small) against the kernel, bit for bit --------------------

SHAPES: list[tuple[tuple[int, ...], ...]] = [  # (q shape, k/v shape[, v shape])
    ((1, 1, 4, 8), (1, 1, 4, 8)),
    ((2, 4, 16, 32), (2, 4, 16, 32)),
    ((3, 2, 1, 4), (3, 2, 1, 4)),  # one query row
    ((2, 4, 5, 8), (2, 2, 7, 8)),  # GQA, L < S
    ((1, 6, 9, 16), (1, 3, 6, 16)),  # GQA, L > S
    ((2, 3, 4, 8, 4), (1, 3, 4, 6, 4)),  # broadcast batch
    ((1, 2, 40, 8), (1, 2, 40, 8)),  # G * L > D: scaled query and key, no fold
    ((1, 4, 5, 8), (1, 1, 7, 8)),  # one kv head (2-D products), GQA
    ((1, 1, 1, 8), (1, 1, 6, 8)),  # one row: a vector times a matrix
    ((1, 1, 5, 8), (1, 1, 1, 8)),  # one key
    ((1, 1, 6, 1), (1, 1, 6, 1)),  # D = 1
    ((1, 1, 3, 16), (1, 1, 9, 16)),
    ((1, 1, 4, 8), (1, 1, 6, 8), (1, 1, 6, 3)),  # Dv != D
    ((2, 2, 4, 8), (2, 2, 6, 8), (2, 2, 6, 5)),
    ((0, 2, 3, 4), (0, 2, 3, 4)),  # empty batch
    ((1, 2, 0, 4), (1, 2, 5, 4)),  # no query rows
]
OPTIONS: list[dict[str, object]] = [
    {},
    {"causal": "top_left"},
    {"causal": "bottom_right"},
    {"window": (2, 1), "window_alignment": "bottom_right"},
    {"window": (None, 0), "causal": "top_left"},
    {"softcap": 3.0},
    {"softcap": 200.0},
    {"scale": 1.0},
    {"scale": -0.7},
    {"scale": 2.5e-3},
    {"fully_masked": "nan", "causal": "top_left"},
    {"fully_masked": "raise"},
    {"memory_budget": 1 << 40},
    {"memory_budget": 0},  # the kernel chunks keys at any budget: a tiny call is one chunk
]


def _general(
    q: np.ndarray, k: np.ndarray, v: np.ndarray, **options: object
) -> tuple[np.ndarray, np.ndarray]:
    """The kernel's result for the call, as :func:`attention` shapes it."""
    plan = validate(q, k, v, **options)
    res = _kernel.run(plan, need_weights=False)
    batch, hq = plan.batch_shape, plan.num_q_heads
    length_q = plan.query.shape[3]
    out = res.out.reshape(*batch, hq, length_q, plan.value.shape[3])
    out = out.astype(plan.out_dtype, copy=False)
    with np.errstate(over="ignore"):
        lse = res.lse.reshape(*batch, hq, length_q).astype(plan.query.dtype, copy=False)
    return out, lse


def _inputs(
    shapes: tuple[tuple[int, ...], ...], dtype: type, seed: int, magnitude: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    q_shape, kv_shape, *v_shape = shapes
    q: np.ndarray = (magnitude * rng.standard_normal(q_shape)).astype(dtype)
    k: np.ndarray = (magnitude * rng.standard_normal(kv_shape)).astype(dtype)
    v: np.ndarray = rng.standard_normal(v_shape[0] if v_shape else kv_shape).astype(dtype)
    return q, k, v


def _taken(q: np.ndarray, k: np.ndarray, v: np.ndarray, **options: object) -> bool:
    return _small.run(_numerics.prepare(validate(q, k, v, **options)), need_lse=True) is not None


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
# 6: logits past the unshifted bound (shifted softmax; batch entries may differ: kernel);
# 12: float32 logits past 1e3, computed in float64
@pytest.mark.parametrize("magnitude", [1.0, 6.0, 12.0])
@pytest.mark.parametrize("shapes", SHAPES, ids=str)
def test_one_block_path_is_the_kernel_bit_for_bit(
    shapes: tuple[tuple[int, ...], ...], magnitude: float, dtype: type
) -> None:
    q, k, v = _inputs(shapes, dtype, 1, magnitude)
    taken = 0
    for options in OPTIONS:
        if options.get("fully_masked") == "raise" and shapes[0][-2] > shapes[1][-2]:
            continue  # bottom-right rows before the keys would raise: covered below
        out, _, lse = attention(q, k, v, return_lse=True, **options)  # type: ignore[call-overload]
        want_out, want_lse = _general(q, k, v, **options)
        np.testing.assert_array_equal(
            out,
            want_out,
            err_msg=f"{options}: refattn/_small.py "
            "must follow refattn/_kernel.py's single block exactly",
        )
        np.testing.assert_array_equal(lse, want_lse, err_msg=str(options))
        np.testing.assert_array_equal(attention(q, k, v, **options), want_out)  # type: ignore[call-overload]
        taken += _taken(q, k, v, **options)
    if magnitude != 6.0:  # the path is really taken, not only its fallback
        assert taken >= len(OPTIONS) - 3


def test_one_block_path_with_a_boolean_mask_is_the_kernel_bit_for_bit() -> None:
    rng = np.random.default_rng(2)
    for shapes in SHAPES:
        q, k, v = _inputs(shapes, np.float32, 3, 1.0)
        length_q, length_k = shapes[0][-2], shapes[1][-2]
        mask = rng.random((length_q, length_k)) < 0.6
        mask[:, :1] = True  # no row fully masked: the one-block path takes it
        for attend_mask in (mask, np.broadcast_to(mask, (*shapes[0][:-1], length_k)).copy()):
            out, _, lse = attention(q, k, v, attend_mask=attend_mask, return_lse=True)
            want_out, want_lse = _general(q, k, v, attend_mask=attend_mask)
            np.testing.assert_array_equal(out, want_out)
            np.testing.assert_array_equal(lse, want_lse)
            assert _taken(q, k, v, attend_mask=attend_mask) or not q.size
            want = loop_attention(q, k, v, attend_mask=attend_mask)
            np.testing.assert_allclose(out, want[0], rtol=2e-5, atol=2e-5)
            assert lse is not None
            np.testing.assert_allclose(lse, want[2], rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shapes", SHAPES, ids=str)
def test_one_block_path_agrees_with_the_float64_loop(
    shapes: tuple[tuple[int, ...], ...], dtype: type
) -> None:
    q, k, v = _inputs(shapes, dtype, 4, 1.0)
    tol = 2e-5 if dtype == np.float32 else 1e-12
    for options in OPTIONS:
        if options.get("fully_masked") is not None or "memory_budget" in options:
            continue
        out, _, lse = attention(q, k, v, return_lse=True, **options)  # type: ignore[call-overload]
        want_out, _, want_lse = loop_attention(q, k, v, **options)  # type: ignore[arg-type]
        assert lse is not None
        np.testing.assert_allclose(out, want_out, rtol=tol, atol=tol, err_msg=str(options))
        np.testing.assert_allclose(lse, want_lse, rtol=tol, atol=tol, err_msg=str(options))


def test_what_the_one_block_path_leaves_to_the_kernel() -> None:
    """Calls it does not take go to the kernel, and the answer is the same."""
    q, k, v = _inputs(SHAPES[0], np.float32, 5, 1.0)
    big = np.ones((1, 1, 128, 8), np.float32)
    cases: list[tuple[tuple[np.ndarray, ...], dict[str, object]]] = [
        ((q, k, v), {"bias": np.zeros((4, 4), np.float32)}),
        ((q, k, v), {"key_lengths": 3}),
        ((q, k, v), {"query_lengths": 3}),
        ((q, k, v), {"alibi_slopes": np.array([0.5])}),
        ((q, k, v), {"sinks": np.array([0.5], np.float32)}),
        ((q, k, v), {"segment_ids": np.array([0, 0, 1, 1])}),
        ((q, k, v), {"attend_mask": np.eye(4, dtype=bool)[::-1] & np.eye(4, dtype=bool)}),
        ((q, k, np.zeros_like(v)), {}),  # exact zeros: the kernel's underflow check decides
        ((big, big, big), {}),  # 128 rows: more than one row block
    ]
    for (qq, kk, vv), options in cases:
        assert not _taken(qq, kk, vv, **options), options
        out, _, lse = attention(qq, kk, vv, return_lse=True, **options)  # type: ignore[call-overload]
        want_out, want_lse = _general(qq, kk, vv, **options)
        np.testing.assert_array_equal(out, want_out)
        np.testing.assert_array_equal(lse, want_lse)
    nan_q = q.copy()
    nan_q[0, 0, 2, 1] = np.nan  # poisoned inputs: the kernel's NaN rules
    assert not _taken(nan_q, k, v)
    np.testing.assert_array_equal(attention(nan_q, k, v), _general(nan_q, k, v)[0])
    with pytest.raises(FullyMaskedRowError, match="query row 0 of head 0"):
        attention(q, k[..., :2, :], v[..., :2, :], causal="bottom_right", fully_masked="raise")


@pytest.mark.parametrize(
    ("mask_shape", "batch", "hq", "hkv"),
    [((4, 6), (1,), 1, 1), ((1, 1, 4, 6), (1,), 1, 1), ((2, 3, 4, 6), (2,), 3, 1),
     ((3, 4, 6), (), 3, 3), ((2, 1, 1, 4, 6), (2, 1), 1, 1), ((4, 6), (2,), 1, 1)],
)  # fmt: skip
def test_score_views_without_broadcast_to_are_the_broadcast_views(
    mask_shape: tuple[int, ...], batch: tuple[int, ...], hq: int, hkv: int
) -> None:
    """A mask that needs no axis to grow is reshaped, not broadcast: the same view."""
    from refattn._layout import score_layout
    from refattn.validation import _to_score_view

    mask = np.random.default_rng(0).random(mask_shape) < 0.5
    view = _to_score_view("attend_mask", mask, batch, hq, hkv, 4, 6)
    want = score_layout(np.broadcast_to(mask, (*batch, hq, 4, 6)), batch, hkv, hq // hkv)
    assert isinstance(view, np.ndarray)
    assert isinstance(want, np.ndarray)
    np.testing.assert_array_equal(view, want)
    assert view.shape == want.shape
    assert np.shares_memory(view, mask)  # no copy
    assert not view.flags.writeable  # the kernel cannot write into the caller's mask


def test_positional_plan_and_validation_follow_the_field_and_option_order() -> None:
    """validate builds Plan and attention calls validate_positional by position: pin both orders."""
    import dataclasses
    import inspect

    from refattn.reference import AttentionOptions
    from refattn.validation import Plan, validate_positional

    assert [f.name for f in dataclasses.fields(Plan)] == [
        "batch_shape", "num_q_heads", "out_dtype", "query", "scale", "key", "value",
        "attend_mask", "bias", "alibi_slopes", "causal_offset", "window", "key_lengths",
        "query_lengths", "softcap", "fully_masked", "dropout_keep", "dropout_p",
        "memory_budget", "segments", "sinks",
    ]  # fmt: skip
    options = list(inspect.signature(validate_positional).parameters)[3:]
    assert options == list(AttentionOptions.__annotations__)  # attention's options, in order
    q = np.ones((2, 4, 3, 8), np.float32)
    plan = validate(q, q, q, scale=0.5, causal="bottom_right", memory_budget=123)
    assert (plan.scale, plan.causal_offset, plan.memory_budget) == (0.5, 0, 123)
    assert (plan.num_q_heads, plan.batch_shape) == (4, (2,))
    assert plan.out_dtype == np.dtype(np.float32)
