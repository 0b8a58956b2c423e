"""The FAISS store: FAISS vectors, BM25 arrays and the chunk table in files, one generation at a time.

Layout of an index directory::

    manifest.json        names the current generation; written last, atomically
    g-<id>/chunks.jsonl  one passage a line (text, source, offsets ...)
    g-<id>/chunks.offsets.npy  byte offset of each line, so passages are read on demand
    g-<id>/dense.faiss   inner-product index over L2-normalised embeddings: exact (flat)
                         up to FLAT_LIMIT passages, IVF above (see dense_index)
    g-<id>/bm25/         bm25s arrays (.npy) and vocabulary (JSON)

A writer builds a complete new generation beside the old one, then replaces
manifest.json with os.replace: a reader (or a crash) sees the old state or the new
one, never a mix. Old generations are removed after the swap.

Loading is cheap at any size: passages, vectors and BM25 arrays are memory-mapped,
and files over FULL_CHECKSUM_LIMIT are checked by size and a sampled checksum (the
full sha256 is still recorded; `qa-bot index verify` checks it).
"""

from __future__ import annotations

import errno
import hashlib
import json
import mmap
import os
import shutil
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import bm25s
import faiss
import numpy as np

from ..errors import IndexCorruptError, IndexMissingError, IndexWriteError
from ..records import ChunkRecord, DocumentInfo, NewDocument
from ..textnorm import pinyin_tokens, tokenize
from .base import check_format
from .bm25 import K1, B, idf

FORMAT_VERSION = 1
FLAT_LIMIT = 200_000  # above this many passages, exact search costs more than IVF's small recall loss
MAX_DF_SHARE = 0.3  # query tokens in more passages than this share are skipped by BM25 ...
MIN_SKIPPED_DF = 50_000  # ... when that is this many passages or more (large indexes only)
FULL_CHECKSUM_LIMIT = 64 << 20  # bytes; bigger files get a sampled checksum at load
_SAMPLE_BLOCKS, _SAMPLE_SIZE = 64, 64 << 10
MANIFEST = "manifest.json"
_MANIFEST_FIELDS = {
    "generation": str, "model": str, "dim": int, "chunker": dict, "built_at": (int, float),
    "documents": dict, "files": dict,
}


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _sampled_sha256(path: Path) -> str:
    """sha256 of 64 evenly spaced 64 KiB blocks (first and last included): catches damage
    and truncation of a large file without reading gigabytes at every load."""
    size = path.stat().st_size
    digest = hashlib.sha256(str(size).encode())
    with path.open("rb") as handle:
        for i in range(_SAMPLE_BLOCKS):
            handle.seek(max(0, (size - _SAMPLE_SIZE) * i // (_SAMPLE_BLOCKS - 1)))
            digest.update(handle.read(_SAMPLE_SIZE))
    return digest.hexdigest()


def _file_entry(path: Path) -> dict:
    size = path.stat().st_size
    entry = {"size": size, "sha256": _sha256_file(path)}
    if size > FULL_CHECKSUM_LIMIT:
        entry["sample_sha256"] = _sampled_sha256(path)
    return entry


class ChunkTable(Sequence):
    """The passages of a saved generation, parsed on demand from a memory-mapped chunks.jsonl.

    A million passages load in milliseconds and cost no memory until they are read.
    """

    def __init__(self, jsonl: Path, offsets: Path):
        self._offsets = np.load(offsets, mmap_mode="r") if offsets.is_file() else _line_offsets(jsonl)
        with jsonl.open("rb") as handle:
            self._data = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) if jsonl.stat().st_size else b""

    def __len__(self) -> int:
        return len(self._offsets) - 1

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        if not -len(self) <= i < len(self):
            raise IndexError(i)
        i %= len(self)
        line = self._data[int(self._offsets[i]) : int(self._offsets[i + 1])]
        return ChunkRecord(**json.loads(line))

    def __iter__(self) -> Iterator[ChunkRecord]:
        return (self[i] for i in range(len(self)))


def _line_offsets(jsonl: Path) -> np.ndarray:
    """Offsets of the lines of a chunks.jsonl written before chunks.offsets.npy existed."""
    ends = np.cumsum([len(line) for line in jsonl.read_bytes().splitlines(keepends=True)])
    return np.concatenate([[0], ends]).astype(np.int64)


def dense_index(vectors: np.ndarray, dim: int) -> faiss.Index:
    """Exact inner-product search up to FLAT_LIMIT passages; IVF above it.

    IVF: about sqrt(n) lists (512 at 500k, 1,024 at a million), trained on a sample of
    40 per list, searched with nprobe = lists/4 (see _prepare_for_search): recall@10 against
    exact search is measured by bench/scale.py. HNSW searched faster at the same recall but
    took about 7 minutes to build for a million passages here, against under a minute.
    """
    n = len(vectors)
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if n <= FLAT_LIMIT:
        index = faiss.IndexFlatIP(dim)
    else:
        lists = 1 << int(np.log2(np.sqrt(n)))
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, lists, faiss.METRIC_INNER_PRODUCT)
        sample = np.random.default_rng(0).choice(n, min(n, 40 * lists), replace=False)
        index.train(vectors[np.sort(sample)])
    if n:
        index.add(vectors)
    return index


def _prepare_for_search(dense: faiss.Index) -> faiss.Index:
    """IVF lists do not know positions: a direct map lets reconstruct() find a passage's vector."""
    ivf = faiss.try_extract_index_ivf(dense)
    if ivf is not None:
        ivf.make_direct_map()
        # A million synthetic passages, recall@10 against exact: lists/16 0.956, lists/4 0.990.
        ivf.nprobe = max(1, ivf.nlist // 4)
    return dense


@dataclass
class FaissStore:
    """An immutable snapshot of an index directory in memory (a qa_bot.stores.base.Store)."""

    model: str
    dim: int
    settings: dict
    chunks: Sequence[ChunkRecord]
    documents: dict[str, DocumentInfo]
    dense: faiss.Index
    bm25: bm25s.BM25 | None
    built_at: float = field(default_factory=time.time)
    generation: str = ""  # the on-disk generation this snapshot is ("" until saved)
    index_dir: Path | None = None  # where it was loaded from or saved to

    @classmethod
    def build(
        cls,
        model: str,
        dim: int,
        settings: dict,
        chunks: list[ChunkRecord],
        vectors: np.ndarray,
        documents: dict[str, DocumentInfo],
    ) -> FaissStore:
        """Build the FAISS and BM25 sides from chunk records and their embeddings."""
        dense = _prepare_for_search(dense_index(vectors, dim))
        bm25 = None
        if chunks:
            bm25 = bm25s.BM25(k1=K1, b=B)
            bm25.index([tokenize(chunk.index_text()) for chunk in chunks], show_progress=False)
        return cls(model, dim, settings, chunks, documents, dense, bm25)

    def pinyin_bm25(self) -> bm25s.BM25 | None:
        """BM25 over pinyin tokens, for English questions; built once (a write builds it for the next store)."""
        with _PINYIN_LOCK:
            if not hasattr(self, "_pinyin"):
                corpus = self.pinyin_corpus()
                self._pinyin = None
                if any(corpus):
                    self._pinyin = bm25s.BM25(k1=K1, b=B)
                    self._pinyin.index(corpus, show_progress=False)
            return self._pinyin

    def pinyin_corpus(self) -> list[list[str]]:
        """Each passage's pinyin tokens: the slow part of the pinyin BM25 (pypinyin, ~2 ms a passage)."""
        if not hasattr(self, "_pinyin_corpus"):
            self._pinyin_corpus = [pinyin_tokens(chunk.index_text()) for chunk in self.chunks]
        return self._pinyin_corpus

    def vectors(self) -> np.ndarray:
        """All stored embeddings, in chunk order (reused when the index changes)."""
        if not self.chunks:
            return np.zeros((0, self.dim), dtype=np.float32)
        return self.dense.reconstruct_n(0, self.dense.ntotal)

    # -- the Store interface -------------------------------------------------------

    def dense_search(self, vector: np.ndarray, n: int) -> dict[int, float]:
        scores, ids = self.dense.search(vector[None, :].astype(np.float32), n)
        return {int(i): float(s) for i, s in zip(ids[0], scores[0]) if i >= 0}

    def lexical_search(self, tokens: list[str], n: int, pinyin_words: list[str] | None = None) -> dict[int, float]:
        scores = _bm25_scores(self.bm25, tokens)
        if pinyin_words is not None:
            pinyin = _bm25_scores(self.pinyin_bm25(), pinyin_words)
            scores = pinyin if scores is None else scores if pinyin is None else scores + pinyin
        if scores is None:
            return {}
        top = np.argpartition(-scores, n - 1)[:n] if n < len(scores) else np.arange(len(scores))
        # Zeros are kept: they are true scores, and they keep the z-score statistics honest
        # when only a few passages match (an English question naming one province).
        return {int(i): float(scores[i]) for i in top}

    def coverage(self, tokens: list[str], ids: Iterable[int]) -> dict[int, float]:
        ids = list(ids)
        found = _token_ids(self.bm25, tokens)
        if not found:
            return dict.fromkeys(ids, 0.0)
        indptr, postings = self.bm25.scores["indptr"], self.bm25.scores["indices"]
        passages = self.bm25.scores["num_docs"]
        weights = np.zeros(passages)
        for i in found:
            weights[postings[indptr[i] : indptr[i + 1]]] += idf(int(indptr[i + 1] - indptr[i]), passages)
        return {i: float(weights[i]) for i in ids}

    def similarity(self, chunk_id: int, vector: np.ndarray) -> float:
        return float(self.dense.reconstruct(chunk_id) @ vector)

    def document_frequency(self, tokens: Iterable[str], pinyin: bool = False) -> dict[str, int]:
        bm25 = self.pinyin_bm25() if pinyin else self.bm25
        if bm25 is None:
            return {}
        indptr = bm25.scores["indptr"]
        found = {}
        for token in tokens:
            i = bm25.vocab_dict.get(token) if token else None
            if i is not None and i + 1 < len(indptr):
                found[token] = int(indptr[i + 1] - indptr[i])
        return found

    def vectors_by_text(self, sources: set[str]) -> dict[str, np.ndarray]:
        positions = [i for i, chunk in enumerate(self.chunks) if chunk.source in sources]
        if not positions:
            return {}
        vectors = self.vectors()
        return {self.chunks[i].index_text(): vectors[i] for i in positions}

    def write(self, removed: set[str], added: list[NewDocument]) -> FaissStore:
        """A new generation: kept passages (their vectors reused) plus the added ones, saved atomically."""
        kept = [i for i, chunk in enumerate(self.chunks) if chunk.source not in removed]
        old_vectors = self.vectors()
        chunks = [self.chunks[i] for i in kept] + [chunk for doc in added for chunk in doc.chunks]
        vectors = np.concatenate(
            [old_vectors[kept].reshape(-1, self.dim)] + [doc.vectors.reshape(-1, self.dim) for doc in added]
        )
        documents = {name: info for name, info in self.documents.items() if name not in removed}
        documents.update({doc.info.name: doc.info for doc in added})
        index = FaissStore.build(self.model, self.dim, self.settings, chunks, vectors, documents)
        # The pinyin side comes with the write (kept passages reuse their tokens), so that the first
        # English question afterwards does not wait for it.
        corpus = self.pinyin_corpus() if kept else []
        index._pinyin_corpus = [corpus[i] for i in kept] + [
            pinyin_tokens(chunk.index_text()) for doc in added for chunk in doc.chunks
        ]
        index.pinyin_bm25()
        index.save(self.index_dir)
        return index

    def warm_up(self) -> None:
        """The pinyin BM25 (English questions) is built in memory: build it now, not at the first question."""
        self.pinyin_bm25()

    def tidy(self) -> None:
        if self.index_dir is not None and self.generation:
            remove_stale(self.index_dir, keep=self.generation)

    # -- persistence -------------------------------------------------------------

    def save(self, index_dir: Path) -> None:
        """Write a new generation and swap it in atomically.

        A failed write (a full disk) removes what it wrote, so that a retry has the space back, and
        raises IndexWriteError: the index stays as it was.
        """
        index_dir.mkdir(parents=True, exist_ok=True)
        generation = f"g-{time.strftime('%Y%m%d%H%M%S')}-{uuid.uuid4().hex[:8]}"
        staging = index_dir / f".{generation}.tmp"
        tmp = index_dir / f".{MANIFEST}.{uuid.uuid4().hex[:8]}.tmp"
        try:
            files = self._write_generation(staging)
            os.replace(staging, index_dir / generation)
            manifest = {
                "format_version": FORMAT_VERSION,
                "generation": generation,
                "model": self.model,
                "dim": self.dim,
                "chunker": self.settings,
                "built_at": self.built_at,
                "passages": len(self.chunks),
                "documents": {name: asdict(info) for name, info in sorted(self.documents.items())},
                "files": files,
            }
            tmp.write_text(json.dumps(manifest, ensure_ascii=False, indent=1), encoding="utf-8")
            with tmp.open("rb") as handle:
                os.fsync(handle.fileno())
            os.replace(tmp, index_dir / MANIFEST)
        except (OSError, RuntimeError) as error:  # faiss reports a failed write as RuntimeError
            shutil.rmtree(staging, ignore_errors=True)
            shutil.rmtree(index_dir / generation, ignore_errors=True)
            tmp.unlink(missing_ok=True)
            full = getattr(error, "errno", None) == errno.ENOSPC or "No space left" in str(error)
            reason = "the disk is full" if full else str(error).strip()[:200]
            raise IndexWriteError(
                f"could not write the index in {index_dir} ({reason}); it is unchanged: "
                f"{'free some disk space' if full else 'fix that'} and try again"
            ) from error
        self.generation, self.index_dir = generation, index_dir
        _fsync_dir(index_dir)
        remove_stale(index_dir, keep=generation)

    def _write_generation(self, staging: Path) -> dict:
        """The generation's files in `staging`, synced; returns their manifest entries."""
        staging.mkdir()
        offsets = [0]
        with (staging / "chunks.jsonl").open("wb") as handle:
            for chunk in self.chunks:
                line = (json.dumps(asdict(chunk), ensure_ascii=False) + "\n").encode("utf-8")
                handle.write(line)
                offsets.append(offsets[-1] + len(line))
        np.save(staging / "chunks.offsets.npy", np.array(offsets, dtype=np.int64))
        faiss.write_index(self.dense, str(staging / "dense.faiss"))
        if self.bm25 is not None:
            self.bm25.save(str(staging / "bm25"), show_progress=False)
        files = {str(path.relative_to(staging)): _file_entry(path) for path in sorted(staging.rglob("*")) if path.is_file()}
        _fsync_tree(staging)
        return files

    @classmethod
    def load(cls, index_dir: Path, full_check: bool = False) -> FaissStore:
        """Load the current generation, checking it against the manifest.

        full_check: hash every file completely, also those over FULL_CHECKSUM_LIMIT.
        """
        manifest = read_manifest(index_dir)
        generation = index_dir / manifest["generation"]
        fix = f"rebuild it with `qa-bot index build --index {index_dir}`"
        for name, expected in manifest["files"].items():
            path = generation / name
            if not path.is_file() or path.stat().st_size != expected["size"]:
                raise IndexCorruptError(f"index file {path} is missing or truncated; {fix}")
            sampled = "sample_sha256" in expected and not full_check
            actual = _sampled_sha256(path) if sampled else _sha256_file(path)
            if actual != expected["sample_sha256" if sampled else "sha256"]:
                raise IndexCorruptError(f"index file {path} fails its checksum; {fix}")
        try:
            chunks = ChunkTable(generation / "chunks.jsonl", generation / "chunks.offsets.npy")
            dense = _prepare_for_search(faiss.read_index(str(generation / "dense.faiss"), _mmap_flag(generation)))
            bm25 = None
            if chunks:
                bm25 = bm25s.BM25.load(str(generation / "bm25"), load_vocab=True, mmap=True, show_progress=False)
        except (OSError, ValueError, RuntimeError, TypeError, KeyError) as error:
            raise IndexCorruptError(f"index at {index_dir} cannot be read ({error}); {fix}") from error
        if dense.ntotal != len(chunks):
            raise IndexCorruptError(f"index at {index_dir} is inconsistent; {fix}")
        documents = {name: DocumentInfo(**info) for name, info in manifest["documents"].items()}
        return cls(
            manifest["model"], manifest["dim"], manifest["chunker"], chunks, documents, dense, bm25,
            manifest["built_at"], manifest["generation"], index_dir,
        )


class FaissLocation:
    """An index directory of FAISS generations (a qa_bot.stores.base.Location)."""

    shared = False  # one machine: its writers go through this process's QABot or reload on write

    def __init__(self, index_dir: Path):
        self.index_dir = index_dir

    def exists(self) -> bool:
        return (self.index_dir / MANIFEST).is_file()

    def generation(self) -> str:
        return read_manifest(self.index_dir)["generation"]

    def open(self) -> FaissStore:
        return FaissStore.load(self.index_dir)

    def verify(self, full: bool = True) -> FaissStore:
        """Every file against its full sha256 (a normal load samples files over FULL_CHECKSUM_LIMIT)."""
        return FaissStore.load(self.index_dir, full_check=full)

    def create(self, model: str, dim: int, settings: dict) -> FaissStore:
        empty = FaissStore.build(model, dim, settings, [], np.zeros((0, dim), np.float32), {})
        empty.index_dir = self.index_dir
        return empty

    def describe(self) -> str:
        return str(self.index_dir)

    def close(self) -> None:
        """Nothing to close: files are opened per generation."""


def _bm25_scores(bm25: bm25s.BM25 | None, tokens: list[str]) -> np.ndarray | None:
    """BM25 score of every passage, or None when no token of the question is in the vocabulary.

    In large indexes, tokens found in more than MAX_DF_SHARE of the passages (的, 是 ...) are
    skipped: their idf is below 1.2 against 5-10 for content words, and at a million
    passages their posting lists are most of a query's work and memory.
    """
    ids = _token_ids(bm25, tokens)
    return bm25.get_scores(ids) if ids else None


def _token_ids(bm25: bm25s.BM25 | None, tokens: list[str]) -> list[int]:
    """Vocabulary ids of the query tokens that BM25 scores (repeats kept; very common ones skipped, above)."""
    if bm25 is None:
        return []
    indptr = bm25.scores["indptr"]
    limit = max(MAX_DF_SHARE * bm25.scores["num_docs"], MIN_SKIPPED_DF)
    ids = [bm25.vocab_dict[token] for token in tokens if token in bm25.vocab_dict]
    return [i for i in ids if indptr[i + 1] - indptr[i] <= limit]


_PINYIN_LOCK = threading.Lock()


def _mmap_flag(generation: Path) -> int:
    """Memory-map large vector files instead of reading them (IVF lists, flat codes)."""
    path = generation / "dense.faiss"
    if path.stat().st_size <= FULL_CHECKSUM_LIMIT:
        return 0
    with path.open("rb") as handle:
        flat = handle.read(4) in (b"IxFI", b"IxF2")  # FAISS' type tags of IndexFlatIP / IndexFlatL2
    return (faiss.IO_FLAG_MMAP_IFC if flat else faiss.IO_FLAG_MMAP) | faiss.IO_FLAG_READ_ONLY


def read_manifest(index_dir: Path) -> dict:
    """The manifest of an index directory, or a clear error."""
    path = index_dir / MANIFEST
    if not path.is_file():
        raise IndexMissingError(f"no index at {index_dir}; build one with `qa-bot index build --index {index_dir}`")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise IndexCorruptError(f"{path} is damaged ({error}); rebuild with `qa-bot index build`") from error
    if not isinstance(manifest, dict):
        raise IndexCorruptError(f"{path} is damaged (not a JSON object); rebuild with `qa-bot index build`")
    check_format(manifest.get("format_version"), FORMAT_VERSION, str(index_dir))
    wrong = [name for name, kind in _MANIFEST_FIELDS.items() if not isinstance(manifest.get(name), kind)]
    if wrong:
        raise IndexCorruptError(
            f"{path} is damaged (missing or wrong: {', '.join(wrong)}); rebuild with `qa-bot index build`"
        )
    return manifest


def _fsync_tree(root: Path) -> None:
    for path in root.rglob("*"):
        if path.is_file():
            with path.open("rb") as handle:
                os.fsync(handle.fileno())
    for directory in [root, *(p for p in root.rglob("*") if p.is_dir())]:
        _fsync_dir(directory)


def _fsync_dir(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def remove_stale(index_dir: Path, keep: str) -> None:
    """Delete generations and temp files other than `keep` (left by earlier writers or crashes)."""
    for path in index_dir.iterdir():
        stale_generation = path.is_dir() and path.name.startswith(("g-", ".g-")) and path.name != keep
        stale_manifest = path.is_file() and path.name.startswith(f".{MANIFEST}.")
        if stale_generation:
            shutil.rmtree(path, ignore_errors=True)
        elif stale_manifest:
            path.unlink(missing_ok=True)
