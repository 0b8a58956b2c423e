"""HTML for the web chat, built from plain data (pure functions, unit-tested).

Safety rule: every piece of document text (and every user-supplied string) reaches the page
only through :func:`escape`, inside HTML built here. The chatbot renders our HTML without
Markdown or LaTeX, so a document cannot inject live HTML, scripts or links.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ..present import human_size, place_label, plural
from ..records import Passage

if TYPE_CHECKING:
    from ..answer import Answer
    from ..bot import IndexReport, QABot

SOURCE_WINDOW = 1500  # characters of the document shown around a citation
SOURCE_BEFORE = 240  # of which before the cited passage
SEARCHING = '<div class="qa-pending">搜尋中… Searching…</div>'

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


def format_location(passage: Passage, offset: int | None = None) -> str:
    """'name · 第 3 頁 p. 3 · 第 12 行 line 12 · 字元 chars 100–220' (escaped); the line of `offset` when given."""
    place = place_label(passage, offset, bilingual=True, source=False)
    return f'<span class="qa-source-name">{escape(passage.source)}</span> · {escape(place)}'


def format_citation(n: int, passage: Passage, highlights: Sequence[tuple[int, int]], offset: int | None = None) -> str:
    """One numbered excerpt: where it is from (the quoted sentence's line), then the passage with its
    quoted sentences marked."""
    context = f' · <span class="qa-context">{escape(passage.context)}</span>' if passage.context else ""
    return (
        f'<li class="qa-citation" data-n="{n}"><div class="qa-cite-head"><span class="qa-ref">[{n}]</span> '
        f"{format_location(passage, offset)}{context}</div>"
        f'<div class="qa-excerpt">{render_highlighted(passage.text, highlights)}</div></li>'
    )


def format_answer(answer: Answer) -> str:
    """The chat message for an answer: the quoted sentences with [n] markers, then the numbered excerpts."""
    if answer.found and answer.quotes:
        body = "".join(f'{escape(q.text)}<span class="qa-ref">[{q.citation}]</span>' for q in answer.quotes)
    else:
        body = escape(answer.text)
    short = f'<div class="qa-short"><b>{escape(answer.short.text)}</b></div>' if answer.short else ""
    parts = [f'<div class="qa-answer">{short}<div class="qa-answer-text">{body}</div>']
    items = [(n, p, answer.highlights(n), _first_quote(answer, n)) for n, p in enumerate(answer.citations, 1)]
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


def _first_quote(answer: Answer, n: int) -> int | None:
    """Original offset of the first sentence quoted from citation n (None: nothing quoted)."""
    return next((q.start for q in answer.quotes if q.citation == n), None)


def format_error(message: str) -> str:
    return f'<div class="qa-error">⚠️ {escape(message)}</div>'


def citation_records(answer: Answer) -> list[dict]:
    """What the source viewer needs about each citation (JSON-able, kept in the session state)."""
    records = []
    for n, p in enumerate(answer.citations, 1):
        quotes = [[q.start, q.end] for q in answer.quotes if q.citation == n]
        records.append(
            {"n": n, "source": p.source, "start": p.start, "end": p.end, "line": p.line, "page": p.page,
             "newlines": p.newlines, "context": p.context, "quotes": quotes}
        )
    return records


def _record_place(record: dict) -> str:
    """The place label of a citation record: at its first quoted sentence, if any."""
    passage = Passage("", record["source"], record["start"], record["end"], 0.0, line=record["line"],
                      page=record.get("page", 0), newlines=record.get("newlines", []))
    quotes = record.get("quotes") or []
    return place_label(passage, quotes[0][0] if quotes else None, bilingual=True, source=False)


def citation_label(record: dict) -> str:
    """Dropdown label (plain text: the dropdown escapes it)."""
    return f"[{record['n']}] {record['source']} · {_record_place(record)}"


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
        f'<span class="qa-source-name">{escape(record["source"])}</span> · {escape(_record_place(record))}'
        f" · 顯示 showing {lo}–{hi} / {len(text)}</div>"
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


def _when(timestamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(timestamp))


def format_index_summary(bot: QABot) -> str:
    index = bot.store
    return (
        '<div class="qa-summary">'
        f"<span>文件 Documents: <b>{len(index.documents)}</b></span>"
        f"<span>段落 Passages: <b>{len(index.chunks)}</b></span>"
        f"<span>模型 Model: <b>{escape(index.model)}</b></span>"
        f"<span>建立時間 Built: <b>{_when(index.built_at)}</b></span></div>"
    )


def format_documents_table(bot: QABot) -> str:
    rows = "".join(
        f"<tr><td>{escape(info.name)}</td><td>{human_size(info.size)}</td><td>{info.chars}</td><td>{info.chunks}</td>"
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
        f"索引共 {report.passages} 個段落 · {plural(report.passages, 'passage')} in the index "
        f"(embedded {report.embedded}, {report.seconds:.1f} s)</div>"
    )
