"""Every QA_BOT_* setting, read from the environment in this one place (defaults: the seed corpus).

| variable | default | meaning |
|---|---|---|
| QA_BOT_DOCS | seeds | documents folder |
| QA_BOT_LIBRARY | library | where uploads go (git-ignored); the default index reads it too |
| QA_BOT_INDEX | embeddings | index folder (with Milvus: only the write lock) |
| QA_BOT_MODEL | bundled e5-small | sentence-transformers model name or folder |
| QA_BOT_BACKEND | auto | embedding runtime: auto (ONNX Runtime int8 on AVX2-only CPUs, else OpenVINO), onnxruntime, openvino or torch |
| QA_BOT_PRECISION | by CPU | OpenVINO inference: bf16, int8 or f32 (default: bf16 with native bf16, int8 with AVX-512 or AVX-VNNI, else f32); setting it selects OpenVINO on AVX2-only CPUs |
| QA_BOT_BF16 | by CPU | 1/0: force bf16 inference on or off |
| QA_BOT_CACHE | ~/.cache/qa-bot | converted and exported models |
| QA_BOT_STORE | faiss | faiss or milvus |
| QA_BOT_MILVUS_URI | <index>/milvus.db | Milvus Lite file or http://host:19530 |
| QA_BOT_MILVUS_TOKEN | | Milvus credentials |
| QA_BOT_MILVUS_COLLECTION | qa_bot | collection name prefix |
| QA_BOT_HOST, QA_BOT_PORT | 127.0.0.1, 7860 | where the web chat listens |
| QA_BOT_AUTH | | user:password for the web chat |
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

BACKENDS = ("auto", "openvino", "onnxruntime", "torch")


def _env(name: str, default: str = "") -> str:
    return os.environ.get(f"QA_BOT_{name}", default)


def _optional(name: str) -> str | None:
    return _env(name).strip() or None


def _flag(name: str) -> bool | None:
    """A yes/no override: None when unset."""
    value = os.environ.get(f"QA_BOT_{name}")
    if value is None:
        return None
    return value.strip().lower() not in ("0", "false", "no", "")


def _cache_dir() -> Path:
    value = _optional("CACHE")
    return Path(value).expanduser() if value else Path.home() / ".cache" / "qa-bot"


@dataclass(frozen=True)
class Settings:
    """The environment's settings at the time of construction (see the table above)."""

    docs_dir: Path = field(default_factory=lambda: Path(_env("DOCS", "seeds")))
    library_dir: Path = field(default_factory=lambda: Path(_env("LIBRARY", "library")))
    index_dir: Path = field(default_factory=lambda: Path(_env("INDEX", "embeddings")))
    model: str | None = field(default_factory=lambda: _optional("MODEL"))
    backend: str = field(default_factory=lambda: (_optional("BACKEND") or "auto").lower())
    precision: str | None = field(default_factory=lambda: (_optional("PRECISION") or "").lower() or None)
    bf16: bool | None = field(default_factory=lambda: _flag("BF16"))
    cache_dir: Path = field(default_factory=_cache_dir)
    store: str = field(default_factory=lambda: _optional("STORE") or "faiss")
    milvus_uri: str | None = field(default_factory=lambda: _optional("MILVUS_URI"))
    milvus_token: str | None = field(default_factory=lambda: _optional("MILVUS_TOKEN"))
    milvus_collection: str = field(default_factory=lambda: _optional("MILVUS_COLLECTION") or "qa_bot")
    host: str = field(default_factory=lambda: _env("HOST", "127.0.0.1"))
    port: int = field(default_factory=lambda: int(_env("PORT", "7860")))
    auth: str | None = field(default_factory=lambda: _optional("AUTH"))
