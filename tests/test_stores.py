"""What only the Milvus store has to prove: repair after an interrupted write, several servers
on one collection, and a lossless migration both ways (Milvus Lite, fast embedder)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import HashEmbedder

from qa_bot import QABot
from qa_bot import bot as bot_module
from qa_bot.stores import StoreConfig, migrate

NEW_DOC = "臺南市立圖書館新總館於2025年3月1日正式開館，館藏超過一百萬冊。\n\n開館當天舉辦了閱讀節活動，吸引三萬名市民參加。"


@pytest.fixture
def milvus_bot(tmp_path, docs_dir):
    bot = QABot(index_dir=tmp_path / "index", docs_dir=docs_dir, embedder=HashEmbedder(),
                store=StoreConfig(kind="milvus", milvus_uri=str(tmp_path / "milvus.db")))
    bot.rebuild()
    yield bot
    bot.close()


def test_interrupted_write_leaves_the_document_unlisted_and_update_repairs_it(milvus_bot, docs_dir, monkeypatch):
    (docs_dir / "tainan.txt").write_text(NEW_DOC, encoding="utf-8")
    before = len(milvus_bot.store.chunks)
    client = milvus_bot.location.client
    real_upsert = client.upsert

    def crash(*args, **kwargs):  # passages are in, the document list and manifest are not
        raise RuntimeError("killed")

    monkeypatch.setattr(client, "upsert", crash)
    with pytest.raises(RuntimeError, match="killed"):
        milvus_bot.add_documents([docs_dir / "tainan.txt"])
    monkeypatch.setattr(client, "upsert", real_upsert)
    assert "tainan.txt" not in milvus_bot.location.open().documents
    report = milvus_bot.update()
    assert report.added == ["tainan.txt"]
    index = milvus_bot.store
    assert len(index.chunks) == before + index.documents["tainan.txt"].chunks  # no duplicates left behind
    assert milvus_bot.retrieve("臺南市立圖書館什麼時候開館？", k=1)[0].source == "tainan.txt"


def test_a_second_server_sees_the_first_ones_writes(milvus_bot, docs_dir, monkeypatch):
    other = QABot(index_dir=milvus_bot.index_dir, docs_dir=docs_dir, embedder=HashEmbedder(),
                  store=milvus_bot.store_config)
    assert [d.name for d in other.documents()] == ["cppcc-local-work-conference.txt"]
    (docs_dir / "tainan.txt").write_text(NEW_DOC, encoding="utf-8")
    milvus_bot.add_documents([docs_dir / "tainan.txt"])
    monkeypatch.setattr(bot_module, "REFRESH_SECONDS", 0.0)
    assert [d.name for d in other.documents()] == ["cppcc-local-work-conference.txt", "tainan.txt"]
    assert other.retrieve("臺南市立圖書館什麼時候開館？", k=1)[0].source == "tainan.txt"


def test_migration_round_trip_keeps_every_passage_and_vector(milvus_bot, tmp_path):
    milvus = milvus_bot.store
    faiss_bot = QABot(index_dir=tmp_path / "faiss", embedder=HashEmbedder())
    faiss_index = migrate(milvus, faiss_bot.location)
    assert sorted((c.source, c.start, c.text) for c in faiss_index.chunks) == sorted(
        (c.source, c.start, c.text) for c in milvus.chunks
    )
    vectors, stored = milvus.vectors_by_text(set(milvus.documents)), faiss_index.vectors()
    assert all(np.allclose(stored[i], vectors[c.index_text()]) for i, c in enumerate(faiss_index.chunks))
    assert faiss_bot.retrieve("汪洋", k=1)[0].text == milvus_bot.retrieve("汪洋", k=1)[0].text
