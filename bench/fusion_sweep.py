"""Compare fusion methods and weights on the same candidate lists (dense top-N, BM25 top-N).

    python bench/fusion_sweep.py [--sample 1000]

Scores every question once per side, then re-fuses offline, so all variants are measured
on identical inputs (the shipped three-score fusion is measured by bench/run_fusion.py). Prints R@1 / R@5 / MRR@10 on DRCD (Traditional and Simplified
questions) and top-1 answer-in-passage on the seed questions.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.datasets import (  # noqa: E402
    DRCD,
    RESULTS,
    SEED_QUESTIONS,
    SEEDS,
    drcd_questions,
    read_jsonl,
    recall_summary,
    write_result,
)
from qa_bot import QABot  # noqa: E402
from qa_bot.retriever import FusionSettings, Retriever  # noqa: E402
from qa_bot.textnorm import has_cjk  # noqa: E402

VARIANTS = {
    "dense": None,
    "bm25": None,
    "rrf60": None,
    **{f"minmax a={a}": FusionSettings(a, "minmax") for a in (0.2, 0.3, 0.5)},
    **{f"zscore a={a}": FusionSettings(a, "zscore") for a in (0.3, 0.4, 0.5, 0.6)},
}


def rank(variant: str, retriever: Retriever, dense: dict, lexical: dict) -> list[int]:
    if variant == "dense" or not lexical:
        scores = dense
    elif variant == "bm25":
        scores = lexical
    elif variant == "rrf60":
        scores = {}
        for side in (dense, lexical):
            for position, chunk_id in enumerate(sorted(side, key=lambda i: -side[i]), 1):
                scores[chunk_id] = scores.get(chunk_id, 0.0) + 1 / (60 + position)
    else:
        retriever.fusion = VARIANTS[variant]
        scores = retriever.fuse(dense, lexical)
    return sorted(scores, key=lambda i: -scores[i])[:10]


def candidates(bot: QABot, questions: list[dict]) -> list[tuple[dict, dict, dict]]:
    retriever = Retriever(bot.store, bot.embedder)
    n = min(100, len(bot.store.chunks))
    out = []
    for item in questions:
        q = item["question"]
        dense = retriever.dense_scores(bot.embedder.encode_query(q), n)
        lexical = retriever.lexical_scores(q, n) if has_cjk(q) else {}
        out.append((item, dense, lexical))
    return out, retriever


def score_drcd(bot, scored, retriever) -> dict[str, str]:
    chunks = bot.store.chunks
    return {
        variant: recall_summary(
            [[chunks[i] for i in rank(variant, retriever, dense, lexical)] for _, dense, lexical in scored],
            [item for item, _, _ in scored],
        )
        for variant in VARIANTS
    }


def score_seed(bot, scored, retriever) -> dict[str, str]:
    table = {}
    for variant in VARIANTS:
        hits = 0
        for item, dense, lexical in scored:
            top = bot.store.chunks[rank(variant, retriever, dense, lexical)[0]].text.replace("\n", "")
            hits += any(answer in top for answer in item["answers"])
        table[variant] = f"{hits / len(scored):.3f}"
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sample", type=int, default=1000)
    args = parser.parse_args()
    seed_bot = QABot(index_dir=RESULTS / "seed-index", docs_dir=SEEDS)
    seed_bot.update()
    drcd_bot = QABot(index_dir=RESULTS / "drcd-index", docs_dir=DRCD / "docs")
    drcd_bot.update()
    columns = {
        "seed top-1": score_seed(seed_bot, *candidates(seed_bot, read_jsonl(SEED_QUESTIONS))),
        "DRCD": score_drcd(drcd_bot, *candidates(drcd_bot, drcd_questions(args.sample))),
        "DRCD simplified": score_drcd(drcd_bot, *candidates(drcd_bot, drcd_questions(args.sample, simplified=True))),
    }
    print("| variant | " + " | ".join(columns) + " |")
    print("|---" * (len(columns) + 1) + "|")
    for variant in VARIANTS:
        print(f"| {variant} | " + " | ".join(col[variant] for col in columns.values()) + " |")
    write_result("fusion_sweep", {"sample": args.sample, "columns": columns})


if __name__ == "__main__":
    main()
