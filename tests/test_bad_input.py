"""One test per row of docs/bad-input.md: what happens to bad questions and bad documents.

Every test that tries a write checks that the index is unchanged when the input is refused:
its generation, documents and passages, and for the FAISS store the set of files.
"""

from __future__ import annotations

import os
import shutil
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from conftest import SEED_FILE, index_state

from qa_bot import DocumentError
from qa_bot.loaders import MAX_DOCUMENT_BYTES, load_text
from qa_bot.retriever import MAX_QUESTION_CHARS, check_question

FORMATS = Path(__file__).resolve().parent / "data" / "formats"
NEW_DOC = (
    "臺南市立圖書館新總館於2025年3月1日正式開館，館藏超過一百萬冊。\n\n"
    "開館當天舉辦了閱讀節活動，吸引三萬名市民參加。"
)


def disk_state(bot) -> tuple:
    files = []
    if bot.store_config.kind == "faiss":
        files = sorted(str(p.relative_to(bot.index_dir)) for p in bot.index_dir.rglob("*") if p.name != ".write.lock")
    return index_state(bot), files


@contextmanager
def index_unchanged(bot) -> Iterator[None]:
    before = disk_state(bot)
    yield
    assert disk_state(bot) == before, "the index changed"


@contextmanager
def time_limit(seconds: int) -> Iterator[None]:
    def expired(signum, frame):
        raise TimeoutError(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def only_error(report) -> str:
    assert not report.added and not report.updated and not report.removed
    assert len(report.errors) == 1, report.errors
    return next(iter(report.errors.values()))


# -- questions -------------------------------------------------------------------------


@pytest.mark.parametrize("question", ["", "   ", "\n\t", "\u3000\u3000", "\x00\x01\x7f"])
def test_empty_whitespace_or_control_only_question(fast_bot, question):
    with index_unchanged(fast_bot):
        for ask in (fast_bot.retrieve, fast_bot.ask):
            with pytest.raises(ValueError, match="the question is empty: type a question about the documents"):
                ask(question)


def test_one_megabyte_question_works_truncated(fast_bot):
    question = ("湖北省政協主席是誰？" * 40_000).encode("utf-8")[: 2**20].decode("utf-8", errors="ignore")
    assert len(question.encode("utf-8")) > 2**20 - 4
    assert len(check_question(question)) == MAX_QUESTION_CHARS
    with index_unchanged(fast_bot):
        assert fast_bot.retrieve(question, k=3)
        assert fast_bot.ask(question).text


@pytest.mark.parametrize("question", ["？？！！……", "。，、；：「」", "?!.,;", "😀🎉🙏", "👍"])
def test_punctuation_or_emoji_only_question(fast_bot, question):
    with index_unchanged(fast_bot):
        assert len(fast_bot.retrieve(question, k=3)) == 3  # the closest passages, however weak
        answer = fast_bot.ask(question)
        assert not answer.found and "answer" in answer.text


def test_control_characters_in_question(fast_bot):
    with index_unchanged(fast_bot):
        passages = fast_bot.retrieve("汪洋\x00\x07\x1b[31m講話\u200b", k=3)
        assert passages and all(p.source == "cppcc-local-work-conference.txt" for p in passages)


# -- document names --------------------------------------------------------------------


def test_path_with_dotdot_is_named_sensibly_and_never_escapes(fast_bot, docs_dir, tmp_path):
    (docs_dir / "sub").mkdir()
    (docs_dir / "inside.txt").write_text(NEW_DOC, encoding="utf-8")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "notes.txt").write_text("高雄港今年吞吐量創新高，達到一千萬標準箱。", encoding="utf-8")
    around = sorted(p for p in tmp_path.rglob("*") if fast_bot.index_dir not in (p, *p.parents))
    report = fast_bot.add_documents([docs_dir / "sub" / ".." / "inside.txt", docs_dir / ".." / "outside" / "notes.txt"])
    assert sorted(report.added) == ["inside.txt", "notes.txt"] and not report.errors
    assert all(".." not in name and not name.startswith("/") for name in fast_bot.store.documents)
    # Nothing was written anywhere but the index folder.
    assert sorted(p for p in tmp_path.rglob("*") if fast_bot.index_dir not in (p, *p.parents)) == around


@pytest.mark.parametrize("name", ["../x", "../../etc/passwd", "/etc/passwd", "sub/../cppcc-local-work-conference.txt"])
def test_remove_with_dotdot_name_is_a_clear_error(fast_bot, name):
    with index_unchanged(fast_bot):
        report = fast_bot.remove_documents([name])
    assert report.errors == {name: f"no document named {name!r} in the index"}
    assert [d.name for d in fast_bot.documents()] == ["cppcc-local-work-conference.txt"]


def test_same_name_from_another_folder(fast_bot, tmp_path):
    other = tmp_path / "elsewhere"
    other.mkdir()
    (other / "cppcc-local-work-conference.txt").write_text(NEW_DOC, encoding="utf-8")
    with index_unchanged(fast_bot):
        message = only_error(fast_bot.add_documents([other / "cppcc-local-work-conference.txt"]))
    assert "already indexed" in message and "rename the file" in message


def test_two_files_of_one_batch_with_the_same_name(fast_bot, tmp_path):
    paths = []
    for folder in ("one", "two"):
        (tmp_path / folder).mkdir()
        paths.append(tmp_path / folder / "notes.txt")
        paths[-1].write_text(f"{folder}：{NEW_DOC}", encoding="utf-8")
    report = fast_bot.add_documents(paths)
    assert report.added == ["notes.txt"]
    assert report.errors == {str(paths[1]): "two files in this batch are named 'notes.txt'; rename one"}


# -- documents ---------------------------------------------------------------------------


def test_document_over_the_size_limit(fast_bot, docs_dir):
    huge = docs_dir / "huge.txt"
    with huge.open("wb") as handle:
        handle.truncate(MAX_DOCUMENT_BYTES + 2**20)  # sparse: costs no disk and is never read
    with index_unchanged(fast_bot):
        message = only_error(fast_bot.add_documents([huge]))
        assert message == "huge.txt: 65.0 MB is over the 64 MB limit for one document; split it into smaller files"
        assert fast_bot.update().errors == {str(huge): message}


def test_50_mb_text_file_loads(tmp_path):
    """Under the limit, a 50 MB file loads (test_formats.py measures its memory in a fresh process)."""
    block = (SEED_FILE.read_text(encoding="utf-8") + "\n\n").encode("utf-8")
    path = tmp_path / "big.txt"
    with path.open("wb") as handle:
        for _ in range(50 * 2**20 // len(block)):
            handle.write(block)
    text = load_text(path)
    assert len(text) > 15_000_000 and text.startswith(block.decode("utf-8")[:100])


def test_mixed_encodings_in_one_file(fast_bot, docs_dir):
    big5_part = "高雄港今年貨櫃吞吐量創下歷史新高，全年達到一千萬標準箱。"
    path = docs_dir / "mixed.txt"
    path.write_bytes(NEW_DOC.encode("utf-8") + b"\n\n" + big5_part.encode("big5") + b"\n")
    report = fast_bot.add_documents([path])
    assert report.added == ["mixed.txt"] and not report.errors
    assert load_text(path) == NEW_DOC + "\n\n" + big5_part + "\n"
    top = fast_bot.retrieve("高雄港吞吐量", k=1)[0]
    assert top.source == "mixed.txt" and "一千萬標準箱" in top.text


def test_pdf_without_a_text_layer(fast_bot, docs_dir):
    shutil.copy(FORMATS / "scanned.pdf", docs_dir / "scanned.pdf")
    with index_unchanged(fast_bot):
        message = only_error(fast_bot.add_documents([docs_dir / "scanned.pdf"]))
        assert fast_bot.update().errors == {str(docs_dir / "scanned.pdf"): message}
    assert message.startswith("scanned.pdf: the PDF has no text layer") and "needs OCR" in message


@pytest.mark.parametrize(
    ("fixture", "expected"),
    [
        ("password.pdf", "password-protected"),
        ("broken.pdf", "not a readable PDF"),
    ],
)
def test_encrypted_or_broken_pdf(fast_bot, docs_dir, fixture, expected):
    shutil.copy(FORMATS / fixture, docs_dir / fixture)
    with index_unchanged(fast_bot):
        message = only_error(fast_bot.add_documents([docs_dir / fixture]))
    assert message.startswith(f"{fixture}: ") and expected in message


def test_broken_docx(fast_bot, docs_dir):
    path = docs_dir / "report.docx"
    path.write_text("這其實是純文字，不是 Word 文件。", encoding="utf-8")
    with index_unchanged(fast_bot):
        message = only_error(fast_bot.add_documents([path]))
    assert message.startswith("report.docx: not a valid .docx file")


def test_directory_where_a_file_is_expected(fast_bot, docs_dir):
    (docs_dir / "folder.txt").mkdir()
    with index_unchanged(fast_bot):
        message = only_error(fast_bot.add_documents([docs_dir / "folder.txt"]))
        assert message == f"{docs_dir / 'folder.txt'} is a directory, not a document"
        assert fast_bot.update().errors == {}  # a folder named like a file is not a document: skipped
        with pytest.raises(DocumentError, match="documents folder .* is not a folder"):
            fast_bot.rebuild(docs_dir=docs_dir / "cppcc-local-work-conference.txt")  # a file where a folder goes


def test_symlink_loops_in_the_docs_folder(fast_bot, docs_dir):
    (docs_dir / "sub").mkdir()
    os.symlink(".", docs_dir / "sub" / "loop")  # a folder that contains itself
    os.symlink("..", docs_dir / "sub" / "up")
    os.symlink("b.txt", docs_dir / "a.txt")  # two files that point at each other
    os.symlink("a.txt", docs_dir / "b.txt")
    with index_unchanged(fast_bot), time_limit(60):
        report = fast_bot.update()
    assert report.unchanged == ["cppcc-local-work-conference.txt"] and not report.errors
    message = only_error(fast_bot.add_documents([docs_dir / "a.txt"]))
    assert "broken symbolic link" in message and "loop" in message
    with time_limit(60):
        assert fast_bot.rebuild().added == ["cppcc-local-work-conference.txt"]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (bytes(range(256)) * 20, "looks like a binary file (contains NUL bytes), not text"),
        (bytes((i * 7919) % 255 + 1 for i in range(5000)), "could not detect the text encoding"),
    ],
    ids=["with-nul", "without-nul"],
)
def test_binary_junk(fast_bot, docs_dir, data, expected):
    path = docs_dir / "junk.txt"
    path.write_bytes(data)
    with index_unchanged(fast_bot):
        message = only_error(fast_bot.add_documents([path]))
    assert message.startswith("junk.txt: ") and expected in message


def test_image_file(fast_bot, docs_dir):
    png = docs_dir / "photo.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + b"\x00" * 64)
    jpeg_as_text = docs_dir / "photo.txt"
    jpeg_as_text.write_bytes(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01" + bytes(range(256)) * 4)
    with index_unchanged(fast_bot):
        report = fast_bot.add_documents([png, jpeg_as_text])
        assert report.errors[str(png)].startswith("photo.png: unsupported file type .png; supported: .txt, ")
        assert report.errors[str(jpeg_as_text)] == "photo.txt: looks like a binary file (contains NUL bytes), not text"
        jpeg_as_text.unlink()
        assert fast_bot.update().errors == {}  # images in the folder are skipped, not errors


@pytest.mark.parametrize(
    ("content", "expected"),
    [(b"", "the file is empty"), (b" \n\t\r\n\xe3\x80\x80\n", "the document is empty (no text in it)")],
    ids=["zero-bytes", "whitespace-only"],
)
def test_empty_file(fast_bot, docs_dir, content, expected):
    path = docs_dir / "empty.txt"
    path.write_bytes(content)
    with index_unchanged(fast_bot):
        assert only_error(fast_bot.add_documents([path])) == f"empty.txt: {expected}"
        assert fast_bot.update().errors == {str(path): f"empty.txt: {expected}"}


def test_missing_file(fast_bot, docs_dir):
    with index_unchanged(fast_bot):
        message = only_error(fast_bot.add_documents([docs_dir / "nope.txt"]))
    assert message == f"{docs_dir / 'nope.txt'} does not exist or is not a regular file"


def test_bad_files_do_not_stop_good_ones(fast_bot, docs_dir):
    """A batch of every kind of bad file plus one good one: the good one is indexed, each bad one explained."""
    shutil.copy(FORMATS / "scanned.pdf", docs_dir / "scanned.pdf")
    (docs_dir / "empty.txt").write_bytes(b"")
    (docs_dir / "junk.txt").write_bytes(bytes(range(256)))
    (docs_dir / "good.txt").write_text(NEW_DOC, encoding="utf-8")
    report = fast_bot.update()
    assert report.added == ["good.txt"]
    assert sorted(Path(p).name for p in report.errors) == ["empty.txt", "junk.txt", "scanned.pdf"]
