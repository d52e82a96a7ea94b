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

from . import Case, all_cases


@dataclass(frozen=True)
class Rule:
    """A family of framework messages and what it usually means in attention code.

    ``tags`` are the likeliest first; in ``why``, ``{0}``, ``{1}``, ... are the numbers
    the pattern captured. A ``fallback`` rule (a bare "nan") counts only when no other
    rule matched.
    """

    pattern: str
    tags: tuple[str, ...]
    why: str
    fallback: bool = False


_N = r"(-?\d+)"
RULES: tuple[Rule, ...] = (
    Rule(
        rf"size of tensor a \({_N}\) must match the size of tensor b \({_N}\) at "
        r"non-singleton dimension 0\b",
        ("batch-mismatch", "mask-shape"),
        "sizes {0} and {1} meet at dimension 0, the batch axis: query, key, value or mask "
        "come from batches of different sizes",
    ),
    Rule(
        rf"size of tensor a \({_N}\) must match the size of tensor b \({_N}\) at "
        rf"non-singleton dimension (?!0\b){_N}",
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
        "shapes [{0}] and [{1}] do not broadcast: usually a mask against the scores "
        "(B, H, L, S); a padding mask (B, S) needs [:, None, None, :]",
    ),
    Rule(
        r"Incompatible shapes for broadcasting: shapes=\[([^\]]*)\]|"
        r"required broadcastable shapes|Dimension \d+ in both shapes must be equal|"
        r"(?:Bias|mask) must have (?:the )?same|boolean index did not match indexed array|"
        r"shape of (?:the )?(?:attn_)?mask|mask shape|\bmask\w*\.(?:reshape|view|expand)\(",
        ("mask-shape", "batch-mismatch", "mask-broadcast-axis"),
        "shapes that do not broadcast, usually a mask against the scores (B, H, L, S): a "
        "padding mask (B, S) needs [:, None, None, :]",
    ),
    Rule(
        r"Incompatible shapes for attention inputs|query\.shape.{0,60}key\.shape|"
        r"batch (?:size|dims?).{0,30}(?:mismatch|must match|differ)",
        ("batch-mismatch", "kv-length-mismatch"),
        "query and key/value come with different batch (or sequence) sizes",
    ),
    Rule(
        rf"einsum\(\): (?:operands do not broadcast|subscript \w has size {_N} for operand "
        rf"\d+ which does not broadcast with previously seen size {_N})",
        ("position-out-of-range", "kv-length-mismatch", "batched-matmul"),
        "an einsum operand disagrees with the others on a shared subscript: a table (a "
        "relative-position bias) built for another length, or keys and values of different "
        "lengths",
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
        rf"Dimension out of range(?: \(expected to be in range of \[{_N}, {_N}\], but got {_N}\))?",
        ("axis-out-of-range", "layout-confusion"),
        "an axis the array does not have: a missing batch or head axis",
    ),
    Rule(
        r"Expected attn_mask dtype to be bool or float|attn_mask dtype|"
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
        r"\boverflow\w*|\bto -?inf\b",
        ("fp16-overflow", "softmax-overflow", "inf-arithmetic"),
        "a value past the dtype's range: float16 ends at 65504, exp passes float32's range "
        "at 88.7; constants like -1e9 or finfo(float32).min do not fit a smaller dtype",
    ),
    Rule(
        r"nan.*(?:mask|padding|padded|pad)|(?:mask|padding|padded).*nan",
        ("fully-masked-row", "nan-in-padding", "inf-arithmetic"),
        "NaN with masking: a row where every key is masked has softmax 0/0",
    ),
    Rule(
        r"\bnan\b|(?<![-\w'\"])inf\b",
        ("softmax-overflow", "fully-masked-row", "fp16-overflow"),
        "NaN or inf in attention: exp overflow without subtracting the row max, a fully "
        "masked row, or float16 overflow",
        fallback=True,
    ),
    Rule(
        r"zero-size array to reduction operation",
        ("ragged-lengths", "fully-masked-row"),
        "a reduction over an empty row: a zero-length sequence",
    ),
    Rule(
        r"does not have an identity, so to use a where mask",
        ("fully-masked-row", "ragged-lengths"),
        "a masked reduction needs a value for rows where nothing is kept",
    ),
    Rule(
        r"softmax.{0,40}\b(?:dims?|axis)\b|\b(?:dims?|axis)\b.{0,40}softmax",
        ("softmax-axis", "axis-out-of-range"),
        "the softmax axis: attention weights are normalised over the keys, the last axis",
    ),
    Rule(
        r"\bsqrt\b|scal(?:e|ing) factor|\btemperature\b",
        ("missing-scale",),
        "the 1/sqrt(d) scale, with d the head size: without it the softmax saturates",
    ),
    Rule(
        r"\b(?:permute|transpose)\b.{0,60}\b(?:reshape|view)\b|"
        r"\b(?:view|reshape)\b.{0,80}\b(?:heads?|num_heads?|n_heads?)\b",
        ("head-axis-order", "head-split"),
        "splitting or merging heads: reshape/view reads memory order, so heads must be "
        "transposed next to the features first",
    ),
    Rule(
        r"(?=.*\bmask)(?=.*\b(?:True|False)\b)(?=.*\b(?:pad\w*|ignor\w*|attend\w*)\b)|"
        r"polarity|invert\w* (?:the )?mask",
        ("mask-polarity",),
        "which value of a boolean mask means 'attend': True = attend in SDPA/JAX, True = "
        "ignore in nn.MultiheadAttention's masks",
    ),
    Rule(
        r"(?:ignor\w*|without|missing|no|forgot\w*)\s+(?:the\s+)?(?:padding\s+|causal\s+)?mask",
        ("mask-missing",),
        "padding or future positions that are never masked",
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
        r"is_causal|causal.mask|\btril\b|bottom.right|top.left|kv.cache|past_key_values|"
        r"\bcache\w*\b|autoregressive|decod(?:e|ing)\b",
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


_FLAGS = re.IGNORECASE | re.DOTALL


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


def _rule_hits(text: str) -> list[tuple[Rule, str]]:
    """The rules whose pattern is in ``text``, each with its explanation filled in."""
    hits = []
    for rule in RULES:
        found = re.search(rule.pattern, text, _FLAGS)
        if found:
            numbers = [g for g in found.groups() if g is not None]
            try:
                why = rule.why.format(*numbers)
            except IndexError:
                why = rule.why
            hits.append((rule, why))
    specific = [hit for hit in hits if not hit[0].fallback]
    return specific or hits


def diagnose(text: str, top: int = 5) -> list[Match]:
    """The cases that best explain ``text`` (an error message, traceback or symptom).

    A case's score adds up its evidence: refattn's own errors name their case outright;
    then the best family rule naming one of its tags (likelier tags and earlier rules
    score more), its own message patterns (more for longer, more specific ones), and the
    words it shares with the text.
    """
    rule_hits = _rule_hits(text)
    words = _words(text)
    scores: dict[str, tuple[float, str]] = {}
    for case in all_cases():
        rule_score, why = 0.0, ""
        for order, (rule, rule_why) in enumerate(rule_hits):
            for rank, tag in enumerate(rule.tags):
                if tag in case.tags:
                    score = 6.0 - rank - 0.2 * order + 0.5 * (case.tags[0] == tag)
                    if score > rule_score:
                        rule_score, why = score, rule_why
        matched = [p for p in getattr(case.module, "MESSAGES", ()) if re.search(p, text, _FLAGS)]
        message_score = 3.0 + max(min(len(p), 80) / 40 for p in matched) if matched else 0.0
        if matched and not why:
            why = f"the message matches this case's pattern /{matched[0]}/"
        overlap = words & _case_words(case)
        word_score = len(overlap) / (len(words) ** 0.5 + 1)
        if overlap and not why:
            why = "words in common: " + ", ".join(sorted(overlap))
        named = 20.0 if re.search(rf"catalogue case {case.id}\b", text) else 0.0
        if named:
            why = "the error message names this case"
        total = named + rule_score + message_score + word_score
        if total > 0:
            scores[case.id] = (total, why)
    ranked = sorted(scores.items(), key=lambda item: -item[1][0])[:top]
    by_id = {c.id: c for c in all_cases()}
    return [Match(by_id[i], round(s, 3), why) for i, (s, why) in ranked]
