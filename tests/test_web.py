"""The web chat's formatting, upload and API plumbing (fast: hashing embedder, no browser)."""

from __future__ import annotations

import contextlib
import html
import re
import socket
from html.parser import HTMLParser
from pathlib import Path

import pytest

from qa_bot.answer import Answer, Quote
from qa_bot.errors import UploadError
from qa_bot.library import MAX_NAME_BYTES, add_uploads, check_upload_size, remove_document, safe_upload_name
from qa_bot.loaders import SUPPORTED_SUFFIXES
from qa_bot.records import Passage
from qa_bot.web.app import parse_auth
from qa_bot.web.render import (
    SOURCE_WINDOW,
    citation_records,
    escape,
    format_answer,
    format_documents_table,
    format_source,
    render_highlighted,
    source_window,
)

HOSTILE = (
    "標題<script>window.__pwned=1</script>\n"
    '圖片<img src=x onerror="window.__pwned=2">\n'
    "連結[點我](javascript:alert(1)) 與 <a href=\"javascript:alert(2)\">a</a> $$x$$ {{7*7}} ${7*7} `code` **粗體**"
)


def visible_text(markup: str) -> str:
    """What a browser would show: tags dropped, <br> as newline, entities decoded."""
    return html.unescape(re.sub(r"<[^>]+>", "", markup.replace("<br>", "\n")))


ALLOWED_TAGS = {"div", "span", "mark", "br", "ol", "ul", "li", "b", "details", "summary", "table", "thead", "tbody",
                "tr", "th", "td"}
ALLOWED_ATTRIBUTES = {"class", "data-n", "colspan"}


class _Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.seen = []

    def handle_starttag(self, tag, attrs):
        self.seen.append((tag, [name for name, _ in attrs]))


def assert_inert(markup: str) -> None:
    """Only the tags and attributes our formatter writes; no Markdown, LaTeX or template syntax; no raw newline."""
    parser = _Tags()
    parser.feed(markup)
    for tag, attributes in parser.seen:
        assert tag in ALLOWED_TAGS, tag
        assert set(attributes) <= ALLOWED_ATTRIBUTES, attributes
    for needle in ("](", "$$", "{{", "${", "`", "javascript:"):
        assert needle not in markup, needle
    assert "\n" not in markup


# -- escaping ----------------------------------------------------------------------


def test_escape_makes_html_markdown_and_templates_inert():
    escaped = escape(HOSTILE)
    assert_inert(escaped)
    assert visible_text(escaped) == HOSTILE


def test_escape_keeps_indentation_and_line_breaks():
    text = "第一行\n    縮排\r\n\t第三行\r最後"
    escaped = escape(text)
    assert escaped.count("<br>") == 3
    assert visible_text(escaped) == "第一行\n    縮排\n\t第三行\n最後"


# -- highlighting --------------------------------------------------------------------


def test_render_highlighted_marks_exact_ranges():
    text = "甲乙丙丁戊己庚"
    markup = render_highlighted(text, [(1, 3), (5, 6)])
    assert markup == '甲<mark class="qa-quote">乙丙</mark>丁戊<mark class="qa-quote">己</mark>庚'


def test_render_highlighted_merges_clips_and_escapes():
    text = "<b>bold</b> & [x](javascript:y)"
    markup = render_highlighted(text, [(0, 3), (2, 6), (-5, 1), (28, 99), (10, 10)])
    assert_inert(markup)
    assert visible_text(markup) == text
    marked = [visible_text(m) for m in re.findall(r'<mark class="qa-quote">(.*?)</mark>', markup)]
    assert marked == ["<b>bol", text[28:]]


def test_render_highlighted_window_and_area():
    text = "0123456789" * 3
    markup = render_highlighted(text, [(12, 14)], lo=10, hi=20, area=(11, 16))
    assert visible_text(markup) == text[10:20]
    assert '<span class="qa-cited">1</span><mark class="qa-quote">23</mark><span class="qa-cited">45</span>' in markup


def passage(text: str, **kw) -> Passage:
    defaults = {"source": "doc.txt", "start": 100, "end": 100 + len(text), "score": 1.0, "similarity": 0.9,
                "line": 7, "context": "章節<i>一</i>", "chunk_id": 0}
    return Passage(text, **{**defaults, **kw})


def test_format_answer_quotes_cites_and_stays_inert():
    first = passage(HOSTILE)
    second = passage("另一段[link](http://x.y)。", source="<b>evil</b>.txt", line=9)
    quote_text = "圖片<img src=x onerror=\"window.__pwned=2\">"
    start = HOSTILE.index(quote_text)
    answer = Answer(
        text=f"{quote_text}[1]",
        citations=[first, second],
        found=True,
        quotes=[Quote(quote_text, 1, start, start + len(quote_text), 100 + start, 100 + start + len(quote_text))],
        language="zh-hant",
    )
    markup = format_answer(answer)
    assert_inert(markup)
    shown = visible_text(markup)
    assert f"{quote_text}[1]" in shown  # the answer text, literally, with its marker
    assert "doc.txt" in shown and "第 7 行" in shown and "字元 chars 100–" in shown
    assert "章節<i>一</i>" in shown and "<b>evil</b>.txt" in shown
    assert HOSTILE in shown  # the whole excerpt, literally
    marks = [visible_text(m) for m in re.findall(r'<mark class="qa-quote">(.*?)</mark>', markup)]
    assert marks == [quote_text]
    # the unquoted passage is further reading, folded away
    assert markup.index("<details") < markup.index("&#60;b&#62;evil")


def test_format_answer_shows_the_short_answer_first_in_bold_and_escaped():
    text = "起點設在<b>白水鎮</b>中山體育場。"
    answer = Answer(f"{text}[1]", [passage(text)], True, [Quote(text, 1, 0, len(text), 0, len(text))])
    answer.short = Quote("<b>白水鎮</b>中山體育場", 1, 4, 18, 4, 18)
    markup = format_answer(answer)
    assert_inert(markup)
    assert markup.index('<div class="qa-short"><b>') < markup.index("qa-answer-text")
    assert "&#60;b&#62;白水鎮&#60;/b&#62;中山體育場</b>" in markup


def test_format_answer_not_found_shows_message_and_closest_passages():
    answer = Answer("文件中沒有找到這個問題的答案。", [passage("最接近的段落。"), passage("其次。")], found=False)
    markup = format_answer(answer)
    shown = visible_text(markup)
    assert shown.startswith("文件中沒有找到這個問題的答案。")
    assert "最接近的段落 Closest passages" in shown and "最接近的段落。" in shown and "其次。" in shown
    assert "<mark" not in markup and "<details" not in markup


# -- source viewer -------------------------------------------------------------------


def test_source_window_sizes():
    text = "x" * 10_000
    lo, hi = source_window(text, 5000, 5200)
    assert lo < 5000 and hi > 5200 and hi - lo == SOURCE_WINDOW
    assert source_window(text, 0, 100) == (0, SOURCE_WINDOW)
    assert source_window(text, 9900, 10_000) == (10_000 - SOURCE_WINDOW, 10_000)
    lo, hi = source_window(text, 1000, 3000)  # a passage longer than the window is shown whole
    assert lo < 1000 and hi >= 3000
    assert source_window("short", 2, 4) == (0, 5)


def test_format_source_highlights_citation_in_context():
    cited = "臺南市圖書館於2025年3月1日開幕。<script>x()</script>其後。"
    text = "前言。\n" + "填充文字。" * 200 + "\n" + cited + "尾聲。" * 700
    start = text.index("臺南市")
    end = text.index("其後。") + 3
    quote_end = text.index("開幕。") + 3
    record = {"n": 2, "source": "a<b>.txt", "start": start, "end": end, "line": 3, "context": "",
              "quotes": [[start, quote_end]]}
    markup = format_source(text, record)
    assert_inert(markup)
    shown = visible_text(markup)
    assert "<script>x()</script>" in shown and "a<b>.txt" in shown
    marks = [visible_text(m) for m in re.findall(r'<mark class="qa-quote">(.*?)</mark>', markup)]
    assert marks == ["臺南市圖書館於2025年3月1日開幕。"]
    area = "".join(re.findall(r'<span class="qa-cited">(.*?)</span>', markup))
    assert visible_text(area) == "<script>x()</script>其後。"
    assert shown.count("…") == 2  # cut on both sides
    assert len(shown) < SOURCE_WINDOW + 300


def test_format_source_without_quotes_marks_the_passage():
    text = "abc" * 100
    markup = format_source(text, {"n": 1, "source": "s.txt", "start": 30, "end": 60, "line": 1, "context": ""})
    assert [visible_text(m) for m in re.findall(r'<mark class="qa-quote">(.*?)</mark>', markup)] == [text[30:60]]


def test_citation_records_are_json_able():
    answer = Answer("q[1]", [passage("q。其他。")], True, [Quote("q。", 1, 0, 2, 100, 102)])
    records = citation_records(answer)
    assert records == [{"n": 1, "source": "doc.txt", "start": 100, "end": 105, "line": 7, "page": 0, "newlines": [],
                        "context": "章節<i>一</i>", "quotes": [[100, 102]]}]


# -- upload names -------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("notes.txt", "notes.txt"),
        ("報告 2024.MD", "報告 2024.md"),
        ("../../etc/passwd.txt", "passwd.txt"),
        ("..\\..\\windows\\evil.md", "evil.md"),
        ("/abs/path/doc.txt", "doc.txt"),
        ("a<b>:c?.txt", "a_b__c_.txt"),
        ("ctrl\x00\x1fname.txt", "ctrl__name.txt"),
    ],
)
def test_safe_upload_name_accepts(raw, expected):
    assert safe_upload_name(raw) == expected


@pytest.mark.parametrize(
    "raw",
    ["../../etc/passwd", "..", ".", "", "dir/", ".hidden.txt", "../.env.txt", "...txt", "payload.exe", "archive.tar.gz",
     "noext", ".txt"],
)
def test_safe_upload_name_refuses(raw):
    with pytest.raises(UploadError):
        safe_upload_name(raw)


def test_safe_upload_name_supports_every_loader_suffix_and_caps_length():
    for suffix in SUPPORTED_SUFFIXES:
        assert safe_upload_name(f"x{suffix.upper()}") == f"x{suffix}"
    long = safe_upload_name("長" * 300 + ".txt")
    assert long.endswith(".txt") and len(long.encode("utf-8")) <= MAX_NAME_BYTES


def test_check_upload_size():
    check_upload_size(10, "a.txt", limit=10)
    with pytest.raises(UploadError, match="limit"):
        check_upload_size(11, "a.txt", limit=10)
    with pytest.raises(UploadError, match="empty"):
        check_upload_size(0, "a.txt")


# -- uploads and removals against a real (hash-embedded) index ------------------------


def _write(folder: Path, name: str, data: str | bytes) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return path


LIBRARY = "臺南市圖書館新館於2025年3月1日正式開幕，館內藏書超過一百萬冊。\n開幕典禮由市長主持。\n"


def test_add_uploads_adds_once_and_is_idempotent(fast_bot, docs_dir, tmp_path):
    before = len(fast_bot.store.chunks)
    upload = _write(tmp_path / "in", "tainan-library.txt", LIBRARY)
    report, refused = add_uploads(fast_bot, docs_dir, [upload])
    assert refused == [] and report.added == ["tainan-library.txt"] and not report.errors
    assert (docs_dir / "tainan-library.txt").read_text(encoding="utf-8") == LIBRARY
    passages = len(fast_bot.store.chunks)
    assert passages > before
    assert any(p.source == "tainan-library.txt" for p in fast_bot.retrieve("臺南市圖書館開幕", k=3))

    report, refused = add_uploads(fast_bot, docs_dir, [upload])  # the same file again
    assert report.unchanged == ["tainan-library.txt"] and not report.added and refused == []
    assert len(fast_bot.store.chunks) == passages
    assert [d.name for d in fast_bot.documents()].count("tainan-library.txt") == 1
    assert sorted(p.name for p in docs_dir.iterdir()) == ["cppcc-local-work-conference.txt", "tainan-library.txt"]


def test_add_uploads_updates_changed_content(fast_bot, docs_dir, tmp_path):
    add_uploads(fast_bot, docs_dir, [_write(tmp_path / "a", "lib.txt", LIBRARY)])
    report, _ = add_uploads(fast_bot, docs_dir, [_write(tmp_path / "b", "lib.txt", "高雄市圖書館今日休館。\n")])
    assert report.updated == ["lib.txt"]
    assert "高雄" in fast_bot.source_text("lib.txt")


def test_bad_uploads_leave_folder_and_index_unchanged(fast_bot, docs_dir, tmp_path):
    generation = fast_bot.store
    listing = sorted(p.name for p in docs_dir.iterdir())
    incoming = tmp_path / "in"
    bad = [
        _write(incoming, "binary.txt", b"\x00\x01\x02binary\x00"),
        _write(incoming, "payload.exe", "MZ"),
        _write(incoming, ".hidden.txt", LIBRARY),
        _write(incoming, "empty.txt", b""),
        _write(incoming, "big.txt", "大" * 100),
    ]
    report, refused = add_uploads(fast_bot, docs_dir, bad, max_bytes=200)
    assert len(refused) == len(bad)
    text = "\n".join(refused)
    for needle in ("binary.txt", "payload.exe", ".hidden.txt", "empty", "limit"):
        assert needle in text
    assert fast_bot.store is generation
    assert sorted(p.name for p in docs_dir.iterdir()) == listing
    assert report.passages == len(generation.chunks)


def test_upload_never_writes_outside_docs_dir(fast_bot, docs_dir, tmp_path):
    nested = tmp_path / "in" / "x" / "y"
    upload = _write(nested, "escape.txt", LIBRARY)
    # The path's basename is all that counts; a name like ../../escape.txt is reduced to escape.txt.
    report, refused = add_uploads(fast_bot, docs_dir, [str(nested / ".." / "y" / "escape.txt")])
    assert report.added == ["escape.txt"] and not refused
    assert (docs_dir / "escape.txt").is_file()
    assert not (tmp_path / "escape.txt").exists() and upload.is_file()
    assert not [p for p in docs_dir.iterdir() if p.name.startswith(".")]  # no temp files left


def test_upload_refuses_name_taken_by_a_symlink(fast_bot, docs_dir, tmp_path):
    outside = _write(tmp_path / "outside", "target.txt", "外部檔案。")
    (docs_dir / "link.txt").symlink_to(outside)
    _, refused = add_uploads(fast_bot, docs_dir, [_write(tmp_path / "in", "link.txt", LIBRARY)])
    assert refused and "not a regular file" in refused[0]
    assert outside.read_text(encoding="utf-8") == "外部檔案。"


def test_failed_indexing_rolls_files_back(fast_bot, docs_dir, tmp_path, monkeypatch):
    existing = docs_dir / "cppcc-local-work-conference.txt"
    original = existing.read_bytes()

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(fast_bot, "add_documents", broken)
    uploads = [_write(tmp_path / "in", "new.txt", LIBRARY), _write(tmp_path / "in", existing.name, "改過的內容。")]
    with pytest.raises(OSError):
        add_uploads(fast_bot, docs_dir, uploads)
    assert not (docs_dir / "new.txt").exists()
    assert existing.read_bytes() == original


def test_batch_with_duplicate_names(fast_bot, docs_dir, tmp_path):
    first = _write(tmp_path / "a", "same.txt", LIBRARY)
    second = _write(tmp_path / "b", "same.txt", "別的內容。")
    report, refused = add_uploads(fast_bot, docs_dir, [first, second])
    assert report.added == ["same.txt"] and len(refused) == 1 and "same.txt" in refused[0]


def test_remove_document_deletes_file_and_passages(fast_bot, docs_dir, tmp_path):
    add_uploads(fast_bot, docs_dir, [_write(tmp_path / "in", "gone.txt", LIBRARY)])
    report = remove_document(fast_bot, docs_dir, "gone.txt")
    assert report.removed == ["gone.txt"]
    assert not (docs_dir / "gone.txt").exists()
    assert all(c.source != "gone.txt" for c in fast_bot.store.chunks)
    report = remove_document(fast_bot, docs_dir, "never-there.txt")
    assert report.errors and not report.removed


def test_remove_document_keeps_files_outside_docs_dir(fast_bot, docs_dir, tmp_path):
    outside = _write(tmp_path / "elsewhere", "kept.txt", LIBRARY)
    fast_bot.add_documents([outside])
    report = remove_document(fast_bot, docs_dir, "kept.txt")
    assert report.removed == ["kept.txt"] and outside.is_file()


def test_documents_table_escapes_names(fast_bot, docs_dir, tmp_path):
    add_uploads(fast_bot, docs_dir, [_write(tmp_path / "in", "x_img src=x onerror=alert(1)_.txt", LIBRARY)])
    markup = format_documents_table(fast_bot)
    assert_inert(markup)
    assert "cppcc-local-work-conference.txt" in visible_text(markup)


def test_parse_auth():
    assert parse_auth(None) is None and parse_auth("") is None
    assert parse_auth("admin:pa:ss") == ("admin", "pa:ss")
    with pytest.raises(SystemExit):
        parse_auth("nocolon")


# -- the app and its JSON API (hashing embedder) ------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def api_client(bot, docs_dir):
    """A gradio_client Client of the app served over `bot` on a free local port."""
    from gradio_client import Client

    from qa_bot.web import build_app, launch_options

    demo = build_app(bot, docs_dir)
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, **launch_options())
    try:
        yield Client(f"http://127.0.0.1:{port}/", verbose=False)
    finally:
        demo.close()


def test_app_api_ask_and_retrieve(fast_bot, docs_dir):
    with api_client(fast_bot, docs_dir) as client:
        endpoints = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
        assert set(endpoints) == {"/ask", "/retrieve"}  # UI events are not exposed
        answer = client.predict("交流會在哪裡召開？", None, api_name="/ask")
        assert set(answer) >= {"text", "found", "citations", "quotes", "language"}
        assert answer["citations"] and answer["citations"][0]["source"] == "cppcc-local-work-conference.txt"
        follow_up = client.predict("那湖北呢？", [["福建省政協主席是誰？", "..."]], api_name="/ask")
        assert "福建" in follow_up["query"]
        result = client.predict("湖北省政协主席是谁？", 3, api_name="/retrieve")
        assert len(result["passages"]) == 3 and {"text", "source", "start", "end"} <= set(result["passages"][0])
        with pytest.raises(Exception, match="empty"):
            client.predict("   ", None, api_name="/ask")


def test_app_py_and_qa_bot_serve_share_one_parser(monkeypatch):
    import runpy
    import sys

    import qa_bot.web as web
    from qa_bot.cli import main

    seen = []
    monkeypatch.setattr(web, "serve", lambda **options: seen.append(options))
    monkeypatch.setenv("QA_BOT_PORT", "8123")
    arguments = ["--index", "idx", "--docs", "d", "--host", "0.0.0.0"]
    monkeypatch.setattr(sys, "argv", ["app.py", *arguments])
    with pytest.raises(SystemExit) as exited:
        runpy.run_path(str(Path(__file__).resolve().parent.parent / "app.py"), run_name="__main__")
    assert exited.value.code == 0
    assert main(["serve", *arguments]) == 0
    expected = {"index_dir": Path("idx"), "docs_dir": Path("d"), "model": None, "host": "0.0.0.0", "port": 8123}
    assert seen == [expected, expected]
