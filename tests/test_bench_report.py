"""bench/report.py renders what the benchmarks wrote."""

from __future__ import annotations

from bench.report import reader_speed_section


def test_reader_speed_section_names_each_class_flags_and_precision():
    result = {"classes": {"avx2": {"flags_in_effect": ["avx2", "fma"], "embedder": "onnxruntime-int8",
                                   "runtimes": {"f32": {"reader_ms_p50": 76.9, "ask_ms_p50": 104.4, "best_span_as_f32": 1.0}}}},
              "meta": {"command": "python bench/reader_speed.py", "machine": {"cpu": "AMD EPYC", "cpu_flags": ["avx2"]}}}
    lines = reader_speed_section(result)
    assert lines[0].startswith("## ask() per CPU class")
    [row] = [line for line in lines if line.startswith("| avx2")]
    assert "avx2 (avx2 fma)" in row and "onnxruntime-int8" in row and "104.4" in row and "76.9" in row
    assert reader_speed_section(None) == [] and reader_speed_section({"classes": {}}) == []
