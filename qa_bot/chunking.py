"""Sentence-aware chunks of cleaned text that know their place in the original."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from .layout import MAX_CONTEXT_CHARS, Mapped, Unit, clean

_SENTENCE_END = re.compile(r"(?:[。！？；!?;]+|…+|\.(?=\s))[」』”’\"）)】]*\s*")
_CLAUSE_END = re.compile(r"[，、,：:]\s*|\s+")


@dataclass(frozen=True)
class ChunkSettings:
    """Chunk sizes in characters; recorded in the index manifest."""

    min_chars: int = 150
    max_chars: int = 350
    hard_max_chars: int = 500
    max_overlap_chars: int = 150

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)

    def max_matching_chars(self) -> int:
        """Bound on a passage's matching text (context, a newline, then the text).

        Sentences fill at most hard_max_chars, and a line break may follow each of them (the
        lines of a list: a chunk of one-character lines is about half line breaks).
        """
        return MAX_CONTEXT_CHARS + 1 + 2 * self.hard_max_chars


@dataclass
class Chunk:
    """A passage: cleaned text, its original span and the heading that gives it context."""

    text: str
    offsets: list[int]  # original offset of every character of text
    context: str  # document title / section heading, used for matching only
    kind: str  # "paragraph" | "caption"

    @property
    def start(self) -> int:
        return self.offsets[0]

    @property
    def end(self) -> int:
        return max(self.offsets) + 1


@dataclass
class _Piece:
    body: Mapped
    paragraph: int  # index of the unit the piece comes from
    heading: bool = False  # from a heading unit (a line of a list looks like one)


def split_sentences(body: Mapped) -> list[Mapped]:
    """Sentences ending at 。！？；… (with closing quotes), or at '. ' in Latin text."""
    sentences = []
    start = 0
    for match in _SENTENCE_END.finditer(body.text):
        if match.end() > start:
            sentences.append(body.slice(start, match.end()))
            start = match.end()
    if start < len(body.text):
        sentences.append(body.slice(start, len(body.text)))
    return [sentence for sentence in sentences if sentence.text.strip()]


def _split_long(sentence: Mapped, settings: ChunkSettings) -> list[Mapped]:
    """Cut a sentence longer than hard_max_chars at clause boundaries (or hard, as a last resort)."""
    parts = []
    rest = sentence
    while len(rest.text) > settings.hard_max_chars:
        cut = 0
        for match in _CLAUSE_END.finditer(rest.text, 0, settings.max_chars):
            cut = match.end()
        if cut < settings.min_chars:
            cut = settings.max_chars
        parts.append(rest.slice(0, cut))
        rest = rest.slice(cut, len(rest.text))
    parts.append(rest)
    return parts


def _groups(units: list[Unit]) -> list[tuple[str, str, list[_Piece]]]:
    """Runs of units that may share a chunk: a section's heading(s) and paragraphs, or adjacent captions."""
    groups: list[list] = []
    previous_kind = ""
    for index, unit in enumerate(units):
        after_heading = previous_kind == "heading"
        if not groups or (unit.kind == "heading" and not after_heading) or (
            unit.kind != "heading" and not after_heading and unit.kind != previous_kind
        ):
            groups.append([unit.heading, "", []])
        if unit.kind != "heading" and not groups[-1][1]:
            groups[-1][1] = unit.kind
        groups[-1][0] = unit.heading
        previous_kind = unit.kind
        groups[-1][2].append(_Piece(unit.body, index, unit.kind == "heading"))
    return [(context, kind or "paragraph", pieces) for context, kind, pieces in groups]


def _sentences(pieces: list[_Piece], settings: ChunkSettings) -> list[_Piece]:
    return [
        _Piece(part, piece.paragraph, piece.heading)
        for piece in pieces
        for sentence in split_sentences(piece.body)
        for part in _split_long(sentence, settings)
    ]


def _join(pieces: list[_Piece]) -> Mapped:
    joined = Mapped()
    for previous, piece in zip([None, *pieces], pieces):
        if previous is None or previous.paragraph == piece.paragraph:
            joined.append(piece.body)
        else:
            joined.append(piece.body, previous.body.end, "\n")
    return joined


def chunk_units(units: list[Unit], settings: ChunkSettings = ChunkSettings()) -> list[Chunk]:
    """Pack sentences into chunks of min..max chars, never over hard_max, with one sentence of overlap."""
    chunks: list[Chunk] = []
    for context, kind, pieces in _groups(units):
        sentences = _sentences(pieces, settings)
        current: list[_Piece] = []
        size = 0
        for sentence in sentences:
            length = len(sentence.body.text)
            # Lines of a list (heading after heading) fill a chunk like sentences of one paragraph.
            paragraph_break = (
                bool(current) and current[-1].paragraph != sentence.paragraph
                and not (current[-1].heading and sentence.heading)
            )
            full = size + length > settings.max_chars or (paragraph_break and size >= settings.min_chars)
            if current and full and (size >= settings.min_chars or size + length > settings.hard_max_chars):
                chunks.append(_make_chunk(current, context, kind))
                last = current[-1]
                keep = (
                    not paragraph_break
                    and len(current) > 1
                    and len(last.body.text) <= settings.max_overlap_chars
                    and len(last.body.text) + length <= settings.max_chars
                )
                current = [last] if keep else []
                size = len(last.body.text) if keep else 0
            current.append(sentence)
            size += length
        if current:
            chunks.append(_make_chunk(current, context, kind))
    return chunks


def _make_chunk(pieces: list[_Piece], context: str, kind: str) -> Chunk:
    joined = _join(pieces)
    return Chunk(joined.text, joined.offsets, context, kind)


SECTION_CHARS = 200_000


def _section_ends(original: str, size: int) -> Iterator[int]:
    """Cut points every ~size characters, at a paragraph break after a finished sentence if possible."""
    start = 0
    while len(original) - start > size:
        window = original[start + size // 2 : start + size]
        cut = -1
        for match in re.finditer(r"[。！？!?.」』”]\s*\n\s*\n", window):
            cut = match.end()
        if cut < 0:
            cut = max(window.rfind("\n\n"), window.rfind("\n")) + 1 or len(window)
        start += size // 2 + cut
        yield start
    yield len(original)


def iter_chunks(original: str, settings: ChunkSettings = ChunkSettings()) -> Iterator[Chunk]:
    """Layout repair + chunking, section by section, so memory stays bounded on huge documents."""
    start = 0
    for end in _section_ends(original, SECTION_CHARS):
        for chunk in chunk_units(clean(original[start:end]), settings):
            if start:
                chunk.offsets = [offset + start for offset in chunk.offsets]
            yield chunk
        start = end


def chunk_text(original: str, settings: ChunkSettings = ChunkSettings()) -> list[Chunk]:
    """All chunks of one document's original text."""
    return list(iter_chunks(original, settings))
