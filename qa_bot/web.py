"""The web chat: a Gradio app over a QABot (chat with cited excerpts, source viewer, index panel, JSON API).

Safety rule: every piece of document text (and every user-supplied string) reaches the page
only through :func:`escape`, inside HTML built here. The chatbot renders our HTML without
Markdown or LaTeX, so a document cannot inject live HTML, scripts or links.

Start-up: the index is loaded (or built, when missing) before the page is served, but the
embedding model (torch, ~10 s) is loaded in a background thread after the server is up;
the first question waits for it if it is not ready yet.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import sys
import tempfile
import threading
import time
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .bot import IndexReport, QABot
from .config import Settings
from .index import QAIndexError
from .loaders import SUPPORTED_SUFFIXES, DocumentError, load_text

if TYPE_CHECKING:
    import gradio as gr

    from .answer import Answer
    from .retriever import Passage

_STARTED = time.perf_counter()

MAX_UPLOAD_BYTES = 20 * 1024 * 1024
MAX_NAME_BYTES = 200
SOURCE_WINDOW = 1500  # characters of the document shown around a citation
SOURCE_BEFORE = 240  # of which before the cited passage
CONCURRENCY = 4  # questions answered at once (each is ~20-100 ms of CPU; torch releases the GIL)
MAX_K = 20

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
SEARCHING = '<div class="qa-pending">搜尋中… Searching…</div>'


# ----------------------------------------------------------------------------------
# HTML building (pure functions, unit-tested)
# ----------------------------------------------------------------------------------

# One pass (str.translate): HTML's own specials, plus the characters that Markdown, LaTeX or
# template engines could read as syntax, all as numeric entities.
_ENTITIES = {ch: f"&#{ord(ch)};" for ch in "&<>\"'[]()$`{}\\*_~|#!:"}
_INERT = str.maketrans(_ENTITIES)
_NEWLINES = re.compile(r"\r\n|\r|\n")


def escape(text: str) -> str:
    """Text -> inert HTML: every HTML, Markdown, LaTeX and template special as an entity; newlines as <br>.

    The result has no raw newlines, so no renderer can change its indentation or see block syntax.
    """
    return _NEWLINES.sub("<br>", str(text).translate(_INERT))


def _clip_ranges(ranges: Iterable[tuple[int, int]], lo: int, hi: int) -> list[tuple[int, int]]:
    """Ranges cut to [lo, hi), empty ones dropped, sorted and merged."""
    clipped = sorted((max(lo, s), min(hi, e)) for s, e in ranges if min(hi, e) > max(lo, s))
    merged: list[tuple[int, int]] = []
    for start, end in clipped:
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def render_highlighted(
    text: str,
    marks: Iterable[tuple[int, int]],
    lo: int = 0,
    hi: int | None = None,
    area: tuple[int, int] | None = None,
) -> str:
    """Escaped HTML of text[lo:hi] with `marks` in <mark> and `area` (the cited passage) in a span."""
    hi = len(text) if hi is None else min(hi, len(text))
    lo = max(0, min(lo, hi))
    mark_ranges = _clip_ranges(marks, lo, hi)
    area_ranges = _clip_ranges([area], lo, hi) if area else []
    cuts = sorted({lo, hi, *(p for r in mark_ranges + area_ranges for p in r)})
    parts = []
    for a, b in zip(cuts, cuts[1:]):
        piece = escape(text[a:b])
        if any(s <= a < e for s, e in mark_ranges):
            parts.append(f'<mark class="qa-quote">{piece}</mark>')
        elif any(s <= a < e for s, e in area_ranges):
            parts.append(f'<span class="qa-cited">{piece}</span>')
        else:
            parts.append(piece)
    return "".join(parts)


def format_location(passage: Passage) -> str:
    """'name · 第 12 行 line 12 · 字元 chars 100–220' (escaped)."""
    return (
        f'<span class="qa-source-name">{escape(passage.source)}</span> · 第 {passage.line} 行 line {passage.line} · '
        f"字元 chars {passage.start}–{passage.end}"
    )


def format_citation(n: int, passage: Passage, highlights: Sequence[tuple[int, int]]) -> str:
    """One numbered excerpt: where it is from, then the passage with its quoted sentences marked."""
    context = f' · <span class="qa-context">{escape(passage.context)}</span>' if passage.context else ""
    return (
        f'<li class="qa-citation" data-n="{n}"><div class="qa-cite-head"><span class="qa-ref">[{n}]</span> '
        f"{format_location(passage)}{context}</div>"
        f'<div class="qa-excerpt">{render_highlighted(passage.text, highlights)}</div></li>'
    )


def format_answer(answer: Answer) -> str:
    """The chat message for an answer: the quoted sentences with [n] markers, then the numbered excerpts."""
    if answer.found and answer.quotes:
        body = "".join(f'{escape(q.text)}<span class="qa-ref">[{q.citation}]</span>' for q in answer.quotes)
    else:
        body = escape(answer.text)
    parts = [f'<div class="qa-answer"><div class="qa-answer-text">{body}</div>']
    items = [(n, p, answer.highlights(n)) for n, p in enumerate(answer.citations, 1)]
    quoted = [item for item in items if item[2]] if answer.found else items
    further = [item for item in items if not item[2]] if answer.found else []
    if quoted:
        title = "出處 Sources" if answer.found else "最接近的段落 Closest passages"
        parts.append(f'<div class="qa-cite-title">{title}</div><ol class="qa-citations">')
        parts += [format_citation(*item) for item in quoted]
        parts.append("</ol>")
    if further:
        parts.append(
            f'<details class="qa-further"><summary>其他相關段落 More passages ({len(further)})</summary>'
            '<ol class="qa-citations">'
        )
        parts += [format_citation(*item) for item in further]
        parts.append("</ol></details>")
    parts.append("</div>")
    return "".join(parts)


def format_error(message: str) -> str:
    return f'<div class="qa-error">⚠️ {escape(message)}</div>'


def citation_records(answer: Answer) -> list[dict]:
    """What the source viewer needs about each citation (JSON-able, kept in the session state)."""
    records = []
    for n, p in enumerate(answer.citations, 1):
        quotes = [[q.start, q.end] for q in answer.quotes if q.citation == n]
        records.append(
            {"n": n, "source": p.source, "start": p.start, "end": p.end, "line": p.line, "context": p.context,
             "quotes": quotes}
        )
    return records


def citation_label(record: dict) -> str:
    """Dropdown label (plain text: the dropdown escapes it)."""
    return f"[{record['n']}] {record['source']} · 第 {record['line']} 行 line {record['line']}"


def source_window(
    text: str, start: int, end: int, size: int = SOURCE_WINDOW, before: int = SOURCE_BEFORE
) -> tuple[int, int]:
    """The [lo, hi) of text to show around [start, end): `before` chars ahead, `size` in all (more if the
    passage is longer), starting at a line break when one is near."""
    start = max(0, min(start, len(text)))
    end = max(start, min(end, len(text)))
    lo = max(0, start - before)
    if lo > 0:
        newline = text.find("\n", lo, start)
        if newline != -1 and newline - lo < before // 2:
            lo = newline + 1
    hi = min(len(text), max(lo + size, end + 100))
    if hi - lo < size:  # near the end: show more ahead instead
        lo = max(0, hi - size)
    return lo, hi


def format_source(text: str, record: dict) -> str:
    """The source viewer: a window of the document around a citation, the cited part highlighted."""
    start, end = record["start"], record["end"]
    lo, hi = source_window(text, start, end)
    quotes = [tuple(q) for q in record.get("quotes") or []]
    if quotes:
        body = render_highlighted(text, quotes, lo, hi, area=(start, end))
    else:
        body = render_highlighted(text, [(start, end)], lo, hi)
    head = (
        f'<div class="qa-viewer-head"><span class="qa-ref">[{record["n"]}]</span> '
        f'<span class="qa-source-name">{escape(record["source"])}</span> · 第 {record["line"]} 行 line {record["line"]}'
        f" · 字元 chars {start}–{end} · 顯示 showing {lo}–{hi} / {len(text)}</div>"
    )
    ellipsis = '<span class="qa-more">…</span>'
    return (
        f'<div class="qa-viewer">{head}<div class="qa-source">{ellipsis if lo > 0 else ""}{body}'
        f'{ellipsis if hi < len(text) else ""}</div></div>'
    )


VIEWER_EMPTY = (
    '<div class="qa-viewer-empty">提問後可在此查看出處原文。'
    "Ask a question, then choose an excerpt to see it in its document.</div>"
)


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB"):
        if n < 1024 or unit == "MB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def _when(timestamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(timestamp))


def format_index_summary(bot: QABot) -> str:
    index = bot.index
    return (
        '<div class="qa-summary">'
        f"<span>文件 Documents: <b>{len(index.documents)}</b></span>"
        f"<span>段落 Passages: <b>{len(index.chunks)}</b></span>"
        f"<span>模型 Model: <b>{escape(index.model)}</b></span>"
        f"<span>建立時間 Built: <b>{_when(index.built_at)}</b></span></div>"
    )


def format_documents_table(bot: QABot) -> str:
    rows = "".join(
        f"<tr><td>{escape(info.name)}</td><td>{_size(info.size)}</td><td>{info.chars}</td><td>{info.chunks}</td>"
        f"<td>{_when(info.added_at)}</td></tr>"
        for info in bot.documents()
    )
    if not rows:
        rows = '<tr><td colspan="5">索引中還沒有文件。No documents yet.</td></tr>'
    return (
        '<div class="qa-table-wrap"><table class="qa-docs"><thead><tr><th>文件 Document</th><th>大小 Size</th>'
        f"<th>字數 Chars</th><th>段落 Passages</th><th>加入 Added</th></tr></thead><tbody>{rows}</tbody></table></div>"
    )


def format_report(report: IndexReport, action: str) -> str:
    lines = []
    for label, names in (("新增 Added", report.added), ("更新 Updated", report.updated),
                         ("未變更 Unchanged (already indexed)", report.unchanged), ("移除 Removed", report.removed)):
        if names:
            lines.append(f"<li>{label}: {escape(', '.join(names))}</li>")
    for name, error in report.errors.items():
        lines.append(f'<li class="qa-error">錯誤 Error — {escape(Path(name).name)}: {escape(error)}</li>')
    ok = "qa-ok" if not report.errors else "qa-warn"
    return (
        f'<div class="{ok}"><b>{escape(action)}</b><ul>{"".join(lines)}</ul>'
        f"索引共 {report.passages} 個段落 · {report.passages} passages in the index "
        f"(embedded {report.embedded}, {report.seconds:.1f} s)</div>"
    )


# ----------------------------------------------------------------------------------
# Uploads and removals (pure functions over the bot and the documents folder)
# ----------------------------------------------------------------------------------


class UploadError(ValueError):
    """An upload refused before it touches the documents folder; the message says why."""


_UNSAFE = re.compile(r"[\x00-\x1f\x7f<>:\"|?*]")


def safe_upload_name(raw: str) -> str:
    """A safe file name for an upload: basename only, no hidden names, a supported suffix."""
    name = unicodedata.normalize("NFC", str(raw or "")).replace("\\", "/").split("/")[-1]
    name = _UNSAFE.sub("_", name).strip().rstrip(". ")
    if not name or name in {".", ".."} or not name.strip("."):
        raise UploadError(f"檔名無效 invalid file name {raw!r}")
    if name.startswith("."):
        raise UploadError(f"不接受隱藏檔 hidden file names (starting with '.') are not accepted: {name!r}")
    suffix = Path(name).suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise UploadError(
            f"不支援的檔案類型 unsupported file type {suffix or '(none)'} for {name!r}; "
            f"supported: {', '.join(SUPPORTED_SUFFIXES)}"
        )
    stem = name[: -len(suffix)]
    while len((stem + suffix).encode("utf-8")) > MAX_NAME_BYTES:
        stem = stem[:-1]
    if not stem:
        raise UploadError(f"檔名無效 invalid file name {raw!r}")
    return stem + suffix


def check_upload_size(size: int, name: str, limit: int = MAX_UPLOAD_BYTES) -> None:
    if size > limit:
        raise UploadError(f"檔案太大 {name} is {_size(size)}, over the {_size(limit)} limit")
    if size == 0:
        raise UploadError(f"空白檔案 {name} is empty")


@dataclass
class _Placed:
    dest: Path
    backup: bytes | None  # previous content when an existing file was replaced
    created: bool


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
    except ValueError:
        return False
    return True


def _place(source: Path, dest: Path) -> _Placed:
    """Copy source to dest atomically (temp file beside it, hidden, then os.replace)."""
    new = source.read_bytes()
    backup = None
    if dest.exists():
        old = dest.read_bytes()
        if old == new:
            return _Placed(dest, None, created=False)
        backup = old
    temp = dest.parent / f".{dest.name}.{os.getpid()}.{threading.get_ident()}.upload"
    temp.write_bytes(new)
    os.replace(temp, dest)
    return _Placed(dest, backup, created=backup is None)


def _undo(placed: _Placed) -> None:
    if placed.created:
        placed.dest.unlink(missing_ok=True)
    elif placed.backup is not None:
        placed.dest.write_bytes(placed.backup)


def add_uploads(
    bot: QABot,
    docs_dir: Path,
    files: Sequence[str | Path] | None,
    progress: Callable[[int, int], None] | None = None,
    max_bytes: int = MAX_UPLOAD_BYTES,
) -> tuple[IndexReport, list[str]]:
    """Check, copy into docs_dir and index uploaded files.

    Returns the bot's report and the refusals (file-level messages). A refused or failed file
    leaves the folder and the index as they were.
    """
    docs_dir = Path(docs_dir)
    docs_dir.mkdir(parents=True, exist_ok=True)
    refused: list[str] = []
    staged: dict[str, Path] = {}
    staging = Path(tempfile.mkdtemp(prefix="qa-bot-upload-"))
    try:
        for item in files or []:
            path = Path(item)
            try:
                name = safe_upload_name(path.name)
                if name in staged:
                    raise UploadError(f"同名檔案 two uploads are named {name!r}; rename one")
                check_upload_size(path.stat().st_size, name, max_bytes)
                copy = staging / name
                shutil.copyfile(path, copy)
                load_text(copy)  # refuse unreadable documents before they reach the folder
                dest = docs_dir / name
                if dest.is_symlink() or (dest.exists() and not dest.is_file()) or not _inside(dest.parent, docs_dir):
                    raise UploadError(f"{name!r} exists in the documents folder and is not a regular file")
                staged[name] = copy
            except (UploadError, DocumentError, OSError) as error:
                refused.append(f"{path.name}: {error}")
        placed: list[_Placed] = []
        try:
            for name, copy in staged.items():
                placed.append(_place(copy, docs_dir / name))
            report = bot.add_documents([p.dest for p in placed], progress=progress) if placed else IndexReport()
        except BaseException:
            for p in placed:
                _undo(p)
            raise
        for p in placed:
            if str(p.dest) in report.errors:
                _undo(p)
        if not placed:
            report.passages = len(bot.index.chunks)
        return report, refused
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def remove_document(bot: QABot, docs_dir: Path, name: str) -> IndexReport:
    """Remove a document from the index, and delete its file when it lives in docs_dir."""
    info = bot.index.documents.get(name)
    report = bot.remove_documents([name])
    if info is not None and name in report.removed:
        path = Path(info.path)
        if info.path and _inside(path, Path(docs_dir)) and path.is_file() and not path.is_symlink():
            path.unlink()
    return report


# ----------------------------------------------------------------------------------
# The app
# ----------------------------------------------------------------------------------

CSS = """
.qa-header h1 { margin: 0 0 .2em; font-size: 1.5em; }
.qa-header p { margin: 0; color: var(--body-text-color-subdued); }
.qa-answer { line-height: 1.7; }
.qa-answer-text { font-size: 1.05em; white-space: pre-wrap; word-break: break-word; }
.qa-ref { color: var(--color-accent); font-weight: 600; font-size: .85em; margin: 0 1px; }
.qa-cite-title { margin-top: .8em; font-weight: 600; font-size: .9em; }
.qa-citations { list-style: none; padding: 0; margin: .3em 0 0; }
.qa-citation { border-left: 3px solid var(--color-accent); padding: .3em .6em; margin: .4em 0;
  background: var(--background-fill-secondary); border-radius: 4px; }
.qa-cite-head { font-size: .82em; color: var(--body-text-color-subdued); word-break: break-all; }
.qa-excerpt { white-space: pre-wrap; word-break: break-word; font-size: .92em; margin-top: .2em; }
mark.qa-quote { background: #fcd34d; color: #1f2937; padding: 0 1px; border-radius: 2px; }
.qa-cited { background: #fef9e3; color: #1f2937; box-shadow: inset 0 -2px #fcd34d; }
.qa-error { color: #b91c1c; }
.qa-pending { color: var(--body-text-color-subdued); }
.qa-viewer-head { font-size: .85em; color: var(--body-text-color-subdued); margin-bottom: .4em; word-break: break-all; }
.qa-source { white-space: pre-wrap; word-break: break-word; line-height: 1.75; max-height: 32em; overflow-y: auto;
  border: 1px solid var(--border-color-primary); border-radius: 6px; padding: .6em .8em; }
.qa-viewer-empty { color: var(--body-text-color-subdued); padding: .6em 0; }
.qa-further summary { cursor: pointer; font-size: .88em; margin-top: .5em; color: var(--body-text-color-subdued); }
.qa-more { color: var(--body-text-color-subdued); }
.qa-summary { display: flex; flex-wrap: wrap; gap: .4em 1.4em; margin: .3em 0; }
.qa-table-wrap { overflow-x: auto; }
.qa-docs { width: 100%; border-collapse: collapse; font-size: .9em; }
.qa-docs th, .qa-docs td { border-bottom: 1px solid var(--border-color-primary); padding: .3em .5em; text-align: left; }
.qa-docs td:first-child { word-break: break-all; }
.qa-ok, .qa-warn { padding: .4em .6em; border-radius: 6px; background: var(--background-fill-secondary); }
.qa-warn { border-left: 3px solid #d97706; }
.qa-examples button { flex: 0 1 auto !important; min-width: 0 !important; }
@media (max-width: 640px) {
  .qa-header h1 { font-size: 1.2em; }
  .qa-source { max-height: 60vh; }
}
"""


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

    docs_dir = Path(docs_dir) if docs_dir is not None else bot.docs_dir
    write = {"concurrency_id": "index-write", "concurrency_limit": 1, "api_visibility": "private"}
    private = {"api_visibility": "private"}

    # -- handlers ------------------------------------------------------------------

    def respond(message: str, chat: list, turns: list):
        question = (message or "").strip()
        chat = list(chat or [])
        if not question:
            yield chat, "", turns, gr.skip(), gr.skip(), gr.skip()
            return
        chat += [{"role": "user", "content": escape(question)}, {"role": "assistant", "content": SEARCHING}]
        yield chat, "", turns, gr.skip(), gr.skip(), gr.skip()
        try:
            answer = bot.ask(question, history=[list(t) for t in turns or []])
        except (ValueError, QAIndexError, DocumentError, KeyError) as error:
            chat[-1] = {"role": "assistant", "content": format_error(str(error))}
            yield chat, "", turns, gr.skip(), gr.skip(), gr.skip()
            return
        chat[-1] = {"role": "assistant", "content": format_answer(answer)}
        records = citation_records(answer)
        choices = [(citation_label(r), str(r["n"])) for r in records]
        first = records[0] if records else None
        yield (
            chat,
            "",
            [*(turns or []), [question, answer.text]],
            records,
            gr.update(choices=choices, value=str(first["n"]) if first else None),
            show_record(first),
        )

    def show_record(record: dict | None) -> str:
        if record is None:
            return VIEWER_EMPTY
        try:
            text = bot.source_text(record["source"])
        except (KeyError, DocumentError, OSError) as error:
            message = error.args[0] if isinstance(error, KeyError) and error.args else error
            return format_error(f"無法顯示原文 cannot show the source: {message}")
        return format_source(text, record)

    def show_citation(choice: str | None, records: list) -> str:
        for record in records or []:
            if str(record["n"]) == str(choice):
                return show_record(record)
        return VIEWER_EMPTY

    def clear():
        return [], "", [], [], gr.update(choices=[], value=None), VIEWER_EMPTY

    def index_panel():
        try:
            summary, table = format_index_summary(bot), format_documents_table(bot)
            names = [info.name for info in bot.documents()]
        except (QAIndexError, OSError) as error:
            return format_error(str(error)), "", gr.update(choices=[], value=None)
        return summary, table, gr.update(choices=names, value=None)

    def progress_callback(progress: gr.Progress) -> Callable[[int, int], None]:
        def update(done: int, total: int) -> None:
            progress((done, total), desc="嵌入段落 Embedding passages", unit="passages")

        return update

    def on_upload(files: list | None, progress=gr.Progress()):
        if not files:
            status = format_error("請先選擇文件 Choose one or more files first.")
            return (status, None, *index_panel())
        paths = [f if isinstance(f, str) else getattr(f, "name", str(f)) for f in files]
        try:
            report, refused = add_uploads(bot, docs_dir, paths, progress_callback(progress))
        except (QAIndexError, DocumentError, OSError, ValueError) as error:
            return (format_error(f"加入失敗，索引未變更 Adding failed; the index is unchanged: {error}"), None,
                    *index_panel())
        status = format_report(report, "上傳 Upload")
        if refused:
            items = "".join(f"<li>{escape(r)}</li>" for r in refused)
            status += f'<div class="qa-warn"><b>未加入 Not added</b><ul>{items}</ul></div>'
        return (status, None, *index_panel())

    def on_remove(name: str | None):
        if not name:
            return (format_error("請先選擇文件 Choose a document first."), *index_panel())
        try:
            report = remove_document(bot, docs_dir, name)
        except (QAIndexError, OSError) as error:
            return (format_error(str(error)), *index_panel())
        return (format_report(report, "移除 Remove"), *index_panel())

    def on_rebuild(progress=gr.Progress()):
        try:
            report = bot.rebuild(docs_dir, progress=progress_callback(progress))
        except (QAIndexError, DocumentError, OSError) as error:
            return (format_error(str(error)), *index_panel())
        return (format_report(report, "重建 Rebuild"), *index_panel())

    # -- API (JSON) ------------------------------------------------------------------

    def ask(question: str, history: list | None = None) -> dict:
        """Answer a question with quoted sentences and [n] citations (see Answer.to_dict)."""
        try:
            return bot.ask(question, history=history or None).to_dict()
        except (ValueError, QAIndexError, DocumentError) as error:
            raise gr.Error(str(error)) from error

    def retrieve(question: str, k: int = 5) -> dict:
        """The k passages that best match the question, best first."""
        try:
            passages = bot.retrieve(question, k=max(1, min(MAX_K, int(k))))
        except (ValueError, QAIndexError) as error:
            raise gr.Error(str(error)) from error
        return {"question": question, "passages": [p.to_dict() for p in passages]}

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
        citation.input(show_citation, [citation, records], viewer, **private).then(None, js=SCROLL_JS)

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


# ----------------------------------------------------------------------------------
# Serving
# ----------------------------------------------------------------------------------


def parse_auth(value: str | None) -> tuple[str, str] | None:
    """QA_BOT_AUTH 'user:password' -> (user, password); None when unset."""
    if not value:
        return None
    user, sep, password = value.partition(":")
    if not sep or not user or not password:
        raise SystemExit("QA_BOT_AUTH must look like user:password")
    return user, password


def _print_progress(done: int, total: int) -> None:
    print(f"\r嵌入 embedding {done}/{total} passages", end="" if done < total else "\n", file=sys.stderr, flush=True)


def warm_up(bot: QABot) -> threading.Thread:
    """Load the model, tokenizers and the pinyin index in the background so the first question is fast."""

    def run() -> None:
        try:
            bot.ask(EXAMPLES[0])
            bot.index.lexical_search([], 1, pinyin_words=["beijing"])  # builds the pinyin side when it is lazy
        except Exception as error:  # noqa: BLE001 - a failed warm-up shows up again on the first question
            print(f"qa-bot: model warm-up failed: {error}", file=sys.stderr)

    thread = threading.Thread(target=run, name="qa-bot-warm-up", daemon=True)
    thread.start()
    return thread


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
    bot = QABot(index_dir=index_dir, docs_dir=docs_dir, model=model)
    if not bot.exists():
        print(f"qa-bot: no index at {bot.index_dir}; building it from {bot.docs_dir} …", file=sys.stderr)
        report = bot.rebuild(progress=_print_progress)
        print(f"qa-bot: indexed {len(report.added)} document(s), {report.passages} passages", file=sys.stderr)
    index = bot.index
    print(f"qa-bot: {len(index.documents)} document(s), {len(index.chunks)} passages, model {index.model}",
          file=sys.stderr)
    demo = build_app(bot, bot.docs_dir)
    host = host or settings.host
    port = int(port or settings.port)
    demo.launch(
        server_name=host,
        server_port=port,
        auth=parse_auth(settings.auth),
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


def main(argv: Sequence[str] | None = None) -> None:
    settings = Settings()
    parser = argparse.ArgumentParser(prog="app.py", description="qa-bot web chat (文件問答)")
    parser.add_argument("--host", default=settings.host, help=f"address to listen on (default {settings.host})")
    parser.add_argument("--port", type=int, default=settings.port, help=f"port (default {settings.port})")
    parser.add_argument("--index", type=Path, default=settings.index_dir, help=f"index (default {settings.index_dir})")
    parser.add_argument("--docs", type=Path, default=settings.docs_dir, help=f"documents (default {settings.docs_dir})")
    parser.add_argument("--model", default=settings.model, help="embedding model (default: bundled e5-small)")
    args = parser.parse_args(argv)
    serve(args.index, args.docs, args.model, args.host, args.port)


if __name__ == "__main__":
    main()
