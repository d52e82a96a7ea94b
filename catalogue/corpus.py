"""``python -m catalogue.corpus``: real error messages of every case, with other sizes.

``diagnose`` is measured on messages that code really raised. This module makes many of
them: for every case and every framework variant whose kind is ``"exception"``, it runs
the broken code again with other sizes and records the message the framework really
raises, with the real wording and other numbers. The file,
``tests/data/diagnose_generated.json``, regenerates itself from the cases:
``python -m catalogue.corpus`` writes it, ``python -m catalogue.corpus --check`` compares
a fresh generation with it and exits 1 when they differ (e.g. after a framework upgrade
changed a wording).

Method:

- **Rewrite.** A case hard-codes its sizes as integer literals (``(2, 10, 4)``,
  ``MAX_LEN = 16``, ``np.sqrt(4)``). Its source is parsed with :mod:`ast` and every
  integer literal ``n >= 2`` that may be a size is replaced through one *size map*, a
  table from each distinct literal to a new value (equal literals stay equal, distinct
  ones stay distinct). Left alone: 0, 1, negative numbers, booleans, numbers above
  :data:`LARGEST`; values of the keywords in :data:`AXIS_KEYWORDS` (``axis=``, ``dim=``,
  ``perm=``, ``seed=``...); every argument of the calls in :data:`AXIS_CALLS`
  (``transpose``, ``permute``, ``softmax``, ``sum``, ``cat``...: axis positions) and
  :data:`SEED_CALLS` (``default_rng``, ``manual_seed``, ``PRNGKey``); the axis argument
  after the count of ``split``/``chunk``/``repeat_interleave``/``repeat`` (the one
  named in :data:`COUNT_THEN_AXIS`); plain subscripts (``x.shape[1]``, ``w[0]``: axis
  and item positions; slice bounds such as ``w[:, :512]`` are sizes and are replaced);
  both sides of ``**`` and ``<<`` (exponents, ``2**24``, RoPE's ``10000``); and the
  leading literal that counts the names an assignment unpacks (the ``3`` of
  ``q, k, v = rng.standard_normal((3, 2, 5, 8))``). The
  rewritten tree is compiled under the case file's own name (same line numbers, so a
  message quoting the code reads the same) and executed as a fresh module of package
  ``catalogue.cases`` (so ``from ._common import ...`` works); it is never put in
  ``sys.modules``, and the real case modules are not touched.
- **Size maps.** :data:`MAPS` maps, ids ``0..9``: ids in :data:`TUNING_MAPS` (0 and 1)
  are the *tuning* split (diagnose's rules may be written while reading them), the
  others the *held-out* split (never read while writing rules). For map ``k`` a case
  gets up to :data:`ATTEMPTS` candidate tables (:func:`size_table`), drawn from
  ``random.Random`` seeded with ``"{case}:{k}:{attempt}"``, of the kinds
  :data:`ATTEMPT_KINDS` in that order: tables sending each literal ``n`` to a value in
  ``[max(2, n // 2), 2 n + 8]`` other than ``n``, keeping the literals' order and which
  literals divide which (a head count that does not divide the width still does not);
  multiplicative tables (each prime to a small number, so ``heads * head_dim == width``
  still holds, order kept); tables keeping some literals as they are (a batch that is
  also the length of a written-out list); tables keeping the order only; last, every
  literal times ``k + 2`` (keeping sums, for cases whose failure is ``6 + 3 > 8``). Each
  variant keeps the first attempt that reproduces its failure. A variant whose every
  attempt of map 0 raises its original message word for word (its numbers are ranks or
  axes, or it has none) is not tried with the other maps, and said so.
- **Same failure only.** A generated message is kept only when the rewritten variant
  raises the same exception class as the original variant and a message with the same
  *template* (:func:`template`: every run of digits replaced by ``#``, whitespace
  collapsed), and the message differs from the original one (some number changed). So
  every entry is the real wording with other numbers. Attempts that raise nothing,
  another class or another template, and variants for which no attempt of a map
  reproduces, are counted per reason and printed (not written to the file).
- Messages are formatted by :mod:`catalogue.runner`'s own helper, as it records them
  (``Class: message`` through :func:`catalogue.runner.normalise`). A message an earlier
  map already gave the same case and framework does not count (the map tries its next
  table), so each ``(case, framework, message)`` is in the file once and no held-out
  message repeats a tuning one, nor one that a tuning split of an earlier version of the
  file held (:data:`RETIRED`, kept beside it: diagnose's rules may have been written
  while reading those; each write adds the tuning split it replaces). The file records
  the versions of the frameworks it was generated with;
  ``tests/diagnose_accuracy.py --generated`` scores diagnose on it.

Not done: a dtype axis. Of the PyTorch exception variants only
``minus_1e9_in_float16`` spells a torch float dtype in its broken code, and its failure
(``-1e9`` does not fit float16) belongs to float16 alone; the other messages naming a
dtype (``float_mask_dtype_differs_from_query``, ``sdpa_int_mask_dtype``) take it from
NumPy arrays or an integer mask, so a swap of torch dtypes would add no real message.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import importlib.metadata
import io
import itertools
import json
import math
import os
import random
import re
import sys
import types
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import Case, all_cases, get
from . import cases as _cases_package
from .runner import _describe as describe  # Class: message, as outcomes.json records it
from .runner import installed, resolve

OUTPUT = Path(__file__).resolve().parent.parent / "tests" / "data" / "diagnose_generated.json"
"""Where the corpus lives in a checkout."""

RETIRED = OUTPUT.with_name("diagnose_generated_retired.json")
"""Every message a tuning split of the corpus has held (see :func:`load_retired`)."""

MAPS = 10
"""Size maps per case: ids ``0 .. MAPS - 1``."""

TUNING_MAPS = (0, 1)
"""Map ids whose messages form the tuning split; the others are held out."""

ATTEMPT_KINDS = (
    "divisibility",
    "divisibility",
    "divisibility",
    "multiplicative",
    "multiplicative",
    "partial",
    "partial",
    "partial",
    "order",
    "order",
    "partial order",
    "scaled",
)
"""What the candidate tables tried per case and map keep, in the order they are tried.

``divisibility``: the literals' order and which divide which; ``multiplicative``:
products, divisibility and order; ``partial``: like ``divisibility`` with each literal
kept as it is with odds 1/2 (for sizes the code also spells as a list's length, such as
the batch of ``np.array([[5], [3]])``); ``order``: the order only; ``partial order``:
``order`` with literals kept; ``scaled``: every literal times ``k + 2`` for map ``k``
(sums too), unless that takes a literal past ``LARGEST // 4``.
"""

ATTEMPTS = len(ATTEMPT_KINDS)
"""Candidate tables tried per case and map."""

LARGEST = 4096
"""Integer literals above this are values (``10000``, ``2**24``), never rewritten."""

FRAMEWORK_NAMES = {"numpy": "numpy", "torch": "pytorch", "jax": "jax", "tf": "tensorflow"}
"""Variant name to the framework name of the labelled message sets."""

AXIS_KEYWORDS = frozenset(
    {"axis", "axes", "dim", "dims", "axis1", "axis2", "dim0", "dim1", "perm", "seed",
     "start_dim", "end_dim", "source", "destination", "keepdims", "keepdim"}
)  # fmt: skip
"""Keyword arguments whose integer values are axes (or seeds), never sizes."""

AXIS_CALLS = frozenset(
    {"transpose", "permute", "swapaxes", "swapdims", "moveaxis", "movedim", "softmax",
     "log_softmax", "unsqueeze", "squeeze", "expand_dims", "flatten", "size", "cat",
     "concatenate", "concat", "stack", "sum", "mean", "max", "min", "argmax", "argmin",
     "amax", "amin", "cumsum", "flip", "any", "all", "prod", "logsumexp", "norm",
     "gather", "take_along_axis", "unbind", "select", "index_select", "narrow",
     "matrix_transpose"}
)  # fmt: skip
"""Calls whose integer arguments are axis positions."""

SEED_CALLS = frozenset(
    {"default_rng", "manual_seed", "PRNGKey", "key", "seed", "set_seed", "RandomState"}
)
"""Calls whose integer arguments are seeds."""

COUNT_THEN_AXIS = frozenset(
    {"split", "chunk", "repeat_interleave", "repeat", "tensor_split", "array_split"}
)
"""Calls taking a count (a size) then an axis: the positional argument after the count
is left alone (the third of a module function such as ``np.repeat(k, 4, 1)``, the second
of a method such as ``k.repeat_interleave(4, 1)``). ``torch``'s ``x.repeat(1, 4, 1)``
takes sizes only and is a method with more than two arguments: all of them are sizes."""

UNCHANGED = "attempt raised the original message (no number changed)"

_MODULE_NAMES = frozenset({"np", "numpy", "torch", "jnp", "jax", "tf", "F", "nn", "lax"})


def template(message: str) -> str:
    """``message`` with every run of digits as ``#`` and whitespace collapsed.

    A list of equal shapes (``(#, #), (#, #), (#, #)``, one per piece of a split) counts
    once: how many pieces there are is a number too.
    """
    digits = re.sub(r"\s+", " ", re.sub(r"\d+", "#", message)).strip()
    return re.sub(r"(\([#, ]*\))(?:, \1)+", r"\1, …", digits)


def _call_name(call: ast.Call) -> tuple[str, bool]:
    """The called name and whether it is a module function (``np.repeat``) or a method."""
    func = call.func
    if isinstance(func, ast.Name):
        return func.id, True
    if isinstance(func, ast.Attribute):
        module = isinstance(func.value, ast.Name | ast.Attribute) and (
            (isinstance(func.value, ast.Name) and func.value.id in _MODULE_NAMES)
            or (isinstance(func.value, ast.Attribute) and func.value.attr in {"nn", "random"})
        )
        return func.attr, module
    return "", False


def _frozen_nodes(tree: ast.Module) -> set[int]:
    """``id`` of every integer-literal node that must keep its value."""
    frozen: set[int] = set()

    def freeze(node: ast.AST | None) -> None:
        if node is None:
            return
        for inner in ast.walk(node):
            if isinstance(inner, ast.Constant):
                frozen.add(id(inner))

    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg in AXIS_KEYWORDS:
            freeze(node.value)
        elif isinstance(node, ast.Call):
            name, module = _call_name(node)
            if name in AXIS_CALLS or name in SEED_CALLS:
                for arg in node.args:
                    freeze(arg)
            elif name in COUNT_THEN_AXIS:
                position = 2 if module else 1
                if name == "repeat" and not module and len(node.args) > 2:
                    continue  # torch's x.repeat(1, 4, 1): sizes only
                if len(node.args) > position:
                    freeze(node.args[position])
        elif isinstance(node, ast.Subscript):
            index = node.slice
            parts = index.elts if isinstance(index, ast.Tuple) else [index]
            for part in parts:
                if not isinstance(part, ast.Slice):
                    freeze(part)
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Pow | ast.LShift):
            freeze(node.left)
            freeze(node.right)
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            freeze(node.operand)
    return frozen


def _statements(body: list[ast.stmt]) -> list[ast.stmt]:
    """The statements of ``body`` and of its blocks (``with``, ``if``, ``for``).

    Not those of its nested functions (they are scopes of their own).
    """
    found = []
    for statement in body:
        if isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            continue
        found.append(statement)
        for name in ("body", "orelse", "finalbody"):
            found += _statements(getattr(statement, name, []))
    return found


def _unpacked_counts(tree: ast.Module) -> set[int]:
    """``id`` of the leading literals that say how many arrays an assignment unpacks.

    In ``q, k, v = rng.standard_normal((3, 2, 5, 8))`` the ``3`` is the number of names,
    not a size; so is the ``3`` of ``w = rng.standard_normal((3, 768, 64))`` when
    ``w_q, w_k, w_v = w[:, :512]`` unpacks it (``w`` assigned in the same function, or,
    when the function assigns no ``w`` by itself, anywhere in the module).
    """
    frozen: set[int] = set()
    functions = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)]
    bodies = [tree.body, *(f.body for f in functions)]

    def named(assigns: list[ast.Assign]) -> dict[str, list[ast.expr]]:
        values: dict[str, list[ast.expr]] = {}
        for node in assigns:
            for target in node.targets:
                if isinstance(target, ast.Name):
                    values.setdefault(target.id, []).append(node.value)
        return values

    anywhere = named([n for body in bodies for n in _statements(body) if isinstance(n, ast.Assign)])
    for body in bodies:
        assigns = [n for n in _statements(body) if isinstance(n, ast.Assign)]
        values = {**anywhere, **named(assigns)}
        for node in assigns:
            for target in node.targets:
                if not isinstance(target, ast.Tuple | ast.List) or isinstance(
                    node.value, ast.Tuple | ast.List
                ):
                    continue  # not unpacking, or a tuple assigned item by item
                count = len(target.elts)
                names = {n.id for n in ast.walk(node.value) if isinstance(n, ast.Name)}
                sources = [node.value, *(v for name in names for v in values.get(name, []))]
                for source in sources:
                    for inner in ast.walk(source):
                        if isinstance(inner, ast.Tuple | ast.List) and inner.elts:
                            first = inner.elts[0]
                            if isinstance(first, ast.Constant) and first.value == count:
                                frozen.add(id(first))
    return frozen


def _size_literals(tree: ast.Module) -> list[ast.Constant]:
    """The integer literals of ``tree`` that a size map rewrites."""
    frozen = _frozen_nodes(tree) | _unpacked_counts(tree)
    return [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and type(node.value) is int
        and 2 <= node.value <= LARGEST
        and id(node) not in frozen
    ]


def _keeps_relations(old: list[int], new: list[int]) -> bool:
    """Whether ``new`` keeps which of ``old`` divide which."""
    for i, a in enumerate(old):
        for j, b in enumerate(old):
            if i != j and (b % a == 0) != (new[j] % new[i] == 0):
                return False
    return True


def _factors(n: int) -> list[int]:
    found, p = [], 2
    while p * p <= n:
        while n % p == 0:
            found.append(p)
            n //= p
        p += 1
    return [*found, n] if n > 1 else found


def _multiplicative(old: list[int], rng: random.Random) -> dict[int, int] | None:
    """A map that sends each prime ``p`` to a number ``g(p) <= 13``, and ``ab`` to ``g(a) g(b)``.

    It keeps products (``heads * head_dim == width``), divisibility and (drawn again until
    it does) the order of the literals; not sums.
    """
    primes = sorted({p for n in old for p in _factors(n)})
    for _ in range(400):
        g = {p: rng.randint(2, 13) for p in primes}
        new = [math.prod(g[p] for p in _factors(n)) for n in old]
        if new != sorted(set(new)) or all(a == b for a, b in zip(old, new, strict=True)):
            continue  # the order of the sizes kept (values no longer than keys...)
        if any(b > max(4 * a, 64) for a, b in zip(old, new, strict=True)):
            continue
        if not _keeps_relations(old, new):  # g(3) = 4 would make 2 divide 3
            continue
        return dict(zip(old, new, strict=True))
    return None


def size_table(values: Iterable[int], key: str, attempt: int) -> dict[int, int] | None:
    """One candidate size map for the literals ``values`` (None when none was found).

    Deterministic in ``key`` (``"{case}:{map}"``) and ``attempt``, whose kind
    (:data:`ATTEMPT_KINDS`) says what the table keeps; see the module doc.
    """
    old = sorted(set(values))
    if not old:
        return None
    kind = ATTEMPT_KINDS[attempt]
    if kind == "scaled":
        factor = int(key.rsplit(":", 1)[1]) + 2
        if old[-1] * factor > LARGEST // 4:
            return None  # (32, 20, 512) times 7 would be 450 MB of float32
        return {n: n * factor for n in old}
    rng = random.Random(f"{key}:{attempt}")
    if kind == "multiplicative":
        return _multiplicative(old, rng)
    for _ in range(400):
        new = [rng.randint(max(2, n // 2), 2 * n + 8) for n in old]
        if kind.startswith("partial"):  # each literal kept with odds 1/2
            new = [n if rng.random() < 0.5 else m for n, m in zip(old, new, strict=True)]
            if new == old:
                continue
        elif any(a == b for a, b in zip(old, new, strict=True)):
            continue
        if any(a >= b for a, b in itertools.pairwise(new)):
            continue
        if kind in {"divisibility", "partial"} and not _keeps_relations(old, new):
            continue
        return dict(zip(old, new, strict=True))
    return None


def rewrite(case: Case, table: dict[int, int]) -> types.ModuleType:
    """A fresh module of ``case``'s source with its size literals mapped by ``table``."""
    path = Path(str(case.module.__file__))
    tree = ast.parse(path.read_text("utf-8"), filename=str(path))
    for node in _size_literals(tree):
        value = int(node.value)  # type: ignore[arg-type]  # _size_literals: ints only
        node.value = table.get(value, value)
    code = compile(tree, str(path), "exec")
    package = _cases_package.__name__
    module = types.ModuleType(f"{package}.{case.id}")
    module.__package__ = package
    module.__file__ = str(path)
    exec(code, module.__dict__)  # the case's own source, its sizes changed
    return module


def literals(case: Case) -> list[int]:
    """The distinct size literals of ``case``'s source, sorted."""
    tree = ast.parse(Path(str(case.module.__file__)).read_text("utf-8"))
    return sorted({int(node.value) for node in _size_literals(tree)})  # type: ignore[arg-type]


@dataclass
class Report:
    """What a generation kept and dropped."""

    entries: list[dict[str, Any]] = field(default_factory=list)
    dropped: Counter[str] = field(default_factory=Counter)
    skipped: dict[str, str] = field(default_factory=dict)

    def summary(self) -> str:
        """Counts per framework and split, and what was dropped and why."""
        lines = [f"{len(self.entries)} messages"]
        per = Counter((e["framework"], e["split"]) for e in self.entries)
        for (fw, split), count in sorted(per.items()):
            lines.append(f"  {fw:<10} {split:<8} {count}")
        lines.append("dropped attempts and variants, by reason:")
        lines += [f"  {count:5d}  {reason}" for reason, count in self.dropped.most_common()]
        if self.skipped:
            lines.append("variants skipped:")
            lines += [f"  {key}: {why}" for key, why in sorted(self.skipped.items())]
        return "\n".join(lines)


def _run(fn: Callable[[], object]) -> BaseException | None:
    """Call ``fn`` quietly; the exception it raised, or None."""
    sink = io.StringIO()
    try:
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            fn()
    except Exception as error:
        return error
    return None


def _exception_variants(case: Case) -> list[str]:
    return [
        fw for fw, variant in case.variants.items() if variant.kind == "exception" and installed(fw)
    ]


def generate_case(
    case: Case, report: Report, retired: frozenset[tuple[str, str, str]] = frozenset()
) -> None:
    """Add ``case``'s generated messages to ``report``.

    ``retired``: ``(case, framework, message)`` triples a tuning split once held; a
    held-out map never keeps one of them.
    """
    frameworks = _exception_variants(case)
    originals: dict[str, tuple[type[BaseException], str, str]] = {}
    for fw in frameworks:
        variant = case.variant(fw)
        assert variant is not None
        error = _run(variant.broken)
        if error is None or type(error) is not resolve(variant.expected):
            report.skipped[f"{case.id} [{fw}]"] = "the original does not raise as claimed"
            continue
        text = describe(error)
        originals[fw] = (type(error), text, template(text))
    if not originals:
        return
    values = literals(case)
    if not values:
        for fw in originals:
            report.skipped[f"{case.id} [{fw}]"] = "no size literal to rewrite"
        return
    seen: set[tuple[str, str]] = set()
    reasons: dict[str, Counter[str]] = {fw: Counter() for fw in originals}
    found: Counter[str] = Counter()
    for k in range(MAPS):
        missing = {
            fw: o
            for fw, o in originals.items()
            if k == 0 or found[fw] or set(reasons[fw]) != {UNCHANGED}
        }
        for attempt in range(ATTEMPTS):
            if not missing:
                break
            table = size_table(values, f"{case.id}:{k}", attempt)
            if table is None:
                report.dropped["no table of this kind for these literals"] += 1
                continue
            try:
                module = rewrite(case, table)
            except Exception:
                report.dropped["the rewritten module does not import"] += 1
                continue
            for fw, (cls, original, shape) in list(missing.items()):
                prefix = "" if fw == "numpy" else f"{fw}_"
                error = _run(getattr(module, f"{prefix}broken"))
                text = "" if error is None else describe(error)
                if error is None:
                    reason = "attempt raised nothing"
                elif type(error) is not cls:
                    reason = "attempt raised another class"
                elif template(text) != shape:
                    reason = "attempt raised another message template"
                elif text == original:
                    reason = UNCHANGED
                elif (fw, text) in seen:
                    reason = "attempt raised the message of an earlier map"
                elif k not in TUNING_MAPS and (case.id, FRAMEWORK_NAMES[fw], text) in retired:
                    reason = "attempt raised a message of an earlier tuning split"
                else:
                    del missing[fw]
                    seen.add((fw, text))
                    found[fw] += 1
                    report.entries.append(
                        {
                            "message": text,
                            "framework": FRAMEWORK_NAMES[fw],
                            "kind": "exception",
                            "case": case.id,
                            "tags": list(case.tags),
                            "exception": cls.__name__,
                            "sizes": k,
                            "split": "tuning" if k in TUNING_MAPS else "heldout",
                        }
                    )
                    continue
                report.dropped[reason] += 1
                reasons[fw][reason] += 1
        for _ in missing:
            report.dropped["variant and map with no attempt reproducing"] += 1
    for fw in originals:
        if not found[fw]:
            why = ", ".join(f"{reason} ({n})" for reason, n in reasons[fw].most_common())
            report.skipped[f"{case.id} [{fw}]"] = f"no entry: {why}"


def versions() -> dict[str, str]:
    """The versions of the frameworks that produce the messages."""
    found = {}
    for name in ("numpy", "torch", "jax", "jaxlib", "tensorflow-cpu", "tensorflow"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            found[name] = importlib.metadata.version(name)
    return found


_ORDER = {name: i for i, name in enumerate(FRAMEWORK_NAMES.values())}


def generate(
    cases: Iterable[Case] | None = None,
    retired: frozenset[tuple[str, str, str]] | None = None,
) -> Report:
    """Generate the messages of ``cases`` (all cases by default).

    ``retired`` defaults to the triples of :data:`RETIRED` (see :func:`load_retired`).
    """
    retired = load_retired() if retired is None else retired
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    report = Report()
    for case in all_cases() if cases is None else cases:
        generate_case(case, report, retired)
    report.entries.sort(key=lambda e: (e["case"], _ORDER[e["framework"]], e["sizes"]))
    return report


def dump(entries: list[dict[str, Any]]) -> str:
    """The file's text for ``entries``."""
    data = {"versions": versions(), "entries": entries}
    return json.dumps(data, indent=1, ensure_ascii=False) + "\n"


def load(path: Path = OUTPUT) -> dict[str, Any]:
    """The stored corpus: ``{"versions": {...}, "entries": [...]}``."""
    data: dict[str, Any] = json.loads(path.read_text("utf-8"))
    return data


def differences(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[str]:
    """Lines naming the entries only in ``old`` (``-``) or only in ``new`` (``+``)."""

    def key(entry: dict[str, Any]) -> str:
        return json.dumps(entry, sort_keys=True, ensure_ascii=False)

    before, after = {key(e) for e in old}, {key(e) for e in new}
    return [f"- {k}" for k in sorted(before - after)] + [f"+ {k}" for k in sorted(after - before)]


def tuning_triples(entries: Iterable[dict[str, Any]]) -> set[tuple[str, str, str]]:
    """The ``(case, framework, message)`` triples of the tuning split of ``entries``."""
    return {(e["case"], e["framework"], e["message"]) for e in entries if e["split"] == "tuning"}


def load_retired(path: Path | None = None) -> frozenset[tuple[str, str, str]]:
    """The triples every tuning split so far held (:data:`RETIRED`; empty when absent)."""
    path = RETIRED if path is None else path
    if not path.exists():
        return frozenset()
    data = json.loads(path.read_text("utf-8"))
    return frozenset((c, fw, m) for c, fw, m in data["messages"])


def dump_retired(triples: Iterable[tuple[str, str, str]]) -> str:
    """The text of :data:`RETIRED` for ``triples``."""
    data = {
        "note": (
            "Messages that a tuning split of tests/data/diagnose_generated.json held at some "
            "time (diagnose's rules may have been written while reading them): a held-out "
            "map never keeps one. python -m catalogue.corpus adds the tuning split it "
            "replaces; never edit by hand."
        ),
        "messages": [list(t) for t in sorted(set(triples))],
    }
    return json.dumps(data, indent=1, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Write the corpus, or with ``--check`` compare a fresh generation with it."""
    parser = argparse.ArgumentParser(prog="python -m catalogue.corpus", description=__doc__)
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    parser.add_argument("ids", nargs="*", help="only these cases (with --check)")
    args = parser.parse_args(argv)
    if args.ids and not args.check:
        parser.error("case ids only with --check: the file always holds every case")
    if not args.output.parent.is_dir():
        parser.error(f"{args.output.parent} does not exist: run it in a checkout, or pass --output")
    cases = [get(i) for i in args.ids] if args.ids else None
    retired = load_retired(args.output.with_name(RETIRED.name))
    if not args.check and args.output.exists():  # the tuning split it replaces was seen
        retired |= tuning_triples(load(args.output)["entries"])
    report = generate(cases, retired)
    print(report.summary(), file=sys.stderr)
    if not args.check:
        args.output.write_text(dump(report.entries), "utf-8")
        retired |= tuning_triples(report.entries)
        args.output.with_name(RETIRED.name).write_text(dump_retired(retired), "utf-8")
        print(f"wrote {len(report.entries)} messages to {args.output}", file=sys.stderr)
        return 0
    stored = load(args.output)
    old = stored["entries"]
    if args.ids:
        old = [e for e in old if e["case"] in set(args.ids)]
    lines = differences(old, report.entries)
    if stored["versions"] != versions():
        print(
            f"generated with {stored['versions']}, installed {versions()}",
            file=sys.stderr,
        )
    if lines:
        print("\n".join(lines[:20]), file=sys.stderr)
        print(
            f"{args.output} is out of date: {len(lines)} entries differ; regenerate it with "
            "`python -m catalogue.corpus`",
            file=sys.stderr,
        )
        return 1
    print(f"{args.output} is up to date", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
