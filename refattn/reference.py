r"""The reference attention function.

Shape legend, used in every docstring of refattn:

| letter | meaning |
| --- | --- |
| ``...`` | any number of leading batch dims, broadcast between q, k and v |
| ``Hq``, ``Hkv`` | query heads, key/value heads (``Hq`` a multiple of ``Hkv``) |
| ``L``, ``S`` | query length, key length |
| ``D``, ``Dv`` | query/key feature size, value feature size |
"""

from __future__ import annotations

from typing import Literal, NamedTuple, TypedDict, Unpack, overload

import numpy as np
import numpy.typing as npt

from refattn import _kernel, _numerics, _small
from refattn.validation import Alignment, Policy, check_returns, validate_positional

FloatArray = npt.NDArray[np.floating]


class AttentionResult(NamedTuple):
    """What :func:`attention` returns when ``return_weights`` or ``return_lse`` is set.

    Attributes:
        output: ``(..., Hq, L, Dv)``, the input dtype.
        weights: ``(..., Hq, L, S)`` softmax probabilities (before dropout), or None.
        lse: ``(..., Hq, L)`` natural log-sum-exp of each row's final logits (after scale,
            softcap, bias and masks), the sink's ``exp(sink)`` included in the sum when
            ``sinks`` is given; ``-inf`` for a fully masked row. Or None.
    """

    output: FloatArray
    weights: FloatArray | None
    lse: FloatArray | None


class AttentionOptions(TypedDict, total=False):
    """The keyword arguments of :func:`attention` other than the ``return_*`` flags."""

    attend_mask: npt.ArrayLike | None
    bias: npt.ArrayLike | None
    causal: Alignment | None
    window: tuple[int | None, int | None] | None
    window_alignment: Alignment | None
    key_lengths: npt.ArrayLike | None
    query_lengths: npt.ArrayLike | None
    alibi_slopes: npt.ArrayLike | None
    softcap: float | None
    scale: float | None
    fully_masked: Policy
    dropout_p: float
    rng: np.random.Generator | None
    dropout_keep: npt.ArrayLike | None
    memory_budget: int | None
    segment_ids: npt.ArrayLike | None
    key_segment_ids: npt.ArrayLike | None
    sinks: npt.ArrayLike | None


@overload
def attention(
    query: npt.ArrayLike,
    key: npt.ArrayLike,
    value: npt.ArrayLike,
    *,
    return_weights: Literal[False] = ...,
    return_lse: Literal[False] = ...,
    **options: Unpack[AttentionOptions],
) -> FloatArray: ...
@overload
def attention(
    query: npt.ArrayLike,
    key: npt.ArrayLike,
    value: npt.ArrayLike,
    *,
    return_weights: Literal[True],
    return_lse: bool = ...,
    **options: Unpack[AttentionOptions],
) -> AttentionResult: ...
@overload
def attention(
    query: npt.ArrayLike,
    key: npt.ArrayLike,
    value: npt.ArrayLike,
    *,
    return_weights: bool = ...,
    return_lse: Literal[True],
    **options: Unpack[AttentionOptions],
) -> AttentionResult: ...


def attention(
    query: npt.ArrayLike,
    key: npt.ArrayLike,
    value: npt.ArrayLike,
    *,
    attend_mask: npt.ArrayLike | None = None,
    bias: npt.ArrayLike | None = None,
    causal: Alignment | None = None,
    window: tuple[int | None, int | None] | None = None,
    window_alignment: Alignment | None = None,
    key_lengths: npt.ArrayLike | None = None,
    query_lengths: npt.ArrayLike | None = None,
    alibi_slopes: npt.ArrayLike | None = None,
    softcap: float | None = None,
    scale: float | None = None,
    fully_masked: Policy = "zero",
    dropout_p: float = 0.0,
    rng: np.random.Generator | None = None,
    dropout_keep: npt.ArrayLike | None = None,
    memory_budget: int | None = None,
    segment_ids: npt.ArrayLike | None = None,
    key_segment_ids: npt.ArrayLike | None = None,
    sinks: npt.ArrayLike | None = None,
    return_weights: bool = False,
    return_lse: bool = False,
) -> FloatArray | AttentionResult:
    r"""Batched scaled dot-product attention, the reference semantics of refattn.

    The math is two einsums (:mod:`refattn.einsums`), with query heads grouped as
    ``(..., Hkv, G, L, D)``, ``G = Hq // Hkv``::

        logits  = einsum("...hgld,...hsd->...hgls", query, key) * scale
        output  = einsum("...hgls,...hsv->...hglv", softmax(logits'), value)

    where ``logits'`` goes through these steps, in this order:

    1. **scale**: ``scale`` (default ``1 / sqrt(D)``);
    2. **softcap**: ``softcap * tanh(logits / softcap)``;
    3. **bias**: ``+ bias``, then ``- alibi_slopes[h] * |i + S - L - j|``;
    4. **masks**: a key ``j`` is removed from query ``i``'s row (logit ``-inf``) unless
       every one of ``attend_mask``, ``causal``, ``window``, ``key_lengths``,
       ``query_lengths`` and ``segment_ids`` allows it;
    5. **softmax** over keys, in float32 (float64 for float64 input); with ``sinks``, the
       head's sink logit joins the denominator and carries no value::

           weights[i, j] = exp(s[i, j]) / (exp(sinks[h]) + sum_j' exp(s[i, j']))

    6. **dropout** of the weights, kept ones scaled by ``1 / (1 - dropout_p)``;
    7. **mix**: the weights times ``value``, the second einsum.

    A row where every key is removed follows ``fully_masked``, except with a finite sink:
    then the sink holds all the row's mass and the row's output is 0 (its ``lse`` is the
    sink), whatever ``fully_masked`` says.

    **Packed sequences.** ``segment_ids`` labels each query and ``key_segment_ids`` each
    key (JAX/Flax and FlexAttention's "document masking"; flash-attn varlen's
    ``cu_seqlens`` as ids: ``segment_ids[cu[b]:cu[b+1]] = b``). Query ``i`` may attend key
    ``j`` only when ``segment_ids[i] == key_segment_ids[j]``; a negative id is padding,
    which attends nothing (a fully masked row, unless there is a sink) and is attended by
    nothing. Positions are then counted **within each segment**: a token's position is
    its rank among the tokens of its own segment on its own axis (for a contiguous run,
    its offset from the run's first token; runs need not be contiguous). For a segment
    with ``sq`` queries and ``sk`` keys, ``causal``, ``window`` and ALiBi read query
    position ``p`` and key position ``t`` as a whole call of lengths ``sq``, ``sk`` would:
    ``"top_left"`` lets ``p`` see ``t <= p``, ``"bottom_right"`` ``t <= p + sk - sq``
    (flash-attn varlen's per-sequence causal mask), windows are centred on the aligned
    position and ALiBi's distance is ``|p + sk - sq - t|``. ``key_lengths`` and
    ``query_lengths`` still count from index 0 of the whole axis. With one set of ids for
    both axes, ``causal`` (either alignment) is causal by index within each segment,
    contiguous or not: FlexAttention's document mask ``same id and i >= j``.

    **Range.** Finite inputs never overflow: when float32 could overflow anywhere (logits,
    ``scale``, ``softcap``, ``bias`` or value sums near ``3e38``), the call is computed in
    float64 and the result is float64 math's rounded to the input dtype, e.g.
    ``bias=np.float32(-3e38)`` shifts every logit alike and returns softmax of the
    absorbed logits (the mean of value), as float64 and torch do. float64 inputs whose
    logits may exceed about ``7e306`` raise :class:`~refattn.errors.AttentionValueError`.
    Calls whose logits may exceed ``1e3`` in magnitude (a bound from the norms of query
    and key) also compute in float64, so float32 accuracy stays within 2x torch SDPA's.

    **Non-finite inputs: masked means absent.** A (query, key) pair removed by a mask
    never affects the output, whatever its logit, key or value hold. NaN or ``±inf`` at an
    allowed pair gives NaN exactly where it is read: a non-finite query entry makes its row
    NaN (unless the row is fully masked), a non-finite key entry makes NaN every row that
    may attend that key, and a non-finite ``value[j, e]`` makes NaN feature ``e`` of every
    row that may attend key ``j`` (whatever its weight, dropout included). ``lse`` and
    ``weights`` of a row made NaN by its query or a key are NaN. The result does not
    depend on block sizes, threads or ``memory_budget``. Gradients follow the same rule.

    Args:
        query: ``(..., Hq, L, D)`` floating.
        key: ``(..., Hkv, S, D)``, same dtype. Leading dims broadcast against query's.
        value: ``(..., Hkv, S, Dv)``, same dtype.
        attend_mask: boolean, **True = query i may attend key j**, broadcastable to
            ``(..., Hq, L, S)``. A 3-D mask is refused when the scores have more than 3
            dims: it is ambiguous between ``(B, L, S)`` and ``(H, L, S)``.
        bias: floating, added to the logits; broadcastable to ``(..., Hq, L, S)``.
            ``-inf`` entries remove keys like a mask does; NaN and ``+inf`` are refused.
        causal: ``"top_left"`` (query ``i`` sees keys ``j <= i``: torch and JAX
            ``is_causal``) or ``"bottom_right"`` (``j <= i + S - L``: flash-attn, decoding
            with a KV cache). Never a bool: the two differ when ``L != S``.
        window: ``(left, right)`` inclusive offsets, query ``i`` sees keys
            ``i' - left <= j <= i' + right`` with ``i'`` the aligned position; None for an
            unbounded side. flash-attn's and JAX's meaning.
        window_alignment: the diagonal the window is centred on, ``"top_left"``
            (``i' = i``, JAX ``local_window_size``) or ``"bottom_right"``
            (``i' = i + S - L``, flash-attn). Defaults to ``causal``'s alignment; needed
            when ``L != S`` and ``causal`` is None.
        key_lengths: integers broadcastable to the batch shape ``(...)``: keys
            ``j >= key_lengths`` are padding.
        query_lengths: likewise for queries; a padded query row is a fully masked row.
        alibi_slopes: ``(Hq,)`` or ``(..., Hq)``; adds ``-slope * |i + S - L - j|``
            (flash-attn's ALiBi, aligned bottom-right).
        softcap: positive float, caps logits smoothly to ``(-softcap, softcap)``.
        scale: multiplies ``query · key``; default ``1 / sqrt(D)``.
        fully_masked: what a row with no allowed key returns: ``"zero"`` (torch SDPA >= 2.5,
            flash-attn), ``"uniform"`` (mean of value over all ``S`` keys: JAX, Flax),
            ``"nan"``, or ``"raise"`` (:class:`~refattn.errors.FullyMaskedRowError`).
        dropout_p: probability of dropping a weight, in ``[0, 1)``.
        rng: a ``numpy.random.Generator``, required when ``dropout_p > 0`` and no
            ``dropout_keep`` is given. One seed is drawn from it and each block of the
            keep-mask is derived from that seed and the entries' positions
            (:mod:`refattn._layout`), so the mask is never held whole and depends on the
            generator's state only, not on block sizes, threads or ``memory_budget``.
        dropout_keep: boolean keep-mask broadcastable to ``(..., Hq, L, S)``.
        segment_ids: integers broadcastable to ``(..., L)``: each query's segment, negative
            = padding. See "Packed sequences" above.
        key_segment_ids: integers broadcastable to ``(..., S)``: each key's segment.
            Defaults to ``segment_ids`` when ``L == S``; required otherwise. With
            ``window`` and no ``causal``, ``window_alignment`` is then required too.
        sinks: floating ``(Hq,)`` or ``(..., Hq)``: a per-head attention-sink logit
            (gpt-oss) added to every row's softmax denominator, with no value: rows sum
            to less than 1 and ``weights`` leaves the sink's share out. Not scaled,
            capped or masked; ``-inf`` means no sink for that head; NaN and ``+inf`` are
            refused.
        memory_budget: bytes the score tensor ``(..., Hq, L, S)`` may take. The kernel
            walks keys in cache-sized chunks with an online softmax (flash attention's
            recurrence) at any size, holding ``O(L + S)`` memory per thread, so every
            budget is met. Default 256 MiB. The result is the same up to float
            rounding. Ignored with ``return_weights``, which needs the full tensor
            anyway.
        return_weights: also return the weights ``(..., Hq, L, S)``.
        return_lse: also return the log-sum-exp ``(..., Hq, L)``.

    Returns:
        ``(..., Hq, L, Dv)`` in the input dtype (float16 is computed in float32), where
        ``...`` is the broadcast of the inputs' batch dims; or an :class:`AttentionResult`
        when ``return_weights`` or ``return_lse`` is set.

    Raises:
        AttentionShapeError: shapes that do not fit (a ``ValueError``).
        AttentionDTypeError: integer, complex, mixed or wrongly typed inputs (a ``TypeError``).
        AttentionValueError: out-of-range values (a ``ValueError``).
        FullyMaskedRowError: with ``fully_masked="raise"`` (a ``ValueError``).

    Examples:
        >>> import numpy as np
        >>> from refattn import attention
        >>> rng = np.random.default_rng(0)
        >>> q = rng.standard_normal((2, 8, 5, 16), dtype=np.float32)
        >>> kv = rng.standard_normal((2, 2, 7, 16), dtype=np.float32)  # GQA, 2 kv heads
        >>> attention(q, kv, kv, causal="bottom_right").shape
        (2, 8, 5, 16)
    """
    plan = validate_positional(  # validate(), options by position: keywords cost more
        query, key, value, attend_mask, bias, causal, window, window_alignment, key_lengths,
        query_lengths, alibi_slopes, softcap, scale, fully_masked, dropout_p, rng,
        dropout_keep, memory_budget, segment_ids, key_segment_ids, sinks,
    )  # fmt: skip
    if return_weights is not False or return_lse is not False:  # both False pass its checks
        check_returns(plan, return_weights, return_lse)
    batch, hq = plan.batch_shape, plan.num_q_heads
    length_q, length_k = plan.query.shape[3], plan.key.shape[2]
    dim_v = plan.value.shape[3]
    prepared = _numerics.prepare(plan)
    small = None if return_weights else _small.run(prepared, bool(return_lse))
    if small is not None:  # one block per batch entry: the kernel's result, bit for bit
        out, small_lse = small
        output = out.reshape(*batch, hq, length_q, dim_v)
        if output.dtype != plan.out_dtype:
            output = output.astype(plan.out_dtype)
        if not return_lse:
            return output
        assert small_lse is not None
        with np.errstate(over="ignore"):  # as below
            small_lse = small_lse.reshape(*batch, hq, length_q)  # (N, Hkv, G * L, 1) before
            return AttentionResult(output, None, small_lse.astype(plan.query.dtype, copy=False))
    res = _kernel.run(plan, need_weights=return_weights, prepared=prepared)
    output = res.out.reshape(*batch, hq, length_q, dim_v).astype(plan.out_dtype, copy=False)
    if not (return_weights or return_lse):
        return output
    weights = None
    if res.weights is not None:
        weights = res.weights.reshape(*batch, hq, length_q, length_k)
        weights = weights.astype(plan.out_dtype, copy=False)
    lse = None
    if return_lse:  # in the compute dtype even when the kernel widened it to float64
        with np.errstate(over="ignore"):  # a logit past float32's range rounds to inf
            lse = res.lse.reshape(*batch, hq, length_q).astype(plan.query.dtype, copy=False)
    return AttentionResult(output, weights, lse)
