"""Hybrid retrieval: dense (FAISS) + lexical (BM25 on Simplified tokens), fused by normalised scores.

The dense weight of each question follows the evidence of its BM25 list (docs/architecture.md,
"Fusion"): when BM25 separates its top hit clearly it leads; when many candidates score alike
(same-topic passages sharing the question's words) the dense side gets more say.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .records import ChunkRecord, Passage
from .textnorm import has_cjk, latin_words, tokenize

if TYPE_CHECKING:
    from .embedding import Embedder
    from .stores import Store

MAX_QUESTION_CHARS = 2000  # longer questions are cut for matching (the model reads 512 tokens anyway)
CANDIDATES = 100
FUSION_MODEL = Path(__file__).with_name("fusion_model.json")  # made by `make fusion-model`
CROWD_SHARE = 0.9  # a BM25 candidate scoring >= 90 % of the top one is "as good" for BM25


def bm25_evidence(lexical: dict[int, float], candidates: int = 0) -> np.ndarray:
    """What the BM25 list says about its own reliability for this question:
    [relative gap between its two best scores (1 - s2/s1), log of how many candidates score
    within CROWD_SHARE of the best (passages BM25 cannot tell apart)]."""
    values = np.sort(np.concatenate([list(lexical.values()), np.zeros(max(0, candidates - len(lexical)))]))[::-1]
    top = float(values[0]) if values.size else 0.0
    if top <= 1e-9:
        return np.array([0.0, 0.0])
    second = float(values[1]) if values.size > 1 else 0.0
    return np.array([1.0 - second / top, math.log(int((values >= CROWD_SHARE * top).sum()))])


@dataclass(frozen=True)
class DenseWeightModel:
    """Logistic model of a question's dense weight from its BM25 evidence (bm25_evidence).

    Trained by bench/train_fusion.py on DRCD dev, CMRC 2018 trial and the DRCD hard-negative
    set (train halves); the coefficients live in qa_bot/fusion_model.json.
    """

    intercept: float
    coefficients: tuple[float, ...]

    @classmethod
    def load(cls, path: Path = FUSION_MODEL) -> DenseWeightModel:
        data = json.loads(path.read_text(encoding="utf-8"))
        return cls(float(data["intercept"]), tuple(float(c) for c in data["coefficients"]))

    def weight(self, evidence: np.ndarray) -> float:
        """The dense weight in (0, 1); BM25 gets the rest."""
        return 1.0 / (1.0 + math.exp(-(self.intercept + float(np.dot(self.coefficients, evidence)))))


@dataclass(frozen=True)
class FusionSettings:
    """How the two sides are combined.

    "adaptive" (default): z-scores, with a dense weight per question from `model`.
    "zscore" / "minmax": one fixed `dense_weight` for every question (benchmarks and comparisons;
    dense_weight 1.0 or 0.0 give the dense-only and BM25-only rankings over the same candidates).
    """

    dense_weight: float = 0.4
    method: str = "adaptive"  # or "zscore", "minmax"
    pinyin_dense_weight: float = 0.5  # questions without CJK: pinyin BM25 only knows names and places
    candidates: int = CANDIDATES
    model: DenseWeightModel = field(default_factory=DenseWeightModel.load)


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
        """BM25 over Simplified uni+bigrams (Latin words included); for questions without CJK,
        plus BM25 over the pinyin of the passages (names and places written in pinyin)."""
        pinyin = None if has_cjk(question) else latin_words(question)
        return self.store.lexical_search(tokenize(question), n, pinyin)

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
        fused = self.fuse(dense, lexical, alpha, candidates=n)
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
        self, dense: dict[int, float], lexical: dict[int, float], alpha: float | None = None, candidates: int = 0
    ) -> dict[int, float]:
        """Weighted sum of normalised dense and BM25 scores over the union of both candidate lists.

        "minmax": dense cosine min-max scaled, BM25 divided by the best BM25 score.
        "zscore"/"adaptive": each side standardised over its own candidates, so a retriever whose
        top hits stand far above the rest (confident for this query) weighs more.
        alpha: the dense weight; None means the settings' (per question for "adaptive").
        A candidate missing from one list gets that list's lowest score. When a store returns
        fewer BM25 hits than `candidates` (Milvus returns only matches), the rest count as 0,
        as the FAISS store's full score array has them.
        """
        if not lexical:
            return dense
        zeros = candidates - len(lexical)
        if alpha is None:
            adaptive = self.fusion.method == "adaptive"
            alpha = self.fusion.model.weight(bm25_evidence(lexical, candidates)) if adaptive else self.fusion.dense_weight
        ids = sorted(set(dense) | set(lexical))
        dense_norm = _normalise(dense, ids, self.fusion.method, ratio=False)
        lexical_norm = _normalise(lexical, ids, self.fusion.method, ratio=True, zeros=zeros)
        fused = alpha * dense_norm + (1 - alpha) * lexical_norm
        return dict(zip(ids, fused.tolist()))


def _normalise(scores: dict[int, float], ids: list[int], method: str, ratio: bool, zeros: int = 0) -> np.ndarray:
    values = np.concatenate([list(scores.values()), np.zeros(max(0, zeros))])
    floor = float(values.min())
    column = np.array([scores.get(i, floor) for i in ids])
    if method in ("zscore", "adaptive"):
        spread = float(values.std())
        return (column - float(values.mean())) / spread if spread > 1e-9 else np.zeros_like(column)
    if ratio:
        return column / max(float(values.max()), 1e-9)
    return _minmax(column)
