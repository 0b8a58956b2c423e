"""Documents shaped to blow up the index (issue 14): build time, peak memory and index size.

    python bench/adversarial.py [--quick]

Each case builds a fresh index of one generated document with the real model, in its own child
process (peak RSS is that process's own). Reported: seconds for the whole build (model loading
apart), peak RSS, the document and the index on disk, passages and the longest matching text
(context + text) of any passage. Writes bench/results/adversarial.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def list_txt(items: int) -> tuple[str, bytes]:
    """The issue's list: `第{i}項 名稱{i}` items separated by blank lines."""
    return "list.txt", "\n\n".join(f"第{i}項 名稱{i}" for i in range(items)).encode()


def list_html(items: int) -> tuple[str, bytes]:
    body = "".join(f"<li>第{i}條 規定名稱{i}</li>" for i in range(items))
    return "list.html", f"<html><head><title>規定一覽</title></head><body><ul>{body}</ul></body></html>".encode()


def outline_md(items: int) -> tuple[str, bytes]:
    lines = [f"{'#' * (i % 4 + 1)} 第{i}節 大綱{i}" for i in range(items)]
    return "outline.md", "\n\n".join(lines).encode()


def tiny_paragraphs_docx(paragraphs: int) -> tuple[str, bytes]:
    """A .docx of many one-word paragraphs: small on disk, large unpacked."""
    import io

    import docx

    document = docx.Document()
    for i in range(paragraphs):
        document.add_paragraph(f"項{i}")
    buffer = io.BytesIO()
    document.save(buffer)
    return "tiny.docx", buffer.getvalue()


CASES = {
    "list-6000.txt": (list_txt, 6000),
    "list-4000.html": (list_html, 4000),
    "outline-3000.md": (outline_md, 3000),
    "tiny-paragraphs-20000.docx": (tiny_paragraphs_docx, 20000),
}


def child(case: str) -> dict:
    from qa_bot import QABot
    from qa_bot.embedding import load_embedder

    make, size = CASES[case]
    embedder = load_embedder()
    embedder.encode_query("warm up")
    with tempfile.TemporaryDirectory() as work:
        docs, index = Path(work) / "docs", Path(work) / "index"
        docs.mkdir()
        name, data = make(size)
        (docs / name).write_bytes(data)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        started, cpu_started = time.perf_counter(), time.process_time()
        bot = QABot(index_dir=index, docs_dir=docs, embedder=embedder)
        report = bot.rebuild()
        seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
        chunks = bot.index.chunks
        index_bytes = sum(p.stat().st_size for p in index.rglob("*") if p.is_file())
        bot.close()
    return {
        "document_bytes": len(data),
        "errors": report.errors,
        "passages": len(chunks),
        "max_matching_chars": max((len(c.index_text()) for c in chunks), default=0),
        "build_s": round(seconds, 1),
        "build_cpu_s": round(cpu_seconds, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "rss_growth_mb": round((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024, 1),
        "index_bytes": index_bytes,
        "index_over_document": round(index_bytes / len(data), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child")
    parser.add_argument("--quick", action="store_true", help="only the issue's 6,000-item list")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child)))
        return
    cases = ["list-6000.txt"] if args.quick else list(CASES)
    results = {}
    for case in cases:
        out = subprocess.run([sys.executable, __file__, "--child", case], capture_output=True, text=True, check=True)
        results[case] = json.loads(out.stdout.strip().splitlines()[-1])
        print(case, results[case], flush=True)
    from bench.datasets import write_result

    write_result("adversarial", {"load_average_1min": round(os.getloadavg()[0], 1), "cases": results})


if __name__ == "__main__":
    main()
