"""The error hierarchy: every error qa-bot raises on purpose, with a message that names the fix.

Kept apart from the modules that raise them so that interface code (CLI, web) can catch
them without importing a storage backend.
"""

from __future__ import annotations


class QAIndexError(RuntimeError):
    """Base class of index (store) errors; see subclasses."""


class IndexMissingError(QAIndexError):
    """No index at the given place."""


class IndexCorruptError(QAIndexError):
    """The index is damaged or incompatible; the message names the fix."""


class IndexWriteError(QAIndexError):
    """A write failed (e.g. the disk is full); the index is unchanged and the partial write removed."""


class DocumentError(ValueError):
    """A file that cannot be read as a document; the message says why."""


class UploadError(ValueError):
    """An upload refused before anything was written (name, size or type)."""
