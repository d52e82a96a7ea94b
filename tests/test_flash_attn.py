"""refattn.compat.flash_attn against an independent float64 loop (tests/flash_loop_reference.py).

Random packed batches (with empty and length-1 sequences), paged caches with shuffled
block tables, cache_batch_idx, left padding, windows, softcap, ALiBi, GQA and both rotary
conventions agree to float32 rounding; varlen with equal lengths equals flash_attn_func;
decoding token by token equals one causal call; bad input gets refattn's named errors.
"""

from __future__ import annotations

import importlib.util
import inspect
import re
import runpy
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import numpy as np
import pytest
import torch

from catalogue import all_cases
from refattn.compat.flash_attn import (
    flash_attn_func,
    flash_attn_kvpacked_func,
    flash_attn_qkvpacked_func,
    flash_attn_varlen_func,
    flash_attn_varlen_kvpacked_func,
    flash_attn_varlen_qkvpacked_func,
    flash_attn_with_kvcache,
)
from refattn.errors import AttentionDTypeError, AttentionShapeError, AttentionValueError
from refattn.rotary import rotary_tables
from tests import flash_loop_reference as ref

F32 = np.float32
OUT_TOL = {"rtol": 2e-5, "atol": 2e-5}  # float32 inputs and outputs
LSE_TOL = {"rtol": 2e-6, "atol": 2e-5}  # LSE is float32 in flash-attn


def randn(rng: np.random.Generator, *shape: int, dtype: Any = F32) -> np.ndarray:
    return rng.standard_normal(shape).astype(dtype)


def cu(lengths: list[int]) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)


def random_window(rng: np.random.Generator, limit: int) -> tuple[int, int]:
    choice = rng.integers(4)
    if choice == 0:
        return (-1, -1)
    left = int(rng.integers(0, limit + 2))
    right = int(rng.integers(0, limit + 2))
    return [(left, right), (left, -1), (-1, right)][choice - 1]


def random_options(rng: np.random.Generator, hq: int, batch: int, limit: int) -> dict[str, Any]:
    slopes = None
    if rng.random() < 0.4:
        shape = (hq,) if rng.random() < 0.5 else (batch, hq)
        slopes = (rng.random(shape) * 0.5).astype(F32)
    return {
        "causal": bool(rng.random() < 0.5),
        "window": random_window(rng, limit),
        "softcap": float(rng.choice([0.0, 0.0, 3.0])),
        "slopes": slopes,
        "scale": None if rng.random() < 0.5 else float(rng.uniform(0.05, 0.6)),
    }


def close(got: Any, want: Any, tol: dict[str, float]) -> None:
    np.testing.assert_allclose(got, want, rtol=tol["rtol"], atol=tol["atol"])


# ---------------------------------------------------------------- flash_attn_func


@pytest.mark.parametrize("seed", range(12))
def test_func_matches_loop_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    batch, hkv = int(rng.integers(1, 3)), int(rng.choice([1, 2]))
    hq = hkv * int(rng.choice([1, 2, 3]))
    sq, sk, dim = int(rng.integers(1, 9)), int(rng.integers(1, 9)), 8
    q, k, v = (
        randn(rng, batch, sq, hq, dim),
        randn(rng, batch, sk, hkv, dim),
        randn(rng, batch, sk, hkv, dim),
    )
    o = random_options(rng, hq, batch, max(sq, sk))
    out, lse, s_dmask = flash_attn_func(
        q, k, v, causal=o["causal"], window_size=o["window"], softcap=o["softcap"],
        alibi_slopes=o["slopes"], softmax_scale=o["scale"], return_attn_probs=True,
    )  # fmt: skip
    want_out, want_lse = ref.func(
        q, k, v, causal=o["causal"], window=o["window"], softcap=o["softcap"], slopes=o["slopes"],
        scale=o["scale"],
    )  # fmt: skip
    assert out.shape == q.shape
    assert out.dtype == np.float32
    assert lse.shape == (batch, hq, sq)
    assert lse.dtype == np.float32
    assert s_dmask.shape == (0,)
    assert s_dmask.dtype == q.dtype
    close(out, want_out, OUT_TOL)
    close(lse, want_lse, LSE_TOL)


def test_func_float64_is_exact_and_float16_rounds() -> None:
    rng = np.random.default_rng(1)
    q, k, v = (randn(rng, 2, 5, 4, 8, dtype=np.float64) for _ in range(3))
    out = flash_attn_func(q, k, v, causal=True, softcap=2.0)
    want, _ = ref.func(q, k, v, causal=True, softcap=2.0)
    assert out.dtype == np.float64
    np.testing.assert_allclose(out, want, rtol=1e-12, atol=1e-12)
    q16, k16, v16 = (x.astype(np.float16) for x in (q, k, v))
    half = flash_attn_func(q16, k16, v16, causal=True, softcap=2.0)
    assert half.dtype == np.float16
    np.testing.assert_allclose(half, want, atol=5e-3)


def test_func_causal_mask_is_the_documented_bottom_right_picture() -> None:
    # The docstring's pictures: Sq=2, Sk=5 -> rows [1 1 1 1 0], [1 1 1 1 1];
    # Sq=5, Sk=2 -> three empty rows, then [1 0], [1 1]. A one-hot value reads the mask.
    q = np.zeros((1, 2, 1, 8), F32)
    v = np.eye(5, 8, dtype=F32)[None, :, None, :]
    out = flash_attn_func(q, np.zeros_like(v), v, causal=True)
    np.testing.assert_allclose(out[0, :, 0, :5], [[0.25] * 4 + [0], [0.2] * 5], atol=1e-7)
    q5 = np.zeros((1, 5, 1, 8), F32)
    v2 = np.eye(2, 8, dtype=F32)[None, :, None, :]
    out5, lse5, _ = flash_attn_func(q5, np.zeros_like(v2), v2, causal=True, return_attn_probs=True)
    np.testing.assert_allclose(out5[0, :, 0, :2], [[0, 0]] * 3 + [[1, 0], [0.5, 0.5]], atol=1e-7)
    assert np.isposinf(lse5[0, 0, :3]).all()  # no allowed key: LSE +inf, output zeros
    np.testing.assert_allclose(lse5[0, 0, 3:], [0.0, np.log(2)], atol=1e-7)


def test_func_no_keys_gives_zeros_and_plus_inf() -> None:
    q = np.ones((1, 3, 2, 8), F32)
    kv = np.ones((1, 0, 2, 8), F32)
    out, lse, _ = flash_attn_func(q, kv, kv, return_attn_probs=True)
    assert (out == 0).all()
    assert np.isposinf(lse).all()


def test_window_quirks_follow_the_kernel_not_the_docstring() -> None:
    # Sq=10 queries, Sk=2 keys. (0, -1): set_params_fprop turns the right side into Sk,
    # so query i sees keys j <= i + 2*Sk - Sq: the first six queries see nothing.
    rng = np.random.default_rng(2)
    q, k, v = randn(rng, 1, 10, 1, 8), randn(rng, 1, 2, 1, 8), randn(rng, 1, 2, 1, 8)
    out, lse, _ = flash_attn_func(q, k, v, window_size=(0, -1), return_attn_probs=True)
    assert np.isposinf(lse[0, 0, :6]).all()
    assert np.isfinite(lse[0, 0, 6:]).all()
    # (-1, 2): right side >= Sk becomes -1 in mha_fwd, so every query sees both keys,
    # although the documented rule (j <= i + Sk - Sq + 2) would leave early rows empty.
    _, lse2, _ = flash_attn_func(q, k, v, window_size=(-1, 2), return_attn_probs=True)
    assert np.isfinite(lse2).all()
    want, want_lse = ref.func(q, k, v, window=(0, -1))
    close(out, want, OUT_TOL)
    close(lse, want_lse, LSE_TOL)


def test_causal_alibi_lse_is_the_kernels() -> None:
    # Under a causal mask the kernel adds slope * j: same output, LSE larger by
    # slope * (i + Sk - Sq) than the documented bias gives.
    rng = np.random.default_rng(3)
    q, k, v = randn(rng, 1, 4, 2, 8), randn(rng, 1, 6, 2, 8), randn(rng, 1, 6, 2, 8)
    slopes = np.array([0.5, 0.25], F32)
    out_c, lse_c, _ = flash_attn_func(
        q, k, v, causal=True, alibi_slopes=slopes, return_attn_probs=True
    )
    # window (5, 0) is the same mask for these lengths but runs the local branch (|i - j|)
    out_w, lse_w, _ = flash_attn_func(
        q, k, v, window_size=(5, 0), alibi_slopes=slopes, return_attn_probs=True
    )
    close(out_c, out_w, OUT_TOL)
    shift = slopes[:, None] * (np.arange(4) + 6 - 4)[None, :]
    close(lse_c[0], lse_w[0] + shift, LSE_TOL)


def attention_ref_numpy(
    q: np.ndarray, k: np.ndarray, v: np.ndarray, causal: bool, window: tuple[int, int]
) -> np.ndarray:
    """tests/test_flash_attn.py::attention_ref and construct_local_mask (flash-attn), ported
    to NumPy line by line for the no-padding case."""
    if causal:
        window = (window[0], 0)
    sq, sk = q.shape[1], k.shape[1]
    g = q.shape[2] // k.shape[2]
    k, v = np.repeat(k, g, axis=2), np.repeat(v, g, axis=2)
    scores = np.einsum("bthd,bshd->bhts", q / np.sqrt(q.shape[-1]), k)
    if window[0] >= 0 or window[1] >= 0:
        row, col = np.arange(sq)[:, None], np.arange(sk)
        if window[0] < 0:
            local = col > row + sk - sq + window[1]
        else:
            local = (col > np.minimum(row + sk - sq + window[1], sk)) | (
                col < row + sk - sq - window[0]
            )
        scores = np.where(local, -np.inf, scores)
    with np.errstate(invalid="ignore"):
        e = np.exp(scores - scores.max(-1, keepdims=True))
        attn = e / e.sum(-1, keepdims=True)
    if window[0] >= 0 or window[1] >= 0:
        attn = np.where(local.all(-1, keepdims=True), 0.0, attn)
    out: np.ndarray = np.einsum("bhts,bshd->bthd", attn, v)
    return out


@pytest.mark.parametrize("seed", range(6))
def test_func_matches_flash_attn_attention_ref(seed: int) -> None:
    # attention_ref's windows are drawn as randint(0, seqlen_k, (2,)) in flash-attn's tests:
    # both sides set and below Sk, where no rewriting applies.
    rng = np.random.default_rng(100 + seed)
    sq, sk = int(rng.integers(1, 9)), int(rng.integers(1, 9))
    q, k, v = randn(rng, 2, sq, 4, 8), randn(rng, 2, sk, 2, 8), randn(rng, 2, sk, 2, 8)
    causal = bool(seed % 2)
    window = (-1, -1) if seed < 2 else (int(rng.integers(0, sk)), int(rng.integers(0, sk)))
    out = flash_attn_func(q, k, v, causal=causal, window_size=window)
    close(out, attention_ref_numpy(q.astype(np.float64), k, v, causal, window), OUT_TOL)


# ---------------------------------------------------------------- flash_attn_varlen_func


def random_lengths(rng: np.random.Generator, batch: int) -> list[int]:
    lengths = [int(n) for n in rng.integers(0, 8, batch)]
    lengths[int(rng.integers(batch))] = 1  # always a length-1 sequence
    if batch > 2:
        lengths[int(rng.integers(batch))] = 0  # and usually an empty one
    return lengths


@pytest.mark.parametrize("seed", range(10))
def test_varlen_matches_loop_reference(seed: int) -> None:
    rng = np.random.default_rng(200 + seed)
    batch, hkv = int(rng.integers(1, 6)), int(rng.choice([1, 2]))
    hq, dim = hkv * int(rng.choice([1, 2])), 8
    lens_q, lens_k = random_lengths(rng, batch), random_lengths(rng, batch)
    pad_rows = int(rng.integers(0, 3))  # rows past cu_seqlens_q[-1] (CUDA-graph padding)
    q = randn(rng, sum(lens_q) + pad_rows, hq, dim)
    k, v = randn(rng, sum(lens_k), hkv, dim), randn(rng, sum(lens_k), hkv, dim)
    max_q, max_k = max(lens_q) + int(rng.integers(0, 3)), max(lens_k) + int(rng.integers(0, 3))
    o = random_options(rng, hq, batch, max(max_q, max_k))
    out, lse, _ = flash_attn_varlen_func(
        q, k, v, cu(lens_q), cu(lens_k), max_q, max_k, causal=o["causal"],
        window_size=o["window"], softcap=o["softcap"], alibi_slopes=o["slopes"],
        softmax_scale=o["scale"], return_attn_probs=True,
    )  # fmt: skip
    want_out, want_lse = ref.varlen(
        q, k, v, cu(lens_q), cu(lens_k), max_q, max_k, causal=o["causal"], window=o["window"],
        softcap=o["softcap"], slopes=o["slopes"], scale=o["scale"],
    )  # fmt: skip
    assert lse.shape == (hq, q.shape[0])
    assert lse.dtype == np.float32
    close(out, want_out, OUT_TOL)  # NaN rows past cu_seqlens_q[-1] compare equal
    close(lse, want_lse, LSE_TOL)
    if pad_rows:
        assert np.isnan(out[-pad_rows:]).all()
        assert np.isnan(lse[:, -pad_rows:]).all()


def test_varlen_without_keys_zeroes_every_row() -> None:
    # mha_varlen_fwd: max_seqlen_k == 0 zeroes the whole output, padding rows included
    q, kv = np.ones((5, 2, 8), F32), np.ones((0, 2, 8), F32)
    cu_q, cu_k = np.array([0, 2, 4], np.int32), np.array([0, 0, 0], np.int32)
    out, lse, _ = flash_attn_varlen_func(q, kv, kv, cu_q, cu_k, 2, 0, return_attn_probs=True)
    assert (out == 0).all()
    assert np.isposinf(lse).all()


def test_varlen_gqa_fast_path_layouts_are_refused() -> None:
    # max_seqlen_q == 1 with GQA: flash-attn reads row b as sequence b, ignoring cu_seqlens_q
    q, kv = np.ones((3, 4, 8), F32), np.ones((3, 2, 8), F32)
    cu = np.array([0, 1, 2, 3], np.int32)
    out = flash_attn_varlen_func(q, kv, kv, cu, cu, 1, 1)  # 0, 1, ..., B: the same either way
    assert out.shape == (3, 4, 8)
    with pytest.raises(AttentionValueError, match="fast path that ignores cu_seqlens_q"):
        flash_attn_varlen_func(q, kv, kv, np.array([0, 0, 1, 2], np.int32), cu, 1, 1)
    with pytest.raises(AttentionValueError, match="total_q = 3"):
        flash_attn_varlen_func(q, kv, kv, np.array([0, 1, 2], np.int32), cu[:3], 1, 1)
    flash_attn_varlen_func(q, kv, kv, np.array([0, 0, 1, 2], np.int32), cu, 2, 1)  # general path


def test_varlen_sequences_do_not_see_each_other() -> None:
    # Changing sequence 1's keys changes nothing in sequence 0's or 2's output.
    rng = np.random.default_rng(5)
    lens = [3, 4, 2]
    q, k, v = (randn(rng, 9, 2, 8) for _ in range(3))
    out = flash_attn_varlen_func(q, k, v, cu(lens), cu(lens), 4, 4)
    k2, v2 = k.copy(), v.copy()
    k2[3:7] += 5.0
    v2[3:7] -= 5.0
    out2 = flash_attn_varlen_func(q, k2, v2, cu(lens), cu(lens), 4, 4)
    np.testing.assert_array_equal(out[:3], out2[:3])
    np.testing.assert_array_equal(out[7:], out2[7:])
    assert not np.allclose(out[3:7], out2[3:7])


@pytest.mark.parametrize("causal", [False, True])
def test_varlen_with_equal_lengths_equals_func(causal: bool) -> None:
    rng = np.random.default_rng(6)
    batch, sq, sk = 3, 4, 6
    q, k, v = randn(rng, batch, sq, 4, 8), randn(rng, batch, sk, 2, 8), randn(rng, batch, sk, 2, 8)
    slopes = (rng.random((batch, 4)) * 0.3).astype(F32)
    out, lse, _ = flash_attn_func(
        q, k, v, causal=causal, window_size=(2, 1), softcap=4.0, alibi_slopes=slopes,
        return_attn_probs=True,
    )  # fmt: skip
    got, got_lse, _ = flash_attn_varlen_func(
        q.reshape(batch * sq, 4, 8), k.reshape(batch * sk, 2, 8), v.reshape(batch * sk, 2, 8),
        cu([sq] * batch), cu([sk] * batch), sq, sk, causal=causal, window_size=(2, 1),
        softcap=4.0, alibi_slopes=slopes, return_attn_probs=True,
    )  # fmt: skip
    np.testing.assert_allclose(got.reshape(out.shape), out, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(got_lse.reshape(4, batch, sq).transpose(1, 0, 2), lse, rtol=1e-6)


def paged(
    rng: np.random.Generator, keys: list[np.ndarray], page: int, spare: int
) -> tuple[np.ndarray, np.ndarray]:
    """Scatter per-sequence ``(len, Hkv, D)`` arrays into shuffled pages."""
    pages_per_seq = max(-(-len(x) // page) for x in keys) if keys else 1
    pages_per_seq = max(pages_per_seq, 1)
    num_blocks = len(keys) * pages_per_seq + spare
    order = rng.permutation(num_blocks).astype(np.int32)
    table = order[: len(keys) * pages_per_seq].reshape(len(keys), pages_per_seq)
    pool = randn(rng, num_blocks, page, *keys[0].shape[1:])  # junk outside the sequences
    for b, x in enumerate(keys):
        for p in range(len(x)):
            pool[table[b, p // page], p % page] = x[p]
    return pool, table


@pytest.mark.parametrize("seed", range(4))
def test_varlen_paged_equals_packed(seed: int) -> None:
    rng = np.random.default_rng(300 + seed)
    batch, page = 4, 3
    lens_q, lens_k = random_lengths(rng, batch), random_lengths(rng, batch)
    q = randn(rng, sum(lens_q), 4, 8)
    k, v = randn(rng, sum(lens_k), 2, 8), randn(rng, sum(lens_k), 2, 8)
    cu_k = cu(lens_k)
    k_pages, table = paged(rng, [k[cu_k[b] : cu_k[b + 1]] for b in range(batch)], page, 3)
    v_pool = np.zeros_like(k_pages)
    for b in range(batch):
        for p in range(lens_k[b]):
            v_pool[table[b, p // page], p % page] = v[cu_k[b] + p]
    causal = bool(seed % 2)
    want = flash_attn_varlen_func(q, k, v, cu(lens_q), cu_k, 8, 8, causal=causal)
    got = flash_attn_varlen_func(
        q, k_pages, v_pool, cu(lens_q), cu_k, 8, 8, causal=causal, block_table=table
    )
    np.testing.assert_array_equal(got, want)
    loop, _ = ref.varlen(
        q, k_pages, v_pool, cu(lens_q), cu_k, 8, 8, causal=causal, block_table=table
    )
    close(got, loop, OUT_TOL)


def test_packed_argument_variants_equal_the_plain_calls() -> None:
    rng = np.random.default_rng(13)
    q, k, v = randn(rng, 2, 5, 4, 8), randn(rng, 2, 5, 4, 8), randn(rng, 2, 5, 4, 8)
    opts: dict[str, Any] = {"causal": True, "window_size": (3, -1), "softcap": 2.0}
    want = flash_attn_func(q, k, v, **opts, return_attn_probs=True)
    got = flash_attn_qkvpacked_func(np.stack([q, k, v], axis=2), **opts, return_attn_probs=True)
    for a, b in zip(got, want, strict=True):
        np.testing.assert_array_equal(a, b)
    kv = np.stack([k[:, :, :2], v[:, :, :2]], axis=2)  # GQA: 2 kv heads
    np.testing.assert_array_equal(
        flash_attn_kvpacked_func(q, kv, **opts),
        flash_attn_func(q, k[:, :, :2], v[:, :, :2], **opts),
    )
    lens = [2, 0, 5]
    cu_seq = cu(lens)
    pq, pk, pv = randn(rng, 7, 4, 8), randn(rng, 7, 2, 8), randn(rng, 7, 2, 8)
    np.testing.assert_array_equal(
        flash_attn_varlen_kvpacked_func(
            pq, np.stack([pk, pv], axis=1), cu_seq, cu_seq, 5, 5, **opts
        ),
        flash_attn_varlen_func(pq, pk, pv, cu_seq, cu_seq, 5, 5, **opts),
    )
    qkv = np.stack([pq, pq, pq], axis=1)
    np.testing.assert_array_equal(
        flash_attn_varlen_qkvpacked_func(qkv, cu_seq, 5, **opts),
        flash_attn_varlen_func(pq, pq, pq, cu_seq, cu_seq, 5, 5, **opts),
    )
    with pytest.raises(AttentionShapeError, match=r"qkv shape should be \(B, S, 3, H, D\)"):
        flash_attn_qkvpacked_func(np.stack([q, k], axis=2))


# ---------------------------------------------------------------- flash_attn_with_kvcache


def kv_case(
    rng: np.random.Generator, *, paged_cache: bool, rotary: bool, seed: int
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Random arguments for both the adapter and the loop reference."""
    batch, hkv, dim, capacity = 3, int(rng.choice([1, 2])), 32, 12
    hq = hkv * int(rng.choice([1, 3]))
    sq = int(rng.choice([1, 2, 4]))
    new = int(rng.choice([0, 1, sq]))
    seqlens = rng.integers(0, capacity - max(new, sq if rotary else 0) + 1, batch).astype(np.int32)
    if new == 0:
        seqlens = np.maximum(seqlens, 1).astype(np.int32)
    q = randn(rng, batch, sq, hq, dim)
    k = randn(rng, batch, new, hkv, dim) if new else None
    v = randn(rng, batch, new, hkv, dim) if new else None
    args: dict[str, Any] = {"cache_seqlens": seqlens}
    if paged_cache:
        page = 4
        num_blocks = batch * (capacity // page) + 2
        table = rng.permutation(num_blocks)[: batch * (capacity // page)].astype(np.int32)
        args["block_table"] = table.reshape(batch, capacity // page)
        k_cache, v_cache = (
            randn(rng, num_blocks, page, hkv, dim),
            randn(rng, num_blocks, page, hkv, dim),
        )
    else:
        rows = batch + 2
        k_cache, v_cache = (
            randn(rng, rows, capacity, hkv, dim),
            randn(rng, rows, capacity, hkv, dim),
        )
        args["cache_batch_idx"] = rng.permutation(rows)[:batch].astype(np.int32)
        if seed % 2:
            args["cache_leftpad"] = np.array([rng.integers(0, n + 1) for n in seqlens], np.int32)
    if rotary and new:
        cos, sin = rotary_tables(capacity + 4, 16, base=float(rng.choice([100.0, 10000.0])))
        args.update(rotary_cos=cos, rotary_sin=sin)
        args["rotary_interleaved"] = bool(seed % 2)
    o = random_options(rng, hq, batch, capacity)
    flash_args = {
        **args, "causal": o["causal"], "window_size": o["window"], "softcap": o["softcap"],
        "alibi_slopes": o["slopes"], "softmax_scale": o["scale"],
    }  # fmt: skip
    ref_args = {
        "cache_seqlens": seqlens, "cache_batch_idx": args.get("cache_batch_idx"),
        "cache_leftpad": args.get("cache_leftpad"), "block_table": args.get("block_table"),
        "cos": args.get("rotary_cos"), "sin": args.get("rotary_sin"),
        "interleaved": args.get("rotary_interleaved", True), "causal": o["causal"],
        "window": o["window"], "softcap": o["softcap"], "slopes": o["slopes"],
        "scale": o["scale"],
    }  # fmt: skip
    arrays = {"q": q, "k_cache": k_cache, "v_cache": v_cache, "k": k, "v": v}
    return {**arrays, **flash_args}, {**arrays, **ref_args}


@pytest.mark.parametrize("paged_cache", [False, True])
@pytest.mark.parametrize("rotary", [False, True])
@pytest.mark.parametrize("seed", range(5))
def test_kvcache_matches_loop_reference(paged_cache: bool, rotary: bool, seed: int) -> None:
    rng = np.random.default_rng(400 + seed + 10 * rotary + 20 * paged_cache)
    flash_args, ref_args = kv_case(rng, paged_cache=paged_cache, rotary=rotary, seed=seed)
    want_out, want_lse, want_k, want_v = ref.kvcache(**ref_args)
    k_cache, v_cache = flash_args["k_cache"], flash_args["v_cache"]
    out, lse = flash_attn_with_kvcache(**flash_args, return_softmax_lse=True)
    assert lse.shape == (out.shape[0], out.shape[2], out.shape[1])
    assert lse.dtype == np.float32
    close(out, want_out, OUT_TOL)
    close(lse, want_lse, LSE_TOL)
    # the caches were written in place, rotated keys included
    close(k_cache, want_k, OUT_TOL)
    np.testing.assert_array_equal(v_cache, want_v)


def test_kvcache_float16_rounds_like_the_kernel() -> None:
    # float16 in, float16 out, LSE float32; the rotated keys are stored in float16
    rng = np.random.default_rng(11)
    flash_args, ref_args = kv_case(rng, paged_cache=True, rotary=True, seed=3)
    assert flash_args["rotary_cos"] is not None  # this seed appends rotated keys
    for name in ("q", "k_cache", "v_cache", "k", "v", "rotary_cos", "rotary_sin"):
        if flash_args.get(name) is not None:
            flash_args[name] = flash_args[name].astype(np.float16)
    for name in ("q", "k_cache", "v_cache", "k", "v", "cos", "sin"):
        if ref_args.get(name) is not None:
            ref_args[name] = ref_args[name].astype(np.float16)
    want_out, want_lse, want_k, _ = ref.kvcache(**ref_args)
    out, lse = flash_attn_with_kvcache(**flash_args, return_softmax_lse=True)
    assert out.dtype == np.float16
    assert lse.dtype == np.float32
    assert flash_args["k_cache"].dtype == np.float16
    np.testing.assert_allclose(out, want_out, rtol=2e-3, atol=2e-3)
    np.testing.assert_allclose(lse, want_lse, rtol=2e-3, atol=2e-3)
    np.testing.assert_allclose(flash_args["k_cache"], want_k, rtol=1e-3, atol=1e-3)


def test_kvcache_writes_in_place_and_leaves_the_rest() -> None:
    rng = np.random.default_rng(7)
    k_cache, v_cache = randn(rng, 2, 8, 1, 16), randn(rng, 2, 8, 1, 16)
    before_k, before_v = k_cache.copy(), v_cache.copy()
    k, v = randn(rng, 2, 2, 1, 16), randn(rng, 2, 2, 1, 16)
    seqlens = np.array([3, 5], np.int32)
    flash_attn_with_kvcache(randn(rng, 2, 2, 1, 16), k_cache, v_cache, k, v, cache_seqlens=seqlens)
    for b, n in enumerate(seqlens):
        np.testing.assert_array_equal(k_cache[b, n : n + 2], k[b])
        np.testing.assert_array_equal(v_cache[b, n : n + 2], v[b])
        untouched = np.r_[0:n, n + 2 : 8]
        np.testing.assert_array_equal(k_cache[b, untouched], before_k[b, untouched])
        np.testing.assert_array_equal(v_cache[b, untouched], before_v[b, untouched])
    np.testing.assert_array_equal(seqlens, [3, 5])  # cache_seqlens is not advanced


def test_kvcache_refuses_caches_that_alias_each_other_or_the_inputs() -> None:
    rng = np.random.default_rng(17)
    q, k, v = randn(rng, 1, 1, 2, 16), randn(rng, 1, 1, 2, 16), randn(rng, 1, 1, 2, 16)
    cache = np.zeros((1, 4, 2, 16), F32)
    # one array for both caches: the values would overwrite the keys just written
    with pytest.raises(AttentionValueError, match="v_cache should not share memory with k_cache"):
        flash_attn_with_kvcache(q, cache, cache, k, v, cache_seqlens=0)
    assert not cache.any()  # refused before writing
    # q read from the cache it is about to write
    view = cache[:, 1:2]
    with pytest.raises(AttentionValueError, match="q should not share memory with k_cache"):
        flash_attn_with_kvcache(view, cache, np.zeros_like(cache), k, v, cache_seqlens=1)
    # a packed (B, S, 2, Hkv, D) kv cache: two interleaved views that do not overlap
    kv = np.zeros((1, 4, 2, 2, 16), F32)
    out = flash_attn_with_kvcache(q, kv[:, :, 0], kv[:, :, 1], k, v, cache_seqlens=0)
    np.testing.assert_array_equal(kv[:, 0, 0], k[:, 0])
    np.testing.assert_array_equal(kv[:, 0, 1], v[:, 0])
    np.testing.assert_allclose(out, v, rtol=1e-6)  # one key: the output is its value
    # reading only (no new keys): one array for both caches is fine
    flash_attn_with_kvcache(q, cache, cache, cache_seqlens=np.array([2], np.int32))


def test_kvcache_paged_writes_that_race_are_refused_shared_prefixes_read() -> None:
    rng = np.random.default_rng(18)
    q, k, v = randn(rng, 2, 1, 2, 16), randn(rng, 2, 1, 2, 16), randn(rng, 2, 1, 2, 16)
    pages = randn(rng, 4, 2, 2, 16)  # (num_blocks, page 2, Hkv, D)
    seqlens = np.array([2, 2], np.int32)
    # both sequences append position 2 into page 3: a race in flash-attn
    racing = np.array([[0, 3], [1, 3]], np.int32)
    before = pages.copy()
    with pytest.raises(AttentionValueError, match="sequences 0 and 1 both writing page 3, slot 0"):
        flash_attn_with_kvcache(q, pages, pages.copy(), k, v, cache_seqlens=seqlens,
                                block_table=racing)  # fmt: skip
    np.testing.assert_array_equal(pages, before)
    # sequence 1 reads slot (2, 0), which sequence 0 writes
    reading = np.array([[0, 2], [2, 3]], np.int32)
    with pytest.raises(AttentionValueError, match="sequence 1 read a slot sequence 0 writes"):
        flash_attn_with_kvcache(q, pages, pages.copy(), k, v, cache_seqlens=seqlens,
                                block_table=reading)  # fmt: skip
    # a shared full prefix page, read by both, each appending into its own page: accepted
    shared = np.array([[0, 2], [0, 3]], np.int32)
    k_pages, v_pages = pages.copy(), randn(rng, 4, 2, 2, 16)
    out = flash_attn_with_kvcache(q, k_pages, v_pages, k, v, cache_seqlens=seqlens,
                                  block_table=shared, causal=True)  # fmt: skip
    for b in range(2):
        keys = np.concatenate([k_pages[0], k_pages[shared[b, 1]][:1]])  # (3, Hkv, D)
        values = np.concatenate([v_pages[0], v_pages[shared[b, 1]][:1]])
        np.testing.assert_array_equal(keys[2], k[b, 0])
        # one query, the last position: causal sees every key
        expect, _ = ref.sequence_attention(
            q[b], keys, values, ref.Rules(None, None, False), 16**-0.5, 0.0, None
        )
        close(out[b], expect, OUT_TOL)


def test_kvcache_writes_reach_a_torch_cache() -> None:
    # a CPU torch tensor's NumPy view is its own memory: the in-place write reaches it
    rng = np.random.default_rng(12)
    k_cache, v_cache = torch.zeros(1, 6, 1, 16), torch.zeros(1, 6, 1, 16)
    k, v = randn(rng, 1, 2, 1, 16), randn(rng, 1, 2, 1, 16)
    flash_attn_with_kvcache(randn(rng, 1, 2, 1, 16), k_cache, v_cache, k, v, cache_seqlens=1)
    np.testing.assert_array_equal(k_cache[0, 1:3].numpy(), k[0])
    np.testing.assert_array_equal(v_cache[0, 1:3].numpy(), v[0])
    with pytest.raises(AttentionDTypeError, match="which converts to a copy"):
        flash_attn_with_kvcache(
            randn(rng, 1, 2, 1, 16), k_cache.tolist(), v_cache, k, v, cache_seqlens=1
        )


@pytest.mark.parametrize("paged_cache", [False, True])
@pytest.mark.parametrize("interleaved", [False, True])
def test_decoding_token_by_token_equals_one_causal_call(
    paged_cache: bool, interleaved: bool
) -> None:
    # Prefill 5 tokens, then decode 6 one at a time, with rotary applied by the kernel;
    # the same as one causal flash_attn_func over the pre-rotated sequence.
    rng = np.random.default_rng(8)
    batch, total, prompt, hq, hkv, dim = 2, 11, 5, 4, 2, 32
    q, k, v = (
        randn(rng, batch, total, hq, dim),
        randn(rng, batch, total, hkv, dim),
        randn(rng, batch, total, hkv, dim),
    )
    cos, sin = rotary_tables(16, 16)
    q_rot, k_rot = np.empty_like(q), np.empty_like(k)
    for b in range(batch):
        for t in range(total):
            for h in range(hq):
                q_rot[b, t, h] = ref.rotate(q[b, t, h], cos, sin, t, interleaved)
            for h in range(hkv):
                k_rot[b, t, h] = ref.rotate(k[b, t, h], cos, sin, t, interleaved)
    full = flash_attn_func(q_rot, k_rot, v, causal=True)
    if paged_cache:
        table = np.array([[3, 0, 5, 1], [2, 6, 4, 7]], np.int32)
        k_cache, v_cache = np.zeros((8, 4, hkv, dim), F32), np.zeros((8, 4, hkv, dim), F32)
        extra: dict[str, Any] = {"block_table": table}
    else:
        k_cache, v_cache = (
            np.zeros((batch, 16, hkv, dim), F32),
            np.zeros((batch, 16, hkv, dim), F32),
        )
        extra = {}
    step = slice(0, prompt)
    seqlens = np.zeros(batch, np.int32)
    common: dict[str, Any] = {
        "rotary_cos": cos,
        "rotary_sin": sin,
        "rotary_interleaved": interleaved,
        "causal": True,
    }
    out = flash_attn_with_kvcache(
        q[:, step],
        k_cache,
        v_cache,
        k[:, step],
        v[:, step],
        cache_seqlens=seqlens,
        **common,
        **extra,
    )
    close(out, full[:, step], OUT_TOL)
    seqlens += prompt
    for t in range(prompt, total):
        step = slice(t, t + 1)
        out = flash_attn_with_kvcache(
            q[:, step],
            k_cache,
            v_cache,
            k[:, step],
            v[:, step],
            cache_seqlens=seqlens,
            **common,
            **extra,
        )
        close(out, full[:, step], OUT_TOL)
        seqlens += 1


def test_kvcache_non_causal_rotates_every_query_at_cache_seqlens() -> None:
    # Not causal, no window: all queries sit at position cache_seqlens (flash-attn's docstring).
    rng = np.random.default_rng(9)
    q, k, v = randn(rng, 1, 3, 1, 16), randn(rng, 1, 3, 1, 16), randn(rng, 1, 3, 1, 16)
    cos, sin = rotary_tables(8, 16)
    kc, vc = np.zeros((1, 8, 1, 16), F32), np.zeros((1, 8, 1, 16), F32)
    out = flash_attn_with_kvcache(q, kc, vc, k, v, cos, sin, cache_seqlens=2)
    q_rot = np.stack([ref.rotate(q[0, i, 0], cos, sin, 2, True) for i in range(3)])[None, :, None]
    plain = flash_attn_func(q_rot.astype(F32), kc[:, :5], vc[:, :5])
    close(out, plain, OUT_TOL)


def construct_local_mask_numpy(
    seqlen_q: int,
    seqlen_k: int,
    window: tuple[int, int],
    key_padding_mask: np.ndarray,
    key_leftpad: np.ndarray | None,
) -> np.ndarray:
    """tests/test_flash_attn.py::construct_local_mask (flash-attn), in NumPy, (B, 1, Sq, Sk)."""
    row = np.arange(seqlen_q)[:, None]
    col: Any = np.arange(seqlen_k)
    if key_leftpad is not None:
        pad = key_leftpad[:, None, None, None]
        col = np.where(col >= pad, col - pad, 2**32)
    sk = key_padding_mask.sum(-1)[:, None, None, None]
    sq = seqlen_q
    if window[0] < 0:
        mask: np.ndarray = col > row + sk - sq + window[1]
        return mask
    both: np.ndarray = (col > np.minimum(row + sk - sq + window[1], sk)) | (
        col < row + sk - sq - window[0]
    )
    return both


def kvcache_attention_ref_numpy(
    q: np.ndarray,
    k_cache: np.ndarray,
    v_cache: np.ndarray,
    key_padding_mask: np.ndarray,
    slopes: np.ndarray | None,
    causal: bool,
    window: tuple[int, int],
    key_leftpad: np.ndarray | None,
) -> np.ndarray:
    """attention_ref with attn_bias_from_alibi_slopes, as test_flash_attn_kvcache calls it."""
    if causal:
        window = (window[0], 0)
    sq, sk_full = q.shape[1], k_cache.shape[1]
    g = q.shape[2] // k_cache.shape[2]
    k, v = np.repeat(k_cache, g, axis=2), np.repeat(v_cache, g, axis=2)
    scores = np.einsum("bthd,bshd->bhts", q / np.sqrt(q.shape[-1]), k)
    scores = np.where(key_padding_mask[:, None, None, :], scores, -np.inf)
    local = None
    if window[0] >= 0 or window[1] >= 0:
        local = construct_local_mask_numpy(sq, sk_full, window, key_padding_mask, key_leftpad)
        scores = np.where(local, -np.inf, scores)
    if slopes is not None:
        sl = slopes[:, :, None, None]
        if causal:
            bias = np.arange(-sk_full + 1, 1) * sl
        else:
            row, col = np.arange(sq)[:, None], np.arange(sk_full)
            if key_leftpad is not None:
                pad = key_leftpad[:, None, None, None]
                col = np.where(col >= pad, col - pad, 2**32)
            sk = key_padding_mask.sum(-1)[:, None, None, None]
            bias = -sl * np.abs(row + sk - sq - col)
        scores = scores + bias
    with np.errstate(invalid="ignore"):
        e = np.exp(scores - scores.max(-1, keepdims=True))
        attn = e / e.sum(-1, keepdims=True)
    if local is not None:
        attn = np.where(local.all(-1, keepdims=True), 0.0, attn)
    out: np.ndarray = np.einsum("bhts,bshd->bthd", attn, v)
    return out


@pytest.mark.parametrize("seed", range(16))
def test_kvcache_matches_flash_attn_test_oracle(seed: int) -> None:
    # test_flash_attn_kvcache's recipe: random cache_seqlens and left padding, windows drawn
    # as randint(0, seqlen_k, (2,)), ALiBi, rotary of a random angle table; attention_ref on
    # the cache updated by hand.
    rng = np.random.default_rng(600 + seed)
    batch, capacity, hq, dim = 2, 16, 6, 32
    hkv = int(rng.choice([6, 3, 1]))
    sq = int(rng.choice([1, 3])) if seed < 8 else 3
    new = sq if rng.random() < 0.5 else int(rng.integers(1, sq + 1))
    causal, local = bool(seed % 2), bool(seed // 2 % 2)
    rotary_dim = int(rng.choice([0, 16, 32])) if seed < 8 else 16
    left, right = (int(w) for w in rng.integers(0, capacity, 2))
    window = (left, right) if local else (-1, -1)
    q = randn(rng, batch, sq, hq, dim, dtype=np.float64)
    k, v = (
        randn(rng, batch, new, hkv, dim, dtype=np.float64),
        randn(rng, batch, new, hkv, dim, dtype=np.float64),
    )
    k_cache = randn(rng, batch, capacity, hkv, dim, dtype=np.float64)
    v_cache = randn(rng, batch, capacity, hkv, dim, dtype=np.float64)
    limit = capacity - (sq if (causal or local) and rotary_dim else new) + 1
    seqlens = rng.integers(0, limit, batch).astype(np.int32)
    leftpad = np.array([rng.integers(0, n) if n else 0 for n in seqlens], np.int32)
    slopes = (rng.random((batch, hq)) * 0.3).astype(F32) if seed % 8 >= 4 else None
    arange = np.arange(capacity)[None, :]
    key_padding_mask = (arange < seqlens[:, None] + new) & (arange >= leftpad[:, None])
    q_ro, k_ro, cos, sin = q, k, None, None
    if rotary_dim:
        angle = rng.random((capacity, rotary_dim // 2)) * 2 * np.pi
        cos, sin = np.cos(angle), np.sin(angle)
        moving = causal or local
        inter = bool(seed % 3)

        def turn(x: np.ndarray, pos: int) -> np.ndarray:
            return np.array([ref.rotate(x[h], cos, sin, pos, inter) for h in range(len(x))])

        q_ro = np.array(
            [[turn(q[b, i], int(seqlens[b]) + (i if moving else 0)) for i in range(sq)]
             for b in range(batch)]
        )  # fmt: skip
        k_ro = np.array(
            [[turn(k[b, j], int(seqlens[b]) + j) for j in range(new)] for b in range(batch)]
        )
    k_ref, v_ref = k_cache.copy(), v_cache.copy()
    for b in range(batch):
        k_ref[b, seqlens[b] : seqlens[b] + new] = k_ro[b]
        v_ref[b, seqlens[b] : seqlens[b] + new] = v[b]
    want = kvcache_attention_ref_numpy(
        q_ro, k_ref, v_ref, key_padding_mask, slopes, causal, window, leftpad
    )
    out = flash_attn_with_kvcache(
        q, k_cache, v_cache, k, v, cos, sin, cache_seqlens=seqlens, cache_leftpad=leftpad,
        causal=causal, window_size=window, rotary_interleaved=bool(seed % 3),
        alibi_slopes=slopes,
    )  # fmt: skip
    np.testing.assert_allclose(out, want, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(k_cache, k_ref, rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------- named errors


def test_cu_seqlens_errors() -> None:
    q = np.ones((6, 2, 8), F32)
    good = np.array([0, 2, 6], np.int32)
    with pytest.raises(
        AttentionDTypeError, match=r"cu_seqlens_q should have dtype int32.*int64.*RuntimeError"
    ):
        flash_attn_varlen_func(q, q, q, good.astype(np.int64), good, 4, 4)
    with pytest.raises(
        AttentionValueError, match=r"cu_seqlens_q\[0\] should be 0.*cu_seqlens_without_leading_zero"
    ):
        flash_attn_varlen_func(q, q, q, np.array([1, 2, 6], np.int32), good, 4, 4)
    with pytest.raises(
        AttentionValueError, match=r"non-decreasing.*cu_seqlens_k\[1\]=4 > cu_seqlens_k\[2\]=2"
    ):
        flash_attn_varlen_func(q, q, q, good, np.array([0, 4, 2], np.int32), 4, 4)
    with pytest.raises(
        AttentionValueError, match=r"cu_seqlens_k\[-1\] should be <= total_k = k.shape\[0\] = 6"
    ):
        flash_attn_varlen_func(q, q, q, good, np.array([0, 2, 7], np.int32), 5, 5)
    with pytest.raises(AttentionShapeError, match="B \\+ 1 entries: but got 3 and 4"):
        flash_attn_varlen_func(q, q, q, good, np.array([0, 2, 4, 6], np.int32), 4, 4)
    with pytest.raises(AttentionShapeError, match=r"\(B \+ 1,\) with B >= 1"):
        flash_attn_varlen_func(q, q, q, np.array([0], np.int32), np.array([0], np.int32), 4, 4)
    with pytest.raises(
        AttentionValueError, match="max_seqlen_q should be >= the longest query sequence \\(4\\)"
    ):
        flash_attn_varlen_func(q, q, q, good, good, 3, 4)


def test_head_and_shape_errors() -> None:
    q, kv = np.ones((1, 2, 3, 8), F32), np.ones((1, 2, 2, 8), F32)
    with pytest.raises(
        AttentionShapeError, match="Hq=3 should be a multiple of key/value heads Hkv=2"
    ):
        flash_attn_func(q, kv, kv)
    with pytest.raises(AttentionShapeError, match=r"q shape should be \(B, Sq, Hq, D\)"):
        flash_attn_func(q[0], kv, kv)
    with pytest.raises(
        AttentionDTypeError, match="k should have q's dtype float32: but got float64"
    ):
        flash_attn_func(q, kv.astype(np.float64), kv)
    with pytest.raises(AttentionDTypeError, match="alibi_slopes should be float32"):
        flash_attn_func(q, q, q, alibi_slopes=np.ones(3))
    with pytest.raises(AttentionValueError, match=r"dropout_p should be 0\.0 here"):
        flash_attn_func(q, q, q, dropout_p=0.1)
    with pytest.raises(AttentionValueError, match="window_size should be a pair of ints"):
        flash_attn_func(q, q, q, window_size=(None, 0))  # type: ignore[arg-type]


def test_paged_errors() -> None:
    q = np.ones((2, 2, 8), F32)
    pages = np.ones((4, 2, 2, 8), F32)
    cu_q, cu_k = np.array([0, 1, 2], np.int32), np.array([0, 3, 6], np.int32)
    with pytest.raises(
        AttentionValueError,
        match=r"block_table\[1\] should hold page indices in \[0, num_blocks\).*\[1, 4\]",
    ):
        flash_attn_varlen_func(
            q, pages, pages, cu_q, cu_k, 1, 3, block_table=np.array([[0, 2], [1, 4]], np.int32)
        )
    with pytest.raises(
        AttentionValueError,
        match=r"sequence 0.s keys should fit its block_table row of 1 pages of 2 = 2 slots: but "
        r"got 3",
    ):
        flash_attn_varlen_func(
            q, pages, pages, cu_q, cu_k, 1, 3, block_table=np.array([[0], [1]], np.int32)
        )
    with pytest.raises(AttentionDTypeError, match="block_table should have dtype int32"):
        flash_attn_varlen_func(
            q, pages, pages, cu_q, cu_k, 1, 3, block_table=np.array([[0, 2], [1, 3]])
        )
    # unused trailing entries are not read, as in flash-attn: -1 padding is fine
    flash_attn_varlen_func(
        q,
        pages,
        pages,
        cu_q,
        np.array([0, 2, 4], np.int32),
        1,
        2,
        block_table=np.array([[0, -1], [1, -1]], np.int32),
    )


def test_kvcache_errors() -> None:
    q = np.ones((2, 1, 2, 16), F32)
    kc, new = np.zeros((2, 4, 2, 16), F32), np.ones((2, 2, 2, 16), F32)
    with pytest.raises(
        AttentionValueError,
        match=r"cache_seqlens\[1\] \+ Snew should lie in \[0, 4\].*=3 with Snew=2",
    ):
        flash_attn_with_kvcache(
            q, kc, kc.copy(), new, new, cache_seqlens=np.array([1, 3], np.int32)
        )
    with pytest.raises(
        AttentionDTypeError,
        match=r"cache_seqlens should have dtype int32: but got int64.*'seqlens_k must have dtype",
    ):
        flash_attn_with_kvcache(q, kc, kc.copy(), new, new, cache_seqlens=np.array([1, 1]))
    with pytest.raises(AttentionValueError, match="cache_seqlens should be given with new keys k"):
        flash_attn_with_kvcache(q, kc, kc.copy(), new, new)
    with pytest.raises(
        AttentionValueError, match=r"cache_batch_idx should hold distinct rows .* but got \[1, 1\]"
    ):
        flash_attn_with_kvcache(
            q, kc, kc.copy(), new, new, cache_seqlens=0, cache_batch_idx=np.array([1, 1], np.int32)
        )
    with pytest.raises(AttentionValueError, match=r"cache_batch_idx should lie in \[0, B_cache\)"):
        flash_attn_with_kvcache(q, kc, kc.copy(), cache_batch_idx=np.array([0, 2], np.int32))
    with pytest.raises(AttentionDTypeError, match=r"k_cache should be a numpy\.ndarray"):
        flash_attn_with_kvcache(q, kc.tolist(), kc.copy(), new, new, cache_seqlens=0)
    cos, sin = rotary_tables(4, 16)
    with pytest.raises(
        AttentionValueError, match="rotary_cos/rotary_sin should come with new keys k"
    ):
        flash_attn_with_kvcache(q, kc, kc.copy(), rotary_cos=cos, rotary_sin=sin)
    cos8, sin8 = rotary_tables(4, 8)
    with pytest.raises(AttentionShapeError, match="multiple of 16"):
        flash_attn_with_kvcache(q, kc, kc.copy(), new, new, cos8, sin8, cache_seqlens=0)
    with pytest.raises(
        AttentionValueError, match="cache_batch_idx should be None with a block_table"
    ):
        flash_attn_with_kvcache(
            q,
            kc,
            kc.copy(),
            block_table=np.zeros((2, 1), np.int32),
            cache_batch_idx=np.array([0, 1], np.int32),
        )
    with pytest.raises(
        AttentionValueError, match=r"cache_leftpad should lie in \[0, cache_seqlens\[b\]\]"
    ):
        flash_attn_with_kvcache(
            q,
            kc,
            kc.copy(),
            cache_seqlens=np.array([1, 1], np.int32),
            cache_leftpad=np.array([2, 0], np.int32),
        )


def test_errors_point_at_catalogue_cases_that_exist() -> None:
    # the adapter's messages end with "Explained by catalogue case <id>"
    named = {
        "cu_seqlens_without_leading_zero", "kv_cache_positions_out_of_step",
        "position_table_too_short", "gqa_query_heads_not_a_multiple",
    }  # fmt: skip
    source = "".join(
        (Path(__file__).resolve().parent.parent / "refattn" / "compat" / name).read_text()
        for name in ("flash_attn.py", "_flash_checks.py")
    )
    assert named == set(re.findall(r'see\("(\w+)"\)', source))
    assert named <= {case.id for case in all_cases()}


# ---------------------------------------------------------------- the layouts page's code


@pytest.mark.parametrize("snippet", ["layouts_numpy.py", "layouts_torch.py"])
def test_layouts_page_snippets_run(snippet: str) -> None:
    # docs/layouts.md includes these files; each asserts what the page says about it
    path = Path(__file__).resolve().parent.parent / "docs" / "snippets" / snippet
    runpy.run_path(str(path), run_name="__main__")


def _pictures_hook() -> Any:
    path = Path(__file__).resolve().parent.parent / "docs" / "hooks" / "layouts_pictures.py"
    spec = importlib.util.spec_from_file_location("layouts_pictures", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_layouts_pictures_show_what_the_page_says() -> None:
    hook = _pictures_hook()
    seen = hook.packed_weights([3, 1, 0, 4], [3, 1, 0, 4], causal=True) > 0
    segment = np.repeat(np.arange(4), [3, 1, 0, 4])
    block_causal = (segment[:, None] == segment[None, :]) & np.tri(8, dtype=bool)
    np.testing.assert_array_equal(seen, block_causal)
    assert hook.rotary_pairs(8, 6, interleaved=False) == [3, 4, 5, 0, 1, 2, 6, 7]
    assert hook.rotary_pairs(8, 6, interleaved=True) == [1, 0, 3, 2, 5, 4, 6, 7]
    for draw in (hook.packed_svg, hook.paged_svg, hook.rotary_svg):
        root = ElementTree.fromstring(draw())  # well-formed SVG
        assert root.tag == "{http://www.w3.org/2000/svg}svg"
    paged = hook.paged_svg()
    # block_table [[4, 1, 6], [0, 3, -1]], pages of 2: the gathered keys' page·slot labels
    for label in ("4·0", "4·1", "1·0", "1·1", "6·0", "0·0", "0·1", "3·0"):
        assert f">{label}<" in paged


# Parameter names and defaults of flash-attn 2's Python interface, copied from
# flash_attn/flash_attn_interface.py (Dao-AILab/flash-attention).
FLASH_SIGNATURES: dict[str, list[tuple[str, Any]]] = {
    "flash_attn_func": [
        ("q", None), ("k", None), ("v", None), ("dropout_p", 0.0), ("softmax_scale", None),
        ("causal", False), ("window_size", (-1, -1)), ("softcap", 0.0),
        ("alibi_slopes", None), ("deterministic", False), ("return_attn_probs", False),
    ],
    "flash_attn_varlen_func": [
        ("q", None), ("k", None), ("v", None), ("cu_seqlens_q", None), ("cu_seqlens_k", None),
        ("max_seqlen_q", None), ("max_seqlen_k", None), ("dropout_p", 0.0),
        ("softmax_scale", None), ("causal", False), ("window_size", (-1, -1)),
        ("softcap", 0.0), ("alibi_slopes", None), ("deterministic", False),
        ("return_attn_probs", False), ("block_table", None),
    ],
    "flash_attn_qkvpacked_func": [
        ("qkv", None), ("dropout_p", 0.0), ("softmax_scale", None), ("causal", False),
        ("window_size", (-1, -1)), ("softcap", 0.0), ("alibi_slopes", None),
        ("deterministic", False), ("return_attn_probs", False),
    ],
    "flash_attn_kvpacked_func": [
        ("q", None), ("kv", None), ("dropout_p", 0.0), ("softmax_scale", None),
        ("causal", False), ("window_size", (-1, -1)), ("softcap", 0.0),
        ("alibi_slopes", None), ("deterministic", False), ("return_attn_probs", False),
    ],
    "flash_attn_varlen_qkvpacked_func": [
        ("qkv", None), ("cu_seqlens", None), ("max_seqlen", None), ("dropout_p", 0.0),
        ("softmax_scale", None), ("causal", False), ("window_size", (-1, -1)),
        ("softcap", 0.0), ("alibi_slopes", None), ("deterministic", False),
        ("return_attn_probs", False),
    ],
    "flash_attn_varlen_kvpacked_func": [
        ("q", None), ("kv", None), ("cu_seqlens_q", None), ("cu_seqlens_k", None),
        ("max_seqlen_q", None), ("max_seqlen_k", None), ("dropout_p", 0.0),
        ("softmax_scale", None), ("causal", False), ("window_size", (-1, -1)),
        ("softcap", 0.0), ("alibi_slopes", None), ("deterministic", False),
        ("return_attn_probs", False),
    ],
    "flash_attn_with_kvcache": [
        ("q", None), ("k_cache", None), ("v_cache", None), ("k", None), ("v", None),
        ("rotary_cos", None), ("rotary_sin", None), ("cache_seqlens", None),
        ("cache_batch_idx", None), ("cache_leftpad", None), ("block_table", None),
        ("softmax_scale", None), ("causal", False), ("window_size", (-1, -1)),
        ("softcap", 0.0), ("rotary_interleaved", True), ("alibi_slopes", None),
        ("num_splits", 0), ("return_softmax_lse", False),
    ],
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(FLASH_SIGNATURES))
def test_signatures_are_flash_attns(name: str) -> None:
    function: Any = {
        "flash_attn_func": flash_attn_func,
        "flash_attn_qkvpacked_func": flash_attn_qkvpacked_func,
        "flash_attn_kvpacked_func": flash_attn_kvpacked_func,
        "flash_attn_varlen_func": flash_attn_varlen_func,
        "flash_attn_varlen_qkvpacked_func": flash_attn_varlen_qkvpacked_func,
        "flash_attn_varlen_kvpacked_func": flash_attn_varlen_kvpacked_func,
        "flash_attn_with_kvcache": flash_attn_with_kvcache,
    }[name]
    params = list(inspect.signature(function).parameters.values())
    got = [(p.name, None if p.default is inspect.Parameter.empty else p.default) for p in params]
    assert got == FLASH_SIGNATURES[name]
    assert all(p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD for p in params)
