"""JAX semantics on NumPy arrays: ``jax.nn.dot_product_attention``.

Import as ``from refattn.compat.jax import dot_product_attention``; it does not need JAX
installed. The semantics are read from JAX 0.10.2's ``jax/_src/nn/functions.py`` (the
``xla`` implementation, the default) and tested against it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from refattn import masks
from refattn.errors import AttentionDTypeError, AttentionShapeError, AttentionValueError
from refattn.reference import attention
from refattn.validation import as_array, flag, see, window_side

FloatArray = npt.NDArray[np.floating]


def dot_product_attention(
    query: npt.ArrayLike,
    key: npt.ArrayLike,
    value: npt.ArrayLike,
    bias: npt.ArrayLike | None = None,
    mask: npt.ArrayLike | None = None,
    *,
    scale: float | None = None,
    is_causal: bool = False,
    query_seq_lengths: npt.ArrayLike | None = None,
    key_value_seq_lengths: npt.ArrayLike | None = None,
    local_window_size: int | tuple[int, int] | None = None,
) -> FloatArray:
    """``jax.nn.dot_product_attention`` (JAX 0.10, ``implementation="xla"``) on NumPy arrays.

    JAX's letters: ``B`` batch, ``T`` query length, ``S`` key length, ``N`` query heads,
    ``K`` key/value heads, ``H`` head dim. Semantics, as JAX's XLA path computes them:

    - ``query (B, T, N, H)``, ``key`` and ``value (B, S, K, H)`` (or all three without
      ``B``); value has exactly key's shape. Returns query's shape. GQA when ``N`` is a
      multiple of ``K``: query head ``n`` reads key/value head ``n // (N // K)``.
    - logits ``= scale * query · key + bias``; ``scale`` defaults to ``1 / sqrt(H)``.
    - ``bias`` and ``mask`` broadcast to ``(B, N, T, S)`` and have at most 4 dims (fewer
      get leading axes: a 3-D one is ``(N, T, S)``); their head axis is 1 or ``N``.
      ``mask`` is boolean, **True = takes part**.
    - ``is_causal``: top-left, query ``t`` sees keys ``s <= t`` (also when ``T != S``).
    - ``local_window_size=(left, right)`` (an int ``w`` means ``(w, w)``): query ``t``
      sees ``t - left <= s <= t + right``, top-left aligned.
    - ``query_seq_lengths``, ``key_value_seq_lengths`` ``(B,)``: positions at or after the
      length are padding. Padded query rows are returned as **zeros**.
    - Masking replaces a removed logit by a large negative finite number (not ``-inf``),
      then the softmax runs **in float32** (for float64 input too). Hence:

      * a row where every key is removed gets uniform weights: the **mean of value over
        all S keys** (refattn's ``fully_masked="uniform"``);
      * a row whose allowed keys all have ``bias = -inf`` puts uniform weight on the keys
        the masks removed (their large negative logit beats ``-inf``), and is **NaN**
        when no key was removed by a mask. Both are reproduced.

    Differences: the computation here is in float64 for float64 input (JAX's float32
    softmax is accurate to ~1e-7; without ``jax_enable_x64`` JAX also casts float64 input
    to float32); lengths may be any integer dtype (JAX wants int32); ``implementation``
    and ``return_residual`` are not offered.

    Raises:
        AttentionShapeError: shapes JAX rejects (its ``ValueError``), and masks that do not
            broadcast.
        AttentionDTypeError: a non-boolean ``mask``, non-integer lengths, mixed dtypes.
        AttentionValueError: a ``local_window_size`` that is not a non-negative int or pair
            of them; lengths outside ``[0, T]`` / ``[0, S]`` (JAX accepts them silently).

    Examples:
        >>> import numpy as np
        >>> q = np.zeros((1, 3, 2, 4), np.float32)  # (B, T, N, H)
        >>> kv = np.arange(3 * 4, dtype=np.float32).reshape(1, 3, 1, 4)  # (B, S, K, H): MQA
        >>> dot_product_attention(q, kv, kv, is_causal=True)[0, :, 0]  # running means
        array([[0., 1., 2., 3.],
               [2., 3., 4., 5.],
               [4., 5., 6., 7.]], dtype=float32)
        >>> no_keys = np.zeros((1, 1, 3, 3), bool)  # every key removed: mean of value
        >>> dot_product_attention(q, kv, kv, mask=no_keys)[0, 0, 0]
        array([4., 5., 6., 7.], dtype=float32)
    """
    q, k, v = as_array("query", query), as_array("key", key), as_array("value", value)
    flag("is_causal", is_causal)
    out_shape = q.shape
    q, k, v = _ensure_4d(q), _ensure_4d(k), _ensure_4d(v)
    if not (q.ndim == k.ndim == v.ndim == 4):
        raise AttentionShapeError(
            f"query, key and value should be (B, T, N, H), (B, S, K, H), (B, S, K, H) or "
            f"the same without B: but got query {out_shape}, key {np.shape(key)}, value "
            f"{np.shape(value)}. Pass all three with the same rank, heads at axis -2; a "
            f"(B, N, T, H) array is x.transpose(0, 2, 1, 3)."
        )
    batch, length_k, kv_heads, dim = k.shape
    if v.shape != k.shape:
        raise AttentionShapeError(
            f"value shape should be {k.shape} (key's shape; JAX has no separate value "
            f"head dim): but got {v.shape}. Pass key and value of the same length and "
            f"heads; for Dv != D use refattn.attention." + see("value_sliced_separately")
        )
    if v.dtype != k.dtype or q.dtype != k.dtype:
        raise AttentionDTypeError(
            f"query and value dtype should be key's {k.dtype}: but got query {q.dtype} and "
            f"value {v.dtype}. Cast them to one dtype, e.g. value.astype(key.dtype)."
        )
    if q.shape[0] != batch or q.shape[3] != dim:
        raise AttentionShapeError(
            f"query shape should be (B, T, N, H) = ({batch}, T, N, {dim}), like key "
            f"{k.shape}: but got {q.shape}. JAX's layout puts heads at axis 2; a (B, N, T, "
            f"H) array: transpose it with x.transpose(0, 2, 1, 3)."
        )
    heads, length_q = q.shape[2], q.shape[1]
    if heads % kv_heads:
        raise AttentionShapeError(
            f"query heads N={heads} should be a multiple of key/value heads K={kv_heads}: "
            f"but got query {q.shape} and key {k.shape}. Check heads are at axis 2 in JAX's "
            f"(B, T, N, H) layout." + see("gqa_query_heads_not_a_multiple")
        )
    scores = (batch, heads, length_q, length_k)
    bias4 = None if bias is None else _score_array("bias", bias, scores)
    mask4 = None if mask is None else _score_array("mask", mask, scores)
    if mask4 is not None and mask4.dtype != np.bool_:
        raise AttentionDTypeError(
            f"mask dtype should be bool (True = takes part): but got {mask4.dtype}. Pass "
            f"an additive mask as bias=, and convert a 0/1 mask with mask.astype(bool)."
        )
    qlen = _seq_lengths("query_seq_lengths", query_seq_lengths, batch, length_q, "T")
    klen = _seq_lengths("key_value_seq_lengths", key_value_seq_lengths, batch, length_k, "S")
    window = _window(local_window_size)

    qh, kh, vh = (x.transpose(0, 2, 1, 3) for x in (q, k, v))  # (B, heads, length, H)
    out = attention(
        qh,
        kh,
        vh,
        attend_mask=mask4,
        bias=bias4,
        causal="top_left" if is_causal else None,
        window=window,
        window_alignment=None if window is None else "top_left",
        key_lengths=klen,
        query_lengths=qlen,
        scale=scale,
        fully_masked="uniform" if length_k else "zero",  # JAX returns zeros when S = 0
    )  # (B, N, T, H)
    if bias4 is not None and np.isneginf(bias4).any():
        # Rows whose allowed keys all have bias -inf: JAX's softmax puts uniform weight on
        # the keys the masks removed (large negative > -inf), NaN if there are none.
        allowed = _allowed(mask4, is_causal, window, klen, qlen, (batch, heads, length_q, length_k))
        dead = ~(allowed & ~np.isneginf(bias4)).any(axis=-1, keepdims=True)  # (B, N, T, 1)
        if dead.any():
            removed = np.broadcast_to(~allowed, (batch, heads, length_q, length_k))
            fallback = attention(
                qh, kh, vh, attend_mask=removed, scale=0.0, fully_masked="nan"
            )  # uniform over the removed keys
            out = np.where(dead, fallback, out)
    if qlen is not None:
        padded = np.arange(length_q)[None, None, :, None] >= qlen[:, None, None, None]
        out = np.where(padded, np.zeros((), out.dtype), out)  # JAX zeroes padded queries
    return out.transpose(0, 2, 1, 3).reshape(out_shape)  # (B, T, N, H)


def _ensure_4d(arr: npt.NDArray[np.generic]) -> npt.NDArray[np.generic]:
    """Leading singleton axes up to 4 dims, as JAX's ``_ensure_4d``."""
    return arr.reshape((1,) * (4 - arr.ndim) + arr.shape) if arr.ndim < 4 else arr


def _score_array(
    name: str, x: npt.ArrayLike, scores: tuple[int, int, int, int]
) -> npt.NDArray[Any]:
    heads = scores[1]
    arr = _ensure_4d(as_array(name, x))
    if arr.ndim != 4:
        raise AttentionShapeError(
            f"{name} should have at most 4 dims (B, N, T, S): but got shape {arr.shape}; "
            f"JAX says '{name} ndim should be 4'. Merge extra batch axes with "
            f"{name}.reshape(-1, *{name}.shape[-3:])."
        )
    if arr.shape[1] not in (1, heads):
        raise AttentionShapeError(
            f"{name} head axis should be 1 or N={heads}: but got shape {arr.shape} (axis 1 "
            f"is heads in JAX's (B, N, T, S) layout). Pass a (B, T, S) {name} as "
            f"{name}[:, None]." + see("three_d_mask_read_as_heads")
        )
    try:
        fits = np.broadcast_shapes(arr.shape, scores) == scores
    except ValueError:
        fits = False
    if not fits:
        raise AttentionShapeError(
            f"{name} shape should broadcast to the scores (B, N, T, S) = {scores}: but got "
            f"{arr.shape}. Pass (B, 1, T, S) for all heads, (B, 1, 1, S) for key padding, "
            f"or (T, S) for every batch entry." + see("mask_shape_not_broadcastable")
        )
    return arr


def _seq_lengths(
    name: str, x: npt.ArrayLike | None, batch: int, limit: int, axis: str
) -> npt.NDArray[np.integer] | None:
    if x is None:
        return None
    arr = as_array(name, x)
    if arr.dtype.kind not in "iu":
        raise AttentionDTypeError(
            f"{name} should be integers (int32 in JAX): but got dtype {arr.dtype}. Convert "
            f"with np.asarray({name}, dtype=np.int32)."
        )
    if arr.shape != (batch,):
        raise AttentionShapeError(
            f"{name} shape should be (B,) = ({batch},): but got {arr.shape}; JAX says "
            f"'{name} shape should be [{batch}]'. Pass one length per batch entry."
        )
    if arr.size and (arr.min() < 0 or arr.max() > limit):
        bad = arr[(arr < 0) | (arr > limit)][0]
        raise AttentionValueError(
            f"{name} should lie in [0, {axis}] = [0, {limit}]: but got {bad} ({name}="
            f"{arr.tolist()}). JAX accepts it silently (a length past {axis} pads nothing); "
            f"pass lengths counted after truncation, at most {limit}."
            + see("lengths_longer_than_padded")
        )
    return arr


def _window(size: object) -> tuple[int, int] | None:
    if size is None:
        return None
    if isinstance(size, int | np.integer) and not isinstance(size, bool | np.bool_):
        pair: tuple[object, ...] = (size, size)
    elif isinstance(size, tuple | list):
        pair = tuple(size)
    else:
        pair = ()
    if len(pair) != 2:
        raise AttentionValueError(
            f"local_window_size should be a non-negative int or a pair (left, right) of "
            f"non-negative ints: but got {size!r} of type {type(size).__name__}. Pass e.g. "
            f"local_window_size=(128, 0) for a causal window of 129 keys, or an int w for "
            f"(w, w)."
        )
    left, right = (window_side(f"local_window_size[{i}]", s) for i, s in enumerate(pair))
    if left is None or right is None:
        raise AttentionValueError(
            f"local_window_size should be a pair of ints: but got {size!r}; JAX has no "
            f"unbounded side. Pass S - 1 for a side that reaches every key."
        )
    return left, right


def _allowed(
    mask: npt.NDArray[np.bool_] | None,
    is_causal: bool,
    window: tuple[int, int] | None,
    klen: npt.NDArray[np.integer] | None,
    qlen: npt.NDArray[np.integer] | None,
    scores: tuple[int, int, int, int],
) -> npt.NDArray[np.bool_]:
    """The keys JAX's masks leave each query row, ``(B, N, T, S)`` (a broadcast view)."""
    length_q, length_k = scores[2], scores[3]
    keep: npt.NDArray[np.bool_] = (
        np.ones((1, 1, length_q, length_k), bool) if mask is None else mask
    )
    if is_causal:
        keep = keep & masks.causal(length_q, length_k, "top_left")
    if window is not None:
        keep = keep & masks.window(length_q, length_k, window[0], window[1], "top_left")
    if klen is not None:
        keep = keep & (np.arange(length_k)[None, None, None, :] < klen[:, None, None, None])
    if qlen is not None:
        keep = keep & (np.arange(length_q)[None, None, :, None] < qlen[:, None, None, None])
    return np.broadcast_to(keep, scores)
