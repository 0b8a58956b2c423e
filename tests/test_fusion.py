"""Fusion of the dense and BM25 sides: the per-question dense weight and its evidence."""

from __future__ import annotations

import math
import shutil

import numpy as np
import pytest
from conftest import ROOT

from qa_bot import QABot
from qa_bot.retriever import DenseWeightModel, FusionSettings, Retriever, bm25_evidence


def fuse(settings: FusionSettings, dense: dict, lexical: dict, alpha: float | None = None) -> list[int]:
    fused = Retriever(None, None, settings).fuse(dense, lexical, alpha, candidates=len(dense))
    return sorted(fused, key=lambda i: -fused[i])


# Candidates 0..19: dense prefers 1 over 0, BM25 prefers 0 over 1, both far above the rest.
DENSE = {i: 0.80 for i in range(20)} | {0: 0.86, 1: 0.88}
LEXICAL = {i: 1.0 for i in range(20)} | {0: 12.0, 1: 11.0}


def test_evidence_of_a_sharp_and_a_crowded_list():
    sharp = bm25_evidence({0: 10.0, 1: 2.0, 2: 1.0})
    assert sharp == pytest.approx([0.8, 0.0])  # 1 - 2/10; only the top within 90 %
    crowded = bm25_evidence({i: 10.0 - 0.01 * i for i in range(8)} | {8: 1.0})
    assert crowded[0] == pytest.approx(0.001)
    assert crowded[1] == pytest.approx(math.log(8))


def test_evidence_counts_missing_candidates_as_zero_and_handles_no_match():
    assert bm25_evidence({0: 5.0}, candidates=10) == pytest.approx([1.0, 0.0])
    assert bm25_evidence({0: 0.0, 1: 0.0}) == pytest.approx([0.0, 0.0])
    assert bm25_evidence({}) == pytest.approx([0.0, 0.0])


def test_shipped_model_gives_dense_more_say_when_bm25_cannot_separate():
    model = DenseWeightModel.load()
    sharp = model.weight(bm25_evidence({0: 10.0, 1: 2.0, 2: 1.0}))
    crowded = model.weight(bm25_evidence({i: 10.0 for i in range(30)}))
    assert 0.0 < sharp < crowded < 1.0


def test_model_round_trips_through_its_file(tmp_path):
    path = tmp_path / "model.json"
    path.write_text('{"intercept": 0.5, "coefficients": [-1.0, 2.0], "features": []}', encoding="utf-8")
    model = DenseWeightModel.load(path)
    assert model == DenseWeightModel(0.5, (-1.0, 2.0))
    assert model.weight(np.array([0.5, 0.0])) == pytest.approx(0.5)


def test_adaptive_fusion_follows_the_model_weight():
    dense_heavy = FusionSettings(model=DenseWeightModel(6.0, (0.0, 0.0)))
    bm25_heavy = FusionSettings(model=DenseWeightModel(-6.0, (0.0, 0.0)))
    assert fuse(dense_heavy, DENSE, LEXICAL)[0] == 1
    assert fuse(bm25_heavy, DENSE, LEXICAL)[0] == 0


def test_an_explicit_weight_overrides_the_model():
    bm25_heavy = FusionSettings(model=DenseWeightModel(-6.0, (0.0, 0.0)))
    assert fuse(bm25_heavy, DENSE, LEXICAL, alpha=1.0)[0] == 1


def test_fixed_settings_ignore_the_model():
    settings = FusionSettings(1.0, "zscore", model=DenseWeightModel(-6.0, (0.0, 0.0)))
    assert fuse(settings, DENSE, LEXICAL)[:2] == [1, 0]
    assert fuse(FusionSettings(0.0, "zscore"), DENSE, LEXICAL)[:2] == [0, 1]


# Through the real model: a DRCD article plus the near-duplicate of one of its paragraphs with the
# answer deleted (bench/data/drcd-hardneg). BM25 prefers the shorter near-duplicate; the dense side
# sees which of the two answers "which king's death ...?".
CASE = ROOT / "tests" / "data" / "fusion"  # the article and its near-duplicate (licence: its README)
QUESTION = {"question": "哪一位高句麗國王的死讓高句麗遭受內亂？", "source": "drcd-1199.txt", "start": 588, "end": 876}


@pytest.fixture(scope="module")
def hardneg_store(tmp_path_factory, real_embedder):
    docs = tmp_path_factory.mktemp("hardneg-docs")
    shutil.copy(CASE / QUESTION["source"], docs)
    shutil.copy(CASE / "neg-1199-15-2.txt", docs)
    bot = QABot(index_dir=tmp_path_factory.mktemp("hardneg-index"), docs_dir=docs, embedder=real_embedder)
    bot.rebuild()
    yield bot
    bot.close()


def top_is_gold(bot, settings: FusionSettings) -> bool:
    top = Retriever(bot.store, bot.embedder, settings).search(QUESTION["question"], 1)[0]
    return top.source == QUESTION["source"] and top.start < QUESTION["end"] and QUESTION["start"] < top.end


@pytest.mark.slow
def test_fused_keeps_the_dense_answer_against_a_near_duplicate(hardneg_store):
    assert top_is_gold(hardneg_store, FusionSettings(1.0, "zscore"))  # dense alone: right
    assert not top_is_gold(hardneg_store, FusionSettings(0.0, "zscore"))  # BM25 alone: the near-duplicate
    assert top_is_gold(hardneg_store, FusionSettings())  # the shipped fusion keeps dense's answer
