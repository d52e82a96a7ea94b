"""Framework behaviour that case pages state beside their variants, run here.

Each test backs one sentence of a case's docstring or ``FW_NOTE`` that the case's own
variants do not run (another spelling of the mistake, another framework's wording). torch,
jax and tensorflow-cpu are installed by the test setup, so these fail rather than skip.
"""

from __future__ import annotations

import re

import numpy as np
import pytest


def _doc(case_id: str) -> str:
    """The docstring (page prose) of a case."""
    from catalogue import get

    return get(case_id).module.__doc__ or ""


def _message(fn: object) -> tuple[type[BaseException], str]:
    try:
        fn()  # type: ignore[operator]
    except Exception as error:
        return type(error), str(error)
    raise AssertionError("returned without an exception")


# mask_shape_not_broadcastable: the seed articles' single-head spellings
def test_seed_masked_fill_eq_zero_on_a_batch_length_mask() -> None:
    import torch

    batch_size, sequence_length = 10, 20
    scores = torch.randn(batch_size, sequence_length, sequence_length)
    mask = torch.randint(0, 2, (batch_size, sequence_length)).bool()  # as in article 000
    kind, text = _message(lambda: scores.masked_fill(mask == 0, float("-inf")))
    assert kind is RuntimeError
    assert re.search(
        r"The size of tensor a \(10\) must match the size of tensor b \(20\) at "
        r"non-singleton dimension 1",
        text,
    )


def test_seed_minus_1e9_times_mask_on_bmm_scores() -> None:
    import torch

    batch_size, max_len, embedding_dim = 32, 20, 512  # article 004, Example 3
    seq_lengths = torch.randint(5, max_len + 1, (batch_size,))
    mask = torch.arange(max_len).expand(batch_size, max_len) >= seq_lengths.unsqueeze(1)
    q = k = torch.randn(batch_size, max_len, embedding_dim)
    kind, text = _message(
        lambda: torch.softmax(torch.bmm(q, k.transpose(1, 2)) - 1e9 * mask.float(), dim=-1)
    )
    assert kind is RuntimeError
    assert re.search(
        r"The size of tensor a \(20\) must match the size of tensor b \(32\) at "
        r"non-singleton dimension 1",
        text,
    )


def test_tf_additive_mask_without_axes_fails_in_addv2() -> None:
    import tensorflow as tf

    scores = tf.zeros((2, 4, 5, 6))
    bias = tf.zeros((2, 6))
    kind, text = _message(lambda: scores + bias)
    assert kind is tf.errors.InvalidArgumentError
    assert re.search(r"Incompatible shapes: \[2,4,5,6\] vs\. \[2,6\] \[Op:AddV2\]", text)


# out_projection_sized_from_key: vdim is the value input width
def test_multihead_attention_vdim_is_the_value_input_width() -> None:
    import torch

    mha = torch.nn.MultiheadAttention(32, 4, vdim=24, batch_first=True)
    assert mha.v_proj_weight is not None
    assert tuple(mha.v_proj_weight.shape) == (32, 24)  # (embed_dim, vdim)
    assert mha.out_proj.in_features == 32  # embed_dim, whatever vdim is
    out, _ = mha(torch.randn(2, 5, 32), torch.randn(2, 7, 32), torch.randn(2, 7, 24))
    assert tuple(out.shape) == (2, 5, 32)


# position_table_too_short, token_id_out_of_range, pad_id_minus_100_wraps: JAX lookups
def test_jax_indexing_clamps_and_take_fills_nan_past_the_table() -> None:
    import jax.numpy as jnp

    table = np.arange(16 * 3, dtype=np.float32).reshape(16, 3)
    rows = np.asarray(jnp.asarray(table)[jnp.arange(20)])
    np.testing.assert_array_equal(rows[16:], np.broadcast_to(table[15], (4, 3)))
    taken = np.asarray(jnp.take(jnp.asarray(table), jnp.arange(20), axis=0))
    np.testing.assert_array_equal(taken[:16], table)
    assert np.isnan(taken[16:]).all()


def test_jax_wraps_negative_ids_within_the_table_and_clamps_or_fills_beyond() -> None:
    import jax.numpy as jnp

    table = np.arange(128 * 2, dtype=np.float32).reshape(128, 2)
    ids = jnp.asarray([-100, -1])
    np.testing.assert_array_equal(np.asarray(jnp.asarray(table)[ids]), table[[28, 127]])
    np.testing.assert_array_equal(
        np.asarray(jnp.take(jnp.asarray(table), ids, axis=0)), table[[28, 127]]
    )
    small = jnp.asarray(table[:50])  # -100 is past a 50-row table
    np.testing.assert_array_equal(np.asarray(small[jnp.asarray([-100])]), table[[0]])
    assert np.isnan(np.asarray(jnp.take(small, jnp.asarray([-100]), axis=0))).all()


def test_numpy_raises_for_minus_100_only_below_100_rows() -> None:
    table = np.zeros((50, 4))
    kind, text = _message(lambda: table[np.array([3, -100])])
    assert kind is IndexError
    assert "index -100 is out of bounds for axis 0 with size 50" in text


def test_tf_gather_refuses_negative_ids() -> None:
    import tensorflow as tf

    table = np.zeros((128, 4), dtype=np.float32)
    ids = np.array([[3, 7, 9, -100, -100]])
    kind, text = _message(lambda: tf.gather(table, ids))
    assert kind is tf.errors.InvalidArgumentError
    assert re.search(r"indices\[0,3\] = -100 is not in \[0, 128\)", text)


# minus_1e9_in_float16: torch's half arithmetic does not make NumPy's NaN
def test_torch_half_scores_minus_1e9_times_pad_is_finite_and_right() -> None:
    import torch

    from catalogue.cases import minus_1e9_in_float16 as case

    x, pad = (torch.from_numpy(a) for a in case._inputs())
    scores = x @ x.transpose(-2, -1) / 2.0  # float16
    shifted = scores - 1e9 * pad[:, None, :]
    assert shifted.dtype == torch.float16
    assert torch.isneginf(shifted[pad[:, None, :].expand_as(shifted) > 0]).all()
    weights = torch.softmax(shifted, dim=-1)
    assert not torch.isnan(weights).any()
    np.testing.assert_allclose(weights.float().numpy(), case.reference(), atol=2e-3)


# tilde_on_int_mask: torch refuses the int mask everywhere
def test_torch_masked_fill_and_sdpa_refuse_an_int_mask() -> None:
    import torch
    import torch.nn.functional as F

    scores = torch.randn(1, 6, 6)
    pad = ~torch.tensor([[1, 1, 1, 1, 0, 0]])  # int64: -2 and -1
    kind, text = _message(lambda: scores.masked_fill(pad[:, None, :], float("-inf")))
    assert kind is RuntimeError
    assert "masked_fill_ only supports boolean masks, but got mask with dtype long int" in text
    x = torch.randn(1, 1, 6, 4)
    kind, text = _message(
        lambda: F.scaled_dot_product_attention(x, x, x, attn_mask=pad[:, None, None, :])
    )
    assert kind is RuntimeError
    assert "Expected attn_mask dtype to be bool or float or to match query dtype" in text


# sdpa_int_mask_dtype: nn.MultiheadAttention refuses, Keras casts
def test_multihead_attention_refuses_an_int_key_padding_mask() -> None:
    import torch

    mha = torch.nn.MultiheadAttention(4, 1, batch_first=True)
    x = torch.randn(2, 6, 4)
    padding = torch.tensor([[0, 0, 0, 0, 1, 1], [0, 0, 0, 0, 0, 0]])
    kind, text = _message(lambda: mha(x, x, x, key_padding_mask=padding))
    assert kind is AssertionError
    assert "only bool and floating types of key_padding_mask are supported" in text


@pytest.mark.parametrize("dtype", ["int64", "float32"])
def test_keras_multihead_attention_casts_a_0_1_mask_to_bool(dtype: str) -> None:
    import tensorflow as tf

    x = np.random.default_rng(0).standard_normal((2, 6, 4)).astype(np.float32)
    keep = np.array([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]], dtype=dtype)
    init = tf.keras.initializers.GlorotUniform(seed=0)
    mha = tf.keras.layers.MultiHeadAttention(1, 4, kernel_initializer=init)
    _, weights = mha(x, x, attention_mask=keep[:, None, :], return_attention_scores=True)
    w = weights.numpy()[:, 0]  # (B, L, S)
    assert (w[0, :, 4:] == 0).all()
    np.testing.assert_allclose(w.sum(-1), 1.0, rtol=1e-5)


# three_d_mask_read_as_heads: what B != H and H == 1 really do
def test_three_d_mask_with_one_head_broadcasts_to_batch_copies_in_numpy() -> None:
    mask = np.ones((2, 5, 5), dtype=bool)
    scores = np.zeros((2, 1, 5, 5))  # (B, H, L, S) with H == 1
    assert np.where(mask, scores, -np.inf).shape == (2, 2, 5, 5)


def test_torch_sdpa_three_d_mask_with_one_head_or_b_not_h_raises() -> None:
    import torch
    import torch.nn.functional as F

    mask = torch.ones(2, 5, 5, dtype=torch.bool)  # (B, L, S)
    one = torch.randn(2, 1, 5, 4)
    kind, text = _message(lambda: F.scaled_dot_product_attention(one, one, one, attn_mask=mask))
    assert kind is RuntimeError
    assert "output with shape [2, 1, 5, 5] doesn't match the broadcast shape [2, 2, 5, 5]" in text
    three = torch.randn(2, 3, 5, 4)
    kind, text = _message(
        lambda: F.scaled_dot_product_attention(three, three, three, attn_mask=mask)
    )
    assert kind is RuntimeError
    assert re.search(
        r"The size of tensor a \(3\) must match the size of tensor b \(2\) at non-singleton "
        r"dimension 1",
        text,
    )
    kind, text = _message(lambda: np.where(np.ones((2, 5, 5), bool), np.zeros((2, 3, 5, 5)), 0))
    assert kind is ValueError
    assert "operands could not be broadcast together" in text


# mha_mask_polarity_into_sdpa: a row with every key removed
def test_torch_sdpa_returns_zeros_for_a_fully_masked_row() -> None:
    import torch
    import torch.nn.functional as F

    x = torch.randn(1, 6, 4, dtype=torch.float64)
    out = F.scaled_dot_product_attention(x, x, x, attn_mask=torch.zeros(1, 1, 6, dtype=torch.bool))
    assert (out == 0).all()


# mm_on_batched_input: bmm on 4-D heads
def test_torch_bmm_on_four_d_heads() -> None:
    import torch

    kind, text = _message(lambda: torch.bmm(torch.randn(2, 3, 5, 8), torch.randn(2, 3, 8, 5)))
    assert kind is RuntimeError
    assert text == "batch1 must be a 3D tensor"


# padding_not_masked (seed claim): unmasked padding leaks, gradients stay finite
def test_unmasked_padding_gradients_are_finite() -> None:
    import torch

    from catalogue.cases import padding_not_masked as case

    x = torch.from_numpy(case._inputs()[0]).requires_grad_()
    out = torch.softmax(x @ x.transpose(-2, -1) / 2.0, dim=-1) @ x
    out.sum().backward()  # type: ignore[no-untyped-call]
    assert x.grad is not None
    assert torch.isfinite(out).all()
    assert torch.isfinite(x.grad).all()


# mask_times_minus_inf: torch makes the same NaN without a warning
def test_torch_zero_times_minus_inf_is_nan_without_a_warning() -> None:
    import warnings

    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        bias = (1.0 - torch.tensor([1.0, 0.0])) * float("-inf")
    assert torch.isnan(bias[0])
    assert torch.isneginf(bias[1])


# softmax_over_batch_axis: the only sign is a UserWarning
def test_torch_softmax_without_dim_warns_and_uses_dim_0_on_3d() -> None:
    import torch
    import torch.nn.functional as F

    scores = torch.randn(3, 5, 5)
    with pytest.warns(UserWarning, match="Implicit dimension choice for softmax has been"):
        weights = F.softmax(scores)
    torch.testing.assert_close(weights, torch.softmax(scores, dim=0))


# value_sliced_separately: SDPA's default path and its math backend
def test_torch_sdpa_takes_keys_and_values_of_different_lengths_unless_math() -> None:
    import torch
    import torch.nn.functional as F
    from torch.nn.attention import SDPBackend, sdpa_kernel

    q, k, v = torch.randn(2, 1, 5, 8), torch.randn(2, 1, 16, 8), torch.randn(2, 1, 12, 8)
    assert tuple(F.scaled_dot_product_attention(q, k, v).shape) == (2, 1, 5, 8)
    with sdpa_kernel(SDPBackend.MATH):
        kind, text = _message(lambda: F.scaled_dot_product_attention(q, k, v))
    assert kind is RuntimeError
    assert "Expected size for first two dimensions of batch2 tensor to be: [2, 16]" in text
    mha = torch.nn.MultiheadAttention(8, 1, batch_first=True)
    kind, text = _message(lambda: mha(torch.randn(2, 5, 8), k[:, 0], v[:, 0]))
    assert kind is AssertionError
    assert re.search(r"key shape .* does not match value shape", text)


# zero_length_sequence: what each framework does with zero keys
def test_torch_softmax_and_sdpa_over_zero_keys_and_last_token_of_nothing() -> None:
    import torch
    import torch.nn.functional as F

    q, k, v = torch.randn(3, 4), torch.randn(0, 4), torch.randn(0, 4)
    weights = torch.softmax(q @ k.T, dim=-1)
    assert tuple(weights.shape) == (3, 0)
    out = F.scaled_dot_product_attention(q[None], k[None], v[None])
    assert tuple(out.shape) == (1, 3, 4)
    assert (out == 0).all()
    kind, text = _message(lambda: torch.zeros(0, 4)[-1])
    assert kind is IndexError
    assert "index -1 is out of bounds for dimension 0 with size 0" in text
    kind, text = _message(lambda: np.zeros((0, 4))[-1])
    assert kind is IndexError
    assert "index -1 is out of bounds for axis 0 with size 0" in text


def test_tf_hand_written_softmax_over_zero_keys_returns_zeros() -> None:
    import tensorflow as tf

    from catalogue.cases import zero_length_sequence as case

    q, k, v = (tf.constant(a) for a in case._inputs())
    scores = tf.matmul(q, k, transpose_b=True) / 2.0
    top = tf.reduce_max(scores, axis=-1, keepdims=True)
    assert np.isneginf(top.numpy()).all()
    weights = tf.exp(scores - top)
    out = (weights / tf.reduce_sum(weights, axis=-1, keepdims=True)) @ v
    np.testing.assert_array_equal(out.numpy(), np.zeros((3, 4)))


def test_1e9_times_a_float16_zero_is_0_in_torch_and_nan_elsewhere() -> None:
    import jax.numpy as jnp
    import tensorflow as tf
    import torch

    pad = np.array([0.0, 1.0], dtype=np.float16)
    product = (1e9 * torch.from_numpy(pad)).numpy()
    assert product[0] == 0
    assert np.isposinf(product[1])
    for other in (np.asarray(1e9 * jnp.asarray(pad)), (1e9 * tf.constant(pad)).numpy()):
        assert other.dtype == np.float16
        assert np.isnan(other[0])
        assert np.isposinf(other[1])
    with np.errstate(over="ignore", invalid="ignore"):
        assert np.isnan((1e9 * pad)[0])  # NumPy 2: 1e9 is cast to float16 first


# MESSAGES: each regex a case gives diagnose, matched against the message run here
def _assert_case_regex(case_id: str, regex: str, text: str) -> None:
    from catalogue import get

    assert regex in get(case_id).module.MESSAGES
    assert re.search(regex, text), text


def test_messages_three_d_mask_read_as_heads_matches_refattn() -> None:
    from refattn import attention
    from refattn.errors import AttentionShapeError

    x = np.ones((2, 3, 5, 4))
    kind, text = _message(lambda: attention(x, x, x, attend_mask=np.ones((2, 5, 5), bool)))
    assert kind is AttentionShapeError
    _assert_case_regex(
        "three_d_mask_read_as_heads", r"3 dims .*ambiguous: \(B, L, S\) or \(H, L, S\)", text
    )


def test_messages_mask_shape_not_broadcastable_key_padding_mask_batch() -> None:
    import torch

    mha = torch.nn.MultiheadAttention(4, 1, batch_first=True)
    x = torch.randn(2, 6, 4)
    kind, text = _message(
        lambda: mha(x, x, x, key_padding_mask=torch.zeros(3, 6, dtype=torch.bool))
    )
    assert kind is AssertionError
    _assert_case_regex(
        "mask_shape_not_broadcastable",
        r"Expected key_padded_mask\.shape\[0\] to be \d+, but got \d+",
        text,
    )
    assert "to be 2, but got 3" in text


def test_messages_head_split_not_divisible_multihead_attention() -> None:
    import torch

    kind, text = _message(lambda: torch.nn.MultiheadAttention(10, 3))
    assert kind is AssertionError
    _assert_case_regex(
        "head_split_not_divisible", r"embed_dim must be divisible by num_heads", text
    )


def test_messages_einsum_wrong_subscripts_too_many() -> None:
    kind, text = _message(lambda: np.einsum("bhld,bhsd->bhls", np.zeros((3, 4)), np.zeros((3, 4))))
    assert kind is ValueError
    _assert_case_regex(
        "einsum_wrong_subscripts",
        r"einstein sum subscripts string contains too many subscripts",
        text,
    )


def test_messages_missing_transpose_raises_tf_graph_mode() -> None:
    import tensorflow as tf

    spec = tf.TensorSpec([2, 5, 8])
    traced = tf.function(lambda a, b: tf.matmul(a, b))
    kind, text = _message(lambda: traced.get_concrete_function(spec, spec))
    assert kind is ValueError
    _assert_case_regex(
        "missing_transpose_raises",
        r"Dimensions must be equal, but are \d+ and \d+ for .*(?:MatMul|BatchMatMul)",
        text,
    )


def test_messages_softmax_axis_out_of_range_tf_reduction() -> None:
    import tensorflow as tf

    kind, text = _message(lambda: tf.reduce_max(tf.zeros((2, 5, 5)), axis=3))
    assert kind is tf.errors.InvalidArgumentError
    _assert_case_regex(
        "softmax_axis_out_of_range",
        r"Invalid reduction dimension \(-?\d+ for input with \d+ dimension\(s\)",
        text,
    )


def test_messages_transpose_missing_batch_axis_lax_transpose() -> None:
    import jax
    import jax.numpy as jnp

    kind, text = _message(lambda: jax.lax.transpose(jnp.zeros((2, 3, 4)), (0, 1, 3, 2)))
    assert kind is TypeError
    _assert_case_regex(
        "transpose_missing_batch_axis",
        r"transpose permutation isn't a permutation of operand dimensions",
        text,
    )


def test_messages_zero_length_sequence_jax_last_token_of_nothing() -> None:
    import jax.numpy as jnp

    kind, text = _message(lambda: jnp.zeros((0, 4))[-1])
    assert kind is IndexError
    _assert_case_regex(
        "zero_length_sequence", r"index is out of bounds for axis 0 with size 0", text
    )


def test_messages_cross_attention_context_width_tf_two_d_matmul() -> None:
    import tensorflow as tf

    kind, text = _message(lambda: tf.matmul(tf.zeros((14, 768)), tf.zeros((512, 64))))
    assert kind is tf.errors.InvalidArgumentError
    _assert_case_regex(
        "cross_attention_context_width",
        r"Matrix size-incompatible: In\[0\]: \[\d+,\d+\], In\[1\]: \[\d+,\d+\]",
        text,
    )


def test_messages_mm_on_batched_input_mat2() -> None:
    import torch

    kind, text = _message(lambda: torch.mm(torch.randn(5, 8), torch.randn(2, 8, 5)))
    assert kind is RuntimeError
    _assert_case_regex("mm_on_batched_input", r"(?:self|mat2) must be a matrix", text)
    assert "mat2 must be a matrix" in text


# sliding_window_read_as_radius: keys kept per query by JAX's local_window_size=(3, 3)
def test_jax_local_window_3_3_keeps_7_keys_and_4_with_causal() -> None:
    import jax
    import jax.numpy as jnp

    doc = " ".join((_doc("sliding_window_read_as_radius")).split())
    assert "in JAX with ``is_causal=True`` as well it still keeps 4" in doc
    length = 8
    q = jnp.asarray(np.random.default_rng(0).standard_normal((1, length, 1, 8)), jnp.float32)
    v = jnp.eye(length, dtype=jnp.float32)[None, :, None, :]  # one-hot: weights as outputs
    both = jax.nn.dot_product_attention(q, q, v, local_window_size=(3, 3))
    kept = (np.asarray(both)[0, :, 0] > 0).sum(-1)
    assert kept.tolist() == [4, 5, 6, 7, 7, 6, 5, 4]
    causal = jax.nn.dot_product_attention(q, q, v, is_causal=True, local_window_size=(3, 3))
    kept = (np.asarray(causal)[0, :, 0] > 0).sum(-1)
    assert kept.tolist() == [1, 2, 3, 4, 4, 4, 4, 4]


# rotary_conventions_mixed: torch.view_as_complex pairs features 2i and 2i + 1
def test_torch_view_as_complex_rotation_is_the_interleaved_convention() -> None:
    import torch

    from catalogue.cases._rope import inverse_frequencies, rotate_half_split, rotate_interleaved

    assert "``torch.view_as_complex``: ``2i`` with ``2i + 1``" in " ".join(
        _doc("rotary_conventions_mixed").split()
    )
    x = np.random.default_rng(0).standard_normal((6, 8))  # (L, D)
    angles = np.arange(6)[:, None] * inverse_frequencies(8)  # (L, D/2)
    pairs = torch.view_as_complex(torch.from_numpy(x).reshape(6, 4, 2).contiguous())
    rotated = pairs * torch.polar(torch.ones(6, 4, dtype=torch.float64), torch.from_numpy(angles))
    out = torch.view_as_real(rotated).reshape(6, 8).numpy()
    np.testing.assert_allclose(out, rotate_interleaved(x, np.cos(angles), np.sin(angles)))
    assert not np.allclose(out, rotate_half_split(x, np.cos(angles), np.sin(angles)))


# exp_without_max_subtraction: the frameworks' exp overflows silently; the ready softmaxes
def test_framework_exp_overflows_without_a_warning_and_library_softmaxes_do_not() -> None:
    import warnings

    import jax
    import jax.numpy as jnp
    import scipy.special  # type: ignore[import-untyped]
    import tensorflow as tf
    import torch

    doc = " ".join(_doc("exp_without_max_subtraction").split())
    assert "``tf.exp`` overflow the same way, without a warning" in doc
    x = np.array([160.0, 1.0], dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for out in (
            torch.exp(torch.from_numpy(x)).numpy(),
            np.asarray(jnp.exp(x)),
            tf.exp(x).numpy(),
        ):
            assert np.isposinf(out[0])
            assert np.isfinite(out[1])
        for weights in (
            scipy.special.softmax(x),
            torch.softmax(torch.from_numpy(x), -1).numpy(),
            np.asarray(jax.nn.softmax(x)),
            tf.nn.softmax(x).numpy(),
        ):
            np.testing.assert_allclose(weights, [1.0, 0.0], atol=1e-30)


# finfo_min_arithmetic_float16: silent casts, and float16 arithmetic on -65504
def test_framework_casts_finfo_min_to_minus_inf_without_a_warning() -> None:
    import warnings

    import jax.numpy as jnp
    import tensorflow as tf
    import torch

    doc = " ".join(_doc("finfo_min_arithmetic_float16").split())
    assert "cast it to ``-inf`` without a warning" in doc
    mask = np.array([0.0, np.finfo(np.float32).min], dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for out in (
            torch.from_numpy(mask).to(torch.float16).numpy(),
            np.asarray(jnp.asarray(mask).astype(jnp.float16)),
            tf.cast(mask, tf.float16).numpy(),
        ):
            assert out[0] == 0
            assert np.isneginf(out[1])


def test_float16_finfo_min_plus_a_second_mask_or_minus_a_bias_is_minus_inf() -> None:
    import torch

    assert "(``-65504 + -65504``) or subtracting a bias overflows to ``-inf``" in " ".join(
        _doc("finfo_min_arithmetic_float16").split()
    )
    low = np.float16(np.finfo(np.float16).min)
    assert low == -65504
    with pytest.warns(RuntimeWarning, match="overflow encountered"):
        assert np.isneginf(low + low)
    with np.errstate(over="ignore"):
        assert np.isneginf(low - np.float16(100))
    half = torch.tensor([-65504.0], dtype=torch.float16)
    assert torch.isneginf(half + half).all()
    assert torch.isneginf(half - 100).all()


# pad_id_minus_100_wraps: id -1 in nn.Embedding and Keras's Embedding
def test_torch_embedding_refuses_minus_1_and_keras_embedding_wraps_it() -> None:
    import tensorflow as tf
    import torch

    doc = " ".join(_doc("pad_id_minus_100_wraps").split())
    assert "PyTorch's ``nn.Embedding`` refuses both" in doc
    assert "Keras's ``Embedding`` wrap the same way" in doc
    kind, text = _message(lambda: torch.nn.Embedding(128, 4)(torch.tensor([[3, -1]])))
    assert kind is IndexError
    assert "index out of range in self" in text
    table = np.arange(256.0, dtype=np.float32).reshape(128, 2)
    embed = tf.keras.layers.Embedding(
        128, 2, embeddings_initializer=tf.keras.initializers.Constant(table)
    )
    np.testing.assert_array_equal(embed(tf.constant([[-1, -100]])).numpy()[0], table[[127, 28]])


# transpose_missing_batch_axis: np.swapaxes on an unbatched key
def test_numpy_swapaxes_2_3_on_a_three_d_key() -> None:
    doc = " ".join(_doc("transpose_missing_batch_axis").split())
    quoted = "axis2: axis 3 is out of bounds for array of dimension 3"
    assert quoted in doc
    kind, text = _message(lambda: np.swapaxes(np.zeros((2, 3, 4)), 2, 3))
    assert kind is np.exceptions.AxisError
    assert text == quoted


# softmax_axis_out_of_range: AxisError's bases
def test_numpy_axis_error_is_a_value_error_and_an_index_error() -> None:
    assert "is both a ``ValueError`` and an ``IndexError``" in " ".join(
        _doc("softmax_axis_out_of_range").split()
    )
    assert issubclass(np.exceptions.AxisError, ValueError)
    assert issubclass(np.exceptions.AxisError, IndexError)


# keras_mask_without_query_axis: the fix through Embedding(mask_zero=True)
def test_keras_mha_uses_the_mask_of_an_embedding_with_mask_zero() -> None:
    import tensorflow as tf

    doc = " ".join(_doc("keras_mask_without_query_axis").split())
    assert (
        "``Embedding(mask_zero=True)``'s mask (which also gives the padded queries all-zero" in doc
    )
    ids = np.array([[5, 3, 2, 0, 0], [1, 2, 3, 4, 6]])
    tf.keras.utils.set_random_seed(0)
    hidden = tf.keras.layers.Embedding(10, 8, mask_zero=True)(ids)
    _, weights = tf.keras.layers.MultiHeadAttention(2, 4)(
        hidden, hidden, return_attention_scores=True
    )
    w = weights.numpy()  # (B, H, L, S)
    assert (w[0, :, :, 3:] == 0).all()  # no weight on the padded keys
    assert (w[0, :, 3:] == 0).all()  # and the padded queries' rows are all zero
    np.testing.assert_allclose(w[0, :, :3].sum(-1), 1.0, rtol=1e-5)
    assert (w[1] > 0).all()
    np.testing.assert_allclose(w[1].sum(-1), 1.0, rtol=1e-5)


# rotary_table_in_half_precision: model.half() / .to(bfloat16) cast the inv_freq buffer
def test_torch_module_cast_casts_a_non_persistent_rotary_buffer() -> None:
    import torch

    doc = " ".join(_doc("rotary_table_in_half_precision").split())
    assert "``model.to(torch.bfloat16)`` casts the rotary ``inv_freq`` buffer too" in doc

    class Rotary(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            inv_freq = 1.0 / (10000 ** (torch.arange(0, 8, 2).float() / 8))
            self.register_buffer("inv_freq", inv_freq, persistent=False)

    assert Rotary().half().inv_freq.dtype == torch.float16
    assert Rotary().to(torch.bfloat16).inv_freq.dtype == torch.bfloat16


# cross_attention_context_width: the fix with kdim and vdim
def test_multihead_attention_kdim_vdim_take_a_wider_context() -> None:
    import torch

    assert "``kdim=vdim=768`` in ``nn.MultiheadAttention``" in _doc("cross_attention_context_width")
    mha = torch.nn.MultiheadAttention(512, 8, kdim=768, vdim=768, batch_first=True)
    context = torch.randn(2, 9, 768)
    out, _ = mha(torch.randn(2, 7, 512), context, context)
    assert tuple(out.shape) == (2, 7, 512)


# beam_context_batch_mismatch: q @ k.transpose raises what SDPA raises
def test_torch_matmul_of_beam_queries_and_unexpanded_context() -> None:
    import torch

    from catalogue.cases import beam_context_batch_mismatch as case

    assert "(and ``q @ k.transpose``)" in (case.__doc__ or "")
    query, context = (torch.from_numpy(a) for a in case._inputs())
    kind, text = _message(lambda: query @ context.transpose(-1, -2))
    assert kind is RuntimeError
    assert re.search(
        r"The size of tensor a \(6\) must match the size of tensor b \(2\) at non-singleton "
        r"dimension 0",
        text,
    )


# int_mask_as_index: boolean arrays index by position, integer arrays by value
def test_torch_and_jax_index_by_position_with_bool_and_by_value_with_int() -> None:
    import jax.numpy as jnp
    import torch

    assert "NumPy, PyTorch and JAX index with a boolean array by position" in " ".join(
        _doc("int_mask_as_index").split()
    )
    pad = np.array([0, 0, 0, 0, 1, 1])
    row = np.zeros(6)
    expected = np.array([0, 0, 0, 0, -np.inf, -np.inf])
    by_position = torch.zeros(6)
    by_position[torch.from_numpy(pad).bool()] = float("-inf")
    np.testing.assert_array_equal(by_position.numpy(), expected)
    jax_row = jnp.asarray(row).at[jnp.asarray(pad).astype(bool)].set(-jnp.inf)
    np.testing.assert_array_equal(np.asarray(jax_row), expected)
    by_value = torch.zeros(6)
    by_value[torch.from_numpy(pad)] = float("-inf")  # rows 0 and 1
    np.testing.assert_array_equal(by_value.numpy(), [-np.inf, -np.inf, 0, 0, 0, 0])
    jax_value = jnp.asarray(row).at[jnp.asarray(pad)].set(-jnp.inf)
    np.testing.assert_array_equal(np.asarray(jax_value), [-np.inf, -np.inf, 0, 0, 0, 0])


# mha_3d_mask_per_example: a 2-D mask is shared by every example
def test_multihead_attention_applies_a_2d_mask_to_every_example() -> None:
    import torch

    assert "a 2-D mask is shared by every example" in _doc("mha_3d_mask_per_example")
    torch.manual_seed(0)
    mha = torch.nn.MultiheadAttention(16, 4, batch_first=True).eval()
    x = torch.randn(2, 5, 16)
    blocked = torch.arange(5) >= 3  # (S,) broadcast to (L, S)
    mask = blocked.expand(5, 5)
    with torch.no_grad():
        both, weights = mha(x, x, x, attn_mask=mask)
        alone = [mha(x[i : i + 1], x[i : i + 1], x[i : i + 1], attn_mask=mask)[0] for i in (0, 1)]
    torch.testing.assert_close(both, torch.cat(alone))
    assert weights is not None
    assert (weights[:, :, 3:] == 0).all()
