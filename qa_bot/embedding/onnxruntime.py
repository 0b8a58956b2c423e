"""ONNX Runtime, int8: the bundled model's runtime on CPUs with AVX2 but neither AVX-512 nor AVX-VNNI.

There OpenVINO's int8 matrix products fall back to a generic kernel slower than its float32 one
(bench/ov_kernels.py), while ONNX Runtime's (MLAS) have AVX2 int8 kernels (``vpmaddubsw``). Measured
under AVX2 emulation (bench/embed_speed.py, docs/benchmarks.md): 3.45x sentence-transformers float32 and
1.9x OpenVINO float32 in the same run, cosine >= 0.9989 to float32 on 48 DRCD passages (2026-12-03, build 3).

The model: the same traced module as the OpenVINO export (:func:`.openvino.pooled_encoder`) exported to
ONNX, ONNX Runtime's BERT fusions applied (Attention, SkipLayerNormalization, BiasGelu), then dynamic int8
(weights int8 per output channel, activations uint8 per run, in MatMul and Attention: no calibration,
so nothing of the user's data shapes it), except the feed-forward output projections, which stay float32
(build 2 quantized them too: cosine 0.983 to float32 on 「hahahahahahahahaha」, 0.9957 at worst on the 48
passages; build 3: 0.997 and 0.9989, and no slower). Weights use 7 bits (``reduce_range``), as ONNX Runtime advises for
CPUs without VNNI: with 8, the AVX2 kernels' 16-bit sums saturate and the worst of 200 DRCD questions fell to
cosine 0.988 to float32; with 7 it is 0.993, at the same speed (one-off, 2026-11-29, AVX2 emulated). Built once at first use (about a minute) into the cache,
beside the converted model, written atomically (:mod:`.cache`).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
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

log = logging.getLogger(__name__)

BUILD_VERSION = 3  # bump when the recipe changes, so cached models are rebuilt
MARKER = "qa_bot_onnxruntime.json"  # written last into a built folder
STREAMS = 2  # passages embedded at once, one thread each


def build_int8(folder: Path, out_dir: Path) -> dict[str, Any]:
    """Export, fuse and quantize the model in ``folder`` to ``out_dir/model.onnx``; returns the fusion counts."""
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.transformers.optimizer import optimize_model

    from .openvino import example_inputs, pooled_encoder

    raw, fused_path = out_dir / "raw.onnx", out_dir / "fused.onnx"
    with torch.no_grad():
        torch.onnx.export(  # the TorchScript exporter: the graph ONNX Runtime's BERT fusions recognise
            pooled_encoder(folder, attention="eager"), example_inputs(), str(raw), dynamo=False, opset_version=17,
            input_names=["input_ids", "attention_mask"], output_names=["embedding"],
            dynamic_axes={"input_ids": {0: "batch", 1: "tokens"}, "attention_mask": {0: "batch", 1: "tokens"},
                          "embedding": {0: "batch"}},
        )
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))  # the fusion cannot infer these
    fused = optimize_model(str(raw), model_type="bert", num_heads=config["num_attention_heads"],
                           hidden_size=config["hidden_size"], opt_level=1)
    fused.save_model_to_file(str(fused_path))
    # The feed-forward output projections stay float32: their inputs (after GELU) carry the outliers that uint8
    # activations clip; quantized, 「hahahahahahahahaha」 fell to cosine 0.983 to float32, float there 0.997.
    float_nodes = [node.name for node in fused.model.graph.node
                   if node.op_type == "MatMul" and node.name.endswith("/output/dense/MatMul") and "/attention/" not in node.name]
    quantize_dynamic(
        str(fused_path), str(out_dir / "model.onnx"), weight_type=QuantType.QInt8, per_channel=True,
        reduce_range=True,  # 7-bit weights: AVX2's u8 x s8 products (vpmaddubsw) then cannot saturate 16 bits
        op_types_to_quantize=["MatMul", "Attention"], nodes_to_exclude=float_nodes,
        extra_options={"MatMulConstBOnly": True, "DefaultTensorType": 1},  # 1: float, for the fused ops' outputs
    )
    raw.unlink()
    fused_path.unlink()
    return {op: n for op, n in fused.get_fused_operator_statistics().items() if n}


def onnx_int8(folder: str | Path) -> Path:
    """The int8 ONNX model of a converted model folder, built once beside it (``<folder>-onnx-int8-v<N>``)."""
    folder = Path(folder)
    target = folder.parent / f"{folder.name}-onnx-int8-v{BUILD_VERSION}"

    def build(tmp: Path) -> None:
        import onnxruntime

        log.info("building the int8 ONNX model of %s in %s (once, about a minute)", folder, target)
        started = time.perf_counter()
        fused = build_int8(folder, tmp)
        write_json(tmp / MARKER, {"source": str(folder), "build_version": BUILD_VERSION, "fused": fused,
                                  "onnxruntime": onnxruntime.__version__,
                                  "seconds": round(time.perf_counter() - started, 1)})

    return build_once(target, MARKER, build) / "model.onnx"


class ONNXRuntimeEmbedder:
    """An :class:`~qa_bot.embedding.base.Embedder` on ONNX Runtime's CPU provider, int8 (bundled model only).

    Queries run on a session using all cores whose threads sleep as soon as a run ends: by default ONNX
    Runtime's keep spinning for a while, on the cores the passage reader (OpenVINO) needs next in ask().
    ask() p50 over the seed questions 97.2 -> 78.6 ms and 103.8 -> 86.8 ms in two runs (retrieve() alone
    6.4 -> 7.5 ms; AVX2 emulated, flags in effect avx2 fma; one-off, 2026-12-05).

    Passages run one per run on a one-thread session, ``STREAMS`` at once (ONNX Runtime releases the GIL
    while it runs): like OpenVINO's throughput mode, no synchronisation between cores inside a run: 1.4x one
    two-thread run of whole batches (docs/architecture.md).
    """

    backend = "onnxruntime"
    precision = "int8"

    def __init__(self, folder: Path, model_id: str):
        import onnxruntime as ort

        self.model_id = model_id
        path = str(onnx_int8(folder))
        quiet = ort.SessionOptions()
        quiet.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._query_session = ort.InferenceSession(path, quiet, providers=["CPUExecutionProvider"])
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        self._bulk_session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        self._pool = ThreadPoolExecutor(STREAMS, thread_name_prefix="qa-bot-onnxruntime")
        self._bulk_lock = threading.Lock()
        # The same tokenizer.json sentence-transformers loads (as the OpenVINO runtime).
        self.tokenizer = load_tokenizer(folder)
        self.dim = int(self._run(self._query_session, self.token_ids([QUERY_PROMPT + "ok"])).shape[1])

    def token_ids(self, texts: list[str]) -> list[list[int]]:
        return [enc.ids for enc in self.tokenizer.encode_batch(texts)]

    @staticmethod
    def _run(session: Any, ids: list[list[int]]) -> np.ndarray:
        input_ids, mask = padded_batch(ids)
        out = np.asarray(session.run(None, {"input_ids": input_ids, "attention_mask": mask})[0], dtype=np.float32)
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)

    def _bulk(self, ids: list[list[int]]) -> np.ndarray:
        """One text per run on the one-thread session, ``STREAMS`` at once.

        Dynamic int8 scales activations per run: alone, a text's vector does not depend on its batch
        companions, no padding is computed, and it was both faster and closer to float32 than runs of
        8 or 4 texts (19.0 / 18.8 / 17.2 passages/s, cosine min 0.99881 / 0.99876 / 0.99872 on 160 DRCD
        passages; one-off, 2026-12-03, AVX2 emulated: flags in effect avx2 fma).
        """
        with self._bulk_lock:
            return np.concatenate(list(self._pool.map(lambda one: self._run(self._bulk_session, [one]), ids)))

    def encode_passages(self, texts: list[str], batch_size: int = 32, progress: Progress | None = None) -> np.ndarray:
        ids = self.token_ids([PASSAGE_PROMPT + t for t in texts])
        return encode_longest_first([len(x) for x in ids], lambda positions: self._bulk([ids[i] for i in positions]),
                                    self.dim, batch_size, progress)

    def encode_query(self, text: str) -> np.ndarray:
        return self._run(self._query_session, self.token_ids([QUERY_PROMPT + text]))[0]
