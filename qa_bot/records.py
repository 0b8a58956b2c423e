"""The records every layer shares: stored passages, documents, new documents and retrieved passages.

Plain dataclasses with no backend behind them, so that `from qa_bot.records import Passage`
loads neither FAISS nor a model.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np


@dataclass
class ChunkRecord:
    """One stored passage."""

    source: str
    start: int
    end: int
    text: str
    context: str
    kind: str
    line: int  # 1-based line of `start` in the original document
    runs: list[list[int]]  # [text_pos, original_pos, length]: where each run of text came from
    page: int = 0  # 1-based page for paged formats (pages are separated by \f), else 0
    newlines: list[int] = field(default_factory=list)  # offsets (from start) of the line breaks in the span

    def original_offset(self, text_pos: int) -> int:
        """Original-document offset of the character at `text_pos` of `text`."""
        for run_text, run_original, length in self.runs:
            if run_text <= text_pos < run_text + length:
                return run_original + text_pos - run_text
        raise ValueError(f"position {text_pos} is outside the passage")

    def index_text(self) -> str:
        """What retrieval matches: the heading context, then the passage."""
        return f"{self.context}\n{self.text}" if self.context else self.text


@dataclass
class DocumentInfo:
    """One indexed document."""

    name: str
    sha256: str
    size: int  # bytes
    chars: int
    chunks: int
    path: str = ""  # where it was read from, to tell same-named files apart
    added_at: float = field(default_factory=time.time)
    # The runtime and precision that embedded its passages ("onnxruntime-int8"; "" in older indexes). All
    # precisions of one model answer each other's queries (docs/architecture.md): this is provenance, not a lock.
    embedded_with: str = ""


@dataclass
class NewDocument:
    """A document to add, with its passages and their embeddings (one row per passage)."""

    info: DocumentInfo
    chunks: list[ChunkRecord]
    vectors: np.ndarray


@dataclass
class Passage:
    """A retrieved passage. `text` is the cleaned passage; `start`/`end` delimit the span of the
    original document it came from (layout cleaning may have joined lines or dropped blank ones,
    so `original[start:end]` holds the same characters, not always the same string)."""

    text: str
    source: str
    start: int
    end: int
    score: float
    similarity: float = 0.0  # dense cosine between the question and the passage
    line: int = 0  # 1-based line of `start` in the source
    context: str = ""  # heading above the passage
    chunk_id: int = -1
    page: int = 0  # 1-based page in paged sources (PDF), 0 otherwise
    newlines: list[int] = field(default_factory=list)  # offsets (from start) of the line breaks in the span

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def runs_from_offsets(offsets: list[int]) -> list[list[int]]:
    """Compress a per-character offset list into runs of consecutive offsets."""
    runs: list[list[int]] = []
    for position, offset in enumerate(offsets):
        if runs and runs[-1][1] + runs[-1][2] == offset and runs[-1][0] + runs[-1][2] == position:
            runs[-1][2] += 1
        else:
            runs.append([position, offset, 1])
    return runs
