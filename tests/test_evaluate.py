"""qa-bot eval's account of each missed answer: refused, not retrieved, or quoted from the wrong place."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from qa_bot.evaluate import MISS_CAUSES, evaluate, format_table
from qa_bot.records import Passage

PASSAGES = [Passage("湖北省政協主席徐立全表示，湖北去年出台意見。", "a.txt", 0, 22, 1.0),
            Passage("湖北省政協秘書長羅天山傳達會議精神。", "a.txt", 22, 40, 0.9)]


class ScriptedBot:
    """What evaluate() asks of a QABot, with the answer to each question given: the causes are bookkeeping
    over retrieve() and ask(), tested here without a model (the real stack: tests/test_cli.py)."""

    def __init__(self, answers: dict[str, tuple[bool, str]]):
        self.answers = answers

    def retrieve(self, question: str, k: int = 5) -> list[Passage]:
        return PASSAGES[:k]

    def ask(self, question: str, history: list | None = None) -> SimpleNamespace:
        found, text = self.answers[question]
        quotes = [SimpleNamespace(text=text)] if found else []
        return SimpleNamespace(found=found, text=text, quotes=quotes, short=None, citations=PASSAGES,
                               confidence=0.9 if found else 0.1)


@pytest.fixture
def report(tmp_path):
    questions = tmp_path / "q.jsonl"
    questions.write_text("\n".join([
        '{"id": "hit", "question": "湖北省政協主席是誰？", "answers": ["徐立全"]}',
        '{"id": "refused", "question": "湖北省政協秘書長是誰？", "answers": ["羅天山"]}',
        '{"id": "elsewhere", "question": "誰傳達了會議精神？", "answers": ["羅天山"]}',
        '{"id": "absent", "question": "湖北省長是誰？", "answers": ["王忠林"]}',
        '{"id": "offtopic", "question": "今天天氣怎麼樣？", "answers": []}',
    ]), encoding="utf-8")
    bot = ScriptedBot({"湖北省政協主席是誰？": (True, PASSAGES[0].text), "湖北省政協秘書長是誰？": (False, ""),
                       "誰傳達了會議精神？": (True, PASSAGES[0].text), "湖北省長是誰？": (True, PASSAGES[0].text),
                       "今天天氣怎麼樣？": (False, "")})
    return evaluate(bot, questions)


def test_each_miss_gets_one_cause(report):
    assert report["misses"] == ["refused", "elsewhere", "absent"]
    assert report["miss_causes"] == {"refused": ["refused"], "not_retrieved": ["absent"], "wrong_quote": ["elsewhere"]}


def test_the_causes_and_answer_hit_share_out_the_answerable_questions(report):
    overall = report["overall"]
    shares = [overall["answer_hit"]] + [overall[f"miss_{name}"] for name in MISS_CAUSES]
    assert shares == [0.25, 0.25, 0.25, 0.25] and overall["no_answer_rate"] == 1.0


def test_the_table_names_each_miss_with_its_cause(report):
    table = format_table(report)
    assert "| miss_not_retrieved | 0.25 |" in table
    assert table.endswith("misses: refused: refused; not retrieved: absent; wrong quote: elsewhere")


def test_questions_without_an_id_are_named_by_their_line(tmp_path):
    questions = tmp_path / "q.jsonl"
    questions.write_text('{"question": "湖北省政協主席是誰？", "answers": ["徐立全"]}\n\n'
                         '{"question": "湖北省政協秘書長是誰？", "answers": ["羅天山"]}\n', encoding="utf-8")
    report = evaluate(ScriptedBot({"湖北省政協主席是誰？": (True, PASSAGES[0].text), "湖北省政協秘書長是誰？": (False, "")}),
                      questions)
    assert report["miss_causes"]["refused"] == ["line 3"]
    assert format_table(report).endswith("misses: refused: line 3")
