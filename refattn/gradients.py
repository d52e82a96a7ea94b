"""Analytic gradients of :func:`refattn.attention`."""

from __future__ import annotations

import math
from typing import NamedTuple, Unpack

import numpy as np
import numpy.typing as npt

from refattn._backward import run_backward
from refattn.reference import AttentionOptions
from refattn.validation import check_backward, flag, validate

FloatArray = npt.NDArray[np.floating]


class AttentionGradients(NamedTuple):
    """Gradients with respect to each input, each in that input's own shape and dtype.

    Attributes:
        query: ``(..., Hq, L, D)``.
        key: ``(..., Hkv, S, D)``, summed over the query heads that share each kv head.
        value: ``(..., Hkv, S, Dv)``.
        bias: the bias's shape, or None when no bias was given.
        sinks: the sinks' shape, ``(Hq,)`` or ``(..., Hq)`` (summed over the rows and the
            batch entries sharing each sink), or None when no sinks were given.
    """

    query: FloatArray
    key: FloatArray
    value: FloatArray
    bias: FloatArray | None
    sinks: FloatArray | None = None


def _sum_to_shape(grad: FloatArray, shape: tuple[int, ...]) -> FloatArray:
    """Undo broadcasting: sum ``grad`` over the axes an input of ``shape`` was broadcast on."""
    if grad.shape == shape:  # nothing was broadcast (most calls)
        return grad
    extra = grad.ndim - len(shape)
    summed = grad.sum(axis=tuple(range(extra))) if extra else grad
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and summed.shape[i] != 1)
    result: FloatArray = summed.sum(axis=axes, keepdims=True) if axes else summed
    return result


def attention_backward(
    grad_output: npt.ArrayLike,
    query: npt.ArrayLike,
    key: npt.ArrayLike,
    value: npt.ArrayLike,
    *,
    bias_gradient: bool = True,
    **options: Unpack[AttentionOptions],
) -> AttentionGradients:
    r"""Gradients of ``attention(query, key, value, **options)`` for an upstream gradient.

    Computes the vector-Jacobian product analytically, block by block, recomputing the
    weights (as flash attention's backward does), so memory stays linear in ``L`` and
    ``S``: each worker thread holds ``O(L + S)`` scratch besides the outputs (and keeps
    up to 4 MiB of it for the next call). A block of
    query rows whose visible keys fit a buffer of 8 MiB recomputes its softmax whole, in
    one pass (five matmuls, no forward); longer rows, and inputs holding NaN or inf, run
    the forward for the log-sum-exp and walk their keys in cache-sized chunks. The worker
    threads add the key and value gradients of row blocks in one fixed order, so repeated
    calls with the same inputs return the same bits.
    The bias gradient has the bias's broadcast shape ``(..., Hq, L, S)`` before it is
    summed back to the bias's own shape; pass ``bias_gradient=False`` when it is not
    needed, to skip that tensor. Rows under the default ``fully_masked="zero"`` have
    zero, finite gradients; under ``"uniform"`` each value
    receives ``1/S`` of the row's upstream gradient. Non-finite inputs, and a non-finite
    upstream gradient, follow :func:`refattn.attention`'s rule (masked means absent): NaN
    reaches the row's query gradient and the keys, values and bias entries it may attend.

    With ``sinks`` (logits ``z``, one per head) the sink gradient is, per head::

        d z = -sum over rows of exp(z - lse) * sum_e(dO[e] * O[e])

    (``lse`` includes the sink); a row made NaN by a non-finite input makes its head's
    sink gradient NaN. With ``segment_ids`` the gradients follow the forward's masks.

    Args:
        grad_output: ``(..., Hq, L, Dv)``, the gradient of the loss with respect to the
            output, in the query's dtype and the output's (broadcast) shape.
        query: ``(..., Hq, L, D)``.
        key: ``(..., Hkv, S, D)``.
        value: ``(..., Hkv, S, Dv)``.
        bias_gradient: compute the gradient of ``bias`` (when one is given). Default True;
            False returns ``bias=None`` and never allocates the ``(..., Hq, L, S)``
            tensor, the only part of the backward whose memory grows with ``L * S``.
        **options: exactly the keyword arguments given to :func:`refattn.attention`. With
            dropout, pass the same ``dropout_keep`` (or a generator in the same state).

    Returns:
        An :class:`AttentionGradients`; ALiBi slopes, masks, lengths and segment ids get
        no gradient; ``sinks`` gets one when given; ``bias`` when given and
        ``bias_gradient`` is True.

    Raises:
        AttentionShapeError: ``grad_output`` is not shaped like the output.
        AttentionValueError: ``fully_masked="nan"``, whose rows have no gradient.

    Examples:
        >>> import numpy as np
        >>> from refattn import attention_backward
        >>> rng = np.random.default_rng(0)
        >>> q, k, v = (rng.standard_normal((1, 2, 4, 8)) for _ in range(3))
        >>> grads = attention_backward(np.ones((1, 2, 4, 8)), q, k, v, causal="top_left")
        >>> grads.query.shape, grads.key.shape, grads.bias is None
        ((1, 2, 4, 8), (1, 2, 4, 8), True)
    """
    plan = validate(query, key, value, **options)  # fully_masked validated here first
    grad = check_backward(grad_output, plan, options.get("fully_masked", "zero"))
    q, k, v = np.asarray(query), np.asarray(key), np.asarray(value)
    dim_v = plan.value.shape[3]
    compute = plan.query.dtype
    n = math.prod(plan.batch_shape)
    hkv, groups = plan.key.shape[1], plan.query.shape[2]
    grad5 = grad.astype(compute, copy=False).reshape(n, hkv, groups, plan.query.shape[3], dim_v)
    need_bias = flag("bias_gradient", bias_gradient) and options.get("bias") is not None
    grads = run_backward(plan, grad5, need_bias=need_bias)

    def unbatch(arr: FloatArray, like: npt.NDArray[np.floating]) -> FloatArray:
        full = arr.reshape(*plan.batch_shape, *arr.shape[1:]) if arr.ndim == 4 else arr
        return _sum_to_shape(full, like.shape).astype(like.dtype, copy=False)

    grad_q = grads.query.reshape(*plan.batch_shape, plan.num_q_heads, *q.shape[-2:])
    grad_bias = None
    if grads.bias is not None:
        bias = np.asarray(options.get("bias"))
        full_bias = grads.bias.reshape(*plan.batch_shape, plan.num_q_heads, *grads.bias.shape[3:])
        grad_bias = _sum_to_shape(full_bias, bias.shape).astype(bias.dtype, copy=False)
    grad_sinks = None
    if grads.sinks is not None:
        sinks = np.asarray(options.get("sinks"))
        full_sinks = grads.sinks.reshape(*plan.batch_shape, plan.num_q_heads)
        grad_sinks = _sum_to_shape(full_sinks, sinks.shape).astype(sinks.dtype, copy=False)
    return AttentionGradients(
        query=_sum_to_shape(grad_q, q.shape).astype(q.dtype, copy=False),
        key=unbatch(grads.key, k),
        value=unbatch(grads.value, v),
        bias=grad_bias,
        sinks=grad_sinks,
    )
