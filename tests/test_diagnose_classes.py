"""diagnose's class rules of issue 15, each on wordings written for this test.

Each rule reads a whole family of wordings (a framework's own template, or the words users
use for one symptom), so the messages below are written at other sizes and in other
phrasings than the public reports the rules were checked on; the families were written
by hand before running diagnose on them. Outside attention: errors of an install, a
checkpoint of another configuration, a collator or a device placement get no case.
"""

from __future__ import annotations

import pytest

from catalogue.diagnose import diagnose


def _first_tags(message: str) -> tuple[str, ...]:
    answers = diagnose(message, top=3)
    assert answers, message
    return answers[0].case.tags


def _top3_tags(message: str) -> set[str]:
    return {t for m in diagnose(message, top=3) for t in m.case.tags}


@pytest.mark.parametrize(
    ("message", "tags"),
    [
        (  # PyTorch's IndexKernel.cu assert, another line and block
            "/opt/pytorch/aten/src/ATen/native/cuda/IndexKernel.cu:111: operator(): block: "
            "[12,0,0], thread: [3,0,0] Assertion `-sizes[i] <= index && index < sizes[i] && "
            '"index out of bounds"` failed.',
            {"position-out-of-range", "token-out-of-range"},
        ),
        (  # ScatterGatherKernel.cu's assert
            "ScatterGatherKernel.cu:367: operator(): block: [0,0,0], thread: [7,0,0] "
            'Assertion `idx_dim >= 0 && idx_dim < index_size && "index out of bounds"` failed.',
            {"position-out-of-range", "token-out-of-range", "kv-cache"},
        ),
        (  # an index error told in words
            "Fine-tuning crashes with an index out of range error as soon as the new special "
            "tokens reach the model",
            {"token-out-of-range", "position-out-of-range"},
        ),
        (  # the batch axis said to be elsewhere
            "nn.TransformerEncoder wants the batch dimension second, but my loader puts the "
            "batch size in the first dimension, so the results are wrong",
            {"layout-confusion"},
        ),
        (  # attention that mixes the examples of a batch
            "the encoder leaks information across samples in the batch: changing one sentence "
            "changes the embedding of another",
            {"layout-confusion", "batch-mismatch"},
        ),
        (  # a window identifier
            "decode attends to 255 keys instead of 256 because the kernel clamps to "
            "min(seq_len, attention_window)",
            {"window-size"},
        ),
        (  # running out of memory beside an attention feature
            "torch.cuda.OutOfMemoryError with local attention at 32k context",
            {"memory-blowup"},
        ),
        (  # an unprotected softmax
            "my hand-written softmax for the attention scores does not subtract the maximum, "
            "and the output turns to NaN for long inputs",
            {"softmax-overflow"},
        ),
        (  # SDPA said to produce wrong results
            "F.scaled_dot_product_attention gives incorrect outputs for head_dim 256 on my "
            "GPU while the math reference is right",
            {"backend-constraint"},
        ),
        (  # a fused kernel's stride check, on the value tensor
            "RuntimeError: value tensor must have contiguous last dimension",
            {"backend-constraint", "kernel-layout"},
        ),
        (  # the mask said to be ignored, or made a no-op
            "the encoder layer silently ignores `src_key_padding_mask` when fast path is on",
            {"mask-missing"},
        ),
        (
            "after the refactor the mask function became a no-op, so nothing is masked",
            {"mask-missing"},
        ),
        (  # torch.cat of a cache and new keys of two ranks
            "key_states = torch.cat([past_key_values[layer][0], key_states], dim=-2) "
            "RuntimeError: Tensors must have same number of dimensions: got 3 and 4",
            {"kv-cache", "layout-confusion"},
        ),
        (  # PyTorch's permute and expand on a tensor of another rank (run to get them)
            "RuntimeError: permute(sparse_coo): number of dimensions in the tensor input does "
            "not match the length of the desired ordering of dimensions i.e. input.dim() = 3 "
            "is not equal to len(dims) = 4",
            {"layout-confusion", "axis-out-of-range", "head-split"},
        ),
        (
            "RuntimeError: expand(torch.FloatTensor{[4, 1, 16]}, size=[4, 16]): the number of "
            "sizes provided (2) must be greater or equal to the number of dimensions in the "
            "tensor (3)",
            {"mask-shape", "mask-broadcast-axis"},
        ),
        (  # bmm's batch axes differ while the contracted one agrees
            "RuntimeError: Expected size for first two dimensions of batch2 tensor to be: "
            "[24, 32] but got: [3, 32].",
            {"batch-mismatch", "head-split", "batched-matmul"},
        ),
        (  # position ids named
            "position_ids restart at 0 for the second chunk of the prompt, so the model "
            "rereads early positions",
            {"positions"},
        ),
    ],
)
def test_a_class_wording_finds_its_family_first(message: str, tags: set[str]) -> None:
    assert set(_first_tags(message)) & tags, [
        (m.case.id, m.score) for m in diagnose(message, top=3)
    ]


@pytest.mark.parametrize(
    "message",
    [
        # xFormers' per-operator reasons in a long report, the build has no CUDA
        "NotImplementedError: No operator found for `memory_efficient_attention_forward` "
        "with inputs:\n     query : shape=(2, 1024, 8, 40) (torch.float16)\n     key : "
        "shape=(2, 1024, 8, 40) (torch.float16)\n     value : shape=(2, 1024, 8, 40) "
        "(torch.float16)\n     attn_bias : <class 'NoneType'>\n     p : 0.0\n"
        "`cutlassF` is not supported because:\n    xFormers wasn't build with CUDA support\n"
        "`smallkF` is not supported because:\n    xFormers wasn't build with CUDA support",
        # a checkpoint built with another window size (not an attention projection)
        "RuntimeError: Error(s) in loading state_dict for SwinModel: size mismatch for "
        "layers.2.blocks.1.attn.relative_position_index: copying a param with shape "
        "torch.Size([144, 144]) from checkpoint, the shape in current model is "
        "torch.Size([49, 49]).",
        # a checkpoint of another hidden size: every axis of the projection differs
        "RuntimeError: Error(s) in loading state_dict for RobertaModel: size mismatch for "
        "encoder.layer.3.attention.self.value.weight: copying a param with shape "
        "torch.Size([1024, 1024]) from checkpoint, the shape in current model is "
        "torch.Size([768, 768]).",
        # a collator stacking token sequences of other lengths
        "RuntimeError: stack expects each tensor to be equal size, but got [128] at entry 0 "
        "and [97] at entry 3",
        # a NaN loss with nothing of attention, precision or lengths in it
        "Loss turns into nan after 12 epochs",
        # PyTorch's build warning and its device-placement error
        "UserWarning: Torch was not compiled with flash attention.",
        "RuntimeError: Expected all tensors to be on the same device, but found at least two "
        "devices, cuda:1 and cpu! (when checking argument for argument mask in method "
        "wrapper_CUDA__masked_fill)",
    ],
)
def test_an_error_from_outside_attention_gets_no_case(message: str) -> None:
    assert diagnose(message, top=3) == [], [m.case.id for m in diagnose(message, top=3)]


def test_a_nan_beside_a_transformer_family_name_is_still_answered() -> None:
    # no attention word, but a transformer named by its family: not the outside NaN class
    assert diagnose("RoBERTa gives nan after the third epoch", top=3)


def test_a_checkpoint_mismatch_of_an_attention_projection_is_still_read() -> None:
    # a grouped-query checkpoint: the key projection 4 times narrower than the model's
    message = (
        "RuntimeError: Error(s) in loading state_dict for MistralForCausalLM: size mismatch "
        "for model.layers.3.self_attn.k_proj.weight: copying a param with shape "
        "torch.Size([1024, 4096]) from checkpoint, the shape in current model is "
        "torch.Size([4096, 4096])."
    )
    assert "gqa-heads" in _first_tags(message)


@pytest.mark.parametrize(
    "message",
    [
        # PyTorch's dispatch template naming an attention kernel, another kernel and dtype
        "RuntimeError: \"fmha_fwd_kernel_cuda\" not implemented for 'BFloat16'",
        # XLA's dot-algorithm check, another algorithm
        "jaxlib.xla_extension.XlaRuntimeError: UNIMPLEMENTED: Unsupported algorithm on the "
        "current device(s): ALG_DOT_TF32_TF32_F32",
        # a custom extension's data_ptr<float>() under autocast
        "with torch.autocast('cuda'): out = LinearAttentionKernel.apply(q, k, v)\n"
        "RuntimeError: expected scalar type Float but found BFloat16",
        # xFormers' layout and bias checks
        "ValueError: Query/Key/Value should all have BMHK or BMK shape.\n  query.shape: "
        "torch.Size([4, 2, 16, 64, 32])",
        "ValueError: Invalid shape for attention bias: torch.Size([8, 77, 77]) (expected (1, 8, "
        "77, 77))",
        # a kernel's TORCH_CHECK on the bias
        "RuntimeError: Expected mask.size(1) == num_heads to be true, but got false.",
    ],
)
def test_a_kernel_refusing_a_dtype_or_a_layout_is_a_backend_constraint(message: str) -> None:
    tags = _top3_tags(message)
    assert "backend-constraint" in tags, message


def test_a_dtype_refusal_of_a_kernel_outside_attention_gets_no_case() -> None:
    assert diagnose("RuntimeError: \"addmm_impl_cpu_\" not implemented for 'Half'", top=3) == []


@pytest.mark.parametrize(
    "message",
    [
        "ResourceExhaustedError: OOM when allocating tensor with shape[4,16,8192,8192] and "
        "type float on /job:localhost/replica:0/task:0/device:GPU:0",
        "it crashes because it tries to allocate a [32, 12000, 12000] tensor",
    ],
)
def test_memory_for_a_square_tensor_of_one_long_length_is_the_scores(message: str) -> None:
    answers = diagnose(message, top=3)
    assert answers
    assert "memory-blowup" in answers[0].case.tags
    assert "8192" in answers[0].why or "12000" in answers[0].why


def test_memory_with_no_shape_stays_unanswered() -> None:
    assert diagnose("RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB", top=3) == []
    assert diagnose("it tries to allocate a [16, 3, 1024, 1024] tensor", top=3) == []


@pytest.mark.parametrize(
    ("message", "numbers"),
    [
        (
            "ValueError: The length of `decoder_input_ids`, including special start tokens, "
            "prompt tokens, and previous tokens, is 60, and `max_new_tokens` is 400. Thus, the "
            "combined length of `decoder_input_ids` and `max_new_tokens` is: 460. This exceeds "
            "the `max_target_positions` of the Whisper model: 448.",
            ("460", "448"),
        ),
        ("ValueError: seq_len=9000 exceeds max_position_embeddings=8192", ("9000", "8192")),
    ],
)
def test_a_length_past_the_position_table_is_read_into_its_roles(
    message: str, numbers: tuple[str, str]
) -> None:
    answers = diagnose(message, top=3)
    assert answers
    assert "position-out-of-range" in answers[0].case.tags
    assert f"{numbers[0]} positions asked for, a position table of {numbers[1]}" in answers[0].why


@pytest.mark.parametrize(
    "message",
    [
        "I converted the Mistral checkpoint to GGUF with the script; it loads but every answer "
        "is gibberish",
        "After the conversion to the Hugging Face layout the 34B model only produces garbage",
        "Outputs are nonsense when the model runs under llama.cpp",
    ],
)
def test_gibberish_after_a_weight_conversion_is_the_rotary_permute(message: str) -> None:
    assert "rotary-embedding" in _first_tags(message)


@pytest.mark.parametrize(
    "message",
    [
        "The model writes fine at first but the text becomes gibberish after about 4000 tokens",
        "Generation turns into garbage once the KV cache is full",
    ],
)
def test_gibberish_after_many_generated_tokens_is_the_cache_or_window(message: str) -> None:
    tags = _top3_tags(message)
    assert tags & {"kv-cache", "window-size"}, message


@pytest.mark.parametrize(
    "message",
    [
        # a call signature of another library version (Python's TypeError template)
        "TypeError: LlamaSdpaAttention.forward() got an unexpected keyword argument "
        "'position_embeddings'",
        # an import of a compiled extension that did not build
        "After pip install I am unable to `import flash_attn_2_cuda` at all",
    ],
)
def test_another_library_version_or_a_failed_import_gets_no_case(message: str) -> None:
    assert diagnose(message, top=3) == [], [m.case.id for m in diagnose(message, top=3)]


def test_pytorch_1_0s_dtype_wording_beside_a_mask_name_is_a_mask_dtype() -> None:
    # the older template of the dtype check; the mask named only inside identifiers
    message = (
        "scores = scores + key_padding_mask\nRuntimeError: expected backend CPU and dtype "
        "Half but got backend CPU and dtype Bool"
    )
    answers = diagnose(message, top=3)
    assert answers
    assert "mask-dtype" in answers[0].case.tags
    assert "Half and Bool" in answers[0].why


@pytest.mark.parametrize(
    "message",
    [
        "Serving the 8-KV-head model with tensor_parallel_size=16 crashes in the k_proj split",
        "With tp_size=4 the checkpoint loads but num_key_value_heads=2 cannot be sharded",
    ],
)
def test_tensor_parallelism_over_key_value_heads_is_grouped_query(message: str) -> None:
    assert "gqa-heads" in _first_tags(message)


def test_a_linear_layer_of_a_few_features_alone_gets_no_case() -> None:
    bare = "RuntimeError: mat1 and mat2 shapes cannot be multiplied (96x7 and 96x96)"
    assert diagnose(bare, top=3) == []
    # the same narrow product inside attention code is still read
    message = (
        "attn_out = self.to_q(x)\nRuntimeError: mat1 and mat2 shapes cannot be multiplied "
        "(96x7 and 96x96)"
    )
    assert diagnose(message, top=3)


@pytest.mark.parametrize(
    "message",
    [
        "After concatenating the dialogues into 4096-token rows, turns of one conversation "
        "attend to other conversations in the same row",
        "Molecules batched together: the self-attention leaks between different graphs",
    ],
)
def test_items_attending_to_each_other_are_packed_sequences(message: str) -> None:
    tags = _top3_tags(message)
    assert "packed-sequences" in tags, message


def test_a_position_table_added_to_tokens_of_another_length_reads_both_numbers() -> None:
    message = (
        "    tokens = tokens + self.pos_embedding\nRuntimeError: The size of tensor a (1025) "
        "must match the size of tensor b (257) at non-singleton dimension 1"
    )
    answers = diagnose(message, top=3)
    assert answers
    assert "position-out-of-range" in answers[0].case.tags
    assert "1025 tokens against a position table of 257 rows" in answers[0].why


def test_flash_attn_check_shape_on_q_k_v_is_the_kernels_constraint() -> None:
    message = "RuntimeError: k must have shape (batch_size, seqlen_k, num_heads_k, head_size)"
    assert "backend-constraint" in _first_tags(message)


def test_transformer_encoders_fast_path_in_words_is_a_backend_constraint() -> None:
    message = (
        "nn.TransformerEncoder gives other outputs in eval() than in training when "
        "src_key_padding_mask pads half the batch"
    )
    assert "backend-constraint" in _first_tags(message)


@pytest.mark.parametrize(
    "message",
    [
        "I converted the CSV export to UTF-8 and the text column is garbage now",
        "After converting the audio to 8 kHz the transcripts are nonsense",
        "RuntimeError: \"upsample_nearest2d_out_frame\" not implemented for 'Half'",
    ],
)
def test_a_conversion_or_a_dtype_refusal_outside_models_attention_gets_no_case(
    message: str,
) -> None:
    assert diagnose(message, top=3) == [], [m.case.id for m in diagnose(message, top=3)]
