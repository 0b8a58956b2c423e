"""The store contract: what retrieval, answers and index writes need from where passages live,
and the rules every backend shares. Backends import this module, never the package's factory.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

import numpy as np

from ..errors import IndexCorruptError
from ..records import ChunkRecord, DocumentInfo, NewDocument


class Store(Protocol):
    """A consistent view of the indexed passages, and the way to change them.

    Chunk ids are opaque integers: positions for FAISS, primary keys for Milvus.
    """

    model: str
    dim: int
    settings: dict  # chunker settings the passages were made with
    documents: dict[str, DocumentInfo]
    built_at: float
    generation: str  # changes with every write
    chunks: Sequence[ChunkRecord]  # len() (cheap), iteration; chunks[chunk_id] for ids this store returned

    def dense_search(self, vector: np.ndarray, n: int) -> dict[int, float]:
        """Cosine of the n passages closest to an L2-normalised query vector."""

    def lexical_search(self, tokens: list[str], n: int, pinyin_words: list[str] | None = None) -> dict[int, float]:
        """BM25 of the n best passages for Simplified tokens (textnorm.tokenize), plus, when
        pinyin_words is given, BM25 over the passages' pinyin. {} when nothing matches."""

    def coverage(self, tokens: list[str], ids: Iterable[int]) -> dict[int, float]:
        """For each passage id: the summed idf of the query tokens it contains at all (tokens as for
        lexical_search). BM25 without term frequency or length: repeating a word adds nothing."""

    def similarity(self, chunk_id: int, vector: np.ndarray) -> float:
        """Cosine between a passage and a query vector."""

    def document_frequency(self, tokens: Iterable[str], pinyin: bool = False) -> dict[str, int]:
        """In how many passages each known token occurs (for the answer's idf weights)."""

    def vectors_by_text(self, sources: set[str]) -> dict[str, np.ndarray]:
        """Embeddings of the passages of these documents, by ChunkRecord.index_text(), for reuse."""

    def write(self, removed: set[str], added: list[NewDocument]) -> Store:
        """Remove documents, add new ones, and return the store as it is afterwards."""

    def tidy(self) -> None:
        """Remove what an interrupted writer may have left behind."""

    def warm_up(self) -> None:
        """Build what the first question would otherwise wait for (e.g. in-memory search structures)."""


class Location(Protocol):
    """Where a store lives: can say whether it exists and which generation is current."""

    shared: bool  # other processes may write it while we read (re-check the generation now and then)

    def exists(self) -> bool: ...

    def generation(self) -> str:
        """The current generation (raises IndexMissingError / IndexCorruptError)."""

    def open(self) -> Store:
        """The current state (raises IndexMissingError / IndexCorruptError)."""

    def verify(self, full: bool = True) -> Store:
        """Open the current state checking everything this store can check (checksums, counts);
        raises IndexCorruptError naming the fix."""

    def create(self, model: str, dim: int, settings: dict) -> Store:
        """An empty store for this model and chunker; replaces what was there on its first write."""

    def describe(self) -> str: ...

    def close(self) -> None:
        """Release connections (the store stays as it is)."""


def check_format(found: object, expected: int, where: str) -> None:
    """Refuse an index written in another format version of this store."""
    if found != expected:
        raise IndexCorruptError(
            f"index at {where} has format {found}, this version reads {expected}; rebuild with `qa-bot index build`"
        )
