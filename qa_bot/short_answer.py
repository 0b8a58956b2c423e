"""The short answer: the exact span (a name, place, date, number) inside the quoted sentence.

Candidates are character runs, not jieba words: jieba splits names it does not know (孫登,
吉爾伯特), which capped word-level spans at ~48 % exact even inside the right sentence. Every
run of 1..MAX_SPAN_CHARS characters without punctuation is scored by a linear model trained
listwise (a softmax over one sentence's candidates) on the gold answers of DRCD dev and
CMRC 2018 trial (bench/train_answer.py). Its features say where the question's own words sit
around the span (the text left and right of the question word, e.g. 「…在哪裡召開」 against
「…在北京召開」), whether the span starts and ends on word boundaries (jieba, with and without
its unknown-word model), its part of speech against what the question asks for, and which
characters open, close and surround it (learned vocabularies: 「於」 before a place, 「年」 at the
end of a date). jieba earns its place here: its tags give the answer types.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .answer_model import QUESTION_TYPES, SpanModel, question_type
from .textnorm import pos_cut, to_simplified, to_simplified_aligned

MAX_SPAN_CHARS = 16  # 97.6 % of DRCD dev answers are at most this long
MAX_SENTENCE_CHARS = 300  # longer "sentences" (lists without punctuation) are cut here
# Characters that end a candidate run. '·' (威廉·瓊斯), '.', ',' and '%' inside numbers stay.
_BREAK = re.compile(r"[\s，。！？；：、,;:!?「」『』《》（）()\[\]【】“”\"'‘’…—]")
_WH = re.compile(
    r"[什甚]么时候|[什甚]么地方|[什甚]么人|[什甚]么|哪一年|哪一天|哪一位|哪一个|哪一|哪些|哪里|哪儿|哪个|哪位|哪|谁|几|多少|何时|何地|何人|何处|"
    r"如何|怎样|怎么|为什么|为何"
)
_TRAILING = re.compile(r"[\s？?。！!呢吗呀啊]+$")
_DIGITS = set("0123456789０１２３４５６７８９零〇一二三四五六七八九十百千万亿两")
_TIME_ENDS = set("年月日代纪时")
_LENGTH_BUCKETS = (1, 2, 3, 4, 5, 6, 8, 11, MAX_SPAN_CHARS)
_POS = ("nr", "ns", "nt", "nz", "n", "t", "m", "q", "v", "a", "eng", "x")
_ASKED_POS = ("nr", "ns", "nt", "t", "m", "n")
_QTYPES = ("other", *QUESTION_TYPES)
_VOCAB_SLOTS = ("before", "first", "last", "after")
_MAX_CONTEXT = 8


@dataclass(frozen=True)
class Candidates:
    """Every candidate span of one sentence: offsets into the sentence and a feature row each."""

    starts: np.ndarray
    ends: np.ndarray
    features: np.ndarray

    def __len__(self) -> int:
        return len(self.starts)


@dataclass(frozen=True)
class SpanChoice:
    """The best span of a sentence: offsets into it and its softmax share among all candidates."""

    start: int
    end: int
    share: float


def best_span(model: SpanModel, question: str, sentence: str) -> SpanChoice | None:
    """The highest-scoring span of the sentence, None when it has no candidate."""
    candidates = span_candidates(question, sentence, model.vocab)
    if not len(candidates):
        return None
    shares = model.scorer.shares(candidates.features)
    best = int(np.argmax(shares))
    return SpanChoice(int(candidates.starts[best]), int(candidates.ends[best]), float(shares[best]))


def question_sides(question: str) -> tuple[str, str, str]:
    """The Simplified question cut around its question word: (left, question word, right)."""
    simplified = _TRAILING.sub("", to_simplified(question))
    match = _WH.search(simplified)
    if not match:
        return simplified, "", ""
    return simplified[: match.start()], match.group(), simplified[match.end() :]


def span_candidates(question: str, sentence: str, vocab: dict[str, tuple[str, ...]]) -> Candidates:
    """All runs of 1..MAX_SPAN_CHARS characters without a break character, with their features."""
    sentence = sentence[:MAX_SENTENCE_CHARS]
    text = to_simplified_aligned(sentence)
    n = len(text)
    breaks = np.fromiter((bool(_BREAK.match(ch)) and not _inside_number(text, k) for k, ch in enumerate(text)), bool, n)
    starts, ends = [], []
    for i in range(n):
        if breaks[i]:
            continue
        j = i
        while j < n and j - i < MAX_SPAN_CHARS and not breaks[j]:
            j += 1
            starts.append(i)
            ends.append(j)
    s, e = np.asarray(starts, dtype=np.int64), np.asarray(ends, dtype=np.int64)
    if not len(s):
        return Candidates(s, e, np.zeros((0, feature_count(vocab))))
    return Candidates(s, e, _features(question, text, breaks, s, e, vocab))


def feature_count(vocab: dict[str, tuple[str, ...]]) -> int:
    return _FIXED_FEATURES + sum(len(vocab[slot]) + 1 for slot in _VOCAB_SLOTS)


_FIXED_FEATURES = len(_LENGTH_BUCKETS) + 8 + 2 + 10 + 2 + 4 + 8 + 4 + len(_POS) + len(_QTYPES) * (len(_ASKED_POS) + 2)


def _features(
    question: str, text: str, breaks: np.ndarray, s: np.ndarray, e: np.ndarray, vocab: dict[str, tuple[str, ...]]
) -> np.ndarray:
    n, length = len(text), e - s
    left, wh, right = question_sides(question)
    simplified_q = left + wh + right
    columns: list[np.ndarray] = []
    # Length.
    buckets = np.searchsorted(np.asarray(_LENGTH_BUCKETS), length)
    columns += [(buckets == b).astype(float) for b in range(len(_LENGTH_BUCKETS))]
    # Word boundaries, with and without jieba's unknown-word model (names it does not know).
    for hmm in (False, True):
        word_start, word_end, whole = _boundaries(text, hmm)
        columns += [word_start[s], word_end[e - 1], whole[s, np.minimum(length, _MAX_WORD) - 1] * (length <= _MAX_WORD),
                    np.log1p(_cumulative(word_start)[e] - _cumulative(word_start)[s])]
    # Punctuation or the sentence edge right outside the span.
    before_break = np.where(s > 0, breaks[np.maximum(s - 1, 0)], True)
    after_break = np.where(e < n, breaks[np.minimum(e, n - 1)], True)
    columns += [before_break.astype(float), after_break.astype(float)]
    # Where the question's words sit. The question rephrases a sentence with the answer replaced by
    # its question word, so the answer tends to touch what surrounds that word: the text left of it
    # ends right before the span, the text right of it starts right after, its head noun ends the
    # span (哪一種模特兒 -> 少女模特兒), and the span is a whole run the question does not cover.
    suffix = _common_suffix(text, left)
    prefix = _common_prefix(text, right)
    head = _head_match(text, right, e, length)
    covered = _covered(text, simplified_q)
    cum_covered = _cumulative(covered)
    inside = (cum_covered[e] - cum_covered[s]) / length
    columns += [
        np.minimum(suffix[s], _MAX_CONTEXT) / _MAX_CONTEXT, (suffix[s] >= 2).astype(float),
        np.minimum(prefix[e], _MAX_CONTEXT) / _MAX_CONTEXT, (prefix[e] >= 2).astype(float),
        ((suffix[s] >= 2) & (prefix[e] >= 2)).astype(float), head / 4, (head > 0).astype(float),
        inside, (inside == 0).astype(float), _in_question(text, simplified_q, s, e),
    ]
    edge = covered | breaks
    columns += [np.where(s > 0, edge[np.maximum(s - 1, 0)], True).astype(float),
                np.where(e < n, edge[np.minimum(e, n - 1)], True).astype(float)]
    # The same in order, with words in between allowed: how much of the question's text left of its
    # question word reappears (as a subsequence) just before the span, and of its right text just after.
    for side_text, flank in ((left[-_WINDOW:], "before"), (right[:_WINDOW], "after"), (left[-_WINDOW:], "after"),
                             (right[:_WINDOW], "before")):
        shared = _flank_subsequence(text, side_text, flank)
        at = s if flank == "before" else e
        columns.append(shared[at] / max(1, min(_WINDOW, len(side_text))))
    for side in (left + wh[:1], wh[-1:] + right):
        before, after = _distances(_covered(text, side), s, e)
        columns += [np.log1p(before), (before == 0).astype(float), np.log1p(after), (after == 0).astype(float)]
    digits = np.fromiter((ch in _DIGITS for ch in text), bool, n)
    cum_digits = _cumulative(digits)
    has_digit = (cum_digits[e] - cum_digits[s]) > 0
    time_end = np.fromiter((text[k - 1] in _TIME_ENDS for k in e), bool, len(e))
    numeric = digits | np.fromiter((_inside_number(text, k) for k in range(n)), bool, n)
    cuts_number = (np.where(s > 0, numeric[np.maximum(s - 1, 0)], False) & numeric[s]) | (
        numeric[e - 1] & np.where(e < n, numeric[np.minimum(e, n - 1)], False)
    )  # "060" of 2,790,060
    columns += [has_digit.astype(float), ((cum_digits[e] - cum_digits[s]) == length).astype(float), time_end.astype(float),
                cuts_number.astype(float)]
    # Part of speech: share of the span's characters in words of each tag group.
    groups = _char_pos(text)
    pos_share = {}
    for g in _POS:
        cum = _cumulative(groups == _POS.index(g))
        pos_share[g] = (cum[e] - cum[s]) / length
        columns.append(pos_share[g])
    # What the question asks for, against what the span is.
    qtype = question_type(question) if wh else "other"
    for t in _QTYPES:
        on = float(qtype == t)
        columns += [on * pos_share[g] for g in _ASKED_POS]
        columns += [on * has_digit, on * time_end]
    # Which characters surround, open and close the span.
    slots = {
        "before": [text[k - 1] if k > 0 else "^" for k in s],
        "first": [text[k] for k in s],
        "last": [text[k - 1] for k in e],
        "after": [text[k] if k < n else "$" for k in e],
    }
    fixed = np.asarray(columns, dtype=np.float64).T
    one_hot = []
    for slot in _VOCAB_SLOTS:
        index = {ch: k for k, ch in enumerate(vocab[slot])}
        block = np.zeros((len(s), len(vocab[slot]) + 1))
        block[np.arange(len(s)), [index.get(ch, len(vocab[slot])) for ch in slots[slot]]] = 1.0
        one_hot.append(block)
    return np.hstack([fixed, *one_hot])


_MAX_WORD = 8
_MAX_DISTANCE = 30
_WINDOW = 8  # question characters compared with the sentence's characters next to a span
_FLANK = 12  # ... within this many characters of it


def _flank_subsequence(text: str, question_part: str, flank: str) -> np.ndarray:
    """out[i]: longest common subsequence of question_part and the _FLANK characters before
    position i (flank="before") or from position i on (flank="after"); one dynamic programme run
    over all positions at once."""
    n = len(text)
    if not question_part:
        return np.zeros(n + 1)
    codes = np.asarray([ord(ch) for ch in text] + [-1] * _FLANK, dtype=np.int64)
    padded = np.concatenate([np.full(_FLANK, -1, np.int64), codes])  # _FLANK pads before, _FLANK after
    offsets = np.arange(n + 1)[:, None] + (np.arange(_FLANK) if flank == "before" else np.arange(_FLANK) + _FLANK)
    windows = padded[offsets]  # windows[i]: the flank of position i, -1 beyond the text
    row = np.zeros((n + 1, _FLANK + 1), np.int64)
    for ch in question_part:
        diagonal = np.zeros(n + 1, np.int64)
        for j in range(1, _FLANK + 1):
            up = row[:, j].copy()
            row[:, j] = np.where(windows[:, j - 1] == ord(ch), diagonal + 1, np.maximum(up, row[:, j - 1]))
            diagonal = up
    return row[:, _FLANK].astype(float)


def _inside_number(text: str, k: int) -> bool:
    """',' or '.' between digits (2,790,060; 3.5) belongs to the number."""
    return text[k] in ",." and 0 < k < len(text) - 1 and text[k - 1].isdigit() and text[k + 1].isdigit()


def _in_question(text: str, question: str, s: np.ndarray, e: np.ndarray) -> np.ndarray:
    """Whether the span appears word for word in the question (an answer rarely repeats the question)."""
    return np.fromiter((text[a:b] in question for a, b in zip(s, e)), float, len(s))


def _head_match(text: str, right: str, e: np.ndarray, length: np.ndarray) -> np.ndarray:
    """How many characters (up to 4) of the question's text after its question word end the span,
    with something before them: 「哪一種模特兒」 and the span 「少女模特兒」 give 3."""
    out = np.zeros(len(e))
    for k in range(1, min(4, len(right)) + 1):
        ends = np.fromiter((text[x - k : x] == right[:k] for x in e), bool, len(e))
        out[ends & (length > k)] = k
    return out


def _distances(mask: np.ndarray, s: np.ndarray, e: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Characters between the span and the nearest masked character before it / after it (capped)."""
    n = len(mask)
    last, nxt = np.full(n + 1, -_MAX_DISTANCE, np.int64), np.full(n + 1, n + _MAX_DISTANCE, np.int64)
    for i in range(1, n + 1):
        last[i] = i if mask[i - 1] else last[i - 1]
    for j in range(n - 1, -1, -1):
        nxt[j] = j if mask[j] else nxt[j + 1]
    return np.minimum(s - last[s], _MAX_DISTANCE), np.minimum(nxt[e] - e, _MAX_DISTANCE)


@lru_cache(maxsize=1024)
def _cut(text: str, hmm: bool) -> tuple[tuple[str, str], ...]:
    return tuple((pair.word, pair.flag) for pair in pos_cut(text, hmm))


def _boundaries(text: str, hmm: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per character: starts a word, ends a word; whole[i, L-1]: text[i:i+L] is exactly one word."""
    n = len(text)
    word_start, word_end = np.zeros(n + 1, bool), np.zeros(n + 1, bool)
    whole = np.zeros((n + 1, _MAX_WORD), float)
    position = 0
    for word, _ in _cut(text, hmm):
        word_start[position] = True
        word_end[position + len(word) - 1] = True
        if len(word) <= _MAX_WORD:
            whole[position, len(word) - 1] = 1.0
        position += len(word)
    return word_start.astype(float), word_end.astype(float), whole


def _char_pos(text: str) -> np.ndarray:
    """Per character: the index in _POS of its word's tag group (jieba without HMM)."""
    out, position = np.full(len(text), _POS.index("x")), 0
    for word, tag in _cut(text, False):
        group = tag[:2] if tag[:2] in ("nr", "ns", "nt", "nz") else tag if tag == "eng" else tag[:1]
        out[position : position + len(word)] = _POS.index(group) if group in _POS else _POS.index("x")
        position += len(word)
    return out


def _cumulative(mask: np.ndarray) -> np.ndarray:
    """Prefix sums with a leading 0: count in [a, b) is c[b] - c[a]."""
    return np.concatenate([[0], np.cumsum(mask[: len(mask)], dtype=np.int64)])


def _common_suffix(text: str, left: str) -> np.ndarray:
    """suffix[i]: how many characters before position i equal the end of `left`."""
    out = np.zeros(len(text) + 1, np.int64)
    if not left:
        return out
    for i in range(1, len(text) + 1):
        k = 0
        while k < min(i, len(left), _MAX_CONTEXT) and text[i - 1 - k] == left[-1 - k]:
            k += 1
        out[i] = k
    return out


def _common_prefix(text: str, right: str) -> np.ndarray:
    """prefix[j]: how many characters from position j equal the start of `right`."""
    out = np.zeros(len(text) + 1, np.int64)
    if not right:
        return out
    for j in range(len(text)):
        k = 0
        while k < min(len(text) - j, len(right), _MAX_CONTEXT) and text[j + k] == right[k]:
            k += 1
        out[j] = k
    return out


def _covered(text: str, question: str) -> np.ndarray:
    """Characters of the text inside a bigram the question also has."""
    bigrams = {question[k : k + 2] for k in range(len(question) - 1)}
    mask = np.zeros(len(text), bool)
    for k in range(len(text) - 1):
        if text[k : k + 2] in bigrams:
            mask[k : k + 2] = True
    return mask
