"""Griffe extension: turn the reST markup in refattn's docstrings into Markdown.

The docstrings are written for Sphinx (``:func:`attention```, ``::`` before a literal
block) but mkdocstrings renders them as Markdown, where that markup reaches the reader as
raw text. After the package is loaded, every docstring is rewritten:

- ``:func:`x``` (and ``:class:``, ``:mod:``, ``:data:``, ``:attr:``, ``:meth:``,
  ``:exc:``, ``:obj:``) becomes a cross-reference to ``x`` resolved in the docstring's
  own scope, shown as code; ``~`` keeps only the last name, as in Sphinx. A target the
  site does not document (a private module) stays plain code: the reference is optional.
- a paragraph ending in ``::`` ends in ``:`` (its indented block is already code);
- a double-backtick code span wrapped onto a second line is joined onto one line;
- ``*args`` and ``**options`` lose the default griffe gives them (``{}``), which
  mkdocstrings would show as "default: {}".

Double backticks otherwise need nothing: they are a code span in Markdown too. Registered in
``mkdocs.yml`` under the python handler's ``extensions``.
"""

from __future__ import annotations

import html
import re
from typing import Any

import griffe

_ROLE = re.compile(r":(?:func|class|mod|data|attr|meth|exc|obj):`(~?)([\w.]+)(?:\(\))?`")
_LITERAL = re.compile(r"(?<=\S)::$", re.MULTILINE)
# A ``code span`` wrapped onto the next line, which Google-style section parsing would
# cut in two (the second line reads as a new item of a Returns section).
# Pairs are matched left to right, so an opening pair is never taken for a closing one.
_CODE = re.compile(r"``(.+?)``", re.DOTALL)


_VARIADIC = {griffe.ParameterKind.var_positional, griffe.ParameterKind.var_keyword}


def _target(obj: griffe.Object, name: str) -> str:
    """The full path of ``name`` as seen from ``obj``'s scope (``name`` if unknown)."""
    head, _, rest = name.partition(".")
    if head in {"refattn", "catalogue"}:
        return name
    scope: griffe.Object = obj if obj.is_module or obj.is_class else (obj.parent or obj)
    try:
        path = scope.resolve(head)
    except griffe.NameResolutionError:
        return name
    return f"{path}.{rest}" if rest else path


def _one_line(match: re.Match[str]) -> str:
    code = match[1]
    if code.count("\n") != 1 or len(code) > 300:
        return match[0]
    return "``" + re.sub(r"\s*\n\s*", " ", code) + "``"


def rewrite(text: str, obj: griffe.Object) -> str:
    """``text`` with reST roles as optional cross-references and ``::`` as ``:``."""

    def role(match: re.Match[str]) -> str:
        tilde, name = match.groups()
        shown = name.rsplit(".", 1)[-1] if tilde else name
        target = html.escape(_target(obj, name), quote=True)
        code = f"<code>{html.escape(shown)}</code>"
        return f'<autoref identifier="{target}" optional>{code}</autoref>'

    text = _CODE.sub(_one_line, text)
    return _LITERAL.sub(":", _ROLE.sub(role, text))


def _walk(obj: griffe.Object) -> None:
    if obj.docstring is not None:
        obj.docstring.value = rewrite(obj.docstring.value, obj)
    if isinstance(obj, griffe.Function):
        for parameter in obj.parameters:
            if parameter.kind in _VARIADIC:
                parameter.default = None  # not "default: {}" for **options
    for member in obj.members.values():
        if not member.is_alias and isinstance(member, griffe.Object):
            _walk(member)


class RstRoles(griffe.Extension):
    """Rewrite every docstring of a loaded package (see the module docstring)."""

    def on_package(self, *, pkg: griffe.Module, loader: griffe.GriffeLoader, **kwargs: Any) -> None:
        """Walk the whole package once it is loaded, so imported names resolve."""
        _walk(pkg)
