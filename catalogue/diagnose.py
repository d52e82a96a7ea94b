"""From a pasted error message, traceback or symptom to the catalogue cases that explain it.

Three sources of evidence, strongest first:

1. a case's own ``MESSAGES``: regexes of the exact framework wordings it explains;
2. :data:`RULES`: the wordings NumPy, PyTorch, JAX and TensorFlow use for each failure
   family, with the families they most often mean in attention code, in order, and an
   explanation that quotes the numbers read from the message;
3. words: the message's words against each case's ``SYMPTOMS``, title and tags.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from catalogue import Case, all_cases


@dataclass(frozen=True)
class Rule:
    """A family of framework messages and what it usually means in attention code.

    ``tags`` are the likeliest first; in ``why``, ``{0}``, ``{1}``, ... are the numbers
    the pattern captured.
    """

    pattern: str
    tags: tuple[str, ...]
    why: str


_N = r"(-?\d+)"
RULES: tuple[Rule, ...] = (
    Rule(
        rf"size of tensor a \({_N}\) must match the size of tensor b \({_N}\) at "
        rf"non-singleton dimension {_N}",
        ("mask-shape", "mask-broadcast-axis", "batch-mismatch", "kv-length-mismatch"),
        "sizes {0} and {1} meet at dimension {2} of an elementwise operation: in attention "
        "code that is most often a mask or bias whose shape does not line up with the "
        "scores (B, H, L, S), or a residual add after the sequence length changed",
    ),
    Rule(
        r"operands could not be broadcast together with (?:remapped )?shapes? "
        r"\(([\d, ]*)\)\s*\(([\d, ]*)\)",
        ("mask-shape", "mask-broadcast-axis", "causal-alignment", "kv-length-mismatch"),
        "arrays of shapes ({0}) and ({1}) meet in an elementwise operation: a mask or bias "
        "that does not broadcast to the scores (B, H, L, S) — a key-padding mask needs "
        "[:, None, None, :]",
    ),
    Rule(
        r"Incompatible shapes(?: for broadcasting)?:? \[?\(?([\d, ]+)\]?\)? vs\.? \[?\(?([\d, ]+)",
        ("mask-shape", "batch-mismatch", "mask-broadcast-axis"),
        "shapes [{0}] and [{1}] do not broadcast: usually a mask against the scores",
    ),
    Rule(
        rf"mismatch in its core dimension 0.*\(size {_N} is different from {_N}\)",
        ("qk-dim-mismatch", "missing-transpose", "projection-width", "kv-length-mismatch"),
        "sizes {0} and {1} meet on the contracted axis of a matmul: in Q·Kᵀ the key "
        "projection produces {0} features and the query {1}, or K was not transposed",
    ),
    Rule(
        rf"Expected size for first two dimensions of batch2 tensor to be: \[{_N}, {_N}\] "
        rf"but got: \[{_N}, {_N}\]",
        ("qk-dim-mismatch", "missing-transpose", "kv-length-mismatch"),
        "a batched matmul wanted its second operand to start with [{0}, {1}] and got "
        "[{2}, {3}]: {1} and {3} meet on the contracted axis (feature sizes of q and k, "
        "or keys and values of different lengths)",
    ),
    Rule(
        rf"mat1 and mat2 shapes cannot be multiplied \({_N}x{_N} and {_N}x{_N}\)",
        ("projection-width", "batched-matmul", "qk-dim-mismatch"),
        "a linear layer expects {2} input features but gets {1}: the input or context "
        "width does not match the projection (kdim/vdim, cross-attention context)",
    ),
    Rule(
        rf"shapes \(([\d, ]+)\) and \(([\d, ]+)\) not aligned: {_N} \(dim \d+\) != {_N}",
        ("qk-dim-mismatch", "projection-width", "missing-transpose"),
        "np.dot contracts {2} against {3}: feature sizes of the two operands differ",
    ),
    Rule(
        rf"dot_general requires contracting dimensions to have the same shape, got "
        rf"\[?\(?{_N},?\)?\]? and \[?\(?{_N},?\)?\]?",
        ("qk-dim-mismatch", "projection-width", "missing-transpose"),
        "JAX contracts {0} against {1} features: query and key feature sizes differ",
    ),
    Rule(
        rf"Matrix size-incompatible: In\[0\]: \[{_N},{_N}\], In\[1\]: \[{_N},{_N}\]",
        ("projection-width", "qk-dim-mismatch", "batched-matmul"),
        "TensorFlow multiplies [{0},{1}] by [{2},{3}]: {1} and {2} should be equal",
    ),
    Rule(
        rf"Dimensions must be equal, but are {_N} and {_N}",
        ("qk-dim-mismatch", "projection-width", "kv-length-mismatch"),
        "TensorFlow contracts {0} against {1}: the feature sizes of two operands differ",
    ),
    Rule(
        r"self must be a matrix|batch1 must be a 3D tensor|Expected 3-dimensional tensor|"
        r"einstein sum subscripts string contains too many subscripts|"
        r"operand has more dimensions than subscripts",
        ("batched-matmul",),
        "a 2-D operation (mm, a 2-D einsum) got batched input; use matmul/bmm or '...'",
    ),
    Rule(
        rf"shape '\[([-\d, ]+)\]' is invalid for input of size {_N}|"
        rf"cannot reshape array of size {_N} into shape|"
        r"divisible by num_heads|must be divisible by",
        ("head-split", "head-axis-order"),
        "splitting into heads does not divide the embedding: embed_dim must be a multiple "
        "of num_heads",
    ),
    Rule(
        r"view size is not compatible with input tensor's size and stride",
        ("head-axis-order", "head-split"),
        "view() after a transpose: merge heads with .transpose(1, 2).reshape(...)",
    ),
    Rule(
        r"index out of range in self|indices\[[\d,]+\] = -?\d+ is not in \[0, \d+\)|"
        r"srcIndex < srcSelectDimSize|IndexError: index -?\d+ is out of bounds",
        ("token-out-of-range", "position-out-of-range", "ragged-lengths"),
        "an embedding lookup with an index past the table: a token id >= vocab size (or a "
        "-100/-1 pad id), or a position >= the position table's length",
    ),
    Rule(
        rf"index {_N} is out of bounds for (?:axis|dimension) {_N} with size {_N}",
        ("position-out-of-range", "token-out-of-range", "ragged-lengths"),
        "index {0} into an axis of size {2}: a position or token id past its table, or a "
        "length larger than the padded length",
    ),
    Rule(
        r"list index out of range",
        ("head-index",),
        "indexing a list past its end: fewer head chunks than num_heads",
    ),
    Rule(
        rf"axis {_N} is out of bounds for array of dimension {_N}|"
        rf"Dimension out of range \(expected to be in range of \[{_N}, {_N}\], but got {_N}\)",
        ("axis-out-of-range", "layout-confusion"),
        "an axis the array does not have: a missing batch or head axis",
    ),
    Rule(
        r"Expected attn_mask dtype to be bool or float|attn_mask.*dtype|"
        r"only bool and floating types of (?:key_padding_mask|attn_mask)",
        ("mask-dtype",),
        "a mask of the wrong dtype: bool (True = attend) or a float additive mask",
    ),
    Rule(
        r"value cannot be converted to type at::Half without overflow|"
        r"(?:float16|half|fp16|amp|mixed precision).*nan|nan.*(?:float16|half|fp16|amp)",
        ("fp16-overflow", "inf-arithmetic"),
        "a constant like -1e9 or a large logit overflows float16 (max 65504)",
    ),
    Rule(
        r"nan.*(?:mask|padding|padded|pad)|(?:mask|padding|padded).*nan",
        ("fully-masked-row", "nan-in-padding", "inf-arithmetic"),
        "NaN with masking: a row where every key is masked has softmax 0/0",
    ),
    Rule(
        r"\bnan\b|\binf\b",
        ("softmax-overflow", "fully-masked-row", "fp16-overflow"),
        "NaN or inf in attention: exp overflow without subtracting the row max, a fully "
        "masked row, or float16 overflow",
    ),
    Rule(
        r"zero-size array to reduction operation",
        ("ragged-lengths",),
        "a reduction over an empty row: a zero-length sequence",
    ),
    Rule(
        r"Sizes of tensors must match except in dimension|all the input array dimensions "
        r"except for the concatenation axis must match|ConcatOp : Dimension",
        ("batch-mismatch", "kv-cache"),
        "concatenating arrays that differ on another axis: head outputs of different "
        "batch sizes, or a KV cache concatenated along the wrong axis",
    ),
    Rule(
        r"was expecting embedding dimension of|embed_dim_to_check",
        ("projection-width", "layout-confusion"),
        "MultiheadAttention got another embedding size than it was built with (or a "
        "batch-first input read as sequence-first)",
    ),
    Rule(
        r"shape of the (?:2D|3D) attn_mask|key_padding_mask|key_padded_mask",
        ("mask-shape", "mask-polarity"),
        "a MultiheadAttention mask of the wrong shape: attn_mask (L, S) or (N*H, L, S), "
        "key_padding_mask (N, S)",
    ),
    Rule(
        r"is_causal|causal mask|bottom.right|top.left|kv.cache|past_key_values",
        ("causal-alignment", "kv-cache"),
        "causal masking with L != S (decoding with a cache) needs bottom-right alignment",
    ),
)

_STOP = {
    "the",
    "a",
    "an",
    "of",
    "to",
    "in",
    "is",
    "and",
    "or",
    "with",
    "after",
    "when",
    "on",
    "for",
    "my",
    "i",
    "it",
    "be",
    "at",
    "by",
    "from",
    "but",
    "got",
    "error",
}


@dataclass(frozen=True)
class Match:
    """One answer of :func:`diagnose`."""

    case: Case
    score: float
    why: str


def _words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z][a-z0-9]+", text.lower()) if w not in _STOP}


def _case_words(case: Case) -> set[str]:
    m = case.module
    text = " ".join([case.title, *getattr(m, "SYMPTOMS", ()), *case.tags]).replace("-", " ")
    return _words(text)


def diagnose(text: str, top: int = 5) -> list[Match]:
    """The cases that best explain ``text`` (an error message, traceback or symptom)."""
    flags = re.IGNORECASE | re.DOTALL
    scores: dict[str, tuple[float, str]] = {}

    def offer(case: Case, score: float, why: str) -> None:
        if score > scores.get(case.id, (0.0, ""))[0]:
            scores[case.id] = (score, why)

    rule_hits = []
    for rule in RULES:
        found = re.search(rule.pattern, text, flags)
        if found:
            numbers = [g for g in found.groups() if g is not None]
            try:
                why = rule.why.format(*numbers)
            except IndexError:
                why = rule.why
            rule_hits.append((rule, why))
    words = _words(text)
    for case in all_cases():
        for pattern in getattr(case.module, "MESSAGES", ()):
            if re.search(pattern, text, flags):
                hit_why = next((w for r, w in rule_hits if set(r.tags) & set(case.tags)), "")
                offer(
                    case,
                    10.0 + min(len(pattern), 80) / 40,
                    hit_why or f"the message matches this case's pattern /{pattern}/",
                )
        for order, (rule, why) in enumerate(rule_hits):
            for rank, tag in enumerate(rule.tags):
                if tag in case.tags:
                    offer(case, 6.0 - 1.0 * rank - 0.2 * order + 0.5 * (case.tags[0] == tag), why)
        overlap = words & _case_words(case)
        if overlap:
            score = len(overlap) / (len(words) ** 0.5 + 1)
            offer(case, score, "words in common: " + ", ".join(sorted(overlap)))
    ranked = sorted(scores.items(), key=lambda item: -item[1][0])[:top]
    by_id = {c.id: c for c in all_cases()}
    return [Match(by_id[i], round(s, 3), why) for i, (s, why) in ranked]
