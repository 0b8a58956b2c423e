"""Answers through the real stack (real model, FAISS, BM25) on the seed article."""

from __future__ import annotations

import json
import re

import pytest
from conftest import DATA, SEED_FILE

from qa_bot.answer import contextual_query, is_elliptical

ORIGINAL = SEED_FILE.read_text(encoding="utf-8")
SEED_QUESTIONS = [json.loads(line) for line in (DATA / "seed_questions.jsonl").open(encoding="utf-8")]
OFFTOPIC = [json.loads(line) for line in (DATA / "offtopic_questions.jsonl").open(encoding="utf-8")]
PROBE = [json.loads(line) for line in (DATA / "seed_probe.jsonl").open(encoding="utf-8")]


def squash(text: str) -> str:
    return re.sub(r"\s+", "", text)


def assert_exact_citations(answer, index) -> None:
    """Quotes are exact substrings of their citation; every citation character is the source's own."""
    for quote in answer.quotes:
        passage = answer.citations[quote.citation - 1]
        assert passage.text[quote.passage_start : quote.passage_end] == quote.text
        assert squash(ORIGINAL[quote.start : quote.end]) == squash(quote.text)
        assert f"{quote.text}[{quote.citation}]" in answer.text
    for passage in answer.citations:
        chunk = index.chunks[passage.chunk_id]
        assert chunk.text == passage.text and (chunk.start, chunk.end) == (passage.start, passage.end)
        for position, char in enumerate(passage.text):
            original = ORIGINAL[chunk.original_offset(position)]
            assert char == original or (char.isspace() and original.isspace())


def test_probe_golds_are_the_articles_words_and_ids_unique():
    """The outside-style probe (bench/run_quality.py reports it) must score what it claims: every gold answer is
    text of the seed article, and the unanswerable questions are marked near-topic."""
    article = squash(ORIGINAL)
    assert len({item["id"] for item in PROBE}) == len(PROBE)
    for item in PROBE:
        assert all(squash(answer) in article for answer in item["answers"]), item["id"]
        assert (item["kind"] == "near-topic") == (not item["answers"]), item["id"]


@pytest.mark.slow
def test_seed_questions_answer_hit_and_exact_quotes(seed_bot):
    hits = 0
    for item in SEED_QUESTIONS:
        answer = seed_bot.ask(item["question"])
        assert_exact_citations(answer, seed_bot.store)
        hits += answer.found and any(squash(a) in squash(answer.text) for a in item["answers"])
    # Measured 2026-12-03 with the confidence trained on "the documents answer this" (near-topic and off-topic
    # negatives): 66 of 77 (0.857; 8 answerable ones refused, the hand-set picker 3), against 68 with the
    # earlier confidence, which refused 4 of the 11 near-topic seed questions where this one refuses 6
    # (bench/results/answer_model.json, "seed").
    assert hits >= len(SEED_QUESTIONS) - 12, f"answer-hit {hits}/{len(SEED_QUESTIONS)}"


@pytest.mark.slow
def test_clearly_offtopic_questions_are_not_found(seed_bot):
    clear = [item for item in OFFTOPIC if item.get("kind") == "offtopic"]
    not_found = sum(not seed_bot.ask(item["question"]).found for item in clear)
    assert not_found >= len(clear) - 1, f"{not_found}/{len(clear)} off-topic questions rejected"  # measured: 13 of 13


@pytest.mark.slow
@pytest.mark.parametrize(
    ("question", "expected", "message"),
    [
        ("What is the capital of France?", None, "do not seem to answer"),
        ("如何用Python读取Excel文件？", None, "没有找到"),
        ("今天天氣如何？", None, "沒有找到"),
        ("交流會在哪裡召開？", "北京", None),
        ("六有是指甚麼？", "有組織、有制度、有陣地、有計劃、有活動、有考核", None),
        ("湖北省政协主席是谁？", "徐立全", None),
        ("湖北省政協主席叫什麼名字？", "徐立全", None),  # 什麼 is no query token (textnorm.query_tokens)
    ],
)
def test_answer_or_plain_not_found_message(seed_bot, question, expected, message):
    answer = seed_bot.ask(question)
    if expected:
        assert answer.found and expected in answer.text
        assert answer.quotes and answer.highlights(answer.quotes[0].citation)
    else:
        assert not answer.found and message in answer.text
        assert answer.citations, "the closest passages are still listed"


@pytest.mark.slow
def test_a_question_on_one_province_is_not_answered_from_another(seed_bot, monkeypatch):
    """The reader doubts the Beijing passage (its answer, 網絡議政遠程協商, sits two paragraphs below the name) and
    is sure of Fujian's 「協商進村」 in passage 2, which does not name 北京市政協: passage 2 is not read in its place."""
    question = "北京市政協在網上用什麼方式協商？"
    assert "協商進村" not in seed_bot.ask(question).text
    monkeypatch.setattr("qa_bot.answer._names_lost", lambda *passages: False)
    assert "協商進村" in seed_bot.ask(question).text


@pytest.mark.slow
@pytest.mark.parametrize(
    ("history", "follow_up", "expected", "unexpected"),
    [
        ([("福建省政協主席是誰？", "")], "那湖北呢？", "徐立全", None),
        ([{"role": "user", "content": "北京市政協主席是誰？"}, {"role": "assistant", "content": "吉林"}],
         "浙江呢？", "葛慧君", None),
        ([("青海省政協主席是誰？", "")], "他提到建立了幾項工作機制？", "三項工作機制", None),
    ],
)
def test_follow_up_questions_use_the_conversation(seed_bot, history, follow_up, expected, unexpected):
    answer = seed_bot.ask(follow_up, history=history)
    assert answer.found and expected in answer.text, answer.text
    assert_exact_citations(answer, seed_bot.store)


def test_elliptical_detection():
    assert is_elliptical("那湖北呢？")
    assert is_elliptical("他是誰？")
    assert is_elliptical("What about Hubei?")
    assert not is_elliptical("湖北省政協主席是誰？")
    assert not is_elliptical("Who is the chairman of the Hubei CPPCC?")
    history = [("福建省政協主席是誰？", "崔玉英")]
    assert contextual_query("那湖北呢？", history) == "福建省政協主席是誰？ 那湖北呢？"
    assert contextual_query("湖北省政協主席是誰？", history) == "湖北省政協主席是誰？"
    assert contextual_query("那湖北呢？", None) == "那湖北呢？"


@pytest.mark.slow
def test_answer_language_follows_the_question(seed_bot):
    assert seed_bot.ask("交流會在哪裡召開？").language == "zh-hant"
    assert seed_bot.ask("交流会在哪里召开？").language == "zh-hans"
    assert seed_bot.ask("Where was the meeting held?").language == "en"
    # quotations keep the document's own (Traditional) characters for a Simplified question
    answer = seed_bot.ask("湖北省政协主席是谁？")
    assert "湖北省政協主席徐立全" in answer.text


def test_pinyin_tokens_bridge_english_names():
    from qa_bot.textnorm import latin_words, pinyin_tokens

    tokens = pinyin_tokens("山東省政協主席付志方")
    assert {"shandong", "zhifang", "fuzhifang"} <= set(tokens)
    assert "he" not in tokens  # single syllables are left out
    assert latin_words("Who is Wang Yang?") == ["who", "is", "wang", "yang", "whois", "iswang", "wangyang"]


def test_english_questions_embed_each_sentence_once(fast_bot, hash_embedder, monkeypatch):
    """Questions without CJK compare the question with every sentence of the top passages: a sentence
    embedded for one question is not embedded again for the next, and the oldest are let go."""
    import qa_bot.bot

    question = "Where was the national exchange meeting held?"
    first = fast_bot.ask(question)
    embedded = sum(hash_embedder.calls)
    assert embedded > 0
    hash_embedder.calls.clear()
    again = fast_bot.ask(question)
    assert hash_embedder.calls == [] and again.to_dict() == first.to_dict()
    monkeypatch.setattr(qa_bot.bot, "SENTENCE_VECTORS", 3)
    fast_bot.ask("Who is the chairman of the Hubei CPPCC?")
    assert len(fast_bot._sentence_vectors) == 3


@pytest.mark.slow
def test_english_question_with_a_pinyin_place_name(seed_bot):
    answer = seed_bot.ask(
        "Which platform did Zhejiang roll out across the whole province to bring CPPCC consultation down to the county level?"
    )
    assert answer.found and "請你來協商" in answer.text
    assert answer.language == "en"


ROUTER_MANUAL = """Router Setup Guide

To reset the router password, press and hold the reset button on the back panel for ten seconds. The power light will blink orange, and the router restarts with the factory password printed on the label.

Firmware updates are published every quarter. The router checks for updates at 3 a.m. and installs them automatically unless automatic updates are disabled.
"""


@pytest.mark.slow
def test_english_document_beside_the_chinese_one(tmp_path, real_embedder):
    """English questions over an English document use its words; over Chinese text, pinyin and meaning."""
    from qa_bot import QABot

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "router.txt").write_text(ROUTER_MANUAL, encoding="utf-8")
    (docs / "cppcc.txt").write_text(ORIGINAL, encoding="utf-8")
    bot = QABot(index_dir=tmp_path / "index", docs_dir=docs, embedder=real_embedder)
    bot.rebuild()
    answer = bot.ask("How do I reset the router password?")
    assert answer.found and "press and hold the reset button" in answer.text
    assert answer.citations[0].source == "router.txt"
    assert "汪洋" in bot.ask("Who is Wang Yang?").text
    assert not bot.ask("What is the capital of France?").found
