"""Decoding real Chinese text in every encoding users send, and clear errors for non-text."""

from __future__ import annotations

import codecs

import pytest
from conftest import SEED_FILE

from qa_bot.loaders import DocumentError, decode, load_text

SEED = SEED_FILE.read_text(encoding="utf-8")
PARAGRAPH = SEED[SEED.index("北京市政協主席吉林表示") :][:200]  # all of it exists in Big5


@pytest.mark.parametrize(
    "encoded",
    [
        PARAGRAPH.encode("utf-8"),
        codecs.BOM_UTF8 + PARAGRAPH.encode("utf-8"),
        PARAGRAPH.encode("utf-16"),
        PARAGRAPH.encode("big5"),
        PARAGRAPH.encode("cp950"),
    ],
    ids=["utf-8", "utf-8-bom", "utf-16", "big5", "cp950"],
)
def test_traditional_chinese_in_each_encoding(encoded):
    assert decode(encoded) == PARAGRAPH


@pytest.mark.parametrize("encoding", ["gb18030", "gbk"])
def test_simplified_chinese_in_gb_encodings(encoding):
    text = "全国地方政协工作经验交流会在北京召开。中共中央政治局常委、全国政协主席汪洋出席会议并讲话。" * 3
    assert decode(text.encode(encoding)) == text


def test_binary_is_refused(tmp_path):
    junk = tmp_path / "junk.txt"
    junk.write_bytes(bytes(range(256)) * 20)
    with pytest.raises(DocumentError, match="binary"):
        load_text(junk)


def test_empty_and_unsupported_and_directory(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("  \n\n", encoding="utf-8")
    with pytest.raises(DocumentError, match="empty"):
        load_text(empty)
    image = tmp_path / "photo.png"
    image.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 100)
    with pytest.raises(DocumentError, match="unsupported"):
        load_text(image)
    folder = tmp_path / "folder.txt"
    folder.mkdir()
    with pytest.raises(DocumentError, match="directory"):
        load_text(folder)


def test_markdown_file_reads_as_text(tmp_path):
    path = tmp_path / "notes.md"
    path.write_text("# 標題\n\n內容。", encoding="utf-8")
    assert load_text(path) == "# 標題\n\n內容。"
