"""BM25 tokenisations compared on DRCD dev (BM25 alone, chunks of the qa-bot index).

    python bench/tokenizer_sweep.py [--sample 1000]

Characters, bigrams, both, jieba words (the Simplified default dictionary) and jieba words +
bigrams, all on OpenCC t2s text. qa-bot uses the winner (textnorm.tokenize: uni+bigrams).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import bm25s  # noqa: E402
import jieba  # noqa: E402
import numpy as np  # noqa: E402

from bench.datasets import DRCD, RESULTS, drcd_questions, recall_summary, write_result  # noqa: E402
from qa_bot import QABot  # noqa: E402
from qa_bot.textnorm import to_simplified, tokenize  # noqa: E402


def _cjk_grams(text: str, sizes: tuple[int, ...]) -> list[str]:
    return [
        token
        for token in tokenize(text)
        if (len(token) in sizes and all("\u3400" <= ch <= "\u9fff" for ch in token)) or token.isascii()
    ]


def _jieba(text: str) -> list[str]:
    return [word for word in jieba.lcut(to_simplified(text).lower()) if word.strip()]


SCHEMES = {
    "characters": lambda text: _cjk_grams(text, (1,)),
    "bigrams": lambda text: _cjk_grams(text, (2,)),
    "characters + bigrams": tokenize,
    "jieba words": _jieba,
    "jieba words + bigrams": lambda text: _jieba(text) + _cjk_grams(text, (2,)),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sample", type=int, default=1000)
    args = parser.parse_args()
    bot = QABot(index_dir=RESULTS / "drcd-index", docs_dir=DRCD / "docs")
    bot.update()
    chunks = bot.store.chunks
    questions = drcd_questions(args.sample)
    print("| tokens | R@1 / R@5 / MRR@10 |\n|---|---|")
    rows = {}
    for name, scheme in SCHEMES.items():
        model = bm25s.BM25()
        model.index([scheme(chunk.index_text()) for chunk in chunks], show_progress=False)
        ranked = []
        for item in questions:
            tokens = [t for t in scheme(item["question"]) if t in model.vocab_dict]
            order = np.argsort(-model.get_scores(tokens))[:10] if tokens else []
            ranked.append([chunks[i] for i in order])
        rows[name] = recall_summary(ranked, questions)
        print(f"| {name} | {rows[name]} |", flush=True)
    write_result("tokenizer_sweep", {"sample": args.sample, "bm25_alone": rows})

if __name__ == "__main__":
    main()
