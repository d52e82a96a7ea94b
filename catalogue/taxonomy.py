"""The closed set of failure tags, copied from the project's taxonomy.

Every case carries one or more of these; ``diagnose`` answers with cases, so their tags
say which family a message belongs to. A test checks this copy against
``../shared/taxonomy.md`` when that file is beside the repository.
"""

from __future__ import annotations

TAGS: dict[str, tuple[str, str]] = {
    # tag: (family, what goes wrong)
    "qk-dim-mismatch": (
        "shape",
        "query and key feature sizes differ (projections built with different output sizes), so `Q·Kᵀ` cannot be formed",
    ),
    "missing-transpose": (
        "shape",
        "`Q @ K` instead of `Q @ Kᵀ`; fails, or silently works when the sequence length equals the head size",
    ),
    "batched-matmul": (
        "shape",
        "a 2-D operation (`mm`, a weight meant for one sequence, a wrong einsum subscript) used on batched input, or a 3-D op on 4-D heads",
    ),
    "kv-length-mismatch": (
        "shape",
        "key and value (or query/key in self-attention) end up with different sequence lengths, e.g. after slicing or resizing one of them",
    ),
    "batch-mismatch": (
        "shape",
        "batch sizes of query, key, value, mask or per-head outputs disagree; concatenation of head outputs fails",
    ),
    "head-split": (
        "shape",
        "`embed_dim` not divisible by `num_heads`; `chunk`/`array_split` giving unequal or fewer heads; `reshape`/`view` errors when splitting heads",
    ),
    "head-axis-order": (
        "shape",
        "heads split or merged with the wrong axis order (`reshape`/`view` without the transpose): no error, scrambled output",
    ),
    "layout-confusion": (
        "shape",
        "the input's axes are not what the layer expects: batch-first read as sequence-first (or the reverse), a missing feature axis, heads and sequence axes swapped; attention runs across the batch, or a later shape check names the wrong size",
    ),
    "gqa-heads": (
        "shape",
        "grouped-query / multi-query heads: query and key/value head counts that differ without the grouping (`enable_gqa`, `Hq % Hkv != 0`), or key/value heads repeated in the wrong order (`tile`/`repeat` instead of `repeat_interleave`), so query heads read another group's keys",
    ),
    "kernel-layout": (
        "shape",
        "a tensor given to a kernel in another axis layout than it expects (BSHD vs BHSD vs BTNH, packed `(total, H, D)` vs padded): runs, or fails far from the cause",
    ),
    "projection-width": (
        "shape",
        "an input or context width that does not match a projection's input features (cross-attention context from another encoder, `kdim`/`vdim`), or an output projection sized from the key size instead of the value size",
    ),
    "axis-out-of-range": (
        "shape",
        "transposing or softmaxing an axis the array does not have (a missing batch or head axis)",
    ),
    "mask-shape": (
        "mask",
        "the mask's shape does not broadcast against the scores `(B, H, L, S)`, or a backend needs it fully expanded",
    ),
    "mask-broadcast-axis": (
        "mask",
        "the mask broadcasts, but along the wrong axis (silent when two sizes happen to be equal)",
    ),
    "mask-polarity": (
        "mask",
        '`True` means "attend" in one API and "ignore" in another; the mask is inverted',
    ),
    "mask-missing": (
        "mask",
        "padding or future positions are not masked at all: no error, leaked attention",
    ),
    "mask-dtype": (
        "mask",
        "an integer or 0/1 float mask used where a boolean or an additive `-inf` mask is meant (the 0/1 mask is added instead of applied), or a float mask of another dtype than the query (float32 mask with float16/bfloat16 query)",
    ),
    "causal-alignment": (
        "mask",
        "causal mask aligned top-left where bottom-right is meant (or the reverse) when `Lq != Lk`, e.g. decoding with a KV cache",
    ),
    "window-size": (
        "mask",
        "sliding-window attention off by one or read in another convention: `(left, right)` offsets vs a key count including self vs a symmetric radius; a window silently not applied",
    ),
    "mask-after-softmax": (
        "mask",
        "weights zeroed after the softmax without renormalising, or the mask applied to the wrong tensor",
    ),
    "fully-masked-row": (
        "numerics",
        "every key of a query row is masked: softmax over all `-inf` gives NaN",
    ),
    "fp16-overflow": (
        "numerics",
        "constants like `1e9`/`-1e4` or large logits overflow in float16 (inf, `inf * 0 = NaN`)",
    ),
    "softmax-overflow": (
        "numerics",
        "`exp` without subtracting the row maximum overflows",
    ),
    "missing-scale": (
        "numerics",
        "no `1/sqrt(d)` (or the wrong `d`): softmax saturates, gradients vanish",
    ),
    "softmax-axis": (
        "numerics",
        "softmax taken over the query axis or the batch axis instead of the key axis",
    ),
    "inf-arithmetic": (
        "numerics",
        "`-inf` combined with `+inf` or multiplied by 0 in masks and biases",
    ),
    "backend-constraint": (
        "numerics",
        "a fused attention kernel (flash-attn, SDPA's flash / mem-efficient / cuDNN backends, xformers) refuses the call — dtype, GPU generation, head size, mask shape or alignment — or behaves differently from the math path on the same input (NaN, different fully-masked rows)",
    ),
    "reduced-precision": (
        "numerics",
        "positions, rotary tables or other attention inputs computed in bfloat16/float16 where they need float32: silent loss of accuracy (float16 overflow has its own tag)",
    ),
    "memory-blowup": (
        "numerics",
        "the full `(B, H, L, S)` scores or mask materialised at long sequence lengths: out of memory",
    ),
    "nan-in-padding": (
        "numerics",
        "NaN or inf values at masked-out (padded) positions of q, k or v still flow through the matmuls (NaN · 0 = NaN)",
    ),
    "position-out-of-range": (
        "index",
        "sequence longer than the position-embedding table (`index out of range`)",
    ),
    "token-out-of-range": (
        "index",
        "token id at or above the vocabulary size, or a `-1`/`-100` pad id used as an index",
    ),
    "ragged-lengths": (
        "index",
        "per-example lengths larger than the padded length, zero-length sequences, off-by-one when gathering the last token",
    ),
    "packed-sequences": (
        "index",
        "several sequences packed into one row (`cu_seqlens`, segment ids): boundaries missing (cross-document attention), `cu_seqlens` of the wrong shape, dtype or start, zero-length sequences",
    ),
    "positions": (
        "index",
        "position ids that do not follow the tokens: left padding without per-row position ids, positions not re-assigned after cache eviction, offsets of a cache out of step",
    ),
    "rotary-embedding": (
        "index",
        "rotary position embeddings applied with the other pairing convention (half-split vs interleaved), to the wrong number of dims, at the wrong positions, or to already-rotated keys",
    ),
    "head-index": (
        "index",
        "indexing a list of heads past its end (fewer chunks than heads)",
    ),
    "kv-cache": (
        "decoding",
        "a key/value cache concatenated along the wrong axis, out of step with positions or with the attention mask's length, overflowing its capacity, or evicted without keeping sink tokens",
    ),
}
