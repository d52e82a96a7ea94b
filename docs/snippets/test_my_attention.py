import pytest
import torch
from my_attention import attention

from refattn.testing import assert_attention_close


@pytest.mark.parametrize("heads_kv", [4, 2, 1])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_attention_matches_refattn(heads_kv, dtype):
    g = torch.Generator().manual_seed(0)
    q = torch.randn(2, 4, 7, 16, generator=g, dtype=dtype)  # (B, H, L, D)
    k = torch.randn(2, heads_kv, 9, 16, generator=g, dtype=dtype)  # (B, Hkv, S, D)
    v = torch.randn(2, heads_kv, 9, 16, generator=g, dtype=dtype)
    out = attention(q, k, v, is_causal=True, enable_gqa=True)
    assert_attention_close(out, q, k, v, causal="top_left")  # torch's is_causal: top-left
