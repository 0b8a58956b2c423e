"""A writer killed at any point leaves the old index or the new one, never an error or a mix.

Each trial starts a real `QABot.rebuild()` in a subprocess that announces every step of
embedding and saving (a marker on stdout) and SIGKILLs itself at a chosen step, before or
after its work: no timing, so a busy machine cannot move the kill into another phase, and
each trial asserts the phase it died in. Then `FaissStore.load` must give exactly the state
before or the state after.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
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
    import json, os, shutil, signal, sys, time
    sys.path.insert(0, {tests!r})
    from conftest import HashEmbedder
    import qa_bot.stores.faiss as index_module
    from qa_bot import QABot
    from qa_bot.textnorm import tokenize

    index_dir, docs_dir, pause, mode = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]

    kill_marker, kill_count, kill_when = (os.environ.get("KILL_AT") or "::").split(":")
    counts = {{}}

    def check_kill(name, when):
        if (name, str(counts.get(name)), when) == (kill_marker, kill_count, kill_when):
            os.kill(os.getpid(), signal.SIGKILL)

    def announce(name, *extra):
        counts[name] = counts.get(name, 0) + 1
        print(name, *extra, flush=True)
        check_kill(name, "before")

    def step(name, function, seconds):
        def slowed(*args, **kwargs):
            announce(name)
            time.sleep(seconds)
            result = function(*args, **kwargs)
            check_kill(name, "after")
            return result
        return slowed

    class SlowEmbedder(HashEmbedder):
        def encode_passages(self, texts, batch_size=32, progress=None):
            announce("embed", time.time())
            time.sleep(pause * 4)
            vectors = super().encode_passages(texts, batch_size, progress)
            check_kill("embed", "after")
            announce("embedded", time.time())
            return vectors

    index_module.json.dumps = step("dumps", json.dumps, pause / 4)  # once per passage, then the manifest
    index_module.faiss.write_index = step("write_index", index_module.faiss.write_index, pause)
    index_module._sha256_file = step("sha256", index_module._sha256_file, pause / 2)
    index_module._fsync_dir = step("fsync_dir", index_module._fsync_dir, pause / 2)
    index_module.os.replace = step("replace", os.replace, pause)
    index_module.shutil.rmtree = step("rmtree", shutil.rmtree, pause)
    tokenize("預熱分詞")  # load the tokenizer before "ready", so that delays measure the write itself
    bot = QABot(index_dir=index_dir, docs_dir=docs_dir, embedder=SlowEmbedder())
    announce("ready")
    if mode == "rebuild":
        bot.rebuild()
    else:
        bot.add_documents(sys.argv[5:])
    announce("done")
    """
).format(tests=str(TESTS))

# Markers of one run, in order: ready, sha256 x7 (reading the old index), embed, embedded, dumps x2 (the
# passages), write_index, sha256 x7 (the new generation), fsync_dir x2, replace (the generation into place),
# dumps (the manifest), replace (the manifest swap), fsync_dir, rmtree (the old generation), done.
# (marker, occurrence, when): the writer kills itself at the n-th time it reaches that step, before or after
# the step's work.
KILL_POINTS = [
    ("ready", 1, "before"),
    ("sha256", 3, "before"),  # while reading the old index
    ("embed", 1, "before"),
    ("embed", 1, "after"),  # embedded, nothing written
    ("dumps", 1, "before"),  # the staging chunks.jsonl is open, empty
    ("dumps", 2, "before"),  # ... half written
    ("write_index", 1, "before"),
    ("write_index", 1, "after"),  # dense.faiss written, bm25 not yet
    ("sha256", 10, "before"),  # checksumming the new generation
    ("fsync_dir", 1, "before"),
    ("replace", 1, "before"),  # just before the generation is renamed into place
    ("replace", 1, "after"),  # the generation is in place, the manifest still names the old one
    ("dumps", 3, "before"),  # the new manifest is being made
    ("dumps", 3, "after"),  # ... made, not yet written to its temporary file
    ("replace", 2, "before"),  # just before the manifest swap
    ("replace", 2, "after"),  # just after it
    ("rmtree", 1, "before"),  # before the old generation is removed
    ("rmtree", 1, "after"),  # after it is removed
    ("done", 1, "before"),
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


def start_writer(index_dir: Path, docs_dir: Path, mode: str, *paths: str, pause: float = 0.0,
                 kill: tuple[str, int, str] | None = None) -> subprocess.Popen:
    """A writer process; `kill` = (marker, occurrence, "before" | "after"): where it SIGKILLs itself."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT), "KILL_AT": ":".join(map(str, kill or ()))}
    return subprocess.Popen(
        [sys.executable, "-c", WRITER, str(index_dir), str(docs_dir), str(pause), mode, *paths],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env,
    )


def run_killed(index_dir: Path, docs_dir: Path, marker: str, occurrence: int, when: str) -> list[str]:
    """Rebuild until the writer kills itself at the chosen step; the markers it printed, checked to end there."""
    writer = start_writer(index_dir, docs_dir, "rebuild", kill=(marker, occurrence, when))
    out, err = writer.communicate(timeout=120)
    seen = [line.split()[0] for line in out.splitlines()]
    assert writer.returncode == -signal.SIGKILL, err
    assert seen and seen[-1] == marker and seen.count(marker) == occurrence, f"died elsewhere: {seen[-3:]}"
    return seen


@pytest.mark.parametrize(("marker", "occurrence", "when"), KILL_POINTS)
def test_killed_rebuild_leaves_old_or_new_index(states, tmp_path, marker, occurrence, when):
    index_dir = tmp_path / "index"
    shutil.copytree(states["template"], index_dir)
    seen = run_killed(index_dir, states["new_docs"], marker, occurrence, when)
    loaded = snapshot(FaissStore.load(index_dir))
    assert loaded in (states["old"], states["new"]), f"a mix after {seen[-3:]}"
    # The manifest swap (the second os.replace) decides: before it the old index, after it the new one.
    swaps = [i for i, name in enumerate(seen) if name == "replace"]
    swapped = len(swaps) >= 2 and (swaps[1] < len(seen) - 1 or when == "after")
    assert loaded == (states["new"] if swapped else states["old"]), seen[-3:]
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
    assert not leftovers or swapped, leftovers


def test_stale_generation_is_removed_by_the_next_writer(states, tmp_path):
    index_dir = tmp_path / "index"
    shutil.copytree(states["template"], index_dir)
    run_killed(index_dir, states["new_docs"], "rmtree", 1, "before")
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
