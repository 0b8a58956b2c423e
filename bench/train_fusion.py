"""Train the per-question dense weight of the fused retriever -> qa_bot/fusion_model.json.

    python bench/train_fusion.py        (or: make fusion-model)

Data: DRCD dev (CC BY-SA 3.0), CMRC 2018 trial (CC BY-SA 4.0) and the DRCD hard-negative set
(bench/data/drcd-hardneg, derived from DRCD dev), split by document: documents whose name hashes
even (crc32) train, the rest validate. Only the train halves are fitted.

Label: for each question, the dense weights (0, 0.05, ..., 1) whose z-score fusion ranks a gold
passage first. Questions that every weight gets right, or none does, say nothing about the
weight and are skipped; the rest carry a soft label, the mean of their good weights (a question
that only dense-heavy fusion answers pulls towards 1). A logistic regression
(scikit-learn, L2, C=1) maps the question's BM25 evidence (`qa_bot.retriever.bm25_evidence`)
to that weight. Deterministic: same data, same file.
"""

from __future__ import annotations

import json
import sys
import zlib
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.fusion_data import SETS, Scored, candidates, open_bot  # noqa: E402
from qa_bot.retriever import FUSION_MODEL, DenseWeightModel, FusionSettings, Retriever, bm25_evidence  # noqa: E402

TRAIN_SETS = ("drcd", "cmrc-trial", "drcd-hardneg")
GRID = np.linspace(0.0, 1.0, 21)


def is_train(item: dict) -> bool:
    return zlib.crc32(item["source"].encode("utf-8")) % 2 == 0


def top1_hit(fusion: FusionSettings, scored: Scored, alpha: float | None, n: int) -> bool:
    fused = Retriever(None, None, fusion).fuse(scored.dense, scored.lexical, alpha, candidates=n)
    return max(fused, key=lambda i: fused[i]) in scored.gold


def examples(scored: list[Scored], n: int) -> tuple[list[np.ndarray], list[float]]:
    """Evidence and soft label of every informative question."""
    fixed = FusionSettings(method="zscore")
    features, labels = [], []
    for item in scored:
        if not item.lexical or not item.gold:
            continue
        good = np.array([top1_hit(fixed, item, float(a), n) for a in GRID])
        if good.any() and not good.all():
            features.append(bm25_evidence(item.lexical, n))
            labels.append(float(GRID[good].mean()))
    return features, labels


def fit(features: list[np.ndarray], labels: list[float]) -> DenseWeightModel:
    """Logistic regression on soft labels: each example twice, as 1 and 0, weighted label and 1 - label."""
    x = np.repeat(np.array(features), 2, axis=0)
    y = np.tile([1, 0], len(labels))
    weights = np.ravel([[label, 1.0 - label] for label in labels])
    model = LogisticRegression(C=1.0).fit(x, y, sample_weight=weights)
    return DenseWeightModel(round(float(model.intercept_[0]), 4), tuple(round(float(c), 4) for c in model.coef_[0]))


def recall_at_1(fusion: FusionSettings, scored: list[Scored], n: int) -> float:
    return round(float(np.mean([bool(s.gold) and top1_hit(fusion, s, None, n) for s in scored])), 4)


def train(scored_by_set: dict[str, list[Scored]], n: int) -> dict:
    features, labels = [], []
    for scored in scored_by_set.values():
        f, lab = examples([s for s in scored if is_train(s.item)], n)
        features += f
        labels += lab
    model = fit(features, labels)
    validation = {}
    for name, scored in scored_by_set.items():
        held_out = [s for s in scored if not is_train(s.item)]
        validation[name] = {
            "questions": len(held_out),
            "fixed z-score 0.4": recall_at_1(FusionSettings(0.4, "zscore"), held_out, n),
            "adaptive": recall_at_1(FusionSettings(method="adaptive", model=model), held_out, n),
        }
    return {
        "intercept": model.intercept,
        "coefficients": list(model.coefficients),
        "features": ["BM25 relative top gap 1 - s2/s1", "log #BM25 candidates >= 0.9 x top"],
        "trained_on": f"{len(labels)} informative questions from the train halves of {', '.join(scored_by_set)}",
        "data": "DRCD dev (CC BY-SA 3.0), CMRC 2018 trial (CC BY-SA 4.0), bench/data/drcd-hardneg (from DRCD dev)",
        "validation_recall@1": validation,
    }


def main() -> None:
    scored_by_set = {}
    for name in TRAIN_SETS:
        check = SETS[name]
        bot = open_bot(check)
        scored_by_set[name] = candidates(check, bot, check.load_questions())
    result = train(scored_by_set, 100)
    FUSION_MODEL.write_text(json.dumps(result, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(result, ensure_ascii=False, indent=1))


if __name__ == "__main__":
    main()
