"""refattn's reference in PyTorch: the same einsum strings, the same masking order."""

import torch

SCORES = "...hgld,...hsd->...hgls"
MIX = "...hgls,...hsv->...hglv"


def attention(q, k, v, attend_mask=None, scale=None):
    """q (..., Hq, L, D), k (..., Hkv, S, D), v (..., Hkv, S, Dv); attend_mask True = attend."""
    *batch, hq, length_q, dim = q.shape
    hkv, length_k = k.shape[-3], k.shape[-2]
    q = q.reshape(*batch, hkv, hq // hkv, length_q, dim)  # (..., Hkv, G, L, D)
    s = torch.einsum(SCORES, q, k) * (dim**-0.5 if scale is None else scale)
    if attend_mask is not None:
        mask = attend_mask.expand(*batch, hq, length_q, length_k)
        s = s.masked_fill(~mask.reshape(s.shape), float("-inf"))
    top = s.amax(-1, keepdim=True)
    top = torch.where(torch.isinf(top), torch.zeros_like(top), top)  # fully masked rows
    e = torch.exp(s - top)
    total = e.sum(-1, keepdim=True)
    out = torch.einsum(MIX, e, v) / torch.where(total == 0, torch.ones_like(total), total)
    return out.reshape(*batch, hq, length_q, v.shape[-1])  # (..., Hq, L, Dv)
