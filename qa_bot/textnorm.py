"""Text normalisation for matching: Simplified conversion, script detection, BM25 tokens.

Conversion is only ever used for matching; users always see the original characters.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from functools import lru_cache

import opencc
from pypinyin import lazy_pinyin

_CJK = r"\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ebef"
_WORD = re.compile(r"[0-9a-z]+(?:[.'][0-9a-z]+)*")
_HAS_CJK = re.compile(f"[{_CJK}]")
_TOKEN_SPLIT = re.compile(f"([{_CJK}]+)")


@lru_cache(maxsize=1)
def _t2s() -> opencc.OpenCC:
    return opencc.OpenCC("t2s")


@lru_cache(maxsize=1)
def _s2t() -> opencc.OpenCC:
    return opencc.OpenCC("s2t")


def to_simplified(text: str) -> str:
    """Traditional -> Simplified (a no-op on text that is already Simplified or not Chinese)."""
    return _t2s().convert(text)


def to_traditional(text: str) -> str:
    """Simplified -> Traditional (the reader's training data in the other script)."""
    return _s2t().convert(text)


def pos_cut(text: str, hmm: bool = False) -> Iterator:
    """jieba's part-of-speech tagging of ``text`` (pairs with .word and .flag). Its dictionary loads on first use
    (~1 s), and jieba would log that load to stderr, into every `qa-bot ask`'s output."""
    import jieba
    import jieba.posseg

    jieba.setLogLevel(logging.WARNING)
    return jieba.posseg.cut(text, HMM=hmm)


def to_simplified_aligned(text: str) -> str:
    """Simplified text of the same length, so offsets into it index the original too (a phrase
    conversion that changes the length falls back to converting character by character)."""
    simplified = to_simplified(text)
    if len(simplified) == len(text):
        return simplified
    return "".join(ch2 if len(ch2 := to_simplified(ch)) == 1 else ch for ch in text)


def has_cjk(text: str) -> bool:
    """True when the text holds at least one CJK ideograph."""
    return _HAS_CJK.search(text) is not None


def cjk_runs(text: str) -> list[str]:
    """The runs of CJK ideographs in the text, Simplified: the Chinese terms an English question quotes (雙促進)."""
    return _TOKEN_SPLIT.findall(to_simplified(text))


def script_of(text: str) -> str:
    """'zh-hant', 'zh-hans' or 'en': the script a question is written in.

    Mostly Latin words: English. Otherwise decided by whether converting to Simplified changes the text (Traditional)
    or converting to Traditional changes it (Simplified); ambiguous CJK text is
    taken as Traditional, the corpus' own script.
    """
    cjk = len(_HAS_CJK.findall(text))
    latin_words = len(re.findall(r"[A-Za-z]+", text))
    if cjk == 0 or latin_words > cjk:  # "What does 雙促進 mean?" is an English question
        return "en"
    if to_simplified(text) != text:
        return "zh-hant"
    if _s2t().convert(text) != text:
        return "zh-hans"
    return "zh-hant"


# Question words and particles, Simplified: the question's form, not its content. The BM25 and coverage of a
# question leave them out (query_tokens); the answer layer's overlaps too, with more function words.
QUESTION_WORDS = r"什么|甚么|哪些|哪里|哪儿|哪个|哪位|哪一|哪|谁|几|多少|如何|怎样|怎么|为什么|为何|是否|吗|呢|吧|请问"
_ASKING = re.compile(QUESTION_WORDS)


def query_tokens(question: str) -> list[str]:
    """A question's BM25 tokens without its question words: 「湖北省政協主席叫什麼名字？」 ranked third the passage
    naming Hubei's chairman, below two that hold 什麼 elsewhere (rare in a news article, so of high idf): the
    words that asked counted like the words that name. Fused R@1, same run (docs/architecture.md, "Question
    words"): DRCD dev 0.962 -> 0.964, CMRC trial 0.987 -> 0.993."""
    return tokenize(_ASKING.sub(" ", to_simplified(question)))


def tokenize(text: str) -> list[str]:
    """BM25 tokens: CJK character unigrams + bigrams of the Simplified text, plus Latin/digit words.

    Unigrams + bigrams beat jieba words on DRCD (see docs/architecture.md); runs of
    CJK characters never form bigrams across punctuation or Latin words.
    """
    tokens: list[str] = []
    for part in _TOKEN_SPLIT.split(to_simplified(text).lower()):
        if not part:
            continue
        if _HAS_CJK.match(part):
            tokens.extend(part)
            tokens.extend(part[i : i + 2] for i in range(len(part) - 1))
        else:
            tokens.extend(_WORD.findall(part))
    return tokens


# Two texts are near-duplicates when this share of the longer one's bigrams and words is in both. The top two
# passages retrieved for a question reach at most 0.53 on DRCD dev, 0.58 on CMRC trial and 0.41 on the seed
# article (3,801 / 1,540 / 77 questions), and 0.7 for 80 % of the DRCD hard-negative set's (a paragraph and its
# copy with the answer deleted; median 0.97), 2026-12-06.
NEAR_DUPLICATE = 0.7
# ... or when this share of the shorter one's is in the longer (a paragraph copied whole into a longer passage):
# passage 1 against passage 2 or 3 reaches at most 0.78 on DRCD dev, CMRC trial and the seed article, and the
# hard-negative copies so detected hold 49-146 shingles (2026-12-06). A caption or a heading repeating a line of a
# longer passage is no second version of it, hence the shorter text's floor.
CONTAINED = 0.9
MIN_CONTAINED = 40


def shingles(text: str) -> set[str]:
    """The Simplified text's character bigrams and words (tokenize's tokens of two or more characters)."""
    return {token for token in tokenize(text) if len(token) > 1}


def near_duplicates(a: str, b: str) -> bool:
    """Whether two texts are versions of one text, scripts aside: mostly the same (NEAR_DUPLICATE of the longer's
    shingles in both), or one mostly inside the other (CONTAINED of the shorter's, if it holds MIN_CONTAINED)."""
    x, y = shingles(a), shingles(b)
    shared, shorter = len(x & y), min(len(x), len(y))
    if not shorter:
        return False
    return shared >= NEAR_DUPLICATE * max(len(x), len(y)) or (shorter >= MIN_CONTAINED and shared >= CONTAINED * shorter)


ENGLISH_STOPWORDS = frozenset(
    ["a", "about", "an", "and", "are", "as", "at", "be", "by", "can", "could", "did", "do", "does", "for", "from", "had", "has", "have", "how", "i", "in", "into", "is", "it", "its", "me", "my", "of", "on", "or", "our", "should", "that", "the", "their", "them", "there", "these", "they", "this", "to", "was", "we", "were", "what", "when", "where", "which", "who", "whom", "whose", "why", "will", "with", "would", "you", "your"]
)


def latin_words(text: str, pairs: bool = True) -> list[str]:
    """Lower-cased Latin words and numbers of a question, plus (pairs=True) adjacent pairs joined.

    The pairs match names written as separate syllables: "Wang Yang" -> "wangyang" (汪洋).
    """
    words = _WORD.findall(text.lower())
    return words + [a + b for a, b in zip(words, words[1:])] if pairs else words


def pinyin_tokens(text: str) -> list[str]:
    """Toneless pinyin of every 2 and 3 adjacent CJK characters, joined: 山東省 -> shandong, dongsheng, shandongsheng.

    English questions about Chinese documents name places and people in pinyin
    ("Shandong", "Lan Tianli"): these tokens let BM25 match them. Single syllables
    are left out: too ambiguous, and they collide with English words ("he", "an").
    """
    tokens: list[str] = []
    for part in _TOKEN_SPLIT.split(to_simplified(text)):
        if part and _HAS_CJK.match(part):
            syllables = lazy_pinyin(part)
            for size in (2, 3):
                tokens.extend("".join(syllables[i : i + size]) for i in range(len(syllables) - size + 1))
    return tokens
