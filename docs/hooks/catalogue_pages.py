"""MkDocs hook: one generated page per catalogue case, and the catalogue's index.

Every case is run while the site builds: the page shows, in one content tab per framework
(NumPy | PyTorch | JAX | TensorFlow), each variant's code (cut from the case module: the
NumPy snippet markers, the other frameworks' function source) and what running it showed.
Variants of installed frameworks run live, and the build fails if one is not as its case
claims or differs from ``catalogue/outcomes.json``; the others show the recorded outcome.
Mask and numerics cases whose functions return attention weights get heatmaps of those
weights, broken against fixed. The index carries a coverage table (cases × frameworks ×
kind), also written as ``catalogue/coverage.json``.
"""

from __future__ import annotations

import html
import inspect
import json
import re
import textwrap
from typing import Any

import numpy as np
from mkdocs.config.defaults import MkDocsConfig
from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File, Files

from catalogue import FRAMEWORK_LABELS, FRAMEWORKS, Case, all_cases
from catalogue.diagnose import diagnose
from catalogue.record import load
from catalogue.runner import run
from catalogue.taxonomy import TAGS

_HEATMAP_FAMILIES = {"mask", "numerics"}
_RECORDED = load()


def _snippet(case: Case, part: str) -> str:
    source = inspect.getsource(case.module)
    match = re.search(rf"# --8<-- \[start:{part}\]\n(.*?)# --8<-- \[end:{part}\]", source, re.S)
    return match.group(1).strip() if match else ""


def _sections(case: Case) -> str:
    doc = inspect.getdoc(case.module) or ""
    body = doc.split("\n", 1)[1] if "\n" in doc else ""
    out = []
    for block in re.split(r"\n(?=[A-Z][a-z ]+:\n)", body.strip()):
        head, _, text = block.partition(":\n")
        text = textwrap.dedent(text).strip()
        if head.strip() == "Sources":
            text = _source_list(text)
        out.append(f"## {head.strip()}\n\n{text}\n")
    return "\n".join(out)


def _source_list(text: str) -> str:
    """A ``Sources:`` section as a Markdown list, each URL a link."""
    items: list[str] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        if re.search(r"https?://", line) or not items:
            items.append(line.strip())
        else:
            items[-1] += " " + line.strip()
    return "\n".join(f"- {_linked(item)}" for item in items)


def _linked(text: str) -> str:
    """``text`` with its URLs as links and Markdown's link brackets elsewhere escaped."""
    parts = re.split(r"(https?://\S+[^\s.,;)])", text)
    return "".join(
        f"<{part}>" if i % 2 else re.sub(r"([\[\]])", r"\\\1", part).replace("<", "&lt;")
        for i, part in enumerate(parts)
    )


def _weight_grids(broken: object, fixed: object) -> tuple[np.ndarray, np.ndarray] | None:
    """One ``(L, S)`` slice of each, if both look like attention weights of one shape.

    The slice is the one where broken and fixed differ most (NaN counts as different), so
    the pictures show the bug rather than a batch element it happens to spare.
    """
    arrays = [np.asarray(v) for v in (broken, fixed) if isinstance(v, np.ndarray)]
    if len(arrays) != 2 or arrays[0].shape != arrays[1].shape or arrays[0].ndim < 2:
        return None
    if any(a.dtype.kind != "f" for a in arrays):
        return None
    b, f = (a.reshape(-1, *a.shape[-2:]).astype(np.float64) for a in arrays)
    finite = np.concatenate([b[np.isfinite(b)], f[np.isfinite(f)]])
    if b[0].size > 4096 or (finite.size and (finite.min() < -1e-9 or finite.max() > 1 + 1e-9)):
        return None
    diff = np.where(np.isfinite(b) & np.isfinite(f), np.abs(b - f), np.inf)
    worst = int(np.argmax(diff.reshape(len(diff), -1).max(axis=1)))
    return b[worst], f[worst]


def heatmap(grid: np.ndarray, title: str) -> str:
    """An SVG heatmap of weights ``(L, S)``: darker is more weight, red is NaN or inf."""
    rows, cols = grid.shape
    cell = max(6, min(28, 360 // max(rows, cols)))
    top, left = 34, 34
    width, height = left + cols * cell + 10, top + rows * cell + 10
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'font-family="sans-serif" font-size="11">',
        f'<text x="{left}" y="14">{html.escape(title)}</text>',
        f'<text x="{left}" y="28" fill="#666">keys →</text>',
        f'<text x="4" y="{top + 10}" fill="#666">q↓</text>',
    ]
    for i in range(rows):
        for j in range(cols):
            w = grid[i, j]
            if not np.isfinite(w):
                fill = "#d32f2f"
            else:
                shade = int(255 - 200 * float(np.clip(w, 0, 1)))
                fill = f"rgb({shade},{shade},255)"
            parts.append(
                f'<rect x="{left + j * cell}" y="{top + i * cell}" width="{cell - 1}" '
                f'height="{cell - 1}" fill="{fill}"><title>q{i} k{j}: {w:.3g}</title></rect>'
            )
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def _outcomes(case: Case) -> dict[str, tuple[dict[str, Any], bool]]:
    """Each variant's outcome record and whether it is live, failing the build on a change.

    Live for frameworks installed at build (the build fails when a variant is not as its
    case claims, or differs from ``catalogue/outcomes.json``), recorded otherwise.
    """
    outcome = run(case)
    recorded = _RECORDED.get(case.id, {})
    found: dict[str, tuple[dict[str, Any], bool]] = {}
    for fw, variant in case.variants.items():
        live = outcome.variants.get(fw)
        if live is None:
            if fw not in recorded:
                raise PluginError(
                    f"catalogue case {case.id}: {fw} is not installed and its outcome is not "
                    "recorded; run python -m catalogue.record where it is installed"
                )
            found[fw] = (recorded[fw], False)
            continue
        if not live.broken_ok:
            raise PluginError(
                f"catalogue case {case.id} [{fw}]: claims {variant.expected_name} "
                f"/{variant.match}/ but {live.broken}"
            )
        if live.fixed_ok is False:
            raise PluginError(f"catalogue case {case.id} [{fw}]: fixed failed: {live.fixed}")
        if recorded.get(fw) != live.record():
            raise PluginError(
                f"catalogue case {case.id} [{fw}]: outcome differs from catalogue/outcomes.json "
                f"(live: {live.record()}, recorded: {recorded.get(fw)}); if meant, run "
                f"python -m catalogue.record {case.id}"
            )
        found[fw] = (live.record(), True)
    return found


def _text_block(text: str) -> list[str]:
    wrapped = [
        textwrap.fill(line, 88, break_on_hyphens=False) if line.strip() else ""
        for line in text.splitlines()
    ]
    return ["```text", *wrapped, "```"]


def _tab(case: Case, fw: str, record: dict[str, Any], live: bool) -> list[str]:
    """The content of one framework's tab (not yet indented)."""
    variant = case.variant(fw)
    assert variant is not None
    label = FRAMEWORK_LABELS[fw]
    when = (
        "captured when this page was built"
        if live
        else f"recorded in `catalogue/outcomes.json`; {label} was not installed at build"
    )
    if fw == "numpy":
        broken_code, fixed_code = _snippet(case, "broken"), _snippet(case, "fixed")
    else:
        broken_code = textwrap.dedent(inspect.getsource(variant.broken)).strip()
        fixed_code = (
            textwrap.dedent(inspect.getsource(variant.fixed)).strip() if variant.fixed else ""
        )
    lines = [f"**Kind in {label}:** {variant.kind}", ""]
    if variant.note:
        lines += [variant.note, ""]
    lines += ["**Broken**", "", "```python", broken_code, "```", ""]
    lines += [f"What running it shows ({when}):", "", *_text_block(record["broken"]), ""]
    if fixed_code:
        lines += ["**Fixed**", "", "```python", fixed_code, "```", ""]
        lines += [f"Fixed: `{record['fixed']}` ({when}).", ""]
    return lines


def _tabs(case: Case, outcomes: dict[str, tuple[dict[str, Any], bool]]) -> list[str]:
    lines = ["## The mistake in each framework", ""]
    for fw in FRAMEWORKS:
        label = FRAMEWORK_LABELS[fw]
        if fw in outcomes:
            body = _tab(case, fw, *outcomes[fw])
        elif fw in case.absent:
            body = [f"{label} cannot make this mistake: {case.absent[fw]}", ""]
        else:
            continue
        lines += [f'=== "{label}"', "", *textwrap.indent("\n".join(body), "    ").split("\n")]
        lines.append("")
    return lines


def _page(case: Case, config: MkDocsConfig, files: Files) -> str:
    m = case.module
    outcomes = _outcomes(case)
    tags = ", ".join(f"[`{t}`](index.md#{t})" for t in case.tags)
    shown = " · ".join(f"{FRAMEWORK_LABELS[fw]} ({kind})" for fw, kind in case.frameworks.items())
    lines = [
        f"# {case.title}",
        "",
        f"**Kind:** {case.kind} · **Tags:** {tags} · **Case id:** `{case.id}`",
        "",
        f"**Shown in:** {shown}",
        "",
        _sections(case),
        *_tabs(case, outcomes),
    ]
    family = {TAGS[t][0] for t in case.tags}
    if family & _HEATMAP_FAMILIES and case.kind != "exception":
        pair = _weight_grids(m.broken(), m.fixed())
        if pair is not None:
            lines += ["## Attention weights, broken and fixed (NumPy)", ""]
            for name, grid in zip(("broken", "fixed"), pair, strict=True):
                uri = f"catalogue/img/{case.id}-{name}.svg"
                files.append(File.generated(config, uri, content=heatmap(grid, name)))
                lines.append(f"![{name} weights of {case.id}](img/{case.id}-{name}.svg)")
            lines += [
                "",
                "Rows are queries, columns keys; red marks NaN or inf. Shown: the (batch, "
                "head) slice where broken and fixed differ most.",
                "",
            ]
    claims = getattr(m, "SEED_CLAIMS", ())
    if claims:
        lines += [
            "## What a seed article claimed",
            "",
            "| article | claim | running it shows |",
            "| --- | --- | --- |",
        ]
        lines += [f"| `{a}` | {_cell(c)} | {_cell(r)} |" for a, c, r in claims]
        lines.append("")
    messages = getattr(m, "MESSAGES", ())
    symptoms = getattr(m, "SYMPTOMS", ())
    if messages or symptoms:
        lines += ["## Messages and symptoms this case explains", ""]
        lines += [f"- `{p}`" for p in messages]
        lines += [f"- *{s}*" for s in symptoms]
        lines.append("")
    return "\n".join(lines)


def _cell(text: str) -> str:
    """``text`` made safe for a Markdown table cell."""
    return text.replace("|", "\\|")


def _index(cases: tuple[Case, ...]) -> str:
    lines = [
        "# Catalogue of attention failures",
        "",
        f"{len(cases)} cases, each a module in `catalogue/cases/` with a `broken` and a "
        "`fixed` variant, run by `pytest catalogue` and again when this site is built. "
        "From an error message to its case: [`python -m catalogue diagnose`](../diagnose.md).",
        "",
        *_coverage_table(cases),
        "## By tag",
        "",
    ]
    for tag, (family, what) in TAGS.items():
        found = [c for c in cases if tag in c.tags]
        links = ", ".join(f"[{c.title}]({c.id}.md)" for c in found) or "—"
        lines += [f"### `{tag}` {{ #{tag} }}", "", f"*{family}*: {what}", "", links, ""]
    lines += ["## By framework message", "", "| message pattern | case |", "| --- | --- |"]
    for case in cases:
        for pattern in getattr(case.module, "MESSAGES", ()):
            lines.append(f"| `{_cell(pattern)}` | [{case.id}]({case.id}.md) |")
    return "\n".join(lines) + "\n"


def coverage(cases: tuple[Case, ...]) -> dict[str, Any]:
    """Cases × frameworks × kind: what ``catalogue/coverage.json`` holds."""
    rows = [
        {
            "id": c.id,
            "title": c.title,
            "tags": list(c.tags),
            "variants": c.frameworks,
            "absent": c.absent,
            "sources": list(c.sources),
        }
        for c in cases
    ]
    totals = {fw: sum(fw in c.frameworks for c in cases) for fw in FRAMEWORKS}
    return {"frameworks": dict(FRAMEWORK_LABELS), "totals": totals, "cases": rows}


def _coverage_table(cases: tuple[Case, ...]) -> list[str]:
    table = coverage(cases)
    shares = ", ".join(
        f"{FRAMEWORK_LABELS[fw]} {n} ({n / max(len(cases), 1):.0%})"
        for fw, n in table["totals"].items()
    )
    labels = [FRAMEWORK_LABELS[fw] for fw in FRAMEWORKS]
    lines = [
        "## Coverage by framework { #coverage }",
        "",
        f"Cases with a variant in each framework: {shares}. Each cell is the kind of that "
        "framework's variant (`exception`, `nan`, `silent`), `absent` where the framework "
        "cannot make the mistake, `—` where the case does not show it yet. The same table "
        "as JSON: [coverage.json](coverage.json).",
        "",
        "| case | " + " | ".join(labels) + " |",
        "| --- |" + " --- |" * len(labels),
    ]
    for row in table["cases"]:
        cells = [
            row["variants"].get(fw) or ("absent" if fw in row["absent"] else "—")
            for fw in FRAMEWORKS
        ]
        lines.append(f"| [{row['id']}]({row['id']}.md) | " + " | ".join(cells) + " |")
    return [*lines, ""]


_DIAGNOSE_EXAMPLES = (
    "ValueError: matmul: Input operand 1 has a mismatch in its core dimension 0, with "
    "gufunc signature (n?,k),(k,m?)->(n?,m?) (size 128 is different from 64)",
    "RuntimeError: The size of tensor a (10) must match the size of tensor b (20) at "
    "non-singleton dimension 1",
    "IndexError: index out of range in self",
    "loss becomes nan after adding a padding mask",
)


def _diagnose_page() -> str:
    lines = [
        "# Diagnose: from an error message to its cause",
        "",
        "Paste an error message, a whole traceback, or a symptom in words:",
        "",
        "```sh",
        'python -m catalogue diagnose "RuntimeError: The size of tensor a (10) must match ..."',
        "python -m catalogue diagnose < traceback.txt      # a whole traceback on stdin",
        'python -m catalogue diagnose --json --top 5 "loss becomes nan with fp16"',
        "```",
        "",
        "It ranks catalogue cases by three kinds of evidence, strongest first: the exact "
        "framework wordings a case registers (`MESSAGES`), the wording families of NumPy, "
        "PyTorch, JAX and TensorFlow with the failure families they usually mean in "
        "attention code (`catalogue.diagnose.RULES`), and the words of a symptom against "
        "each case's symptoms, title and tags. It reads the numbers in the message and "
        "uses them in its answer. `--json` prints a list, best first, of objects with "
        "`id`, `title`, `tags`, `score`, `why` and `page`.",
        "",
        "`tests/data/diagnose_messages.json` holds real messages and symptoms from public "
        "threads, each with its source and the tags of its real cause; "
        "`tests/test_diagnose.py` measures top-1 and top-3 accuracy on them.",
        "",
        "## Examples (run when this page was built)",
        "",
    ]
    for message in _DIAGNOSE_EXAMPLES:
        lines += ["```text", f"$ python -m catalogue diagnose {message!r}"]
        for rank, match in enumerate(diagnose(message, top=3), 1):
            lines.append(f"{rank}. {match.case.title} [{match.case.id}] score {match.score}")
            lines.append(
                textwrap.fill(
                    f"why: {match.why}", 88, initial_indent="   ", subsequent_indent="   "
                )
            )
        lines += ["```", ""]
    return "\n".join(lines)


def on_files(files: Files, config: MkDocsConfig, **kwargs: Any) -> Files:
    """MkDocs event: add the generated catalogue pages to the site's files."""
    cases = all_cases()
    files.append(File.generated(config, "diagnose.md", content=_diagnose_page()))
    files.append(File.generated(config, "catalogue/index.md", content=_index(cases)))
    table = json.dumps(coverage(cases), indent=1, sort_keys=True, ensure_ascii=False)
    files.append(File.generated(config, "catalogue/coverage.json", content=table + "\n"))
    for case in cases:
        files.append(
            File.generated(config, f"catalogue/{case.id}.md", content=_page(case, config, files))
        )
    return files
