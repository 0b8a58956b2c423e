"""FAISS store vs Milvus store (Milvus Lite) on DRCD dev: the same passages and embeddings.

    python bench/stores.py [--quick]

The FAISS index of bench/run_quality.py (bench/results/drcd-index) is built or updated,
then copied into a fresh Milvus Lite file with `QABot.migrate` (no re-embedding) and
back into a fresh FAISS folder: both copies time how long each store takes to write the
same embedded passages. Then every DRCD question (Traditional) is asked of both stores in
turn, recording recall@1/@5, MRR@10 and retrieve() latency. Writes bench/results/stores.json.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.datasets import DRCD, RESULTS, drcd_questions, hit_rank, write_result  # noqa: E402
from qa_bot import QABot  # noqa: E402
from qa_bot.stores import StoreConfig  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="500 DRCD questions instead of all 3,524")
    args = parser.parse_args()
    faiss_bot = QABot(index_dir=RESULTS / "drcd-index", docs_dir=DRCD / "docs")
    faiss_bot.update()
    embedder = faiss_bot.embedder
    milvus_dir, faiss_copy = RESULTS / "stores-milvus", RESULTS / "stores-faiss"
    for folder in (milvus_dir, faiss_copy):
        shutil.rmtree(folder, ignore_errors=True)
    milvus_config = StoreConfig(kind="milvus", milvus_uri=str(milvus_dir / "milvus.db"))
    started = time.perf_counter()
    faiss_bot.migrate(milvus_config)
    milvus_write = time.perf_counter() - started
    milvus_bot = QABot(index_dir=milvus_dir, docs_dir=DRCD / "docs", embedder=embedder, store=milvus_config)
    started = time.perf_counter()
    milvus_bot.migrate(StoreConfig(kind="faiss"))  # into milvus_dir's FAISS files: a FAISS write of the same
    faiss_write = time.perf_counter() - started
    bots = {"faiss": faiss_bot, "milvus": milvus_bot}
    questions = drcd_questions(500 if args.quick else None)
    ranks: dict[str, list] = {name: [] for name in bots}
    seconds: dict[str, list] = {name: [] for name in bots}
    for bot in bots.values():
        bot.retrieve("暖機", k=10)  # load the model and the indexes before timing
    for item in questions:
        for name, bot in bots.items():
            started = time.perf_counter()
            passages = bot.retrieve(item["question"], k=10)
            seconds[name].append(time.perf_counter() - started)
            ranks[name].append(hit_rank(passages, item))
    rows = {}
    for name in bots:
        found = ranks[name]
        rows[name] = {
            "recall_at_1": round(sum(r == 1 for r in found) / len(found), 4),
            "recall_at_5": round(sum(r is not None and r <= 5 for r in found) / len(found), 4),
            "mrr_at_10": round(sum(1 / r for r in found if r) / len(found), 4),
            "retrieve_p50_ms": round(float(np.percentile(seconds[name], 50)) * 1000, 1),
            "retrieve_p95_ms": round(float(np.percentile(seconds[name], 95)) * 1000, 1),
            "write_s": round(faiss_write if name == "faiss" else milvus_write, 1),
            "passages": len(bots[name].store.chunks),
        }
        print(name, rows[name], flush=True)
    milvus_bot.close()
    result = {"questions": len(questions), "stores": rows}
    write_result("stores", result)


if __name__ == "__main__":
    main()
