"""Document uploads and removals as transactions over the documents folder and the index.

Shared by the web chat and the CLI: a refused or failed file leaves the folder and the index
as they were.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import threading
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .bot import IndexReport, QABot
from .errors import DocumentError, UploadError
from .loaders import SUPPORTED_SUFFIXES, load_text
from .present import human_size

MAX_UPLOAD_BYTES = 20 * 1024 * 1024
MAX_NAME_BYTES = 200

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
        raise UploadError(f"檔案太大 {name} is {human_size(size)}, over the {human_size(limit)} limit")
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
    texts: dict[str, str] = {}  # read once, to refuse unreadable documents before they reach the folder
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
                texts[name] = load_text(copy)
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
            report = (
                bot.add_documents([p.dest for p in placed], progress=progress,
                                  texts={docs_dir / name: texts[name] for name in staged})
                if placed else IndexReport()
            )
        except BaseException:
            for p in placed:
                _undo(p)
            raise
        for p in placed:
            if str(p.dest) in report.errors:
                _undo(p)
        if not placed:
            report.passages = len(bot.store.chunks)
        return report, refused
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def remove_document(bot: QABot, docs_dir: Path, name: str) -> IndexReport:
    """Remove a document from the index, and delete its file when it lives in docs_dir."""
    info = bot.store.documents.get(name)
    report = bot.remove_documents([name])
    if info is not None and name in report.removed:
        path = Path(info.path)
        if info.path and _inside(path, Path(docs_dir)) and path.is_file() and not path.is_symlink():
            path.unlink()
    return report
