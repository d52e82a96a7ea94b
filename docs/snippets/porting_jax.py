"""refattn's reference in JAX: the same einsum strings, the same masking order."""

import jax.numpy as jnp

SCORES = "...hgld,...hsd->...hgls"
MIX = "...hgls,...hsv->...hglv"


def attention(q, k, v, attend_mask=None, scale=None):
    """q (..., Hq, L, D), k (..., Hkv, S, D), v (..., Hkv, S, Dv); attend_mask True = attend."""
    *batch, hq, length_q, dim = q.shape
    hkv, length_k = k.shape[-3], k.shape[-2]
    q = q.reshape(*batch, hkv, hq // hkv, length_q, dim)  # (..., Hkv, G, L, D)
    s = jnp.einsum(SCORES, q, k) * (dim**-0.5 if scale is None else scale)
    if attend_mask is not None:
        mask = jnp.broadcast_to(attend_mask, (*batch, hq, length_q, length_k))
        s = jnp.where(mask.reshape(s.shape), s, -jnp.inf)
    top = s.max(-1, keepdims=True)
    top = jnp.where(jnp.isinf(top), jnp.zeros_like(top), top)  # fully masked rows
    e = jnp.exp(s - top)
    total = e.sum(-1, keepdims=True)
    out = jnp.einsum(MIX, e, v) / jnp.where(total == 0, jnp.ones_like(total), total)
    return out.reshape(*batch, hq, length_q, v.shape[-1])  # (..., Hq, L, Dv)
