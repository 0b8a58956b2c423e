"""Issue 14: documents and inputs that used to blow up the index, leak or mislead (docs/bad-input.md).

Each test goes through a QABot with a real store; a refused input leaves the index unchanged
(`index_unchanged`), an accepted one updates it correctly.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
from conftest import index_state
from test_bad_input import FORMATS, index_unchanged, only_error

from qa_bot import QABot, loaders
from qa_bot.chunking import ChunkSettings

WORD = 'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"'


def write_docx(path: Path, paragraphs: list[str]) -> Path:
    """A .docx with these paragraphs: the sample package with its body replaced (fast for huge bodies)."""
    body = "".join(f"<w:p><w:r><w:t>{text}</w:t></w:r></w:p>" for text in paragraphs)
    xml = f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?><w:document {WORD}><w:body>{body}</w:body></w:document>'
    with zipfile.ZipFile(FORMATS / "sample.docx") as source, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as out:
        for info in source.infolist():
            out.writestr(info, xml.encode() if info.filename == "word/document.xml" else source.read(info))
    return path


def passages_of(bot, name: str) -> list:
    """A document's passages in document order (a Milvus store returns them in any order)."""
    return sorted((chunk for chunk in bot.store.chunks if chunk.source == name), key=lambda chunk: chunk.start)


# -- defect 1: list-like documents ----------------------------------------------------------


@pytest.mark.slow
def test_a_list_of_6000_items_indexes_in_linear_size(tmp_path, real_embedder):
    """The issue's list (136 KB, each item looks like a heading) was 646x the document on disk."""
    docs = tmp_path / "docs"
    docs.mkdir()
    document = docs / "list.txt"
    document.write_text("\n\n".join(f"第{i}項 名稱{i}" for i in range(6000)), encoding="utf-8")
    bot = QABot(index_dir=tmp_path / "index", docs_dir=docs, embedder=real_embedder)
    report = bot.rebuild()
    assert report.errors == {} and report.added == ["list.txt"]
    index_bytes = sum(p.stat().st_size for p in (tmp_path / "index").rglob("*") if p.is_file())
    assert index_bytes < 10 * document.stat().st_size
    assert max(len(chunk.index_text()) for chunk in bot.store.chunks) <= ChunkSettings().max_matching_chars()
    assert "第4321項 名稱4321" in bot.retrieve("第4321項", k=1)[0].text
    bot.close()


# -- defect 3: a small .docx that unpacks to many tiny paragraphs ----------------------------


def test_docx_with_too_many_paragraphs_is_refused_before_it_is_parsed(fast_bot, tmp_path, monkeypatch):
    path = write_docx(tmp_path / "tiny.docx", [f"項{i}" for i in range(loaders.MAX_DOCX_PARAGRAPHS + 1)])
    assert path.stat().st_size < 2**20  # small on disk, well under every byte limit

    def parse(*args, **kwargs):
        raise AssertionError("python-docx parsed a body over the limits")

    monkeypatch.setattr("docx.Document", parse)
    with index_unchanged(fast_bot):
        message = only_error(fast_bot.add_documents([path]))
    assert message == "tiny.docx: the .docx has over 100,000 paragraphs, more than one document may hold; split it"


def test_docx_with_too_much_text_is_refused(fast_bot, tmp_path, monkeypatch):
    monkeypatch.setattr(loaders, "MAX_DOCX_CHARS", 1000)
    path = write_docx(tmp_path / "long.docx", ["政協委員會議討論。" * 50] * 3)
    with index_unchanged(fast_bot):
        message = only_error(fast_bot.add_documents([path]))
    assert message == "long.docx: the .docx holds over 1,000 characters of text, more than one document may hold; split it"


def test_docx_of_tiny_paragraphs_within_the_limits_packs_them_into_full_passages(fast_bot, tmp_path):
    """20,000 one-word paragraphs: passages filled like sentences of a paragraph, not one per line."""
    path = write_docx(tmp_path / "tiny.docx", [f"項{i}" for i in range(20_000)])
    before = len(fast_bot.store.chunks)
    report = fast_bot.add_documents([path])
    assert report.added == ["tiny.docx"] and report.errors == {}
    passages = passages_of(fast_bot, "tiny.docx")
    assert report.passages == before + len(passages)
    chars = len(loaders.load_text(path))
    assert len(passages) <= chars // ChunkSettings().min_chars
    assert passages[-1].text.endswith("項19999")


def test_a_web_upload_reads_the_document_once(fast_bot, docs_dir, tmp_path, monkeypatch):
    from qa_bot.web.handlers import Handlers

    reads = []
    original = loaders._READERS[".docx"]
    monkeypatch.setitem(loaders._READERS, ".docx", lambda path: reads.append(path) or original(path))
    path = write_docx(tmp_path / "tiny.docx", [f"項{i}" for i in range(2000)])
    Handlers(fast_bot, docs_dir).upload([str(path)])
    assert "tiny.docx" in fast_bot.store.documents and (docs_dir / "tiny.docx").is_file()
    assert len(reads) == 1  # checked and indexed from one read (it was read twice)


# -- defect 8 (loader part): one bad byte, NUL bytes late in a file --------------------------


def test_one_line_utf8_file_with_one_bad_byte_loads_with_a_replacement(fast_bot, tmp_path):
    line = "臺南市立圖書館新總館於二〇二五年三月一日正式開館，館藏超過一百萬冊。".encode()
    path = tmp_path / "one-line.txt"
    path.write_bytes(line[:30] + b"\xff" + line[30:])
    report = fast_bot.add_documents([path])
    assert report.added == ["one-line.txt"] and report.errors == {}
    (passage,) = passages_of(fast_bot, "one-line.txt")
    assert passage.text.startswith("臺南市立圖書館") and "\ufffd" in passage.text and passage.text.endswith("一百萬冊。")


def test_legacy_encoded_one_line_file_is_still_read_as_big5(tmp_path):
    path = tmp_path / "big5.txt"
    path.write_bytes("臺南市立圖書館新總館正式開館，館藏超過一百萬冊。".encode("big5"))
    assert loaders.load_text(path) == "臺南市立圖書館新總館正式開館，館藏超過一百萬冊。"


def test_nul_bytes_after_the_first_8_kb_never_reach_passage_text(fast_bot, tmp_path):
    sentence = "臺南市立圖書館新總館正式開館，館藏超過一百萬冊。\n\n"
    path = tmp_path / "padded.txt"
    path.write_bytes((sentence * 200).encode() + b"\x00" * 5000 + "高雄港貨櫃吞吐量創新高。".encode())
    assert b"\x00" not in path.read_bytes()[:8192]
    state = index_state(fast_bot)
    report = fast_bot.add_documents([path])
    assert report.added == ["padded.txt"] and index_state(fast_bot) != state
    passages = passages_of(fast_bot, "padded.txt")
    assert not any("\x00" in chunk.text or "\x00" in chunk.context for chunk in passages)
    assert passages[-1].text.endswith("高雄港貨櫃吞吐量創新高。")
    assert "\x00" not in fast_bot.source_text("padded.txt")


# -- defect 2: links out of the documents folder ---------------------------------------------


def test_symlink_to_a_file_outside_the_documents_folder_is_refused(fast_bot, docs_dir, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("機密：伺服器的管理密碼是藍色海豚二〇二六。", encoding="utf-8")
    (docs_dir / "x.md").symlink_to(secret)
    with index_unchanged(fast_bot):
        report = fast_bot.update()
    assert report.errors == {
        str(docs_dir / "x.md"): "x.md: a symbolic link to a file outside the documents folder is not read; "
        "copy the file into the folder instead"
    }
    assert report.unchanged == ["cppcc-local-work-conference.txt"] and not report.added
    fast_bot.rebuild()
    assert not any("藍色海豚" in chunk.text for chunk in fast_bot.store.chunks)
    assert "x.md" not in fast_bot.store.documents


# -- defect 4: questions with nothing to match -----------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("question", ["😀🎉", "？？！！……", "?!.,;", "정협 지방 업무 교류회는 어디에서 열렸습니까?"])
def test_questions_without_words_are_not_found_with_the_real_model(seed_bot, question):
    state = index_state(seed_bot)
    answer = seed_bot.ask(question)
    assert not answer.found and answer.text.startswith("The documents do not seem to answer this question.")
    assert index_state(seed_bot) == state
    assert seed_bot.ask("交流會在哪裡召開？").found  # the same bot still answers a real question


# -- defect 7: the pinyin side is built with the index ---------------------------------------


def test_a_write_builds_the_pinyin_index_reusing_kept_passages(tmp_path, docs_dir, hash_embedder, monkeypatch):
    """The first English question after a write waited for the pinyin BM25 of every passage (25 s at 11,861)."""
    from qa_bot.stores import faiss as faiss_store

    bot = QABot(index_dir=tmp_path / "index", docs_dir=docs_dir, embedder=hash_embedder)
    bot.rebuild()
    kept = len(bot.store.chunks)
    converted = []
    original = faiss_store.pinyin_tokens
    monkeypatch.setattr(faiss_store, "pinyin_tokens", lambda text: converted.append(text) or original(text))
    (docs_dir / "new.txt").write_text("高雄港今年貨櫃吞吐量創下歷史新高，港務公司表示全年達到一千萬標準箱。", encoding="utf-8")
    report = bot.update()
    assert report.added == ["new.txt"]
    converted_by_write = len(converted)
    assert converted_by_write < kept  # only the new passages (the old ones were converted by the rebuild)
    assert bot.retrieve("Gaoxiong port container volume", k=1)[0].source == "new.txt"
    assert len(converted) == converted_by_write  # the English question found the pinyin side ready


# -- defect 5: a full disk -------------------------------------------------------------------


def test_full_disk_gives_a_clear_message_and_leaves_no_temporary_generation(tmp_path, docs_dir, real_embedder,
                                                                            monkeypatch, capsys):
    from qa_bot import cli
    from qa_bot.stores import faiss as faiss_store

    index_dir = tmp_path / "index"
    QABot(index_dir=index_dir, docs_dir=docs_dir, embedder=real_embedder).rebuild()
    before = sorted(p.name for p in index_dir.iterdir())
    manifest = (index_dir / "manifest.json").read_bytes()

    def full_disk(index, path):
        Path(path).write_bytes(b"\0" * 1000)  # part of the file, then the device is full
        raise RuntimeError(f"Error: 'ret == (n)' failed: write error in {path}: 0 != 1 (No space left on device)")

    monkeypatch.setattr(faiss_store.faiss, "write_index", full_disk)
    code = cli.main(["index", "remove", "cppcc-local-work-conference.txt", "--index", str(index_dir),
                     "--docs", str(docs_dir)])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert err.strip() == (f"qa-bot: could not write the index in {index_dir} (the disk is full); it is unchanged: "
                           "free some disk space and try again")
    assert sorted(p.name for p in index_dir.iterdir()) == before  # no .g-*.tmp left to keep the disk full
    assert (index_dir / "manifest.json").read_bytes() == manifest
    monkeypatch.undo()
    bot = QABot(index_dir=index_dir, docs_dir=docs_dir, embedder=real_embedder)
    assert bot.remove_documents(["cppcc-local-work-conference.txt"]).removed == ["cppcc-local-work-conference.txt"]


# -- defect 8: names that display wrongly ----------------------------------------------------


@pytest.mark.parametrize("name", ["two\nlines.txt", "evil\u202etxt.md", "tab\there.txt"])
def test_names_with_line_breaks_or_direction_overrides_are_refused(fast_bot, docs_dir, name):
    (docs_dir / name).write_text("高雄港今年貨櫃吞吐量創下歷史新高。", encoding="utf-8")
    with index_unchanged(fast_bot):
        report = fast_bot.update()
    assert report.errors == {
        str(docs_dir / name): f"{ascii(name)}: a file name with a line break, control character or "
        "text-direction override would display wrongly (or spoofed) in lists; rename the file"
    }
    assert "\n" not in report.errors[str(docs_dir / name)] and "\u202e" not in report.errors[str(docs_dir / name)]


def test_serve_on_a_port_in_use_says_so_before_building_anything(tmp_path, docs_dir):
    import socket

    from qa_bot import cli

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(SystemExit) as exit_info:
            cli.main(["serve", "--port", str(port), "--host", "127.0.0.1", "--index", str(tmp_path / "index"),
                      "--docs", str(docs_dir)])
    assert str(exit_info.value) == (
        f"qa-bot: cannot listen on 127.0.0.1:{port} (Address already in use): another program (perhaps another "
        "qa-bot) uses that port; stop it or choose another port with --port or QA_BOT_PORT"
    )
    assert not (tmp_path / "index").exists()


def test_api_says_what_is_wrong_with_a_malformed_call(fast_bot, docs_dir):
    """The Gradio API answered {"error": null} to these."""
    from test_web import api_client

    with api_client(fast_bot, docs_dir) as client, index_unchanged(fast_bot):
        with pytest.raises(Exception, match="question must be a string \\(text\\), not int"):
            client.predict(42, None, api_name="/ask")
        with pytest.raises(Exception, match="history must be a list of .* turn 1 is 'oops'"):
            client.predict("交流會在哪裡召開？", ["oops"], api_name="/ask")
        with pytest.raises(Exception, match="history must be a list of .*, not str"):
            client.predict("交流會在哪裡召開？", "oops", api_name="/ask")
        with pytest.raises(Exception, match="k must be a whole number from 1 to 20, not None"):
            client.predict("交流會在哪裡召開？", None, api_name="/retrieve")
        assert client.predict("交流會在哪裡召開？", [["福建省政協主席是誰？", None]], api_name="/ask")["text"]


def test_failed_logins_are_answered_one_at_a_time_after_a_delay(fast_bot, docs_dir, monkeypatch):
    """40 wrong passwords were answered in 0.4 s: now each waits its turn and FAILED_LOGIN_SECONDS."""
    import asyncio
    import threading
    import urllib.error
    import urllib.parse
    import urllib.request

    from test_web import free_port

    from qa_bot.web import app as web_app
    from qa_bot.web import build_app, launch_options

    waits, waiting = [], []
    real_sleep = asyncio.sleep

    delay = 0.0421  # recognisable among Gradio's own sleeps

    async def recorded_sleep(seconds, *args):
        if seconds != delay:
            return await real_sleep(seconds, *args)
        waiting.append(1)
        waits.append(len(waiting))  # how many failed logins are inside the delay at once
        await real_sleep(delay)
        waiting.pop()

    monkeypatch.setattr(web_app, "FAILED_LOGIN_SECONDS", delay)
    monkeypatch.setattr(asyncio, "sleep", recorded_sleep)
    demo = build_app(fast_bot, docs_dir)
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True,
                auth=web_app.login_checker("admin", "right"), **launch_options())

    def login(password: str) -> int:
        data = urllib.parse.urlencode({"username": "admin", "password": password}).encode()
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/login", data=data, timeout=30) as response:
                return response.status
        except urllib.error.HTTPError as error:
            return error.code

    try:
        statuses = []
        threads = [threading.Thread(target=lambda: statuses.append(login("wrong"))) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert statuses == [400] * 6
        assert waits == [1] * 6  # each failure waited its delay, never two at once
        assert login("right") == 200 and len(waits) == 6  # the right password is not delayed
    finally:
        demo.close()


# -- defect 6: the index folder deleted under a running server -------------------------------


def test_upload_after_the_index_folder_was_deleted_is_refused_not_a_one_document_index(tmp_path, docs_dir,
                                                                                        hash_embedder):
    import html
    import shutil

    from qa_bot.web.handlers import Handlers

    bot = QABot(index_dir=tmp_path / "index", docs_dir=docs_dir, embedder=hash_embedder)
    bot.rebuild()
    (docs_dir / "second.txt").write_text("高雄港今年貨櫃吞吐量創下歷史新高。", encoding="utf-8")
    bot.update()
    assert len(bot.documents()) == 2
    shutil.rmtree(tmp_path / "index")  # deleted while the server runs
    upload = tmp_path / "upload" / "new.txt"
    upload.parent.mkdir()
    upload.write_text("臺南市立圖書館新總館正式開館。", encoding="utf-8")
    status = html.unescape(Handlers(bot, docs_dir).upload([str(upload)]))
    assert "has gone (deleted while in use); nothing was changed" in status and "Rebuild" in status
    assert not (docs_dir / "new.txt").exists()  # the upload was taken back
    assert not (tmp_path / "index" / "manifest.json").exists()  # no index of one document was created
    report = bot.rebuild()  # the documents folder is the source of truth
    assert sorted(report.added) == ["cppcc-local-work-conference.txt", "second.txt"]


# -- defect 9: uploads go to the git-ignored library folder, not into seeds/ -----------------


def test_uploads_go_to_the_library_folder_that_the_default_index_also_reads(tmp_path, hash_embedder, monkeypatch):
    import subprocess

    from conftest import ROOT, seed_copy

    from qa_bot.web.handlers import Handlers

    monkeypatch.chdir(tmp_path)  # the default folders, seeds/ and library/, are relative to where it runs
    monkeypatch.delenv("QA_BOT_DOCS", raising=False)
    monkeypatch.delenv("QA_BOT_LIBRARY", raising=False)
    seed_copy(tmp_path / "seeds")
    bot = QABot(index_dir=tmp_path / "index", embedder=hash_embedder)
    assert bot.folders == [Path("seeds"), Path("library")]
    bot.rebuild()
    upload = tmp_path / "upload" / "port.txt"
    upload.parent.mkdir()
    upload.write_text("高雄港今年貨櫃吞吐量創下歷史新高。", encoding="utf-8")
    Handlers(bot, bot.library_dir).upload([str(upload)])
    assert sorted(p.name for p in (tmp_path / "seeds").iterdir()) == ["cppcc-local-work-conference.txt"]
    assert (tmp_path / "library" / "port.txt").is_file()
    assert [info.name for info in bot.documents()] == ["cppcc-local-work-conference.txt", "port.txt"]
    # A new bot with the defaults (a restarted server) finds the upload where it left it.
    restarted = QABot(index_dir=tmp_path / "index", embedder=hash_embedder)
    report = restarted.update()
    assert report.unchanged == ["cppcc-local-work-conference.txt", "port.txt"] and not report.removed
    Handlers(restarted, restarted.library_dir).remove("port.txt")
    assert not (tmp_path / "library" / "port.txt").exists()  # removing it deletes the uploaded file
    assert [info.name for info in restarted.documents()] == ["cppcc-local-work-conference.txt"]
    ignored = subprocess.run(["git", "check-ignore", "-q", "library/port.txt"], cwd=ROOT)
    assert ignored.returncode == 0, "library/ must be git-ignored"
