"""The learned tag model (catalogue.tag_model) and how diagnose uses it."""

from __future__ import annotations

import json

import pytest

from catalogue import diagnose as diagnose_module
from catalogue import tag_model
from catalogue.diagnose import diagnose
from catalogue.tag_model import TagModel, features, fit, load, training_sha1
from tests.diagnose_accuracy import HELDOUT, TUNING


def test_the_stored_model_was_fitted_on_the_tuning_set_as_it_is_now() -> None:
    # fails when reports were added to the tuning set without
    # `python -m catalogue.diagnose --write-tag-model`
    model = load()
    assert tag_model.TRAINING.resolve() == TUNING.resolve()
    assert model.trained_on == training_sha1()
    assert model.reports == len(json.loads(TUNING.read_text()))


def test_no_held_out_report_is_in_the_training_set() -> None:
    training = {e["message"] for e in json.loads(TUNING.read_text())}
    heldout = {e["message"] for e in json.loads(HELDOUT.read_text())}
    assert not training & heldout


def test_refitting_reproduces_the_stored_model() -> None:
    reports = json.loads(TUNING.read_text())
    refit = fit(reports, trained_on=training_sha1())
    stored = load()
    assert refit.tags == stored.tags
    assert refit.vocabulary == stored.vocabulary
    # weights are stored rounded to 0.01: another BLAS may round a few the other way
    for report in reports[::7]:
        ours, theirs = (
            refit.probabilities(report["message"]),
            stored.probabilities(report["message"]),
        )
        assert max(abs(ours[t] - theirs[t]) for t in ours) < 0.02


def test_features_fold_numbers_and_split_identifiers() -> None:
    found = features("key_padding_mask of shape (2, 17)")
    assert {"key_padding_mask", "key", "padding", "mask", "of", "shape"} <= found
    assert "mask of" in found
    assert not any(ch.isdigit() and ch != "0" for f in found for ch in f)
    assert features("Size 4096") == features("size 77")


def test_fit_learns_which_words_go_with_which_tag() -> None:
    reports = [
        {"message": f"rotary cos sin table {i}", "tags": ["rotary-embedding"]} for i in range(10)
    ] + [{"message": f"past key value cache step {i}", "tags": ["kv-cache"]} for i in range(10)]
    model = fit(reports)
    rotary = model.probabilities("the rotary cos table looks wrong")
    cache = model.probabilities("the cache grows every step")
    assert rotary["rotary-embedding"] > 0.5 > rotary["kv-cache"]
    assert cache["kv-cache"] > 0.5 > cache["rotary-embedding"]
    # a text with no known word gets the prior, the same for both tags here
    empty = model.probabilities("zzz")
    assert empty["kv-cache"] == pytest.approx(empty["rotary-embedding"])


def _model_preferring(tag: str) -> TagModel:
    """A stand-in model whose likeliest tag, for every text, is ``tag``."""
    tags = tuple(sorted({tag, "mask-shape", "kv-cache"}))
    return TagModel(
        tags=tags,
        bias=tuple(2.0 if t == tag else -2.0 for t in tags),
        vocabulary=frozenset(),
        weights={},
        trained_on="",
        reports=123,
    )


MASK_MESSAGE = (
    "RuntimeError: The size of tensor a (7) must match the size of tensor b (5) at "
    "non-singleton dimension 3"
)


def _rules_only(message: str, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The answers diagnose gives without the model's step."""
    with monkeypatch.context() as patch:
        patch.setattr(diagnose_module, "_with_learned_family", lambda chosen, *_: list(chosen))
        return [m.case.id for m in diagnose(message, top=5)]


def test_the_family_the_words_point_to_takes_the_third_answer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    before = _rules_only(MASK_MESSAGE, monkeypatch)
    tags = {card.id: card.tags for card in diagnose_module.cards()}
    assert not any("softmax-axis" in tags[case] for case in before[:3])
    monkeypatch.setattr(tag_model, "load", lambda: _model_preferring("softmax-axis"))
    after = diagnose(MASK_MESSAGE, top=5)
    assert [m.case.id for m in after[:2]] == before[:2]
    assert "softmax-axis" in after[2].case.tags
    assert "softmax-axis" in after[2].why
    assert "123 labelled public reports" in after[2].why
    assert [m.case.id for m in after[3:]] == before[2:4]
    assert len({m.case.id for m in after}) == len(after)


def test_nothing_changes_when_an_answer_already_has_that_family(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    before = _rules_only(MASK_MESSAGE, monkeypatch)
    tag = {card.id: card.tags for card in diagnose_module.cards()}[before[1]][0]
    monkeypatch.setattr(tag_model, "load", lambda: _model_preferring(tag))
    assert [m.case.id for m in diagnose(MASK_MESSAGE, top=5)] == before


@pytest.mark.parametrize(
    "message",
    [
        "ModuleNotFoundError: No module named 'flash_attn'",  # outside attention: no case
        # numbers that name a family outright (8 query heads against 2 key/value heads)
        "RuntimeError: The size of tensor a (8) must match the size of tensor b (2) at "
        "non-singleton dimension 1",
    ],
)
def test_an_empty_or_firm_answer_is_left_as_the_rules_gave_it(
    message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = [m.case.id for m in diagnose(message, top=5)]
    monkeypatch.setattr(tag_model, "load", lambda: _model_preferring("softmax-axis"))
    assert [m.case.id for m in diagnose(message, top=5)] == before
