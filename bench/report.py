"""Collect bench/results/*.json into docs/benchmarks.md and docs/benchmarks-latency.png.

    python bench/report.py

Reads whatever exists of perf.json, peers.json, quality.json, embed_speed.json, scale.json, stores.json and
lifecycle.json (a missing file or key just leaves its section or cell out) and writes Markdown
tables plus a latency-against-index-size plot (matplotlib, Agg).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.datasets import CPU_FLAGS, RESULTS, ROOT  # noqa: E402

DOCS = ROOT / "docs"
DASH = "–"


def load(name: str, results: Path) -> Any:
    path = results / name
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        print(f"skipping {path}: {error}")
        return None


def get(data: Any, *keys: Any, default: Any = None) -> Any:
    """data[k1][k2]... or default when anything along the way is missing."""
    for key in keys:
        try:
            data = data[key]
        except (KeyError, IndexError, TypeError):
            return default
    return default if data is None else data


def fmt(value: Any, digits: int = 1, suffix: str = "") -> str:
    if value is None or value == "":
        return DASH
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}{suffix}"
    if isinstance(value, float):
        return f"{value:,.{digits}f}{suffix}"
    return f"{value}{suffix}"


def table(header: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return lines + [""]


def runs_section(data: dict[str, Any]) -> list[str]:
    """When, how and on which CPU each results file was made (its `meta`, see bench/datasets.write_result)."""
    rows = []
    for name, result in data.items():
        meta = get(result, "meta")
        if meta:
            machine = meta.get("machine", {})
            rows.append([f"{name}.json", meta.get("date", "?"), f"`{meta.get('command', '?')}`",
                         f"{machine.get('cpu', '?')}, {machine.get('cpus', '?')} cores",
                         " ".join(machine.get("cpu_flags", [])) or "none of " + " ".join(CPU_FLAGS)])
    if not rows:
        return []
    return ["## Runs behind these figures", "",
            "Every figure below comes from one of these files (committed in bench/results/).", ""] + table(
        ["results", "date", "command", "CPU", "CPU flags"], rows)


def machine_line(perf: Any, peers: Any) -> str:
    machine = get(perf, "machine") or get(peers, "machine") or {}
    cpus = machine.get("cpus", os.cpu_count())
    processor = machine.get("processor") or platform.processor() or platform.machine()
    python = machine.get("python", platform.python_version())
    line = f"{cpus} CPU cores ({processor}), Python {python}, Linux"
    start, end = machine.get("load_avg_at_start"), machine.get("load_avg_at_end")
    if start and end:
        line += f"; 1-minute load average {start[0]} at the start of the perf run, {end[0]} at its end"
    return line


# -- sections ------------------------------------------------------------------------------


def perf_section(perf: Any) -> list[str]:
    if not perf:
        return ["## Performance", "", "_No bench/results/perf.json: run `python bench/run_perf.py`._", ""]
    lines = ["## Performance (`bench/run_perf.py`)", "", f"Measured {get(perf, 'date', default='?')} "
             f"(`{get(perf, 'command', default='python bench/run_perf.py')}`, {fmt(get(perf, 'seconds'))} s).", ""]
    builds = get(perf, "build", default={})
    if builds:
        lines += ["### Index build", "", "Each build is a fresh index in its own process; peak RSS is that process's.", ""]
        rows = []
        for name, b in builds.items():
            rows.append([name, fmt(get(b, "documents")), fmt(get(b, "passages")), fmt(get(b, "model_load_s"), 2),
                         fmt(get(b, "pipeline_s"), 2), fmt(get(b, "embed_s"), 2), fmt(get(b, "other_s"), 2),
                         fmt(get(b, "embed_passages_per_s")), fmt(get(b, "pipeline_passages_per_s")),
                         fmt(get(b, "disk_mb"), 1), fmt(get(b, "peak_rss_mb"), 0)])
        lines += table(["corpus", "documents", "passages", "model load s", "whole pipeline s", "embedding s",
                        "rest s", "embedding passages/s", "pipeline passages/s", "index MB", "peak RSS MB"], rows)
    queries = get(perf, "query", default={})
    if queries:
        clients = get(perf, "concurrency", default=8)
        lines += ["### Query latency", "",
                  f"`retrieve(k=5)` and `ask()`; one client, then {clients} threads sharing one `QABot` "
                  "(latency per call, throughput over the whole run).", ""]
        rows = []
        for name, q in queries.items():
            for call in ("retrieve", "ask"):
                for mode in ("single", "concurrent"):
                    m = get(q, call, mode, default={})
                    if not m:
                        continue
                    rows.append([name, fmt(get(q, "passages")), f"`{call}()`", fmt(get(m, "clients")), fmt(get(m, "n")),
                                 fmt(get(m, "p50_ms")), fmt(get(m, "p95_ms")), fmt(get(m, "p99_ms")),
                                 fmt(get(m, "questions_per_s"))])
        lines += table(["index", "passages", "call", "clients", "questions", "p50 ms", "p95 ms", "p99 ms",
                        "questions/s"], rows)
        if "seed" in queries:
            lines += ["The seed questions include English ones: the first builds the pinyin index, and `ask()` embeds "
                      "the sentences of the top passages not embedded for an earlier question, hence the seed tail.", ""]
        rss = [f"{name} {fmt(get(q, 'peak_rss_mb'), 0)} MB" for name, q in queries.items() if get(q, "peak_rss_mb")]
        if rss:
            lines += [f"Peak RSS of the query process: {', '.join(rss)}.", ""]
    cold = get(perf, "cold_start", default={})
    if cold:
        b = get(cold, "breakdown", default={})
        lines += ["### Cold start", "", f"On the {get(cold, 'index', default='seed')} index, warm OS page cache, "
                  "median of the runs.", ""]
        lines += table(["what", "seconds"], [
            ["`qa-bot ask` process start → answer printed", fmt(get(cold, "cli_ask_first_output_s"), 2)],
            ["`qa-bot serve` process start → HTTP 200 on `/`", fmt(get(cold, "serve_page_200_s"), 2)],
            ["(`qa-bot serve` resident memory then, MB)", fmt(get(cold, "serve_rss_at_page_mb"), 0)],
            ["first answer in Python: imports", fmt(get(b, "import_s"), 2)],
            ["… index load (with checksums)", fmt(get(b, "index_load_s"), 3)],
            ["… model load", fmt(get(b, "model_load_s"), 2)],
            ["… the first `ask()`", fmt(get(b, "first_ask_s"), 3)],
        ])
    return lines


def peers_section(peers: Any, native: bool = False) -> list[str]:
    if not peers:
        if native:
            return []
        return ["## Peers", "", "_No bench/results/peers.json: run `python bench/peers.py`._", ""]
    systems = get(peers, "systems", default={})
    title = ("### The peers on their own encoder (`bench/peers.py --native-peers`)" if native
             else "## Against other retrieval stacks (`bench/peers.py`)")
    lines = [title, "",
             f"DRCD dev ({get(peers, 'documents', default='?')} "
             f"documents), {fmt(get(peers, 'questions'))} questions over the same {fmt(get(peers, 'passages'))} passages "
             f"(qa-bot's chunks), the same e5-small model and e5 prompts for every dense side, one run "
             f"({get(peers, 'date', default='?')}, `{get(peers, 'command', default='python bench/peers.py')}`, "
             f"{fmt(get(peers, 'seconds'))} s). Hit = a passage from the question's paragraph. Questions are run "
             "round-robin over the systems so load from other processes hits all alike.", ""]
    rows = []
    for name, s in systems.items():
        rows.append([f"**{name}**" if name == "qa-bot" else name, fmt(get(s, "recall_at_1"), 3),
                     fmt(get(s, "recall_at_5"), 3), fmt(get(s, "mrr_at_10"), 3), fmt(get(s, "build_s")),
                     fmt(get(s, "embed_s")), fmt(get(s, "build_without_embedding_s"), 2), fmt(get(s, "build_cpu_s")),
                     fmt(get(s, "query_p50_ms")), fmt(get(s, "query_p95_ms")), fmt(get(s, "query_cpu_p50_ms"))])
    lines += table(["system", "R@1", "R@5", "MRR@10", "build s", "of it embedding s", "build without embedding s",
                    "build CPU s", "query p50 ms", "query p95 ms", "query CPU p50 ms"], rows)
    r = get(peers, "ratios", default={})
    if r:
        lines += [
            f"- qa-bot p50 latency / fastest hybrid peer ({get(r, 'fastest_dense_peer', default='?')}): "
            f"{fmt(get(r, 'p50_vs_fastest_dense_peer'), 2)}× (p95 {fmt(get(r, 'p95_vs_fastest_dense_peer'), 2)}×, "
            f"CPU time p50 {fmt(get(r, 'cpu_p50_vs_fastest_dense_peer'), 2)}×); "
            f"/ fastest peer overall ({get(r, 'fastest_peer', default='?')}): {fmt(get(r, 'p50_vs_fastest_peer'), 2)}×.",
            f"- qa-bot R@1 minus the most accurate peer ({get(r, 'most_accurate_peer', default='?')}): "
            f"{fmt(get(r, 'recall_at_1_minus_most_accurate_peer'), 3)}; p50 latency ratio to it "
            f"{fmt(get(r, 'p50_vs_most_accurate_peer'), 2)}×.",
            "",
        ]
    notes = [] if native else [f"- {name}: {get(s, 'note')}" for name, s in systems.items() if get(s, "note")]
    encoder = get(peers, "peer_encoder", default="")
    if encoder.startswith("qa-bot"):
        notes.append(f"- Encoder: every dense side embeds through qa-bot's `Embedder` (backend "
                     f"{get(peers, 'qa_bot_backend', default='?')}); the passages are embedded once, in qa-bot's build "
                     "(the embedding column), and the peers index those same vectors, so their build times are their "
                     "index structures. Query vectors are computed per query by every system.")
    elif encoder:
        notes.append(f"- Encoder: qa-bot's `Embedder` (backend {get(peers, 'qa_bot_backend', default='?')}); "
                     f"the peers: {encoder}, each embedding the passages in its own build.")
    documents = f"the {get(peers, 'documents', default='?')}"
    lines += notes + [
        f"- Build times leave model loading out; qa-bot's includes reading, cleaning and chunking {documents} "
        "documents and saving the index with fsync, the peers start from the finished chunks. Builds run one after "
        "another, so load from other processes can favour one of them: the CPU seconds (all threads of the "
        "process) are the steadier comparison.",
        "- Query CPU = CPU time of the whole process during the query (all threads), which other processes "
        "disturb far less than wall time.",
        "",
    ]
    return lines


def quality_section(quality: Any) -> list[str]:
    if not quality:
        return []
    rows = []
    for name in ("seed", "seed_probe", "drcd", "drcd_simplified"):
        o = get(quality, name, "overall")
        if not o:
            continue
        rows.append([name, fmt(get(quality, name, "questions")), fmt(get(o, "recall@1"), 3), fmt(get(o, "recall@5"), 3),
                     fmt(get(o, "mrr@10"), 3), fmt(get(o, "top1_holds_answer"), 3), fmt(get(o, "answer_hit"), 3),
                     fmt(get(o, "no_answer_rate"), 3), fmt(get(o, "retrieve_ms_p50_p95", 0)),
                     fmt(get(o, "ask_ms_p50_p95", 0))])
    if not rows:
        return []
    return ["## Quality (`bench/run_quality.py`)", "", "Details: [quality.md](quality.md).", ""] + table(
        ["set", "questions", "R@1", "R@5", "MRR@10", "top-1 holds answer", "answer-hit", "unanswerable refused (off- + near-topic)",
         "retrieve p50 ms", "ask p50 ms"], rows)


README = ROOT / "README.md"
SUMMARY_START, SUMMARY_END = "<!-- bench:summary", "<!-- /bench:summary -->"


def readme_summary(data: dict[str, Any]) -> list[str]:
    """The README's figures: quality per set and where the speed tables are, from the results files only."""
    quality = data["quality"]
    rows = []
    for name, label in (("drcd", "DRCD dev (Traditional)"), ("drcd_simplified", "DRCD dev, questions in Simplified"),
                        ("seed", "Seed article, own questions"), ("seed_probe", "Seed article, outside-style probe")):
        o = get(quality, name, "overall")
        if o:
            rows.append([f"{label}, {fmt(get(quality, name, 'questions'))} questions",
                         f"{fmt(get(o, 'recall@1'), 3)} / {fmt(get(o, 'recall@5'), 3)} / {fmt(get(o, 'mrr@10'), 3)}",
                         fmt(get(o, "top1_holds_answer"), 3), fmt(get(o, "answer_hit"), 3),
                         fmt(get(o, "retrieve_ms_p50_p95", 0)), fmt(get(o, "ask_ms_p50_p95", 0))])
    if not rows:
        return ["_No results yet: run `make bench`._"]
    meta = get(quality, "meta", default={})
    flags = " ".join(get(meta, "machine", "cpu_flags", default=[])) or "?"
    return [f"From bench/results/quality.json ({get(meta, 'date', default='?')}, CPU flags: {flags}):", ""] + table(
        ["set", "R@1 / R@5 / MRR@10", "top passage holds the answer", "answer-hit", "retrieve p50 ms", "ask p50 ms"],
        rows) + ["DRCD dev's answer-hit includes the articles the answer model and the passage reader were trained on "
                 "(their train split, 60 %): the held-out answer figures are the report split's in docs/quality.md.",
                 ""] + seed_caveat(quality) + [
        "Speed, scale, peers and stores: [docs/benchmarks.md](docs/benchmarks.md), every figure with its CPU."]


def seed_caveat(quality: dict[str, Any]) -> list[str]:
    """What the seed row does not say: its questions were seen while the answer layer was designed, and how
    many of its unanswerable questions (off-topic, near-topic) are refused."""
    refused = []
    for kind in ("offtopic", "near-topic"):
        group = get(quality, "seed", "by_kind", kind, default={})
        total, rate = get(group, "unanswerable"), get(group, "no_answer_rate")
        if total and rate is not None:
            refused.append(f"{round(rate * total)} of {total} {kind.replace('offtopic', 'off-topic')}")
    caveat = ("The answer model for Chinese questions is trained and its thresholds chosen on DRCD / CMRC splits "
              "only, but the seed questions tuned the hand-set rules that still answer English questions and "
              "follow-ups, and were looked at while its features were designed: its row is not a held-out measure.")
    if refused:
        caveat += (f" Of its unanswerable questions, {' and '.join(refused)} ones (about the article's subject "
                   "but not answered in it) are refused (`found=False`); the others get an answer.")
    probe = get(quality, "seed_probe", "overall", default={})
    if probe:
        caveat += (" The outside-style probe (tests/data/seed_probe.jsonl: other phrasings, unanswerable questions of "
                   "other kinds; written to measure, never tuned on) is the nearer guide to questions we did not write: "
                   f"{round(probe['no_answer_rate'] * probe['unanswerable'])} of its {probe['unanswerable']} "
                   "unanswerable questions are refused.")
    return [caveat, ""]


def write_readme_summary(lines: list[str], readme: Path = README) -> None:
    text = readme.read_text(encoding="utf-8")
    start = text.index(SUMMARY_START)
    start = text.index("\n", start) + 1
    end = text.index(SUMMARY_END)
    readme.write_text(text[:start] + "\n".join(lines).rstrip() + "\n" + text[end:], encoding="utf-8")


def embed_rows(embed: Any) -> list[dict]:
    if isinstance(embed, list):
        return [row for row in embed if isinstance(row, dict)]
    if isinstance(embed, dict):
        for key in ("variants", "rows", "results"):
            if isinstance(embed.get(key), list):
                return [row for row in embed[key] if isinstance(row, dict)]
    return []


def embed_section(embed: Any, title: str = "Embedding speed") -> list[str]:
    rows = embed_rows(embed)
    if not rows:
        return []
    out = []
    for r in rows:
        flags = " ".join(r.get("cpu_flags") or []) or "?"
        out.append([f"{r.get('cpu_class', 'native')} ({flags})", r.get("variant") or r.get("name", DASH),
                    fmt(r.get("passages_per_s")), fmt(r.get("ratio_to_fp32", r.get("ratio")), 2, "×"),
                    fmt(r.get("cosine_min", r.get("cos_min")), 6), fmt(r.get("query_p50_ms")),
                    fmt(r.get("query_p95_ms"))])
    meta = get(embed, "meta", default={})
    return [f"## {title} (`bench/embed_speed.py`)", "",
            f"{get(meta, 'date', default='?')}, `{get(meta, 'command', default='python bench/embed_speed.py')}`. "
            "Each CPU class has its own float32 baseline, run in the same repeats; `avx512` and `avx2` are this "
            "CPU with the math libraries capped to those instruction sets (ONEDNN_MAX_CPU_ISA, "
            "MKL_ENABLE_INSTRUCTIONS, ATEN_CPU_CAPABILITY: see the script), and the flags column lists the flags "
            "in effect. ONNX Runtime's kernels ignore those variables: the avx2 class also hides AVX-512 from its "
            "cpuid (bench/cpuid_mask.py). The default per class (qa_bot/embedding/precision.py): OpenVINO bf16 with "
            "native bf16, OpenVINO int8 with AVX-512 or AVX-VNNI, ONNX Runtime int8 on AVX2 only (the `default` row "
            "names the runtime that ran; before issue 15's second round it was OpenVINO f32). 1-minute load average "
            f"{fmt(get(embed, 'machine', 'loadavg_before', 0), 2)} at the start, "
            f"{fmt(get(embed, 'machine', 'loadavg_after', 0), 2)} at the end (other jobs share the 2 cores): "
            "compare within a class and repeat.", ""] + table(
        ["CPU class (flags)", "variant", "passages/s", "vs fp32 (same class and repeat)", "cosine min to fp32",
         "query p50 ms", "query p95 ms"], out)


def kernels_section(result: Any) -> list[str]:
    rows = get(result, "results", default=[])
    if not rows:
        return []
    out = [[r["cpu_class"], r["precision"],
            "; ".join(f"{k} {fmt(v)} ms" for k, v in (r.get("matrix_kernels_ms") or {}).items()) or
            "fails: " + [line for line in (r.get("error") or "?").splitlines() if line.strip()][-1][:90],
            fmt(r.get("all_nodes_ms"))] for r in rows]
    return ["### Kernels per CPU class (`bench/ov_kernels.py`)", "",
            f"{get(result, 'meta', 'date', default='?')}: OpenVINO's matrix-product kernels for one batch of 8 x 128 "
            "tokens (after a warm-up run), summed node times. The cap changes the kernels (avx512 -> avx2, "
            "bf16 -> a generic GEMM), so the emulation is real; OpenVINO's own capability report still says BF16.",
            ""] + table(["CPU class", "precision", "matrix kernels (node time)", "all nodes ms"], out)


def precision_section(result: Any, title: str = "Precision and quality") -> list[str]:
    rows = get(result, "results", default=[])
    if not rows:
        return []
    meta = get(result, "meta", default={})
    settings = get(result, "settings", default={})
    flags = " ".join(settings.get("cpu_flags") or get(meta, "machine", "cpu_flags", default=[])) or "?"
    out = [[r["precision"], f"{fmt(get(r, 'cosine_to_f32', 'passages_min'), 5)} / "
            f"{fmt(get(r, 'cosine_to_f32', 'queries_min'), 5)}", fmt(get(r, "cosine_to_f32", "mean"), 5),
            fmt(get(r, "drcd", "recall@1"), 4), fmt(get(r, "drcd", "recall@5"), 4), fmt(get(r, "drcd", "answer_hit"), 4),
            fmt(get(r, "seed", "top1_holds_answer"), 4), fmt(get(r, "seed", "answer_hit"), 4),
            fmt(get(r, "seed", "no_answer_rate"), 4)] for r in rows]
    cross = [[c["index"], c["queries"], fmt(c["recall@1"], 4), fmt(c["recall@5"], 4)]
             for c in get(result, "cross", default=[])]
    return [f"## {title} (`bench/precision_quality.py`)", "",
            f"{get(meta, 'date', default='?')}, CPU flags: {flags}. Cosine to float32 (OpenVINO f32, within 0.99999 of sentence-transformers "
            f"float32) over "
            f"{fmt(get(settings, 'cosine_texts', 'passages'))} DRCD passages / "
            f"{fmt(get(settings, 'cosine_texts', 'queries'))} questions; DRCD dev index ({get(settings, 'drcd_documents', default='all')} "
            "documents) built in each precision, "
            f"{fmt(get(settings, 'drcd_questions'))} questions through `qa_bot.evaluate`; seed article questions.", ""
            ] + table(["precision", "cosine min (passages / queries)", "cosine mean", "DRCD R@1", "DRCD R@5",
                       "DRCD answer-hit", "seed top-1 holds answer", "seed answer-hit", "seed refused"], out) + [
            "An index built in one precision, queried in another (the same weights: the index records the model, "
            "and every precision of it may query it):", ""] + table(["index built in", "queries in", "R@1", "R@5"], cross)


def fusion_avx2_section(result: Any) -> list[str]:
    """Retrieval per check set with each AVX2-only precision, dense alone and fused (bench/run_fusion.py --avx2)."""
    sets = get(result, "sets", default={})
    if not sets:
        return []
    meta = get(result, "meta", default={})
    names = list(next(iter(sets.values())))
    rows = [[name, mode, *(f"{fmt(get(sets, p, name, mode, 'recall@1'), 4)} / {fmt(get(sets, p, name, mode, 'recall@5'), 4)}"
                           for p in sets)] for name in names for mode in ("dense", "fused")]
    return [f"## Retrieval on AVX2 only, per precision (`{get(meta, 'command', default='bench/run_fusion.py --avx2')}`)", "",
            f"{get(meta, 'date', default='?')}, flags in effect avx2 fma (emulated on "
            f"{' '.join(get(meta, 'machine', 'cpu_flags', default=[]))}). R@1 / R@5 of every check set of "
            "bench/run_fusion.py, each precision with its own index; *fused* is what qa-bot retrieves.", ""
            ] + table(["set", "mode", *sets], rows)


def reader_speed_section(result: Any) -> list[str]:
    """ask() and the passage reader per CPU class and reader precision (bench/reader_speed.py)."""
    classes = get(result, "classes", default={})
    if not classes:
        return []
    meta = get(result, "meta", default={})
    rows = [[f"{name} ({' '.join(part.get('flags_in_effect', []))})", part.get("embedder", "?"), precision,
             fmt(r.get("reader_ms_p50")), fmt(r.get("reader_ms_p95")), fmt(r.get("ask_ms_p50")), fmt(r.get("ask_ms_p95")),
             fmt(r.get("best_span_as_f32"), 3)]
            for name, part in classes.items() for precision, r in part.get("runtimes", {}).items()]
    return [f"## ask() per CPU class (`{get(meta, 'command', default='bench/reader_speed.py')}`)", "",
            f"{get(meta, 'date', default='?')}, on {get(meta, 'machine', 'cpu', default='?')} "
            f"({' '.join(get(meta, 'machine', 'cpu_flags', default=[]))}); avx2 is this CPU emulating an AVX2-only one "
            "(as embed_speed.py). The seed questions, each class in a process of its own, the reader's precisions taking "
            "turns round by round: the reader alone on the top passage, then QABot.ask(). The reader runs bf16 only "
            "with native bf16, float32 elsewhere.", ""
            ] + table(["class (flags in effect)", "embedder", "reader", "reader p50 ms", "reader p95 ms", "ask p50 ms",
                       "ask p95 ms", "best span as f32"], rows)


def scale_section(scale: Any) -> list[str]:
    rows = get(scale, "rows", default=[])
    if not rows:
        return []
    out = [[fmt(get(r, "passages")), get(r, "index", default=DASH), fmt(get(r, "build_s")), fmt(get(r, "disk_mb")),
            fmt(get(r, "rss_mb")), fmt(get(r, "anon_mb")), fmt(get(r, "load_s"), 2), fmt(get(r, "retrieve_p50_ms")),
            fmt(get(r, "retrieve_p95_ms")), fmt(get(r, "retrieve_p99_ms")), fmt(get(r, "search_p50_ms")),
            fmt(get(r, "recall_at_10"), 3)]
           for r in sorted(rows, key=lambda r: (get(r, "passages", default=0), str(get(r, "index", default=""))))]
    return ["## Scale (`bench/scale.py`)", "",
            "Synthetic passages (clustered random vectors; passages made of real DRCD sentences); build = FAISS "
            "+ BM25 + save, without embedding. RSS counts the pages of the memory-mapped index files that the "
            "queries touched (page cache, shared and evictable); own MB is RSS without file-backed pages. "
            "retrieve() includes encoding the question; search is the rest. recall@10: the FAISS index "
            "against exact search.", "",
            "![retrieve() latency against index size](benchmarks-latency.png)", ""] + table(
        ["passages", "index", "build s", "disk MB", "RSS MB", "own MB", "load s", "retrieve p50 ms", "p95 ms",
         "p99 ms", "search p50 ms", "recall@10"], out)


def stores_section(stores: Any) -> list[str]:
    rows = get(stores, "stores", default={})
    if not rows:
        return []
    out = [[name, fmt(get(r, "recall_at_1"), 3), fmt(get(r, "recall_at_5"), 3), fmt(get(r, "mrr_at_10"), 3),
            fmt(get(r, "retrieve_p50_ms")), fmt(get(r, "retrieve_p95_ms")), fmt(get(r, "write_s"))]
           for name, r in rows.items()]
    return ["## FAISS store vs Milvus store (`bench/stores.py`)", "",
            f"DRCD dev, {fmt(get(stores, 'questions'))} Traditional questions, the same {fmt(get(rows, 'faiss', 'passages'))} "
            "passages and embeddings in both (Milvus: Milvus Lite in the process). Write: storing the embedded "
            "passages (no embedding).", ""] + table(
        ["store", "R@1", "R@5", "MRR@10", "retrieve p50 ms", "p95 ms", "write s"], out)


def lifecycle_section(lifecycle: Any) -> list[str]:
    if not isinstance(lifecycle, dict) or not lifecycle:
        return []
    rows = [[label, fmt(get(r, "seconds"), 2), fmt(get(r, "embedded")), fmt(get(r, "passages"))]
            for label, r in lifecycle.items() if isinstance(r, dict)]
    return ["## Index lifecycle on DRCD (`bench/run_lifecycle.py`)", ""] + table(
        ["operation", "seconds", "passages embedded", "passages after"], rows)


# -- plot --------------------------------------------------------------------------------


def plot(scale: Any, perf: Any, out: Path) -> bool:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series: dict[str, list[tuple[float, float, float]]] = {}
    for r in get(scale, "rows", default=[]):
        n, p50, p95 = get(r, "passages"), get(r, "retrieve_p50_ms"), get(r, "retrieve_p95_ms")
        if n and p50 is not None:
            series.setdefault(f"{get(r, 'index', default='index')} (scale.py)", []).append((n, p50, p95))
    title = "qa-bot retrieve() latency against index size"
    for q in (get(perf, "query", default={}) or {}).values():  # the seed and DRCD indexes of run_perf.py
        n, m = get(q, "passages"), get(q, "retrieve", "single", default={})
        if n and get(m, "p50_ms") is not None:
            series.setdefault("seed, DRCD (run_perf.py)", []).append((n, m["p50_ms"], get(m, "p95_ms")))
    if not series:
        return False
    fig, ax = plt.subplots(figsize=(7.5, 4.5), dpi=120)
    for index_kind, points in sorted(series.items()):
        points.sort()
        xs = [p[0] for p in points]
        line = ax.plot(xs, [p[1] for p in points], marker="o", label=f"{index_kind} p50")[0]
        p95 = [(p[0], p[2]) for p in points if p[2] is not None]
        if p95:
            ax.plot([p[0] for p in p95], [p[1] for p in p95], marker="s", linestyle="--", color=line.get_color(),
                    alpha=0.7, label=f"{index_kind} p95")
    ax.set_xscale("log")
    if any(p[2] and p[2] / max(p[1], 1e-9) > 20 for pts in series.values() for p in pts):
        ax.set_yscale("log")
    ax.set_xlabel("passages in the index (log scale)")
    ax.set_ylabel("latency per question, ms")
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--out", type=Path, default=DOCS / "benchmarks.md")
    parser.add_argument("--plot", type=Path, default=DOCS / "benchmarks-latency.png")
    args = parser.parse_args()
    data = {name: load(f"{name}.json", args.results)
            for name in ("perf", "peers", "quality", "embed_speed", "embed_speed_avx2", "ov_kernels", "precision_quality",
                         "precision_quality_avx2", "fusion_avx2", "reader_speed", "scale", "lifecycle", "stores")}
    found = [name for name, value in data.items() if value is not None]
    perf, peers = data["perf"], data["peers"]
    lines = [
        "# Benchmarks",
        "",
        f"Generated by `python bench/report.py` on {time.strftime('%Y-%m-%d')} from bench/results/ "
        f"({', '.join(f'{n}.json' for n in found) or 'no results yet'}).",
        "",
        f"Machine: {machine_line(perf, peers)}.",
        "",
        f"**Noise.** This is a shared {os.cpu_count()}-core machine and other jobs may run during a benchmark, so absolute "
        "times move by tens of percent between runs. Compare figures from the same run (the peers table, "
        "single vs concurrent clients), and prefer the ratios.",
        "",
        "Reproduce: `make bench` (every script below, then this page; `make bench-quick` for a few minutes). "
        "Each script writes bench/results/<name>.json:",
        "",
        "```bash",
        "export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1",
        "python bench/embed_speed.py     # embedding backends per CPU class -> embed_speed.json",
        "python bench/embed_speed.py --classes avx2,native --variants openvino-f32 --passages 48 --queries 30 "
        "--out bench/results/embed_speed_avx2.json",
        "python bench/ov_kernels.py      # OpenVINO kernels per CPU class -> ov_kernels.json",
        "python bench/precision_quality.py  # bf16 / int8 / f32: cosine, DRCD recall -> precision_quality.json",
        "python bench/precision_quality.py --avx2 --docs 100 --quick  # AVX2 only -> precision_quality_avx2.json",
        "python bench/run_quality.py     # recall and answers -> quality.json, docs/quality.md",
        "python bench/run_lifecycle.py   # incremental updates -> lifecycle.json",
        "python bench/run_perf.py        # build, query latency, concurrency, cold start -> perf.json",
        "python bench/reader_speed.py    # ask() and the passage reader per CPU class -> reader_speed.json",
        "python bench/peers.py           # qa-bot vs txtai, LangChain ensemble, BM25 on DRCD -> peers.json",
        "python bench/stores.py          # FAISS vs Milvus store on DRCD -> stores.json",
        "python bench/scale.py           # 10k, 100k, 1M passages -> scale.json",
        "python bench/report.py          # this page and benchmarks-latency.png",
        "```",
        "",
    ]
    lines += runs_section({**data, "peers-native": load("peers-native.json", args.results)})
    lines += peers_section(peers)
    lines += peers_section(load("peers-native.json", args.results), native=True)
    lines += perf_section(perf)
    lines += quality_section(data["quality"])
    lines += embed_section(data["embed_speed"])
    lines += embed_section(data["embed_speed_avx2"], "AVX2 only: ONNX Runtime int8, the default there")
    lines += kernels_section(data["ov_kernels"])
    lines += precision_section(data["precision_quality"])
    lines += precision_section(data["precision_quality_avx2"], "Precision and quality on AVX2 only (`--avx2`)")
    lines += fusion_avx2_section(data["fusion_avx2"])
    lines += reader_speed_section(data["reader_speed"])
    lines += scale_section(data["scale"])
    lines += stores_section(data["stores"])
    lines += lifecycle_section(data["lifecycle"])
    plotted = plot(data["scale"], perf, args.plot)
    if plotted and not get(data["scale"], "rows"):
        lines += ["![retrieve() latency, seed vs DRCD](benchmarks-latency.png)", ""]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines).rstrip() + "\n", encoding="utf-8")
    write_readme_summary(readme_summary(data))
    print(f"wrote {args.out}" + (f" and {args.plot}" if plotted else " (no data to plot)"))


if __name__ == "__main__":
    main()
