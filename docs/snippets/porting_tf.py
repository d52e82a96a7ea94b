"""refattn's reference in TensorFlow: the same einsum strings, the same masking order."""

import tensorflow as tf

SCORES = "...hgld,...hsd->...hgls"
MIX = "...hgls,...hsv->...hglv"


def attention(q, k, v, attend_mask=None, scale=None):
    """q (..., Hq, L, D), k (..., Hkv, S, D), v (..., Hkv, S, Dv); attend_mask True = attend."""
    *batch, hq, length_q, dim = q.shape
    hkv, length_k = k.shape[-3], k.shape[-2]
    q = tf.reshape(q, (*batch, hkv, hq // hkv, length_q, dim))  # (..., Hkv, G, L, D)
    s = tf.einsum(SCORES, q, k) * (dim**-0.5 if scale is None else scale)
    if attend_mask is not None:
        mask = tf.broadcast_to(attend_mask, (*batch, hq, length_q, length_k))
        s = tf.where(tf.reshape(mask, s.shape), s, float("-inf"))
    top = tf.reduce_max(s, -1, keepdims=True)
    top = tf.where(tf.math.is_inf(top), tf.zeros_like(top), top)  # fully masked rows
    e = tf.exp(s - top)
    total = tf.reduce_sum(e, -1, keepdims=True)
    out = tf.einsum(MIX, e, v) / tf.where(total == 0, tf.ones_like(total), total)
    return tf.reshape(out, (*batch, hq, length_q, v.shape[-1]))  # (..., Hq, L, Dv)
