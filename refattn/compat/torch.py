"""PyTorch semantics on NumPy arrays: ``torch.nn.functional.scaled_dot_product_attention``.

Import as ``from refattn.compat.torch import scaled_dot_product_attention``; it does not
need torch installed.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from refattn.errors import AttentionDTypeError, AttentionShapeError, AttentionValueError
from refattn.gradients import attention_backward
from refattn.multihead import merge_heads, project_heads
from refattn.reference import AttentionOptions, attention
from refattn.validation import as_array, check_allocation, flag, float_array, real_number, see

FloatArray = npt.NDArray[np.floating]


def scaled_dot_product_attention(
    query: npt.ArrayLike,
    key: npt.ArrayLike,
    value: npt.ArrayLike,
    attn_mask: npt.ArrayLike | None = None,
    dropout_p: float = 0.0,
    is_causal: bool = False,
    scale: float | None = None,
    enable_gqa: bool = False,
    *,
    rng: np.random.Generator | None = None,
) -> FloatArray:
    """``torch.nn.functional.scaled_dot_product_attention`` (torch 2.13) on NumPy arrays.

    Semantics, each as torch's CPU implementation behaves:

    - ``query (N, ..., Hq, L, E)``, ``key (N, ..., H, S, E)``, ``value (N, ..., H, S, Ev)``;
      leading dims broadcast; returns ``(N, ..., Hq, L, Ev)``.
    - ``attn_mask`` broadcastable to ``(N, ..., Hq, L, S)``: boolean **True = takes part
      in attention** (the opposite of ``nn.MultiheadAttention``), or floating and **added**
      to the logits (``-inf`` removes a key). A floating mask must be float32 or the
      query's dtype. A 3-D mask is read as ``(H, L, S)`` by trailing broadcasting, as torch
      does silently; for a per-batch ``(N, L, S)`` mask pass ``mask[:, None]``.
    - ``is_causal=True`` is the top-left aligned lower triangle (query ``i`` sees keys
      ``j <= i``, also when ``L != S``). Combined with ``attn_mask`` it raises, as torch
      documents (its fused 4-D CPU kernel silently applies both; its math path raises).
    - ``scale`` defaults to ``1 / sqrt(E)``.
    - GQA only with ``enable_gqa=True``: query head ``h`` reads kv head
      ``h // (Hq // H)``.
    - A row where every key is masked returns zeros (torch >= 2.5).

    Shapes are stricter than torch's in two places, on purpose: a 2-D (L, E) query (torch
    returns ``(L, Ev)``; add the head axis with ``x[None]``) and a key/value head axis of 1
    without ``enable_gqa`` (torch broadcasts it to every query head; pass
    ``enable_gqa=True``) raise :class:`~refattn.errors.AttentionShapeError`, so that a
    missing head axis or an unintended broadcast is named rather than computed.

    Where torch accepts bad input silently, this raises refattn's error instead: key and
    value of different lengths (torch's CPU kernel reads past the shorter one's meaning),
    a float mask holding NaN or ``+inf`` (torch returns NaN rows), and a float32 mask with
    a float64 query (torch's fused CPU kernel returns wrong numbers for that pair). Dropout needs an
    explicit ``rng`` (a ``numpy.random.Generator``); its keep-mask cannot equal torch's
    random stream, so only its statistics match.

    Raises:
        AttentionShapeError: shapes torch rejects, and key/value length mismatch.
        AttentionDTypeError: a mask dtype torch rejects, mixed or non-float inputs.
        AttentionValueError: ``attn_mask`` with ``is_causal``, ``dropout_p`` outside
            ``[0, 1)``, a missing ``rng``.

    Examples:
        >>> import numpy as np
        >>> q = k = v = np.ones((1, 2, 3, 4), dtype=np.float32)
        >>> scaled_dot_product_attention(q, k, v, is_causal=True).shape
        (1, 2, 3, 4)
    """
    options = _sdpa_options(query, key, attn_mask, is_causal, scale, enable_gqa)
    options["dropout_p"], options["rng"] = dropout_p, rng
    return attention(query, key, value, **options)


def scaled_dot_product_attention_backward(
    grad_output: npt.ArrayLike,
    query: npt.ArrayLike,
    key: npt.ArrayLike,
    value: npt.ArrayLike,
    attn_mask: npt.ArrayLike | None = None,
    is_causal: bool = False,
    scale: float | None = None,
    enable_gqa: bool = False,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Gradients of :func:`scaled_dot_product_attention`, as torch autograd computes them.

    Same arguments and semantics as the forward (without dropout); returns
    ``(grad_query, grad_key, grad_value)`` shaped like the inputs. A fully masked row has
    zero gradients, as in torch.

    Examples:
        >>> import numpy as np
        >>> q = k = v = np.ones((1, 2, 3, 4))
        >>> [g.shape for g in scaled_dot_product_attention_backward(q, q, k, v)]
        [(1, 2, 3, 4), (1, 2, 3, 4), (1, 2, 3, 4)]
    """
    options = _sdpa_options(query, key, attn_mask, is_causal, scale, enable_gqa)
    grad = as_array("grad_output", grad_output)
    grads = attention_backward(grad, query, key, value, **options)
    return grads.query, grads.key, grads.value


def _sdpa_options(
    query: npt.ArrayLike,
    key: npt.ArrayLike,
    attn_mask: npt.ArrayLike | None,
    is_causal: bool,
    scale: float | None,
    enable_gqa: bool,
) -> AttentionOptions:
    """Translate torch SDPA's arguments into :func:`refattn.attention`'s explicit ones."""
    q, k = as_array("query", query), as_array("key", key)
    for name, given in (("is_causal", is_causal), ("enable_gqa", enable_gqa)):
        if not isinstance(given, bool | np.bool_):
            raise AttentionValueError(
                f"{name} should be a bool: but got {given!r} of type {type(given).__name__}. "
                f"Pass {name}=True or {name}=False (causal alignment is top-left here; for "
                f"bottom-right use refattn.attention(causal='bottom_right'))."
            )
    if not enable_gqa and q.ndim >= 3 and k.ndim >= 3 and q.shape[-3] != k.shape[-3]:
        raise AttentionShapeError(
            f"query heads should equal key heads with enable_gqa=False: but got "
            f"{q.shape[-3]} query heads (query {q.shape}) and {k.shape[-3]} key heads (key "
            f"{k.shape}). For grouped-query "
            f"attention pass enable_gqa=True (torch raises 'The size of tensor a must "
            f"match the size of tensor b at non-singleton dimension 1' here)."
        )
    attend_mask = bias = None
    if attn_mask is not None and is_causal:
        raise AttentionValueError(
            "attn_mask should be None with is_causal=True: but got attn_mask and "
            "is_causal=True both. torch documents them as exclusive but is inconsistent: "
            "3-D inputs raise 'Explicit attn_mask should not be set when is_causal=True', "
            "while its fused 4-D CPU kernel silently applies both. Fold the causal "
            "mask into attn_mask (attn_mask & refattn.masks.causal(L, S, 'top_left')) and "
            "pass is_causal=False."
        )
    if attn_mask is not None:
        mask = as_array("attn_mask", attn_mask)
        if mask.ndim < 2:
            raise AttentionShapeError(
                f"attn_mask should have at least 2 dims (L, S): but got shape {mask.shape}. "
                f"torch raises IndexError 'Dimension out of range' here; spell a key mask "
                f"(S,) as mask[None, :] (1, S)."
            )
        if mask.ndim == 3 and q.ndim > 3:
            mask = mask[None]  # torch broadcasts a 3-D mask from the right: (H, L, S)
        _check_mask_fits(mask, np.shape(attn_mask), q, k)
        if mask.dtype == np.bool_:
            attend_mask = mask
        elif mask.dtype == np.float32 and q.dtype == np.float64:
            raise AttentionDTypeError(
                "attn_mask dtype should be float64 (or bool) with a float64 query: but got "
                "float32. torch 2.13 accepts this pair but its fused CPU kernel returns wrong "
                "results for it once S is larger than a few keys (neither the masked nor the "
                "unmasked answer). Cast the mask: attn_mask.astype(np.float64)."
            )
        elif mask.dtype.kind == "f" and mask.dtype in (np.dtype(np.float32), q.dtype):
            bias = _finite_mask("attn_mask", mask)
        else:
            raise AttentionDTypeError(
                f"attn_mask dtype should be bool (True = attend) or float32 or the query's "
                f"dtype {q.dtype} (added to the logits): but got {mask.dtype}. Convert a "
                f"0/1 mask with mask.astype(bool); torch says 'Expected attn_mask dtype to "
                f"be bool or float or to match query dtype'."
            )
    return AttentionOptions(
        attend_mask=attend_mask,
        bias=bias,
        causal="top_left" if is_causal else None,
        scale=scale,
        fully_masked="zero",
    )


def multi_head_attention_forward(
    query: npt.ArrayLike,
    key: npt.ArrayLike,
    value: npt.ArrayLike,
    embed_dim_to_check: int,
    num_heads: int,
    in_proj_weight: npt.ArrayLike | None,
    in_proj_bias: npt.ArrayLike | None,
    bias_k: npt.ArrayLike | None,
    bias_v: npt.ArrayLike | None,
    add_zero_attn: bool,
    dropout_p: float,
    out_proj_weight: npt.ArrayLike,
    out_proj_bias: npt.ArrayLike | None,
    training: bool = True,
    key_padding_mask: npt.ArrayLike | None = None,
    need_weights: bool = True,
    attn_mask: npt.ArrayLike | None = None,
    use_separate_proj_weight: bool = False,
    q_proj_weight: npt.ArrayLike | None = None,
    k_proj_weight: npt.ArrayLike | None = None,
    v_proj_weight: npt.ArrayLike | None = None,
    static_k: npt.ArrayLike | None = None,
    static_v: npt.ArrayLike | None = None,
    average_attn_weights: bool = True,
    is_causal: bool = False,
    *,
    rng: np.random.Generator | None = None,
) -> tuple[FloatArray, FloatArray | None]:
    """``torch.nn.functional.multi_head_attention_forward`` (torch 2.13) on NumPy arrays.

    The function behind ``torch.nn.MultiheadAttention.forward``; same parameters, same
    order, same semantics, as torch's CPU implementation behaves:

    - Layout is sequence-first: ``query (L, N, E)``, ``key (S, N, Ek)``,
      ``value (S, N, Ev)``, or unbatched ``(L, E)``, ``(S, Ek)``, ``(S, Ev)``. Returns
      ``(output (L, N, E) or (L, E), weights or None)``.
    - Projections: ``in_proj_weight (3E, E)`` packed ``[q | k | v]`` (then key and value
      must have the same shape), or with ``use_separate_proj_weight=True`` the weights
      ``q_proj_weight (E, E)``, ``k_proj_weight (E, Ek)``, ``v_proj_weight (E, Ev)``;
      ``in_proj_bias (3E,)`` is chunked in three either way. ``out_proj_weight (E, E)``.
      Heads split ``E`` head-major into ``num_heads`` heads of ``D = E // num_heads``.
    - ``key_padding_mask (N, S)`` or ``(S,)`` unbatched: boolean **True = ignore** the
      key, or floating and added to the logits. ``attn_mask (L, S)`` or batch-major
      ``(N * num_heads, L, S)`` (``(num_heads, L, S)`` unbatched): boolean **True =
      ignore**, or floating and added. A boolean mask becomes ``-inf`` in the query's
      dtype; the two masks are summed. A floating mask must have the query's dtype, or
      with ``need_weights=False`` float32 (torch's SDPA rule).
    - ``bias_k``, ``bias_v`` ``(1, 1, E)``: one learned key/value appended after the
      projection (``S + 1`` keys), never masked. ``add_zero_attn``: then a zero key and
      value appended per head (another key, never masked). Weights have these columns.
    - ``static_k``, ``static_v`` ``(N * num_heads, S, D)`` replace the projected key/value.
    - ``dropout_p`` applies only when ``training`` (torch's default is ``True``) and needs
      an explicit ``rng``: the keep-mask is ``rng.random((N, H, L, S)) >= dropout_p``;
      torch's random stream cannot be reproduced, so only its statistics match. With
      ``need_weights=True`` the returned weights are **after** dropout, as torch returns.
    - ``need_weights=True`` returns weights ``(N, L, S)`` averaged over heads, or
      ``(N, H, L, S)`` with ``average_attn_weights=False`` (unbatched: no ``N``).

    Quirks of torch 2.13, reproduced on purpose:

    - **Fully masked rows depend on need_weights.** With ``need_weights=True`` (the
      default) torch runs an explicit softmax: a query row whose keys are all masked is
      NaN in the weights, and, through the output projection, NaN in *every* feature of
      that position's output (one head's NaN spreads to all). With
      ``need_weights=False`` torch calls SDPA, whose fully masked rows are zeros: the
      output there is ``out_proj_bias``. (``bias_k`` and ``add_zero_attn`` add a key
      that is never masked, so rows are then never fully masked.) A third behaviour
      is *not* this function: ``nn.MultiheadAttention``'s inference fast path
      (``eval()``, no grad, ``batch_first=True``, ``need_weights=False``) calls
      ``torch._native_multi_head_attention`` and returns NaN rows there.
    - **is_causal is a hint.** It needs an ``attn_mask`` (else torch raises); with
      ``need_weights=False`` and no ``key_padding_mask`` torch *drops* ``attn_mask`` and
      applies top-left causal masking instead, whatever ``attn_mask`` holds; otherwise
      ``attn_mask`` is used and ``is_causal`` ignored.

    Raises:
        AttentionShapeError: every shape torch's ``AssertionError``/``RuntimeError``
            rejects (ranks, ``embed_dim_to_check``, ``E`` not divisible by
            ``num_heads``, key/value shapes, mask shapes).
        AttentionDTypeError: a mask that is neither boolean nor floating, or a floating
            mask of a dtype torch refuses.
        AttentionValueError: missing weights, ``is_causal`` without ``attn_mask``, a
            ``dropout_p`` without ``rng``, only one of ``bias_k``/``bias_v``.

    Examples:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> x = rng.standard_normal((5, 2, 8))  # (L, N, E)
        >>> w_in, w_out = rng.standard_normal((24, 8)), rng.standard_normal((8, 8))
        >>> kpm = np.array([[False] * 5, [True] * 5])  # batch 1: every key ignored
        >>> out, w = multi_head_attention_forward(
        ...     x, x, x, 8, 2, w_in, None, None, None, False, 0.0, w_out, None,
        ...     key_padding_mask=kpm,
        ... )
        >>> out.shape, w.shape, bool(np.isnan(out[:, 1]).all())  # torch's NaN quirk
        ((5, 2, 8), (2, 5, 5), True)
        >>> out, w = multi_head_attention_forward(
        ...     x, x, x, 8, 2, w_in, None, None, None, False, 0.0, w_out, None,
        ...     key_padding_mask=kpm, need_weights=False,
        ... )
        >>> w is None, bool((out[:, 1] == 0).all())  # SDPA path: zeros
        (True, True)
    """
    q_in, k_in, v_in = as_array("query", query), as_array("key", key), as_array("value", value)
    kpm = None if key_padding_mask is None else as_array("key_padding_mask", key_padding_mask)
    mask = None if attn_mask is None else as_array("attn_mask", attn_mask)
    if isinstance(num_heads, bool | np.bool_) or not isinstance(num_heads, int | np.integer):
        raise AttentionValueError(
            f"num_heads should be a positive int: but got {num_heads!r} of type "
            f"{type(num_heads).__name__}. Pass the module's num_heads, e.g. 8."
        )
    if num_heads < 1:
        raise AttentionValueError(
            f"num_heads should be a positive int: but got {num_heads}. Pass the module's "
            f"num_heads, e.g. 8; it must divide embed_dim." + see("head_split_not_divisible")
        )
    for flag_name, flag_value in (
        ("add_zero_attn", add_zero_attn),
        ("training", training),
        ("need_weights", need_weights),
        ("use_separate_proj_weight", use_separate_proj_weight),
        ("average_attn_weights", average_attn_weights),
        ("is_causal", is_causal),
    ):
        flag(flag_name, flag_value)
    if isinstance(embed_dim_to_check, bool | np.bool_) or not isinstance(
        embed_dim_to_check, int | np.integer
    ):
        raise AttentionValueError(
            f"embed_dim_to_check should be an int: but got {embed_dim_to_check!r} of type "
            f"{type(embed_dim_to_check).__name__}. Pass the module's embed_dim, E."
        )
    if out_proj_weight is None:
        raise AttentionValueError(
            "out_proj_weight should be an (E, E) array: but got None; torch raises "
            "\"linear(): argument 'weight' (position 2) must be Tensor, not NoneType\" here. "
            "Pass the module's out_proj.weight; for unprojected heads call "
            "refattn.multi_head_attention without out_proj_weight."
        )
    p = real_number("dropout_p", dropout_p, "a float in [0, 1)", "pass a float such as 0.1, or 0.0")
    batched = _mha_check_ranks(q_in, k_in, v_in, kpm, mask, num_heads)
    if not batched:  # pretend batched with N = 1, as torch does
        q_in, k_in, v_in = q_in[:, None], k_in[:, None], v_in[:, None]
        kpm = None if kpm is None else kpm[None]
        # attn_mask stays: (L, S), or (num_heads, L, S) = (N * num_heads, L, S) with N = 1
    dtype = q_in.dtype
    length_q, batch, embed = q_in.shape
    length_k = k_in.shape[0]
    for name, kv_in, static in (("key", k_in, static_k), ("value", v_in, static_v)):
        if static is None and kv_in.shape[1] != batch:
            raise AttentionShapeError(
                f"{name} batch size N should equal the query's N={batch}: but got {name} "
                f"{kv_in.shape} for query {q_in.shape}; torch raises a RuntimeError "
                f"(the projected {name} does not view as (S, N * num_heads, D)), it does not "
                f"broadcast. Layout is (S, N, E): repeat the {name} for each batch entry "
                f"(np.repeat({name}, N, axis=1)) or transpose a batch-first one."
            )
    if kpm is not None and kpm.shape != (batch, length_k):
        given = kpm.shape if batched else kpm.shape[1:]
        want: tuple[int, ...] = (batch, length_k) if batched else (length_k,)
        torch_says = ""
        if batched:
            axis = 0 if kpm.shape[0] != batch else 1
            torch_says = (
                f" (torch raises 'Expected key_padded_mask.shape[{axis}] to be {want[axis]}, "
                f"but got {kpm.shape[axis]}')"
            )
        hint = "pass one entry per batch entry and key, True = ignore"
        if batched and kpm.shape == (length_k, batch):
            hint = "it is transposed (S, N): pass key_padding_mask.T"
        raise AttentionShapeError(
            f"key_padding_mask shape should be {'(N, S)' if batched else '(S,)'} = {want}: "
            f"but got {given}{torch_says}; {hint}." + see("key_padding_broadcast_along_query")
        )

    # need_weights=False takes torch's SDPA path, which also takes float32 masks; refused
    # for float64 queries, where that path returns wrong numbers (see the SDPA adapter).
    mask_dtypes = (dtype,) if need_weights or dtype == np.float64 else (dtype, np.dtype(np.float32))
    kpm_add = _mha_additive("key_padding_mask", kpm, dtype, mask_dtypes)
    if is_causal and mask is None:
        raise AttentionValueError(
            "is_causal=True needs an attn_mask: it should be given with the hint, but got "
            "attn_mask=None; torch raises 'Need attn_mask if specifying the is_causal hint'. "
            "Pass the causal mask too, e.g. attn_mask=~refattn.masks.causal(L, S, "
            "'top_left') (torch's True = ignore)."
        )
    causal_hint = bool(is_causal) and kpm_add is None and not need_weights
    mask_add = None if causal_hint else _mha_additive("attn_mask", mask, dtype, mask_dtypes)

    if embed != embed_dim_to_check:
        raise AttentionShapeError(
            f"query embedding size should be embed_dim_to_check={embed_dim_to_check}: but "
            f"got query {q_in.shape} with E={embed}. Layout is (L, N, E): transpose a "
            f"batch-first (N, L, E) input with x.swapaxes(0, 1)."
        )
    if embed == 0:
        raise AttentionShapeError(
            f"embed_dim E should be positive: but got query {q_in.shape} with E=0; torch "
            f"raises ZeroDivisionError here. Pass the module's input (L, N, E) with E >= "
            f"num_heads; refattn.multi_head_attention returns the empty result for E = 0."
        )
    if embed % num_heads:
        raise AttentionShapeError(
            f"embed_dim E={embed} should be divisible by num_heads: but got num_heads="
            f"{num_heads}. Each head gets E // num_heads features: pass a num_heads that "
            f"divides {embed}." + see("head_split_not_divisible")
        )
    head_dim = embed // num_heads
    if use_separate_proj_weight and k_in.shape[:2] != v_in.shape[:2]:
        raise AttentionShapeError(
            f"key and value should agree on (S, N): but got key {k_in.shape} and value "
            f"{v_in.shape}. Pass key and value of the same sequence, sequence-first "
            f"(S, N, E)." + see("value_sliced_separately")
        )
    if not use_separate_proj_weight and k_in.shape != v_in.shape:
        raise AttentionShapeError(
            f"key shape should equal value shape with packed in_proj_weight: but got key "
            f"{k_in.shape} and value {v_in.shape}. For kdim/vdim different from E pass "
            f"use_separate_proj_weight=True with q/k/v_proj_weight."
        )
    if mask_add is not None:
        want = (
            (length_q, length_k) if mask_add.ndim == 2 else (batch * num_heads, length_q, length_k)
        )  # (L, S) or (N * H, L, S)
        if mask_add.shape != want:
            raise AttentionShapeError(
                f"attn_mask shape should be (L, S) = {(length_q, length_k)} or batch-major "
                f"(N * num_heads, L, S) = {(batch * num_heads, length_q, length_k)}: but got "
                f"{mask_add.shape}. Repeat a per-batch mask (N, L, S) per head: pass "
                f"np.repeat(mask, num_heads, axis=0)."
            )
        mask_add = mask_add.reshape(-1, num_heads if mask_add.ndim == 3 else 1, length_q, length_k)

    # batch-first from here: (N, L, E) -> heads (N, H, L, D)
    q, k, v = _mha_project(
        q_in.swapaxes(0, 1),
        k_in.swapaxes(0, 1),
        v_in.swapaxes(0, 1),
        num_heads,
        in_proj_weight,
        in_proj_bias,
        (q_proj_weight, k_proj_weight, v_proj_weight) if use_separate_proj_weight else None,
    )

    extra = 0  # keys appended after the S given ones; never masked
    if bias_k is not None and bias_v is not None:
        if static_k is not None or static_v is not None:
            raise AttentionValueError(
                "bias_k/bias_v should be None with static_k/static_v: but got both. Pass "
                "static_k/static_v that already include the bias key, and bias_k=None, "
                "bias_v=None."
            )
        k = np.concatenate(
            [k, _per_head("bias_k", bias_k, batch, num_heads, head_dim, dtype)], axis=2
        )
        v = np.concatenate(
            [v, _per_head("bias_v", bias_v, batch, num_heads, head_dim, dtype)], axis=2
        )
        extra += 1
    elif bias_k is not None or bias_v is not None:
        raise AttentionValueError(
            "bias_k and bias_v should be given together: but got only "
            f"{'bias_k' if bias_k is not None else 'bias_v'}. Pass both (the module's "
            f"bias_k and bias_v, add_bias_kv=True) or neither."
        )
    k = _static("static_k", static_k, k, batch, num_heads, head_dim)
    v = _static("static_v", static_v, v, batch, num_heads, head_dim)
    if k.shape[2] != v.shape[2]:
        static_name = "static_k" if static_k is not None else "static_v"
        other = "value" if static_name == "static_k" else "key"
        raise AttentionShapeError(
            f"{static_name} length should equal the {other}'s S: but got keys of length "
            f"{k.shape[2]} and values of length {v.shape[2]} (static_k given: "
            f"{static_k is not None}, static_v given: {static_v is not None}). Pass static_k "
            f"and static_v together, of one length." + see("value_sliced_separately")
        )
    if add_zero_attn:
        zeros = np.zeros((batch, num_heads, 1, head_dim), dtype=dtype)
        k, v = np.concatenate([k, zeros], axis=2), np.concatenate([v, zeros], axis=2)
        extra += 1
    length_all = k.shape[2]  # S' = S + extra, or static_k's length

    bias = None
    for add, shape in ((mask_add, None), (kpm_add, (batch, 1, 1, -1))):
        if add is None:
            continue
        add = add if shape is None else add.reshape(shape)
        add = np.concatenate([add, np.zeros((*add.shape[:-1], extra), add.dtype)], axis=-1)
        if add.shape[-1] != length_all:
            raise AttentionShapeError(
                f"masks should have one column per key, S = {length_all}: but got "
                f"{add.shape[-1] - extra} (+ {extra} for bias_k / add_zero_attn). With "
                f"static_k the masks must match static_k's length."
            )
        bias = add if bias is None else bias + add  # (N or 1, H or 1, L or 1, S')

    p = p if training else 0.0
    keep = None
    if p > 0.0:
        if not isinstance(rng, np.random.Generator):
            raise AttentionValueError(
                f"rng should be a numpy.random.Generator: dropout_p={p} with training=True "
                f"needs an explicit rng, but got rng={rng!r}. Pass rng=np.random."
                f"default_rng(0), or training=False for inference."
            )
        check_allocation(
            f"dropout_p={p} with training=True",
            "a keep-mask (N, H, L, S) drawn in float64",
            (batch, num_heads, length_q, length_all),
            8,
            "Pass training=False (inference), or split the batch into several calls.",
        )
        keep = rng.random((batch, num_heads, length_q, length_all)) >= p
    options = AttentionOptions(
        bias=bias,
        causal="top_left" if causal_hint else None,
        # softmax path / SDPA path; with no key at all (S' = 0) torch's softmax path
        # multiplies (L, 0) weights by (0, D) values: zeros, not NaN
        fully_masked="nan" if need_weights and length_all else "zero",
        dropout_p=p,
        dropout_keep=keep,
    )
    weights = None
    if need_weights:
        check_allocation(
            "need_weights=True",
            "the weights (N, H, L, S)",
            (batch, num_heads, length_q, length_all),
            2 * dtype.itemsize,
            "Pass need_weights=False: the output alone is computed in blocks.",
        )
        res = attention(q, k, v, return_weights=True, **options)
        heads, weights = res.output, res.weights
        assert weights is not None  # (N, H, L, S')
        if keep is not None:  # torch returns the weights after dropout
            weights = weights * keep / (1.0 - p)
        if average_attn_weights:
            weights = weights.mean(axis=1)  # (N, L, S')
    else:
        heads = attention(q, k, v, **options)  # (N, H, L, D)
    out = merge_heads(heads, out_proj_weight, out_proj_bias).swapaxes(0, 1)  # (L, N, E)
    if not batched:
        out = out[:, 0]
        weights = None if weights is None else weights[0]
    return out, weights


def _mha_check_ranks(
    query: FloatArray,
    key: FloatArray,
    value: FloatArray,
    key_padding_mask: npt.NDArray[np.generic] | None,
    attn_mask: npt.NDArray[np.generic] | None,
    num_heads: int,
) -> bool:
    """Torch's ``_mha_shape_check``: return whether the input is batched."""
    if query.ndim not in (2, 3):
        raise AttentionShapeError(
            f"query shape should be (L, N, E) or unbatched (L, E): but got {query.shape}. "
            f"Pass sequence-first input; for batch-first (N, L, E) use x.swapaxes(0, 1) or "
            f"refattn.multi_head_attention."
        )
    batched = query.ndim == 3
    form = "batched (3-D)" if batched else "unbatched (2-D)"
    if key.ndim != query.ndim or value.ndim != query.ndim:
        raise AttentionShapeError(
            f"key and value should be {query.ndim}-D like a {form} query {query.shape}: but "
            f"got key {key.shape} and value {value.shape}. Pass all three batched (3-D) or "
            f"all unbatched (2-D)."
        )
    kpm_ndim = 2 if batched else 1
    if key_padding_mask is not None and key_padding_mask.ndim != kpm_ndim:
        raise AttentionShapeError(
            f"key_padding_mask should be {kpm_ndim}-D for a {form} query: but got shape "
            f"{key_padding_mask.shape}. Pass it as (N, S), or (S,) unbatched."
        )
    if attn_mask is not None:
        if attn_mask.ndim not in (2, 3):
            raise AttentionShapeError(
                f"attn_mask should be 2-D (L, S) or 3-D (N * num_heads, L, S): but got "
                f"shape {attn_mask.shape}. Pass a 4-D (N, H, L, S) mask as "
                f"mask.reshape(-1, L, S)."
            )
        want = (num_heads, query.shape[0], key.shape[0])
        if not batched and attn_mask.ndim == 3 and attn_mask.shape != want:
            raise AttentionShapeError(
                f"attn_mask shape should be (num_heads, L, S) = {want} for an unbatched "
                f"query: but got {attn_mask.shape}. Pass (L, S) for all heads, or one "
                f"(L, S) slice per head."
            )
    return batched


def _mha_additive(
    name: str,
    mask: npt.NDArray[np.generic] | None,
    dtype: np.dtype[np.generic],
    allowed: tuple[np.dtype[np.generic], ...],
) -> FloatArray | None:
    """Torch's ``_canonical_mask``: boolean True = ignore becomes ``-inf``; floats stay."""
    if mask is None:
        return None
    if mask.dtype == np.bool_:
        additive: FloatArray = np.where(mask, -np.inf, 0.0).astype(dtype)
        return additive
    if mask.dtype.kind != "f":
        raise AttentionDTypeError(  # torch's message, then the fix
            f"{name} should be boolean (True = ignore) or floating (added to the logits): "
            f"but got dtype {mask.dtype}; torch says 'only bool and floating types of "
            f"{name} are supported'. Convert a 0/1 mask with {name}.astype(bool)."
        )
    if mask.dtype not in allowed:
        raise AttentionDTypeError(
            f"{name} dtype should be {' or '.join(str(d) for d in allowed)} here: but got "
            f"{mask.dtype}. torch adds it to logits of the query's dtype and refuses "
            f"others; cast it with {name}.astype(query.dtype)."
        )
    return _finite_mask(name, mask)


def _check_mask_fits(
    mask: npt.NDArray[np.generic],
    given: tuple[int, ...],
    q: npt.NDArray[np.generic],
    k: npt.NDArray[np.generic],
) -> None:
    """Refuse an ``attn_mask`` that does not broadcast to the scores, under its own name."""
    if q.ndim < 3 or k.ndim < 3:
        return  # attention refuses the query/key ranks first
    try:
        batch = np.broadcast_shapes(q.shape[:-3], k.shape[:-3])
    except ValueError:
        return  # attention names the batch mismatch
    scores = (*batch, q.shape[-3], q.shape[-2], k.shape[-2])
    try:
        fits = np.broadcast_shapes(mask.shape, scores) == scores
    except ValueError:
        fits = False
    if not fits:
        raise AttentionShapeError(
            f"attn_mask shape should broadcast to the scores (N, ..., Hq, L, S) = {scores}: "
            f"but got {given}. Pass (L, S) for every batch entry and head, or (N, 1, L, S) "
            f"per batch entry; a key-padding mask (N, S) is mask[:, None, None, :]."
            + see("mask_shape_not_broadcastable")
        )


def _finite_mask(name: str, mask: npt.NDArray[np.generic]) -> FloatArray:
    """Refuse NaN and ``+inf`` in a float mask, naming the mask (not the bias it becomes)."""
    nan, posinf = int(np.isnan(mask).sum()), int(np.isposinf(mask).sum())  # type: ignore[arg-type]
    if nan or posinf:
        raise AttentionValueError(
            f"{name} should hold finite values or -inf (to ignore a key): but got {nan} NaN "
            f"and {posinf} +inf entries ({name} shape {mask.shape}); torch returns NaN rows "
            f"for them. Build it with np.where(ignore, -np.inf, 0.0), not ignore * -np.inf."
            + see("mask_times_minus_inf")
        )
    return mask  # type: ignore[return-value]


def _mha_project(
    query: FloatArray,
    key: FloatArray,
    value: FloatArray,
    num_heads: int,
    in_proj_weight: npt.ArrayLike | None,
    in_proj_bias: npt.ArrayLike | None,
    separate: tuple[npt.ArrayLike | None, ...] | None,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Project batch-first inputs ``(N, L, E)`` into heads ``(N, H, L, D)``, torch's way."""
    embed = query.shape[-1]
    biases: list[npt.ArrayLike | None] = [None, None, None]
    if in_proj_bias is not None:
        b = as_array("in_proj_bias", in_proj_bias)
        if b.shape != (3 * embed,):
            raise AttentionShapeError(
                f"in_proj_bias shape should be (3 * E,) = ({3 * embed},): but got {b.shape}. "
                f"Pass the module's in_proj_bias, packed [q | k | v]."
            )
        biases = list(np.split(b, 3))
    if separate is None:
        if in_proj_weight is None:
            raise AttentionValueError(
                "in_proj_weight should be given when use_separate_proj_weight is False: but "
                "got None. Pass the packed (3E, E) weight, or use_separate_proj_weight=True "
                "with q_proj_weight, k_proj_weight and v_proj_weight."
            )
        w = as_array("in_proj_weight", in_proj_weight)
        if w.shape != (3 * embed, embed):
            raise AttentionShapeError(
                f"in_proj_weight shape should be (3 * E, E) = ({3 * embed}, {embed}): but got "
                f"{w.shape}. Pass the module's in_proj_weight: rows packed [q | k | v] in "
                f"torch.nn.Linear layout."
            )
        weights: list[npt.ArrayLike | None] = list(np.split(w, 3))
    else:
        weights = list(separate)
    projected = []
    for name, x, w_x, b_x in zip(
        ("query", "key", "value"), (query, key, value), weights, biases, strict=True
    ):
        if w_x is None:
            raise AttentionValueError(
                f"{name[0]}_proj_weight should be given when use_separate_proj_weight is "
                f"True: but got None. Pass the module's {name[0]}_proj_weight, or "
                f"use_separate_proj_weight=False with in_proj_weight."
            )
        w_x = as_array(f"{name[0]}_proj_weight", w_x)
        if w_x.shape != (embed, x.shape[-1]):
            raise AttentionShapeError(
                f"{name[0]}_proj_weight shape should be (E, E{name[0]}) = "
                f"({embed}, {x.shape[-1]}): but got {w_x.shape}. Pass the weight in "
                f"torch.nn.Linear layout (out x in); a transposed one is weight.T."
            )
        projected.append(
            project_heads(
                x,
                w_x,
                b_x,
                num_heads=num_heads,
                name=name,
                weight_name="in_proj_weight" if separate is None else f"{name[0]}_proj_weight",
                bias_name="in_proj_bias",
            )
        )
    return projected[0], projected[1], projected[2]


def _query_dtype(name: str, x: npt.ArrayLike, dtype: np.dtype[Any]) -> FloatArray:
    arr = float_array(name, x)
    if arr.dtype != dtype:
        raise AttentionDTypeError(
            f"{name} dtype should be the query's {dtype}: but got {arr.dtype}. Cast it with "
            f"{name}.astype(query.dtype); torch's parameters share the module's dtype."
        )
    return arr


def _per_head(
    name: str, x: npt.ArrayLike, batch: int, num_heads: int, head_dim: int, dtype: np.dtype[Any]
) -> FloatArray:
    """``bias_k``/``bias_v`` ``(1, 1, E)`` as one extra key per head: ``(N, H, 1, D)``."""
    arr = _query_dtype(name, x, dtype)
    if arr.shape != (1, 1, num_heads * head_dim):
        raise AttentionShapeError(
            f"{name} shape should be (1, 1, E) = (1, 1, {num_heads * head_dim}): but got "
            f"{arr.shape}. Pass the module's {name} parameter as is."
        )
    per_head = arr.reshape(1, num_heads, 1, head_dim)  # E splits head-major into (H, D)
    return np.broadcast_to(per_head, (batch, num_heads, 1, head_dim))


def _static(
    name: str,
    static: npt.ArrayLike | None,
    projected: FloatArray,
    batch: int,
    num_heads: int,
    head_dim: int,
) -> FloatArray:
    """``static_k``/``static_v`` ``(N * H, S, D)`` (batch-major) as ``(N, H, S, D)``."""
    if static is None:
        return projected
    arr = _query_dtype(name, static, projected.dtype)
    if arr.ndim != 3 or arr.shape[0] != batch * num_heads or arr.shape[2] != head_dim:
        raise AttentionShapeError(
            f"{name} shape should be (N * num_heads, S, D) = ({batch * num_heads}, S, "
            f"{head_dim}): but got {arr.shape}. Reshape (N, H, S, D) heads with "
            f"x.reshape(N * num_heads, S, D) (batch-major)."
        )
    return arr.reshape(batch, num_heads, arr.shape[1], head_dim)
