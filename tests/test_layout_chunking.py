"""Layout repair and chunking: offsets always point at the original characters."""

from __future__ import annotations

import re

from conftest import SEED_FILE
from hypothesis import given, settings
from hypothesis import strategies as st

from qa_bot.chunking import ChunkSettings, chunk_text, split_sentences
from qa_bot.layout import MAX_CONTEXT_CHARS, Mapped, clean

SEED = SEED_FILE.read_text(encoding="utf-8")


def assert_maps_to_original(text: str, offsets: list[int], original: str) -> None:
    assert len(text) == len(offsets)
    for char, offset in zip(text, offsets):
        assert 0 <= offset < len(original)
        assert char == original[offset] or (char in " \n" and original[offset].isspace()), (char, offset)


def test_broken_lines_are_rejoined_without_spaces():
    paragraphs = [u.body.text for u in clean(SEED) if u.kind == "paragraph"]
    joined = "".join(paragraphs)
    assert "成績來之不易" in joined
    assert "廣泛開展專題協商" in joined
    assert "協商議政質量模式" in joined  # joined across the photo caption that interrupts it


def test_headings_and_captions_are_found():
    units = clean(SEED)
    headings = [u.body.text for u in units if u.kind == "heading"]
    captions = [u.body.text for u in units if u.kind == "caption"]
    assert "北京：堅持黨的領導是根本原則" in headings
    assert "湖北：優化銜接機制 提高協商質量" in headings
    assert len(captions) == 5 and all(c.endswith(("新華社", "資料圖片")) for c in captions)
    hubei = next(u for u in units if u.kind == "paragraph" and u.body.text.startswith("湖北省政協主席"))
    assert hubei.heading.startswith("湖北：")


def test_seed_chunks_map_to_original_and_respect_sizes():
    chunks = chunk_text(SEED)
    assert 15 <= len(chunks) <= 40
    for chunk in chunks:
        assert_maps_to_original(chunk.text, chunk.offsets, SEED)
        assert len(chunk.text) <= ChunkSettings().hard_max_chars + 40  # + a heading line
    covered = set()
    for chunk in chunks:
        covered.update(chunk.offsets)
    visible = {i for i, ch in enumerate(SEED) if not ch.isspace()}
    assert visible <= covered, "every visible character of the document lands in some chunk"


def test_sentences_end_at_chinese_punctuation_and_closing_quotes():
    text = "他說：「我們來了。」然後走了！真的嗎？是的；好…… End. Next"
    sentences = [s.text for s in split_sentences(Mapped(text, list(range(len(text)))))]
    assert sentences == ["他說：「我們來了。」", "然後走了！", "真的嗎？", "是的；", "好…… ", "End. ", "Next"]


def test_long_sentence_is_split_under_the_hard_limit():
    text = "，".join(["這是一個很長的句子片段"] * 120) + "。"
    chunks = chunk_text(text)
    assert len(chunks) > 1
    assert all(len(c.text) <= ChunkSettings().hard_max_chars for c in chunks)
    assert "".join(c.text for c in chunks).replace("\n", "") .startswith("這是")


def test_latin_lines_are_joined_with_a_space():
    text = "This line is broken\nin the middle of a sentence.\n\nNext paragraph here."
    chunks = chunk_text(text)
    assert "broken in the middle" in chunks[0].text
    assert_maps_to_original(chunks[0].text, chunks[0].offsets, text)


_texts = st.text(
    alphabet=st.sampled_from(list("政協委員會議。，！？；「」\n \u3000abc.123：——資料圖片新華社#\r\t")) | st.characters(),
    max_size=1500,
)


@settings(max_examples=200, deadline=None)
@given(_texts)
def test_property_offsets_valid_and_every_character_chunked(text):
    chunks = chunk_text(text)
    covered = set()
    for chunk in chunks:
        assert chunk.text.strip()
        assert_maps_to_original(chunk.text, chunk.offsets, text)
        assert 0 <= chunk.start < chunk.end <= len(text)
        covered.update(chunk.offsets)
    visible = {i for i, ch in enumerate(text) if not re.match(r"[\s\ufeff]", ch)}
    assert visible <= covered


def test_chunking_a_huge_document_has_bounded_memory():
    """~20 MB of text: chunked section by section, peak memory growth stays far below the offset-list cost."""
    import subprocess
    import sys

    script = (
        "import resource, sys\n"
        "from qa_bot.chunking import iter_chunks\n"
        "from qa_bot.records import runs_from_offsets\n"
        f"seed = open({str(SEED_FILE)!r}, encoding='utf-8').read()\n"
        "big = (seed + '\\n\\n') * 1300\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "records = [(c.text, runs_from_offsets(c.offsets)) for c in iter_chunks(big)]\n"
        "after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "print(len(big), len(records), (after - before) // 1024)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=600)
    chars, chunks, growth_mb = map(int, out.stdout.split())
    assert chars > 6_000_000 and chunks > 30_000
    assert growth_mb < 200, f"peak RSS grew {growth_mb} MB"


# Document shapes that stress layout repair: list items and short lines (each looks like a heading),
# long lines, Markdown headings, table rows, photo credits and text in several scripts.
_LINES = st.one_of(
    st.integers(0, 9999).map(lambda i: f"第{i}項 名稱{i}"),
    st.integers(0, 99).map(lambda i: f"{'#' * (i % 6 + 1)} 標題{i}"),
    st.integers(1, 6).map(lambda n: " | ".join(f"欄{j}" for j in range(n))),
    st.integers(1, 40).map(lambda n: "這是一個很長的句子片段，" * n + "。"),
    st.sampled_from(["- item", "1. First point", "新華社", "資料圖片", "政協委員會議。", "😀🎉", "한국어 문장",
                     "English text without an end", "مرحبا بالعالم", "Ünïcödé straße.", "x", "「引文」"]),
)
_SEPARATORS = st.sampled_from(["\n", "\n\n", "\n\n\n", " \n \n"])
_SHAPES = st.lists(st.tuples(_LINES, _SEPARATORS), min_size=1, max_size=60).map(lambda xs: "".join(a + b for a, b in xs))


def _matching_chars(text: str) -> int:
    return sum(len(chunk.context) + 1 + len(chunk.text) for chunk in chunk_text(text))


@settings(max_examples=150, deadline=None)
@given(_SHAPES, st.sampled_from([2, 8, 40]))
def test_property_index_size_is_linear_in_document_size(shape, copies):
    """A document made of `copies` copies of a shape chunks to about `copies` times as much text.

    Each copy may differ at its seams (a run of headings or an open paragraph continuing into the
    next copy): at most two passages' worth. Heading context that grew with the document (the
    quadratic blow-up of list-like documents) fails this at 40 copies.
    """
    bound = ChunkSettings().max_matching_chars()
    one = _matching_chars(shape)
    many = chunk_text(shape * copies)
    assert all(len(chunk.context) + 1 + len(chunk.text) <= bound for chunk in many)
    assert sum(len(chunk.context) + 1 + len(chunk.text) for chunk in many) <= copies * (one + 2 * bound)


def test_a_long_list_keeps_every_passage_under_the_bound():
    """6,000 list items, each of which looks like a heading: context stays short, index stays linear."""
    text = "\n\n".join(f"第{i}項 名稱{i}" for i in range(6000))
    chunks = chunk_text(text)
    assert max(len(chunk.context) for chunk in chunks) <= MAX_CONTEXT_CHARS
    assert _matching_chars(text) < 3 * len(text)
    assert {chunk.context for chunk in chunks} == {"第0項 名稱0"}  # a list: its first line is the context


def test_nested_headings_stay_the_context():
    text = "第一章 總則\n\n第一節 目的\n\n本法為保障人民權益而制定。"
    assert [chunk.context for chunk in chunk_text(text)] == ["第一章 總則 第一節 目的"]
