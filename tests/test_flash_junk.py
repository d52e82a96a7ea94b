# mypy: disable-error-code="misc"
"""Every argument of the flash-attn adapter and of KVCache.paged, given junk: a refattn error
or a result, nothing else (no raw NumPy/Python exception, no warning).

The same junk as tests/test_junk_arguments.py, over
:mod:`refattn.compat.flash_attn`'s seven functions and :meth:`refattn.KVCache.paged`.
"""

from __future__ import annotations

import inspect
import re
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from refattn import KVCache
from refattn.compat import flash_attn as fa
from refattn.errors import AttentionShapeError, AttentionValueError, RefattnError
from tests.test_junk_arguments import JUNK

RNG = np.random.default_rng(0)
Q4 = RNG.standard_normal((1, 4, 2, 16)).astype(np.float32)  # (B, S, H, D)
Q3 = RNG.standard_normal((5, 2, 16)).astype(np.float32)  # (total, H, D)
COS = np.cos(RNG.standard_normal((8, 8))).astype(np.float32)  # (P, R/2), R = 16
SIN = np.sin(RNG.standard_normal((8, 8))).astype(np.float32)
CU = np.array([0, 2, 5], np.int32)


def _kvcache_args() -> dict[str, Any]:
    # fresh caches each call: flash_attn_with_kvcache writes new keys into them
    return {
        "q": Q4[:, :1],
        "k_cache": np.zeros((1, 8, 2, 16), np.float32),
        "v_cache": np.zeros((1, 8, 2, 16), np.float32),
        "k": Q4[:, :1],
        "v": Q4[:, :1],
        "cache_seqlens": np.array([2], np.int32),
    }


def _paged_kvcache_args() -> dict[str, Any]:
    return {
        **_kvcache_args(),
        "k_cache": np.zeros((4, 4, 2, 16), np.float32),
        "v_cache": np.zeros((4, 4, 2, 16), np.float32),
        "block_table": np.array([[2, 0]], np.int32),
    }


BASE: dict[str, Callable[[], dict[str, Any]]] = {
    "flash_attn_func": lambda: {"q": Q4, "k": Q4, "v": Q4},
    "flash_attn_qkvpacked_func": lambda: {"qkv": np.stack([Q4, Q4, Q4], axis=2)},
    "flash_attn_kvpacked_func": lambda: {"q": Q4, "kv": np.stack([Q4, Q4], axis=2)},
    "flash_attn_varlen_func": lambda: {
        "q": Q3,
        "k": Q3,
        "v": Q3,
        "cu_seqlens_q": CU,
        "cu_seqlens_k": CU,
        "max_seqlen_q": 3,
        "max_seqlen_k": 3,
    },
    "flash_attn_varlen_qkvpacked_func": lambda: {
        "qkv": np.stack([Q3, Q3, Q3], axis=1),
        "cu_seqlens": CU,
        "max_seqlen": 3,
    },
    "flash_attn_varlen_kvpacked_func": lambda: {
        "q": Q3,
        "kv": np.stack([Q3, Q3], axis=1),
        "cu_seqlens_q": CU,
        "cu_seqlens_k": CU,
        "max_seqlen_q": 3,
        "max_seqlen_k": 3,
    },
    "flash_attn_with_kvcache": _kvcache_args,
    "flash_attn_with_kvcache[paged]": _paged_kvcache_args,
    "flash_attn_with_kvcache[rotary]": lambda: {
        **_kvcache_args(),
        "rotary_cos": COS,
        "rotary_sin": SIN,
        "causal": True,
    },
    "flash_attn_with_kvcache[leftpad]": lambda: {
        **_kvcache_args(),
        "cache_leftpad": np.array([1], np.int32),
        "cache_batch_idx": np.array([0], np.int32),
        "alibi_slopes": np.ones(2, np.float32),
    },
}

# the message form of every refattn error (tests/test_validation.py's): what was expected,
# what it got, then a fix
EXPECTED = re.compile(r"\b(should|expected)\b")
FIX = re.compile(
    r"\b(pass|use|call|convert|cast|drop|split|check|add|reshape|spell|give|project|"
    r"choose|set|build|allocate|fold|grow|prepend|append|make|list|flatten)\b",
    re.IGNORECASE,
)


def check_form(message: str) -> str | None:
    got = message.find("got")
    if not EXPECTED.search(message) or got < 0 or not FIX.search(message, got):
        return message
    return None


def _cases() -> list[Any]:
    cases = []
    for label, base in BASE.items():
        fn = getattr(fa, label.split("[")[0])
        for name in inspect.signature(fn).parameters:

            def call(junk: Any, fn: Any = fn, base: Any = base, name: str = name) -> object:
                return fn(**{**base(), name: junk})

            cases.append(pytest.param(call, id=f"{label}-{name}"))
    paged: dict[str, Any] = {
        "key": np.zeros((2, 1, 3, 4)),
        "value": np.zeros((2, 1, 3, 4)),
        "block_table": np.array([[0, 1], [2, 3]], np.int32),
        "page_block_size": 2,
        "num_blocks": 4,
    }
    for name in paged:
        cases.append(
            pytest.param(
                lambda junk, n=name: KVCache.paged(**{**paged, n: junk}),
                id=f"KVCache.paged-{name}",
            )
        )
    q = np.zeros((2, 2, 1, 4))  # (B, Hq, 1, D): GQA over the cache's one kv head
    for pos in range(3):

        def step(junk: Any, pos: int = pos) -> object:
            args = [q, q[:, :1], q[:, :1]]
            args[pos] = junk
            return KVCache.paged(**paged).step(*args)

        cases.append(pytest.param(step, id=f"KVCache.paged.step-arg{pos}"))
    for name in ("window", "softcap", "scale", "alibi_slopes", "attend_mask", "key_lengths"):
        cases.append(
            pytest.param(
                lambda junk, n=name: KVCache.paged(**paged).step(
                    q, q[:, :1], q[:, :1], **{n: junk}
                ),
                id=f"KVCache.paged.step-{name}",
            )
        )
    return cases


def test_base_calls_succeed() -> None:
    for base in BASE.values():
        assert base()  # guards the sweep: junk is the only thing wrong in each call
    for label, base in BASE.items():
        getattr(fa, label.split("[")[0])(**base())


@pytest.mark.parametrize("call", _cases())
def test_flash_junk_gives_a_refattn_error_or_a_result(call: Callable[[Any], object]) -> None:
    failures = []
    for junk in JUNK:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            try:
                call(junk)
            except RefattnError as error:
                if (bad := check_form(str(error))) is not None:
                    failures.append(f"junk {junk!r:.60}: message not in the form: {bad}")
                continue
            except Exception as error:  # the failure this test exists to catch
                failures.append(f"junk {junk!r:.60}: raw {type(error).__name__}: {error}")
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("label", [label for label in BASE if "kvcache" in label])
def test_kvcache_call_that_raises_writes_nothing(label: str) -> None:
    # flash_attn_with_kvcache writes new keys into k_cache/v_cache in place: every check
    # must run before the first write, so a refused call leaves both caches as they were
    names = inspect.signature(fa.flash_attn_with_kvcache).parameters
    refused = 0
    for name in names:
        if name in ("k_cache", "v_cache"):
            continue
        for junk in JUNK:
            args = {**BASE[label](), name: junk}
            before = (args["k_cache"].copy(), args["v_cache"].copy())
            try:
                fa.flash_attn_with_kvcache(**args)
            except RefattnError:
                refused += 1
                np.testing.assert_array_equal(args["k_cache"], before[0])
                np.testing.assert_array_equal(args["v_cache"], before[1])
    assert refused > 100  # the sweep did reach the checks


def test_the_three_classes_the_validation_sweep_found() -> None:
    # ragged q and ALiBi slopes were numpy's ValueError, complex scalars a ComplexWarning,
    # an array as return_attn_probs numpy's ambiguous-truth ValueError
    with pytest.raises(AttentionShapeError, match=r"q should be a rectangular array"):
        fa.flash_attn_func([[1.0, 2.0], [3.0]], Q4, Q4)
    with pytest.raises(AttentionShapeError, match=r"alibi_slopes should be a rectangular array"):
        fa.flash_attn_func(Q4, Q4, Q4, alibi_slopes=[[1.0], [1.0, 2.0]])
    for name in ("dropout_p", "softmax_scale", "softcap"):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            complex_scalar: dict[str, Any] = {name: np.complex64(1)}
            with pytest.raises(
                AttentionValueError, match=rf"{name} should be .* but got np.complex64\(1\+0j\)"
            ):
                fa.flash_attn_func(Q4, Q4, Q4, **complex_scalar)
    flags: Any = np.array([True, False])
    with pytest.raises(AttentionValueError, match=r"return_attn_probs should be a bool: but got"):
        fa.flash_attn_func(Q4, Q4, Q4, return_attn_probs=flags)
    with pytest.raises(AttentionValueError, match=r"return_softmax_lse should be a bool"):
        fa.flash_attn_with_kvcache(**{**_kvcache_args(), "return_softmax_lse": np.ones(2)})
