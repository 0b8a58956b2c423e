"""The on-disk index: FAISS vectors, BM25 arrays and the chunk table, one generation at a time.

Layout of an index directory::

    manifest.json        names the current generation; written last, atomically
    g-<id>/chunks.jsonl  one passage a line (text, source, offsets ...)
    g-<id>/dense.faiss   inner-product index over L2-normalised embeddings
    g-<id>/bm25/         bm25s arrays (.npy) and vocabulary (JSON)

A writer builds a complete new generation beside the old one, then replaces
manifest.json with os.replace: a reader (or a crash) sees the old state or the new
one, never a mix. Old generations are removed after the swap.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

import bm25s
import faiss
import numpy as np

from .textnorm import pinyin_tokens, tokenize

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
_MANIFEST_FIELDS = {
    "generation": str, "model": str, "dim": int, "chunker": dict, "built_at": (int, float),
    "documents": dict, "files": dict,
}


class QAIndexError(RuntimeError):
    """Base class; see subclasses."""


class IndexMissingError(QAIndexError):
    """No index at the given directory."""


class IndexCorruptError(QAIndexError):
    """The index on disk is damaged or incompatible; the message names the fix."""


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


def runs_from_offsets(offsets: list[int]) -> list[list[int]]:
    """Compress a per-character offset list into runs of consecutive offsets."""
    runs: list[list[int]] = []
    for position, offset in enumerate(offsets):
        if runs and runs[-1][1] + runs[-1][2] == offset and runs[-1][0] + runs[-1][2] == position:
            runs[-1][2] += 1
        else:
            runs.append([position, offset, 1])
    return runs


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class Index:
    """An immutable snapshot of the index in memory."""

    model: str
    dim: int
    settings: dict
    chunks: list[ChunkRecord]
    documents: dict[str, DocumentInfo]
    dense: faiss.Index
    bm25: bm25s.BM25 | None
    built_at: float = field(default_factory=time.time)
    generation: str = ""  # the on-disk generation this snapshot is ("" until saved)

    @classmethod
    def build(
        cls,
        model: str,
        dim: int,
        settings: dict,
        chunks: list[ChunkRecord],
        vectors: np.ndarray,
        documents: dict[str, DocumentInfo],
    ) -> Index:
        """Build the FAISS and BM25 sides from chunk records and their embeddings."""
        dense = faiss.IndexFlatIP(dim)
        if len(chunks):
            dense.add(np.ascontiguousarray(vectors, dtype=np.float32))
        bm25 = None
        if chunks:
            bm25 = bm25s.BM25()
            bm25.index([tokenize(chunk.index_text()) for chunk in chunks], show_progress=False)
        return cls(model, dim, settings, chunks, documents, dense, bm25)

    def pinyin_bm25(self) -> bm25s.BM25 | None:
        """BM25 over pinyin tokens, for English questions; built on first use and kept in memory."""
        with _PINYIN_LOCK:
            if not hasattr(self, "_pinyin"):
                corpus = [pinyin_tokens(chunk.index_text()) for chunk in self.chunks]
                self._pinyin = None
                if any(corpus):
                    self._pinyin = bm25s.BM25()
                    self._pinyin.index(corpus, show_progress=False)
            return self._pinyin

    def vectors(self) -> np.ndarray:
        """All stored embeddings, in chunk order (reused when the index changes)."""
        if not self.chunks:
            return np.zeros((0, self.dim), dtype=np.float32)
        return self.dense.reconstruct_n(0, self.dense.ntotal)

    # -- persistence -------------------------------------------------------------

    def save(self, index_dir: Path) -> None:
        """Write a new generation and swap it in atomically."""
        index_dir.mkdir(parents=True, exist_ok=True)
        generation = f"g-{time.strftime('%Y%m%d%H%M%S')}-{uuid.uuid4().hex[:8]}"
        staging = index_dir / f".{generation}.tmp"
        staging.mkdir()
        with (staging / "chunks.jsonl").open("w", encoding="utf-8") as handle:
            for chunk in self.chunks:
                handle.write(json.dumps(asdict(chunk), ensure_ascii=False) + "\n")
        faiss.write_index(self.dense, str(staging / "dense.faiss"))
        if self.bm25 is not None:
            self.bm25.save(str(staging / "bm25"), show_progress=False)
        files = {
            str(path.relative_to(staging)): {"size": path.stat().st_size, "sha256": _sha256_file(path)}
            for path in sorted(staging.rglob("*"))
            if path.is_file()
        }
        _fsync_tree(staging)
        os.replace(staging, index_dir / generation)
        self.generation = generation
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
        tmp = index_dir / f".{MANIFEST}.{uuid.uuid4().hex[:8]}.tmp"
        tmp.write_text(json.dumps(manifest, ensure_ascii=False, indent=1), encoding="utf-8")
        with tmp.open("rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, index_dir / MANIFEST)
        _fsync_dir(index_dir)
        remove_stale(index_dir, keep=generation)

    @classmethod
    def load(cls, index_dir: Path) -> Index:
        """Load the current generation, checking it against the manifest."""
        manifest = read_manifest(index_dir)
        generation = index_dir / manifest["generation"]
        fix = f"rebuild it with `qa-bot index build --index {index_dir}`"
        for name, expected in manifest["files"].items():
            path = generation / name
            if not path.is_file() or path.stat().st_size != expected["size"]:
                raise IndexCorruptError(f"index file {path} is missing or truncated; {fix}")
            if _sha256_file(path) != expected["sha256"]:
                raise IndexCorruptError(f"index file {path} fails its checksum; {fix}")
        try:
            with (generation / "chunks.jsonl").open(encoding="utf-8") as handle:
                chunks = [ChunkRecord(**json.loads(line)) for line in handle]
            dense = faiss.read_index(str(generation / "dense.faiss"))
            bm25 = None
            if chunks:
                bm25 = bm25s.BM25.load(str(generation / "bm25"), load_vocab=True)
        except (OSError, ValueError, RuntimeError, TypeError, KeyError) as error:
            raise IndexCorruptError(f"index at {index_dir} cannot be read ({error}); {fix}") from error
        if dense.ntotal != len(chunks):
            raise IndexCorruptError(f"index at {index_dir} is inconsistent; {fix}")
        documents = {name: DocumentInfo(**info) for name, info in manifest["documents"].items()}
        return cls(
            manifest["model"], manifest["dim"], manifest["chunker"], chunks, documents, dense, bm25,
            manifest["built_at"], manifest["generation"],
        )


_PINYIN_LOCK = threading.Lock()


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
    if manifest.get("format_version") != FORMAT_VERSION:
        raise IndexCorruptError(
            f"index at {index_dir} has format {manifest.get('format_version')}, this version reads "
            f"{FORMAT_VERSION}; rebuild with `qa-bot index build`"
        )
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
