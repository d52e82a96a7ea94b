"""From a pasted error message, traceback or symptom to the catalogue cases that explain it.

Evidence, added up per case (see :func:`diagnose`):

1. **the numbers of the message, read as attention's axes**: every shape quoted
   (``torch.Size([2, 8])``, ``(2, 8, 5, 5)``, ``[2,8,5,5]``) is parsed, two shapes that
   failed to broadcast are aligned from the right as broadcasting aligns them, and the axis
   that disagrees is named (batch ``B``, heads ``H``, query length ``L``, key length ``S``);
   PyTorch's ``non-singleton dimension d`` is that axis of the scores ``(B, H, L, S)``. Each
   failure family then says what those numbers mean in its own terms (on the head axis,
   ``8`` against ``2`` is "8 query heads against 2 key/value heads" for grouped-query
   attention, "a mask built for 2 heads" for a mask);
2. :data:`RULES`: the wordings NumPy, PyTorch, JAX and TensorFlow/Keras use for each
   failure family (broadcasting, contraction, reshape, gather, concatenation, dtype,
   kernel refusals...), with the taxonomy tags they most often mean in attention code,
   likeliest first;
3. :data:`CONCEPTS`: symptoms in words (future tokens leak, loss suspiciously low, weights
   all equal, NaN only in padded rows, garbage for short left-padded prompts...), matched
   as concepts with their synonyms, each pointing at the tags that produce it;
4. a case's own ``MESSAGES`` (exact wordings it raises; a wording many cases share counts
   less) and ``SYMPTOMS`` (a phrase most of whose words, after :data:`SYNONYMS`, are in
   the text).

Words the text shares with a case's title only break ties. A case below
:data:`MIN_SCORE` is no answer: a message no case explains gets an empty answer (and
:func:`nearest_family`) rather than a list of unrelated cases. No sentence appears twice
in one answer list: each case gives the reading of the numbers in its own tag's terms, then
its own ``Why``.

The cases' searchable fields are read from ``diagnose_index.json`` beside this module
when it matches the case modules' sources (a hash per module), so answering does not
import the 73 case modules; ``python -m catalogue.diagnose --write-index`` rewrites it.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import re
import re._parser as _sre  # type: ignore[import-not-found]
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

from .taxonomy import TAGS

_FLAGS = re.IGNORECASE | re.DOTALL
_HERE = Path(__file__).parent
INDEX = _HERE / "diagnose_index.json"
"""The cases' searchable fields, with a hash of each case module's source."""


# --- the cases, without importing them ---------------------------------------------------


@dataclass(frozen=True)
class CaseCard:
    """What ``diagnose`` knows of a case: the fields it searches and answers with.

    Attributes:
        id: the case id (its module name).
        title: the first line of its docstring.
        kind: ``"exception"``, ``"nan"`` or ``"silent"``.
        tags: its taxonomy tags, main tag first.
        messages: its ``MESSAGES`` regexes.
        symptoms: its ``SYMPTOMS`` phrases.
        why: the first sentence of its ``Why:`` section.
        fix: the first sentence of its ``Fix:`` section.
    """

    id: str
    title: str
    kind: str
    tags: tuple[str, ...]
    messages: tuple[str, ...] = ()
    symptoms: tuple[str, ...] = ()
    why: str = ""
    fix: str = ""

    @property
    def module(self) -> ModuleType:
        """The case module (imported on first use)."""
        package = __package__ or "catalogue"
        return importlib.import_module(f"{package}.cases.{self.id}")


def _plain(text: str) -> str:
    """RST inline markup as plain text, on one line."""
    return " ".join(re.sub(r"``(.+?)``|:\w+:`(.+?)`", r"\1\2", text).split())


def first_sentence(doc: str, section: str) -> str:
    """The first sentence of a section (``Why``, ``Fix``) of a case page, as plain text."""
    found = re.search(rf"\n{section}:\n(.*?)(?:\n\n|\n\S|\Z)", doc, re.S)
    if not found:
        return ""
    text = _plain(found.group(1))
    depth = 0
    for at, char in enumerate(text):
        depth += {"(": 1, ")": -1}.get(char, 0)
        abbreviation = text[max(at - 3, 0) : at + 1] in {"e.g.", "i.e."}
        if char == "." and depth == 0 and not abbreviation and text[at + 1 : at + 2] in {" ", ""}:
            return text[: at + 1]
    return text.rstrip(".;:") + "."


def _source_hashes() -> dict[str, str]:
    """``{case id: sha1 of its module's source}`` for every case module."""
    return {
        path.stem: hashlib.sha1(path.read_bytes()).hexdigest()
        for path in sorted((_HERE / "cases").glob("[!_]*.py"))
    }


def _needs(items: Sequence[tuple[Any, Any]]) -> list[str] | None:
    """Lowercase strings one of which any match of the parsed pattern ``items`` contains."""
    best = run = ""
    alternatives: list[str] | None = None
    for op, arg in [*items, (None, None)]:
        if op is _sre.LITERAL:
            run += chr(arg)
            continue
        best = max(best, run, key=len)
        run = ""
        if op is _sre.SUBPATTERN and alternatives is None:
            alternatives = _needs(list(arg[-1]))
        elif op is _sre.BRANCH and alternatives is None:
            options: list[str] | None = []
            for branch in arg[1]:
                found = _needs(list(branch))
                if not found or options is None:
                    options = None
                    break
                options += found
            alternatives = options
    return [best.lower()] if len(best.strip()) >= 3 else alternatives


def literals(pattern: str) -> list[str] | None:
    """Strings (lowercase) one of which every match of ``pattern`` contains, or None.

    ``diagnose`` compiles a pattern only when one of them is in the text: compiling the
    two hundred patterns is most of the time one answer takes.
    """
    return _needs(list(_sre.parse(pattern, _FLAGS)))


def index_data() -> dict[str, Any]:
    """The index built by importing every case module (what ``--write-index`` writes)."""
    from . import all_cases

    hashes = _source_hashes()
    cases = []
    for case in all_cases():
        doc = case.module.__doc__ or ""
        cases.append(
            {
                "id": case.id,
                "sha1": hashes[case.id],
                "title": case.title,
                "kind": case.kind,
                "tags": list(case.tags),
                "messages": list(getattr(case.module, "MESSAGES", ())),
                "symptoms": list(getattr(case.module, "SYMPTOMS", ())),
                "why": first_sentence(doc, "Why"),
                "fix": first_sentence(doc, "Fix"),
            }
        )
    patterns = [rule.pattern for rule in (*RULES, *CONCEPTS)]
    patterns += [p for row in cases for p in row["messages"]]
    symptoms = {phrase for row in cases for phrase in row["symptoms"]}
    return {
        "cases": cases,
        "literals": {p: literals(p) for p in sorted(set(patterns))},
        "symptom_words": {phrase: sorted(words(phrase)) for phrase in sorted(symptoms)},
        "card_text": {card.id: _card_text(card) for card in map(_card, cases)},
        "card_words": {card.id: sorted(words(_card_text(card))) for card in map(_card, cases)},
    }


def write_index() -> Path:
    """Rewrite :data:`INDEX` from the case modules; returns its path."""
    INDEX.write_text(json.dumps(index_data(), indent=1, ensure_ascii=False) + "\n")
    return INDEX


def _card(row: dict[str, Any]) -> CaseCard:
    return CaseCard(
        row["id"],
        row["title"],
        row["kind"],
        tuple(row["tags"]),
        tuple(row["messages"]),
        tuple(row["symptoms"]),
        row["why"],
        row["fix"],
    )


@cache
def _index() -> dict[str, Any]:
    try:
        loaded: dict[str, Any] = json.loads(INDEX.read_text())
        return loaded
    except (OSError, ValueError):
        return {}


@cache
def cards() -> tuple[CaseCard, ...]:
    """Every case, sorted by id: from :data:`INDEX` when it is current, else imported."""
    rows = _index().get("cases", [])
    if {row["id"]: row["sha1"] for row in rows} != _source_hashes():
        rows = index_data()["cases"]  # a case module changed: read them all
    return tuple(_card(row) for row in rows)


def _search(pattern: str, text: str, lowered: str) -> re.Match[str] | None:
    """``re.search`` with :data:`_FLAGS`, skipped when a string it needs is not in the text."""
    needed = _index().get("literals", {}).get(pattern)
    if needed and not any(piece in lowered for piece in needed):
        return None
    return _compiled(pattern).search(text)


def _phrase_words(phrase: str) -> frozenset[str]:
    known = _index().get("symptom_words", {}).get(phrase)
    return frozenset(known) if known is not None else words(phrase)


def index_is_current() -> bool:
    """Whether :data:`INDEX` holds exactly what the case modules say."""
    try:
        return bool(json.loads(INDEX.read_text()) == index_data())
    except (OSError, ValueError):
        return False


def case_why(case: Any) -> str:
    """The first sentence of a case's ``Why:`` section (a :class:`Case` or a card)."""
    return first_sentence(case.module.__doc__ or "", "Why")


def case_fix(case: Any) -> str:
    """The first sentence of a case's ``Fix:`` section (a :class:`Case` or a card)."""
    return first_sentence(case.module.__doc__ or "", "Fix")


# --- the numbers of a message ---------------------------------------------------------

_SCORE_AXES = ("batch", "head", "query length", "key length")
_SCORE_LETTERS = ("B", "H", "L", "S")


@dataclass(frozen=True)
class Reading:
    """What the message's sizes mean, per failure family.

    Attributes:
        tags: the families these sizes point to, likeliest first.
        say: per tag, a sentence in that family's terms; ``default`` for the others.
        default: a neutral sentence naming the numbers and the axis.
    """

    tags: tuple[str, ...]
    say: dict[str, str] = field(default_factory=dict)
    default: str = ""
    more: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Per tag, other sentences on the same numbers, for a second case of that family."""

    def sentence(self, tag: str) -> str:
        """The sentence for ``tag``."""
        return self.say.get(tag, self.default)

    def sentences(self, tag: str) -> tuple[str, ...]:
        """The sentence for ``tag``, then its alternatives."""
        return (self.sentence(tag), *self.more.get(tag, ()))


_SHAPE = re.compile(r"[\[(]\s*(\d+(?:\s*,\s*\d+)*)\s*,?\s*[\])]")


def shapes(text: str) -> list[tuple[int, ...]]:
    """Every shape quoted in ``text``: ``(2, 8, 5, 5)``, ``[2,8,5,5]``, ``torch.Size([2, 8])``.

    ``[original->remapped]`` listings of NumPy and PyTorch count once, by their original.
    """
    text = re.sub(r"->\s*[\[(][^\])]*[\])]", " ", text)
    text = re.sub(r"\b(?:None|\?)(?=\s*[,)\]])", "1", text)  # an unknown size broadcasts
    return [tuple(int(n) for n in group.split(",")) for group in _SHAPE.findall(text)]


def _remapped(text: str) -> list[tuple[int, ...]]:
    """PyTorch einsum's remapped shapes (``[32, 77, 40]->[32, 1, 77, 40]``): one axis per label."""
    return [
        tuple(int(n) for n in group.split(","))
        for group in re.findall(r"->\s*\[(\d+(?:,\s*\d+)+)\]", text)
    ]


_VOCAB_MIN = 5000
"""An embedding table this long, not a power of two (or one plus two), reads as a vocabulary;
position tables are 512, 514, 1024, 4098... rows."""


def index_reading(text: str) -> Reading | None:
    """An embedding lookup past its table, with the numbers read as token id or position.

    TensorFlow's ``indices[i,j] = v is not in [0, n)`` gives the position ``j`` of the
    offending entry: ``v == j`` means the index is the position itself (a sequence longer
    than the position table); a table of :data:`_VOCAB_MIN` rows or more is a vocabulary.
    """
    found = re.search(r"indices\[(?:\d+,)*(\d+)\] = (-?\d+) is not in \[0, (\d+)\)", text)
    table = None
    if found:
        column, value, table = (int(g) for g in found.groups())
    else:
        other = re.search(
            r"index (-?\d+) is out of bounds for (?:axis|dimension) 0 with size (\d+)|"
            r"Tried to access index (-?\d+) out of table with (\d+) rows",
            text,
        )
        if not other:
            return None
        numbers = [int(g) for g in other.groups() if g is not None]
        value, table, column = numbers[0], numbers[1], -1
    if value < 0:
        return Reading(
            ("token-out-of-range",),
            {
                "token-out-of-range": f"index {value}: a negative id (a -100 or -1 pad id) "
                f"looked up in a table of {table} rows"
            },
            f"index {value} into a table of {table} rows",
        )
    pow2 = any(n > 0 and n & (n - 1) == 0 for n in (table, table - 2))  # 512, 514, 4098
    says_position = value == column or (pow2 and table < _VOCAB_MIN)
    says_token = not pow2 and (table >= _VOCAB_MIN or value == table)
    if not (says_position or says_token):
        return None
    position = (
        f"index {value} into a table of {table} rows: a sequence longer than the "
        f"{table} positions the table was built for"
    )
    token = (
        f"index {value} into a table of {table} rows: a token id past the vocabulary "
        "(a tokenizer with added tokens, or a model built for a smaller vocabulary)"
    )
    tags = ("position-out-of-range", "token-out-of-range")
    if not says_position:
        tags = ("token-out-of-range", "position-out-of-range")
    return Reading(
        tags,
        {"position-out-of-range": position, "token-out-of-range": token},
        f"index {value} into a table of {table} rows",
        {
            "position-out-of-range": (
                f"positions 0..{value} need a table of {value + 1} rows or more; this one "
                f"has {table}: truncate the input or extend the table",
            ),
            "token-out-of-range": (
                f"ids must stay below {table}: id {value} is past the last row of the "
                "embedding (resize the embedding to the tokenizer)",
            ),
        },
    )


_QKV_SHAPE = re.compile(
    r"\b(query|key|value|q|k|v)(?:\.shape|[ _]shape|\.size\(\))?\s*[:=]?\s*"
    r"(?:torch\.Size\()?[\[(]?\s*(\d+(?:\s*[,x×]\s*\d+){2,})",
    re.IGNORECASE,
)


def qkv_reading(text: str) -> Reading | None:
    """Query and key/value shapes named in the message, compared axis by axis.

    Query and key may differ in length (``L`` against ``S``); a difference on the first
    axis is two batches, on a head axis two head counts, on the last two feature sizes.
    """
    named: dict[str, tuple[int, ...]] = {}
    for name, numbers in _QKV_SHAPE.findall(text):
        key = name.lower()[0]
        named.setdefault(key, tuple(int(n) for n in re.split(r"\s*[,x×]\s*", numbers)))
    if "q" not in named or not ({"k", "v"} & set(named)):
        return None
    q = named["q"]
    k = named.get("k", named.get("v", ()))
    if len(q) != len(k):
        return None
    if q[0] != k[0]:
        return Reading(
            ("batch-mismatch", "kv-length-mismatch"),
            {
                "batch-mismatch": f"the query has batch {q[0]} and the key/value {k[0]}: "
                "the other input (a context, an encoder output) was not repeated for the batch"
            },
            f"query batch {q[0]} against key/value batch {k[0]}",
        )
    if len(q) == 4 and q[1] != k[1] and q[2] == k[2]:
        big, small = max(q[1], k[1]), min(q[1], k[1])
        return Reading(
            ("gqa-heads", "kernel-layout"),
            {"gqa-heads": f"{q[1]} query heads against {k[1]} key/value heads"},
            f"{big} against {small} on the second axis of query and key",
        )
    if q[-1] != k[-1]:
        return Reading(
            ("qk-dim-mismatch", "projection-width"),
            {"qk-dim-mismatch": f"query features {q[-1]} against key features {k[-1]}"},
            f"query features {q[-1]} against key features {k[-1]}",
        )
    if "v" in named and "k" in named and named["k"][:-1] != named["v"][:-1]:
        return Reading(
            ("kv-length-mismatch",),
            {},
            f"key {named['k']} and value {named['v']} disagree before the feature axis",
        )
    return None


_LABEL_ROLES = {
    "b": ("batch-mismatch", "the batch axis"),
    "n": ("batch-mismatch", "the batch axis"),
    "h": ("gqa-heads", "the head axis"),
    "g": ("gqa-heads", "the head-group axis"),
    "d": ("qk-dim-mismatch", "the feature axis"),
    "e": ("qk-dim-mismatch", "the feature axis"),
    "c": ("qk-dim-mismatch", "the feature axis"),
    "k": ("kv-length-mismatch", "the key axis"),
    "s": ("kv-length-mismatch", "the key axis"),
    "j": ("kv-length-mismatch", "the key axis"),
    "t": ("kv-length-mismatch", "the sequence axis"),
    "l": ("kv-length-mismatch", "the query axis"),
    "i": ("kv-length-mismatch", "the query axis"),
    "q": ("kv-length-mismatch", "the query axis"),
}
_ROLE_TAGS = {
    "batch-mismatch": ("batch-mismatch", "kv-length-mismatch"),
    "gqa-heads": ("gqa-heads", "batch-mismatch"),
    "qk-dim-mismatch": ("qk-dim-mismatch", "projection-width", "kv-length-mismatch"),
    "kv-length-mismatch": ("kv-length-mismatch", "position-out-of-range", "batch-mismatch"),
}


def einsum_reading(text: str) -> Reading | None:
    """An einsum label whose sizes disagree, read by its letter (``h`` heads, ``d`` features...).

    PyTorch: ``subscript h has size 2 for operand 1 which does not broadcast with
    previously seen size 8``; JAX: ``Size of label 'h' for operand 1 (8) does not match
    previous terms (2)``.
    """
    torch_label = re.search(
        r"subscript (\w) has size (\d+) for operand \d+ which does not broadcast with "
        r"previously seen size (\d+)",
        text,
    )
    jax_label = re.search(
        r"Size of label '(\w)' for operand \d+ \((\d+)\) does not match previous terms "
        r"\((\d+)\)",
        text,
    )
    found = torch_label or jax_label
    if not found:
        return None
    label, a, b = found.group(1), int(found.group(2)), int(found.group(3))
    family, axis = _LABEL_ROLES.get(label.lower(), ("", f"the axis labelled {label}"))
    if not family:
        return None
    big, small = max(a, b), min(a, b)
    say = {
        "batch-mismatch": f"{a} against {b} on {axis} ('{label}'): two batches of different "
        "sizes (a context or cache not repeated for the batch, or beams)",
        "gqa-heads": f"{big} query heads against {small} key/value heads on '{label}'"
        + (f": each key/value head serves {big // small}" if small and big % small == 0 else ""),
        "qk-dim-mismatch": f"{a} against {b} features on '{label}': query and key (or the "
        "projection) differ in width",
        "projection-width": f"{a} against {b} on the contracted feature axis '{label}': an "
        "input wider or narrower than the projection",
        "kv-length-mismatch": f"{a} against {b} on {axis} ('{label}'): two sequences of "
        "different lengths (keys and values, or a table built for another length)",
        "position-out-of-range": f"{a} against {b} positions on '{label}': a position table "
        "or relative bias built for another length",
    }
    return Reading(_ROLE_TAGS[family], say, f"{a} against {b} on {axis} ('{label}')")


def _ints(group: str) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", group))


def matmul_reading(text: str) -> Reading | None:
    """A batched matmul whose operands disagree, read from the shapes it quotes.

    The batch axes (all but the last two) name batch or heads; the contracted axes say
    whether the second operand is a key not transposed (it ends like the first), a weight
    (2-D) or another tensor.
    """
    batch = re.search(
        r"must have compatible batch dimensions: \[([\d,]+)\] vs\. \[([\d,]+)\]|"
        r"Incompatible types for matmul arguments: \w+\[([\d,]+)\] and \w+\[([\d,]+)\]|"
        r"remapped shapes \[original->remapped\]: \(([\d,]+)\)->\(([\d,]*)[\w,]*\) "
        r"\(([\d,]+)\)->\(([\d,]*)[\w,]*\)",
        text,
    )
    if batch:
        groups = [g for g in batch.groups() if g is not None]
        first, second = _ints(groups[0]), _ints(groups[1])
        if len(groups) == 4:  # NumPy: the remapped prefix holds the batch axes
            left, right = _ints(groups[0]), _ints(groups[2])
            if len(left) != len(right):
                return Reading(
                    ("batched-matmul", "batch-mismatch"),
                    {
                        "batched-matmul": f"a {len(left)}-D operand against a {len(right)}-D "
                        f"one in a matmul: their batch axes {_ints(groups[1])} and "
                        f"{_ints(groups[3])} do not line up",
                    },
                    f"({groups[0]}) against ({groups[2]})",
                )
            first, second = _ints(groups[1]), _ints(groups[3])
        else:
            first, second = first[:-2], second[:-2]
        if len(first) != len(second) or not first:
            return None
        bad = [
            i for i in range(len(first)) if first[i] != second[i] and 1 not in (first[i], second[i])
        ]
        if len(bad) != 1:
            return None
        a, b = first[bad[0]], second[bad[0]]
        if len(first) >= 2 and bad[0] == len(first) - 1:
            return _axis_reading(a, b, 1, 4)  # (B, H) batch axes: the heads
        return _axis_reading(a, b, 0, 4)
    sizes = re.search(
        r"Matrix size-incompatible: In\[0\]: \[([\d,]+)\], In\[1\]: \[([\d,]+)\]", text
    )
    if not sizes:
        return None
    left, right = _ints(sizes.group(1)), _ints(sizes.group(2))
    if len(left) < 2 or len(right) < 2:
        return None
    m, k, k2, n = left[-2], left[-1], right[-2], right[-1]
    if len(right) == 2 and len(left) >= 3:
        return Reading(
            ("projection-width", "qk-dim-mismatch"),
            {
                "projection-width": f"a ({k2}, {n}) weight applied to {k} features: the "
                f"projection was built for {k2} inputs",
            },
            f"[..., {m}, {k}] times a ({k2}, {n}) weight",
        )
    if right == left or (n == k and k2 != k):
        return Reading(
            ("missing-transpose", "qk-dim-mismatch"),
            {
                "missing-transpose": f"the second operand [..., {k2}, {n}] ends with {n} "
                f"features like the first: the keys were not transposed (Q @ K with K "
                f"(..., S, D); use K transposed to (..., D, S))",
            },
            f"[..., {m}, {k}] times [..., {k2}, {n}]",
        )
    return Reading(
        ("qk-dim-mismatch", "kv-length-mismatch", "projection-width"),
        {
            "qk-dim-mismatch": f"{k} against {k2} on the contracted axis: query and key "
            "feature sizes differ",
            "kv-length-mismatch": f"[..., {m}, {k}] weights times [..., {k2}, {n}] values: "
            f"{k} keys against {k2} values",
        },
        f"[..., {m}, {k}] times [..., {k2}, {n}]: {k} against {k2}",
    )


def _head_dim_like(n: int) -> bool:
    return 8 <= n <= 1024 and n & (n - 1) == 0


def contraction_reading(text: str) -> Reading | None:
    """Two sizes that met on a matmul's contracted axis, read as features or lengths.

    NumPy (``size 7 is different from 8``), JAX (``got (8,) and (7,)``) and PyTorch's bmm
    (``to be: [B, 8] but got: [B, 7]``) name only the two sizes. Model widths (both 256 or
    more) point to a projection; a head size (a power of two from 8 to 256) against a
    size that is not one points to a sequence length meeting the features: keys not
    transposed (toy sizes: a sequence shorter than the head size); other sizes, to query
    and key widths that differ.
    """
    found = (
        re.search(r"mismatch in its core dimension 0.*\(size (\d+) is different from (\d+)\)", text)
        or re.search(
            r"contracting dimensions to have the same shape, got \(?\[?(\d+),?\)?\]? "
            r"and \(?\[?(\d+)",
            text,
        )
        or re.search(r"batch2 tensor to be: \[\d+, (\d+)\] but got: \[\d+, (\d+)\]", text)
    )
    if not found:
        return None
    return _contraction(int(found.group(1)), int(found.group(2)))


def _contraction(a: int, b: int) -> Reading:
    """Sizes ``a`` and ``b`` met on a contracted axis (see :func:`contraction_reading`)."""
    sentence = {
        "projection-width": f"{a} against {b} on the contracted axis: model widths, so an input "
        "or context of one width meets a projection built for the other",
        "missing-transpose": f"{a} against {b} on the contracted axis: a head size meets a "
        "sequence length, as when K (..., S, D) is used where Kᵀ (..., D, S) is meant",
        "qk-dim-mismatch": f"{a} against {b} on the contracted axis: query and key feature "
        "sizes differ (projections built with different output sizes)",
        "kv-length-mismatch": f"{a} against {b} on the contracted axis: weights over {a} keys "
        f"meet {b} values (keys and values of different lengths)",
    }
    small, big = min(a, b), max(a, b)
    if small >= 256:
        tags: tuple[str, ...] = ("projection-width", "qk-dim-mismatch", "missing-transpose")
    elif _head_dim_like(big) and small & (small - 1) != 0:
        tags = ("missing-transpose", "qk-dim-mismatch", "kv-length-mismatch", "projection-width")
    elif big >= 128:
        tags = ("projection-width", "qk-dim-mismatch", "missing-transpose", "kv-length-mismatch")
    else:
        tags = ("qk-dim-mismatch", "missing-transpose", "projection-width", "kv-length-mismatch")
    return Reading(tags, sentence, f"{a} against {b} on a matmul's contracted axis")


def tf_graph_reading(text: str) -> Reading | None:
    """TensorFlow's graph-mode message, read with the shapes it quotes.

    ``Dimensions must be equal, but are A and B for '{{node X}} = Op[...]' with input
    shapes: [..], [..]``: the op says whether two shapes met in a matmul or elementwise.
    """
    found = re.search(
        r"Dimensions must be equal, but are (\d+) and (\d+) for .{0,200}?= ?(\w+)\[.{0,400}?"
        r"with input shapes: \[([\d,?]*)\], \[([\d,?]*)\]",
        text,
        re.DOTALL,
    )
    old = re.search(
        r"In\[0\] mismatch In\[1\] shape: (\d+) vs\. (\d+): \[([\d,]+)\] \[([\d,]+)\]", text
    )
    if old:
        shown = f"Matrix size-incompatible: In[0]: [{old.group(3)}], In[1]: [{old.group(4)}]"
        return matmul_reading(shown)
    if not found:
        return None
    op = found.group(3)
    left, right = found.group(4).replace("?", "0"), found.group(5).replace("?", "0")
    if "MatMul" in op:
        return matmul_reading(f"Matrix size-incompatible: In[0]: [{left}], In[1]: [{right}]")
    if "Einsum" in op or "Dense" in op:  # a Keras projection's einsum: a width meets a weight
        return _contraction(int(found.group(1)), int(found.group(2)))
    return shape_reading(f"Incompatible shapes: [{left}] vs. [{right}]")


def tf_einsum_reading(text: str) -> Reading | None:
    """``Expected dimension 6 at axis 0 of the input shaped [2,7,2,4] but got dimension 2``."""
    found = re.search(
        r"Expected dimension (\d+) at axis (\d+) of the input shaped \[([\d,]+)\] but got "
        r"dimension (\d+)",
        text,
    )
    if not found:
        return None
    want, axis, shape, got = (
        int(found.group(1)),
        int(found.group(2)),
        _ints(found.group(3)),
        int(found.group(4)),
    )
    if axis == 0:
        return _axis_reading(want, got, 0, 3)
    if axis == len(shape) - 1:
        return Reading(
            ("qk-dim-mismatch", "projection-width", "kv-length-mismatch"),
            {"qk-dim-mismatch": f"{want} against {got} on the last (feature) axis"},
            f"{want} against {got} on the last axis",
        )
    return None


_BATCH_LIKE = 128
"""Up to this, a size may be a batch size (or a batch × heads factor)."""


def reshape_reading(text: str) -> Reading | None:
    """A reshape or view that cannot hold the tensor, with the element counts compared.

    With ``-1`` in the shape (or TensorFlow's "requires a multiple of"), the named axes do
    not divide the size: a width that is not a multiple of the head count. Without it, a
    size that is a whole multiple of what the shape holds means an axis taken from the
    wrong tensor (a batch or length of another tensor, batch-first read as sequence-first).
    """
    found = re.search(r"shape '\[([-\d, ]+)\]' is invalid for input of size (\d+)", text)
    numpy = re.search(
        r"cannot reshape array of (?:shape \([\d, ]*\) \()?size (\d+)\)? into shape "
        r"\(([-\d, ]+)\)",
        text,
    )
    multiple = re.search(
        r"Input to reshape is a tensor with (\d+) values, but the requested shape "
        r"(requires a multiple of|has) (\d+)",
        text,
    )
    if found:
        shape, size = _signed(found.group(1)), int(found.group(2))
    elif numpy:
        shape, size = _signed(numpy.group(2)), int(numpy.group(1))
    elif multiple:
        size, held = int(multiple.group(1)), int(multiple.group(3))
        shape = (-1, held) if multiple.group(2).startswith("requires") else (held,)
    else:
        return None
    held = 1
    for n in shape:
        held *= n if n > 0 else 1
    shown = ", ".join(map(str, shape))
    split = (
        f"{size} elements do not split into [{shown}]: the named axes hold {held}, which does "
        f"not divide {size}; the width is not a multiple of the head count"
    )
    if 0 in shape:
        zero = (
            f"[{shown}] has an axis of size 0: an integer division that rounded down to zero "
            "(query heads // key/value heads with more key/value heads than query heads, or "
            "a width // heads)"
        )
        return Reading(("gqa-heads", "head-split"), {"gqa-heads": zero, "head-split": zero}, zero)
    if -1 in shape or not held:
        return Reading(("head-split", "head-axis-order"), {"head-split": split}, split)
    ratio = size / held
    whole = ratio if ratio >= 1 else 1 / ratio
    if len(shape) == 4 and abs(whole - round(whole)) < 1e-9 and whole >= 2:
        heads = shape[2]
        holds = heads * ratio
        fewer = (
            f"[{shown}] {'needs' if ratio < 1 else 'holds'} {round(whole)} times "
            f"{'more' if ratio < 1 else 'fewer'} elements than the {size} there are: with a "
            f"(B, L, H, D) view, {heads} heads where the tensor holds {holds:g}: in a "
            "grouped-query model the key/value projection has num_key_value_heads and the "
            "query num_heads (or an axis of the view comes from another tensor)"
        )
        return Reading(
            ("gqa-heads", "layout-confusion", "head-split"),
            {"gqa-heads": fewer, "layout-confusion": fewer},
            fewer,
        )
    if 2 <= whole <= _BATCH_LIKE and abs(whole - round(whole)) < 1e-9:
        layout = (
            f"{size} elements against the {held} that [{shown}] holds, exactly {round(whole)} "
            f"times {'more' if ratio > 1 else 'fewer'}: an axis of the view (batch, length, "
            "heads) was taken from another tensor or another axis (batch-first read as "
            "sequence-first)"
        )
        return Reading(
            ("layout-confusion", "batch-mismatch", "head-split"),
            {"layout-confusion": layout, "batch-mismatch": layout.replace("an axis", "a size")},
            layout,
        )
    return Reading(("head-split", "head-axis-order"), {"head-split": split}, split)


def _signed(group: str) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"-?\d+", group))


def mha_mask_reading(text: str) -> Reading | None:
    """``The shape of the 2D attn_mask is torch.Size([a, a]), but should be (b, b)``.

    A square mask built for the sequence's own length ``a`` while the layer reads length
    ``b`` from the query's first axis: a batch-first input given to a sequence-first layer
    (``b`` is then the batch size), or a mask built for another length.
    """
    three = re.search(
        r"shape of the 3D attn_mask is torch\.Size\(\[(\d+), (\d+), (\d+)\]\), but should "
        r"be \((\d+), (\d+), (\d+)\)",
        text,
    )
    if three:
        got_n, got_l, got_s, want_n, want_l, want_s = (int(g) for g in three.groups())
        if (got_l, got_s) == (want_l, want_s) and got_n and want_n % got_n == 0:
            heads = want_n // got_n
            return Reading(
                ("mask-shape", "mask-broadcast-axis"),
                {
                    "mask-shape": f"a ({got_n}, {got_l}, {got_s}) mask where MultiheadAttention "
                    f"wants (N·num_heads, L, S) = ({want_n}, {got_l}, {got_s}): one mask per "
                    f"example must be repeated for each of the {heads} heads",
                    "mask-broadcast-axis": f"a per-example mask of {got_n} where the layer "
                    f"counts {want_n} = batch × heads: repeat_interleave it over the heads, "
                    "in batch-major order",
                },
                f"a ({got_n}, {got_l}, {got_s}) mask against ({want_n}, {want_l}, {want_s})",
            )
    found = re.search(
        r"shape of the 2D attn_mask is torch\.Size\(\[(\d+), (\d+)\]\), but should be "
        r"\((\d+), (\d+)\)",
        text,
    )
    if not found:
        return None
    got_l, got_s, want_l, want_s = (int(g) for g in found.groups())
    if got_l == got_s and want_l == want_s and got_l != want_l:
        order: tuple[str, ...] = ("layout-confusion", "causal-alignment", "mask-shape")
        if want_l > _BATCH_LIKE:
            order = ("causal-alignment", "mask-shape", "layout-confusion")
        return Reading(
            order,
            {
                "layout-confusion": f"a ({got_l}, {got_l}) mask where the layer reads length "
                f"{want_l} from the query's first axis: is {want_l} your batch size? then the "
                "input is batch-first for a sequence-first layer (batch_first)",
                "mask-shape": f"a ({got_l}, {got_l}) mask where the layer wants ({want_l}, "
                f"{want_l})",
                "causal-alignment": f"a causal mask built for {got_l} positions where the query "
                f"has {want_l}: built once for another length and not cut to this one",
            },
            f"a ({got_l}, {got_l}) mask against ({want_l}, {want_l})",
        )
    return None


def _axis_reading(a: int, b: int, dim: int, rank: int) -> Reading:
    """Two sizes ``a`` and ``b`` meeting on axis ``dim`` of rank-``rank`` scores."""
    big, small = max(a, b), min(a, b)
    if rank != 4 or dim > 3:
        batch_axis = dim == 0 and rank >= 3
        where = f"axis {dim} of a rank-{rank} operation"
        default = f"{a} against {b} on {where}"
        if batch_axis:
            return Reading(
                ("batch-mismatch", "mask-shape", "kv-length-mismatch"),
                {
                    "batch-mismatch": f"{a} against {b} on the first axis of a rank-{rank} "
                    "operation: two batches (or batch × heads) of different sizes meet",
                    "mask-shape": f"a mask of {b} where the scores have {a} on the batch (or "
                    "batch × heads) axis",
                },
                default,
            )
        if rank == 3 and dim == 1:
            tags: tuple[str, ...] = ("kv-length-mismatch", "layout-confusion", "mask-shape")
        else:
            tags = ("mask-shape", "kv-length-mismatch", "projection-width")
        return Reading(
            tags,
            {
                "kv-length-mismatch": f"{a} against {b} on {where}: two sequences of "
                "different lengths meet (a layer that shortened the sequence, or keys and "
                "values of different lengths)",
                "layout-confusion": f"{a} against {b} on {where}: the axes are not in the "
                "order the operation expects (batch-first against sequence-first)",
                "mask-shape": f"a mask or bias with {b} where the scores have {a} on {where}",
                "projection-width": f"{a} against {b} features on {where}",
            },
            default,
        )
    more: dict[str, tuple[str, ...]] = {}
    letter, role = _SCORE_LETTERS[dim], _SCORE_AXES[dim]
    where = f"the {role} axis {letter} (dimension {dim} of scores (B, H, L, S))"
    default = f"{a} against {b} on {where}"
    say = {
        "mask-shape": f"a mask or bias with {b} where the scores have {a} on {where}",
        "mask-broadcast-axis": f"{a} against {b} on {where}: a mask whose axes are lined "
        "up with the wrong axes of the scores",
        "batch-mismatch": f"{a} against {b} on {where}: tensors or a mask from batches of "
        "different sizes",
    }
    if dim == 0:
        return Reading(("batch-mismatch", "mask-shape"), say, default)
    if dim == 1:
        tags = ("mask-shape", "mask-broadcast-axis", "batch-mismatch")
        if small > 1 and big % small == 0:
            tags = ("gqa-heads", "mask-shape", "mask-broadcast-axis", "batch-mismatch")
            say["gqa-heads"] = (
                f"{big} query heads against {small} key/value heads on {where}: each "
                f"key/value head must serve {big // small} query heads"
            )
            say["mask-broadcast-axis"] = (
                f"a mask with {small} on {where}, where the scores have {big} heads: a "
                f"per-example mask (batch {small}?) lined up with the heads"
            )
            group = big // small
            more["gqa-heads"] = (
                f"G = {big} / {small} = {group}: each of the {small} key/value heads must be "
                f"copied {group} times in place (kv0 ×{group}, then kv1 ×{group}, ...), so "
                f"query head h reads key/value head h // {group}",
                f"{big} query heads over {small} key/value heads: a grouping exists because "
                f"{small} divides {big}; a head count that does not divide has none",
            )
        elif small > 1:
            tags = ("kv-length-mismatch", "gqa-heads", "mask-shape", "batch-mismatch")
            say["kv-length-mismatch"] = (
                f"{a} against {b} on dimension 1: read as (B, L, E) hidden states, two "
                "sequence lengths meet (a layer that shortened or lengthened the sequence, "
                "then a residual add)"
            )
            say["gqa-heads"] = (
                f"{big} query heads against {small} key/value heads: {big} is not a multiple "
                f"of {small}, so no grouping can pair them"
            )
        return Reading(tags, say, default, more)
    if dim == 2:
        say["causal-alignment"] = (
            f"a mask built for {b} query positions against {a} on {where}: a causal mask "
            "for the whole sequence while the query holds fewer (decoding) positions"
        )
        say["kv-cache"] = (
            f"{a} against {b} query positions: the mask kept the prompt's length while "
            "decoding with a cache feeds new tokens only"
        )
        say["mask-broadcast-axis"] = (
            f"{a} against {b} on {where}: a (B, S) padding mask that lands on the query axis"
        )
        return Reading(
            ("mask-shape", "causal-alignment", "mask-broadcast-axis", "kv-cache"), say, default
        )
    say["kv-cache"] = (
        f"{big} against {small} keys on {where}: the key/value cache has grown past the "
        "mask (or the mask past the cache)"
    )
    say["kv-length-mismatch"] = (
        f"{a} against {b} on the last axis: keys and values (or a table and the keys) of "
        "different lengths"
    )
    say["causal-alignment"] = (
        f"a causal mask built for {small} positions against {big} keys on {where}"
    )
    say["rotary-embedding"] = (
        f"{a} against {b} on the last axis: a rotary cos/sin table sized for {big} features "
        f"applied to {small} (partial rotary dims)"
    )
    say["position-out-of-range"] = (
        f"{a} against {b} on the last axis: a position table or bias built for another length"
    )
    more["kv-cache"] = (
        f"{big} keys against {small}: during decoding the keys grow by one per step, and the "
        "mask (and the positions) must grow with them",
    )
    more["mask-shape"] = (
        f"{a} against {b} on the last axis of the scores: the mask's key axis must have "
        "exactly the keys' length (or 1)",
    )
    more["causal-alignment"] = (
        f"{big} keys against a causal mask of {small}: a mask built once for one length and "
        "not cut to (or rebuilt for) this one",
    )
    return Reading(
        ("mask-shape", "kv-cache", "kv-length-mismatch", "causal-alignment", "rotary-embedding"),
        say,
        default,
        more,
    )


def _padding_mask_reading(mask: tuple[int, ...], scores: tuple[int, ...]) -> Reading:
    shown = ", ".join(map(str, scores))
    return Reading(
        ("mask-shape", "mask-broadcast-axis"),
        {
            "mask-shape": f"a ({mask[0]}, {mask[1]}) padding mask meets ({shown}) scores: a "
            "(B, S) mask lines its batch axis up with the query axis of (B, H, L, S); it needs "
            "mask[:, None, None, :] (Keras: attention_mask (B, L, S))",
            "mask-broadcast-axis": f"({mask[0]}, {mask[1]}) against ({shown}): a padding mask "
            "broadcast along the wrong axes of the scores",
        },
        f"a ({mask[0]}, {mask[1]}) mask against ({shown}) scores",
        {
            "mask-shape": (
                f"a (B, S) = ({mask[0]}, {mask[1]}) mask needs the query and head axes: "
                f"({mask[0]}, 1, 1, {mask[1]}) broadcasts against ({shown})",
                f"({mask[0]}, {mask[1]}) meets the last two axes ({scores[-2]}, "
                f"{scores[-1]}) of the scores, so the batch lines up with the queries",
            ),
        },
    )


def _broadcast_pair(text: str) -> tuple[tuple[int, ...], tuple[int, ...]] | None:
    """The two shapes a broadcasting error quotes, bigger rank first."""
    if not re.search(
        r"broadcast|Incompatible shapes|must match|doesn't match|incompatible shapes|"
        r"are (?:not compatible|incompatible)",
        text,
        _FLAGS,
    ):
        return None
    found = [s for s in shapes(text) if len(s) >= 2]
    if len(found) < 2:
        return None
    first, second = found[0], found[1]
    if len(second) > len(first):
        first, second = second, first
    return first, second


def _product(shape: tuple[int, ...]) -> int:
    total = 1
    for n in shape:
        total *= n
    return total


def _mask_signature(
    scores: tuple[int, ...], mask: tuple[int, ...], core: tuple[int, ...]
) -> Reading | None:
    """Shapes that say which mask went wrong: square, decode step, heads folded in."""
    shown = ", ".join(map(str, scores))
    if len(core) == 2 and core[0] == core[1] and len(scores) >= 2:
        n, (lq, lk) = core[0], scores[-2:]
        if lq == lk and n != lq:
            causal = (
                f"a ({n}, {n}) square mask against ({shown}): a causal mask built for {n} "
                f"positions used on a sequence of {lq}, built once for one length and not cut "
                "to this one"
            )
            return Reading(
                ("causal-alignment", "mask-shape", "kv-cache"),
                {"causal-alignment": causal, "mask-shape": causal.replace("causal ", "")},
                causal,
            )
        if lq != lk and n in (lq, lk):
            cached = (
                f"a ({n}, {n}) square mask against {lq} queries and {lk} keys: a mask for "
                "the prompt alone used after the key/value cache grew"
            )
            return Reading(
                ("kv-cache", "causal-alignment", "mask-shape"), {"kv-cache": cached}, cached
            )
    decoding = len(scores) == len(mask) == 4 and scores[2] == 1 and mask[3] not in (1, scores[3])
    if decoding:
        decode = (
            f"one query position against {scores[3]} keys, and a mask over {mask[3]}: "
            "while decoding, the mask must cover the whole key/value cache, not only the "
            "new tokens"
        )
        return Reading(
            ("kv-cache", "mask-shape", "causal-alignment"),
            {"kv-cache": decode, "mask-shape": decode},
            decode,
        )
    if len(scores) == len(mask) >= 3 and scores[-2:] == mask[-2:] and mask[0] != scores[0]:
        folded = mask[0] > scores[0] and len(scores) == 4 and mask[0] == scores[0] * scores[1]
        per_example = len(scores) == 3 and 1 < mask[0] < scores[0] and scores[0] % mask[0] == 0
        if folded or per_example:
            big, small = max(mask[0], scores[0]), min(mask[0], scores[0])
            heads = big // small
            heads_say = (
                f"{small} against {big} = {small} × {heads} on the first axis: a mask with one "
                f"entry per example where the layer counts (batch × heads) = {big}; repeat it "
                f"for each of the {heads} heads (repeat_interleave, batch-major)"
            )
            return Reading(
                ("mask-shape", "mask-broadcast-axis", "batch-mismatch"),
                {"mask-shape": heads_say},
                heads_say,
            )
    return None


def shape_reading(text: str) -> Reading | None:
    """What the sizes that disagree in ``text`` mean, read as attention's axes.

    PyTorch's ``size of tensor a (X) must match ... at non-singleton dimension d`` is read on
    the scores ``(B, H, L, S)``; any broadcast error quoting two shapes (NumPy, JAX,
    TensorFlow, Keras) is aligned from the right, and a ``(B, S)`` mask against
    ``(B, H, L, S)`` scores (also as Keras's ``[1, 1, B, S]``) is named as such.
    """
    quoted = re.search(
        r"Target sizes: \[([\d, ]+)\]\.\s+Tensor sizes: \[([\d, ]+)\]|"
        r"should be of (?:size|shape) \(([\d, ]+)\),? but is (?:torch\.Size\(\[)?([\d, ]+)",
        text,
    )
    if quoted:  # both shapes quoted in full: read them as a pair
        groups = [g for g in quoted.groups() if g is not None]
        return _pair_reading(_ints(groups[0]), _ints(groups[1]), text)
    torch_sizes = re.search(
        r"size of tensor a \((\d+)\) must match the size of tensor b \((\d+)\)"
        r"(?: at non-singleton dimension (\d+))?",
        text,
    ) or re.search(
        r"expanded size of the tensor \((\d+)\) must match the existing size \((\d+)\) at "
        r"non-singleton dimension (\d+)",
        text,
    )
    if torch_sizes:
        a, b = int(torch_sizes.group(1)), int(torch_sizes.group(2))
        if torch_sizes.group(3) is None:
            return _axis_reading(a, b, 1, 4) if max(a, b) % max(min(a, b), 1) == 0 else None
        dim = int(torch_sizes.group(3))
        rank = max((len(s) for s in shapes(text) if len(s) >= 3), default=4)
        return _axis_reading(a, b, dim, rank if dim < rank else 4)
    condition = re.search(r"condition \[([\d,]*)\], then \[([\d,]*)\]", text)
    pair: tuple[tuple[int, ...], tuple[int, ...]] | None
    remapped = _remapped(text)
    if len(remapped) >= 2 and len(remapped[0]) == len(remapped[1]):
        first, second = remapped[0], remapped[1]
        bad = [i for i in range(len(first)) if 1 not in (first[i], second[i])]
        bad = [i for i in bad if first[i] != second[i]]
        if len(bad) == 1 and bad[0] == 0:
            return _axis_reading(first[0], second[0], 0, 3)
        if len(bad) == 1:
            return Reading(
                ("position-out-of-range", "kv-length-mismatch", "batch-mismatch"),
                {
                    "position-out-of-range": f"{first[bad[0]]} against {second[bad[0]]} on "
                    "one einsum label: a position table or relative bias built for another "
                    "length",
                },
                f"{first[bad[0]]} against {second[bad[0]]} on one einsum label",
            )
    if condition:
        cond, then = (tuple(int(n) for n in group.split(",") if n) for group in condition.groups())
        pair = (then, cond) if len(then) >= len(cond) else (cond, then)
    else:
        pair = _broadcast_pair(text)
    if pair is None:
        return None
    return _pair_reading(*pair, text)


def _pair_reading(first: tuple[int, ...], second: tuple[int, ...], text: str) -> Reading | None:
    """Two shapes that failed to broadcast, the scores' and (usually) a mask's."""
    if len(second) > len(first):
        first, second = second, first
    if len(first) == len(second) and _product(second) > _product(first):
        first, second = second, first  # the scores first, the mask (fewer elements) second
    rank = len(first)
    core = second
    while len(core) > 2 and core[0] == 1:
        core = core[1:]
    signature = _mask_signature(first, second, core)
    if signature is not None:
        return signature
    if rank == 4 and len(core) == 2 and core[0] == first[0] and core != first[2:]:
        return _padding_mask_reading(core, first)
    padded = (1,) * (rank - len(second)) + second
    in_place = re.search(r"doesn't match the broadcast shape", text)  # out= cannot grow
    bad = [
        i
        for i in range(rank)
        if first[i] != padded[i] and (in_place or 1 not in (first[i], padded[i]))
    ]
    if len(bad) == 1:
        return _axis_reading(first[bad[0]], padded[bad[0]], bad[0], rank)
    if len(bad) > 1:
        shown = " and ".join(f"({', '.join(map(str, s))})" for s in (first, second))
        return Reading(
            ("mask-shape", "layout-confusion", "mask-broadcast-axis"),
            {
                "layout-confusion": f"{shown} disagree on {len(bad)} axes: the axes are "
                "in another order than the operation expects",
            },
            f"{shown} disagree on {len(bad)} axes: a mask or bias built for other sizes",
        )
    return None


# --- wordings and symptoms ------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    """A family of framework messages (or a symptom) and what it usually means.

    ``tags`` are the likeliest first; in ``why``, ``{0}``, ``{1}``, ... are the numbers
    the pattern captured. A ``fallback`` rule (a bare "nan") counts only when no other
    rule matched; ``weight`` scales its evidence (a concept in words is weaker than an
    exact framework wording).
    """

    pattern: str
    tags: tuple[str, ...]
    why: str
    fallback: bool = False
    weight: float = 1.0
    read: bool = False
    """A generic broadcasting wording: when the sizes were read (:func:`shape_reading`),
    the reading replaces it."""
    domain: bool = False
    """A Python wording of any program: it counts only in a text about attention."""


_N = r"(-?\d+)"
_BACKEND = (
    r"(?:flash[_ -]?attn|flash[_ -]?attention\w*|flashinfer|xformers|cudnn|splash|pallas|"
    r"mem(?:ory)?[_ -]efficient|fused (?:attention|kernel|sdpa)|sdpa_kernel|triton|"
    r"\bkernel\b|\bsm_?[89]\d\b|\btpu\b)"
)
_REFUSES = (
    r"(?:not (?:yet )?support|only supports?|n't support|does not support|unsupported|"
    r"not implemented|NotImplementedError|must be (?:a )?multiple|should be a multiple|"
    r"divisible by|Invalid configuration|No available kernel|No operator found|"
    r"requires? .{0,30}(?:head_?dim|"
    r"dtype|fp16|bf16|sm\d|multiple))"
)
RULES: tuple[Rule, ...] = (
    Rule(
        rf"size of tensor a \({_N}\) must match the size of tensor b \({_N}\) at "
        r"non-singleton dimension 0\b",
        ("batch-mismatch", "mask-shape"),
        "sizes {0} and {1} meet at dimension 0, the batch axis: query, key, value or mask "
        "come from batches of different sizes",
    ),
    Rule(
        rf"size of tensor a \({_N}\) must match the size of tensor b \({_N}\) at "
        rf"non-singleton dimension (?!0\b){_N}",
        ("mask-shape", "mask-broadcast-axis", "batch-mismatch", "kv-length-mismatch"),
        "an elementwise operation met sizes {0} and {1} at dimension {2}: in attention code "
        "most often a mask or bias that does not line up with the scores (B, H, L, S)",
        read=True,
    ),
    Rule(
        r"output with shape \[[\d, ]+\] doesn't match the broadcast shape",
        ("mask-shape", "batch-mismatch", "mask-broadcast-axis"),
        "an in-place operation (+=, masked_fill_) cannot grow its output: the mask or bias "
        "has more axes (or a bigger batch) than the scores it is added to",
        read=True,
    ),
    Rule(
        r"operands could not be broadcast together with (?:remapped )?shapes?",
        ("mask-shape", "mask-broadcast-axis", "causal-alignment", "kv-length-mismatch"),
        "NumPy could not broadcast two arrays: a mask or bias that does not line up with "
        "the scores (B, H, L, S), a key-padding mask needs [:, None, None, :]",
        read=True,
    ),
    Rule(
        r"Incompatible shapes: \[[\d,]*\] vs\. \[[\d,]*\] \[Op:LogicalAnd\]",
        ("mask-shape", "mask-broadcast-axis"),
        "Keras combines attention_mask with its own masks by a logical and: attention_mask "
        "must be (B, L, S), not a (B, S) padding mask",
    ),
    Rule(
        r"Incompatible shapes(?: for broadcasting)?:? \[?\(?[\d, ]+\]?\)? vs\.? |"
        r"incompatible shapes for broadcasting|Incompatible shapes for broadcasting: shapes=|"
        r"must be broadcastable|required broadcastable shapes|"
        r"Dimensions? \d+ in both shapes must be equal|(?:Bias|mask) must have (?:the )?same|"
        r"boolean index did not match indexed array|shape of (?:the )?(?:attn_|attention_)?"
        r"mask|mask shape|\bmask\w*\.(?:reshape|view|expand)\(",
        ("mask-shape", "batch-mismatch", "mask-broadcast-axis"),
        "two shapes that do not broadcast, in attention code usually a mask against the "
        "scores (B, H, L, S): a padding mask (B, S) needs [:, None, None, :]",
        read=True,
    ),
    Rule(
        r"Incompatible shapes for attention inputs|query\.shape.{0,60}key\.shape|"
        r"batch (?:size|dims?).{0,30}(?:mismatch|must match|differ)|"
        r"must have compatible batch dimensions",
        ("batch-mismatch", "gqa-heads", "kv-length-mismatch"),
        "query and key/value disagree on a leading (batch or head) axis",
    ),
    Rule(
        rf"einsum\(\): (?:operands do not broadcast|subscript \w has size {_N} for operand "
        rf"\d+ which does not broadcast with previously seen size {_N})",
        ("batch-mismatch", "position-out-of-range", "kv-length-mismatch", "batched-matmul"),
        "an einsum operand disagrees with the others on a shared subscript: a batch (or "
        "context) not repeated for the other operand, a table built for another length, or "
        "keys and values of different lengths",
        read=True,
    ),
    Rule(
        rf"mismatch in its core dimension 0.*\(size {_N} is different from {_N}\)",
        ("qk-dim-mismatch", "missing-transpose", "projection-width", "kv-length-mismatch"),
        "a matmul contracts {0} against {1}: in Q·Kᵀ the key has {0} features and the query "
        "{1}, or K was not transposed",
    ),
    Rule(
        rf"Expected size for first two dimensions of batch2 tensor to be: \[{_N}, {_N}\] "
        rf"but got: \[{_N}, {_N}\]",
        ("qk-dim-mismatch", "missing-transpose", "kv-length-mismatch"),
        "bmm wanted its second operand to start with [{0}, {1}] and got [{2}, {3}]: {1} "
        "against {3} on the contracted axis",
    ),
    Rule(
        rf"(?:mat1 and mat2 shapes cannot be multiplied|size mismatch, m1:) "
        rf"\[?\(?{_N} ?x ?{_N}\]?,? (?:and|m2:) \[?{_N} ?x ?{_N}\)?",
        ("projection-width", "batched-matmul", "qk-dim-mismatch"),
        "a linear layer expects {2} input features but gets {1}: the input or context width "
        "does not match the projection",
    ),
    Rule(
        rf"shapes \(([\d, ]+)\) and \(([\d, ]+)\) not aligned: {_N} \(dim \d+\) != {_N}",
        ("qk-dim-mismatch", "projection-width", "missing-transpose"),
        "np.dot contracts {2} against {3}",
    ),
    Rule(
        rf"dot_general requires contracting dimensions to have the same shape, got "
        rf"\[?\(?{_N},?\)?\]? and \[?\(?{_N},?\)?\]?",
        ("qk-dim-mismatch", "projection-width", "missing-transpose", "kv-length-mismatch"),
        "JAX contracts {0} against {1}",
    ),
    Rule(
        r"dot_general requires (?:lhs|rhs)? ?batch dimensions",
        ("batch-mismatch", "gqa-heads", "batched-matmul"),
        "JAX's dot_general needs equal batch (and head) sizes on both operands",
    ),
    Rule(
        rf"Matrix size-incompatible: In\[0\]: \[(?:\d+,)*{_N},{_N}\], In\[1\]: "
        rf"\[(?:\d+,)*{_N},{_N}\]",
        ("qk-dim-mismatch", "projection-width", "missing-transpose", "batched-matmul"),
        "TensorFlow multiplies [..., {0}, {1}] by [..., {2}, {3}]: {1} and {2} must be equal",
    ),
    Rule(
        rf"Dimensions must be equal, but are {_N} and {_N}",
        ("qk-dim-mismatch", "projection-width", "kv-length-mismatch", "mask-shape"),
        "TensorFlow meets {0} against {1} where two operands must agree",
    ),
    Rule(
        rf"Expected dimension {_N} at axis {_N} of the input shaped \[[\d,]+\] but got "
        rf"dimension {_N}",
        ("qk-dim-mismatch", "kv-length-mismatch", "batched-matmul"),
        "tf.einsum expected {0} at axis {1} and got {2}: the operands disagree on a shared "
        "subscript",
    ),
    Rule(
        r"self must be a matrix|batch1 must be a 3D tensor|Expected 3-dimensional tensor|"
        r"einstein sum subscripts string contains too many subscripts|"
        r"operand has more dimensions than subscripts|number of subscripts in the equation",
        ("batched-matmul",),
        "a 2-D operation (mm, a 2-D einsum) got batched input; use matmul/bmm or '...'",
    ),
    Rule(
        r"shape '\[[-\d, ]+\]' is invalid for input of size|"
        r"cannot reshape array of (?:size|shape)|Input to reshape is a tensor with",
        ("head-split", "head-axis-order", "layout-confusion"),
        "a reshape that cannot hold the tensor: splitting into heads needs a width that is "
        "a multiple of num_heads, and sizes that are this tensor's own",
        read=True,
    ),
    Rule(
        r"divisible by num_heads|must be divisible by|% ?self\.num_heads|"
        r"integer modulo by zero",
        ("head-split", "gqa-heads"),
        "splitting into heads does not divide the width: embed_dim must be a multiple of num_heads",
    ),
    Rule(
        r"view size is not compatible with input tensor's size and stride",
        ("head-axis-order", "head-split"),
        "view() after a transpose: merge heads with .transpose(1, 2).reshape(...)",
    ),
    Rule(
        r"index out of range in self|indices\[[\d,]+\] = -?\d+ is not in \[0, \d+\)|"
        r"srcIndex < srcSelectDimSize|IndexError: index -?\d+ is out of bounds|"
        r"\bindex out of range at\b|embedding_lookup|\bGather(?:V2)?\b",
        ("token-out-of-range", "position-out-of-range", "ragged-lengths"),
        "an embedding lookup with an index past the table: a token id >= vocab size (or a "
        "-100/-1 pad id), or a position >= the position table's length",
    ),
    Rule(
        rf"index {_N} is out of bounds for (?:axis|dimension) {_N} with size {_N}",
        ("position-out-of-range", "token-out-of-range", "ragged-lengths", "kv-cache"),
        "index {0} into an axis of size {2}",
    ),
    Rule(
        r"(?:list|tuple) index out of range",
        ("head-index",),
        "indexing a list past its end: fewer head chunks than num_heads",
    ),
    Rule(
        rf"axis {_N} is out of bounds for array of dimension {_N}|"
        r"Dimension out of range|`dim` must be in the range|Invalid reduction dimension|"
        r"axes don't match array|isn't a permutation",
        ("axis-out-of-range", "layout-confusion"),
        "an axis the array does not have: a missing batch or head axis",
    ),
    Rule(
        r"Expected attn_mask dtype to be bool or float|attn_mask dtype|"
        r"only bool and floating types of (?:key_padding_mask|attn_mask)|"
        r"only supports boolean masks|expected condition to be a boolean|"
        r"\"bitwise_\w+\" not implemented for 'Float'|expected to be a bool tensor|"
        r"mask dtype|\bdtype\b.{0,40}\bmask\b|\bmask\b.{0,40}\bdtype\b",
        ("mask-dtype",),
        "a mask of the wrong dtype: bool (True = attend) or a float additive mask of the "
        "query's dtype",
    ),
    Rule(
        r"value cannot be converted to type (?:at|c10)::Half without overflow|"
        r"(?:float16|\bhalf\b|fp16|\bamp\b|mixed.precision).*\b(?:nans?|inf)\b|"
        r"\b(?:nans?|inf)\b.*(?:float16|\bhalf\b|fp16|\bamp\b|mixed.precision)|"
        r"(?:1e[49]|1e1\d|1e20|65504|finfo).{0,80}(?:float16|fp16|\bhalf\b)|"
        r"(?:float16|fp16|\bhalf\b).{0,80}(?:1e[49]|1e1\d|65504|finfo)",
        ("fp16-overflow", "inf-arithmetic"),
        "a constant like -1e9 or a large logit overflows float16 (its largest value is 65504)",
    ),
    Rule(
        r"\boverflow\w*|\bto -?inf\b|上溢|溢出",
        ("softmax-overflow", "fp16-overflow", "inf-arithmetic"),
        "a value past the dtype's range: exp passes float32's range at 88.7 unless the row "
        "maximum is subtracted; float16 ends at 65504",
    ),
    Rule(
        r"\bnans?\b.*(?:mask|padding|padded|\bpad\b)|(?:mask|padding|padded).*\bnans?\b",
        ("fully-masked-row", "nan-in-padding", "inf-arithmetic"),
        "NaN with masking: a row where every key is masked has softmax 0/0, and NaN in a "
        "masked position still flows through the matmuls",
    ),
    Rule(
        r"\bnans?\b|(?<![-\w'\"])inf\b",
        ("softmax-overflow", "fully-masked-row", "fp16-overflow"),
        "NaN or inf in attention: exp overflow without subtracting the row max, a fully "
        "masked row, or float16 overflow",
        fallback=True,
    ),
    Rule(
        r"zero-size array to reduction operation|to have non-zero size",
        ("ragged-lengths", "fully-masked-row"),
        "a reduction over an empty row: a zero-length sequence",
    ),
    Rule(
        r"does not have an identity, so to use a where mask",
        ("fully-masked-row", "ragged-lengths"),
        "a masked reduction needs a value for rows where nothing is kept",
    ),
    Rule(
        r"softmax.{0,40}\b(?:dims?|axis)\b|\b(?:dims?|axis)\b.{0,40}softmax",
        ("softmax-axis", "axis-out-of-range"),
        "the softmax axis: attention weights are normalised over the keys, the last axis",
    ),
    Rule(
        r"\bsqrt\b|square root|scal(?:e|ing) factor|\btemperature\b|rsqrt|1 ?/ ?√|"
        r"\bscaled?\b.{0,30}\b(?:d_?k|head_?dim)|divid\w* .{0,40}\b(?:d_?k|head_?dim|dimension)",
        ("missing-scale",),
        "the 1/sqrt(d) scale, with d the head size: without it the softmax saturates",
    ),
    Rule(
        r"\b(?:permute|transpose)\b.{0,60}\b(?:reshape|view)\b|"
        r"\b(?:view|reshape)\b.{0,80}\b(?:heads?|num_heads?|n_heads?|n_head)\b",
        ("head-axis-order", "head-split"),
        "splitting or merging heads: reshape/view reads memory order, so heads must be "
        "transposed next to the features first",
    ),
    Rule(
        r"\A(?=.*\bmask)(?=.*\b(?:True|False)\b)(?=.*\b(?:pad\w*|ignor\w*|attend\w*|keep)\b)|"
        r"polarity|invert\w* (?:the )?mask",
        ("mask-polarity",),
        "which value of a boolean mask means 'attend': True = attend in SDPA, JAX and Keras, "
        "True = ignore in nn.MultiheadAttention's masks",
    ),
    Rule(
        r"(?:ignor\w*|without|missing|no|forgot\w*)\s+(?:the\s+)?(?:padding\s+|causal\s+)?mask",
        ("mask-missing",),
        "padding or future positions that are never masked",
    ),
    Rule(
        r"Sizes of tensors must match except in dimension|all the input array dimensions "
        r"except for the concatenation axis must match|ConcatOp : Dimension|"
        r"Cannot concatenate arrays",
        ("kv-cache", "batch-mismatch"),
        "concatenating arrays that differ on another axis: a KV cache concatenated along "
        "the wrong axis, or head outputs of different batch sizes",
    ),
    Rule(
        rf"Expected key_padded_mask\.shape\[0\] to be {_N}, but got {_N}",
        ("mask-shape", "layout-confusion", "batch-mismatch"),
        "key_padding_mask must be (N, S) with N = {0}, the batch the layer read from the "
        "query; a mask with {1} rows is transposed (S, N), or the input is batch-first for a "
        "sequence-first layer",
    ),
    Rule(
        rf"Expected key_padded_mask\.shape\[1\] to be {_N}, but got {_N}",
        ("mask-shape", "kv-cache", "kv-length-mismatch"),
        "key_padding_mask covers {1} keys where there are {0}: a mask built for another "
        "length (keys grown by a cache, or padded to another length)",
    ),
    Rule(
        r"expected `attn_mask` to be `None`, 2-D or 3-D|attn_mask's dimension \d+ is not "
        r"supported|Expected `attn_mask` shape to be|expected `key_padding_mask` to be `None`",
        ("mask-shape", "mask-broadcast-axis"),
        "nn.MultiheadAttention takes attn_mask (L, S) or (N·num_heads, L, S) and "
        "key_padding_mask (N, S), never a 4-D (N, H, L, S) mask",
    ),
    Rule(
        r"query should be unbatched 2D or batched 3D tensor|expected `key` and `value` to be "
        r"[23]-D|(?:query|key|value) ndim should be \d+, but got \d+",
        ("layout-confusion", "kernel-layout", "batched-matmul"),
        "the inputs have another rank than the layer takes: MultiheadAttention wants "
        "(L, N, E) or (N, L, E), jax.nn.dot_product_attention (B, T, N, H) with the heads "
        "split",
    ),
    Rule(
        r"(?:mask|bias) ndim should be \d+, but got \d+",
        ("mask-shape", "mask-broadcast-axis"),
        "jax.nn.dot_product_attention wants a 4-D mask or bias (B, N, T, S): a (B, S) "
        "padding mask needs mask[:, None, None, :]",
    ),
    Rule(
        r"mask dtype should be bool|bias dtype should be",
        ("mask-dtype",),
        "jax.nn.dot_product_attention wants a boolean mask (True = attend)",
    ),
    Rule(
        r"(?:query|key|value) shape should be \[[-\d, ]+\]: but got",
        ("batch-mismatch", "kv-length-mismatch", "qk-dim-mismatch", "gqa-heads"),
        "jax.nn.dot_product_attention needs query, key and value to agree on batch and head "
        "size, and key and value on length and heads",
    ),
    Rule(
        r"(?:too many|not enough) values to unpack \(expected (\d+)(?:, got (\d+))?\)",
        ("layout-confusion", "axis-out-of-range", "batched-matmul"),
        "unpacking a shape into {0} names (b, h, l, d = q.shape) on a tensor of another "
        "rank: a missing or extra batch or head axis",
        domain=True,
    ),
    Rule(
        r"Shapes \([^)]*\) and \([^)]*\) are (?:not compatible|incompatible)",
        ("mask-shape", "kv-length-mismatch", "batch-mismatch"),
        "TensorFlow/Keras could not merge two shapes: a mask, a residual or a key/value "
        "input of other sizes",
        read=True,
    ),
    Rule(
        r"(?:query|key|value|q|k|v)\w*,? (?:and|,) (?:key|value|k|v)\w*(?:,? and "
        r"(?:value|v))? (?:must|should) have the same dtype|Expected query, key,? and value "
        r"to have the same dtype",
        ("reduced-precision", "backend-constraint", "mask-dtype"),
        "query, key and value in different dtypes: one of them left out of the autocast or "
        "the .half()/.to(bfloat16) conversion",
    ),
    Rule(
        r"All dimensions of .value. and .key., except the last one, must be equal",
        ("kv-length-mismatch", "batch-mismatch"),
        "Keras MultiHeadAttention wants key and value of the same batch and length",
    ),
    Rule(
        r"(?:query|q|attention)_?heads?.{0,60}(?:divisible|multiple).{0,40}"
        r"(?:key_value|kv|key/value)_?heads|(?:key_value|kv|key/value)_?heads.{0,60}"
        r"(?:divide|divisible|multiple)",
        ("gqa-heads", "head-split"),
        "grouped-query attention: the query head count must be a multiple of the key/value "
        "head count",
        weight=1.1,
    ),
    Rule(
        r"(?:q, k|q, k, v) num_heads must match",
        ("gqa-heads", "head-split"),
        "Flax's dot_product_attention wants as many key/value heads as query heads: repeat "
        "the key/value heads (grouped-query attention) or use jax.nn.dot_product_attention",
    ),
    Rule(
        r"(?:q, k|q, k, v) batch dims must match",
        ("batch-mismatch", "layout-confusion"),
        "Flax's attention wants the same batch axes on query, key and value",
    ),
    Rule(
        r"q, k depths must match",
        ("qk-dim-mismatch", "projection-width"),
        "Flax's attention contracts query and key features: their head sizes differ",
    ),
    Rule(
        r"k, v lengths must match",
        ("kv-length-mismatch",),
        "Flax's attention wants keys and values of the same length",
    ),
    Rule(
        r"(?:q, k|q, k, v) must have same rank",
        ("layout-confusion", "batched-matmul", "kernel-layout"),
        "Flax's attention wants query, key and value of the same rank, "
        "[batch..., length, heads, head_dim]",
    ),
    Rule(
        r"Autoregressive cache shape error|cache (?:not|is not) initiali[sz]ed|init_cache",
        ("kv-cache", "causal-alignment"),
        "Flax's decode cache takes one new position per step, with the cache built "
        "(init_cache) for the query's shape: a prompt of several tokens or a cache of "
        "another shape fails",
    ),
    Rule(
        r"was expecting embedding dimension of|embed_dim_to_check|"
        r"len1 == embed_dim|expected axis -?\d+ of input shape to have value",
        ("projection-width", "layout-confusion"),
        "MultiheadAttention got another embedding size than it was built with (kdim/vdim), "
        "or a batch-first input read as sequence-first",
    ),
    Rule(
        r"shape of the (?:2D|3D) attn_mask is|key_padding_mask|key_padded_mask",
        ("mask-shape", "layout-confusion", "mask-polarity"),
        "a MultiheadAttention mask of the wrong shape: attn_mask (L, S) or (N*H, L, S), "
        "key_padding_mask (N, S); a batch-first input read as sequence-first gives the "
        "same message",
        read=True,
    ),
    Rule(
        r"kv.?cach|past_key_values|\b(?:key|value|attention|decoder|layer|autoregressive|"
        r"static|sliding|rolling|sink)s?[ _-]?cach|key.value cach|cache_position|init_cache|"
        r"\bdecode=True|\bdecoded=True|\bgenerat(?:e|ion|ing)\b.{0,40}\bcach",
        ("kv-cache", "causal-alignment", "positions"),
        "decoding with a key/value cache: the cache, its positions and its mask must grow "
        "together, and causal masking with L != S needs bottom-right alignment",
        weight=0.85,
    ),
    Rule(
        r"is_causal|causal.mask|\btril\b|\btriu\b|bottom.right|top.left|autoregressive|"
        r"\bdecoding\b|look.?ahead.mask|subsequent.mask",
        ("causal-alignment", "mask-missing", "kv-cache", "fully-masked-row"),
        "the causal mask: its diagonal, its alignment when L != S (bottom-right for decoding), "
        "and whether it is applied at all",
        weight=0.85,
    ),
    Rule(
        r"mat1 and mat2 shapes|size mismatch, m1:|"
        r"last dimension of `?query_shape`? and `?value_shape`? must be equal|"
        r"\b[kv]dim\b",
        ("projection-width", "qk-dim-mismatch"),
        "a projection or attention layer gets another feature width than it was built for",
    ),
    Rule(
        r"1D tensors expected, but got \dD and \dD|Expected argument self to have 1 "
        r"dimension|Shape must be rank 2 but is rank 3|must be a (?:matrix|vector)|"
        r"Incompatible types for matmul",
        ("batched-matmul", "missing-transpose"),
        "a 1-D or 2-D operation (dot, mm, MatMul) got batched input: use matmul/bmm or einsum "
        "with a batch axis",
    ),
    Rule(
        rf"Size of label '(\w)' for operand \d+ \({_N}\) does not match previous terms "
        rf"\({_N}\)",
        ("qk-dim-mismatch", "kv-length-mismatch", "gqa-heads", "projection-width"),
        "the einsum label '{0}' has size {1} in one operand and {2} in another",
    ),
    Rule(
        r"positional (?:encoding|embedding).{0,120}(?:batch|shape\[0\]|size\(0\))|"
        r"(?:batch|shape\[0\]|size\(0\)).{0,120}positional (?:encoding|embedding)",
        ("layout-confusion", "positions", "position-out-of-range"),
        "positions taken from the wrong axis: with batch-first input, x.shape[0] is the batch "
        "size, not the sequence length",
    ),
    Rule(
        r"(?:need|forg[eo]t|missing|without|missed)\w* (?:to )?(?:the |a )?transpos|"
        r"should(?: be|n't it be)? transposed",
        ("missing-transpose", "head-axis-order"),
        "a transpose is missing: k.transpose(-2, -1) before Q·Kᵀ, or heads moved next to "
        "the features before merging",
    ),
    Rule(
        r"can't divide axis of length \d+ in chunks of \d+|Shape mismatch, can't divide|"
        r"split does not result in an equal division|evenly divide",
        ("head-split", "head-index"),
        "splitting the features into heads: the width is not a multiple of the head count",
    ),
    Rule(
        r"number of elements in 'key' must be equal to .{0,60}'value'|"
        r"key and value (?:must have|should have) the same (?:sequence )?length|"
        r"key shape .{0,40}does not match value shape",
        ("kv-length-mismatch",),
        "keys and values must have the same number of positions",
    ),
    Rule(
        r"index out of range: Tried to access index \d+ out of table with \d+ rows",
        ("position-out-of-range", "token-out-of-range"),
        "an embedding lookup past the table: a position or token id >= the number of rows",
    ),
    Rule(
        r"query heads must be a multiple of key/value heads|num_key_value_heads|"
        r"\bn_kv_heads?\b|\bkv_heads\b|\bGQA\b|grouped.query|multi.query|repeat_kv|"
        r"enable_gqa",
        ("gqa-heads",),
        "grouped-query attention: query and key/value head counts differ",
    ),
    Rule(
        rf"{_BACKEND}.{{0,200}}{_REFUSES}|{_REFUSES}.{{0,120}}{_BACKEND}",
        ("backend-constraint",),
        "a fused attention kernel refuses this call (head size, dtype, GPU, mask or "
        "dropout): the math path runs it",
    ),
    Rule(
        r"\b(?:b|bs|batch)\s*[,x×]\s*(?:s|seq\w*|n|t|l)\s*[,x×]\s*(?:h|nheads?|num_heads|"
        r"heads?)\b|\b(?:bshd|bhsd|bnsh|bsnh|btnh|thd)\b|\blayout\b|"
        r"\(bs, ?seq, ?nhead|expects? \(?(?:batch|b), ?(?:seqlen|seq)",
        ("kernel-layout", "layout-confusion", "gqa-heads"),
        "a kernel given another axis layout than it expects: flash-attn wants (B, S, H, D), "
        "SDPA (B, H, S, D)",
    ),
    Rule(
        rf"{_BACKEND}|attn_implementation|\beager\b|\bsdpa\b|scaled_dot_product_attention",
        ("backend-constraint", "kernel-layout", "window-size"),
        "a fused or other attention backend behaves differently from the eager (math) path",
        weight=0.55,
    ),
    Rule(
        r"cu_seqlens|varlen|\bpack(?:ed|ing)\b|document boundar|cross.document",
        ("packed-sequences",),
        "packed sequences: documents in one row need their own block-diagonal mask and positions",
    ),
    Rule(
        r"\brope\b|rotary|rotate_half|inv_freq|\bcos\b.{0,20}\bsin\b|mrope",
        ("rotary-embedding",),
        "rotary position embeddings: the table, its convention (half-split or interleaved) "
        "and its precision",
    ),
    Rule(
        r"sliding.?window|local attention|window_size|\bwindow\b",
        ("window-size",),
        "a sliding window read in another convention (left/right offsets, a key count "
        "including self, a radius)",
    ),
    Rule(
        r"batch.?first|seq(?:uence)?.?first|\(L, N, E\)|\(seq_len, batch",
        ("layout-confusion",),
        "batch-first input read as sequence-first (or the reverse)",
    ),
    Rule(
        r"\bposition_?ids?\b|\bpositions? (?:ids?|embeddings?)\b|max_position_embeddings|"
        r"\bmax_?len(?:gth)?\b|\blonger than\b",
        ("position-out-of-range", "positions"),
        "positions: a sequence longer than the position table, or position ids that do not "
        "start where the tokens do",
    ),
    Rule(
        r"out of memory|\bOOM\b|Unable to allocate|RESOURCE_EXHAUSTED|cannot allocate",
        ("memory-blowup",),
        "memory: an (L, S) mask or bias materialised at the maximum length",
    ),
    Rule(
        r"must have the same number of dimensions|rank promotion|different ranks?\b|"
        r"Shapes? must be equal rank|must have (?:the )?same rank",
        ("mask-shape", "mask-broadcast-axis", "batched-matmul"),
        "arrays of different ranks where they must match (JAX with strict rank promotion, "
        "TensorFlow ops): a 2-D padding mask against 4-D scores needs mask[:, None, None, :]",
    ),
    Rule(
        r"mask",
        ("mask-shape", "mask-missing", "mask-polarity", "mask-broadcast-axis"),
        "a mask: its shape against the scores (B, H, L, S), whether it is applied at all, "
        "and which value means 'attend'",
        fallback=True,
        weight=0.6,
    ),
    Rule(
        r"shape|dimensions? mismatch|size mismatch|\bsizes? (?:of|do not|don't)|broadcast|"
        r"dimensions? (?:do not|don't) match",
        ("mask-shape", "layout-confusion", "batch-mismatch", "head-split"),
        "a shape problem: sizes that do not line up with (B, H, L, S) and (B, L, E)",
        fallback=True,
        weight=0.6,
    ),
    Rule(
        r"\b(?:bf16|bfloat16)\b",
        ("reduced-precision", "fp16-overflow"),
        "bfloat16 keeps 8 bits of mantissa: positions above 256 and rotary angles round",
        weight=0.8,
    ),
)
"""Framework wordings and the tags they mean, likeliest first."""

CONCEPTS: tuple[Rule, ...] = (
    Rule(
        r"is_causal(?:=True)?[^.]{0,60}(?:attn_mask|padding mask|key_padding_mask|an? mask)|"
        r"(?:attn_mask|padding mask|key_padding_mask)[^.]{0,60}is_causal",
        ("backend-constraint", "mask-missing", "causal-alignment"),
        "is_causal together with a padding mask: SDPA takes one or the other, and some paths "
        "keep only the causal mask; combine both into one attn_mask",
    ),
    Rule(
        r"batch.?size (?:of )?\d+ (?:and|vs\.?|versus|or) (?:batch.?size )?(?:of )?\d+|"
        r"(?:different|inconsistent|other) (?:results?|outputs?|logits|predictions?)[^.]{0,60}"
        r"batch.?size",
        ("mask-missing", "positions", "mask-broadcast-axis", "softmax-axis"),
        "results that depend on the batch size: padding attended (no mask, or a mask on the "
        "wrong axis), positions shifted by padding, or a softmax across the batch",
    ),
    Rule(
        r"block.?sizes?\b|block_[qkmn]\b|tile.?size|multiples? of (?:the )?block|"
        r"(?:only|not) close to (?:the )?reference|(?:differ\w*|deviat\w*|mismatch\w*) "
        r"(?:from|to|with) (?:the )?(?:reference|eager|math|naive|native)",
        ("backend-constraint", "kernel-layout"),
        "a kernel's own constraints (block sizes, sequence lengths that are multiples of a "
        "tile, a layout): its output departs from the reference math outside them",
        weight=0.9,
    ),
    Rule(
        r"padding_side|right.padding was detected|right-padding|padded on the right",
        ("positions", "backend-constraint", "mask-missing"),
        "the side of the padding: decoder-only generation wants left padding with position "
        "ids counted from the first real token; some fused kernels assume one side",
    ),
    Rule(
        r"attention mask (?:and the pad token id )?(?:was|were|is|are) not (?:set|passed|"
        r"provided|given)|without (?:an |the )?attention_mask|no attention_mask",
        ("mask-missing", "positions"),
        "no attention mask was passed: padded positions are attended as if they were text",
    ),
    Rule(
        r"device-side assert(?:ion)? triggered",
        ("token-out-of-range", "position-out-of-range"),
        "a CUDA device-side assert in attention code is most often an embedding index out of "
        "range (a token id >= vocab size, a position >= the table); rerun on CPU to see it",
        weight=0.8,
    ),
    Rule(
        r"\(1, ?S\)|\b[LT] ?= ?1\b|single (?:query|token)|one (?:new )?token at a time|"
        r"query length (?:of |is )?1\b|q_len ?== ?1|"
        r"seq(?:uence)?_?len(?:gth)? ?(?:==|=|of|is) ?1\b|"
        r"(?:query|queries) (?:is |are )?shorter than (?:the )?keys",
        ("causal-alignment", "kv-cache"),
        "a query of one (or a few) new tokens against a longer key cache: a causal mask "
        "aligned top-left hides the cache; decoding needs bottom-right alignment",
    ),
    Rule(
        r"(?:masked.out|where=|where mask|\bwhere\W{0,2} (?:related|argument)|masked "
        r"(?:entries|values|logits))[^.]{0,120}"
        r"(?:grad|gradient|backward)|(?:grad|gradient|backward)\w*[^.]{0,120}(?:where=|"
        r"masked.out|masked (?:entries|values|logits))",
        ("inf-arithmetic", "softmax-overflow", "fully-masked-row"),
        "NaN in the backward pass through masked entries: masked logits still exponentiated "
        "(exp overflow) or -inf times 0 in the gradient",
    ),
    Rule(
        r"(?:mixed.precision|float16|\bfp16\b|\bhalf\b|\bamp\b|autocast)[^.]{0,200}(?:mask|"
        r"-1e\d|large.negative|min(?:imum)? value|finfo|_large_compatible_negative)|"
        r"(?:mask|-1e\d|large.negative|finfo)[^.]{0,200}(?:mixed.precision|float16|\bfp16\b|"
        r"\bhalf\b)",
        ("fp16-overflow", "inf-arithmetic", "mask-dtype"),
        "a mask constant (-1e9, finfo(float32).min) that float16 cannot hold: it overflows to "
        "-inf, and -inf - -inf or inf * 0 is NaN",
    ),
    Rule(
        r"mask\w*[^.]{0,40}\b(?:cast\w*|dtype|float32|float64|int\d*|long|integer|to bool)\b|"
        r"\b(?:cast\w*|dtype)\b[^.]{0,40}mask",
        ("mask-dtype", "fp16-overflow"),
        "the mask's dtype: a bool mask, or an additive float mask of the scores' dtype",
    ),
    Rule(
        r"(?:per|each|every) row|whole (?:array|matrix|tensor|batch)|all rows|"
        r"np\.sum\(np\.exp\([a-z_]+\)\)|\.sum\(\)|over the (?:wrong|first|batch|query) "
        r"(?:axis|dim)",
        ("softmax-axis", "axis-out-of-range"),
        "a softmax normalised over the wrong axis (the whole array, the batch, the queries) "
        "instead of each row's keys",
        weight=0.8,
    ),
    Rule(
        r"attention_axes|channel dim\w*|channels?.(?:last|first)|(?:missing|no|without|"
        r"add\w*) (?:a |the )?(?:feature|channel|batch|head) (?:axis|dim\w*)|"
        r"(?:unbatched|single example|batch of one)",
        ("layout-confusion", "axis-out-of-range"),
        "the input's axes are not the ones the layer expects: (batch, sequence, features)",
    ),
    Rule(
        r"nan (?:values? )?in (?:the |my )?(?:input|values|keys|padd\w*|masked)|"
        r"(?:input|values|keys|embeddings?)[^.]{0,30}(?:has|have|contains?|with) nans?\b|"
        r"masked.out (?:positions?|entries|elements)[^.]{0,60}\bnan|\bnans?\b[^.]{0,60}"
        r"masked.out",
        ("nan-in-padding", "fully-masked-row"),
        "NaN in a position the mask removes still reaches the output: 0 × NaN is NaN in the "
        "weights-times-values product; replace it before attention",
    ),
    Rule(
        r"(?:length|tokens?|words|sequence|input|text|positions?)[^.]{0,30}exceed\w*|"
        r"exceed\w* (?:the |about |\d+ )?(?:max\w*|positions?|length|\d+ tokens?)|"
        r"too long|longer (?:input|text|sequence|document)|long (?:input|text|"
        r"document|sequence)|positional|position (?:embedding|encoding)|max_seq_len\w*",
        ("position-out-of-range", "positions"),
        "a sequence longer than the position table the model was built with",
        weight=0.9,
    ),
    Rule(
        r"future (?:tokens?|positions?|words?|information|steps?)|look.?ahead|\bpeek\w*|"
        r"\bcheat\w*|subsequent (?:positions?|tokens?)|(?:sees?|see|attends? to) (?:the )?"
        r"(?:next|later|answer)|\bleak\w*|"
        r"loss[^.]{0,40}(?:suspiciously|strangely|very|too|unusually|much) ?(?:low|small)|"
        r"loss[^.]{0,30}(?:to|near|close to|goes to|drops to|collapses to) ?~? ?0\b|"
        r"times lower|too good to be true|not causal|non.causal",
        ("mask-missing", "mask-polarity", "causal-alignment", "packed-sequences"),
        "tokens see positions they must not (a causal or padding mask missing or inverted): "
        "the loss drops because the answer leaks",
    ),
    Rule(
        r"(?:causal|look.?ahead|padding)?\s?mask[^.]{0,40}(?:skipped|ignored|dropped|not "
        r"applied|never applied|silently (?:dropped|ignored)|has no effect|not forwarded|"
        r"never forwarded)|use_causal_mask|apply no (?:causal )?mask|mask_zero",
        ("mask-missing", "backend-constraint", "mask-dtype"),
        "a mask that is never applied: dropped by a wrapper, a backend or a flag",
    ),
    Rule(
        r"attend\w* (?:to )?(?:the )?pad\w*|pad\w* (?:tokens? |positions? )?(?:are |is )?"
        r"(?:still )?(?:attended|get attention|receive attention)|(?:computed|attention) on "
        r"padding|(?:outputs?|results?|logits|predictions?)[^.]{0,30}(?:change|depend|differ)"
        r"\w*[^.]{0,30}(?:padding|batch size|other examples|batch)|"
        r"batch(?:ed)? (?:and|vs\.?|versus) (?:un-?batched|single)|"
        r"batch\w*[^.]{0,30}(?:and|vs\.?|versus|than)[^.]{0,20}(?:single|un-?batched|one at a "
        r"time|one by one|individual)|(?:inconsistent|different|differ\w*|chang\w*) "
        r"(?:results?|outputs?|logits|predictions?)[^.]{0,60}(?:padding|padded)",
        ("mask-missing", "mask-broadcast-axis", "mask-polarity", "mask-dtype"),
        "padded positions still take part in attention: the padding mask is missing, "
        "inverted, broadcast along the wrong axis, or added as 0/1",
    ),
    Rule(
        r"batched (?:together )?with (?:longer|other|different|shorter) (?:prompts?|"
        r"sequences?|inputs?)|"
        r"left.?pad\w*|(?:short(?:er)?|padded) (?:prompts?|sequences?|inputs?)[^.]{0,60}"
        r"(?:garbage|wrong|different|worse|nonsense|gibberish|incorrect|repeat)",
        ("positions", "backend-constraint", "kv-cache"),
        "left padding shifts every real token: position ids must count from the first real "
        "token, and some fused kernels mishandle padded rows",
    ),
    Rule(
        r"(?:weights?|probabilit\w+|softmax|attention|scores?)[^.]{0,40}(?:(?:are |is )?"
        r"(?:all|every\w*) |are |is |== ?|become )(?:1\.0|ones?\b|equal to (?:1|one))|"
        r"(?:all|every) (?:ones|1\.0)",
        ("softmax-axis", "missing-scale", "axis-out-of-range"),
        "softmax over an axis of size 1 (or the wrong axis) gives 1.0 everywhere: weights are "
        "normalised over the keys, the last axis",
    ),
    Rule(
        r"(?:weights?|probabilit\w+|softmax|attention|scores?|outputs?)[^.]{0,40}"
        r"(?:all (?:the )?same|uniform|identical|equal|constant|the same for (?:every|all|each))|"
        r"(?:same|identical) (?:output|result|vector|prediction)s? for (?:every|all|each)|"
        r"(?:weights?|probabilit\w+|softmax|attention)[^.]{0,30}\ball (?:exactly )?"
        r"(?:0?\.\d+|1/\w+)",
        ("softmax-axis", "missing-scale", "mask-polarity", "fully-masked-row"),
        "uniform or identical attention: softmax over the wrong axis, every key masked (a "
        "large constant everywhere), or an inverted mask",
    ),
    Rule(
        r"one.hot|saturat\w*|peaked|spiky|(?:gradients?|grads?)[^.]{0,30}vanish|"
        r"does(?:n't| not) learn|not learning|stops? learning|"
        r"loss[^.]{0,30}(?:doesn't|does not|won't|not|never) (?:decrease|go down|improve|"
        r"converge)",
        ("missing-scale", "softmax-axis", "mask-after-softmax"),
        "a saturated softmax: scores not divided by sqrt(d) become one-hot and its gradients "
        "vanish",
    ),
    Rule(
        r"(?:do(?:es)?n'?t|do(?:es)? not|not) (?:sum|add up) to (?:one|1)|renormali[sz]|"
        r"(?:after|post).softmax|mask\w* (?:applied )?after (?:the )?softmax|"
        r"before (?:the )?softmax",
        ("mask-after-softmax", "softmax-axis"),
        "weights that no longer sum to one: the mask applied after the softmax without "
        "renormalising, or a softmax over the wrong axis",
    ),
    Rule(
        r"\bnans?\b[^.]{0,60}(?:only )?(?:in|for|at) (?:the )?(?:padded|padding|masked|pad)|"
        r"(?:padded|padding|masked) (?:rows?|positions?|tokens?|entries)[^.]{0,40}\bnans?\b|"
        r"(?:every|all) (?:keys?|positions?) (?:are )?masked|fully.masked|empty (?:row|sequence)|"
        r"all (?:the )?(?:inputs|scores|logits|values|entries)? ?(?:are |is )?-inf|"
        r"(?:every|each) (?:score|logit) is -inf|(?:row|query) (?:with|has) no (?:valid )?keys?|"
        r"(?:attend\w*|see|look) (?:to |at )?(?:itself|themselves)|diagonal (?:is )?masked|"
        r"masks? (?:out )?the diagonal",
        ("fully-masked-row", "nan-in-padding", "ragged-lengths"),
        "a query row whose keys are all masked: softmax over all -inf is 0/0 = NaN",
    ),
    Rule(
        r"\bnans?\b[^.]{0,80}(?:after|within) (?:a few|some|several|\d+) (?:steps|iterations|"
        r"epochs|updates)|(?:after|within) (?:a few|some|several|\d+) (?:steps|iterations|"
        r"epochs)[^.]{0,80}\bnans?\b",
        ("fp16-overflow", "softmax-overflow", "inf-arithmetic"),
        "NaN after some steps of training: logits grow until exp or a float16 value overflows",
    ),
    Rule(
        r"(?:heads?|multi.head)[^.]{0,60}(?:scrambled|mixed|garbage|wrong|worse)|"
        r"(?:scrambled|mixed up)[^.]{0,40}heads?",
        ("head-axis-order", "gqa-heads"),
        "heads split or merged in the wrong axis order: every head reads a mixture",
    ),
    Rule(
        r"(?:true|1)\s*(?:=|means|is)\s*(?:ignore|masked|pad|attend|keep|not attend)|"
        r"(?:0|false)\s*(?:=|means|is)\s*(?:ignore|masked|pad|attend|keep)|"
        r"\b(?:inverted|reversed|opposite|flipped)\b[^.]{0,30}mask|mask[^.]{0,60}\b(?:inverted|"
        r"reversed|opposite|flipped)\b|(?:NOT|not) pay attention|to (?:NOT|not) attend|"
        r"which (?:tokens?|positions?|keys?) to (?:not )?(?:attend|ignore|mask|keep)|"
        r"only (?:attends?|looks?|attending) (?:to |at )?(?:the )?pad|"
        r"(?:true|1)\b[^.]{0,60}(?:filled with -?inf|are masked|is masked|ignored)|"
        r"(?:true|1|0|false) (?:for|at|on) (?:the )?(?:padding|pad|masked|real|valid) "
        r"(?:tokens?|positions?)|(?:opposite|different|other) (?:convention|polarity|meaning)",
        ("mask-polarity",),
        "the mask's polarity: which value means 'attend' differs between APIs",
        weight=1.15,
    ),
    Rule(
        r"(?:cache|cached|past_key_values)[^.]{0,80}(?:differ|different|wrong|garbage|repeat|"
        r"worse)|(?:with|without) (?:the )?(?:kv.)?cache|prompt.?length|second (?:generation )?"
        r"step|first (?:generated )?token",
        ("kv-cache", "causal-alignment", "positions"),
        "decoding with a cache: positions, causal alignment and the mask must follow the "
        "cache's length",
    ),
    Rule(
        r"(?:results?|outputs?|examples?)[^.]{0,40}(?:depend|influence)\w*[^.]{0,30}"
        r"(?:other|each other|the batch)|batch size (?:changes|affects)|"
        r"changes? when I change (?:the |another |a different )?(?:\w+ )?(?:example|sample|"
        r"item|sequence)|(?:another|other|second|different) (?:example|sample)s? (?:in the "
        r"batch )?(?:changes|affects)",
        ("softmax-axis", "mask-broadcast-axis", "layout-confusion"),
        "examples that influence each other: a softmax or mask along the batch axis, or "
        "batch-first input read as sequence-first",
    ),
)
"""Symptoms in words, with their synonyms, and the tags that produce them."""

SYNONYMS: tuple[tuple[str, str], ...] = (
    (r"\bnans?\b|not a number|non.finite|\binfs?\b", " nan "),
    (r"\bfp16\b|float16|\bhalf(?: precision)?\b|\bamp\b|mixed.precision", " fp16 "),
    (r"\bbf16\b|bfloat16", " bf16 "),
    (r"uniform|identical|equal|constant|\bsame\b", " same "),
    (r"garbage|gibberish|nonsense|incorrect|\bwrong\b|\bbad\b|degrade\w*|broken|worse", " wrong "),
    (r"\bpadd?(?:ing|ed|s)?\b", " pad "),
    (r"look.?ahead|subsequent|upcoming|\bnext\b|later", " future "),
    (r"\b(?:attend\w*|attention|attn)\b", " attend "),
    (r"\bweights?\b|probabilit\w+|\bscores?\b", " weight "),
    (r"past_key_values|kv.?cache|\bcache[ds]?\b", " cache "),
    (r"\bgenerat\w*|\bdecod\w*|\binference\b", " generate "),
    (r"\brope\b|rotary", " rotary "),
    (r"\berror\b|\bfails?\b|\bcrash\w*|\braises?\b|exception", " fail "),
)
"""Words that say the same thing, folded to one word before symptom phrases are matched."""

_STOP = frozenset(
    re.findall(
        r"\w+",
        "the a an of to in is and or with after when on for my i it be at by from but got this "
        "that are was were not no can does do have has had me we you your our its as if so use "
        "using used into than then there their them they which what how why some only all any "
        "get gets",
    )
)

ATTENTION_WORDS = re.compile(
    r"attention|attn|\bmask|\bheads?\b|softmax|\bquer(?:y|ies)\b|\bkeys?\b|\bvalues?\b|"
    r"\bqkv\b|transformer|causal|padd(?:ing|ed)|embedding|position|rotary|rope\b|flash|sdpa|"
    r"\bscores?\b|logits|\bkv\b|decoder|encoder|einsum|matmul|\bbmm\b|\bshapes?\b",
    re.IGNORECASE,
)
"""Words that put a text inside attention code; without one, shared words are no evidence."""

TRANSPOSED = re.compile(r"\.transpose\(-[12], ?-[12]\)|\.mT\b|swapaxes\(-[12], ?-[12]\)")
"""Quoted code that does transpose the keys: evidence against a missing transpose."""

OUTSIDE = re.compile(
    r"ModuleNotFoundError|ImportError|No module named|cannot import name|FileNotFoundError|"
    r"No such file or directory|Permission denied|CUDA driver|NVIDIA driver|"
    r"ConnectionError|HTTPError|\b40[134]\b Client Error|pip install|"
    r"(?:tokenizer|vocab)[\w.]* (?:file|not found)|SSL|timed out|Disk quota",
    re.IGNORECASE,
)
"""Errors from outside attention code (installing, files, drivers, the network): evidence
from mentioning an attention library alone is dropped for them."""

SHAPE_OR_MASK = re.compile(r"shape|mask|size of tensor|broadcast", re.IGNORECASE)
"""A message naming a shape or mask problem: never answered with an empty list."""

MIN_SCORE = 3.0
"""Below this a case is no answer.

Calibrated on the tuning data (the 206 labelled messages of ``tests/data/diagnose_*.json``
and the 20 messages from outside attention): with no threshold, the best case for an
outside message scores at most 1.5 (shared words only) and the first answer to a labelled
message at least 4.1; 3.0 lies between, and is above what shared words alone can reach
(about 2.2), so a symptom phrase needs about 80 % of its words to count on its own.
"""

_WEAK_WORDS = frozenset({"fail", "shape", "shap", "attend", "model", "output", "result", "work"})
"""Words too common in reports to make a symptom phrase match on their own."""

SYMPTOM_MIN_SHARE = 0.65
"""A symptom phrase counts when this share of its words (and at least two) are in the text."""


@dataclass(frozen=True)
class Match:
    """One answer of :func:`diagnose`.

    Attributes:
        case: the catalogue case (``id``, ``title``, ``tags``, ``module``...).
        score: the evidence, added up (see :func:`diagnose`); comparable within one call.
        why: what the message's numbers mean for this case, then why its mistake produces
            it; no sentence of it appears in another answer of the same call.
        fix: this case's fix, in one sentence.
    """

    case: CaseCard
    score: float
    why: str
    fix: str = ""


def _stem(word: str) -> str:
    for suffix in ("ing", "ed", "es", "s", "ly"):
        if len(word) > len(suffix) + 3 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


@cache
def _synonyms() -> tuple[tuple[re.Pattern[str], str], ...]:
    return tuple((re.compile(p, re.IGNORECASE), word) for p, word in SYNONYMS)


def words(text: str) -> frozenset[str]:
    """The content words of ``text``, synonyms folded (:data:`SYNONYMS`) and stemmed."""
    text = text.lower()
    for pattern, word in _synonyms():
        text = pattern.sub(word, text)
    return frozenset(
        _stem(w) for w in re.findall(r"[a-z][a-z0-9_]*[a-z0-9]", text) if w not in _STOP
    )


@cache
def _compiled(pattern: str) -> re.Pattern[str]:
    # in a pattern, [^.] means "within one sentence": a dot inside a name (nn.Module,
    # F.softmax) does not end one; and .* means "nearby": at most 400 characters, so a
    # long log stays quick to search
    pattern = pattern.replace("[^.]", r"(?:[^.]|\.\w)")
    return re.compile(re.sub(r"(?<!\\)(?<!\(\?=)\.\*(?!\?)", ".{0,400}", pattern), _FLAGS)


@dataclass(frozen=True)
class _Hit:
    tags: tuple[str, ...]
    why: str
    reading: Reading | None = None
    weight: float = 1.0

    def sentences(self, tag: str) -> tuple[str, ...]:
        return self.reading.sentences(tag) if self.reading else (self.why,)


def _rule_hits(text: str) -> list[_Hit]:
    """The evidence of the wording: the size reading, then the rules, then the concepts."""
    lowered = text.lower()
    hits = []
    for read in (
        mha_mask_reading,
        qkv_reading,
        einsum_reading,
        matmul_reading,
        contraction_reading,
        reshape_reading,
        tf_graph_reading,
        tf_einsum_reading,
        index_reading,
        shape_reading,
    ):
        reading = read(text)
        if reading is not None:
            hits.append(_Hit(reading.tags, reading.default, reading, 1.1))
            break
    found_rules = []
    for rule in (*RULES, *CONCEPTS):
        found = _search(rule.pattern, text, lowered)
        if found and rule.domain:  # the rest of the text must be about attention
            rest = text[: found.start()] + " " + text[found.end() :]
            found = found if ATTENTION_WORDS.search(rest) else None
        if found:
            numbers = [g for g in found.groups() if g is not None]
            try:
                why = rule.why.format(*numbers)
            except IndexError:
                why = rule.why
            weight = rule.weight * (0.85 if rule in CONCEPTS else 1.0)
            found_rules.append((rule, _Hit(rule.tags, why, None, weight)))
    if hits:
        found_rules = [(rule, hit) for rule, hit in found_rules if not rule.read]
    specific = [hit for rule, hit in found_rules if not rule.fallback]
    hits += specific or ([] if hits else [hit for _, hit in found_rules])
    if OUTSIDE.search(text):
        hits = [hit for hit in hits if hit.weight >= 1.0]  # "flash_attn" alone is no evidence
    return hits


def _symptom_score(text_words: frozenset[str], card: CaseCard) -> tuple[float, str]:
    best, phrase_best = 0.0, ""
    for phrase in card.symptoms:
        wanted = _phrase_words(phrase)
        shared = wanted & text_words
        enough = 2 if len(wanted) <= 3 else 3
        if not shared - _WEAK_WORDS:
            continue  # "shape error", "attention fails": no symptom in particular
        if len(shared) >= enough and len(shared) / len(wanted) >= SYMPTOM_MIN_SHARE:
            share = len(shared) / len(wanted) + 0.05 * len(shared)
            if share > best:
                best, phrase_best = share, phrase
    return 3.5 * best, phrase_best


def _card_text(card: CaseCard) -> str:
    return " ".join([card.title, *card.symptoms, *card.tags]).replace("-", " ")


@cache
def _card_words(card: CaseCard) -> frozenset[str]:
    known = _index().get("card_words", {}).get(card.id)
    if known is not None and _index().get("card_text", {}).get(card.id) == _card_text(card):
        return frozenset(known)
    return words(_card_text(card))


def _tag_score(hits: Sequence[_Hit], card: CaseCard) -> tuple[float, _Hit | None, str]:
    """The rule evidence for ``card``: score, the strongest hit and the tag it came through.

    Each hit counts through the likeliest of the case's tags it names; the strongest hit
    counts in full, a second one that agrees adds 40 %, a third 20 %.
    """
    per_hit: list[tuple[float, _Hit, str]] = []
    for order, hit in enumerate(hits):
        for rank, tag in enumerate(hit.tags):
            if tag in card.tags:
                step = 1.8 if hit.reading else 1.1  # a reading orders its families firmly
                score = (6.0 - step * rank + 0.5 * (card.tags[0] == tag)) * hit.weight
                per_hit.append((score - 0.15 * order, hit, tag))
                break
    if not per_hit:
        return 0.0, None, ""
    per_hit.sort(key=lambda item: -item[0])
    total = sum(w * item[0] for w, item in zip((1.0, 0.4, 0.2), per_hit, strict=False))
    return total, per_hit[0][1], per_hit[0][2]


def _without_example(sentence: str) -> str:
    """``sentence`` cut before the case page's own example sizes (``8 and 2``, ``(2, 6)``).

    When the message has sizes of its own, the page's example numbers would contradict
    them; the clause before them still says why.
    """
    found = re.search(r"\(\d+(?:, ?\d+)+\)|\b\d+ (?:and|against) \d+\b", sentence)
    if not found:
        return sentence
    head = sentence[: found.start()]
    cut = max(head.rfind(":"), head.rfind(", and"), head.rfind(";"))
    return head[:cut].rstrip(" ,;:") + "." if cut > 0 else ""


_SIGNATURE = re.compile(r"\\[1-9]|[(\[,]1[,)\]]|\[1,1,|\(1, 1,")
"""A case's message pattern that encodes a shape signature: a size repeated (``\\1``) or
an axis of 1 where the mistake leaves one."""


def _compose(
    card: CaseCard,
    hits: Sequence[_Hit],
    first: _Hit | None,
    tag: str,
    used: set[str],
    lead: str = "",
) -> str:
    """This case's why: a reading in its own terms not said before, then its own Why."""
    candidates = [lead] if lead else []
    if first is not None:
        candidates += first.sentences(tag)
    for hit in hits:
        for own in card.tags:
            if own in hit.tags:
                candidates += hit.sentences(own)
    lead = next((c for c in candidates if c and c not in used), "")
    parts = [lead] if lead else []
    read = any(hit.reading for hit in hits)
    parts.append(_without_example(card.why) if read else card.why)
    why = ". ".join(p.rstrip(".") for p in parts if p) + "."
    used.update(parts)
    return why


def diagnose(text: str, top: int = 5) -> list[Match]:
    """The cases that best explain ``text`` (an error message, traceback or symptom).

    A case's score adds up its evidence: refattn's own errors name their case outright;
    then the sizes of the message read as attention's axes, the best family wording or
    symptom concept naming one of its tags (likelier tags and earlier evidence score
    more), its own message patterns (a pattern many cases share counts less), a symptom
    phrase of its own, and, as a tie-breaker only, words it shares with the text. A case
    needs :data:`MIN_SCORE`; when none has it, the answer is empty (see
    :func:`nearest_family`).
    """
    hits = _rule_hits(text)
    read = bool(hits and hits[0].reading)  # the sizes say more than a case's wording
    text_words = words(text)
    in_domain = bool(hits) or bool(ATTENTION_WORDS.search(text))
    every = cards()
    lowered = text.lower()
    patterns = {c.id: [p for p in c.messages if _search(p, text, lowered)] for c in every}
    named_ids = set(re.findall(r"catalogue case (\w+)", text))
    sharing = sum(1 for found in patterns.values() if found)
    scored: list[tuple[float, CaseCard, _Hit | None, str, str]] = []
    for card in every:
        rule_score, hit, tag = _tag_score(hits, card)
        found = patterns[card.id]
        message_score = 0.0
        if found:
            longest = max(min(len(p), 80) for p in found) / 40
            message_score = (1.5 + 2.5 / sharing + longest) * (0.4 if read else 1.0)
            if any(_SIGNATURE.search(p) for p in found):
                message_score += 1.5  # a shape signature only this mistake produces
        symptom_score, phrase = _symptom_score(text_words, card)
        if hit is not None and hit.reading is not None:  # the reading describes this case
            said = words(hit.reading.sentence(tag))
            rule_score += 1.5 * len(said & _card_words(card)) / max(len(said), 1)
        if "missing-transpose" in card.tags and TRANSPOSED.search(text):
            rule_score = max(rule_score - 3.0, 0.0)  # the quoted code does transpose
        named = 20.0 if card.id in named_ids else 0.0
        overlap = text_words & _card_words(card) if in_domain else frozenset()
        word_score = 2.0 * len(overlap) / (len(text_words) ** 0.5 + 1)
        total = named + rule_score + message_score + symptom_score + word_score
        if total <= 0.0:
            continue
        lead = ""
        if named:
            lead = "the error message names this case"
        elif hit is None and found:
            lead = f"the message is one {card.id} raises"
        elif hit is None and phrase:
            lead = f"you describe '{phrase}'"
        scored.append((total, card, hit, tag, lead))
    scored.sort(key=lambda answer: (-answer[0], answer[1].id))
    confident = [answer for answer in scored if answer[0] >= MIN_SCORE]
    if confident or not SHAPE_OR_MASK.search(text) or OUTSIDE.search(text):
        scored = confident  # a shape or mask problem always gets the nearest cases
    used: set[str] = set()
    answers = []
    for total, card, hit, tag, lead in scored[:top]:
        why = _compose(card, hits, hit, tag, used, lead)
        answers.append(Match(card, round(total, 3), why, card.fix))
    return answers


def nearest_family(text: str) -> str | None:
    """The taxonomy family the message's wording points to, even when no case explains it.

    Returns:
        ``"shape"``, ``"mask"``, ``"numerics"``, ``"index"`` or ``"decoding"``, or None when
        nothing in the text belongs to attention.
    """
    for hit in _rule_hits(text):
        for tag in hit.tags:
            if tag in TAGS:
                return TAGS[tag][0]
    return None


def main(argv: Iterable[str] | None = None) -> int:
    """``python -m catalogue.diagnose --write-index``: rewrite :data:`INDEX`."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args != ["--write-index"]:
        print("usage: python -m catalogue.diagnose --write-index", file=sys.stderr)
        return 2
    print(f"wrote {write_index()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
