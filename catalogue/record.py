"""``python -m catalogue.record [ids...]``: write what every case variant does to outcomes.json.

Runs every variant of the given cases (all cases when none are given) whose framework is
installed and stores, per case and per framework, the variant's kind and the outcome
strings of :mod:`catalogue.runner` in ``catalogue/outcomes.json`` (sorted keys, one
deterministic text). Recorded variants of frameworks that are not installed here are
kept as they were. The file is re-read under a lock just before it is written, so
concurrent runs for different cases do not undo each other. ``pytest catalogue`` and the
docs build compare live outcomes with this file, so a changed outcome fails both until it
is recorded again.

Exits 1 (after writing) when a variant is not as its case claims.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
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


def record(cases: list[Case]) -> tuple[dict[str, dict[str, dict[str, Any]]], list[str]]:
    """The live outcomes of ``cases`` (variants that ran), and the variants not as claimed."""
    entries: dict[str, dict[str, dict[str, Any]]] = {}
    wrong = []
    for case in cases:
        outcome = run(case)
        entries[case.id] = {fw: dict(v.record()) for fw, v in outcome.variants.items()}
        wrong += [
            f"{case.id} [{fw}]: {v.broken} | fixed: {v.fixed}"
            for fw, v in outcome.variants.items()
            if not v.ok
        ]
    return entries, wrong


@contextmanager
def _locked() -> Iterator[None]:
    """Hold a lock on the file while it is read, updated and written back (POSIX only)."""
    try:
        import fcntl
    except ImportError:  # Windows: no lock; concurrent record runs are then unsafe
        yield
        return
    name = hashlib.sha256(str(OUTCOMES.resolve()).encode()).hexdigest()[:16]
    with open(Path(tempfile.gettempdir()) / f"catalogue-outcomes-{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def update(cases: list[Case], entries: dict[str, dict[str, dict[str, Any]]], full: bool) -> None:
    """Write ``entries`` into the file as it is now (others may have recorded meanwhile).

    Recorded variants of frameworks not installed here are kept; with ``full``, cases that
    no longer exist are dropped.
    """
    with _locked():
        data = load()
        if full:
            data = {k: v for k, v in data.items() if k in entries}
        for case in cases:
            old = data.get(case.id, {})
            kept = {
                fw: old[fw]
                for fw in case.variants
                if fw in old and fw not in entries[case.id] and not installed(fw)
            }
            data[case.id] = {**kept, **entries[case.id]}
        temporary = OUTCOMES.with_name(f".outcomes.{os.getpid()}.json")
        temporary.write_text(dump(data), "utf-8")
        os.replace(temporary, OUTCOMES)


def main(argv: list[str] | None = None) -> int:
    """Record the given case ids (all when none) and report what is not as claimed."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up chatter
    ids = sys.argv[1:] if argv is None else argv
    cases = [get(i) for i in ids] if ids else list(all_cases())
    missing = [fw for fw in ("torch", "jax", "tf") if not installed(fw)]
    if missing:
        print(f"not installed, recorded outcomes kept: {', '.join(missing)}", file=sys.stderr)
    entries, wrong = record(cases)
    update(cases, entries, full=not ids)
    print(f"recorded {len(cases)} cases in {OUTCOMES}")
    for line in wrong:
        print(f"NOT AS CLAIMED: {line}", file=sys.stderr)
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
