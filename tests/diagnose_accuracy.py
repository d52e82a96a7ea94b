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

An answer is right when one of its cases carries one of the entry's tags.
``python -m tests.diagnose_accuracy [FILE]`` prints the table.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

from catalogue.diagnose import diagnose

DATA = Path(__file__).parent / "data"
TUNING = DATA / "diagnose_messages.json"
HELDOUT = DATA / "diagnose_heldout.json"


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


if __name__ == "__main__":
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else TUNING
    print(table(json.loads(path.read_text())))
