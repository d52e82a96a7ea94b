# mypy: disable-error-code="arg-type, call-overload, call-arg, typeddict-item, misc"
"""Bad input on every public entry point: a named refattn error whose message says it all.

Each row of ``BAD_CALLS`` is one bad call. The test asserts the error class, that it is a
:class:`~refattn.errors.RefattnError`, and that the one message holds the argument's name
as the caller spelled it, what it got (value, shape or dtype), what was expected ("should"
or "expected") and, *after* the "got" part, a fix: an imperative such as "pass", "use",
"call", "convert". A message that only restates the problem fails.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import refattn
import refattn.checks
from catalogue import all_cases
from refattn import KVCache, attention, attention_backward, masks, multi_head_attention
from refattn.compat import jax as cjax
from refattn.compat import torch as ctorch
from refattn.errors import (
    AttentionArgumentError,
    AttentionDTypeError,
    AttentionMemoryError,
    AttentionShapeError,
    AttentionValueError,
    RefattnError,
)
from refattn.multihead import merge_heads, project_heads

RNG = np.random.default_rng(0)
Q = RNG.standard_normal((1, 2, 4, 8)).astype(np.float32)  # (B, H, L, D), the shape
K = RNG.standard_normal((1, 2, 4, 8)).astype(np.float32)
V = RNG.standard_normal((1, 2, 4, 8)).astype(np.float32)
X = RNG.standard_normal((2, 5, 8)).astype(np.float32)  # (B, L, E)
W = RNG.standard_normal((24, 8)).astype(np.float32)  # packed (3E, E)
XS = RNG.standard_normal((5, 2, 8)).astype(np.float32)  # (L, N, E), torch MHA layout
QJ = Q.transpose(0, 2, 1, 3)  # (B, T, N, H), JAX layout

FIX_WORDS = (
    "pass",
    "use",
    "call",
    "set",
    "convert",
    "cast",
    "drop",
    "split",
    "build",
    "check",
    "add",
    "reshape",
    "rename",
    "choose",
    "skip",
    "append",
    "give",
    "project",
    "spell",
    "slice",
    "start",
    "merge",
    "transpose",
)


def _mha_forward(**changes: Any) -> Any:
    args: dict[str, Any] = {
        "query": XS,
        "key": XS,
        "value": XS,
        "embed_dim_to_check": 8,
        "num_heads": 2,
        "in_proj_weight": W,
        "in_proj_bias": None,
        "bias_k": None,
        "bias_v": None,
        "add_zero_attn": False,
        "dropout_p": 0.0,
        "out_proj_weight": W[:8],
        "out_proj_bias": None,
        **changes,
    }
    return ctorch.multi_head_attention_forward(**args)


def _cache() -> KVCache:
    return KVCache(K, V)


def _mha(**changes: Any) -> Any:
    kwargs: dict[str, Any] = {"num_heads": 2, "in_proj_weight": W, **changes}
    return multi_head_attention(X, **kwargs)


# (id, call, error class, argument name as the caller spelled it, what it got)
Row = tuple[str, Callable[[], object], type[RefattnError], str, str]
BAD_CALLS: list[Row] = [
    # --- refattn.attention: silent wrong results before ---
    (
        "longdouble",
        lambda: attention(*(x.astype(np.longdouble) for x in (Q, K, V))),
        AttentionDTypeError,
        "query",
        "float128",
    ),
    (
        "masked-array",
        lambda: attention(np.ma.masked_array(Q, Q > 1), K, V),
        AttentionDTypeError,
        "query",
        "np.ma.MaskedArray",
    ),
    (
        "complex-scale",
        lambda: attention(Q, K, V, scale=1 + 2j),
        AttentionValueError,
        "scale",
        "1+2j",
    ),
    (
        "numpy-complex-scale",
        lambda: attention(Q, K, V, scale=np.complex128(1 + 2j)),
        AttentionValueError,
        "scale",
        "complex128",
    ),
    (
        "alibi-nan",
        lambda: attention(Q, K, V, alibi_slopes=np.array([np.nan, 0.5])),
        AttentionValueError,
        "alibi_slopes",
        "nan",
    ),
    (
        "alibi-inf",
        lambda: attention(Q, K, V, alibi_slopes=np.array([np.inf, 0.5])),
        AttentionValueError,
        "alibi_slopes",
        "inf",
    ),
    # --- refattn.attention: raw exceptions before ---
    (
        "ragged-list",
        lambda: attention([[[[1.0, 2.0], [3.0]]]], K, V),
        AttentionShapeError,
        "query",
        "list",
    ),
    (
        "S0-uniform",
        lambda: attention(Q, K[:, :, :0], V[:, :, :0], fully_masked="uniform"),
        AttentionValueError,
        "fully_masked",
        "S=0",
    ),
    ("zero-heads", lambda: attention(Q[:, :0], K, V), AttentionShapeError, "query", "Hq=0"),
    (
        "object-query",
        lambda: attention(None, K, V),
        AttentionDTypeError,
        "query",
        "object",
    ),
    (
        "bool-return-weights",
        lambda: attention(Q, K, V, return_weights="yes"),
        AttentionValueError,
        "return_weights",
        "'yes'",
    ),
    # --- messages that gave no fix before ---
    (
        "softcap-zero",
        lambda: attention(Q, K, V, softcap=0.0),
        AttentionValueError,
        "softcap",
        "0.0",
    ),
    (
        "softcap-string",
        lambda: attention(Q, K, V, softcap="50"),
        AttentionValueError,
        "softcap",
        "'50'",
    ),
    (
        "scale-nan",
        lambda: attention(Q, K, V, scale=float("nan")),
        AttentionValueError,
        "scale",
        "nan",
    ),
    (
        "memory-budget-negative",
        lambda: attention(Q, K, V, memory_budget=-1),
        AttentionValueError,
        "memory_budget",
        "-1",
    ),
    (
        "fully-masked-unknown",
        lambda: attention(Q, K, V, fully_masked="ignore"),
        AttentionValueError,
        "fully_masked",
        "'ignore'",
    ),
    (
        "fully-masked-array",
        lambda: attention(Q, K, V, fully_masked=np.array([1, 2])),
        AttentionValueError,
        "fully_masked",
        "array([1, 2])",
    ),
    (
        "alibi-shape",
        lambda: attention(Q, K, V, alibi_slopes=np.ones(3)),
        AttentionShapeError,
        "alibi_slopes",
        "(3,)",
    ),
    (
        "alibi-int",
        lambda: attention(Q, K, V, alibi_slopes=np.array([1, 2])),
        AttentionDTypeError,
        "alibi_slopes",
        "int64",
    ),
    (
        "window-nan",
        lambda: attention(Q, K, V, window=(float("nan"), 0)),
        AttentionValueError,
        "window left",
        "nan",
    ),
    (
        "window-float",
        lambda: attention(Q, K, V, window=(1.5, 0)),
        AttentionValueError,
        "window left",
        "1.5",
    ),
    (
        "window-alignment-alone",
        lambda: attention(Q, K, V, window_alignment="top_left"),
        AttentionValueError,
        "window_alignment",
        "'top_left'",
    ),
    (
        "causal-array",
        lambda: attention(Q, K, V, causal=np.array([1, 2])),
        AttentionValueError,
        "causal",
        "array([1, 2])",
    ),
    (
        "dropout-string",
        lambda: attention(Q, K, V, dropout_p="0.1"),
        AttentionValueError,
        "dropout_p",
        "'0.1'",
    ),
    (
        "rng-seed",
        lambda: attention(Q, K, V, dropout_p=0.1, rng=0),
        AttentionValueError,
        "rng",
        "0",
    ),
    (
        "rng-and-keep",
        lambda: attention(
            Q,
            K,
            V,
            dropout_p=0.1,
            rng=np.random.default_rng(0),
            dropout_keep=np.ones((4, 4), bool),
        ),
        AttentionValueError,
        "rng",
        "Generator",
    ),
    (
        "dropout-keep-int",
        lambda: attention(Q, K, V, dropout_p=0.1, dropout_keep=np.ones((4, 4), int)),
        AttentionDTypeError,
        "dropout_keep",
        "int64",
    ),
    (
        "bias-nan",
        lambda: attention(Q, K, V, bias=np.full((4, 4), np.nan, np.float32)),
        AttentionValueError,
        "bias",
        "16 NaN",
    ),
    (
        "lengths-ragged",
        lambda: attention(Q, K, V, key_lengths=[[1], [1, 2]]),
        AttentionShapeError,
        "key_lengths",
        "list",
    ),
    (
        "lengths-float",
        lambda: attention(Q, K, V, key_lengths=[1.5]),
        AttentionDTypeError,
        "key_lengths",
        "[1.5]",
    ),
    (
        "value-heads",
        lambda: attention(Q, K, V[:, :1]),
        AttentionShapeError,
        "value",
        "(1, 1, 4, 8)",
    ),
    # --- keywords that do not apply ---
    (
        "backward-return-weights",
        lambda: attention_backward(Q, Q, K, V, return_weights=True),
        AttentionArgumentError,
        "return_weights",
        "True",
    ),
    (
        "backward-typo",
        lambda: attention_backward(Q, Q, K, V, casual="top_left"),
        AttentionArgumentError,
        "casual",
        "'top_left'",
    ),
    (
        "mha-return-lse",
        lambda: _mha(return_lse=True),
        AttentionArgumentError,
        "return_lse",
        "True",
    ),
    (
        "cache-attend-return-weights",
        lambda: _cache().attend(Q[:, :, :1], return_weights=True),
        AttentionArgumentError,
        "return_weights",
        "True",
    ),
    # --- multi-head ---
    ("mha-num-heads", lambda: _mha(num_heads=0), AttentionValueError, "num_heads", "0"),
    ("mha-num-heads-bool", lambda: _mha(num_heads=True), AttentionValueError, "num_heads", "True"),
    (
        "mha-longdouble",
        lambda: multi_head_attention(
            X.astype(np.longdouble), num_heads=2, in_proj_weight=W.astype(np.longdouble)
        ),
        AttentionDTypeError,
        "query",
        "float128",
    ),
    (
        "mha-masked",
        lambda: multi_head_attention(np.ma.masked_array(X), num_heads=2, in_proj_weight=W),
        AttentionDTypeError,
        "query",
        "MaskedArray",
    ),
    (
        "mha-out-bias-alone",
        lambda: _mha(out_proj_bias=np.zeros(8, np.float32)),
        AttentionValueError,
        "out_proj_bias",
        "(8,)",
    ),
    (
        "mha-in-proj-bias",
        lambda: _mha(in_proj_bias=np.zeros(5, np.float32)),
        AttentionShapeError,
        "in_proj_bias",
        "(5,)",
    ),
    (
        "project-heads-bias",
        lambda: project_heads(X, W[:8], np.zeros(3, np.float32), num_heads=2),
        AttentionShapeError,
        "x bias",
        "(3,)",
    ),
    (
        "merge-heads-rank",
        lambda: merge_heads(np.zeros((4, 8), np.float32)),
        AttentionShapeError,
        "heads",
        "(4, 8)",
    ),
    (
        "merge-heads-bias",
        lambda: merge_heads(Q, np.ones((3, 16), np.float32), np.zeros(2, np.float32)),
        AttentionShapeError,
        "out_proj_bias",
        "(2,)",
    ),
    # --- KV cache ---
    (
        "cache-mixed-dtype",
        lambda: KVCache(K.astype(np.float16), V),
        AttentionDTypeError,
        "value",
        "float32",
    ),
    (
        "cache-capacity-float",
        lambda: KVCache(K, V, capacity=10.5),
        AttentionValueError,
        "capacity",
        "10.5",
    ),
    (
        "cache-capacity-huge",
        lambda: KVCache(K, V, capacity=10**12),
        AttentionMemoryError,
        "capacity",
        "1000000000000",
    ),
    (
        "cache-step-causal",
        lambda: _cache().step(Q[:, :, :1], K[:, :, :1], V[:, :, :1], causal="top_left"),
        AttentionValueError,
        "causal",
        "'top_left'",
    ),
    (
        "cache-append-dv",
        lambda: _cache().append(K[:, :, :1], V[:, :, :1, :3]),
        AttentionShapeError,
        "value",
        "(1, 2, 1, 3)",
    ),
    (
        "cache-longdouble",
        lambda: KVCache(K.astype(np.longdouble), V.astype(np.longdouble)),
        AttentionDTypeError,
        "key",
        "float128",
    ),
    # --- masks ---
    (
        "window-mask-nan",
        lambda: masks.window(4, 4, float("nan"), 0, "top_left"),
        AttentionValueError,
        "left",
        "nan",
    ),
    (
        "window-mask-float",
        lambda: masks.window(4, 4, 1.5, 0, "top_left"),
        AttentionValueError,
        "left",
        "1.5",
    ),
    (
        "window-mask-string",
        lambda: masks.window(4, 4, "2", 0, "top_left"),
        AttentionValueError,
        "left",
        "'2'",
    ),
    (
        "padding-float-length",
        lambda: masks.padding([1, 2], 2.5),
        AttentionValueError,
        "length_k",
        "2.5",
    ),
    (
        "padding-float-lengths",
        lambda: masks.padding([1.0, 2.0], 3),
        AttentionValueError,
        "lengths",
        "float64",
    ),
    (
        "padding-too-long",
        lambda: masks.padding([1, 5], 3),
        AttentionValueError,
        "lengths",
        "[1, 5]",
    ),
    (
        "to-additive-int",
        lambda: masks.to_additive(np.ones(3, bool), dtype=np.int32),
        AttentionDTypeError,
        "dtype",
        "int32",
    ),
    (
        "to-additive-longdouble",
        lambda: masks.to_additive(np.ones(3, bool), dtype=np.longdouble),
        AttentionDTypeError,
        "dtype",
        "longdouble",
    ),
    (
        "to-additive-junk",
        lambda: masks.to_additive(np.ones(3, bool), dtype="junk"),
        AttentionDTypeError,
        "dtype",
        "'junk'",
    ),
    (
        "causal-huge",
        lambda: masks.causal(10**7, 10**7, "top_left"),
        AttentionMemoryError,
        "masks.causal",
        "10000000",
    ),
    (
        "causal-size-float",
        lambda: masks.causal(4.0, 4, "top_left"),
        AttentionValueError,
        "length_q",
        "4.0",
    ),
    (
        "causal-alignment",
        lambda: masks.causal(4, 4, "bottom"),
        AttentionValueError,
        "alignment",
        "'bottom'",
    ),
    (
        "torch-attn-mask-heads",
        lambda: masks.from_torch_attn_mask(np.zeros((4, 3, 3), bool), num_heads=-2),
        AttentionValueError,
        "num_heads",
        "-2",
    ),
    (
        "torch-attn-mask-no-heads",
        lambda: masks.from_torch_attn_mask(np.zeros((4, 3, 3), bool)),
        AttentionShapeError,
        "attn_mask",
        "(4, 3, 3)",
    ),
    (
        "key-padding-int",
        lambda: masks.from_torch_key_padding_mask(np.zeros((2, 3), int)),
        AttentionValueError,
        "key_padding_mask",
        "int64",
    ),
    (
        "from-additive-nan",
        lambda: masks.from_additive(np.array([0.0, np.nan])),
        AttentionValueError,
        "mask",
        "1 NaN",
    ),
    (
        "from-additive-bias",
        lambda: masks.from_additive(np.array([0.0, 0.5])),
        AttentionValueError,
        "mask",
        "0.5",
    ),
    (
        "from-flash-padding",
        lambda: masks.from_flash_padding([[1, 2]]),
        AttentionValueError,
        "attention_mask",
        "(1, 2)",
    ),
    (
        "combine-shapes",
        lambda: masks.combine(np.ones((2, 3), bool), np.ones((4, 5), bool)),
        AttentionShapeError,
        "masks[1]",
        "(4, 5)",
    ),
    (
        "render-rank",
        lambda: masks.render(np.ones((1, 2, 2), bool)),
        AttentionShapeError,
        "mask",
        "(1, 2, 2)",
    ),
    (
        "mask-masked-array",
        lambda: masks.combine(np.ma.masked_array(np.ones(3, bool))),
        AttentionDTypeError,
        "masks[0]",
        "MaskedArray",
    ),
    (
        "combine-huge",
        lambda: masks.combine(np.ones((10**7, 1), bool), np.ones((1, 10**7), bool)),
        AttentionMemoryError,
        "masks.combine",
        "(10000000, 10000000)",
    ),
    (
        "to-additive-huge",
        lambda: masks.to_additive(np.broadcast_to(True, (10**7, 10**7))),
        AttentionMemoryError,
        "masks.to_additive",
        "(10000000, 10000000)",
    ),
    (
        "padding-huge",
        lambda: masks.padding([1], 10**13),
        AttentionMemoryError,
        "masks.padding",
        "10000000000000",
    ),
    (
        "check-finite-strings",
        lambda: refattn.checks.check_finite(np.array(["a"])),
        AttentionDTypeError,
        "output",
        "<U1",
    ),
    (
        "check-no-weight-mask-shape",
        lambda: refattn.checks.check_no_weight_on_masked(np.ones((2, 3)), np.ones((4,), bool)),
        AttentionShapeError,
        "attend_mask",
        "(4,)",
    ),
    (
        "check-close-ragged",
        lambda: refattn.checks.check_close([[1.0], [1.0, 2.0]], np.ones(2)),
        AttentionShapeError,
        "output",
        "list",
    ),
    (
        "check-rows-rank",
        lambda: refattn.checks.check_rows_sum_to_one(np.ones(3)),
        AttentionShapeError,
        "weights",
        "(3,)",
    ),
    (
        "check-rows-atol-nan",
        lambda: refattn.checks.check_rows_sum_to_one(np.ones((1, 1)), atol=float("nan")),
        AttentionValueError,
        "atol",
        "nan",
    ),
    (
        "check-close-rtol-string",
        lambda: refattn.checks.check_close(np.ones(2), np.ones(2), rtol="1e-5"),
        AttentionValueError,
        "rtol",
        "'1e-5'",
    ),
    # --- torch adapters ---
    (
        "mha-kpm-transposed",
        lambda: _mha_forward(key_padding_mask=np.zeros((5, 2), bool)),
        AttentionShapeError,
        "key_padding_mask",
        "(5, 2)",
    ),
    (
        "mha-kpm-wrong-size",
        lambda: _mha_forward(key_padding_mask=np.zeros((2, 3), bool)),
        AttentionShapeError,
        "key_padding_mask",
        "(2, 3)",
    ),
    (
        "mha-kpm-nan",
        lambda: _mha_forward(
            key_padding_mask=np.where(np.eye(2, 5) > 0, np.nan, 0.0).astype(np.float32)
        ),
        AttentionValueError,
        "key_padding_mask",
        "2 NaN",
    ),
    (
        "mha-attn-mask-inf",
        lambda: _mha_forward(attn_mask=np.full((5, 5), np.inf, np.float32)),
        AttentionValueError,
        "attn_mask",
        "25 +inf",
    ),
    (
        "mha-out-proj-none",
        lambda: _mha_forward(out_proj_weight=None),
        AttentionValueError,
        "out_proj_weight",
        "None",
    ),
    (
        "mha-num-heads-negative",
        lambda: _mha_forward(num_heads=-2),
        AttentionValueError,
        "num_heads",
        "-2",
    ),
    (
        "mha-num-heads-divide",
        lambda: _mha_forward(num_heads=3),
        AttentionShapeError,
        "num_heads",
        "3",
    ),
    (
        "mha-dropout-string",
        lambda: _mha_forward(dropout_p="0.1"),
        AttentionValueError,
        "dropout_p",
        "'0.1'",
    ),
    (
        "mha-need-weights-array",
        lambda: _mha_forward(need_weights=np.ones(3)),
        AttentionValueError,
        "need_weights",
        "array",
    ),
    (
        "mha-static-k",
        lambda: _mha_forward(static_k=np.zeros((3, 5, 4), np.float32)),
        AttentionShapeError,
        "static_k",
        "(3, 5, 4)",
    ),
    (
        "mha-static-k-length",
        lambda: _mha_forward(static_k=np.zeros((4, 7, 4), np.float32)),
        AttentionShapeError,
        "static_k",
        "length 7",
    ),
    (
        "mha-bias-k-alone",
        lambda: _mha_forward(bias_k=np.zeros((1, 1, 8), np.float32)),
        AttentionValueError,
        "bias_v",
        "bias_k",
    ),
    (
        "sdpa-attn-mask-nan",
        lambda: ctorch.scaled_dot_product_attention(
            Q, K, V, attn_mask=np.full((4, 4), np.nan, np.float32)
        ),
        AttentionValueError,
        "attn_mask",
        "16 NaN",
    ),
    (
        "sdpa-is-causal-string",
        lambda: ctorch.scaled_dot_product_attention(Q, K, V, is_causal="yes"),
        AttentionValueError,
        "is_causal",
        "'yes'",
    ),
    (
        "sdpa-backward-ragged-grad",
        lambda: ctorch.scaled_dot_product_attention_backward([[1.0], [1.0, 2.0]], Q, K, V),
        AttentionShapeError,
        "grad_output",
        "list",
    ),
    (
        "sdpa-attn-mask-shape",
        lambda: ctorch.scaled_dot_product_attention(Q, K, V, attn_mask=np.ones((2, 5), bool)),
        AttentionShapeError,
        "attn_mask",
        "(2, 5)",
    ),
    (
        "mha-static-k-dtype",
        lambda: _mha_forward(static_k=np.zeros((4, 5, 4), np.float64)),
        AttentionDTypeError,
        "static_k",
        "float64",
    ),
    (
        "mha-bias-k-int",
        lambda: _mha_forward(bias_k=np.zeros((1, 1, 8), int), bias_v=np.zeros((1, 1, 8), int)),
        AttentionDTypeError,
        "bias_k",
        "int64",
    ),
    (
        "mha-in-proj-weight-dtype",
        lambda: _mha_forward(in_proj_weight=W.astype(np.float64)),
        AttentionDTypeError,
        "in_proj_weight",
        "float64",
    ),
    (
        "multi-head-q-proj-dtype",
        lambda: multi_head_attention(
            X,
            num_heads=2,
            q_proj_weight=W[:8].astype(np.float64),
            k_proj_weight=W[8:16],
            v_proj_weight=W[16:],
        ),
        AttentionDTypeError,
        "q_proj_weight",
        "float64",
    ),
    # --- JAX adapter ---
    (
        "jax-window-float",
        lambda: cjax.dot_product_attention(QJ, QJ, QJ, local_window_size=1.5),
        AttentionValueError,
        "local_window_size",
        "1.5",
    ),
    (
        "jax-window-string",
        lambda: cjax.dot_product_attention(QJ, QJ, QJ, local_window_size="ab"),
        AttentionValueError,
        "local_window_size",
        "'ab'",
    ),
    (
        "jax-query-lengths",
        lambda: cjax.dot_product_attention(QJ, QJ, QJ, query_seq_lengths=np.array([9])),
        AttentionValueError,
        "query_seq_lengths",
        "9",
    ),
    (
        "jax-lengths-dtype",
        lambda: cjax.dot_product_attention(QJ, QJ, QJ, key_value_seq_lengths=np.array([2.0])),
        AttentionDTypeError,
        "key_value_seq_lengths",
        "float64",
    ),
    (
        "jax-lengths-shape",
        lambda: cjax.dot_product_attention(QJ, QJ, QJ, key_value_seq_lengths=np.array([2, 2])),
        AttentionShapeError,
        "key_value_seq_lengths",
        "(2,)",
    ),
    (
        "jax-rank",
        lambda: cjax.dot_product_attention(QJ[None], QJ, QJ),
        AttentionShapeError,
        "query",
        "(1, 1, 4, 2, 8)",
    ),
    (
        "jax-value-shape",
        lambda: cjax.dot_product_attention(QJ, QJ, QJ[..., :4]),
        AttentionShapeError,
        "value",
        "(1, 4, 2, 4)",
    ),
    (
        "jax-dtype",
        lambda: cjax.dot_product_attention(QJ, QJ, QJ.astype(np.float64)),
        AttentionDTypeError,
        "value",
        "float64",
    ),
    (
        "jax-mask-ndim",
        lambda: cjax.dot_product_attention(QJ, QJ, QJ, mask=np.ones((1, 1, 1, 4, 4), bool)),
        AttentionShapeError,
        "mask",
        "(1, 1, 1, 4, 4)",
    ),
    (
        "jax-mask-heads",
        lambda: cjax.dot_product_attention(QJ, QJ, QJ, mask=np.ones((1, 3, 4, 4), bool)),
        AttentionShapeError,
        "mask",
        "(1, 3, 4, 4)",
    ),
    (
        "jax-mask-shape",
        lambda: cjax.dot_product_attention(QJ, QJ, QJ, mask=np.ones((1, 1, 2, 5), bool)),
        AttentionShapeError,
        "mask",
        "(1, 1, 2, 5)",
    ),
    (
        "jax-masked-array",
        lambda: cjax.dot_product_attention(np.ma.masked_array(QJ), QJ, QJ),
        AttentionDTypeError,
        "query",
        "MaskedArray",
    ),
    (
        "jax-is-causal",
        lambda: cjax.dot_product_attention(QJ, QJ, QJ, is_causal=None),
        AttentionValueError,
        "is_causal",
        "None",
    ),
]

_FIX = re.compile(r"\b(" + "|".join(FIX_WORDS) + r")\b", re.IGNORECASE)


@pytest.mark.parametrize(
    ("call", "error", "argument", "got"),
    [pytest.param(*row[1:], id=row[0]) for row in BAD_CALLS],
)
def test_bad_call_names_argument_got_expected_and_fix(
    call: Callable[[], object], error: type[RefattnError], argument: str, got: str
) -> None:
    with pytest.raises(error) as info:
        call()
    assert isinstance(info.value, RefattnError)
    message = str(info.value)
    assert "\n" not in message, "one message, one line"
    assert argument in message, f"argument {argument!r} not named: {message}"
    assert got in message, f"what it got ({got!r}) not said: {message}"
    assert re.search(r"\b(should|expected)\b", message), f"nothing expected: {message}"
    got_at = message.find("got")
    assert got_at >= 0, f"no 'got' part: {message}"
    assert _FIX.search(message, got_at), f"no fix after what it got: {message}"


def test_every_catalogue_case_an_error_names_exists() -> None:
    ids = {case.id for case in all_cases()}
    named: set[str] = set()
    for _, call, error, _, _ in BAD_CALLS:
        with pytest.raises(error) as info:
            call()
        named.update(re.findall(r"catalogue case ([a-z0-9_]+)", str(info.value)))
    assert len(named) >= 8, sorted(named)
    assert named <= ids, sorted(named - ids)


def test_memory_errors_say_bytes_and_do_not_allocate(monkeypatch: pytest.MonkeyPatch) -> None:
    """The issue's reproducers, against a fixed 16 GiB limit so the test is machine-free."""
    monkeypatch.setattr(refattn.validation, "memory_limit", lambda: 16 << 30)
    x = np.ones((1, 1, 200000, 8), np.float32)
    with pytest.raises(AttentionMemoryError, match=r"149\.0 GiB \(160000000000 bytes\)") as info:
        attention(x, x, x, return_weights=True)
    assert "Drop return_weights" in str(info.value)
    assert isinstance(info.value, MemoryError)
    out = attention(x[:, :, :64], x, x)  # the output alone needs no (L, S) tensor
    assert out.shape == (1, 1, 64, 8)
    with pytest.raises(AttentionMemoryError, match=r"KVCache\(capacity=1000000000000\)"):
        KVCache(K, V, capacity=10**12)
    with pytest.raises(AttentionMemoryError, match=r"83\.8 GiB.*causal=/window="):
        masks.causal(300000, 300000, "top_left")
    with pytest.raises(AttentionMemoryError, match=r"masks\.window"):
        masks.window(300000, 300000, 4, 0, "top_left")
    xs = np.ones((200000, 1, 8), np.float32)  # torch MHA (L, N, E), default need_weights
    w = np.eye(8, dtype=np.float32)
    with pytest.raises(AttentionMemoryError, match=r"need_weights=True.*need_weights=False"):
        ctorch.multi_head_attention_forward(
            xs, xs, xs, 8, 1, np.tile(w, (3, 1)), None, None, None, False, 0.0, w, None
        )
    # dropout with an rng draws its keep-mask per block (refattn._layout): no allocation
    # to refuse; tests/test_memory.py bounds its memory instead


def test_memory_limit_is_at_most_physical_memory() -> None:
    import os

    limit = refattn.validation.memory_limit()
    assert limit is not None  # Linux and macOS say
    assert limit > 1 << 28  # at least 256 MiB free on any machine running this
    assert limit <= os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def test_huge_masks_raise_on_this_machine_too() -> None:
    """Without a patched limit: sizes beyond any machine (PiB) are refused before numpy."""
    with pytest.raises(AttentionMemoryError):
        masks.causal(10**8, 10**8, "top_left")
    with pytest.raises(AttentionMemoryError):
        KVCache(K, V, capacity=10**15)


def test_longdouble_refused_at_every_entry_point() -> None:
    """np.longdouble is refused everywhere, never computed in float32 and relabelled."""
    ld = [x.astype(np.longdouble) for x in (Q, K, V)]
    calls: list[Callable[[], object]] = [
        lambda: attention(*ld),
        lambda: attention_backward(ld[0], *ld),
        lambda: KVCache(ld[1], ld[2]),
        lambda: ctorch.scaled_dot_product_attention(*ld),
        lambda: cjax.dot_product_attention(*(x.transpose(0, 2, 1, 3) for x in ld)),
        lambda: multi_head_attention(
            X.astype(np.longdouble), num_heads=2, in_proj_weight=W.astype(np.longdouble)
        ),
        lambda: attention(Q, K, V, bias=np.zeros((4, 4), np.longdouble)),
        lambda: attention(Q, K, V, alibi_slopes=np.ones(2, np.longdouble)),
    ]
    for call in calls:
        with pytest.raises(AttentionDTypeError, match=r"longdouble.*astype\(np\.float64\)"):
            call()


def test_masked_arrays_refused_everywhere() -> None:
    mq = np.ma.masked_array(Q, Q > 0)
    calls: list[Callable[[], object]] = [
        lambda: attention(mq, K, V),
        lambda: attention(Q, K, V, bias=np.ma.masked_array(np.zeros((4, 4)))),
        lambda: attention(Q, K, V, attend_mask=np.ma.masked_array(np.ones((4, 4), bool))),
        lambda: attention(Q, K, V, key_lengths=np.ma.masked_array([4])),
        lambda: KVCache(np.ma.masked_array(K), V),
        lambda: masks.padding(np.ma.masked_array([1, 2]), 3),
        lambda: ctorch.scaled_dot_product_attention(mq, K, V),
    ]
    for call in calls:
        with pytest.raises(AttentionDTypeError, match=r"np\.ma\.MaskedArray.*np\.ma\.getdata"):
            call()


def test_window_builder_matches_definition_and_attention() -> None:
    """masks.window (rebuilt from np.tri) against its definition, and attention's window."""
    for length_q, length_k in ((4, 4), (3, 7), (7, 3), (1, 5), (0, 3), (5, 0)):
        for left in (None, 0, 1, 3):
            for right in (None, 0, 2):
                for alignment in ("top_left", "bottom_right"):
                    offset = 0 if alignment == "top_left" else length_k - length_q
                    want = np.zeros((length_q, length_k), bool)
                    for i in range(length_q):
                        for j in range(length_k):
                            d = j - i - offset
                            want[i, j] = (left is None or d >= -left) and (
                                right is None or d <= right
                            )
                    got = masks.window(length_q, length_k, left, right, alignment)
                    np.testing.assert_array_equal(got, want)
    q = RNG.standard_normal((1, 1, 5, 4))
    kv = RNG.standard_normal((1, 1, 7, 4))
    np.testing.assert_allclose(
        attention(q, kv, kv, window=(2, 1), window_alignment="bottom_right"),
        attention(q, kv, kv, attend_mask=masks.window(5, 7, 2, 1, "bottom_right")),
        rtol=1e-12,
    )


def test_window_side_past_every_key_equals_unbounded() -> None:
    for side in (10**30, 2**63, 10**6):
        np.testing.assert_array_equal(
            masks.window(3, 5, side, 0, "bottom_right"), masks.window(3, 5, None, 0, "bottom_right")
        )
        np.testing.assert_array_equal(
            masks.window(3, 5, 0, side, "top_left"), masks.window(3, 5, 0, None, "top_left")
        )


def test_window_sides_accepted_alike_by_attention_and_masks() -> None:
    """The same side values pass or fail in attention's window= and in masks.window."""
    accepted: list[Any] = [0, 2, np.int64(2), None]
    refused: list[Any] = [1.5, "2", float("nan"), True, -1, np.float64(2)]
    for side in accepted + refused:
        outcomes = []
        for call in (
            lambda s=side: attention(Q, K, V, window=(s, 0), causal="top_left"),
            lambda s=side: masks.window(4, 4, s, 0, "top_left"),
        ):
            try:
                call()
                outcomes.append("ok")
            except AttentionValueError:
                outcomes.append("refused")
        assert outcomes[0] == outcomes[1], (side, outcomes)
        assert outcomes[0] == ("ok" if any(side is a for a in accepted) else "refused"), side


def test_to_additive_float_dtypes_still_work() -> None:
    for dtype in (np.float16, np.float32, np.float64, "float32"):
        out = masks.to_additive(np.array([True, False]), dtype=dtype)
        assert out.dtype == np.dtype(dtype)
        assert out[0] == 0
        assert np.isneginf(out[1])


def test_zero_keys_under_each_policy() -> None:
    """S = 0: 'zero' gives zeros, 'nan' NaN, 'raise' names the row, 'uniform' is refused."""
    k0, v0 = K[:, :, :0], V[:, :, :0]
    np.testing.assert_array_equal(attention(Q, k0, v0), np.zeros_like(Q))
    assert np.isnan(attention(Q, k0, v0, fully_masked="nan")).all()
    with pytest.raises(refattn.FullyMaskedRowError):
        attention(Q, k0, v0, fully_masked="raise")
    with pytest.raises(AttentionValueError, match="S=0"):
        attention(Q, k0, v0, fully_masked="uniform")
    # no rows at all: nothing is undefined
    assert attention(Q[:, :, :0], k0, v0, fully_masked="uniform").shape == (1, 2, 0, 8)


def test_cache_step_with_bad_query_leaves_cache_unchanged() -> None:
    """The issue's reproducer: a retry after a failed step must not duplicate the position."""
    cache = KVCache(K, V)
    keys, values = cache.keys.copy(), cache.values.copy()
    k1, v1 = K[:, :, :1] + 1, V[:, :, :1] + 1
    bad_queries: list[Any] = [Q[:, :, :1, :3], Q[:, :, :1].astype(np.int64), Q[0, 0, :1]]
    for bad in bad_queries:
        with pytest.raises(RefattnError):
            cache.step(bad, k1, v1)
        assert cache.length == 4
        np.testing.assert_array_equal(cache.keys, keys)
        np.testing.assert_array_equal(cache.values, values)
    with pytest.raises(RefattnError):
        cache.step(Q[:, :, :1], k1, v1, fully_masked="oops")
    assert cache.length == 4
    out = cache.step(Q[:, :, :1], k1, v1)  # the retry appends exactly once
    assert cache.length == 5
    want = attention(
        Q[:, :, :1],
        np.concatenate([K, k1], axis=2),
        np.concatenate([V, v1], axis=2),
        causal="bottom_right",
    )
    np.testing.assert_allclose(out, want, rtol=1e-6)


def test_cache_step_that_grows_storage_and_fails_is_undone() -> None:
    cache = KVCache(K, V, capacity=4)  # full: the append must grow storage
    with pytest.raises(refattn.FullyMaskedRowError):
        cache.step(
            Q[:, :, :1],
            K[:, :, :1],
            V[:, :, :1],
            attend_mask=np.zeros((1, 5), bool),
            fully_masked="raise",
        )
    assert cache.length == 4
    np.testing.assert_array_equal(cache.keys, K)
    cache.append(K[:, :, :2], V[:, :, :2])
    np.testing.assert_array_equal(cache.keys, np.concatenate([K, K[:, :, :2]], axis=2))


def test_cache_growth_falls_back_to_exact_size_when_doubling_would_not_fit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    k = np.zeros((1, 1, 100, 8), np.float64)  # 6400 bytes of keys
    cache = KVCache(k, k, capacity=100)
    monkeypatch.setattr(refattn.validation, "CHECK_FROM", 0)
    monkeypatch.setattr(refattn.validation, "memory_limit", lambda: 101 * 8 * 8)  # 101 rows
    cache.append(k[:, :, :1] + 1, k[:, :, :1] + 1)  # doubling to 200 won't fit; 101 does
    assert cache.length == 101
    np.testing.assert_array_equal(cache.keys[..., 100, :], 1.0)
    with pytest.raises(AttentionMemoryError, match=r"append of 1 positions.*capacity 102"):
        cache.append(k[:, :, :1], k[:, :, :1])
    assert cache.length == 101  # refused before anything changed


def test_check_backward_messages() -> None:
    """validation.check_backward: attention_backward's own arguments, in the message form."""
    from refattn.validation import check_backward, validate

    plan = validate(Q, K, V)
    assert check_backward(np.ones((1, 2, 4, 8), np.float32), plan, "zero").shape == (1, 2, 4, 8)
    cases: list[tuple[Any, str, type[RefattnError], str]] = [
        ([[1.0], [1.0, 2.0]], "zero", AttentionShapeError, "list"),
        (np.ones((1, 2, 4, 7), np.float32), "zero", AttentionShapeError, "(1, 2, 4, 7)"),
        (np.ones((1, 2, 4, 8)), "zero", AttentionDTypeError, "float64"),
        (np.ones((1, 2, 4, 8), np.float32), "nan", AttentionValueError, "'nan'"),
    ]
    for grad, policy, error, got in cases:
        with pytest.raises(error) as info:
            check_backward(grad, plan, policy)
        message = str(info.value)
        assert got in message
        assert "should" in message
        assert _FIX.search(message, message.find("got"))
