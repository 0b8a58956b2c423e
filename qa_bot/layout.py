"""Layout repair: re-join broken lines, find headings and photo captions, keep an offset map.

Real documents (the seed article is typical) break lines in the middle of a sentence or
even a word, put headings on their own line and drop photo captions into the middle of
a paragraph. `clean()` turns raw text into units (headings, paragraphs, captions) whose
every character remembers its offset in the original text, so a citation can always
point at the exact original characters.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# A paragraph whose last character is one of these clearly continues in the next block.
_TERMINAL = set("。！？；!?;…」』”’\"）)】》.:：")
_SENTENCE_PUNCT = re.compile(r"[。！？；，!?;,]|[.](?:\s|$)")
_CREDIT = re.compile(r"(資料圖片|资料图片|新華社|新华社|圖片來源.{0,20}|图片来源.{0,20}|(?:記者|记者)?\S{0,8}[攝摄]|(?:供|配)圖|(?:供|配)图)$")
_MARKDOWN_HEADING = re.compile(r"^#{1,6}\s+")
_WHITESPACE = " \t\r\f\v\u3000\u00a0\ufeff"
_CJK_OR_FULLWIDTH = re.compile(r"[\u2e80-\u9fff\uf900-\ufaff\uff00-\uffef\U00020000-\U0002ebef]")
MAX_HEADING_CHARS = 40
# A passage's context is the run of consecutive headings above it, at most this many characters, so
# that a list of 6,000 short lines (each one looks like a heading) cannot grow it without bound.
# The longest context in seeds/, DRCD dev, its near-miss set and CMRC 2018 trial is 69 characters.
MAX_CONTEXT_CHARS = 120
MAX_CAPTION_CHARS = 200


@dataclass
class Mapped:
    """A piece of cleaned text plus, for every character, its offset in the original."""

    text: str = ""
    offsets: list[int] = field(default_factory=list)

    def append(self, other: Mapped, separator_at: int | None = None, separator: str = "") -> None:
        """Append `other`, optionally after a separator mapped to original offset `separator_at`."""
        if self.text and separator and separator_at is not None:
            self.text += separator
            self.offsets.append(separator_at)
        self.text += other.text
        self.offsets.extend(other.offsets)

    def slice(self, start: int, end: int) -> Mapped:
        return Mapped(self.text[start:end], self.offsets[start:end])

    @property
    def start(self) -> int:
        return self.offsets[0]

    @property
    def end(self) -> int:
        return self.offsets[-1] + 1


@dataclass
class Unit:
    """A heading, paragraph or caption of the cleaned document."""

    kind: str  # "heading" | "paragraph" | "caption"
    body: Mapped
    heading: str = ""  # the section heading(s) above this unit, "" if none


@dataclass
class _Block:
    lines: list[Mapped]
    gap_before: int
    gap_after: int = 0

    @property
    def text(self) -> str:
        return "".join(line.text for line in self.lines)


def _lines(original: str) -> list[Mapped | None]:
    """Trimmed lines with offsets; None for a blank line."""
    result: list[Mapped | None] = []
    pos = 0
    for raw in original.split("\n"):
        left = len(raw) - len(raw.lstrip(_WHITESPACE))
        stripped = raw.strip(_WHITESPACE)
        if stripped:
            begin = pos + left
            result.append(Mapped(stripped, list(range(begin, begin + len(stripped)))))
        else:
            result.append(None)
        pos += len(raw) + 1
    return result


def _blocks(original: str) -> list[_Block]:
    blocks: list[_Block] = []
    gap = gap_before = 0
    current: list[Mapped] = []
    for line in _lines(original):
        if line is None:
            if current:
                blocks.append(_Block(current, gap_before))
                current = []
                gap = 0
            gap += 1
            continue
        if not current:
            gap_before = gap
        current.append(line)
    if current:
        blocks.append(_Block(current, gap_before))
    for block, following in zip(blocks, blocks[1:]):
        block.gap_after = following.gap_before
    return blocks


def _separator(left: str, right: str) -> str:
    """Nothing between CJK characters, a space between anything else."""
    if _CJK_OR_FULLWIDTH.match(left[-1]) and _CJK_OR_FULLWIDTH.match(right[0]):
        return ""
    return " "


def _join(target: Mapped, piece: Mapped) -> None:
    if not target.text:
        target.append(piece)
        return
    # The character after the last kept one is whitespace in the original: map the separator there.
    target.append(piece, target.end, _separator(target.text, piece.text))


def _is_open(text: str) -> bool:
    """True when a paragraph stops mid-sentence (its last character is not terminal)."""
    return bool(text) and text[-1] not in _TERMINAL


def _is_heading(block: _Block) -> bool:
    text = block.text
    if _MARKDOWN_HEADING.match(text):
        return True
    return (
        len(block.lines) == 1
        and len(text) <= MAX_HEADING_CHARS
        and _SENTENCE_PUNCT.search(text) is None
    )


def _is_caption(block: _Block, paragraph_open: bool) -> bool:
    text = block.text
    if len(text) > MAX_CAPTION_CHARS:
        return False
    if _CREDIT.search(text):
        return True
    return paragraph_open and block.gap_before >= 2 and block.gap_after >= 2


def _context(run: list[str]) -> str:
    """The headings of a run joined by spaces, or, when that passes MAX_CONTEXT_CHARS, its first heading.

    A run that long is a list (a table of contents, a catalogue) rather than nested headings: its
    first line is what the items have in common.
    """
    if sum(len(text) + 1 for text in run) - 1 <= MAX_CONTEXT_CHARS:
        return " ".join(run)
    return run[0][:MAX_CONTEXT_CHARS]


def clean(original: str) -> list[Unit]:
    """Split text into headings, paragraphs and captions with broken lines re-joined."""
    units: list[Unit] = []
    paragraph: Mapped | None = None
    captions: list[Mapped] = []
    heading = ""
    run: list[str] = []  # the consecutive headings above the current block
    last_was_heading = False

    def flush() -> None:
        nonlocal paragraph
        if paragraph is not None:
            units.append(Unit("paragraph", paragraph, heading))
            paragraph = None
        units.extend(Unit("caption", caption, heading) for caption in captions)
        captions.clear()

    for block in _blocks(original):
        paragraph_open = paragraph is not None and _is_open(paragraph.text)
        body = Mapped()
        for line in block.lines:
            _join(body, line)
        if _is_caption(block, paragraph_open):
            captions.append(body)
            continue
        if paragraph_open:
            _join(paragraph, body)
            continue
        flush()
        if _is_heading(block):
            text = _MARKDOWN_HEADING.sub("", body.text)
            if not last_was_heading:
                run = []
            if len(run) <= MAX_CONTEXT_CHARS:  # a longer run is a list already: keeps _context() cheap
                run.append(text)
            heading = _context(run)
            units.append(Unit("heading", body, heading))
            last_was_heading = True
            continue
        last_was_heading = False
        paragraph = body
    flush()
    return units
