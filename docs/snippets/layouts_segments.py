"""The layouts page's segment_ids and sinks example, run by tests/test_segments_sinks.py."""

import numpy as np

from refattn import attention, attention_backward
from refattn.compat.flash_attn import flash_attn_varlen_func

rng = np.random.default_rng(0)

# --8<-- [start:segments]
# Two sequences of 3 and 4 queries, with 5 and 4 keys (cached keys before the queries).
lens_q, lens_k = [3, 4], [5, 4]
q = rng.standard_normal((2, 7, 16))  # (H, total_q, D)
k, v = (rng.standard_normal((2, 9, 16)) for _ in range(2))  # (H, total_k, D)
out = attention(
    q, k, v,
    segment_ids=np.repeat([0, 1], lens_q),  # (L,) segment of each query; -1 = padding
    key_segment_ids=np.repeat([0, 1], lens_k),  # (S,) segment of each key
    causal="bottom_right",  # per segment: query p of sq sees keys t <= p + sk - sq
)  # fmt: skip
cu_q, cu_k = (np.concatenate([[0], np.cumsum(n)]).astype(np.int32) for n in (lens_q, lens_k))
flash = flash_attn_varlen_func(
    q.swapaxes(0, 1), k.swapaxes(0, 1), v.swapaxes(0, 1), cu_q, cu_k, 4, 5, causal=True
)
np.testing.assert_allclose(out.swapaxes(0, 1), flash, rtol=1e-12)
# --8<-- [end:segments]

# --8<-- [start:sinks]
# One sink logit per query head joins every row's softmax denominator (gpt-oss).
sinks = np.array([0.5, -1.0])  # (Hq,)
output, weights, lse = attention(q, k, v, sinks=sinks, return_weights=True, return_lse=True)
assert weights is not None
assert lse is not None
assert (weights.sum(axis=-1) < 1).all()  # the sink's share, exp(sink - lse), has no value
np.testing.assert_allclose(weights.sum(axis=-1) + np.exp(sinks[:, None] - lse), 1)
grads = attention_backward(np.ones_like(output), q, k, v, sinks=sinks)
assert grads.sinks is not None
assert grads.sinks.shape == sinks.shape
# --8<-- [end:sinks]
