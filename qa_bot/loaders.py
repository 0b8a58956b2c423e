"""Bytes -> text: encoding detection and per-format text extraction.

`load_text(path)` is the single entry point. The string it returns is the document's
"original": every citation offset refers to it, and it must come out the same each time
the same file is read (the bot re-reads it to show sources).

- .txt/.md: decoded by `decode()` (BOM, UTF-8, legacy Chinese encodings, mixed files).
- .html/.htm: decoded (a BOM, then <meta charset>, then `decode()`), the main text
  extracted with Beautiful Soup: paragraphs separated by blank lines, headings alone.
- .pdf: the text layer of each page (pypdf), each page ended by "\\f" so a passage's page
  is the number of form feeds before it plus one. No text layer: an error asking for OCR.
- .docx: paragraphs and tables (a row a line, cells joined by " | ") in document order.
"""

from __future__ import annotations

import codecs
import re
import warnings
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

from charset_normalizer import from_bytes

from .errors import DocumentError

TEXT_SUFFIXES = (".txt", ".md", ".markdown", ".text")
HTML_SUFFIXES = (".html", ".htm")
SUPPORTED_SUFFIXES = (*TEXT_SUFFIXES, *HTML_SUFFIXES, ".pdf", ".docx")
MAX_DOCUMENT_BYTES = 64 * 1024 * 1024
# A .docx is a ZIP: refuse one whose parts unpack to more than this (a "zip bomb").
MAX_UNPACKED_BYTES = 512 * 1024 * 1024
# Within that, the work of reading a .docx grows with its paragraphs (python-docx: 100,000 one-word
# paragraphs took 4 s and 270 MB, 200,000 took 13 s; one-off, 2026-11-29, AMD EPYC with AVX-512 BF16)
# and its text (no more than the largest Chinese .txt accepted holds): a body over either limit is
# refused before it is parsed.
MAX_DOCX_PARAGRAPHS = 100_000
MAX_DOCX_CHARS = MAX_DOCUMENT_BYTES // 3
_WORD = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
_MAIN_PART = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument"

_BOMS = (
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
# Chinese text in Big5 or GBK very often also decodes as the other, so strict UTF-8 comes
# first, then statistical detection among these, then these in order.
_CHINESE_ENCODINGS = ("big5", "cp950", "gb18030")
# A lenient (errors="replace") legacy decoding is accepted when at most this share of it is U+FFFD.
_MAX_REPLACED = 0.02
_DAMAGE = re.compile("\ufffd+")
_MIN_VALID_PER_DAMAGE = 8
_CONTROLS = {code: None for code in range(32) if chr(code) not in "\t\n\r\f"}


# -- plain text --------------------------------------------------------------------


def decode(data: bytes) -> str:
    """Decode document bytes: BOM, then strict UTF-8, then mixed UTF-8/legacy, then detection.

    Never raises on bytes that are text in some encoding; raises DocumentError (and
    nothing else) on binary data or bytes that no Chinese encoding reads.

    A file that mixes encodings (some lines UTF-8, others Big5/GBK, as when files are
    concatenated) is decoded line by line: valid UTF-8 lines as UTF-8, the other lines in
    the legacy encoding detected for them together; bytes that fit neither become U+FFFD.
    """
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            return _decode_with_bom(data, bom, encoding)
    if b"\x00" in data[:8192]:
        raise DocumentError("looks like a binary file (contains NUL bytes), not text")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    mixed = _decode_mixed(data)
    if mixed is not None:
        return mixed
    damaged = _decode_damaged_utf8(data)
    if damaged is not None:
        return damaged
    legacy = _decode_legacy(data)
    if legacy is None:
        raise DocumentError("could not detect the text encoding (tried UTF-8, Big5, GB18030); is it a binary file?")
    return legacy[0]


def _decode_with_bom(data: bytes, bom: bytes, encoding: str) -> str:
    try:
        return data.decode(encoding)
    except UnicodeDecodeError:
        pass
    if encoding == "utf-8-sig":  # a UTF-8 BOM in front of bytes that are not all UTF-8
        return decode(data[len(bom) :])
    text = data.decode(encoding, errors="replace")
    if _looks_like_text(text) and text.count("\ufffd") <= _MAX_REPLACED * max(1, len(text)):
        return text
    raise DocumentError(f"starts with a {encoding.upper()} byte-order mark but is not {encoding.upper()} text")


def _decode_mixed(data: bytes) -> str | None:
    """Line-by-line decoding of a file with both UTF-8 and legacy-encoded lines; None if not mixed.

    Splitting at b"\\n" is safe: no Big5, GBK or GB18030 character contains that byte.
    """
    lines = data.split(b"\n")
    bad: list[int] = []
    has_utf8 = False
    for number, line in enumerate(lines):
        if line.isascii():
            continue
        try:
            line.decode("utf-8")
            has_utf8 = True
        except UnicodeDecodeError:
            bad.append(number)
    if not has_utf8 or not bad:
        return None
    legacy = _decode_legacy(b"\n".join(lines[number] for number in bad))
    encoding = legacy[1] if legacy else "gb18030"
    fallbacks = [encoding, *(e for e in _CHINESE_ENCODINGS if e != encoding)]
    bad_set = set(bad)
    texts = []
    for number, line in enumerate(lines):
        if number not in bad_set:
            texts.append(line.decode("utf-8"))
            continue
        for candidate in fallbacks:
            try:
                texts.append(line.decode(candidate))
                break
            except UnicodeDecodeError:
                continue
        else:
            texts.append(line.decode(encoding, errors="replace"))
    text = "\n".join(texts)
    return text if _looks_like_text(text) else None


def _decode_damaged_utf8(data: bytes) -> str | None:
    """UTF-8 with a few bad bytes (each damaged spot becomes U+FFFD), or None.

    Accepted when valid non-ASCII characters outnumber damaged spots _MIN_VALID_PER_DAMAGE to one:
    Big5 and GBK lines of DRCD and CMRC read as UTF-8 reach at most 4 to one (2.5 from 10
    characters up), while a UTF-8 line of 10 or more Chinese characters with one bad byte has 9
    or more (median). A file gets here only when no line of it is valid UTF-8 with non-ASCII text.
    """
    if not _mostly_utf8(data[:65536].decode("utf-8", errors="replace")):  # cheap test on the head first
        return None
    text = data.decode("utf-8", errors="replace")
    return text if _mostly_utf8(text) and _looks_like_text(text) else None


def _mostly_utf8(text: str) -> bool:
    damaged = len(_DAMAGE.findall(text))
    valid = len(text) - len(text.encode("ascii", "ignore")) - text.count("\ufffd")
    return valid >= _MIN_VALID_PER_DAMAGE * damaged


def _decode_legacy(data: bytes) -> tuple[str, str] | None:
    """(text, encoding) for bytes in a non-UTF-8 encoding, or None when it looks like binary.

    Detection among the Chinese encodings comes first: left free, the detector takes short
    Big5 text for Shift-JIS (half-width katakana). Other encodings are detected after that.
    """
    for isolation in (list(_CHINESE_ENCODINGS), None):
        try:
            best = from_bytes(data, cp_isolation=isolation).best()
            if best is not None and best.encoding:
                text = str(best)
                if _looks_like_text(text):
                    return text, best.encoding
        except Exception:  # noqa: BLE001 - detection is a best effort; the fallbacks below decide
            pass
    for encoding in _CHINESE_ENCODINGS:
        try:
            return data.decode(encoding), encoding
        except UnicodeDecodeError:
            continue
    # A few stray bytes (a damaged file): the Chinese encoding that needs the fewest replacements.
    candidates = [(data.decode(encoding, errors="replace"), encoding) for encoding in _CHINESE_ENCODINGS]
    text, encoding = min(candidates, key=lambda candidate: candidate[0].count("\ufffd"))
    if text.count("\ufffd") <= _MAX_REPLACED * len(text) and _looks_like_text(text):
        return text, encoding
    return None


def _looks_like_text(text: str) -> bool:
    """Reject decodings that are mostly control characters (binary junk)."""
    if not text:
        return True
    controls = len(text) - len(text.translate(_CONTROLS))
    return controls / len(text) < 0.01


# -- HTML --------------------------------------------------------------------------

_META_CHARSET = re.compile(
    rb"""<meta[^>]*?charset\s*=\s*["']?\s*([a-z0-9_.:-]+)|<\?xml[^>]*?encoding\s*=\s*["']([a-z0-9_.:-]+)""",
    re.IGNORECASE,
)
# WHATWG labels -> the Python codecs that read them (supersets first).
_HTML_CHARSETS = {
    "gb2312": ("gb18030",), "gbk": ("gb18030",), "x-gbk": ("gb18030",), "gb18030": ("gb18030",),
    "chinese": ("gb18030",), "csgb2312": ("gb18030",), "iso-ir-58": ("gb18030",),
    "big5": ("big5hkscs", "cp950"), "big5-hkscs": ("big5hkscs", "cp950"), "x-x-big5": ("big5hkscs", "cp950"),
    "cn-big5": ("big5hkscs", "cp950"), "csbig5": ("big5hkscs", "cp950"),
}
_WESTERN = {"iso-8859-1", "latin1", "latin-1", "us-ascii", "ascii", "windows-1252", "cp1252", "iso8859-1"}

_DROPPED_TAGS = {
    "script", "style", "nav", "header", "footer", "aside", "noscript", "template", "head",
    "svg", "canvas", "iframe", "object", "embed", "select", "button", "datalist", "dialog",
}
_SECTIONING = {"article", "main", "section"}
_BLOCK_TAGS = {
    "address", "article", "blockquote", "body", "caption", "center", "dd", "details", "div", "dl", "dt",
    "fieldset", "figcaption", "figure", "form", "h1", "h2", "h3", "h4", "h5", "h6", "hgroup", "hr", "html",
    "legend", "li", "main", "menu", "ol", "p", "pre", "section", "summary", "table", "tbody", "td", "tfoot",
    "th", "thead", "tr", "ul", "header", "footer",
}
_LAYOUT_IN_CELL = ["p", "div", "table", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre",
                   "section", "article"]
_HIDDEN_STYLE = re.compile(r"display\s*:\s*none|visibility\s*:\s*hidden", re.IGNORECASE)
_CJK_CHARS = r"\u2e80-\u9fff\uf900-\ufaff\ufe30-\ufe4f\uff00-\uffef\U00020000-\U0003134f"
# CSS Text 3: a line break in the source between two East Asian wide characters renders as nothing.
_CJK_SEGMENT_BREAK = re.compile(f"(?<=[{_CJK_CHARS}])[ \\t\\r\\f]*\\n[ \\t\\r\\n\\f]*(?=[{_CJK_CHARS}])")
_HTML_SPACE = re.compile(r"[ \t\r\n\f]+")


def decode_html(data: bytes) -> str:
    """HTML bytes -> markup string: a BOM wins, then <meta charset> (or <?xml encoding>), then `decode()`.

    A page that declares a Western single-byte charset but is valid UTF-8 is read as UTF-8
    (a common mislabel; browsers would show mojibake).
    """
    if any(data.startswith(bom) for bom, _ in _BOMS):
        return decode(data)
    match = _META_CHARSET.search(data[:4096])
    if match:
        label = (match.group(1) or match.group(2)).decode("ascii").lower()
        if label in _WESTERN:
            try:
                return data.decode("utf-8")
            except UnicodeDecodeError:
                pass
        for encoding in _html_codecs(label):
            try:
                return data.decode(encoding)
            except UnicodeDecodeError:
                continue
    return decode(data)


def _html_codecs(label: str) -> tuple[str, ...]:
    if label in _HTML_CHARSETS:
        return _HTML_CHARSETS[label]
    if label.startswith(("utf-16", "utf16", "utf-32")):  # WHATWG: a declared UTF-16 without a BOM is UTF-8
        return ("utf-8",)
    if label in _WESTERN:
        return ("cp1252",)
    try:
        return (codecs.lookup(label).name,)
    except LookupError:
        return ()


def html_to_text(markup: str) -> str:
    """The readable text of an HTML page: no markup, blocks as paragraphs, headings on their own line."""
    from bs4 import BeautifulSoup
    from bs4.element import Tag

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        soup = BeautifulSoup(markup, "html.parser")
    mains = [main for main in soup.find_all("main") if not _hidden(main)]
    root: Tag = mains[0] if len(mains) == 1 else (soup.body or soup)
    writer = _HtmlText()
    writer.walk(root, in_article=root.name in _SECTIONING)
    writer.flush()
    paragraphs = writer.paragraphs
    # The page title stands in for a missing <h1> (it becomes the heading context of the text below).
    title_tag = next((tag for tag in soup.find_all("title") if tag.find_parent("svg") is None), None)
    title = _HTML_SPACE.sub(" ", title_tag.get_text(" ")).strip() if title_tag else ""
    if title and not writer.has_h1 and not (paragraphs and title in paragraphs[0]):
        paragraphs.insert(0, title)
    return "\n\n".join(paragraphs)


def _hidden(tag) -> bool:
    attrs = tag.attrs or {}
    return (
        "hidden" in attrs
        or str(attrs.get("aria-hidden", "")).lower() == "true"
        or bool(_HIDDEN_STYLE.search(str(attrs.get("style", ""))))
    )


def _normalise_inline(raw: str) -> str:
    """Collapse HTML whitespace; a source line break between CJK characters disappears."""
    return _HTML_SPACE.sub(" ", _CJK_SEGMENT_BREAK.sub("", raw)).strip(" ")


_END_OF_BLOCK = object()


class _HtmlText:
    """Walks a parsed page, collecting paragraphs (lists of lines) of plain text."""

    def __init__(self) -> None:
        self.paragraphs: list[str] = []
        self.lines: list[str] = []
        self.inline: list[str] = []
        self.has_h1 = False

    def end_line(self) -> None:
        line = _normalise_inline("".join(self.inline))
        self.inline = []
        if line.strip():
            self.lines.append(line)

    def flush(self) -> None:
        self.end_line()
        if self.lines:
            self.paragraphs.append("\n".join(self.lines))
        self.lines = []

    def walk(self, node, in_article: bool = False) -> None:
        """Collect the text under `node`; iterative, so that deeply nested pages cannot exhaust the stack."""
        from bs4.element import NavigableString, Tag

        stack: list[tuple[object, bool]] = [(child, in_article) for child in reversed(node.contents)]
        while stack:
            item, inside = stack.pop()
            if item is _END_OF_BLOCK:
                self.flush()
            elif isinstance(item, Tag):
                children = self._tag(item, inside)
                if children is not None:
                    if (item.name or "").lower() in _BLOCK_TAGS:
                        stack.append((_END_OF_BLOCK, inside))
                    stack.extend((child, children) for child in reversed(item.contents))
            elif type(item) is NavigableString:  # not comments, doctypes, CDATA or processing instructions
                self.inline.append(str(item))

    def _tag(self, tag, in_article: bool) -> bool | None:
        """Handle one element; returns whether its children are inside an article (None: skip them)."""
        name = (tag.name or "").lower()
        if _hidden(tag):
            return None
        # A page's banner and footer go; an article's own header (its title, byline) stays.
        if name in _DROPPED_TAGS and not (name in ("header", "footer") and in_article):
            return None
        if name == "br":
            self.end_line()
            return None
        if name == "pre":
            self.flush()
            text = tag.get_text().replace("\f", "\n").strip("\n")
            if text.strip():
                self.paragraphs.append("\n".join(line.rstrip() for line in text.split("\n")))
            return None
        if name == "table" and not _layout_table(tag):
            self.flush()
            self._table(tag)
            return None
        if name in _BLOCK_TAGS:
            self.flush()
            self.has_h1 = self.has_h1 or name == "h1"
            return in_article or name in _SECTIONING
        return in_article

    def _table(self, table) -> None:
        lines = []
        caption = table.find("caption")
        if caption is not None and caption.find_parent("table") is table:
            lines.append(_inline_text(caption))
        for row in _own(table, "tr", "table"):
            cells = [_inline_text(cell) for cell in _own(row, ["td", "th"], "tr") if not _hidden(cell)]
            line = " | ".join(cell for cell in cells if cell)
            if line:
                lines.append(line)
        if any(line.strip() for line in lines):
            self.paragraphs.append("\n".join(line for line in lines if line.strip()))


def _own(tag, names, parent_name: str) -> list:
    """Descendants named `names` whose nearest `parent_name` ancestor is `tag` (not a nested table's)."""
    return [found for found in tag.find_all(names) if found.find_parent(parent_name) is tag]


def _layout_table(table) -> bool:
    """A table used for page layout (cells hold paragraphs or tables) is read as blocks, not rows."""
    cells = _own(table, ["td", "th"], "table")
    return not cells or any(cell.find(_LAYOUT_IN_CELL) is not None for cell in cells)


def _inline_text(tag) -> str:
    writer = _HtmlText()
    writer.walk(tag)
    writer.flush()
    return _HTML_SPACE.sub(" ", " ".join(writer.paragraphs)).strip()


def _read_html(path: Path) -> str:
    markup = decode_html(path.read_bytes())
    try:
        return html_to_text(markup)
    except Exception as error:  # noqa: BLE001 - the parser on hostile markup: report, never crash the batch
        raise DocumentError(f"the HTML could not be parsed ({_describe(error)})") from error


# -- PDF ---------------------------------------------------------------------------


def _read_pdf(path: Path) -> str:
    """Text layer of each page, each page followed by "\\n\\f\\n"."""
    from pypdf import PdfReader
    from pypdf.errors import DependencyError

    try:
        reader = PdfReader(path)
    except Exception as error:  # noqa: BLE001 - a damaged file can fail anywhere in the parser
        raise DocumentError(f"not a readable PDF ({_describe(error)})") from error
    if reader.is_encrypted:
        try:
            opened = reader.decrypt("")
        except DependencyError as error:
            raise DocumentError(f"the PDF is encrypted with a method this install cannot read ({error})") from error
        except Exception as error:  # noqa: BLE001
            raise DocumentError(f"the PDF is encrypted and cannot be opened ({_describe(error)})") from error
        if not opened:
            raise DocumentError(
                "the PDF is password-protected; save a copy without the password and add that instead"
            )
    try:
        pages = list(reader.pages)
    except Exception as error:  # noqa: BLE001
        raise DocumentError(f"not a readable PDF: its page tree is damaged ({_describe(error)})") from error
    if not pages:
        raise DocumentError("the PDF has no pages")
    texts: list[str] = []
    failures = 0
    for page in pages:
        try:
            text = page.extract_text() or ""
        except Exception:  # noqa: BLE001 - one damaged page should not lose the others
            failures += 1
            text = ""
        texts.append(text.replace("\f", "\n"))  # "\f" marks page ends: keep it for that alone
    if failures == len(pages):
        raise DocumentError("not a readable PDF: text could not be extracted from any page")
    if not any(text.strip() for text in texts):
        raise DocumentError(
            f"the PDF has no text layer ({len(pages)} page(s) of images, e.g. a scan); "
            "it needs OCR first (e.g. `ocrmypdf in.pdf out.pdf`), then add the OCR'd PDF"
        )
    # Every page ends with "\f" on a line of its own: a page break is also a paragraph break, and a
    # one-page PDF is still paged (the page of a passage is the number of "\f" before it, plus one).
    return "".join(f"{text}\n\f\n" for text in texts)


# -- DOCX --------------------------------------------------------------------------


def _read_docx(path: Path) -> str:
    """Paragraphs and tables of the main document part, in document order."""
    if not zipfile.is_zipfile(path):
        raise DocumentError("not a valid .docx file (it is not a ZIP package); save a .doc as .docx first")
    try:
        with zipfile.ZipFile(path) as package:
            unpacked = sum(info.file_size for info in package.infolist())
    except (zipfile.BadZipFile, OSError, ValueError) as error:
        raise DocumentError(f"not a valid .docx file ({error})") from error
    if unpacked > MAX_UNPACKED_BYTES:
        raise DocumentError(
            f"the .docx unpacks to {unpacked / 2**20:.0f} MB, over the {MAX_UNPACKED_BYTES / 2**20:.0f} MB limit"
        )
    _check_docx_body(path)
    import docx
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    try:
        document = docx.Document(str(path))
        blocks = []
        for item in document.iter_inner_content():
            if isinstance(item, Paragraph):
                text = item.text
                if text.strip():
                    blocks.append(text)
            elif isinstance(item, Table):
                rows = _docx_table_rows(item)
                if rows:
                    blocks.append("\n".join(rows))
    except Exception as error:  # noqa: BLE001 - python-docx / lxml raise many kinds on damaged packages
        raise DocumentError(f"not a readable .docx file ({_describe(error)})") from error
    return "\n\n".join(blocks).replace("\f", "\n")


def _check_docx_body(path: Path) -> None:
    """Stream the main part once, counting paragraphs and characters, and stop at the first limit passed.

    Its cost is bounded by the limits, not by the unpacked size. A package without a main part is
    left for python-docx to refuse.
    """
    from lxml import etree

    try:
        with zipfile.ZipFile(path) as package:
            relations = etree.fromstring(package.read("_rels/.rels"))
            target = next(r.get("Target") for r in relations if r.get("Type") == _MAIN_PART)
            paragraphs = chars = 0
            with package.open(target.lstrip("/")) as part:
                for _, element in etree.iterparse(part, tag=(f"{_WORD}p", f"{_WORD}t"), resolve_entities=False):
                    if element.tag == f"{_WORD}t":
                        chars += len(element.text or "")
                        continue
                    paragraphs += 1
                    element.clear()
                    if paragraphs > MAX_DOCX_PARAGRAPHS or chars > MAX_DOCX_CHARS:
                        break
    except (KeyError, StopIteration, zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, etree.LxmlError):
        return  # a damaged deflate stream or a truncated member too: python-docx refuses it below
    if paragraphs > MAX_DOCX_PARAGRAPHS:
        raise DocumentError(
            f"the .docx has over {MAX_DOCX_PARAGRAPHS:,} paragraphs, more than one document may hold; split it"
        )
    if chars > MAX_DOCX_CHARS:
        raise DocumentError(
            f"the .docx holds over {MAX_DOCX_CHARS:,} characters of text, more than one document may hold; split it"
        )


def _docx_table_rows(table) -> list[str]:
    """A line per row, cells joined by " | "; a merged cell's text appears once (in its first row/column)."""
    seen: dict[int, object] = {}  # id -> element, kept alive so that ids are not reused
    rows = []
    for row in table.rows:
        cells = []
        for cell in row.cells:
            if id(cell._tc) in seen:
                continue
            seen[id(cell._tc)] = cell._tc
            text = _docx_cell_text(cell)
            if text:
                cells.append(text)
        if cells:
            rows.append(" | ".join(cells))
    return rows


def _docx_cell_text(cell) -> str:
    from docx.table import Table

    parts = []
    for item in cell.iter_inner_content():
        if isinstance(item, Table):
            parts.extend(_docx_table_rows(item))
        else:
            parts.append(item.text)
    return " ".join(" ".join(parts).split())


# -- entry point -------------------------------------------------------------------


def _describe(error: BaseException) -> str:
    message = str(error).strip() or type(error).__name__
    return message if len(message) <= 200 else message[:200] + "…"


def _read_plain(path: Path) -> str:
    return decode(path.read_bytes())


_READERS: dict[str, Callable[[Path], str]] = {
    **dict.fromkeys(TEXT_SUFFIXES, _read_plain),
    **dict.fromkeys(HTML_SUFFIXES, _read_html),
    ".pdf": _read_pdf,
    ".docx": _read_docx,
}


def load_text(path: Path) -> str:
    """Read one document and return its text (the 'original' that offsets refer to).

    Raises DocumentError, naming the file and the reason, for anything that is not a
    readable document of a supported type.
    """
    path = Path(path)
    if path.is_dir():
        raise DocumentError(f"{path} is a directory, not a document")
    if path.is_symlink() and not path.exists():
        raise DocumentError(f"{path} is a broken symbolic link (its target is missing, or the links form a loop)")
    if not path.is_file():
        raise DocumentError(f"{path} does not exist or is not a regular file")
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise DocumentError(
            f"{path.name}: unsupported file type {path.suffix or '(none)'}; "
            f"supported: {', '.join(SUPPORTED_SUFFIXES)}"
        )
    try:
        size = path.stat().st_size
    except OSError as error:
        raise DocumentError(f"{path.name}: cannot read the file ({error.strerror or error})") from error
    if size > MAX_DOCUMENT_BYTES:
        raise DocumentError(
            f"{path.name}: {size / 2**20:.1f} MB is over the {MAX_DOCUMENT_BYTES / 2**20:.0f} MB limit "
            "for one document; split it into smaller files"
        )
    if size == 0:
        raise DocumentError(f"{path.name}: the file is empty")
    try:
        text = _READERS[suffix](path)
    except DocumentError as error:
        raise DocumentError(f"{path.name}: {error}") from None
    except OSError as error:
        raise DocumentError(f"{path.name}: cannot read the file ({error.strerror or error})") from error
    # NUL bytes past the first 8 KB (a file padded with zeros) are dropped: they are not text.
    text = text.replace("\x00", "")
    if not text or text.isspace():
        raise DocumentError(f"{path.name}: the document is empty (no text in it)")
    return text
