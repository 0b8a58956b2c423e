"""Evaluation harness behind `qa-bot eval`: retrieval recall/MRR, answer and citation hits, latency,
and why each missed answer was missed."""

from __future__ import annotations

import json
import re
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from .bot import QABot
from .records import Passage
from .textnorm import to_simplified

_SPACE = re.compile(r"\s+")
_QUOTE_MARKS = "《》「」『』“”\"'〈〉()（）"
# Why an answerable question's answer missed: it was refused, no retrieved passage holds a gold answer (retrieval
# or chunking), or one does and the quotes are elsewhere (the answer layer). With answer_hit they partition the
# answerable questions, so a user sees which part of the pipeline to look at.
MISS_CAUSES = ("refused", "not_retrieved", "wrong_quote")


def load_questions(path: Path) -> list[dict]:
    """JSONL lines of {"question", "answers", optional "source"/"start"/"end", "lang", "id"}; a line without an id
    is named by its line number, so the misses it lists can be found in the file."""
    questions = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            item = json.loads(line)
            if "question" not in item or "answers" not in item:
                raise ValueError(f"{path}:{number}: each line needs 'question' and 'answers'")
            questions.append({"id": f"line {number}"} | item)
    return questions


def _squash(text: str) -> str:
    return _SPACE.sub("", text)


def _contains_answer(text: str, answers: list[str]) -> bool:
    squashed = _squash(text)
    return any(_squash(answer) in squashed for answer in answers)


def is_exact(text: str, answers: list[str]) -> bool:
    """A short answer is exact when it is a gold answer, script, spaces and enclosing quote marks aside."""
    bare = _squash(to_simplified(text)).strip(_QUOTE_MARKS)
    return any(bare == _squash(to_simplified(a)).strip(_QUOTE_MARKS) for a in answers)


def _gold_rank(passages: list[Passage], item: dict) -> int | None:
    """1-based rank of the first passage overlapping the gold span, None if absent."""
    for rank, passage in enumerate(passages, 1):
        if passage.source == item["source"] and passage.start < item["end"] and item["start"] < passage.end:
            return rank
    return None


def evaluate(bot: QABot, questions_path: Path, k: int = 10) -> dict:
    """Run every question through retrieve() and ask(); return overall and per-language metrics."""
    questions = load_questions(questions_path)
    rows = []
    for item in questions:
        started = time.perf_counter()
        passages = bot.retrieve(item["question"], k=k)
        retrieve_ms = (time.perf_counter() - started) * 1000
        started = time.perf_counter()
        answer = bot.ask(item["question"], item.get("history"))
        ask_ms = (time.perf_counter() - started) * 1000
        answers = item["answers"] if item.get("answerable", True) else []  # near-miss: gold kept, answer not indexed
        row = {"id": item["id"], "lang": item.get("lang", ""), "kind": item.get("kind", ""),
               "answerable": bool(answers),
               "found": answer.found, "retrieve_ms": retrieve_ms, "ask_ms": ask_ms, "confidence": answer.confidence}
        if answer.found:
            texts = [q.text for q in answer.quotes]
            row["answer_chars"] = sum(map(len, texts))
            row["duplicate_quote"] = len(texts) != len(set(texts))
        if answers:
            row["answer_hit"] = answer.found and _contains_answer(answer.text, answers)
            row["short_shown"] = answer.short is not None
            if answer.short is not None:
                row["short_exact"] = is_exact(answer.short.text, answers)
            row["citation_hit"] = any(_contains_answer(p.text, answers) for p in answer.citations)
            row["top1_holds_answer"] = bool(passages) and _contains_answer(passages[0].text, answers)
            cause = None if row["answer_hit"] else _miss_cause(answer.found, passages, answers)
            row |= {f"miss_{name}": cause == name for name in MISS_CAUSES}
            if "source" in item and "start" in item:
                rank = _gold_rank(passages, item)
                row["recall@1"] = rank == 1
                row["recall@5"] = rank is not None and rank <= 5
                row["rr@10"] = 1.0 / rank if rank is not None and rank <= 10 else 0.0
        rows.append(row)
    report = {"questions": len(rows), "overall": _summarise(rows)}
    for field in ("lang", "kind"):
        groups = defaultdict(list)
        for row in rows:
            if row[field]:
                groups[row[field]].append(row)
        report[f"by_{field}"] = {name: _summarise(group) for name, group in sorted(groups.items())}
    report["misses"] = [r["id"] for r in rows if r["answerable"] and not r["answer_hit"]]
    report["miss_causes"] = {name: [r["id"] for r in rows if r.get(f"miss_{name}")] for name in MISS_CAUSES}
    return report


def _miss_cause(found: bool, passages: list[Passage], answers: list[str]) -> str:
    """One of MISS_CAUSES for an answer that does not hold a gold answer; ``passages``: the top k retrieved."""
    if not found:
        return "refused"
    if not any(_contains_answer(p.text, answers) for p in passages):
        return "not_retrieved"
    return "wrong_quote"


def _mean(rows: list[dict], key: str) -> float | None:
    values = [float(row[key]) for row in rows if key in row]
    return round(sum(values) / len(values), 4) if values else None


def _summarise(rows: list[dict]) -> dict:
    answerable = [r for r in rows if r["answerable"]]
    unanswerable = [r for r in rows if not r["answerable"]]
    latencies = {
        name: np.percentile([r[f"{name}_ms"] for r in rows], [50, 95]).round(1).tolist() if rows else None
        for name in ("retrieve", "ask")
    }
    return {
        "answerable": len(answerable),
        "unanswerable": len(unanswerable),
        "recall@1": _mean(answerable, "recall@1"),
        "recall@5": _mean(answerable, "recall@5"),
        "mrr@10": _mean(answerable, "rr@10"),
        "top1_holds_answer": _mean(answerable, "top1_holds_answer"),
        "answer_hit": _mean(answerable, "answer_hit"),
        "citation_hit": _mean(answerable, "citation_hit"),
        "found_rate": _mean(answerable, "found"),
        "no_answer_rate": (
            round(sum(not r["found"] for r in unanswerable) / len(unanswerable), 4) if unanswerable else None
        ),
        **{f"miss_{name}": _mean(answerable, f"miss_{name}") for name in MISS_CAUSES},
        "short_shown": _mean(answerable, "short_shown"),
        "short_exact": _mean(answerable, "short_exact"),
        "median_answer_chars": float(np.median(chars)) if (chars := [r["answer_chars"] for r in rows if "answer_chars" in r]) else None,
        "duplicate_quotes": sum(r.get("duplicate_quote", False) for r in rows),
        "ece": _calibration_error(rows),
        "retrieve_ms_p50_p95": latencies["retrieve"],
        "ask_ms_p50_p95": latencies["ask"],
    }


def _calibration_error(rows: list[dict], bins: int = 10) -> float | None:
    """Expected calibration error of Answer.confidence against what it estimates, "the documents answer
    this question" (the question has gold answers), over every question asked."""
    if not rows:
        return None
    confidence = np.asarray([r["confidence"] for r in rows])
    answerable = np.asarray([r["answerable"] for r in rows], dtype=float)
    which = np.minimum((confidence * bins).astype(int), bins - 1)
    error = sum(abs(confidence[which == b].mean() - answerable[which == b].mean()) * (which == b).mean()
                for b in range(bins) if (which == b).any())
    return round(float(error), 4)


def format_table(report: dict) -> str:
    """A small Markdown table: one column for all questions, one per language and per kind."""
    columns = {"all": report["overall"], **report["by_lang"], **report["by_kind"]}
    metrics = [key for key in report["overall"] if any(col.get(key) is not None for col in columns.values())]
    lines = ["| metric | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for key in metrics:
        cells = []
        for column in columns.values():
            value = column.get(key)
            cells.append("–" if value is None else (f"{value[0]} / {value[1]}" if isinstance(value, list) else str(value)))
        lines.append(f"| {key} | " + " | ".join(cells) + " |")
    misses = "; ".join(f"{name.replace('_', ' ')}: {', '.join(map(str, ids[:30]))}"
                       for name, ids in report["miss_causes"].items() if ids)
    return "\n".join(lines) + f"\n\n{report['questions']} questions; misses: {misses or 'none'}"
