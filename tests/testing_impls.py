"""Hand-written attention implementations, correct or with exactly one mistake.

They share no code with ``refattn.testing``: each spells attention in plain NumPy or torch
the way people write it, and applies a mistake by hand where ``mistake`` names it. The
tests check that ``refattn.testing`` passes the correct ones and names the mistake of the
others.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

F = npt.NDArray[Any]


def _softmax_np(x: F, axis: int) -> F:
    m = np.max(x, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0)
    e = np.exp(x - m)
    s = e.sum(axis=axis, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(s > 0, e / np.where(s > 0, s, 1), 0)


def numpy_attention(
    q: F,
    k: F,
    v: F,
    *,
    attend_mask: Any = None,
    bias: Any = None,
    causal: str | None = None,
    window: tuple[int | None, int | None] | None = None,
    window_alignment: str | None = None,
    key_lengths: Any = None,
    query_lengths: Any = None,
    alibi_slopes: Any = None,
    softcap: float | None = None,
    scale: float | None = None,
    fully_masked: str = "zero",
    mistake: str | None = None,
) -> F:
    """refattn.attention's semantics in float32/float64 NumPy (float16 computed in float32)."""
    dtype = q.dtype
    work = np.float64 if dtype == np.float64 else np.float32
    q, k, v = q.astype(work), k.astype(work), v.astype(work)
    b, hq, length_q, d = q.shape
    hkv, length_k = k.shape[1], k.shape[2]
    g = hq // hkv
    if mistake == "truncated_keys":
        k, v = k[:, :, : length_k - 1], v[:, :, : length_k - 1]
        keep_k = length_k - 1
    else:
        keep_k = length_k
    if mistake == "gqa_heads_tiled":
        k, v = np.tile(k, (1, g, 1, 1)), np.tile(v, (1, g, 1, 1))
    else:
        k, v = np.repeat(k, g, axis=1), np.repeat(v, g, axis=1)
    if mistake == "scale_argument_ignored":
        scale = None
    if scale is None:
        scale = {"no_scale": 1.0, "scale_one_over_d": 1.0 / d}.get(str(mistake), d**-0.5)
    s = np.einsum("bhld,bhsd->bhls", q, k) * scale
    if softcap is not None:
        s = softcap * np.tanh(s / softcap)
    if bias is not None:
        s = s + np.asarray(bias, dtype=work)[..., :keep_k]
    i = np.arange(length_q)[:, None]
    j = np.arange(keep_k)[None, :]
    if alibi_slopes is not None:
        s = s - np.asarray(alibi_slopes, dtype=work)[:, None, None] * np.abs(
            i + length_k - length_q - j
        )
    keep = np.ones((b, hq, length_q, keep_k), bool)
    if attend_mask is not None:
        m = np.broadcast_to(np.asarray(attend_mask, bool), (b, hq, length_q, length_k))
        m = m[..., :keep_k]
        if mistake == "mask_inverted":
            m = ~m
        if mistake == "zero_one_mask_added":
            s = s + m
        elif mistake != "mask_ignored":
            keep &= m
    if causal is not None:
        top_left = causal == "top_left"
        if mistake == "causal_alignment_swapped":
            top_left = not top_left
        if mistake != "causal_ignored":
            keep &= j <= i + (0 if top_left else length_k - length_q)
    if window is not None:
        left, right = window
        align = window_alignment or causal
        if mistake in ("window_alignment_swapped", "causal_alignment_swapped") and (
            mistake == "window_alignment_swapped" or align == causal
        ):
            align = "top_left" if align == "bottom_right" else "bottom_right"
        off = 0 if align == "top_left" else length_k - length_q
        if left is not None:
            left += {"window_left_too_wide": 1, "window_left_too_narrow": -1}.get(str(mistake), 0)
        if right is not None:
            right += {"window_right_too_wide": 1, "window_right_too_narrow": -1}.get(
                str(mistake), 0
            )
        if mistake != "window_ignored":
            if left is not None:
                keep &= j - i - off >= -left
            if right is not None:
                keep &= j - i - off <= right
    if key_lengths is not None:
        pad = j < np.asarray(key_lengths)[:, None, None, None]  # (B, 1, 1, S)
        if mistake == "padding_broadcast_along_query":
            pad = np.swapaxes(pad, -1, -2)  # (B, 1, S, 1): the mask read along queries
        if mistake == "zero_one_mask_added":
            s = s + pad
        elif mistake != "mask_ignored":
            keep &= pad
    if query_lengths is not None:
        keep &= i < np.asarray(query_lengths)[:, None, None, None]
    if mistake == "mask_after_softmax":
        w = _softmax_np(s, -1) * keep
    else:
        s = np.where(keep, s, -np.inf)
        w = _softmax_np(s, -2 if mistake == "softmax_over_query_axis" else -1)
    out = w @ v  # (B, Hq, L, Dv)
    dead = ~keep.any(axis=-1, keepdims=True)
    policy = {
        "fully_masked_rows_nan": "nan",
        "fully_masked_rows_mean_of_value": "uniform",
        "fully_masked_rows_zero": "zero",
    }.get(str(mistake), fully_masked)
    if policy == "nan":
        out = np.where(dead, np.nan, out)
    elif policy == "uniform":
        out = np.where(dead, v.mean(axis=-2, keepdims=True), out)
    if mistake == "heads_merged_without_transpose":
        merged = out.reshape(b, length_q, hq * v.shape[-1])  # no transpose(1, 2) first
        out = merged.reshape(b, length_q, hq, -1).transpose(0, 2, 1, 3)
    return out.astype(dtype)


def torch_sdpa(
    q: Any,
    k: Any,
    v: Any,
    attn_mask: Any = None,
    dropout_p: float = 0.0,
    is_causal: bool = False,
    scale: float | None = None,
    enable_gqa: bool = False,
    *,
    mistake: str | None = None,
) -> Any:
    """torch SDPA's semantics in plain torch ops (CPU), computed in float32."""
    import torch

    dtype = q.dtype
    work = torch.float64 if dtype == torch.float64 else torch.float32
    q, k, v = q.to(work), k.to(work), v.to(work)
    b, hq, length_q, d = q.shape
    hkv, length_k = k.shape[1], k.shape[2]
    if mistake == "truncated_keys":
        k, v = k[:, :, :-1], v[:, :, :-1]
        if attn_mask is not None:
            attn_mask = attn_mask[..., :-1]
    s_len = k.shape[2]
    if hq != hkv:
        if mistake == "gqa_heads_tiled":
            k, v = k.repeat(1, hq // hkv, 1, 1), v.repeat(1, hq // hkv, 1, 1)
        else:
            k, v = k.repeat_interleave(hq // hkv, 1), v.repeat_interleave(hq // hkv, 1)
    if mistake == "scale_argument_ignored":
        scale = None
    if scale is None:
        scale = {"no_scale": 1.0, "scale_one_over_d": 1.0 / d}.get(str(mistake), d**-0.5)
    s = (q @ k.transpose(-1, -2)) * scale
    keep = torch.ones(b, hq, length_q, s_len, dtype=torch.bool)
    if is_causal:
        i = torch.arange(length_q)[:, None]
        j = torch.arange(s_len)[None, :]
        offset = length_k - length_q if mistake == "causal_alignment_swapped" else 0
        if mistake != "causal_ignored":
            keep = keep & (j <= i + offset)
    if attn_mask is not None:
        if attn_mask.dtype == torch.bool:
            m = attn_mask
            if mistake == "padding_broadcast_along_query" and m.shape[-2] == 1:
                m = m.transpose(-1, -2)
            if mistake == "mask_inverted":
                m = ~m
            if mistake == "zero_one_mask_added":
                s = s + m.to(work)
            elif mistake != "mask_ignored":
                keep = keep & m
        else:
            s = s + attn_mask.to(work)
    if mistake == "mask_after_softmax":
        w = torch.softmax(s, -1) * keep
    else:
        s = s.masked_fill(~keep, float("-inf"))
        w = torch.softmax(s, -2 if mistake == "softmax_over_query_axis" else -1)
        w = torch.nan_to_num(w, nan=0.0)  # fully masked rows: zeros (torch >= 2.5)
    out = w @ v
    dead = ~torch.isfinite(s).any(-1, keepdim=True)
    if mistake == "fully_masked_rows_nan":
        out = out.masked_fill(dead, float("nan"))
    if mistake == "fully_masked_rows_mean_of_value":
        out = torch.where(dead, v.mean(-2, keepdim=True).expand_as(out), out)
    if mistake == "heads_merged_without_transpose":
        out = out.reshape(b, length_q, hq, -1).transpose(1, 2)
    return out.to(dtype)


def flash_attn_func(
    q: Any,
    k: Any,
    v: Any,
    dropout_p: float = 0.0,
    softmax_scale: float | None = None,
    causal: bool = False,
    window_size: tuple[int, int] = (-1, -1),
    softcap: float = 0.0,
    alibi_slopes: Any = None,
    deterministic: bool = False,
    return_attn_probs: bool = False,
    *,
    mistake: str | None = None,
) -> Any:
    """flash-attn's semantics (BSHD, bottom-right causal and window) in plain torch."""
    import torch

    dtype = q.dtype
    q, k, v = (x.float().transpose(1, 2) for x in (q, k, v))  # (B, H, L, D)
    b, hq, length_q, d = q.shape
    hkv, length_k = k.shape[1], k.shape[2]
    if mistake == "truncated_keys":
        k, v = k[:, :, :-1], v[:, :, :-1]
    s_len = k.shape[2]
    if mistake == "gqa_heads_tiled":
        k, v = k.repeat(1, hq // hkv, 1, 1), v.repeat(1, hq // hkv, 1, 1)
    else:
        k, v = k.repeat_interleave(hq // hkv, 1), v.repeat_interleave(hq // hkv, 1)
    if mistake == "scale_argument_ignored":
        softmax_scale = None
    if softmax_scale is None:
        softmax_scale = {"no_scale": 1.0, "scale_one_over_d": 1.0 / d}.get(str(mistake), d**-0.5)
    s = (q @ k.transpose(-1, -2)) * softmax_scale
    if softcap:
        s = softcap * torch.tanh(s / softcap)
    i = torch.arange(length_q)[:, None]
    j = torch.arange(s_len)[None, :]
    off = length_k - length_q
    if alibi_slopes is not None:
        s = s - alibi_slopes.float()[:, None, None] * (i + off - j).abs()
    keep = torch.ones(b, hq, length_q, s_len, dtype=torch.bool)
    if causal and mistake != "causal_ignored":
        coff = 0 if mistake == "causal_alignment_swapped" else off
        keep = keep & (j <= i + coff)
    left, right = window_size
    if left >= 0:
        left += {"window_left_too_wide": 1, "window_left_too_narrow": -1}.get(str(mistake), 0)
    if right >= 0:
        right += {"window_right_too_wide": 1, "window_right_too_narrow": -1}.get(str(mistake), 0)
    swapped = mistake == "window_alignment_swapped" or (
        mistake == "causal_alignment_swapped" and causal
    )
    woff = 0 if swapped else off
    if mistake != "window_ignored":
        if left >= 0:
            keep = keep & (j - i - woff >= -left)
        if right >= 0:
            keep = keep & (j - i - woff <= right)
    s = s.masked_fill(~keep, float("-inf"))
    w = torch.nan_to_num(torch.softmax(s, -2 if mistake == "softmax_over_query_axis" else -1))
    out = w @ v  # (B, H, L, D)
    dead = ~keep.any(-1, keepdim=True)
    if mistake == "fully_masked_rows_nan":
        out = out.masked_fill(dead, float("nan"))
    if mistake == "fully_masked_rows_mean_of_value":
        out = torch.where(dead, v.mean(-2, keepdim=True).expand_as(out), out)
    if mistake == "heads_merged_without_transpose":
        return out.reshape(b, length_q, hq, -1).to(dtype)  # (B, H, L, D) memory read as BSHD
    return out.transpose(1, 2).to(dtype)


def jax_attention(
    query: Any,
    key: Any,
    value: Any,
    bias: Any = None,
    mask: Any = None,
    *,
    scale: float | None = None,
    is_causal: bool = False,
    query_seq_lengths: Any = None,
    key_value_seq_lengths: Any = None,
    local_window_size: Any = None,
    mistake: str | None = None,
) -> Any:
    """jax.nn.dot_product_attention's semantics (BTNH, top-left) in plain jax.numpy."""
    import jax
    import jax.numpy as jnp

    dtype = query.dtype
    q, k, v = (x.astype(jnp.float32).transpose(0, 2, 1, 3) for x in (query, key, value))
    b, hq, length_q, d = q.shape
    hkv, length_k = k.shape[1], k.shape[2]
    if mistake == "gqa_heads_tiled":
        k, v = jnp.tile(k, (1, hq // hkv, 1, 1)), jnp.tile(v, (1, hq // hkv, 1, 1))
    else:
        k, v = jnp.repeat(k, hq // hkv, axis=1), jnp.repeat(v, hq // hkv, axis=1)
    if mistake == "scale_argument_ignored":
        scale = None
    if scale is None:
        scale = {"no_scale": 1.0, "scale_one_over_d": 1.0 / d}.get(str(mistake), d**-0.5)
    s = (q @ k.transpose(0, 1, 3, 2)) * scale
    if bias is not None:
        s = s + bias.astype(jnp.float32)
    keep = jnp.ones((b, hq, length_q, length_k), bool)
    if mask is not None:
        keep = keep & (~mask if mistake == "mask_inverted" else mask)
    i = jnp.arange(length_q)[:, None]
    j = jnp.arange(length_k)[None, :]
    if is_causal:
        keep = keep & (
            j <= i + (length_k - length_q if mistake == "causal_alignment_swapped" else 0)
        )
    if local_window_size is not None:
        left, right = local_window_size
        if mistake == "window_left_too_wide":
            left += 1
        keep = keep & (j - i >= -left) & (j - i <= right)
    if key_value_seq_lengths is not None:
        keep = keep & (j < key_value_seq_lengths[:, None, None, None])
    s = jnp.where(keep, s, -jnp.inf)
    w = jax.nn.softmax(s, axis=-1)
    out = jnp.nan_to_num(w) @ v
    dead = ~keep.any(-1, keepdims=True)
    if mistake != "fully_masked_rows_zero":
        out = jnp.where(dead, v.mean(-2, keepdims=True), out)  # JAX: mean of value
    return out.transpose(0, 2, 1, 3).astype(dtype)
