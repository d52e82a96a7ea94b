"""The layouts page's PyTorch example, run by tests/test_flash_attn.py (torch, CPU)."""

import numpy as np
import torch
import torch.nn.functional as F

from refattn.compat.flash_attn import flash_attn_varlen_func

# --8<-- [start:torch]
# A packed batch in plain PyTorch: SDPA over the packed tokens with a block-diagonal mask.
lengths = [3, 1, 4]
cu_seqlens = torch.tensor([0, 3, 4, 8], dtype=torch.int32)
q, k, v = (torch.randn(8, 2, 16) for _ in range(3))  # (total, H, D), flash-attn's packing
segment = torch.repeat_interleave(torch.arange(3), torch.tensor(lengths))
mask = (segment[:, None] == segment[None, :]) & torch.ones(8, 8, dtype=torch.bool).tril()
out = F.scaled_dot_product_attention(
    q.transpose(0, 1),
    k.transpose(0, 1),
    v.transpose(0, 1),
    attn_mask=mask,  # (H, L, D)
).transpose(0, 1)

# refattn's flash-attn adapter takes the same arguments as flash_attn.flash_attn_varlen_func
reference = flash_attn_varlen_func(
    q.numpy(), k.numpy(), v.numpy(), cu_seqlens.numpy(), cu_seqlens.numpy(), 4, 4, causal=True
)
np.testing.assert_allclose(out.numpy(), reference, rtol=1e-5, atol=1e-5)
# --8<-- [end:torch]
