"""reStructuredText as Markdown, for chunking by headings.

Sphinx projects (Python's, Django's, many on PyPI) write their guides in reST, where
a heading is a line underlined (or over- and underlined) with punctuation. Chunking cuts
at Markdown headings, so a reST page read as plain text would be one long section
without a heading path. This converts headings and inline roles and keeps everything
else as it is: offsets point into the converted text, as they do for HTML.
"""

from __future__ import annotations

import re

_UNDERLINE = re.compile(r"^([=\-~^\"'`#*+_.:])\1{2,}\s*$")
_ROLE = re.compile(r":[\w:.+-]+:`([^`]*)`")
_TARGET = re.compile(r"^\s*(.*?)\s*<[^>]*>\s*$", re.S)
_LABEL = re.compile(r"^\.\. _[^:]+:\s*$")


def _role_text(match: re.Match[str]) -> str:
    text = match.group(1)
    target = _TARGET.match(text)
    text = target.group(1) if target and target.group(1) else text.strip("<>")
    return f"`{text.lstrip('~!')}`"


def rst_to_markdown(rst: str) -> str:
    """Heading levels follow the order in which adornment styles first appear, as in
    docutils; an overline and an underline make a style distinct from an underline alone."""
    lines = rst.splitlines()
    styles: list[str] = []
    out: list[str] = []
    index = 0
    while index < len(lines):
        line = lines[index]
        nxt = lines[index + 1] if index + 1 < len(lines) else ""
        after = lines[index + 2] if index + 2 < len(lines) else ""
        if _UNDERLINE.match(line) and nxt.strip() and _UNDERLINE.match(after):
            style, title, index = "over" + line[0], nxt.strip(), index + 3
        elif (
            line.strip()
            and not line.startswith(" ")
            and _UNDERLINE.match(nxt)
            and (len(nxt.rstrip()) >= len(line.rstrip()))
        ):
            style, title, index = nxt[0], line.strip(), index + 2
        else:
            if not _LABEL.match(line):
                out.append(_ROLE.sub(_role_text, line))
            index += 1
            continue
        if style not in styles:
            styles.append(style)
        level = min(styles.index(style) + 1, 6)
        out += ["", "#" * level + " " + _ROLE.sub(_role_text, title), ""]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(out)).strip() + "\n"
