"""PyTorch semantics on NumPy arrays: ``torch.nn.functional.scaled_dot_product_attention``.

Import as ``from refattn.compat.torch import scaled_dot_product_attention``; it does not
need torch installed.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from refattn.errors import AttentionDTypeError, AttentionShapeError, AttentionValueError
from refattn.gradients import attention_backward
from refattn.reference import AttentionOptions, attention

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

    Where torch accepts bad input silently, this raises refattn's error instead: key and
    value of different lengths (torch's CPU kernel reads past the shorter one's meaning),
    a float mask holding NaN or ``+inf`` (torch returns NaN rows). Dropout needs an
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
    grads = attention_backward(grad_output, query, key, value, **options)
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
    q, k = np.asarray(query), np.asarray(key)
    if not isinstance(is_causal, bool | np.bool_):
        raise AttentionValueError(f"is_causal should be a bool: but got {is_causal!r}.")
    if not enable_gqa and q.ndim >= 3 and k.ndim >= 3 and q.shape[-3] != k.shape[-3]:
        raise AttentionShapeError(
            f"query heads ({q.shape[-3]}, query {q.shape}) differ from key heads "
            f"({k.shape[-3]}, key {k.shape}) and enable_gqa=False. For grouped-query "
            f"attention pass enable_gqa=True (torch raises 'The size of tensor a must "
            f"match the size of tensor b at non-singleton dimension 1' here)."
        )
    attend_mask = bias = None
    if attn_mask is not None and is_causal:
        raise AttentionValueError(
            "attn_mask and is_causal=True were both given: torch raises 'Explicit attn_mask "
            "should not be set when is_causal=True'. Fold the causal mask into attn_mask: "
            "attn_mask & refattn.masks.causal(L, S, 'top_left')."
        )
    if attn_mask is not None:
        mask = np.asarray(attn_mask)
        if mask.ndim < 2:
            raise AttentionShapeError(
                f"attn_mask should have at least 2 dims (L, S): but got shape {mask.shape}. "
                f"torch raises IndexError 'Dimension out of range' here; spell a key mask "
                f"(S,) as mask[None, :] (1, S)."
            )
        if mask.ndim == 3 and q.ndim > 3:
            mask = mask[None]  # torch broadcasts a 3-D mask from the right: (H, L, S)
        if mask.dtype == np.bool_:
            attend_mask = mask
        elif mask.dtype.kind == "f" and mask.dtype in (np.dtype(np.float32), q.dtype):
            bias = mask
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
