"""diagnose: real messages from public threads, and messages varied by hand."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from catalogue.diagnose import (
    cards,
    diagnose,
    index_is_current,
    nearest_family,
    report_kind,
    words,
)
from catalogue.readings import named_sizes
from catalogue.taxonomy import TAGS
from refattn import attention
from tests.diagnose_accuracy import HELDOUT, TUNING, accuracy, table

OUTSIDE = Path(__file__).parent / "data" / "diagnose_outside.json"
GQA_MESSAGE = (
    "RuntimeError: The size of tensor a (8) must match the size of tensor b (2) at "
    "non-singleton dimension 1"
)


def _hit(message: str, tags: set[str], k: int) -> bool:
    return any(set(m.case.tags) & tags for m in diagnose(message, top=k))


def test_tuning_messages_are_labelled_and_found() -> None:
    entries = json.loads(TUNING.read_text())
    assert len(entries) >= 120
    assert {e["framework"] for e in entries} == {"numpy", "pytorch", "jax", "tensorflow"}
    for entry in entries:
        assert set(entry["tags"]) <= set(TAGS), entry
        assert entry["source"].startswith("http"), entry
        assert entry["kind"] in {"exception", "nan", "silent"}, entry
    print(table(entries))
    top3 = accuracy(entries)["all"][2]
    assert top3 >= 0.85  # the set the rules were written against: a regression guard only


def test_messages_from_outside_attention_get_no_case() -> None:
    # tests/data/diagnose_outside_ambiguous.json keeps apart 36 held-out messages (rounds
    # 4-8) whose cause lay outside attention but whose words are those of attention errors
    # too (a float16 overflow, a width mismatch of a MatMul named AttentionDecoder, NaN from
    # scaled_dot_product_attention in float16, weights that do not sum to one under
    # dropout, a bare "size of tensor a (98) must match the size of tensor b (96)", a
    # device-side assert, a tokenizer's "781 > 512", ...): nothing in them tells the two
    # apart, so they are not required to get no case
    for message in json.loads(OUTSIDE.read_text()):
        assert diagnose(message) == [], message
        assert nearest_family(message) is None, message


def test_every_shape_or_mask_message_gets_an_answer() -> None:
    entries = json.loads(TUNING.read_text())
    named = [e for e in entries if re.search(r"shape|mask|size of tensor", e["message"], re.I)]
    assert len(named) >= 40
    unanswered = [e["message"][:80] for e in named if not diagnose(e["message"])]
    assert unanswered == []


def test_answers_say_different_things() -> None:
    message = (
        "RuntimeError: The size of tensor a (8) must match the size of tensor b (2) at "
        "non-singleton dimension 1"
    )
    answers = diagnose(message, top=3)
    assert len(answers) == 3
    assert len({a.why for a in answers}) == 3
    assert len({a.fix for a in answers}) == 3
    assert all(a.fix for a in answers)


def test_sizes_on_the_head_axis_read_as_query_and_key_value_heads() -> None:
    message = (
        "RuntimeError: The size of tensor a (8) must match the size of tensor b (2) at "
        "non-singleton dimension 1"
    )
    best = diagnose(message)[0]
    assert "gqa-heads" in best.case.tags
    assert "8 query heads against 2 key/value heads" in best.why


@pytest.mark.parametrize(
    ("message", "axis_words"),
    [
        (
            "ValueError: Incompatible shapes for broadcasting: ((3, 12, 7, 7), (1, 1, 3, 7))",
            "query",
        ),
        (
            "InvalidArgumentError: condition [2,6], then [2,4,5,6], and else [] must be "
            "broadcastable [Op:SelectV2]",
            "padding mask",
        ),
        (
            "RuntimeError: The size of tensor a (230) must match the size of tensor b (8) at "
            "non-singleton dimension 3",
            "key length",
        ),
    ],
)
def test_broadcast_shapes_name_the_axis_that_disagrees(message: str, axis_words: str) -> None:
    answers = diagnose(message)
    assert answers, message
    assert axis_words in answers[0].why
    assert {"mask-shape", "mask-broadcast-axis", "kv-cache"} & set(answers[0].case.tags)


def test_nearest_family_of_a_message_no_case_explains() -> None:
    assert nearest_family("ValueError: Dimensions must be equal, but are 3 and 5") == "shape"
    assert nearest_family("KeyError: 'input_ids'") is None


@pytest.mark.parametrize(
    ("message", "tags"),
    [
        pytest.param(
            "ValueError: matmul: Input operand 1 has a mismatch in its core dimension 0, with "
            "gufunc signature (n?,k),(k,m?)->(n?,m?) (size 96 is different from 48)",
            {"qk-dim-mismatch", "missing-transpose"},
            id="numpy-matmul",
        ),
        pytest.param(
            "TypeError: dot_general requires contracting dimensions to have the same shape, "
            "got (32,) and (48,).",
            {"qk-dim-mismatch"},
            id="jax-dot-general",
        ),
        pytest.param(
            "RuntimeError: The size of tensor a (7) must match the size of tensor b (12) at "
            "non-singleton dimension 3",
            {"mask-shape", "mask-broadcast-axis"},
            id="torch-size",
        ),
        pytest.param(
            "ValueError: operands could not be broadcast together with shapes (4,2,9,9) (4,9)",
            {"mask-shape", "mask-broadcast-axis"},
            id="numpy-broadcast",
        ),
        pytest.param(
            "IndexError: index 700 is out of bounds for axis 0 with size 512",
            {"position-out-of-range", "token-out-of-range"},
            id="numpy-index",
        ),
        pytest.param(
            "tensorflow.python.framework.errors_impl.InvalidArgumentError: "
            "indices[3,9] = 30522 is not in [0, 30522) [Op:ResourceGather]",
            {"token-out-of-range", "position-out-of-range"},
            id="tf-gather",
        ),
        pytest.param(
            "RuntimeError: shape '[4, 10, 6, 85]' is invalid for input of size 20480",
            {"head-split"},
            id="torch-view",
        ),
        pytest.param(
            "ValueError: cannot reshape array of size 3072 into shape (2,8,5,40)",
            {"head-split"},
            id="numpy-reshape",
        ),
        pytest.param("IndexError: list index out of range", {"head-index"}, id="list-index"),
        pytest.param(
            "my loss turns into nan as soon as I pass the padding mask",
            {"fully-masked-row", "nan-in-padding", "inf-arithmetic"},
            id="symptom-nan-mask",
        ),
        pytest.param(
            "nan outputs in fp16 training with masked_fill(-1e9)",
            {"fp16-overflow", "inf-arithmetic"},
            id="symptom-fp16",
        ),
        pytest.param(
            "RuntimeError: The size of tensor a (16) must match the size of tensor b (128) at "
            "non-singleton dimension 3",
            {"mask-shape", "causal-alignment"},
            id="torch-size-d3",
        ),
        pytest.param(
            "RuntimeError: The size of tensor a (4) must match the size of tensor b (2) at "
            "non-singleton dimension 0",
            {"batch-mismatch"},
            id="torch-size-batch",
        ),
        pytest.param(
            "RuntimeError: mat1 and mat2 shapes cannot be multiplied (77x1024 and 768x320)",
            {"projection-width"},
            id="torch-linear",
        ),
        pytest.param(
            "tensorflow.python.framework.errors_impl.InvalidArgumentError: Incompatible shapes:"
            " [8,12,64,64] vs. [8,64] [Op:AddV2]",
            {"mask-shape"},
            id="tf-incompatible",
        ),
        pytest.param(
            "ValueError: Incompatible shapes for broadcasting: shapes=[(8, 64), (8, 12, 64, 64)]",
            {"mask-shape"},
            id="jax-broadcast",
        ),
        pytest.param(
            "RuntimeError: value cannot be converted to type c10::Half without overflow",
            {"fp16-overflow"},
            id="torch-half",
        ),
        pytest.param(
            "RuntimeError: Expected attn_mask dtype to be bool or float or to match query "
            "dtype, but got attn_mask.dtype: long int and  query.dtype: c10::Half instead.",
            {"mask-dtype"},
            id="torch-sdpa-dtype",
        ),
        pytest.param(
            "RuntimeError: Sizes of tensors must match except in dimension 2. Expected size 32 "
            "but got size 31 for tensor number 1 in the list.",
            {"kv-cache", "batch-mismatch"},
            id="torch-cat",
        ),
        pytest.param(
            "AssertionError: embed_dim must be divisible by num_heads",
            {"head-split"},
            id="torch-mha-heads",
        ),
        pytest.param(
            "AssertionError: was expecting embedding dimension of 512, but got 768",
            {"projection-width", "layout-confusion"},
            id="torch-mha-embed",
        ),
        pytest.param("IndexError: tuple index out of range", {"head-index"}, id="tuple-index"),
        pytest.param(
            "numpy.exceptions.AxisError: axis 3 is out of bounds for array of dimension 3",
            {"axis-out-of-range"},
            id="numpy-axis",
        ),
        pytest.param(
            "generation with kv cache gives a different answer than without the cache",
            {"kv-cache", "causal-alignment"},
            id="symptom-cache",
        ),
        pytest.param(
            "the decoder can see future tokens during training",
            {"mask-missing"},
            id="symptom-future",
        ),
        pytest.param(
            "my attention weights do not sum to one",
            {"mask-after-softmax", "softmax-axis"},
            id="symptom-sum",
        ),
    ],
)
def test_varied_messages_find_their_family(message: str, tags: set[str]) -> None:
    assert _hit(message, tags, 3), [(m.case.id, m.score) for m in diagnose(message)]


def test_answer_uses_the_numbers_of_the_message() -> None:
    message = "ValueError: matmul: ... (size 128 is different from 64)"
    best = diagnose(
        "ValueError: matmul: Input operand 1 has a mismatch in its core dimension"
        " 0, with gufunc signature (n?,k),(k,m?)->(n?,m?) (size 128 is different"
        " from 64)"
    )[0]
    assert "128" in best.why
    assert "64" in best.why, message


def test_cli_reads_a_traceback_from_stdin_and_prints_json() -> None:
    traceback = (
        'Traceback (most recent call last):\n  File "model.py", line 12, in forward\n'
        "    scores = torch.matmul(q, k.transpose(-2, -1))\n"
        "RuntimeError: Expected size for first two dimensions of batch2 tensor to be: "
        "[10, 64] but got: [10, 128].\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "catalogue", "diagnose", "--json", "--top", "2"],
        input=traceback,
        capture_output=True,
        text=True,
        check=True,
    )
    rows = json.loads(result.stdout)
    assert rows[0]["id"] == "qk_dim_mismatch"
    assert set(rows[0]) >= {"id", "title", "tags", "score"}
    assert rows[0]["score"] >= rows[-1]["score"]


@pytest.mark.parametrize(
    ("case_id", "key_features", "options"),
    [
        pytest.param("qk_dim_mismatch", 6, {}, id="qk"),
        pytest.param(
            "three_d_mask_read_as_heads", 8, {"attend_mask": np.ones((2, 5, 5), bool)}, id="3d"
        ),
        pytest.param(
            "lengths_longer_than_padded", 8, {"key_lengths": np.array([9, 2])}, id="lengths"
        ),
    ],
)
def test_refattn_errors_lead_to_the_case_they_name(
    case_id: str, key_features: int, options: dict[str, Any]
) -> None:
    q = np.ones((2, 4, 5, 8))
    k = np.ones((2, 4, 5, key_features))
    with pytest.raises(ValueError, match=case_id) as raised:
        attention(q, k, q, **options)
    assert diagnose(str(raised.value))[0].case.id == case_id


def test_heldout_accuracy_is_measured_on_threads_the_rules_never_saw() -> None:
    tuning_sources = {e["source"] for e in json.loads(TUNING.read_text())}
    entries = json.loads(HELDOUT.read_text())
    assert len(entries) >= 100
    assert not {e["source"] for e in entries} & tuning_sources
    print(table(entries))
    _count, top1, top3 = accuracy(entries)["all"]
    # Rounds 9 (52 messages) and 10 (63), each from two collectors, each measured once
    # with diagnose frozen (the rules of e5c139f, catalogue.tag_model fitted on rounds 0-8)
    # before anyone who wrote them saw the set: round 9 26 / 52 first, 41 / 52 in the first
    # three; round 10 24 / 63 and 39 / 63 (the rules alone: 26, 37 and 24, 34). A floor
    # against regressions, not a target (the issue asks for 75 % / 90 %).
    assert top3 >= 80 / 115
    assert top1 >= 50 / 115


def test_heldout_outside_messages_mostly_get_no_case() -> None:
    # 50 messages from outside attention collected with rounds 9 (21) and 10 (29), never
    # tuned on, chosen by the collectors as ones that look like attention at first sight.
    # Measured once with diagnose frozen (e5c139f's rules): 9 and 8 get no case. The 33
    # answered: bare "The size of tensor a (640) must match the size of tensor b (320)"
    # from a convolution, a LoRA or a loss, checkpoints whose position table has another
    # size, a converter that lacks scaled_dot_product_attention, float16 overflow from
    # outside the scores, attention maps post-processed wrongly...
    # A floor against regressions: the issue wants none answered.
    entries = json.loads((OUTSIDE.parent / "diagnose_outside_heldout.json").read_text())
    answered = [e["message"] for e in entries if diagnose(e["message"])]
    assert len(entries) == 50
    assert len(answered) <= 33, answered


def test_cli_says_when_no_case_explains_a_message() -> None:
    outside = subprocess.run(
        [sys.executable, "-m", "refattn", "diagnose", "KeyError: 'input_ids'"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert outside.returncode == 1
    assert "no catalogue case explains this message" in outside.stdout
    answered = subprocess.run(
        [sys.executable, "-m", "refattn", "diagnose", "--json", "--top", "2", GQA_MESSAGE],
        capture_output=True,
        text=True,
        check=True,
    )
    rows = json.loads(answered.stdout)
    assert rows[0]["fix"].startswith("Tell the kernel (enable_gqa=True")
    assert rows[0]["fix"] != rows[1]["fix"]


def test_the_index_holds_what_the_case_modules_say() -> None:
    # diagnose reads the cases from catalogue/diagnose_index.json (no 73 imports per
    # answer); a stale index is still never used, but the committed one must be current:
    # python -m catalogue.diagnose --write-index
    assert index_is_current(), "stale: run python -m catalogue.diagnose --write-index"
    from catalogue import all_cases

    assert [c.id for c in cards()] == [c.id for c in all_cases()]
    for card, case in zip(cards(), all_cases(), strict=True):
        assert card.tags == case.tags
        assert card.messages == tuple(getattr(case.module, "MESSAGES", ()))
        assert card.module is case.module


ISSUE_EXAMPLES = [
    "ValueError: Incompatible shapes for broadcasting: ((3, 12, 7, 7), (1, 1, 3, 7))",
    "InvalidArgumentError: condition [2,6], then [2,4,5,6], and else [] must be broadcastable "
    "[Op:SelectV2]",
    "TypeError: add: arrays must have the same number of dimensions, got {2, 4}",
    "attention weights are all the same",
    "attention softmax results are all 1.0",
    "loss goes to ~0 after a few steps with the tutorial's look-ahead mask",
    "generation with left padding gives garbage for short prompts",
]


def _sentences(why: str) -> list[str]:
    return [s.strip(" .") for s in re.split(r"(?<=\.)\s+", why) if s.strip(" .")]


def test_no_two_answers_share_a_sentence() -> None:
    messages = [e["message"] for e in json.loads(TUNING.read_text())]
    messages += [e["message"] for e in json.loads(HELDOUT.read_text())]
    for message in [*messages, *ISSUE_EXAMPLES, GQA_MESSAGE]:
        seen: dict[str, str] = {}
        for answer in diagnose(message, top=5):
            for sentence in _sentences(answer.why):
                assert sentence not in seen, (message[:80], sentence, seen[sentence])
                seen[sentence] = answer.case.id


@pytest.mark.parametrize(
    ("message", "family"),
    [
        (ISSUE_EXAMPLES[0], "mask"),
        (ISSUE_EXAMPLES[1], "mask"),
        (ISSUE_EXAMPLES[2], "mask"),
        (ISSUE_EXAMPLES[3], "numerics"),
        (ISSUE_EXAMPLES[4], "numerics"),
        (ISSUE_EXAMPLES[5], "mask"),
        (ISSUE_EXAMPLES[6], "positions"),
    ],
)
def test_the_issue_examples_get_their_family_first(message: str, family: str) -> None:
    best = diagnose(message)[0]
    assert family in {TAGS[tag][0] for tag in best.case.tags} | set(best.case.tags), best.case.id


@pytest.mark.parametrize(
    "message",
    [
        "ModuleNotFoundError: No module named 'xformers'",
        "OSError: [Errno 28] No space left on device",
        "RuntimeError: CUDA error: an illegal memory access was encountered",
        "ValueError: Tokenizer class LlamaTokenizerFast does not exist or is not currently "
        "imported.",
        "ImportError: cannot import name 'scaled_dot_product_attention' from 'torch.nn.functional'",
        "AssertionError: Torch not compiled with CUDA enabled",
        "`cutlassF` is not supported because:\n    xFormers was not built with CUDA support",
    ],
)
def test_other_errors_from_outside_attention_get_no_case(message: str) -> None:
    assert diagnose(message) == []


@pytest.mark.parametrize(
    "message",
    [
        "my attention mask seems wrong",
        "the shapes of my attention inputs do not match",
        "RuntimeError: mask has the wrong shape",
        "ValueError: could not broadcast input array from shape (4,5) into shape (4,)",
    ],
)
def test_a_message_naming_a_shape_or_mask_problem_is_answered(message: str) -> None:
    assert diagnose(message)


@pytest.mark.parametrize(
    ("got", "want", "tag"),
    [((77, 77), (4, 4), "layout-confusion"), ((10, 10), (32, 32), "layout-confusion")],
)
def test_mha_mask_for_another_length_reads_as_batch_first(
    got: tuple[int, int], want: tuple[int, int], tag: str
) -> None:
    message = (
        f"RuntimeError: The shape of the 2D attn_mask is torch.Size([{got[0]}, {got[1]}]), "
        f"but should be ({want[0]}, {want[1]})."
    )
    best = diagnose(message)[0]
    assert tag in best.case.tags
    assert f"is {want[0]} your batch size" in best.why


def test_min_score_lies_between_outside_and_labelled_messages() -> None:
    # MIN_SCORE's calibration (see its docstring), re-measured: without the threshold, no
    # outside message reaches it and the first answer of nearly every labelled tuning
    # message does (a few public reports hold no evidence at all: "the following error is
    # given: [screenshot]")
    import catalogue.diagnose as module

    labelled = json.loads(TUNING.read_text())  # calibrated on tuning data only
    outside = json.loads(OUTSIDE.read_text())
    threshold = module.MIN_SCORE
    try:
        module.MIN_SCORE = 0.0
        inside_best = [diagnose(e["message"], top=1) for e in labelled]
        outside_best = [diagnose(m, top=1) for m in outside]
    finally:
        module.MIN_SCORE = threshold
    reached = [bool(found) and found[0].score > threshold for found in inside_best]
    # 33 of the 864 tuning reports hold no evidence diagnose can read ("produce incorrect
    # output on image inputs", "the code example does not work", an einsum whose weight
    # layout is only described in prose): they stay below the threshold. 12 of them came
    # with round 8, once it joined the tuning data ("the video that is generating is all
    # black", "This is 10x difference, so I must be doing something wrong"): before it,
    # 21 of 801 stayed below; now 33 of 864 (96.2 % reach it), the count held as measured
    assert len(labelled) - sum(reached) <= 33
    assert max((found[0].score for found in outside_best if found), default=0.0) < threshold


SYMPTOM_WORDINGS = [
    (
        "After switching to bf16 the model's long-context perplexity got much worse",
        {"reduced-precision", "rotary-embedding"},
    ),
    (
        "NaN loss appears only when a batch contains a very short sequence",
        {"fully-masked-row", "ragged-lengths"},
    ),
    (
        "Model output changes depending on how much padding is in the batch",
        {"mask-missing", "mask-broadcast-axis", "mask-polarity"},
    ),
    (
        "decoder generates the same token repeatedly with the kv cache but is fine without cache",
        {"kv-cache", "causal-alignment"},
    ),
    (
        "Perplexity is suspiciously good on validation; the model cheats by looking at "
        "future tokens",
        {"mask-missing", "causal-alignment", "mask-polarity"},
    ),
    (
        "Attention probabilities are all 0.25 for 4 tokens",
        {"softmax-axis", "fully-masked-row", "mask-polarity", "missing-scale"},
    ),
    ("Training loss doesn't decrease when using a large head dimension of 256", {"missing-scale"}),
    (
        "Results differ between flash_attention_2 and eager implementation",
        {"backend-constraint", "window-size", "kernel-layout"},
    ),
    (
        "fp16 inference produces inf in attention scores for long sequences",
        {"fp16-overflow", "softmax-overflow"},
    ),
    ("After converting Llama weights the GQA model outputs garbage", {"gqa-heads"}),
    (
        "The output for the first example in the batch changes when I change the second example",
        {"mask-broadcast-axis", "softmax-axis", "layout-confusion"},
    ),
    (
        "Sliding window attention attends one token too many compared to the reference",
        {"window-size"},
    ),
    ("Packed training gives a higher loss than unpacked training", {"packed-sequences"}),
    (
        "nn.MultiheadAttention with batch_first=False but my input is (batch, seq, dim)",
        {"layout-confusion"},
    ),
    (
        "attention_mask from the tokenizer (1 for tokens, 0 for padding) passed as attn_mask "
        "to F.scaled_dot_product_attention",
        {"mask-dtype", "mask-polarity"},
    ),
    ("OOM when creating the causal mask for a 32k context", {"memory-blowup"}),
    (
        "the rotary cos/sin cache is computed in float16 and long sequences degrade",
        {"reduced-precision", "rotary-embedding"},
    ),
    ("softmax returns nan when all inputs are -inf", {"fully-masked-row"}),
    ("my masked_fill with -1e9 overflows in half precision", {"fp16-overflow"}),
    (
        "model.generate gives different outputs for the same prompt when batched with "
        "longer prompts",
        {"positions", "mask-missing"},
    ),
    ("eval mode outputs differ between runs with sdpa", {"backend-constraint"}),
    ("Attention weights sum to more than one", {"mask-after-softmax", "softmax-axis"}),
    (
        "The attention pattern is the same for every query position",
        {"softmax-axis", "missing-scale"},
    ),
    ("position ids restart from 0 at each decoding step with the cache", {"kv-cache", "positions"}),
    (
        "the decoder attends to padding tokens in the encoder output",
        {"mask-missing", "mask-broadcast-axis"},
    ),
    (
        "the causal mask blocks each token from attending to itself",
        {"fully-masked-row", "causal-alignment"},
    ),
    ("scores explode and softmax gives nan without subtracting the max", {"softmax-overflow"}),
    ("heads are concatenated in the wrong order after attention", {"head-axis-order"}),
    ("gradient is nan when a row of the attention mask is all False", {"fully-masked-row"}),
    ("token embeddings index error after adding new special tokens", {"token-out-of-range"}),
    (
        "the model only attends to padding tokens after switching from "
        "nn.MultiheadAttention to sdpa",
        {"mask-polarity"},
    ),
    (
        "my hand-written attention gives different results from F.scaled_dot_product_attention",
        {"missing-scale", "kernel-layout", "mask-polarity", "softmax-axis", "backend-constraint"},
    ),
]


@pytest.mark.parametrize(("message", "tags"), SYMPTOM_WORDINGS)
def test_symptoms_in_other_words_find_their_family(message: str, tags: set[str]) -> None:
    # written for this test, not taken from the labelled sets: families by hand
    assert _hit(message, tags, 3), [(m.case.id, m.score) for m in diagnose(message)]


@pytest.mark.parametrize(("hq", "hkv"), [(32, 8), (12, 3), (16, 2)])
def test_each_answer_reads_the_message_numbers_in_its_own_terms(hq: int, hkv: int) -> None:
    message = (
        f"RuntimeError: The size of tensor a ({hq}) must match the size of tensor b ({hkv}) at "
        "non-singleton dimension 1"
    )
    answers = diagnose(message, top=3)
    assert all("gqa-heads" in a.case.tags for a in answers)
    for answer in answers:
        assert str(hq) in answer.why, answer.why
        assert str(hkv) in answer.why, answer.why
        assert "8 and 2" not in answer.why  # the case page's own example sizes
    firsts = [_sentences(a.why)[0] for a in answers]
    assert len(set(firsts)) == 3


TITLE_WORDINGS = [
    (
        "Inconsistent results between batch inference and single sample inference with padding",
        {"mask-missing", "positions", "mask-broadcast-axis", "backend-constraint"},
    ),
    (
        "SDPA returns NaN for rows that are completely masked",
        {"fully-masked-row", "backend-constraint"},
    ),
    (
        "Model produces NaN after converting to half precision",
        {"fp16-overflow", "reduced-precision"},
    ),
    (
        "Wrong output when using flash attention with padding mask",
        {"backend-constraint", "kernel-layout", "mask-missing"},
    ),
    (
        "Causal mask is not applied when using is_causal with an attn_mask",
        {"backend-constraint", "mask-missing"},
    ),
    ("GQA: key/value heads are repeated incorrectly", {"gqa-heads"}),
    (
        "Generation quality degrades after 4096 tokens with sliding window",
        {"window-size", "kv-cache", "positions", "rotary-embedding"},
    ),
    ("model attends to future tokens during training", {"mask-missing", "causal-alignment"}),
    ("attention scores are all -inf leading to NaN", {"fully-masked-row", "inf-arithmetic"}),
    (
        "different results with and without past_key_values",
        {"kv-cache", "causal-alignment", "positions"},
    ),
    ("RoPE implementation gives different outputs than HF", {"rotary-embedding"}),
    (
        "bf16 training: rotary embedding precision loss for long sequences",
        {"reduced-precision", "rotary-embedding"},
    ),
    (
        "Padding tokens are not ignored in self-attention",
        {"mask-missing", "mask-polarity", "mask-dtype"},
    ),
    (
        "The transformer predicts the input shifted by one, too good to be true",
        {"mask-missing", "causal-alignment"},
    ),
    (
        "multi-head attention output is garbage after reshaping heads",
        {"head-axis-order", "head-split"},
    ),
    ("softmax over wrong dimension in attention", {"softmax-axis"}),
    (
        "attention weights don't sum to 1 after applying padding mask",
        {"mask-after-softmax", "softmax-axis"},
    ),
    (
        "Loss explodes to inf with large sequence length in fp16",
        {"fp16-overflow", "softmax-overflow"},
    ),
    ("mask is inverted: model only sees padding", {"mask-polarity"}),
    (
        "attention_mask is ignored in scaled_dot_product_attention because it is an int tensor",
        {"mask-dtype"},
    ),
    (
        "kv cache index out of bounds when generating beyond max_seq_len",
        {"kv-cache", "position-out-of-range"},
    ),
    ("Cross attention fails when encoder and decoder hidden sizes differ", {"projection-width"}),
    (
        "packing multiple documents in one sequence leaks attention across documents",
        {"packed-sequences"},
    ),
    ("position ids are wrong with left padding in batched generation", {"positions"}),
    ("exp overflow in custom softmax implementation returns nan", {"softmax-overflow"}),
]


@pytest.mark.parametrize(("message", "tags"), TITLE_WORDINGS)
def test_issue_titles_in_other_words_find_their_family(message: str, tags: set[str]) -> None:
    # a second batch written for this test (families by hand) before running diagnose on it
    assert _hit(message, tags, 3), [(m.case.id, m.score) for m in diagnose(message)]


EXCEPTION_WORDINGS = [
    (
        "RuntimeError: The size of tensor a (4096) must match the size of tensor b (2048) at "
        "non-singleton dimension 3",
        {"mask-shape", "kv-cache", "position-out-of-range", "causal-alignment", "rotary-embedding"},
    ),
    (
        "IndexError: index 4096 is out of bounds for dimension 0 with size 4096",
        {"position-out-of-range", "kv-cache"},
    ),
    (
        "RuntimeError: CUDA error: device-side assert triggered. Assertion `srcIndex < "
        "srcSelectDimSize` failed.",
        {"token-out-of-range", "position-out-of-range"},
    ),
    ("RuntimeError: FlashAttention only support fp16 and bf16 data type", {"backend-constraint"}),
    ("RuntimeError: FlashAttention only supports Ampere GPUs or newer.", {"backend-constraint"}),
    # vLLM's attention backends and TensorRT-LLM's KV-cache kernels, format strings from
    # their source, at other sizes than any report
    (
        "ValueError: head_size (72) is not supported. Supported head sizes: [64, 80, 128]",
        {"backend-constraint"},
    ),
    ("RuntimeError: Unsupported head size: 160", {"backend-constraint"}),
    # xFormers' memory_efficient_attention and a Triton kernel's check, from their source
    (
        "ValueError: Query/Key/Value should either all have the same dtype, or (in the quantized "
        "case) Key/Value should have dtype torch.int32\n  query.dtype: torch.bfloat16\n  "
        "key.dtype  : torch.float32\n  value.dtype: torch.float32",
        {"reduced-precision", "backend-constraint"},
    ),
    ("TypeError: Q/K/V must have the same dtype", {"reduced-precision", "backend-constraint"}),
    (
        "[TensorRT-LLM][ERROR] Assertion failed: Size per head is not a multiple of X",
        {"backend-constraint"},
    ),
    (
        "InvalidArgumentError: Incompatible shapes: [32,8,50,50] vs. [32,1,1,49] [Op:AddV2]",
        {"mask-shape", "kv-cache", "causal-alignment"},
    ),
    ("RuntimeError: shape '[32, -1, 8, 64]' is invalid for input of size 262000", {"head-split"}),
    (
        "TypeError: scaled_dot_product_attention() got an unexpected keyword argument 'enable_gqa'",
        {"gqa-heads"},
    ),
    (
        "ValueError: Attention mask should be of size (1, 1, 7, 7), but is torch.Size([1, 1, 7, "
        "14])",
        {"kv-cache", "mask-shape", "causal-alignment"},
    ),
    (
        "RuntimeError: Expected attn_mask dtype to be bool or float or to match query dtype, but "
        "got attn_mask.dtype: long int and  query.dtype: float instead.",
        {"mask-dtype"},
    ),
    (
        "ValueError: operands could not be broadcast together with shapes (4,8,16,16) (4,16)",
        {"mask-shape", "mask-broadcast-axis"},
    ),
    (
        "jax TypeError: dot_general requires contracting dimensions to have the same shape, got "
        "(64,) and (16,).",
        {"qk-dim-mismatch", "missing-transpose", "projection-width"},
    ),
    (
        "RuntimeError: Sizes of tensors must match except in dimension 2. Expected size 8 but got "
        "size 32 for tensor number 1 in the list.",
        {"kv-cache", "gqa-heads", "batch-mismatch"},
    ),
    (
        "RuntimeError: mat1 and mat2 shapes cannot be multiplied (512x768 and 1024x1024)",
        {"projection-width"},
    ),
    (
        "AssertionError: was expecting embedding dimension of 256, but got 32",
        {"projection-width", "layout-confusion"},
    ),
    (
        "RuntimeError: The expanded size of the tensor (77) must match the existing size (64) at "
        "non-singleton dimension 1.  Target sizes: [2, 77].  Tensor sizes: [1, 64]",
        {"position-out-of-range", "positions", "mask-shape", "kv-length-mismatch"},
    ),
    (
        "ValueError: Dimensions must be equal, but are 64 and 128 for '{{node attention/MatMul}} "
        "= BatchMatMulV2[T=DT_FLOAT, adj_x=false, adj_y=true](q, k)' with input shapes: "
        "[?,8,10,64], [?,8,10,128].",
        {"qk-dim-mismatch"},
    ),
    (
        "IndexError: Dimension out of range (expected to be in range of [-3, 2], but got 3)",
        {"axis-out-of-range"},
    ),
    (
        "RuntimeError: view size is not compatible with input tensor's size and stride (at least "
        "one dimension spans across two contiguous subspaces). Use .reshape(...) instead.",
        {"head-axis-order"},
    ),
    (
        "RuntimeError: Boolean value of Tensor with more than one value is ambiguous when "
        "checking the attention mask",
        {"mask-dtype", "mask-shape"},
    ),
]


@pytest.mark.parametrize(("message", "tags"), EXCEPTION_WORDINGS)
def test_framework_wordings_at_other_sizes_get_their_family_first(
    message: str, tags: set[str]
) -> None:
    # written for this test (families by hand) before running diagnose on them
    assert _hit(message, tags, 1), [(m.case.id, m.score) for m in diagnose(message)]


REPORT_WORDINGS = [
    (
        "When I use fp16 with amp the attention logits become inf and the loss is NaN after 2000 "
        "steps.",
        {"fp16-overflow", "softmax-overflow"},
    ),
    (
        "I get NaN in the output of nn.MultiheadAttention when key_padding_mask masks all keys "
        "for some sequences",
        {"fully-masked-row"},
    ),
    (
        "Using a float mask with -inf values and then multiplying by zero gives nan",
        {"inf-arithmetic"},
    ),
    (
        "My transformer's attention weights are one-hot after a few epochs and training stalls",
        {"missing-scale"},
    ),
    (
        "The output of my self-attention layer is identical for all tokens in the sequence",
        {"softmax-axis", "mask-polarity", "fully-masked-row", "missing-scale", "layout-confusion"},
    ),
    (
        "Encoder-decoder model: the decoder cross-attention ignores the source padding mask",
        {"mask-missing"},
    ),
    (
        "Generated text is repetitive when using the KV cache, but fine with use_cache=False",
        {"kv-cache", "causal-alignment", "positions"},
    ),
    (
        "Different logits when running the same input with batch size 1 and batch size 8",
        {
            "mask-missing",
            "layout-confusion",
            "softmax-axis",
            "mask-broadcast-axis",
            "backend-constraint",
            "positions",
        },
    ),
    (
        "Model accuracy drops when I switch from float32 to bfloat16 for long documents (8k "
        "tokens)",
        {"reduced-precision"},
    ),
    (
        "Left-padded batch produces worse outputs than right-padded batch with flash attention",
        {"positions", "backend-constraint"},
    ),
    ("Sliding window of 4096 in Mistral attends 4097 tokens", {"window-size"}),
    (
        "NaN gradients in the backward pass of softmax when some rows are fully masked",
        {"fully-masked-row"},
    ),
    ("the mask I pass to nn.TransformerEncoder seems to be inverted", {"mask-polarity"}),
    (
        "The loss is much lower when packing sequences because documents see each other",
        {"packed-sequences"},
    ),
    (
        "tokens attend to padding when using sdpa with is_causal=True and a padding mask",
        {"backend-constraint", "mask-missing"},
    ),
    (
        "Output is wrong when q and k have different lengths with is_causal=True",
        {"causal-alignment"},
    ),
    ("In eval mode the attention output still changes between runs", {"backend-constraint"}),
    (
        "attention output for padded positions is zero and mean pooling gives smaller embeddings",
        {"mask-missing", "backend-constraint", "mask-after-softmax"},
    ),
    (
        "the model ignores the attention mask from the tokenizer when I pass it to "
        "F.scaled_dot_product_attention",
        {"mask-dtype", "mask-polarity"},
    ),
    ("key and value heads were repeated with repeat instead of repeat_interleave", {"gqa-heads"}),
]


@pytest.mark.parametrize(("message", "tags"), REPORT_WORDINGS)
def test_symptom_reports_find_their_family(message: str, tags: set[str]) -> None:
    # a third batch written for this test before running diagnose on it (17 first and 18
    # in the top three then; the misses led to the batch-size, is_causal + mask and
    # dotted-name fixes)
    assert _hit(message, tags, 3), [(m.case.id, m.score) for m in diagnose(message)]


def test_a_traceback_at_the_end_of_a_long_log_is_read() -> None:
    log = "INFO step 1234 loss 2.345 lr 0.0001 a line of a training log\n" * 800
    traceback = (
        'Traceback (most recent call last):\n  File "model.py", line 661, in forward\n'
        "    attn_output = torch.nn.functional.scaled_dot_product_attention(q, k, v)\n"
        "RuntimeError: The size of tensor a (32) must match the size of tensor b (8) at "
        "non-singleton dimension 1\n"
    )
    best = diagnose(log + traceback)[0]
    assert "gqa-heads" in best.case.tags
    assert "32 query heads against 8 key/value heads" in best.why


NOISY_REPORTS = [
    (
        "Hi, I'm training a ViT with timm and after switching to torch.compile + bf16 I get NaN "
        "loss after 300 steps. The attention uses F.scaled_dot_product_attention with an additive "
        "mask of -1e9.",
        {"fp16-overflow", "softmax-overflow", "inf-arithmetic", "reduced-precision"},
    ),
    (
        "Whisper: decoding with beam search (num_beams=4) fails with RuntimeError: The size of "
        "tensor a (4) must match the size of tensor b (16) at non-singleton dimension 0",
        {"batch-mismatch"},
    ),
    (
        "Llama 3 8B with GQA: I wrote my own attention and get 'RuntimeError: The size of tensor "
        "a (32) must match the size of tensor b (8) at non-singleton dimension 1' when computing "
        "q @ k.transpose(-2, -1)",
        {"gqa-heads"},
    ),
    (
        "In my BERT fine-tuning the loss doesn't go down and attention probs are almost uniform "
        "over all tokens including [PAD]",
        {"mask-missing", "mask-polarity", "mask-dtype", "softmax-axis", "missing-scale"},
    ),
    (
        "Our T5 export to ONNX gives different outputs than PyTorch for sequences with padding",
        {"backend-constraint", "mask-missing", "mask-dtype", "positions", "kernel-layout"},
    ),
    (
        "keras MultiHeadAttention: passing attention_mask of shape (batch, seq) raises "
        "InvalidArgumentError: Incompatible shapes: [8,4,20,20] vs. [1,1,8,20] [Op:LogicalAnd]",
        {"mask-shape"},
    ),
    (
        "After resizing token embeddings, generation crashes with IndexError: index out of range "
        "in self",
        {"token-out-of-range"},
    ),
    (
        "When prompt length + max_new_tokens exceeds 2048, the model crashes with an index error "
        "in the rotary cos/sin cache",
        {"position-out-of-range", "kv-cache", "rotary-embedding"},
    ),
    (
        "mixtral sliding window: outputs differ between sdpa and flash_attention_2 for sequences "
        "longer than 4096",
        {"window-size", "backend-constraint"},
    ),
    (
        "training with packed sequences and flash_attn_varlen_func: loss is lower than expected; "
        "cu_seqlens are built with torch.cumsum(seqlens)",
        {"packed-sequences"},
    ),
    (
        "My decoder-only model repeats the prompt when I batch prompts of different lengths with "
        "right padding",
        {"positions", "mask-missing"},
    ),
    (
        "Attention weights become NaN only for the padded sequences in the batch",
        {"fully-masked-row", "nan-in-padding"},
    ),
]


@pytest.mark.parametrize(("message", "tags"), NOISY_REPORTS)
def test_reports_mixing_prose_and_errors_find_their_family(message: str, tags: set[str]) -> None:
    # a fourth batch written before running diagnose on it (11 first, 12 in the top three)
    assert _hit(message, tags, 3), [(m.case.id, m.score) for m in diagnose(message)]


JAX_TF_REPORTS = [
    (
        "flax MultiHeadDotProductAttention gives NaN when the mask is all False for padded "
        "examples",
        {"fully-masked-row"},
    ),
    (
        "jax.nn.dot_product_attention with is_causal=True gives wrong results when the query is "
        "shorter than the keys",
        {"causal-alignment"},
    ),
    (
        "Keras MultiHeadAttention use_causal_mask=True still lets tokens see the future in my "
        "custom layer",
        {"mask-missing", "causal-alignment", "mask-polarity"},
    ),
    (
        "tf.keras Attention layer: the padding mask from Embedding(mask_zero=True) is not "
        "propagated",
        {"mask-missing"},
    ),
    (
        "In JAX my attention output is NaN under float16 when using a mask value of -1e30",
        {"fp16-overflow", "inf-arithmetic"},
    ),
    (
        "TensorFlow: softmax over axis=1 instead of -1 in my attention gives weights that sum to "
        "one over queries",
        {"softmax-axis"},
    ),
    (
        "Flax decode=True cache: generating with a prompt longer than one token fails",
        {"kv-cache"},
    ),
    (
        "tf MultiHeadAttention: attention scores are uniform when I pass an attention_mask with 0 "
        "for real tokens",
        {"mask-polarity"},
    ),
    (
        "jnp.tile instead of jnp.repeat for the kv heads in grouped query attention gives "
        "different results",
        {"gqa-heads"},
    ),
    (
        "keras_nlp TransformerDecoder: loss drops to almost zero in the first epoch",
        {"mask-missing", "causal-alignment", "mask-polarity"},
    ),
]


@pytest.mark.parametrize(("message", "tags"), JAX_TF_REPORTS)
def test_jax_and_keras_reports_find_their_family(message: str, tags: set[str]) -> None:
    # a fifth batch written before running diagnose on it (7 first, 8 in the top three
    # then; the misses led to the propagated-mask, 'almost zero' loss and 'longer than'
    # fixes)
    assert _hit(message, tags, 3), [(m.case.id, m.score) for m in diagnose(message)]


NUMERICS_REPORTS = [
    (
        "Training diverges with NaN after enabling flash attention in fp16; works in fp32",
        {"fp16-overflow", "backend-constraint", "softmax-overflow"},
    ),
    (
        "softmax of a row where all scores are -1e9 gives uniform weights instead of zeros",
        {"fully-masked-row", "inf-arithmetic", "mask-dtype"},
    ),
    (
        "my additive mask uses float('-inf') and rows with no valid keys become NaN",
        {"fully-masked-row"},
    ),
    ("Large logits (around 1e5) make softmax return NaN in float32", {"softmax-overflow"}),
    (
        "NaN appears in the attention output when padding tokens have NaN embeddings",
        {"nan-in-padding"},
    ),
    (
        "After model.half(), the attention mask built with torch.finfo(torch.float32).min turns "
        "into -inf and gives NaN",
        {"fp16-overflow", "inf-arithmetic"},
    ),
    (
        "Gradient of attention is NaN for sequences of length zero in the batch",
        {"ragged-lengths", "fully-masked-row"},
    ),
    ("softmax overflow when computing exp(x) for x > 88 in float32", {"softmax-overflow"}),
    (
        "attention weights saturate to one-hot as head_dim grows to 256 because there is no "
        "1/sqrt(d) scaling",
        {"missing-scale"},
    ),
    ("mask * -inf gives nan where the mask is 0", {"inf-arithmetic"}),
]


@pytest.mark.parametrize(("message", "tags"), NUMERICS_REPORTS)
def test_numerics_reports_find_their_family(message: str, tags: set[str]) -> None:
    # a sixth batch written before running diagnose on it (6 first, 10 in the top three
    # then; the misses led to the -1e9 rows, zero-length, NaN-embedding and mask * -inf
    # wordings)
    assert _hit(message, tags, 3), [(m.case.id, m.score) for m in diagnose(message)]


@pytest.mark.parametrize(("kv_out", "q_out"), [(1024, 4096), (512, 4096)])
def test_a_checkpoint_with_fewer_key_value_outputs_reads_as_gqa(kv_out: int, q_out: int) -> None:
    message = (
        "RuntimeError: Error(s) in loading state_dict for LlamaForCausalLM: size mismatch for "
        f"model.layers.0.self_attn.k_proj.weight: copying a param with shape "
        f"torch.Size([{kv_out}, 4096]) from checkpoint, the shape in current model is "
        f"torch.Size([{q_out}, 4096])."
    )
    best = diagnose(message)[0]
    assert "gqa-heads" in best.case.tags
    assert f"{q_out // kv_out} times fewer" in best.why


def test_an_outside_error_at_the_end_of_a_report_gets_no_case_but_an_attention_one_does() -> None:
    assert diagnose("AttributeError: 'LlamaAttention' object has no attribute 'rotary_emb'") == []
    report = (
        "I ran pip install flash-attn and the install worked, then training with the rotary "
        "attention layer fails:\n" + "  some log line\n" * 20 + GQA_MESSAGE
    )
    assert "gqa-heads" in diagnose(report)[0].case.tags


REPORTS_IN_THEIR_OWN_WORDS = [
    # written for this test, not taken from the labelled sets: a family's vocabulary in
    # other words than the catalogue's (families by hand)
    ("I think F.softmax(scores, dim=2) is applied on the wrong axis here", {"softmax-axis"}),
    (
        "attention probabilities are computed along the batch axis, not the sequence axis",
        {"softmax-axis"},
    ),
    (
        "the scaling factor is applied twice: q is already multiplied by head_dim ** -0.5 and "
        "then the scores are divided again",
        {"missing-scale"},
    ),
    ("sm_scale has the wrong sign in the triton kernel call", {"missing-scale"}),
    ("appending pad tokens at the end changes the predicted class", {"mask-missing"}),
    ("the attention_mask is set to None inside the forward", {"mask-missing"}),
    (
        "the custom Keras layer drops the mask because it does not set supports_masking",
        {"mask-missing"},
    ),
    (
        "a boolean attn_mask and the equivalent float mask give different attention outputs",
        {"mask-dtype"},
    ),
    ("my key padding mask holds -inf instead of True", {"mask-dtype", "mask-polarity"}),
    (
        "the kernel ignores seq_lens for the keys, rows past each length still get weight",
        {"ragged-lengths"},
    ),
    (
        "with beam_width 4 the attention memory has batch 8 but the decoder state has 32",
        {"batch-mismatch"},
    ),
    ("the embedding dim should always be a multiple of 96 in this attention", {"head-split"}),
    (
        "the model works in training but the padding mask does not work in eval mode",
        {"backend-constraint"},
    ),
    (
        "MultiheadAttention with kdim=32 and vdim=48 for a 64-wide query raises",
        {"projection-width"},
    ),
    ("num_kv_heads=4 with 32 query heads: repeating k gives other results", {"gqa-heads"}),
    ("the mask is laid along the wrong axis: it broadcasts over queries", {"mask-broadcast-axis"}),
    ("训练时注意力掩码在半精度下溢出，出现 nan", {"fp16-overflow"}),
    ("softmax 的维度应为 dim=-1", {"softmax-axis"}),
    ("xformers fails when the key length is not a multiple of 8", {"backend-constraint"}),
    (
        "My custom attention: weights = softmax(q @ k.T) gives garbage for batched input",
        {"missing-transpose"},
    ),
    (
        "the cross-attention breaks when the encoder sequence is longer than the decoder one",
        {"mask-shape", "kv-length-mismatch"},
    ),
]


@pytest.mark.parametrize(("message", "tags"), REPORTS_IN_THEIR_OWN_WORDS)
def test_reports_in_their_own_words_find_their_family(message: str, tags: set[str]) -> None:
    assert _hit(message, tags, 3), [(m.case.id, m.score) for m in diagnose(message)]


@pytest.mark.parametrize(
    "message",
    [
        "RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 15.78 GiB total)",
        "torch.OutOfMemoryError: CUDA out of memory.",
        "OSError: libcudnn_ops.so.9: cannot open shared object file: No such file or directory",
        "Unable to load any of {libcudnn_graph.so.9.1.0, libcudnn_graph.so.9.1, libcudnn_graph.so}",
    ],
)
def test_running_out_of_memory_or_loading_a_library_is_no_attention_case(message: str) -> None:
    assert diagnose(message) == []


def test_running_out_of_memory_on_attention_scores_is_the_memory_case() -> None:
    message = "CUDA out of memory when the attention scores of a 32k sequence are materialised"
    assert "memory-blowup" in diagnose(message)[0].case.tags


@pytest.mark.parametrize(("a", "b", "dim"), [(3, 4, 3), (64, 128, 3), (15, 16, 2)])
def test_a_bare_size_mismatch_spreads_its_answers_over_families(a: int, b: int, dim: int) -> None:
    # the signature alone fits a mask, a rotary table, a cache: three cases of one family
    # would leave the others out
    message = (
        f"RuntimeError: The size of tensor a ({a}) must match the size of tensor b ({b}) at "
        f"non-singleton dimension {dim}"
    )
    answers = diagnose(message, top=3)
    assert len({a.case.tags[0] for a in answers}) == 3
    assert any("rotary-embedding" in a.case.tags for a in answers)


@pytest.mark.parametrize(
    "message",
    [
        "AttributeError: module 'torch.nn.functional' has no attribute "
        "'scaled_dot_product_attention'",
        "RuntimeError: Error(s) in loading state_dict for BertModel: Missing key(s) in "
        'state_dict: "embeddings.position_ids".',
    ],
)
def test_an_api_or_checkpoint_of_another_version_is_no_attention_case(message: str) -> None:
    # the words (attention, position) are there; the error is the installed version's
    assert diagnose(message) == []


def test_a_mask_of_zeros_and_ones_added_to_the_logits_is_that_case() -> None:
    # written for this test: the case's mistake in a reporter's words. The rules rank it
    # third; the third place now goes to the family the words point to (mask-missing,
    # from catalogue.tag_model), so it is fourth
    message = "I pass a (batch, 1, 1, seq) mask of 0 and 1 and add it to the logits"
    answers = [m.case.id for m in diagnose(message, top=4)]
    assert "zero_one_mask_added" in answers
    assert "mask-dtype" in diagnose(message)[0].case.tags


@pytest.mark.parametrize(
    "message",
    [
        "RuntimeError: The size of tensor a (4096) must match the size of tensor b (4101) at "
        "non-singleton dimension 3",
        "RuntimeError: The size of tensor a (80) must match the size of tensor b (77) at "
        "non-singleton dimension 2",
        "RuntimeError: The expanded size of the tensor (530) must match the existing size (514) "
        "at non-singleton dimension 1.  Target sizes: [4, 530].  Tensor sizes: [1, 514]",
    ],
)
def test_a_sequence_past_a_maximum_length_reads_as_a_position_table_too_short(
    message: str,
) -> None:
    # written for this test, sizes of no tuning message: a maximum length (4096, CLIP's 77,
    # RoBERTa's 514) met by a longer sequence; a registered causal-mask buffer is the other
    # reading, among the answers
    answers = diagnose(message, top=3)
    assert answers[0].case.id == "position_table_too_short"
    assert "maximum length" in answers[0].why
    assert "causal_mask_built_for_wrong_length" in [a.case.id for a in answers]


@pytest.mark.parametrize(("a", "b"), [(5, 6), (512, 768), (1024, 1536)])
def test_sizes_that_are_no_maximum_length_or_are_a_width_are_not_read_as_one(
    a: int, b: int
) -> None:
    # a small length, or a larger size that is a multiple of 64 (a width, not a sequence)
    message = (
        f"RuntimeError: The size of tensor a ({a}) must match the size of tensor b ({b}) at "
        "non-singleton dimension 3"
    )
    assert diagnose(message, top=1)[0].case.id != "position_table_too_short"


@pytest.mark.parametrize(
    "message",
    [
        "Loaded runtime CuDNN library: 8.2.0 but source was compiled with: 8.6.0.  CuDNN "
        "library needs to have matching major version and equal or higher minor version.",
        "RuntimeError: [enforce fail at common_cudnn.h:110] version_match. cuDNN compiled "
        "(7603) and runtime (7102) versions mismatch",
        "W0102 10:11:12.000000 cuda_dnn.cc:400] Loaded runtime CuDNN library: 9.1.0 but source "
        "was compiled with: 9.3.0. " + "Attention backend (cudnn) unavailable. " * 8,
    ],
)
def test_a_cuda_library_of_another_version_is_no_attention_case(message: str) -> None:
    # written for this test in the libraries' own wordings: a build/runtime mismatch, even
    # in a long log that names an attention backend
    assert diagnose(message) == []


@pytest.mark.parametrize(
    "message",
    [
        "RuntimeError: shape '[4, 8, 64]' is invalid for input of size 8192",
        "RuntimeError: shape '[2, 16, 4, 128]' is invalid for input of size 65536",
        'ValueError: Trying to set a tensor of shape torch.Size([512, 4096]) in "weight" '
        "(which has shape torch.Size([4096, 4096])), this looks incorrect.",
    ],
)
def test_a_view_or_weight_off_by_the_head_group_reads_as_key_value_heads(message: str) -> None:
    # written for this test: a (.., H, D) view holding 4 times the elements its heads allow,
    # a k/v weight 8 times narrower than the square query projection
    answers = diagnose(message, top=3)
    assert "gqa-heads" in answers[0].case.tags
    assert "key/value" in answers[0].why


def test_a_weight_of_another_width_is_no_grouped_query_reading() -> None:
    # the inputs differ too: a projection of another width, not key/value heads
    message = (
        'ValueError: Trying to set a tensor of shape torch.Size([768, 512]) in "weight" '
        "(which has shape torch.Size([768, 768])), this looks incorrect."
    )
    assert all("gqa-heads" not in a.case.tags for a in diagnose(message, top=1))


@pytest.mark.parametrize(
    "message",
    [
        "ValueError: Dimensions must be equal, but are 20 and 64 for 'model/attention/mul' "
        "(op: 'Mul') with input shapes: [?,20], [?,20,64].",
        "ValueError: operands could not be broadcast together with shapes (4,7,32) (4,7)",
    ],
)
def test_a_mask_holding_the_first_axes_of_the_states_needs_a_last_axis(message: str) -> None:
    # written for this test: a (B, L) mask times (B, L, D) states, aligned from the right
    answers = diagnose(message, top=3)
    assert "mask-shape" in answers[0].case.tags
    assert "mask[..., None]" in answers[0].why


@pytest.mark.parametrize(
    "message",
    [
        "my code does attn = torch.softmax(q @ k.transpose(-2, -1), dim=-1) / math.sqrt(d_k), "
        "is that right?",
        "Should the scale go before the softmax? I apply the scaling after the softmax now.",
    ],
)
def test_a_scale_after_the_softmax_reads_as_the_scale_case(message: str) -> None:
    # written for this test: the scale's place, in code and in words
    assert "missing-scale" in diagnose(message, top=1)[0].case.tags


def test_softmax_results_said_to_be_one_read_as_a_softmax_axis() -> None:
    # written for this test: an axis of size 1 under the softmax
    message = "the scores come out as (batch*len, 1), so all the softmax outputs turn out to be 1.0"
    assert "softmax-axis" in diagnose(message, top=1)[0].case.tags


@pytest.mark.parametrize(
    ("message", "tag"),
    [
        (
            "results look wrong with xformers memory_efficient_attention and a "
            "BlockDiagonalCausalMask.from_seqlens([3, 5]), no error raised",
            "packed-sequences",
        ),
        (
            "ValueError in paged_attention: block_tables has 3 columns but the kv cache "
            "has 16 pages",
            "kv-cache",
        ),
        (
            "mask = mask.repeat(1, self.num_heads).view(bsz * self.num_heads, seq_len) raises "
            "a shape error",
            "mask-shape",
        ),
    ],
)
def test_packed_masks_paged_caches_and_masks_repeated_over_heads_by_hand(
    message: str, tag: str
) -> None:
    # written for this test: the API names of each family, with no sizes to read
    assert tag in diagnose(message, top=1)[0].case.tags


@pytest.mark.parametrize(
    ("message", "tag"),
    [
        (
            "generate() fails with num_beams=4 and batch_size=2, works with either one alone",
            "batch-mismatch",
        ),
        ("the 7b model loads fine but the 70b one gives a size mismatch", "gqa-heads"),
    ],
)
def test_beams_with_a_batch_and_a_large_model_of_a_family_read_as_their_families(
    message: str, tag: str
) -> None:
    # written for this test: beams and a batch together, and a 70B variant's shape error
    assert tag in diagnose(message, top=1)[0].case.tags


@pytest.mark.parametrize(
    ("message", "tag"),
    [
        (
            "ValueError: Dimension must be 5 but is 4 for '{{node attn/transpose_2}} = "
            "Transpose[T=DT_FLOAT, Tperm=DT_INT32](attn/mul, attn/transpose_2/perm)' with "
            "input shapes: [?,4,?,4,?], [4].",
            "batched-matmul",
        ),
        (
            "ValueError: Dimension must be 3 but is 4 for '{{node attn/transpose}} = "
            "Transpose[T=DT_FLOAT, Tperm=DT_INT32](x, attn/transpose/perm)' with input "
            "shapes: [?,10,64], [4].",
            "axis-out-of-range",
        ),
    ],
)
def test_a_transpose_of_another_rank_says_which_way_the_rank_is_off(message: str, tag: str) -> None:
    # written for this test: one axis more than the permutation is a product that made its
    # own axis; one fewer is a missing batch or head axis
    assert diagnose(message, top=1)[0].case.tags[0] == tag


def test_rows_said_to_be_completely_masked_read_as_a_fully_masked_row() -> None:
    # written for this test: the symptom in other words than "fully masked"
    message = "softmax gives a different result when a row is entirely masked out"
    assert "fully-masked-row" in diagnose(message, top=1)[0].case.tags


def test_a_fill_computed_from_the_mask_itself_reads_as_a_mask_that_masks_nothing() -> None:
    # written for this test: fill = mask * -1e9 is 0 where the mask is 0
    message = (
        "fill = mask * -1e9; scores = tf.where(mask == 0, fill, scores): padding still attended"
    )
    tags = {t for a in diagnose(message, top=3) for t in a.case.tags}
    assert "mask-missing" in tags


@pytest.mark.parametrize(
    ("message", "tag"),
    [
        (
            "jax.vmap over a function calling jax.nn.dot_product_attention(q, k, v, "
            "implementation='cudnn') raises in the batching rule",
            "backend-constraint",
        ),
        (
            "TypeError in the attention cache update: arguments must have the same dtypes, "
            "got int32, bool (attention_mask passed as booleans)",
            "mask-dtype",
        ),
        (
            "IndexError: index out of range: Tried to access index 1024 out of table with "
            "1023 rows.",
            "position-out-of-range",
        ),
    ],
)
def test_a_kernel_under_a_transformation_a_bool_mask_and_an_index_at_a_maximum_length(
    message: str, tag: str
) -> None:
    # written for this test: a fused kernel under vmap, a bool mask where 0/1 integers are
    # kept, an index equal to a maximum length into a table one row short of it
    assert tag in diagnose(message, top=1)[0].case.tags


def test_a_symptom_the_report_denies_is_no_evidence_of_it() -> None:
    # written for this test: "no NaN" is not a NaN; the left padding is what the report says
    message = (
        "left-padded prompts silently return wrong logits. No error, no NaN, just wrong "
        "numbers compared to right padding"
    )
    best = diagnose(message, top=1)[0]
    assert "positions" in best.case.tags
    assert not {"fully-masked-row", "nan-in-padding"} & set(best.case.tags)


@pytest.mark.parametrize(
    ("message", "tag"),
    [
        (
            "d_model = x.shape[2] in my attention layer ... IndexError: tuple index out of range",
            "axis-out-of-range",
        ),
        (
            "model = AutoModel.from_pretrained('roberta-base'); out = model(**tokenizer(text, "
            "return_tensors='pt')) -> IndexError: index out of range in self",
            "position-out-of-range",
        ),
    ],
)
def test_a_shape_indexed_past_its_rank_and_a_pretrained_model_fed_a_long_text(
    message: str, tag: str
) -> None:
    # written for this test: shape[2] of a tensor with fewer axes (a list of heads shorter
    # than num_heads stays the other answer); a pretrained model and its own tokenizer,
    # where the ids fit the vocabulary and the length does not
    answers = diagnose(message, top=3)
    assert tag in [a.case.tags[0] for a in answers]
    if tag == "position-out-of-range":
        assert answers[0].case.tags[0] == tag


def test_the_usual_additive_mask_is_no_fill_computed_from_the_mask() -> None:
    # (1 - mask) * -1e9 is the right construction: no evidence of a mask that masks nothing
    message = "scores += (1.0 - mask) * -1e9 before the softmax, and the loss is nan"
    answers = diagnose(message, top=3)
    assert answers
    assert all("mask-missing" not in a.case.tags for a in answers)


def test_an_index_equal_to_a_table_one_short_of_a_maximum_length_stays_a_token_id() -> None:
    # written for this test: id 511 into 511 rows is a token id equal to the vocabulary size;
    # only an index past it (512 into 511 rows) reads as a position
    assert diagnose("indices[0,2] = 511 is not in [0, 511) [Op:GatherV2]", top=1)[0].case.tags[
        0
    ] == ("token-out-of-range")


@pytest.mark.parametrize(
    ("message", "tag"),
    [
        # a fused backend or one GPU named beside a wrong result, and the GPU-generation checks
        (
            "the memory-efficient kernel returns wrong values where the math backend is right",
            "backend-constraint",
        ),
        ("RuntimeError: Expected is_sm90 to be true, but got false.", "backend-constraint"),
        ("FlashAttention only supports Turing GPUs or newer.", "backend-constraint"),
        # quality that breaks down past some length: rotary scaling or positions
        ("the model writes nonsense once the context exceeds 8192 tokens", "rotary-embedding"),
        ("answers degrade badly for longer documents, short ones are fine", "rotary-embedding"),
        ("after packing, the position ids start at 1 instead of 0 for each sample", "positions"),
        # NaN held in slots the weights ignore; a row with nothing to attend to
        (
            "the value cache holds uninitialized memory past each length, and the output is nan",
            "nan-in-padding",
        ),
        ("with seq_len = 0 for the dummy requests the attention output is nan", "fully-masked-row"),
        # code-level mistakes described in words
        (
            "masked_fill fills where the mask is True, so the mask must be inverted first",
            "mask-polarity",
        ),
        (
            "np.einsum('ii,bi->bi', W, x) has repeated indices in the first operand",
            "batched-matmul",
        ),
        (
            "x = x.reshape(seq, batch, dim) is not the same as a transpose of the first two axes",
            "layout-confusion",
        ),
        ("the dot function only works for 1D vectors, my energies are batched", "batched-matmul"),
        ("hidden_dim and d_model have to be equal, otherwise the layer fails", "projection-width"),
        ("the model has 40 query heads and 8 kv heads and the attention call fails", "gqa-heads"),
        ("the paged cache length requested exceeds the cache's maximum length", "kv-cache"),
        # (a bare "dtype mismatch inside the attention" fits qkv_dtypes_differ as well)
        (
            "dtype mismatch in the attention mask under torch.autocast(dtype=torch.bfloat16)",
            "mask-dtype",
        ),
        (
            "query and key dtypes do not match under torch.autocast(dtype=torch.bfloat16)",
            "reduced-precision",
        ),
        ("RuntimeError: Mask tensor can take 0 and 1 values only", "mask-dtype"),
        (
            "NaN appears with precision='16-mixed', it overflows in the attention scores",
            "fp16-overflow",
        ),
        (
            "torch.nn.functional.softmax here must be computed along the dimension of the keys",
            "softmax-axis",
        ),
        (
            "output differs between use_cache=True and use_cache=False for the same prompt",
            "kv-cache",
        ),
        (
            "Token indices sequence length is longer than the specified maximum sequence length",
            "position-out-of-range",
        ),
        ("the decoder sees the target tokens it is trained to predict", "mask-missing"),
        (
            "We strongly recommend passing in an `attention_mask` (inputs may be padded)",
            "mask-missing",
        ),
        (
            "the output's width comes from the key, not the value, so the next layer breaks",
            "projection-width",
        ),
        (
            "a sentence's vector differs depending on the other sentences in the batch",
            "mask-missing",
        ),
        ("the weights look transposed, as if normalised down the columns", "missing-transpose"),
        (
            "padded entries are set to zero after the softmax and rows no longer sum to 1",
            "mask-after-softmax",
        ),
        (
            "combining the heads with out.reshape(B, L, H * D) scrambles the output",
            "head-axis-order",
        ),
        (
            "my context has 1024 features but the cross-attention layer expects 768",
            "projection-width",
        ),
        (
            "einsum(): operands do not broadcast with remapped shapes [original->remapped]: "
            "[4, 16, 10, 32]->[4, 16, 10, 1, 32] [4, 2, 12, 32]->[4, 2, 1, 12, 32]",
            "gqa-heads",
        ),
    ],
)
def test_families_described_in_other_words_get_their_family_first(message: str, tag: str) -> None:
    # written for this test, in other words than the rules' own: each family of wording
    # (a backend beside a wrong result, breakdown past a length, NaN in ignored slots, ...)
    answers = diagnose(message, top=3)
    assert answers, message
    assert tag in answers[0].case.tags, [(a.case.id, a.score) for a in answers]


def test_a_size_too_large_for_a_head_count_reads_as_a_length() -> None:
    # written for this test: 1024 against 512 on dimension 1 cannot be heads (no model has
    # 512 heads): a sequence of hidden states (B, L, E) longer than a 512-position table
    message = (
        "RuntimeError: The size of tensor a (1024) must match the size of tensor b (512) at "
        "non-singleton dimension 1"
    )
    answers = diagnose(message, top=3)
    assert answers[0].case.tags[0] == "position-out-of-range"
    assert all("gqa-heads" not in a.case.tags for a in answers)
    assert "1024" in answers[0].why
    assert "512" in answers[0].why
    # a head count stays a head count
    heads = message.replace("1024", "32").replace("512", "8")
    assert diagnose(heads, top=1)[0].case.tags[0] == "gqa-heads"


def test_running_out_of_memory_on_a_long_input_is_attention_and_a_bare_one_is_not() -> None:
    # written for this test: the (L, S) scores grow with the square of the length
    long_input = "CUDA out of memory. Tried to allocate 18.00 GiB with a sequence length of 32768"
    assert diagnose(long_input, top=1)[0].case.tags[0] == "memory-blowup"
    assert diagnose("OOMs when the prompt is 100k tokens", top=1)[0].case.tags[0] == "memory-blowup"
    assert diagnose("CUDA out of memory. Tried to allocate 2.00 GiB") == []


def test_a_compiled_extension_of_another_build_is_outside_attention() -> None:
    # written for this test: an undefined symbol while loading any compiled extension
    for message in (
        "ImportError-free: xformers/_C.so: undefined symbol: _ZN3c104cuda9SetDeviceEi",
        "my_attn_ext.cpython-310-x86_64-linux-gnu.so: cannot be loaded, attention kernel missing",
    ):
        assert diagnose(message) == [], message


def test_a_latin_word_touching_chinese_text_is_read() -> None:
    # written for this test: Python counts CJK characters as word characters, so 'RoPE'
    # inside Chinese text has no word boundary until one is made
    answers = diagnose("我的RoPE实现好像有问题，结果和参考实现不一样", top=3)
    assert answers
    assert answers[0].case.tags[0] == "rotary-embedding"


def test_the_same_sizes_in_another_order_read_as_an_axis_order() -> None:
    # written for this test: a transpose left out, the numbers alone say so
    message = "ValueError: `attn_output` should be of size (4, 16, 9, 32), but is (4, 9, 16, 32)"
    answers = diagnose(message, top=3)
    assert answers[0].case.tags[0] in {"head-axis-order", "layout-confusion"}
    assert "axes 1, 2 swapped" in answers[0].why


def test_a_per_example_mask_expanded_over_the_heads_reads_as_its_batch_on_the_heads() -> None:
    # written for this test: (B, L, S) against (B, H, L, S), B = 3 and H = 6 (6 is a
    # multiple of 3, which is no grouped-query head count here: the mask is 3-D)
    message = (
        "RuntimeError: The expanded size of the tensor (6) must match the existing size (3) at "
        "non-singleton dimension 1.  Target sizes: [3, 6, 11, 11].  Tensor sizes: [3, 11, 11]"
    )
    answers = diagnose(message, top=3)
    assert "mask-broadcast-axis" in answers[0].case.tags
    assert "mask[:, None]" in answers[0].why


@pytest.mark.parametrize(
    ("message", "tag"),
    [
        ("RuntimeError: key is not correctly aligned (strideM)", "backend-constraint"),
        (
            "RuntimeError: attn_bias is not correctly aligned (strideH). attn_bias.stride(1) = 3, "
            "and should be a multiple of 8.",
            "backend-constraint",
        ),
        (
            "RuntimeError: Expected k.size(2) == v.size(2) to be true, but got false.",
            "kv-length-mismatch",
        ),
        (
            "UserWarning: Support for mismatched key_padding_mask and attn_mask is deprecated.",
            "mask-dtype",
        ),
    ],
)
def test_kernel_alignment_and_unlabelled_torch_checks(message: str, tag: str) -> None:
    # the memory-efficient kernel's stride checks (PyTorch and xformers share the wording),
    # a TORCH_CHECK without a message, and nn.MultiheadAttention's mixed mask types
    answers = diagnose(message, top=3)
    assert tag in answers[0].case.tags, [(a.case.id, a.score) for a in answers]


def test_a_layer_norm_of_another_width_reads_as_a_width_and_python_call_errors_as_outside() -> None:
    # written for this test: LayerNorm's own wording, with its numbers
    message = (
        "RuntimeError: Given normalized_shape=[1024], expected input with shape [*, 1024], "
        "but got input of size[4, 7, 768]"
    )
    answers = diagnose(message, top=3)
    assert answers[0].case.tags[0] == "projection-width"
    assert "1024" in answers[0].why
    assert "768" in answers[0].why
    # 'positional' of a Python call signature is no position
    assert (
        diagnose("TypeError: forward() missing 2 required positional arguments: 'q' and 'k'") == []
    )


def test_a_per_position_table_of_another_width_reads_as_rotary_dims() -> None:
    # written for this test: (L, X) against (B, H, L, D) with L != D: the table's positions
    # match and its width does not; a square (L, L) mask against square scores stays a mask
    table = "ValueError: operands could not be broadcast together with shapes (2,4,12,16) (12,32)"
    answers = diagnose(table, top=3)
    assert answers[0].case.tags[0] == "rotary-embedding"
    assert "32 features where 16 are rotated" in answers[0].why
    mask = "ValueError: operands could not be broadcast together with shapes (2,4,12,12) (10,10)"
    assert diagnose(mask, top=1)[0].case.tags[0] != "rotary-embedding"


def test_keras_arguments_left_unset_are_no_evidence() -> None:
    # written for this test: the argument list Keras appends, with unset masks and flags
    message = (
        "InvalidArgumentError: Exception encountered when calling MultiHeadAttention.call().\n\n"
        "Incompatible shapes: [3,2,7,7] vs. [6,1,7,7] [Op:LogicalAnd] name: \n\n"
        "Arguments received by MultiHeadAttention.call():\n"
        "  • query=tf.Tensor(shape=(3, 7, 16), dtype=float32)\n"
        "  • key=None\n"
        "  • key_mask=None\n"
        "  • use_causal_mask=False\n"
        "  • training=None\n"
    )
    answers = diagnose(message, top=3)
    assert answers[0].case.id == "mha_3d_mask_per_example"
    assert all("mask-missing" not in a.case.tags for a in answers[:2])


@pytest.mark.parametrize(
    ("message", "tag"),
    [
        # PyTorch's sdp_utils warnings (strings of torch 2.13's libtorch_cpu), other sizes
        (
            "UserWarning: For dense input, both fused kernels require query, key and value to "
            "have the same num_heads. Query.sizes(): [2, 16, 9, 64], Key sizes(): [2, 4, 9, 64]",
            "gqa-heads",
        ),
        (
            "RuntimeError: Both fused kernels require key and value to have the same num_heads "
            "and batch_size but got: Key sizes: [1, 6, 3, 32], Value sizes: [1, 2, 3, 32]",
            "gqa-heads",
        ),
        ("ValueError: Head size 96 is not supported by PagedAttention.", "backend-constraint"),
        (
            "RuntimeError: Expected q.size(-1) == k.size(-1) to be true, but got false.",
            "qk-dim-mismatch",
        ),
        (
            "ValueError: attention expects the query to be 4-dimensional, but got a tensor "
            "with 3 dimensions",
            "layout-confusion",
        ),
    ],
)
def test_fused_kernel_and_unlabelled_check_wordings(message: str, tag: str) -> None:
    # written for this test: the wording families at other sizes
    answers = diagnose(message, top=3)
    assert tag in answers[0].case.tags, [(a.case.id, a.score) for a in answers]


def test_a_framework_warning_is_no_report_of_a_silent_result() -> None:
    assert report_kind("UserWarning: Flash attention kernel not used because: ...") == "warning"
    assert report_kind("the outputs are garbage") == "silent"
    assert report_kind("loss is nan after 3 steps") == "nan"
    assert report_kind("RuntimeError: shape mismatch") == "exception"
    assert report_kind("the output is silently wrong, without raising an error") == "silent"
    assert report_kind("silently wrong in eager; with SDPA it raises RuntimeError: x") == (
        "exception"
    )


def test_a_transpose_of_another_rank_read_from_a_shape_quoted_apart() -> None:
    # written for this test: the op is named in the text, the shape quoted with None
    message = (
        "scores = K.batch_dot(q, k, axes=[3, 3]) has shape (None, 12, 6, 12, 6); then "
        "K.permute_dimensions(scores, (0, 2, 1, 3)) fails: Dimension must be 5 but is 4"
    )
    assert diagnose(message, top=1)[0].case.tags[0] == "batched-matmul"


def test_view_for_a_transpose_across_sentences_and_einsum_letters_before_the_call() -> None:
    # written for this test
    view = "x = x.view(16, 128, 64). This is wrong. It should be x = x.transpose(0, 1)"
    assert diagnose(view, top=1)[0].case.tags[0] in {"layout-confusion", "head-axis-order"}
    letters = (
        "There are swapped letters in the subscripts ... out = torch.einsum('ij,bj->bi', w, x)"
    )
    assert diagnose(letters, top=1)[0].case.tags[0] == "batched-matmul"


def test_sizes_read_by_the_names_the_report_gives_them() -> None:
    # written for this test: the report names its sizes, and the shapes put them on an axis
    # the default reading would call something else
    lengths = (
        "with seq_len_q = 12 and seq_len_kv = 20 the kernel's backward fails: add got "
        "incompatible shapes for broadcasting: (2, 4, 20, 32), (2, 4, 12, 32)"
    )
    answers = diagnose(lengths, top=3)
    assert answers[0].case.tags[0] == "kv-length-mismatch"
    assert "query length (12)" in answers[0].why
    heads = (
        "config: num_attention_heads: 24, num_key_value_heads: 6. RuntimeError: The size of "
        "tensor a (24) must match the size of tensor b (6) at non-singleton dimension 2"
    )
    assert diagnose(heads, top=1)[0].case.tags[0] == "gqa-heads"
    assert named_sizes("lq = 16; lkv = 17") == {"query length": {16}, "key length": {17}}


def test_a_decoder_module_is_no_generation_and_batch_size_effects_read_as_padding() -> None:
    # written for this test: 'decoder' names a module, not decoding; folding it into
    # 'generate' made 'no causal mask in the decoder' match any text that generates output
    assert "generate" not in words("the decoder")
    assert "generate" in words("decoding step by step")
    assert "generate" in words("a decoder-only model")
    message = "the softmax generates a wrong output when the mask has an incompatible shape"
    assert diagnose(message, top=1)[0].case.id != "future_not_masked"
    batch = "the batch size I run inference with has an impact on the predictions"
    assert diagnose(batch, top=1)[0].case.tags[0] == "mask-missing"


def test_numpy_einsum_remapped_shapes_read_by_axis() -> None:
    # the message NumPy really raises (run here): 8 query heads against 2 key/value heads
    q, k = np.ones((2, 8, 5, 16)), np.ones((2, 2, 7, 16))
    with pytest.raises(ValueError, match="remapped shapes") as raised:
        np.einsum("bhqd,bhkd->bhqk", q, k)
    answers = diagnose(str(raised.value), top=3)
    assert answers[0].case.tags[0] == "gqa-heads"
    assert "8 query heads against 2" in answers[0].why


@pytest.mark.parametrize(
    ("shapes", "tag"),
    [
        # (query, key, value) shapes given to jax.nn.dot_product_attention, run here
        (((2, 5, 8, 16), (2, 7, 8, 8), (2, 7, 8, 8)), "qk-dim-mismatch"),
        (((2, 5, 8, 16), (2, 7, 8, 16), (2, 6, 8, 16)), "kv-length-mismatch"),
        (((2, 5, 8, 16), (4, 7, 8, 16), (4, 7, 8, 16)), "batch-mismatch"),
        (((2, 5, 128), (2, 7, 8, 16), (2, 7, 8, 16)), "layout-confusion"),
    ],
)
def test_jax_shape_checks_read_on_its_layout(shapes: tuple[tuple[int, ...], ...], tag: str) -> None:
    jax = pytest.importorskip("jax")
    q, k, v = (jax.numpy.ones(s) for s in shapes)
    with pytest.raises(ValueError, match="shape should be") as raised:
        jax.nn.dot_product_attention(q, k, v)
    answers = diagnose(str(raised.value), top=3)
    assert tag in answers[0].case.tags, (str(raised.value), [a.case.id for a in answers])


def test_tensorflow_einsum_heads_axis_and_exception_cases_first_within_a_family() -> None:
    # the message TensorFlow raises for 8 query heads against 2 key/value heads (seen here,
    # run with tf.einsum('bhqd,bhkd->bhqk')): axis 1 of (B, H, L, D) holds the heads; an
    # error is answered by the family's cases that raise before the one that is silent
    message = (
        "InvalidArgumentError: Expected dimension 8 at axis 1 of the input shaped [2,2,7,16] "
        "but got dimension 2 [Op:Einsum] name:"
    )
    answers = diagnose(message, top=3)
    assert all("gqa-heads" in a.case.tags for a in answers)
    assert answers[0].case.kind == "exception"


def test_hardware_support_errors_are_outside_but_a_kernels_gpu_check_is_not() -> None:
    # written for this test: a dtype the GPU lacks, an installation built for other GPUs
    assert (
        diagnose("ValueError: float8 is only supported on GPUs with compute capability 8.9") == []
    )
    assert (
        diagnose("RuntimeError: GPUs with compute capability less than 7.0 are not supported") == []
    )
    # a fused attention kernel's own generation check is attention's
    flash = diagnose("RuntimeError: FlashAttention only supports Hopper GPUs or newer.", top=1)
    assert flash[0].case.tags[0] == "backend-constraint"


@pytest.mark.parametrize(
    "message",
    [
        # flash-attn's csrc check, with another head size than any report's
        "RuntimeError: FlashAttention backward only supports head dimension at most 192",
        # a repository's own kernel, worded as a user might copy it (no kernel named)
        "RuntimeError: this kernel only supports head size 96 for now",
        "NotImplementedError: does not support head dim 80 yet",
        # Pallas TPU flash attention's block check, and a Triton tutorial's, at other sizes
        "ValueError: kv_seq_len=3000 should be divisible by block_k_major=256",
        "ValueError: q_seq_len=1000 should be divisible by block_q=128",
        "AssertionError: N_CTX must be divisible by BLOCK_N=64",
        # xFormers' dispatcher names each operator it tried and why it refused the call
        "`cutlassF@0.0.0` is not supported because:\n    dtype=torch.float64 (supported: "
        "{torch.float16})",
        "`fa3F@v3.0.0` is not supported because:\n    requires device with capability == "
        "(9, 0) but your GPU has capability (8, 6) (too old)",
    ],
)
def test_a_kernels_size_check_is_a_backend_constraint(message: str) -> None:
    answers = diagnose(message, top=1)
    assert answers, message
    assert "backend-constraint" in answers[0].case.tags, (message, answers[0].case.id)


def test_a_width_the_heads_do_not_divide_stays_a_head_split_beside_block_checks() -> None:
    for message in (
        "AssertionError: embed_dim must be divisible by num_heads",
        "ValueError: hidden size 770 must be divisible by 12",
    ):
        assert "head-split" in diagnose(message, top=1)[0].case.tags, message


@pytest.mark.parametrize(
    "message",
    [
        # written for this test: a breakdown placed at a length, or short fine / long not
        "Perplexity is fine up to 8k but the model degrades sharply at 32k tokens.",
        "Answers are good for short questions but turn into gibberish for longer documents.",
        "It works on small prompts, but fails badly on long contexts.",
    ],
)
def test_a_breakdown_only_at_long_lengths_reads_as_rotary_or_positions(message: str) -> None:
    answers = diagnose(message, top=3)
    assert answers, message
    tags = {"rotary-embedding", "position-out-of-range", "positions"}
    assert tags & set(answers[0].case.tags), (message, answers[0].case.id)


def test_garbage_for_short_prompts_beside_long_ones_is_not_read_as_a_long_context() -> None:
    # the other contrast: short prompts padded beside long ones (left padding, positions)
    answers = diagnose(
        "In a batch, the short prompts give garbage but the long prompts are fine.", top=3
    )
    assert answers[0].case.tags[0] == "positions", answers[0].case.id


@pytest.mark.parametrize(
    "message",
    [
        # written for this test: one input, another result batched with others than alone
        "The completions should be the same whether I run each prompt alone or in a batch, "
        "but they are not.",
        "Logits change when I batch the prompts together.",
        "I get different completions for multiple prompts than for each prompt on its own.",
    ],
)
def test_a_result_that_changes_in_a_batch_reads_as_padding_or_positions(message: str) -> None:
    answers = diagnose(message, top=3)
    assert answers, message
    assert {"positions", "mask-missing"} & set(answers[0].case.tags), (message, answers[0].case.id)


@pytest.mark.parametrize(
    "message",
    [
        # written for this test: training that blows up only in reduced precision
        "With fp16 enabled the loss spikes and diverges after a few thousand steps.",
        "Training is unstable under autocast; in float32 it converges fine.",
        "The model is unable to learn when I switch on mixed precision.",
    ],
)
def test_training_that_blows_up_in_half_precision_reads_as_an_overflow(message: str) -> None:
    answers = diagnose(message, top=3)
    assert answers, message
    tags = {"fp16-overflow", "softmax-overflow", "reduced-precision"}
    assert tags & set(answers[0].case.tags), (message, answers[0].case.id)


@pytest.mark.parametrize(
    "message",
    [
        # written for this test: a shape error without sizes, only while generating
        "model.generate() fails with a shape mismatch after about twenty new tokens",
        "The forward pass works, but I get a dimension error when decoding with the cache.",
    ],
)
def test_a_shape_error_only_while_generating_reads_as_the_cache(message: str) -> None:
    answers = diagnose(message, top=3)
    assert answers, message
    assert {"kv-cache", "position-out-of-range"} & set(answers[0].case.tags), (
        message,
        answers[0].case.id,
    )


@pytest.mark.parametrize(
    "message",
    [
        # written for this test: the 1/sqrt(d) scale applied twice
        "The query is already scaled before the kernel call, and the kernel scales it again.",
        "Scores are scaled twice: once in the projection and once in attention.",
    ],
)
def test_a_scale_applied_twice_reads_as_the_scale(message: str) -> None:
    answers = diagnose(message, top=1)
    assert answers, message
    assert "missing-scale" in answers[0].case.tags, (message, answers[0].case.id)


@pytest.mark.parametrize(
    ("message", "tags"),
    [
        # written for this test: the three markers of each symptom in other orders
        (
            "Run alone, every prompt is answered well. Batched, some answers differ.",
            {"positions", "mask-missing"},
        ),
        (
            "Results with bs=1 and with a batch of 8 do not match.",
            {"positions", "mask-missing"},
        ),
        (
            "Past 6000 tokens of input the summaries turn into nonsense.",
            {"rotary-embedding", "positions", "position-out-of-range"},
        ),
        (
            "Gibberish once the prompt reaches a context of 12k.",
            {"rotary-embedding", "positions", "position-out-of-range"},
        ),
    ],
)
def test_batch_or_length_symptoms_in_any_order(message: str, tags: set[str]) -> None:
    answers = diagnose(message, top=3)
    assert answers, message
    assert tags & set(answers[0].case.tags), (message, answers[0].case.id)


@pytest.mark.parametrize(
    "message",
    [
        # written for this test: a head size or length checked by name, no kernel named
        "AssertionError: assert head_dim == 64 or head_dim == 128",
        "ValueError: seqlen must be a multiple of 128",
        "the kernel fails because seq_len cannot be divided by 64",
    ],
)
def test_a_head_size_or_length_checked_by_name_is_a_backend_constraint(message: str) -> None:
    answers = diagnose(message, top=1)
    assert answers, message
    assert "backend-constraint" in answers[0].case.tags, (message, answers[0].case.id)


def test_a_batch_and_a_single_request_differing_in_speed_is_no_attention_symptom() -> None:
    # written for this test: batch, single and "differ", but about latency, not results
    message = (
        "The server breaks when 20 users send requests at the same time with a batch, "
        "single requests differ in latency"
    )
    assert diagnose(message) == []


@pytest.mark.parametrize(
    "message",
    [
        # written for this test: the decoder sees what lies to its right
        "Each position attends to the following positions in the decoder.",
        "During training the model can use tokens to their right, so it copies them.",
    ],
)
def test_attending_to_the_right_reads_as_a_leak(message: str) -> None:
    answers = diagnose(message, top=1)
    assert answers, message
    assert {"mask-missing", "causal-alignment"} & set(answers[0].case.tags), answers[0].case.id


@pytest.mark.parametrize(
    "message",
    [
        # written for this test: a backend missing or built for another CUDA, not attention
        "Triton is not available, some optimizations will not be enabled.",
        "xformers not available",
        "RuntimeError: this kernel is only supported on CUDA 12.3 and above",
        "the fused attention extension requires CUDA 11.8 or higher",
    ],
)
def test_a_backend_missing_or_built_for_another_cuda_is_outside(message: str) -> None:
    assert diagnose(message) == []


def test_no_available_kernel_stays_a_backend_constraint() -> None:
    answers = diagnose("RuntimeError: No available kernel. Aborting execution.", top=1)
    assert answers, "SDPA's refusal is attention's"
    assert "backend-constraint" in answers[0].case.tags


@pytest.mark.parametrize(
    "message",
    [
        "RuntimeError: cuda runtime error (59) : device-side assert triggered at "
        "/pytorch/aten/src/THC/generic/THCTensorMath.cu:26",
        "RuntimeError: CUDA error: device-side assert triggered\nCUDA kernel errors might be "
        "asynchronously reported at some other API call, so the stacktrace below might be "
        "incorrect.\nFor debugging consider passing CUDA_LAUNCH_BLOCKING=1.",
    ],
)
def test_a_device_side_assert_is_a_token_or_a_position_not_a_kernel(message: str) -> None:
    """The assert cannot say which table was indexed past its end: both are answered.

    PyTorch appends "CUDA kernel errors might be asynchronously reported" to every CUDA
    error; that sentence names no fused attention kernel.
    """
    tags = [set(m.case.tags) for m in diagnose(message, top=3)]
    assert any("token-out-of-range" in t for t in tags)
    assert any("position-out-of-range" in t for t in tags)
    assert not any("backend-constraint" in t for t in tags)


@pytest.mark.parametrize(
    "message",
    [
        'I get "IndexError: index out of range" at the first forward; the config says '
        '"pad_token_id": 50000 and "vocab_size": 50000',
        "after adding two special tokens the vocab size of the model is still 32000 and "
        "training stops with index out of range",
        "ValueError: token id 64001 is out of range for the embedding",
    ],
)
def test_an_index_error_beside_the_vocabulary_size_is_a_token_id(message: str) -> None:
    """A bare "index out of range" next to vocab_size: a token id past the embedding."""
    answers = diagnose(message, top=3)
    assert answers
    assert "token-out-of-range" in answers[0].case.tags


@pytest.mark.parametrize(
    "node",
    [
        "ScaledDotProductEfficientAttentionBackward0",
        "ScaledDotProductCudnnAttentionBackward0",
        "FlashAttnVarlenFuncBackward",
    ],
)
def test_anomaly_mode_naming_a_fused_kernel_backward_is_a_backend_first(node: str) -> None:
    """PyTorch's anomaly-mode wording, with a fused attention kernel's autograd node."""
    message = f"RuntimeError: Function '{node}' returned nan values in its 1th output."
    answers = diagnose(message, top=3)
    assert answers
    assert "backend-constraint" in answers[0].case.tags
    plain = diagnose("RuntimeError: Function 'MulBackward0' returned nan values in its 1th output.")
    assert all("backend-constraint" not in m.case.tags for m in plain[:1])


@pytest.mark.parametrize(
    "message",
    [
        "RuntimeError: bias_4d_view.stride(0) overflows",
        "OverflowError: my_kernel: tensor strides exceed int32 range; reduce batch/seq/head "
        "dimensions",
        "the fused attention output is wrong past row 40000: looks like an int32 offset overflow "
        "in the mask indexing",
    ],
)
def test_a_32_bit_index_overflow_is_a_kernel_limit_not_a_float_overflow(message: str) -> None:
    """Integer index arithmetic wrapping past 2^31 is the kernel's limit, not fp16's range."""
    answers = diagnose(message, top=3)
    assert answers
    assert {"backend-constraint", "memory-blowup"} & set(answers[0].case.tags)
    assert "softmax-overflow" not in answers[0].case.tags


def test_a_cpu_allocation_failure_is_attention_memory_only_beside_attention() -> None:
    """PyTorch's CPU allocator wording: the scores' (L, S) memory only next to attention."""
    error = (
        "RuntimeError: [enforce fail at alloc_cpu.cpp:114] data. DefaultCPUAllocator: not "
        "enough memory: you tried to allocate 34359738368 bytes."
    )
    assert diagnose(error) == []
    beside = diagnose(f"scores = torch.matmul(q, k.transpose(-2, -1)) {error}", top=3)
    assert beside
    assert "memory-blowup" in beside[0].case.tags
    report = diagnose(
        "building the 4-D mask for a 150k-token input will try to allocate 500 GB", top=3
    )
    assert report
    assert "memory-blowup" in report[0].case.tags


@pytest.mark.parametrize(
    "message",
    [
        "the collator pads input_ids itself, so the attention_mask ends up all True for every row",
        "my tokenizer wrapper always gives an attention mask array of ones, even when padded",
    ],
)
def test_a_padding_mask_of_all_ones_is_a_missing_mask(message: str) -> None:
    """A mask that keeps every position masks nothing: the pads are attended."""
    answers = diagnose(message, top=3)
    assert answers
    assert "mask-missing" in answers[0].case.tags
