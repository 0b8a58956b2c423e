"""Settings from the environment (QA_BOT_*) with defaults for the seed corpus."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path


def _env(name: str, default: str) -> str:
    return os.environ.get(f"QA_BOT_{name}", default)


@dataclass(frozen=True)
class Settings:
    """Where documents and the index live, which model, and how the web chat listens."""

    docs_dir: Path = field(default_factory=lambda: Path(_env("DOCS", "seeds")))
    index_dir: Path = field(default_factory=lambda: Path(_env("INDEX", "embeddings")))
    model: str | None = field(default_factory=lambda: os.environ.get("QA_BOT_MODEL") or None)
    host: str = field(default_factory=lambda: _env("HOST", "127.0.0.1"))
    port: int = field(default_factory=lambda: int(_env("PORT", "7860")))
    auth: str | None = field(default_factory=lambda: os.environ.get("QA_BOT_AUTH") or None)
