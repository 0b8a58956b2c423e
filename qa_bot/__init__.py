"""qa-bot: offline question answering over Chinese documents, with exact citations.

    import qa_bot
    qa_bot.retrieve("交流會在哪裡召開？", k=5)   # -> list[Passage]
    qa_bot.ask("交流會在哪裡召開？")             # -> Answer
"""

from __future__ import annotations

import threading

from .answer import Answer, Quote
from .bot import IndexReport, QABot
from .errors import DocumentError, IndexCorruptError, IndexMissingError
from .records import DocumentInfo, Passage

__all__ = [
    "Answer",
    "DocumentError",
    "DocumentInfo",
    "IndexCorruptError",
    "IndexMissingError",
    "IndexReport",
    "Passage",
    "QABot",
    "Quote",
    "ask",
    "default_bot",
    "retrieve",
]

_default: QABot | None = None
_default_lock = threading.Lock()


def default_bot() -> QABot:
    """The bot over ./embeddings (QA_BOT_INDEX), built from ./seeds (QA_BOT_DOCS) on first use."""
    global _default
    with _default_lock:
        if _default is None:
            bot = QABot()
            bot.ensure_index()
            _default = bot
    return _default


def retrieve(question: str, k: int = 5) -> list[Passage]:
    """The k best passages for a question from the default index."""
    return default_bot().retrieve(question, k)


def ask(question: str, history: list | None = None) -> Answer:
    """An extractive, cited answer from the default index."""
    return default_bot().ask(question, history)
