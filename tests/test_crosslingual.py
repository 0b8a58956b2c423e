"""English questions over Chinese text: the CC-CEDICT bridge (qa_bot/crosslingual.py) and the refusals it decides."""

from __future__ import annotations

import dataclasses
import json

import pytest
from conftest import DATA, SEED_FILE

from qa_bot.answer import compose, sentence_spans
from qa_bot.crosslingual import MIN_TERMS_FOUND, question_terms, terms_found

SEED_TEXT = SEED_FILE.read_text(encoding="utf-8")
ENGLISH_SEED_QUESTIONS = [
    item for item in map(json.loads, (DATA / "seed_questions.jsonl").open(encoding="utf-8")) if item["question"].isascii()
]
OFF_TOPIC = ["How do I reset my router password?", "Who won the 2018 FIFA World Cup?", "How do I bake sourdough bread?",
             "What is the capital of France?", "What is the boiling point of water at sea level?"]  # fmt: skip


def test_question_terms_translate_words_and_phrases():
    terms = dict(question_terms("How many temporary Party branches did it set up across the whole province?"))
    assert "路由器" in dict(question_terms("Where is the router?"))["router"]
    assert "全省" in terms["whole province"]  # the longest phrase the dictionary knows, as one term
    assert "临时" in terms["temporary"]
    assert terms["branches"]  # plural -> the singular's glosses
    assert "how many" not in terms and "did" not in terms  # function words say nothing about the documents


def test_names_count_through_their_pinyin():
    assert terms_found("What did Ji Lin and the Shandong chairman say?", "吉林、山東省政協主席") >= 3
    assert terms_found("Who is the chairman in Guangdong?", "山東省政協主席") == 1


def test_a_chinese_term_quoted_in_an_english_question_counts():
    assert terms_found('What does "雙聯" mean?', "形成六有、雙聯（黨組成員聯繫黨員委員）") == 1
    assert terms_found('What does "双联" mean?', "形成六有、雙聯") == 1  # compared in Simplified
    assert terms_found('What does "雙聯" mean?', "形成六有") == 0


@pytest.mark.slow
def test_english_question_quoting_a_chinese_term_is_answered_in_english(seed_bot):
    """An English question is English even with a Chinese term in it: the English layer answers it (the model
    of the Chinese layer was trained on Chinese questions only and refused these) and the term counts."""
    answer = seed_bot.ask('What new platforms such as "網上議政廳" did Fujian create for its members?')
    assert answer.found and answer.language == "en"
    assert "網上議政廳" in answer.text


def test_answerable_english_seed_questions_find_their_words_off_topic_ones_do_not():
    assert all(terms_found(item["question"], SEED_TEXT) >= MIN_TERMS_FOUND for item in ENGLISH_SEED_QUESTIONS)
    assert all(terms_found(question, SEED_TEXT) < MIN_TERMS_FOUND for question in OFF_TOPIC)


@pytest.mark.slow
def test_a_close_cosine_alone_does_not_answer_an_english_question(seed_bot):
    """Real retrieval over the seed index, every cosine raised above the thresholds: only the words decide."""
    for question, answerable in [(ENGLISH_SEED_QUESTIONS[0]["question"], True), *((q, False) for q in OFF_TOPIC)]:
        passages = [dataclasses.replace(p, similarity=0.95) for p in seed_bot.retrieve(question, k=5)]
        similarity = [[0.95] * len(sentence_spans(p.text)) for p in passages]
        answer = compose(question, question, passages, seed_bot.store, seed_bot._picker_for(seed_bot.store), similarity)
        assert answer.found is answerable, question
