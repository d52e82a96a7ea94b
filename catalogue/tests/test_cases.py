"""One test per case and framework: the contract, what each variant really does, the record.

torch, jax and tensorflow-cpu are installed by the test setup (CI installs all of them),
so a variant whose framework cannot be imported fails rather than skips.
"""

from __future__ import annotations

import importlib
import inspect
import re
from functools import cache
from pathlib import Path

import pytest

from catalogue import FRAMEWORK_MODULES, FRAMEWORKS, KINDS, Case, all_cases
from catalogue.record import OUTCOMES, dump, load
from catalogue.runner import VariantOutcome, resolve, run_broken, run_fixed, run_variant
from catalogue.taxonomy import TAGS

CASES = [pytest.param(case, id=case.id) for case in all_cases()]
VARIANTS = [
    pytest.param(case, fw, id=f"{case.id}-{fw}")
    for case in all_cases()
    for fw in case.variants
    if fw != "numpy"
]
RECORDED = load()


@cache
def _outcome(case: Case, framework: str) -> VariantOutcome | None:
    """Each variant runs once per session, for both the claim and the record tests."""
    return run_variant(case, framework)


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
    for article, claim, reality in getattr(m, "SEED_CLAIMS", ()):
        assert article.endswith(".txt")
        assert claim
        assert reality
    source = inspect.getsource(m)
    for part in ("broken", "fixed"):
        assert f"# --8<-- [start:{part}]" in source
        assert f"# --8<-- [end:{part}]" in source
    if "\nSources:\n" in doc:
        assert case.sources, "a Sources section without URLs"
        tail = doc.split("\nSources:\n", 1)[1]
        assert not re.search(r"^[A-Z][A-Za-z ]+:$", tail, re.M), "Sources is not the last section"


@pytest.mark.parametrize("case", CASES)
def test_framework_variant_contract(case: Case) -> None:
    m = case.module
    for fw in FRAMEWORKS[1:]:
        up = fw.upper()
        variant = case.variant(fw)
        if hasattr(m, f"{up}_ABSENT"):
            assert variant is None, f"{up}_ABSENT and {fw}_broken() both given"
            assert str(getattr(m, f"{up}_ABSENT")).strip()
        if variant is None:
            for name in ("KIND", "EXPECTED", "MATCH", "NOTE", "FIXED_RTOL"):
                assert not hasattr(m, f"{up}_{name}"), f"{up}_{name} without {fw}_broken()"
            assert not hasattr(m, f"{fw}_fixed"), f"{fw}_fixed() without {fw}_broken()"
            continue
        assert variant.kind in KINDS
        assert isinstance(variant.expected, type | str)
        if isinstance(variant.expected, str):
            assert re.fullmatch(r"[a-z_]+(\.[A-Za-z_]+)+", variant.expected)
        else:
            assert issubclass(variant.expected, BaseException)
        re.compile(variant.match)
        if variant.kind != "exception":
            assert callable(getattr(m, "detect", None)), f"{fw} is {variant.kind}, no detect()"
        if variant.note is not None:
            assert isinstance(variant.note, str)
            assert variant.note.strip()


@pytest.mark.parametrize("case", CASES)
def test_broken_does_what_the_case_claims(case: Case) -> None:
    what, ok = run_broken(case)
    m = case.module
    assert ok, f"claimed {m.EXPECTED.__name__} /{m.MATCH}/, but broken() {what}"


@pytest.mark.parametrize("case", CASES)
def test_fixed_runs_clean(case: Case) -> None:
    what, ok = run_fixed(case)
    assert ok, what


@pytest.mark.parametrize(("case", "framework"), VARIANTS)
def test_framework_variant_does_what_the_case_claims(case: Case, framework: str) -> None:
    importlib.import_module(FRAMEWORK_MODULES[framework])  # installed in CI: fail, not skip
    variant = case.variant(framework)
    assert variant is not None
    outcome = _outcome(case, framework)
    assert outcome is not None
    assert isinstance(resolve(variant.expected), type)
    assert outcome.broken_ok, (
        f"claimed {variant.expected_name} /{variant.match}/, {framework} broken {outcome.broken}"
    )
    assert outcome.fixed_ok is not False, f"{framework} fixed: {outcome.fixed}"


@pytest.mark.parametrize(("case", "framework"), VARIANTS)
def test_framework_variant_outcome_is_recorded(case: Case, framework: str) -> None:
    importlib.import_module(FRAMEWORK_MODULES[framework])
    outcome = _outcome(case, framework)
    assert outcome is not None
    recorded = RECORDED.get(case.id, {}).get(framework)
    assert recorded == outcome.record(), (
        "outcome differs from catalogue/outcomes.json; if the change is meant, run "
        "`python -m catalogue.record " + case.id + "`"
    )


@pytest.mark.parametrize("case", CASES)
def test_numpy_outcome_is_recorded(case: Case) -> None:
    outcome = _outcome(case, "numpy")
    assert outcome is not None
    assert RECORDED.get(case.id, {}).get("numpy") == outcome.record(), (
        f"outcome differs from catalogue/outcomes.json; run `python -m catalogue.record {case.id}`"
    )


def test_record_file_is_as_record_writes_it() -> None:
    assert OUTCOMES.read_text("utf-8") == dump(RECORDED)


def test_record_holds_exactly_the_variants() -> None:
    live = {c.id: set(c.variants) for c in all_cases()}
    recorded = {k: set(v) for k, v in RECORDED.items()}
    assert recorded == live


def test_taxonomy_copy_matches_shared_taxonomy() -> None:
    shared = Path(__file__).resolve().parents[3] / "shared" / "taxonomy.md"
    if not shared.exists():
        pytest.skip("shared/taxonomy.md is not beside this checkout")
    tags = re.findall(r"^\| `([a-z0-9-]+)` \|", shared.read_text(), re.M)
    assert tags == list(TAGS)


def test_catalogue_covers_every_tag_with_70_cases() -> None:
    """Issue 14's size target, and every taxonomy tag shown by some case."""
    cases = all_cases()
    assert len(cases) >= 70
    uncovered = set(TAGS) - {t for c in cases for t in c.tags}
    assert not uncovered, f"tags without a case: {sorted(uncovered)}"


def _share(framework: str) -> float:
    cases = all_cases()
    return sum(framework in c.variants for c in cases) / len(cases)


def test_most_cases_have_a_pytorch_variant() -> None:
    """Issue 14: at least 80% of cases show the mistake in PyTorch."""
    missing = [c.id for c in all_cases() if "torch" not in c.variants]
    assert _share("torch") >= 0.8, f"{_share('torch'):.0%}; without torch: {missing}"


def test_half_the_cases_have_a_jax_variant() -> None:
    """Issue 14: at least 50% of cases show the mistake in JAX."""
    assert _share("jax") >= 0.5, f"{_share('jax'):.0%}"


TF_TAGS = ("mask-shape", "head-split", "softmax-axis", "fp16-overflow")


def test_tensorflow_variant_for_the_families_tf_users_hit() -> None:
    """Issue 14: every case of the mask-shape, head-split, softmax-axis, fp16-overflow tags."""
    missing = [c.id for c in all_cases() if set(c.tags) & set(TF_TAGS) and "tf" not in c.variants]
    assert not missing, f"cases tagged {TF_TAGS} without a TensorFlow variant: {missing}"


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
