"""What the web chat does on each event, over a QABot and plain data (no Gradio: unit-testable).

Each handler returns HTML strings and JSON-able values; qa_bot.web.app wires them to components.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..bot import QABot
from ..errors import DocumentError, QAIndexError
from ..library import add_uploads, remove_document
from .render import (
    VIEWER_EMPTY,
    citation_records,
    escape,
    format_answer,
    format_documents_table,
    format_error,
    format_index_summary,
    format_report,
    format_source,
)

MAX_K = 20
Progress = Callable[[int, int], None]


@dataclass
class Turn:
    """One answered chat turn: the assistant's message, its citations, and the conversation after it."""

    message: str  # HTML
    records: list[dict]  # citation_records(answer): what the source viewer shows
    turns: list  # [question, answer text] pairs, this one included
    ok: bool = True  # False: message is an error, turns are unchanged


class Handlers:
    """The chat, source viewer, index panel and JSON API of one bot; uploads go to docs_dir (one of the bot's folders)."""

    def __init__(self, bot: QABot, docs_dir: Path | None = None):
        self.bot = bot
        self.docs_dir = Path(docs_dir) if docs_dir is not None else bot.docs_dir

    # -- chat ------------------------------------------------------------------------

    def answer(self, question: str, turns: list) -> Turn:
        """Answer a question in the conversation so far (an error turn when it cannot be answered)."""
        try:
            answer = self.bot.ask(question, history=[list(t) for t in turns or []])
        except (ValueError, QAIndexError, DocumentError, KeyError) as error:
            return Turn(format_error(str(error)), [], list(turns or []), ok=False)
        return Turn(format_answer(answer), citation_records(answer), [*(turns or []), [question, answer.text]])

    def show_record(self, record: dict | None) -> str:
        """The source viewer for one citation record."""
        if record is None:
            return VIEWER_EMPTY
        try:
            text = self.bot.source_text(record["source"])
        except (KeyError, DocumentError, OSError) as error:
            message = error.args[0] if isinstance(error, KeyError) and error.args else error
            return format_error(f"無法顯示原文 cannot show the source: {message}")
        return format_source(text, record)

    def show_citation(self, choice: str | None, records: list) -> str:
        for record in records or []:
            if str(record["n"]) == str(choice):
                return self.show_record(record)
        return VIEWER_EMPTY

    # -- index panel -----------------------------------------------------------------

    def index_panel(self) -> tuple[str, str, list[str]]:
        """Summary, documents table, and the names a user may remove."""
        try:
            summary, table = format_index_summary(self.bot), format_documents_table(self.bot)
            names = [info.name for info in self.bot.documents()]
        except (QAIndexError, OSError) as error:
            return format_error(str(error)), "", []
        return summary, table, names

    def upload(self, paths: Sequence[str], progress: Progress | None = None) -> str:
        if not paths:
            return format_error("請先選擇文件 Choose one or more files first.")
        try:
            report, refused = add_uploads(self.bot, self.docs_dir, paths, progress)
        except (QAIndexError, DocumentError, OSError, ValueError) as error:
            return format_error(f"加入失敗，索引未變更 Adding failed; the index is unchanged: {error}")
        status = format_report(report, "上傳 Upload")
        if refused:
            items = "".join(f"<li>{escape(r)}</li>" for r in refused)
            status += f'<div class="qa-warn"><b>未加入 Not added</b><ul>{items}</ul></div>'
        return status

    def remove(self, name: str | None) -> str:
        if not name:
            return format_error("請先選擇文件 Choose a document first.")
        try:
            return format_report(remove_document(self.bot, self.docs_dir, name), "移除 Remove")
        except (QAIndexError, OSError) as error:
            return format_error(str(error))

    def rebuild(self, progress: Progress | None = None) -> str:
        try:
            return format_report(self.bot.rebuild(progress=progress), "重建 Rebuild")
        except (QAIndexError, DocumentError, OSError) as error:
            return format_error(str(error))

    # -- JSON API (errors raise ValueError with the message to show) ------------------------

    def api_ask(self, question: str, history: list | None = None) -> dict:
        """Answer a question with quoted sentences and [n] citations (see Answer.to_dict)."""
        _check_api_question(question)
        _check_api_history(history)
        try:
            return self.bot.ask(question, history=history or None).to_dict()
        except (QAIndexError, DocumentError) as error:
            raise ValueError(str(error)) from error

    def api_retrieve(self, question: str, k: int = 5) -> dict:
        """The k passages that best match the question, best first."""
        _check_api_question(question)
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
            raise ValueError(f"k must be a whole number from 1 to {MAX_K}, not {k!r}")
        try:
            passages = self.bot.retrieve(question, k=k)
        except QAIndexError as error:
            raise ValueError(str(error)) from error
        return {"question": question, "passages": [p.to_dict() for p in passages]}


def _check_api_question(question: object) -> None:
    if not isinstance(question, str):
        raise ValueError(f"question must be a string (text), not {type(question).__name__}")


def _check_api_history(history: object) -> None:
    """History: earlier turns as [question, answer] pairs of strings or {"role", "content"} messages."""
    if history is None:
        return
    expected = 'history must be a list of [question, answer] pairs or {"role": …, "content": …} messages'
    if not isinstance(history, list):
        raise ValueError(f"{expected}, not {type(history).__name__}")
    for number, turn in enumerate(history, 1):
        pair = (isinstance(turn, (list, tuple)) and len(turn) == 2 and isinstance(turn[0], str)
                and isinstance(turn[1], (str, type(None))))
        message = isinstance(turn, dict) and isinstance(turn.get("role"), str) and "content" in turn
        if not (pair or message):
            raise ValueError(f"{expected}; turn {number} is {turn!r:.80}")
