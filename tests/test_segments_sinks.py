"""``segment_ids`` (packed sequences) and ``sinks`` (attention sinks) in the core.

Forward against the float64 loop reference (tests/loop_reference.py) on random packings
(empty segments, padding ids -1, non-contiguous ids, cross-attention key ids), both causal
alignments, windows, ALiBi, GQA, every kernel path (dense, key-chunked with tiny chunks,
tiny blocks, threads); against flash_attn_varlen_func on the same packed batch; the
backward against torch autograd of a torch implementation written here and the sink
gradient against finite differences.
"""

from __future__ import annotations

import math
import runpy
from contextlib import ExitStack
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
import pytest
import torch

from refattn import _kernel, attention, attention_backward
from refattn.compat.flash_attn import flash_attn_varlen_func
from refattn.errors import (
    AttentionDTypeError,
    AttentionShapeError,
    AttentionValueError,
    FullyMaskedRowError,
)
from tests.loop_reference import loop_attention

ALIGN = ("top_left", "bottom_right")


def _packing(rng: np.random.Generator, length: int, contiguous: bool = True) -> np.ndarray:
    """Random segment ids for ``length`` tokens: runs with skipped ids, trailing padding."""
    if not contiguous:
        return rng.integers(-1, 3, size=length)
    ids: list[int] = []
    sid = 0
    while len(ids) < length:
        sid += int(rng.integers(1, 3))  # an id skipped is an empty segment
        if rng.random() < 0.15:
            break
        ids += [sid] * int(rng.integers(1, 5))
    ids = ids[:length]
    return np.array(ids + [-1] * (length - len(ids)))


def _key_packing(rng: np.random.Generator, q_ids: np.ndarray, length: int) -> np.ndarray:
    """Key ids with the queries' segments in order, each with its own random count."""
    ids: list[int] = []
    for sid in dict.fromkeys(int(x) for x in q_ids if x >= 0):
        ids += [sid] * int(rng.integers(0, 5))
    if rng.random() < 0.3:
        ids.insert(int(rng.integers(0, len(ids) + 1)), -1)
    ids = ids[:length]
    return np.array(ids + [-1] * (length - len(ids)))


def _config(rng: np.random.Generator) -> dict[str, Any]:
    batch = [(), (2,)][rng.integers(2)]
    hkv = int(rng.integers(1, 3))
    hq = hkv * int(rng.integers(1, 3))
    length_q = int(rng.integers(1, 13))
    cross = rng.random() < 0.4
    length_k = int(rng.integers(1, 16)) if cross else length_q
    dim, dim_v = int(rng.integers(1, 4)), int(rng.integers(1, 3))
    cfg: dict[str, Any] = {
        "q": rng.standard_normal((*batch, hq, length_q, dim)) * 2,
        "k": rng.standard_normal((*batch, hkv, length_k, dim)) * 2,
        "v": rng.standard_normal((*batch, hkv, length_k, dim_v)),
    }
    contiguous = rng.random() < 0.8
    entries = batch[0] if batch else 1
    q_ids = np.stack([_packing(rng, length_q, contiguous) for _ in range(entries)])
    if rng.random() < 0.3:
        q_ids = q_ids[:1]  # one packing broadcast over the batch
    cfg["segment_ids"] = q_ids if batch else q_ids[0]
    if cross or rng.random() < 0.2:
        keys = [_key_packing(rng, row, length_k) for row in q_ids]
        if not contiguous:
            keys = [rng.integers(-1, 3, size=length_k) for _ in q_ids]
        k_ids = np.stack(keys)
        cfg["key_segment_ids"] = k_ids if batch else k_ids[0]
    if rng.random() < 0.15:  # sinks alone, no packing
        cfg.pop("segment_ids")
        cfg.pop("key_segment_ids", None)
    cfg["causal"] = [None, *ALIGN][rng.integers(3)]
    if "segment_ids" not in cfg and length_q != length_k and cfg["causal"] is None:
        cfg["causal"] = "bottom_right"
    if rng.random() < 0.4:
        sides = [None, 0, 1, 2]
        cfg["window"] = (sides[rng.integers(4)], sides[rng.integers(4)])
        if cfg["causal"] is None:
            cfg["window_alignment"] = ALIGN[rng.integers(2)]
    if rng.random() < 0.3:
        cfg["alibi_slopes"] = rng.random(hq)
    if rng.random() < 0.5:
        sinks = rng.standard_normal((*batch[: rng.integers(len(batch) + 1)], hq)) * 2
        if rng.random() < 0.2:
            sinks[..., 0] = -np.inf
        cfg["sinks"] = sinks
    if rng.random() < 0.2:
        cfg["softcap"] = 2.0
    scores = (*batch, hq, length_q, length_k)
    if rng.random() < 0.2:
        bias = rng.standard_normal(scores)
        bias[rng.random(scores) < 0.2] = -np.inf
        cfg["bias"] = bias
    if rng.random() < 0.15:
        cfg["dropout_p"] = 0.3
        cfg["dropout_keep"] = rng.random(scores) >= 0.3
    if batch and rng.random() < 0.2:
        cfg["key_lengths"] = rng.integers(0, length_k + 1, size=batch)
    cfg["fully_masked"] = ["zero", "uniform", "nan", "raise"][rng.integers(4)]
    return cfg


def _forced(rng: np.random.Generator) -> dict[str, int]:
    return {
        "_BLOCK_BYTES": int(rng.choice([8, 64])),
        "_MIN_ROWS": int(rng.choice([1, 2])),
        "_MIN_CHUNK": int(rng.choice([1, 3])),
        "_CAUSAL_BLOCKS": int(rng.choice([1, 8])),
        "_PARALLEL_MIN_WORK": int(rng.choice([0, 1 << 18])),
    }


def _patched(constants: dict[str, int]) -> ExitStack:
    stack = ExitStack()
    for name, value in constants.items():
        stack.enter_context(mock.patch.object(_kernel, name, value))
    return stack


def _split(cfg: dict[str, Any]) -> tuple[tuple[Any, Any, Any], dict[str, Any]]:
    return (cfg["q"], cfg["k"], cfg["v"]), {
        n: x for n, x in cfg.items() if n not in ("q", "k", "v")
    }


@pytest.mark.parametrize("group", range(8))
def test_segments_and_sinks_match_loop_reference_on_every_path(group: int) -> None:
    rng = np.random.default_rng(7000 + group)
    for _ in range(60):
        cfg = _config(rng)
        (q, k, v), kwargs = _split(cfg)
        constants = _forced(rng)
        try:
            out, weights, lse = loop_attention(q, k, v, **kwargs)
        except ValueError:  # the loop reference's fully_masked="raise"
            with pytest.raises(FullyMaskedRowError):
                attention(q, k, v, **kwargs)
            with _patched(constants), pytest.raises(FullyMaskedRowError):
                attention(q, k, v, memory_budget=0, **kwargs)
            continue
        dense: Any = attention(q, k, v, return_lse=True, return_weights=True, **kwargs)
        np.testing.assert_allclose(
            dense.weights, weights, rtol=1e-9, atol=1e-12, err_msg=str(kwargs)
        )
        runs: list[Any] = [dense]
        with _patched(constants):
            runs.append(attention(q, k, v, return_lse=True, memory_budget=0, **kwargs))
        for got in runs:
            context = f"{kwargs}, {constants}"
            np.testing.assert_allclose(got.output, out, rtol=1e-9, atol=1e-12, err_msg=context)
            np.testing.assert_allclose(got.lse, lse, rtol=1e-9, atol=1e-12, err_msg=context)


def test_segments_are_a_block_diagonal_mask_with_per_segment_causal_triangles() -> None:
    """Packed ids (lengths 2, 0, 3, then 1 padding) equal explicit masks, both alignments."""
    rng = np.random.default_rng(1)
    q = rng.standard_normal((1, 2, 6, 4))
    kv = rng.standard_normal((1, 2, 6, 4))
    ids = np.array([0, 0, 2, 2, 2, -1])
    mask = np.zeros((6, 6), bool)
    mask[:2, :2] = np.tril(np.ones((2, 2), bool))
    mask[2:5, 2:5] = np.tril(np.ones((3, 3), bool))
    got: Any = None
    for causal in ("top_left", "bottom_right"):  # sq == sk per segment: the alignments agree
        got = attention(q, kv, kv, segment_ids=ids, causal=causal)
        np.testing.assert_allclose(got, attention(q, kv, kv, attend_mask=mask), rtol=1e-12)
    np.testing.assert_array_equal(got[..., 5, :], 0)  # padding: fully masked, "zero"
    # cross: queries are the last 1 and 2 tokens of segments with 3 and 4 keys
    keys = rng.standard_normal((1, 2, 7, 4))
    q_ids, k_ids = np.array([0, 1, 1]), np.array([0, 0, 0, 1, 1, 1, 1])
    cross = np.zeros((3, 7), bool)
    cross[0, :3] = True  # bottom_right: the one query sees all 3 keys
    cross[1, 3:6] = cross[2, 3:7] = True
    got = attention(
        q[..., :3, :], keys, keys, segment_ids=q_ids, key_segment_ids=k_ids, causal="bottom_right"
    )
    want = attention(q[..., :3, :], keys, keys, attend_mask=cross)
    np.testing.assert_allclose(got, want, rtol=1e-12)


def _varlen_case(rng: np.random.Generator) -> dict[str, Any]:
    batch = int(rng.integers(1, 5))
    lens_q = [int(x) for x in rng.integers(0, 6, size=batch)]
    lens_k = [int(x) for x in rng.integers(0, 8, size=batch)] if rng.random() < 0.5 else lens_q
    hkv = int(rng.integers(1, 3))
    hq = hkv * int(rng.integers(1, 3))
    return {"lens_q": lens_q, "lens_k": lens_k, "hq": hq, "hkv": hkv}


@pytest.mark.parametrize("seed", range(30))
def test_segment_ids_equal_flash_attn_varlen_on_the_same_packed_batch(seed: int) -> None:
    rng = np.random.default_rng(seed)
    case = _varlen_case(rng)
    lens_q, lens_k, hq, hkv = case["lens_q"], case["lens_k"], case["hq"], case["hkv"]
    total_q, total_k, dim = sum(lens_q), sum(lens_k), 4
    if total_q == 0:
        lens_q[0], total_q = 1, 1
    if total_k == 0:
        lens_k = [*lens_k]
        lens_k[0], total_k = 1, 1
    cu_q = np.concatenate([[0], np.cumsum(lens_q)]).astype(np.int32)
    cu_k = np.concatenate([[0], np.cumsum(lens_k)]).astype(np.int32)
    q = rng.standard_normal((total_q, hq, dim))
    k = rng.standard_normal((total_k, hkv, dim))
    v = rng.standard_normal((total_k, hkv, dim))
    causal = bool(rng.random() < 0.6)
    max_q, max_k = max(lens_q), max(lens_k)
    # windows narrower than every sequence, so flash-attn's rewriting leaves them alone
    left = int(rng.integers(0, 3)) if rng.random() < 0.4 else -1
    right = 0 if causal else int(rng.integers(0, 3))
    window = (left, right) if (left >= 0 or not causal) else (-1, -1)
    if not causal and window == (-1, right) and max_k > right:
        window = (-1, -1)  # a single negative side becomes max_seqlen_k in flash-attn
    slopes = rng.random(hq).astype(np.float32) if rng.random() < 0.3 else None
    want = flash_attn_varlen_func(
        q, k, v, cu_q, cu_k, max_q, max_k, causal=causal, window_size=window,
        alibi_slopes=slopes,
    )  # fmt: skip
    ids_q = np.repeat(np.arange(len(lens_q)), lens_q)
    ids_k = np.repeat(np.arange(len(lens_k)), lens_k)
    options: dict[str, Any] = {"causal": "bottom_right" if causal else None}
    if window != (-1, -1) and not (causal and window[0] < 0):
        options["window"] = tuple(None if w < 0 else w for w in window)
        options["window_alignment"] = "bottom_right"
    got = attention(
        q.swapaxes(0, 1), k.swapaxes(0, 1), v.swapaxes(0, 1), segment_ids=ids_q,
        key_segment_ids=ids_k, alibi_slopes=slopes, **options,
    ).swapaxes(0, 1)  # fmt: skip
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14, err_msg=f"{case} {window}")


def test_equal_lengths_varlen_is_each_sequence_alone() -> None:
    """Packed attention equals separate calls, one per segment (float64, exact up to rounding)."""
    rng = np.random.default_rng(5)
    lens = [3, 5, 2]
    q = rng.standard_normal((2, 10, 8))
    k = rng.standard_normal((2, 10, 8))
    v = rng.standard_normal((2, 10, 3))
    ids = np.repeat(np.arange(3), lens)
    sinks = np.array([0.3, -1.0])
    got = attention(q, k, v, segment_ids=ids, causal="top_left", sinks=sinks)
    start = 0
    for n in lens:
        part = slice(start, start + n)
        want = attention(q[:, part], k[:, part], v[:, part], causal="top_left", sinks=sinks)
        np.testing.assert_allclose(got[:, part], want, rtol=1e-12, atol=1e-15)
        start += n


def test_sink_takes_its_share_and_a_rowless_sink_gives_zero() -> None:
    q = np.zeros((1, 1, 2, 2))
    k = np.zeros((1, 1, 3, 2))
    v = np.arange(6.0).reshape(1, 1, 3, 2)
    sink = math.log(3.0)  # exp(sink) = 3 = the sum of the three keys' exp(0)
    res = attention(q, k, v, sinks=np.array([sink]), return_weights=True, return_lse=True)
    assert res.weights is not None
    assert res.lse is not None
    np.testing.assert_allclose(res.weights, 1 / 6)  # each key 1/6, the sink 1/2
    np.testing.assert_allclose(res.output, np.broadcast_to([1.0, 1.5], (1, 1, 2, 2)))
    np.testing.assert_allclose(res.lse, math.log(6.0))
    # no allowed key: the sink holds all the mass, output 0 whatever fully_masked says
    for policy in ("zero", "uniform", "nan", "raise"):
        res = attention(
            q, k, v, sinks=np.array([2.5]), key_lengths=np.array(0), fully_masked=policy,
            return_lse=True,
        )  # fmt: skip
        np.testing.assert_array_equal(res.output, 0)
        np.testing.assert_array_equal(res.lse, 2.5)
    # -inf: no sink
    plain = attention(q + 1, k - 1, v)
    np.testing.assert_array_equal(attention(q + 1, k - 1, v, sinks=np.array([-np.inf])), plain)


def test_huge_sinks_do_not_overflow_float32() -> None:
    rng = np.random.default_rng(3)
    q, k, v = (rng.standard_normal((2, 5, 4)).astype(np.float32) for _ in range(3))
    sinks = np.array([300.0, -300.0], np.float32)
    out, _, lse = loop_attention(q, k, v, sinks=sinks)
    for budget in (None, 0):
        res: Any = attention(q, k, v, sinks=sinks, return_lse=True, memory_budget=budget)
        assert np.isfinite(res.output).all()
        np.testing.assert_allclose(res.output, out, rtol=1e-5, atol=1e-30)
        np.testing.assert_allclose(res.lse, lse, rtol=1e-6)


def _allowed(
    ids_q: np.ndarray,
    ids_k: np.ndarray,
    causal: str | None,
    window: tuple[int | None, int | None] | None,
) -> np.ndarray:
    """The documented per-segment mask ``(L, S)``, written here for the torch model."""
    mask = np.zeros((len(ids_q), len(ids_k)), bool)
    for i, a in enumerate(ids_q):
        for j, b in enumerate(ids_k):
            if a != b or a < 0:
                continue
            p = int((ids_q[:i] == a).sum())
            t = int((ids_k[:j] == a).sum())
            shift = int((ids_k == a).sum() - (ids_q == a).sum()) if causal == "bottom_right" else 0
            ok = causal is None or t <= p + shift
            if window is not None:
                ok = ok and (window[0] is None or t >= p + shift - window[0])
                ok = ok and (window[1] is None or t <= p + shift + window[1])
            mask[i, j] = ok
    return mask


def _torch_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: np.ndarray, sinks: torch.Tensor | None
) -> torch.Tensor:
    """Softmax attention with a sink column, fully masked rows giving 0 (torch >= 2.5's)."""
    group = q.shape[-3] // k.shape[-3]
    k, v = k.repeat_interleave(group, -3), v.repeat_interleave(group, -3)
    allowed = torch.as_tensor(mask)
    logits = (q @ k.transpose(-1, -2)) / math.sqrt(q.shape[-1])
    logits = logits.masked_fill(~allowed, -math.inf)
    if sinks is not None:
        column = sinks[..., :, None, None].expand(*logits.shape[:-1], 1)
        probs = torch.softmax(torch.cat([logits, column], -1), -1)[..., :-1]
    else:
        dead = ~allowed.any(-1, keepdim=True)
        probs = torch.softmax(logits.masked_fill(dead, 0.0), -1).masked_fill(dead, 0.0)
    return probs @ v


@pytest.mark.parametrize("seed", range(12))
def test_backward_matches_torch_autograd(seed: int) -> None:
    rng = np.random.default_rng(seed)
    batch, hkv, groups, length = 2, 2, int(rng.integers(1, 3)), int(rng.integers(2, 11))
    hq = hkv * groups
    q = rng.standard_normal((batch, hq, length, 3))
    k = rng.standard_normal((batch, hkv, length, 3))
    v = rng.standard_normal((batch, hkv, length, 2))
    ids = np.stack([_packing(rng, length) for _ in range(batch)])
    causal = [None, *ALIGN][seed % 3]
    window = (1, None) if seed % 4 == 1 else None
    if window is not None and causal is None:
        causal = "top_left"
    sinks = rng.standard_normal(hq) if seed % 2 == 0 else None
    grad = rng.standard_normal((batch, hq, length, 2))
    mask = np.stack([_allowed(row, row, causal, window) for row in ids])[:, None]
    tensors = [torch.tensor(x, requires_grad=True) for x in (q, k, v)]
    t_sinks = None if sinks is None else torch.tensor(sinks, requires_grad=True)
    out: Any = _torch_attention(tensors[0], tensors[1], tensors[2], mask, t_sinks)
    out.backward(torch.tensor(grad))
    options: dict[str, Any] = {"segment_ids": ids, "causal": causal, "window": window}
    if sinks is not None:
        options["sinks"] = sinks
    np.testing.assert_allclose(attention(q, k, v, **options), out.detach().numpy(), rtol=1e-10)
    constants = _forced(rng)
    for patch in ({}, constants):
        with _patched(patch):
            got = attention_backward(grad, q, k, v, **options)
        for mine, theirs in zip(got[:3], tensors, strict=True):
            assert theirs.grad is not None
            np.testing.assert_allclose(mine, theirs.grad.numpy(), rtol=1e-9, atol=1e-12)
        if t_sinks is not None:
            assert got.sinks is not None
            assert t_sinks.grad is not None
            assert got.sinks.shape == (hq,)
            np.testing.assert_allclose(got.sinks, t_sinks.grad.numpy(), rtol=1e-9, atol=1e-12)
        else:
            assert got.sinks is None


def test_sink_gradient_matches_finite_differences() -> None:
    rng = np.random.default_rng(11)
    q = rng.standard_normal((2, 4, 5, 3))
    k = rng.standard_normal((2, 2, 7, 3))
    v = rng.standard_normal((2, 2, 7, 2))
    sinks = rng.standard_normal((2, 4))  # per batch entry and head
    grad = rng.standard_normal((2, 4, 5, 2))
    options: dict[str, Any] = {"causal": "bottom_right", "key_lengths": np.array([7, 2])}

    def loss(z: np.ndarray) -> float:
        out, _, _ = loop_attention(q, k, v, sinks=z, **options)
        return float((out * grad).sum())

    eps, numeric = 1e-6, np.zeros_like(sinks)
    for index in np.ndindex(sinks.shape):
        plus, minus = sinks.copy(), sinks.copy()
        plus[index] += eps
        minus[index] -= eps
        numeric[index] = (loss(plus) - loss(minus)) / (2 * eps)
    got = attention_backward(grad, q, k, v, sinks=sinks, **options)
    assert got.sinks is not None
    assert got.sinks.shape == sinks.shape
    np.testing.assert_allclose(got.sinks, numeric, rtol=1e-6, atol=1e-9)
    shared = attention_backward(grad, q, k, v, sinks=sinks[0], **options)  # (Hq,): summed
    full = attention_backward(grad, q, k, v, sinks=np.stack([sinks[0]] * 2), **options)
    assert shared.sinks is not None
    assert full.sinks is not None
    np.testing.assert_allclose(shared.sinks, full.sinks.sum(axis=0), rtol=1e-12)


def test_non_finite_query_makes_its_heads_sink_gradient_nan() -> None:
    rng = np.random.default_rng(2)
    q = rng.standard_normal((1, 2, 3, 2))
    kv = rng.standard_normal((1, 1, 3, 2))
    q[0, 1, 0, 0] = np.nan
    got = attention_backward(np.ones((1, 2, 3, 2)), q, kv, kv, sinks=np.array([0.0, 1.0]))
    assert got.sinks is not None
    assert np.isfinite(got.sinks[0])
    assert np.isnan(got.sinks[1])


def test_masked_means_absent_across_segments() -> None:
    """A NaN key or value in another segment, or in padding, changes nothing."""
    rng = np.random.default_rng(4)
    q = rng.standard_normal((2, 6, 3))
    k = rng.standard_normal((1, 6, 3))
    v = rng.standard_normal((1, 6, 2))
    ids = np.array([0, 0, 0, 1, 1, -1])
    clean = attention(q, k, v, segment_ids=ids, causal="top_left", sinks=np.array([0.0, 1.0]))
    k[0, 5], v[0, 4, 1] = np.nan, np.inf  # padding key; key 4 of segment 1
    got = attention(q, k, v, segment_ids=ids, causal="top_left", sinks=np.array([0.0, 1.0]))
    np.testing.assert_array_equal(got[:, :3], clean[:, :3])  # segment 0 never reads them
    np.testing.assert_array_equal(got[:, 3], clean[:, 3])  # causal: key 4 is after query 3
    assert np.isnan(got[:, 4, 1]).all()
    np.testing.assert_array_equal(got[:, 4, 0], clean[:, 4, 0])
    np.testing.assert_array_equal(got[:, 5], 0)  # padding row: only the sink, output 0


@pytest.mark.parametrize(
    ("options", "error", "words"),
    [
        ({"segment_ids": np.zeros(4)}, AttentionDTypeError, "segment_ids should hold integer"),
        ({"segment_ids": np.zeros(3, int)}, AttentionShapeError, r"broadcast to \(\.\.\., L\)"),
        (
            {"segment_ids": np.zeros(4, int), "key_segment_ids": np.zeros(3, int)},
            AttentionShapeError,
            "key_segment_ids shape",
        ),
        ({"key_segment_ids": np.zeros(4, int)}, AttentionValueError, "segment_ids should be"),
        (
            {
                "segment_ids": np.zeros(4, int),
                "key_segment_ids": np.zeros(4, int),
                "window": (1, 1),
            },
            AttentionValueError,
            "window_alignment should be given",
        ),
        ({"segment_ids": np.zeros(4, int), "causal": True}, AttentionValueError, "causal"),
        ({"sinks": np.zeros(3)}, AttentionShapeError, r"sinks shape should be \(Hq,\)"),
        ({"sinks": np.array([0, 1])}, AttentionDTypeError, "sinks should be floating"),
        ({"sinks": np.array([0.0, np.nan])}, AttentionValueError, "sinks should be finite"),
    ],
)
def test_bad_segment_ids_and_sinks_are_named(
    options: dict[str, Any], error: type[Exception], words: str
) -> None:
    q = np.zeros((2, 4, 3))
    with pytest.raises(error, match=words):
        attention(q, q, q, **options)


def test_key_segment_ids_are_required_when_lengths_differ() -> None:
    q, kv = np.zeros((1, 2, 3)), np.zeros((1, 5, 3))
    with pytest.raises(AttentionValueError, match=r"key_segment_ids should be given when L != S"):
        attention(q, kv, kv, segment_ids=np.zeros(2, int))


def test_layouts_page_segments_snippet_runs() -> None:
    # docs/layouts.md includes this file; it asserts what the page says (flash varlen agrees)
    path = Path(__file__).resolve().parent.parent / "docs" / "snippets" / "layouts_segments.py"
    runpy.run_path(str(path), run_name="__main__")


@pytest.mark.filterwarnings("ignore:.*flex_attention.*:UserWarning")
@pytest.mark.parametrize("seed", range(6))
def test_segment_ids_equal_torch_flex_attention_document_masking(seed: int) -> None:
    """FlexAttention's document mask (same id, causal by index), forward and lse.

    With one set of ids for queries and keys, a segment holds the same indices on both
    axes, so causal by index within a segment is causal by position within it, contiguous
    or not: refattn's ``causal="top_left"`` per segment must be exactly this mask.
    (FlexAttention has no backward on CPU; the gradients are checked against torch
    autograd of the model in test_backward_matches_torch_autograd.)
    """
    from torch.nn.attention.flex_attention import AuxRequest, create_block_mask, flex_attention

    rng = np.random.default_rng(seed)
    length = int(rng.integers(2, 40))
    ids = _packing(rng, length, contiguous=seed % 2 == 0)
    q, k, v = (rng.standard_normal((1, 2, length, 8)) for _ in range(3))
    t_ids = torch.as_tensor(ids)

    def document(b: Any, h: Any, i: Any, j: Any) -> Any:
        return (t_ids[i] == t_ids[j]) & (i >= j) & (t_ids[i] >= 0)

    block_mask = create_block_mask(document, None, None, length, length, device="cpu")
    t_q, t_k, t_v = (torch.tensor(x) for x in (q, k, v))
    request = AuxRequest(lse=True)
    out, aux = flex_attention(t_q, t_k, t_v, block_mask=block_mask, return_aux=request)
    lse = aux.lse
    assert lse is not None
    got: Any = attention(q, k, v, segment_ids=ids, causal="top_left", return_lse=True)
    np.testing.assert_allclose(got.output, out.detach().numpy(), rtol=1e-12, atol=1e-14)
    live = ids >= 0  # padding rows: both give output 0; flex's lse there is not -inf
    np.testing.assert_allclose(got.lse[..., live], lse.detach().numpy()[..., live], rtol=1e-12)


def _gpt_oss_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, sinks: torch.Tensor, window: int
) -> torch.Tensor:
    """gpt-oss's attention with sinks, as its reference model computes it.

    Written from ``sdpa`` in ``gpt_oss/torch/model.py`` (openai/gpt-oss): ``q (T, Hkv,
    G, D)``, ``k``/``v`` ``(T, Hkv, D)``, ``sinks (Hkv * G,)``; causal, and with
    ``window > 0`` key ``j`` is also removed when ``j <= i - window``; the sink logit is
    one more column of the softmax, dropped before the values.
    """
    length, hkv, groups, dim = q.shape
    removed = torch.ones(length, length, dtype=torch.bool).triu(1)
    if window > 0:
        removed |= torch.ones(length, length, dtype=torch.bool).tril(-window)
    logits = torch.einsum("qhgd,khd->hgqk", q, k) / math.sqrt(dim)
    logits = logits.masked_fill(removed, -math.inf)
    column = sinks.reshape(hkv, groups, 1, 1).expand(hkv, groups, length, 1)
    weights = torch.softmax(torch.cat([logits, column], dim=-1), dim=-1)[..., :-1]
    return torch.einsum("hgqk,khd->qhgd", weights, v)


@pytest.mark.parametrize("window", [0, 1, 3])
def test_sinks_equal_gpt_oss_attention_and_its_autograd(window: int) -> None:
    rng = np.random.default_rng(window)
    length, hkv, groups, dim = 9, 2, 3, 8
    q = rng.standard_normal((length, hkv, groups, dim))
    k, v = (rng.standard_normal((length, hkv, dim)) for _ in range(2))
    sinks = rng.standard_normal(hkv * groups) * 2
    grad = rng.standard_normal((length, hkv, groups, dim))
    tensors = [torch.tensor(x, requires_grad=True) for x in (q, k, v, sinks)]
    out: Any = _gpt_oss_attention(tensors[0], tensors[1], tensors[2], tensors[3], window)
    out.backward(torch.tensor(grad))
    # refattn's layout: heads first, query head h = kv * G + g reads kv head h // G
    query = q.reshape(length, hkv * groups, dim).swapaxes(0, 1)
    key, value = k.swapaxes(0, 1), v.swapaxes(0, 1)
    options: dict[str, Any] = {"causal": "top_left", "sinks": sinks}
    if window > 0:
        options["window"] = (window - 1, 0)  # keys i - window < j <= i
    got = attention(query, key, value, **options)
    mine = got.swapaxes(0, 1).reshape(length, hkv, groups, dim)
    np.testing.assert_allclose(mine, out.detach().numpy(), rtol=1e-12, atol=1e-14)
    d_out = grad.reshape(length, hkv * groups, dim).swapaxes(0, 1)
    grads = attention_backward(d_out, query, key, value, **options)
    want = [t.grad.numpy() for t in tensors if t.grad is not None]
    assert len(want) == 4
    d_query = grads.query.swapaxes(0, 1).reshape(length, hkv, groups, dim)
    np.testing.assert_allclose(d_query, want[0], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(grads.key.swapaxes(0, 1), want[1], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(grads.value.swapaxes(0, 1), want[2], rtol=1e-10, atol=1e-12)
    assert grads.sinks is not None
    np.testing.assert_allclose(grads.sinks, want[3], rtol=1e-10, atol=1e-12)


def test_segment_ids_and_sinks_are_read_only_inputs() -> None:
    """Read-only ids and sinks work, and neither call writes into them."""
    rng = np.random.default_rng(8)
    q, k, v = (rng.standard_normal((2, 6, 4)) for _ in range(3))
    ids = np.array([0, 0, 1, 1, 1, -1])
    sinks = np.array([0.5, -np.inf])
    for array in (ids, sinks):
        array.flags.writeable = False
    before = (ids.copy(), sinks.copy())
    options: dict[str, Any] = {"segment_ids": ids, "causal": "bottom_right", "sinks": sinks}
    attention(q, k, v, memory_budget=0, **options)
    attention_backward(np.ones((2, 6, 4)), q, k, v, **options)
    np.testing.assert_array_equal(ids, before[0])
    np.testing.assert_array_equal(sinks, before[1])


def test_blocks_outside_every_segment_are_never_computed() -> None:
    """Eight packed documents of 64 tokens: the tasks span about the block diagonal only."""
    from refattn.validation import validate

    q = np.zeros((1, 512, 8))
    ids = np.repeat(np.arange(8), 64)
    plan = validate(q, q, q, segment_ids=ids, causal="top_left")
    tasks = _kernel.make_tasks(plan)
    computed = sum((t.r1 - t.r0) * (t.hi - t.lo) for t in tasks)
    for t in tasks:  # a task's keys start at its first row's document
        assert t.lo == (t.r0 // 64) * 64
        assert t.hi == t.r1  # and end at its last row (causal)
    assert computed <= 512 * 512 // 8 * 2  # at most twice the eight 64 x 64 blocks
