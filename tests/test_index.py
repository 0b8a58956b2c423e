"""Index lifecycle with the fast embedder: build, persist, upsert, remove, update, damage detection."""

from __future__ import annotations

import json

import pytest

from qa_bot import IndexCorruptError, IndexMissingError, QABot
from qa_bot.stores.faiss import FaissStore

NEW_DOC = "臺南市立圖書館新總館於2025年3月1日正式開館，館藏超過一百萬冊。\n\n開館當天舉辦了閱讀節活動，吸引三萬名市民參加。"


def test_build_persists_and_reloads(fast_bot, hash_embedder):
    reloaded = QABot(index_dir=fast_bot.index_dir, embedder=hash_embedder, store=fast_bot.store_config)
    assert [d.name for d in reloaded.documents()] == ["cppcc-local-work-conference.txt"]
    assert len(reloaded.store.chunks) == len(fast_bot.store.chunks) > 10
    assert reloaded.store.model == hash_embedder.model_id
    assert reloaded.store.settings["max_chars"] == 350
    if fast_bot.store_config.kind != "faiss":
        return
    manifest = json.loads((fast_bot.index_dir / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["model"] == hash_embedder.model_id
    assert manifest["chunker"]["max_chars"] == 350
    assert len([p for p in fast_bot.index_dir.iterdir() if p.name.startswith("g-")]) == 1


def test_passages_point_at_original_text(fast_bot, docs_dir):
    original = (docs_dir / "cppcc-local-work-conference.txt").read_text(encoding="utf-8")
    for passage in fast_bot.retrieve("湖北省政協主席是誰？", k=10):
        squashed = "".join(original[passage.start : passage.end].split())
        assert "".join(passage.text.split()) in squashed
        assert passage.line == original.count("\n", 0, passage.start) + 1


def test_add_is_idempotent_and_costs_no_embedding(fast_bot, docs_dir, hash_embedder):
    path = docs_dir / "tainan-library.txt"
    path.write_text(NEW_DOC, encoding="utf-8")
    first = fast_bot.add_documents([path])
    assert first.added == ["tainan-library.txt"] and first.embedded >= 1
    again = fast_bot.add_documents([path])
    assert again.unchanged == ["tainan-library.txt"] and again.embedded == 0
    assert len(fast_bot.documents()) == 2
    top = fast_bot.retrieve("臺南市立圖書館什麼時候開館？", k=1)[0]
    assert top.source == "tainan-library.txt"


def test_changed_file_replaces_its_passages(fast_bot, docs_dir):
    path = docs_dir / "tainan-library.txt"
    path.write_text(NEW_DOC, encoding="utf-8")
    fast_bot.add_documents([path])
    path.write_text("高雄港今年吞吐量創新高，達到一千萬標準箱。", encoding="utf-8")
    report = fast_bot.add_documents([path])
    assert report.updated == ["tainan-library.txt"]
    texts = [c.text for c in fast_bot.store.chunks if c.source == "tainan-library.txt"]
    assert texts == ["高雄港今年吞吐量創新高，達到一千萬標準箱。"]


def test_removed_document_is_never_returned(fast_bot, docs_dir):
    path = docs_dir / "tainan-library.txt"
    path.write_text(NEW_DOC, encoding="utf-8")
    fast_bot.add_documents([path])
    report = fast_bot.remove_documents(["tainan-library.txt"])
    assert report.removed == ["tainan-library.txt"]
    for question in ["臺南市立圖書館什麼時候開館？", "閱讀節", "一百萬冊"]:
        assert all(p.source != "tainan-library.txt" for p in fast_bot.retrieve(question, k=50))
    assert fast_bot.remove_documents(["nope.txt"]).errors


def test_same_name_from_another_folder_is_refused(fast_bot, tmp_path):
    other = tmp_path / "elsewhere"
    other.mkdir()
    (other / "notes.txt").write_text(NEW_DOC, encoding="utf-8")
    assert fast_bot.add_documents([other / "notes.txt"]).added == ["notes.txt"]
    second = tmp_path / "again"
    second.mkdir()
    (second / "notes.txt").write_text("完全不同的內容。", encoding="utf-8")
    report = fast_bot.add_documents([second / "notes.txt"])
    assert not report.added and "already indexed" in next(iter(report.errors.values()))


def test_bad_file_in_a_batch_does_not_stop_the_others(fast_bot, docs_dir):
    good = docs_dir / "good.txt"
    good.write_text(NEW_DOC, encoding="utf-8")
    bad = docs_dir / "bad.txt"
    bad.write_bytes(b"\x00\x01\x02" * 100)
    report = fast_bot.add_documents([bad, good, docs_dir / "missing.txt"])
    assert report.added == ["good.txt"]
    assert set(report.errors) == {str(bad), str(docs_dir / "missing.txt")}


def test_update_syncs_with_the_folder(fast_bot, docs_dir):
    (docs_dir / "a.txt").write_text(NEW_DOC, encoding="utf-8")
    report = fast_bot.update()
    assert report.added == ["a.txt"] and report.unchanged == ["cppcc-local-work-conference.txt"]
    (docs_dir / "a.txt").unlink()
    (docs_dir / "sub").mkdir()
    (docs_dir / "sub" / "b.md").write_text("# 標題\n\n新的段落內容。", encoding="utf-8")
    report = fast_bot.update()
    assert report.removed == ["a.txt"] and report.added == ["sub/b.md"]


def test_rebuild_of_unchanged_corpus_embeds_nothing(fast_bot, hash_embedder):
    report = fast_bot.rebuild()
    assert report.embedded == 0 and report.passages == len(fast_bot.store.chunks)


def test_each_document_records_what_embedded_it(fast_bot, docs_dir, hash_embedder, monkeypatch):
    """Another precision (another CPU class) embeds new passages; reused vectors keep their origin, on reload too."""
    assert [d.embedded_with for d in fast_bot.documents()] == ["test-f32"]
    monkeypatch.setattr(hash_embedder, "precision", "int8")
    (docs_dir / "a.txt").write_text(NEW_DOC, encoding="utf-8")
    fast_bot.update()
    fast_bot.rebuild()  # nothing to embed: every vector reused
    reloaded = QABot(index_dir=fast_bot.index_dir, embedder=hash_embedder, store=fast_bot.store_config)
    assert {d.name: d.embedded_with for d in reloaded.documents()} == {
        "a.txt": "test-int8", "cppcc-local-work-conference.txt": "test-f32"}
    monkeypatch.setattr(hash_embedder, "precision", "bf16")
    (docs_dir / "a.txt").write_text(NEW_DOC + "\n\n新增一段。", encoding="utf-8")  # a new passage: embedded now
    fast_bot.update()
    assert {d.name: d.embedded_with for d in fast_bot.documents()} == {
        "a.txt": "test-bf16", "cppcc-local-work-conference.txt": "test-f32"}


def test_missing_index_and_damaged_files_give_clear_errors(tmp_path, fast_bot, hash_embedder):
    with pytest.raises(IndexMissingError, match="qa-bot index build"):
        QABot(index_dir=tmp_path / "none", embedder=hash_embedder, store=fast_bot.store_config).documents()
    if fast_bot.store_config.kind != "faiss":
        return
    generation = next(p for p in fast_bot.index_dir.iterdir() if p.name.startswith("g-"))
    faiss_file = generation / "dense.faiss"
    faiss_file.write_bytes(faiss_file.read_bytes()[:100])
    with pytest.raises(IndexCorruptError, match="qa-bot index build"):
        FaissStore.load(fast_bot.index_dir)


def test_model_mismatch_is_refused(fast_bot, hash_embedder):
    class OtherEmbedder(type(hash_embedder)):
        model_id = "test:other"

    other = QABot(index_dir=fast_bot.index_dir, embedder=OtherEmbedder(), store=fast_bot.store_config)
    with pytest.raises(IndexCorruptError, match="built with model"):
        other.retrieve("汪洋", k=1)
    with pytest.raises(IndexCorruptError, match="index build"):
        other.add_documents([fast_bot.docs_dir / "cppcc-local-work-conference.txt"])


@pytest.mark.parametrize("question", ["", "   ", "\n\t"])
def test_empty_question_is_a_value_error(fast_bot, question):
    with pytest.raises(ValueError, match="empty"):
        fast_bot.retrieve(question)


def test_huge_and_odd_questions_do_not_crash(fast_bot):
    assert fast_bot.retrieve("政協" * 500_000, k=3)
    assert fast_bot.retrieve("？？！！……", k=3)
    assert fast_bot.retrieve("😀🎉", k=3)
    assert fast_bot.retrieve("汪洋\x00\x07講話", k=3)


def test_readers_keep_working_while_a_writer_updates(fast_bot, docs_dir):
    import threading

    errors: list[BaseException] = []
    answers = 0
    stop = threading.Event()

    def reader() -> None:
        nonlocal answers
        while not stop.is_set():
            try:
                assert fast_bot.retrieve("湖北省政協主席是誰？", k=3)
                answers += 1
            except BaseException as error:  # noqa: BLE001 - any failure is what we look for
                errors.append(error)

    threads = [threading.Thread(target=reader) for _ in range(3)]
    for thread in threads:
        thread.start()
    for number in range(5):
        path = docs_dir / f"extra-{number}.txt"
        path.write_text(f"第{number}份補充文件。{NEW_DOC}", encoding="utf-8")
        fast_bot.add_documents([path])
    fast_bot.remove_documents(["extra-0.txt"])
    stop.set()
    for thread in threads:
        thread.join()
    assert not errors and answers > 0
    assert len(fast_bot.documents()) == 5
