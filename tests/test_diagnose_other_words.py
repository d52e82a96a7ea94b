"""diagnose on messages written in other words than its rules: a regression floor.

Each message was written for these tests (families by hand, before running diagnose on
it): framework wordings at other sizes and in other phrasings (PyTorch, including strings
of torch 2.13's SDPA checks, JAX, TensorFlow, NumPy), and symptom reports in a user's
words. They were written while the rules were being improved, so they are no held-out
measure; the floors below guard against losing what they cover.
"""

from __future__ import annotations

from catalogue.diagnose import diagnose

MESSAGES: list[tuple[str, set[str]]] = [
    (
        "RuntimeError: The expanded size of the tensor (128) must match the existing size "
        "(64) at non-singleton dimension 3.  Target sizes: [2, 8, 128, 128].  Tensor sizes: "
        "[2, 1, 1, 64]",
        {"kv-length-mismatch", "kv-cache", "mask-shape"},
    ),
    (
        "RuntimeError: CUDA error: device-side assert triggered. "
        "../aten/src/ATen/native/cuda/Indexing.cu:1141: indexSelectLargeIndex: block: "
        "[0,0,0], thread: [0,0,0] Assertion `srcIndex < srcSelectDimSize` failed.",
        {"token-out-of-range", "position-out-of-range"},
    ),
    ("RuntimeError: No available kernel. Aborting execution.", {"backend-constraint"}),
    (
        "UserWarning: Memory efficient kernel not used because: ... Flash attention kernel "
        "not used because: Both fused kernels do not support non-null attn_mask.",
        {"backend-constraint"},
    ),
    (
        "RuntimeError: FlashAttention only support fp16 and bf16 data type",
        {"backend-constraint"},
    ),
    (
        "RuntimeError: FlashAttention backward for head dim > 192 requires A100/A800 or H100/H800",
        {"backend-constraint"},
    ),
    (
        "ValueError: Attention mask should be of size (4, 1, 32, 32), but is torch.Size([4, "
        "1, 32, 40])",
        {"kv-length-mismatch", "kv-cache", "mask-shape"},
    ),
    (
        "RuntimeError: Expected attn_mask dtype to be bool or float or to match query dtype, "
        "but got attn_mask.dtype: long int and  query.dtype: float instead.",
        {"mask-dtype"},
    ),
    ("AssertionError: embed_dim must be divisible by num_heads", {"head-split"}),
    (
        "RuntimeError: shape '[2, 10, 12, 64]' is invalid for input of size 10240",
        {"head-split"},
    ),
    (
        "the attention weights are all the same for every token, the softmax output is uniform",
        {"mask-dtype", "missing-scale", "softmax-axis"},
    ),
    (
        "training loss drops to almost 0 after a few hundred steps but generation is garbage; "
        "I think the model can see the future tokens",
        {"causal-alignment", "mask-missing"},
    ),
    (
        "Getting NaN after softmax when an entire row of the attention mask is -inf",
        {"fully-masked-row"},
    ),
    (
        "the output for the same sentence changes when I batch it with longer sentences (more "
        "padding)",
        {"positions", "mask-missing"},
    ),
    (
        "RuntimeError: value cannot be converted to type at::Half without overflow",
        {"fp16-overflow"},
    ),
    (
        "RuntimeError: The size of tensor a (32) must match the size of tensor b (8) at "
        "non-singleton dimension 1 (llama with num_key_value_heads=8)",
        {"gqa-heads"},
    ),
    (
        "IndexError: index out of range in self (bert, input of 600 tokens)",
        {"token-out-of-range", "position-out-of-range"},
    ),
    (
        "RuntimeError: CUDA error: an illegal memory access was encountered "
        "(flash_attn_varlen_func with cu_seqlens)",
        {"packed-sequences", "backend-constraint"},
    ),
    (
        "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 32.00 GiB when running "
        "attention with seq_len=65536",
        {"memory-blowup"},
    ),
    (
        "TypeError: dot_general requires contracting dimensions to have the same shape, got "
        "(64,) and (32,).",
        {"qk-dim-mismatch", "projection-width"},
    ),
    (
        "ValueError: Incompatible shapes for broadcasting: shapes=[(2, 8, 16, 16), (2, 16)]",
        {"mask-shape", "mask-broadcast-axis"},
    ),
    (
        "InvalidArgumentError: Incompatible shapes: [32,8,50,50] vs. [32,1,1,49] [Op:AddV2]",
        {"kv-length-mismatch", "mask-shape"},
    ),
    (
        "ValueError: Dimensions must be equal, but are 64 and 32 for '{{node MatMul}} = "
        "BatchMatMulV2[T=DT_FLOAT, adj_x=false, adj_y=true](q, k)' with input shapes: "
        "[?,8,10,64], [?,8,10,32].",
        {"qk-dim-mismatch"},
    ),
    (
        "RuntimeError: expected scalar type Half but found Float (in attention: scores = "
        "torch.matmul(q, k.transpose(-1, -2)) + attn_bias)",
        {"mask-dtype", "reduced-precision"},
    ),
    (
        "RuntimeError: Expected query, key, and value to have the same dtype, but got "
        "query.dtype: float key.dtype: c10::Half and value.dtype: c10::Half instead.",
        {"reduced-precision"},
    ),
    (
        "ValueError: too many values to unpack (expected 3) at bsz, tgt_len, embed_dim = "
        "query.size() in multi_head_attention_forward",
        {"layout-confusion", "batched-matmul", "axis-out-of-range"},
    ),
    (
        "AssertionError: was expecting embedding dimension of 512, but got 256",
        {"projection-width"},
    ),
    (
        "generation repeats the same token after the first step when use_cache=True, correct "
        "with use_cache=False",
        {"causal-alignment", "positions", "kv-cache"},
    ),
    (
        "batched generation with left padding gives different results than generating each "
        "prompt alone",
        {"positions"},
    ),
    (
        "loss becomes NaN when training with fp16 mixed precision and flash attention",
        {"backend-constraint", "fp16-overflow"},
    ),
    (
        "my RoPE implementation gives different outputs from the HuggingFace Llama implementation",
        {"rotary-embedding"},
    ),
    (
        "sliding window attention: each token attends to one more position than the window size",
        {"window-size"},
    ),
    (
        "RuntimeError: Sizes of tensors must match except in dimension 2. Expected size 8 but "
        "got size 32 for tensor number 1 in the list.",
        {"kv-cache", "gqa-heads"},
    ),
    (
        "Token indices sequence length is longer than the specified maximum sequence length "
        "for this model (1024 > 512). Running this sequence through the model will result in "
        "indexing errors",
        {"position-out-of-range"},
    ),
    (
        "RuntimeError: The size of tensor a (1024) must match the size of tensor b (512) at "
        "non-singleton dimension 1 (embeddings = inputs_embeds + position_embeddings)",
        {"position-out-of-range"},
    ),
    (
        "attention scores become inf in float16 and then the softmax gives NaN",
        {"softmax-overflow", "fp16-overflow"},
    ),
    (
        "softmax is applied over dim=1 instead of the last dimension, the weights sum to 1 "
        "over the queries",
        {"softmax-axis"},
    ),
    (
        "I pass key_padding_mask with 1 for real tokens and 0 for padding and the results are "
        "garbage",
        {"mask-polarity"},
    ),
    (
        "nn.MultiheadAttention output is wrong because my input is (batch, seq, feature) and "
        "I didn't set batch_first=True",
        {"layout-confusion"},
    ),
    (
        "the padding tokens are not masked in my attention, so the output depends on how much "
        "padding there is",
        {"mask-missing"},
    ),
    (
        "RuntimeError: Expected size for first two dimensions of batch2 tensor to be: [16, "
        "64] but got: [16, 50].",
        {"missing-transpose", "qk-dim-mismatch"},
    ),
    (
        "ValueError: The last dimension of `query_shape` and `value_shape` must be equal, but "
        "are 64, 32.",
        {"qk-dim-mismatch", "projection-width"},
    ),
    (
        "jax: TypeError: mul got incompatible shapes for broadcasting: (4, 8, 128, 128), (4, 128).",
        {"mask-shape", "mask-broadcast-axis"},
    ),
    (
        "attention weights do not sum to one after I set masked positions to zero after the "
        "softmax",
        {"mask-after-softmax"},
    ),
    (
        "model outputs NaN only for the padded positions, the real tokens are fine",
        {"nan-in-padding", "fully-masked-row"},
    ),
    (
        "the causal mask for kv cache decoding: query of length 1 attends only to the first key",
        {"causal-alignment", "kv-cache"},
    ),
    (
        "RuntimeError: CUDA error: CUBLAS_STATUS_EXECUTION_FAILED when calling "
        "cublasSgemmStridedBatched in attention with a large batch",
        {"backend-constraint", "memory-blowup"},
    ),
    (
        "Gemma 2 outputs garbage with sdpa attention but works with eager, because of "
        "attention logit softcapping",
        {"backend-constraint"},
    ),
    (
        "the model attends across documents when I pack several sequences into one row for "
        "training",
        {"packed-sequences"},
    ),
    (
        "query has 32 heads but key has 8, RuntimeError in scaled_dot_product_attention",
        {"gqa-heads"},
    ),
    (
        "Model outputs are different when batch size is 1 vs batch size 8 with padding",
        {"positions", "mask-missing"},
    ),
    (
        "[Bug] Llama generates garbage with batched inputs and padding_side='right'",
        {"positions", "mask-missing"},
    ),
    (
        "Attention weights are NaN for sequences that are fully padded",
        {"fully-masked-row"},
    ),
    ("SDPA returns NaN when attn_mask has a row of all False", {"fully-masked-row"}),
    (
        "Training loss is suspiciously low from the start with my decoder-only model",
        {"causal-alignment", "mask-missing"},
    ),
    (
        "The decoder can see the target tokens it is supposed to predict",
        {"causal-alignment", "mask-missing"},
    ),
    (
        "After converting the model to fp16 the attention produces inf",
        {"softmax-overflow", "fp16-overflow"},
    ),
    (
        "torch.finfo(torch.float32).min used as mask value causes NaN in bf16",
        {"reduced-precision", "inf-arithmetic", "fp16-overflow"},
    ),
    (
        "Output of my multi-head attention is scrambled: I reshape (B, L, H*D) directly to "
        "(B, H, L, D)",
        {"head-split", "head-axis-order"},
    ),
    (
        "merging heads with .view(B, L, H*D) after attention gives wrong results",
        {"head-axis-order"},
    ),
    (
        "Results differ between flash_attention_2 and eager attention for Mistral with "
        "sliding window",
        {"backend-constraint", "window-size"},
    ),
    (
        "Generation quality drops after 4096 tokens with Mistral sliding window attention",
        {"rotary-embedding", "kv-cache", "window-size"},
    ),
    (
        "Padding mask is applied along the query dimension instead of the key dimension",
        {"mask-broadcast-axis"},
    ),
    (
        "The attention mask is broadcast over the wrong axis so padded queries are masked "
        "instead of padded keys",
        {"mask-broadcast-axis"},
    ),
    (
        "key_padding_mask uses True for padding but I passed True for real tokens",
        {"mask-polarity"},
    ),
    (
        "Inverted attention mask: 1 means keep in HF but True means masked in "
        "nn.MultiheadAttention",
        {"mask-polarity"},
    ),
    (
        "Softmax is computed over the batch dimension in my attention implementation",
        {"softmax-axis"},
    ),
    (
        "All attention weights are equal to 1/seq_len no matter the input",
        {"mask-dtype", "missing-scale", "softmax-axis"},
    ),
    (
        "attention is too peaked, almost one-hot, for large head dimension; I forgot to "
        "divide by sqrt(d_k)",
        {"missing-scale"},
    ),
    (
        "Keras MultiHeadAttention ignores my padding mask",
        {"mask-missing", "mask-shape"},
    ),
    (
        "tf.keras.layers.Attention: InvalidArgumentError: required broadcastable shapes [Op:Mul]",
        {"mask-shape", "mask-broadcast-axis"},
    ),
    (
        "jax.nn.dot_product_attention returns NaN when mask is all False for a query",
        {"fully-masked-row"},
    ),
    (
        "flax MultiHeadDotProductAttention: ValueError: mask ndim should be 4, but got 2",
        {"mask-shape"},
    ),
    (
        "Incorrect outputs when using KV cache with batch generation and left padding",
        {"positions", "kv-cache"},
    ),
    (
        "position_ids are not updated when using past_key_values, every new token gets position 0",
        {"positions", "kv-cache"},
    ),
    (
        "RoPE applied with the wrong head dimension: cos and sin shape mismatch",
        {"rotary-embedding"},
    ),
    (
        "RuntimeError: The size of tensor a (64) must match the size of tensor b (128) at "
        "non-singleton dimension 3 in apply_rotary_pos_emb",
        {"rotary-embedding"},
    ),
    (
        "RuntimeError: The size of tensor a (4097) must match the size of tensor b (4096) at "
        "non-singleton dimension 3",
        {"causal-alignment", "position-out-of-range", "kv-cache"},
    ),
    (
        "ValueError: cannot reshape array of size 6144 into shape (2,12,8,64)",
        {"head-split"},
    ),
    (
        "RuntimeError: shape '[1, 7, 32, 128]' is invalid for input of size 7168 (llama 70B, "
        "num_key_value_heads=8)",
        {"gqa-heads"},
    ),
    (
        "RuntimeError: einsum(): operands do not broadcast with remapped shapes "
        "[original->remapped]: [2, 8, 16, 64]->[2, 8, 16, 1, 64] [2, 4, 16, 64]->[2, 4, 1, "
        "16, 64]",
        {"batch-mismatch", "gqa-heads"},
    ),
    (
        "Attention dropout is still applied in eval mode, outputs are non-deterministic",
        {"backend-constraint"},
    ),
    (
        "Outputs change every run even with model.eval(), dropout_p passed to "
        "scaled_dot_product_attention",
        {"backend-constraint"},
    ),
    (
        "Causal mask is off by one: each token cannot attend to itself",
        {"causal-alignment", "fully-masked-row"},
    ),
    (
        "With is_causal=True and a query shorter than the key (kv cache), the mask is aligned "
        "top-left",
        {"causal-alignment"},
    ),
    (
        "Using torch.triu(ones, diagonal=0) as the causal mask makes the first row all -inf "
        "and NaN",
        {"causal-alignment", "fully-masked-row"},
    ),
    (
        "packed sequences with flash_attn_varlen_func give wrong results, cu_seqlens starts at 3",
        {"packed-sequences"},
    ),
    (
        "Cross-attention fails: mat1 and mat2 shapes cannot be multiplied (77x768 and 1024x320)",
        {"projection-width"},
    ),
    (
        "the memory bank / encoder output has 512 features but the decoder cross attention "
        "expects 768",
        {"projection-width"},
    ),
    (
        "NaN gradients in attention backward when some rows are fully masked",
        {"inf-arithmetic", "fully-masked-row"},
    ),
    (
        "masked_fill(mask, float('-inf')) followed by softmax gives NaN for padded rows",
        {"fully-masked-row"},
    ),
    (
        "loss becomes NaN after a few thousand steps with bf16 in attention logits",
        {"reduced-precision", "softmax-overflow", "fp16-overflow"},
    ),
    (
        "Vision transformer: attention maps look uniform / identical across heads",
        {"head-axis-order", "missing-scale", "gqa-heads"},
    ),
    (
        "tensorflow: ValueError: Shapes (None, 10, 64) and (None, 10, 128) are incompatible",
        {"projection-width"},
    ),
    (
        "InvalidArgumentError: indices[0,512] = 512 is not in [0, 512) [Op:ResourceGather]",
        {"position-out-of-range"},
    ),
    (
        "jax: IndexError / gather clamps positions silently beyond max_len so outputs are "
        "wrong for long inputs",
        {"positions", "position-out-of-range"},
    ),
    (
        "pad token id -100 used in input_ids breaks embedding lookup",
        {"token-out-of-range"},
    ),
    (
        "RuntimeError: CUDA error: device-side assert triggered when vocab resized but "
        "embeddings not",
        {"token-out-of-range"},
    ),
    (
        "ValueError: Expected attention mask to be of shape (batch, seq) but got (batch, 1, "
        "seq, seq)",
        {"mask-shape"},
    ),
    (
        "torch.bmm: Expected size for first two dimensions of batch2 tensor to be: [256, 64] "
        "but got: [256, 20]",
        {"missing-transpose", "qk-dim-mismatch"},
    ),
    (
        "ValueError: `attn_output` should be of size (2, 12, 7, 64), but is torch.Size([2, 7, "
        "12, 64])",
        {"layout-confusion", "head-axis-order"},
    ),
    (
        "ValueError: Attention weights should be of size (1, 32, 5, 5), but is torch.Size([1, "
        "32, 5, 9])",
        {"kv-length-mismatch", "causal-alignment", "kv-cache", "mask-shape"},
    ),
    (
        "ValueError: The hidden size (768) is not a multiple of the number of attention heads (10)",
        {"head-split"},
    ),
    (
        "ValueError: hidden_size must be divisible by num_heads (got `hidden_size`: 1000 and "
        "`num_heads`: 16).",
        {"head-split"},
    ),
    (
        "ValueError: Flash Attention 2.0 only supports torch.float16 and torch.bfloat16 "
        "dtypes, but the current dype in LlamaModel is torch.float32.",
        {"backend-constraint"},
    ),
    (
        "You are attempting to perform batched generation with padding_side='right' this may "
        "lead to unexpected behaviour for Flash Attention version of Qwen2. Make sure to call "
        "`tokenizer.padding_side = 'left'` before tokenizing the input.",
        {"positions", "backend-constraint", "mask-missing"},
    ),
    (
        "A decoder-only architecture is being used, but right-padding was detected! For "
        "correct generation results, please set `padding_side='left'` when initializing the "
        "tokenizer.",
        {"positions", "mask-missing"},
    ),
    (
        "The attention mask and the pad token id were not set. As a consequence, you may "
        "observe unexpected behavior. Please pass your input's `attention_mask` to obtain "
        "reliable results.",
        {"mask-missing"},
    ),
    (
        "The attention mask is not set and cannot be inferred from input because pad token is "
        "same as eos token. As a consequence, you may observe unexpected behavior.",
        {"mask-missing"},
    ),
    (
        "Sliding Window Attention is enabled but not implemented for `sdpa`; unexpected "
        "results may be encountered.",
        {"backend-constraint", "window-size"},
    ),
    (
        "This is a friendly reminder - the current text generation call will exceed the "
        "model's predefined maximum length (2048). Depending on the model, you may observe "
        "exceptions, performance degradation, or nothing at all.",
        {"rotary-embedding", "position-out-of-range"},
    ),
    (
        "UserWarning: Converting mask without torch.bool dtype to bool; this will negatively "
        "affect performance. Prefer to use a boolean mask directly.",
        {"mask-dtype"},
    ),
    (
        "UserWarning: Support for mismatched key_padding_mask and attn_mask is deprecated. "
        "Use same type for both instead.",
        {"mask-dtype"},
    ),
    (
        "RuntimeError: attn_bias is not correctly aligned (strideM). attn_bias.stride( 2) = "
        "7, and should be a multiple of 16.",
        {"backend-constraint"},
    ),
    (
        "RuntimeError: (*bias): last dimension must be contiguous",
        {"backend-constraint"},
    ),
    (
        "RuntimeError: cu_seqlens_q must have shape (batch_size + 1)",
        {"packed-sequences"},
    ),
    (
        "RuntimeError: Number of heads in key/value must divide number of heads in query",
        {"gqa-heads"},
    ),
    (
        "NotImplementedError: No operator found for `memory_efficient_attention_forward` with "
        "inputs: query : shape=(1, 4096, 8, 40) (torch.float32) key : shape=(1, 4096, 8, 40) "
        "`decoderF` is not supported because: attn_bias type is <class 'NoneType'>",
        {"backend-constraint"},
    ),
    (
        "InvalidArgumentError: In[0] mismatch In[1] shape: 64 vs. 32: [8,10,64] [8,32,10] 0 0 "
        "[Op:BatchMatMulV2]",
        {"missing-transpose", "qk-dim-mismatch"},
    ),
    (
        "ValueError: Einstein sum subscript 'k' does not contain the correct number of "
        "indices for operand 1.",
        {"batched-matmul"},
    ),
    (
        "ValueError: matmul: Input operand 1 has a mismatch in its core dimension 0, with "
        "gufunc signature (n?,k),(k,m?)->(n?,m?) (size 64 is different from 32)",
        {"missing-transpose", "qk-dim-mismatch"},
    ),
    (
        "RuntimeError: Expected key.size(1) == value.size(1) to be true, but got false.",
        {"kv-length-mismatch"},
    ),
    (
        "RuntimeError: The size of tensor a (10) must match the size of tensor b (12) at "
        "non-singleton dimension 3",
        {"kv-length-mismatch", "kv-cache", "mask-shape"},
    ),
    (
        "RuntimeError: The expanded size of the tensor (12) must match the existing size (2) "
        "at non-singleton dimension 1.  Target sizes: [2, 12, 10, 10].  Tensor sizes: [2, 10, "
        "10]",
        {"mask-shape", "mask-broadcast-axis"},
    ),
    (
        "RuntimeError: Expected attn_mask dtype to be bool or float or to match query dtype, "
        "but got attn_mask.dtype: c10::Half and  query.dtype: float instead.",
        {"mask-dtype"},
    ),
    ("RuntimeError: Mismatch in dtype between attn_mask and query", {"mask-dtype"}),
    (
        "ValueError: Input length of input_ids is 2100, but `max_length` is set to 2048. This "
        "can lead to unexpected behavior.",
        {"position-out-of-range"},
    ),
    (
        "RuntimeError: CUDA error: device-side assert triggered (position_ids > "
        "max_position_embeddings)",
        {"position-out-of-range"},
    ),
    (
        "TypeError: unsupported operand type(s) for *: 'NoneType' and 'float' in "
        "attention_mask processing",
        set(),
    ),
    ("RuntimeError: Boolean value of Tensor with more than one value is ambiguous", set()),
    (
        "Embedding of a sentence changes depending on what other sentences are in the batch",
        {"softmax-axis", "positions", "mask-missing", "mask-broadcast-axis"},
    ),
    (
        "attention_mask argument is silently ignored by the model's forward",
        {"mask-missing"},
    ),
    (
        "Padded tokens receive non-zero attention probability",
        {"mask-polarity", "mask-missing"},
    ),
    (
        "repeat_kv repeats key/value heads in the wrong order (tile instead of repeat_interleave)",
        {"gqa-heads"},
    ),
    (
        "Grouped query attention: query head 1 should use kv head 0 but uses kv head 1",
        {"gqa-heads"},
    ),
    (
        "Flash attention expects (batch, seqlen, nheads, headdim) but I passed (batch, "
        "nheads, seqlen, headdim); no error but bad outputs",
        {"kernel-layout"},
    ),
    (
        "Output of attention block is the same for every position in the sequence",
        {"softmax-axis", "missing-scale", "mask-missing"},
    ),
    (
        "Attention probabilities sum to one over the query axis instead of the keys",
        {"softmax-axis"},
    ),
    (
        "masked positions are zeroed after the softmax, so each row no longer sums to 1",
        {"mask-after-softmax"},
    ),
    (
        "Using the neox-style rotate_half on a GPT-J checkpoint (interleaved) produces garbage",
        {"rotary-embedding"},
    ),
    (
        "cos/sin cache computed in fp16 loses precision for positions above 2048",
        {"reduced-precision", "rotary-embedding"},
    ),
    (
        "The sliding window includes one token too many: window_size=4096 attends to 4097 keys",
        {"window-size"},
    ),
    (
        "Dropout applied to attention weights even in eval mode because training flag is "
        "hard-coded",
        {"backend-constraint"},
    ),
    (
        "pad token id set to -100 in input_ids, embedding silently reads the last row",
        {"token-out-of-range"},
    ),
    (
        "When batching documents packed into one sequence, tokens of document 2 attend to "
        "document 1",
        {"packed-sequences"},
    ),
    (
        "causal mask is applied top-left during chunked prefill, later chunks can't see "
        "earlier chunks",
        {"causal-alignment", "kv-cache"},
    ),
    ("the scores are divided by d_model instead of sqrt(head_dim)", {"missing-scale"}),
    ("temperature scaling of attention logits is applied twice", {"missing-scale"}),
    (
        "BERT outputs differ between attention_mask of 0/1 ints and a float mask",
        {"mask-dtype", "mask-polarity"},
    ),
    ("adding a 0/1 mask to the logits instead of -inf does nothing", {"mask-dtype"}),
    (
        "NaN only appears in the rows that correspond to padding queries",
        {"nan-in-padding", "fully-masked-row"},
    ),
    (
        "the last token's logits differ between full forward and incremental decoding with cache",
        {"causal-alignment", "positions", "kv-cache"},
    ),
    (
        "position embeddings are added along the batch axis because x is (seq, batch, dim)",
        {"layout-confusion"},
    ),
    (
        "the attention map looks transposed: rows are keys and columns are queries",
        {"softmax-axis", "layout-confusion", "missing-transpose"},
    ),
    (
        "Qwen2 produces different logits with flash_attention_2 vs sdpa when batch has padding",
        {"positions", "backend-constraint", "mask-missing"},
    ),
    (
        "cross attention uses the decoder padding mask for the encoder keys",
        {"mask-missing", "kv-length-mismatch", "mask-shape"},
    ),
    (
        "the mask for the keys is applied to the values instead of the scores",
        {"mask-after-softmax", "mask-missing"},
    ),
    ("-inf times 0 in my masking code gives NaN", {"inf-arithmetic"}),
    ("mask * -inf produces NaN where the mask is 0", {"inf-arithmetic"}),
    (
        "softmax of very large logits overflows without subtracting the max",
        {"softmax-overflow"},
    ),
    (
        "UserWarning: All fused kernels requires query, key and value to be 4 dimensional, "
        "but got Query dim: 3, Key dim: 4, Value dim: 4 instead.",
        {"layout-confusion", "backend-constraint", "kernel-layout"},
    ),
    (
        "UserWarning: For dense inputs, both fused kernels require query, key and value to "
        "have the same batch_size. Query.size(0): 2, Key.size(0): 4, Value.size(0): 4 "
        "instead. To broadcast dense inputs, try using unsqueeze and expand_to before passing "
        "them into the kernel.",
        {"batch-mismatch"},
    ),
    (
        "UserWarning: For dense input, both fused kernels require query, key and value to "
        "have the same num_heads. Query.sizes(): [1, 32, 7, 128], Key sizes(): [1, 8, 7, "
        "128], Value sizes(): [1, 8, 7, 128] instead.",
        {"gqa-heads"},
    ),
    (
        "RuntimeError: Both fused kernels require key and value to have the same num_heads "
        "and batch_size but got: Key sizes: [2, 8, 5, 64], Value sizes: [2, 4, 5, 64]",
        {"batch-mismatch", "kv-length-mismatch", "gqa-heads"},
    ),
    (
        "UserWarning: Flash attention requires q,k,v to have the same last dimension.",
        {"backend-constraint", "qk-dim-mismatch", "projection-width"},
    ),
    (
        "UserWarning: All fused kernels do not support zero seq_len_q or seq_len_kv.",
        {"ragged-lengths", "backend-constraint", "fully-masked-row"},
    ),
    (
        "UserWarning: All fused kernels require the last dimension of the input to have stride 1.",
        {"backend-constraint"},
    ),
    (
        "UserWarning: Both fused kernels do not support non-zero dropout.",
        {"backend-constraint"},
    ),
    (
        "RuntimeError: Number of heads in key and value must divide the number of heads in query",
        {"gqa-heads"},
    ),
    (
        "AssertionError: key shape torch.Size([7, 2, 16]) does not match value shape "
        "torch.Size([6, 2, 16])",
        {"kv-length-mismatch"},
    ),
    (
        "AssertionError: For batched (3-D) `query`, expected `attn_mask` to be `None`, 2-D or "
        "3-D but found 4-D tensor instead",
        {"mask-shape"},
    ),
    (
        "ValueError: shapes (2,8,5,64) and (2,8,5,64) not aligned: 64 (dim 3) != 5 (dim 2)",
        {"batched-matmul", "missing-transpose", "qk-dim-mismatch"},
    ),
    (
        "ValueError: matmul: Input operand 1 has a mismatch in its core dimension 0, with "
        "gufunc signature (n?,k),(k,m?)->(n?,m?) (size 5 is different from 64)",
        {"missing-transpose", "qk-dim-mismatch"},
    ),
    (
        "numpy.exceptions.AxisError: axis 3 is out of bounds for array of dimension 3 (in "
        "softmax(scores, axis=3))",
        {"softmax-axis", "axis-out-of-range"},
    ),
    (
        "IndexError: too many indices for array: array is 2-dimensional, but 3 were indexed "
        "(mask[:, None, :])",
        {"axis-out-of-range", "mask-shape"},
    ),
    (
        "RuntimeWarning: overflow encountered in exp (my numpy softmax for attention scores)",
        {"softmax-overflow"},
    ),
    (
        "RuntimeWarning: invalid value encountered in divide (softmax of a row that is all -inf)",
        {"fully-masked-row"},
    ),
    (
        "ValueError: operands could not be broadcast together with shapes (2,8,5,5) (2,5)",
        {"mask-shape", "mask-broadcast-axis"},
    ),
    (
        "ValueError: cannot reshape array of size 1920 into shape (2,5,8,64)",
        {"head-split"},
    ),
    (
        "np.einsum('bhqd,bhkd->bhqk', q, k): ValueError: operands could not be broadcast "
        "together with remapped shapes [original->remapped]: (2,8,5,64)->(2,8,5,newaxis,64) "
        "(2,2,7,64)->(2,2,newaxis,7,64)",
        {"gqa-heads"},
    ),
    (
        "my attention weights in numpy sum to 1 across the batch instead of across keys: "
        "np.exp(s) / np.exp(s).sum(axis=0)",
        {"softmax-axis"},
    ),
]


def _hits(message: str, tags: set[str]) -> tuple[bool, bool]:
    answers = [set(m.case.tags) & tags for m in diagnose(message, top=3)]
    return bool(answers and answers[0]), any(answers)


def test_messages_in_other_words_find_their_family() -> None:
    results = [_hits(message, tags) for message, tags in MESSAGES]
    top1 = sum(first for first, _ in results) / len(results)
    top3 = sum(any3 for _, any3 in results) / len(results)
    missed = [m for (m, _), (_, any3) in zip(MESSAGES, results, strict=True) if not any3]
    # floors set below what the rules reach when this file was written (181 messages:
    # 91 % first, 98 % in the top three)
    assert top1 >= 0.88, top1
    assert top3 >= 0.97, missed
