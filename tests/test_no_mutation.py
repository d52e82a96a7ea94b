"""Property tests: no public function changes its input arrays, and a KV cache is unchanged
by any call that raises.

Calls are drawn with valid and invalid options alike (a failing call must not have
written anything either). Inputs include non-contiguous views, so an in-place operation
on a view of the caller's array would show up too.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from refattn import KVCache, attention, attention_backward, masks, multi_head_attention
from refattn.compat import jax as cjax
from refattn.compat import torch as ctorch
from refattn.errors import RefattnError

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _arrays(value: object) -> list[np.ndarray]:
    """Every ndarray in an argument tree (dicts, lists, tuples)."""
    if isinstance(value, np.ndarray):
        return [value]
    if isinstance(value, dict):
        return [a for v in value.values() for a in _arrays(v)]
    if isinstance(value, list | tuple):
        return [a for v in value for a in _arrays(v)]
    return []


def _assert_untouched(call: Callable[[], object], *inputs: object) -> None:
    arrays = _arrays(list(inputs))
    before = [(a.copy(), a.dtype, a.shape, a.strides, a.flags.writeable) for a in arrays]
    with contextlib.suppress(RefattnError):
        call()
    for a, (copy, dtype, shape, strides, writeable) in zip(arrays, before, strict=True):
        assert (a.dtype, a.shape, a.strides, a.flags.writeable) == (
            dtype,
            shape,
            strides,
            writeable,
        )
        np.testing.assert_array_equal(a, copy)  # NaN == NaN here


@st.composite
def attention_inputs(draw: Any) -> tuple[list[np.ndarray], dict[str, Any]]:
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    dtype = draw(st.sampled_from([np.float32, np.float64, np.float16]))
    batch, hkv = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    hq = hkv * draw(st.integers(1, 2))
    length_q, length_k = draw(st.integers(1, 5)), draw(st.integers(0, 6))
    dim, dim_v = draw(st.integers(1, 4)), draw(st.integers(1, 4))

    def array(*shape: int) -> np.ndarray:
        x = rng.standard_normal(shape).astype(dtype)
        if draw(st.booleans()):  # a non-contiguous view of a bigger array
            x = np.ascontiguousarray(np.swapaxes(x, -1, -2)).swapaxes(-1, -2)
        return x

    q = array(batch, hq, length_q, dim)
    k = array(batch, hkv, length_k, dim)
    v = array(batch, hkv, length_k, dim_v)
    scores = (length_q, length_k)
    options: dict[str, Any] = {}
    if draw(st.booleans()):
        options["attend_mask"] = rng.random(scores) < 0.7
    if draw(st.booleans()):
        bias = rng.standard_normal(scores).astype(draw(st.sampled_from([np.float32, dtype])))
        bias[rng.random(scores) < 0.2] = draw(st.sampled_from([-np.inf, np.nan, 3e4]))
        options["bias"] = bias
    if draw(st.booleans()):
        options["causal"] = draw(st.sampled_from(["top_left", "bottom_right", True, "x"]))
    if draw(st.booleans()):
        side = st.one_of(st.none(), st.integers(-1, 3), st.just(1.5))
        options["window"] = (draw(side), draw(side))
        options["window_alignment"] = "bottom_right"
    if draw(st.booleans()):
        options["key_lengths"] = rng.integers(0, length_k + 2, batch)
    if draw(st.booleans()):
        options["query_lengths"] = rng.integers(0, length_q + 1, batch)
    if draw(st.booleans()):
        slopes = rng.random(hq)
        if draw(st.booleans()):
            slopes[0] = np.nan
        options["alibi_slopes"] = slopes
    if draw(st.booleans()):
        options["softcap"] = draw(st.sampled_from([5.0, 0.0, -1.0]))
    if draw(st.booleans()):
        options["scale"] = draw(st.sampled_from([0.5, float("nan"), 1 + 2j]))
    options["fully_masked"] = draw(st.sampled_from(["zero", "uniform", "nan", "raise", "?"]))
    if draw(st.booleans()):
        options["dropout_p"] = draw(st.sampled_from([0.25, 1.0]))
        options["dropout_keep"] = rng.random((length_q, length_k)) < 0.75
    return [q, k, v], options


@SETTINGS
@given(attention_inputs(), st.sampled_from(["forward", "weights", "backward", "cache"]))
def test_attention_paths_leave_inputs_untouched(
    drawn: tuple[list[np.ndarray], dict[str, Any]], path: str
) -> None:
    (q, k, v), options = drawn
    if path == "forward":
        _assert_untouched(lambda: attention(q, k, v, **options), q, k, v, options)
    elif path == "weights":
        _assert_untouched(
            lambda: attention(q, k, v, return_weights=True, return_lse=True, **options),
            q,
            k,
            v,
            options,
        )
    elif path == "backward":
        grad = np.ones((*q.shape[:-1], v.shape[-1]), q.dtype)
        _assert_untouched(lambda: attention_backward(grad, q, k, v, **options), grad, q, k, v)
        _assert_untouched(lambda: attention_backward(grad, q, k, v, **options), options)
    else:
        cache_options = {n: x for n, x in options.items() if n != "causal"}
        keys, values = k[..., :-1, :], v[..., :-1, :]

        def step() -> object:
            cache = KVCache(keys, values)
            return cache.step(q[..., -1:, :], k[..., -1:, :], v[..., -1:, :], **cache_options)

        _assert_untouched(step, q, k, v, keys, values, cache_options)


@SETTINGS
@given(attention_inputs())
def test_adapters_leave_inputs_untouched(drawn: tuple[list[np.ndarray], dict[str, Any]]) -> None:
    (q, k, v), options = drawn
    mask = options.get("attend_mask")
    bias = options.get("bias")
    _assert_untouched(
        lambda: ctorch.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=True),
        q,
        k,
        v,
        mask,
    )
    _assert_untouched(
        lambda: ctorch.scaled_dot_product_attention(q, k, v, attn_mask=bias, enable_gqa=True),
        q,
        k,
        v,
        bias,
    )
    qj, kj, vj = (x.swapaxes(1, 2) for x in (q, k, v))  # JAX layout, as views
    _assert_untouched(
        lambda: cjax.dot_product_attention(
            qj,
            kj,
            vj,
            bias=bias,
            mask=mask,
            key_value_seq_lengths=options.get("key_lengths"),
            query_seq_lengths=options.get("query_lengths"),
        ),
        qj,
        kj,
        vj,
        bias,
        mask,
        options,
    )


@SETTINGS
@given(st.integers(0, 2**32 - 1), st.booleans(), st.booleans())
def test_multi_head_and_torch_mha_leave_inputs_untouched(
    seed: int, packed: bool, masks_given: bool
) -> None:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, 5, 8)).astype(np.float32)
    w = rng.standard_normal((24, 8)).astype(np.float32)
    b = rng.standard_normal(24).astype(np.float32)
    wo = rng.standard_normal((8, 8)).astype(np.float32)
    kpm = rng.random((2, 5)) < 0.3 if masks_given else None
    attn = rng.random((5, 5)) < 0.3 if masks_given else None
    weights: dict[str, Any] = (
        {"in_proj_weight": w, "in_proj_bias": b}
        if packed
        else {"q_proj_weight": w[:8], "k_proj_weight": w[8:16], "v_proj_weight": w[16:]}
    )
    _assert_untouched(
        lambda: multi_head_attention(
            x, num_heads=2, out_proj_weight=wo, return_weights=True, **weights
        ),
        x,
        weights,
        wo,
    )
    xs = x.swapaxes(0, 1)  # (L, N, E) view
    _assert_untouched(
        lambda: ctorch.multi_head_attention_forward(
            xs,
            xs,
            xs,
            8,
            2,
            w,
            b,
            None,
            None,
            False,
            0.0,
            wo,
            None,
            key_padding_mask=kpm,
            attn_mask=attn,
        ),
        xs,
        w,
        b,
        wo,
        kpm,
        attn,
    )


@SETTINGS
@given(st.integers(0, 2**32 - 1))
def test_mask_builders_leave_inputs_untouched(seed: int) -> None:
    rng = np.random.default_rng(seed)
    a, b = rng.random((3, 4)) < 0.5, rng.random((1, 4)) < 0.5
    lengths = rng.integers(0, 5, 3)
    additive = np.where(a, 0.0, -np.inf)
    torch_mask = rng.random((6, 3, 4)) < 0.5
    flash = rng.integers(0, 2, (3, 4))
    for call, inputs in (
        (lambda: masks.combine(a, b), (a, b)),
        (lambda: masks.padding(lengths, 4), (lengths,)),
        (lambda: masks.from_additive(additive), (additive,)),
        (lambda: masks.to_additive(a), (a,)),
        (lambda: masks.from_torch_attn_mask(torch_mask, num_heads=2), (torch_mask,)),
        (lambda: masks.from_torch_key_padding_mask(a), (a,)),
        (lambda: masks.from_flash_padding(flash), (flash,)),
    ):
        _assert_untouched(call, *inputs)


# A KV cache under a random sequence of calls, valid and invalid. The model is a plain list
# of the positions appended by calls that returned.
OPS = st.lists(
    st.tuples(
        st.sampled_from(["append", "step", "attend"]),
        st.sampled_from(["ok", "bad_query", "bad_key", "bad_value", "bad_option", "dead_row"]),
        st.integers(1, 3),
    ),
    min_size=1,
    max_size=8,
)


@SETTINGS
@given(st.integers(0, 2**32 - 1), OPS, st.sampled_from([None, 1, 4]))
def test_cache_unchanged_by_any_call_that_raises(
    seed: int, ops: list[tuple[str, str, int]], capacity: int | None
) -> None:
    rng = np.random.default_rng(seed)
    prompt_k = rng.standard_normal((1, 2, 1, 4)).astype(np.float32)
    prompt_v = rng.standard_normal((1, 2, 1, 3)).astype(np.float32)
    cache = KVCache(prompt_k, prompt_v, capacity=capacity)
    keys, values = [prompt_k], [prompt_v]
    for op, kind, new in ops:
        k = rng.standard_normal((1, 2, new, 4)).astype(np.float32)
        v = rng.standard_normal((1, 2, new, 3)).astype(np.float32)
        q = rng.standard_normal((1, 4, new, 4)).astype(np.float32)
        options: dict[str, Any] = {}
        if kind == "bad_query":
            q = q[..., :3]
        elif kind == "bad_key":
            k = k.astype(np.float64)
        elif kind == "bad_value":
            v = v[..., :2]
        elif kind == "bad_option":
            options = {"window": (1.5, 0)}
        elif kind == "dead_row":
            options = {"attend_mask": np.zeros((new, 1), bool), "fully_masked": "raise"}
        before_k, before_v, before_len = cache.keys.copy(), cache.values.copy(), cache.length
        try:
            if op == "append":
                cache.append(k, v)
            elif op == "step":
                cache.step(q, k, v, **options)
            else:
                cache.attend(q[..., : min(new, cache.length), :], **options)
        except RefattnError:
            assert cache.length == before_len
            np.testing.assert_array_equal(cache.keys, before_k)
            np.testing.assert_array_equal(cache.values, before_v)
            continue
        if op != "attend":
            keys.append(k)
            values.append(v)
        np.testing.assert_array_equal(cache.keys, np.concatenate(keys, axis=-2))
        np.testing.assert_array_equal(cache.values, np.concatenate(values, axis=-2))
