"""The Milvus store: passages, vectors and BM25 in Milvus (a Milvus Lite file or a cluster).

Install with ``pip install qa-bot[milvus]``; select with ``QA_BOT_STORE=milvus`` and
``QA_BOT_MILVUS_URI`` (``./embeddings/milvus.db`` for Milvus Lite, ``http://host:19530``
for a cluster; ``QA_BOT_MILVUS_TOKEN`` when it needs one).

Two collections, named after ``QA_BOT_MILVUS_COLLECTION`` (default ``qa_bot``):

- ``<name>_passages``: one row a passage. ``text`` and ``record`` are what is returned and
  cited (the original characters); ``vec`` is the e5 embedding (COSINE); ``norm`` holds the
  passage's Simplified-normalised tokens (textnorm.tokenize, space-separated) and ``py``
  its pinyin tokens. Milvus' BM25 functions index both, so Milvus runs BM25 over exactly
  the tokens the FAISS store uses.
- ``<name>_meta``: the manifest (model, chunker, generation, passage and token counts),
  one row per document, and the document frequency of every token.

Milvus' BM25 finds the lexical candidates; qa-bot then scores them with BM25 over
collection-wide statistics (the document frequencies and counts above), exactly as bm25s
does for the FAISS store. Milvus Lite keeps BM25 statistics per segment, so its own scores
of a just-added document and of older ones are not comparable.

Milvus has no transaction across rows: a write first drops the documents' rows from the
meta collection, then replaces their passages, then records them again. A crash leaves
those documents unlisted, and the next ``qa-bot index update`` adds them again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np

from ..errors import IndexCorruptError, IndexMissingError
from ..records import ChunkRecord, DocumentInfo, NewDocument
from ..textnorm import pinyin_tokens, tokenize
from . import bm25
from .base import check_format

try:
    from pymilvus import DataType, Function, FunctionType, MilvusClient
except ImportError as error:  # pragma: no cover - depends on the installed extras
    raise ImportError("the Milvus store needs pymilvus: pip install 'qa-bot[milvus]'") from error

logging.getLogger("pymilvus").setLevel(logging.CRITICAL)  # it logs every failed call with a traceback

FORMAT_VERSION = 1  # of the rows and the manifest this module writes
BATCH = 500  # rows per insert / ids per query
LEXICAL_FIELDS = {"norm": False, "py": True}  # field -> holds pinyin
_NON_WORD = re.compile(r"\W")
_CLIENTS: dict[tuple[str, str | None], MilvusClient] = {}
_CLIENTS_LOCK = threading.Lock()


def _client(uri: str, token: str | None) -> MilvusClient:
    """One client per database in a process (Milvus Lite lets one process open a file)."""
    with _CLIENTS_LOCK:
        key = (uri, token)
        if key not in _CLIENTS:
            if not uri.startswith(("http://", "https://", "tcp://", "unix:")):
                Path(uri).parent.mkdir(parents=True, exist_ok=True)
            try:
                _CLIENTS[key] = MilvusClient(uri, token=token or "")
            except Exception as error:  # noqa: BLE001 - pymilvus raises its own hierarchy
                raise IndexCorruptError(
                    f"cannot open Milvus at {uri} ({error}); a Milvus Lite file can be open in one process only"
                ) from error
        return _CLIENTS[key]


def _token_text(tokens: Iterable[str]) -> str:
    """Tokens joined by spaces, each one word for the analyzer (\\W inside a token becomes _)."""
    return " ".join(_NON_WORD.sub("_", token) for token in tokens)


def _chunk_id(source: str, sha256: str, start: int, end: int) -> int:
    """Stable 63-bit primary key: re-adding the same document gives the same ids."""
    digest = hashlib.sha256(f"{source}\0{sha256}\0{start}\0{end}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def _scan(client: MilvusClient, collection: str, expression: str, fields: list[str]) -> Iterator[dict]:
    """Every row matching the filter, in batches (a plain query is capped at 16,384 rows)."""
    rows = client.query_iterator(collection, batch_size=1000, filter=expression, output_fields=fields)
    try:
        while batch := rows.next():
            yield from batch
    finally:
        rows.close()


def _quoted(values: Iterable[str]) -> str:
    return "[" + ", ".join(json.dumps(value, ensure_ascii=False) for value in values) + "]"


class MilvusLocation:
    """A Milvus database and collection name (a qa_bot.stores.base.Location)."""

    shared = True  # several app servers may read and write one collection

    def __init__(self, uri: str, token: str | None = None, collection: str = "qa_bot"):
        self.uri, self.token = uri, token
        self.passages_collection, self.meta_collection = f"{collection}_passages", f"{collection}_meta"
        # Milvus Lite's analyzers are "standard" (\w+ words) and "jieba"; a cluster has "whitespace".
        lite = not uri.startswith(("http://", "https://", "tcp://", "unix:"))
        self.analyzer = {"tokenizer": "standard" if lite else "whitespace"}

    @property
    def client(self) -> MilvusClient:
        return _client(self.uri, self.token)

    def close(self) -> None:
        """Close the connection; for Milvus Lite, also stop its server so another process may open the file."""
        with _CLIENTS_LOCK:
            client = _CLIENTS.pop((self.uri, self.token), None)
        if client is not None:
            client.close()
            if self.analyzer["tokenizer"] == "standard":  # Milvus Lite
                from milvus_lite.server_manager import server_manager_instance

                server_manager_instance.release_server(str(Path(self.uri).resolve()))

    def describe(self) -> str:
        return f"milvus:{self.uri} ({self.passages_collection})"

    def exists(self) -> bool:
        try:
            self._manifest()
        except IndexMissingError:
            return False
        return True

    def generation(self) -> str:
        return self._manifest()["generation"]

    def _manifest(self) -> dict:
        if not self.client.has_collection(self.meta_collection) or not self.client.has_collection(self.passages_collection):
            raise IndexMissingError(f"no index in {self.describe()}; build one with `qa-bot index build`")
        self.client.load_collection(self.meta_collection)
        rows = self.client.query(self.meta_collection, ids=["manifest"], output_fields=["value"])
        if not rows:
            raise IndexMissingError(f"no index in {self.describe()}; build one with `qa-bot index build`")
        manifest = rows[0]["value"]
        check_format(manifest.get("format_version"), FORMAT_VERSION, self.describe())
        return manifest

    def open(self) -> MilvusStore:
        manifest = self._manifest()
        self.client.load_collection(self.passages_collection)
        rows = _scan(self.client, self.meta_collection, 'kind == "doc"', ["value"])
        documents = {row["value"]["name"]: DocumentInfo(**row["value"]) for row in rows}
        return MilvusStore(self, manifest, documents)

    def verify(self, full: bool = True) -> MilvusStore:
        """The rows and documents against the manifest's counts (Milvus keeps no checksums)."""
        store = self.open()
        rows = self.client.query(self.passages_collection, filter="", output_fields=["count(*)"])
        counted = int(rows[0]["count(*)"]) if rows else 0
        listed = sum(info.chunks for info in store.documents.values())
        if not counted == listed == store.passage_count:
            raise IndexCorruptError(
                f"index in {self.describe()} is inconsistent ({counted} passages stored, {listed} listed, "
                f"{store.passage_count} in the manifest); run `qa-bot index build`"
            )
        return store

    def create(self, model: str, dim: int, settings: dict) -> MilvusStore:
        manifest = {"model": model, "dim": dim, "chunker": settings, "generation": "", "built_at": time.time()}
        return MilvusStore(self, manifest, {}, fresh=True)

    def recreate(self, dim: int) -> None:
        """Drop and create both collections (a new model or chunker: nothing can be reused)."""
        client = self.client
        for name in (self.passages_collection, self.meta_collection):
            if client.has_collection(name):
                client.drop_collection(name)
        schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("source", DataType.VARCHAR, max_length=4096)
        schema.add_field("text", DataType.VARCHAR, max_length=65535)
        schema.add_field("record", DataType.JSON)
        for field in ("norm", "py"):
            schema.add_field(field, DataType.VARCHAR, max_length=65535, enable_analyzer=True,
                             analyzer_params=self.analyzer)
            schema.add_field(f"{field}_bm25", DataType.SPARSE_FLOAT_VECTOR)
            schema.add_function(Function(name=f"{field}_bm25", function_type=FunctionType.BM25,
                                         input_field_names=[field], output_field_names=[f"{field}_bm25"]))
        schema.add_field("vec", DataType.FLOAT_VECTOR, dim=dim)
        index_params = client.prepare_index_params()
        index_params.add_index(field_name="vec", index_type="AUTOINDEX", metric_type="COSINE")
        for field in ("norm", "py"):
            index_params.add_index(field_name=f"{field}_bm25", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25",
                                   params={"params": {"bm25_k1": bm25.K1, "bm25_b": bm25.B}})
        client.create_collection(self.passages_collection, schema=schema, index_params=index_params, consistency_level="Strong")
        meta = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
        meta.add_field("key", DataType.VARCHAR, is_primary=True, max_length=8192)
        meta.add_field("kind", DataType.VARCHAR, max_length=16)  # manifest | doc | df | pinyin_df
        meta.add_field("value", DataType.JSON)
        meta.add_field("vec", DataType.FLOAT_VECTOR, dim=2)  # Milvus wants a vector in every collection
        meta_index = client.prepare_index_params()
        meta_index.add_index(field_name="vec", index_type="FLAT", metric_type="L2")
        client.create_collection(self.meta_collection, schema=meta, index_params=meta_index, consistency_level="Strong")


class MilvusChunks(Sequence):
    """The passages of a Milvus store: len() from the manifest, [chunk_id] fetches, iteration reads all."""

    def __init__(self, location: MilvusLocation, count: int):
        self._location = location
        self._count = count  # from the manifest: no round trip per question
        self._cache: dict[int, ChunkRecord] = {}

    def __len__(self) -> int:
        return self._count

    def __getitem__(self, chunk_id):  # type: ignore[override]
        if chunk_id not in self._cache:
            self.fetch([chunk_id])
        if chunk_id not in self._cache:
            raise IndexError(f"no passage with id {chunk_id}")
        return self._cache[chunk_id]

    def remember(self, chunk_id: int, record: ChunkRecord) -> None:
        """Keep a passage a search already returned, so citing it needs no second query."""
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[chunk_id] = record

    def fetch(self, ids: Iterable[int]) -> None:
        """Read the passages not cached yet, in one query."""
        wanted = [i for i in dict.fromkeys(ids) if i not in self._cache]
        for first in range(0, len(wanted), BATCH):
            rows = self._location.client.query(
                self._location.passages_collection, ids=wanted[first : first + BATCH], output_fields=["text", "record"]
            )
            for row in rows:
                self.remember(row["id"], _record(row))

    def __iter__(self) -> Iterator[ChunkRecord]:
        return (_record(row) for row in _scan(self._location.client, self._location.passages_collection, "", ["text", "record"]))


def _record(row: dict) -> ChunkRecord:
    return ChunkRecord(text=row["text"], **row["record"])


class MilvusStore:
    """A Milvus collection as a qa_bot.stores.base.Store; searches always see the collection's current rows."""

    def __init__(self, location: MilvusLocation, manifest: dict, documents: dict[str, DocumentInfo],
                 fresh: bool = False):
        self.location = location
        self.model: str = manifest["model"]
        self.dim: int = manifest["dim"]
        self.settings: dict = manifest["chunker"]
        self.built_at: float = manifest["built_at"]
        self.generation: str = manifest["generation"]
        self.passage_count: int = manifest.get("passages", 0)
        self.tokens: dict[str, int] = manifest.get("tokens", {"norm": 0, "py": 0})  # per lexical field
        self.documents = documents
        self.chunks = MilvusChunks(location, self.passage_count)
        self._fresh = fresh

    @property
    def _client(self) -> MilvusClient:
        return self.location.client

    # -- reading -----------------------------------------------------------------

    def dense_search(self, vector: np.ndarray, n: int) -> dict[int, float]:
        hits = self._client.search(self.location.passages_collection, data=[vector.astype(np.float32).tolist()],
                                   anns_field="vec", limit=n, output_fields=["text", "record"])
        self._remember(hits[0])
        return {int(hit["id"]): float(hit["distance"]) for hit in hits[0]}

    def lexical_search(self, tokens: list[str], n: int, pinyin_words: list[str] | None = None) -> dict[int, float]:
        scores: Counter = Counter()
        for field, words in (("norm", tokens), ("py", pinyin_words or [])):
            if words:
                scores.update(self._bm25(field, words, n))
        return dict(scores.most_common(n))

    def _bm25(self, field: str, words: list[str], n: int) -> dict[int, float]:
        """Candidates from Milvus' BM25, scored with the collection-wide statistics."""
        hits = self._client.search(self.location.passages_collection, data=[_token_text(words)], anns_field=f"{field}_bm25",
                                   limit=n, output_fields=[field, "text", "record"])[0]
        if not hits:
            return {}
        self._remember(hits)
        passages = max(1, self.passage_count)
        average = self.tokens.get(field, 0) / passages
        df = self.document_frequency(words, pinyin=LEXICAL_FIELDS[field])
        idfs = {_token_text([t]): bm25.idf(d, passages) for t, d in df.items()}
        query = [_token_text([word]) for word in words]
        return {int(hit["id"]): bm25.score(query, hit.get("entity", hit)[field].split(), idfs, average) for hit in hits}

    def coverage(self, tokens: list[str], ids: Iterable[int]) -> dict[int, float]:
        ids = list(ids)
        passages = max(1, self.passage_count)
        idfs = {_token_text([t]): bm25.idf(d, passages) for t, d in self.document_frequency(tokens).items()}
        query = [_token_text([token]) for token in tokens]
        found = dict.fromkeys(ids, 0.0)
        for first in range(0, len(ids), BATCH):
            for row in self._client.query(self.location.passages_collection, ids=ids[first : first + BATCH],
                                          output_fields=["norm"]):
                present = set(row["norm"].split())
                found[int(row["id"])] = sum(idfs.get(t, 0.0) for t in query if t in present)
        return found

    def _remember(self, hits: list) -> None:
        """Searches return the passages too: keep them for the citations."""
        for hit in hits:
            self.chunks.remember(hit["id"], _record(hit.get("entity", hit)))

    def similarity(self, chunk_id: int, vector: np.ndarray) -> float:
        rows = self._client.query(self.location.passages_collection, ids=[chunk_id], output_fields=["vec"])
        return float(np.asarray(rows[0]["vec"], dtype=np.float32) @ vector) if rows else 0.0

    def document_frequency(self, tokens: Iterable[str], pinyin: bool = False) -> dict[str, int]:
        prefix = "pinyin_df:" if pinyin else "df:"
        keys = {prefix + _token_text([token]): token for token in tokens if token}  # stored as in the text fields
        found = {}
        wanted = list(keys)
        for first in range(0, len(wanted), BATCH):
            for row in self._client.query(self.location.meta_collection, ids=wanted[first : first + BATCH], output_fields=["value"]):
                found[keys[row["key"]]] = int(row["value"]["df"])
        return found

    def vectors_by_text(self, sources: set[str]) -> dict[str, np.ndarray]:
        found = {}
        for row in self._rows_of(sources, ["text", "record", "vec"]):
            found[_record(row).index_text()] = np.asarray(row["vec"], dtype=np.float32)
        return found

    def _rows_of(self, sources: Iterable[str], fields: list[str]) -> Iterator[dict]:
        names = sorted(sources)
        for first in range(0, len(names), 100):
            yield from _scan(self._client, self.location.passages_collection, f"source in {_quoted(names[first:first + 100])}",
                             fields)

    # -- writing -----------------------------------------------------------------

    def write(self, removed: set[str], added: list[NewDocument]) -> MilvusStore:
        """Replace documents' passages; see the module docstring for the order and what a crash leaves."""
        location, client = self.location, self._client
        if self._fresh:
            location.recreate(self.dim)
            removed = set()
        touched = sorted(removed | {doc.info.name for doc in added})
        if touched:
            client.delete(location.meta_collection, ids=[f"doc:{name}" for name in touched])
        frequencies: dict[str, Counter] = {"df": Counter(), "pinyin_df": Counter()}
        passages, tokens = (0, {"norm": 0, "py": 0}) if self._fresh else (self.passage_count, dict(self.tokens))
        for row in self._rows_of(removed, ["norm", "py"]):
            passages -= 1
            for field, kind in (("norm", "df"), ("py", "pinyin_df")):
                words = row[field].split()
                tokens[field] -= len(words)
                frequencies[kind].subtract(set(words))
        for first in range(0, len(touched), 100):  # added ones too: rows an interrupted write left
            client.delete(location.passages_collection, filter=f"source in {_quoted(touched[first : first + 100])}")
        rows = []
        for doc in added:
            for chunk, vector in zip(doc.chunks, doc.vectors):
                text = chunk.index_text()
                norm, py = tokenize(text), pinyin_tokens(text)
                frequencies["df"].update(set(_token_text(norm).split()))
                frequencies["pinyin_df"].update(set(_token_text(py).split()))
                passages += 1
                tokens["norm"] += len(norm)
                tokens["py"] += len(py)
                record = {k: v for k, v in asdict(chunk).items() if k != "text"}
                rows.append({
                    "id": _chunk_id(chunk.source, doc.info.sha256, chunk.start, chunk.end), "source": chunk.source,
                    "text": chunk.text, "record": record, "norm": _token_text(norm), "py": _token_text(py),
                    "vec": np.asarray(vector, dtype=np.float32).tolist(),
                })
        for first in range(0, len(rows), BATCH):
            client.insert(location.passages_collection, rows[first : first + BATCH])
        self._update_frequencies(frequencies)
        meta_rows = [{"key": f"doc:{doc.info.name}", "kind": "doc", "value": asdict(doc.info), "vec": [0.0, 0.0]}
                     for doc in added]
        manifest = {"format_version": FORMAT_VERSION, "model": self.model, "dim": self.dim, "chunker": self.settings,
                    "generation": f"m-{uuid.uuid4().hex}", "built_at": time.time(), "passages": passages,
                    "tokens": tokens}
        meta_rows.append({"key": "manifest", "kind": "manifest", "value": manifest, "vec": [0.0, 0.0]})
        for first in range(0, len(meta_rows), BATCH):
            client.upsert(location.meta_collection, meta_rows[first : first + BATCH])
        client.flush(location.passages_collection)  # BM25 search is slow over unflushed rows
        client.flush(location.meta_collection)
        return location.open()

    def _update_frequencies(self, frequencies: dict[str, Counter]) -> None:
        """Add the changes to the stored document frequencies; tokens that reach 0 are dropped."""
        client, meta = self._client, self.location.meta_collection
        for kind, change in frequencies.items():
            keys = [f"{kind}:{token}" for token, delta in change.items() if delta]
            current = {}
            for first in range(0, len(keys), BATCH):
                for row in client.query(meta, ids=keys[first : first + BATCH], output_fields=["value"]):
                    current[row["key"]] = int(row["value"]["df"])
            upserts, gone = [], []
            for key in keys:
                df = current.get(key, 0) + change[key[len(kind) + 1 :]]
                if df > 0:
                    upserts.append({"key": key, "kind": kind, "value": {"df": df}, "vec": [0.0, 0.0]})
                else:
                    gone.append(key)
            for first in range(0, len(upserts), BATCH):
                client.upsert(meta, upserts[first : first + BATCH])
            for first in range(0, len(gone), BATCH):
                client.delete(meta, ids=gone[first : first + BATCH])

    def tidy(self) -> None:
        """Nothing to tidy: Milvus keeps no generations."""

    def warm_up(self) -> None:
        """Nothing to build: Milvus holds its indexes (the collection was loaded when opened)."""
