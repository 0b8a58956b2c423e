"""A writer killed at any point leaves the old index or the new one, never an error or a mix.

Each trial starts a real `QABot.rebuild()` in a subprocess, slowed down at every step of
embedding and saving (each step prints a marker first), and SIGKILLs it at a chosen
point. Then `FaissStore.load` must give exactly the state before or the state after.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import HashEmbedder

from qa_bot import IndexCorruptError, QABot
from qa_bot.retriever import Retriever
from qa_bot.stores.faiss import FaissStore

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent

OLD_DOCS = {
    "tainan.txt": "臺南市立圖書館新總館於2025年3月1日正式開館，館藏超過一百萬冊。\n\n"
    "開館當天舉辦了閱讀節活動，吸引三萬名市民參加。市長表示新總館將成為南部的知識中心。",
    "kaohsiung.txt": "高雄港今年貨櫃吞吐量創下歷史新高，全年達到一千萬標準箱。\n\n"
    "第七貨櫃中心啟用後，大型貨櫃輪的靠港次數明顯增加，平均等候時間縮短了一半。",
}
NEW_DOCS = {
    "tainan.txt": OLD_DOCS["tainan.txt"] + "\n\n新總館平日開放到晚上九點，週一休館。",
    "alishan/railway.md": "# 阿里山森林鐵路\n\n阿里山森林鐵路在停駛多年後全線恢復通車。\n\n"
    "從嘉義站到阿里山站全程約需兩小時三十分鐘，祝山線每日清晨加開觀日出列車。",
}
QUESTIONS = ["臺南市立圖書館什麼時候開館？", "阿里山森林鐵路全程要多久？", "高雄港吞吐量"]

# The writer: a rebuild over the new documents with every slow step announced on stdout.
WRITER = textwrap.dedent(
    """
    import json, os, shutil, sys, time
    sys.path.insert(0, {tests!r})
    from conftest import HashEmbedder
    import qa_bot.stores.faiss as index_module
    from qa_bot import QABot
    from qa_bot.textnorm import tokenize

    index_dir, docs_dir, pause, mode = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]

    def step(name, function, seconds):
        def slowed(*args, **kwargs):
            print(name, flush=True)
            time.sleep(seconds)
            return function(*args, **kwargs)
        return slowed

    class SlowEmbedder(HashEmbedder):
        def encode_passages(self, texts, batch_size=32, progress=None):
            print("embed", time.time(), flush=True)
            time.sleep(pause * 4)
            vectors = super().encode_passages(texts, batch_size, progress)
            print("embedded", time.time(), flush=True)
            return vectors

    index_module.json.dumps = step("dumps", json.dumps, pause / 4)  # once per passage, then the manifest
    index_module.faiss.write_index = step("write_index", index_module.faiss.write_index, pause)
    index_module._sha256_file = step("sha256", index_module._sha256_file, pause / 2)
    index_module._fsync_dir = step("fsync_dir", index_module._fsync_dir, pause / 2)
    index_module.os.replace = step("replace", os.replace, pause)
    index_module.shutil.rmtree = step("rmtree", shutil.rmtree, pause)
    tokenize("預熱分詞")  # load the tokenizer before "ready", so that delays measure the write itself
    bot = QABot(index_dir=index_dir, docs_dir=docs_dir, embedder=SlowEmbedder())
    print("ready", flush=True)
    if mode == "rebuild":
        bot.rebuild()
    else:
        bot.add_documents(sys.argv[5:])
    print("done", flush=True)
    """
).format(tests=str(TESTS))

# Markers of one run, in order: ready, sha256 x7 (reading the old index), embed, embedded, dumps x2 (the
# passages), write_index, sha256 x7 (the new generation), fsync_dir x2, replace (the generation into place),
# dumps (the manifest), replace (the manifest swap), fsync_dir, rmtree (the old generation), done.
# Each step prints its marker and then sleeps before doing its work.
PAUSE = 0.05
# (marker, occurrence, extra delay): kill this long after the n-th time the writer prints the marker.
KILL_POINTS = [
    ("ready", 1, 0.0),
    ("ready", 1, 0.03),
    ("sha256", 3, 0.0),  # while reading the old index
    ("embed", 1, 0.0),
    ("embed", 1, 0.1),
    ("dumps", 1, 0.0),  # the staging chunks.jsonl is half written
    ("dumps", 2, 0.0),
    ("write_index", 1, 0.0),
    ("write_index", 1, PAUSE + 0.01),  # dense.faiss written, bm25 being saved
    ("sha256", 10, 0.0),  # checksumming the new generation
    ("fsync_dir", 1, 0.0),
    ("replace", 1, 0.0),  # just before the generation is renamed into place
    ("replace", 1, PAUSE + 0.005),  # the generation is in place, the manifest still names the old one
    ("dumps", 3, 0.0),  # the new manifest is being made
    ("dumps", 3, PAUSE / 4 + 0.005),  # ... and written to its temporary file
    ("replace", 2, 0.0),  # just before the manifest swap
    ("replace", 2, PAUSE + 0.01),  # just after it
    ("rmtree", 1, 0.0),  # before the old generation is removed
    ("rmtree", 1, PAUSE + 0.002),  # while or after it is removed
    ("done", 1, 0.0),
]


def write_docs(folder: Path, docs: dict[str, str]) -> None:
    for name, text in docs.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def snapshot(index: FaissStore) -> dict:
    """What must match exactly: documents, passages, vectors and what retrieval returns."""
    embedder = HashEmbedder()
    retriever = Retriever(index, embedder)
    return {
        "documents": {name: (d.sha256, d.size, d.chars, d.chunks) for name, d in index.documents.items()},
        "chunks": [(c.source, c.start, c.end, c.text, c.page) for c in index.chunks],
        "vectors": np.round(index.vectors(), 5).tolist(),
        "answers": [[(p.chunk_id, p.source, round(p.score, 5)) for p in retriever.search(q, k=3)] for q in QUESTIONS],
    }


@pytest.fixture(scope="module")
def states(tmp_path_factory):
    """An index of the old documents (a template to copy), and the snapshots before and after a rebuild."""
    base = tmp_path_factory.mktemp("crash")
    old_docs, new_docs = base / "old-docs", base / "new-docs"
    write_docs(old_docs, OLD_DOCS)
    write_docs(new_docs, NEW_DOCS)
    template = base / "old-index"
    QABot(index_dir=template, docs_dir=old_docs, embedder=HashEmbedder()).rebuild()
    reference = base / "new-index"
    shutil.copytree(template, reference)
    QABot(index_dir=reference, docs_dir=new_docs, embedder=HashEmbedder()).rebuild()
    old, new = snapshot(FaissStore.load(template)), snapshot(FaissStore.load(reference))
    assert old != new and set(old["documents"]) != set(new["documents"])
    return {"template": template, "new_docs": new_docs, "old": old, "new": new}


def start_writer(index_dir: Path, docs_dir: Path, mode: str, *paths: str, pause: float = PAUSE) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", WRITER, str(index_dir), str(docs_dir), str(pause), mode, *paths],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)},
    )


def wait_for(process: subprocess.Popen, marker: str, occurrence: int, timeout: float = 30) -> list[str]:
    """Read the writer's markers until `marker` was printed `occurrence` times (or the writer ended)."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([process.stdout], [], [], 0.5)
        if not ready:
            continue
        line = process.stdout.readline()
        if not line:  # the writer ended; the last markers tell where it was
            return seen
        seen.append(line.split()[0])
        if seen.count(marker) >= occurrence:
            return seen
    raise AssertionError(f"writer stuck after {seen[-5:]}")


@pytest.mark.parametrize(("marker", "occurrence", "delay"), KILL_POINTS)
def test_killed_rebuild_leaves_old_or_new_index(states, tmp_path, marker, occurrence, delay):
    index_dir = tmp_path / "index"
    shutil.copytree(states["template"], index_dir)
    writer = start_writer(index_dir, states["new_docs"], "rebuild")
    try:
        seen = wait_for(writer, marker, occurrence)
        time.sleep(delay)
        writer.send_signal(signal.SIGKILL)
    finally:
        writer.wait(timeout=30)
        writer.stdout.close()
        stderr = writer.stderr.read()
        writer.stderr.close()
    finished = "done" in seen
    assert writer.returncode in (-signal.SIGKILL, 0), stderr
    loaded = snapshot(FaissStore.load(index_dir))
    assert loaded in (states["old"], states["new"]), f"a mix after {seen[-3:]}"
    if finished:
        assert loaded == states["new"]
    swaps = [i for i, name in enumerate(seen) if name == "replace"]
    if len(swaps) < 2:  # killed before the manifest swap
        assert loaded == states["old"], seen[-3:]
    elif swaps[1] < len(seen) - 1:  # a step after the swap had started
        assert loaded == states["new"], seen[-3:]
    # The next writer takes the lock the dead one held, clears its leftovers and completes the job.
    bot = QABot(index_dir=index_dir, docs_dir=states["new_docs"], embedder=HashEmbedder())
    report = bot.update()
    assert not report.errors
    assert snapshot(FaissStore.load(index_dir)) == states["new"]
    current = generation_of(index_dir).name
    leftovers = {p.name for p in index_dir.iterdir()} - {"manifest.json", ".write.lock", current}
    # Staging folders and temporary manifests are gone; an old generation may stay when the kill came
    # after the swap (see test_stale_generation_is_removed_by_the_next_writer).
    assert all(name.startswith("g-") for name in leftovers), leftovers
    assert not leftovers or len(swaps) >= 2, leftovers


def kill_at(index_dir: Path, docs_dir: Path, marker: str, occurrence: int) -> list[str]:
    writer = start_writer(index_dir, docs_dir, "rebuild")
    try:
        return wait_for(writer, marker, occurrence)
    finally:
        writer.kill()
        writer.communicate(timeout=30)


def test_stale_generation_is_removed_by_the_next_writer(states, tmp_path):
    index_dir = tmp_path / "index"
    shutil.copytree(states["template"], index_dir)
    kill_at(index_dir, states["new_docs"], "rmtree", 1)
    assert snapshot(FaissStore.load(index_dir)) == states["new"]
    QABot(index_dir=index_dir, docs_dir=states["new_docs"], embedder=HashEmbedder()).update()
    assert len([p for p in index_dir.iterdir() if p.name.startswith("g-")]) == 1


def test_two_writers_are_serialised(states, tmp_path):
    """Two processes adding different documents at once: both finish, one after the other, and both are kept."""
    index_dir = tmp_path / "index"
    shutil.copytree(states["template"], index_dir)
    extra = tmp_path / "extra"
    write_docs(extra, {
        "first.txt": "澎湖花火節今年延長為三個月，每週一與週四晚上施放煙火。",
        "second.txt": "金門大橋通車後，大小金門之間的車程縮短到十分鐘以內。",
    })
    writers = [
        start_writer(index_dir, extra, "add", str(extra / name), pause=0.1) for name in ("first.txt", "second.txt")
    ]
    spans = []
    for writer in writers:
        out, err = writer.communicate(timeout=60)
        assert writer.returncode == 0, err
        times = {line.split()[0]: float(line.split()[1]) for line in out.splitlines() if line.startswith("embed")}
        spans.append((times["embed"], times["embedded"]))
    first, second = sorted(spans)
    assert first[1] <= second[0], f"the two writers embedded at the same time: {spans}"
    index = FaissStore.load(index_dir)
    assert set(index.documents) == set(OLD_DOCS) | {"first.txt", "second.txt"}
    assert {c.source for c in index.chunks} == set(index.documents)
    assert index.dense.ntotal == len(index.chunks)
    assert len([p for p in index_dir.iterdir() if p.name.startswith("g-")]) == 1


# -- damage on disk --------------------------------------------------------------------


@pytest.fixture
def built(states, tmp_path) -> Path:
    index_dir = tmp_path / "index"
    shutil.copytree(states["template"], index_dir)
    return index_dir


def generation_of(index_dir: Path) -> Path:
    return index_dir / json.loads((index_dir / "manifest.json").read_text(encoding="utf-8"))["generation"]


def test_wrong_checksum_is_reported(built):
    chunks = generation_of(built) / "chunks.jsonl"
    data = bytearray(chunks.read_bytes())
    position = data.index("臺".encode())
    data[position : position + 3] = "台".encode()  # same length, different content
    chunks.write_bytes(bytes(data))
    with pytest.raises(IndexCorruptError, match=r"fails its checksum.*qa-bot index build"):
        FaissStore.load(built)


def test_truncated_file_is_reported(built):
    bm25_file = next(p for p in (generation_of(built) / "bm25").iterdir() if p.stat().st_size > 10)
    bm25_file.write_bytes(bm25_file.read_bytes()[:-5])
    with pytest.raises(IndexCorruptError, match=r"missing or truncated.*qa-bot index build"):
        FaissStore.load(built)


def test_missing_generation_is_reported(built):
    shutil.rmtree(generation_of(built))
    with pytest.raises(IndexCorruptError, match="qa-bot index build"):
        FaissStore.load(built)


def test_damaged_manifest_is_reported(built):
    manifest = built / "manifest.json"
    manifest.write_bytes(manifest.read_bytes()[:40])
    with pytest.raises(IndexCorruptError, match=r"damaged.*qa-bot index build"):
        FaissStore.load(built)


@pytest.mark.parametrize("content", ['{"format_version": 1}', "[1, 2]"])
def test_manifest_without_its_fields_is_reported(built, content):
    (built / "manifest.json").write_text(content, encoding="utf-8")
    with pytest.raises(IndexCorruptError, match="qa-bot index build"):
        FaissStore.load(built)
