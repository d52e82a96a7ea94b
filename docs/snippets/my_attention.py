"""Attention written out in PyTorch, with F.scaled_dot_product_attention's signature."""

import math

import torch


def attention(
    query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, enable_gqa=False
):
    work = torch.promote_types(query.dtype, torch.float32)  # half precision computed in float32
    q, k, v = query.to(work), key.to(work), value.to(work)  # (B, H, L, D), (B, Hkv, S, D)
    if enable_gqa and k.shape[-3] != q.shape[-3]:
        group = q.shape[-3] // k.shape[-3]
        k = k.repeat(1, group, 1, 1)  # (B, H, S, D)
        v = v.repeat(1, group, 1, 1)
    scale = 1 / math.sqrt(q.shape[-1]) if scale is None else scale
    scores = (q @ k.transpose(-2, -1)) * scale  # (B, H, L, S)
    if is_causal:
        keep = torch.ones(scores.shape[-2:], dtype=torch.bool).tril()
        scores = scores.masked_fill(~keep, float("-inf"))
    if attn_mask is not None and attn_mask.dtype == torch.bool:
        scores = scores.masked_fill(~attn_mask, float("-inf"))
    elif attn_mask is not None:
        scores = scores + attn_mask
    weights = torch.softmax(scores, dim=-1).nan_to_num(0.0)  # rows with no key: zeros
    return (weights @ v).to(query.dtype)  # (B, H, L, Dv)
