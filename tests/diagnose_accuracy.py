"""diagnose's accuracy on a labelled set of messages, per framework and per kind.

The labelled sets live in ``tests/data``:

- ``diagnose_messages.json``: the *tuning* set. Real messages and symptoms from public
  threads (each with its source and a note on the real cause); diagnose's rules and
  weights were written while looking at these, so accuracy on them is not a measure of
  how diagnose does on messages it has not seen.
- ``diagnose_heldout.json`` (when present): messages from other public threads (no source
  thread shared with the tuning set), collected by someone who did not write the rules and
  never used while writing them. Only figures from this set are quoted in the README and
  the docs.
- ``diagnose_generated.json``: the *generated* corpus of :mod:`catalogue.corpus`, messages
  really raised by every case's broken code run again with other sizes. Maps 0 and 1 are
  its tuning split; the held-out split (maps 2 to 9) is never read while writing rules
  and holds no message that a tuning split ever held (``diagnose_generated_retired.json``).

An answer to a public message is right when one of its cases carries one of the entry's
tags. An answer to a generated message is right when its first case is the generating
case or a case whose broken code raises a message of the same template in the corpus
(the message alone cannot tell those apart); the signature figure groups messages by
:func:`signature` instead (a template that keeps the numbers naming an axis or operand);
the strict figure counts the generating case only.
``python -m tests.diagnose_accuracy [FILE]`` prints the table of a public set,
``python -m tests.diagnose_accuracy --generated [--split tuning|heldout]`` the generated
corpus's, per framework and per case.
"""

from __future__ import annotations

import json
import re
import sys
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from catalogue.corpus import template
from catalogue.diagnose import diagnose

DATA = Path(__file__).parent / "data"
TUNING = DATA / "diagnose_messages.json"
HELDOUT = DATA / "diagnose_heldout.json"
GENERATED = DATA / "diagnose_generated.json"


def hits(entry: dict[str, Any]) -> tuple[bool, bool]:
    """Whether the first answer, and any of the first three, carry one of the entry's tags."""
    tags = set(entry["tags"])
    answers = [set(m.case.tags) & tags for m in diagnose(entry["message"], top=3)]
    return bool(answers and answers[0]), any(answers)


def accuracy(entries: list[dict[str, Any]]) -> dict[str, tuple[int, float, float]]:
    """``{group: (count, top-1, top-3)}`` for ``all``, each framework and each kind."""
    groups: dict[str, list[tuple[bool, bool]]] = defaultdict(list)
    for entry in entries:
        result = hits(entry)
        for group in ("all", entry["framework"], entry["kind"]):
            groups[group].append(result)
    order = ["all", "pytorch", "jax", "tensorflow", "numpy", "exception", "nan", "silent"]
    return {
        group: (
            len(results),
            sum(r[0] for r in results) / len(results),
            sum(r[1] for r in results) / len(results),
        )
        for group, results in sorted(groups.items(), key=lambda item: order.index(item[0]))
    }


def table(entries: list[dict[str, Any]]) -> str:
    """The accuracy as a markdown table."""
    lines = ["| messages | count | top-1 | top-3 |", "| --- | --- | --- | --- |"]
    for group, (count, top1, top3) in accuracy(entries).items():
        lines.append(f"| {group} | {count} | {top1:.0%} | {top3:.0%} |")
    return "\n".join(lines)


def generated(split: str | None = None) -> list[dict[str, Any]]:
    """The generated corpus's entries, of one split (``"tuning"``, ``"heldout"``) or all."""
    entries: list[dict[str, Any]] = json.loads(GENERATED.read_text("utf-8"))["entries"]
    return [e for e in entries if split is None or e["split"] == split]


_POSITION = re.compile(r"(?:dimension|axis|operand|dim|In\[|input|entry) ?=?$")


def signature(message: str) -> str:
    """Like :func:`catalogue.corpus.template`, but numbers that name a position stay.

    ``non-singleton dimension 1`` (heads) and ``dimension 3`` (keys) are then told apart;
    the numbers after ``dimension``, ``axis``, ``operand``, ``dim``, ``In[``, ``input`` and
    ``entry`` are kept, every other number becomes ``#``.
    """

    def number(match: re.Match[str]) -> str:
        before = message[max(0, match.start() - 12) : match.start()]
        return match.group() if _POSITION.search(before) else "#"

    numbers = re.sub(r"\s+", " ", re.sub(r"\d+", number, message)).strip()
    return re.sub(r"(\([#, ]*\))(?:, \1)+", r"\1, …", numbers)  # as template() does


def same_template_cases(
    entries: list[dict[str, Any]], key: Callable[[str], str] = template
) -> dict[str, set[str]]:
    """``{template: cases}``: the cases whose generated messages share each template.

    ``key`` may be :func:`signature` instead, for the finer grouping.
    """
    found: dict[str, set[str]] = defaultdict(set)
    for entry in entries:
        found[key(entry["message"])].add(entry["case"])
    return found


def generated_accuracy(
    entries: list[dict[str, Any]],
    corpus: list[dict[str, Any]] | None = None,
    key: Callable[[str], str] = template,
) -> dict[str, tuple[int, float, float, float]]:
    """``{group: (count, top-1, strict top-1, top-3)}`` for ``all``, each framework, each case.

    ``corpus`` (default: the whole generated corpus) says which cases share a template
    (with ``key=signature``: a signature) and so count as right too.
    """
    alike = same_template_cases(generated() if corpus is None else corpus, key)
    groups: dict[str, list[tuple[bool, bool, bool]]] = defaultdict(list)
    for entry in entries:
        right = alike[key(entry["message"])] | {entry["case"]}
        answers = [m.case.id for m in diagnose(entry["message"], top=3)]
        result = (
            bool(answers) and answers[0] in right,
            bool(answers) and answers[0] == entry["case"],
            bool(set(answers) & right),
        )
        for group in ("all", entry["framework"], f"case {entry['case']}"):
            groups[group].append(result)
    order = ["all", "pytorch", "jax", "tensorflow", "numpy"]
    return {
        group: (
            len(results),
            sum(r[0] for r in results) / len(results),
            sum(r[1] for r in results) / len(results),
            sum(r[2] for r in results) / len(results),
        )
        for group, results in sorted(
            groups.items(),
            key=lambda item: (order.index(item[0]) if item[0] in order else len(order), item[0]),
        )
    }


def generated_table(entries: list[dict[str, Any]]) -> str:
    """The generated corpus's accuracy as a markdown table."""
    lines = [
        "| messages | count | top-1 | top-1 (signature) | strict top-1 | top-3 |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    finer = generated_accuracy(entries, key=signature)
    for group, (count, top1, strict, top3) in generated_accuracy(entries).items():
        middle = finer[group][1]
        lines.append(
            f"| {group} | {count} | {top1:.0%} | {middle:.0%} | {strict:.0%} | {top3:.0%} |"
        )
    return "\n".join(lines)


def main(argv: list[str]) -> None:
    """Print the table of a public set, or of the generated corpus."""
    if "--generated" in argv:
        split = argv[argv.index("--split") + 1] if "--split" in argv else None
        print(generated_table(generated(split)))
        return
    path = Path(argv[0]) if argv else TUNING
    print(table(json.loads(path.read_text())))


if __name__ == "__main__":
    main(sys.argv[1:])
