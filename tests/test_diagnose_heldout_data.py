"""The held-out set ``tests/data/diagnose_heldout.json`` is well formed.

It checks the file's form only (keys, values, tags, sources): it never runs ``diagnose``
on the messages, so collecting or checking the set says nothing about what diagnose answers.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from catalogue.taxonomy import TAGS

DATA = Path(__file__).parent / "data"
HELDOUT = DATA / "diagnose_heldout.json"
TUNING = DATA / "diagnose_messages.json"

KEYS = {"message", "framework", "kind", "tags", "source", "note"}
FRAMEWORKS = {"pytorch", "jax", "tensorflow", "numpy"}
KINDS = {"exception", "nan", "silent"}


def _load(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as f:
        data = json.load(f)
    assert isinstance(data, list)
    return data


@pytest.fixture(scope="module")
def entries() -> list[dict[str, Any]]:
    return _load(HELDOUT)


def test_parses_to_a_non_empty_list_of_objects(entries: list[dict[str, Any]]) -> None:
    assert len(entries) >= 100
    assert all(isinstance(e, dict) for e in entries)


def test_every_entry_has_exactly_the_keys(entries: list[dict[str, Any]]) -> None:
    bad = [(i, sorted(set(e) ^ KEYS)) for i, e in enumerate(entries) if set(e) != KEYS]
    assert bad == []


def test_values_are_well_formed(entries: list[dict[str, Any]]) -> None:
    for i, e in enumerate(entries):
        assert isinstance(e["message"], str), i
        # a traceback may run longer than a symptom sentence (round 9 has four of 671-775)
        assert 0 < len(e["message"]) <= (800 if e["kind"] == "exception" else 600), i
        assert e["framework"] in FRAMEWORKS, (i, e["framework"])
        assert e["kind"] in KINDS, (i, e["kind"])
        assert isinstance(e["note"], str), i
        assert e["note"].strip(), i
        assert isinstance(e["source"], str), i
        assert e["source"].startswith("https://"), i


def test_tags_are_taxonomy_tags(entries: list[dict[str, Any]]) -> None:
    for i, e in enumerate(entries):
        tags = e["tags"]
        assert isinstance(tags, list), (i, tags)
        assert 1 <= len(tags) <= 3, (i, tags)
        assert len(set(tags)) == len(tags), (i, tags)
        assert [t for t in tags if t not in TAGS] == [], (i, tags)


def test_sources_are_unique(entries: list[dict[str, Any]]) -> None:
    sources = [e["source"] for e in entries]
    assert len(sources) == len(set(sources))


def test_no_source_thread_shared_with_the_tuning_set(entries: list[dict[str, Any]]) -> None:
    tuning = {e["source"].rstrip("/") for e in _load(TUNING)}
    shared = sorted({e["source"].rstrip("/") for e in entries} & tuning)
    assert shared == []
