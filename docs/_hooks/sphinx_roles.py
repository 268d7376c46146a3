"""A griffe extension for the API reference, so the docstrings render as they read in the source
(which is not changed):

- Sphinx roles (``:class:`X```, ``:func:`~a.b.f```), which Markdown would show literally, become
  code spans holding the name as Sphinx prints it (``~`` keeps the last component);
- the ``Args:`` and ``Shape:`` blocks (a header line, then an indented block), which Markdown
  would run into one paragraph, become a bold header with a list of arguments, and a paragraph;
- a doctest after a numpy ``References`` section gets its own ``Examples`` header, so it renders
  as code rather than as part of the references;
- every doctest (``>>>`` and its output, up to a blank line) is fenced as ``pycon``, where
  Markdown would show it as nested quotes.
"""

from __future__ import annotations

import re
import textwrap
from typing import Any

from griffe import Extension

ROLE = re.compile(r":(?:py:)?(?:mod|class|func|meth|attr|data|exc|obj|const):`(~?)([^`]+)`")
BLOCK_HEADERS = ("Args:", "Shape:")
ARGUMENT = re.compile(r"([A-Za-z_][\w, ]*):\s(.*)")


def plain_roles(text: str) -> str:
    def code(match: re.Match) -> str:
        short, name = match.groups()
        return f"`{name.rsplit('.', 1)[-1] if short else name}`"

    return ROLE.sub(code, text)


def render_block(header: str, lines: list[str]) -> list[str]:
    body = textwrap.dedent("\n".join(lines)).splitlines()
    if header == "Shape:":
        return [f"**Shape:** " + " ".join(line.strip() for line in body), ""]
    items: list[str] = []
    for line in body:
        argument = ARGUMENT.fullmatch(line)
        if argument and not line.startswith(" "):
            names = ", ".join(f"`{name.strip()}`" for name in argument.group(1).split(","))
            items.append(f"- {names}: {argument.group(2)}")
        elif items:
            items[-1] += " " + line.strip()
    return ["**Arguments:**", "", *items, ""]


def blocks_rendered(text: str) -> str:
    lines = text.splitlines()
    out: list[str] = []
    i = 0
    while i < len(lines):
        if lines[i].strip() in BLOCK_HEADERS and not lines[i].startswith(" "):
            header, block = lines[i].strip(), []
            i += 1
            while i < len(lines) and (lines[i].startswith(" ") or not lines[i].strip()) and \
                    not (not lines[i].strip() and (i + 1 >= len(lines) or not lines[i + 1].startswith(" "))):
                block.append(lines[i])
                i += 1
            if out and out[-1].strip():
                out.append("")
            out.extend(render_block(header, block))
            continue
        out.append(lines[i])
        i += 1
    return "\n".join(out)


def examples_headed(text: str) -> str:
    lines = text.splitlines()
    out: list[str] = []
    section = None
    for i, line in enumerate(lines):
        if i + 1 < len(lines) and line.strip() and set(lines[i + 1].strip()) == {"-"} and \
                len(lines[i + 1].strip()) >= 3:
            section = line.strip()
        if line.startswith(">>>") and section not in (None, "Examples") and \
                (not out or not out[-1].startswith(">>>")) and (len(out) < 1 or not out[-1].strip()):
            out.extend(["Examples", "--------"])
            section = "Examples"
        out.append(line)
    return "\n".join(out)


def doctests_fenced(text: str) -> str:
    out: list[str] = []
    inside = False
    for line in text.splitlines():
        if not inside and line.startswith(">>>"):
            if out and out[-1].strip():
                out.append("")
            out.append("```pycon")
            inside = True
        elif inside and not line.strip():
            out.append("```")
            inside = False
        out.append(line)
    if inside:
        out.append("```")
    return "\n".join(out)


class SphinxRoles(Extension):
    def on_instance(self, **kwargs: Any) -> None:
        docstring = getattr(kwargs["obj"], "docstring", None)
        if docstring is not None:
            docstring.value = doctests_fenced(examples_headed(blocks_rendered(plain_roles(docstring.value))))
