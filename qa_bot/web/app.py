"""The web chat's Gradio app: layout and wiring over :class:`~qa_bot.web.handlers.Handlers`, and serving.

Start-up: the index is loaded (or built, when missing) before the page is served, but the
embedding model is loaded in a background thread after the server is up; the first
question waits for it if it is not ready yet.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import socket
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..bot import QABot
from ..config import Settings
from ..crosslingual import english_to_chinese
from ..library import MAX_UPLOAD_BYTES
from ..loaders import SUPPORTED_SUFFIXES
from ..present import plural
from .handlers import Handlers
from .render import SEARCHING, VIEWER_EMPTY, citation_label, escape

if TYPE_CHECKING:
    import gradio as gr

_STARTED = time.perf_counter()
CONCURRENCY = 4  # questions answered at once (each is ~20-100 ms of CPU; the runtimes release the GIL)
CSS = (Path(__file__).with_name("style.css")).read_text(encoding="utf-8")

EXAMPLES = (
    "交流會在哪裡召開？",
    "六有是指甚麼？",
    "湖北省政协主席是谁？",
    "Who chaired the meeting?",
)

# After an answer: show the top of the newest question (not the end of its long answer) and bring
# the cited part of the source viewer into view. Runs in the browser; touches only scroll positions.
SCROLL_JS = """() => { setTimeout(() => {
  const wrap = document.querySelector('#qa-chat .panel-wrap, #qa-chat .bubble-wrap');
  const rows = wrap ? wrap.querySelectorAll('.message-row.user-row') : [];
  if (rows.length) {
    const last = rows[rows.length - 1];
    wrap.scrollTop += last.getBoundingClientRect().top - wrap.getBoundingClientRect().top - 8;
  }
  const box = document.querySelector('#qa-viewer .qa-source');
  const cited = box ? box.querySelector('.qa-cited, mark') : null;
  if (cited) box.scrollTop += cited.getBoundingClientRect().top - box.getBoundingClientRect().top - 48;
}, 200); }"""


def theme() -> Any:
    import gradio as gr

    cjk = ["Noto Sans CJK TC", "Noto Sans TC", "PingFang TC", "Microsoft JhengHei", "ui-sans-serif", "system-ui",
           "sans-serif"]
    return gr.themes.Default(font=[gr.themes.LocalFont("Source Sans Pro"), *cjk])


def launch_options() -> dict[str, Any]:
    """Arguments for demo.launch() that the app needs (Gradio 6 takes css/theme at launch)."""
    return {
        "css": CSS,
        "theme": theme(),
        "ssr_mode": False,
        "max_file_size": MAX_UPLOAD_BYTES,
        "footer_links": ["api"],
    }


def build_app(bot: QABot, docs_dir: Path | None = None) -> gr.Blocks:
    """The Gradio Blocks app over `bot`; uploads go to docs_dir (default: the bot's docs_dir)."""
    import gradio as gr

    handlers = Handlers(bot, docs_dir)
    write = {"concurrency_id": "index-write", "concurrency_limit": 1, "api_visibility": "private"}
    private = {"api_visibility": "private"}

    def respond(message: str, chat: list, turns: list):
        question = (message or "").strip()
        chat = list(chat or [])
        if not question:
            yield chat, "", turns, gr.skip(), gr.skip(), gr.skip()
            return
        chat += [{"role": "user", "content": escape(question)}, {"role": "assistant", "content": SEARCHING}]
        yield chat, "", turns, gr.skip(), gr.skip(), gr.skip()
        turn = handlers.answer(question, turns)
        chat[-1] = {"role": "assistant", "content": turn.message}
        if not turn.ok:  # keep the source viewer as it is
            yield chat, "", turns, gr.skip(), gr.skip(), gr.skip()
            return
        choices = [(citation_label(r), str(r["n"])) for r in turn.records]
        first = turn.records[0] if turn.records else None
        yield (
            chat, "", turn.turns, turn.records,
            gr.update(choices=choices, value=str(first["n"]) if first else None),
            handlers.show_record(first),
        )

    def clear():
        return [], "", [], [], gr.update(choices=[], value=None), VIEWER_EMPTY

    def index_panel():
        summary, table, names = handlers.index_panel()
        return summary, table, gr.update(choices=names, value=None)

    def progress_callback(progress: gr.Progress) -> Callable[[int, int], None]:
        def update(done: int, total: int) -> None:
            progress((done, total), desc="嵌入段落 Embedding passages", unit="passages")

        return update

    def on_upload(files: list | None, progress=gr.Progress()):
        paths = [f if isinstance(f, str) else getattr(f, "name", str(f)) for f in files or []]
        return (handlers.upload(paths, progress_callback(progress)), None, *index_panel())

    def on_remove(name: str | None):
        return (handlers.remove(name), *index_panel())

    def on_rebuild(progress=gr.Progress()):
        return (handlers.rebuild(progress_callback(progress)), *index_panel())

    def ask(question: str, history: list | None = None) -> dict:
        """Answer a question with quoted sentences and [n] citations (see Answer.to_dict)."""
        try:
            return handlers.api_ask(question, history)
        except ValueError as error:
            raise gr.Error(str(error)) from error

    def retrieve(question: str, k: int = 5) -> dict:
        """The k passages that best match the question, best first."""
        try:
            return handlers.api_retrieve(question, k)
        except ValueError as error:
            raise gr.Error(str(error)) from error

    # -- layout ----------------------------------------------------------------------

    with gr.Blocks(title="qa-bot 文件問答 Document QA", analytics_enabled=False) as demo:
        gr.HTML(
            '<div class="qa-header"><h1>文件問答 Document QA</h1>'
            "<p>答案只引用您的文件原句，並附出處。Answers quote your documents sentence by sentence, with sources.</p>"
            "</div>",
            js_on_load=None,
        )
        turns = gr.State([])
        records = gr.State([])
        with gr.Tabs():
            with gr.Tab("問答 Chat", id="chat"), gr.Row(equal_height=False):
                with gr.Column(scale=3, min_width=320):
                    chatbot = gr.Chatbot(
                        label="對話 Conversation",
                        elem_id="qa-chat",
                        height=520,
                        layout="panel",
                        autoscroll=False,
                        render_markdown=False,
                        sanitize_html=True,
                        latex_delimiters=[],
                        allow_tags=False,
                        feedback_options=None,
                        buttons=["copy", "copy_all"],
                        placeholder="請輸入問題，或點選下方範例。Type a question, or pick an example below.",
                    )
                    with gr.Row(equal_height=True):
                        question = gr.Textbox(
                            label="問題 Question",
                            placeholder="輸入問題 Ask a question",
                            show_label=False,
                            elem_id="qa-question",
                            scale=5,
                            min_width=180,
                            max_length=2000,
                        )
                        send = gr.Button("送出 Send", variant="primary", elem_id="qa-send", scale=1, min_width=90)
                    gr.HTML('<div class="qa-cite-title">範例問題 Examples</div>', js_on_load=None)
                    with gr.Row(elem_classes="qa-examples"):
                        example_buttons = [gr.Button(q, size="sm", elem_classes="qa-example") for q in EXAMPLES]
                    clear_button = gr.Button("清除對話 Clear", size="sm", elem_id="qa-clear")
                with gr.Column(scale=2, min_width=300):
                    citation = gr.Dropdown(
                        choices=[],
                        value=None,
                        label="原文出處 Source viewer — 選擇引文 choose an excerpt",
                        elem_id="qa-citation",
                        interactive=True,
                    )
                    viewer = gr.HTML(VIEWER_EMPTY, elem_id="qa-viewer", js_on_load=None)
            with gr.Tab("索引 Index", id="index") as index_tab:
                summary = gr.HTML(elem_id="qa-summary", js_on_load=None)
                table = gr.HTML(elem_id="qa-documents", js_on_load=None)
                with gr.Row(equal_height=False):
                    with gr.Column(min_width=280):
                        uploads = gr.File(
                            label=f"上傳文件 Upload documents ({', '.join(SUPPORTED_SUFFIXES)}; ≤ 20 MB)",
                            file_count="multiple",
                            file_types=list(SUPPORTED_SUFFIXES),
                            elem_id="qa-upload",
                        )
                        add_button = gr.Button("加入索引 Add to index", variant="primary", elem_id="qa-add")
                    with gr.Column(min_width=280):
                        remove_choice = gr.Dropdown(choices=[], label="選擇文件 Document", elem_id="qa-remove-choice")
                        remove_button = gr.Button("移除文件 Remove document", variant="stop", elem_id="qa-remove")
                        rebuild_button = gr.Button("全部重建 Rebuild all", elem_id="qa-rebuild")
                status = gr.HTML(elem_id="qa-status", js_on_load=None)

        chat_outputs = [chatbot, question, turns, records, citation, viewer]
        ask_inputs = [question, chatbot, turns]
        question.submit(respond, ask_inputs, chat_outputs, **private).then(None, js=SCROLL_JS)
        send.click(respond, ask_inputs, chat_outputs, **private).then(None, js=SCROLL_JS)
        for button, text in zip(example_buttons, EXAMPLES):
            button.click(lambda t=text: t, None, question, queue=False, **private).then(
                respond, ask_inputs, chat_outputs, **private
            ).then(None, js=SCROLL_JS)
        clear_button.click(clear, None, chat_outputs, queue=False, **private)
        chatbot.clear(clear, None, chat_outputs, queue=False, **private)
        citation.input(handlers.show_citation, [citation, records], viewer, **private).then(None, js=SCROLL_JS)

        panel = [summary, table, remove_choice]
        add_button.click(on_upload, uploads, [status, uploads, *panel], **write)
        remove_button.click(on_remove, remove_choice, [status, *panel], **write)
        rebuild_button.click(on_rebuild, None, [status, *panel], **write)
        index_tab.select(index_panel, None, panel, **private)
        demo.load(index_panel, None, panel, **private)

        gr.api(ask, api_name="ask")
        gr.api(retrieve, api_name="retrieve")
    demo.queue(default_concurrency_limit=CONCURRENCY, max_size=256)
    return demo



def parse_auth(value: str | None) -> tuple[str, str] | None:
    """QA_BOT_AUTH 'user:password' -> (user, password); None when unset."""
    if not value:
        return None
    user, sep, password = value.partition(":")
    if not sep or not user or not password:
        raise SystemExit("QA_BOT_AUTH must look like user:password")
    return user, password


FAILED_LOGIN_SECONDS = 1.0


def login_checker(user: str, password: str) -> Callable[[str, str], Awaitable[bool]]:
    """Gradio auth that answers a wrong login only after FAILED_LOGIN_SECONDS, one at a time.

    So at most one failed attempt a second gets an answer, however many are sent at once (40
    guesses took 0.4 s without it); the right login is never delayed.
    """
    lock = asyncio.Lock()

    async def check(username: str, attempt: str) -> bool:
        right = hmac.compare_digest(username.encode(), user.encode())
        right &= hmac.compare_digest(attempt.encode(), password.encode())
        if not right:
            async with lock:
                await asyncio.sleep(FAILED_LOGIN_SECONDS)
        return right

    return check


def _print_progress(done: int, total: int) -> None:
    print(f"\r嵌入 embedding {done}/{total} passages", end="" if done < total else "\n", file=sys.stderr, flush=True)


def warm_up(bot: QABot) -> threading.Thread:
    """Load the model, tokenizers, the pinyin index and the English-Chinese dictionary in the background so
    the first question is fast (the dictionary alone costs about a second on the first English question)."""

    def run() -> None:
        try:
            bot.ask(EXAMPLES[0])
            bot.store.warm_up()
            english_to_chinese()
        except Exception as error:  # noqa: BLE001 - a failed warm-up shows up again on the first question
            print(f"qa-bot: model warm-up failed: {error}", file=sys.stderr)

    thread = threading.Thread(target=run, name="qa-bot-warm-up", daemon=True)
    thread.start()
    return thread


def check_port_free(host: str, port: int) -> None:
    """Exit with a clear message when another program listens on host:port (Gradio would raise a traceback)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server does: TIME_WAIT is no conflict
        try:
            probe.bind((host, port))
        except OSError as error:
            raise SystemExit(
                f"qa-bot: cannot listen on {host}:{port} ({error.strerror or error}): another program (perhaps "
                "another qa-bot) uses that port; stop it or choose another port with --port or QA_BOT_PORT"
            ) from None


def serve(
    index_dir: str | Path | None = None,
    docs_dir: str | Path | None = None,
    model: str | None = None,
    host: str | None = None,
    port: int | None = None,
    *,
    block: bool = True,
) -> gr.Blocks:
    """Load (or build) the index, serve the chat, and load the model in the background."""
    settings = Settings()
    host = host or settings.host
    port = int(port or settings.port)
    check_port_free(host, port)  # before minutes of index building, not after
    bot = QABot(index_dir=index_dir, docs_dir=docs_dir, model=model)
    if not bot.exists():
        print(f"qa-bot: no index at {bot.index_dir}; building it from {bot.docs_dir} …", file=sys.stderr)
        report = bot.rebuild(progress=_print_progress)
        print(f"qa-bot: indexed {len(report.added)} document(s), {plural(report.passages, 'passage')}", file=sys.stderr)
    store = bot.store
    print(f"qa-bot: {len(store.documents)} document(s), {plural(len(store.chunks), 'passage')}, model {store.model}",
          file=sys.stderr)
    demo = build_app(bot, bot.library_dir or bot.docs_dir)
    demo.launch(
        server_name=host,
        server_port=port,
        auth=login_checker(*credentials) if (credentials := parse_auth(settings.auth)) else None,
        prevent_thread_lock=True,
        quiet=True,
        **launch_options(),
    )
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    print(f"qa-bot web chat: http://{shown}:{port}/  (ready in {time.perf_counter() - _STARTED:.1f} s)", flush=True)
    warm_up(bot)
    if block:
        with contextlib.suppress(KeyboardInterrupt):
            demo.block_thread()
    return demo
