"""The store interface: what retrieval, answers and index writes need from where passages live.

Two implementations:

- ``faiss`` (default, :mod:`qa_bot.index`): FAISS + bm25s + a chunk table in files, one
  immutable generation at a time.
- ``milvus`` (:mod:`qa_bot.milvus_store`): a Milvus collection (Milvus Lite file or a
  cluster) holding vectors, the Simplified-normalised text with Milvus' own BM25, and the
  passages; several app servers can share it.

Chosen by configuration (``QA_BOT_STORE``, ``QA_BOT_MILVUS_URI``, ``QA_BOT_MILVUS_TOKEN``,
``QA_BOT_MILVUS_COLLECTION``); nothing else in the code depends on which one is used.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from .index import ChunkRecord, DocumentInfo

STORES = ("faiss", "milvus")


@dataclass
class NewDocument:
    """A document to add, with its passages and their embeddings (one row per passage)."""

    info: DocumentInfo
    chunks: list[ChunkRecord]
    vectors: np.ndarray


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
    chunks: Sequence[ChunkRecord]  # len(), iteration; chunks[chunk_id] for ids this store returned

    def dense_search(self, vector: np.ndarray, n: int) -> dict[int, float]:
        """Cosine of the n passages closest to an L2-normalised query vector."""

    def lexical_search(self, tokens: list[str], n: int, pinyin_words: list[str] | None = None) -> dict[int, float]:
        """BM25 of the n best passages for Simplified tokens (textnorm.tokenize), plus, when
        pinyin_words is given, BM25 over the passages' pinyin. {} when nothing matches."""

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


@dataclass(frozen=True)
class StoreConfig:
    """Which store, and where (from the environment unless given)."""

    kind: str = field(default_factory=lambda: os.environ.get("QA_BOT_STORE", "faiss"))
    milvus_uri: str | None = field(default_factory=lambda: os.environ.get("QA_BOT_MILVUS_URI") or None)
    milvus_token: str | None = field(default_factory=lambda: os.environ.get("QA_BOT_MILVUS_TOKEN") or None)
    milvus_collection: str = field(default_factory=lambda: os.environ.get("QA_BOT_MILVUS_COLLECTION", "qa_bot"))

    def __post_init__(self) -> None:
        if self.kind not in STORES:
            raise ValueError(f"unknown store {self.kind!r}: QA_BOT_STORE must be one of {', '.join(STORES)}")


class Location(Protocol):
    """Where a store lives: can say whether it exists and which generation is current."""

    shared: bool  # other processes may write it while we read (re-check the generation now and then)

    def exists(self) -> bool: ...

    def generation(self) -> str:
        """The current generation (raises IndexMissingError / IndexCorruptError)."""

    def open(self) -> Store:
        """The current state (raises IndexMissingError / IndexCorruptError)."""

    def create(self, model: str, dim: int, settings: dict) -> Store:
        """An empty store for this model and chunker; replaces what was there on its first write."""

    def describe(self) -> str: ...

    def close(self) -> None:
        """Release connections (the store stays as it is)."""


def location_for(config: StoreConfig, index_dir: Path) -> Location:
    """The Location of the configured store (index_dir also holds the write lock)."""
    if config.kind == "milvus":
        from .milvus_store import MilvusLocation  # optional dependency: pip install qa-bot[milvus]

        uri = config.milvus_uri or str(index_dir / "milvus.db")
        return MilvusLocation(uri, config.milvus_token, config.milvus_collection)
    from .index import FaissLocation

    return FaissLocation(index_dir)


def migrate(source: Store, target: Location) -> Store:
    """Copy every document, passage and embedding of one store into another: nothing is re-embedded."""
    vectors = source.vectors_by_text(set(source.documents))
    chunks: dict[str, list[ChunkRecord]] = defaultdict(list)
    for chunk in source.chunks:
        chunks[chunk.source].append(chunk)
    added = [
        NewDocument(info, chunks[name], np.array([vectors[c.index_text()] for c in chunks[name]],
                                                  np.float32).reshape(-1, source.dim))
        for name, info in sorted(source.documents.items())
    ]
    return target.create(source.model, source.dim, source.settings).write(set(), added)
