"""``python -m catalogue.record [ids...]``: write what every case variant does to outcomes.json.

Runs every variant of the given cases (all cases when none are given) whose framework is
installed and stores, per case and per framework, the variant's kind and the outcome
strings of :mod:`catalogue.runner` in ``catalogue/outcomes.json`` (sorted keys, one
deterministic text). Recorded variants of frameworks that are not installed here are
kept as they were. ``pytest catalogue`` and the docs build compare live outcomes with
this file, so a changed outcome fails both until it is recorded again.

Exits 1 (after writing) when a variant is not as its case claims.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from . import Case, all_cases, get
from .runner import installed, run

OUTCOMES = Path(__file__).with_name("outcomes.json")


def load() -> dict[str, dict[str, dict[str, Any]]]:
    """The recorded outcomes: ``{case_id: {framework: {"kind", "broken", "fixed"}}}``."""
    if not OUTCOMES.exists():
        return {}
    data: dict[str, dict[str, dict[str, Any]]] = json.loads(OUTCOMES.read_text("utf-8"))
    return data


def dump(data: dict[str, dict[str, dict[str, Any]]]) -> str:
    """The file's text for ``data``."""
    return json.dumps(data, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def record(cases: list[Case], data: dict[str, dict[str, dict[str, Any]]]) -> list[str]:
    """Update ``data`` with the live outcomes of ``cases``; return the variants not as claimed."""
    wrong = []
    for case in cases:
        outcome = run(case)
        old = data.get(case.id, {})
        entry = {fw: old[fw] for fw in outcome.not_installed if fw in old}
        for fw, variant in outcome.variants.items():
            entry[fw] = variant.record()
            if not variant.ok:
                wrong.append(f"{case.id} [{fw}]: {variant.broken} | fixed: {variant.fixed}")
        data[case.id] = entry
    return wrong


def main(argv: list[str] | None = None) -> int:
    """Record the given case ids (all when none) and report what is not as claimed."""
    ids = sys.argv[1:] if argv is None else argv
    data = load()
    if ids:
        cases = [get(i) for i in ids]
    else:
        cases = list(all_cases())
        data = {k: v for k, v in data.items() if k in {c.id for c in cases}}
    missing = [fw for fw in ("torch", "jax", "tf") if not installed(fw)]
    if missing:
        print(f"not installed, recorded outcomes kept: {', '.join(missing)}", file=sys.stderr)
    wrong = record(cases, data)
    OUTCOMES.write_text(dump(data), "utf-8")
    print(f"recorded {len(cases)} cases in {OUTCOMES}")
    for line in wrong:
        print(f"NOT AS CLAIMED: {line}", file=sys.stderr)
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
