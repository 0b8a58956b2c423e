"""Incremental-update costs on DRCD dev: first build vs re-adding, rebuilding and adding one document.

    python bench/run_lifecycle.py

All figures come from one run; the ratios are what to compare (the machine is noisy).
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.datasets import DRCD, RESULTS, write_result  # noqa: E402
from qa_bot import QABot  # noqa: E402
from qa_bot.bot import document_files  # noqa: E402


def timed(label: str, action, results: dict) -> None:
    started = time.perf_counter()
    report = action()
    results[label] = {"seconds": round(time.perf_counter() - started, 2), "embedded": report.embedded,
                      "passages": report.passages}
    print(label, results[label], flush=True)


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="qa-bot-lifecycle-"))
    docs = work / "docs"
    files = document_files(DRCD / "docs")
    docs.mkdir()
    for path in files[:-1]:
        shutil.copy(path, docs / path.name)
    bot = QABot(index_dir=work / "index", docs_dir=docs)
    bot.embedder.encode_query("warm up")  # load the model outside the timings
    results: dict[str, dict] = {}
    timed("first build", bot.rebuild, results)
    timed("re-add unchanged corpus", lambda: bot.add_documents(sorted(docs.iterdir())), results)
    timed("rebuild unchanged corpus", bot.rebuild, results)
    shutil.copy(files[-1], docs / files[-1].name)
    timed("add one document", lambda: bot.add_documents([docs / files[-1].name]), results)
    timed("remove one document", lambda: bot.remove_documents([files[-1].name]), results)
    first = results["first build"]["seconds"]
    for label in ("re-add unchanged corpus", "rebuild unchanged corpus"):
        results[label]["share_of_first_build"] = round(results[label]["seconds"] / first, 4)
    RESULTS.mkdir(parents=True, exist_ok=True)
    write_result("lifecycle", results)
    print(json.dumps(results, indent=1))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
