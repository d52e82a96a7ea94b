"""The one-pass backward (:mod:`refattn._backward_fused`) against the forward + chunked one.

The one-pass path recomputes each block's softmax whole instead of reading the forward's
log-sum-exp, and takes ``rowsum(dO * O)`` from ``rowsum(P * dP)``; these tests check it
against the chunked path on every option, against torch autograd on blocks shared among
threads, and that calls which should take it do.
"""

from __future__ import annotations

import threading
import time
from typing import Any
from unittest import mock

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from refattn import _backward_fused, _kernel, _ordered, _threads, attention_backward
from refattn.validation import validate
from tests.test_reference import configs
from tests.traced_memory import peak_bytes


def _chunked(grad: np.ndarray, *arrays: np.ndarray, **options: Any) -> Any:
    """attention_backward through the forward + chunked path."""
    with mock.patch.object(_backward_fused, "fits", return_value=False):
        return attention_backward(grad, *arrays, **options)


def _fused(grad: np.ndarray, *arrays: np.ndarray, **options: Any) -> Any:
    """attention_backward, asserting it took the one-pass path."""
    with mock.patch.object(
        _backward_fused, "run_backward", wraps=_backward_fused.run_backward
    ) as spy:
        got = attention_backward(grad, *arrays, **options)
    assert spy.call_count == 1
    return got


PLAIN_DROPPED = ("attend_mask", "bias", "alibi_slopes", "softcap")  # what plain calls lack


def _assert_same(got: Any, want: Any) -> None:
    for name in ("query", "key", "value", "bias", "sinks"):
        a, b = getattr(got, name), getattr(want, name)
        assert (a is None) == (b is None), name
        if a is not None:
            assert a.dtype == b.dtype, name
            np.testing.assert_array_equal(np.isnan(a), np.isnan(b), err_msg=name)
            np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12, err_msg=name)


def _drawn(
    cfg: dict[str, Any], seed: int, sinks: bool, dropout: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, Any], np.ndarray]:
    """``q, k, v``, the options (with drawn sinks and dropout) and an upstream gradient."""
    cfg = dict(cfg)
    if cfg["fully_masked"] == "nan":
        cfg["fully_masked"] = "zero"
    q, k, v = cfg.pop("q"), cfg.pop("k"), cfg.pop("v")
    rng = np.random.default_rng(seed)
    hq, length_q, length_k = q.shape[-3], q.shape[-2], k.shape[-2]
    if sinks:
        cfg["sinks"] = rng.standard_normal(hq) * 2
    batch = np.broadcast_shapes(q.shape[:-3], k.shape[:-3])
    if dropout:
        keep = rng.random((*batch, hq, length_q, length_k)) < 0.75
        cfg.update(dropout_p=0.25, dropout_keep=keep)
    grad = rng.standard_normal((*batch, hq, length_q, v.shape[-1]))
    return q, k, v, cfg, grad


# the one-pass path sets no floating-point "invalid" or "overflow" flag (a non-finite
# upstream gradient is zeroed first, its NaN put back by assignment): a NumPy
# RuntimeWarning from it fails these tests and names the line that raised it
@pytest.mark.filterwarnings("error::RuntimeWarning")
@settings(max_examples=200, deadline=None)
@given(
    configs(), st.integers(0, 2**32 - 1), st.booleans(), st.booleans(), st.booleans(), st.booleans()
)
def test_one_pass_equals_chunked_on_every_option(
    cfg: dict[str, Any], seed: int, sinks: bool, dropout: bool, bad_grad: bool, plain: bool
) -> None:
    """``plain``: only causal, window and lengths, which the one-pass path masks itself.

    Plain calls also shift rows by their bound (``_Bounds``) however small they are.
    """
    if plain:
        cfg = {name: value for name, value in cfg.items() if name not in PLAIN_DROPPED}
    q, k, v, cfg, grad = _drawn(cfg, seed, sinks, dropout)
    if bad_grad:
        grad[(0,) * (grad.ndim - 2) + (q.shape[-2] - 1, 0)] = np.inf
    with mock.patch.object(_backward_fused, "_BOUND_MIN_SCORES", 0 if plain else 1 << 16):
        _assert_same(_fused(grad, q, k, v, **cfg), _chunked(grad, q, k, v, **cfg))
    if "bias" in cfg:  # without the bias gradient, the scale folds into dO
        no_bias = _fused(grad, q, k, v, bias_gradient=False, **cfg)
        _assert_same(no_bias, _chunked(grad, q, k, v, bias_gradient=False, **cfg))


@pytest.mark.filterwarnings("error::RuntimeWarning")
@settings(max_examples=150, deadline=None)
@given(configs(), st.integers(0, 2**32 - 1), st.booleans(), st.booleans())
def test_batch_as_heads_is_bit_for_bit_the_per_entry_blocks(
    cfg: dict[str, Any], seed: int, sinks: bool, dropout: bool
) -> None:
    """Small calls run their batch entries as kv heads of one block: the same numbers exactly."""
    q, k, v, cfg, grad = _drawn(cfg, seed, sinks, dropout)
    batch = grad.shape[:-3]
    taken: list[Any] = []
    real = _backward_fused.batch_as_heads

    def spy(prepared: Any) -> Any:
        taken.append(real(prepared))
        return taken[-1]

    with mock.patch.object(_backward_fused, "batch_as_heads", side_effect=spy):
        merged = _fused(grad, q, k, v, **cfg)
    with mock.patch.object(_backward_fused, "batch_as_heads", return_value=None):
        per_entry = _fused(grad, q, k, v, **cfg)
    assert len(taken) == 1
    if int(np.prod(batch)) > 1 and not {"key_lengths", "query_lengths", "segment_ids"} & set(cfg):
        assert taken[0] is not None  # the test exercises the merged blocks
    for name in ("query", "key", "value", "bias", "sinks"):
        a, b = getattr(merged, name), getattr(per_entry, name)
        assert (a is None) == (b is None), name
        if a is not None:
            assert a.shape == b.shape, name
            assert a.dtype == b.dtype, name
            np.testing.assert_array_equal(a, b, err_msg=name)  # NaN where NaN, else equal


@pytest.mark.filterwarnings("error::RuntimeWarning")
@pytest.mark.parametrize("causal", [None, "top_left"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_one_pass_matches_torch_autograd_across_blocks_and_threads(
    causal: str | None, dtype: type
) -> None:
    """(2, 4, 300, 32) GQA: many row blocks, shared among the worker threads."""
    rng = np.random.default_rng(3)
    q: np.ndarray = rng.standard_normal((2, 4, 300, 32)).astype(dtype)
    k: np.ndarray = rng.standard_normal((2, 2, 300, 32)).astype(dtype)
    v: np.ndarray = rng.standard_normal((2, 2, 300, 32)).astype(dtype)
    grad: np.ndarray = rng.standard_normal(q.shape).astype(dtype)
    tq, tk, tv = (torch.tensor(x.astype(np.float64), requires_grad=True) for x in (q, k, v))
    out: Any = torch.nn.functional.scaled_dot_product_attention(
        tq, tk, tv, is_causal=causal is not None, enable_gqa=True
    )
    out.backward(torch.tensor(grad.astype(np.float64)))
    got = _fused(grad, q, k, v, causal=causal)
    rtol, atol = (1e-9, 1e-11) if dtype == np.float64 else (0.0, 2e-5)
    for mine, leaf in zip(got[:3], (tq, tk, tv), strict=True):
        assert mine.dtype == dtype
        assert leaf.grad is not None
        np.testing.assert_allclose(mine, leaf.grad.numpy(), rtol=rtol, atol=atol)


def test_long_rows_take_the_chunked_path() -> None:
    """A block of 64 rows by 65536 keys is past the one-pass budget: chunked, same answer."""
    rng = np.random.default_rng(4)
    q = rng.standard_normal((1, 1, 64, 4)).astype(np.float32)
    k, v = (rng.standard_normal((1, 1, 1 << 16, 4)).astype(np.float32) for _ in range(2))
    grad = rng.standard_normal(q.shape).astype(np.float32)
    with mock.patch.object(_backward_fused, "run_backward") as spy:
        got = attention_backward(grad, q, k, v)
    assert spy.call_count == 0
    with mock.patch.object(_backward_fused, "_BUFFERS", 1 << 10):
        whole = _fused(grad, q, k, v)
    for a, b in zip(got[:3], whole[:3], strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def _relative_errors(got: Any, want: Any) -> list[float]:
    return [float(np.abs(a - b).max() / np.abs(b).max()) for a, b in zip(got, want, strict=True)]


@pytest.mark.parametrize("magnitude", [1.0, 1e30])
def test_rows_shifted_by_their_bound_are_as_accurate_as_by_their_max(magnitude: float) -> None:
    """float32 against float64; bounds |scale| |q| max |k| ~15 and ~60 in two batch entries.

    Rows whose bound is at most 30 skip the row maximum (``_Bounds``); an upstream
    gradient of 1e30 leaves no room for ``exp(2b)`` and sends every row to the maximum.
    """
    rng = np.random.default_rng(5)
    spread = np.array([1.0, 2.5])[:, None, None, None]
    q, k = (rng.standard_normal((2, 4, 200, 64)) * spread for _ in range(2))
    v = rng.standard_normal((2, 4, 200, 64))
    grad = rng.standard_normal((2, 4, 200, 64)) * magnitude
    want = attention_backward(grad, q, k, v, causal="top_left")
    f32 = [x.astype(np.float32) for x in (grad, q, k, v)]
    taken: list[bool] = []
    original = _backward_fused._Bounds.shifted_logits

    def spy(self: Any, *args: Any) -> bool:
        taken.append(original(self, *args))
        return taken[-1]

    with mock.patch.object(_backward_fused._Bounds, "shifted_logits", spy):
        got = _fused(*f32, causal="top_left")
    if magnitude == 1.0:  # batch entry 0 (bound <= 30) by its bound, 1 by the max
        assert any(taken)
        assert not all(taken)
    else:
        assert taken
        assert not any(taken)
    with mock.patch.object(_backward_fused._Bounds, "_LIMIT", -1.0):  # every row by its max
        by_max = _fused(*f32, causal="top_left")
    for a in (*got[:3], *by_max[:3]):
        assert np.isfinite(a).all()
    for mine, theirs in zip(
        _relative_errors(got[:3], want[:3]), _relative_errors(by_max[:3], want[:3]), strict=True
    ):
        assert mine <= max(2 * theirs, 2e-6), (mine, theirs)


def test_one_pass_memory_is_two_blocks_per_worker() -> None:
    """64 query rows against 32768 keys: one 8 MiB block, taken whole, twice per worker."""
    rng = np.random.default_rng(6)
    q = rng.standard_normal((1, 1, 64, 4)).astype(np.float32)
    k, v = (rng.standard_normal((1, 1, 1 << 15, 4)).astype(np.float32) for _ in range(2))
    grad = rng.standard_normal(q.shape).astype(np.float32)
    peak = peak_bytes(lambda: _fused(grad, q, k, v, memory_budget=0))
    workers = _threads.worker_count() + 1
    block = 64 * (1 << 15) * 4  # 8 MiB
    assert peak <= 2 * block * workers + 3 * (k.nbytes + v.nbytes) + (1 << 20), peak / 2**20


@pytest.mark.filterwarnings("error::RuntimeWarning")
def test_scratch_kept_between_calls_stays_under_its_cap() -> None:
    """Blocks of 1 MiB and more, wide heads: a thread keeps at most _KEEP_BYTES of them.

    One worker (this thread), so the blocks and what they keep are this thread's; the
    second call reuses what the first kept, and gets the same numbers.
    """
    rng = np.random.default_rng(7)
    kept: dict[int, np.ndarray] = {}
    with mock.patch.object(_threads, "worker_count", return_value=1):
        for shape in [(1, 4, 256, 512), (2, 4, 256, 64), (1, 1, 64, 8)]:
            q, k, v = (rng.standard_normal(shape).astype(np.float32) for _ in range(3))
            grad = rng.standard_normal(shape).astype(np.float32)
            got = _fused(grad, q, k, v, causal="top_left")
            again = _fused(grad, q, k, v, causal="top_left")
            for a, b in zip(got[:3], again[:3], strict=True):
                np.testing.assert_array_equal(a, b)
            kept = getattr(_backward_fused._SCRATCH, "arrays", {})
            assert kept  # something is kept
            assert sum(a.nbytes for a in kept.values()) <= _backward_fused._KEEP_BYTES


@pytest.mark.filterwarnings("error::RuntimeWarning")
def test_row_blocks_with_shifting_key_ranges_assign_then_add() -> None:
    """Windows move each row block's keys: a block's columns are partly new, partly reached.

    dK and dV rows are assigned by the first block reaching them and added to by the
    others; keys past a batch entry's length, which no block reaches, are exactly 0.
    """
    rng = np.random.default_rng(5)
    q = rng.standard_normal((2, 4, 700, 16)).astype(np.float32)
    k = rng.standard_normal((2, 2, 900, 16)).astype(np.float32)
    v = rng.standard_normal((2, 2, 900, 8)).astype(np.float32)
    grad = rng.standard_normal((2, 4, 700, 8)).astype(np.float32)
    for options in (
        {"window": (100, 20), "window_alignment": "top_left"},
        {"window": (50, 0), "causal": "bottom_right", "key_lengths": np.array([900, 400])},
    ):
        got = _fused(grad, q, k, v, **options)
        want = _chunked(grad, q, k, v, **options)
        for mine, theirs in zip(got[:3], want[:3], strict=True):
            np.testing.assert_allclose(mine, theirs, rtol=1e-4, atol=1e-5)
        if "key_lengths" in options:
            assert not got.key[1, :, 400:].any()
            assert not got.value[1, :, 400:].any()


@pytest.mark.filterwarnings("error::RuntimeWarning")
@pytest.mark.parametrize("batch", [(), (3,)])
def test_no_query_rows_give_zero_key_and_value_gradients(batch: tuple[int, ...]) -> None:
    """No query rows means no task: every dK and dV row is zeroed, not left uninitialised."""
    rng = np.random.default_rng(8)
    k = rng.standard_normal((*batch, 2, 5, 4)).astype(np.float32)
    v = rng.standard_normal((*batch, 2, 5, 3)).astype(np.float32)
    q = np.zeros((*batch, 2, 0, 4), np.float32)
    for _ in range(3):
        junk = np.full(4 * k.size, 7.0, np.float32)  # freed memory the outputs may reuse
        del junk
        got = attention_backward(np.zeros((*batch, 2, 0, 3), np.float32), q, k, v)
        assert got.query.shape == q.shape
        np.testing.assert_array_equal(got.key, np.zeros_like(k))
        np.testing.assert_array_equal(got.value, np.zeros_like(v))


@pytest.mark.filterwarnings("error::RuntimeWarning")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_rows_of_many_keys_are_cut_for_half_of_them(dtype: type) -> None:
    """2048 keys: row blocks twice as tall as the kernel's cut, same gradients as torch's."""
    rng = np.random.default_rng(9)
    q: np.ndarray = rng.standard_normal((1, 8, 500, 16)).astype(dtype)
    k: np.ndarray = rng.standard_normal((1, 8, 2048, 16)).astype(dtype)
    v: np.ndarray = rng.standard_normal((1, 8, 2048, 8)).astype(dtype)
    grad: np.ndarray = rng.standard_normal((1, 8, 500, 8)).astype(dtype)
    plan = validate(q, k, v)
    columns = _backward_fused.cut_columns(plan)
    assert columns == 1024  # float32 rows of 8 KiB, float64 of 16 KiB: both at most 128 rows
    with mock.patch.object(_threads, "worker_count", return_value=2):  # as on CI's machines
        tall, short = _kernel.make_tasks(plan, columns=columns), _kernel.make_tasks(plan)
    assert max(t.r1 - t.r0 for t in tall) == 2 * max(t.r1 - t.r0 for t in short)
    tq, tk, tv = (torch.tensor(x.astype(np.float64), requires_grad=True) for x in (q, k, v))
    out: Any = torch.nn.functional.scaled_dot_product_attention(tq, tk, tv)
    out.backward(torch.tensor(grad.astype(np.float64)))
    got = _fused(grad, q, k, v)
    rtol, atol = (1e-9, 1e-11) if dtype == np.float64 else (0.0, 2e-5)
    for mine, leaf in zip(got[:3], (tq, tk, tv), strict=True):
        assert leaf.grad is not None
        np.testing.assert_allclose(mine, leaf.grad.numpy(), rtol=rtol, atol=atol)


def test_removed_pairs_weigh_nothing_beside_the_smallest_allowed_weights() -> None:
    """Causal rows whose every allowed logit is ``-b``: each weight is ``exp(-2b) ~ 1e-25``.

    Query rows 0..127 point away from keys 0..127 and towards keys 128..255, which the
    causal mask removes; with ``b = 28.8`` they shift by their bound. Their softmax is
    uniform over the keys they may see, however small each ``exp`` is, so a removed pair
    holding anything but an exact 0 after the exponential would swamp it (torch float64
    autograd is the reference).
    """
    length, dim, c = 256, 64, 3.6
    u = np.ones(dim)
    k = np.concatenate([np.tile(u, (length // 2, 1)), np.tile(-u, (length // 2, 1))])
    q = np.tile(-c * u, (length, 1))  # b = |q| |k| / sqrt(D) = c * D / 8 = 28.8
    rng = np.random.default_rng(11)
    v = rng.standard_normal((length, dim))
    grad = rng.standard_normal((length, dim))
    tq, tk, tv = (torch.tensor(x[None, None], requires_grad=True) for x in (q, k, v))
    out: Any = torch.nn.functional.scaled_dot_product_attention(tq, tk, tv, is_causal=True)
    out.backward(torch.tensor(grad[None, None]))
    taken: list[bool] = []
    original = _backward_fused._Bounds.shifted_logits

    def spy(self: Any, *args: Any) -> bool:
        taken.append(original(self, *args))
        return taken[-1]

    f32 = [x[None, None].astype(np.float32) for x in (grad, q, k, v)]
    with mock.patch.object(_backward_fused._Bounds, "shifted_logits", spy):
        got = _fused(*f32, causal="top_left")
    assert taken
    assert all(taken)
    for name, mine, leaf in zip(("query", "key", "value"), got[:3], (tq, tk, tv), strict=True):
        assert leaf.grad is not None
        np.testing.assert_allclose(mine, leaf.grad.numpy(), rtol=1e-4, atol=1e-5, err_msg=name)


@pytest.mark.parametrize(
    ("shape", "options"),
    [
        ((1, 4, 2, 700, 32), {"causal": "top_left"}),
        ((2, 2, 1, 900, 64), {"causal": "bottom_right", "window": (300, 0)}),
        ((1, 1, 3, 1200, 16), {"key_lengths": np.array([1000])}),
    ],
    ids=["gqa-causal", "window", "key-lengths"],
)
@pytest.mark.parametrize("parked_bytes", [0, _ordered.PARKED_BYTES], ids=["wait", "park"])
@pytest.mark.parametrize("path", [_fused, _chunked], ids=["one-pass", "chunked"])
def test_key_and_value_gradients_do_not_depend_on_the_order_blocks_end(
    shape: tuple[int, ...], options: dict[str, Any], parked_bytes: int, path: Any
) -> None:
    """Two workers, every other block held back: the gradients of one in-order pass, bit for bit.

    Float addition is not associative: dK and dV rows that several row blocks reach must
    be added in one fixed order (the task list's), or two threaded calls disagree in the
    last bits. A block that ends early is parked for its turn, or waits for it when its
    thread may park nothing more. ``shape`` is ``(B, Hkv, G, L, D)``, with ``S = L``.
    """
    batch, kv_heads, groups, length, dim = shape
    rng = np.random.default_rng(21)
    q = rng.standard_normal((batch, kv_heads * groups, length, dim), dtype=np.float32)
    k, v = (rng.standard_normal((batch, kv_heads, length, dim), dtype=np.float32) for _ in "kv")
    grad = rng.standard_normal(q.shape, dtype=np.float32)
    threaded_for_each_task = _kernel.for_each_task
    blocks: list[int] = []  # row blocks per head block, most, of each pass

    def in_order(plan: Any, tasks: list[Any], body: Any, chunk: int | None = None) -> None:
        groups = plan.query.shape[2]
        widest = max(
            (t.h1 - t.h0) * groups * (t.r1 - t.r0) * min(t.hi - t.lo, chunk or t.hi - t.lo)
            for t in tasks
        )
        heads = [(t.n, t.h0) for t in tasks]
        blocks.append(max(heads.count(head) for head in heads))
        buffer = np.empty(widest, plan.query.dtype)
        with _threads.single_threaded_blas():  # as the worker threads run BLAS
            for task in tasks:
                body(task, buffer)

    def held_back(plan: Any, tasks: list[Any], body: Any, chunk: int | None = None) -> None:
        late = {id(t) for t in tasks[::2]}  # their successors in the list end first

        def slow_body(task: Any, buffer: np.ndarray) -> None:
            if id(task) in late:
                time.sleep(0.005)
            body(task, buffer)

        threaded_for_each_task(plan, tasks, slow_body, chunk=chunk)

    with mock.patch.object(_kernel, "for_each_task", in_order):
        want = path(grad, q, k, v, **options)
    assert max(blocks) > 1  # some head block has several row blocks
    with (
        mock.patch.object(_threads, "worker_count", return_value=2),
        mock.patch.object(_kernel, "for_each_task", held_back),
        mock.patch.object(_ordered, "PARKED_BYTES", parked_bytes),
    ):
        runs = [("held back", path(grad, q, k, v, **options))]
    runs += [("threaded", path(grad, q, k, v, **options)) for _ in range(2)]
    for label, got in runs:
        for field in ("query", "key", "value"):
            np.testing.assert_array_equal(
                getattr(got, field), getattr(want, field), err_msg=f"{label} {field}"
            )


def test_a_block_that_raises_wakes_the_blocks_waiting_for_its_turn() -> None:
    """The first block of each head raises late: the call raises it and does not hang.

    With nothing parked, the blocks after it wait for its turn, which never comes.
    """
    rng = np.random.default_rng(22)
    q, k, v, grad = (rng.standard_normal((1, 2, 900, 32), dtype=np.float32) for _ in range(4))
    plain_keep_block = _kernel.keep_block
    first: dict[tuple[int, int], int] = {}

    def keep_block_or_raise(plan: Any, task: Any) -> Any:
        if first.setdefault((task.n, task.h0), task.r0) == task.r0:
            time.sleep(0.05)  # the blocks after it end first and wait for its turn
            raise RuntimeError("block failed")
        return plain_keep_block(plan, task)

    outcome: list[BaseException | None] = []

    def call() -> None:
        try:
            _fused(grad, q, k, v, causal="top_left")
            outcome.append(None)
        except BaseException as error:
            outcome.append(error)

    with (
        mock.patch.object(_threads, "worker_count", return_value=2),
        mock.patch.object(_kernel, "keep_block", keep_block_or_raise),
        mock.patch.object(_ordered, "PARKED_BYTES", 0),
    ):
        caller = threading.Thread(target=call, daemon=True)
        caller.start()
        caller.join(timeout=60)
    assert not caller.is_alive(), "the backward hung after a block raised"
    assert len(outcome) == 1
    assert isinstance(outcome[0], RuntimeError)
    assert "block failed" in str(outcome[0])
