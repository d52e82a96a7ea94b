"""check(): correct implementations pass the whole battery; the report's structure."""

from __future__ import annotations

import functools
import importlib
import json
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings

from refattn import attention
from refattn.testing import Config, check, configs
from refattn.testing.battery import strategy
from refattn.testing.harness import prepare
from tests import testing_impls as impls


def test_refattn_itself_and_a_naive_numpy_attention_pass_the_battery() -> None:
    for fn in (attention, impls.numpy_attention):
        report = check(fn, "refattn")
        assert report.passed, str(report)
        assert report.configs == len(configs("refattn"))
        assert report.failed == 0


def test_torch_sdpa_passes_the_battery() -> None:
    torch = importlib.import_module("torch")
    report = check(torch.nn.functional.scaled_dot_product_attention, "torch_sdpa")
    assert report.passed, str(report)
    assert report.configs == len(configs("torch_sdpa"))
    assert check(impls.torch_sdpa, "torch_sdpa").passed


def test_jax_dot_product_attention_passes_the_battery() -> None:
    jax = importlib.import_module("jax")
    report = check(jax.nn.dot_product_attention, "jax")
    assert report.passed, str(report)
    assert report.configs == len(configs("jax"))


def test_flash_convention_passes_a_correct_implementation() -> None:
    importlib.import_module("torch")
    report = check(impls.flash_attn_func, "flash")
    assert report.passed, str(report)


def test_flash_convention_passes_refattns_flash_attn_adapter() -> None:
    torch = importlib.import_module("torch")
    compat = importlib.import_module("refattn.compat.flash_attn")

    def flash(q: Any, k: Any, v: Any, **kwargs: Any) -> Any:
        # the adapter takes NumPy arrays (bfloat16 as float32 values)
        dtype = q.dtype
        arrays = [x.float().numpy() if dtype == torch.bfloat16 else x.numpy() for x in (q, k, v)]
        if "alibi_slopes" in kwargs:
            kwargs["alibi_slopes"] = kwargs["alibi_slopes"].numpy()
        out = compat.flash_attn_func(*arrays, **kwargs)
        return torch.from_numpy(np.ascontiguousarray(out)).to(dtype)

    report = check(flash, "flash")
    assert report.passed, str(report)


def test_battery_covers_what_the_issue_asks() -> None:
    cs = configs()
    assert any(c.length_q < c.length_k for c in cs)
    assert any(c.length_q > c.length_k for c in cs)
    assert any(c.length_q == 1 for c in cs)
    assert any(c.length_k == 1 for c in cs)
    for n in (63, 64, 65, 127, 128, 129):
        assert any(n in (c.length_q, c.length_k) for c in cs), n
    assert any(c.heads_kv == 1 and c.heads_q > 1 for c in cs)  # MQA
    assert any(1 < c.heads_kv < c.heads_q for c in cs)  # GQA
    assert any(c.key_lengths and 0 in c.key_lengths for c in cs)
    assert any(c.mask == "random" for c in cs)
    assert any(c.bias for c in cs)
    assert any(c.alibi for c in cs)
    assert any(c.softcap for c in cs)
    assert any(c.window for c in cs)
    assert {c.causal for c in cs} >= {"top_left", "bottom_right"}
    assert {c.dtype for c in cs} == {"float16", "bfloat16", "float32", "float64"}
    assert any(c.amplitude**2 >= 1e4 for c in cs)  # logits (std amplitude**2) of order 1e4
    assert any(c.value_scale <= 1e-6 for c in cs)
    assert len({c.id for c in cs}) == len(cs)


@pytest.mark.parametrize("convention", ["refattn", "torch_sdpa", "jax", "flash"])
def test_configs_are_expressible_in_their_conventions(convention: str) -> None:
    if convention != "refattn":
        importlib.import_module("torch" if convention != "jax" else "jax")
    for c in configs(convention, quick=True):
        call, args, _kwargs = prepare(c, convention)
        assert len(args) == 3
        assert call.query.shape == (c.batch, c.heads_q, c.length_q, c.dim)


def test_report_groups_failures_and_serialises() -> None:
    buggy = functools.partial(impls.numpy_attention, mistake="causal_alignment_swapped")
    report = check(buggy, "refattn")
    data = json.loads(json.dumps(report.to_json()))
    assert data["passed"] is False
    assert data["configs"] == report.configs
    assert data["failed"] == report.failed > 0
    top = data["explanations"][0]
    assert top["mutant"] == "causal_alignment_swapped"
    assert top["tags"] == ["causal-alignment"]
    assert top["case"] == "top_left_causal_for_kv_cache"
    counts = [e["configs"] for e in data["explanations"] if e["mutant"] is not None]
    assert counts == sorted(counts, reverse=True)
    assert sum(e["configs"] for e in data["explanations"]) == data["failed"]
    smallest = report.groups[0].smallest.config
    assert smallest.size == min(f.config.size for f in report.groups[0].failures)
    assert "causal_alignment_swapped" in str(report)


def test_an_implementation_that_raises_is_an_unexplained_failure() -> None:
    def broken(q: Any, k: Any, v: Any, **options: Any) -> Any:
        if options.get("key_lengths") is not None:
            raise RuntimeError("key_lengths not supported")
        return attention(q, k, v, **options)

    report = check(broken, "refattn", quick=True)
    assert not report.passed
    group = report.groups[-1]
    assert group.mutant is None
    assert "raised RuntimeError: key_lengths not supported" in str(group.smallest.error)


def test_unknown_convention_is_refused() -> None:
    with pytest.raises(ValueError, match="convention should be one of refattn, torch_sdpa"):
        check(attention, "pytorch")


@settings(max_examples=10, deadline=None)
@given(strategy("refattn"))
def test_hypothesis_strategy_draws_battery_configs(config: Config) -> None:
    assert config in configs("refattn")
    assert check(attention, "refattn", battery=[config]).passed


def test_jax_configs_compiled_together_give_what_each_compiled_alone_gives() -> None:
    jax = importlib.import_module("jax")
    from refattn.testing import harness

    fn = jax.nn.dot_product_attention
    battery = configs("jax", quick=True)
    prepared = [harness._PREPARE["jax"](c) for c in battery]
    together = harness._jax_outputs(fn, prepared)
    # float16 cannot be jitted on CPU (then configs run eagerly); every other one ran grouped
    assert {i for i, c in enumerate(battery) if c.dtype != "float16"} <= set(together)
    for i, out in together.items():
        alone = harness._call_jax(fn, prepared[i])
        np.testing.assert_array_equal(np.asarray(alone), np.asarray(out))


def test_jax_group_with_one_failing_config_runs_its_configs_one_by_one() -> None:
    importlib.import_module("jax")
    from refattn.testing import harness

    def decode_unsupported(query: Any, key: Any, value: Any, **kwargs: Any) -> Any:
        if query.shape[1] == 1:  # a shape, static under jit: fails while tracing the group
            raise NotImplementedError("no decode path")
        return impls.jax_attention(query, key, value, **kwargs)

    def untraceable(query: Any, key: Any, value: Any, **kwargs: Any) -> Any:
        np.asarray(query)  # a NumPy call on a tracer: runs eagerly only
        return impls.jax_attention(query, key, value, **kwargs)

    quick = configs("jax", quick=True)
    battery = quick + [c for c in configs("jax") if c.length_q == 1 and c not in quick]
    assert any(c.length_q == 1 for c in battery)
    prepared = [harness._PREPARE["jax"](c) for c in battery]
    outputs = harness._jax_outputs(decode_unsupported, prepared)
    decode = {i for i, c in enumerate(battery) if c.length_q == 1}
    eager = {i for i, out in outputs.items() if out is harness._EAGER}
    assert set(outputs) == set(range(len(battery)))
    assert decode <= eager
    # the failing groups were split: every other config (but float16, which the CPU backend
    # does not jit) still ran compiled
    assert eager <= decode | {i for i, c in enumerate(battery) if c.dtype == "float16"}
    report = check(decode_unsupported, "jax", battery=battery)
    failed = {f.config.id for f in report.failures}
    assert failed == {c.id for c in battery if c.length_q == 1}
    assert all("no decode path" in str(f.error) for f in report.failures)
    assert check(untraceable, "jax", battery=battery).passed
    wrong = functools.partial(impls.jax_attention, mistake="gqa_heads_tiled")
    report = check(wrong, "jax", battery=battery)
    assert report.groups[0].mutant == "gqa_heads_tiled", str(report)
