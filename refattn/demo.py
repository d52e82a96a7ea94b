"""A short tour on a built-in example: ``python -m refattn.demo``.

Prints the einsum strings that define the math, the masks of a small padded, causal,
grouped-query batch, and the result, checked against a direct float64 computation.
"""

from __future__ import annotations

import numpy as np

from refattn import attention, einsums, masks


def main() -> None:
    """Run the tour and print it."""
    rng = np.random.default_rng(0)
    batch, hq, hkv, length_q, length_k, dim = 2, 4, 2, 3, 5, 8
    q = rng.standard_normal((batch, hq, length_q, dim)).astype(np.float32)
    k = rng.standard_normal((batch, hkv, length_k, dim)).astype(np.float32)
    v = rng.standard_normal((batch, hkv, length_k, dim)).astype(np.float32)
    key_lengths = np.array([5, 3])

    print("refattn: attention as two einsums (portable to torch/jnp/tf.einsum)")
    print(f"  scores = einsum({einsums.SCORES!r}, q, k) * scale")
    print(f"  output = einsum({einsums.MIX!r}, softmax(scores), v)")
    print(
        f"\nshapes: q {q.shape} (B, Hq, L, D), k and v {k.shape} (B, Hkv, S, D): "
        f"GQA, {hq // hkv} query heads per kv head"
    )
    for name, alignment in (("top_left", "top_left"), ("bottom_right", "bottom_right")):
        print(f"\ncausal={name!r}, L={length_q}, S={length_k} (# = may attend):")
        print(masks.render(masks.causal(length_q, length_k, alignment)))  # type: ignore[arg-type]
    combined = masks.combine(
        masks.causal(length_q, length_k, "bottom_right"), masks.padding(key_lengths, length_k)
    )
    assert combined is not None
    for b in range(batch):
        print(f"\nbottom_right causal + key_lengths[{b}]={key_lengths[b]}:")
        print(masks.render(combined[b, 0]))

    result = attention(
        q,
        k,
        v,
        causal="bottom_right",
        key_lengths=key_lengths,
        return_weights=True,
        return_lse=True,
    )
    assert result.weights is not None
    print("\nweights of batch 1, head 0 (rows sum to 1, zeros where masked):")
    print(np.array2string(result.weights[1, 0], precision=3, suppress_small=True))
    print("\noutput[1, 0] (L, Dv):")
    print(np.array2string(result.output[1, 0], precision=3, suppress_small=True))

    q64, k64, v64 = (x.astype(np.float64) for x in (q, k, v))
    kv_head = np.repeat(np.arange(hkv), hq // hkv)
    logits = q64 @ np.swapaxes(k64[:, kv_head], -1, -2) / np.sqrt(dim)
    logits = np.where(combined, logits, -np.inf)
    weights = np.exp(logits - logits.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)
    direct = weights @ v64[:, kv_head]
    error = np.abs(result.output - direct).max()
    print(f"\nmax |refattn - direct float64| = {error:.2e}")


if __name__ == "__main__":
    main()
