"""Performance of qa-bot: index build, query latency (one client and 8 concurrent), cold start.

    python bench/run_perf.py [--quick]

Each measurement runs in its own child process (`--child ...`), so every peak-RSS figure is that
process's own (resource.getrusage). Indexes are built fresh under bench/results/perf-*-index.

- build: the seed corpus (seeds/) and the DRCD dev documents; whole pipeline (load, clean,
  chunk, embed, BM25, save) and the embedding part alone (passages/s), model loading apart.
- query: `retrieve(k=5)` and `ask()` on the seed questions and a DRCD sample, one client, then
  8 threads sharing one QABot (throughput in questions/s and latency percentiles).
- cold start: process start to first answer (`qa-bot ask`), and to the first answer with the
  import / index / model / question breakdown; `qa-bot serve` start to HTTP 200 on its page.

The machine has 2 cores and other jobs may run: compare figures from the same run.
Writes bench/results/perf.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CONCURRENCY = 8
COLD_QUESTION = "交流會在哪裡召開？"
QUICK_DRCD_DOCUMENTS = 100  # --quick indexes this many DRCD documents (of 383), so it fits in minutes


def drcd_subset(documents: int | None, seed: int = 0) -> tuple[Path, set[str] | None]:
    """The DRCD documents folder, or a folder with a random sample of its documents (and their names)."""
    import random

    from bench.datasets import DRCD, RESULTS

    source = DRCD / "docs"
    if documents is None:
        return source, None
    names = sorted(random.Random(seed).sample(sorted(p.name for p in source.glob("*.txt")), documents))
    folder = RESULTS / f"drcd-docs-{documents}"
    if {p.name for p in folder.glob("*.txt")} != set(names):
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        for name in names:
            shutil.copy(source / name, folder / name)
    return folder, set(names)


def peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # kB on Linux


def percentiles(seconds: list[float]) -> dict:
    import numpy as np

    if not seconds:
        return {}
    ms = np.asarray(seconds) * 1000
    p50, p95, p99 = np.percentile(ms, [50, 95, 99])
    return {"n": len(ms), "p50_ms": round(float(p50), 1), "p95_ms": round(float(p95), 1),
            "p99_ms": round(float(p99), 1), "mean_ms": round(float(ms.mean()), 1)}


def dir_mb(path: Path) -> float:
    return round(sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20, 2)


# -- children ------------------------------------------------------------------------


def child_build(index: Path, docs: Path) -> dict:
    """Build a fresh index; time the whole pipeline and the embedding inside it."""
    started = time.perf_counter()
    from bench.datasets import TimedEmbedder
    from qa_bot import QABot
    from qa_bot.embedding import load_embedder

    imported = time.perf_counter()
    embedder = TimedEmbedder(load_embedder())
    embedder.encode_query("warm up")
    loaded = time.perf_counter()
    shutil.rmtree(index, ignore_errors=True)
    bot = QABot(index_dir=index, docs_dir=docs, embedder=embedder)
    cpu_started = time.process_time()
    report = bot.rebuild()
    built = time.perf_counter()
    cpu_s = time.process_time() - cpu_started
    pipeline_s = built - loaded
    return {
        "documents": len(report.added),
        "passages": report.passages,
        "embedded": embedder.embedded,
        "import_s": round(imported - started, 2),
        "model_load_s": round(loaded - imported, 2),
        "pipeline_s": round(pipeline_s, 2),
        "pipeline_cpu_s": round(cpu_s, 2),
        "embed_s": round(embedder.embed_s, 2),
        "other_s": round(pipeline_s - embedder.embed_s, 2),
        "embed_passages_per_s": round(embedder.embedded / embedder.embed_s, 1) if embedder.embed_s else None,
        "pipeline_passages_per_s": round(report.passages / pipeline_s, 1) if pipeline_s else None,
        "process_s": round(built - started, 2),
        "disk_mb": dir_mb(index),
        "peak_rss_mb": peak_rss_mb(),
    }


def _run_concurrent(call, questions: list[str], clients: int) -> dict:
    """`clients` threads take questions from a shared list; each call is timed."""
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    position = 0

    def worker() -> None:
        nonlocal position
        while True:
            with lock:
                if position >= len(questions):
                    return
                question = questions[position]
                position += 1
            begun = time.perf_counter()
            try:
                call(question)
            except Exception as error:  # noqa: BLE001 - reported, not fatal
                errors.append(repr(error))
                continue
            elapsed = time.perf_counter() - begun
            with lock:
                latencies.append(elapsed)

    started = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    return {"clients": clients, "wall_s": round(wall, 2), "questions_per_s": round(len(latencies) / wall, 1),
            "errors": len(errors), **percentiles(latencies)}


def child_query(index: Path, docs: Path, questions_file: Path) -> dict:
    """Latency of retrieve() and ask(): one client, then CONCURRENCY threads sharing one QABot."""
    from qa_bot import QABot

    questions = [json.loads(line)["question"] for line in questions_file.read_text(encoding="utf-8").splitlines()
                 if line.strip()]
    started = time.perf_counter()
    bot = QABot(index_dir=index, docs_dir=docs)
    first = bot.ask(questions[0])  # loads the index and the model
    first_s = time.perf_counter() - started
    bot.retrieve(questions[-1], k=5)
    result: dict = {"questions": len(questions), "passages": len(bot.store.chunks),
                    "first_ask_with_loading_s": round(first_s, 2), "first_found": first.found}
    for name, call in (("retrieve", lambda q: bot.retrieve(q, k=5)), ("ask", bot.ask)):
        single, cpu = [], []
        begun = time.perf_counter()
        for question in questions:
            t0, c0 = time.perf_counter(), time.process_time()
            call(question)
            single.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
        wall = time.perf_counter() - begun
        result[name] = {"single": {"clients": 1, "wall_s": round(wall, 2),
                                   "questions_per_s": round(len(questions) / wall, 1), **percentiles(single),
                                   "cpu_p50_ms": percentiles(cpu)["p50_ms"]},
                        "concurrent": _run_concurrent(call, questions, CONCURRENCY)}
    result["peak_rss_mb"] = peak_rss_mb()
    return result


def child_first_answer(index: Path, docs: Path) -> dict:
    """Breakdown of a cold first answer: imports, index load, model load, the question itself."""
    begun = time.perf_counter()
    from qa_bot import QABot

    imported = time.perf_counter()
    bot = QABot(index_dir=index, docs_dir=docs)
    bot.store  # noqa: B018 - loads and verifies the index
    indexed = time.perf_counter()
    bot.embedder  # noqa: B018 - loads the model
    modelled = time.perf_counter()
    answer = bot.ask(COLD_QUESTION)
    answered = time.perf_counter()
    return {"import_s": round(imported - begun, 2), "index_load_s": round(indexed - imported, 3),
            "model_load_s": round(modelled - indexed, 2), "first_ask_s": round(answered - modelled, 3),
            "found": answer.found, "peak_rss_mb": peak_rss_mb()}


CHILDREN = {"build": child_build, "query": child_query, "first-answer": child_first_answer}


def child_main(argv: list[str]) -> None:
    kind, args = argv[0], [Path(a) for a in argv[1:]]
    result = CHILDREN[kind](*args)
    print("RESULT " + json.dumps(result, ensure_ascii=False), flush=True)


# -- parent ----------------------------------------------------------------------------


def child_env() -> dict:
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", GRADIO_ANALYTICS_ENABLED="False",
               TOKENIZERS_PARALLELISM="false")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")]))
    return env


def run_child(*args: str | Path) -> dict:
    started = time.perf_counter()
    completed = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--child", *map(str, args)],
        capture_output=True, text=True, env=child_env(), cwd=ROOT,
    )
    lines = [line for line in completed.stdout.splitlines() if line.startswith("RESULT ")]
    if completed.returncode != 0 or not lines:
        raise SystemExit(f"child {args} failed ({completed.returncode}):\n{completed.stderr[-3000:]}")
    result = json.loads(lines[-1][len("RESULT "):])
    result["child_wall_s"] = round(time.perf_counter() - started, 2)
    return result


def qa_bot_command() -> list[str]:
    script = Path(sys.executable).with_name("qa-bot")
    return [str(script)] if script.exists() else [sys.executable, "-m", "qa_bot.cli"]


def cold_cli(index: Path, docs: Path) -> dict:
    """Wall time from starting `qa-bot ask` to its first output line, and to its exit."""
    started = time.perf_counter()
    process = subprocess.Popen([*qa_bot_command(), "ask", COLD_QUESTION, "--index", str(index), "--docs", str(docs)],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=child_env(), cwd=ROOT)
    first_line = None
    for line in process.stdout:
        if line.strip() and first_line is None:
            first_line = time.perf_counter() - started
    code = process.wait()
    return {"first_output_s": round(first_line, 2) if first_line else None,
            "exit_s": round(time.perf_counter() - started, 2), "returncode": code}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cold_serve(index: Path, docs: Path, timeout: float = 120.0) -> dict:
    """Start `qa-bot serve` and poll http://127.0.0.1:<port>/ until it answers 200."""
    port = free_port()
    started = time.perf_counter()
    process = subprocess.Popen(
        [*qa_bot_command(), "serve", "--index", str(index), "--docs", str(docs), "--host", "127.0.0.1",
         "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=child_env(), cwd=ROOT,
    )
    served = None
    try:
        while time.perf_counter() - started < timeout and process.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as response:
                    if response.status == 200:
                        served = time.perf_counter() - started
                        break
            except OSError:
                time.sleep(0.05)
        rss_mb = serving_rss_mb(process.pid) if served else None
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return {"page_200_s": round(served, 2) if served else None, "rss_at_page_mb": rss_mb, "port": port}


def serving_rss_mb(pid: int) -> float | None:
    """Resident memory of the server (and any children) when its page is first served (psutil)."""
    try:
        import psutil
    except ImportError:
        return None
    try:
        process = psutil.Process(pid)
        total = process.memory_info().rss + sum(c.memory_info().rss for c in process.children(recursive=True))
    except psutil.Error:
        return None
    return round(total / 2**20, 1)


def write_questions(path: Path, items: list[dict]) -> Path:
    path.write_text("".join(json.dumps({"question": i["question"]}, ensure_ascii=False) + "\n" for i in items),
                    encoding="utf-8")
    return path


def median(values: list[float]) -> float | None:
    values = sorted(v for v in values if v is not None)
    return values[len(values) // 2] if values else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer questions and repeats (under 3 minutes)")
    parser.add_argument("--drcd-questions", type=int, default=None, help="DRCD questions for latency (default 400, quick 150)")
    parser.add_argument("--child", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child_main(args.child)
        return

    from bench.datasets import RESULTS, SEED_QUESTIONS, SEEDS, drcd_questions, read_jsonl, write_result

    run_started = time.perf_counter()
    RESULTS.mkdir(parents=True, exist_ok=True)
    drcd_n = args.drcd_questions or (150 if args.quick else 400)
    repeats = 1 if args.quick else 3
    seed_items = read_jsonl(SEED_QUESTIONS)
    drcd_docs, drcd_names = drcd_subset(QUICK_DRCD_DOCUMENTS if args.quick else None)
    drcd_items = [q for q in drcd_questions() if drcd_names is None or q["source"] in drcd_names]
    drcd_items = random.Random(0).sample(drcd_items, min(drcd_n, len(drcd_items)))
    corpora = {
        "seed": {"docs": SEEDS, "index": RESULTS / "perf-seed-index",
                 "questions": write_questions(RESULTS / "perf-seed-questions.jsonl",
                                              seed_items * (1 if args.quick else 2))},
        "drcd": {"docs": drcd_docs, "index": RESULTS / "perf-drcd-index",
                 "questions": write_questions(RESULTS / "perf-drcd-questions.jsonl", drcd_items)},
    }
    result: dict = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "command": "python bench/run_perf.py" + (" --quick" if args.quick else ""),
        "machine": {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine(),
                    "python": platform.python_version(), "load_avg_at_start": [round(x, 2) for x in os.getloadavg()]},
        "concurrency": CONCURRENCY,
        "drcd_documents": "all" if drcd_names is None else len(drcd_names),
        "build": {}, "query": {},
    }
    for name, corpus in corpora.items():
        result["build"][name] = run_child("build", corpus["index"], corpus["docs"])
        print(f"build {name}: {result['build'][name]}", flush=True)
    for name, corpus in corpora.items():
        result["query"][name] = run_child("query", corpus["index"], corpus["docs"], corpus["questions"])
        print(f"query {name}: {json.dumps(result['query'][name])}", flush=True)

    seed = corpora["seed"]
    cli_runs = [cold_cli(seed["index"], seed["docs"]) for _ in range(repeats)]
    serve_runs = [cold_serve(seed["index"], seed["docs"]) for _ in range(repeats)]
    result["cold_start"] = {
        "index": "seed",
        "cli_ask_runs": cli_runs,
        "cli_ask_first_output_s": median([r["first_output_s"] for r in cli_runs]),
        "breakdown": run_child("first-answer", seed["index"], seed["docs"]),
        "serve_runs": serve_runs,
        "serve_page_200_s": median([r["page_200_s"] for r in serve_runs]),
        "serve_rss_at_page_mb": median([r["rss_at_page_mb"] for r in serve_runs]),
        "note": "median of the runs; warm OS page cache",
    }
    print(f"cold start: {json.dumps(result['cold_start'])}", flush=True)
    result["machine"]["load_avg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    result["seconds"] = round(time.perf_counter() - run_started, 1)
    write_result("perf", result)
    print(f"wrote {RESULTS / 'perf.json'} in {result['seconds']} s")


if __name__ == "__main__":
    main()
