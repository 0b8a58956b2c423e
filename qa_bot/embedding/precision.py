"""Which runtime and precision embed on this CPU: OpenVINO bf16, int8 or f32, or ONNX Runtime int8.

Measured on one AVX-512 BF16 machine, with OpenVINO's oneDNN kernels capped by
``ONEDNN_MAX_CPU_ISA`` to emulate older CPUs (bench/embed_speed.py, bench/ov_kernels.py,
docs/benchmarks.md):

- native bf16 (``avx512_bf16`` or AMX): bf16, at cosine 0.99999 to float32 and with nothing to
  build at first use. The int8 model is faster still there (about 1.5x bf16), but further from
  float32 (cosine 0.998) and costs minutes of quantization first: ``QA_BOT_PRECISION=int8``.
- AVX-512 without bf16 (Skylake to Ice Lake Xeons, the common cloud machines): the calibrated
  int8 model, 2.5-2.9x OpenVINO f32 there. AVX-VNNI (``avx_vnni``, recent laptops) gets the
  same VNNI int8 kernels at half width, hence int8 too: not measured here.
- AVX2 only: f32. Without VNNI, OpenVINO's int8 matrix products fall back to a generic GEMM
  (``jit_gemm_i8``) slower than its f32 kernel (``brgemm_avx2_f32``). ONNX Runtime's AVX2 int8
  kernels are about 2x OpenVINO f32 there, but its dynamic int8 vectors move enough to change which
  questions are refused (English off-topic questions answered in our tests), so it is opt-in:
  ``QA_BOT_BACKEND=onnxruntime`` (:mod:`.onnxruntime`).

``QA_BOT_PRECISION`` (bf16, int8, f32) overrides the choice; the older ``QA_BOT_BF16=1/0`` still
forces bf16 on or off.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..config import Settings

PRECISIONS = ("bf16", "int8", "f32")

# oneDNN's ISA names (ONEDNN_MAX_CPU_ISA) in increasing order, with the CPU flags each adds that matter here.
_ISA_LEVELS = {
    "sse41": 0, "avx": 1, "avx2": 2, "avx2_vnni": 3, "avx2_vnni_2": 3, "avx512_core": 4, "avx512_core_vnni": 5,
    "avx512_core_bf16": 6, "avx10_1_512": 6, "avx512_core_fp16": 6, "avx512_core_amx": 7, "avx10_1_512_amx": 7,
    "avx512_core_amx_fp16": 7, "avx10_1_512_amx_fp16": 7, "avx10_2_512": 7, "avx10_2_512_amx_2": 7,
}
_FLAG_LEVELS = {"avx_vnni": 3, "avx512f": 4, "avx512_vnni": 5, "avx512_bf16": 6, "amx_bf16": 7, "amx_tile": 7}


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> set[str]:
    """The CPU's feature flags (Linux), less those above ``ONEDNN_MAX_CPU_ISA`` when that caps the kernels.

    OpenVINO's CPU plugin honours that oneDNN variable for its matrix kernels, but still reports the
    real CPU's capabilities; reading it here keeps the choice in line with the kernels that run.
    """
    flags: set[str] = set()
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(encoding="utf-8", errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "flags":
                flags = set(value.split())
                break
    cap = _ISA_LEVELS.get((os.environ.get("ONEDNN_MAX_CPU_ISA") or "").strip().lower())
    if cap is not None:
        flags = {f for f in flags if _FLAG_LEVELS.get(f, 0) <= cap}
    return flags


def auto_precision(flags: set[str]) -> str:
    """bf16 with native bf16, int8 with AVX-512 or AVX-VNNI, else f32 (measurements: module docstring)."""
    if flags & {"avx512_bf16", "amx_bf16"}:
        return "bf16"
    if flags & {"avx512f", "avx_vnni"}:
        return "int8"
    return "f32"


def choose_precision(flags: set[str] | None = None) -> str:
    """The precision for this CPU, after the ``QA_BOT_PRECISION`` / ``QA_BOT_BF16`` overrides."""
    settings = Settings()
    if settings.precision in PRECISIONS:
        return settings.precision
    chosen = auto_precision(cpu_flags() if flags is None else flags)
    if settings.bf16 is True:
        return "bf16"
    if settings.bf16 is False and chosen == "bf16":
        return "f32"
    return chosen
