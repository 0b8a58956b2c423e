"""Calibration texts for the int8 model (qa_bot/embedding/calibration.jsonl), from CMRC 2018 trial.

    python bench/make_calibration.py        (make calibration)

CMRC 2018 trial (Simplified Chinese Wikipedia, CC BY-SA 4.0, Cui et al. 2019) is used so that
DRCD dev, on which the int8 model's retrieval is judged, stays out of the calibration. The
texts are what the embedder sees: passages chunked as qa-bot chunks them (heading + chunk,
with the e5 ``passage: `` prompt) and questions (``query: ``), a fixed random sample.
"""

from __future__ import annotations

import json
import os
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.datasets import ROOT, read_jsonl  # noqa: E402
from qa_bot.chunking import chunk_text  # noqa: E402
from qa_bot.embedding.base import PASSAGE_PROMPT, QUERY_PROMPT  # noqa: E402
from qa_bot.embedding.int8 import CALIBRATION  # noqa: E402

CMRC = Path(os.environ.get("QA_BOT_CMRC", ROOT.parent / "shared" / "benchmarks" / "cmrc2018-trial"))
PASSAGES, QUERIES = 128, 64


def main() -> None:
    chunks = []
    for path in sorted((CMRC / "docs").glob("*.txt")):
        for chunk in chunk_text(path.read_text(encoding="utf-8")):
            chunks.append(f"{chunk.context}\n{chunk.text}" if chunk.context else chunk.text)
    questions = [q["question"] for q in read_jsonl(CMRC / "questions.jsonl")]
    rng = random.Random(0)
    texts = [PASSAGE_PROMPT + t for t in rng.sample(chunks, PASSAGES)]
    texts += [QUERY_PROMPT + q for q in rng.sample(questions, QUERIES)]
    with CALIBRATION.open("w", encoding="utf-8") as out:
        for text in texts:
            out.write(json.dumps({"text": text}, ensure_ascii=False) + "\n")
    print(f"wrote {len(texts)} texts to {CALIBRATION}")


if __name__ == "__main__":
    main()
