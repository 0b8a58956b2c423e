"""Benchmark data: DRCD dev (from ../shared), the seed-article questions, and Simplified variants."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

from qa_bot.textnorm import to_simplified

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
SEEDS = ROOT / "seeds"
SEED_QUESTIONS = ROOT / "tests" / "data" / "seed_questions.jsonl"
OFFTOPIC_QUESTIONS = ROOT / "tests" / "data" / "offtopic_questions.jsonl"
# The seed article again, in the style of questions written outside the team (report only, never tuned on).
SEED_PROBE = ROOT / "tests" / "data" / "seed_probe.jsonl"
SHARED = ROOT.parent / "shared" / "benchmarks"
DRCD = Path(os.environ.get("QA_BOT_DRCD", SHARED / "drcd-dev"))
HARDNEG = ROOT / "bench" / "data" / "drcd-hardneg"  # made by bench/make_hardneg.py


def read_jsonl(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def write_jsonl(path: Path, items: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for item in items:
            handle.write(json.dumps(item, ensure_ascii=False) + "\n")
    return path


def drcd_questions(sample: int | None = None, simplified: bool = False, seed: int = 0) -> list[dict]:
    """DRCD dev questions, optionally a random sample, optionally converted to Simplified."""
    questions = read_jsonl(DRCD / "questions.jsonl")
    if sample is not None and sample < len(questions):
        questions = random.Random(seed).sample(questions, sample)
    if simplified:
        questions = [{**q, "question": to_simplified(q["question"]), "lang": "zh-hans"} for q in questions]
    return [{**q, "lang": q.get("lang", "zh-hant")} if not simplified else q for q in questions]


def hit_rank(passages: list, item: dict) -> int | None:
    """1-based rank of the first passage (or chunk) overlapping the question's gold paragraph, else None."""
    for rank, passage in enumerate(passages, 1):
        if passage.source == item["source"] and passage.start < item["end"] and item["start"] < passage.end:
            return rank
    return None


def recall_summary(ranked_chunks: list[list], questions: list[dict]) -> str:
    """"R@1 / R@5 / MRR@10" of ranked chunk lists against DRCD gold paragraphs (same order as questions)."""
    ranks = [hit_rank(chunks[:10], item) for chunks, item in zip(ranked_chunks, questions)]
    n = len(questions)
    r1 = sum(r == 1 for r in ranks) / n
    r5 = sum(r is not None and r <= 5 for r in ranks) / n
    mrr = sum(1 / r for r in ranks if r) / n
    return f"{r1:.3f} / {r5:.3f} / {mrr:.3f}"


class TimedEmbedder:
    """Wraps an embedder: times passage embedding and keeps each passage's vector (an Embedder itself)."""

    def __init__(self, inner):
        self.inner = inner
        self.model_id, self.dim, self.backend, self.precision = inner.model_id, inner.dim, inner.backend, inner.precision
        self.embed_s = 0.0
        self.embedded = 0
        self.vectors: dict = {}

    def encode_passages(self, texts, *args, **kwargs):
        import time

        started = time.perf_counter()
        out = self.inner.encode_passages(texts, *args, **kwargs)
        self.embed_s += time.perf_counter() - started
        self.embedded += len(texts)
        self.vectors.update(zip(texts, out))
        return out

    def encode_query(self, text):
        return self.inner.encode_query(text)


CPU_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8")


def machine() -> dict:
    """What a speed figure depends on: CPU model, cores, and the ISA extensions that matter here."""
    import platform

    flags: set[str] = set()
    model = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(encoding="utf-8", errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "flags":
                flags = set(value.split())
            elif key.strip() == "model name":
                model = value.strip()
    return {"cpu": model, "cpus": os.cpu_count(), "cpu_flags": [f for f in CPU_FLAGS if f in flags],
            "python": platform.python_version()}


def write_result(name: str, data: dict) -> Path:
    """bench/results/<name>.json (committed): the data, with the date, the command and the machine."""
    import sys
    import time

    path = RESULTS / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "command": " ".join(["python", *sys.argv]),
            "machine": machine()}
    path.write_text(json.dumps({**data, "meta": meta}, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    return path
