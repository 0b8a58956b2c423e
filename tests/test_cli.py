"""The command line, run as a user would (subprocess, real model)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from conftest import seed_copy

pytestmark = pytest.mark.slow


def run(*args: str, cwd=None) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, "-m", "qa_bot.cli", *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=600
    )


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory):
    index = tmp_path_factory.mktemp("cli-index")
    result = run("index", "build", "--docs", str(seed_copy(tmp_path_factory.mktemp("cli-docs"))), "--index", str(index), "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["added"] == ["cppcc-local-work-conference.txt"] and report["passages"] > 10
    return index


def test_list_retrieve_ask(index_dir, real_embedder):
    listing = run("index", "list", "--index", str(index_dir))
    assert listing.returncode == 0 and "cppcc-local-work-conference.txt" in listing.stdout
    listed = json.loads(run("index", "list", "--index", str(index_dir), "--json").stdout)
    assert [d["embedded_with"] for d in listed] == [f"{real_embedder.backend}-{real_embedder.precision}"]
    retrieved = json.loads(run("retrieve", "湖北省政協主席是誰？", "-k", "3", "--index", str(index_dir), "--json").stdout)
    assert len(retrieved) == 3 and "徐立全" in retrieved[0]["text"]
    answer = run("ask", "交流會在哪裡召開？", "--index", str(index_dir))
    assert answer.returncode == 0 and "北京" in answer.stdout and "[1]" in answer.stdout and "line" in answer.stdout
    assert "prefix dict" not in answer.stderr.lower(), answer.stderr  # jieba's loading lines stay out of the answer
    full = run("ask", "交流會在哪裡召開？", "--index", str(index_dir), "--passages")
    assert len(full.stdout) > len(answer.stdout)  # one line per citation unless --passages
    data = json.loads(run("ask", "六有是指甚麼？", "--index", str(index_dir), "--json").stdout)
    assert data["found"] and data["citations"][0]["highlights"]


def test_add_and_remove(index_dir, tmp_path):
    doc = tmp_path / "library.txt"
    doc.write_text("臺南市立圖書館新總館於2025年3月1日正式開館。", encoding="utf-8")
    added = run("index", "add", str(doc), "--index", str(index_dir))
    assert added.returncode == 0 and "added" in added.stdout
    again = run("index", "add", str(doc), "--index", str(index_dir), "--json")
    assert json.loads(again.stdout)["embedded"] == 0
    removed = run("index", "remove", "library.txt", "--index", str(index_dir))
    assert removed.returncode == 0 and "removed" in removed.stdout


def test_errors_are_clear_and_exit_non_zero(index_dir, tmp_path):
    empty = run("retrieve", "   ", "--index", str(index_dir))
    assert empty.returncode != 0 and "empty" in empty.stderr and "Traceback" not in empty.stderr
    missing = run("index", "list", "--index", str(tmp_path / "nothing"))
    assert missing.returncode != 0 and "qa-bot index build" in missing.stderr


def test_eval_prints_a_table(index_dir, tmp_path):
    questions = tmp_path / "q.jsonl"
    questions.write_text(
        '{"question": "湖北省政協主席是誰？", "answers": ["徐立全"]}\n{"question": "What is the capital of France?", "answers": []}\n',
        encoding="utf-8",
    )
    result = run("eval", str(questions), "--index", str(index_dir))
    assert result.returncode == 0, result.stderr
    assert "answer_hit" in result.stdout and "no_answer_rate" in result.stdout


def test_eval_says_why_each_answer_missed(index_dir, tmp_path):
    questions = tmp_path / "q.jsonl"
    questions.write_text(
        '{"id": "hit", "question": "湖北省政協主席是誰？", "answers": ["徐立全"]}\n'
        '{"id": "absent", "question": "湖北省政協主席是誰？", "answers": ["王忠林"]}\n'  # a gold answer no passage holds
        '{"id": "refused", "question": "Recommend a good pasta recipe.", "answers": ["番茄"]}\n',
        encoding="utf-8",
    )
    result = run("eval", str(questions), "--index", str(index_dir), "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["miss_causes"] == {"refused": ["refused"], "not_retrieved": ["absent"], "wrong_quote": []}
    overall = report["overall"]
    assert [overall["answer_hit"], overall["miss_refused"], overall["miss_not_retrieved"]] == [0.3333] * 3


def test_migrate_to_milvus_then_ask_and_verify(index_dir, tmp_path):
    uri = str(tmp_path / "milvus.db")
    migrated = run("index", "migrate", "--to", "milvus", "--milvus-uri", uri, "--index", str(index_dir))
    assert migrated.returncode == 0, migrated.stderr
    assert "nothing re-embedded" in migrated.stdout and f"QA_BOT_MILVUS_URI={uri}" in migrated.stdout
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "QA_BOT_STORE": "milvus", "QA_BOT_MILVUS_URI": uri}
    answer = subprocess.run(
        [sys.executable, "-m", "qa_bot.cli", "ask", "交流會在哪裡召開？", "--index", str(index_dir), "--json"],
        capture_output=True, text=True, env=env, timeout=600,
    )
    assert answer.returncode == 0, answer.stderr
    assert json.loads(answer.stdout)["found"] and "北京" in json.loads(answer.stdout)["text"]
    for store in ({}, {"QA_BOT_STORE": "milvus", "QA_BOT_MILVUS_URI": uri}):
        verified = subprocess.run(
            [sys.executable, "-m", "qa_bot.cli", "index", "verify", "--index", str(index_dir)],
            capture_output=True, text=True, env={**os.environ, **store}, timeout=600,
        )
        assert verified.returncode == 0 and verified.stdout.startswith("ok: 1 document(s)"), verified.stderr


def test_migrate_needs_a_destination(index_dir):
    result = run("index", "migrate", "--index", str(index_dir))
    assert result.returncode == 2 and "--to milvus" in result.stderr
