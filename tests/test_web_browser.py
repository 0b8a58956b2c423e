"""End to end: the web chat in headless Chromium, with the real model over a copy of the seeds.

One server (in-process, temporary index and documents folder) serves the whole module.
Screenshots go to test-artifacts/; with QA_BOT_UPDATE_SCREENSHOTS=1 the two README ones are
also copied to docs/screenshots/.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import ROOT, seed_copy

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--no-first-run"]
ARTIFACTS = ROOT / "test-artifacts"
README_SHOTS = ROOT / "docs" / "screenshots"
ANSWER_TIMEOUT = 90_000  # ms; the first question may wait for nothing but a busy CI machine

LIBRARY = (
    "臺南市立圖書館新總館於2025年3月1日正式開幕，館內藏書超過一百萬冊。\n"
    "開幕典禮由臺南市長主持，並舉辦了說故事活動。\n"
)
HOSTILE = (
    "高雄市立美術館公告：美術館每週一休館。<script>window.__pwned=1</script>\n"
    '展覽介紹<img src=x onerror="window.__pwned=2">請見[官方網站](javascript:window.__pwned=3)。\n'
)

if not Path(CHROMIUM).is_file():
    pytest.skip(f"browser tests need Debian's chromium at {CHROMIUM} (apt-get install chromium fonts-noto-cjk)",
                allow_module_level=True)
pytest.importorskip("playwright.sync_api", reason="browser tests need playwright (pip install -e '.[test]')")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def shot(page, name: str, readme: bool = False) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path), full_page=True)
    if readme and os.environ.get("QA_BOT_UPDATE_SCREENSHOTS"):
        README_SHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, README_SHOTS / name)
    return path


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, seed_bot):
    """A documents folder copied from seeds/ and an index copied from the session's seed index.

    Rebuilding over the copied index reuses every embedding, so this costs no model time.
    """
    root = tmp_path_factory.mktemp("web-e2e")
    docs = root / "docs"
    seed_copy(docs)
    shutil.copytree(seed_bot.index_dir, root / "index")
    return root


@pytest.fixture(scope="module")
def server(workspace, real_embedder, seed_bot):
    from qa_bot import QABot
    from qa_bot.web import build_app, launch_options

    bot = QABot(index_dir=workspace / "index", docs_dir=workspace / "docs", embedder=real_embedder,
                store=seed_bot.store_config)
    report = bot.rebuild()
    assert report.embedded == 0 and report.passages > 0
    # A pristine copy for the start-up timing test, taken before any upload.
    shutil.copytree(workspace / "index", workspace / "index-startup")
    demo = build_app(bot, workspace / "docs")
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, **launch_options())
    yield {"url": f"http://127.0.0.1:{port}/", "bot": bot, "docs": workspace / "docs"}
    demo.close()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, server):
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="zh-TW")
    page = context.new_page()
    page.dialogs = []
    page.on("dialog", lambda dialog: (page.dialogs.append(dialog.message), dialog.dismiss()))
    page.goto(server["url"])
    page.wait_for_selector("#qa-question textarea")
    yield page
    assert page.dialogs == [], f"the page opened dialogs: {page.dialogs}"
    context.close()


def ask(page, question: str) -> str:
    """Type a question, send it, wait for the answer; returns the answer message's text."""
    answers = page.locator("#qa-chat .qa-answer").count()
    page.fill("#qa-question textarea", question)
    page.click("#qa-send")
    page.wait_for_function(
        "n => document.querySelectorAll('#qa-chat .qa-answer').length > n", arg=answers, timeout=ANSWER_TIMEOUT
    )
    page.wait_for_timeout(400)  # the scroll-into-view script runs after the answer arrives
    return page.locator("#qa-chat .qa-answer").last.inner_text()


def upload(page, *paths: Path) -> str:
    """Upload files on the Index tab; returns the status message."""
    page.get_by_role("tab", name="索引 Index").click()
    page.wait_for_selector("#qa-documents table")
    result = "#qa-status .qa-ok, #qa-status .qa-warn, #qa-status .qa-error"
    script = f"() => Array.from(document.querySelectorAll('{result}')).map(e => e.innerText).join('\\n')"
    before = page.evaluate(script)
    page.set_input_files("#qa-upload input[type=file]", [str(p) for p in paths])
    # Gradio uploads the files to the server before it lists them: slow on a busy machine. A listed name is two
    # elements (stem, extension) that the layout may wrap apart, so the list's text is read without whitespace.
    listed = "names => { const list = document.querySelector('#qa-upload .file-preview'); " \
             "return !!list && names.every(n => list.textContent.replace(/\\s+/g, '').includes(n)); }"
    page.wait_for_function(listed, arg=[p.name for p in paths], timeout=ANSWER_TIMEOUT)
    page.click("#qa-add")
    page.wait_for_function(f"before => {{ const now = ({script})(); return now && now !== before; }}", arg=before,
                           timeout=ANSWER_TIMEOUT)
    status = page.evaluate(script)
    page.get_by_role("tab", name="問答 Chat").click()
    return status


def choose_citation(page, n: int) -> str:
    page.click("#qa-citation input")
    page.locator("li[role=option]", has_text=f"[{n}] ").first.click()
    page.wait_for_function(
        "n => { const h = document.querySelector('#qa-viewer .qa-viewer-head'); return h && "
        "h.innerText.startsWith('[' + n + ']'); }",
        arg=n,
    )
    page.wait_for_timeout(400)
    return page.inner_text("#qa-viewer")


# -- tests -----------------------------------------------------------------------------


def test_start_serves_a_usable_page(server, workspace, browser):
    """`python app.py` with a built index serves a usable page (the model loads afterwards).

    How fast is a benchmark figure (bench/run_perf.py, cold start); the bound here only catches a
    start that hangs, so that a busy machine does not fail it.
    """
    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "QA_BOT_AUTH": "", "QA_BOT_STORE": server["bot"].store_config.kind}
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "app.py", "--index", str(workspace / "index-startup"), "--docs", str(workspace / "docs"),
         "--port", str(port)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}/"
        while time.perf_counter() - started < 60:
            assert process.poll() is None, process.stdout.read()
            try:
                with urllib.request.urlopen(url, timeout=1) as response:
                    if response.status == 200:
                        break
            except OSError:
                time.sleep(0.1)
        served = time.perf_counter() - started
        page = browser.new_page()
        page.goto(url)
        page.wait_for_selector("#qa-question textarea")
        usable = time.perf_counter() - started
        page.close()
    finally:
        process.terminate()
        process.wait(timeout=20)
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "startup.txt").write_text(f"served {served:.2f} s, usable in Chromium {usable:.2f} s\n")
    print(f"start to page: served {served:.2f} s, usable {usable:.2f} s")
    assert usable <= 60, f"page took {usable:.1f} s"


def test_traditional_question_is_answered_with_citations(page, server):
    answer = ask(page, "交流會在哪裡召開？")
    assert "北京" in answer
    assert "[1]" in answer
    first = page.locator("#qa-chat .qa-answer").last.locator(".qa-citation").first
    head = first.locator(".qa-cite-head").inner_text()
    assert "cppcc-local-work-conference.txt" in head and "第" in head and "字元 chars" in head
    assert "北京" in first.locator("mark.qa-quote").first.inner_text()
    viewer = page.inner_text("#qa-viewer")  # the first citation opens in the source viewer
    assert viewer.startswith("[1]") and "北京" in page.locator("#qa-viewer mark").first.inner_text()
    shot(page, "chat.png", readme=True)
    page.set_viewport_size({"width": 390, "height": 844})
    page.wait_for_timeout(400)
    width = page.evaluate("() => document.documentElement.scrollWidth")
    assert width <= 390 + 1, f"the page scrolls sideways at phone width ({width}px)"
    shot(page, "chat-phone.png")


def test_simplified_question_and_follow_up(page):
    answer = ask(page, "湖北省政协主席是谁？")
    assert "徐立全" in answer
    follow_up = ask(page, "那河北呢？")
    assert page.locator("#qa-chat .qa-answer").count() == 2
    assert follow_up.strip()
    page.click("#qa-clear")
    page.wait_for_function("() => document.querySelectorAll('#qa-chat .qa-answer').length === 0")


def test_source_viewer_shows_the_cited_part_in_context(page, server):
    ask(page, "六有是指甚麼？")
    viewer = choose_citation(page, 1)
    assert "六有" in page.locator("#qa-viewer mark").first.inner_text()
    text = server["bot"].source_text("cppcc-local-work-conference.txt")
    shown = page.inner_text("#qa-viewer .qa-source")
    assert 1000 < len(shown) < 2000 and shown.replace("…", "").strip()[:40] in text
    assert "cppcc-local-work-conference.txt" in viewer and "顯示 showing" in viewer
    shot(page, "source-viewer.png", readme=True)
    other = choose_citation(page, 2)
    assert other.startswith("[2]")


def test_upload_then_ask_about_it(page, server, tmp_path):
    document = tmp_path / "tainan-library.txt"
    document.write_text(LIBRARY, encoding="utf-8")
    status = upload(page, document)
    assert "新增 Added" in status and "tainan-library.txt" in status
    assert (server["docs"] / "tainan-library.txt").read_text(encoding="utf-8") == LIBRARY
    page.get_by_role("tab", name="索引 Index").click()
    assert "tainan-library.txt" in page.inner_text("#qa-documents")
    shot(page, "index.png")
    page.get_by_role("tab", name="問答 Chat").click()
    answer = ask(page, "臺南市立圖書館新總館什麼時候開幕？")
    assert "2025年3月1日" in answer
    citations = page.locator("#qa-chat .qa-answer").last.locator(".qa-citations").first.inner_text()
    assert "tainan-library.txt" in citations

    passages = len(server["bot"].store.chunks)
    copy = tmp_path / "again" / document.name  # the same name and content from another path: a new file input
    copy.parent.mkdir()
    copy.write_text(LIBRARY, encoding="utf-8")
    again = upload(page, copy)  # the same document twice: nothing new
    assert "未變更 Unchanged" in again and "新增 Added" not in again
    assert len(server["bot"].store.chunks) == passages
    assert [d.name for d in server["bot"].documents()].count("tainan-library.txt") == 1


def test_bad_upload_is_refused_and_index_unchanged(page, server, tmp_path):
    index = server["bot"].store
    binary = tmp_path / "binary.txt"
    binary.write_bytes(b"\x00\x01\x02\x03 not text \x00")
    status = upload(page, binary)
    assert "未加入 Not added" in status and "binary.txt" in status
    assert server["bot"].store is index
    assert not (server["docs"] / "binary.txt").exists()


def test_hostile_document_is_shown_literally(page, server, tmp_path):
    document = tmp_path / "hostile-notes.txt"
    document.write_text(HOSTILE, encoding="utf-8")
    assert "新增 Added" in upload(page, document)
    answer = ask(page, "高雄市立美術館哪一天休館？")
    assert "週一" in answer
    message = page.locator("#qa-chat .qa-answer").last
    shown = message.inner_text()
    assert "hostile-notes.txt" in shown
    assert "<script>window.__pwned=1</script>" in shown
    assert '<img src=x onerror="window.__pwned=2">' in shown
    assert "[官方網站](javascript:window.__pwned=3)" in shown
    viewer = page.inner_text("#qa-viewer")
    assert "<script>window.__pwned=1</script>" in viewer
    page.wait_for_timeout(500)
    assert page.evaluate("() => typeof window.__pwned") == "undefined"
    assert page.locator("#qa-chat img[src=x], #qa-viewer img").count() == 0
    assert page.locator("a[href^='javascript']").count() == 0
    assert page.locator("#qa-chat script, #qa-viewer script").count() == 0
    shot(page, "hostile.png")


def test_api_ask_with_gradio_client(server):
    from gradio_client import Client

    client = Client(server["url"], verbose=False)
    answer = client.predict("交流會在哪裡召開？", None, api_name="/ask")
    assert answer["found"] is True and "北京" in answer["text"]
    first = answer["citations"][0]
    assert first["n"] == 1 and first["highlights"] and first["source"] == "cppcc-local-work-conference.txt"
    assert "北京" in server["bot"].source_text(first["source"])[first["start"]:first["end"]]
    result = client.predict("湖北省政协主席是谁？", 3, api_name="/retrieve")
    assert len(result["passages"]) == 3


def test_questions_keep_working_while_documents_are_added(server, tmp_path):
    from gradio_client import Client

    from qa_bot.library import add_uploads

    results: list = []
    errors: list = []

    def asker() -> None:
        try:
            client = Client(server["url"], verbose=False)
            for question in ("交流會在哪裡召開？", "湖北省政协主席是谁？"):
                results.append(client.predict(question, None, api_name="/ask"))
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=asker) for _ in range(4)]
    for thread in threads:
        thread.start()
    document = tmp_path / "concurrent.txt"
    document.write_text("嘉義市立博物館將於2026年5月擴建完成。\n", encoding="utf-8")
    report, refused = add_uploads(server["bot"], server["docs"], [document])
    for thread in threads:
        thread.join(timeout=120)
    assert not refused and report.added == ["concurrent.txt"]
    assert errors == []
    assert len(results) == 8 and all(r["found"] and r["citations"] for r in results)


def test_remove_and_rebuild_from_the_index_tab(page, server):
    bot = server["bot"]
    assert "hostile-notes.txt" in [d.name for d in bot.documents()]
    page.get_by_role("tab", name="索引 Index").click()
    page.wait_for_selector("#qa-documents table")
    page.click("#qa-remove-choice input")
    page.locator("li[role=option]", has_text="hostile-notes.txt").first.click()
    page.click("#qa-remove")
    page.wait_for_function("() => (document.querySelector('#qa-status') || {}).innerText?.includes('移除 Remove')")
    assert "hostile-notes.txt" not in page.inner_text("#qa-documents")
    assert "hostile-notes.txt" not in [d.name for d in bot.documents()]
    assert not (server["docs"] / "hostile-notes.txt").exists()
    page.click("#qa-rebuild")
    page.wait_for_function("() => (document.querySelector('#qa-status') || {}).innerText?.includes('重建 Rebuild')",
                           timeout=ANSWER_TIMEOUT)
    names = sorted(d.name for d in bot.documents())
    assert names == sorted(p.name for p in server["docs"].iterdir())
    summary = page.inner_text("#qa-summary")
    assert f"文件 Documents: {len(names)}" in summary and f"段落 Passages: {len(bot.store.chunks)}" in summary
