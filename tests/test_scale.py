"""The large-index paths of the FAISS store, at small sizes: IVF, memory-mapped loading,
sampled checksums, passages read on demand, common-token skipping (bench/scale.py measures them at 1M)."""

from __future__ import annotations

import json

import faiss
import numpy as np
import pytest

from qa_bot import IndexCorruptError
from qa_bot.records import ChunkRecord, DocumentInfo, NewDocument
from qa_bot.stores import faiss as index_module
from qa_bot.stores.faiss import FaissStore, dense_index

DIM = 32


def clustered(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n // 10, DIM)).astype(np.float32)
    vectors = centres[rng.integers(0, len(centres), n)] + 0.3 * rng.standard_normal((n, DIM)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def chunk(i: int, source: str = "doc.txt") -> ChunkRecord:
    text = f"第{i}段：政協委員第{i % 7}組討論議題{i}。"
    return ChunkRecord(source, i * 100, i * 100 + len(text), text, "", "paragraph", i + 1, [[0, i * 100, len(text)]])


@pytest.fixture
def large(monkeypatch, tmp_path):
    """An index of 3,000 passages saved with the large-index settings (IVF, mmap, sampled checksums)."""
    monkeypatch.setattr(index_module, "FLAT_LIMIT", 1000)
    monkeypatch.setattr(index_module, "FULL_CHECKSUM_LIMIT", 50_000)
    monkeypatch.setattr(index_module, "_SAMPLE_SIZE", 1024)  # leaves gaps between the sampled blocks
    vectors = clustered(3000)
    chunks = [chunk(i) for i in range(3000)]
    documents = {"doc.txt": DocumentInfo("doc.txt", "0" * 64, 1, 1, 3000)}
    FaissStore.build("test", DIM, {}, chunks, vectors, documents).save(tmp_path / "index")
    return tmp_path / "index", vectors


def test_large_index_is_ivf_memory_mapped_and_close_to_exact(large):
    folder, vectors = large
    index = FaissStore.load(folder)
    ivf = faiss.extract_index_ivf(index.dense)
    assert ivf is not None and ivf.nprobe == ivf.nlist // 4
    queries = vectors[:50]
    _, exact = faiss.knn(queries, vectors, 10, metric=faiss.METRIC_INNER_PRODUCT)
    found = [set(index.dense_search(q, 10)) for q in queries]
    recall = np.mean([len(f & set(e)) / 10 for f, e in zip(found, exact)])
    assert recall >= 0.95, recall
    assert index.similarity(7, vectors[7]) == pytest.approx(1.0, abs=1e-5)  # reconstruct through the direct map
    assert index.chunks[2999].text == chunk(2999).text and len(index.chunks) == 3000


def test_large_index_accepts_writes(large):
    folder, vectors = large
    index = FaissStore.load(folder)
    new = NewDocument(DocumentInfo("new.txt", "1" * 64, 1, 1, 1), [chunk(0, "new.txt")], vectors[:1])
    written = index.write(set(), [new])
    assert len(written.chunks) == 3001 and written.chunks[3000].source == "new.txt"
    assert np.allclose(written.vectors()[:3000], vectors, atol=1e-6)


def test_big_files_get_a_sampled_checksum_and_verify_reads_them_whole(large):
    folder, _ = large
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    sampled = [name for name, entry in manifest["files"].items() if "sample_sha256" in entry]
    assert "dense.faiss" in sampled
    path = folder / manifest["generation"] / "dense.faiss"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF  # the last block is always sampled
    path.write_bytes(bytes(data))
    with pytest.raises(IndexCorruptError, match="fails its checksum"):
        FaissStore.load(folder)
    data[-1] ^= 0xFF
    size, block, blocks = len(data), index_module._SAMPLE_SIZE, index_module._SAMPLE_BLOCKS
    starts = [(size - block) * i // (blocks - 1) for i in range(blocks)]
    gap = next(p for p in range(size) if not any(s <= p < s + block for s in starts))
    data[gap] ^= 0xFF  # between sampled blocks: only the full check sees it
    path.write_bytes(bytes(data))
    FaissStore.load(folder)
    with pytest.raises(IndexCorruptError, match="fails its checksum"):
        FaissStore.load(folder, full_check=True)


def test_index_without_offsets_file_still_loads(tmp_path):
    FaissStore.build("test", DIM, {}, [chunk(i) for i in range(5)], clustered(50)[:5], {}).save(tmp_path)
    generation = tmp_path / json.loads((tmp_path / "manifest.json").read_text(encoding="utf-8"))["generation"]
    (generation / "chunks.offsets.npy").unlink()
    manifest = json.loads((tmp_path / "manifest.json").read_text(encoding="utf-8"))
    del manifest["files"]["chunks.offsets.npy"]
    (tmp_path / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    assert [c.text for c in FaissStore.load(tmp_path).chunks] == [chunk(i).text for i in range(5)]


def test_very_common_tokens_are_skipped_only_in_large_indexes(monkeypatch):
    chunks = [chunk(i) for i in range(40)]
    index = FaissStore.build("test", DIM, {}, chunks, clustered(400)[:40], {})
    common = ["政", "协", "政协"]  # in every passage
    assert index.lexical_search(common, 5)  # small index: kept
    monkeypatch.setattr(index_module, "MIN_SKIPPED_DF", 10)
    assert index.lexical_search(common, 5) == {}
    assert index.lexical_search(common + ["39"], 5)  # a rare token still matches
    assert dense_index(clustered(20), DIM).ntotal == 20
