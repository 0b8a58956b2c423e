"""The PyTorch runtime: sentence-transformers, for any model (and the bundled one when OpenVINO is off)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..config import Settings
from .base import MAX_SEQ_LENGTH, PASSAGE_PROMPT, QUERY_PROMPT, Progress, encode_longest_first


def native_bf16() -> bool:
    """bf16 autocast only pays off (and is only enabled) on CPUs with native bf16 (``QA_BOT_BF16`` overrides)."""
    forced = Settings().bf16
    if forced is not None:
        return forced
    import torch

    check = getattr(torch.cpu, "_is_avx512_bf16_supported", None)
    amx = getattr(torch.cpu, "_is_amx_tile_supported", None)
    try:
        return bool((check and check()) or (amx and amx()))
    except Exception:  # noqa: BLE001 - private torch API; be conservative
        return False


class TorchEmbedder:
    """An :class:`~qa_bot.embedding.base.Embedder` on sentence-transformers.

    On the 2-core AVX512-BF16 machine bf16 autocast gives ~1.6-1.9x the float32 passage
    throughput at cosine >= 0.99999 to it (bench/embed_speed.py; checked in the tests).
    """

    backend = "torch"

    def __init__(self, path: str, model_id: str, device: str = "cpu"):
        from sentence_transformers import SentenceTransformer

        self.model_id = model_id
        self.st = SentenceTransformer(path, device=device, local_files_only=Path(path).is_dir())
        prompts = getattr(self.st, "prompts", None) or {}
        self.passage_prompt = prompts.get("passage") or PASSAGE_PROMPT
        self.query_prompt = prompts.get("query") or QUERY_PROMPT
        dim = self.st.get_embedding_dimension()
        if not dim:
            dim = int(self.st.encode(["x"], convert_to_numpy=True).shape[1])
        self.dim = int(dim)
        self.bf16 = device == "cpu" and native_bf16()

    @property
    def precision(self) -> str:
        """Follows ``bf16``, which callers may switch (the float32 reference runs in tests and benchmarks)."""
        return "bf16" if self.bf16 else "f32"

    def _encode(self, texts: list[str], prompt: str) -> np.ndarray:
        """One sentence-transformers batch."""
        import torch

        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
            out = self.st.encode(
                texts, prompt=prompt, batch_size=max(1, len(texts)), convert_to_numpy=True,
                normalize_embeddings=True, show_progress_bar=False,
            )
        return np.asarray(out, dtype=np.float32).reshape(len(texts), self.dim)

    def _lengths(self, texts: list[str]) -> list[int]:
        """Token counts (with ``<s>``/``</s>``, truncated to 512); character counts for odd tokenizers."""
        tokenizer: Any = getattr(self.st, "tokenizer", None)
        try:
            ids = tokenizer([self.passage_prompt + t for t in texts], truncation=True, max_length=MAX_SEQ_LENGTH)
            return [len(x) for x in ids["input_ids"]]
        except Exception:  # noqa: BLE001 - any odd tokenizer: character counts will do
            return [len(t) for t in texts]

    def encode_passages(self, texts: list[str], batch_size: int = 32, progress: Progress | None = None) -> np.ndarray:
        return encode_longest_first(
            self._lengths(texts), lambda positions: self._encode([texts[i] for i in positions], self.passage_prompt),
            self.dim, batch_size, progress,
        )

    def encode_query(self, text: str) -> np.ndarray:
        return self._encode([text], self.query_prompt)[0]
