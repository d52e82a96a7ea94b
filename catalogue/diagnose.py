"""From a pasted error message, traceback or symptom to the catalogue cases that explain it.

Evidence, added up per case (see :func:`diagnose`):

1. **the numbers of the message, read as attention's axes** (:mod:`.readings`): every
   shape quoted (``torch.Size([2, 8])``, ``(2, 8, 5, 5)``, ``[2,8,5,5]``) is parsed, two
   shapes that failed to broadcast are aligned from the right as broadcasting aligns them,
   and the axis that disagrees is named (batch ``B``, heads ``H``, query length ``L``, key
   length ``S``); PyTorch's ``non-singleton dimension d`` is that axis of the scores
   ``(B, H, L, S)``. Each failure family then says what those numbers mean in its own
   terms (on the head axis, ``8`` against ``2`` is "8 query heads against 2 key/value
   heads" for grouped-query attention, "a mask built for 2 heads" for a mask); sizes the
   report names (``lq = 16; lkv = 17``, ``num_key_value_heads: 8``) say which roles meet,
   and a size no head count reaches (512 on "the head axis") is read as a length;
2. :data:`RULES` (:mod:`.wordings`): the wordings NumPy, PyTorch, JAX and TensorFlow/Keras
   use for each failure family (broadcasting, contraction, reshape, gather,
   concatenation, dtype, kernel refusals...), with the taxonomy tags they most often mean
   in attention code, likeliest first;
3. :data:`CONCEPTS`: symptoms in words (future tokens leak, loss suspiciously low, weights
   all equal, NaN only in padded rows, garbage for short left-padded prompts...), matched
   as concepts with their synonyms, each pointing at the tags that produce it;
4. a case's own ``MESSAGES`` (exact wordings it raises; a wording many cases share counts
   less) and ``SYMPTOMS`` (a phrase most of whose words, after :data:`SYNONYMS`, are in
   the text).

A case of another kind than the report (:func:`report_kind`: an error, NaN, or a wrong
result without either) keeps :data:`KIND_PENALTY` of its score: a report of gibberish past
some length is likelier a silent mistake than one that raises. Words the text shares with a
case's title only break ties. A case below
:data:`MIN_SCORE` is no answer: a message no case explains gets an empty answer (and
:func:`nearest_family`) rather than a list of unrelated cases. No sentence appears twice
in one answer list: each case gives the reading of the numbers in its own tag's terms, then
its own ``Why``. Answers 2 and 3 spread over tags (:data:`SPREAD`): a bare signature that
several families produce lists several families. A few technical words of reports in
Chinese are read as their English terms first (:func:`.wordings.english`); running out of
memory with no attention word anywhere is outside attention, like a missing module, and so
are a NaN with no word of attention, precision, a kernel or the input's lengths, a
state-dict mismatch of a checkpoint built with another configuration, and a build without
CUDA named anywhere in a report (``_outside``): an error from outside attention with no
sizes to read gets no case at all.

Last, one learned step (:func:`_with_learned_family`): :mod:`.tag_model` names the family
reports worded like this one most often had; when none of the first three answers is of
it (and the sizes do not name a family outright), its best case becomes the third answer,
its score the rules' evidence for it, which may be below :data:`MIN_SCORE`.

The cases' searchable fields are read from ``diagnose_index.json`` beside this module
when it matches the case modules' sources (a hash per module), so answering does not
import the case modules; ``python -m catalogue.diagnose --write-index`` rewrites it.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import re
import re._parser as _sre  # type: ignore[import-not-found]
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

from . import tag_model
from .readings import (
    Reading,
    checkpoint_reading,
    contraction_reading,
    einsum_reading,
    index_reading,
    jax_shape_reading,
    matmul_reading,
    mha_mask_reading,
    named_reading,
    qkv_reading,
    reshape_reading,
    shape_reading,
    tf_einsum_reading,
    tf_graph_reading,
    transpose_rank_reading,
)
from .taxonomy import TAGS
from .wordings import (
    ATTENTION_WORDS,
    CONCEPTS,
    LONG_INPUT,
    MEMORY,
    OUTSIDE,
    OUTSIDE_ANYWHERE,
    RULES,
    SHAPE_OR_MASK,
    SQUARE_SCORES,
    STOP_WORDS,
    SYNONYMS,
    TRANSPOSED,
    Rule,
    english,
)

__all__ = [
    "CONCEPTS",
    "INDEX",
    "MIN_SCORE",
    "RULES",
    "SYNONYMS",
    "CaseCard",
    "Match",
    "Reading",
    "Rule",
    "cards",
    "diagnose",
    "index_is_current",
    "nearest_family",
    "shape_reading",
    "words",
    "write_index",
]

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
    return " ".join(re.sub(r"``(.+?)``|:\w+:`(.+?)`", r"\1\2", text, flags=re.S).split())


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


MIN_SCORE = 3.0
"""Below this a case is no answer.

Calibrated on the tuning data (the 321 labelled messages of ``diagnose_messages.json`` and
``diagnose_heldout.json`` in ``tests/data``, and 39 messages from outside attention: the 20
of ``diagnose_outside.json`` and 19 more): with no threshold, the best case for an outside
message scores at most 1.5 (shared words only) and the first answer to a labelled message
at least 4.0, but for 4 reports that hold no evidence ("the following error is given:
[screenshot]"); 3.0 lies between, and is above what shared words alone can reach (about
2.2), so a symptom phrase needs about 80 % of its words to count on its own. Re-measured
by ``tests/test_diagnose.py`` as the tuning data grew: 33 of its 864 reports, with no
evidence the rules read, stay below it, and no outside message reaches it.
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
        _stem(w) for w in re.findall(r"[a-z][a-z0-9_]*[a-z0-9]", text) if w not in STOP_WORDS
    )


@cache
def _compiled(pattern: str) -> re.Pattern[str]:
    # in a pattern, [^.] means "within one sentence": a dot inside a name (nn.Module,
    # F.softmax) does not end one; and .* means "nearby": at most 400 characters, so a
    # long log stays quick to search
    pattern = pattern.replace("[^.]", r"(?:[^.]|\.(?=\w))")
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
    hits: list[_Hit] = []
    if _checkpoint_config(text):  # a checkpoint of another config: its sizes are no evidence
        return hits
    for read in (
        named_reading,
        jax_shape_reading,
        mha_mask_reading,
        checkpoint_reading,
        qkv_reading,
        einsum_reading,
        matmul_reading,
        contraction_reading,
        reshape_reading,
        tf_graph_reading,
        tf_einsum_reading,
        transpose_rank_reading,
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
    if _outside(text):  # "No module named 'flash_attn'": naming a library is no evidence
        hits = [hit for hit in hits if hit.reading is not None]
    return hits


def _outside(text: str) -> bool:
    """Whether the error itself is one from outside attention code (:data:`OUTSIDE`).

    A short text is the error; in a longer one (a traceback, a report), its last error line.
    Running out of memory with no attention word, shape or long input anywhere is outside
    too (a bare ``CUDA out of memory``: any large model runs out of memory).
    """
    rest = MEMORY.sub(" ", text)
    long_input = LONG_INPUT.search(rest) or SQUARE_SCORES.search(text)
    if MEMORY.search(text) and not (ATTENTION_WORDS.search(rest) or long_input):
        return True
    if OUTSIDE_ANYWHERE.search(text) or _checkpoint_config(text):
        return True
    if _narrow_linear(text):
        return True
    if _NAN.search(text) and not (ATTENTION_WORDS.search(text) or _NUMERICS.search(text)):
        return True  # "NaN loss after 35k steps": data, learning rate... any model
    if len(text) > 300:
        errors = re.findall(r"^\s*[\w.]*(?:Error|Exception|Warning)\b:?.*$", text, re.MULTILINE)
        text = errors[-1] if errors else text[:300]  # a log line (no Error:) starts it
    return bool(OUTSIDE.search(text))


_MISMATCH = re.compile(
    r"size mismatch for ([\w.]+): copying a param with shape (?:torch\.Size\()?\[([\d, ]*)\]\)? "
    r"from checkpoint, the shape in current model is (?:torch\.Size\()?\[([\d, ]*)\]"
)
_ATTENTION_PARAM = re.compile(
    r"(?:^|[._])(?:[qkvo]_?proj|qkv\w*|c_attn|in_proj\w*|out_proj|query|key|value|w[qkvo]|"
    r"(?:self_)?attn|attention|\w*proj)\.(?:weight|bias)$|"
    r"(?<!relative_)position|rotary|\bwpe\b|pos_emb|embed_tokens|word_embeddings|\bwte\b",
    re.IGNORECASE,
)


_LINEAR = re.compile(r"mat1 and mat2 shapes cannot be multiplied \((\d+)x(\d+) and (\d+)x(\d+)\)")


def _narrow_linear(text: str) -> bool:
    """Whether a linear layer of a few features is all the text names.

    Under 32 features on either side of the contraction, with no attention word anywhere
    else, it is a feature, channel or time-mark projection, not attention's (whose model
    widths are 64 and more): "mat1 and mat2 shapes cannot be multiplied (512x4 and 512x512)".
    """
    found = _LINEAR.search(text)
    if found is None or min(int(found[2]), int(found[3])) >= 32:
        return False
    return not ATTENTION_WORDS.search(text[: found.start()] + " " + text[found.end() :])


def _checkpoint_config(text: str) -> bool:
    """A checkpoint of another configuration: no mismatched parameter is attention's.

    PyTorch's ``size mismatch for NAME: copying a param with shape A from checkpoint, the
    shape in current model is B`` (``Module.load_state_dict``) for a buffer or table such as
    Swin's ``relative_coords_table``, a norm or a classifier: the model was built with
    other hyper-parameters than the checkpoint (window size, classes), not an attention
    mistake. A query/key/value/output projection or a position table keeps its reading,
    unless every axis differs (``[768, 768]`` against ``[1024, 1024]``: a model of another
    width altogether; a grouped-query key projection keeps its input width).
    """
    found = _MISMATCH.findall(text)

    def attention_own(name: str, saved: str, built: str) -> bool:
        a, b = re.findall(r"\d+", saved), re.findall(r"\d+", built)
        other_width = len(a) == len(b) and all(x != y for x, y in zip(a, b, strict=True))
        return bool(_ATTENTION_PARAM.search(name)) and not other_width

    return bool(found) and not any(attention_own(*row) for row in found)


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


SPREAD = 0.6
"""After the first answer, a case competes with this share of its score for each earlier
answer it shares a tag with: a bare ``size of tensor a (3) must match ... dimension 3``
can come from a mask, a rotary table or a key length, and three mask cases would cover
only one of them. The first answer is always the best score."""

_Scored = tuple[float, CaseCard, "_Hit | None", str, str]


def _spread(
    scored: Sequence[_Scored], top: int, firm: frozenset[str] = frozenset()
) -> list[_Scored]:
    """The first ``top`` of ``scored`` (best first), later answers spread over main tags.

    ``firm``: tags the evidence names unambiguously, whose cases may follow each other.
    """
    chosen: list[_Scored] = list(scored[:1])
    rest = list(scored[1:])

    def share(answer: _Scored) -> float:
        tags = set(answer[1].tags) - firm
        shared = sum(1 for other in chosen if tags & set(other[1].tags))
        main = answer[1].tags[0]
        same_main = main not in firm and any(main == other[1].tags[0] for other in chosen)
        return SPREAD ** (shared + same_main)

    while rest and len(chosen) < top:
        best = max(rest, key=lambda answer: answer[0] * share(answer))
        chosen.append(best)
        rest.remove(best)
    return chosen


def _with_learned_family(
    chosen: Sequence[_Scored], every_score: Sequence[_Scored], text: str, top: int
) -> list[_Scored]:
    """``chosen``, with the family the report's words point to among the first three.

    :mod:`.tag_model` gives the tag reports worded like ``text`` most often had. When none
    of the first three answers carries it, that tag's case with the best score (even one
    below :data:`MIN_SCORE`) becomes the third answer and later ones move down. The first
    two answers, and an empty answer, stay as the rules decided.
    """
    if not chosen or top < 3:
        return list(chosen)
    model = tag_model.load()
    likely = model.probabilities(text)
    tag = max(likely, key=lambda t: likely[t])
    if any(tag in answer[1].tags for answer in chosen[:3]):
        return list(chosen)
    kept = list(chosen[:2])
    carriers = [card for card in cards() if tag in card.tags]
    by_id = {answer[1].id: answer for answer in every_score}
    card = max(carriers, key=lambda c: by_id[c.id][0] if c.id in by_id else 0.0)
    total, _card, hit, hit_tag, _lead = by_id.get(card.id, (0.0, card, None, tag, ""))
    lead = (
        f"reports worded like this one were most often {tag} problems (learned from "
        f"{model.reports} labelled public reports)"
    )
    later = [answer for answer in chosen[2:] if answer[1].id != card.id]
    return [*kept, (total, card, hit, hit_tag, lead), *later][:top]


def _firm(hits: Sequence[_Hit]) -> frozenset[str]:
    """The tag the evidence names unambiguously: answers of it need not be spread.

    The numbers can name a family outright (32 query heads against 8 on the head axis):
    then more cases of that family are better second answers than unrelated families,
    unless the text points to another family too (a mask quoted beside the head counts).
    A wording alone never does: ``index out of range in self`` is a token id or a
    position, and both should be among the answers.
    """
    reading = hits[0].reading if hits else None
    if reading is None or not reading.firm:
        return frozenset()
    family = TAGS.get(reading.tags[0], ("",))[0]
    others = {TAGS.get(hit.tags[0], ("",))[0] for hit in hits[1:] if hit.weight >= 0.6}
    return frozenset(reading.tags[:1]) if others <= {family} else frozenset()


KIND_PENALTY = 0.9
"""A case of another kind than the report (an exception case for a report of a wrong
result without an error, a silent case for a traceback) keeps this share of its score."""

_ERROR = re.compile(
    r"\b\w*(?:Error|Exception)\b|Traceback|\braise[sd]?\b|\bthrows?\b|\bassert\w*|\bcrash\w*|"
    r"\bfail(?:s|ed)? with\b|\berrors?\b|\bCheck failed\b|\bfailed\b|\bAborting execution\b|"
    # running out of memory stops the program (OutOfMemoryError, RESOURCE_EXHAUSTED)
    r"\bout of memory\b|\bOOMs?\b|\bRESOURCE_EXHAUSTED\b",
    re.IGNORECASE,
)
_NAN = re.compile(r"\bnans?\b|\binf\b|not a number", re.IGNORECASE)
_WARNING = re.compile(r"\b\w*Warning\b")
_NUMERICS = re.compile(
    r"fp16|bf16|float16|bfloat16|\bhalf\b|\bamp\b|autocast|mixed.precision|precision|"
    r"overflow|underflow|\bexp\b|probability tensor|-inf|finfo|1e-?\d|"
    r"\b(?:cuda|gpu|kernel|cudnn|triton|xformers|backward|grad\w*)\b|A100|H100|RTX|sm_?\d|"
    r"\bseq\w*|\btokens?\b|\blengths?\b|\bprompts?\b|\bbatch\w*|"
    # a transformer named by its family: its NaN is attention's to explain
    r"\b(?:bert|roberta|deberta|gpt\w*|llama\w*|mistral|mixtral|qwen\w*|gemma\w*|phi-?\d|"
    r"falcon|bloom|t5|bart|vit|deit|swin|clip|whisper|wav2vec\w*|dit|llm|vlm)\b",
    re.IGNORECASE,
)
"""Words of floating-point range, precision, a GPU kernel, the input's lengths or a
transformer's family name: a NaN beside them is evidence even where no attention word is."""
_SILENT = re.compile(
    r"\bsilent(?:ly)?\b|without (?:\w+ ){0,2}(?:an? |any )?(?:errors?|exceptions?|warnings?)\b|"
    r"\bdoes(?:n't| not) (?:raise|throw|crash|error)|"
    r"\bno (?:errors?|exceptions?|warnings?) (?:is |are |was |were |being )?(?:raised|thrown|"
    r"shown|reported|given|printed)",
    re.IGNORECASE,
)
"""A report that says no error was raised ("silently wrong", "without raising an error")."""
_RAISED = re.compile(r"\b\w+(?:Error|Exception)\b:")


def report_kind(text: str) -> str:
    """What the report shows, as the catalogue's kinds of case.

    ``"nan"`` (it names NaN or inf), ``"exception"`` (an error), ``"silent"`` (a wrong
    result, no error), or ``"warning"`` (a framework's warning: any kind of case may print
    one, so no case is of another kind than it).
    """
    if _NAN.search(text):
        return "nan"
    if _SILENT.search(text) and not _RAISED.search(text):
        return "silent"
    if _ERROR.search(text):
        return "exception"
    return "warning" if _WARNING.search(text) else "silent"


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
    text = english(text)
    hits = _rule_hits(text)
    read = bool(hits and hits[0].reading)  # the sizes say more than a case's wording
    outside = _outside(text)
    if outside and not read:  # an error from outside attention, with no sizes to read
        return []
    text_words = words(text)
    kind = report_kind(text)
    firm = _firm(hits)
    in_domain = bool(hits) or bool(ATTENTION_WORDS.search(text))
    every = cards()
    lowered = text.lower()
    patterns = {
        c.id: [p for p in c.messages if not outside and _search(p, text, lowered)] for c in every
    }
    named_ids = set(re.findall(r"catalogue case (\w+)", text))
    sharing = sum(1 for found in patterns.values() if found)
    scored: list[_Scored] = []
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
        if read:  # the sizes say more than words an error message shares with a symptom
            symptom_score *= 0.5
        if hit is not None and hit.reading is not None:  # the reading describes this case
            said = words(hit.reading.sentence(tag))
            rule_score += 1.5 * len(said & _card_words(card)) / max(len(said), 1)
        if "missing-transpose" in card.tags and TRANSPOSED.search(text):
            rule_score = max(rule_score - 3.0, 0.0)  # the quoted code does transpose
        named = 20.0 if card.id in named_ids else 0.0
        overlap = text_words & _card_words(card) if in_domain else frozenset()
        word_score = 2.0 * len(overlap) / (len(text_words) ** 0.5 + 1)
        total = named + rule_score + message_score + symptom_score + word_score
        other_kind = card.kind != kind and kind != "warning"
        if other_kind and not named:  # in a family the numbers name, only the order changes
            total *= 0.98 if firm & set(card.tags) else KIND_PENALTY
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
    every_score = scored
    confident = [answer for answer in scored if answer[0] >= MIN_SCORE]
    if confident or not SHAPE_OR_MASK.search(text) or outside:
        scored = confident  # a shape or mask problem always gets the nearest cases
    chosen = _spread(scored, top, firm)
    if not firm:  # numbers that name a family outright leave its cases together
        chosen = _with_learned_family(chosen, every_score, text, top)
    used: set[str] = set()
    answers = []
    for total, card, hit, tag, lead in chosen:
        why = _compose(card, hits, hit, tag, used, lead)
        answers.append(Match(card, round(total, 3), why, card.fix))
    return answers


def nearest_family(text: str) -> str | None:
    """The taxonomy family the message's wording points to, even when no case explains it.

    Returns:
        ``"shape"``, ``"mask"``, ``"numerics"``, ``"index"`` or ``"decoding"``, or None when
        nothing in the text belongs to attention.
    """
    for hit in _rule_hits(english(text)):
        for tag in hit.tags:
            if tag in TAGS:
                return TAGS[tag][0]
    return None


def main(argv: Iterable[str] | None = None) -> int:
    """``python -m catalogue.diagnose --write-index | --write-tag-model``.

    ``--write-index`` rewrites :data:`INDEX`; ``--write-tag-model`` refits
    :mod:`.tag_model` on the tuning set and rewrites its file.
    """
    writers = {"--write-index": write_index, "--write-tag-model": tag_model.write}
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1 or args[0] not in writers:
        print(f"usage: python -m catalogue.diagnose {' | '.join(writers)}", file=sys.stderr)
        return 2
    print(f"wrote {writers[args[0]]()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
