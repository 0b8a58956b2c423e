"""Emulate an AVX2-only CPU for ONNX Runtime, whose kernels (MLAS) ignore the variables that cap the others.

MLAS picks its kernels from ``cpuid``, with no switch like oneDNN's ``ONEDNN_MAX_CPU_ISA``.
:func:`avx2_env` builds (once, into bench/cache/) a copy of the installed onnxruntime package whose
extension module has each ``cpuid`` instruction overwritten with ``ud2``, and bench/cpuid_mask.c as an
``LD_PRELOAD`` library that catches the trap, runs the real cpuid and hides AVX-512, VNNI, bf16 and AMX.
bench/embed_speed.py runs its avx2 class with it. Needs gcc and objdump (binutils).

Evidence it takes effect: outputs of the same inputs are bit-identical between unmasked runs but differ
with the mask (f32 by rounding, int8 by up to 0.06 per dimension: the AVX2 u8s8 kernels saturate in 16
bits, VNNI's do not), and the build records how many cpuid sites were patched.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from qa_bot.embedding.cache import build_once, write_json

CACHE = Path(__file__).resolve().parent / "cache"
MASK_SOURCE = Path(__file__).with_name("cpuid_mask.c")
MARKER = "done.json"


def _patch_cpuid(library: Path) -> int:
    """Overwrite each ``cpuid`` (0F A2) in ``library``'s code with ``ud2`` (0F 0B); returns how many."""
    sections = re.findall(
        r"^\s*\d+\s+\S+\s+([0-9a-f]+)\s+([0-9a-f]+)\s+[0-9a-f]+\s+([0-9a-f]+)",
        subprocess.run(["objdump", "-h", str(library)], capture_output=True, text=True, check=True).stdout, re.M,
    )
    code = subprocess.run(["objdump", "-d", "--no-show-raw-insn", str(library)], capture_output=True, text=True,
                          check=True).stdout
    data = bytearray(library.read_bytes())
    patched = 0
    for address in (int(a, 16) for a in re.findall(r"^\s*([0-9a-f]+):\s+cpuid\s*$", code, re.M)):
        for size, vma, offset in ((int(s, 16), int(v, 16), int(o, 16)) for s, v, o in sections):
            if vma <= address < vma + size:
                at = offset + address - vma
                if data[at : at + 2] != b"\x0f\xa2":
                    raise RuntimeError(f"no cpuid at {address:#x} in {library}")
                data[at : at + 2] = b"\x0f\x0b"
                patched += 1
                break
    library.write_bytes(bytes(data))
    return patched


def avx2_env() -> dict[str, str]:
    """Environment for a worker whose onnxruntime sees an AVX2-only CPU (built once into bench/cache)."""
    import onnxruntime

    package = Path(onnxruntime.__file__).parent

    def build(tmp: Path) -> None:
        subprocess.run(["gcc", "-O2", "-shared", "-fPIC", "-o", str(tmp / "libcpuid_mask.so"), str(MASK_SOURCE)],
                       check=True)
        shutil.copytree(package, tmp / "site" / "onnxruntime")
        modules = sorted((tmp / "site" / "onnxruntime" / "capi").glob("onnxruntime_pybind11_state*.so"))
        write_json(tmp / MARKER, {"patched_cpuid": {m.name: _patch_cpuid(m) for m in modules}})

    target = build_once(CACHE / f"onnxruntime-{onnxruntime.__version__}-avx2", MARKER, build)
    return {"LD_PRELOAD": str(target / "libcpuid_mask.so"), "PYTHONPATH_PREPEND": str(target / "site")}
