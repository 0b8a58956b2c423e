"""Build the dense-favouring check set `bench/data/drcd-hardneg` from DRCD dev (deterministic).

    python bench/make_hardneg.py

For a sample of DRCD dev questions (at most one per paragraph), a near-duplicate of the
question's gold paragraph is written as its own document: the same title and paragraph with
every occurrence of the gold answer deleted. The near-duplicate keeps (almost) all of the
question's words and loses the answer, so BM25 cannot tell it from the gold paragraph (it
even prefers it, being shorter), while a reader, or a dense encoder, can see that only one of
them answers. The corpus is the DRCD dev documents plus these near-duplicates; a question is
answered by its original paragraph, never by the near-duplicate.
"""

from __future__ import annotations

import random
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.datasets import DRCD, HARDNEG, read_jsonl, write_jsonl  # noqa: E402

QUESTIONS = 400
SEED = 12
MIN_ANSWER_CHARS = 2  # a one-character answer deleted everywhere would mangle unrelated words


def near_duplicate(paragraph: str, answers: list[str]) -> str | None:
    """The paragraph without its answer, or None when the answer is not in it or is too short."""
    answer = answers[0]
    if len(answer) < MIN_ANSWER_CHARS or answer not in paragraph:
        return None
    stripped = paragraph.replace(answer, "")
    return stripped if len(stripped) >= 0.7 * len(paragraph) else None


def main() -> None:
    questions = read_jsonl(DRCD / "questions.jsonl")
    random.Random(SEED).shuffle(questions)
    texts: dict[str, str] = {}
    chosen, seen = [], set()
    negatives = HARDNEG / "negatives"
    shutil.rmtree(negatives, ignore_errors=True)
    negatives.mkdir(parents=True)
    for item in questions:
        paragraph_key = (item["source"], item["start"])
        if paragraph_key in seen:
            continue
        if item["source"] not in texts:
            texts[item["source"]] = (DRCD / "docs" / item["source"]).read_text(encoding="utf-8")
        text = texts[item["source"]]
        duplicate = near_duplicate(text[item["start"] : item["end"]], item["answers"])
        if duplicate is None:
            continue
        seen.add(paragraph_key)
        title = text.split("\n", 1)[0]
        (negatives / f"neg-{item['id']}.txt").write_text(f"{title}\n\n{duplicate}\n", encoding="utf-8")
        chosen.append({**item, "lang": "zh-hant", "kind": "hard-negative"})
        if len(chosen) == QUESTIONS:
            break
    write_jsonl(HARDNEG / "questions.jsonl", sorted(chosen, key=lambda q: q["id"]))
    print(f"{len(chosen)} questions and near-duplicates in {HARDNEG}")


if __name__ == "__main__":
    main()
