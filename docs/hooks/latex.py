"""MkDocs hook: render ``$...$`` and ``$$...$$`` LaTeX to MathML at build time.

MathML is rendered by the browser itself, so no math script or font is fetched when the
site is read. Fenced code blocks and inline code are left alone.
"""

from __future__ import annotations

import re
from typing import Any

from latex2mathml.converter import convert

_FENCE = re.compile(r"^(```|~~~)")
_DISPLAY = re.compile(r"\$\$(.+?)\$\$", re.DOTALL)
_INLINE = re.compile(r"(?<![\\$\w])\$(?!\s)([^$\n]+?)(?<!\s)\$(?![\w$])")
_CODE = re.compile(r"(`+)(.+?)\1")


def _inline(text: str) -> str:
    pieces, last = [], 0
    for match in _CODE.finditer(text):
        pieces.append(_INLINE.sub(_inline_math, text[last : match.start()]))
        pieces.append(match.group(0))
        last = match.end()
    pieces.append(_INLINE.sub(_inline_math, text[last:]))
    return "".join(pieces)


def _inline_math(match: re.Match[str]) -> str:
    # In a span, so a formula that starts a line does not start a raw-HTML block.
    return f'<span class="math">{convert(match.group(1))}</span>'


def render(markdown: str) -> str:
    """Replace the LaTeX of one page's markdown with MathML."""
    out: list[str] = []
    prose: list[str] = []
    in_fence = False

    def flush() -> None:
        chunk = "\n".join(prose)
        chunk = _DISPLAY.sub(
            lambda m: "\n" + convert(m.group(1).strip(), display="block") + "\n", chunk
        )
        out.append(_inline(chunk))
        prose.clear()

    for line in markdown.split("\n"):
        if _FENCE.match(line.lstrip()):
            if not in_fence:
                flush()
            in_fence = not in_fence
            out.append(line)
        elif in_fence:
            out.append(line)
        else:
            prose.append(line)
    flush()
    return "\n".join(out)


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    """MkDocs event: runs on every page's markdown before it is converted to HTML."""
    return render(markdown)
