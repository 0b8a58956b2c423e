"""Learned answer layer: which sentence answers, how sure we are, and the short span inside it.

Three small logistic regressions, trained by `bench/train_answer.py` (`make train`) on DRCD dev
(near-miss) and CMRC 2018 trial, stored as plain weights in `answer_model.json` and evaluated
here with numpy, so scikit-learn stays a training-only dependency:

- the sentence ranker (trained listwise: a softmax over one question's sentences) scores every
  sentence of the top passages (word overlap, where the
  question's words sit, sentence role, passage score, whether it holds the kind of thing asked,
  and the passage reader's (qa_bot.reader) probability that the answer starts / ends in it);
  whether its sentences or the hand-set score's are quoted is chosen on validation
  (``ranker_quotes``, qa_bot.answer._compose_hybrid);
- the confidence model turns the best sentence's features, how much of the question the passages
  hold and the reader's "no answer in the top passage" into P(the documents answer the question),
  trained with near-topic, off-topic and entity-swapped negatives;
- the span scorer (qa_bot.short_answer) proposes a short answer, a run of characters inside the
  chosen sentence, where the reader has none; its character vocabularies are stored with it;
- the short-answer gate turns what the reader and the span scorer say about the short answer
  (short_features) into P(it is exactly the answer), which decides whether it is shown.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from dataclasses import dataclass
from difflib import SequenceMatcher
from functools import lru_cache
from pathlib import Path

import numpy as np

from .reader import Reading
from .textnorm import QUESTION_WORDS, pos_cut, to_simplified, to_simplified_aligned, tokenize

MODEL_FILE = Path(__file__).with_name("answer_model.json")

# What the question asks for (on its Simplified text) and the jieba POS tags that can answer it;
# the first pattern that matches wins ("在哪一年" asks when, not where). 甚麼 (Hong Kong's and older
# Taiwan's 什麼) stays 甚么 in Simplified: 15 of the seed article's 77 questions and 8 % of DRCD's write it.
QUESTION_TYPES: dict[str, tuple[re.Pattern, tuple[str, ...]]] = {
    "when": (re.compile(r"何时|[什甚]么时候|哪一?年|哪一?天|几月|几日|何年|年代|日期|时间|多久|哪个(朝代|时期|世纪)"), ("t",)),
    "who": (re.compile(r"谁|哪位|哪一位|[什甚]么人|何人|哪些人|叫[什甚]么名字"), ("nr",)),
    "where": (re.compile(r"哪里|哪儿|何处|何地|在哪|[什甚]么地方|哪个(国家|城市|地区|省|县|市|地方)|哪国|哪座"), ("ns",)),
    "number": (re.compile(r"多少|几|多长|多大|多高|多远|多重|百分之|比例|第几"), ("m",)),
    "org": (re.compile(r"哪个(组织|机构|公司|单位|团体|部门|队|机关|学校|大学)|哪家|哪所|哪支"), ("nt",)),
}
_QUESTION_FILLER = re.compile(QUESTION_WORDS + r"|的|了|是")
_REPORTING = re.compile(r"表示|指出|认为|说|称|介绍|强调")
_CREDIT = re.compile(r"记者|摄|图片|资料图|来源|编辑|责编|通讯员|新华社|报道")
_PUNCT = re.compile(r"[\W_]+")


def question_type(question: str) -> str:
    """'who', 'where', 'when', 'number', 'org' or 'other' (Simplified or Traditional question)."""
    simplified = to_simplified(question)
    for name, (pattern, _) in QUESTION_TYPES.items():
        if pattern.search(simplified):
            return name
    return "other"


@lru_cache(maxsize=4096)
def pos_words(text: str) -> tuple[tuple[str, str, int], ...]:
    """(word, tag, start) of jieba's POS tagging of the Simplified text; offsets index `text`."""
    words, position = [], 0
    for pair in pos_cut(to_simplified_aligned(text)):  # the HMM for unknown words costs ~5 ms a sentence
        words.append((pair.word, pair.flag, position))
        position += len(pair.word)
    return tuple(words)


def name_spans(question: str) -> list[tuple[int, int, str]]:
    """Where the question names people, places, organisations or other proper names (jieba nr / ns / nt / nz, two
    characters or more): start, end and the tag."""
    return [(start, start + len(word), _pos_group(tag)) for word, tag, start in pos_words(question)
            if _pos_group(tag) in ("nr", "ns", "nt", "nz") and len(word) > 1]


def names_in(question: str) -> list[str]:
    """The names of name_spans, Simplified."""
    simplified = to_simplified_aligned(question)
    return [simplified[start:end] for start, end, _ in name_spans(question)]


def _pos_group(tag: str) -> str:
    if tag[:2] in ("nr", "ns", "nt", "nz"):
        return tag[:2]
    if tag == "eng":
        return "eng"
    return tag[:1] if tag[:1] in ("n", "m", "t", "q", "v", "a") else "other"


def content_words(question: str) -> list[str]:
    """The question's jieba words without question words, particles and punctuation (Simplified)."""
    words = [w for w, tag, _ in pos_words(question) if not _PUNCT.fullmatch(w)]
    return [w for w in words if w.strip() and not _QUESTION_FILLER.fullmatch(w)]


@dataclass
class Sentence:
    """One candidate sentence: passage rank (0-based), its span in the passage, and its index there."""

    rank: int
    start: int
    end: int
    index: int
    count: int  # sentences in its passage
    heading: bool  # a line of the passage's section heading
    previous_start: int  # start of the sentence before it in the passage (its own start for the first)


def sentence_features(
    question: str,
    weights: Counter,
    passages: list,
    sentences: list[Sentence],
    reading: Reading,
) -> np.ndarray:
    """One row of ranker features per sentence (see FEATURE_NAMES); ``reading``: the reader's view of
    the top passage (its other passages' sentences get no reader share)."""
    simplified_q = to_simplified(question)
    qtype = question_type(question)
    words = content_words(question)
    q_chars = set(_PUNCT.sub("", _QUESTION_FILLER.sub("", simplified_q)))
    top_similarity = passages[0].similarity
    rows = []
    for s in sentences:
        passage = passages[s.rank]
        text = passage.text[s.start : s.end]
        simplified = to_simplified(text)
        ov = overlap(weights, text)
        window = overlap(weights, passage.text[s.previous_start : s.end]) if s.index else ov
        word_share = sum(w in simplified for w in words) / len(words) if words else 0.0
        matcher = SequenceMatcher(None, simplified_q, simplified, autojunk=False)
        longest = matcher.find_longest_match(0, len(simplified_q), 0, len(simplified)).size
        tagged = pos_words(text)
        typed = _typed_entity(tagged, qtype, simplified_q)
        novel = sum(ch not in q_chars for ch in _PUNCT.sub("", simplified))
        length = len(text)
        rows.append(
            [
                ov,
                window,
                word_share,
                longest / max(1, len(_PUNCT.sub("", simplified_q))),
                float(typed),
                float(qtype != "other" and not typed),
                float(any(_pos_group(tag) in ("nr", "ns", "nt", "m", "t") for _, tag, _ in tagged)),
                math.log1p(novel),
                math.log1p(length),
                float(length < 8),
                float(s.index == 0),
                s.index / max(1, s.count - 1),
                float(s.heading),
                float(bool(_REPORTING.search(simplified)) and s.index == 0),
                float(bool(_CREDIT.search(simplified)) and length < 30),
                float(s.rank == 0),
                float(s.rank == 1),
                passage.score - passages[0].score,  # fused scores are z-scores: a ratio breaks at 0
                passage.similarity,
                passage.similarity - top_similarity,
                *(reading.shares(s.start, s.end) if s.rank == 0 else (0.0, 0.0)),
            ]
        )
    return np.asarray(rows, dtype=np.float64).reshape(len(sentences), len(FEATURE_NAMES))


FEATURE_NAMES = (
    "overlap", "window_overlap", "word_share", "longest_common", "typed_entity", "type_missing", "any_entity",
    "log_novel_chars", "log_length", "short", "first", "relative_position", "heading", "opening_reporting",
    "credit_line", "passage_1", "passage_2", "passage_score_gap", "passage_similarity", "similarity_gap",
    "reader_start", "reader_end",
)  # fmt: skip


def overlap(weights: Counter, text: str) -> float:
    """Share of the question's idf weight (Simplified uni+bigrams) found in the text."""
    total = sum(weights.values())
    tokens = set(tokenize(text))
    return sum(w for t, w in weights.items() if t in tokens) / total if total else 0.0


def _typed_entity(tagged: tuple, qtype: str, simplified_question: str) -> bool:
    """Whether the sentence holds a word of the asked type that the question does not already name."""
    if qtype == "other":
        return False
    tags = QUESTION_TYPES[qtype][1]
    return any(tag.startswith(tags) and word not in simplified_question for word, tag, _ in tagged)


# -- the stored model -------------------------------------------------------------------------


@dataclass(frozen=True)
class Logistic:
    """A logistic regression stored as standardisation + weights: p = sigmoid(w . (x - mean) / scale + b)."""

    mean: np.ndarray
    scale: np.ndarray
    weights: np.ndarray
    bias: float

    @classmethod
    def from_dict(cls, data: dict) -> Logistic:
        return cls(np.asarray(data["mean"]), np.asarray(data["scale"]), np.asarray(data["weights"]), float(data["bias"]))

    def to_dict(self) -> dict:
        return {"mean": self.mean.tolist(), "scale": self.scale.tolist(), "weights": self.weights.tolist(), "bias": self.bias}

    def score(self, x: np.ndarray) -> np.ndarray:
        return ((np.asarray(x, dtype=np.float64) - self.mean) / self.scale) @ self.weights + self.bias

    def probability(self, x: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-self.score(x)))

    def shares(self, x: np.ndarray) -> np.ndarray:
        """Softmax over the rows: P(row i is the one) for a ranker trained listwise."""
        z = self.score(x)
        e = np.exp(z - z.max())
        return e / e.sum()


@dataclass(frozen=True)
class SpanModel:
    """The short-answer scorer and the characters its identity features know, per slot
    ("before", "first", "last", "after" the span)."""

    scorer: Logistic
    vocab: dict[str, tuple[str, ...]]

    @classmethod
    def from_dict(cls, data: dict) -> SpanModel:
        return cls(Logistic.from_dict(data["scorer"]), {k: tuple(v) for k, v in data["vocab"].items()})

    def to_dict(self) -> dict:
        return {"scorer": self.scorer.to_dict(), "vocab": {k: list(v) for k, v in self.vocab.items()}}


@dataclass(frozen=True)
class AnswerModel:
    """The four models plus the thresholds chosen on the validation split."""

    ranker: Logistic
    confidence: Logistic
    span: SpanModel
    short_gate: Logistic
    found_threshold: float
    short_threshold: float  # on the short-answer gate's P(exact)
    second_quote_share: float  # the runner-up sentence is quoted too from this ranker share on
    ranker_quotes: bool = False  # quote the ranker's sentences, not the hand-set score's (chosen on validation)
    widen_tokens: int = 0  # the best quote widens to the sentences the reader's span of up to this many tokens covers (0: never)
    reread_above: float = 2.0  # passage 2 is read too when passage 1's P(no answer) reaches this (over 1: never)
    reread_ratio: float = 1.0  # ... and goes first when its P(no answer) is under this times passage 1's

    @classmethod
    def load(cls, path: Path = MODEL_FILE) -> AnswerModel:
        data = json.loads(path.read_text(encoding="utf-8"))
        return cls(
            Logistic.from_dict(data["ranker"]), Logistic.from_dict(data["confidence"]), SpanModel.from_dict(data["span"]),
            Logistic.from_dict(data["short_gate"]), float(data["found_threshold"]), float(data["short_threshold"]),
            float(data["second_quote_share"]), bool(data["ranker_quotes"]), int(data["widen_tokens"]),
            float(data["reread_above"]), float(data["reread_ratio"]),
        )


@lru_cache(maxsize=1)
def default_model() -> AnswerModel:
    return AnswerModel.load()


def confidence_features(
    question: str, weights: Counter, features: np.ndarray, shares: np.ndarray, best: int, passages: list, read: int,
    reading: Reading,
) -> np.ndarray:
    """What the confidence model reads: the best sentence's features but CORPUS_SCALED, its share and the
    runner-up's, the best overlaps of any sentence, how much of the question the first `read`
    passages hold at all (question_coverage), and the log-odds of the reader's P(no answer in the top
    passage) and P(its best span)."""
    second = np.sort(shares)[-2] if len(shares) > 1 else 0.0
    lexical = np.delete(features[best], [FEATURE_NAMES.index(n) for n in CORPUS_SCALED])
    return np.concatenate(
        [
            lexical,
            [shares[best], second, features[:, 0].max(), features[:, 2].max()],
            question_coverage(question, weights, passages, read),
            [log_odds(reading.no_answer), log_odds(reading.best[2])],
        ]
    )


def log_odds(probability: float) -> float:
    """A probability on the logistic scale, as the logistic regressions read them: "no answer" at 0.94 and at
    0.9994 differ by 0.06 as probabilities but by 4.6 as log-odds (validation, unanswerable refused at 97 % found: 0.900 -> 0.931)."""
    return math.log((probability + 1e-4) / (1 - probability + 1e-4))


# Left out of the confidence: their level depends on the corpus, not only on the question. Fused scores
# differ in a one-article index; cosines run lower on news (seed article, answerable questions: top
# passage 0.80-0.85) than on wiki paragraphs (DRCD / CMRC training questions: mean 0.876).
CORPUS_SCALED = ("passage_score_gap", "passage_similarity", "similarity_gap")


def question_coverage(question: str, weights: Counter, passages: list, read: int) -> list[float]:
    """Near-topic signals: a question about a paragraph that is not indexed still finds its article, its
    people and places, but names things no retrieved passage mentions (天城文 in 「天城文在何時成為梵語的標準
    書寫系統？」). The idf share of the question found in the first `read` passages together, the share of its
    jieba content words found in none of them, and the share of its names (names_in) found in none of them,
    headings included: a question that puts another name into an indexed fact (上海 for 北京) is otherwise
    covered word for word but one (entity-swapped negatives, docs/architecture.md). (How far the top passage
    leads the second also separated them on DRCD, but depends on the index: in a one-article index every
    passage is near.)"""
    together = "\n".join(p.text for p in passages[:read])
    words = content_words(question)
    simplified = to_simplified(together)
    missing = sum(w not in simplified for w in words) / len(words) if words else 0.0
    names = names_in(question)
    headed = to_simplified("\n".join(p.context for p in passages[:read])) + "\n" + simplified
    unnamed = sum(name not in headed for name in names) / len(names) if names else 0.0
    return [overlap(weights, together), missing, unnamed]


def short_features(
    question: str, span: str, reader_probability: float | None, agrees: bool, scorer_share: float, confidence: float,
    no_answer: float,
) -> np.ndarray:
    """What the short-answer gate reads about one proposed span: the reader's P(span) as log-odds when the span is
    the reader's (None: the span scorer's, the reader's best span lies outside the quote), whether the span
    scorer picked the same span (on DRCD validation 0.83 of such spans are exact, 0.45 of the reader's others),
    the scorer's share, the answer's confidence, the reader's P(no answer), the span's length, whether the
    question already holds it, and what the question asks for."""
    qtype = question_type(question)
    from_reader = reader_probability is not None
    return np.asarray(
        [
            log_odds(reader_probability) if from_reader else 0.0,
            float(from_reader),
            float(agrees),
            log_odds(scorer_share),
            log_odds(confidence),
            log_odds(no_answer),
            math.log1p(len(span)),
            float(to_simplified(span) in to_simplified(question)),
            *(float(qtype == t) for t in QUESTION_TYPES),
        ]
    )


SHORT_FEATURE_NAMES = (
    "reader_log_odds", "from_reader", "scorer_agrees", "scorer_log_odds", "confidence_log_odds", "no_answer_log_odds",
    "log_length", "in_question", *(f"asks_{t}" for t in QUESTION_TYPES),
)  # fmt: skip
