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
- AVX2 only: ONNX Runtime int8 (:mod:`.onnxruntime`, :func:`use_onnxruntime`). Without VNNI,
  OpenVINO's int8 matrix products fall back to a generic GEMM (``jit_gemm_i8``) slower than its f32
  kernel (``brgemm_avx2_f32``), and OpenVINO f32 already runs near the AVX2 FMA peak; ONNX Runtime's
  AVX2 int8 kernels are about 1.9x that (3.45x sentence-transformers float32, cosine >= 0.9989 to it,
  fused DRCD R@1 within 0.0014 of float32; on near-duplicate hard negatives 0.600 against 0.618:
  bench/results/fusion_avx2.json). OpenVINO f32 remains where ONNX Runtime is missing or a precision
  is forced (``QA_BOT_PRECISION=f32``: float32's finer ranking, 1.9x slower to index).

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
_FLAG_LEVELS = {"avx_vnni": 3, "avx512_vnni": 5, "avx512_bf16": 6, "avx512_fp16": 6}


def _flag_level(flag: str) -> int:
    """The ISA level a CPU flag belongs to: as listed, else every other AVX-512 flag 4 and AMX 7."""
    if flag in _FLAG_LEVELS:
        return _FLAG_LEVELS[flag]
    return 4 if flag.startswith("avx512") else 7 if flag.startswith("amx") else 0


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
        flags = {f for f in flags if _flag_level(f) <= cap}
    return flags


def auto_precision(flags: set[str]) -> str:
    """bf16 with native bf16, int8 with AVX-512 or AVX-VNNI, else f32 (measurements: module docstring)."""
    if flags & {"avx512_bf16", "amx_bf16"}:
        return "bf16"
    if flags & {"avx512f", "avx_vnni"}:
        return "int8"
    return "f32"


def use_onnxruntime(flags: set[str] | None = None) -> bool:
    """True on AVX2 CPUs without AVX-512 or AVX-VNNI, unless a precision is forced (``QA_BOT_PRECISION``
    or ``QA_BOT_BF16`` then choose among OpenVINO's)."""
    settings = Settings()
    if settings.precision in PRECISIONS or settings.bf16 is not None:
        return False
    flags = cpu_flags() if flags is None else flags
    return "avx2" in flags and auto_precision(flags) == "f32"


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
