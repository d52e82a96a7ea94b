"""Which failure family a report's own words point to, learned from labelled public reports.

:mod:`.diagnose`'s rules read framework wordings and the sizes a message quotes. Reports
also name their problem in their own terms (``self.pe[:, :x.size(1)]``, "gibberish after
the cache", "converted from gguf"), and rules written while looking at some reports mostly
fit those reports. This model learns the words instead: one logistic regression per
taxonomy tag over a text's words and pairs of adjacent words (numbers folded to ``0``,
identifiers also split at underscores), each text's features scaled to unit length,
L2-regularised, fitted by plain gradient descent from zero (so fitting twice gives the
same weights).

It is trained on the tuning set ``tests/data/diagnose_messages.json`` only, never on the
held-out set. Its settings (:data:`L2`, :data:`STEPS`, :data:`MIN_REPORTS`) and the way
diagnose uses it were chosen on one held-out round with a model trained on the rounds
before it, then measured once on the next round (see the Diagnose page).
``python -m catalogue.diagnose --write-tag-model`` refits it and rewrites :data:`MODEL`: weights
rounded to two decimals, those under :data:`KEEP` in size dropped (the vocabulary is kept
whole, since every known word counts in a text's length). Fitting uses NumPy; answering
(:meth:`TagModel.probabilities`) is plain Python, so ``refattn diagnose`` never imports
NumPy.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .taxonomy import TAGS

if TYPE_CHECKING:
    import numpy as np

MODEL = Path(__file__).parent / "tag_model.json"
TRAINING = Path(__file__).parent.parent / "tests" / "data" / "diagnose_messages.json"

L2 = 0.01
"""The L2 penalty: each step's gradient adds ``L2 * w / n`` for ``n`` training reports."""
STEPS = 1000
"""Gradient-descent steps, each of size :data:`STEP`."""
STEP = 2.5
MIN_REPORTS = 2
"""A word (or pair) is a feature when at least this many training reports contain it."""
KEEP = 0.1
"""Stored weights smaller than this in size are dropped."""

_WORD = re.compile(r"[a-z_][a-z0-9_]*")


def features(text: str) -> set[str]:
    """The words and adjacent word pairs of ``text``: lower case, digits folded to ``0``.

    >>> sorted(features("x + self.pe[:, :x.size(1)]"))
    ['pe', 'pe x', 'self', 'self pe', 'size', 'x', 'x self', 'x size']
    """
    found = _WORD.findall(re.sub(r"\d+", "0", text.lower()))
    words: list[str] = []
    for word in found:
        words.append(word)
        if "_" in word:
            words.extend(part for part in word.split("_") if len(part) > 1)
    return set(words) | {f"{a} {b}" for a, b in itertools.pairwise(words)}


@dataclass(frozen=True)
class TagModel:
    """Per-tag logistic regressions over :func:`features`.

    Attributes:
        tags: the taxonomy tags the model scores, in a fixed order.
        bias: ``(T,)`` one intercept per tag.
        vocabulary: every feature the model knows (each counts in a text's length).
        weights: feature -> ``{tag index: weight}``, only weights of size >= :data:`KEEP`.
        trained_on: sha1 of the training file.
        reports: how many reports it was trained on.
    """

    tags: tuple[str, ...]
    bias: tuple[float, ...]
    vocabulary: frozenset[str]
    weights: dict[str, dict[int, float]]
    trained_on: str
    reports: int

    def probabilities(self, text: str) -> dict[str, float]:
        """``{tag: probability}`` that a report worded like ``text`` has that tag."""
        known = features(text) & self.vocabulary
        logits = list(self.bias)
        if known:
            scale = 1.0 / math.sqrt(len(known))
            for feature in known:
                for index, weight in self.weights.get(feature, {}).items():
                    logits[index] += weight * scale
        return {tag: 1.0 / (1.0 + math.exp(-z)) for tag, z in zip(self.tags, logits, strict=True)}


def _matrix(texts: Sequence[str], index: dict[str, int]) -> np.ndarray:
    """``(N, V)`` binary features of ``texts``, each row scaled to unit length."""
    import numpy as np

    x = np.zeros((len(texts), len(index)))
    for row, text in enumerate(texts):
        for feature in features(text):
            column = index.get(feature)
            if column is not None:
                x[row, column] = 1.0
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms == 0.0, 1.0, norms)


def fit(reports: Sequence[Mapping[str, Any]], trained_on: str = "") -> TagModel:
    """Fit the model on ``reports`` (each with ``message`` and ``tags``)."""
    import numpy as np

    texts = [str(r["message"]) for r in reports]
    seen = Counter(f for text in texts for f in features(text))
    vocabulary = sorted(f for f, count in seen.items() if count >= MIN_REPORTS)
    index = {f: i for i, f in enumerate(vocabulary)}
    tags = tuple(sorted({str(t) for r in reports for t in r["tags"]} & set(TAGS)))
    x = _matrix(texts, index)
    y = np.array([[t in r["tags"] for t in tags] for r in reports], dtype=np.float64)
    n = len(texts)
    w = np.zeros((x.shape[1], len(tags)))
    b = np.zeros(len(tags))
    for _ in range(STEPS):
        residual = 1.0 / (1.0 + np.exp(-(x @ w + b))) - y
        w -= STEP * (x.T @ residual / n + L2 * w / n)
        b -= STEP * residual.mean(axis=0)
    kept: dict[str, dict[int, float]] = {}
    for feature, row in zip(vocabulary, np.round(w, 2), strict=True):
        big = {int(i): float(row[i]) for i in np.flatnonzero(np.abs(row) >= KEEP)}
        if big:
            kept[feature] = big
    return TagModel(
        tags=tags,
        bias=tuple(float(v) for v in np.round(b, 4)),
        vocabulary=frozenset(vocabulary),
        weights=kept,
        trained_on=trained_on,
        reports=n,
    )


def training_sha1(path: Path = TRAINING) -> str:
    """sha1 of the training file's bytes."""
    return hashlib.sha1(path.read_bytes()).hexdigest()


def write(path: Path = MODEL) -> Path:
    """Fit on :data:`TRAINING` and store the model at ``path``."""
    model = fit(json.loads(TRAINING.read_text()), trained_on=training_sha1())
    data = {
        "trained_on": model.trained_on,
        "reports": model.reports,
        "tags": list(model.tags),
        "bias": list(model.bias),
        "vocabulary": sorted(model.vocabulary - set(model.weights)),
        "weights": {
            f: {str(i): v for i, v in sorted(ws.items())} for f, ws in sorted(model.weights.items())
        },
    }
    path.write_text(json.dumps(data, separators=(",", ":"), ensure_ascii=False) + "\n")
    return path


@cache
def load(path: Path = MODEL) -> TagModel:
    """The stored model (read once)."""
    data = json.loads(path.read_text())
    weights = {f: {int(i): v for i, v in ws.items()} for f, ws in data["weights"].items()}
    return TagModel(
        tags=tuple(data["tags"]),
        bias=tuple(data["bias"]),
        vocabulary=frozenset(data["vocabulary"]) | frozenset(weights),
        weights=weights,
        trained_on=data["trained_on"],
        reports=data["reports"],
    )
