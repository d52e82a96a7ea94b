r"""Drive an attention callable through the battery and group its failures by explanation.

Conventions (how ``fn`` is called, and the semantics it must have):

- ``"refattn"``: :func:`refattn.attention`'s signature, NumPy arrays ``(B, Hq, L, D)``,
  refattn's semantics (every option, every ``fully_masked`` policy).
- ``"torch_sdpa"``: ``torch.nn.functional.scaled_dot_product_attention``'s signature, torch
  CPU tensors ``(B, Hq, L, D)``: ``is_causal`` top-left, boolean ``attn_mask`` True =
  attend or a float mask added, ``enable_gqa``, fully masked rows zero.
- ``"jax"``: ``jax.nn.dot_product_attention``'s signature, JAX arrays ``(B, T, N, H)``:
  ``is_causal`` and ``local_window_size`` top-left, fully masked rows the mean of value.
  ``fn`` runs under ``jax.jit`` when it can be traced.
- ``"flash"``: flash-attn's ``flash_attn_func(q, k, v, dropout_p, softmax_scale, causal,
  window_size, softcap, alibi_slopes, ...)``, torch CPU tensors ``(B, S, H, D)``: causal
  and window aligned bottom-right, ``-1`` for an unbounded window side, fully masked
  rows zero. Only the keyword arguments a config needs are passed.

Only the convention's framework is imported, when :func:`check` runs.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from refattn.errors import AttentionArgumentError, AttentionValueError
from refattn.testing import _naive
from refattn.testing._naive import F64, ROUNDING, Call
from refattn.testing.battery import CONVENTIONS, Config, configs
from refattn.testing.comparison import Comparison, compare_arrays, dtype_name, to_numpy
from refattn.testing.mistakes import by_name

Progress = Callable[[int, int], None]


@dataclass
class Failure:
    """One failing config: the comparison, or the exception ``fn`` raised."""

    config: Config
    comparison: Comparison | None
    error: str | None = None


@dataclass
class Group:
    """Failures with one explanation.

    Attributes:
        mutant: the mutant's name, or None for failures no known mistake explains.
        tags: its taxonomy tags.
        case: its catalogue case id, or None.
        description: what the mistaken code does.
        failures: the failing configs it explains, smallest first.
    """

    mutant: str | None
    tags: tuple[str, ...]
    case: str | None
    description: str
    failures: list[Failure] = field(default_factory=list)

    @property
    def smallest(self) -> Failure:
        """The failure on the smallest call."""
        return self.failures[0]


@dataclass
class Report:
    """What :func:`check` found.

    Attributes:
        convention: the convention ``fn`` was called in.
        configs: number of configs run.
        failures: every failing config.
        groups: the failures grouped by explanation, most configs first.
    """

    convention: str
    configs: int
    failures: list[Failure]
    groups: list[Group]

    @property
    def passed(self) -> bool:
        """True when no config failed."""
        return not self.failures

    @property
    def failed(self) -> int:
        """Number of failing configs."""
        return len(self.failures)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict: passed, configs, failed, explanations (most configs first)."""
        return {
            "convention": self.convention,
            "passed": self.passed,
            "configs": self.configs,
            "failed": self.failed,
            "explanations": [
                {
                    "mutant": g.mutant,
                    "tags": list(g.tags),
                    "case": g.case,
                    "configs": len(g.failures),
                    "description": g.description,
                    "smallest_config": g.smallest.config.id,
                }
                for g in self.groups
            ],
        }

    def __str__(self) -> str:
        """A few lines per explanation, with the smallest failing config's message."""
        head = f"{self.convention}: {self.configs - self.failed} of {self.configs} configs passed"
        if self.passed:
            return head
        lines = [head + f", {self.failed} failed"]
        for g in self.groups:
            name = g.mutant or "unexplained"
            case = f", catalogue case {g.case}" if g.case else ""
            tags = f" ({', '.join(g.tags)}{case})" if g.tags else ""
            lines.append(f"- {len(g.failures)} configs: {name}{tags}")
            if g.description:
                lines.append(f"    {g.description}")
            small = g.smallest
            lines.append(f"    smallest: {small.config.id}")
            if small.error:
                lines.append(f"      {small.error.splitlines()[0][:200]}")
            elif small.comparison:
                detail = small.comparison.message().splitlines()[1:4]
                lines += [f"      {line.strip()}" for line in detail]
        return "\n".join(lines)


# --- conventions -------------------------------------------------------------------------


def _mask_options(opts: dict[str, Any]) -> dict[str, Any]:
    keys = ("attend_mask", "causal", "window", "window_alignment", "key_lengths", "query_lengths")
    return {k: opts[k] for k in keys if k in opts}


def _alibi_bias(c: Config, opts: dict[str, Any]) -> F64 | None:
    """ALiBi and bias folded into one additive ``(B, Hq, L, S)`` array, or None."""
    if "alibi_slopes" not in opts and "bias" not in opts:
        return None
    total = np.zeros((c.batch, c.heads_q, c.length_q, c.length_k))
    if "bias" in opts:
        total = total + opts["bias"]
    if "alibi_slopes" in opts:
        i = np.arange(c.length_q)[:, None]
        j = np.arange(c.length_k)[None, :]
        dist = np.abs(i + c.length_k - c.length_q - j)
        total = total - opts["alibi_slopes"][:, None, None] * dist
    return ROUNDING[c.dtype](total)


@dataclass(frozen=True)
class _Prepared:
    """A config in one convention: the reference call and how to call ``fn``."""

    call: Call
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    bshd: bool  # fn's output is (B, L, H, Dv)


def _numpy(c: Config) -> _Prepared:
    q, k, v = c.inputs()
    opts = c.options()
    dt = np.dtype(c.dtype)
    kwargs = {name: (val.astype(dt) if name == "bias" else val) for name, val in opts.items()}
    args = (q.astype(dt), k.astype(dt), v.astype(dt))
    return _Prepared(Call(q, k, v, opts), args, kwargs, bshd=False)


def _torch_dtype(name: str) -> Any:
    import torch

    return getattr(torch, name)


def _to_torch(x: F64, dtype: str) -> Any:
    import torch

    return torch.from_numpy(np.ascontiguousarray(x)).to(_torch_dtype(dtype))


def _torch_sdpa(c: Config) -> _Prepared:
    import torch

    q, k, v = c.inputs()
    opts = c.options()
    ref: dict[str, Any] = {"fully_masked": "zero"}
    kwargs: dict[str, Any] = {}
    masks = _mask_options(opts)
    additive = _alibi_bias(c, opts)
    if masks == {"causal": "top_left"} and additive is None:
        kwargs["is_causal"] = True
        ref["causal"] = "top_left"
    elif masks or additive is not None:
        if list(masks) == ["attend_mask"]:
            keep = np.asarray(masks["attend_mask"])  # as given: (B, 1, 1, S) key padding
        else:
            keep = _naive.allowed(Call(q, k, v, masks))  # (B, Hq, L, S)
        if additive is None:
            kwargs["attn_mask"] = torch.from_numpy(np.ascontiguousarray(keep))
            ref["attend_mask"] = keep
        else:
            float_mask = np.where(keep, additive, -np.inf)
            kwargs["attn_mask"] = _to_torch(float_mask, c.dtype)
            ref["bias"] = float_mask
    if c.heads_q != c.heads_kv:
        kwargs["enable_gqa"] = True
    if c.scale is not None:
        kwargs["scale"] = ref["scale"] = c.scale
    args = tuple(_to_torch(x, c.dtype) for x in (q, k, v))
    return _Prepared(Call(q, k, v, ref), args, kwargs, bshd=False)


def _jax(c: Config) -> _Prepared:
    import jax.numpy as jnp

    q, k, v = c.inputs()
    opts = c.options()
    ref: dict[str, Any] = {"fully_masked": "uniform"}
    kwargs: dict[str, Any] = {}
    extra: dict[str, Any] = {}  # masks JAX cannot spell natively: passed in `mask`
    if opts.get("causal") == "top_left":
        kwargs["is_causal"] = True
        ref["causal"] = "top_left"
    elif opts.get("causal") is not None:
        extra["causal"] = opts["causal"]
    if "window" in opts:
        align = opts.get("window_alignment") or opts.get("causal")
        if align == "top_left":
            big = c.length_q + c.length_k
            left, right = opts["window"]
            kwargs["local_window_size"] = (
                big if left is None else left,
                big if right is None else right,
            )
            ref["window"], ref["window_alignment"] = opts["window"], "top_left"
        else:
            extra["window"], extra["window_alignment"] = opts["window"], align
    if "key_lengths" in opts:
        kwargs["key_value_seq_lengths"] = jnp.asarray(opts["key_lengths"], dtype=jnp.int32)
        ref["key_lengths"] = opts["key_lengths"]
    mask = opts.get("attend_mask")
    if extra:
        mask = _naive.allowed(
            Call(q, k, v, {**extra, **({"attend_mask": mask} if mask is not None else {})})
        )
    if mask is not None:
        kwargs["mask"] = jnp.asarray(mask)
        ref["attend_mask"] = mask
    additive = _alibi_bias(c, opts)
    if additive is not None:
        kwargs["bias"] = jnp.asarray(additive, dtype=c.dtype)
        ref["bias"] = additive
    if c.scale is not None:
        kwargs["scale"] = ref["scale"] = c.scale
    args = tuple(jnp.asarray(x.transpose(0, 2, 1, 3), dtype=c.dtype) for x in (q, k, v))
    return _Prepared(Call(q, k, v, ref), args, kwargs, bshd=True)


def _flash(c: Config) -> _Prepared:
    import torch

    q, k, v = c.inputs()
    opts = c.options()
    ref: dict[str, Any] = {"fully_masked": "zero"}
    kwargs: dict[str, Any] = {}
    if opts.get("causal") is not None:
        kwargs["causal"] = True
        ref["causal"] = "bottom_right"
    if "window" in opts:
        left, right = opts["window"]
        kwargs["window_size"] = (-1 if left is None else left, -1 if right is None else right)
        ref["window"], ref["window_alignment"] = opts["window"], "bottom_right"
    if "alibi_slopes" in opts:
        kwargs["alibi_slopes"] = torch.from_numpy(opts["alibi_slopes"].astype(np.float32))
        ref["alibi_slopes"] = opts["alibi_slopes"].astype(np.float32).astype(np.float64)
    if c.scale is not None:
        kwargs["softmax_scale"] = ref["scale"] = c.scale
    if "softcap" in opts:
        kwargs["softcap"] = opts["softcap"]
        ref["softcap"] = opts["softcap"]
    args = tuple(_to_torch(x.transpose(0, 2, 1, 3), c.dtype) for x in (q, k, v))
    return _Prepared(Call(q, k, v, ref), args, kwargs, bshd=True)


_PREPARE: dict[str, Callable[[Config], _Prepared]] = {
    "refattn": _numpy,
    "torch_sdpa": _torch_sdpa,
    "jax": _jax,
    "flash": _flash,
}


def prepare(config: Config, convention: str) -> tuple[Call, tuple[Any, ...], dict[str, Any]]:
    """The reference call, and the positional and keyword arguments ``fn`` gets.

    Args:
        config: one config of the battery.
        convention: one of ``"refattn"``, ``"torch_sdpa"``, ``"jax"``, ``"flash"``.

    Returns:
        ``(call, args, kwargs)``: ``call`` holds the float64 inputs in refattn's layout and
        the :func:`refattn.attention` options with the convention's semantics.
    """
    p = _PREPARE[convention](config)
    return p.call, p.args, p.kwargs


def _call_jax(fn: Callable[..., Any], p: _Prepared) -> Any:
    """``fn`` under ``jax.jit``, or eagerly when it cannot be traced.

    One compilation per config instead of one per operation; NumPy calls or Python
    branches on values make tracing fail, and then ``fn`` runs eagerly.
    """
    import jax

    names = [k for k, v in p.kwargs.items() if isinstance(v, jax.Array)]
    static = {k: v for k, v in p.kwargs.items() if k not in names}

    def traced(*arrays: Any) -> Any:
        return fn(*arrays[:3], **dict(zip(names, arrays[3:], strict=True)), **static)

    try:
        out = jax.jit(traced)(*p.args, *(p.kwargs[k] for k in names))
        return out.block_until_ready() if isinstance(out, jax.Array) else out
    except Exception:
        return fn(*p.args, **p.kwargs)


class ImplementationError(Exception):
    """The implementation under test raised; ``__cause__`` is its exception."""


_EAGER = object()  # in _jax_outputs' answer: this config alone could not be jitted


def _jax_outputs(fn: Callable[..., Any], prepared: Sequence[_Prepared]) -> dict[int, Any]:
    """Outputs of ``fn`` on many configs, from one ``jax.jit`` compilation per input dtype.

    Compiling costs most of a config's time, and one compilation of many calls costs much
    less than one per call: ``fn`` is traced once per config (each with its own static
    options and shapes) inside one function per dtype. A group that cannot be traced or
    compiled as a whole (Python branches on values, an exception on one config, a dtype the
    CPU backend cannot compile) is split in halves, each tried the same way; a config that
    cannot be jitted alone is marked to run eagerly (as :func:`_call_jax` would run it).

    Returns:
        ``{index in prepared: output, or _EAGER}``.
    """
    import jax

    def jitted(indices: list[int]) -> list[Any]:
        calls = []
        for i in indices:
            kwargs = prepared[i].kwargs
            names = tuple(k for k, v in kwargs.items() if isinstance(v, jax.Array))
            calls.append((names, {k: v for k, v in kwargs.items() if k not in names}))

        def traced(arrays: list[tuple[Any, ...]]) -> list[Any]:
            return [
                fn(*a[:3], **dict(zip(names, a[3:], strict=True)), **static)
                for a, (names, static) in zip(arrays, calls, strict=True)
            ]

        arrays = [
            (*prepared[i].args, *(prepared[i].kwargs[k] for k in names))
            for i, (names, _) in zip(indices, calls, strict=True)
        ]
        outs: list[Any] = jax.block_until_ready(jax.jit(traced)(arrays))  # type: ignore[no-untyped-call]
        return outs

    outputs: dict[int, Any] = {}

    def run(indices: list[int]) -> None:
        try:
            outputs.update(zip(indices, jitted(indices), strict=True))
        except Exception:
            if len(indices) == 1:
                outputs[indices[0]] = _EAGER
                return
            run(indices[: len(indices) // 2])
            run(indices[len(indices) // 2 :])

    groups: dict[str, list[int]] = {}
    for i, p in enumerate(prepared):
        groups.setdefault(str(getattr(p.args[0], "dtype", "")), []).append(i)
    for indices in groups.values():
        run(indices)
    return outputs


def run_config(fn: Callable[..., Any], config: Config, convention: str) -> Comparison:
    """Call ``fn`` on one config and compare its output with the reference.

    Raises:
        ImplementationError: ``fn`` raised (its exception is the ``__cause__``).
    """
    return _run(fn, _PREPARE[convention](config), convention, config.dtype, {}, 0)


def _run(
    fn: Callable[..., Any],
    p: _Prepared,
    convention: str,
    config_dtype: str,
    outputs: dict[int, Any],
    index: int,
) -> Comparison:
    """Compare ``outputs[index]`` (or, when missing, ``fn`` called now) with the reference."""
    if index in outputs and outputs[index] is not _EAGER:
        out = outputs[index]
    else:
        try:
            jit = convention == "jax" and index not in outputs
            out = _call_jax(fn, p) if jit else fn(*p.args, **p.kwargs)
        except Exception as exc:
            raise ImplementationError(f"{type(exc).__name__}: {exc}") from exc
    dtype = dtype_name(out)
    act: npt.NDArray[Any] = to_numpy(out)
    if p.bshd and act.ndim == 4:
        act = act.transpose(0, 2, 1, 3)  # (B, L, H, Dv) -> (B, H, L, Dv)
    return compare_arrays(act, dtype, p.call, config_dtype)


def _group(failures: Sequence[Failure]) -> list[Group]:
    """Assign each failure to the explanation that explains the most failures overall."""
    counts: dict[str, int] = {}
    for f in failures:
        for e in f.comparison.explanations if f.comparison else []:
            counts[e.mutant] = counts.get(e.mutant, 0) + 1
    groups: dict[str | None, Group] = {}
    for f in sorted(failures, key=lambda f: (f.config.size, f.config.id)):
        expl = f.comparison.explanations if f.comparison else []
        best = max(expl, key=lambda e: counts[e.mutant], default=None)
        name = None if best is None else best.mutant
        if name not in groups:
            if name is None:
                groups[name] = Group(None, (), None, "no known mistake matches these outputs")
            else:
                m = by_name(name)
                groups[name] = Group(name, m.tags, m.case, m.description)
        groups[name].failures.append(f)
    # known mistakes first, most configs first; failures nothing explains come last
    return sorted(groups.values(), key=lambda g: (g.mutant is None, -len(g.failures)))


def check(
    fn: Callable[..., Any],
    convention: str = "refattn",
    *,
    quick: bool = False,
    battery: Sequence[Config] | None = None,
    progress: Progress | None = None,
) -> Report:
    r"""Run ``fn`` on the battery in one convention; group the failures by explanation.

    Args:
        fn: the attention implementation under test.
        convention: how ``fn`` is called: ``"refattn"``, ``"torch_sdpa"``, ``"jax"`` or
            ``"flash"`` (see this module's table).
        quick: run only the quick subset (a few seconds).
        battery: the configs to run instead of :func:`~refattn.testing.configs`'s.
        progress: called with ``(done, total)`` after each config.

    Returns:
        A :class:`Report`; ``report.passed`` is True when every config passed.

    Raises:
        AttentionValueError: an unknown convention.
        AttentionArgumentError: an ``fn`` that is not callable.

    Examples:
        >>> from refattn import attention
        >>> from refattn.testing import check
        >>> check(attention, "refattn", quick=True).passed
        True
    """
    if not isinstance(convention, str) or convention not in CONVENTIONS:
        raise AttentionValueError(
            f"convention should be one of {', '.join(CONVENTIONS)}: but got {convention!r}. "
            f"Pass the calling convention fn follows, e.g. check(fn, 'torch_sdpa')."
        )
    if not callable(fn):
        raise AttentionArgumentError(
            f"fn should be a callable attention implementation: but got {fn!r} of type "
            f"{type(fn).__name__}. Pass the function itself, e.g. check(my_attention, "
            f"'refattn'), not its result."
        )
    todo = list(battery) if battery is not None else configs(convention, quick=quick)
    prepared = [_PREPARE[convention](c) for c in todo]
    outputs = _jax_outputs(fn, prepared) if convention == "jax" else {}
    failures = []
    for n, (config, p) in enumerate(zip(todo, prepared, strict=True), 1):
        try:
            result = _run(fn, p, convention, config.dtype, outputs, n - 1)
            if not result.passed:
                failures.append(Failure(config, result))
        except ImplementationError as exc:  # the implementation under test raised
            failures.append(Failure(config, None, f"raised {exc}"))
        if progress is not None:
            progress(n, len(todo))
    return Report(convention, len(todo), failures, _group(failures))


def report_json(report: Report) -> str:
    """The report as one line of JSON."""
    return json.dumps(report.to_json())
