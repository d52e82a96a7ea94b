"""Every option combination against the float64 loop reference, on every kernel path.

Small shapes, many of them (2,400 configurations): masks (random, left-padded keys),
causal in both alignments, windows, key and query lengths, ALiBi, softcap, bias with
-inf, GQA, broadcast batch dims, dropout_keep, every fully_masked policy, logits far
below zero; each run dense and with the key-chunked online path forced at tiny block,
row and chunk sizes (and threads forced on), so that bugs which need many blocks and
chunks show at sizes the pure-Python reference can check.
"""

from __future__ import annotations

from contextlib import ExitStack
from typing import Any
from unittest import mock

import numpy as np
import pytest

from refattn import _kernel, attention
from refattn.errors import FullyMaskedRowError
from tests.loop_reference import loop_attention

GROUPS, PER_GROUP = 24, 100


def _config(rng: np.random.Generator) -> dict[str, Any]:
    """One random configuration: inputs and options, all float64."""
    batch = [(), (2,), (2, 2)][rng.integers(3)]
    hkv = int(rng.integers(1, 3))
    hq = hkv * int(rng.integers(1, 3))
    length_q, length_k = int(rng.integers(1, 6)), int(rng.integers(1, 21))
    dim, dim_v = int(rng.integers(1, 4)), int(rng.integers(1, 3))
    kv_batch = batch[int(rng.integers(len(batch) + 1)) :]
    q = rng.standard_normal((*batch, hq, length_q, dim)) * 2
    k = rng.standard_normal((*kv_batch, hkv, length_k, dim)) * 2
    v = rng.standard_normal((*kv_batch, hkv, length_k, dim_v))
    if rng.random() < 0.3:  # every logit far below zero: exp underflows without the shift
        q[..., 0] = -[100.0, 800.0, 1e4][rng.integers(3)]
        k[..., 0] = 1.0
    cfg: dict[str, Any] = {"q": q, "k": k, "v": v}
    scores = (*batch, hq, length_q, length_k)
    # first batch dim only: broadcast over (B1, B2) it is read per entry, never copied
    outer = (*batch[:1], *[1] * (len(batch) - 1), 1, length_q, length_k)
    mask_kind = rng.integers(4)
    if mask_kind == 1:
        shapes = [(length_q, length_k), scores, (*batch, 1, 1, length_k), outer]
        cfg["attend_mask"] = rng.random(shapes[rng.integers(4)]) < 0.7
    elif mask_kind == 2 and batch:  # left-padded keys: key j of entry b is real iff j >= pad
        pads = rng.integers(0, length_k + 1, size=batch)
        cfg["attend_mask"] = np.arange(length_k) >= pads[..., None, None, None]
    if rng.random() < 0.4:
        bias = rng.standard_normal([(length_q, length_k), scores, outer][rng.integers(3)])
        if rng.random() < 0.5:
            bias[rng.random(bias.shape) < 0.2] = -np.inf
        cfg["bias"] = bias
    cfg["causal"] = [None, "top_left", "bottom_right"][rng.integers(3)]
    if rng.random() < 0.4:
        sides = [None, 0, 1, 3]
        cfg["window"] = (sides[rng.integers(4)], sides[rng.integers(4)])
        if cfg["causal"] is None:
            cfg["window_alignment"] = ["top_left", "bottom_right"][rng.integers(2)]
    if batch and rng.random() < 0.3:
        cfg["key_lengths"] = rng.integers(0, length_k + 1, size=batch)
    if batch and rng.random() < 0.3:
        cfg["query_lengths"] = rng.integers(0, length_q + 1, size=batch)
    if rng.random() < 0.3:
        cfg["alibi_slopes"] = rng.random(hq)
    if rng.random() < 0.3:
        cfg["softcap"] = float(rng.choice([0.5, 3.0, 50.0]))
    if rng.random() < 0.2:
        cfg["scale"] = float(rng.uniform(-2, 2))
    if rng.random() < 0.25:
        cfg["dropout_p"] = 0.3
        cfg["dropout_keep"] = rng.random([scores, outer][rng.integers(2)]) >= 0.3
    cfg["fully_masked"] = ["zero", "uniform", "nan", "raise"][rng.integers(4)]
    return cfg


def _forced_paths(rng: np.random.Generator) -> tuple[dict[str, int], int | None]:
    """Kernel constants that cut even tiny calls into many blocks and key chunks."""
    constants = {
        "_BLOCK_BYTES": int(rng.choice([8, 64, 1 << 20])),
        "_MIN_ROWS": int(rng.choice([1, 2, 64])),
        "_MIN_CHUNK": int(rng.choice([1, 3, 16])),
        "_CAUSAL_BLOCKS": int(rng.choice([1, 8])),
        "_PARALLEL_MIN_WORK": int(rng.choice([0, 1 << 18])),
    }
    return constants, [0, None][rng.integers(2)]


def _run(cfg: dict[str, Any], constants: dict[str, int], budget: int | None) -> Any:
    kwargs = {n: x for n, x in cfg.items() if n not in ("q", "k", "v")}
    with ExitStack() as stack:
        for name, value in constants.items():
            stack.enter_context(mock.patch.object(_kernel, name, value))
        return attention(
            cfg["q"], cfg["k"], cfg["v"], memory_budget=budget, return_lse=True, **kwargs
        )


@pytest.mark.parametrize("group", range(GROUPS))
def test_option_combinations_match_loop_reference_on_every_path(group: int) -> None:
    rng = np.random.default_rng(1000 + group)
    for _ in range(PER_GROUP):
        cfg = _config(rng)
        constants, budget = _forced_paths(rng)
        kwargs = {n: x for n, x in cfg.items() if n not in ("q", "k", "v")}
        try:
            out, _, lse = loop_attention(cfg["q"], cfg["k"], cfg["v"], **kwargs)
        except ValueError:  # the loop reference's fully_masked="raise"
            with pytest.raises(FullyMaskedRowError):
                _run(cfg, constants, budget)
            continue
        for got in (_run(cfg, {}, None), _run(cfg, constants, budget)):
            context = f"{kwargs}, {constants}, budget={budget}"
            np.testing.assert_allclose(got.output, out, rtol=1e-9, atol=1e-12, err_msg=context)
            np.testing.assert_allclose(got.lse, lse, rtol=1e-9, atol=1e-12, err_msg=context)
