"""The retrieval check sets and their candidate lists (dense top-N and BM25 top-N per question).

Sets: DRCD dev, DRCD dev near-miss (answerable questions), CMRC 2018 trial, the seed-article
questions, and the dense-favouring DRCD hard-negative set (bench/make_hardneg.py). Each is indexed
by QABot under bench/results/<name>-index. `candidates()` scores every question once per side, so
fusion variants can be compared (and trained) offline on identical inputs.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from bench.datasets import DRCD, HARDNEG, RESULTS, SEED_QUESTIONS, SEEDS, SHARED, read_jsonl
from qa_bot import QABot
from qa_bot.retriever import CANDIDATES, Retriever, check_question
from qa_bot.textnorm import query_tokens

_SPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class CheckSet:
    name: str
    docs: Path
    questions: Path
    gold: str  # "paragraph": a chunk overlapping the gold paragraph; "answer": a chunk holding an answer

    def load_questions(self) -> list[dict]:
        """Answerable questions with text (CMRC trial has two empty ones)."""
        return [q for q in read_jsonl(self.questions) if q.get("answerable", True) and q["answers"] and q["question"].strip()]


def hardneg_docs() -> Path:
    """DRCD dev documents plus the near-duplicates, copied into one folder.

    Copies, not links: QABot refuses a link to a file outside its documents folder (it would
    publish that file), so a folder of links indexed as empty.
    """
    folder = RESULTS / "hardneg-docs"
    folder.mkdir(parents=True, exist_ok=True)
    for path in [*sorted((DRCD / "docs").glob("*.txt")), *sorted((HARDNEG / "negatives").glob("*.txt"))]:
        copy = folder / path.name
        if copy.is_symlink() or not copy.exists():
            copy.unlink(missing_ok=True)
            shutil.copyfile(path, copy)
    return folder


SETS = {
    "drcd": CheckSet("drcd", DRCD / "docs", DRCD / "questions.jsonl", "paragraph"),
    "drcd-nearmiss": CheckSet("drcd-nearmiss", SHARED / "drcd-dev-nearmiss" / "docs",
                              SHARED / "drcd-dev-nearmiss" / "questions.jsonl", "paragraph"),
    "cmrc-trial": CheckSet("cmrc-trial", SHARED / "cmrc2018-trial" / "docs",
                           SHARED / "cmrc2018-trial" / "questions.jsonl", "paragraph"),
    "seed": CheckSet("seed", SEEDS, SEED_QUESTIONS, "answer"),
    "drcd-hardneg": CheckSet("drcd-hardneg", RESULTS / "hardneg-docs", HARDNEG / "questions.jsonl", "paragraph"),
}


def open_bot(check: CheckSet, embedder=None, suffix: str = "") -> QABot:
    """The set's index in bench/results (``suffix``: a separate one, e.g. per precision), brought up to date."""
    docs = hardneg_docs() if check.name == "drcd-hardneg" else check.docs
    bot = QABot(index_dir=RESULTS / f"{check.name}-index{suffix}", docs_dir=docs, embedder=embedder)
    bot.update()
    return bot


def is_gold(check: CheckSet, chunk, item: dict) -> bool:
    """Does this chunk (or Passage) answer the question under the set's rule?"""
    if check.gold == "answer":
        text = _SPACE.sub("", chunk.text)
        return any(_SPACE.sub("", answer) in text for answer in item["answers"])
    return chunk.source == item["source"] and chunk.start < item["end"] and item["start"] < chunk.end


@dataclass
class Scored:
    item: dict
    dense: dict[int, float]
    lexical: dict[int, float]
    coverage: dict[int, float]  # of every candidate of either side (Store.coverage)
    gold: set[int]  # candidate ids that count as hits


def candidates(check: CheckSet, bot: QABot, questions: list[dict]) -> list[Scored]:
    """Both sides' top-N and their coverage for every question, with the hits among the candidates marked."""
    retriever = Retriever(bot.store, bot.embedder)
    chunks = bot.store.chunks
    n = min(CANDIDATES, len(chunks))
    out = []
    for item in questions:
        query = check_question(item["question"])
        dense = retriever.dense_scores(bot.embedder.encode_query(query), n)
        lexical = retriever.lexical_scores(query, n)
        coverage = bot.store.coverage(query_tokens(query), set(dense) | set(lexical))
        gold = {i for i in set(dense) | set(lexical) if is_gold(check, chunks[i], item)}
        out.append(Scored(item, dense, lexical, coverage, gold))
    return out
