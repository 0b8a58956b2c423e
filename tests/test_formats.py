"""Every supported format and encoding, end to end: load, index, retrieve, cite back into the original."""

from __future__ import annotations

import codecs
import contextlib
import io
import json
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest
from conftest import SEED_FILE
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from qa_bot.loaders import SUPPORTED_SUFFIXES, DocumentError, decode, decode_html, html_to_text, load_text

FORMATS = Path(__file__).resolve().parent / "data" / "formats"
sys.path.insert(0, str(FORMATS))
from make_fixtures import DOCX_AFTER_TABLE, DOCX_HEADING, DOCX_PARAGRAPHS, DOCX_TABLE, PDF_PAGES  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SEED = SEED_FILE.read_text(encoding="utf-8")


def _big5_paragraphs(limit: int) -> str:
    """Paragraphs of the seed article that Big5 can hold (it has no Simplified forms), about `limit` chars."""
    kept: list[str] = []
    for paragraph in SEED[SEED.index("北京市政協主席吉林表示") :].split("\n\n"):
        try:
            paragraph.encode("big5")
        except UnicodeEncodeError:
            continue
        kept.append(paragraph)
        if sum(map(len, kept)) >= limit:
            break
    return "\n\n".join(kept)


# Real Traditional Chinese that every encoding below can hold.
TRADITIONAL = _big5_paragraphs(600)

HTML_PAGE = """<!DOCTYPE html>
<html lang="zh-Hant">
<head>
  <meta charset="{charset}">
  <title>新聞｜臺南市政府</title>
  <style>p {{ color: red; }}</style>
  <script>var hidden = "<p>不該出現的腳本文字</p>";</script>
</head>
<body>
  <header><nav><a href="/">首頁</a> | <a href="/news">市政新聞</a></nav></header>
  <main>
    <article>
      <h1>臺南市立圖書館新總館
      正式開館</h1>
      <p>臺南市立圖書館新總館於2025年3月1日正式開館，新總館位於永康區，
      館藏超過<strong>一百萬冊</strong>，其中包括大量臺灣文學與地方文獻。</p>
      <p>開館當天舉辦了閱讀節活動，吸引三萬名市民參加。<br>市長表示，新總館將成為南部最重要的公共知識中心。</p>
      <h2>開放時間</h2>
      <table>
        <tr><th>日期</th><th>時間</th></tr>
        <tr><td>週二至週日</td><td>上午八點半至晚上九點</td></tr>
        <tr><td>週一</td><td>休館</td></tr>
      </table>
      <ul><li>讀者可以使用市民卡借書。</li><li>每人最多借閱二十冊。</li></ul>
      <p hidden>隱藏的段落</p>
      <!-- 註解 -->
    </article>
  </main>
  <aside>熱門新聞：高雄港吞吐量創新高</aside>
  <footer>臺南市政府 版權所有 &copy; 2025</footer>
</body>
</html>
"""


def assert_cites_original(bot, passages, original: str, source: str) -> list:
    """Every character of every passage from `source` maps back to the same character of the original."""
    mine = [p for p in passages if p.source == source]
    assert mine, f"no passage from {source}: {[p.source for p in passages]}"
    for passage in mine:
        chunk = bot.store.chunks[passage.chunk_id]
        assert chunk.text == passage.text
        for i, char in enumerate(passage.text):
            at = original[chunk.original_offset(i)]
            # Joins between lines/paragraphs are whitespace in the passage and in the original alike.
            assert at == char or (char.isspace() and at.isspace()), (i, char, at)
        assert passage.start == chunk.original_offset(0)
    return mine


def add_and_ask(bot, path: Path, question: str, k: int = 5):
    report = bot.add_documents([path])
    assert report.added == [path.name], report.errors
    assert not report.errors
    original = load_text(path)
    assert bot.source_text(path.name) == original  # re-reading gives the same original
    passages = bot.retrieve(question, k=k)
    return original, passages


# -- formats through the bot ---------------------------------------------------------


def test_supported_suffixes_cover_every_format():
    assert {".txt", ".md", ".html", ".htm", ".pdf", ".docx"} <= set(SUPPORTED_SUFFIXES)


def test_txt(fast_bot, tmp_path):
    path = tmp_path / "beijing.txt"
    path.write_text(TRADITIONAL, encoding="utf-8")
    original, passages = add_and_ask(fast_bot, path, "北京市政協主席吉林表示什麼？")
    assert original == TRADITIONAL
    assert passages[0].source == "beijing.txt"
    assert_cites_original(fast_bot, passages, original, "beijing.txt")


def test_pdf_pages_and_citations(fast_bot):
    path = FORMATS / "sample.pdf"
    original = load_text(path)
    assert original.count("\f") == len(PDF_PAGES)
    for number, lines in enumerate(PDF_PAGES):
        page_text = original.split("\f")[number]
        assert "".join(page_text.split()) == "".join(lines)  # CJK from a CID font comes back exactly
    questions = [
        (2, "高雄港今年貨櫃吞吐量多少標準箱？"),
        (3, "阿里山森林鐵路全程要多久？"),
        (1, "臺南市立圖書館新總館館藏多少？"),
    ]
    for page, question in questions:
        if "sample.pdf" not in fast_bot.store.documents:
            _, passages = add_and_ask(fast_bot, path, question)
        else:
            passages = fast_bot.retrieve(question, k=5)
        assert passages[0].source == "sample.pdf" and passages[0].page == page, (question, passages[0])
        for passage in assert_cites_original(fast_bot, passages, original, "sample.pdf"):
            assert passage.page == original.count("\f", 0, passage.start) + 1
            squashed = "".join(passage.text.split())
            assert squashed in "".join(PDF_PAGES[passage.page - 1])


def test_single_page_pdf_reports_page_one(fast_bot):
    path = FORMATS / "single-page.pdf"  # MSung-Light, the Traditional CID font
    original, passages = add_and_ask(fast_bot, path, "新總館位於哪一區？")
    for passage in assert_cites_original(fast_bot, passages, original, "single-page.pdf"):
        assert passage.page == 1


def test_pdf_with_owner_password_only_opens():
    path = FORMATS / "owner-only-aes.pdf"  # AES-128, empty user password
    assert load_text(path) == load_text(FORMATS / "sample.pdf")


def test_reportlab_cjk_pdf_round_trip(tmp_path):
    """A freshly made PDF in the STSong-Light CID font: pypdf gives back the Chinese text."""
    pytest.importorskip("reportlab")
    from make_fixtures import make_pdf

    path = tmp_path / "fresh.pdf"
    make_pdf(path, [["全國地方政協工作經驗交流會在北京召開。", "汪洋出席會議並講話。"], ["第二頁的內容。"]])
    text = load_text(path)
    pages = text.split("\f")
    assert "".join(pages[0].split()) == "全國地方政協工作經驗交流會在北京召開。汪洋出席會議並講話。"
    assert "".join(pages[1].split()) == "第二頁的內容。"


def test_docx_paragraphs_and_tables_in_order(fast_bot):
    path = FORMATS / "sample.docx"
    original, passages = add_and_ask(fast_bot, path, "太魯閣國家公園的觀光人次是多少？")
    expected_order = [DOCX_HEADING, *DOCX_PARAGRAPHS, " | ".join(DOCX_TABLE[1]), DOCX_AFTER_TABLE]
    positions = [original.index(part) for part in expected_order]
    assert positions == sorted(positions)
    assert "\n".join(" | ".join(row) for row in DOCX_TABLE) in original  # a row a line
    assert "<" not in original and "w:" not in original
    assert_cites_original(fast_bot, passages, original, "sample.docx")
    assert any("太魯閣" in p.text for p in passages if p.source == "sample.docx")


@pytest.mark.parametrize("charset", ["utf-8", "big5", "gb18030"])
def test_html_main_text(fast_bot, tmp_path, charset):
    path = tmp_path / f"news-{charset}.html"
    path.write_bytes(HTML_PAGE.format(charset=charset).encode(charset))
    original, passages = add_and_ask(fast_bot, path, "臺南市立圖書館新總館館藏多少冊？")
    assert "<" not in original and ">" not in original and "&copy;" not in original
    for dropped in ["腳本", "首頁", "熱門新聞", "版權所有", "隱藏的段落", "註解", "color"]:
        assert dropped not in original
    # Headings on their own, paragraphs separated by blank lines, a source line break between CJK dropped.
    assert original.startswith("臺南市立圖書館新總館正式開館\n\n")
    assert "\n\n開放時間\n\n" in original
    assert "館藏超過一百萬冊" in original
    assert "開館當天舉辦了閱讀節活動，吸引三萬名市民參加。\n市長表示" in original  # <br>
    assert "週二至週日 | 上午八點半至晚上九點" in original
    assert "\n\n讀者可以使用市民卡借書。\n\n每人最多借閱二十冊。" in original
    assert passages[0].source == path.name
    assert_cites_original(fast_bot, passages, original, path.name)


def test_html_meta_charset_is_respected():
    markup = '<html><head><meta http-equiv="Content-Type" content="text/html; charset=big5"></head>'
    body = "<body><p>開館</p></body></html>"  # two Big5 characters: too short to detect reliably
    assert html_to_text(decode_html((markup + body).encode("big5"))) == "開館"
    # A Western label on a page that is really UTF-8 (a common mislabel) still reads as UTF-8.
    latin = '<meta charset="iso-8859-1"><p>臺南</p>'
    assert html_to_text(decode_html(latin.encode("utf-8"))) == "臺南"
    # An unknown label falls back to detection.
    assert html_to_text(decode_html('<meta charset="no-such-charset"><p>臺南市立圖書館開館。</p>'.encode())) == (
        "臺南市立圖書館開館。"
    )


def test_html_title_stands_in_for_missing_h1():
    page = "<html><head><title>高雄港新聞</title></head><body><p>吞吐量創新高。</p></body></html>"
    assert html_to_text(page) == "高雄港新聞\n\n吞吐量創新高。"


def test_html_layout_table_keeps_paragraphs():
    page = "<table><tr><td><p>第一段。</p><p>第二段。</p></td><td>側邊</td></tr></table>"
    assert html_to_text(page) == "第一段。\n\n第二段。\n\n側邊"


def test_deeply_nested_html_does_not_exhaust_the_stack():
    assert html_to_text("<div>" * 5000 + "深層<b>文字</b>。" + "</div>" * 5000 + "<p>後面</p>") == "深層文字。\n\n後面"
    assert html_to_text("<table>" * 300 + "<tr><td>甲</td><td>乙</td></tr>" + "</table>" * 300) == "甲 | 乙"


# -- encodings -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "encoded",
    [
        TRADITIONAL.encode("utf-8"),
        codecs.BOM_UTF8 + TRADITIONAL.encode("utf-8"),
        TRADITIONAL.encode("utf-16"),
        codecs.BOM_UTF16_BE + TRADITIONAL.encode("utf-16-be"),
        TRADITIONAL.encode("utf-32"),
        TRADITIONAL.encode("big5"),
        TRADITIONAL.encode("gb18030"),
        TRADITIONAL.encode("gbk"),
        TRADITIONAL.encode("big5hkscs"),
    ],
    ids=["utf-8", "utf-8-bom", "utf-16-le-bom", "utf-16-be-bom", "utf-32", "big5", "gb18030", "gbk", "big5hkscs"],
)
def test_traditional_file_in_each_encoding(fast_bot, tmp_path, encoded):
    path = tmp_path / "beijing.txt"
    path.write_bytes(encoded)
    assert load_text(path) == TRADITIONAL
    report = fast_bot.add_documents([path])
    assert report.added == ["beijing.txt"]
    passages = fast_bot.retrieve("北京市政協始終堅持什麼原則？", k=3)
    assert_cites_original(fast_bot, passages, TRADITIONAL, "beijing.txt")


def test_short_big5_is_not_taken_for_shift_jis():
    assert decode("臺南市立圖書館開館。".encode("big5")) == "臺南市立圖書館開館。"


def test_gb18030_four_byte_characters():
    text = "𠮷野家的牛丼很好吃，我們明天中午一起去吃吧。" * 3  # 𠮷 is a four-byte GB18030 sequence
    assert decode(text.encode("gb18030")) == text


def test_mixed_utf8_and_big5_lines_decode_exactly():
    utf8_part = "第一部分是UTF-8：臺南市立圖書館新總館於二〇二五年三月一日正式開館。\n"
    big5_part = TRADITIONAL[:200]
    data = utf8_part.encode("utf-8") + big5_part.encode("big5") + b"\n" + utf8_part.encode("utf-8")
    assert decode(data) == utf8_part + big5_part + "\n" + utf8_part


def test_mixed_utf8_and_gb18030_lines_decode_exactly():
    utf8_part = "繁體的UTF-8段落：高雄港今年貨櫃吞吐量創下歷史新高。\r\n"
    gb_part = "简体的GB18030段落：全国地方政协工作经验交流会在北京召开。"
    data = utf8_part.encode("utf-8") + gb_part.encode("gb18030")
    assert decode(data) == utf8_part + gb_part


def test_damaged_big5_keeps_the_rest_readable():
    data = bytearray(TRADITIONAL.encode("big5"))
    data[101] = 0xFF  # not a Big5 byte anywhere
    text = decode(bytes(data))
    assert text.count("\ufffd") <= 2
    assert text[:50] == TRADITIONAL[:50] and text[-50:] == TRADITIONAL[-50:]


# -- large files -------------------------------------------------------------------------

_MEASURE = textwrap.dedent(
    """
    import json, resource, sys
    from pathlib import Path
    from qa_bot.loaders import load_text
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    text = load_text(Path(sys.argv[1]))
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"grown_kib": after - before, "chars": len(text), "head": text[:20]}))
    """
)


@pytest.mark.parametrize("encoding", ["utf-8", "big5"])
def test_50_mb_text_loads_within_a_few_copies_of_memory(tmp_path, encoding):
    block = (TRADITIONAL + "\n\n").encode(encoding)
    path = tmp_path / f"big-{encoding}.txt"
    with path.open("wb") as handle:
        for _ in range(50 * 2**20 // len(block)):
            handle.write(block)
    size = path.stat().st_size
    assert size > 49 * 2**20
    result = subprocess.run(
        [sys.executable, "-c", _MEASURE, str(path)], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert result.returncode == 0, result.stderr
    measured = json.loads(result.stdout)
    assert measured["head"] == TRADITIONAL[:20]
    # The bytes plus the decoded text (2 bytes a CJK character) plus slack: well under 4x the file.
    assert measured["grown_kib"] * 1024 < 4 * size, measured


# -- never anything but DocumentError --------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=4096))
def test_decode_raises_only_document_error(data):
    try:
        text = decode(data)
    except DocumentError:
        return
    assert isinstance(text, str)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.sampled_from([codecs.BOM_UTF8, codecs.BOM_UTF16_LE, codecs.BOM_UTF32_BE, b"\n", b"\x00",
                                 "臺南".encode("big5"), "臺南".encode(), "台南".encode("gb18030"), b"\xff", b"\xa4",
                                 b"\x81\x30", b"<meta charset=big5>", b"abc"]), max_size=40))
def test_decode_of_encoding_fragments_raises_only_document_error(parts):
    data = b"".join(parts)
    for function in (decode, decode_html):
        with contextlib.suppress(DocumentError):
            assert isinstance(function(data), str)


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


def _load_or_document_error(path: Path) -> None:
    try:
        assert isinstance(load_text(path), str)
    except DocumentError as error:
        assert str(error)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=2048), suffix=st.sampled_from([".txt", ".md", ".html", ".pdf", ".docx"]))
def test_load_text_on_arbitrary_bytes_raises_only_document_error(fuzz_dir, data, suffix):
    path = fuzz_dir / f"random{suffix}"
    path.write_bytes(data)
    _load_or_document_error(path)


_SAMPLES = {name: (FORMATS / name).read_bytes() for name in ("sample.pdf", "sample.docx")}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    name=st.sampled_from(sorted(_SAMPLES)),
    cut=st.floats(0, 1),
    flips=st.lists(st.tuples(st.floats(0, 1), st.integers(0, 255)), max_size=8),
)
@example(name="sample.docx", cut=1.0, flips=[(0.0546875, 0)])  # a broken deflate stream in the main part: zlib.error
def test_damaged_pdf_and_docx_raise_only_document_error(fuzz_dir, name, cut, flips):
    data = bytearray(_SAMPLES[name])
    for where, value in flips:
        data[int(where * (len(data) - 1))] = value
    data = data[: max(1, int(len(data) * cut))] if cut < 0.999 else data
    path = fuzz_dir / f"damaged{Path(name).suffix}"
    path.write_bytes(bytes(data))
    _load_or_document_error(path)


def test_docx_that_is_a_zip_but_not_a_document(tmp_path):
    path = tmp_path / "not-word.docx"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as package:
        package.writestr("hello.txt", "不是 Word 文件")
    path.write_bytes(buffer.getvalue())
    with pytest.raises(DocumentError, match=r"not-word\.docx: not a readable \.docx"):
        load_text(path)
