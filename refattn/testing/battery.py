r"""A battery of attention calls that find real bugs, as plain data.

Each :class:`Config` is a frozen, hashable description of one call (sizes, dtype, masks,
values' amplitude, seed) with an ``id`` for ``pytest.mark.parametrize``; its arrays are
drawn on demand by :meth:`Config.inputs`, its options for :func:`refattn.attention` by
:meth:`Config.options`. ``conventions`` says which calling conventions can express it
(``"refattn"``, ``"torch_sdpa"``, ``"jax"``, ``"flash"``).

Examples:
    >>> from refattn.testing import configs
    >>> decode = [c for c in configs() if c.length_q == 1]
    >>> decode[0].id
    'decode-L1-S17-gqa-bottom_right'
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from refattn.testing._naive import ROUNDING

CONVENTIONS: tuple[str, ...] = ("refattn", "torch_sdpa", "jax", "flash")
NUMPY_DTYPES = ("float16", "float32", "float64")


@dataclass(frozen=True)
class Config:
    """One call of the battery, in refattn's layout ``(B, Hq, L, D)``.

    Attributes:
        id: readable identifier, unique in the battery.
        batch: ``B``.
        heads_q: ``Hq``.
        heads_kv: ``Hkv`` (``Hq`` a multiple of it; 1 is multi-query).
        length_q: ``L``.
        length_k: ``S``.
        dim: ``D``.
        dim_v: ``Dv``.
        dtype: ``"float16"``, ``"bfloat16"``, ``"float32"`` or ``"float64"``.
        causal: None, ``"top_left"`` or ``"bottom_right"``.
        window: ``(left, right)`` or None.
        window_alignment: None (follows ``causal``), ``"top_left"`` or ``"bottom_right"``.
        key_lengths: one per batch entry, or None.
        query_lengths: one per batch entry, or None.
        mask: None, ``"random"`` (random keep-mask, some rows fully masked) or
            ``"key_padding"`` (``key_lengths`` given as a ``(B, 1, 1, S)`` mask).
        bias: add a random float bias ``(B, Hq, L, S)``.
        alibi: add ALiBi with the usual slopes ``2^(-8 h / Hq)``.
        softcap: logit soft-capping value, or None.
        scale: an explicit logit scale (passed as the convention's argument), or None.
        fully_masked: the policy of the reference (refattn convention only).
        amplitude: standard deviation of query and key entries.
        value_scale: standard deviation of value entries.
        seed: random seed of the inputs.
        quick: part of the quick subset.
        conventions: the conventions that can express this call.
    """

    id: str
    batch: int = 2
    heads_q: int = 4
    heads_kv: int = 4
    length_q: int = 7
    length_k: int = 7
    dim: int = 16
    dim_v: int = 16
    dtype: str = "float32"
    causal: str | None = None
    window: tuple[int | None, int | None] | None = None
    window_alignment: str | None = None
    key_lengths: tuple[int, ...] | None = None
    query_lengths: tuple[int, ...] | None = None
    mask: str | None = None
    bias: bool = False
    alibi: bool = False
    softcap: float | None = None
    scale: float | None = None
    fully_masked: str = "zero"
    amplitude: float = 1.0
    value_scale: float = 1.0
    seed: int = 0
    quick: bool = False
    conventions: tuple[str, ...] = CONVENTIONS

    @property
    def size(self) -> int:
        """Number of score entries ``B * Hq * L * S`` (to find the smallest failing call)."""
        return self.batch * self.heads_q * self.length_q * self.length_k

    def inputs(self) -> tuple[npt.NDArray[np.float64], ...]:
        """``(query, key, value)`` in float64, each value rounded to ``dtype``.

        Shapes ``(B, Hq, L, D)``, ``(B, Hkv, S, D)``, ``(B, Hkv, S, Dv)``.
        """
        rng = np.random.default_rng(self.seed)
        rnd = ROUNDING[self.dtype]
        q = rng.standard_normal((self.batch, self.heads_q, self.length_q, self.dim))
        k = rng.standard_normal((self.batch, self.heads_kv, self.length_k, self.dim))
        v = rng.standard_normal((self.batch, self.heads_kv, self.length_k, self.dim_v))
        return rnd(q * self.amplitude), rnd(k * self.amplitude), rnd(v * self.value_scale)

    def options(self) -> dict[str, Any]:
        """:func:`refattn.attention`'s keyword arguments for this call (float64 arrays)."""
        rng = np.random.default_rng(self.seed + 1)
        shape = (self.batch, self.heads_q, self.length_q, self.length_k)
        opts: dict[str, Any] = {"fully_masked": self.fully_masked}
        if self.causal is not None:
            opts["causal"] = self.causal
        if self.window is not None:
            opts["window"] = self.window
            if self.window_alignment is not None:
                opts["window_alignment"] = self.window_alignment
        if self.mask == "random":
            keep = rng.random(shape) < 0.7
            keep[:, :, 0, :] = False  # every head's first row fully masked
            opts["attend_mask"] = keep
        if self.mask == "key_padding":
            assert self.key_lengths is not None
            lens = np.asarray(self.key_lengths)
            opts["attend_mask"] = (np.arange(self.length_k) < lens[:, None])[:, None, None, :]
        elif self.key_lengths is not None:
            opts["key_lengths"] = np.asarray(self.key_lengths)
        if self.query_lengths is not None:
            opts["query_lengths"] = np.asarray(self.query_lengths)
        if self.bias:
            opts["bias"] = ROUNDING[self.dtype](rng.standard_normal(shape))
        if self.alibi:
            opts["alibi_slopes"] = 2.0 ** (-8.0 * np.arange(1, self.heads_q + 1) / self.heads_q)
        if self.softcap is not None:
            opts["softcap"] = self.softcap
        if self.scale is not None:
            opts["scale"] = self.scale
        return opts


# JAX compiles every new call (about a second each on a 2-core machine): its battery keeps
# fewer low-precision variants.
_JAX_DTYPES = {
    "plain-L7-S7": ("float32", "float16", "bfloat16"),
    "random-mask": ("float32", "bfloat16"),
    "causal-bottom_right-L5-S9": ("float32", "float16"),
}


# its quick subset: one compilation per config, so only a few
_JAX_QUICK = (
    "plain-L7-S7",
    "gqa-Hq4-Hkv2",
    "causal-top_left-L5-S9",
    "window-1-1-top_left-L11-S11",
    "padding-lengths-7-4-L7-S7",
    "random-mask",
)


def _expressible(c: Config) -> tuple[str, ...]:
    out = []
    if c.dtype != "bfloat16":
        out.append("refattn")
    # torch, JAX and flash-attn each have one fully-masked policy (zero, mean of value,
    # zero) that their adapter uses; a config asking for another policy is refattn's only.
    if c.softcap is None and c.fully_masked == "zero":
        out.append("torch_sdpa")
    if (
        c.softcap is None
        and c.query_lengths is None
        and c.dtype != "float64"
        and c.fully_masked == "zero"
        and c.dim == c.dim_v
        and c.dtype in _JAX_DTYPES.get(c.id.removesuffix(f"-{c.dtype}"), ("float32",))
    ):
        out.append("jax")
    square = c.length_q == c.length_k
    aligned = c.causal in (None, "bottom_right") or square
    win_aligned = c.window is None or square or (c.window_alignment or c.causal) == "bottom_right"
    if (
        c.mask is None
        and not c.bias
        and c.key_lengths is None
        and c.query_lengths is None
        and aligned
        and win_aligned
        and c.fully_masked == "zero"
        and c.dtype != "float64"
        and c.dim == c.dim_v  # flash-attn 2 wants value shaped like key
    ):
        out.append("flash")
    return tuple(out)


def _base() -> Iterator[Config]:
    """The calls, before dtype variants and conventions are attached."""
    yield Config("plain-L7-S7", quick=True)
    yield Config("cross-L5-S9", length_q=5, length_k=9)
    yield Config("cross-L9-S5", length_q=9, length_k=5)
    yield Config(
        "odd-L13-S21-D24", length_q=13, length_k=21, dim=24, dim_v=8, heads_q=2, heads_kv=2
    )
    yield Config(
        "decode-L1-S17-gqa-bottom_right", length_q=1, length_k=17, heads_kv=2, causal="bottom_right"
    )
    yield Config("decode-L1-S17-mqa", length_q=1, length_k=17, heads_kv=1)
    yield Config("single-key-S1", length_q=4, length_k=1)
    for lq, lk in ((63, 63), (64, 65), (65, 64), (127, 128), (129, 129)):
        yield Config(
            f"block-L{lq}-S{lk}-causal",
            batch=1,
            heads_q=2,
            heads_kv=1,
            length_q=lq,
            length_k=lk,
            causal="bottom_right",
        )
    yield Config(
        "block-L128-S128", batch=1, heads_q=2, heads_kv=2, length_q=128, length_k=128, dim=32
    )
    for hkv in (2, 1):
        kind = "gqa" if hkv == 2 else "mqa"
        yield Config(f"{kind}-Hq4-Hkv{hkv}", heads_kv=hkv, quick=hkv == 2)
        yield Config(f"{kind}-Hq4-Hkv{hkv}-causal", heads_kv=hkv, causal="top_left", length_k=9)
    yield Config(
        "gqa-Hq8-Hkv2-D64", heads_q=8, heads_kv=2, dim=64, dim_v=32, length_q=6, length_k=6
    )
    for align in ("top_left", "bottom_right"):
        for lq, lk in ((5, 9), (9, 5), (7, 7)):
            yield Config(
                f"causal-{align}-L{lq}-S{lk}",
                length_q=lq,
                length_k=lk,
                causal=align,
                heads_kv=2,
                quick=(align, lq) in (("top_left", 5), ("bottom_right", 5)),
            )
    yield Config(
        "causal-bottom_right-L12-S4-empty-rows",
        length_q=12,
        length_k=4,
        causal="bottom_right",
        quick=True,
    )
    for win, align in (
        ((2, 0), "top_left"),
        ((1, 1), "top_left"),
        ((3, 2), "bottom_right"),
        ((2, None), "bottom_right"),
    ):
        name = f"window-{win[0]}-{win[1]}-{align}"
        yield Config(
            f"{name}-L11-S11",
            length_q=11,
            length_k=11,
            window=win,
            window_alignment=align,
            quick=win == (1, 1),
        )
        yield Config(
            f"{name}-L6-S11",
            length_q=6,
            length_k=11,
            window=win,
            window_alignment=align,
            quick=win == (3, 2),
        )
    yield Config(
        "window-causal-3-0-L8-S12", length_q=8, length_k=12, window=(3, 0), causal="bottom_right"
    )
    yield Config("padding-lengths-9-5", length_k=9, key_lengths=(9, 5), quick=True)
    yield Config("padding-lengths-7-4-L7-S7", key_lengths=(7, 4), heads_kv=2, quick=True)
    yield Config("padding-lengths-0-9", length_k=9, key_lengths=(0, 9))
    yield Config(
        "padding-lengths-0-9-uniform", length_k=9, key_lengths=(0, 9), fully_masked="uniform"
    )
    yield Config(
        "padding-lengths-3-9-nan",
        length_k=9,
        key_lengths=(3, 9),
        causal="top_left",
        fully_masked="nan",
    )
    yield Config(
        "padding-mask-7-3-L7-S7", length_k=7, key_lengths=(7, 3), mask="key_padding", quick=True
    )
    yield Config(
        "padding-mask-9-4-L5-S9",
        length_q=5,
        length_k=9,
        key_lengths=(9, 4),
        mask="key_padding",
        heads_kv=2,
    )
    yield Config("query-lengths-7-4", query_lengths=(7, 4), key_lengths=(7, 5))
    yield Config("random-mask", mask="random", quick=True)
    yield Config("random-mask-uniform", mask="random", fully_masked="uniform", quick=True)
    yield Config("random-mask-gqa-L6-S10", mask="random", heads_kv=2, length_q=6, length_k=10)
    yield Config("bias", bias=True, length_q=6, length_k=8)
    yield Config("bias-causal", bias=True, causal="top_left", length_q=8, length_k=8)
    yield Config("alibi", alibi=True, length_q=9, length_k=9, quick=True)
    yield Config("alibi-causal-L5-S9", alibi=True, causal="bottom_right", length_q=5, length_k=9)
    yield Config("softcap-5", softcap=5.0, amplitude=3.0, quick=True)
    yield Config(
        "softcap-causal", softcap=10.0, amplitude=3.0, causal="bottom_right", length_q=5, length_k=8
    )
    yield Config("explicit-scale-0.6", scale=0.6, length_q=6, length_k=9, heads_kv=2, quick=True)
    yield Config("large-logits-1e4", amplitude=100.0, dim=16)
    yield Config("large-logits-causal", amplitude=100.0, causal="top_left")
    yield Config("tiny-values", amplitude=1e-3, value_scale=1e-6)


def _dtypes(c: Config) -> Iterator[Config]:
    yield c
    if c.id in (
        "plain-L7-S7",
        "gqa-Hq4-Hkv2-causal",
        "causal-bottom_right-L5-S9",
        "padding-lengths-9-5",
        "random-mask",
        "window-1-1-top_left-L11-S11",
        "alibi",
        "decode-L1-S17-gqa-bottom_right",
        "block-L65-S64-causal",
    ):
        for dt in ("float16", "bfloat16", "float64"):
            yield Config(**{**c.__dict__, "id": f"{c.id}-{dt}", "dtype": dt, "quick": False})


def configs(convention: str | None = None, *, quick: bool = False) -> list[Config]:
    """The battery, optionally only what ``convention`` can express.

    Args:
        convention: ``"refattn"``, ``"torch_sdpa"``, ``"jax"``, ``"flash"`` or None (all).
        quick: only the quick subset (a few seconds per convention).

    Returns:
        A list of :class:`Config`, usable as ``pytest.mark.parametrize("config", configs(),
        ids=lambda c: c.id)``.
    """
    if convention is not None and convention not in CONVENTIONS:
        raise ValueError(f"convention should be one of {CONVENTIONS}: but got {convention!r}.")
    out = []
    for base in _base():
        for c in _dtypes(base):
            full = Config(**{**c.__dict__, "conventions": _expressible(c)})
            if convention is not None and convention not in full.conventions:
                continue
            if quick and not (full.id in _JAX_QUICK if convention == "jax" else full.quick):
                continue
            out.append(full)
    return out


def strategy(convention: str | None = None) -> Any:
    """A Hypothesis strategy drawing configs of the battery (Hypothesis must be installed).

    Examples:
        >>> from hypothesis import given
        >>> from refattn.testing.battery import strategy
        >>> s = strategy("refattn")
    """
    from hypothesis import strategies as st

    return st.sampled_from(configs(convention))
