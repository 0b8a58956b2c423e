"""Where passages live: the store contract (:mod:`.base`), its configuration and the factory.

Two implementations, one module each, imported only when chosen:

- ``faiss`` (default, :mod:`qa_bot.stores.faiss`): FAISS + bm25s + a chunk table in files,
  one immutable generation at a time.
- ``milvus`` (:mod:`qa_bot.stores.milvus`): a Milvus collection (Milvus Lite file or a
  cluster) holding vectors, the Simplified-normalised text with Milvus' own BM25, and the
  passages; several app servers can share it.

Chosen by configuration (``QA_BOT_STORE``, ``QA_BOT_MILVUS_*``, read in :mod:`qa_bot.config`);
nothing else in the code depends on which one is used.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..config import Settings
from ..records import ChunkRecord, NewDocument
from .base import Location, Store

__all__ = ["STORES", "Location", "Store", "StoreConfig", "migrate", "open_location"]

STORES = ("faiss", "milvus")


@dataclass(frozen=True)
class StoreConfig:
    """Which store, and where (from the environment unless given)."""

    kind: str = field(default_factory=lambda: Settings().store)
    milvus_uri: str | None = field(default_factory=lambda: Settings().milvus_uri)
    milvus_token: str | None = field(default_factory=lambda: Settings().milvus_token)
    milvus_collection: str = field(default_factory=lambda: Settings().milvus_collection)

    def __post_init__(self) -> None:
        if self.kind not in STORES:
            raise ValueError(f"unknown store {self.kind!r}: QA_BOT_STORE must be one of {', '.join(STORES)}")


def open_location(config: StoreConfig, index_dir: Path) -> Location:
    """The Location of the configured store (index_dir also holds the write lock)."""
    if config.kind == "milvus":
        from .milvus import MilvusLocation  # optional dependency: pip install qa-bot[milvus]

        uri = config.milvus_uri or str(index_dir / "milvus.db")
        return MilvusLocation(uri, config.milvus_token, config.milvus_collection)
    from .faiss import FaissLocation

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
