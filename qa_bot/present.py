"""How a passage's place and a file's size are written, for the CLI and the web chat alike.

A place names the document, the page (PDF), the line and the character range. Given the
offset of a quoted sentence, the line is that sentence's own line, not the passage's first.
"""

from __future__ import annotations

from bisect import bisect_right

from .records import Passage


def quote_line(passage: Passage, offset: int) -> int:
    """1-based line of an original-document offset inside the passage."""
    return passage.line + bisect_right(passage.newlines, offset - passage.start - 1)


def place_label(passage: Passage, offset: int | None = None, bilingual: bool = False, source: bool = True) -> str:
    """'name, p. 3, line 12, chars 100-220' (plain text; bilingual: '第 3 頁 p. 3 · 第 12 行 line 12 · …').

    offset: where the quoted sentence starts (its line is given); None: the passage's first line.
    """
    line = passage.line if offset is None else quote_line(passage, offset)
    if bilingual:
        parts = [f"第 {passage.page} 頁 p. {passage.page}"] if passage.page else []
        parts += [f"第 {line} 行 line {line}", f"字元 chars {passage.start}–{passage.end}"]
        separator = " · "
    else:
        parts = [f"p. {passage.page}"] if passage.page else []
        parts += [f"line {line}", f"chars {passage.start}-{passage.end}"]
        separator = ", "
    label = separator.join(parts)
    return f"{passage.source}{' · ' if bilingual else ' '}{label}" if source else label


def human_size(n: float) -> str:
    """Bytes as '512 B', '1.5 KB', '20.0 MB'."""
    for unit in ("B", "KB", "MB"):
        if n < 1024 or unit == "MB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def plural(n: int, noun: str) -> str:
    """'1 passage', '2 passages'."""
    return f"{n} {noun}{'' if n == 1 else 's'}"
