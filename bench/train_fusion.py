"""Train the fused retriever's weights of dense, BM25 and coverage -> qa_bot/fusion_model.json.

    python bench/train_fusion.py        (or: make fusion-model)

Data: DRCD dev (CC BY-SA 3.0), CMRC 2018 trial (CC BY-SA 4.0) and the DRCD hard-negative set
(bench/data/drcd-hardneg, derived from DRCD dev), split by document: documents whose name hashes
even (crc32) train, the rest validate. Only the train halves are fitted.

Model: a candidate's fused score is w · (z dense, z BM25, z coverage), the z-scores exactly as
`Retriever.fuse` computes them. Fitted listwise: for every Chinese question with a gold passage
among its candidates, a softmax over the candidates and the log-probability of the gold ones
(conditional logit, L2 = 0.01, scipy L-BFGS), so the weights are those that put gold passages
first. The weights are then scaled to sum to 1 (the ranking is unchanged; fused scores stay on the
z-score scale the answer layer reads). Deterministic: same data, same file.
"""

from __future__ import annotations

import json
import sys
import zlib
from pathlib import Path

import numpy as np
from scipy.optimize import minimize

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.fusion_data import SETS, Scored, candidates, open_bot  # noqa: E402
from qa_bot.retriever import FUSION_MODEL, FusionModel, FusionSettings, Retriever  # noqa: E402
from qa_bot.textnorm import has_cjk  # noqa: E402

TRAIN_SETS = ("drcd", "cmrc-trial", "drcd-hardneg")
FEATURES = ("dense", "bm25", "coverage")
L2 = 0.01  # a light pull towards 0 (three weights, ~2,200 questions: it changes them by < 1 %)


def is_train(item: dict) -> bool:
    return zlib.crc32(item["source"].encode("utf-8")) % 2 == 0


def columns(scored: Scored, n: int) -> np.ndarray:
    """The candidates' standardised scores, one row per candidate (sorted ids), as fuse() sees them."""
    rows = []
    for weights in np.eye(len(FEATURES)):
        retriever = Retriever(None, None, FusionSettings(model=FusionModel(*weights)))
        fused = retriever.fuse(scored.dense, scored.lexical, scored.coverage, candidates=n)
        rows.append([fused[i] for i in sorted(fused)])
    return np.array(rows).T


def informative(scored: Scored) -> bool:
    return bool(scored.gold) and bool(scored.lexical) and has_cjk(scored.item["question"])


def fit(groups: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """Weights maximising the summed log softmax-probability of each question's gold candidates."""

    def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
        total, grad = L2 * float(w @ w), 2 * L2 * w
        for x, gold in groups:
            scores = x @ w
            p = np.exp(scores - scores.max())
            p /= p.sum()
            p_gold = p[gold].sum()
            total -= np.log(p_gold)
            grad = grad - (np.where(gold, p, 0.0) / p_gold - p) @ x
        return total, grad

    return minimize(loss, np.full(len(FEATURES), 1.0 / len(FEATURES)), jac=True, method="L-BFGS-B").x


def recall_at_1(fusion: FusionSettings, scored: list[Scored], n: int) -> float:
    hits = []
    for s in scored:
        fused = Retriever(None, None, fusion).fuse(s.dense, s.lexical, s.coverage, candidates=n)
        hits.append(bool(s.gold) and max(fused, key=lambda i: fused[i]) in s.gold)
    return round(float(np.mean(hits)), 4)


def train(scored_by_set: dict[str, list[Scored]], n: int) -> dict:
    groups = []
    for scored in scored_by_set.values():
        for s in scored:
            if is_train(s.item) and informative(s):
                groups.append((columns(s, n), np.array([i in s.gold for i in sorted(set(s.dense) | set(s.lexical))])))
    w = fit(groups)
    model = FusionModel(*(round(float(x), 4) for x in w / w.sum()))
    validation = {}
    for name, scored in scored_by_set.items():
        held_out = [s for s in scored if not is_train(s.item)]
        validation[name] = {
            "questions": len(held_out),
            "fixed z-score 0.4": recall_at_1(FusionSettings(0.4, "zscore"), held_out, n),
            "learned": recall_at_1(FusionSettings(model=model), held_out, n),
        }
    return {
        "weights": {"dense": model.dense, "bm25": model.bm25, "coverage": model.coverage},
        "features": "z-scores of the dense cosine, BM25 and coverage (summed idf of the question tokens a passage contains)",
        "trained_on": f"{len(groups)} questions from the train halves of {', '.join(scored_by_set)}",
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
