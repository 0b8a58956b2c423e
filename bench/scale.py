"""Scale: build, save, load and query synthetic indexes of 10k, 100k and 1M passages.

    python bench/scale.py [--quick] [--sizes 10000 100000 1000000]

- Dense side: clustered random unit vectors (20 passages a cluster, like a few paragraphs
  on one topic). A query is a stored vector plus noise, so nearest neighbours mean
  something and the recall@10 of the chosen FAISS index against exact search is measured.
- Lexical side: passages made of real DRCD sentences, tokenised as qa-bot does. Their BM25
  matrix is computed here with numpy, in bm25s' own format and formula (bm25s.index
  would spend an hour in Python at a million passages); the runtime loads and queries it
  with bm25s as usual.
- Not included: embedding (at ~50 passages/s a million real passages take 5-6 hours on
  this machine; see bench/embed_speed.py) and tokenising the corpus.

Each size is saved with FaissStore.save, then loaded and queried in a fresh process, so load
time and RSS are that process's own. RSS counts the pages of memory-mapped index files
that queries touched (page cache the OS can evict); anon_mb is RSS without file-backed
pages: the process's own memory. retrieve() latency includes encoding the question with the real model.
Writes bench/results/scale.json.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.datasets import DRCD, RESULTS, drcd_questions, write_result  # noqa: E402
from qa_bot.records import ChunkRecord, DocumentInfo  # noqa: E402
from qa_bot.stores.faiss import FaissStore, dense_index  # noqa: E402
from qa_bot.textnorm import tokenize  # noqa: E402

DIM = 384
PASSAGES_PER_DOC = 50
CLUSTER_SIZE = 20
QUERIES = 200
BLOCK = 50_000
K1, B = 1.5, 0.75  # bm25s defaults (method "lucene")


def sentences() -> list[str]:
    """Sentences of the DRCD dev documents."""
    text = "\n".join(path.read_text(encoding="utf-8") for path in sorted((DRCD / "docs").rglob("*.txt")))
    return [s for s in re.findall(r"[^。！？\n]+[。！？]?", text) if len(s.strip()) > 4]


class SyntheticChunks(Sequence):
    """Passages of 150-500 characters made of random sentences, generated on access."""

    def __init__(self, n: int, sentence_texts: list[str], plan: list[np.ndarray]):
        self.n, self.sentence_texts, self.plan = n, sentence_texts, plan

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i):  # type: ignore[override]
        text = "".join(self.sentence_texts[s] for s in self.plan[i])
        doc, position = divmod(i, PASSAGES_PER_DOC)
        start = position * 400
        return ChunkRecord(f"doc{doc:06d}.txt", start, start + len(text), text, "", "paragraph", position + 1,
                           [[0, start, len(text)]])


def plan_passages(n: int, lengths: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
    """Sentence ids of each passage: random sentences until a random length in 150..500."""
    plan = []
    targets = rng.integers(150, 501, n)
    draws = rng.integers(0, len(lengths), (n, 24))
    for i in range(n):
        cumulative = np.cumsum(lengths[draws[i]])
        plan.append(draws[i][: int(np.searchsorted(cumulative, targets[i])) + 1])
    return plan


def bm25_matrix(plan: list[np.ndarray], sentence_tokens: list[np.ndarray], vocab_size: int, out: Path):
    """bm25s "lucene" scores, token-major (CSC), written to memory-mapped files under out/."""
    n = len(plan)
    counts = np.array([len(t) for t in sentence_tokens])
    doc_lengths = np.array([counts[p].sum() for p in plan], dtype=np.float64)
    average = doc_lengths.mean()

    def block_entries(first: int):
        """(token, doc, tf) of passages first..first+BLOCK, sorted by token then doc."""
        docs = plan[first : first + BLOCK]
        tokens = np.concatenate([sentence_tokens[s] for p in docs for s in p])
        owner = np.repeat(np.arange(len(docs)), [counts[p].sum() for p in docs])
        keys, tf = np.unique(tokens.astype(np.int64) * BLOCK + owner, return_counts=True)
        return keys // BLOCK, keys % BLOCK + first, tf

    df = np.zeros(vocab_size, dtype=np.int64)
    for first in range(0, n, BLOCK):
        df += np.bincount(block_entries(first)[0], minlength=vocab_size)
    indptr = np.concatenate([[0], np.cumsum(df)])
    idf = np.log(1 + (n - df + 0.5) / (df + 0.5))
    out.mkdir(parents=True, exist_ok=True)
    data = np.lib.format.open_memmap(out / "data.npy", "w+", np.float32, (int(indptr[-1]),))
    indices = np.lib.format.open_memmap(out / "indices.npy", "w+", np.int32, (int(indptr[-1]),))
    filled = indptr[:-1].copy()
    for first in range(0, n, BLOCK):
        token, doc, tf = block_entries(first)
        block_df = np.bincount(token, minlength=vocab_size)
        rank = np.arange(len(token)) - np.repeat(np.cumsum(block_df) - block_df, block_df)
        position = filled[token] + rank
        norm = K1 * (1 - B + B * doc_lengths[doc] / average)
        data[position] = idf[token] * tf / (tf + norm)
        indices[position] = doc
        filled += block_df
    return {"data": data, "indices": indices, "indptr": indptr.astype(np.int64), "num_docs": n}


def clustered_vectors(n: int, rng: np.random.Generator) -> np.ndarray:
    centres = rng.standard_normal((max(1, n // CLUSTER_SIZE), DIM), dtype=np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    vectors = np.empty((n, DIM), dtype=np.float32)
    for first in range(0, n, BLOCK):
        rows = min(BLOCK, n - first)
        block = centres[rng.integers(0, len(centres), rows)]
        block += 0.6 * rng.standard_normal((rows, DIM), dtype=np.float32) / math.sqrt(DIM)
        vectors[first : first + rows] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return vectors


def build(n: int, folder: Path, corpus: tuple) -> dict:
    """Synthetic index of n passages saved under folder; returns build figures."""
    import bm25s
    import faiss

    sentence_texts, sentence_tokens, vocab = corpus
    rng = np.random.default_rng(n)
    plan = plan_passages(n, np.array([len(s) for s in sentence_texts]), rng)
    vectors = clustered_vectors(n, rng)
    generated = time.perf_counter()
    dense = dense_index(vectors, DIM)
    dense_seconds = time.perf_counter() - generated
    scratch = folder.parent / f".{folder.name}-bm25"
    bm25 = bm25s.BM25()
    bm25.scores = bm25_matrix(plan, sentence_tokens, len(vocab), scratch)
    bm25.vocab_dict, bm25.nonoccurrence_array = vocab, None  # what bm25s.index sets for "lucene"
    lexical_seconds = time.perf_counter() - generated - dense_seconds
    chunks = SyntheticChunks(n, sentence_texts, plan)
    documents = {
        f"doc{d:06d}.txt": DocumentInfo(f"doc{d:06d}.txt", "0" * 64, 0, 0, PASSAGES_PER_DOC)
        for d in range(math.ceil(n / PASSAGES_PER_DOC))
    }
    saving = time.perf_counter()
    FaissStore("synthetic", DIM, {}, chunks, documents, dense, bm25).save(folder)
    save_seconds = time.perf_counter() - saving
    shutil.rmtree(scratch)
    queries = rng.integers(0, n, QUERIES)
    noisy = vectors[queries] + 0.5 * rng.standard_normal((QUERIES, DIM), dtype=np.float32) / math.sqrt(DIM)
    noisy /= np.linalg.norm(noisy, axis=1, keepdims=True)
    exact = faiss.knn(noisy, vectors, 10, metric=faiss.METRIC_INNER_PRODUCT)[1]
    np.save(folder / "queries.npy", noisy)
    np.save(folder / "exact.npy", exact)
    return {
        "passages": n,
        "index": "flat" if dense.__class__.__name__ == "IndexFlatIP" else "ivf",
        "build_s": round(dense_seconds + lexical_seconds + save_seconds, 1),
        "dense_build_s": round(dense_seconds, 1),
        "bm25_build_s": round(lexical_seconds, 1),
        "save_s": round(save_seconds, 1),
        "disk_mb": round(sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2**20),
    }


MEASURE = """
import json, sys, time
import numpy as np, psutil
started = time.perf_counter()
from qa_bot.stores.faiss import FaissStore
index = FaissStore.load(__import__("pathlib").Path(sys.argv[1]))
load_s = time.perf_counter() - started
from qa_bot.embedding import load_embedder
from qa_bot.retriever import Retriever
embedder = load_embedder()
retriever = Retriever(index, embedder)
questions = json.loads(sys.argv[2])
vectors, exact = np.load(sys.argv[1] + "/queries.npy"), np.load(sys.argv[1] + "/exact.npy")
hits, total, search_only = 0, [], []
for i, (question, vector) in enumerate(zip(questions, vectors)):
    t0 = time.perf_counter()
    embedder.encode_query(question)
    t1 = time.perf_counter()
    retriever.search(question, k=5, query_vector=vector)
    t2 = time.perf_counter()
    if i >= 5:  # warm-up
        total.append(t2 - t0)
        search_only.append(t2 - t1)
    hits += len(set(retriever.dense_scores(vector, 10)) & set(exact[i].tolist()))
ms = lambda xs, q: round(float(np.percentile(xs, q)) * 1000, 1)
print(json.dumps({
    "load_s": round(load_s, 2), "rss_mb": round(psutil.Process().memory_info().rss / 2**20),
    "anon_mb": round((lambda m: m.rss - m.shared)(psutil.Process().memory_info()) / 2**20),  # RSS less file pages
    "retrieve_p50_ms": ms(total, 50), "retrieve_p95_ms": ms(total, 95), "retrieve_p99_ms": ms(total, 99),
    "search_p50_ms": ms(search_only, 50), "search_p95_ms": ms(search_only, 95),
    "recall_at_10": round(hits / (10 * len(vectors)), 4),
}))
"""


def measure(folder: Path, questions: list[str]) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", MEASURE, str(folder), json.dumps(questions, ensure_ascii=False)],
        capture_output=True, text=True,
    )
    if result.returncode:
        raise RuntimeError(f"measuring {folder} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--quick", action="store_true", help="10k and 100k passages only")
    args = parser.parse_args()
    sizes = [s for s in args.sizes if s <= 100_000] if args.quick else args.sizes
    sentence_texts = sentences()
    vocab: dict[str, int] = {}
    sentence_tokens = [
        np.array([vocab.setdefault(t, len(vocab)) for t in tokenize(s)], dtype=np.int32) for s in sentence_texts
    ]
    questions = [q["question"] for q in drcd_questions(QUERIES)]
    rows = []
    for n in sizes:
        folder = RESULTS / "scale" / f"n{n}"
        shutil.rmtree(folder, ignore_errors=True)
        row = build(n, folder, (sentence_texts, sentence_tokens, vocab))
        row.update(measure(folder, questions))
        print(json.dumps(row), flush=True)
        rows.append(row)
        shutil.rmtree(folder)
    RESULTS.mkdir(parents=True, exist_ok=True)
    write_result("scale", {"rows": rows})


if __name__ == "__main__":
    main()
