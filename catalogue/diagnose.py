"""From a pasted error message, traceback or symptom to the catalogue cases that explain it.

Evidence, added up per case:

1. the sizes in the message read as attention's axes: PyTorch's ``non-singleton
   dimension 1`` is the head axis of scores ``(B, H, L, S)``, so ``8`` against ``2`` there
   reads as query heads against key/value heads; two quoted shapes are aligned as
   broadcasting aligns them and the axis that disagrees is named;
2. :data:`RULES`: the wordings NumPy, PyTorch, JAX and TensorFlow use for each failure
   family, with the families they most often mean in attention code, in order, and an
   explanation that quotes the numbers read from the message;
3. a case's own ``MESSAGES``: regexes of the exact framework wordings it explains;
4. a case's own ``SYMPTOMS``: a phrase most of whose words are in the text.

Words the text shares with a case's title only break ties: a case with no evidence
above :data:`MIN_SCORE` is not an answer, and a message no case explains gets an empty
answer (and :func:`nearest_family`) rather than a list of unrelated cases. Each answer's
``why`` joins what the message's numbers mean with that case's own fix.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache

from . import Case, all_cases
from .taxonomy import TAGS


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
        rf"(?:mat1 and mat2 shapes cannot be multiplied|size mismatch, m1:) "
        rf"\[?\(?{_N} ?x ?{_N}\]?,? (?:and|m2:) \[?{_N} ?x ?{_N}\)?",
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
        r"\b(?:key|value|attention|decoder|layer)s?[ _-]?cache|cache_position|"
        r"autoregressive|\bdecoding\b|\bgenerat(?:e|ion|ing)\b.{0,40}\bcache",
        ("causal-alignment", "kv-cache"),
        "causal masking with L != S (decoding with a cache) needs bottom-right alignment",
    ),
    Rule(
        r"mat1 and mat2 shapes|size mismatch, m1:|"
        r"last dimension of `?query_shape`? and `?value_shape`? must be equal",
        ("projection-width", "qk-dim-mismatch"),
        "a projection or attention layer gets another feature width than it was built for",
    ),
    Rule(
        r"1D tensors expected, but got \dD and \dD|Expected argument self to have 1 "
        r"dimension|Shape must be rank 2 but is rank 3|must be a (?:matrix|vector)",
        ("batched-matmul", "missing-transpose"),
        "a 1-D or 2-D operation (dot, mm, MatMul) got batched input: use matmul/bmm or einsum "
        "with a batch axis",
    ),
    Rule(
        rf"Size of label '\w' for operand \d+ \({_N}\) does not match previous terms "
        rf"\({_N}\)",
        ("qk-dim-mismatch", "kv-length-mismatch", "projection-width"),
        "an einsum label has size {0} in one operand and {1} in another: query and key "
        "feature sizes (or key and value lengths) differ",
    ),
    Rule(
        r"positional (?:encoding|embedding).{0,120}(?:batch|shape\[0\]|size\(0\))|"
        r"(?:batch|shape\[0\]|size\(0\)).{0,120}positional (?:encoding|embedding)",
        ("layout-confusion", "positions", "position-out-of-range"),
        "positions taken from the wrong axis: with batch-first input, x.shape[0] is the batch "
        "size, not the sequence length",
    ),
    Rule(
        r"(?:need|forg[eo]t|missing|without)\w* (?:to )?(?:the )?transpos|"
        r"should(?: be|n't it be)? transposed",
        ("missing-transpose",),
        "the keys must be transposed before Q·Kᵀ: k.transpose(-2, -1)",
    ),
    Rule(
        r"can't divide axis of length \d+ in chunks of \d+|Shape mismatch, can't divide",
        ("head-split",),
        "splitting the features into heads: the width is not a multiple of the head count",
    ),
    Rule(
        r"number of elements in 'key' must be equal to .{0,60}'value'|"
        r"key and value (?:must have|should have) the same (?:sequence )?length",
        ("kv-length-mismatch",),
        "keys and values must have the same number of positions",
    ),
    Rule(
        r"index out of range: Tried to access index \d+ out of table with \d+ rows",
        ("position-out-of-range", "token-out-of-range"),
        "an embedding lookup past the table: a position or token id >= the number of rows",
    ),
)

_STOP = frozenset(
    {
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
        "this",
        "that",
        "are",
        "was",
        "were",
        "not",
        "no",
        "can",
        "does",
        "do",
        "have",
        "has",
        "had",
        "me",
        "we",
        "you",
        "your",
        "our",
        "its",
        "as",
        "if",
        "so",
        "use",
        "using",
        "used",
        "into",
        "than",
        "then",
        "there",
        "their",
        "them",
        "they",
        "which",
        "what",
        "how",
        "why",
    }
)
_FLAGS = re.IGNORECASE | re.DOTALL

ATTENTION_WORDS = re.compile(
    r"attention|attn|\bmask|\bheads?\b|softmax|\bquer(?:y|ies)\b|\bkeys?\b|\bvalues?\b|"
    r"\bqkv\b|transformer|causal|padd(?:ing|ed)|embedding|position|rotary|rope\b|flash|sdpa|"
    r"\bscores?\b|logits|\bkv\b|decoder|encoder|einsum|matmul|\bbmm\b|\bshapes?\b",
    re.IGNORECASE,
)
"""Words that put a text inside attention code; without one, shared words are no evidence."""

TRANSPOSED = re.compile(r"\.transpose\(-[12], ?-[12]\)|\.mT\b|swapaxes\(-[12], ?-[12]\)")
"""Quoted code that does transpose the keys: evidence against a missing transpose."""

MIN_SCORE = 2.5
"""Below this a case is no answer: word overlap alone never explains a message."""

SYMPTOM_MIN_SHARE = 0.6
"""A symptom phrase counts when this share of its words (and at least two) are in the text."""


@dataclass(frozen=True)
class Match:
    """One answer of :func:`diagnose`.

    Attributes:
        case: the catalogue case.
        score: the evidence, added up (see :func:`diagnose`); comparable within one call.
        why: what the message's numbers mean, then why this case's mistake produces it.
        fix: this case's fix, in one sentence.
    """

    case: Case
    score: float
    why: str
    fix: str = ""


def _stem(word: str) -> str:
    for suffix in ("ing", "ed", "es", "s", "ly"):
        if len(word) > len(suffix) + 3 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


def _words(text: str) -> set[str]:
    return {_stem(w) for w in re.findall(r"[a-z][a-z0-9]+", text.lower()) if w not in _STOP}


def _plain(text: str) -> str:
    """RST inline markup as plain text, on one line."""
    return " ".join(re.sub(r"``(.+?)``|:\w+:`(.+?)`", r"\1\2", text).split())


def _first_sentence(case: Case, section: str) -> str:
    """The first sentence of a section (``Why``, ``Fix``) of the case's page, as plain text."""
    found = re.search(rf"\n{section}:\n(.*?)(?:\n\n|\n\S|\Z)", case.module.__doc__ or "", re.S)
    if not found:
        return ""
    text = _plain(found.group(1))
    depth = 0
    for at, char in enumerate(text):
        depth += {"(": 1, ")": -1}.get(char, 0)
        abbreviation = text[max(at - 3, 0) : at + 1] in {"e.g.", "i.e."}
        if char == "." and depth == 0 and not abbreviation and text[at + 1 : at + 2] in {" ", ""}:
            return text[: at + 1]
    return text.rstrip(".;:") + "."


@cache
def case_why(case: Case) -> str:
    """The first sentence of the case's ``Why:`` section."""
    return _first_sentence(case, "Why")


@cache
def case_fix(case: Case) -> str:
    """The first sentence of the case's ``Fix:`` section."""
    return _first_sentence(case, "Fix")


# --- reading the sizes of a message ------------------------------------------------------

_SCORE_AXES = ("batch B", "heads H", "query length L", "key length S")


def _shapes(text: str) -> list[tuple[int, ...]]:
    """Every shape quoted in ``text``: ``(2, 8, 5, 5)``, ``[2,8,5,5]``, ``torch.Size([2, 8])``."""
    found = re.findall(r"[\[(]\s*(\d+(?:\s*,\s*\d+)+)\s*,?\s*[\])]", text)
    return [tuple(int(n) for n in group.split(",")) for group in found]


def _shape_reading(text: str) -> tuple[tuple[str, ...], str] | None:
    """Tags and a sentence from the sizes that disagree, read as attention's axes.

    Two kinds of messages are read: PyTorch's ``size of tensor a (X) must match ... at
    non-singleton dimension d`` (``d`` counted in the broadcast result, taken as scores
    ``(B, H, L, S)``), and any broadcast error that quotes two shapes (NumPy, JAX,
    TensorFlow), aligned from the right as NumPy broadcasts them.
    """
    torch_sizes = re.search(
        r"size of tensor a \((\d+)\) must match the size of tensor b \((\d+)\) at "
        r"non-singleton dimension (\d+)",
        text,
    )
    if torch_sizes:
        a, b, dim = (int(g) for g in torch_sizes.groups())
        return _axis_reading(a, b, dim, 4) if dim < 4 else None
    if not re.search(r"broadcast|Incompatible shapes|must match|doesn't match", text, _FLAGS):
        return None
    shapes = [s for s in _shapes(text) if len(s) >= 2]
    if len(shapes) < 2:
        return None
    first, second = sorted(shapes[:2], key=len, reverse=True)
    rank = len(first)
    padded = (1,) * (rank - len(second)) + second
    in_place = re.search(r"doesn't match the broadcast shape", text)  # out= cannot grow
    bad = [
        i
        for i in range(rank)
        if first[i] != padded[i] and (in_place or 1 not in (first[i], padded[i]))
    ]
    if len(second) < rank and rank == 4 and len(second) == 2 and second[0] == first[0]:
        return (
            ("mask-broadcast-axis", "mask-shape"),
            f"a ({second[0]}, {second[1]}) mask meets ({', '.join(map(str, first))}) scores: "
            f"a (B, S) padding mask against (B, H, L, S) scores lines its batch axis up with "
            f"the query axis; it needs mask[:, None, None, :]",
        )
    if len(bad) == 1:
        return _axis_reading(first[bad[0]], padded[bad[0]], bad[0], rank)
    return None


def _axis_reading(a: int, b: int, dim: int, rank: int) -> tuple[tuple[str, ...], str]:
    """What two sizes meeting on axis ``dim`` of rank-``rank`` scores usually mean."""
    if rank != 4:
        first_axis = dim == 0 and rank >= 3
        return (
            ("batch-mismatch", "mask-shape")
            if first_axis
            else ("mask-shape", "kv-length-mismatch"),
            f"sizes {a} and {b} meet on axis {dim} of a rank-{rank} operation"
            + (": the batch (or batch × heads) axis" if first_axis else ""),
        )
    role = _SCORE_AXES[dim]
    lead = f"{a} against {b} on the {role} axis (dimension {dim} of scores (B, H, L, S))"
    big, small = max(a, b), min(a, b)
    if dim == 1:
        tags: tuple[str, ...] = ("mask-shape", "mask-broadcast-axis", "batch-mismatch")
        if small > 1 and big % small == 0:
            tags = ("gqa-heads", "mask-shape", "batch-mismatch")
            lead += f": {big} query heads against {small} key/value heads, or a mask's batch axis"
        return tags, lead
    if dim == 3:
        return (
            ("kv-cache", "mask-shape", "kv-length-mismatch", "causal-alignment"),
            lead + ": a mask or bias built for another number of keys (a KV cache grown past "
            "the mask), or keys and values of different lengths",
        )
    if dim == 2:
        return (
            ("causal-alignment", "mask-shape", "mask-broadcast-axis", "kv-cache"),
            lead + ": a mask built for another query length (a causal mask for the whole "
            "sequence while decoding one token), or a padding mask on the query axis",
        )
    return ("batch-mismatch", "mask-shape"), lead + ": inputs or masks from different batches"


# --- scoring ---------------------------------------------------------------------------


def _rule_hits(text: str) -> list[tuple[tuple[str, ...], str]]:
    """Tag lists (likeliest first) and explanations: the size reading, then the rules."""
    hits = []
    reading = _shape_reading(text)
    if reading is not None:
        hits.append(reading)
    found_rules = []
    for rule in RULES:
        found = re.search(rule.pattern, text, _FLAGS)
        if found:
            numbers = [g for g in found.groups() if g is not None]
            try:
                why = rule.why.format(*numbers)
            except IndexError:
                why = rule.why
            found_rules.append((rule, why))
    specific = [hit for hit in found_rules if not hit[0].fallback]
    hits += [(rule.tags, why) for rule, why in specific or found_rules]
    return hits


def _symptom_score(words: set[str], case: Case) -> tuple[float, str]:
    best, phrase_best = 0.0, ""
    for phrase in getattr(case.module, "SYMPTOMS", ()):
        wanted = _words(phrase)
        shared = wanted & words
        if len(shared) >= 2 and len(shared) / len(wanted) >= SYMPTOM_MIN_SHARE:
            share = len(shared) / len(wanted)
            if share > best:
                best, phrase_best = share, phrase
    return 4.0 * best, phrase_best


@cache
def _case_words(case: Case) -> frozenset[str]:
    text = " ".join([case.title, *getattr(case.module, "SYMPTOMS", ()), *case.tags])
    return frozenset(_words(text.replace("-", " ")))


def diagnose(text: str, top: int = 5) -> list[Match]:
    """The cases that best explain ``text`` (an error message, traceback or symptom).

    A case's score adds up its evidence: refattn's own errors name their case outright;
    then the sizes of the message read as attention's axes and the best family rule
    naming one of its tags (likelier tags and earlier readings score more), its own
    message patterns (more for longer, more specific ones), a symptom phrase of its
    own, and, as a tie-breaker only, words it shares with the text. A case needs
    :data:`MIN_SCORE`; when none has it, the answer is empty (see
    :func:`nearest_family`).
    """
    hits = _rule_hits(text)
    words = _words(text)
    in_domain = bool(hits) or bool(ATTENTION_WORDS.search(text))
    answers: list[tuple[float, Case, str]] = []
    for case in all_cases():
        rule_score = 0.0
        readings = [why for tags, why in hits if set(tags) & set(case.tags)]
        reading = readings[0] if readings else ""  # the first reading that names its tags
        for order, (tags, _) in enumerate(hits):
            for rank, tag in enumerate(tags):
                if tag in case.tags:
                    score = 6.0 - rank - 0.2 * order + 0.5 * (case.tags[0] == tag)
                    rule_score = max(rule_score, score)
        patterns = [p for p in getattr(case.module, "MESSAGES", ()) if re.search(p, text, _FLAGS)]
        message_score = 3.0 + max(min(len(p), 80) / 40 for p in patterns) if patterns else 0.0
        symptom_score, phrase = _symptom_score(words, case)
        if "missing-transpose" in case.tags and TRANSPOSED.search(text):
            rule_score = max(rule_score - 3.0, 0.0)  # the quoted code does transpose
        named = 20.0 if re.search(rf"catalogue case {case.id}\b", text) else 0.0
        overlap = words & _case_words(case) if in_domain else set()
        word_score = 3.0 * len(overlap) / (len(words) ** 0.5 + 1)
        total = named + rule_score + message_score + symptom_score + word_score
        if total < MIN_SCORE:
            continue
        if named:
            reading = "the error message names this case"
        elif not reading and patterns:
            reading = "the message is one this case raises"
        elif not reading and phrase:
            reading = f"you describe '{phrase}'"
        elif not reading:
            reading = "the words of the text: " + ", ".join(sorted(overlap))
        answers.append((total, case, f"{reading}. {case_why(case)}"))
    answers.sort(key=lambda answer: -answer[0])
    return [Match(c, round(score, 3), why, case_fix(c)) for score, c, why in answers[:top]]


def nearest_family(text: str) -> str | None:
    """The taxonomy family the message's wording points to, even when no case explains it.

    Returns:
        ``"shape"``, ``"mask"``, ``"numerics"``, ``"index"`` or ``"decoding"``, or None when
        nothing in the text belongs to attention.
    """
    hits = _rule_hits(text)
    for tags, _ in hits:
        for tag in tags:
            if tag in TAGS:
                return TAGS[tag][0]
    return None
