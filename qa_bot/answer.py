"""Extractive answers: pick the sentences of the retrieved passages that answer the question.

Every answer is built from the documents' own sentences, each followed by [n] where
citations[n-1] is the passage it was quoted from, so nothing can be invented.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from difflib import SequenceMatcher
from typing import TYPE_CHECKING

import numpy as np

from .answer_model import (
    AnswerModel,
    Sentence,
    SpanModel,
    confidence_features,
    default_model,
    names_in,
    sentence_features,
    short_features,
)
from .crosslingual import MIN_TERMS_FOUND, terms_found
from .reader import Reader, Reading, load_reader
from .records import Passage
from .short_answer import best_span
from .stores.bm25 import idf
from .textnorm import (
    ENGLISH_STOPWORDS,
    QUESTION_WORDS,
    cjk_runs,
    has_cjk,
    latin_words,
    near_duplicates,
    pinyin_tokens,
    script_of,
    to_simplified,
    tokenize,
)

if TYPE_CHECKING:
    from .stores import Store

_SENTENCE = re.compile(r"[^。！？；!?;\n]+(?:[。！？；!?;]+[」』”’\"）)】]*)?")
# Question words and particles carry no content: they must not make a sentence look relevant.
_QUESTION_WORDS = re.compile(
    QUESTION_WORDS + r"|的|了|是|在|有|和|与|及|之|对|把|被|让|给|从|向|于|以|为|这|那|其|该|此|个|位|次|年|月|日"
)
_ELLIPTICAL_ZH = re.compile(r"^(那|那么|还有|另外|至于)|呢[？?]?$|^(他|她|它|他们|她们|其|该|这|此)")
_ELLIPTICAL_EN = re.compile(r"^(and|what about|how about)\b|\b(he|she|it|they|him|her|them|his|its|their|that|this)\b", re.I)

MAX_QUOTES = 3
PASSAGES_READ = 3

MESSAGES = {
    "not_found": {
        "zh-hant": "文件中沒有找到這個問題的答案。以下是最接近的段落，供您參考。",
        "zh-hans": "文档中没有找到这个问题的答案。以下是最接近的段落，供您参考。",
        "en": "The documents do not seem to answer this question. The closest passages are listed below.",
    },
    "empty_index": {
        "zh-hant": "索引中還沒有文件。請先加入文件。",
        "zh-hans": "索引中还没有文件。请先添加文件。",
        "en": "The index holds no documents yet. Add some documents first.",
    },
}


@dataclass
class Quote:
    """One quoted sentence: where it sits in its citation and in the original document."""

    text: str
    citation: int  # 1-based: the [n] marker
    passage_start: int  # offsets into citations[n-1].text
    passage_end: int
    start: int  # offsets into the original document
    end: int
    score: float = 0.0

    def to_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class Answer:
    """Quotations with [n] markers; citations[n-1] is the passage behind [n]."""

    text: str
    citations: list[Passage]
    found: bool
    quotes: list[Quote] = field(default_factory=list)
    language: str = "zh-hant"
    query: str = ""  # what was searched (the question, completed from history for follow-ups)
    confidence: float = 0.0  # P(the documents answer the question), calibrated for Chinese questions
    short: Quote | None = None  # the exact answer inside the best quote (a name, place, date, number)

    def highlights(self, n: int) -> list[tuple[int, int]]:
        """The (start, end) ranges of citations[n-1].text quoted in the answer."""
        return [(q.passage_start, q.passage_end) for q in self.quotes if q.citation == n]

    def to_dict(self) -> dict:
        return {
            "text": self.text,
            "found": self.found,
            "language": self.language,
            "query": self.query,
            "confidence": self.confidence,
            "short": self.short.to_dict() if self.short else None,
            "quotes": [q.to_dict() for q in self.quotes],
            "citations": [
                {**p.to_dict(), "n": n, "highlights": self.highlights(n)} for n, p in enumerate(self.citations, 1)
            ],
        }


def message(key: str, language: str) -> str:
    return MESSAGES[key].get(language, MESSAGES[key]["en"])


def _history_questions(history: list | None) -> list[str]:
    """User questions from a history of (question, answer) pairs or {"role", "content"} messages."""
    questions = []
    for turn in history or []:
        if isinstance(turn, dict):
            if turn.get("role") == "user" and isinstance(turn.get("content"), str):
                questions.append(turn["content"])
        elif isinstance(turn, (list, tuple)) and turn and isinstance(turn[0], str):
            questions.append(turn[0])
    return questions


def is_elliptical(question: str) -> bool:
    """A follow-up that leans on the conversation: short, or opening with 那/他/what about ...."""
    stripped = question.strip()
    simplified = to_simplified(stripped)
    if has_cjk(stripped):
        content = _QUESTION_WORDS.sub("", re.sub(r"[\W_]+", "", simplified))
        return bool(_ELLIPTICAL_ZH.search(simplified)) or len(content) <= 3
    return bool(_ELLIPTICAL_EN.search(stripped)) or len(stripped.split()) <= 3


def contextual_query(question: str, history: list | None) -> str:
    """Fold the previous question into an elliptical follow-up ("那湖北呢？" after "福建省政協主席是誰？")."""
    previous = _history_questions(history)
    if previous and is_elliptical(question):
        return f"{previous[-1]} {question}"
    return question


class SentencePicker:
    """Scores sentences by idf-weighted overlap with the question.

    Chinese questions: Simplified character uni+bigrams. English questions: their
    words against the pinyin of the sentence ("Shandong" ~ 山東), the only lexical
    bridge from English to Chinese text.
    """

    def __init__(self, store: Store):
        passages = len(store.chunks)
        self.idf = IdfTable(store, passages)
        self._pinyin_idf = IdfTable(store, passages, pinyin=True)
        self.default_idf = math.log(1 + max(1, passages))

    def weights(self, question: str, cross_lingual: bool = False) -> Counter:
        """Content tokens of the question with their idf.

        cross_lingual (an English question, Chinese passages): only words the corpus knows
        count — pinyin of names and places — since no other English word can match. Chinese terms an
        English question quotes (雙促進) count as they would in a Chinese question.
        """
        if script_of(question) == "en":
            words = latin_words(question)
            self.idf.fetch(words)
            self._pinyin_idf.fetch(words)
            quoted = tokenize(" ".join(cjk_runs(question)))
            self.idf.fetch(quoted)
            terms = Counter({t: self.idf.get(t, self.default_idf) for t in quoted})

            def known(word: str) -> float | None:  # words of Latin-script text, else pinyin of names
                return self.idf.get(word, self._pinyin_idf.get(word))

            if cross_lingual:
                return terms + Counter({w: idf for w in latin_words(question) if (idf := known(w)) is not None})
            words = [w for w in latin_words(question, pairs=False) if w not in ENGLISH_STOPWORDS]
            return terms + Counter({w: idf if (idf := known(w)) is not None else self.default_idf for w in words})
        tokens = tokenize(_QUESTION_WORDS.sub(" ", to_simplified(question)))
        self.idf.fetch(tokens)
        return Counter({t: self.idf.get(t, self.default_idf) for t in tokens})

    def overlap(self, weights: Counter, sentence: str) -> float:
        """Share of the question's weight found in the sentence (0..1)."""
        total = sum(weights.values())
        if not total:
            return 0.0
        latin = any(token.isascii() for token in weights)  # an English question: its names may be pinyin
        tokens = set(tokenize(sentence)) | set(pinyin_tokens(sentence) if latin else ())
        return sum(w for t, w in weights.items() if t in tokens) / total


class IdfTable:
    """BM25 idf per token, from the store's document frequencies, looked up as needed.

    A dict over the whole vocabulary would cost seconds and hundreds of MB at a million
    passages, and a Milvus store can only be asked token by token.
    """

    def __init__(self, store: Store, passages: int, pinyin: bool = False):
        self._store, self._pinyin, self._n = store, pinyin, max(1, passages)
        self._known: dict[str, float | None] = {}

    def fetch(self, tokens: Iterable[str]) -> None:
        """Look up the tokens not seen yet, in one call to the store."""
        unknown = {token for token in tokens if token not in self._known}
        if unknown:
            df = self._store.document_frequency(unknown, self._pinyin)
            for token in unknown:
                self._known[token] = None if token not in df else idf(df[token], self._n)

    def get(self, token: str, default: float | None = None) -> float | None:
        self.fetch([token])
        idf = self._known[token]
        return default if idf is None else idf


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each sentence of a passage, whitespace trimmed."""
    spans = []
    for match in _SENTENCE.finditer(text):
        start, end = match.start(), match.end()
        while start < end and text[start].isspace():
            start += 1
        while end > start and text[end - 1].isspace():
            end -= 1
        if end > start:
            spans.append((start, end))
    return spans


@dataclass(frozen=True)
class AnswerSettings:
    """Thresholds for "the documents answer this" (measured in docs/architecture.md, "Answers").

    Chinese questions: the top passage's dense cosine must reach min_similarity, and
    below confident_similarity the best sentence must also share min_overlap of the
    question's content. English questions cannot be matched lexically against
    Chinese text, so the best sentence's cosine must reach min_sentence_similarity.
    """

    min_similarity: float = 0.80
    confident_similarity: float = 0.83
    min_overlap: float = 0.35
    min_sentence_similarity: float = 0.77
    min_english_similarity: float = 0.75  # top passage's cosine, for English questions
    min_pinyin_overlap: float = 0.5  # ... or the question's names (in pinyin) are in the best sentence
    min_pinyin_similarity: float = 0.70  # ... and the passage is at least this close
    min_quote_chars: int = 6  # a lone credit line ("新華社") is no quotation
    passage_weight: float = 0.25  # how much the passage's retrieval score counts for its sentences
    keep_ratio: float = 0.9  # extra sentences must score this close to the best one
    window_weight: float = 0.8  # overlap counted over the previous + this sentence, discounted
    heading_weight: float = 0.7  # headings and bylines are context, rarely the answer


@dataclass
class _Candidate:
    citation: int
    start: int
    end: int
    score: float
    overlap: float = 0.0
    similarity: float = 0.0


def compose(
    question: str,
    query: str,
    passages: list[Passage],
    store: Store,
    picker: SentencePicker,
    sentence_similarity: list[list[float]] | None = None,
    settings: AnswerSettings = AnswerSettings(),
    model: AnswerModel | None = None,
    layer: str = "hybrid",
    reader: Reader | None = None,
) -> Answer:
    """Choose the sentences that answer the question and assemble the cited answer.

    Chinese questions go through the hybrid layer (_compose_hybrid: learned confidence, hand-set
    quotes); English questions (script_of: mostly Latin words, also when they quote a Chinese term) and
    follow-ups completed from the history (query != question) keep the hand-set picker (AnswerSettings):
    the model was trained on self-contained Chinese questions only.
    layer="old" forces the hand-set picker and layer="learned" quotes the ranker's own choice (the
    earlier answer layers, kept for the side-by-side benchmark in bench/train_answer.py).
    sentence_similarity[i][j], when given, is the dense cosine of the question with
    sentence j of passage i (used by the hand-set picker for English questions).
    ``reader`` defaults to the shared passage reader (load_reader).
    """
    language = script_of(question)
    if not passages:
        return Answer(message("empty_index", language), [], False, [], language, query)
    # An English question over Chinese passages can only be matched through pinyin and meaning.
    cross_lingual = language == "en" and has_cjk(passages[0].text)
    weights = picker.weights(question, cross_lingual)
    if query != question:  # a follow-up: the earlier question's words count, but less
        weights = Counter({t: 2 * w for t, w in weights.items()}) + Counter(
            {t: 0.5 * w for t, w in picker.weights(query, cross_lingual).items()}
        )
    if layer != "old" and language != "en" and query == question:
        return _compose_hybrid(
            question, query, passages, store, picker, weights, model or default_model(), settings, layer == "learned",
            reader or load_reader(),
        )
    # The new layer never quotes a lone caption or credit line (資料圖片) for an English question either.
    shortest = settings.min_quote_chars if layer != "old" else 0
    chosen = _pick_by_hand(passages, picker, weights, cross_lingual, sentence_similarity, settings, shortest)
    # An English answer also needs the question's words in its passage: the cosine cannot tell alone (crosslingual.py).
    if chosen and cross_lingual and layer != "old" and terms_found(question, passages[chosen[0].citation - 1].text) < MIN_TERMS_FOUND:
        chosen = []
    if not chosen:
        return Answer(message("not_found", language), passages, False, [], language, query, confidence=0.0)
    return _assemble(question, query, passages, store, chosen, confidence=1.0)


def _compose_hybrid(
    question: str, query: str, passages: list[Passage], store: Store, picker: SentencePicker, weights: Counter,
    model: AnswerModel, settings: AnswerSettings, ranker_quotes: bool, reader: Reader,
) -> Answer:
    """The learned confidence decides found or refused; the quotes are the ranker's or the hand-set score's.

    The passage reader reads the top passage (and a near-duplicate of it, or passage 2 when it doubts the first: _read_top); its start / end
    probabilities per sentence feed the ranker and its "no answer" the confidence. ``model.ranker_quotes`` (chosen on validation by
    answer-hit) quotes the ranker's top sentence and the runner-up from second_quote_share; else
    the hand-set picker's (best sentence, up to MAX_QUOTES within keep_ratio), without its relevance
    thresholds: the confidence replaces them; the best quote then widens along the reader's span
    (``model.widen_tokens``, _widen). ranker_quotes=True forces the ranker's quotes (the benchmark's
    "learned" layer).
    """
    language = script_of(question)
    sentences = candidate_sentences(passages)
    if not any(s.end - s.start >= settings.min_quote_chars for s in sentences):  # nothing long enough to quote
        return Answer(message("not_found", language), passages, False, [], language, query, confidence=0.0)
    ordered, reading, versions = _read_top(question, passages, model, reader)
    if ordered is not passages:  # a passage moved up: the sentences' ranks change
        passages, sentences = ordered, candidate_sentences(ordered)
    features = sentence_features(question, weights, passages, sentences, reading)
    shares = model.ranker.shares(features)
    best = int(np.argmax(shares))
    signals = confidence_features(question, weights, features, shares, best, passages, PASSAGES_READ, reading)
    confidence = float(model.confidence.probability(signals))
    if confidence < model.found_threshold:
        return Answer(message("not_found", language), passages, False, [], language, query, confidence=confidence)
    if ranker_quotes or model.ranker_quotes:
        order = np.argsort(-shares)
        chosen = [_Candidate(sentences[k].rank + 1, sentences[k].start, sentences[k].end, 0.0)
                  for n, k in enumerate(order[:2]) if n == 0 or shares[k] >= model.second_quote_share]
    else:  # the hand-set score only where its quotes ship: ~3.5 ms a Chinese question (seed, 2026-12-05)
        candidates = _score_by_hand(passages, picker, weights, None, settings, settings.min_quote_chars)
        chosen = _keep_close(sorted(candidates, key=lambda c: -c.score), settings)
    share = {(s.rank + 1, s.start): float(p) for s, p in zip(sentences, shares)}
    for c in chosen:  # a quote's score is its ranker share
        c.score = share[c.citation, c.start]
    if model.widen_tokens:
        read = [(s.start, s.end) for s in sentences if s.rank == 0]
        chosen = _widen(chosen, passages[0].text, read, reading.span(model.widen_tokens))
    if versions:
        chosen = _with_other_version(chosen, passages)
    answer = _assemble(question, query, passages, store, chosen, confidence)
    first = best_quote(answer)
    passage = answer.citations[first.citation - 1]
    candidate = short_candidate(question, first, reading, passage is passages[0], passage, model.span, confidence)
    if candidate:
        start, end, features = candidate
        p_exact = float(model.short_gate.probability(features))
        answer.short = _span_quote(first, passage, store, start, end, p_exact) if p_exact >= model.short_threshold else None
    return answer


def _read_top(
    question: str, passages: list[Passage], model: AnswerModel, reader: Reader
) -> tuple[list[Passage], Reading, bool]:
    """The reader's reading of the top passage, the passages in the order the answer uses them (the same list
    unless one moves up), and whether the first two are now versions of one text.

    Two versions of one text (an edited copy, a reprint, an older draft) can differ in just the answer, and the
    copy without it may rank first. When passage 2 or 3 is a near-duplicate of the first, both are read, the
    pair become passages 1 and 2, and the one the reader less doubts holds an answer (lower P(no answer)) goes
    first: rules chosen on the DRCD hard-negative set's validation split (docs/architecture.md, "Near-duplicate
    passages"). Otherwise, when the reader doubts passage 1 (P(no answer) from ``model.reread_above``), it reads
    passage 2, which goes first if the reader doubts it less than ``model.reread_ratio`` times as much: retrieval
    ranks the answer second for 2-3 % of questions (both settings chosen on validation: docs/architecture.md, "A second
    reading"), unless passage 2 lacks a name of the question's that passage 1 holds (_names_lost)."""
    reading = reader.read(question, passages[0].text)
    twin = next((p for p in passages[1:PASSAGES_READ] if near_duplicates(passages[0].text, p.text)), None)
    if twin is None:
        if reading.no_answer < model.reread_above or len(passages) < 2 or _names_lost(question, *passages[:2]):
            return passages, reading, False
        second = reader.read(question, passages[1].text)
        if second.no_answer < model.reread_ratio * reading.no_answer:
            return [passages[1], passages[0], *passages[2:]], second, False
        return passages, reading, False
    rest = [p for p in passages[1:] if p is not twin]
    other = reading if twin.text == passages[0].text else reader.read(question, twin.text)  # a file added twice
    if other.no_answer < reading.no_answer:
        return [twin, passages[0], *rest], other, True
    return [passages[0], twin, *rest], reading, True


def _names_lost(question: str, first: Passage, second: Passage) -> bool:
    """Whether the question names someone or something (names_in) that the first passage holds, its heading
    included, and the second does not. A report's sections each name their own province, and the reader, sure of
    Fujian's 「協商進村」, answered a question on how Beijing's CPPCC consults online from it."""
    names = names_in(question)
    holds = [to_simplified(f"{p.context}\n{p.text}") for p in (first, second)]
    return any(name in holds[0] and name not in holds[1] for name in names)


def _with_other_version(chosen: list[_Candidate], passages: list[Passage]) -> list[_Candidate]:
    """Each quote's counterpart in the other version (passages 1 and 2 are near-duplicates) joins the quotes
    when it says something else: the reader may have preferred the wrong version, and where two versions of a
    text disagree, the reader of the answer sees both, each cited."""
    added = []
    for quote in chosen:
        if quote.citation <= 2:
            span = _counterpart(passages[quote.citation - 1].text, passages[2 - quote.citation].text, quote.start, quote.end)
            if span:
                added.append(_Candidate(3 - quote.citation, *span, 0.0))
    return chosen + added


def _counterpart(text: str, other: str, start: int, end: int) -> tuple[int, int] | None:
    """The sentences of ``other`` that a character diff (difflib) carries text[start:end] to; None when the quote
    was cut out, or when the two read the same but for script, spacing or punctuation."""
    opcodes = SequenceMatcher(None, text, other, autojunk=False).get_opcodes()
    first = next(j1 + (start - i1 if tag == "equal" else 0) for tag, i1, i2, j1, _ in opcodes if start < i2)
    last = next(j1 + (end - i1) if tag == "equal" else j2 for tag, i1, i2, j1, j2 in opcodes if end <= i2)
    spans = [(a, b) for a, b in sentence_spans(other) if a < last and b > first]
    if not spans or tokenize(other[spans[0][0] : spans[-1][1]]) == tokenize(text[start:end]):
        return None
    return spans[0][0], spans[-1][1]


def _widen(
    chosen: list[_Candidate], text: str, sentences: list[tuple[int, int]], span: tuple[int, int, float]
) -> list[_Candidate]:
    """The best quote, when it is from the passage the reader read (``text``, its ``sentences``) and holds
    one end of the reader's span,
    widened to every sentence of its line that span runs over: a reason or a process can take two
    sentences, and as two quotes the [n] between them would cut it (docs/architecture.md, "Quotes along
    the reader's span"). Never past a line break: a byline or a heading is no part of the answer. The
    other quotes it now covers are dropped."""
    best = max(chosen, key=lambda c: c.score)
    start, end, _ = span
    if best.citation != 1 or not (best.start <= start < best.end or best.start < end <= best.end):
        return chosen
    line_end = text.find("\n", best.end)
    line = (text.rfind("\n", 0, best.start) + 1, len(text) if line_end < 0 else line_end)
    spans = [(a, b) for a, b in sentences if line[0] <= a and b <= line[1]]
    first = min([best.start] + [a for a, b in spans if b > start])
    last = max([best.end] + [b for a, b in spans if a < end])
    kept = [c for c in chosen if c is not best and (c.citation != 1 or c.end <= first or c.start >= last)]
    return [_Candidate(1, first, last, best.score)] + kept


def candidate_sentences(passages: list[Passage]) -> list[Sentence]:
    """The sentences of the first PASSAGES_READ passages, in order."""
    sentences = []
    for rank, passage in enumerate(passages[:PASSAGES_READ]):
        spans = sentence_spans(passage.text)
        for j, (start, end) in enumerate(spans):
            heading = _is_heading_line(passage, start, end)
            sentences.append(Sentence(rank, start, end, j, len(spans), heading, spans[j - 1][0] if j else start))
    return sentences


def best_quote(answer: Answer) -> Quote:
    """The quote the ranker rates highest: where the short answer is looked for."""
    return max(answer.quotes, key=lambda q: q.score)


def short_candidate(
    question: str, quote: Quote, reading: Reading, read: bool, passage: Passage, span_model: SpanModel, confidence: float
) -> tuple[int, int, np.ndarray] | None:
    """The proposed short answer inside the best quote, as offsets into its passage, with the gate's features:
    the reader's best span when the quote is from the passage it read and holds the span, else the span
    scorer's best span of the quote; None when there is none."""
    choice = best_span(span_model, question, quote.text)
    start, end, probability = reading.best
    span = passage.text[start:end]
    start, end = start + len(span) - len(span.lstrip()), end - len(span) + len(span.rstrip())  # tokens may carry a space
    scorer = (quote.passage_start + choice.start, quote.passage_start + choice.end) if choice else None
    if not (read and quote.passage_start <= start < end <= quote.passage_end):
        if scorer is None:
            return None
        start, end, probability = *scorer, None
    features = short_features(question, passage.text[start:end], probability, scorer == (start, end),
                              choice.share if choice else 0.0, confidence, reading.no_answer)
    return start, end, features


def _span_quote(quote: Quote, passage: Passage, store: Store, start: int, end: int, score: float) -> Quote:
    """Characters start..end of the quote's passage as a Quote with offsets into the original document."""
    chunk = store.chunks[passage.chunk_id]
    return Quote(passage.text[start:end], quote.citation, start, end, chunk.original_offset(start), chunk.original_offset(end - 1) + 1, score)


def _pick_by_hand(
    passages: list[Passage], picker: SentencePicker, weights: Counter, cross_lingual: bool,
    sentence_similarity: list[list[float]] | None, settings: AnswerSettings, shortest: int,
) -> list[_Candidate]:
    """The hand-set picker: the best-scoring sentences, [] if the thresholds of AnswerSettings call them irrelevant."""
    candidates = _score_by_hand(passages, picker, weights, sentence_similarity, settings, shortest)
    if not candidates:
        return []
    ranked = sorted(candidates, key=lambda c: -c.score)
    if not _is_relevant(passages[0], candidates, ranked[0], cross_lingual, settings):
        return []
    return _keep_close(ranked, settings)


def _score_by_hand(
    passages: list[Passage], picker: SentencePicker, weights: Counter,
    sentence_similarity: list[list[float]] | None, settings: AnswerSettings, shortest: int,
) -> list[_Candidate]:
    """The hand-set sentence score: overlap + cosine + passage prior (AnswerSettings weights).
    Sentences shorter than `shortest` characters are not candidates."""
    top_score = passages[0].score or 1.0
    candidates: list[_Candidate] = []
    for rank, passage in enumerate(passages[:PASSAGES_READ]):
        prior = settings.passage_weight * passage.score / top_score
        spans = sentence_spans(passage.text)
        for j, (start, end) in enumerate(spans):
            if end - start < shortest:
                continue
            overlap = picker.overlap(weights, passage.text[start:end])
            if j:  # the subject is often in the sentence before ("楊靜…表示，…；…創造彝州經驗；")
                window = passage.text[spans[j - 1][0] : end]
                overlap = max(overlap, settings.window_weight * picker.overlap(weights, window))
            semantic = sentence_similarity[rank][j] if sentence_similarity else 0.0
            score = overlap + semantic + prior
            if _is_heading_line(passage, start, end):
                score *= settings.heading_weight
            candidates.append(_Candidate(rank + 1, start, end, score, overlap, semantic))
    return candidates


def _keep_close(ranked: list[_Candidate], settings: AnswerSettings) -> list[_Candidate]:
    """The best sentence and up to MAX_QUOTES - 1 more scoring within keep_ratio of it (and sharing a word)."""
    best = ranked[0]
    return [best] + [
        c for c in ranked[1:]
        if c.score >= settings.keep_ratio * best.score and c.overlap > 0 and c.end - c.start >= settings.min_quote_chars
    ][: MAX_QUOTES - 1]


def _assemble(
    question: str, query: str, passages: list[Passage], store: Store, chosen: list[_Candidate], confidence: float
) -> Answer:
    """Quotes in document order, each quoted text once and none inside another (two documents may hold the
    same sentence, and a widened quote may hold another passage's), neighbours joined (_join_adjacent); the
    quoted passages cited first."""
    unique = {passages[c.citation - 1].text[c.start : c.end]: c for c in reversed(chosen)}  # best one kept
    chosen = sorted((c for text, c in unique.items() if not any(text in other and text != other for other in unique)),
                    key=lambda c: (c.citation, c.start))
    chosen = _join_adjacent(chosen, passages)
    # Cite only the passages quoted, numbered in order; the rest follow as further reading.
    order = list(dict.fromkeys(c.citation for c in chosen))
    order += [n for n in range(1, len(passages) + 1) if n not in order]
    renumber = {old: new for new, old in enumerate(order, 1)}
    citations = [passages[old - 1] for old in order]
    quotes = []
    for c in chosen:
        passage = passages[c.citation - 1]
        chunk = store.chunks[passage.chunk_id]
        quotes.append(
            Quote(
                passage.text[c.start : c.end], renumber[c.citation], c.start, c.end,
                chunk.original_offset(c.start), chunk.original_offset(c.end - 1) + 1, c.score,
            )
        )
    text = "".join(f"{q.text}[{q.citation}]" for q in quotes)
    return Answer(text, citations, True, quotes, script_of(question), query, confidence=confidence)


def _join_adjacent(chosen: list[_Candidate], passages: list[Passage]) -> list[_Candidate]:
    """Quotes (in passage order) that follow each other in one passage's line become one: an answer over two
    sentences reads, and is found, as one excerpt, not cut by a [n] (CMRC's gold answers often run over two)."""
    joined: list[_Candidate] = []
    for c in chosen:
        last = joined[-1] if joined else None
        if last and last.citation == c.citation and last.end <= c.start:
            gap = passages[c.citation - 1].text[last.end : c.start]
            if not gap.strip() and "\n" not in gap:
                joined[-1] = _Candidate(c.citation, last.start, c.end, max(last.score, c.score))
                continue
        joined.append(c)
    return joined


def _is_heading_line(passage: Passage, start: int, end: int) -> bool:
    """True for a line of the passage that is (part of) its section heading."""
    line = passage.text[start:end]
    return "\n" in passage.text[end : end + 1] and bool(passage.context) and line in passage.context


def _is_relevant(
    top: Passage, candidates: list[_Candidate], best: _Candidate, cross_lingual: bool, settings: AnswerSettings
) -> bool:
    """Whether the best passages answer the question at all (see AnswerSettings)."""
    if cross_lingual:
        names_found = best.overlap >= settings.min_pinyin_overlap and top.similarity >= settings.min_pinyin_similarity
        return names_found or (
            top.similarity >= settings.min_english_similarity
            and max(c.similarity for c in candidates) >= settings.min_sentence_similarity
        )
    if top.similarity < settings.min_similarity:
        return False
    return top.similarity >= settings.confident_similarity or best.overlap >= settings.min_overlap
