"""The numbers of an error message, read as attention's axes.

Each reading takes a message and, when it recognises the sizes it quotes, returns a
:class:`Reading`: the failure families those sizes point to, likeliest first, and per
family a sentence saying what the numbers mean in that family's terms. Broadcast errors
are aligned as broadcasting aligns shapes, on the scores ``(B, H, L, S)``; contraction
errors name the contracted sizes; reshape errors compare element counts; embedding
lookups compare an index with its table; some shapes name one mistake outright (a square
mask of another length, one query against more keys than the mask covers, a mask with one
entry per example where batch × heads are counted, the same sizes in another order, a
per-position table of another width); sizes the report names (``lq = 16``,
``num_key_value_heads: 8``) say which roles two disagreeing sizes play. Used by
:mod:`.diagnose`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_SCORE_AXES = ("batch", "head", "query length", "key length")
_SCORE_LETTERS = ("B", "H", "L", "S")


@dataclass(frozen=True)
class Reading:
    """What the message's sizes mean, per failure family.

    Attributes:
        tags: the families these sizes point to, likeliest first.
        say: per tag, a sentence in that family's terms; ``default`` for the others.
        default: a neutral sentence naming the numbers and the axis.
    """

    tags: tuple[str, ...]
    say: dict[str, str] = field(default_factory=dict)
    default: str = ""
    more: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Per tag, other sentences on the same numbers, for a second case of that family."""
    firm: bool = False
    """Whether the numbers themselves name the first family (32 heads against 8 on the head
    axis): then more cases of that family are better answers than other families."""

    def sentence(self, tag: str) -> str:
        """The sentence for ``tag``."""
        return self.say.get(tag, self.default)

    def sentences(self, tag: str) -> tuple[str, ...]:
        """The sentence for ``tag``, then its alternatives."""
        return (self.sentence(tag), *self.more.get(tag, ()))


_SHAPE = re.compile(r"[\[(]\s*(\d+(?:\s*,\s*\d+)*)\s*,?\s*[\])]")


def shapes(text: str) -> list[tuple[int, ...]]:
    """Every shape quoted in ``text``: ``(2, 8, 5, 5)``, ``[2,8,5,5]``, ``torch.Size([2, 8])``.

    ``[original->remapped]`` listings of NumPy and PyTorch count once, by their original.
    """
    text = re.sub(r"->\s*[\[(][^\])]*[\])]", " ", text)
    text = re.sub(r"\b(?:None|\?)(?=\s*[,)\]])", "1", text)  # an unknown size broadcasts
    return [tuple(int(n) for n in group.split(",")) for group in _SHAPE.findall(text)]


def _remapped(text: str) -> list[tuple[int, ...]]:
    """Einsum's remapped shapes, one axis per label.

    PyTorch's ``[32, 77, 40]->[32, 1, 77, 40]``, NumPy's ``(2,8,5,64)->(2,8,5,newaxis,64)``
    (a new axis counts as 1).
    """
    size = r"(?:\d+|newaxis)"
    return [
        tuple(1 if n.strip() == "newaxis" else int(n) for n in group.split(","))
        for group in re.findall(rf"->\s*[\[(]({size}(?:,\s*{size})+)[\])]", text)
    ]


_VOCAB_MIN = 5000
"""An embedding table this long, not a power of two (or one plus two), reads as a vocabulary;
position tables are 512, 514, 1024, 4098... rows."""


def index_reading(text: str) -> Reading | None:
    """An embedding lookup past its table, with the numbers read as token id or position.

    TensorFlow's ``indices[i,j] = v is not in [0, n)`` gives the position ``j`` of the
    offending entry: ``v == j`` means the index is the position itself (a sequence longer
    than the position table); a table of :data:`_VOCAB_MIN` rows or more is a vocabulary.
    """
    found = re.search(r"indices\[(?:\d+,)*(\d+)\] = (-?\d+) is not in \[0, (\d+)\)", text)
    table = None
    if found:
        column, value, table = (int(g) for g in found.groups())
    else:
        other = re.search(
            r"index (-?\d+) is out of bounds for (?:axis|dimension) 0 with size (\d+)|"
            r"Tried to access index (-?\d+) out of table with (\d+) rows",
            text,
        )
        if not other:
            return None
        numbers = [int(g) for g in other.groups() if g is not None]
        value, table, column = numbers[0], numbers[1], -1
    if value < 0:
        return Reading(
            ("token-out-of-range",),
            {
                "token-out-of-range": f"index {value}: a negative id (a -100 or -1 pad id) "
                f"looked up in a table of {table} rows"
            },
            f"index {value} into a table of {table} rows",
        )
    pow2 = any(n > 0 and n & (n - 1) == 0 for n in (table, table - 2))  # 512, 514, 4098
    # index 512 into 511 rows: past a table one row short of a maximum length (an index
    # equal to the rows is a token id = vocabulary size, read below)
    past_max = table < _VOCAB_MIN and _max_length_like(table + 1) and value > table
    says_position = value == column or (pow2 and table < _VOCAB_MIN) or past_max
    says_token = not pow2 and (table >= _VOCAB_MIN or value == table)
    if not (says_position or says_token):
        return None
    position = (
        f"index {value} into a table of {table} rows: a sequence longer than the "
        f"{table} positions the table was built for"
    )
    token = (
        f"index {value} into a table of {table} rows: a token id past the vocabulary "
        "(a tokenizer with added tokens, or a model built for a smaller vocabulary)"
    )
    tags = ("position-out-of-range", "token-out-of-range")
    if not says_position:
        tags = ("token-out-of-range", "position-out-of-range")
    return Reading(
        tags,
        {"position-out-of-range": position, "token-out-of-range": token},
        f"index {value} into a table of {table} rows",
        {
            "position-out-of-range": (
                f"positions 0..{value} need a table of {value + 1} rows or more; this one "
                f"has {table}: truncate the input or extend the table",
            ),
            "token-out-of-range": (
                f"ids must stay below {table}: id {value} is past the last row of the "
                "embedding (resize the embedding to the tokenizer)",
            ),
        },
    )


_QKV_SHAPE = re.compile(
    r"\b(query|key|value|q|k|v)(?:\.shape|[ _]shape|\.size\(\))?\s*[:=]?\s*"
    r"(?:torch\.Size\()?[\[(]?\s*(\d+(?:\s*[,x×]\s*\d+){2,})",
    re.IGNORECASE,
)


def qkv_reading(text: str) -> Reading | None:
    """Query and key/value shapes named in the message, compared axis by axis.

    Query and key may differ in length (``L`` against ``S``); a difference on the first
    axis is two batches, on a head axis two head counts, on the last two feature sizes.
    """
    named: dict[str, tuple[int, ...]] = {}
    for name, numbers in _QKV_SHAPE.findall(text):
        key = name.lower()[0]
        named.setdefault(key, tuple(int(n) for n in re.split(r"\s*[,x×]\s*", numbers)))
    if "q" not in named or not ({"k", "v"} & set(named)):
        return None
    q = named["q"]
    k = named.get("k", named.get("v", ()))
    if len(q) != len(k):
        return None
    if q[0] != k[0]:
        return Reading(
            ("batch-mismatch", "kv-length-mismatch"),
            {
                "batch-mismatch": f"the query has batch {q[0]} and the key/value {k[0]}: "
                "the other input (a context, an encoder output) was not repeated for the batch"
            },
            f"query batch {q[0]} against key/value batch {k[0]}",
        )
    if len(q) == 4 and q[1] != k[1] and q[2] == k[2]:
        big, small = max(q[1], k[1]), min(q[1], k[1])
        return Reading(
            ("gqa-heads", "kernel-layout"),
            {"gqa-heads": f"{q[1]} query heads against {k[1]} key/value heads"},
            f"{big} against {small} on the second axis of query and key",
        )
    if q[-1] != k[-1]:
        return Reading(
            ("qk-dim-mismatch", "projection-width"),
            {"qk-dim-mismatch": f"query features {q[-1]} against key features {k[-1]}"},
            f"query features {q[-1]} against key features {k[-1]}",
        )
    if "v" in named and "k" in named and named["k"][:-1] != named["v"][:-1]:
        return Reading(
            ("kv-length-mismatch",),
            {},
            f"key {named['k']} and value {named['v']} disagree before the feature axis",
        )
    return None


_LABEL_ROLES = {
    "b": ("batch-mismatch", "the batch axis"),
    "n": ("batch-mismatch", "the batch axis"),
    "h": ("gqa-heads", "the head axis"),
    "g": ("gqa-heads", "the head-group axis"),
    "d": ("qk-dim-mismatch", "the feature axis"),
    "e": ("qk-dim-mismatch", "the feature axis"),
    "c": ("qk-dim-mismatch", "the feature axis"),
    "k": ("kv-length-mismatch", "the key axis"),
    "s": ("kv-length-mismatch", "the key axis"),
    "j": ("kv-length-mismatch", "the key axis"),
    "t": ("kv-length-mismatch", "the sequence axis"),
    "l": ("kv-length-mismatch", "the query axis"),
    "i": ("kv-length-mismatch", "the query axis"),
    "q": ("kv-length-mismatch", "the query axis"),
}
_ROLE_TAGS = {
    "batch-mismatch": ("batch-mismatch", "kv-length-mismatch"),
    "gqa-heads": ("gqa-heads", "batch-mismatch"),
    "qk-dim-mismatch": ("qk-dim-mismatch", "projection-width", "kv-length-mismatch"),
    "kv-length-mismatch": ("kv-length-mismatch", "position-out-of-range", "batch-mismatch"),
}


def einsum_reading(text: str) -> Reading | None:
    """An einsum label whose sizes disagree, read by its letter (``h`` heads, ``d`` features...).

    PyTorch: ``subscript h has size 2 for operand 1 which does not broadcast with
    previously seen size 8``; JAX: ``Size of label 'h' for operand 1 (8) does not match
    previous terms (2)``.
    """
    torch_label = re.search(
        r"subscript (\w) has size (\d+) for operand \d+ which does not broadcast with "
        r"previously seen size (\d+)",
        text,
    )
    jax_label = re.search(
        r"Size of label '(\w)' for operand \d+ \((\d+)\) does not match previous terms "
        r"\((\d+)\)",
        text,
    )
    found = torch_label or jax_label
    if not found:
        return None
    label, a, b = found.group(1), int(found.group(2)), int(found.group(3))
    family, axis = _LABEL_ROLES.get(label.lower(), ("", f"the axis labelled {label}"))
    if not family:
        return None
    big, small = max(a, b), min(a, b)
    say = {
        "batch-mismatch": f"{a} against {b} on {axis} ('{label}'): two batches of different "
        "sizes (a context or cache not repeated for the batch, or beams)",
        "gqa-heads": f"{big} query heads against {small} key/value heads on '{label}'"
        + (f": each key/value head serves {big // small}" if small and big % small == 0 else ""),
        "qk-dim-mismatch": f"{a} against {b} features on '{label}': query and key (or the "
        "projection) differ in width",
        "projection-width": f"{a} against {b} on the contracted feature axis '{label}': an "
        "input wider or narrower than the projection",
        "kv-length-mismatch": f"{a} against {b} on {axis} ('{label}'): two sequences of "
        "different lengths (keys and values, or a table built for another length)",
        "position-out-of-range": f"{a} against {b} positions on '{label}': a position table "
        "or relative bias built for another length",
    }
    return Reading(_ROLE_TAGS[family], say, f"{a} against {b} on {axis} ('{label}')")


def _ints(group: str) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", group))


def matmul_reading(text: str) -> Reading | None:
    """A batched matmul whose operands disagree, read from the shapes it quotes.

    The batch axes (all but the last two) name batch or heads; the contracted axes say
    whether the second operand is a key not transposed (it ends like the first), a weight
    (2-D) or another tensor.
    """
    batch = re.search(
        r"must have compatible batch dimensions: \[([\d,]+)\] vs\. \[([\d,]+)\]|"
        r"Incompatible types for matmul arguments: \w+\[([\d,]+)\] and \w+\[([\d,]+)\]|"
        r"remapped shapes \[original->remapped\]: \(([\d,]+)\)->\(([\d,]*)[\w,]*\) "
        r"\(([\d,]+)\)->\(([\d,]*)[\w,]*\)",
        text,
    )
    if batch:
        groups = [g for g in batch.groups() if g is not None]
        first, second = _ints(groups[0]), _ints(groups[1])
        if len(groups) == 4:  # NumPy: the remapped prefix holds the batch axes
            left, right = _ints(groups[0]), _ints(groups[2])
            if len(left) != len(right):
                return Reading(
                    ("batched-matmul", "batch-mismatch"),
                    {
                        "batched-matmul": f"a {len(left)}-D operand against a {len(right)}-D "
                        f"one in a matmul: their batch axes {_ints(groups[1])} and "
                        f"{_ints(groups[3])} do not line up",
                    },
                    f"({groups[0]}) against ({groups[2]})",
                )
            first, second = _ints(groups[1]), _ints(groups[3])
        else:
            first, second = first[:-2], second[:-2]
        if len(first) != len(second) or not first:
            return None
        bad = [
            i for i in range(len(first)) if first[i] != second[i] and 1 not in (first[i], second[i])
        ]
        if len(bad) != 1:
            return None
        a, b = first[bad[0]], second[bad[0]]
        if len(first) >= 2 and bad[0] == len(first) - 1:
            return _axis_reading(a, b, 1, 4)  # (B, H) batch axes: the heads
        return _axis_reading(a, b, 0, 4)
    sizes = re.search(
        r"Matrix size-incompatible: In\[0\]: \[([\d,]+)\], In\[1\]: \[([\d,]+)\]", text
    )
    if not sizes:
        return None
    left, right = _ints(sizes.group(1)), _ints(sizes.group(2))
    if len(left) < 2 or len(right) < 2:
        return None
    m, k, k2, n = left[-2], left[-1], right[-2], right[-1]
    if len(right) == 2 and len(left) >= 3:
        return Reading(
            ("projection-width", "qk-dim-mismatch"),
            {
                "projection-width": f"a ({k2}, {n}) weight applied to {k} features: the "
                f"projection was built for {k2} inputs",
            },
            f"[..., {m}, {k}] times a ({k2}, {n}) weight",
        )
    if right == left or (n == k and k2 != k):
        return Reading(
            ("missing-transpose", "qk-dim-mismatch"),
            {
                "missing-transpose": f"the second operand [..., {k2}, {n}] ends with {n} "
                f"features like the first: the keys were not transposed (Q @ K with K "
                f"(..., S, D); use K transposed to (..., D, S))",
            },
            f"[..., {m}, {k}] times [..., {k2}, {n}]",
        )
    return Reading(
        ("qk-dim-mismatch", "kv-length-mismatch", "projection-width"),
        {
            "qk-dim-mismatch": f"{k} against {k2} on the contracted axis: query and key "
            "feature sizes differ",
            "kv-length-mismatch": f"[..., {m}, {k}] weights times [..., {k2}, {n}] values: "
            f"{k} keys against {k2} values",
        },
        f"[..., {m}, {k}] times [..., {k2}, {n}]: {k} against {k2}",
    )


def _head_dim_like(n: int) -> bool:
    return 8 <= n <= 1024 and n & (n - 1) == 0


def contraction_reading(text: str) -> Reading | None:
    """Two sizes that met on a matmul's contracted axis, read as features or lengths.

    NumPy (``size 7 is different from 8``), JAX (``got (8,) and (7,)``) and PyTorch's bmm
    (``to be: [B, 8] but got: [B, 7]``) name only the two sizes. Model widths (both 256 or
    more) point to a projection; a head size (a power of two from 8 to 256) against a
    size that is not one points to a sequence length meeting the features: keys not
    transposed (toy sizes: a sequence shorter than the head size); other sizes, to query
    and key widths that differ.
    """
    found = (
        re.search(r"mismatch in its core dimension 0.*\(size (\d+) is different from (\d+)\)", text)
        or re.search(
            r"contracting dimensions to have the same shape, got \(?\[?(\d+),?\)?\]? "
            r"and \(?\[?(\d+)",
            text,
        )
        or re.search(r"batch2 tensor to be: \[\d+, (\d+)\] but got: \[\d+, (\d+)\]", text)
    )
    if not found or found.group(1) == found.group(2):
        return None  # bmm's batch axes differ, not its contracted one: no contraction
    return _contraction(int(found.group(1)), int(found.group(2)))


def _contraction(a: int, b: int) -> Reading:
    """Sizes ``a`` and ``b`` met on a contracted axis (see :func:`contraction_reading`)."""
    sentence = {
        "projection-width": f"{a} against {b} on the contracted axis: model widths, so an input "
        "or context of one width meets a projection built for the other",
        "missing-transpose": f"{a} against {b} on the contracted axis: a head size meets a "
        "sequence length, as when K (..., S, D) is used where Kᵀ (..., D, S) is meant",
        "qk-dim-mismatch": f"{a} against {b} on the contracted axis: query and key feature "
        "sizes differ (projections built with different output sizes)",
        "kv-length-mismatch": f"{a} against {b} on the contracted axis: weights over {a} keys "
        f"meet {b} values (keys and values of different lengths)",
    }
    small, big = min(a, b), max(a, b)
    if small >= 256:
        tags: tuple[str, ...] = ("projection-width", "qk-dim-mismatch", "missing-transpose")
    elif _head_dim_like(big) and small & (small - 1) != 0:
        tags = ("missing-transpose", "qk-dim-mismatch", "kv-length-mismatch", "projection-width")
    elif big >= 128:
        tags = ("projection-width", "qk-dim-mismatch", "missing-transpose", "kv-length-mismatch")
    else:
        tags = ("qk-dim-mismatch", "missing-transpose", "projection-width", "kv-length-mismatch")
    return Reading(tags, sentence, f"{a} against {b} on a matmul's contracted axis")


def tf_graph_reading(text: str) -> Reading | None:
    """TensorFlow's graph-mode message, read with the shapes it quotes.

    ``Dimensions must be equal, but are A and B for '{{node X}} = Op[...]' with input
    shapes: [..], [..]``: the op says whether two shapes met in a matmul or elementwise.
    """
    found = re.search(
        r"Dimensions must be equal, but are (\d+) and (\d+) for .{0,200}?"
        r"(?:= ?(\w+)\[|\(op: '(\w+)'\)).{0,400}?"
        r"with input shapes: \[([\d,?]*)\], \[([\d,?]*)\]",
        text,
        re.DOTALL,
    )
    old = re.search(
        r"In\[0\] mismatch In\[1\] shape: (\d+) vs\. (\d+): \[([\d,]+)\] \[([\d,]+)\]", text
    )
    if old:
        shown = f"Matrix size-incompatible: In[0]: [{old.group(3)}], In[1]: [{old.group(4)}]"
        return matmul_reading(shown)
    if not found:
        return None
    op = found.group(3) or found.group(4)
    left, right = found.group(5).replace("?", "0"), found.group(6).replace("?", "0")
    if "MatMul" in op:
        return matmul_reading(f"Matrix size-incompatible: In[0]: [{left}], In[1]: [{right}]")
    if "Einsum" in op or "Dense" in op:  # a Keras projection's einsum: a width meets a weight
        return _contraction(int(found.group(1)), int(found.group(2)))
    return shape_reading(f"Incompatible shapes: [{left}] vs. [{right}]")


def tf_einsum_reading(text: str) -> Reading | None:
    """``Expected dimension 6 at axis 0 of the input shaped [2,7,2,4] but got dimension 2``."""
    found = re.search(
        r"Expected dimension (\d+) at axis (\d+) of the input shaped \[([\d,]+)\] but got "
        r"dimension (\d+)",
        text,
    )
    if not found:
        return None
    want, axis, shape, got = (
        int(found.group(1)),
        int(found.group(2)),
        _ints(found.group(3)),
        int(found.group(4)),
    )
    if axis == 0:
        return _axis_reading(want, got, 0, 3)
    big, small = max(want, got), min(want, got)
    heads_like = small > 1 and big <= _MAX_HEADS and big % small == 0
    if axis == 1 and len(shape) == 4 and heads_like:
        return _axis_reading(want, got, 1, 4)  # (B, H, L, D) operands: axis 1 holds the heads
    if axis == len(shape) - 1:
        return Reading(
            ("qk-dim-mismatch", "projection-width", "kv-length-mismatch"),
            {"qk-dim-mismatch": f"{want} against {got} on the last (feature) axis"},
            f"{want} against {got} on the last axis",
        )
    return None


_BATCH_LIKE = 128
"""Up to this, a size may be a batch size (or a batch × heads factor)."""


def _broadcast_axis_reshaped(source: tuple[int, ...], target: tuple[int, ...]) -> Reading | None:
    """A tensor with singleton (broadcast) axes reshaped to a shape that fills one of them.

    ``(3, 1, 1, 64, 64)`` into ``(3, 28, 64, 64)``: the sizes other than 1 are the target's
    but one, and the element counts differ by exactly that one (28 heads): a mask meant to
    broadcast over the heads, reshaped instead.
    """
    kept = [n for n in source if n != 1]
    if 1 not in source or -1 in target:
        return None
    for at, n in enumerate(target):
        if n > 1 and list(target[:at] + target[at + 1 :]) == kept:
            said = (
                f"({', '.join(map(str, source))}) has 1 where ({', '.join(map(str, target))}) "
                f"has {n}: a mask or bias meant to broadcast over that axis (the heads?), "
                "reshaped instead of broadcast (expand / broadcast_to)"
            )
            return Reading(
                ("mask-shape", "mask-broadcast-axis", "head-split"), {"mask-shape": said}, said
            )
    return None


def _square_mask_reading(shape: tuple[int, ...], size: int) -> Reading | None:
    """A view to a square mask shape ``(L, L)`` or ``(..., 1, L, L)`` of another side's square.

    ``[1, 1, 52, 52]`` for 4096 elements: 4096 is 64 × 64 over the leading axes, a mask (or
    bias) built for 64 positions viewed as one for 52 instead of sliced ``[:52, :52]``.
    """
    if len(shape) < 2 or shape[-1] != shape[-2] or shape[-1] < 2:
        return None
    if len(shape) > 2 and shape[-3] != 1:  # (B, L, H, D) with H == D is a head view
        return None
    lead = _product(shape[:-2])
    if lead < 1 or size % lead:
        return None
    side = round((size // lead) ** 0.5)
    if side < 2 or side * side != size // lead or side == shape[-1]:
        return None
    length, shown = shape[-1], ", ".join(map(str, shape))
    said = (
        f"[{shown}] is a square ({length}, {length}) mask; its {size} elements are a "
        f"{side} × {side} one: a mask or bias built for {side} positions viewed as one for "
        f"{length} (slice it [..., :{length}, :{length}] to the scores' lengths instead)"
    )
    return Reading(
        ("mask-shape", "causal-alignment", "kv-length-mismatch"),
        {"mask-shape": said, "causal-alignment": said},
        said,
    )


def reshape_reading(text: str) -> Reading | None:
    """A reshape or view that cannot hold the tensor, with the element counts compared.

    With ``-1`` in the shape (or TensorFlow's "requires a multiple of"), the named axes do
    not divide the size: a width that is not a multiple of the head count. Without it, a
    size that is a whole multiple of what the shape holds means an axis taken from the
    wrong tensor (a batch or length of another tensor, batch-first read as sequence-first).
    """
    found = re.search(r"shape '\[([-\d, ]+)\]' is invalid for input of size (\d+)", text)
    numpy = re.search(
        r"cannot reshape array of (?:shape \([\d, ]*\) \()?size (\d+)\)? into shape "
        r"\(([-\d, ]+)\)",
        text,
    )
    multiple = re.search(
        r"Input to reshape is a tensor with (\d+) values, but the requested shape "
        r"(requires a multiple of|has) (\d+)",
        text,
    )
    source = re.search(r"cannot reshape array of shape \(([\d, ]+)\)", text)
    if numpy and source:
        grown = _broadcast_axis_reshaped(_ints(source.group(1)), _signed(numpy.group(2)))
        if grown is not None:
            return grown
    if found:
        shape, size = _signed(found.group(1)), int(found.group(2))
    elif numpy:
        shape, size = _signed(numpy.group(2)), int(numpy.group(1))
    elif multiple:
        size, held = int(multiple.group(1)), int(multiple.group(3))
        shape = (-1, held) if multiple.group(2).startswith("requires") else (held,)
    else:
        return None
    held = 1
    for n in shape:
        held *= n if n > 0 else 1
    shown = ", ".join(map(str, shape))
    split = (
        f"{size} elements do not split into [{shown}]: the named axes hold {held}, which does "
        f"not divide {size}; the width is not a multiple of the head count"
    )
    if 0 in shape:
        zero = (
            f"[{shown}] has an axis of size 0: an integer division that rounded down to zero "
            "(query heads // key/value heads with more key/value heads than query heads, or "
            "a width // heads)"
        )
        return Reading(("gqa-heads", "head-split"), {"gqa-heads": zero, "head-split": zero}, zero)
    if -1 in shape or not held:
        return Reading(("head-split", "head-axis-order"), {"head-split": split}, split)
    square = _square_mask_reading(shape, size)
    if square is not None:
        return square
    ratio = size / held
    whole = ratio if ratio >= 1 else 1 / ratio
    heads_view = len(shape) == 4 or (  # (B, L, H, D), or (B·L, H, D) with a head size last
        len(shape) == 3 and _head_dim_like(shape[-1]) and 1 < shape[-2] <= _BATCH_LIKE
    )
    if heads_view and abs(whole - round(whole)) < 1e-9 and whole >= 2:
        heads = shape[-2]
        holds = heads * ratio
        view = "(B, L, H, D)" if len(shape) == 4 else "(B·L, H, D)"
        fewer = (
            f"[{shown}] {'needs' if ratio < 1 else 'holds'} {round(whole)} times "
            f"{'more' if ratio < 1 else 'fewer'} elements than the {size} there are: with a "
            f"{view} view, {heads} heads where the tensor holds {holds:g}: in a "
            "grouped-query model the key/value projection has num_key_value_heads and the "
            "query num_heads (or an axis of the view comes from another tensor)"
        )
        return Reading(
            ("gqa-heads", "layout-confusion", "head-split"),
            {"gqa-heads": fewer, "layout-confusion": fewer},
            fewer,
        )
    if 2 <= whole <= _BATCH_LIKE and abs(whole - round(whole)) < 1e-9:
        layout = (
            f"{size} elements against the {held} that [{shown}] holds, exactly {round(whole)} "
            f"times {'more' if ratio > 1 else 'fewer'}: an axis of the view (batch, length, "
            "heads) was taken from another tensor or another axis (batch-first read as "
            "sequence-first)"
        )
        return Reading(
            ("layout-confusion", "batch-mismatch", "head-split"),
            {"layout-confusion": layout, "batch-mismatch": layout.replace("an axis", "a size")},
            layout,
        )
    return Reading(("head-split", "head-axis-order"), {"head-split": split}, split)


def _signed(group: str) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"-?\d+", group))


def mha_mask_reading(text: str) -> Reading | None:
    """``The shape of the 2D attn_mask is torch.Size([a, a]), but should be (b, b)``.

    A square mask built for the sequence's own length ``a`` while the layer reads length
    ``b`` from the query's first axis: a batch-first input given to a sequence-first layer
    (``b`` is then the batch size), or a mask built for another length.
    """
    three = re.search(
        r"shape of the 3D attn_mask is torch\.Size\(\[(\d+), (\d+), (\d+)\]\), but should "
        r"be \((\d+), (\d+), (\d+)\)",
        text,
    )
    if three:
        got_n, got_l, got_s, want_n, want_l, want_s = (int(g) for g in three.groups())
        if (got_l, got_s) == (want_l, want_s) and got_n and want_n % got_n == 0:
            heads = want_n // got_n
            return Reading(
                ("mask-shape", "mask-broadcast-axis"),
                {
                    "mask-shape": f"a ({got_n}, {got_l}, {got_s}) mask where MultiheadAttention "
                    f"wants (N·num_heads, L, S) = ({want_n}, {got_l}, {got_s}): one mask per "
                    f"example must be repeated for each of the {heads} heads",
                    "mask-broadcast-axis": f"a per-example mask of {got_n} where the layer "
                    f"counts {want_n} = batch × heads: repeat_interleave it over the heads, "
                    "in batch-major order",
                },
                f"a ({got_n}, {got_l}, {got_s}) mask against ({want_n}, {want_l}, {want_s})",
            )
    found = re.search(
        r"shape of the 2D attn_mask is torch\.Size\(\[(\d+), (\d+)\]\), but should be "
        r"\((\d+), (\d+)\)",
        text,
    )
    if not found:
        return None
    got_l, got_s, want_l, want_s = (int(g) for g in found.groups())
    if got_l == got_s and want_l == want_s and got_l != want_l:
        order: tuple[str, ...] = ("layout-confusion", "causal-alignment", "mask-shape")
        if want_l > _BATCH_LIKE:
            order = ("causal-alignment", "mask-shape", "layout-confusion")
        return Reading(
            order,
            {
                "layout-confusion": f"a ({got_l}, {got_l}) mask where the layer reads length "
                f"{want_l} from the query's first axis: is {want_l} your batch size? then the "
                "input is batch-first for a sequence-first layer (batch_first)",
                "mask-shape": f"a ({got_l}, {got_l}) mask where the layer wants ({want_l}, "
                f"{want_l})",
                "causal-alignment": f"a causal mask built for {got_l} positions where the query "
                f"has {want_l}: built once for another length and not cut to this one",
            },
            f"a ({got_l}, {got_l}) mask against ({want_l}, {want_l})",
        )
    return None


def _flattened_heads_reading(big: int, small: int) -> Reading:
    """A first axis of ``big`` = ``small`` × k against ``small``: batch × heads flattened."""
    k = big // small
    return Reading(
        ("batch-mismatch", "mask-shape", "batched-matmul"),
        {
            "batch-mismatch": f"{big} against {small} on the first axis: {big} = {small} × {k}, "
            f"a batch repeated {k} times (beams, heads) on one side only",
            "mask-shape": f"{big} = {small} × {k} on the first axis: a (B·H, L, S) mask or "
            f"scores with batch × heads flattened, against a batch of {small}",
            "batched-matmul": f"{big} = {small} × {k} on the batch axis of a batched product: "
            f"one operand has its {k} heads folded into the batch, the other not",
        },
        f"{big} against {small} on the first axis ({big} = {small} × {k})",
    )


_MAX_HEADS = 256
"""More heads than any model has: a size above it on a "head" axis is a length."""


def _max_length_like(n: int) -> bool:
    """A size models take as their maximum length: 77 (CLIP), 512, 514 (RoBERTa), 1024, 2048..."""
    return n == 77 or (n >= 512 and any(m & (m - 1) == 0 for m in (n, n - 2)))


def _past_max_length(
    a: int, b: int, dim: int, rank: int, any_length: bool = False
) -> Reading | None:
    """A sequence longer than the model's maximum length, met on a length axis.

    One size is a maximum length (:func:`_max_length_like`), the other larger and not a
    multiple of 64 (widths are; a prompt plus generated tokens rarely is), on an axis that
    holds positions: the position table or the causal-mask buffer registered for the
    maximum length is shorter than the sequence. ``any_length``: the axis is known to hold
    positions, so a larger size that is a multiple of 64 counts too.
    """
    big, small = max(a, b), min(a, b)
    length_axis = (rank == 4 and dim >= 2) or (rank == 3 and dim == 1) or dim == rank - 1
    if not (length_axis and _max_length_like(small) and big > small and (big % 64 or any_length)):
        return None
    table = (
        f"{big} positions against {small}: {small} is the model's maximum length "
        f"(n_positions / max_position_embeddings), and the input, or the prompt plus the "
        "generated tokens, outgrew its position table: truncate to the maximum length or cap "
        "max_new_tokens"
    )
    buffer = (
        f"a causal-mask buffer registered for {small} positions cut to {big}: the mask "
        "(like the position table) was built once for the maximum length, and the sequence "
        "ran past it"
    )
    cache = (
        f"{big} keys against {small}: the key/value cache (or the generation loop) kept "
        f"growing past the {small} positions the model holds"
    )
    return Reading(
        ("position-out-of-range", "kv-cache", "causal-alignment", "mask-shape"),
        {"position-out-of-range": table, "causal-alignment": buffer, "kv-cache": cache},
        f"{a} against {b} on a length axis, {small} a maximum length",
    )


def _axis_reading(a: int, b: int, dim: int, rank: int, past_ok: bool = True) -> Reading:
    """Two sizes ``a`` and ``b`` meeting on axis ``dim`` of rank-``rank`` scores.

    ``past_ok``: whether ``b`` may be a table of the maximum length (False when ``b`` is
    known to be a mask longer than the scores: then the keys, not a table, are short).
    """
    big, small = max(a, b), min(a, b)
    past = _past_max_length(a, b, dim, rank) if past_ok else None
    if past is not None:
        return past
    if dim == 0 and small > 1 and big % small == 0:
        return _flattened_heads_reading(big, small)
    if rank != 4 or dim > 3:
        batch_axis = dim == 0 and rank >= 3
        where = f"axis {dim} of a rank-{rank} operation"
        default = f"{a} against {b} on {where}"
        if batch_axis:
            return Reading(
                ("batch-mismatch", "mask-shape", "kv-length-mismatch"),
                {
                    "batch-mismatch": f"{a} against {b} on the first axis of a rank-{rank} "
                    "operation: two batches (or batch × heads) of different sizes meet",
                    "mask-shape": f"a mask of {b} where the scores have {a} on the batch (or "
                    "batch × heads) axis",
                },
                default,
            )
        if rank == 3 and dim == 1:
            tags: tuple[str, ...] = ("kv-length-mismatch", "layout-confusion", "mask-shape")
        else:
            tags = ("mask-shape", "kv-length-mismatch", "projection-width")
        return Reading(
            tags,
            {
                "kv-length-mismatch": f"{a} against {b} on {where}: two sequences of "
                "different lengths meet (a layer that shortened the sequence, or keys and "
                "values of different lengths)",
                "layout-confusion": f"{a} against {b} on {where}: the axes are not in the "
                "order the operation expects (batch-first against sequence-first)",
                "mask-shape": f"a mask or bias with {b} where the scores have {a} on {where}",
                "projection-width": f"{a} against {b} features on {where}",
            },
            default,
        )
    more: dict[str, tuple[str, ...]] = {}
    letter, role = _SCORE_LETTERS[dim], _SCORE_AXES[dim]
    where = f"the {role} axis {letter} (dimension {dim} of scores (B, H, L, S))"
    default = f"{a} against {b} on {where}"
    say = {
        "mask-shape": f"a mask or bias with {b} where the scores have {a} on {where}",
        "mask-broadcast-axis": f"{a} against {b} on {where}: a mask whose axes are lined "
        "up with the wrong axes of the scores",
        "batch-mismatch": f"{a} against {b} on {where}: tensors or a mask from batches of "
        "different sizes",
    }
    if dim == 0:
        return Reading(("batch-mismatch", "mask-shape"), say, default)
    if dim == 1 and rank == 4 and small > _MAX_HEADS:
        # no model has that many heads: dimension 1 of (B, L, E) hidden states, a length
        past = _past_max_length(a, b, 1, 3, any_length=True) if past_ok else None
        return past or _axis_reading(a, b, 1, 3, past_ok=False)
    if dim == 1:
        tags = ("mask-shape", "mask-broadcast-axis", "batch-mismatch")
        if small > 1 and big % small == 0:
            tags = ("gqa-heads", "mask-shape", "mask-broadcast-axis", "batch-mismatch")
            say["gqa-heads"] = (
                f"{big} query heads against {small} key/value heads on {where}: each "
                f"key/value head must serve {big // small} query heads"
            )
            say["mask-broadcast-axis"] = (
                f"a mask with {small} on {where}, where the scores have {big} heads: a "
                f"per-example mask (batch {small}?) lined up with the heads"
            )
            group = big // small
            more["gqa-heads"] = (
                f"G = {big} / {small} = {group}: each of the {small} key/value heads must be "
                f"copied {group} times in place (kv0 ×{group}, then kv1 ×{group}, ...), so "
                f"query head h reads key/value head h // {group}",
                f"{big} query heads over {small} key/value heads: a grouping exists because "
                f"{small} divides {big}; a head count that does not divide has none",
            )
        elif small > 1:
            tags = ("kv-length-mismatch", "gqa-heads", "mask-shape", "batch-mismatch")
            say["kv-length-mismatch"] = (
                f"{a} against {b} on dimension 1: read as (B, L, E) hidden states, two "
                "sequence lengths meet (a layer that shortened or lengthened the sequence, "
                "then a residual add)"
            )
            say["gqa-heads"] = (
                f"{big} query heads against {small} key/value heads: {big} is not a multiple "
                f"of {small}, so no grouping can pair them"
            )
        return Reading(tags, say, default, more, firm=tags[0] == "gqa-heads")
    if dim == 2:
        say["causal-alignment"] = (
            f"a mask built for {b} query positions against {a} on {where}: a causal mask "
            "for the whole sequence while the query holds fewer (decoding) positions"
        )
        say["kv-cache"] = (
            f"{a} against {b} query positions: the mask kept the prompt's length while "
            "decoding with a cache feeds new tokens only"
        )
        say["mask-broadcast-axis"] = (
            f"{a} against {b} on {where}: a (B, S) padding mask that lands on the query axis"
        )
        say["rotary-embedding"] = (
            f"{a} against {b} on dimension 2, read as the positions of a query (B, H, L, D): a "
            "rotary cos/sin table cut for another number of positions than the query has"
        )
        return Reading(
            (
                "mask-shape",
                "rotary-embedding",
                "causal-alignment",
                "mask-broadcast-axis",
                "kv-cache",
            ),
            say,
            default,
        )
    say["kv-cache"] = (
        f"{big} against {small} keys on {where}: the key/value cache has grown past the "
        "mask (or the mask past the cache)"
    )
    say["kv-length-mismatch"] = (
        f"{a} against {b} on the last axis: keys and values (or a table and the keys) of "
        "different lengths"
    )
    say["causal-alignment"] = (
        f"a causal mask built for {small} positions against {big} keys on {where}"
    )
    say["rotary-embedding"] = (
        f"{a} against {b} on the last axis: a rotary cos/sin table sized for {big} features "
        f"applied to {small} (partial rotary dims)"
    )
    say["position-out-of-range"] = (
        f"{a} against {b} on the last axis: a position table or bias built for another length"
    )
    more["kv-cache"] = (
        f"{big} keys against {small}: during decoding the keys grow by one per step, and the "
        "mask (and the positions) must grow with them",
    )
    more["mask-shape"] = (
        f"{a} against {b} on the last axis of the scores: the mask's key axis must have "
        "exactly the keys' length (or 1)",
    )
    more["causal-alignment"] = (
        f"{big} keys against a causal mask of {small}: a mask built once for one length and "
        "not cut to (or rebuilt for) this one",
    )
    return Reading(
        ("mask-shape", "kv-cache", "rotary-embedding", "kv-length-mismatch", "causal-alignment"),
        say,
        default,
        more,
    )


def _position_table_reading(table: tuple[int, ...], states: tuple[int, ...]) -> Reading:
    """A 2-D ``(L, X)`` table against non-square ``(B, H, L, D)`` states.

    Its first axis matches the positions, so it is a per-position table (rotary cos/sin, a
    position embedding) whose feature width ``X`` is not the ``D`` it is applied to; square
    scores ``(B, H, L, L)`` would have read as a mask instead.
    """
    length, width = table
    d = states[3]
    rotary = (
        f"a ({length}, {width}) table against ({', '.join(map(str, states))}): {length} "
        f"positions match, but the table holds {width} features where {d} are rotated: a "
        "cos/sin table built for the full head size applied to the partial rotary dimensions "
        "(or the reverse)"
    )
    return Reading(
        ("rotary-embedding", "position-out-of-range", "mask-shape"),
        {"rotary-embedding": rotary},
        f"a ({length}, {width}) per-position table against ({', '.join(map(str, states))}): "
        f"{width} features against {d}",
    )


def _permuted_reading(first: tuple[int, ...], second: tuple[int, ...]) -> Reading:
    """Two shapes holding the same sizes in another order: a transpose missing or misplaced."""
    moved = [i for i in range(len(first)) if first[i] != second[i]]
    shown = " and ".join(f"({', '.join(map(str, s))})" for s in (first, second))
    say = (
        f"{shown} hold the same sizes in another order (axes {', '.join(map(str, moved))} "
        "swapped): a transpose missing or done on other axes, e.g. heads and positions "
        "left as (B, L, H, D) where (B, H, L, D) is expected"
    )
    return Reading(
        ("head-axis-order", "layout-confusion", "missing-transpose", "kernel-layout"),
        {"head-axis-order": say},
        say,
    )


def _per_example_mask_reading(mask: tuple[int, ...], scores: tuple[int, ...]) -> Reading:
    """A ``(B, L, S)`` mask against ``(B, H, L, S)`` scores.

    Aligned from the right, the mask's batch axis lands on the heads.
    """
    b, lq, lk = mask
    say = (
        f"a per-example ({b}, {lq}, {lk}) mask against scores ({', '.join(map(str, scores))}): "
        f"aligned from the right, its batch {b} meets the {scores[1]} heads; give it a head "
        "axis, mask[:, None]"
    )
    return Reading(
        ("mask-broadcast-axis", "mask-shape"),
        {"mask-broadcast-axis": say, "mask-shape": say.replace("per-example ", "")},
        say,
    )


def _padding_mask_reading(mask: tuple[int, ...], scores: tuple[int, ...]) -> Reading:
    shown = ", ".join(map(str, scores))
    return Reading(
        ("mask-shape", "mask-broadcast-axis"),
        {
            "mask-shape": f"a ({mask[0]}, {mask[1]}) padding mask meets ({shown}) scores: a "
            "(B, S) mask lines its batch axis up with the query axis of (B, H, L, S); it needs "
            "mask[:, None, None, :] (Keras: attention_mask (B, L, S))",
            "mask-broadcast-axis": f"({mask[0]}, {mask[1]}) against ({shown}): a padding mask "
            "broadcast along the wrong axes of the scores",
        },
        f"a ({mask[0]}, {mask[1]}) mask against ({shown}) scores",
        {
            "mask-shape": (
                f"a (B, S) = ({mask[0]}, {mask[1]}) mask needs the query and head axes: "
                f"({mask[0]}, 1, 1, {mask[1]}) broadcasts against ({shown})",
                f"({mask[0]}, {mask[1]}) meets the last two axes ({scores[-2]}, "
                f"{scores[-1]}) of the scores, so the batch lines up with the queries",
            ),
        },
    )


def _trailing_axis_reading(states: tuple[int, ...], mask: tuple[int, ...]) -> Reading:
    """A ``(B, L)`` mask against ``(B, L, D)`` states: it needs a last axis to broadcast."""
    shown = ", ".join("?" if n == 0 else str(n) for n in mask)
    full = ", ".join("?" if n == 0 else str(n) for n in states)
    said = (
        f"a ({shown}) mask against ({full}): it holds the first axes of the other, but "
        f"broadcasting aligns from the right, so its {mask[-1]} meets the {states[-1]} "
        "features; give the mask a last axis (mask[..., None], expand_dims(mask, -1))"
    )
    return Reading(
        ("mask-shape", "mask-broadcast-axis"),
        {
            "mask-shape": said,
            "mask-broadcast-axis": f"a padding mask ({shown}) lined up with the last axes of "
            f"({full}) instead of its first ones",
        },
        said,
    )


def _broadcast_pair(text: str) -> tuple[tuple[int, ...], tuple[int, ...]] | None:
    """The two shapes a broadcasting error quotes, bigger rank first."""
    if not re.search(
        r"broadcast|Incompatible shapes|must match|doesn't match|incompatible shapes|"
        r"are (?:not compatible|incompatible)",
        text,
        re.IGNORECASE | re.DOTALL,
    ):
        return None
    found = [s for s in shapes(text) if len(s) >= 2]
    if len(found) < 2:
        return None
    first, second = found[0], found[1]
    if len(second) > len(first):
        first, second = second, first
    return first, second


def _product(shape: tuple[int, ...]) -> int:
    total = 1
    for n in shape:
        total *= n
    return total


def _mask_signature(
    scores: tuple[int, ...], mask: tuple[int, ...], core: tuple[int, ...]
) -> Reading | None:
    """Shapes that say which mask went wrong: square, decode step, heads folded in."""
    shown = ", ".join(map(str, scores))
    if len(core) == 2 and core[0] == core[1] and len(scores) >= 2:
        n, (lq, lk) = core[0], scores[-2:]
        if lq == lk and n != lq:
            causal = (
                f"a ({n}, {n}) square mask against ({shown}): a causal mask built for {n} "
                f"positions used on a sequence of {lq}, built once for one length and not cut "
                "to this one"
            )
            return Reading(
                ("causal-alignment", "mask-shape", "kv-cache"),
                {"causal-alignment": causal, "mask-shape": causal.replace("causal ", "")},
                causal,
            )
        if lq != lk and n in (lq, lk):
            cached = (
                f"a ({n}, {n}) square mask against {lq} queries and {lk} keys: a mask for "
                "the prompt alone used after the key/value cache grew"
            )
            return Reading(
                ("kv-cache", "causal-alignment", "mask-shape"), {"kv-cache": cached}, cached
            )
    decoding = len(scores) == len(mask) == 4 and scores[2] == 1 and mask[3] not in (1, scores[3])
    if decoding:
        decode = (
            f"one query position against {scores[3]} keys, and a mask over {mask[3]}: "
            "while decoding, the mask must cover the whole key/value cache, not only the "
            "new tokens"
        )
        return Reading(
            ("kv-cache", "mask-shape", "causal-alignment"),
            {"kv-cache": decode, "mask-shape": decode},
            decode,
        )
    if len(scores) == len(mask) >= 3 and scores[-2:] == mask[-2:] and mask[0] != scores[0]:
        folded = mask[0] > scores[0] and len(scores) == 4 and mask[0] == scores[0] * scores[1]
        per_example = len(scores) == 3 and 1 < mask[0] < scores[0] and scores[0] % mask[0] == 0
        if folded or per_example:
            big, small = max(mask[0], scores[0]), min(mask[0], scores[0])
            heads = big // small
            heads_say = (
                f"{small} against {big} = {small} × {heads} on the first axis: a mask with one "
                f"entry per example where the layer counts (batch × heads) = {big}; repeat it "
                f"for each of the {heads} heads (repeat_interleave, batch-major)"
            )
            return Reading(
                ("mask-shape", "mask-broadcast-axis", "batch-mismatch"),
                {"mask-shape": heads_say},
                heads_say,
            )
    return None


def shape_reading(text: str) -> Reading | None:
    """What the sizes that disagree in ``text`` mean, read as attention's axes.

    PyTorch's ``size of tensor a (X) must match ... at non-singleton dimension d`` is read on
    the scores ``(B, H, L, S)``; any broadcast error quoting two shapes (NumPy, JAX,
    TensorFlow, Keras) is aligned from the right, and a ``(B, S)`` mask against
    ``(B, H, L, S)`` scores (also as Keras's ``[1, 1, B, S]``) is named as such.
    """
    quoted = re.search(
        r"Target sizes: \[([\d, ]+)\]\.\s+Tensor sizes: \[([\d, ]+)\]|"
        r"should be of (?:size|shape) \(([\d, ]+)\),? but is (?:torch\.Size\(\[|[(\[])?([\d, ]+)",
        text,
    )
    if quoted:  # both shapes quoted in full: read them as a pair
        groups = [g for g in quoted.groups() if g is not None]
        return _pair_reading(_ints(groups[0]), _ints(groups[1]), text)
    torch_sizes = re.search(
        r"size of tensor a \((\d+)\) must match the size of tensor b \((\d+)\)"
        r"(?: at non-singleton dimension (\d+))?",
        text,
    ) or re.search(
        r"expanded size of the tensor \((\d+)\) must match the existing size \((\d+)\) at "
        r"non-singleton dimension (\d+)",
        text,
    )
    if torch_sizes:
        a, b = int(torch_sizes.group(1)), int(torch_sizes.group(2))
        if torch_sizes.group(3) is None:
            return _axis_reading(a, b, 1, 4) if max(a, b) % max(min(a, b), 1) == 0 else None
        dim = int(torch_sizes.group(3))
        rank = max((len(s) for s in shapes(text) if len(s) >= 3), default=4)
        return _axis_reading(a, b, dim, rank if dim < rank else 4)
    condition = re.search(r"condition \[([\d,]*)\], then \[([\d,]*)\]", text)
    pair: tuple[tuple[int, ...], tuple[int, ...]] | None
    remapped = _remapped(text)
    if len(remapped) >= 2 and len(remapped[0]) == len(remapped[1]):
        first, second = remapped[0], remapped[1]
        bad = [i for i in range(len(first)) if 1 not in (first[i], second[i])]
        bad = [i for i in bad if first[i] != second[i]]
        if len(bad) == 1 and bad[0] == 0:
            return _axis_reading(first[0], second[0], 0, 3)
        if len(bad) == 1 and bad[0] == 1 and len(first) >= 4:
            a, b = first[1], second[1]  # (B, H, L, D) operands: axis 1 holds the heads
            if max(a, b) <= _MAX_HEADS and max(a, b) % min(a, b) == 0:
                return _axis_reading(a, b, 1, 4)
        if len(bad) == 1:
            return Reading(
                ("position-out-of-range", "kv-length-mismatch", "batch-mismatch"),
                {
                    "position-out-of-range": f"{first[bad[0]]} against {second[bad[0]]} on "
                    "one einsum label: a position table or relative bias built for another "
                    "length",
                },
                f"{first[bad[0]]} against {second[bad[0]]} on one einsum label",
            )
    if condition:
        cond, then = (tuple(int(n) for n in group.split(",") if n) for group in condition.groups())
        pair = (then, cond) if len(then) >= len(cond) else (cond, then)
    else:
        pair = _broadcast_pair(text)
    if pair is None:
        return None
    return _pair_reading(*pair, text)


def _pair_reading(first: tuple[int, ...], second: tuple[int, ...], text: str) -> Reading | None:
    """Two shapes that failed to broadcast, the scores' and (usually) a mask's."""
    if len(second) > len(first):
        first, second = second, first
    if len(first) == len(second) and _product(second) > _product(first):
        first, second = second, first  # the scores first, the mask (fewer elements) second
    rank = len(first)
    core = second
    while len(core) > 2 and core[0] == 1:
        core = core[1:]
    signature = _mask_signature(first, second, core)
    if signature is not None:
        return signature
    table = rank == 4 and len(second) == 2 and 1 < second[0] == first[2] != first[3]
    if table and second[1] != first[3] and second[1] % 2 == 0:
        # (L, X) against (B, H, L, D), X even like a cos/sin table's: a per-position table
        return _position_table_reading(second, first)
    per_example = len(second) == 3 and second[0] == first[0] != first[1]
    if rank == 4 and per_example and second[1:] == first[2:]:
        return _per_example_mask_reading(second, first)  # its batch meets the heads
    if first != second and sorted(first) == sorted(second) and len(set(first)) > 1:
        return _permuted_reading(first, second)
    if len(second) == rank - 1 and rank >= 3 and second[-1] != first[-1]:
        prefix = all(x == y or 0 in (x, y) for x, y in zip(second, first[:-1], strict=False))
        if prefix:  # (B, L) against (B, L, D): aligned from the right, L meets D
            return _trailing_axis_reading(first, second)
    if rank == 4 and len(core) == 2 and core[0] == first[0] and core != first[2:]:
        return _padding_mask_reading(core, first)
    padded = (1,) * (rank - len(second)) + second
    in_place = re.search(r"doesn't match the broadcast shape", text)  # out= cannot grow
    bad = [
        i
        for i in range(rank)
        if first[i] != padded[i] and (in_place or 1 not in (first[i], padded[i]))
    ]
    merge = re.search(
        r"\bShapes [(\[][^)\]]*[)\]] and [(\[][^)\]]*[)\]] are (?:not compatible|incompatible)",
        text,
    )
    if len(bad) == 1 and merge and bad[0] == rank - 1 and len(first) == len(second):
        a, b = first[-1], padded[-1]  # no broadcasting: a tensor against the state it must fit
        return Reading(
            ("projection-width", "batch-mismatch", "kv-length-mismatch", "mask-shape"),
            {
                "projection-width": f"{a} against {b} on the last (feature) axis of tensors "
                "that must have one shape: a width that another size was added to (an "
                "attention or context size) or a projection of another width",
            },
            f"{a} against {b} on the last axis of tensors that must have one shape",
        )
    if len(bad) == 1:
        a, b = first[bad[0]], padded[bad[0]]
        return _axis_reading(a, b, bad[0], rank, past_ok=rank < 3 or b < a)
    if len(bad) > 1:
        shown = " and ".join(f"({', '.join(map(str, s))})" for s in (first, second))
        return Reading(
            ("mask-shape", "layout-confusion", "mask-broadcast-axis"),
            {
                "layout-confusion": f"{shown} disagree on {len(bad)} axes: the axes are "
                "in another order than the operation expects",
            },
            f"{shown} disagree on {len(bad)} axes: a mask or bias built for other sizes",
        )
    return None


def checkpoint_reading(text: str) -> Reading | None:
    """A checkpoint parameter of another shape than the model's, read by its name.

    ``size mismatch for NAME: copying a param with shape A from checkpoint, the shape in
    current model is B``: a key/value projection off by a whole factor is a grouped-query
    checkpoint in a config without ``num_key_value_heads`` (or the reverse).
    """
    found = re.search(
        r"size mismatch for ([\w.]+): copying a param with shape torch\.Size\(\[([\d, ]+)\]\) "
        r"from checkpoint, the shape in current model is torch\.Size\(\[([\d, ]+)\]\)",
        text,
    )
    setting = re.search(
        r"Trying to set a tensor of shape torch\.Size\(\[([\d, ]+)\]\) in \"?(\w+)\"? "
        r"\(which has shape torch\.Size\(\[([\d, ]+)\]\)\)",
        text,
    )
    if setting:  # loading weights into a model built with another config
        return _loaded_weight_reading(_ints(setting.group(1)), _ints(setting.group(3)))
    if not found:
        return None
    name = found.group(1).lower()
    saved = tuple(int(n) for n in re.findall(r"\d+", found.group(2)))
    built = tuple(int(n) for n in re.findall(r"\d+", found.group(3)))
    if (
        re.search(r"k_proj|v_proj|\bkey\b|\bvalue\b|\bwk\b|\bwv\b|kv", name)
        and saved[0] != built[0]
    ):
        small, big = sorted((saved[0], built[0]))
        if small and big % small == 0:
            gqa = (
                f"{name} holds {saved[0]} outputs in the checkpoint and {built[0]} in the model: "
                f"key/value heads {big // small} times fewer than the query heads, a "
                "grouped-query checkpoint loaded into a config without num_key_value_heads "
                "(or the reverse)"
            )
            return Reading(("gqa-heads", "projection-width"), {"gqa-heads": gqa}, gqa)
    if re.search(r"position|rotary|wpe|pos_emb", name):
        positions = (
            f"{name}: {saved[0]} positions in the checkpoint, {built[0]} in the model: the "
            "position table was built for another maximum length"
        )
        return Reading(("position-out-of-range", "positions"), {}, positions)
    width = f"{name}: {saved} in the checkpoint against {built} in the model"
    return Reading(("projection-width", "head-split"), {}, width)


def _loaded_weight_reading(saved: tuple[int, ...], built: tuple[int, ...]) -> Reading | None:
    """A weight of ``saved`` shape loaded where the model has ``built``, its name unknown.

    Outputs fewer by a whole factor, inputs equal, beside a square (hidden × hidden)
    projection: a key/value projection of a grouped-query checkpoint, ``num_key_value_heads``
    times narrower than the query's, in a layer built without it (or the reverse).
    """
    if len(saved) != 2 or len(built) != 2 or saved[1] != built[1] or saved[0] == built[0]:
        return None
    small, big = sorted((saved[0], built[0]))
    if not small or big % small or big != saved[1]:
        return Reading(
            ("projection-width", "head-split"),
            {},
            f"a ({saved[0]}, {saved[1]}) weight where the model has ({built[0]}, {built[1]})",
        )
    group = big // small
    gqa = (
        f"a ({saved[0]}, {saved[1]}) weight where the model has ({built[0]}, {built[1]}): "
        f"{group} times fewer outputs than a square {big} × {big} projection, the key/value "
        f"projection of a grouped-query model (num_key_value_heads = heads / {group}) "
        "loaded into a layer built with as many key/value heads as query heads (or the reverse)"
    )
    return Reading(("gqa-heads", "projection-width"), {"gqa-heads": gqa}, gqa, firm=True)


def transpose_rank_reading(text: str) -> Reading | None:
    """TensorFlow's ``Dimension must be R but is P for ... Transpose``: rank against permutation.

    A tensor of rank ``R`` given a permutation of ``P`` axes: an axis missing or one too
    many, and when the tensor's shape meets one size twice (``[?, 8, ?, 8, ?]`` for a
    4-axis transpose), a batched product that made an axis of its own (``batch_dot`` or
    ``tensordot`` pairing the heads of a 4-D pair instead of batching over them).
    """
    found = re.search(r"Dimension must be (\d+) but is (\d+) for .{0,200}?Transpose", text, re.S)
    if not found and re.search(r"transpose|permut", text, re.IGNORECASE):
        found = re.search(r"Dimension must be (\d+) but is (\d+)", text)  # the op named apart
    if not found:
        return None
    rank, perm = int(found.group(1)), int(found.group(2))
    if rank > perm:
        extra = (
            f"a permutation of {perm} axes for a tensor of {rank}: the product before it "
            f"(batch_dot, tensordot, matmul over {perm}-D operands) returned {rank} axes, "
            "pairing axes it should have treated as batch axes"
        )
        quoted = re.search(r"input shapes: \[([\d?,]+)\]", text[found.start() :])
        sizes = quoted.group(1).split(",") if quoted else []
        if not sizes:  # a shape of that rank quoted elsewhere: (None, 20, 30, 20, 30)
            ranked = [shape for shape in shapes(text) if len(shape) == rank]
            sizes = [str(n) for n in ranked[0]] if ranked else []
        known = [n for n in sizes if n not in ("?", "1")]
        paired = len(sizes) == rank and len(known) > len(set(known))  # [?, 8, ?, 8, ?]
        tags: tuple[str, ...] = ("axis-out-of-range", "batched-matmul", "head-split")
        if paired:  # a size met twice: an outer product over an axis meant as a batch axis
            tags = ("batched-matmul", "axis-out-of-range", "head-split")
        return Reading(tags, {"batched-matmul": extra}, extra)
    fewer = (
        f"a permutation of {perm} axes for a tensor of {rank}: a batch or head axis is "
        "missing before the transpose (the heads not split off, or a batch dropped)"
    )
    tags = ("axis-out-of-range", "head-split", "batched-matmul")
    return Reading(tags, {"axis-out-of-range": fewer}, fewer)


_NAMED_ROLES = (
    (
        "query length",
        r"l_?q|q_?len\w*|seq_?len_?q|seqlen_?q|query_?len\w*|tgt_?len|num_queries|"
        r"query[ _]length",
    ),
    (
        "key length",
        r"l_?kv?|kv_?len\w*|k_?len\w*|seq_?len_?kv?|seqlen_?kv?|src_?len|key_?len\w*|"
        r"num_keys|kv[ _]length|key[ _]length",
    ),
    ("query heads", r"num_heads|n_heads?|nheads?|num_attention_heads|num_q_heads|n_q_heads"),
    ("key/value heads", r"num_key_value_heads|num_kv_heads|n_kv_heads?|kv_heads|nheads_kv"),
)
"""Names reports give sizes by (``lq = 16``, ``num_kv_heads: 8``), per attention role."""


def named_sizes(text: str) -> dict[str, set[int]]:
    """The sizes a report names, by role: ``{"query length": {16}, "key length": {17}}``."""
    found: dict[str, set[int]] = {}
    for role, names in _NAMED_ROLES:
        for match in re.finditer(rf"\b(?:{names})\b`?\s*[=:]\s*`?(\d+)\b", text, re.IGNORECASE):
            found.setdefault(role, set()).add(int(match.group(1)))
    return found


def _disagreeing_pair(text: str) -> tuple[int, int] | None:
    """The two sizes a message says disagree.

    PyTorch's tensor a and b, or two shapes that differ on one axis (aligned from the right).
    """
    torch_sizes = re.search(
        r"size of tensor a \((\d+)\) must match the size of tensor b \((\d+)\)", text
    )
    if torch_sizes:
        return int(torch_sizes.group(1)), int(torch_sizes.group(2))
    pair = _broadcast_pair(text)
    if pair is None:
        return None
    first, second = pair
    padded = (1,) * (len(first) - len(second)) + second
    bad = [i for i in range(len(first)) if first[i] != padded[i] and 1 not in (first[i], padded[i])]
    return (first[bad[0]], padded[bad[0]]) if len(bad) == 1 else None


def named_reading(text: str) -> Reading | None:
    """Two sizes that disagree, read by the names the report itself gives them.

    ``lq = 16; lkv = 17`` beside ``(5, 3, 17, 19), (5, 3, 16, 19)``: the query length meets
    the key length, whatever axis the shapes put them on.
    """
    named = named_sizes(text)
    if len(named) < 2:
        return None
    pair = _disagreeing_pair(text)
    if pair is None:
        return None
    a, b = pair
    roles = {role for role, sizes in named.items() if a in sizes or b in sizes}
    both = [r for r in roles if {a, b} & named[r]]
    if {"query length", "key length"} <= set(both) and a != b:
        lq, lk = min(named["query length"]), min(named["key length"])
        say = (
            f"{a} against {b}: the query length ({lq}) meets the key length ({lk}) where the "
            "code (or a kernel's backward) assumes they are equal: keys and values longer than "
            "the queries (a cache, cross-attention) need the shapes of the keys"
        )
        return Reading(
            ("kv-length-mismatch", "causal-alignment", "kv-cache", "backend-constraint"),
            {"kv-length-mismatch": say},
            say,
            firm=True,
        )
    if {"query heads", "key/value heads"} <= set(both) and a != b:
        big, small = max(a, b), min(a, b)
        say = (
            f"{big} query heads against {small} key/value heads, as the report names them: "
            "grouped-query attention needs the key/value heads repeated (or enable_gqa=True)"
        )
        return Reading(("gqa-heads", "head-split"), {"gqa-heads": say}, say, firm=True)
    return None


_JAX_AXES = ("the batch axis B", "the length axis T/S", "the head axis N", "the head size H")


def jax_shape_reading(text: str) -> Reading | None:
    """``jax.nn.dot_product_attention``'s shape check, read on its ``(B, T, N, H)`` layout.

    ``query shape should be [2, -1, -1, 8]: but got (2, 5, 8, 16)``: ``-1`` is any size; the
    first axis that differs names the family: the batch, the keys' and values' length, the
    heads, or the head size. A rank-3 input comes with a leading 1 added (``(1, 2, 5, 128)``):
    a last axis a whole multiple of the head size is then heads left merged into the
    features.
    """
    found = re.search(
        r"\b(query|key|value) shape should be \[([-\d, ]+)\]: but got \(([\d, ]+)\)", text
    )
    if not found:
        return None
    name = found.group(1)
    wanted = tuple(int(n) for n in found.group(2).split(","))
    got = _ints(found.group(3))
    if len(wanted) != len(got):
        return None
    bad = [i for i in range(len(got)) if wanted[i] != -1 and wanted[i] != got[i]]
    if not bad:
        return None
    promoted = 0 in bad and got[0] == 1  # a rank-3 (B, T, N·H) input, given a leading 1
    if promoted and bad[-1] == 3 and got[3] > wanted[3] and got[3] % wanted[3] == 0:
        heads = got[3] // wanted[3]
        say = (
            f"the {name} has {got[3]} = {heads} × {wanted[3]} features on its last axis: its "
            f"heads were not split out (B, T, N·H) where (B, T, N, H) is expected"
        )
        return Reading(("layout-confusion", "kernel-layout", "head-split"), {}, say)
    axis = bad[0]
    where = _JAX_AXES[axis] if len(got) == 4 else f"axis {axis}"
    say = f"the {name} has {got[axis]} where {wanted[axis]} is expected, on {where}"
    tags = {
        0: ("batch-mismatch", "layout-confusion"),
        1: ("kv-length-mismatch", "layout-confusion"),
        2: ("gqa-heads", "layout-confusion"),
        3: ("qk-dim-mismatch", "projection-width"),
    }.get(axis, ("layout-confusion",))
    return Reading(tags, {}, say, firm=axis in (0, 2))
