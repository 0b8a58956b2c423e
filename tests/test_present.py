"""Place labels: one function for CLI and web; the quoted sentence's own line; the page of PDFs."""

from __future__ import annotations

from qa_bot.present import human_size, place_label, plural, quote_line
from qa_bot.records import Passage

ORIGINAL = "標題\n\n第一段第一句。\n第一段第二句，\n接續。\n\n第二段。"


def passage_of(text: str, page: int = 0) -> Passage:
    start = ORIGINAL.index(text)
    end = start + len(text)
    line = ORIGINAL.count("\n", 0, start) + 1
    newlines = [i - start for i, ch in enumerate(ORIGINAL) if ch == "\n" and start <= i < end]
    return Passage(text, "doc.pdf", start, end, 1.0, line=line, page=page, newlines=newlines)


def test_quote_line_is_the_line_of_the_quoted_sentence():
    passage = passage_of(ORIGINAL[ORIGINAL.index("第一段") :])
    for sentence in ("第一段第一句", "第一段第二句", "接續", "第二段"):
        offset = ORIGINAL.index(sentence)
        assert quote_line(passage, offset) == ORIGINAL.count("\n", 0, offset) + 1


def test_place_label_cli_and_web_forms():
    passage = passage_of(ORIGINAL[ORIGINAL.index("第一段") :], page=4)
    second = ORIGINAL.index("第二段")
    assert place_label(passage) == f"doc.pdf p. 4, line 3, chars {passage.start}-{passage.end}"
    assert place_label(passage, second) == f"doc.pdf p. 4, line 7, chars {passage.start}-{passage.end}"
    web = place_label(passage, second, bilingual=True, source=False)
    assert web == f"第 4 頁 p. 4 · 第 7 行 line 7 · 字元 chars {passage.start}–{passage.end}"
    assert "p." not in place_label(passage_of("標題"))


def test_sizes_and_plurals():
    assert (human_size(512), human_size(1536), human_size(20 * 1024 * 1024)) == ("512 B", "1.5 KB", "20.0 MB")
    assert (plural(1, "passage"), plural(0, "passage"), plural(2, "passage")) == ("1 passage", "0 passages", "2 passages")
