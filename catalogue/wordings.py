"""How NumPy, PyTorch, JAX and TensorFlow word each failure family, and symptoms in words.

:data:`RULES` are framework wordings, :data:`CONCEPTS` symptoms in words with their
synonyms; each names the taxonomy tags it most often means in attention code, likeliest
first. :data:`SYNONYMS` fold words that say the same thing before symptom phrases are
matched; :data:`TRANSLATIONS` read a few Chinese technical words as English; :data:`OUTSIDE`
and :data:`MEMORY` recognise errors from outside attention. Used by :mod:`.diagnose`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Rule:
    """A family of framework messages (or a symptom) and what it usually means.

    ``tags`` are the likeliest first; in ``why``, ``{0}``, ``{1}``, ... are the numbers
    the pattern captured. A ``fallback`` rule (a bare "nan") counts only when no other
    rule matched; ``weight`` scales its evidence (a concept in words is weaker than an
    exact framework wording).
    """

    pattern: str
    tags: tuple[str, ...]
    why: str
    fallback: bool = False
    weight: float = 1.0
    read: bool = False
    """A generic broadcasting wording: when the sizes were read (:func:`shape_reading`),
    the reading replaces it."""
    domain: bool = False
    """A Python wording of any program: it counts only in a text about attention."""


_N = r"(-?\d+)"
SQUARE_SCORES = re.compile(
    r"(?:out of memory|\bOOMs?\b|allocat\w*|materiali[sz]\w*|RESOURCE_EXHAUSTED)[^\n]{0,60}?"
    r"(?<![\w.])(?:shape\s*)?\[\s*(?:\d+\s*,\s*){0,3}?([2-9]\d{3}|[1-9]\d{4,})\s*,\s*\1\s*\]",
    re.IGNORECASE,
)
"""Running out of memory for a tensor ending in two equal long sizes: (…, L, L) scores."""
_BACKEND = (
    r"(?:flash[_ -]?attn|flash[_ -]?attention\w*|flashinfer|xformers?|cudnn|splash|pallas|"
    r"paged_?attention|"
    r"mem(?:ory)?[_ -]efficient|fused (?:attention|kernel|sdpa)|sdpa_kernel|triton|"
    r"\bkernel\b(?! errors might be asynchronously)|"  # not PyTorch's note on every CUDA error
    r"\bsm_?[89]\d\b|\btpu\b|\bis_sm_?\d+x?\w*|efficient_attention)"
)
_REFUSES = (
    r"(?:not (?:yet )?support|only supports?|n't support|does not support|unsupported|"
    r"not implemented|NotImplementedError|must be (?:a )?multiple|should be a multiple|"
    r"divisible by|Invalid configuration|No available kernel|No operator found|"
    r"no kernel found|not compiled with|not (?:a )?multiple of|should be multiple|"
    r"(?:must|should) be (?:less|smaller) than|to be true, but got false|or newer|"
    r"requires? .{0,30}(?:head_?dim|"
    r"dtype|fp16|bf16|sm\d|multiple))"
)
RULES: tuple[Rule, ...] = (
    Rule(  # the scale's place asked about, or code that scales the softmax's output
        r"softmax\((?:[^()]|\([^()]*\))*\)\s*[*/]\s*[\w.]*(?:scal|sqrt|temperature|d_?k)|"
        r"\bscal(?:e|ing)s?\b[^.]{0,40}\b(?:after|before|position)\b[^.]{0,30}"
        r"(?:softmax|scores?|logits)|(?:after|before) (?:the )?softmax[^.]{0,40}\bscal",
        ("missing-scale",),
        "the scale applied in another place than the scores: 1/sqrt(d) multiplies Q·Kᵀ "
        "before the softmax; after it, it only shrinks weights that no longer sum to one",
        weight=1.3,
    ),
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
        "an elementwise operation met sizes {0} and {1} at dimension {2}: in attention code "
        "most often a mask or bias that does not line up with the scores (B, H, L, S)",
        read=True,
    ),
    Rule(
        r"output with shape \[[\d, ]+\] doesn't match the broadcast shape",
        ("mask-shape", "batch-mismatch", "mask-broadcast-axis"),
        "an in-place operation (+=, masked_fill_) cannot grow its output: the mask or bias "
        "has more axes (or a bigger batch) than the scores it is added to",
        read=True,
    ),
    Rule(
        r"operands could not be broadcast together with (?:remapped )?shapes?",
        ("mask-shape", "mask-broadcast-axis", "causal-alignment", "kv-length-mismatch"),
        "NumPy could not broadcast two arrays: a mask or bias that does not line up with "
        "the scores (B, H, L, S), a key-padding mask needs [:, None, None, :]",
        read=True,
    ),
    Rule(
        r"Incompatible shapes: \[[\d,]*\] vs\. \[[\d,]*\] \[Op:LogicalAnd\]",
        ("mask-shape", "mask-broadcast-axis"),
        "Keras combines attention_mask with its own masks by a logical and: attention_mask "
        "must be (B, L, S), not a (B, S) padding mask",
    ),
    Rule(
        r"Incompatible shapes(?: for broadcasting)?:? \[?\(?[\d, ]+\]?\)? vs\.? |"
        r"incompatible shapes for broadcasting|Incompatible shapes for broadcasting: shapes=|"
        r"must be broadcastable|required broadcastable shapes|"
        r"Dimensions? \d+ in both shapes must be equal|(?:Bias|mask) must have (?:the )?same|"
        r"boolean index did not match indexed array|shape of (?:the )?(?:attn_|attention_)?"
        r"mask|mask shape|\bmask\w*\.(?:reshape|view|expand)\(",
        ("mask-shape", "batch-mismatch", "mask-broadcast-axis"),
        "two shapes that do not broadcast, in attention code usually a mask against the "
        "scores (B, H, L, S): a padding mask (B, S) needs [:, None, None, :]",
        read=True,
    ),
    Rule(
        r"Incompatible shapes for attention inputs|query\.shape.{0,60}key\.shape|"
        r"batch (?:size|dims?).{0,30}(?:mismatch|must match|differ)|"
        r"must have compatible batch dimensions",
        ("batch-mismatch", "gqa-heads", "kv-length-mismatch"),
        "query and key/value disagree on a leading (batch or head) axis",
    ),
    Rule(
        rf"einsum\(\): (?:operands do not broadcast|subscript \w has size {_N} for operand "
        rf"\d+ which does not broadcast with previously seen size {_N})",
        ("batch-mismatch", "position-out-of-range", "kv-length-mismatch", "batched-matmul"),
        "an einsum operand disagrees with the others on a shared subscript: a batch (or "
        "context) not repeated for the other operand, a table built for another length, or "
        "keys and values of different lengths",
        read=True,
    ),
    Rule(
        rf"mismatch in its core dimension 0.*\(size {_N} is different from {_N}\)",
        ("qk-dim-mismatch", "missing-transpose", "projection-width", "kv-length-mismatch"),
        "a matmul contracts {0} against {1}: in Q·Kᵀ the key has {0} features and the query "
        "{1}, or K was not transposed",
    ),
    Rule(  # bmm's batch axes differ, the contracted one agrees: heads folded into one only
        r"Expected size for first two dimensions of batch2 tensor to be: \[(\d+), (\d+)\] "
        r"but got: \[(?!\1\])(\d+), \2\]",
        ("batch-mismatch", "head-split", "batched-matmul"),
        "bmm's batch axis: {0} against {2}, with the contracted {1} agreeing: one operand has "
        "the heads folded into the batch (B*H) and the other not, or the batches differ",
    ),
    Rule(
        rf"Expected size for first two dimensions of batch2 tensor to be: \[{_N}, {_N}\] "
        rf"but got: \[{_N}, (?!\2\])(-?\d+)\]",
        ("qk-dim-mismatch", "missing-transpose", "kv-length-mismatch"),
        "bmm wanted its second operand to start with [{0}, {1}] and got [{2}, {3}]: {1} "
        "against {3} on the contracted axis",
    ),
    Rule(
        rf"(?:mat1 and mat2 shapes cannot be multiplied|size mismatch, m1:) "
        rf"\[?\(?{_N} ?x ?{_N}\]?,? (?:and|m2:) \[?{_N} ?x ?{_N}\)?",
        ("projection-width", "batched-matmul", "qk-dim-mismatch"),
        "a linear layer expects {2} input features but gets {1}: the input or context width "
        "does not match the projection",
    ),
    Rule(
        rf"shapes \(([\d, ]+)\) and \(([\d, ]+)\) not aligned: {_N} \(dim \d+\) != {_N}",
        ("qk-dim-mismatch", "projection-width", "missing-transpose"),
        "np.dot contracts {2} against {3}",
    ),
    Rule(
        rf"dot_general requires contracting dimensions to have the same shape, got "
        rf"\[?\(?{_N},?\)?\]? and \[?\(?{_N},?\)?\]?",
        ("qk-dim-mismatch", "projection-width", "missing-transpose", "kv-length-mismatch"),
        "JAX contracts {0} against {1}",
    ),
    Rule(
        r"dot_general requires (?:lhs|rhs)? ?batch dimensions",
        ("batch-mismatch", "gqa-heads", "batched-matmul"),
        "JAX's dot_general needs equal batch (and head) sizes on both operands",
    ),
    Rule(
        rf"Matrix size-incompatible: In\[0\]: \[(?:\d+,)*{_N},{_N}\], In\[1\]: "
        rf"\[(?:\d+,)*{_N},{_N}\]",
        ("qk-dim-mismatch", "projection-width", "missing-transpose", "batched-matmul"),
        "TensorFlow multiplies [..., {0}, {1}] by [..., {2}, {3}]: {1} and {2} must be equal",
    ),
    Rule(
        rf"Dimensions must be equal, but are {_N} and {_N}",
        ("qk-dim-mismatch", "projection-width", "kv-length-mismatch", "mask-shape"),
        "TensorFlow meets {0} against {1} where two operands must agree",
    ),
    Rule(
        rf"Expected dimension {_N} at axis {_N} of the input shaped \[[\d,]+\] but got "
        rf"dimension {_N}",
        ("qk-dim-mismatch", "kv-length-mismatch", "batched-matmul"),
        "tf.einsum expected {0} at axis {1} and got {2}: the operands disagree on a shared "
        "subscript",
    ),
    Rule(
        r"self must be a matrix|batch1 must be a 3D tensor|Expected 3-dimensional tensor|"
        r"einstein sum subscripts string contains too many subscripts|"
        r"operand has more dimensions than subscripts|number of subscripts in the equation",
        ("batched-matmul",),
        "a 2-D operation (mm, a 2-D einsum) got batched input; use matmul/bmm or '...'",
    ),
    Rule(
        r"shape '\[[-\d, ]+\]' is invalid for input of size|"
        r"cannot reshape array of (?:size|shape)|Input to reshape is a tensor with",
        ("head-split", "head-axis-order", "layout-confusion"),
        "a reshape that cannot hold the tensor: splitting into heads needs a width that is "
        "a multiple of num_heads, and sizes that are this tensor's own",
        read=True,
    ),
    Rule(
        r"divisible by num_heads|must be divisible by(?! ?(?:the )?block)|% ?self\.num_heads|"
        r"integer modulo by zero",
        ("head-split", "gqa-heads"),
        "splitting into heads does not divide the width: embed_dim must be a multiple of num_heads",
    ),
    Rule(
        r"view size is not compatible with input tensor's size and stride",
        ("head-axis-order", "head-split"),
        "view() after a transpose: merge heads with .transpose(1, 2).reshape(...)",
    ),
    Rule(
        r"index out of range in self|indices\[[\d,]+\] = -?\d+ is not in \[0, \d+\)|"
        r"srcIndex < srcSelectDimSize|IndexError: index -?\d+ is out of bounds|"
        r"\bindex out of range at\b|embedding_lookup|\bGather(?:V2)?\b",
        ("position-out-of-range", "token-out-of-range", "ragged-lengths"),
        "an embedding lookup with an index past the table: a position >= the position "
        "table's length (an input longer than the model's maximum), or a token id >= vocab "
        "size (or a -100/-1 pad id)",
    ),
    Rule(  # an index error beside the vocabulary's size, or a token id said out of range
        r"\bindex out of range\b.{0,300}\bvocab(?:ulary)?[ _]?sizes?\b|"
        r"\bvocab(?:ulary)?[ _]?sizes?\b.{0,300}\bindex out of range\b|"
        r"\btoken[ _]?ids? (?:-?\d+ )?(?:is )?out of (?:range|bounds)",
        ("token-out-of-range", "position-out-of-range"),
        "an index past the embedding table beside the vocabulary's size: a token id >= "
        "vocab_size (a token added to the tokenizer, or a config's id, without "
        "resize_token_embeddings)",
        weight=1.2,
    ),
    Rule(
        rf"index {_N} is out of bounds for (?:axis|dimension) {_N} with size {_N}",
        ("position-out-of-range", "token-out-of-range", "ragged-lengths", "kv-cache"),
        "index {0} into an axis of size {2}",
    ),
    Rule(  # a shape indexed past its rank: x.shape[2] of a 2-D tensor
        r"\.shape\[-?\d\].{0,300}(?:list|tuple) index out of range|"
        r"(?:list|tuple) index out of range.{0,300}\.shape\[-?\d\]",
        ("axis-out-of-range", "layout-confusion"),
        "a shape indexed past its rank (shape[2] of a tensor with two axes): the tensor has "
        "fewer axes than the code expects (no sequence axis, or a batch axis missing)",
        weight=1.6,
    ),
    Rule(  # a pretrained model with its own tokenizer: the vocabulary fits, the length not
        r"(?:from_pretrained|tokenizer\().{0,300}index out of range in self|"
        r"index out of range in self.{0,300}(?:from_pretrained|tokenizer\()",
        ("position-out-of-range", "token-out-of-range"),
        "a pretrained model fed by its own tokenizer: the ids fit its vocabulary, so the "
        "index past the table is a position: an input longer than the maximum length "
        "(tokenize with truncation=True, max_length=...)",
        weight=1.3,
    ),
    Rule(
        r"(?:list|tuple) index out of range",
        ("head-index",),
        "indexing a list past its end: fewer head chunks than num_heads",
    ),
    Rule(
        rf"axis {_N} is out of bounds for array of dimension {_N}|"
        r"Dimension out of range|`dim` must be in the range|Invalid reduction dimension|"
        r"axes don't match array|isn't a permutation",
        ("axis-out-of-range", "layout-confusion"),
        "an axis the array does not have: a missing batch or head axis",
    ),
    Rule(
        r"Expected attn_mask dtype to be bool or float|attn_mask dtype|"
        r"Mask tensor can take 0 and 1 values only|mismatched key_padding_mask and attn_mask|"
        r"only bool and floating types of (?:key_padding_mask|attn_mask)|"
        r"only supports boolean masks|expected condition to be a boolean|"
        r"\"bitwise_\w+\" not implemented for 'Float'|expected to be a bool tensor|"
        r"mask dtype|\bdtype\b.{0,40}\bmask\b|\bmask\b.{0,40}\bdtype\b",
        ("mask-dtype",),
        "a mask of the wrong dtype: bool (True = attend) or a float additive mask of the "
        "query's dtype",
    ),
    Rule(
        r"value cannot be converted to type (?:at|c10)::Half without overflow|"
        r"(?:float16|\bhalf\b|fp16|\bamp\b|mixed.precision|16.mixed|precision=.?16\b)"
        r".*\b(?:nans?|inf|overflow\w*)\b|"
        r"\b(?:nans?|inf|overflow\w*)\b.*(?:float16|\bhalf\b|fp16|\bamp\b|mixed.precision|"
        r"16.mixed|precision=.?16\b)|"
        r"(?:1e[49]|1e1\d|1e20|65504|finfo).{0,80}(?:float16|fp16|\bhalf\b)|"
        r"(?:float16|fp16|\bhalf\b).{0,80}(?:1e[49]|1e1\d|65504|finfo)",
        ("fp16-overflow", "inf-arithmetic"),
        "a constant like -1e9 or a large logit overflows float16 (its largest value is 65504)",
    ),
    Rule(
        r"\boverflow\w*|\bto -?inf\b|上溢|溢出",
        ("softmax-overflow", "fp16-overflow", "inf-arithmetic"),
        "a value past the dtype's range: exp passes float32's range at 88.7 unless the row "
        "maximum is subtracted; float16 ends at 65504",
    ),
    Rule(
        r"\bnans?\b.*(?:mask|padding|padded|\bpad\b)|(?:mask|padding|padded).*\bnans?\b",
        ("fully-masked-row", "nan-in-padding", "inf-arithmetic"),
        "NaN with masking: a row where every key is masked has softmax 0/0, and NaN in a "
        "masked position still flows through the matmuls",
        weight=0.9,  # NaN and a mask in one text: a co-occurrence, not a mechanism
    ),
    Rule(
        r"\bnans?\b|(?<![-\w'\"])inf\b",
        ("fully-masked-row", "softmax-overflow", "fp16-overflow"),
        "NaN or inf in attention: a fully masked row (softmax 0/0), exp overflow without "
        "subtracting the row max, or float16 overflow",
        fallback=True,
    ),
    Rule(
        r"zero-size array to reduction operation|to have non-zero size",
        ("ragged-lengths", "fully-masked-row"),
        "a reduction over an empty row: a zero-length sequence",
    ),
    Rule(
        r"does not have an identity, so to use a where mask",
        ("fully-masked-row", "ragged-lengths"),
        "a masked reduction needs a value for rows where nothing is kept",
    ),
    Rule(
        r"softmax.{0,60}\b(?:dims?|dimensions?|axis|axes)\b|\b(?:dims?|axis)\b.{0,40}softmax",
        ("softmax-axis", "axis-out-of-range"),
        "the softmax axis: attention weights are normalised over the keys, the last axis",
    ),
    Rule(
        r"\bsqrt\b|square root|scal(?:e|ing) factor|\btemperature\b|rsqrt|1 ?/ ?√|"
        r"\bscaled?\b.{0,30}\b(?:d_?k|head_?dim)|divid\w* .{0,40}\b(?:d_?k|head_?dim|dimension)",
        ("missing-scale",),
        "the 1/sqrt(d) scale, with d the head size: without it the softmax saturates",
    ),
    Rule(
        r"\b(?:permute|transpose)\b.{0,60}\b(?:reshape|view)\b|"
        r"\b(?:view|reshape)\b.{0,80}\b(?:heads?|num_heads?|n_heads?|n_head)\b",
        ("head-axis-order", "head-split"),
        "splitting or merging heads: reshape/view reads memory order, so heads must be "
        "transposed next to the features first",
    ),
    Rule(
        r"\A(?=.*\bmask)(?=.*\b(?:True|False)\b)(?=.*\b(?:pad\w*|ignor\w*|attend\w*|keep)\b)|"
        r"polarity|invert\w* (?:the )?mask",
        ("mask-polarity",),
        "which value of a boolean mask means 'attend': True = attend in SDPA, JAX and Keras, "
        "True = ignore in nn.MultiheadAttention's masks",
        weight=0.8,
    ),
    Rule(
        r"(?:ignor\w*|without|missing|no|forgot\w*)\s+(?:the\s+)?(?:padding\s+|causal\s+)?mask|"
        r"recommend passing (?:in )?an? `?attention_mask",
        ("mask-missing",),
        "padding or future positions that are never masked",
    ),
    Rule(  # a padding mask that keeps everything: "the attention_mask turns out to be all
        # True", "always returns array of ones", "all values set to 1", "padded with 1"
        r"\b(?:attention[_ ])?masks?`?\b[^.\n]{0,50}\b(?:all|always|only|full of|filled with|"
        r"array of|(?:values? )?set to|padded with) (?:\w+ )?(?:ones|true|1s?)\b",
        ("mask-missing", "mask-polarity"),
        "a padding mask that keeps every position (all ones / all True): the pads are "
        "attended as if they were text; build it from the real lengths, or from input_ids "
        "!= the pad id the batch was really padded with",
        weight=1.0,
    ),
    Rule(
        r"Sizes of tensors must match except in dimension|all the input array dimensions "
        r"except for the concatenation axis must match|ConcatOp : Dimension|"
        r"Cannot concatenate arrays",
        ("kv-cache", "batch-mismatch"),
        "concatenating arrays that differ on another axis: a KV cache concatenated along "
        "the wrong axis, or head outputs of different batch sizes",
    ),
    Rule(
        rf"Expected key_padded_mask\.shape\[0\] to be {_N}, but got {_N}",
        ("mask-shape", "layout-confusion", "batch-mismatch"),
        "key_padding_mask must be (N, S) with N = {0}, the batch the layer read from the "
        "query; a mask with {1} rows is transposed (S, N), or the input is batch-first for a "
        "sequence-first layer",
    ),
    Rule(
        rf"Expected key_padded_mask\.shape\[1\] to be {_N}, but got {_N}",
        ("mask-shape", "kv-cache", "kv-length-mismatch"),
        "key_padding_mask covers {1} keys where there are {0}: a mask built for another "
        "length (keys grown by a cache, or padded to another length)",
    ),
    Rule(
        r"expected `attn_mask` to be `None`, 2-D or 3-D|attn_mask's dimension \d+ is not "
        r"supported|Expected `attn_mask` shape to be|expected `key_padding_mask` to be `None`",
        ("mask-shape", "mask-broadcast-axis"),
        "nn.MultiheadAttention takes attn_mask (L, S) or (N·num_heads, L, S) and "
        "key_padding_mask (N, S), never a 4-D (N, H, L, S) mask",
    ),
    Rule(
        r"query should be unbatched 2D or batched 3D tensor|expected `key` and `value` to be "
        r"[23]-D|(?:query|key|value) ndim should be \d+, but got \d+",
        ("layout-confusion", "kernel-layout", "batched-matmul"),
        "the inputs have another rank than the layer takes: MultiheadAttention wants "
        "(L, N, E) or (N, L, E), jax.nn.dot_product_attention (B, T, N, H) with the heads "
        "split",
    ),
    Rule(
        r"(?:mask|bias) ndim should be \d+, but got \d+",
        ("mask-shape", "mask-broadcast-axis"),
        "jax.nn.dot_product_attention wants a 4-D mask or bias (B, N, T, S): a (B, S) "
        "padding mask needs mask[:, None, None, :]",
    ),
    Rule(
        r"mask dtype should be bool|bias dtype should be",
        ("mask-dtype",),
        "jax.nn.dot_product_attention wants a boolean mask (True = attend)",
    ),
    Rule(
        r"(?:query|key|value) shape should be \[[-\d, ]+\]: but got",
        ("batch-mismatch", "kv-length-mismatch", "qk-dim-mismatch", "gqa-heads"),
        "jax.nn.dot_product_attention needs query, key and value to agree on batch and head "
        "size, and key and value on length and heads",
    ),
    Rule(
        r"(?:too many|not enough) values to unpack \(expected (\d+)(?:, got (\d+))?\)",
        ("layout-confusion", "axis-out-of-range", "batched-matmul"),
        "unpacking a shape into {0} names (b, h, l, d = q.shape) on a tensor of another "
        "rank: a missing or extra batch or head axis",
        domain=True,
    ),
    Rule(
        r"(?:query|key|value|q|k|v)\w*,? (?:and|,) (?:key|value|k|v)\w*(?:,? and "
        r"(?:value|v))? (?:must|should) have the same dtype|Expected query, key,? and value "
        r"to have the same dtype|"
        # xFormers' "Query/Key/Value should either all have the same dtype, or (in the
        # quantized case) ...", kernels' "Q/K/V must have the same dtype"
        r"\b(?:query|q)\s*/\s*(?:key|k)\s*/\s*(?:value|v)\b (?:must|should) (?:either )?"
        r"(?:all )?have the same dtype",
        ("reduced-precision", "backend-constraint", "mask-dtype"),
        "query, key and value in different dtypes: one of them left out of the autocast or "
        "the .half()/.to(bfloat16) conversion",
    ),
    Rule(
        r"All dimensions of .value. and .key., except the last one, must be equal",
        ("kv-length-mismatch", "batch-mismatch"),
        "Keras MultiHeadAttention wants key and value of the same batch and length",
    ),
    Rule(
        r"(?:query|q|attention)_?heads?.{0,60}(?:divisible|multiple).{0,40}"
        r"(?:key_value|kv|key/value)_?heads|(?:key_value|kv|key/value)_?heads.{0,60}"
        r"(?:divide|divisible|multiple)",
        ("gqa-heads", "head-split"),
        "grouped-query attention: the query head count must be a multiple of the key/value "
        "head count",
        weight=1.1,
    ),
    Rule(
        r"(?:q, k|q, k, v) num_heads must match",
        ("gqa-heads", "head-split"),
        "Flax's dot_product_attention wants as many key/value heads as query heads: repeat "
        "the key/value heads (grouped-query attention) or use jax.nn.dot_product_attention",
    ),
    Rule(
        r"(?:q, k|q, k, v) batch dims must match",
        ("batch-mismatch", "layout-confusion"),
        "Flax's attention wants the same batch axes on query, key and value",
    ),
    Rule(
        r"q, k depths must match",
        ("qk-dim-mismatch", "projection-width"),
        "Flax's attention contracts query and key features: their head sizes differ",
    ),
    Rule(
        r"k, v lengths must match",
        ("kv-length-mismatch",),
        "Flax's attention wants keys and values of the same length",
    ),
    Rule(
        r"(?:q, k|q, k, v) must have same rank",
        ("layout-confusion", "batched-matmul", "kernel-layout"),
        "Flax's attention wants query, key and value of the same rank, "
        "[batch..., length, heads, head_dim]",
    ),
    Rule(
        r"Autoregressive cache shape error|cache (?:not|is not) initiali[sz]ed|init_cache",
        ("kv-cache", "causal-alignment"),
        "Flax's decode cache takes one new position per step, with the cache built "
        "(init_cache) for the query's shape: a prompt of several tokens or a cache of "
        "another shape fails",
    ),
    Rule(
        r"was expecting embedding dimension of|embed_dim_to_check|"
        r"len1 == embed_dim|expected axis -?\d+ of input shape to have value",
        ("projection-width", "layout-confusion"),
        "MultiheadAttention got another embedding size than it was built with (kdim/vdim), "
        "or a batch-first input read as sequence-first",
    ),
    Rule(
        r"shape of the (?:2D|3D) attn_mask is",
        ("mask-shape", "layout-confusion", "mask-polarity"),
        "a MultiheadAttention mask of the wrong shape: attn_mask (L, S) or (N*H, L, S), "
        "key_padding_mask (N, S); a batch-first input read as sequence-first gives the "
        "same message",
        read=True,
    ),
    Rule(
        r"key_padding_mask|key_padded_mask",
        ("mask-shape", "mask-polarity", "layout-confusion", "mask-dtype"),
        "MultiheadAttention's key_padding_mask: (N, S), True = ignored, in the query's "
        "dtype when it is a float; a batch-first input read as sequence-first breaks it too",
        read=True,
        weight=0.7,  # a name, not a wording: what the report says of it weighs more
    ),
    Rule(
        r"kv.?cach|past_key_values|\b(?:key|value|attention|decoder|layer|autoregressive|"
        r"static|sliding|rolling|sink)s?[ _-]?cach|key.value cach|cache_position|init_cache|"
        r"\bdecode=True|\bdecoded=True|\bgenerat(?:e|ion|ing)\b.{0,40}\bcach",
        ("kv-cache", "causal-alignment", "positions"),
        "decoding with a key/value cache: the cache, its positions and its mask must grow "
        "together, and causal masking with L != S needs bottom-right alignment",
        weight=0.85,
    ),
    Rule(
        r"is_causal|causal.mask|\btril\b|\btriu\b|bottom.right|top.left|autoregressive|"
        r"\bdecoding\b|look.?ahead.mask|subsequent.mask",
        ("causal-alignment", "mask-missing", "kv-cache", "fully-masked-row"),
        "the causal mask: its diagonal, its alignment when L != S (bottom-right for decoding), "
        "and whether it is applied at all",
        weight=0.85,
    ),
    Rule(
        r"mat1 and mat2 shapes|size mismatch, m1:|"
        r"last dimension of `?query_shape`? and `?value_shape`? must be equal|"
        r"\b[kv]dim\b",
        ("projection-width", "qk-dim-mismatch"),
        "a projection or attention layer gets another feature width than it was built for",
    ),
    Rule(
        r"1D tensors expected, but got \dD and \dD|Expected argument self to have 1 "
        r"dimension|Shape must be rank 2 but is rank 3|must be a (?:matrix|vector)|"
        r"Incompatible types for matmul",
        ("batched-matmul", "missing-transpose"),
        "a 1-D or 2-D operation (dot, mm, MatMul) got batched input: use matmul/bmm or einsum "
        "with a batch axis",
    ),
    Rule(
        rf"Size of label '(\w)' for operand \d+ \({_N}\) does not match previous terms "
        rf"\({_N}\)",
        ("qk-dim-mismatch", "kv-length-mismatch", "gqa-heads", "projection-width"),
        "the einsum label '{0}' has size {1} in one operand and {2} in another",
    ),
    Rule(
        r"position(?:al)? (?:encoding|embedding)s?.{0,120}(?:batch|shape\[0\]|size\(0\))|"
        r"(?:batch|shape\[0\]|size\(0\)).{0,120}positional (?:encoding|embedding)",
        ("layout-confusion", "positions", "position-out-of-range"),
        "positions taken from the wrong axis: with batch-first input, x.shape[0] is the batch "
        "size, not the sequence length",
    ),
    Rule(
        r"(?:need|forg[eo]t|missing|without|missed)\w* (?:to )?(?:the |a )?transpos|"
        r"should(?: be|n't it be)? transposed",
        ("missing-transpose", "head-axis-order"),
        "a transpose is missing: k.transpose(-2, -1) before Q·Kᵀ, or heads moved next to "
        "the features before merging",
    ),
    Rule(
        r"can't divide axis of length \d+ in chunks of \d+|Shape mismatch, can't divide|"
        r"split does not result in an equal division|evenly divide",
        ("head-split", "head-index"),
        "splitting the features into heads: the width is not a multiple of the head count",
    ),
    Rule(
        r"number of elements in 'key' must be equal to .{0,60}'value'|"
        r"key and value (?:must have|should have) the same (?:sequence )?length|"
        r"key shape .{0,40}does not match value shape",
        ("kv-length-mismatch",),
        "keys and values must have the same number of positions",
    ),
    Rule(
        r"index out of range: Tried to access index \d+ out of table with \d+ rows",
        ("position-out-of-range", "token-out-of-range"),
        "an embedding lookup past the table: a position or token id >= the number of rows",
    ),
    Rule(  # TensorFlow's Slice check ("Expected size[0] in [0, 512], but got 1024"), or the
        # negative padding of its gradient: a table or mask sliced past its rows
        r"Expected size\[\d+\] in \[0, (\d+)\], but got (\d+)|"
        r"Slice_grad/Pad[^\n]{0,200}Paddings must be non-negative|"
        r"Paddings must be non-negative[^\n]{0,120}Slice_grad",
        ("position-out-of-range", "causal-alignment", "mask-shape"),
        "a slice longer than the tensor it is cut from: a position table (its "
        "max_position_embeddings rows) or a mask built for a shorter sequence, sliced to the "
        "current length",
    ),
    Rule(
        r"query heads must be a multiple of key/value heads|num_key_value_heads|"
        r"\b(?:n|num)?_?kv_heads?\b|\bkv_heads?\b|\bGQA\b|grouped.query|multi.query|repeat_kv|"
        r"enable_gqa|\b(?:repeat|tile)(?:_interleave)?\(\s*(?:keys?|values?|k|v)\b",
        ("gqa-heads",),
        "grouped-query attention: query and key/value head counts differ",
    ),
    Rule(
        rf"{_BACKEND}.{{0,200}}{_REFUSES}|{_REFUSES}.{{0,120}}{_BACKEND}",
        ("backend-constraint",),
        "a fused attention kernel refuses this call (head size, dtype, GPU, mask or "
        "dropout): the math path runs it",
    ),
    Rule(  # a kernel with no version for the dtype it is given. PyTorch's dispatch macros:
        # '"{kernel}" not implemented for '{dtype}'' naming an attention kernel;
        # TensorBase::data_ptr<float>()'s "expected scalar type Float but found Half" next to
        # a kernel or autocast (an extension compiled for float32 only, run under AMP);
        # XLA's "Unsupported algorithm on the current device(s): ALG_DOT_BF16_BF16_F32" (a dot
        # precision the GPU generation has no instruction for)
        r"\"(\w*(?:attn|attention|fmha|flash|mha|sdpa)\w*)\" not implemented for '(\w+)'|"
        r"Unsupported algorithm on the current device\(s\): (ALG_DOT_\w+)",
        ("backend-constraint", "reduced-precision"),
        "a kernel with no version for the dtype it is given ({0}): a custom or fused attention "
        "kernel compiled for other precisions, or a dot precision this device cannot run; cast "
        "its inputs to a dtype it was built for or use the math path",
        weight=1.2,
    ),
    Rule(  # the same refusal inside a custom extension: data_ptr<float>() on a half tensor
        r"(?:autocast|\bamp\b|mixed.precision|\bkernel|\.cu\b|cuda extension|\w+\.\w+\[device)"
        r"[\s\S]{0,200}expected scalar type (Float|Half|BFloat16) but found (Half|BFloat16|Float)",
        ("backend-constraint", "reduced-precision"),
        "a kernel that reads its inputs as {0} was given {1}: a custom attention kernel "
        "compiled for one precision, run under autocast; cast its inputs to {0} around the call "
        "(or a mask kept in {0} beside {1} scores)",
        weight=1.2,
    ),
    Rule(  # flash-attn's (and kernels copying its flash_api.cpp) CHECK_SHAPE: '#x " must have
        # shape (" #__VA_ARGS__ ")"' on the query, key, value or output: "v must have shape
        # (batch_size, seqlen_k, num_heads_k, head_size_og)"
        r"\b(?:q|k|v|out|dout|dq|dk|dv|k_cache|v_cache|k_?new|v_?new|\w+_padded)\b must have shape "
        r"\((?:batch_size|total_[qk]|num_blocks)\b",
        ("backend-constraint", "kernel-layout"),
        "the fused kernel's own shape check: flash-attn takes (batch, seqlen, heads, head_dim), "
        "length before heads, key and value with the same batch, length and head count, and "
        "one head size for query, key and value (a value of another head size is refused)",
        weight=1.3,
    ),
    Rule(  # xFormers' memory-efficient attention checks its inputs' layout (fmha/common.py:
        # "Query/Key/Value should all have BMHK or BMK shape", "Invalid shape for attention
        # bias: torch.Size([40, 10, 10]) (expected (1, 40, 10, 10))"); a kernel's own
        # TORCH_CHECK on a bias or mask size ("Expected bias.size(1) == n_heads to be true,
        # but got false", "Expected attn_bias.stride(1) == 0 to be true")
        r"should all have BMHK or BMK shape|Invalid shape for attention bias|"
        r"Expected (?:attn_)?(?:bias|mask)\w*\.(?:size|stride|dim|sizes)\(\d*\)[^\n]{0,40}to be "
        r"true, but got false",
        ("backend-constraint", "kernel-layout", "mask-shape"),
        "a fused kernel's own shape check: xFormers takes query, key and value as (B, M, H, K) "
        "(length before heads) or (B, M, K), and a bias of exactly (B, H, M, N), expanded, "
        "never broadcast; a kernel checking bias.size(1) wants one bias row per head",
        weight=1.3,
    ),
    Rule(  # a kernel's 32-bit index arithmetic past 2^31 elements: PyTorch's
        # "bias_4d_view.stride(0) overflows", SageAttention's "tensor strides exceed int32
        # range", int32 offset overflows reported in SDPA's, MLX's and Triton kernels
        r"\.stride\(\d\) overflows|\bstrides? exceeds? (?:the )?int32|canUse32BitIndexMath|"
        r"\b(?:int32|32.bit|int_?max|integer|index|offset|stride)s?\b[^.\n]{0,30}\boverflow|"
        r"\boverflows? (?:of )?(?:the )?(?:int32|32.bit|int_?max)\b|"
        r"\b(?:elements?|numel|tokens?|rows?)\b[^.\n]{0,20}(?:>=?|exceeds?|more than|past) "
        r"2(?:\^|\*\*)3[12]\b",
        ("backend-constraint", "memory-blowup"),
        "a kernel's 32-bit index arithmetic: past 2^31 elements (batch x heads x length x "
        "length for a mask or bias) an offset wraps; split the batch or the length, or use "
        "another backend",
        weight=1.2,
    ),
    Rule(  # anomaly mode's "Function '{node}' returned nan values in its {i}th output."
        # naming a fused attention kernel's backward (SDPA's efficient, flash and cuDNN
        # kernels, flash-attn's FlashAttnFunc, Transformer Engine's FusedAttnFunc)
        r"Function '\w*(?:flash|fused|efficient|cudnn|xformers?|triton|memeff|sdpa|"
        r"ScaledDotProduct)\w*Backward\w*' returned (?:nan|inf)",
        ("backend-constraint", "fully-masked-row", "fp16-overflow"),
        "NaN out of a fused attention kernel's backward: the kernel's own handling (rows "
        "with every key masked, half-precision range) differs from the math path; rerun "
        "the step with the math backend to tell a kernel issue from your inputs",
        weight=1.2,
    ),
    Rule(  # a kernel's own size check, quoted without the kernel's name: flash-attn's
        # "only supports head dimension at most 256", Pallas' "kv_seq_len=... should be
        # divisible by block_k_major=...", Triton tutorials' "N_CTX must be divisible by
        # BLOCK", xFormers' "`<operator>@<version>` is not supported because: ..."
        r"(?:only|not|n't) supports? (?:the |this )?head[ _]?(?:size|dim\w*)|"
        r"(?:must|should) be (?:a )?(?:divisible by|multiple of) (?:the )?block|"
        r"`\w+(?:@[\w.+]+)?`\s*is not supported because|"
        # vLLM's "head_size (100) is not supported. Supported head sizes: [64, ...]",
        # "Unsupported head size", TensorRT-LLM's "Size per head is not a multiple of X"
        r"\bsupported head[ _]?(?:sizes|dims?|dimensions?)\b|unsupported head[ _]?(?:size|dim)|"
        r"\b(?:head_?(?:size|dim)|headdim)\b\W{0,3}(?:-?\d+\W{0,3})?(?:is )?not supported|"
        # a head size or length checked against the kernel's fixed sizes or tile, by name
        r"\b(?:head_?(?:size|dim)|headdim|size[ _]?per[ _]?head|seq_?len\w*|n_ctx|"
        r"sequence length)\b`?[^.\n]{0,20}"
        r"(?:==\s*\d+\s*(?:\|\||or\b)|(?:can(?:not| not|'t)|could not|must|should) be divided by "
        r"\d+|(?:is )?not divisible by \d+|(?:must|should) be (?:a )?multiple of \d+|"
        r"is not a multiple of \w+|"
        r"only (?:be|supports?) (?:in )?[\[({]?\d+)",
        ("backend-constraint",),
        "a fused kernel's own limit (the head sizes it was compiled for, a length that is "
        "a whole number of its blocks, the bias types one operator takes), not your "
        "attention code: another backend or the math path runs the call",
        weight=1.2,
    ),
    Rule(
        r"\b(?:b|bs|batch)\s*[,x×]\s*(?:s|seq\w*|n|t|l)\s*[,x×]\s*(?:h|nheads?|num_heads|"
        r"heads?)\b|\b(?:bshd|bhsd|bnsh|bsnh|btnh|thd)\b|\blayout\b|"
        r"\(bs, ?seq, ?nhead|expects? \(?(?:batch|b), ?(?:seqlen|seq)",
        ("kernel-layout", "layout-confusion", "gqa-heads"),
        "a kernel given another axis layout than it expects: flash-attn wants (B, S, H, D), "
        "SDPA (B, H, S, D)",
    ),
    Rule(
        rf"{_BACKEND}|attn_implementation|\beager\b|\bsdpa\b|scaled_dot_product_attention",
        ("backend-constraint", "kernel-layout", "window-size"),
        "a fused or other attention backend behaves differently from the eager (math) path",
        weight=0.55,
    ),
    Rule(
        r"cu_seqlens|varlen|\bpack(?:s|ed|ing)?\b[^.]{0,40}\b(?:examples?|sequences?|documents?|"
        r"samples?)\b|\bpack(?:ed|ing)\b|document boundar|cross.document|"
        r"BlockDiagonal\w*|seqlens?_[qk]\b|q_seqlen|kv_seqlen",
        ("packed-sequences",),
        "packed sequences: documents in one row need their own block-diagonal mask and positions",
    ),
    Rule(  # paged / ragged kernels: the cache is handed over in pages, in a fixed layout
        r"paged_attention|ragged_paged|paged[_ ]?(?:kv|cache)|block_tables?|kv_pages|"
        r"pages_per_seq|page_indices|num_kv_pages",
        ("kv-cache", "kernel-layout", "backend-constraint"),
        "a paged key/value cache handed to a kernel: the pages, the block table and the "
        "heads must be in the layout the kernel validates ((pages, page size, kv heads, D))",
    ),
    Rule(  # a per-example mask repeated over the heads in code
        r"mask\w*\.(?:repeat|repeat_interleave|expand|tile)\([^)]*heads|"
        r"mask\w*[^.]{0,80}view\([^)]*(?:batch\w*|bs|bsz) ?\* ?(?:self\.)?num_heads",
        ("mask-shape", "mask-broadcast-axis"),
        "a per-example mask repeated over the heads by hand: the repeat's order (batch-major "
        "or head-major) and the view it feeds must match the (B·H, L, S) scores",
    ),
    Rule(
        r"\brope\b|rotary|rotate_half|inv_freq|\bcos\b.{0,20}\bsin\b|mrope",
        ("rotary-embedding",),
        "rotary position embeddings: the table, its convention (half-split or interleaved) "
        "and its precision",
    ),
    Rule(
        r"sliding.?window|local attention|window_size|\bwindow\b|"
        r"\bwindow_[a-z]\w*|\b[a-z]\w*_window\b",  # WINDOW_LEFT, attention_window
        ("window-size",),
        "a sliding window read in another convention (left/right offsets, a key count "
        "including self, a radius)",
    ),
    Rule(
        r"batch.?first|seq(?:uence)?.?first|\(L, N, E\)|\(seq_len, batch",
        ("layout-confusion",),
        "batch-first input read as sequence-first (or the reverse)",
    ),
    Rule(  # the batch axis said to sit in another place, or attention mixing batch elements
        r"\bbatch(?: size| dim\w*| axis)?\b[^.]{0,30}\b(?:in|at|on|as|to) the (?:first|second|"
        r"1st|2nd|last|leading|wrong|other) (?:dim\w*|axis|position|place)|"
        r"(?:mix\w*|leak\w*|shar\w*) (?:information|tokens?|context) (?:\w+ ){0,2}across "
        r"(?:\w+ ){0,3}(?:batch|samples|examples)\b|"
        r"treated as (?:\w+ )?batch (?:elements|items|samples|entries)",
        ("layout-confusion", "batch-mismatch"),
        "the batch axis is not where the layer reads it: attention runs along the batch "
        "(examples mix) and treats the sequence as independent examples",
        weight=1.1,
    ),
    Rule(  # position ids named: where they start and step, more often than the table's end
        r"\bposition_?ids?\b|\bpos(?:ition)?_ids?\b",
        ("positions", "position-out-of-range"),
        "position ids that do not follow the tokens: starting at 0 under left padding, not "
        "stepping with the cache, or restarting per packed document",
    ),
    Rule(  # a learned position table added to the tokens, of another length than they are
        # ("x = x + self.pos_embed ... size of tensor a (577) must match the size of tensor b
        # (197) at non-singleton dimension 1": a ViT at another image size; "embeddings +=
        # position_embeddings ... (937) ... (512)"); a position module called on x computes
        # its own length and is not this
        r"\+=?\s*(?:self\.)?(?:pos_embed\w*|pos_emb\w*|position_embeddings?|positional_\w+)\b"
        r"(?![\w.]*\()[^\n]{0,40}\s*(?:\w+Error:\s*)?The size of tensor a \((\d+)\) must match "
        r"the size of tensor b \((\d+)\) at non-singleton dimension 1\b",
        ("position-out-of-range", "positions"),
        "{0} tokens against a position table of {1} rows: the learned positions were built for "
        "another length (a ViT trained at another image size: (size/patch)^2 + 1 tokens); "
        "interpolate the table or truncate the input",
        weight=1.4,
    ),
    Rule(  # a length checked against the model's position table before it is indexed:
        # transformers' Whisper "the combined length of `decoder_input_ids` and
        # `max_new_tokens` is: 514. This exceeds the `max_target_positions` of the Whisper
        # model: 448", other models' "seq_len=5000 exceeds max_position_embeddings=4096",
        # "sequence of 5000 tokens exceeds max_position_embeddings 4096"
        r"(\d+)\b[^\d\n]{0,20}?\bexceeds (?:the )?`?"
        r"(?:max_target_positions|max_source_positions|max_position_embeddings|n_positions|"
        r"n_ctx)`?[^\d\n]{0,40}(\d+)",
        ("position-out-of-range",),
        "{0} positions asked for, a position table of {1} rows: the prompt plus the tokens to "
        "generate must fit the model's position embeddings; shorten one of them",
        weight=1.3,
    ),
    Rule(
        r"\bpositions? (?:ids?|embeddings?)\b|max_position_embeddings|"
        r"\bpos(?:ition(?:al)?)?_(?:emb\w*|enc\w*)\b|"
        r"\bmax_?len(?:gth)?\b|\blonger than (?:the )?(?:specified )?(?:max\w*|\d{3,}|position|"
        r"context|model|table|limit)",
        ("position-out-of-range", "positions"),
        "positions: a sequence longer than the position table, or position ids that do not "
        "start where the tokens do",
    ),
    Rule(  # memory for a tensor whose last two sizes are one long length: (…, L, L) scores or
        # mask (TensorFlow's "OOM when allocating tensor with shape[16,20000,20000]", "tried
        # to allocate a [16, 20000, 20000] tensor", "materialize [93600, 93600] mask")
        SQUARE_SCORES.pattern,
        ("memory-blowup",),
        "a tensor of (…, {0}, {0}): one row and one column per position, the (L, S) scores or "
        "mask for a sequence of {0}; it grows with the square of the length; use a fused "
        "kernel (flash or memory-efficient SDPA) or chunk the queries",
        weight=1.4,
    ),
    Rule(
        r"out of memory|\bOOMs?\b|Unable to allocate|RESOURCE_EXHAUSTED|cannot allocate|"
        r"OutOfMemoryError|ResourceExhaustedError|"
        # "this will try to allocate 720gb", "a crazy allocation for large tensor sizes",
        # PyTorch's CPU allocator: "not enough memory: you tried to allocate N bytes"
        r"\b(?:tr(?:y|ies|ied|ying)|attempt(?:s|ed|ing)?|going|will) to allocate\b|"
        r"not enough memory|"
        r"\b(?:crazy|huge|massive|enormous|giant) (?:memory )?allocations?\b",
        ("memory-blowup",),
        "memory: an (L, S) mask or bias materialised at the maximum length",
        weight=1.25,  # the failure reported; a feature named beside it says only where
    ),
    Rule(  # PyTorch's permute on a tensor of another rank
        r"does not match the length of the desired ordering of dimensions i\.e\. input\.dim\(\) "
        r"= (\d+) is not equal to len\(dims\) = (\d+)|number of dims don't match in permute",
        ("layout-confusion", "axis-out-of-range", "head-split"),
        "a permutation of {1} axes on a {0}-D tensor: the heads were not split out (or already "
        "merged) before the permute, or a batch axis is missing",
    ),
    Rule(  # PyTorch's expand to fewer sizes than the tensor has axes
        r"the number of sizes provided \((\d+)\) must be greater or equal to the number of "
        r"dimensions in the tensor \((\d+)\)",
        ("mask-shape", "mask-broadcast-axis", "layout-confusion"),
        "expanding a {1}-D tensor to {0} sizes: a mask (or bias) expanded to a shape of fewer "
        "axes than it has; give it the scores' rank first (mask[:, None, None, :])",
    ),
    Rule(  # torch.cat of tensors of two ranks (PyTorch: "Tensors must have same number of
        # dimensions: got 4 and 3"): in attention code, a key/value cache appended to
        r"Tensors must have same number of dimensions: got (\d+) and (\d+)",
        ("kv-cache", "layout-confusion", "axis-out-of-range"),
        "concatenating a {0}-D tensor with a {1}-D one: a key/value cache and the new keys or "
        "values kept in different layouts (heads split in one, merged in the other)",
        domain=True,
    ),
    Rule(
        r"must have the same number of dimensions|rank promotion|different ranks?\b|"
        r"Shapes? must be equal rank|must have (?:the )?same rank",
        ("mask-shape", "mask-broadcast-axis", "batched-matmul"),
        "arrays of different ranks where they must match (JAX with strict rank promotion, "
        "TensorFlow ops): a 2-D padding mask against 4-D scores needs mask[:, None, None, :]",
    ),
    Rule(
        r"\bShapes [(\[]([^)\]]*)[)\]] and [(\[]([^)\]]*)[)\]] are (?:not compatible|incompatible)",
        ("projection-width", "batch-mismatch", "mask-shape", "kv-length-mismatch"),
        "({0}) against ({1}): TensorFlow found a tensor of another shape than the state or "
        "weight it must match (no broadcasting here): a width (an attention or context size "
        "added to it) or a batch that differs",
        read=True,
    ),
    Rule(
        rf"Dimension must be {_N} but is {_N} for .{{0,80}}Transpose|"
        rf"transpose expects a vector of size {_N}\. But input\(1\) is a vector of size {_N}",
        ("axis-out-of-range", "batched-matmul", "head-split"),
        "a permutation of {1} axes given to a tensor of {0}: a batch or head axis missing "
        "(or added) before the transpose, or a batched product left another rank",
    ),
    Rule(
        r"cannot drop a non-broadcastable dimension|dimshuffle",
        ("batched-matmul", "axis-out-of-range", "layout-confusion"),
        "a permutation that drops an axis of size other than 1: a batched product "
        "(batch_dot) left another number of axes than the code permutes",
    ),
    Rule(
        r"Input '\w+' of '\w+' Op has type (\w+) that does not match",
        ("mask-dtype", "reduced-precision", "fp16-overflow"),
        "TensorFlow adds only tensors of one dtype: a mask or bias in {0} added to scores of "
        "another (cast the mask to the scores' dtype)",
    ),
    Rule(
        r"expected scalar type (\w+) but found (\w+)|expected (?:m1 and m2|mat1 and mat2|both "
        r"\w+) to have the same dtype|(?<!value to have the )same dtype, but got|"
        # PyTorch 0.4-1.1's wording of the same check
        r"expected backend \w+ and dtype (\w+) but got backend \w+ and dtype (\w+)",
        ("mask-dtype", "reduced-precision", "fp16-overflow"),
        "operands of two dtypes in one product or sum ({0} and {1}): in attention code a mask, "
        "a bias or a cos/sin table left in float32 (or the reverse) under half precision",
        domain=True,
    ),
    Rule(
        r"expected (?:min_|max_)?ndim=(\d+), found (?:ndim=)?(\d+)",
        ("layout-confusion", "axis-out-of-range", "batched-matmul"),
        "the layer wants {0} axes (batch, sequence, features) and got {1}: a batch or "
        "sequence axis missing, or one too many",
    ),
    Rule(  # fails only with both: beams and a batch, in any program
        r"(?:num_)?beams?\w*\s*(?:>|=)\s*\d+[^.]{0,80}batch|"
        r"batch\w*\s*(?:>|=)\s*\d+[^.]{0,80}(?:num_)?beams?\b",
        ("batch-mismatch",),
        "beams and a batch together: with beam search the batch is batch × beams, and an "
        "input given per example (encoder states, image features, lengths) was not repeated "
        "for the beams",
    ),
    Rule(  # the fill computed from the mask itself: 0 exactly where the mask is 0
        r"(?<![-~] )(?<![-~])\b\w*mask\w*\)?\s*\*\s*\(?\s*-\s*(?:1e\+?\d+|1\.0?e\+?\d+|\d{4,}|"
        r"inf\b)",
        ("mask-missing", "mask-polarity"),
        "a fill of mask × a large negative is 0 wherever the mask is 0: filled into the masked "
        "positions (where(mask == 0, fill, scores)) it masks nothing, and added it pushes down "
        "the kept positions instead of the padded ones",
    ),
    Rule(  # a fused kernel under a JAX transformation: its batching or derivative rule
        r"(?:vmap|jacobian|\bvjp\b|\bjvp\b).{0,150}(?:cudnn|pallas|splash|flash)|"
        r"(?:cudnn|pallas|splash).{0,150}(?:vmap|jacobian|\bvjp\b|\bjvp\b)",
        ("backend-constraint", "kernel-layout"),
        "a fused attention kernel (cuDNN, Pallas) under vmap, jacobian or vjp: its batching "
        "or derivative rule, not your shapes, is what fails; the XLA path works",
        weight=1.3,
    ),
    Rule(  # a bool mask where an integer (0/1) one is expected, or the reverse
        r"(?:same dtypes?|dtype mismatch|dtypes? (?:do not|don't) match)[^.]{0,40}"
        r"\b(?:bool|int\d+|float\d+)\b, ?\b(?:bool|int\d+)\b",
        ("mask-dtype",),
        "a boolean mask where the code (a cache update, a generate loop) keeps an integer "
        "0/1 mask, or the reverse: cast the attention mask to the dtype it expects",
        domain=True,
    ),
    Rule(  # the large variants of a model family use grouped-query attention, the small not
        r"\b(?:70|34)\s?b\b[^.]{0,80}(?:shape|size|mismatch)|"
        r"(?:shape|size|mismatch)[^.]{0,80}\b(?:70|34)\s?b\b",
        ("gqa-heads", "projection-width"),
        "a shape error in the 70B (or 34B) model of a family whose smaller models work: the "
        "large ones use grouped-query attention (num_key_value_heads below num_heads)",
        weight=0.9,
    ),
    Rule(
        r"beam.?(?:search|width|size)|tile_batch|BeamSearchDecoder|zero.?state|num_beams",
        ("batch-mismatch",),
        "beam search multiplies the batch by the beam width: the encoder output, its lengths "
        "and the initial state must be tiled to batch × beams as well",
        domain=True,
    ),
    Rule(
        r"\w*_lengths\b|\bseq_?lens\b|\bvalid_lens?\b|(?:memory_)?sequence_length\b|"
        r"\blengths?\b[^.]{0,40}(?:not respected|ignored|zero|greater than|longer than)",
        ("ragged-lengths", "mask-missing", "fully-masked-row"),
        "per-example lengths: each row must be masked past its own length, and a length of "
        "zero leaves a row with no keys",
        weight=0.9,
    ),
    Rule(
        r"mask",
        ("mask-shape", "mask-missing", "mask-polarity", "mask-broadcast-axis"),
        "a mask: its shape against the scores (B, H, L, S), whether it is applied at all, "
        "and which value means 'attend'",
        fallback=True,
        weight=0.6,
    ),
    Rule(
        r"shape|dimensions? mismatch|size mismatch|\bsizes? (?:of|do not|don't)|broadcast|"
        r"dimensions? (?:do not|don't) match",
        ("mask-shape", "layout-confusion", "batch-mismatch", "head-split"),
        "a shape problem: sizes that do not line up with (B, H, L, S) and (B, L, E)",
        fallback=True,
        weight=0.6,
    ),
    Rule(
        r"\b(?:bf16|bfloat16)\b",
        ("reduced-precision", "fp16-overflow"),
        "bfloat16 keeps 8 bits of mantissa: positions above 256 and rotary angles round",
        weight=0.8,
    ),
    Rule(  # the memory-efficient kernel's (PyTorch, xformers) stride checks
        r"\b(?:attn_bias|query|key|value) is not correctly aligned|"
        r"\(\*bias\): last dimension must be contiguous",
        ("backend-constraint", "mask-shape"),
        "the memory-efficient kernel wants aligned, contiguous operands: a bias or mask whose "
        "key axis is not padded to a multiple of its alignment (or a sliced, strided view); "
        "allocate it padded to a multiple of 8 or 16 and slice, or make it contiguous",
        weight=1.2,
    ),
    Rule(  # fused kernels' stride checks on q/k/v or the cache (flash-attn and its ports:
        # TORCH_CHECK(q.stride(-1) == 1, "Input tensor must have contiguous last dimension"))
        r"must have (?:a )?contiguous last dim(?:ension)?s?|"
        r"(?:must be|is not|isn't|not) contiguous (?:in|along) the last dim",
        ("backend-constraint", "kernel-layout"),
        "a fused kernel wants the head dimension contiguous (stride 1 on the last axis): a "
        "query, key, value or cache handed to it as a transposed or sliced view (call "
        ".contiguous(), or build it in the layout the kernel reads)",
    ),
    Rule(  # PyTorch's TORCH_CHECK without a message, on the keys' and values' lengths
        r"Expected (?:key|k)\w*\.size\((?!-1\))-?\d\) == (?:value|v)\w*\.size\(-?\d\) to be true",
        ("kv-length-mismatch", "projection-width"),
        "keys and values disagree on an axis where they must agree (their number of positions, "
        "or the batch): they come from different sequences or one was sliced",
    ),
    Rule(  # LayerNorm built for another width than the hidden states it gets
        r"Given normalized_shape=\[(\d+)\], expected input with shape \[\*, \d+\], but got "
        r"input of size ?\[[\d, ]*?(\d+)\]",
        ("projection-width", "layout-confusion"),
        "a LayerNorm built for {0} features gets {1}: the hidden width differs from the model "
        "width it was built with (a projection or an attention output of another width)",
    ),
    Rule(  # PyTorch's SDPA: the fused kernels name the axis that differs (sdp_utils)
        r"fused kernels? requires? [^.]{0,40}to have the same num_heads",
        ("gqa-heads", "batch-mismatch"),
        "the fused SDPA kernels want as many key/value heads as query heads: with grouped-"
        "query attention pass enable_gqa=True or repeat the key/value heads",
        weight=1.2,
    ),
    Rule(
        r"fused kernels? requires? [^.]{0,40}to have the same batch_size",
        ("batch-mismatch", "gqa-heads"),
        "query, key and value from batches of different sizes: the fused kernels do not "
        "broadcast the batch (a context or cache not repeated for the batch or the beams)",
        weight=1.2,
    ),
    Rule(  # the same unlabelled TORCH_CHECK on the query's and key's feature axis
        r"Expected (?:query|q|key|k)\w*\.size\(-1\) == (?:query|q|key|k)\w*\.size\(-1\) to be "
        r"true",
        ("qk-dim-mismatch", "projection-width"),
        "query and key of different head sizes: Q·Kᵀ contracts their last axes, which must agree",
    ),
    Rule(  # operands that must share the batch size, in any framework's words
        r"(?:to have|have|has) the same batch[ _]?size",
        ("batch-mismatch", "mask-shape"),
        "query, key, value (or a mask) from batches of different sizes: an input given per "
        "example and not repeated for the batch (beams, a context, a cache)",
        domain=True,
    ),
    Rule(  # an N-dimensional input expected, another rank given
        r"(?:to (?:all )?be|be|expects?|expected) (?:a )?(\d)[- ]?(?:dimensional|D)\b[^.]{0,60}"
        r"(?:but|got|found|received)[^.]{0,30}?\b(\d)\b",
        ("layout-confusion", "kernel-layout", "batched-matmul"),
        "an input of another rank than the call takes ({0} axes wanted, {1} given): a batch "
        "or head axis missing or not split out",
        domain=True,
    ),
)
"""Framework wordings and the tags they mean, likeliest first."""

CONCEPTS: tuple[Rule, ...] = (
    Rule(  # weights converted between formats (Meta's checkpoints, Hugging Face, GGUF for
        # llama.cpp) that load and then generate gibberish: the query and key projections
        # are permuted for the rotary convention on the way, with the key/value head count
        # for grouped-query models ("convert and quantise fine, but always produce
        # gibberish", "only q_proj and k_proj are different" after a round trip)
        # (a conversion counts next to a model, its weights or checkpoint: converted data or
        # text that comes out garbled is no attention failure)
        r"(?:\bconver(?:t|ts|ted|ting|sion)\b(?! to type)[^.\n]{0,60}?\b(?:models?|weights|"
        r"checkpoints?|llama\w*|state_dict)\b|\b(?:models?|weights|checkpoints?|llama\w*|"
        r"state_dict)\b[^.\n]{0,60}?\bconver(?:t|ts|ted|ting|sion)\b(?! to type)|\bgguf\b|\bggml\b|"
        r"llama\.cpp|\bHF format\b)[\s\S]{0,200}(?:gibberish|garbage|nonsense|"
        r"\b[qk]_proj and [qk]_proj\b)|"
        r"(?:gibberish|garbage|nonsense)[^.\n]{0,60}(?:\bgguf\b|\bggml\b|llama\.cpp)",
        ("rotary-embedding", "gqa-heads"),
        "weights converted between formats: the query and key projections are permuted for "
        "the rotary convention (pairs (0,1),(2,3) in Meta's and GGUF's, halves in Hugging "
        "Face's), and for grouped-query models with the key/value head count; a conversion "
        "that skips the permute or counts the query heads for the keys loads fine and "
        "generates gibberish",
        weight=1.3,
    ),
    Rule(  # tensor parallelism splits heads across devices; the key/value heads of a
        # grouped-query model are fewer ("native TP with tp_size=8 ... 4 KV heads", "fails
        # because of a dimension issue in key/value layers when doing tensor parallelism")
        r"(?:tensor.parallel\w*|\btp(?:_size)?\s*=\s*\d+|\bTP\b)[^.\n]{0,120}(?:key/value|\bkv\b|"
        r"[kv]_proj|\bkv.heads?|num_key_value_heads)|(?:key/value|\bkv\b|[kv]_proj|\bkv.heads?|"
        r"num_key_value_heads)[^.\n]{0,120}(?:tensor.parallel\w*|\btp(?:_size)?\s*=\s*\d+|\bTP\b)",
        ("gqa-heads", "head-split"),
        "tensor parallelism splits the heads across devices: a grouped-query model has fewer "
        "key/value heads than query heads, so with more devices than key/value heads (or a "
        "count they do not divide) the key/value heads must be replicated, not split",
        weight=1.2,
    ),
    Rule(  # several items in one row or batch attending to each other: packing without a
        # per-item mask ("sample B can still attend to sample A", "Doc2 tokens could attend to
        # Doc1 tokens", "attends across packed sequence boundaries", "attend to previous
        # examples", "the attention between nodes from different graphs in a batch")
        r"(?:(?:attend\w*|leak\w*)\b[^.\n]{0,40}?\b(?:across|between|to|into)|attention (?:between|"
        r"across))\b[^.\n]{0,30}?"
        r"(?:\b(?:different|other|previous|separate|neighbou?ring|unrelated)\b[^.\n]{0,12}?"
        r"\b(?:graphs?|documents?|docs?|samples?|examples?|segments?|conversations?)\b|"
        r"\b(?:doc|document|sample|example|segment)\s?(?-i:[A-Z0-9])\b)|cross.document|"
        r"across (?:the )?(?:packed )?(?:sequence|document|segment|sample) boundar",
        ("packed-sequences",),
        "items packed into one row (or one batch of graphs) attending to each other: a "
        "block-diagonal mask (segment ids, cu_seqlens) keeps each item's queries on its own "
        "keys; a plain causal or no mask lets them mix",
        weight=1.2,
    ),
    Rule(  # PyTorch's TransformerEncoder fast path (eval, no grad: nested tensors drop the
        # padded positions, a float mask is not added): "src_key_padding_mask does not work in
        # eval()", "does not respect adding of floating point mask ... for the fast path",
        # "a column all True ... TransformerEncoder will remove this column in the output"
        r"TransformerEncoder\w*\b[^.\n]{0,120}?(?:\beval\(\)|\beval mode|fast.?path|"
        r"nested.?tensor|remove\w* (?:this|that|the) (?:column|position)s?)|"
        r"(?:\beval\(\)|fast.?path|nested.?tensor)[^.\n]{0,80}?TransformerEncoder",
        ("backend-constraint", "kernel-layout", "mask-dtype"),
        "PyTorch's TransformerEncoder fast path (eval mode, no gradient, batch_first): the "
        "padded positions become a nested tensor and are dropped or zeroed in the output, and "
        "a float mask is not treated as in training; pass enable_nested_tensor=False or "
        "compare with model.train()",
        weight=1.2,
    ),
    Rule(  # text that turns to gibberish as generation goes on: the cache or the window
        # runs out (a sliding window, a cache of fixed length); a context or prompt past
        # some length is the rotary rule's (positions never trained): "gibberish or repetitive text
        # after approximately 800-1000 tokens", "garbage once the KV cache is filled up"
        r"(?:gibberish|garbage|nonsense|repetitive|incoherent)[^.\n]{0,80}?(?:\bafter\b|\bonce\b|"
        r"\bpast\b|\bbeyond\b)(?:(?!context|prompt|input)[^.\n]){0,50}?(?:\d+k? tokens|\bwindow|"
        r"\bcache\b|cache_length|"
        r"\bgeneration\b)",
        ("kv-cache", "window-size", "rotary-embedding"),
        "output that turns to gibberish after some number of tokens: a sliding window or a "
        "fixed-size key/value cache that stops lining up with the positions once it is full "
        "(or rotary positions past the length the model was trained on)",
        weight=1.2,
    ),
    Rule(
        r"\binf\s?\*\s?0|\b0(?:\.0)?\s?\*\s?inf|inf(?:inity)? times (?:0|zero)|"
        r"\*\s?-?(?:float\(['\"]-?inf['\"]\)|np\.inf|math\.inf|inf\b)|"
        r"(?:0|zero) times inf|-inf\s?-\s?-inf|inf\s?-\s?inf|"
        r"exp\w*(?:\([^)]{0,30}\))?[^.]{0,40}overflow|overflow\w*[^.]{0,20}(?:in )?exp",
        ("inf-arithmetic", "softmax-overflow", "fp16-overflow"),
        "an overflow or an infinity met in arithmetic: exp of a large logit is inf, and "
        "inf × 0 or inf - inf is NaN, masked or not",
        weight=1.15,
    ),
    Rule(
        r"additive (?:-inf |float )?mask[^.]{0,120}(?:binary|boolean|bool|0/1|1 ?= ?(?:allow|"
        r"attend|keep))|(?:binary|boolean|0/1) mask[^.]{0,120}additive",
        ("mask-dtype", "mask-polarity"),
        "an additive mask (0 and -inf) given where a binary one (1 = attend) is expected, or "
        "the reverse: the allowed positions are the ones blocked",
    ),
    Rule(
        r"is_causal(?:=True)?[^.]{0,60}(?:attn_mask|padding mask|key_padding_mask|an? mask)|"
        r"(?:attn_mask|padding mask|key_padding_mask)[^.]{0,60}is_causal",
        ("backend-constraint", "mask-missing", "causal-alignment"),
        "is_causal together with a padding mask: SDPA takes one or the other, and some paths "
        "keep only the causal mask; combine both into one attn_mask",
    ),
    Rule(
        r"batch.?size (?:of )?\d+ (?:and|vs\.?|versus|or) (?:batch.?size )?(?:of )?\d+|"
        r"batch.?size ?(?:>|=|==|of|is)? ?\d+[^.]{0,60}batch.?size ?(?:>|=|==|of|is)? ?\d+|"
        r"(?:different|inconsistent|other) (?:results?|outputs?|logits|predictions?)[^.]{0,60}"
        r"batch.?size",
        ("mask-missing", "positions", "mask-broadcast-axis", "softmax-axis"),
        "results that depend on the batch size: padding attended (no mask, or a mask on the "
        "wrong axis), positions shifted by padding, or a softmax across the batch",
    ),
    Rule(  # a shape error that appears only while generating: the cache or the mask grew
        r"(?:generat\w*|decod\w*|max_new_tokens|\bpast\b|past_key_values)[^.]{0,120}"
        r"(?:size of tensor|dimension error|shape (?:error|mismatch)|must match)|"
        r"(?:size of tensor|dimension error|shape (?:error|mismatch))[^.]{0,120}"
        r"(?:when|while|during|once|in) (?:\w+ ){0,3}(?:generat\w*|decod\w*)",
        ("kv-cache", "position-out-of-range", "mask-shape"),
        "a shape error that appears only while generating: each step grows the key/value "
        "cache by one, and a mask, a position table or a window built for the prompt or a "
        "maximum length no longer lines up with it",
        weight=0.9,
        read=True,  # numbers read as axes say more than the word 'generation'
    ),
    Rule(  # the same input gives another result batched with others than alone
        r"(?:should|would|expect\w*|supposed to)[^.]{0,20}\b(?:be )?(?:identical|the same|"
        r"equal)\b[^.]{0,80}\b(?:in (?:a |one )?batch|batched)\b|"
        r"(?:differ\w*|not (?:the )?(?:same|identical)|inconsistent|change\w*)[^.]{0,60}"
        r"\b(?:when|if|once) (?:\w+ )?(?:batch\w*|(?:run|done|generat\w*) in (?:a )?batch)\b|"
        r"(?:different|inconsistent|wrong) (?:\w+ )?(?:results?|outputs?|logits|predictions?|"
        r"generations?|completions?)[^.]{0,80}\b(?:more than (?:one|1)|multiple|several) "
        r"(?:sentences?|prompts?|sequences?|inputs?|examples?)\b|"
        r"\b(?:batched|in (?:a )?batch)\b[^.]{0,60}(?:differ\w* from|not (?:the )?(?:same|"
        r"identical) as)[^.]{0,30}\b(?:one at a time|single|alone|individual\w*|unbatched)|"
        # or, within a few lines from a sentence's start, a batch, a single input and a
        # difference of results, in any order
        r"(?:^|[.!?\n]\s*)(?=.{0,300}?\bbatch(?:ed|es|ing)?\b)(?=.{0,300}?\b(?:single|"
        r"one.at.a.time|one.by.one|individual\w*|alone|unbatched|separately|bs ?= ?1|"
        r"batch.size (?:of )?1|without batching|non.batch\w*)\b)(?=.{0,300}?\b(?:differ\w*|"
        r"disagree\w*|not (?:the )?(?:same|identical)|inconsistent\w*|mismatch\w*|"
        r"(?:do|does|did)(?:n't| not) match)\b)(?=.{0,300}?\b(?:results?|outputs?|logits?|"
        r"predictions?|generat\w*|completions?|texts?|answers?|tokens?|scores?|embeddings?|"
        r"activations?|probabilit\w*|perplexit\w*|loss(?:es)?)\b)",
        ("positions", "mask-missing", "mask-broadcast-axis"),
        "an input that gives another result batched with others than alone: the padding a "
        "batch adds is attended (no mask), or shifts the positions of the shorter rows "
        "(left padding without position ids)",
        weight=0.9,
    ),
    Rule(
        r"block.?sizes?\b|block_[qkmn]\b|tile.?size|multiples? of (?:the )?block|"
        r"(?:only|not) close to (?:the )?reference|(?:differ\w*|deviat\w*|mismatch\w*) "
        r"(?:from|to|with) (?:the )?(?:reference|eager|math|naive|native)",
        ("backend-constraint", "kernel-layout"),
        "a kernel's own constraints (block sizes, sequence lengths that are multiples of a "
        "tile, a layout): its output departs from the reference math outside them",
        weight=0.9,
    ),
    Rule(
        r"padding_side|right.padding was detected|right-padding|padded on the right",
        ("positions", "backend-constraint", "mask-missing"),
        "the side of the padding: decoder-only generation wants left padding with position "
        "ids counted from the first real token; some fused kernels assume one side",
    ),
    Rule(
        r"attention mask (?:and the pad token id )?(?:was|were|is|are) not (?:set|passed|"
        r"provided|given)|without (?:an |the )?attention_mask|no attention_mask",
        ("mask-missing", "positions"),
        "no attention mask was passed: padded positions are attended as if they were text",
    ),
    Rule(  # a softmax said to be unprotected: no row maximum subtracted before exp
        r"softmax[^.]{0,40}\bnot (?:numerically )?(?:stable|safe|protected)|"
        r"\b(?:numerically )?unstable softmax|"
        r"\bsubs?tract\w* (?:the |its )?(?:row(?:wise|'s)? )?max(?:imum)?\b|"
        r"\bmax(?:imum)? (?:value )?(?:is |was )?(?:not|never) subs?tracted",
        ("softmax-overflow", "inf-arithmetic"),
        "a softmax without its row maximum subtracted: exp of a large logit overflows to inf "
        "and inf / inf is NaN (softmax(x) = softmax(x - max x) keeps every exp <= 1)",
        weight=1.2,
    ),
    Rule(  # a mask described by its dtype: "the attn_mask tensor is not boolean", "a
        # floating point mask", "the mask is of type torch.bool"
        r"mask\w*`?(?: tensor)? (?:is|was|are) not (?:a )?(?:bool|boolean)\b|"
        r"non.?bool\w* (?:attn_|attention_)?masks?\b|"
        r"\b(?:float(?:ing.point)?|int(?:eger)?|long|uint8|byte) (?:attn_|attention_|padding |"
        r"additive )?masks?\b|"
        r"masks?\w*`? (?:is )?of (?:d)?type `?(?:torch\.)?(?:bool|int\w*|float\w*|long|uint8)",
        ("mask-dtype", "mask-polarity"),
        "a mask of another dtype than the call reads it as: a float (additive) mask where a "
        "boolean one is meant, or the reverse, so masked positions keep (or lose) weight",
    ),
    Rule(  # PyTorch's CUDA gather/index kernels' asserts (IndexKernel.cu, ScatterGatherKernel.cu)
        r"\"index out of bounds\"|-sizes\[i\] <= index|index >= -sizes\[i\]|"
        r"idx_dim >= 0 && idx_dim < index_size|Expected 0 <= idx_dim|IndexKernel\.cu|"
        r"ScatterGatherKernel\.cu",
        ("position-out-of-range", "token-out-of-range", "kv-cache"),
        "a CUDA indexing kernel's assert: an index past the axis it gathers from, most often "
        "a position (or a cache slot) past its table, or a token id past the vocabulary",
    ),
    Rule(  # an index error told in words, not a list's or a tuple's
        r"(?<!list )(?<!tuple )(?<!string )\bindex (?:is |was |goes |getting )?out of "
        r"(?:range|bounds)\b(?! in self)(?! at\b)(?! for (?:axis|dim))",
        ("token-out-of-range", "position-out-of-range"),
        "an index past an embedding table: a token id >= vocab size, or a position >= the "
        "position table's length",
        fallback=True,
        weight=0.9,
    ),
    Rule(
        r"device-side assert(?:ion)? triggered|cuda runtime error \(59\)\W{0,4}device-side assert",
        ("token-out-of-range", "position-out-of-range"),
        "a CUDA device-side assert in attention code is most often an embedding index out of "
        "range (a token id >= vocab size, a position >= the table); rerun on CPU to see it",
        weight=0.8,
    ),
    Rule(
        r"\(1, ?S\)|\b[LT] ?= ?1\b|single (?:query|token)|one (?:new )?token at a time|"
        r"query length (?:of |is )?1\b|q_len ?== ?1|"
        r"seq(?:uence)?_?len(?:gth)? ?(?:==|=|of|is) ?1\b|"
        r"(?:query|queries) (?:is |are )?shorter than (?:the )?keys",
        ("causal-alignment", "kv-cache"),
        "a query of one (or a few) new tokens against a longer key cache: a causal mask "
        "aligned top-left hides the cache; decoding needs bottom-right alignment",
    ),
    Rule(
        r"(?:masked.out|where=|where mask|\bwhere\W{0,2} (?:related|argument)|masked "
        r"(?:entries|values|logits))[^.]{0,120}"
        r"(?:grad|gradient|backward)|(?:grad|gradient|backward)\w*[^.]{0,120}(?:where=|"
        r"masked.out|masked (?:entries|values|logits))",
        ("inf-arithmetic", "softmax-overflow", "fully-masked-row"),
        "NaN in the backward pass through masked entries: masked logits still exponentiated "
        "(exp overflow) or -inf times 0 in the gradient",
    ),
    Rule(
        r"(?:mixed.precision|float16|\bfp16\b|\bhalf\b|\bamp\b|autocast)[^.]{0,200}(?:mask|"
        r"-1e\d|large.negative|min(?:imum)? value|finfo|_large_compatible_negative)|"
        r"(?:mask|-1e\d|large.negative|finfo|negative\w* large|large\w* negative|too large)"
        r"[^.]{0,200}(?:mixed.precision|float16|\bfp16\b|"
        r"\bhalf\b)",
        ("fp16-overflow", "inf-arithmetic", "mask-dtype"),
        "a mask constant (-1e9, finfo(float32).min) that float16 cannot hold: it overflows to "
        "-inf, and -inf - -inf or inf * 0 is NaN",
    ),
    Rule(
        r"mask\w*[^.]{0,40}\b(?:cast\w*|dtype|float32|float64|int\d*|long|integer|to bool)\b|"
        r"\b(?:cast\w*|dtype)\b[^.]{0,40}mask",
        ("mask-dtype", "fp16-overflow"),
        "the mask's dtype: a bool mask, or an additive float mask of the scores' dtype",
    ),
    Rule(
        r"(?:per|each|every) row|whole (?:array|matrix|tensor|batch)|all rows|"
        r"np\.sum\(np\.exp\([a-z_]+\)\)|\.sum\(\)|(?:over|along|across) the (?:wrong|first|batch|"
        r"query) (?:axis|dim)",
        ("softmax-axis", "axis-out-of-range"),
        "a softmax normalised over the wrong axis (the whole array, the batch, the queries) "
        "instead of each row's keys",
        weight=0.8,
    ),
    Rule(
        r"attention_axes|channel dim\w*|channels?.(?:last|first)|(?:missing|no|without|"
        r"add\w*) (?:a |the )?(?:feature|channel|batch|head) (?:axis|dim\w*)|"
        r"(?:unbatched|single example|batch of one)",
        ("layout-confusion", "axis-out-of-range"),
        "the input's axes are not the ones the layer expects: (batch, sequence, features)",
    ),
    Rule(
        r"nan (?:values? )?in (?:the |my )?(?:input|values|keys|padd\w*|masked)|"
        r"(?:input|values|keys|embeddings?)[^.]{0,30}(?:has|have|contains?|with) nans?\b|"
        r"(?:has|have|contain\w*|with) nans? (?:values?|embeddings?|inputs?|entries|keys)|"
        r"masked.out (?:positions?|entries|elements)[^.]{0,60}\bnan|\bnans?\b[^.]{0,60}"
        r"masked.out",
        ("nan-in-padding", "fully-masked-row"),
        "NaN in a position the mask removes still reaches the output: 0 × NaN is NaN in the "
        "weights-times-values product; replace it before attention",
    ),
    Rule(
        r"(?:length|tokens?|words|sequence|input|text|positions?)[^.]{0,30}exceed\w*|"
        r"exceed\w* (?:the |about |\d+ )?(?:max\w*|positions?|length|\d+ tokens?)|"
        r"too long|longer (?:input|text|sequence|document)|long (?:input|text|"
        r"document|sequence)|positional(?! arguments?)|position (?:embedding|encoding)|"
        r"max_seq_len\w*",
        ("position-out-of-range", "positions"),
        "a sequence longer than the position table the model was built with",
        weight=0.9,
    ),
    Rule(
        r"future (?:tokens?|positions?|words?|information|steps?)|look.?ahead|\bpeek\w*|"
        r"\bcheat\w*|subsequent (?:positions?|tokens?)|(?:sees?|see|attends? to) (?:the )?"
        r"(?:next|later|answer|targets?\b|labels?\b)|\bleak\w*|"
        r"(?:sees?|see|attends? to|access\w*) (?:the |their |its )?(?:right|following)\b|"
        r"(?:tokens?|words?|positions?) (?:to|on) (?:the|their|its) right\b|"
        r"(?:tokens?|words?) (?:it|they) "
        r"(?:is|are) (?:supposed|meant|trained|trying) to predict|"
        r"loss[^.]{0,40}(?:suspiciously|strangely|very|too|unusually|much) ?(?:low|small)|"
        r"loss[^.]{0,30}(?:to|near|close to|goes to|drops to|collapses to|falls to) "
        r"?(?:~ ?|almost |nearly |about |practically )?(?:0|zero)\b|"
        r"times lower|too good to be true|not causal|non.causal",
        ("mask-missing", "mask-polarity", "causal-alignment", "packed-sequences"),
        "tokens see positions they must not (a causal or padding mask missing or inverted): "
        "the loss drops because the answer leaks",
    ),
    Rule(
        r"(?:causal|look.?ahead|padding)?\s?mask[^.]{0,40}(?:skipped|ignored|dropped|not "
        r"applied|never applied|silently (?:dropped|ignored)|has no effect|not forwarded|"
        r"not propagated|isn't propagated|(?:is |gets )?lost|not used|never used|"
        r"never forwarded)|use_causal_mask|apply no (?:causal )?mask|mask_zero|"
        # the mask named as ignored or turned into a no-op: "we completely ignore
        # `attention_mask` here", "the `mask_mod` attribute is replaced with a noop function"
        r"ignor\w* (?:the )?[`'\"]?(?:attention_|padding_|key_padding_|causal_|attn_|"
        r"src_key_padding_)mask|mask\w*[`'\"]? (?:\w+ ){0,5}(?:no.?op\b|noop|does nothing)",
        ("mask-missing", "backend-constraint", "mask-dtype"),
        "a mask that is never applied: dropped by a wrapper, a backend or a flag",
        weight=1.15,  # a specific symptom: as strong as a framework wording
    ),
    Rule(
        r"attend\w* (?:to )?(?:the )?pad\w*|pad\w* (?:tokens? |positions? )?(?:are |is )?"
        r"(?:still )?(?:attended|get attention|receive attention)|(?:computed|attention) on "
        r"padding|(?:outputs?|results?|logits|predictions?)[^.]{0,30}(?:change|depend|differ)"
        r"\w*[^.]{0,30}(?:padding|batch size|other examples|batch)|"
        r"batch(?:ed)? (?:and|vs\.?|versus) (?:un-?batched|single)|"
        r"batch\w*[^.]{0,30}(?:and|vs\.?|versus|than)[^.]{0,20}(?:single|un-?batched|one at a "
        r"time|one by one|individual)|(?:inconsistent|different|differ\w*|chang\w*) "
        r"(?:results?|outputs?|logits|predictions?)[^.]{0,60}(?:padding|padded)",
        ("mask-missing", "mask-broadcast-axis", "mask-polarity", "mask-dtype"),
        "padded positions still take part in attention: the padding mask is missing, "
        "inverted, broadcast along the wrong axis, or added as 0/1",
    ),
    Rule(
        r"batched (?:together )?with (?:longer|other|different|shorter) (?:prompts?|"
        r"sequences?|inputs?)|"
        r"left.?pad\w*|(?:short(?:er)?|padded) (?:prompts?|sequences?|inputs?)[^.]{0,60}"
        r"(?:garbage|wrong|different|worse|nonsense|gibberish|incorrect|repeat)",
        ("positions", "backend-constraint", "kv-cache"),
        "left padding shifts every real token: position ids must count from the first real "
        "token, and some fused kernels mishandle padded rows",
    ),
    Rule(
        r"(?:weights?|probabilit\w+|softmax|attention|scores?)[^.]{0,40}(?:(?:are |is )?"
        r"(?:all|every\w*) |are |is |== ?|become |(?:to )?be )(?:1\.0|ones?\b|equal to (?:1|one))|"
        r"(?:all|every) (?:ones|1\.0)",
        ("softmax-axis", "missing-scale", "axis-out-of-range"),
        "softmax over an axis of size 1 (or the wrong axis) gives 1.0 everywhere: weights are "
        "normalised over the keys, the last axis",
    ),
    Rule(
        r"(?:weights?|probabilit\w+|softmax|attention|scores?|outputs?)[^.]{0,40}"
        r"(?:all (?:the )?same|uniform|identical|equal|constant|the same for (?:every|all|each))|"
        r"(?:same|identical) (?:output|result|vector|prediction)s? for (?:every|all|each)|"
        r"(?:weights?|probabilit\w+|softmax|attention)[^.]{0,30}\ball (?:exactly )?"
        r"(?:0?\.\d+|1/\w+)",
        ("softmax-axis", "missing-scale", "mask-polarity", "fully-masked-row"),
        "uniform or identical attention: softmax over the wrong axis, every key masked (a "
        "large constant everywhere), or an inverted mask",
    ),
    Rule(
        r"one.hot|saturat\w*|peaked|spiky|(?:gradients?|grads?)[^.]{0,30}vanish|"
        r"does(?:n't| not) learn|not learning|stops? learning|"
        r"loss[^.]{0,30}(?:doesn't|does not|won't|not|never) (?:decrease|go down|improve|"
        r"converge)",
        ("missing-scale", "softmax-axis", "mask-after-softmax"),
        "a saturated softmax: scores not divided by sqrt(d) become one-hot and its gradients "
        "vanish",
    ),
    Rule(
        r"(?:do(?:es)?n'?t|do(?:es)? not|not|no longer|never) (?:sums?|adds? up) to (?:one|1)|"
        r"renormali[sz]|(?:after|post).softmax|mask\w* (?:applied )?after (?:the )?softmax|"
        r"(?:mask\w*|zero\w*|set to (?:0|zero)|fill\w*)[^.]{0,40}after (?:the )?softmax|"
        r"before (?:the )?softmax|softmax[^.]{0,30}\b(?:before|after) (?:the )?mask\w*|"
        r"order of (?:the )?(?:mask\w*|softmax) and (?:the )?(?:mask\w*|softmax)",
        ("mask-after-softmax", "softmax-axis"),
        "weights that no longer sum to one: the mask applied after the softmax without "
        "renormalising, or a softmax over the wrong axis",
    ),
    Rule(
        r"\bnans?\b[^.]{0,60}(?:only )?(?:in|for|at) (?:the )?(?:padded|padding|masked|pad)|"
        r"(?:padded|padding|masked) (?:rows?|positions?|tokens?|entries)[^.]{0,40}\bnans?\b|"
        r"(?:every|all) (?:keys?|positions?) (?:are )?masked|fully.masked|empty (?:row|sequence)|"
        r"(?:completely|entirely|wholly|totally) masked|masked (?:out )?(?:completely|entirely)|"
        r"all (?:the )?(?:inputs|scores|logits|values|entries)? ?(?:are |is )?(?:-inf|-1e\d+|"
        r"(?:a |the )?(?:same )?large negative)|(?:length|len) (?:of )?(?:zero|0)\b|zero.length|"
        r"(?:every|each) (?:score|logit) is -inf|(?:row|query) (?:with|has) no (?:valid )?keys?|"
        r"(?:attend\w*|see|look) (?:to |at )?(?:itself|themselves)|diagonal (?:is )?masked|"
        r"masks? (?:out )?the diagonal",
        ("fully-masked-row", "nan-in-padding", "ragged-lengths"),
        "a query row whose keys are all masked: softmax over all -inf is 0/0 = NaN",
    ),
    Rule(
        r"\bnans? (?:gradients?|grads?)\b|(?:gradients?|grads?|backward|value_and_grad)\w*"
        r"[^.]{0,60}\bnans?\b",
        ("inf-arithmetic", "softmax-overflow", "fully-masked-row"),
        "NaN in the gradient while the forward is finite: the backward multiplies through "
        "masked or overflowing entries (inf × 0, exp of a huge logit), even where the "
        "forward selected them away",
        domain=True,
        weight=1.3,  # a mechanism, more specific than NaN next to a mask
    ),
    Rule(  # training that blows up or stops learning only in reduced precision
        r"(?:float16|\bhalf\b|\bfp16\b|\bamp\b|mixed.precision|16.mixed|autocast)[^.]{0,120}"
        r"(?:loss\w* \w* ?(?:explo\w*|spik\w*|diverg\w*|blow\w* up)|(?:loss|training) "
        r"(?:explo\w*|spike\w*)|instabilit\w*|unstable|unable to (?:learn|converge)|"
        r"(?:stops?|fails? to|does(?:n't| not)) (?:learn|converge)|learning issues)|"
        r"(?:explosions?|loss\w* (?:spikes?|explo\w*|diverg\w*)|instabilit\w*|unstable|"
        r"unable to (?:learn|converge)|learning issues)[^.]{0,120}(?:float16|\bhalf\b|\bfp16\b|"
        r"\bamp\b|mixed.precision|16.mixed|autocast)",
        ("fp16-overflow", "softmax-overflow", "reduced-precision", "inf-arithmetic"),
        "training that blows up or stops learning only in half precision: scores or a mask "
        "constant past float16's range (65504), or a softmax computed in float16",
    ),
    Rule(
        r"\bnans?\b[^.]{0,80}(?:after|within) (?:a few|some|several|\d+) (?:steps|iterations|"
        r"epochs|updates)|(?:after|within) (?:a few|some|several|\d+) (?:steps|iterations|"
        r"epochs)[^.]{0,80}\bnans?\b",
        ("fp16-overflow", "softmax-overflow", "inf-arithmetic"),
        "NaN after some steps of training: logits grow until exp or a float16 value overflows",
    ),
    Rule(
        r"(?:heads?|multi.head)[^.]{0,60}(?:scrambled|mixed|garbage|wrong|worse)|"
        r"(?:scrambled|mixed up)[^.]{0,40}heads?",
        ("head-axis-order", "gqa-heads"),
        "heads split or merged in the wrong axis order: every head reads a mixture",
    ),
    Rule(
        r"(?:true|1)\s*(?:=|means|is)\s*(?:ignore|masked|pad|attend|keep|not attend)|"
        r"(?:0|false)\s*(?:=|means|is)\s*(?:ignore|masked|pad|attend|keep)|"
        r"\b(?:inverted|reversed|opposite|flipped)\b[^.]{0,30}mask|mask[^.]{0,60}\b(?:inverted|"
        r"reversed|opposite|flipped)\b|(?:NOT|not) pay attention|to (?:NOT|not) attend|"
        r"which (?:tokens?|positions?|keys?) to (?:not )?(?:attend|ignore|mask|keep)|"
        r"only (?:attends?|looks?|attending) (?:to |at )?(?:the )?pad|"
        r"(?:true|1)\b[^.]{0,60}(?:filled with -?inf|are masked|is masked|ignored)|"
        r"(?:true|1|0|false) (?:for|at|on) (?:the )?(?:padding|pad|masked|real|valid) "
        r"(?:tokens?|positions?)|(?:opposite|different|other) (?:convention|polarity|meaning)",
        ("mask-polarity",),
        "the mask's polarity: which value means 'attend' differs between APIs",
        weight=1.15,
    ),
    Rule(
        r"(?:cache|cached|past_key_values)[^.]{0,80}(?:differ|different|wrong|garbage|repeat|"
        r"worse)|(?:with|without) (?:the )?(?:kv.)?cache|prompt.?length|second (?:generation )?"
        r"step|first (?:generated )?token|\buse_cache\s*=\s*(?:True|False)",
        ("kv-cache", "causal-alignment", "positions"),
        "decoding with a cache: positions, causal alignment and the mask must follow the "
        "cache's length",
    ),
    Rule(
        r"softmax\w*\([^)]{0,40}\b(?:dim|axis)\s*=\s*-?\d|softmax\(\s*-?\d\s*\)|"
        r"(?:wrong|incorrect) (?:dim\w*|axis)|(?:should|must) be[^.]{0,20}\b(?:dim|axis)\s*=\s*"
        r"-?\d|(?:softmax|normali[sz]\w*|probabilit\w*)[^.]{0,60}(?:perform\w*|applied|computed|"
        r"taken|done) "
        r"(?:on|over|along|across) (?:the )?[\w/]+ (?:dim\w*|axis)",
        ("softmax-axis", "axis-out-of-range", "layout-confusion"),
        "a softmax (or a sum) taken over another axis than the keys: the weights of a row must "
        "be normalised over the last axis",
    ),
    Rule(
        r"\bscal(?:e|ing)\w*\b[^.]{0,60}(?:multipl\w*|divid\w*|division|instead of|wrong|"
        r"incorrect|minus|sign\b|sqrt|\*\* ?-?0?\.5)|(?:multipl\w*|divid\w*)[^.]{0,40}"
        r"\bscal(?:e|ing)s?\b|\bsoftmax_scale\b|\bsm_scale\b|(?:missing|forgot\w*|without|no) "
        r"(?:the )?(?:1 ?/ ?)?(?:sqrt|scal(?:e|ing)\b)|"
        # the scale applied twice (a pre-scaled query handed to a kernel that scales again)
        r"\b(?:twice|doubly|double[ds]?|two times)\W+(?:\w+\W+){0,2}scal\w*|\bscal\w*\W+"
        r"(?:\w+\W+){0,2}(?:twice|two times)\b|\balready (?:pre-?)?scaled\b",
        ("missing-scale",),
        "the scores' scale: they must be multiplied by 1/sqrt(d) (divided by sqrt(d)), once, "
        "and with the right sign",
    ),
    Rule(
        r"(?:\bnot|n't|never|without|\bno)(?: \w+){0,3} mask(?:ed|ing)?\b(?! \w*(?:shape|dtype))|"
        r"supports_masking|_keras_mask|compute_mask|"
        r"(?:add\w*|append\w*|more|extra)[^.]{0,12}\[?pad\w*\]?`?(?: symbols?| tokens?)?[^.]{0,60}"
        r"(?:chang|affect|alter|differ)\w*|"
        r"(?:attn_|attention_)?mask`? (?:is |was |being )?(?:set to |passed as )?`?None\b|"
        r"mask\w*`?[^.]{0,40}(?:discard\w*|thrown away|overwritten)|discard\w*[^.]{0,30}mask",
        ("mask-missing", "mask-broadcast-axis", "backend-constraint"),
        "padded or future positions are not masked: no mask reaches the scores (never built, "
        "set to None, or lost by a layer that does not pass it on)",
    ),
    Rule(
        r"\bbool(?:ean)?\b[^.]{0,40}\b(?:float|additive)\b[^.]{0,40}mask|\b(?:float|additive)\b"
        r"[^.]{0,40}\bbool(?:ean)?\b[^.]{0,40}mask|mask\w*`?[^.]{0,40}\bbool(?:ean)?`? (?:vs\.?|"
        r"versus|and|or|instead of) `?(?:float|additive)|(?:contains?|has|holds?|with) `?-?inf`? "
        r"(?:values? )?instead of `?(?:true|bool)|(?:\b|_)bool\w*[^.]{0,40}additiv|"
        r"additiv\w*[^.]{0,40}(?:\b|_)bool|\b(?:bool\w*|False|True)\b[^.]{0,20}(?:promotes?|"
        r"promoted|becomes?|is cast|casts?|converted) to (?:0\.0|1\.0|float)",
        ("mask-dtype", "mask-polarity"),
        "a bool mask and a float (additive) mask are read differently: True means 'attend' in "
        "one API and 'masked' in another, and a float mask is added, not selected",
    ),
    Rule(
        r"(?:different|differing|unequal|other) (?:number of )?(?:features|feature sizes?|dims?|"
        r"dimensions|widths|sizes) (?:for|of|between|in) (?:the )?(?:q(?:uery)?|k(?:ey)?|"
        r"v(?:alue)?)\b|\b[kv]dim\b|key\.sizes\(\) == value\.sizes\(\)",
        ("projection-width", "qk-dim-mismatch"),
        "query, key and value of different widths: each needs its own input projection "
        "(kdim/vdim) to the model width",
    ),
    Rule(
        r"(?:emb\w*|d_model|hidden\w*|model|feature)[_ ]?(?:dim\w*|size)?[^.]{0,60}"
        r"(?:(?:must|should|has to|needs? to) (?:always )?be (?:always )?(?:a )?multiples? of|"
        r"divisible by)",
        ("head-split", "gqa-heads"),
        "the model width must split evenly into heads: embed_dim = num_heads × head_dim",
    ),
    Rule(
        r"\btrain\w*[^.]{0,60}\bnot (?:in )?eval|\bin eval\(\)|\.eval\(\)|eval(?:uation)? mode|"
        r"fast.?path|need_weights|inference mode",
        ("backend-constraint", "mask-dtype", "mask-missing"),
        "training and evaluation take different paths: in eval mode PyTorch's fast path "
        "(nested tensors, a fused kernel) reads the mask by other rules",
        weight=0.9,
        domain=True,
    ),
    Rule(
        r"mask\w*`?[^.]{0,40}(?:wrong|right|first|other|batch) axis|(?:wrong|right) axis"
        r"[^.]{0,30}mask|mask[^.]{0,40}(?:in_axes|map over)",
        ("mask-broadcast-axis", "mask-shape"),
        "a mask laid along another axis than the one it means (batch against query, or "
        "mapped over the wrong axis)",
    ),
    Rule(
        r"(?:repeat\w*|the same|identical) (?:tokens?|words?|outputs?|predictions?)\b[^.]{0,80}"
        r"(?:every|each|all|again|inference|generat\w*|predict\w*|eval\w*|test\w*)|"
        r"(?:predicts?|outputs?|generates?) (?:the )?(?:same|one) (?:token|word|class)",
        ("mask-missing", "softmax-axis", "mask-polarity", "positions"),
        "the same token everywhere at inference: a model trained with its answer visible (no "
        "causal mask) never learnt to predict, or the weights do not depend on the input",
        weight=0.9,
    ),
    Rule(
        r"(?:encoder|source|memory|context|key)\w*[^.]{0,40}(?:longer|shorter|(?:a )?different "
        r"length|not the same length)[^.]{0,40}(?:decoder|target|query)|(?:decoder|target|query)"
        r"\w*[^.]{0,40}(?:longer|shorter|(?:a )?different length|not the same length)[^.]{0,40}"
        r"(?:encoder|source|memory|context|key)|(?:sequence.?length|length)s? of (?:the )?"
        r"(?:encoder|source)[^.]{0,40}(?:and|vs\.?) (?:the )?(?:decoder|target)[^.]{0,40}"
        r"(?:differ|different|not the same)",
        ("mask-shape", "kv-length-mismatch", "causal-alignment"),
        "query and key sequences of different lengths (cross-attention): a mask built for one "
        "of them (a self-attention or padding mask of the decoder) against scores (L, S) of both",
    ),
    Rule(
        r"\b(?:k|key|keys|kt)\.T\b|\.T\b[^.]{0,40}(?:revers\w*|all (?:the )?(?:axes|dim\w*))",
        ("missing-transpose", "batched-matmul", "axis-out-of-range"),
        "x.T reverses every axis of a batched tensor: (B, H, S, D) becomes (D, S, H, B); "
        "the keys need their last two axes swapped only (transpose(-2, -1))",
    ),
    Rule(
        r"(?:0 and 1|0/1|1/0|ones and zeros|zeros and ones|1s and 0s|0s and 1s)\b[^.]{0,60}"
        r"(?:add\w*|\+=?|plus|sum\w*)|\badd\w*[^.]{0,40}(?:0/1|0 and 1|ones and zeros|"
        r"zeros and ones|binary mask)",
        ("mask-dtype", "mask-polarity"),
        "a 0/1 mask added to the scores: adding 1 or 0 to a logit masks nothing; an additive "
        "mask needs 0 and -inf (or a large negative), a binary one must select",
    ),
    Rule(
        r"(?:shift\w*|off) by one\b|one (?:position|token|step) (?:late|early|ahead|behind|off)",
        ("causal-alignment", "window-size", "positions"),
        "an off-by-one in which keys a query sees: a causal mask that includes or excludes the "
        "diagonal, a window counted with or without the query itself, positions shifted by one",
    ),
    Rule(
        r"(?:results?|outputs?|examples?)[^.]{0,40}(?:depend|influence)\w*[^.]{0,30}"
        r"(?:other|each other|the batch)|batch size (?:changes|affects)|"
        r"changes? when I change (?:the |another |a different )?(?:\w+ )?(?:example|sample|"
        r"item|sequence)|(?:another|other|second|different) (?:example|sample)s? (?:in the "
        r"batch )?(?:changes|affects)",
        ("softmax-axis", "mask-broadcast-axis", "layout-confusion"),
        "examples that influence each other: a softmax or mask along the batch axis, or "
        "batch-first input read as sequence-first",
    ),
    Rule(  # a fused backend named beside a wrong (not raised) result
        r"(?:\bsdpa\b|scaled_dot_product_attention)[^.]{0,80}(?:wrong|incorrect|corrupt\w*|"
        r"garbage|gibberish|inaccura\w*) (?:results?|outputs?|values|generations?)|"
        rf"{_BACKEND}[^.]{{0,120}}(?:wrong|incorrect|corrupt\w*|garbage|gibberish|nans?\b|"
        r"differ\w*|mismatch\w*|(?:loss|drop) (?:of|in) accuracy|accuracy (?:drop|loss)|"
        r"inaccura\w*)|(?:wrong|incorrect|corrupt\w*|garbage|differ\w*|mismatch\w*|"
        r"accuracy (?:drop|loss|degrad\w*)|(?:loss|drop) (?:of|in) accuracy)"
        rf"[^.]{{0,80}}{_BACKEND}|"
        r"\b(?:on|with) (?:an? )?(?:A100|H100|H200|B200|A6000|A10G?|V100|T4|L4|RTX|MI\d{3}|"
        r"sm_?\d{2,3})\b[^.]{0,80}(?:but not|only|wrong|nans?\b|differ\w*|corrupt\w*)",
        ("backend-constraint", "kernel-layout"),
        "a fused kernel (flash, memory-efficient, cuDNN) or one GPU gives another result than "
        "the math path on the same inputs: the kernel's own limits (head size, strides, "
        "masks, key/value heads) rather than your attention code",
        weight=0.85,
    ),
    Rule(  # quality that falls apart past some length: the rotary table or its scaling
        r"(?:gibberish|garbage|incoherent|nonsense|repeat\w*|degrad\w*|wrong|worse|broken|"
        r"collaps\w*|fails?)[^.]{0,60}(?:(?:long|longer) (?:prompts?|inputs?|contexts?|"
        r"sequences?|documents?|generations?)|(?:exceed\w*|beyond|past|over|above|after|longer "
        r"than) (?:a |an |the )?(?:(?:output|context|sequence|prompt) )?(?:length of )?\d+k?"
        r"(?: tokens)?\b)|(?:long|longer) (?:prompts?|inputs?|contexts?|sequences?)[^.]{0,60}"
        r"(?:gibberish|garbage|incoherent|nonsense|repeat\w*|degrad\w*|wrong|worse|broken|"
        r"collaps\w*|fail\w*)|rope_scaling|rope_theta|\byarn\b|\bntk\b|"
        r"(?:context|length) extension|"
        # a breakdown placed at a length in thousands of tokens ("degrades around 80k
        # tokens"), or fine on short inputs but failing on long ones
        r"(?:gibberish|garbage|incoherent|nonsense|repeat\w*|degrad\w*|wrong|worse|broken|"
        r"collaps\w*|fail\w*|crash\w*)[^.]{0,60}\b(?:around|at|from|near|by) (?:about |~)?"
        r"\d+(?:k|,?000) tokens\b|\b(?:short|small)(?:er)?\b[^.]{0,60}\bbut\b[^.]{0,30}"
        r"(?:crash\w*|fail\w*|garbage|gibberish|degrad\w*|break\w*|broken|collaps\w*|"
        r"nonsense|repeat\w*|worse)[^.]{0,30}\b(?:long|longer|large|larger) (?:ones?|inputs?|"
        r"prompts?|contexts?|sequences?|documents?|texts?)\b|"
        # or, in one sentence, a long input (a long context, thousands of tokens) and
        # output that falls apart, in any order
        r"(?:^|[.!?\n]\s*)(?=[^.!?\n]*(?:\b(?:\d{4,}|\d+(?:\.\d+)?k\+?)\s*tokens?\b|"
        r"\b(?:long|longer|large|larger) (?:context|prompt|input|sequence|document)s?\b|"
        r"\bcontext(?: length| window)?\s*(?:\(|of|above|over|beyond|>>?|past)\s*~?\d+k?\b|"
        r"\(\s*(?:>|above )?\d+k\+?\s*\)|\btokens?\s*\(\s*>\s*\d+k?\s*\)))"
        r"(?=[^.!?\n]*\b(?:gibberish|garbage|trash\w*|junk|incoherent|nonsens\w*|repeat\w*|"
        r"repetit\w*|endless|degrad\w*|collaps\w*|explod\w*|blows? up|breaks?(?: ?down)?|"
        r"broken|fails?|weird|hallucinat\w*)\b)",
        ("rotary-embedding", "position-out-of-range", "positions"),
        "quality that breaks down only past some length: the rotary table (its scaling, "
        "base or precision) or the positions are wrong for long sequences, while short ones "
        "stay inside what the model was trained on",
        weight=1.3,  # more specific than a length past a maximum alone
    ),
    Rule(  # positions shifted, restarted or computed wrongly (no error raised)
        r"\bpositions?(?:[ _]?ids?)?\b[^.]{0,60}(?:not (?:calculated|computed) correctly|"
        r"incorrect\w*|wrong\w*|shift\w*|off by|start\w* (?:at|from)|0-based|1-based|offset)|"
        r"(?:shift\w*|wrong|incorrect|offset)[^.]{0,40}\bpositions?(?:[ _]?(?:ids?|"
        r"embeddings?))?\b",
        ("positions", "rotary-embedding", "kv-cache"),
        "positions that do not follow the tokens: position ids shifted, restarted or "
        "started at another offset than the model expects (padding, packing, a cache)",
        weight=1.1,
    ),
    Rule(  # NaN sitting in memory the weights multiply by zero
        r"uninitiali[sz]ed[^.]{0,60}(?:memory|data|values?|cache|rows?|slots?|padding)|"
        r"(?:memory|data|values?|cache|rows?|slots?|padding)[^.]{0,40}uninitiali[sz]ed|"
        r"\bnan\s?\*\s?0\b|\b0(?:\.0)?\s?\*\s?nan\b|"
        r"\bnans?\b[^.]{0,60}(?:in|into|inside|from) (?:the )?(?:kv.?)?(?:cache|values?|v_cache|"
        r"padding (?:rows?|positions?|tokens?|slots?))|(?:cache|values?)[^.]{0,40}"
        r"(?:padding|padded)[^.]{0,40}\bnans?\b",
        ("nan-in-padding", "inf-arithmetic"),
        "NaN or inf stored in positions the weights ignore (uninitialised cache slots, padded "
        "values): a zero weight does not remove them, 0 × NaN is NaN",
        weight=1.2,
    ),
    Rule(  # a sequence of length zero: a row with no keys
        r"(?:seq_?len\w*|lengths?|lens?)\s*(?:=|==|of|is)\s*0\b|zero.length|\bempty "
        r"(?:sequences?|rows?|attention_mask|masks?|prompts?)\b|no (?:valid|real|unmasked) "
        r"(?:tokens?|keys?|positions?)",
        ("fully-masked-row", "ragged-lengths"),
        "a sequence of length zero: its row has no key to attend to, and the softmax over "
        "nothing is 0/0 = NaN",
        weight=1.2,
    ),
    Rule(  # a 0/1 mask multiplied into the scores: the masked become 0, which softmax keeps
        r"(?:multipl\w*|\*)[^.]{0,30}(?:binary|0/1|boolean|\bthe) mask[^.]{0,160}softmax|"
        r"mask\w*[^.]{0,40}(?:sets?|becomes?) (?:the )?(?:masked )?\w* ?(?:to )?(?:zero|0)\b"
        r"[^.]{0,120}softmax|softmax[^.]{0,80}(?:zeros?|0s)[^.]{0,40}(?:still|full|count|"
        r"treat|weight)",
        ("mask-dtype", "mask-after-softmax", "mask-missing"),
        "a 0/1 mask multiplied into the scores: masked entries become 0, and the softmax "
        "still gives exp(0) to them; before the softmax a mask must set -inf (or select)",
        weight=1.2,
    ),
    Rule(  # view/reshape used where axes must be swapped
        r"\b(?:view|reshape)\b.{0,160}?(?:instead of|rather than|\bnot\b|isn't|should (?:be|use)"
        r"|wrong|correct\w*)[^.]{0,60}\b(?:transpose|permute|swapaxes|moveaxis)\b|"
        r"\b(?:transpose|permute|swapaxes)\b[^.]{0,30}(?:instead of|rather than|not)[^.]{0,20}"
        r"\b(?:view|reshape)\b",
        ("layout-confusion", "head-axis-order"),
        "view/reshape used to swap axes: it keeps memory order, so (L, N, E) viewed as "
        "(N, L, E) interleaves the examples; axes are swapped with transpose/permute",
        weight=1.2,
    ),
    Rule(  # torch.dot / np.dot on matrices
        r"\bdot\b[^.]{0,60}(?:only|just)[^.]{0,20}(?:support|work|accept|take|for)\w*"
        r"[^.]{0,20}(?:1-?d|vectors?|one.dim\w*)",
        ("batched-matmul", "missing-transpose"),
        "torch.dot takes two 1-D vectors only: batched or 2-D operands need matmul, bmm or an "
        "einsum with a batch axis",
        weight=1.2,
    ),
    Rule(  # two widths the code lets differ that must be equal
        r"\b(?:d_\w+|\w*(?:dim|width|size|features)\w*) and (?:the )?(?:d_\w+|\w*(?:dim|width|"
        r"size|features)\w*) (?:must|should|have to|need to) (?:be )?(?:equal|the same|match)",
        ("projection-width", "qk-dim-mismatch"),
        "two feature widths that must agree (the embedding and the model width, or the "
        "query's and the key's): a projection sized from one of them meets the other",
    ),
    Rule(  # einsum subscripts that name another contraction than meant
        r"einsum[^.]{0,160}(?:repeated|wrong|incorrect|swapped|same) (?:indices|indexes|"
        r"subscripts?|letters?|labels?)|(?:repeated|wrong|incorrect|swapped) (?:indices|"
        r"subscripts?|letters?|labels?).{0,120}?einsum|einsum\(\s*[\"'][^\"']{1,40}[\"'][^)]*\)"
        r".{0,60}?(?:should (?:be|read)|revised|instead|wrong|incorrect)|einsum[^.]{0,60}"
        r"(?:subscripts?|equation)[^.]{0,40}(?:wrong|should be|instead)",
        ("batched-matmul", "qk-dim-mismatch", "projection-width"),
        "einsum subscripts that spell another product than meant: a repeated or swapped "
        "letter contracts (or keeps) the wrong axis, silently when the sizes agree",
        weight=1.2,
    ),
    Rule(  # an inverted mask asked for: masked_fill fills where the mask is True
        r"fills?[^.]{0,60}where (?:the )?mask is (?:True|1)|mask\s*=\s*~\s*mask|"
        r"(?:should|must|need to) (?:be )?(?:invert\w*|negat\w*|flip\w*)[^.]{0,20}mask|"
        r"logical_not\(\s*\w*mask",
        ("mask-polarity", "mask-missing"),
        "masked_fill fills where the mask is True: a mask that is True for the kept positions "
        "masks them and leaves only the padding to attend to; invert it (~mask)",
        weight=1.2,
    ),
    Rule(  # a cache asked to hold more than its capacity
        r"(?:kv.?)?cache[^.]{0,80}(?:exceed\w*|larger than|more than|beyond)[^.]{0,60}"
        r"(?:max\w*|capacity|size|length|limit)|(?:exceed\w*|beyond|past)[^.]{0,30}"
        r"(?:kv.?)?cache'?s? (?:max\w*|capacity|size|length)",
        ("kv-cache", "position-out-of-range"),
        "a key/value cache sized for fewer positions than the sequence it is asked to hold",
        weight=1.1,
    ),
    Rule(  # a dtype mismatch under autocast: a mask or table kept in float32
        r"(?:dtype mismatch|mismatch\w* in (?:the )?dtypes?|dtypes? (?:do not|don't) match|"
        r"different dtypes?)[^.]{0,120}autocast|autocast[^.]{0,120}(?:dtype mismatch|mismatch\w* "
        r"in (?:the )?dtypes?|dtypes? (?:do not|don't) match|different dtypes?)",
        ("mask-dtype", "reduced-precision"),
        "a dtype mismatch under autocast: the attention runs in half precision while a mask "
        "(or a table) made outside it stays float32",
        weight=1.2,
    ),
    Rule(  # head counts named with their numbers: more query heads than key/value heads
        r"\b\d+ (?:query |q |attention )?heads?\b[^.]{0,60}\b(?:key|kv|k/v|key/value|keys?"
        r"/values?|k and v)\w*[^.]{0,20}\b\d+\b|\b\d+ (?:key.value|kv|k/v|key|value) heads?\b"
        r"[^.]{0,60}\b\d+ (?:query|q|attention) heads?\b|\b\d+ (?:query|q|attention) heads?\b"
        r"[^.]{0,60}\b\d+ (?:key.value|kv|k/v|key|value) heads?\b",
        ("gqa-heads", "head-split"),
        "query and key/value heads counted differently: grouped-query attention needs the "
        "key/value heads repeated (or enable_gqa=True), each serving a group of query heads",
        weight=1.2,
    ),
    Rule(  # heads merged (or split) by a view alone
        r"\b(?:merg|combin|concat|join|flatten)\w* (?:the |all )?heads?\b[^.]{0,60}\b(?:view|"
        r"reshape)\b|\b(?:view|reshape)\b[^.]{0,60}\b(?:merg|combin|concat|join|flatten)\w* "
        r"(?:the |all )?heads?\b",
        ("head-axis-order", "head-split"),
        "heads merged by a view or reshape alone: the head axis must first be moved next to "
        "the features (transpose(1, 2)), or each output position mixes heads and positions",
        weight=1.2,
    ),
    Rule(  # a width quoted with its number against the width a layer expects
        r"\b\d+\s*(?:features|channels|dims?|dimensions|-dim\w*)\b[^.]{0,60}(?:expect\w*|"
        r"requires?|wants?|needs?)[^.]{0,20}\b\d+\b|(?:expect\w*|requires?|wants?)[^.]{0,20}"
        r"\b\d+[- ]?(?:dim\w*|features)\b[^.]{0,60}(?:got|gets|has|have|given|receiv\w*)"
        r"[^.]{0,20}\b\d+\b|\b(?:value|key|query)(?: tensor)?'?s? (?:dimension|width|feature size|"
        r"last dim\w*)\b",
        ("projection-width", "qk-dim-mismatch"),
        "a feature width that is not the one the layer was built for: a context, memory or "
        "input of another width than the projection's input size",
    ),
    Rule(  # values past float16's range named in the report (~3e5, 1e5, "extremely large")
        r"(?:extreme\w*|very|too|huge|really|enormous\w*) (?:large|big|high)[^.]{0,40}"
        r"(?:values?|logits?|scores?|activations?|products?|elements?|entries)[^.]{0,200}"
        r"\bnans?\b|\bnans?\b[^.]{0,200}(?:extreme\w*|very|too|huge|really) (?:large|big|high)"
        r"[^.]{0,40}(?:values?|logits?|scores?|activations?|products?|elements?)|"
        r"~ ?\d(?:\.\d+)?e\+?0?[5-9]\b",
        ("fp16-overflow", "softmax-overflow", "inf-arithmetic"),
        "values past float16's range (65504) in the scores: Q·Kᵀ computed in half precision "
        "overflows to inf before the softmax can subtract its maximum, and inf - inf is NaN",
        weight=1.1,
    ),
    Rule(  # NaN in bfloat16: the mask's finfo.min arithmetic, not a range overflow
        r"(?:bf16|bfloat16)[^.]{0,80}\bnans?\b|\bnans?\b[^.]{0,80}(?:bf16|bfloat16)",
        ("inf-arithmetic", "fp16-overflow", "reduced-precision"),
        "NaN in bfloat16: its range is float32's, so the usual cause is arithmetic on the "
        "mask's extreme values (finfo.min + finfo.min is -inf, and -inf - -inf is NaN) or a "
        "value rounded by its 8-bit mantissa",
    ),
    Rule(  # the output sized from the query or key where the value's width is meant
        r"\b(?:output|out_proj\w*|o_proj|result)\b[^.]{0,60}\b(?:query|key)\b[^.]{0,20}\b(?:not|"
        r"instead of|rather than)\b[^.]{0,12}\bvalues?\b|\b(?:output|out_proj\w*|o_proj)\b"
        r"[^.]{0,60}(?:size|width|dim\w*|features) (?:of|from) (?:the )?(?:query|key)s?\b",
        ("projection-width", "qk-dim-mismatch"),
        "the output's width taken from the query or key where it is the value's: with "
        "values of another width than the keys, the output projection gets the wrong size",
        weight=1.2,
    ),
    Rule(  # one example's result depends on the others in its batch
        r"(?:chang\w*|differ\w*|var(?:y|ies)|different)[^.]{0,30}(?:depending on|with|by) "
        r"(?:what |which |the )?(?:other|another|rest of the)[^.]{0,30}(?:batch|sentences?|"
        r"examples?|samples?|sequences?|inputs?|prompts?|items?)|depend\w* on[^.]{0,30}"
        r"(?:other|the) (?:sentences?|examples?|samples?|sequences?|inputs?|prompts?|items?) "
        r"in the batch|batch composition|batch[ _]size[^.]{0,30}(?:impact|effect|affect\w*|"
        r"chang\w*|influenc\w*)|(?:impact|effect|influence) of (?:the )?padd\w*|padd\w* "
        r"(?:affects?|changes?|impacts?|influences?) (?:the )?(?:output|result|prediction)",
        ("mask-missing", "positions", "softmax-axis"),
        "one example's result depends on the others in its batch: they change how much "
        "padding it gets, so padding that is not masked (or positions counted through it) "
        "changes its output",
    ),
    Rule(  # the weights (or the map) read as transposed
        r"(?:attention|weights?|map|scores?|probabilit\w*)[^.]{0,30}(?:looks?|is|are|seems?|"
        r"appears?) (?:to be )?transposed|rows are (?:the )?keys",
        ("missing-transpose", "softmax-axis", "layout-confusion"),
        "weights that look transposed: keys along the rows means a product or softmax taken "
        "over the wrong axis (K·Qᵀ, or normalised over the queries)",
    ),
    Rule(  # a permutation of the head axis said to be wrong
        r"\b(?:heads?|head_to_batch|batch_to_head)\w*[^.]{0,80}\b(?:permut\w*|transpos\w*)"
        r"[^.]{0,40}(?:bug|wrong|incorrect|mismatch\w*|mix\w*|scrambl\w*)|(?:bug|wrong|incorrect|"
        r"mismatch\w*)[^.]{0,40}\bpermut\w*[^.]{0,80}\bheads?\b",
        ("head-axis-order", "layout-confusion"),
        "the head axis permuted into another place than the code after it expects: heads "
        "and positions (or heads and the batch) are interleaved when the tensor is reshaped",
        weight=0.9,
    ),
)
"""Symptoms in words, with their synonyms, and the tags that produce them."""

SYNONYMS: tuple[tuple[str, str], ...] = (
    (r"\bnans?\b|not a number|non.finite|\binfs?\b", " nan "),
    (r"\bfp16\b|float16|\bhalf(?: precision)?\b|\bamp\b|mixed.precision", " fp16 "),
    (r"\bbf16\b|bfloat16", " bf16 "),
    (r"uniform|identical|equal|constant|\bsame\b", " same "),
    (r"garbage|gibberish|nonsense|incorrect|\bwrong\b|\bbad\b|degrade\w*|broken|worse", " wrong "),
    (r"\bpadd?(?:ing|ed|s)?\b", " pad "),
    (r"look.?ahead|subsequent|upcoming|\bnext\b|later", " future "),
    (r"\b(?:attend\w*|attention|attn)\b", " attend "),
    (r"\bweights?\b|probabilit\w+|\bscores?\b", " weight "),
    (r"past_key_values|kv.?cache|\bcache[ds]?\b", " cache "),
    (r"\bgenerat\w*|\bdecod(?!ers?\b(?!-only))\w*|\binference\b", " generate "),
    (r"\brope\b|rotary", " rotary "),
    (r"\berror\b|\bfails?\b|\bcrash\w*|\braises?\b|exception", " fail "),
)
"""Words that say the same thing, folded to one word before symptom phrases are matched."""

STOP_WORDS = frozenset(
    re.findall(
        r"\w+",
        "the a an of to in is and or with after when on for my i it be at by from but got this "
        "that are was were not no can does do have has had me we you your our its as if so use "
        "using used into than then there their them they which what how why some only all any "
        "get gets",
    )
)

ATTENTION_WORDS = re.compile(
    r"attention|attn|(?:\b|_)mask|\bheads?\b|softmax|\bquer(?:y|ies)\b|\bkeys?\b|\bvalues?\b|"
    r"\bqkv\b|transformer|causal|padd(?:ing|ed)|embedding|position|rotary|rope\b|flash|sdpa|"
    r"\bscores?\b|logits|\bkv\b|decoder|encoder|einsum|matmul|\bbmm\b|\bshapes?\b|"
    r"past_key_values?|\b(?:key|value|query)_states\b|\bkv_cache\b|\bkv.cache\b",
    re.IGNORECASE,
)
"""Words that put a text inside attention code; without one, shared words are no evidence."""

TRANSPOSED = re.compile(r"\.transpose\(-[12], ?-[12]\)|\.mT\b|swapaxes\(-[12], ?-[12]\)")
"""Quoted code that does transpose the keys: evidence against a missing transpose."""

OUTSIDE = re.compile(
    r"ModuleNotFoundError|ImportError|No module named|cannot import name|FileNotFoundError|"
    r"no kernel image is available|"
    r"No such file or directory|Permission denied|CUDA driver|NVIDIA driver|"
    r"ConnectionError|HTTPError|\b40[134]\b Client Error|pip install|"
    r"(?:tokenizer|vocab)[\w.]* (?:file|not found)|SSL|timed out|Disk quota|"
    r"object has no attribute|module '[\w.]+' has no attribute|couldn't connect|"
    r"Unrecognized configuration class|(?:Missing|Unexpected) key\(s\) in state_dict|"
    r"Unable to load any of|cannot open shared object|Could not load (?:dynamic )?library|"
    r"DLL load failed|lib\w+\.so(?:\.\d+)*\b|undefined symbol|\.cpython-\d+[\w-]*\.so\b|"
    r"Loaded runtime \w+ library|(?:library|source) (?:was )?compiled with:? ?v?\d|"
    r"compiled \(?[\d.]+\)? and runtime|runtime \(?[\d.]+\)? versions? mismatch|"
    r"\bversion_match\b|needs to have matching (?:major )?version|"
    r"missing \d+ required positional arguments?|takes \d+ positional arguments? but \d+ "
    r"(?:were|was) given|"
    # the call signature or the import of another version of a library: a library passing
    # a keyword its caller's forward (monkey-patched, or of an older release) does not take
    # ("forward() got an unexpected keyword argument 'padding_mask'"); a named attention
    # function refusing one ("scaled_dot_product_attention() ... 'enable_gqa'") stays in
    r"\b(?:forward|__call__)\(\) got an unexpected keyword argument|"
    r"\b(?:unable|failed|fails|failing) to [`'\"]*import\b|\bcan(?:not|'t) [`'\"]*import\b|"
    r"CU(?:DNN|BLAS)_STATUS_(?:NOT_INITIALIZED|ALLOC_FAILED|ARCH_MISMATCH)|"
    r"\bcollate|(?:supported|available) (?:only )?on GPUs with compute capability|"
    r"GPUs with compute capability (?:below|lower than|less than)|"
    r"is not compatible with the current PyTorch installation|"
    # a compiled extension built against another PyTorch, CUDA or Python (xFormers' and
    # its successors' "can't load C++/CUDA extensions. ... was built for: PyTorch 2.1.2+cu121
    # (you have 2.1.2+cpu)", torch.utils.cpp_extension's "The detected CUDA version (...)
    # mismatches the version that was used to compile PyTorch", torchvision's "Couldn't
    # load custom C++ ops"): installation, not attention
    r"can(?:'t|not) load (?:the )?C\+\+(?:/CUDA)? extensions?|was built for:?\s+PyTorch|"
    r"\(you have \d+\.\d+[\w.+-]*\)|mismatches the version that was used to compile|"
    r"(?:couldn't|could not|failed to) load custom C\+\+ ops|"
    # a backend library missing or built for another CUDA: "the package flash_attn seems to
    # be not installed", "xFormers not available", "only supported on CUDA 11.6 and above"
    r"\bnot installed\b|^\s*[\w.-]+ (?:is )?not available\.?\s*$|"
    r"is not available, some optimizations|only supported (?:on|with) CUDA \d|"
    r"requires CUDA \d+(?:\.\d+)? or (?:higher|above|newer|later)|"
    # a build without CUDA: "xFormers wasn't build with CUDA support", "Torch not compiled
    # with CUDA enabled"
    r"(?:wasn't|was not|\bnot|isn't|is not) (?:built|build|compiled) with CUDA|"
    # a PyTorch build without a fused kernel (sdp_utils' warning "Torch was not compiled
    # with flash attention"; the math path runs instead), and tensors on two devices
    # ("Expected all tensors to be on the same device, but found at least two devices"):
    # an install and a placement, no attention mistake
    r"Torch was not compiled with (?:flash|memory.efficient|mem.efficient) attention|"
    r"Expected all tensors to be on the same device|"
    # torch.stack in a data collator: sequences of other lengths in one batch ("stack
    # expects each tensor to be equal size, but got [51] at entry 0 and [55] at entry 1")
    r"stack expects each tensor to be equal size, but got \[\d+\] at entry",
    re.IGNORECASE | re.MULTILINE,
)
"""Errors from outside attention code (installing, files, drivers, the network, an API of
another version, a CUDA or cuDNN library of another version than the build's): when the
error itself is one of these, only the sizes it quotes count."""

OUTSIDE_ANYWHERE = re.compile(
    r"(?:wasn't|was not|isn't|is not) (?:built|build|compiled) with CUDA|"
    r"Torch not compiled with CUDA enabled|can(?:'t|not) load (?:the )?C\+\+(?:/CUDA)? "
    r"extensions?",
    re.IGNORECASE,
)
"""A build that cannot run a kernel at all (xFormers' "`cutlassF` is not supported because:
xFormers wasn't build with CUDA support", its "can't load C++/CUDA extensions"): anywhere in
a long report, every refusal it lists follows from the install, not from attention."""

TRANSLATIONS: tuple[tuple[str, str], ...] = (
    ("掩码", " mask "),
    ("遮罩", " mask "),
    ("维度", " dimension "),
    ("溢出", " overflow "),
    ("半精度", " half precision "),
    ("混合精度", " mixed precision "),
    ("注意力", " attention "),
    ("形状", " shape "),
    ("填充", " padding "),
    ("应为", " should be "),
    ("批次", " batch "),
    ("批量", " batch "),
    ("序列", " sequence "),
    ("长度", " length "),
    ("梯度", " gradient "),
    ("位置编码", " positional encoding "),
    ("缓存", " cache "),
    ("因果", " causal "),
    ("多头", " multi-head "),
    ("应该是", " should be "),
    ("没有使用", " without using "),
    ("未使用", " without using "),
    ("没有用", " without using "),
    ("忽略", " ignore "),
    ("影响", " affect "),
    ("不一致", " inconsistent "),
    ("报错", " error "),
    ("旋转", " rotary "),
    ("词表", " vocabulary "),
    ("越界", " out of range "),
)
"""A few technical words of reports written in Chinese, read as their English terms."""


_DENIED = re.compile(
    r"\b(?:no|without|not an?y?|never an?y?|nor)\s+(?:any\s+)?(?:nans?|infs?|errors?|"
    r"exceptions?|warnings?)\b(?:\s*(?:,|or|and|nor)\s*(?:no\s+)?(?:nans?|infs?|errors?|"
    r"exceptions?|warnings?)\b)*",
    re.IGNORECASE,
)
"""A symptom the report denies ("no error, no NaN"): no evidence of it."""


_CJK_NEXT_TO_ASCII = re.compile(
    r"(?<=[\u3000-\u9fff\uff00-\uffef])(?=[A-Za-z0-9_])|"
    r"(?<=[A-Za-z0-9_])(?=[\u3000-\u9fff\uff00-\uffef])"
)
"""Where a CJK character touches a Latin word ("你的RoPE在"): Python counts both as word
characters, so ``\bRoPE\b`` would not match without a space between them."""


_UNSET_ARGUMENTS = re.compile(r"^[ \t]*[•*-][ \t]*\w+=(?:None|False)[ \t]*$", re.MULTILINE)
"""Keras's "Arguments received by ....call():" lines of arguments left unset
(``• key_mask=None``, ``• use_causal_mask=False``): the names are no evidence."""


def english(text: str) -> str:
    """``text`` read for evidence.

    The words of :data:`TRANSLATIONS` replaced, denied symptoms and unset arguments dropped.
    """
    for word, meaning in TRANSLATIONS:
        text = text.replace(word, meaning)
    text = _CJK_NEXT_TO_ASCII.sub(" ", text)
    text = _UNSET_ARGUMENTS.sub("", text)
    return _DENIED.sub(" ", text)


MEMORY = re.compile(
    r"out of memory|\bOOMs?\b|Unable to allocate|RESOURCE_EXHAUSTED|(?:cannot|can't) allocate|"
    r"OutOfMemoryError|ResourceExhaustedError|"
    r"\b(?:tr(?:y|ies|ied|ying)|attempt(?:s|ed|ing)?|going|will) to allocate\b|not enough memory|"
    r"\b(?:crazy|huge|massive|enormous|giant) (?:memory )?allocations?\b",
    re.IGNORECASE,
)
"""Running out of memory: attention's evidence only next to an attention word or a shape."""

LONG_INPUT = re.compile(
    r"sequence lengths?|\bseq_?len\w*|\bcontext (?:length|window)|\b(?:long|longer|large|larger)"
    r"\s+(?:inputs?|sequences?|prompts?|contexts?|documents?)\b|\b\d+k? tokens\b|quadratic",
    re.IGNORECASE,
)
"""A long input: running out of memory next to it is attention's (L, S) scores or mask."""

SHAPE_OR_MASK = re.compile(r"shape|mask|size of tensor|broadcast", re.IGNORECASE)
"""A message naming a shape or mask problem: never answered with an empty list."""
