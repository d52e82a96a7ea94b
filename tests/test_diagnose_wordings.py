"""diagnose on messages the frameworks really raise, at sizes chosen here, not copied.

Each test makes one mistake in NumPy, PyTorch, JAX and TensorFlow with several sizes,
catches the real message, and checks that ``diagnose`` names the mistake's family first
(or in its top three where the wording alone cannot tell families apart) and reads the
sizes of this message, not the ones of a catalogue example, into its answer.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import tensorflow as tf
import torch

from catalogue.diagnose import diagnose

# (B, H, L, S): sizes where batch, heads, query and key lengths all differ, so a message
# that names two of them says which axes met.
SIZES = [(2, 4, 3, 5), (3, 8, 6, 7), (5, 6, 9, 11)]


def _message(call: Callable[[], object]) -> str:
    try:
        call()
    except Exception as error:  # any framework's error class
        return f"{type(error).__name__}: {error}"
    raise AssertionError("the mistake did not raise")


def _padding_mask_added(framework: str, b: int, h: int, lq: int, s: int) -> Callable[[], object]:
    """A (B, S) padding mask added to (B, H, L, S) scores without [:, None, None, :]."""
    scores, mask = np.zeros((b, h, lq, s), np.float32), np.zeros((b, s), np.float32)
    if framework == "numpy":
        return lambda: scores + mask
    if framework == "torch":
        return lambda: torch.from_numpy(scores) + torch.from_numpy(mask)
    if framework == "jax":
        return lambda: jnp.asarray(scores) + jnp.asarray(mask)
    return lambda: tf.constant(scores) + tf.constant(mask)


@pytest.mark.parametrize("framework", ["numpy", "torch", "jax", "tf"])
@pytest.mark.parametrize("sizes", SIZES)
def test_a_padding_mask_against_the_scores_is_a_mask_problem_with_its_sizes(
    framework: str, sizes: tuple[int, int, int, int]
) -> None:
    b, h, lq, s = sizes
    message = _message(_padding_mask_added(framework, b, h, lq, s))
    answers = diagnose(message, top=3)
    assert answers, message
    assert {"mask-shape", "mask-broadcast-axis"} & set(answers[0].case.tags), message
    # PyTorch names two sizes and an axis; the others quote both shapes
    assert str(s) in answers[0].why or str(b) in answers[0].why, (message, answers[0].why)


@pytest.mark.parametrize(("hq", "hkv"), [(8, 2), (12, 4), (6, 3)])
def test_sdpa_without_enable_gqa_reads_query_and_key_value_heads(hq: int, hkv: int) -> None:
    q = torch.zeros(2, hq, 5, 16)
    kv = torch.zeros(2, hkv, 5, 16)
    message = _message(lambda: torch.nn.functional.scaled_dot_product_attention(q, kv, kv))
    best = diagnose(message)[0]
    assert "gqa-heads" in best.case.tags, message
    assert f"{hq} query heads against {hkv} key/value heads" in best.why


@pytest.mark.parametrize("framework", ["numpy", "torch", "jax", "tf"])
@pytest.mark.parametrize(("length", "features"), [(5, 16), (7, 32), (12, 64)])
def test_keys_not_transposed_is_a_contraction_problem(
    framework: str, length: int, features: int
) -> None:
    q = np.zeros((2, 4, length, features), np.float32)
    calls = {
        "numpy": lambda: q @ q,
        "torch": lambda: torch.from_numpy(q) @ torch.from_numpy(q),
        "jax": lambda: jnp.asarray(q) @ jnp.asarray(q),
        "tf": lambda: tf.matmul(tf.constant(q), tf.constant(q)),
    }
    message = _message(calls[framework])
    tags = {t for m in diagnose(message, top=3) for t in m.case.tags}
    assert {"missing-transpose", "qk-dim-mismatch"} <= tags, message


@pytest.mark.parametrize("framework", ["numpy", "torch", "jax", "tf"])
@pytest.mark.parametrize(("width", "heads"), [(60, 8), (100, 12), (90, 4)])
def test_a_width_the_heads_do_not_divide_is_a_head_split(
    framework: str, width: int, heads: int
) -> None:
    x = np.zeros((2, 5, width), np.float32)
    shape = (2, 5, heads, -1)
    calls = {
        "numpy": lambda: x.reshape(shape),
        "torch": lambda: torch.from_numpy(x).view(*shape),
        "jax": lambda: jnp.asarray(x).reshape(shape),
        "tf": lambda: tf.reshape(tf.constant(x), shape),
    }
    message = _message(calls[framework])
    assert "head-split" in diagnose(message)[0].case.tags, message


@pytest.mark.parametrize("framework", ["torch", "tf"])
@pytest.mark.parametrize("vocab", [30522, 50257, 32003])
def test_a_token_id_past_a_vocabulary_reads_as_a_token(framework: str, vocab: int) -> None:
    ids = np.array([[1, 2, vocab + 5]])
    if framework == "torch":
        table = torch.nn.Embedding(vocab, 4)
        message = _message(lambda: table(torch.from_numpy(ids)))
    else:
        message = _message(lambda: tf.gather(tf.zeros((vocab, 4)), tf.constant(ids)))
    tags = [set(m.case.tags) for m in diagnose(message, top=3)]
    assert any("token-out-of-range" in t for t in tags), message
    if framework == "tf":  # TensorFlow quotes the table: a vocabulary, read as such
        assert "token-out-of-range" in tags[0]


@pytest.mark.parametrize("positions", [128, 512, 1024])
def test_a_position_past_the_position_table_reads_as_a_position(positions: int) -> None:
    ids = tf.constant([list(range(positions + 1))])  # positions 0..positions: one too many
    message = _message(lambda: tf.gather(tf.zeros((positions, 4)), ids))
    best = diagnose(message)[0]
    assert "position-out-of-range" in best.case.tags, message
    assert str(positions) in best.why


@pytest.mark.parametrize(("hq", "hkv"), [(8, 2), (6, 3)])
def test_einsum_labels_name_their_axis(hq: int, hkv: int) -> None:
    q, k = np.zeros((2, hq, 5, 8), np.float32), np.zeros((2, hkv, 5, 8), np.float32)
    spec = "bhld,bhsd->bhls"
    for message in (
        _message(lambda: torch.einsum(spec, torch.from_numpy(q), torch.from_numpy(k))),
        _message(lambda: jnp.einsum(spec, jnp.asarray(q), jnp.asarray(k))),
    ):
        best = diagnose(message)[0]
        assert "gqa-heads" in best.case.tags, message
        assert f"{hq} query heads against {hkv} key/value heads" in best.why


def test_jax_runs_here() -> None:
    # the JAX messages above come from the CPU backend this machine has
    assert jax.devices()[0].platform == "cpu"


@pytest.mark.parametrize(("batch", "length"), [(2, 5), (3, 7)])
def test_multihead_attention_mask_wordings(batch: int, length: int) -> None:
    mha = torch.nn.MultiheadAttention(16, 2)
    x = torch.zeros(length, batch, 16)  # (L, N, E): sequence-first
    transposed = torch.zeros(length, batch, dtype=torch.bool)  # (S, N) instead of (N, S)
    four_d = torch.zeros(batch, 2, length, length, dtype=torch.bool)
    for message in (
        _message(lambda: mha(x, x, x, key_padding_mask=transposed)),
        _message(lambda: mha(x, x, x, attn_mask=four_d)),
    ):
        assert "mask-shape" in diagnose(message)[0].case.tags, message


@pytest.mark.parametrize(("keys", "mask_keys"), [(5, 7), (9, 4)])
def test_a_mask_expanded_to_other_keys_reads_the_key_axis(keys: int, mask_keys: int) -> None:
    mask = torch.zeros(2, 1, 5, mask_keys)
    message = _message(lambda: mask.expand(2, 8, 5, keys))
    best = diagnose(message)[0]
    assert {"mask-shape", "kv-cache", "causal-alignment"} & set(best.case.tags), message
    assert "key length" in best.why


@pytest.mark.parametrize(("dq", "dk"), [(64, 32), (48, 16)])
def test_tensorflow_graph_mode_contraction_reads_the_operands(dq: int, dk: int) -> None:
    def scores(q: tf.Tensor, k_transposed: tf.Tensor) -> tf.Tensor:
        return tf.matmul(q, k_transposed)

    signature = [tf.TensorSpec([2, 4, 5, dq]), tf.TensorSpec([2, 4, dk, 5])]
    graph = tf.function(scores, input_signature=signature)
    message = _message(lambda: graph.get_concrete_function())
    best = diagnose(message)[0]
    assert "qk-dim-mismatch" in best.case.tags, message
    assert f"{dq} against {dk}" in best.why


def test_jax_attention_with_a_two_dimensional_mask() -> None:
    q = jnp.zeros((2, 5, 4, 8))
    mask = jnp.ones((2, 5), bool)
    message = _message(lambda: jax.nn.dot_product_attention(q, q, q, mask=mask))
    assert "mask-shape" in diagnose(message)[0].case.tags, message


@pytest.mark.parametrize(("heads", "kv_heads"), [(32, 8), (16, 4)])
def test_a_view_with_the_query_head_count_on_key_value_heads_reads_as_gqa(
    heads: int, kv_heads: int
) -> None:
    k = torch.zeros(1, 9, kv_heads * 16)  # the key projection has num_key_value_heads
    message = _message(lambda: k.view(1, 9, heads, 16))
    best = diagnose(message)[0]
    assert "gqa-heads" in best.case.tags, message
    assert f"{heads} heads where the tensor holds {kv_heads}" in best.why


@pytest.mark.parametrize(("built", "used"), [(512, 1024), (128, 200)])
def test_a_causal_buffer_expanded_to_a_longer_sequence(built: int, used: int) -> None:
    buffer = torch.ones(1, 1, built, built).tril()  # registered once for `built` positions
    message = _message(lambda: buffer.expand(1, 4, used, used))
    best = diagnose(message)[0]
    assert "causal-alignment" in best.case.tags, message
    assert f"built for {built} positions" in best.why


@pytest.mark.parametrize(("prompt", "cached"), [(5, 9), (12, 20)])
def test_a_mask_of_the_prompt_against_a_grown_cache(prompt: int, cached: int) -> None:
    # transformers' wording for an attention_mask kept at the prompt's length
    message = (
        f"ValueError: Attention mask should be of size (2, 1, 1, {cached}), but is "
        f"torch.Size([2, 1, 1, {prompt}])"
    )
    best = diagnose(message)[0]
    assert "kv-cache" in best.case.tags, message


@pytest.mark.parametrize(("length", "other"), [(10, 12), (7, 5)])
def test_tensorflow_shapes_that_do_not_merge_read_the_axis(length: int, other: int) -> None:
    shape = tf.TensorShape([None, length, 64])
    message = _message(lambda: shape.merge_with([None, other, 64]))
    best = diagnose(message)[0]
    assert "kv-length-mismatch" in best.case.tags, message
    assert f"{max(length, other)} against {min(length, other)}" in best.why


def test_unpacking_a_shape_counts_only_in_attention_code() -> None:
    def unpack(shape: tuple[int, ...]) -> tuple[int, int, int, int]:
        b, h, n, d = shape
        return b, h, n, d

    bare = _message(lambda: unpack((2, 5, 64)))
    assert diagnose(bare) == []  # Python's wording alone says nothing about attention
    in_attention = f"{bare} in attention forward: b, h, n, d = q.shape"
    assert "layout-confusion" in diagnose(in_attention)[0].case.tags


@pytest.mark.parametrize(("rank", "perm"), [(3, [0, 2, 1, 3]), (4, [0, 2, 1]), (5, [0, 2, 1, 3])])
def test_a_permutation_of_another_rank_reads_as_a_missing_or_extra_axis(
    rank: int, perm: list[int]
) -> None:
    x = tf.zeros((2,) * rank)
    eager = _message(lambda: tf.transpose(x, perm=perm))
    graph = tf.function(lambda y: tf.transpose(y, perm=perm))  # traced: the graph's wording
    traced = _message(lambda: graph.get_concrete_function(tf.TensorSpec([None] * rank)))
    for message in (eager, traced):
        answers = diagnose(message, top=3)
        assert "axis-out-of-range" in answers[0].case.tags, message
        tags = {t for a in answers for t in a.case.tags}
        assert {"batched-matmul", "head-split"} & tags, message


@pytest.mark.parametrize(("width", "other"), [(522, 512), (96, 64)])
def test_tensorflow_shapes_that_must_be_equal_read_the_last_axis_as_a_width(
    width: int, other: int
) -> None:
    shape = tf.TensorShape([8, width])
    message = _message(lambda: shape.assert_is_compatible_with([8, other]))
    best = diagnose(message)[0]
    assert "projection-width" in best.case.tags, message
    assert f"{width} against {other}" in best.why


@pytest.mark.parametrize("op", ["matmul", "bmm"])
def test_operands_of_two_dtypes_count_only_in_attention_code(op: str) -> None:
    half, full = torch.zeros(2, 4, 3, dtype=torch.half), torch.zeros(2, 3, 4)
    call = (lambda: half @ full) if op == "matmul" else (lambda: torch.bmm(half, full))
    bare = _message(call)
    assert diagnose(bare) == []  # any half-precision program says this
    in_attention = f"{bare}\nin the attention forward: out = weights @ value"
    tags = {t for a in diagnose(in_attention, top=3) for t in a.case.tags}
    assert {"mask-dtype", "reduced-precision"} & tags, in_attention


@pytest.mark.parametrize(("b", "h"), [(2, 8), (3, 4)])
def test_batch_times_heads_against_batch_reads_the_factor(b: int, h: int) -> None:
    scores = torch.zeros(b * h, 5, 5)  # (B·H, L, S), heads folded into the batch
    mask = torch.zeros(b, 5, 5)
    message = _message(lambda: scores + mask)
    answers = diagnose(message, top=3)
    assert "batch-mismatch" in answers[0].case.tags, message
    assert any(f"{b * h} = {b} × {h}" in a.why for a in answers), [a.why for a in answers]


@pytest.mark.parametrize(("b", "h", "s"), [(2, 12, 16), (3, 28, 8)])
def test_a_broadcast_mask_reshaped_to_the_heads_is_a_mask_shape(b: int, h: int, s: int) -> None:
    mask = jnp.zeros((b, 1, 1, s, s))  # meant to broadcast over the heads
    message = _message(lambda: mask.reshape(b, h, s, s))
    best = diagnose(message)[0]
    assert "mask-shape" in best.case.tags, message
    assert f"has {h}" in best.why


@pytest.mark.parametrize(("built", "length"), [(64, 52), (16, 12), (128, 100)])
def test_a_square_mask_viewed_for_another_length_reads_as_a_mask(built: int, length: int) -> None:
    # a causal mask built for `built` positions, viewed (not sliced) to (1, 1, L, L)
    mask = torch.tril(torch.ones(built, built))
    message = _message(lambda: mask.view(1, 1, length, length))
    answers = diagnose(message, top=3)
    assert "mask-shape" in answers[0].case.tags, (message, answers[0].case.id)
    assert f"{built} positions" in answers[0].why, answers[0].why


@pytest.mark.parametrize(("rows", "length"), [(512, 1024), (128, 300)])
def test_a_table_sliced_past_its_rows_in_tensorflow_reads_as_a_position(
    rows: int, length: int
) -> None:
    # BERT-style tf.slice of a (max_positions, D) table to the sequence's length
    table = tf.zeros((rows, 8))
    message = _message(lambda: tf.slice(table, [0, 0], [length, -1]))
    answers = diagnose(message, top=3)
    assert "position-out-of-range" in answers[0].case.tags, (message, answers[0].case.id)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_query_key_value_of_two_dtypes_is_not_read_as_a_mask(dtype: torch.dtype) -> None:
    # SDPA's own check, run here: no mask is passed, so no mask case may lead
    q, kv = torch.zeros(1, 2, 3, 8, dtype=dtype), torch.zeros(1, 2, 3, 8)
    message = _message(lambda: torch.nn.functional.scaled_dot_product_attention(q, kv, kv))
    answers = diagnose(message, top=3)
    assert "mask-dtype" not in answers[0].case.tags, (message, answers[0].case.id)
    assert "reduced-precision" in answers[0].case.tags, (message, answers[0].case.id)
