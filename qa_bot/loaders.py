"""Bytes -> text: encoding detection and per-format text extraction."""

from __future__ import annotations

import codecs
from pathlib import Path

from charset_normalizer import from_bytes

SUPPORTED_SUFFIXES = (".txt", ".md", ".markdown", ".text")
MAX_DOCUMENT_BYTES = 64 * 1024 * 1024

_BOMS = (
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
# Tried in order before statistical detection: Chinese text in Big5 or GBK very
# often also decodes as the other, so strict UTF-8 first, then detection.
_CHINESE_ENCODINGS = ("big5", "cp950", "gb18030")


class DocumentError(ValueError):
    """A file that cannot be read as a document; the message says why."""


def decode(data: bytes) -> str:
    """Decode document bytes: BOM, then strict UTF-8, then charset detection.

    Never raises on bytes that are text in some encoding; raises DocumentError
    on binary data (NUL bytes or undecodable).
    """
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            return data.decode(encoding)
    if b"\x00" in data[:8192]:
        raise DocumentError("looks like a binary file (contains NUL bytes), not text")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    best = from_bytes(data, cp_isolation=None).best()
    if best is not None and best.encoding:
        text = str(best)
        if _looks_like_text(text):
            return text
    for encoding in _CHINESE_ENCODINGS:
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise DocumentError("could not detect the text encoding (tried UTF-8, Big5, GB18030)")


def _looks_like_text(text: str) -> bool:
    """Reject decodings that are mostly control characters (binary junk)."""
    if not text:
        return True
    controls = sum(1 for ch in text if ord(ch) < 32 and ch not in "\t\n\r\f")
    return controls / len(text) < 0.01


def load_text(path: Path) -> str:
    """Read one document and return its text (the 'original' that offsets refer to)."""
    if path.is_dir():
        raise DocumentError(f"{path} is a directory, not a document")
    if not path.is_file():
        raise DocumentError(f"{path} does not exist or is not a regular file")
    if path.suffix.lower() not in SUPPORTED_SUFFIXES:
        raise DocumentError(
            f"{path.name}: unsupported file type {path.suffix or '(none)'}; "
            f"supported: {', '.join(SUPPORTED_SUFFIXES)}"
        )
    size = path.stat().st_size
    if size > MAX_DOCUMENT_BYTES:
        raise DocumentError(f"{path.name}: {size} bytes is over the {MAX_DOCUMENT_BYTES}-byte limit")
    text = decode(path.read_bytes())
    if not text.strip():
        raise DocumentError(f"{path.name}: the document is empty")
    return text
