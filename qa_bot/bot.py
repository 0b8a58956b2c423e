"""QABot: documents in, passages and answers out. Ties loading, chunking, index and retrieval together."""

from __future__ import annotations

import hashlib
import re
import threading
import time
import warnings
from bisect import bisect_left
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from filelock import FileLock

from .answer import PASSAGES_READ, Answer, SentencePicker, compose, contextual_query, message, sentence_spans
from .chunking import ChunkSettings, iter_chunks
from .config import Settings
from .errors import DocumentError, IndexCorruptError, IndexMissingError
from .loaders import SUPPORTED_SUFFIXES, load_text
from .records import ChunkRecord, DocumentInfo, NewDocument, Passage, runs_from_offsets
from .retriever import Retriever, check_question, has_words
from .stores import Store, StoreConfig, migrate, open_location
from .textnorm import script_of

if TYPE_CHECKING:
    from .embedding import Embedder

Progress = Callable[[int, int], None]
REFRESH_SECONDS = 5.0  # how often a shared store (Milvus) is checked for other servers' writes
SENTENCE_VECTORS = 4096  # sentence embeddings a bot keeps for English questions (~6 MB at 384 dimensions)


@dataclass
class IndexReport:
    """What a write operation did."""

    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    embedded: int = 0  # passages embedded (the rest came from the existing index)
    passages: int = 0  # passages in the index afterwards
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class _Loaded:
    name: str
    path: Path
    text: str
    sha256: str
    size: int


def _record_embedder(chunked: list[tuple[DocumentInfo, list[ChunkRecord]]], embedded: set[str], previous: Store | None,
                     label: str) -> None:
    """Each document's ``embedded_with``: this embedder's label if any of its passages was embedded now,
    else (every passage's vector reused from the old index) what embedded it before."""
    for info, chunks in chunked:
        old = previous.documents.get(info.name) if previous else None
        reused = old is not None and not any(chunk.index_text() in embedded for chunk in chunks)
        info.embedded_with = old.embedded_with if reused else label


def _positions(text: str, char: str) -> list[int]:
    """Sorted offsets of every occurrence of char (for line and page numbers by bisection)."""
    positions = []
    position = text.find(char)
    while position != -1:
        positions.append(position)
        position = text.find(char, position + 1)
    return positions


@contextmanager
def _timed(report: IndexReport) -> Iterator[None]:
    started = time.perf_counter()
    try:
        yield
    finally:
        report.seconds = time.perf_counter() - started


def _classify(
    loaded: list[_Loaded], documents: dict[str, DocumentInfo], report: IndexReport, same_path_only: bool
) -> list[_Loaded]:
    """Sort loaded files into added / updated / unchanged; return those that need (re)indexing.

    With same_path_only, a file whose name is taken by a different file from elsewhere is
    refused instead of silently replacing it.
    """
    changed = []
    for doc in loaded:
        existing = documents.get(doc.name)
        if existing and existing.sha256 == doc.sha256:
            report.unchanged.append(doc.name)
        elif existing and same_path_only and existing.path != str(doc.path.resolve()):
            report.errors[str(doc.path)] = (
                f"a different document named {doc.name!r} is already indexed (from {existing.path}); "
                "rename the file or remove the other document first"
            )
        else:
            (report.updated if existing else report.added).append(doc.name)
            changed.append(doc)
    return changed


# Control characters (a newline breaks `index list`) and bidirectional overrides and isolates (a
# right-to-left override makes "evil\u202etxt.exe" display as "evilexe.txt").
_UNSHOWABLE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def document_files(docs_dir: Path) -> list[Path]:
    """Supported files under a folder, sorted; hidden files and folders skipped, symlink loops safe."""
    if docs_dir.exists() and not docs_dir.is_dir():
        raise DocumentError(f"documents folder {docs_dir} is not a folder")
    if not docs_dir.is_dir():
        raise DocumentError(f"documents folder {docs_dir} does not exist")
    files = []
    for path in sorted(docs_dir.rglob("*")):
        relative = path.relative_to(docs_dir)
        if any(part.startswith(".") for part in relative.parts):
            continue
        if path.suffix.lower() in SUPPORTED_SUFFIXES and path.is_file():
            files.append(path)
    return files


class QABot:
    """Question answering over one index directory.

    Reads are lock-free on an immutable store snapshot; writes are serialised by a
    thread lock and a file lock (across processes), and swap the snapshot when done.
    """

    def __init__(
        self,
        index_dir: str | Path | None = None,
        docs_dir: str | Path | None = None,
        model: str | None = None,
        embedder: Embedder | None = None,
        chunking: ChunkSettings = ChunkSettings(),
        store: StoreConfig | None = None,
        library_dir: str | Path | None = None,
    ):
        """store: which store and where (default: QA_BOT_STORE etc., else FAISS files in index_dir).
        index_dir always holds the write lock; with FAISS it is the index itself.

        library_dir: a second documents folder, where uploads go; by default (no docs_dir given)
        the git-ignored `library` folder beside the shipped `seeds`, so a user's files never land
        in the repository. A bot given only docs_dir reads that folder alone.
        """
        settings = Settings()
        self.index_dir = Path(index_dir) if index_dir is not None else settings.index_dir
        self.docs_dir = Path(docs_dir) if docs_dir is not None else settings.docs_dir
        if library_dir is None and docs_dir is None:
            library_dir = settings.library_dir
        self.library_dir = Path(library_dir) if library_dir is not None else None
        self._model = model if model is not None else settings.model
        self._embedder = embedder
        self.chunking = chunking
        self.store_config = store or StoreConfig()
        self.location = open_location(self.store_config, self.index_dir)
        self._store: Store | None = None
        self._checked = 0.0  # when the shared store's generation was last compared with ours
        self._picker: tuple[Store, SentencePicker] | None = None
        self._sentence_vectors: OrderedDict[str, np.ndarray] = OrderedDict()  # least recently used first
        self._sentence_lock = threading.Lock()
        self._write_lock = threading.RLock()
        self._load_lock = threading.Lock()

    # -- components ----------------------------------------------------------------

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            with self._load_lock:
                if self._embedder is None:
                    from .embedding import load_embedder  # imports a runtime: only when a model is needed

                    self._embedder = load_embedder(self._model)
        return self._embedder

    @property
    def store(self) -> Store:
        """The current snapshot, opened on first use; a shared store is re-opened when another
        server has written it (checked at most every REFRESH_SECONDS)."""
        if self._store is not None and self.location.shared and time.monotonic() - self._checked > REFRESH_SECONDS:
            self._checked = time.monotonic()
            if self.location.generation() != self._store.generation:
                with self._load_lock:
                    self._store = self.location.open()
        if self._store is None:
            with self._load_lock:
                if self._store is None:
                    self._store = self.location.open()
                    self._checked = time.monotonic()
        return self._store

    @property
    def index(self) -> Store:
        """Deprecated name of :attr:`store` (kept for one release)."""
        warnings.warn("QABot.index is deprecated; use QABot.store", DeprecationWarning, stacklevel=2)
        return self.store

    def exists(self) -> bool:
        return self.location.exists()

    def migrate(self, to: StoreConfig) -> Store:
        """Copy this bot's index into another store (e.g. FAISS files into Milvus) without re-embedding."""
        target = open_location(to, self.index_dir)
        if target.describe() == self.location.describe():
            raise ValueError(f"the index is already in {target.describe()}")
        with self._writing():
            store = migrate(self.store, target)
        target.close()
        return store

    def close(self) -> None:
        """Release the store's connections (a Milvus Lite file can then be opened by another process)."""
        self._store = None
        self.location.close()

    def ensure_index(self, progress: Progress | None = None) -> None:
        """Build the index from docs_dir if there is none yet."""
        if not self.exists():
            self.rebuild(progress=progress)

    # -- reading -------------------------------------------------------------------

    def documents(self) -> list[DocumentInfo]:
        """Indexed documents, sorted by name."""
        return [info for _, info in sorted(self.store.documents.items())]

    def retrieve(self, question: str, k: int = 5) -> list[Passage]:
        """The k passages that best match the question, best first."""
        store = self.store
        self._check_model(store)
        return Retriever(store, self.embedder).search(question, k)

    def ask(self, question: str, history: list | None = None) -> Answer:
        """An answer made of quoted sentences with [n] citations; found=False when nothing answers it.

        history: earlier turns, as (question, answer) pairs or {"role", "content"} messages;
        an elliptical follow-up ("那湖北呢？") is completed with the previous question.
        """
        store = self.store
        self._check_model(store)
        question = check_question(question)
        query = contextual_query(question, history)
        retriever = Retriever(store, self.embedder)
        query_vector = self.embedder.encode_query(query)
        passages = retriever.search(query, k=5, query_vector=query_vector)
        if not has_words(question):
            language = script_of(question)
            return Answer(message("not_found", language), passages, False, [], language, query)
        similarity = None
        if script_of(question) == "en" and passages:
            similarity = self._sentence_similarity(passages[:PASSAGES_READ], query_vector)
        return compose(question, query, passages, store, self._picker_for(store), similarity)

    def _sentence_similarity(self, passages: list[Passage], query_vector: np.ndarray) -> list[list[float]]:
        """Dense cosine of the question with each sentence of the passages (English questions)."""
        spans = [sentence_spans(p.text) for p in passages]
        sentences = [p.text[s:e] for p, passage_spans in zip(passages, spans) for s, e in passage_spans]
        scores = iter((self._embed_sentences(sentences) @ query_vector).tolist())
        return [[next(scores) for _ in passage_spans] for passage_spans in spans]

    def _embed_sentences(self, sentences: list[str]) -> np.ndarray:
        """The sentences' embeddings, each computed once while among the last SENTENCE_VECTORS used: English
        questions re-read the same top passages, and embedding their sentences took ~190 ms of each such
        answer (docs/benchmarks.md). A kept vector may differ from a fresh one in its last digits, as two
        fresh batches padded differently already do."""
        with self._sentence_lock:
            vectors = {text: self._sentence_vectors[text] for text in sentences if text in self._sentence_vectors}
            for text in vectors:
                self._sentence_vectors.move_to_end(text)
        missing = [text for text in dict.fromkeys(sentences) if text not in vectors]
        if missing:
            vectors.update(zip(missing, self.embedder.encode_passages(missing)))
            with self._sentence_lock:
                for text in missing:
                    self._sentence_vectors[text] = vectors[text]
                while len(self._sentence_vectors) > SENTENCE_VECTORS:
                    self._sentence_vectors.popitem(last=False)
        return np.stack([vectors[text] for text in sentences])

    def _picker_for(self, store: Store) -> SentencePicker:
        cached = self._picker
        if cached is None or cached[0] is not store:
            cached = (store, SentencePicker(store))
            self._picker = cached
        return cached[1]

    def source_text(self, name: str) -> str:
        """The original text of an indexed document (what passage offsets refer to)."""
        info = self.store.documents.get(name)
        if info is None:
            raise KeyError(f"no document named {name!r} in the index")
        text = load_text(Path(info.path))
        if hashlib.sha256(text.encode("utf-8")).hexdigest() != info.sha256:
            raise DocumentError(f"{name} changed on disk since it was indexed; run `qa-bot index update`")
        return text

    # -- writing -------------------------------------------------------------------

    def rebuild(self, docs_dir: str | Path | None = None, progress: Progress | None = None) -> IndexReport:
        """Index every supported file under docs_dir from scratch (unchanged passages are not re-embedded)."""
        return self._sync(docs_dir, progress, from_scratch=True)

    def add_documents(
        self, paths: Iterable[str | Path], progress: Progress | None = None, texts: dict[Path, str] | None = None,
    ) -> IndexReport:
        """Upsert documents: new ones are added, changed ones replaced, identical ones skipped.

        texts: the text of files already read with load_text (an upload is read once, to check it).
        """
        report = IndexReport()
        with _timed(report):
            loaded = self._load_files([Path(p) for p in paths], report, texts or {})
            with self._writing():
                previous = self._current_or_none(require_same_model=True)
                self._check_not_vanished(previous)
                documents = previous.documents if previous else {}
                changed = _classify(loaded, documents, report, same_path_only=True)
                self._apply(previous, changed, set(documents), report, progress)
        return report

    def update(self, docs_dir: str | Path | None = None, progress: Progress | None = None) -> IndexReport:
        """Sync the index with the documents folder: add new files, replace changed ones, drop deleted ones."""
        return self._sync(docs_dir, progress, from_scratch=False)

    def remove_documents(self, names: Iterable[str]) -> IndexReport:
        """Remove documents (by indexed name) so that none of their passages can be returned again."""
        report = IndexReport()
        with _timed(report), self._writing():
            previous = self._current_or_none(require_same_model=False)
            self._check_not_vanished(previous)
            documents = previous.documents if previous else {}
            for name in names:
                if name in documents:
                    report.removed.append(name)
                else:
                    report.errors[name] = f"no document named {name!r} in the index"
            if previous is not None:
                self._apply(previous, [], set(documents) - set(report.removed), report, None)
        return report

    # -- internals -----------------------------------------------------------------

    @contextmanager
    def _writing(self) -> Iterator[None]:
        """Serialise writers: in this process (thread lock) and across processes (file lock)."""
        self.index_dir.mkdir(parents=True, exist_ok=True)
        with self._write_lock, FileLock(str(self.index_dir / ".write.lock")):
            yield

    def _check_model(self, store: Store) -> None:
        if store.model != self.embedder.model_id:
            raise IndexCorruptError(
                f"the index at {self.location.describe()} was built with model {store.model!r} but the configured model "
                f"is {self.embedder.model_id!r}; rebuild it with `qa-bot index build`"
            )

    def _check_not_vanished(self, current: Store | None) -> None:
        """Refuse to add to (or remove from) an index that was deleted while this bot had it open.

        Writing would start a new index holding only the new files: documents would be dropped
        silently. update() and rebuild() are fine: they read the whole documents folder.
        """
        if current is None and self._store is not None and self._store.documents:
            raise IndexMissingError(
                f"the index at {self.location.describe()} has gone (deleted while in use); nothing was changed. "
                f"Rebuild it from the documents folder {self.docs_dir}: `qa-bot index build`, or Rebuild on the web page"
            )

    def _current_or_none(self, require_same_model: bool) -> Store | None:
        """The latest index on disk (another process may have written it), or None.

        The snapshot in memory is reused when it is still the current generation, so a
        write does not re-read and re-checksum the whole index.
        """
        try:
            loaded = self._store
            if loaded is not None and loaded.generation == self.location.generation():
                current = loaded
            else:
                current = self.location.open()
        except IndexMissingError:
            return None
        except IndexCorruptError:
            if require_same_model:
                raise
            return None
        same = current.model == self.embedder.model_id and current.settings == self.chunking.as_dict()
        if not same and require_same_model:
            raise IndexCorruptError(
                f"the index at {self.location.describe()} was built with model {current.model!r} and chunker "
                f"{current.settings}; this bot uses {self.embedder.model_id!r} and {self.chunking.as_dict()}. "
                "Run `qa-bot index build` to rebuild it"
            )
        return current if same else None

    def _load_files(self, paths: Sequence[Path], report: IndexReport, texts: dict[Path, str] | None = None) -> list[_Loaded]:
        loaded: dict[str, _Loaded] = {}
        for path in paths:
            try:
                data_text = (texts or {}).get(path) or load_text(path)
            except (DocumentError, OSError) as error:
                report.errors[str(path)] = str(error)
                continue
            name = self._name_for(path)
            if _UNSHOWABLE.search(name):
                report.errors[str(path)] = (
                    f"{ascii(path.name)}: a file name with a line break, control character or text-direction "
                    "override would display wrongly (or spoofed) in lists; rename the file"
                )
                continue
            if name in loaded:
                report.errors[str(path)] = f"two files in this batch are named {name!r}; rename one"
                continue
            raw = data_text.encode("utf-8")
            loaded[name] = _Loaded(name, path, data_text, hashlib.sha256(raw).hexdigest(), path.stat().st_size)
        return list(loaded.values())

    def _inside_docs_dir(self, paths: list[Path], report: IndexReport) -> list[Path]:
        """The files that are inside the documents folder once links are resolved; the others are refused.

        A link out of the folder (`ln -s /etc/shadow docs/x.md`) would publish that file's contents.
        """
        folders = [folder.resolve() for folder in self.folders]
        inside = []
        for path in paths:
            if any(path.resolve().is_relative_to(folder) for folder in folders):
                inside.append(path)
            else:
                report.errors[str(path)] = (
                    f"{path.name}: a symbolic link to a file outside the documents folder is not read; "
                    "copy the file into the folder instead"
                )
        return inside

    @property
    def folders(self) -> list[Path]:
        """The documents folder, then the library folder if there is one."""
        return [self.docs_dir] + ([self.library_dir] if self.library_dir is not None else [])

    def _name_for(self, path: Path) -> str:
        """Documents under docs_dir (or library_dir) are named by their relative path, others by file name."""
        for folder in self.folders:
            if path.resolve().is_relative_to(folder.resolve()):
                return path.resolve().relative_to(folder.resolve()).as_posix()
        return path.name

    def _sync(self, docs_dir: str | Path | None, progress: Progress | None, from_scratch: bool) -> IndexReport:
        report = IndexReport()
        with _timed(report):
            if docs_dir is not None:
                self.docs_dir = Path(docs_dir)
            files = document_files(self.docs_dir)
            if self.library_dir is not None and self.library_dir.is_dir():
                files += document_files(self.library_dir)
            loaded = self._load_files(self._inside_docs_dir(files, report), report)
            with self._writing():
                previous = self._current_or_none(require_same_model=False)
                if from_scratch:
                    report.added = [doc.name for doc in loaded]
                    self._commit(previous, loaded, set(), report, progress)
                    return report
                documents = previous.documents if previous else {}
                changed = _classify(loaded, documents, report, same_path_only=False)
                # A file that exists but failed to load keeps its old passages rather than vanishing.
                present = {doc.name for doc in loaded} | {self._name_for(Path(p)) for p in report.errors}
                report.removed = sorted(set(documents) - present)
                self._apply(previous, changed, set(documents) - set(report.removed), report, progress)
        return report

    def _apply(
        self, previous: Store | None, changed: list[_Loaded], kept: set[str], report: IndexReport,
        progress: Progress | None,
    ) -> None:
        """Write a new generation if anything changed (or there is no index yet)."""
        if changed or report.removed or previous is None:
            self._commit(previous, changed, kept - {doc.name for doc in changed}, report, progress)
        else:
            report.passages = len(previous.chunks)
            previous.tidy()  # what a writer killed between swap and clean-up may have left behind

    def _commit(
        self,
        previous: Store | None,
        new_docs: list[_Loaded],
        keep: set[str],
        report: IndexReport,
        progress: Progress | None,
    ) -> None:
        """Write the new state (reusing embeddings of unchanged passages) and swap it in."""
        embedder = self.embedder
        removed = set(previous.documents) - keep if previous else set()
        cache = previous.vectors_by_text(removed) if previous else {}
        chunked = []
        for doc in new_docs:
            newlines, pages = _positions(doc.text, "\n"), _positions(doc.text, "\f")
            chunks = [
                ChunkRecord(
                    doc.name, c.start, c.end, c.text, c.context, c.kind,
                    bisect_left(newlines, c.start) + 1, runs_from_offsets(c.offsets),
                    bisect_left(pages, c.start) + 1 if pages else 0,
                    [p - c.start for p in newlines[bisect_left(newlines, c.start) : bisect_left(newlines, c.end)]],
                )
                for c in iter_chunks(doc.text, self.chunking)
            ]
            info = DocumentInfo(doc.name, doc.sha256, doc.size, len(doc.text), len(chunks), str(doc.path.resolve()))
            chunked.append((info, chunks))
        missing = sorted({chunk.index_text() for _, chunks in chunked for chunk in chunks} - cache.keys())
        if missing:
            cache.update(zip(missing, embedder.encode_passages(missing, progress=progress)))
        _record_embedder(chunked, set(missing), previous, f"{embedder.backend}-{embedder.precision}")
        added = [
            NewDocument(info, chunks, np.array([cache[c.index_text()] for c in chunks], np.float32).reshape(-1, embedder.dim))
            for info, chunks in chunked
        ]
        if previous is None:
            previous = self.location.create(embedder.model_id, embedder.dim, self.chunking.as_dict())
        store = previous.write(removed, added)
        self._store = store
        report.embedded = len(missing)
        report.passages = len(store.chunks)
