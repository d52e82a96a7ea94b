# mypy: disable-error-code="misc"
"""Every argument of every public function, given junk: a refattn error or a result, nothing else.

Junk is every kind of wrong value a hostile user tries: None, bools where ints go, negative
and huge numbers, NaN and inf, strings, complex numbers, empty and ragged lists, arrays of
the wrong rank, masked arrays, ``np.longdouble``, objects. A call may succeed (some junk
is a valid value somewhere, e.g. ``0``) but may only fail with a
:class:`~refattn.errors.RefattnError`; no raw NumPy or Python exception, no warning (a
``ComplexWarning`` means a complex value was silently truncated).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import refattn
import refattn.checks as checks
from refattn import masks
from refattn.compat import jax as cjax
from refattn.compat import torch as ctorch
from refattn.errors import RefattnError

RNG = np.random.default_rng(0)
Q = RNG.standard_normal((1, 2, 4, 8)).astype(np.float32)
X = RNG.standard_normal((2, 5, 8)).astype(np.float32)
W = RNG.standard_normal((24, 8)).astype(np.float32)
XS = RNG.standard_normal((5, 2, 8)).astype(np.float32)

JUNK: list[Any] = [
    None,
    True,
    np.bool_(False),
    -1,
    0,
    1.5,
    -0.0,
    float("nan"),
    float("inf"),
    "ab",
    1 + 2j,
    np.complex64(1),
    10**12,
    -(10**12),
    10**30,
    np.uint8(3),
    np.float16(6e4),
    np.float32(3e38),
    np.longdouble(1.0),
    [],
    [[1, 2], [3]],
    (1,),
    (1, 2, 3),
    {"a": 1},
    object(),
    np.array(1.0),
    np.array(["x"]),
    np.zeros((0,)),
    np.zeros((2, 0, 3), np.float32),
    np.zeros((2, 3, 4, 5, 6), np.float32),
    np.array([[True]]),
    np.ma.masked_array([1.0, 2.0], [True, False]),
]

OPTIONS = list(refattn.AttentionOptions.__annotations__)  # every option, new ones too


def _positional(fn: Callable[..., object], args: list[Any], pos: int) -> Callable[[Any], object]:
    def call(junk: Any) -> object:
        given = list(args)
        given[pos] = junk
        return fn(*given)

    return call


def _keyword(
    fn: Callable[..., object], args: list[Any], **kwargs: Any
) -> Callable[[str, Any], object]:
    def call(name: str, junk: Any) -> object:
        return fn(*args, **{**kwargs, name: junk})

    return call


def _torch_mha(**changes: Any) -> object:
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


def _cases() -> list[Any]:
    cases: list[Any] = []

    def add(label: str, call: Callable[[Any], object]) -> None:
        cases.append(pytest.param(call, id=label))

    for pos in range(3):
        add(f"attention-arg{pos}", _positional(refattn.attention, [Q, Q, Q], pos))
        add(f"sdpa-arg{pos}", _positional(ctorch.scaled_dot_product_attention, [Q, Q, Q], pos))
        add(
            f"backward-arg{pos + 1}",
            _positional(refattn.attention_backward, [Q, Q, Q, Q], pos + 1),
        )
    # gradients.py calls validation.check_backward after validate (both fixed there)
    add("backward-grad", _positional(refattn.attention_backward, [Q, Q, Q, Q], 0))
    for name in OPTIONS:
        cases.append(
            pytest.param(
                lambda j, n=name: refattn.attention_backward(Q, Q, Q, Q, **{n: j}),
                id=f"backward-{name}",
            )
        )
    for name in [*OPTIONS, "return_weights", "return_lse"]:
        add(f"attention-{name}", lambda j, n=name: refattn.attention(Q, Q, Q, **{n: j}))
    for name in OPTIONS:
        add(
            f"cache-step-{name}",
            lambda j, n=name: refattn.KVCache(Q, Q).step(
                Q[:, :, :1], Q[:, :, :1], Q[:, :, :1], **{n: j}
            ),
        )
        add(
            f"mha-{name}",
            lambda j, n=name: refattn.multi_head_attention(
                X, num_heads=2, in_proj_weight=W, **{n: j}
            ),
        )
    for pos, args in enumerate([[Q, Q, None]] * 3):
        add(f"cache-init-arg{pos}", _positional(refattn.KVCache, args, pos))
    for pos in range(3):
        add(
            f"cache-step-arg{pos}",
            lambda j, p=pos: refattn.KVCache(Q, Q).step(
                *[j if i == p else Q[:, :, :1] for i in range(3)]
            ),
        )
    for name in (
        "num_heads",
        "num_kv_heads",
        "in_proj_weight",
        "in_proj_bias",
        "out_proj_weight",
        "out_proj_bias",
        "return_weights",
        "average_weights",
    ):
        add(
            f"mha-{name}",
            lambda j, n=name: refattn.multi_head_attention(
                X, **{"num_heads": 2, "in_proj_weight": W, n: j}
            ),
        )
    add("mha-query", lambda j: refattn.multi_head_attention(j, num_heads=2, in_proj_weight=W))
    add("project-x", lambda j: refattn.project_heads(j, W, num_heads=2))
    add("project-weight", lambda j: refattn.project_heads(X, j, num_heads=2))
    add("project-bias", lambda j: refattn.project_heads(X, W, j, num_heads=2))
    add("merge-heads", lambda j: refattn.merge_heads(j))
    add("merge-weight", lambda j: refattn.merge_heads(Q, j))
    builders: list[tuple[Callable[..., object], list[Any]]] = [
        (masks.causal, [4, 4, "top_left"]),
        (masks.window, [4, 4, 1, 1, "top_left"]),
        (masks.padding, [[1, 2], 4]),
        (masks.from_torch_attn_mask, [np.zeros((4, 4), bool), None]),
        (masks.from_torch_key_padding_mask, [np.zeros((2, 4), bool)]),
        (masks.from_additive, [np.zeros(4)]),
        (masks.to_additive, [np.ones(4, bool), np.float32]),
        (masks.from_flash_padding, [[[1, 0]]]),
        (masks.render, [np.ones((2, 2), bool)]),
        (masks.combine, [np.ones((2, 2), bool), np.ones((2, 2), bool)]),
    ]
    for fn, args in builders:
        for pos in range(len(args)):
            add(f"masks.{fn.__name__}-arg{pos}", _positional(fn, args, pos))
    add("check_finite", lambda j: checks.check_finite(j))
    add("check_rows", lambda j: checks.check_rows_sum_to_one(j))
    add("check_rows-atol", lambda j: checks.check_rows_sum_to_one(np.ones((2, 1)), atol=j))
    add("check_masked-weights", lambda j: checks.check_no_weight_on_masked(j, np.ones(2, bool)))
    add("check_masked-mask", lambda j: checks.check_no_weight_on_masked(np.ones((2, 2)), j))
    add("check_close", lambda j: checks.check_close(j, np.ones(2)))
    add("check_close-rtol", lambda j: checks.check_close(np.ones(2), np.ones(2), rtol=j))
    for name in (
        "query",
        "embed_dim_to_check",
        "num_heads",
        "in_proj_weight",
        "in_proj_bias",
        "bias_k",
        "add_zero_attn",
        "dropout_p",
        "out_proj_weight",
        "out_proj_bias",
        "training",
        "key_padding_mask",
        "need_weights",
        "attn_mask",
        "use_separate_proj_weight",
        "static_k",
        "average_attn_weights",
        "is_causal",
        "rng",
    ):
        add(f"torch-mha-{name}", lambda j, n=name: _torch_mha(**{n: j}))
    for name in ("attn_mask", "dropout_p", "is_causal", "scale", "enable_gqa", "rng"):
        add(
            f"sdpa-{name}", lambda j, n=name: ctorch.scaled_dot_product_attention(Q, Q, Q, **{n: j})
        )
    qj = Q.transpose(0, 2, 1, 3)
    for name in (
        "bias",
        "mask",
        "scale",
        "is_causal",
        "query_seq_lengths",
        "key_value_seq_lengths",
        "local_window_size",
    ):
        add(f"jax-{name}", lambda j, n=name: cjax.dot_product_attention(qj, qj, qj, **{n: j}))
    add("jax-query", lambda j: cjax.dot_product_attention(j, qj, qj))
    return cases


@pytest.mark.parametrize("call", _cases())
def test_junk_gives_a_refattn_error_or_a_result(call: Callable[[Any], object]) -> None:
    for junk in JUNK:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            try:
                call(junk)
            except RefattnError:
                continue
            except Exception as error:  # the failure this test exists to catch
                pytest.fail(f"junk {junk!r:.60}: raw {type(error).__name__}: {error}")
