"""The OpenVINO runtime (default for the bundled model on CPU): export once, embed fast.

:func:`export_openvino` traces the converted sentence-transformers folder (with mean pooling
and L2 normalisation) into an OpenVINO IR in the cache; :class:`OpenVINOEmbedder` runs it in
the precision chosen for the CPU (:mod:`.precision`: bf16 with native bf16, the calibrated int8
model of :mod:`.int8` with AVX-512 or AVX-VNNI, else f32). Measured figures: docs/benchmarks.md
(bench/embed_speed.py).
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from .base import (
    PASSAGE_PROMPT,
    QUERY_PROMPT,
    Progress,
    encode_longest_first,
    load_tokenizer,
    padded_batch,
)
from .cache import build_once, write_json
from .precision import PRECISIONS, choose_precision

log = logging.getLogger(__name__)

# Bump when the exported graph changes, so cached exports are rebuilt.
EXPORT_VERSION = 1
MARKER = "qa_bot_openvino.json"  # written last into an exported folder
MICRO_BATCH = 8  # texts per inference request when embedding many passages
SMALL = 8  # up to this many texts: one request on the low-latency model


def import_openvino() -> Any:
    """``import openvino`` without its usage telemetry.

    Importing openvino (its ``openvino.tools.ovc`` part) sends a usage event to Google
    Analytics unless the user has opted out in ``~/intel/openvino_telemetry``; with the
    telemetry package hidden during that first import, ovc binds its own no-op stub.
    """
    import sys

    if "openvino" in sys.modules:
        import openvino

        return openvino
    hide = "openvino_telemetry" not in sys.modules
    if hide:
        sys.modules["openvino_telemetry"] = None  # type: ignore[assignment]  # makes its import fail
    try:
        import openvino
    finally:
        if hide and sys.modules.get("openvino_telemetry", 0) is None:
            del sys.modules["openvino_telemetry"]
    return openvino



def pooled_encoder(folder: Path, attention: str | None = None) -> Any:
    """The model in ``folder`` as a float32 torch module ``(input_ids, attention_mask) -> unit vectors``:
    the encoder, mean pooling over the mask (as sentence-transformers' Pooling) and L2 normalisation.
    What the exports trace (this one; bench/ort_runtime.py for ONNX, with ``attention="eager"``, the
    form ONNX Runtime's attention fusion recognises); None: transformers' default attention."""
    import torch
    from transformers import AutoModel

    class Pooled(torch.nn.Module):
        def __init__(self, encoder: torch.nn.Module):
            super().__init__()
            self.encoder = encoder

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            mean = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(mean, p=2.0, dim=1)

    options = {"attn_implementation": attention} if attention else {}
    encoder = AutoModel.from_pretrained(str(folder), local_files_only=True, dtype=torch.float32, **options).eval()
    return Pooled(encoder).eval()


def example_inputs() -> tuple[Any, Any]:
    """Two rows of different lengths, so padding and masking are part of a traced graph."""
    import torch

    ids = torch.tensor([[0, 1000, 2000, 3000, 2], [0, 1000, 2, 1, 1]], dtype=torch.int64)
    mask = (ids != 1).to(torch.int64)
    mask[0] = 1
    return ids, mask


def export_folder(folder: Path, out_dir: Path) -> None:
    """Trace the model in ``folder`` (:func:`pooled_encoder`) to OpenVINO IR."""
    export_module(pooled_encoder(folder), out_dir, "embedding")


def export_module(module: Any, out_dir: Path, output: str) -> None:
    """Trace a torch module ``(input_ids, attention_mask) -> output`` to ``out_dir/model.xml``.

    Uses OpenVINO's PyTorch frontend directly rather than ``openvino.convert_model``:
    the latter sends usage telemetry over the network unless the user opted out.
    The IR stores weights as float16 (the 4-bit matrices already are fp16 values).
    """
    import torch

    ov = import_openvino()
    from openvino.frontend import FrontEndManager
    from openvino.frontend.pytorch.ts_decoder import TorchScriptPythonDecoder

    with torch.inference_mode(False), torch.no_grad():
        decoder = TorchScriptPythonDecoder(module, example_input=example_inputs())
        frontend = FrontEndManager().load_by_framework("pytorch")
        model = frontend.convert(frontend.load(decoder))
    for port, name in zip(model.inputs, ("input_ids", "attention_mask"), strict=True):
        port.get_tensor().set_names({name})
        port.get_node().set_partial_shape(ov.PartialShape([-1, -1]))
    model.outputs[0].get_tensor().set_names({output})
    model.validate_nodes_and_infer_types()
    ov.save_model(model, str(out_dir / "model.xml"), compress_to_fp16=True)


def export_openvino(folder: str | Path) -> Path:
    """The OpenVINO IR of a converted model folder, exported once into the cache.

    Lives beside the folder (``<folder>-openvino-v<N>``); built in a temporary folder and
    moved into place, under a file lock (see :func:`qa_bot.embedding.cache.build_once`), so
    concurrent first use exports once and a crash leaves nothing half-written.
    Returns the path of ``model.xml``.
    """
    folder = Path(folder)
    target = folder.parent / f"{folder.name}-openvino-v{EXPORT_VERSION}"

    def export(tmp: Path) -> None:
        ov = import_openvino()
        log.info("exporting %s to OpenVINO IR in %s (once)", folder, target)
        started = time.perf_counter()
        export_folder(folder, tmp)
        write_json(tmp / MARKER, {"source": str(folder), "export_version": EXPORT_VERSION, "openvino": ov.__version__})
        log.info("OpenVINO export done in %.1fs", time.perf_counter() - started)

    return build_once(target, MARKER, export) / "model.xml"


def _l2_normalised(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length again (the graph normalises, but in bf16 precision)."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


class OpenVINOModel:
    """The exported model on OpenVINO's CPU plugin, with the folder's own tokenizer.

    ``precision``: bf16 or f32 inference of the exported IR, or int8 (its quantized copy, whose
    float parts run in f32); None chooses by CPU. All three give vectors within cosine 0.99 of
    each other, so an index built in one precision answers queries encoded in another.

    Two compilations of the same IR, each made on first use: ``LATENCY`` (one stream
    using all cores) for queries and small batches, ``THROUGHPUT`` (one stream per core,
    requests in flight at once) for bulk passage embedding.
    """

    def __init__(self, folder: Path, precision: str | None = None):
        ov = self._ov = import_openvino()
        self.precision = precision or choose_precision()
        if self.precision not in PRECISIONS:
            raise ValueError(f"unknown precision {self.precision!r} (expected one of {', '.join(PRECISIONS)})")
        self.xml = export_openvino(folder)
        if self.precision == "int8":
            from .int8 import quantize_openvino

            self.xml = quantize_openvino(folder, self.xml)
        self._core = ov.Core()
        self._model = self._core.read_model(str(self.xml))
        self.dim = int(self._model.outputs[0].get_partial_shape()[1].get_length())
        # The same tokenizer.json sentence-transformers loads (ids checked equal in the tests);
        # its normaliser and Unigram model never treat "<s>" etc. in the text as special.
        self.tokenizer = load_tokenizer(folder)
        self._compiled: dict[str, Any] = {}
        self._latency_lock = threading.Lock()
        self._bulk_lock = threading.Lock()
        self._request: Any = None
        self._queue: Any = None

    def _compile(self, hint: str) -> Any:
        if hint not in self._compiled:
            self._compiled[hint] = self._core.compile_model(
                self._model, "CPU", {"PERFORMANCE_HINT": hint, "INFERENCE_PRECISION_HINT": self._float_precision}
            )
        return self._compiled[hint]

    @property
    def _float_precision(self) -> str:
        """The precision of the graph's float operations (the int8 model's are f32)."""
        return "bf16" if self.precision == "bf16" else "f32"

    def token_ids(self, texts: list[str]) -> list[list[int]]:
        return [enc.ids for enc in self.tokenizer.encode_batch(texts)]

    def embed_small(self, ids: list[list[int]]) -> np.ndarray:
        """One request on the latency model (queries, a few passages)."""
        input_ids, mask = padded_batch(ids)
        with self._latency_lock:
            if self._request is None:
                self._request = self._compile("LATENCY").create_infer_request()
            out = self._request.infer([input_ids, mask])[0]
            return _l2_normalised(np.array(out, dtype=np.float32, copy=True))

    def embed_bulk(self, ids: list[list[int]]) -> np.ndarray:
        """Micro-batches (``ids`` should be sorted by length) over all throughput streams."""
        if len(ids) <= SMALL:
            return self.embed_small(ids)
        out = np.zeros((len(ids), self.dim), dtype=np.float32)
        with self._bulk_lock:
            if self._queue is None:
                compiled = self._compile("THROUGHPUT")
                jobs = int(compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
                self._queue = self._ov.AsyncInferQueue(compiled, max(1, jobs))

            def done(request: Any, start: int) -> None:
                data = request.get_output_tensor(0).data
                out[start : start + len(data)] = data

            self._queue.set_callback(done)
            for start in range(0, len(ids), MICRO_BATCH):
                self._queue.start_async(list(padded_batch(ids[start : start + MICRO_BATCH])), start)
            self._queue.wait_all()
        return _l2_normalised(out)



class OpenVINOEmbedder:
    """An :class:`~qa_bot.embedding.base.Embedder` on the OpenVINO runtime (bundled model only)."""

    backend = "openvino"

    def __init__(self, folder: Path, model_id: str, precision: str | None = None):
        self.model = OpenVINOModel(folder, precision)
        self.model_id = model_id
        self.dim = self.model.dim
        self.precision = self.model.precision
        self.model.embed_small(self.model.token_ids([QUERY_PROMPT + "ok"]))  # fail here, not at the first question

    def encode_passages(self, texts: list[str], batch_size: int = 32, progress: Progress | None = None) -> np.ndarray:
        ids = self.model.token_ids([PASSAGE_PROMPT + t for t in texts])
        return encode_longest_first(
            [len(x) for x in ids], lambda positions: self.model.embed_bulk([ids[i] for i in positions]),
            self.dim, batch_size, progress,
        )

    def encode_query(self, text: str) -> np.ndarray:
        return self.model.embed_small(self.model.token_ids([QUERY_PROMPT + text]))[0]

