"""Hybrid retrieval: dense (FAISS) + lexical (BM25 on Simplified tokens), fused by standardised scores.

For Chinese questions three scores of each candidate are z-scored and added with learned weights
(docs/architecture.md, "Fusion"): dense cosine, BM25, and coverage, the idf of the question's
words the passage contains at all. Coverage is the term-saturation evidence: a passage that wins
BM25 by repeating the question's words gains nothing on it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .records import ChunkRecord, Passage
from .textnorm import has_cjk, latin_words, query_tokens

if TYPE_CHECKING:
    from .embedding import Embedder
    from .stores import Store

MAX_QUESTION_CHARS = 2000  # longer questions are cut for matching (the model reads 512 tokens anyway)
CANDIDATES = 100
FUSION_MODEL = Path(__file__).with_name("fusion_model.json")  # made by `make fusion-model`


@dataclass(frozen=True)
class FusionModel:
    """Weights of a candidate's standardised dense, BM25 and coverage scores (they sum to 1).

    Learned by bench/train_fusion.py (listwise, on DRCD dev, CMRC 2018 trial and the DRCD
    hard-negative set, train halves); stored in qa_bot/fusion_model.json.
    """

    dense: float
    bm25: float
    coverage: float

    @classmethod
    def load(cls, path: Path = FUSION_MODEL) -> FusionModel:
        weights = json.loads(path.read_text(encoding="utf-8"))["weights"]
        return cls(float(weights["dense"]), float(weights["bm25"]), float(weights["coverage"]))


@dataclass(frozen=True)
class FusionSettings:
    """How the two sides are combined.

    "learned" (default): z-scores of dense, BM25 and coverage, weighted by `model`.
    "zscore" / "minmax": one fixed `dense_weight` for dense against BM25 (benchmarks and
    comparisons; dense_weight 1.0 or 0.0 give the dense-only and BM25-only rankings over the same
    candidates). Questions without CJK always use z-scores with `pinyin_dense_weight`.
    """

    dense_weight: float = 0.4
    method: str = "learned"  # or "zscore", "minmax"
    pinyin_dense_weight: float = 0.5  # questions without CJK: pinyin BM25 only knows names and places
    candidates: int = CANDIDATES
    model: FusionModel = field(default_factory=FusionModel.load)


def check_question(question: str) -> str:
    """Reject empty questions; cut very long ones. Returns the text to match."""
    if not isinstance(question, str):
        raise TypeError(f"question must be a string, not {type(question).__name__}")
    cleaned = "".join(ch if ch.isprintable() or ch.isspace() else " " for ch in question).strip()
    if not cleaned:
        raise ValueError("the question is empty: type a question about the documents")
    return cleaned[:MAX_QUESTION_CHARS]


def has_words(question: str) -> bool:
    """True when a question has something the documents can match: a Chinese character, a Latin word or a number.

    Emoji, punctuation and scripts the bot does not read (Korean, Cyrillic, …) have none: `ask`
    answers found=False rather than quote the passage that happens to be nearest.
    """
    return has_cjk(question) or bool(latin_words(question, pairs=False))


def _minmax(scores: np.ndarray) -> np.ndarray:
    if scores.size == 0:
        return scores
    low, high = float(scores.min()), float(scores.max())
    if high - low < 1e-9:
        return np.ones_like(scores)
    return (scores - low) / (high - low)


def _to_passage(chunk_id: int, chunk: ChunkRecord, score: float, similarity: float) -> Passage:
    return Passage(
        chunk.text, chunk.source, chunk.start, chunk.end, score, similarity, chunk.line, chunk.context, chunk_id,
        chunk.page, chunk.newlines,
    )


def _overlaps(a: Passage, b: Passage) -> bool:
    """True when two passages of one source share more than half of the shorter one."""
    if a.source != b.source:
        return False
    shared = min(a.end, b.end) - max(a.start, b.start)
    return shared > 0.5 * min(a.end - a.start, b.end - b.start)


class Retriever:
    """Searches one store snapshot."""

    def __init__(self, store: Store, embedder: Embedder, fusion: FusionSettings = FusionSettings()):
        self.store = store
        self.embedder = embedder
        self.fusion = fusion

    def dense_scores(self, query_vector: np.ndarray, n: int) -> dict[int, float]:
        return self.store.dense_search(query_vector, n)

    def lexical_scores(self, question: str, n: int) -> dict[int, float]:
        """BM25 over Simplified uni+bigrams (Latin words included; the question words left out: query_tokens);
        for questions without CJK, plus BM25 over the pinyin of the passages (names and places written in pinyin)."""
        pinyin = None if has_cjk(question) else latin_words(question)
        return self.store.lexical_search(query_tokens(question), n, pinyin)

    def search(self, question: str, k: int = 5, query_vector: np.ndarray | None = None) -> list[Passage]:
        """The k best passages for a question, best first (Passage.score: the fused score, higher is better)."""
        query = check_question(question)
        if k < 1:
            raise ValueError("k must be at least 1")
        if not self.store.chunks:
            return []
        n = min(self.fusion.candidates, len(self.store.chunks))
        if query_vector is None:
            query_vector = self.embedder.encode_query(query)
        dense = self.dense_scores(query_vector, n)
        lexical = self.lexical_scores(query, n)
        alpha = None if has_cjk(query) else self.fusion.pinyin_dense_weight
        coverage = None
        if alpha is None and lexical and self.fusion.method == "learned":
            coverage = self.store.coverage(query_tokens(query), set(dense) | set(lexical))
        fused = self.fuse(dense, lexical, coverage, alpha, candidates=n)
        ranked = sorted(fused.items(), key=lambda item: -item[1])
        passages: list[Passage] = []
        for chunk_id, score in ranked:
            similarity = dense.get(chunk_id)
            if similarity is None:
                similarity = self.store.similarity(chunk_id, query_vector)
            passage = _to_passage(chunk_id, self.store.chunks[chunk_id], score, similarity)
            if not any(_overlaps(passage, kept) for kept in passages):
                passages.append(passage)
            if len(passages) == k:
                break
        return passages

    def fuse(
        self, dense: dict[int, float], lexical: dict[int, float], coverage: dict[int, float] | None = None,
        alpha: float | None = None, candidates: int = 0,
    ) -> dict[int, float]:
        """Weighted sum of normalised scores over the union of both candidate lists.

        "minmax": dense cosine min-max scaled, BM25 divided by the best BM25 score.
        "zscore"/"learned": each side standardised over its own candidates, so a retriever whose
        top hits stand far above the rest (confident for this query) weighs more.
        "learned" with `coverage` (every candidate's, Store.coverage) and no `alpha`: the model's
        weights of dense, BM25 and coverage (standardised over the candidates); otherwise
        alpha (default: the settings' dense_weight) for dense and 1 - alpha for BM25.
        A candidate missing from one list gets that list's lowest score. When a store returns
        fewer BM25 hits than `candidates` (Milvus returns only matches), the rest count as 0,
        as the FAISS store's full score array has them.
        """
        if not lexical:
            return dense
        ids = sorted(set(dense) | set(lexical))
        dense_norm = _normalise(dense, ids, self.fusion.method, ratio=False)
        lexical_norm = _normalise(lexical, ids, self.fusion.method, ratio=True, zeros=candidates - len(lexical))
        if self.fusion.method == "learned" and coverage is not None and alpha is None:
            model = self.fusion.model
            fused = model.dense * dense_norm + model.bm25 * lexical_norm + model.coverage * _normalise(coverage, ids, "zscore", ratio=False)
        else:
            alpha = self.fusion.dense_weight if alpha is None else alpha
            fused = alpha * dense_norm + (1 - alpha) * lexical_norm
        return dict(zip(ids, fused.tolist()))


def _normalise(scores: dict[int, float], ids: list[int], method: str, ratio: bool, zeros: int = 0) -> np.ndarray:
    values = np.concatenate([list(scores.values()), np.zeros(max(0, zeros))])
    floor = float(values.min())
    column = np.array([scores.get(i, floor) for i in ids])
    if method in ("zscore", "learned"):
        spread = float(values.std())
        return (column - float(values.mean())) / spread if spread > 1e-9 else np.zeros_like(column)
    if ratio:
        return column / max(float(values.max()), 1e-9)
    return _minmax(column)
