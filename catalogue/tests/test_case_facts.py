"""Framework behaviour that case pages state but no case variant runs.

Each test runs one sentence of a case's docstring, so the sentence fails CI when the
framework changes. torch, jax and tensorflow-cpu are installed by the test setup.
"""

from __future__ import annotations

import numpy as np
import pytest

from catalogue import get


def test_jax_cache_write_past_capacity_clamps_or_drops() -> None:
    """kv_cache_written_past_capacity: JAX does not raise on a write at position 4 of 4."""
    import jax
    import jax.numpy as jnp

    doc = get("kv_cache_written_past_capacity").module.__doc__ or ""
    assert "clamps the" in doc
    assert "drops" in doc
    cache = jnp.arange(16.0).reshape(1, 1, 4, 4)
    new = jnp.full((1, 1, 1, 4), -1.0)
    clamped = np.asarray(jax.lax.dynamic_update_slice(cache, new, (0, 0, 4, 0)))
    assert (clamped[0, 0, 3] == -1).all()  # the last cached token was overwritten
    assert (clamped[0, 0, :3] == np.arange(12.0).reshape(3, 4)).all()
    dropped = np.asarray(cache.at[:, :, 4].set(new[:, :, 0]))
    assert (dropped == np.asarray(cache)).all()  # the update vanished


def test_sdpa_dropout_applies_in_eval_and_forced_flash_warns_why() -> None:
    """attention_dropout_left_on_at_inference: dropout_p is applied in eval(); the warnings."""
    import warnings

    import torch
    import torch.nn.functional as F

    case = get("attention_dropout_left_on_at_inference").module
    doc = case.__doc__ or ""
    q = torch.from_numpy(case._inputs()[0])
    torch.manual_seed(0)
    first = F.scaled_dot_product_attention(q, q, q, dropout_p=case.DROPOUT)
    second = F.scaled_dot_product_attention(q, q, q, dropout_p=case.DROPOUT)
    assert not torch.allclose(first, second)  # a function: no eval() to switch it off
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(RuntimeError, match="No available kernel"):
            case.torch_broken()
    from torch.nn.attention import SDPBackend, sdpa_kernel

    with sdpa_kernel([SDPBackend.FLASH_ATTENTION, SDPBackend.MATH]):  # the fix's fallback
        assert F.scaled_dot_product_attention(q, q, q, dropout_p=case.DROPOUT).shape == q.shape
    assert "SDPBackend.MATH])" in doc
    said = [str(w.message) for w in caught]
    for text in ("Flash attention kernel not used because:", "Both fused kernels do not support"):
        assert text in doc
        assert any(text in message for message in said), said


def test_refattn_refuses_query_heads_not_a_multiple() -> None:
    """gqa_query_heads_not_a_multiple: refattn's message names both head counts."""
    from refattn import attention
    from refattn.errors import AttentionShapeError

    assert "naming both counts" in (get("gqa_query_heads_not_a_multiple").module.__doc__ or "")
    q, kv = np.ones((1, 6, 4, 8)), np.ones((1, 4, 4, 8))
    with pytest.raises(AttentionShapeError, match=r"Hq=6 should be a multiple of .* Hkv=4"):
        attention(q, kv, kv)


def test_jax_dot_product_attention_has_lengths_not_offsets() -> None:
    """cu_seqlens_without_leading_zero and mha_3d_mask_per_example: their JAX_ABSENT."""
    import inspect

    import jax

    params = inspect.signature(jax.nn.dot_product_attention).parameters
    assert {"query_seq_lengths", "key_value_seq_lengths", "mask"} <= set(params)
    assert not [p for p in params if "cu_seq" in p or "offset" in p]
    absent = get("cu_seqlens_without_leading_zero").absent["jax"]
    assert "query_seq_lengths" in absent
    q = jax.numpy.ones((2, 5, 4, 2))  # (B, T, N, H)
    mask = jax.numpy.ones((2, 4, 5, 5), dtype=bool)  # (B, N, T, S)
    assert jax.nn.dot_product_attention(q, q, q, mask=mask).shape == (2, 5, 4, 2)
    assert "(B, N, T, S)" in get("mha_3d_mask_per_example").absent["jax"]
