"""The README's Python and CLI examples, run as a new user would (real model, own copy of the seeds)."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import DATA, ROOT, seed_copy

README = (ROOT / "README.md").read_text(encoding="utf-8")
pytestmark = pytest.mark.slow


def blocks(section: str, language: str) -> list[str]:
    """The ```language blocks under a '## section' heading of the README."""
    body = README.split(f"\n## {section}\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(rf"```{language}\n(.*?)```", body, re.S)


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A fresh folder as a user has it: the seeds, a documents folder, a file to add, the seed questions."""
    seed_copy(tmp_path / "seeds")
    seed_copy(tmp_path / "my-docs")
    (tmp_path / "report.txt").write_text("臺南市立圖書館於二〇二五年三月一日在永康區開幕，館藏六十萬冊。\n", encoding="utf-8")
    (tmp_path / "tests" / "data").mkdir(parents=True)
    shutil.copy(DATA / "seed_questions.jsonl", tmp_path / "tests" / "data")
    return tmp_path


def run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    for name in ("QA_BOT_DOCS", "QA_BOT_INDEX", "QA_BOT_STORE", "QA_BOT_MILVUS_URI"):
        env.pop(name, None)
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)


def test_python_api_examples_run(workdir: Path):
    (code,) = blocks("Python API", "python")
    done = run([sys.executable, "-c", code], workdir)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "[1]" in done.stdout and "北京" in done.stdout
    assert (workdir / "embeddings" / "manifest.json").is_file() and (workdir / "my-index" / "milvus.db").exists()


def test_cli_examples_run(workdir: Path):
    (commands,) = blocks("Command line", "bash")
    lines = [shlex.split(line, comments=True) for line in commands.splitlines()]
    lines = [argv for argv in lines if argv]
    assert len(lines) >= 10 and all(argv[0] == "qa-bot" for argv in lines)
    outputs = []
    for argv in lines:
        done = run([sys.executable, "-m", "qa_bot.cli", *argv[1:]], workdir)
        assert done.returncode == 0, (argv, done.stderr[-3000:])
        outputs.append(done.stdout)
    joined = "\n".join(outputs)
    assert "report.txt" in joined and "[1]" in joined and "answer_hit" in joined
