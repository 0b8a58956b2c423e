"""Rebuild this DRCD subset from the full DRCD dev benchmark (shared/benchmarks/drcd-dev).

    python tests/data/drcd-subset/make_subset.py [path/to/drcd-dev]

The subset: the first 25 documents by file name and every question about them, unchanged.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
DOCUMENTS = 25


def main() -> None:
    source = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE.parents[3] / "shared" / "benchmarks" / "drcd-dev"
    names = sorted(path.name for path in (source / "docs").glob("*.txt"))[:DOCUMENTS]
    shutil.rmtree(HERE / "docs", ignore_errors=True)
    (HERE / "docs").mkdir()
    for name in names:
        shutil.copy(source / "docs" / name, HERE / "docs" / name)
    with (source / "questions.jsonl").open(encoding="utf-8") as lines, \
            (HERE / "questions.jsonl").open("w", encoding="utf-8") as out:
        out.writelines(line for line in lines if json.loads(line)["source"] in set(names))


if __name__ == "__main__":
    main()
