"""One test per case: the contract, what broken() really does, fixed(), the torch snippet."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from catalogue import Case, all_cases
from catalogue.runner import run_broken, run_fixed, run_torch
from catalogue.taxonomy import TAGS

CASES = [pytest.param(case, id=case.id) for case in all_cases()]
KINDS = ("exception", "nan", "silent")


@pytest.mark.parametrize("case", CASES)
def test_contract(case: Case) -> None:
    m = case.module
    assert re.fullmatch(r"[a-z][a-z0-9_]*", case.id)
    doc = inspect.getdoc(m) or ""
    for section in ("What happens", "Why", "Fix"):
        assert section in doc, f"docstring lacks a {section!r} section"
    assert case.kind in KINDS
    assert isinstance(m.EXPECTED, type)
    assert issubclass(m.EXPECTED, BaseException)
    re.compile(m.MATCH)
    assert case.tags, "no tags"
    unknown = set(case.tags) - set(TAGS)
    assert not unknown, f"tags not in the taxonomy: {unknown}"
    assert callable(m.broken)
    assert callable(m.fixed)
    assert callable(getattr(m, "detect", None)) == (case.kind != "exception")
    if case.has_torch:
        assert isinstance(m.TORCH_EXPECTED, type)
        re.compile(m.TORCH_MATCH)
    for article, claim, reality in getattr(m, "SEED_CLAIMS", ()):
        assert article.endswith(".txt")
        assert claim
        assert reality
    source = inspect.getsource(m)
    for part in ("broken", "fixed"):
        assert f"# --8<-- [start:{part}]" in source
        assert f"# --8<-- [end:{part}]" in source


@pytest.mark.parametrize("case", CASES)
def test_broken_does_what_the_case_claims(case: Case) -> None:
    what, ok = run_broken(case)
    m = case.module
    assert ok, f"claimed {m.EXPECTED.__name__} /{m.MATCH}/, but broken() {what}"


@pytest.mark.parametrize("case", CASES)
def test_fixed_runs_clean(case: Case) -> None:
    what, ok = run_fixed(case)
    assert ok, what


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id) for c in all_cases() if c.has_torch])
def test_torch_snippet_raises_what_the_case_claims(case: Case) -> None:
    pytest.importorskip("torch")  # installed by the test setup, so this runs in CI
    what, ok = run_torch(case)
    m = case.module
    assert ok, f"claimed {m.TORCH_EXPECTED.__name__} /{m.TORCH_MATCH}/, torch_broken() {what}"


def test_taxonomy_copy_matches_shared_taxonomy() -> None:
    shared = Path(__file__).resolve().parents[3] / "shared" / "taxonomy.md"
    if not shared.exists():
        pytest.skip("shared/taxonomy.md is not beside this checkout")
    tags = re.findall(r"^\| `([a-z0-9-]+)` \|", shared.read_text(), re.M)
    assert tags == list(TAGS)


def test_catalogue_covers_every_tag_with_45_cases() -> None:
    cases = all_cases()
    assert len(cases) >= 45
    uncovered = set(TAGS) - {t for c in cases for t in c.tags}
    assert not uncovered, f"tags without a case: {sorted(uncovered)}"


def test_every_seed_example_is_answered() -> None:
    claims = [claim for c in all_cases() for _, claim, _ in getattr(c.module, "SEED_CLAIMS", ())]
    for article in ("000_acdb1d09df8d8964.txt", "004_4cf73df6a2e65df9.txt"):
        answered = {
            n
            for c in all_cases()
            for a, claim, _ in getattr(c.module, "SEED_CLAIMS", ())
            if a == article
            for n in re.findall(r"Example (\d)", claim)
        }
        assert answered >= {"1", "2", "3"}, (article, sorted(answered), claims)


def test_cases_named_by_refattn_errors_exist() -> None:
    import refattn

    ids = {c.id for c in all_cases()}
    package = Path(refattn.__file__).parent
    named = {
        case_id
        for path in package.rglob("*.py")
        for case_id in re.findall(r'see\("([a-z0-9_]+)"\)', path.read_text())
    }
    assert named, "refattn's errors name no catalogue case"
    assert named <= ids, f"refattn names cases that do not exist: {sorted(named - ids)}"
