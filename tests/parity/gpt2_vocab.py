"""A small byte-level BPE vocabulary in GPT-2's file format (``vocab.json`` + ``merges.txt``), built offline.

No GPT-2 vocabulary exists on this machine. This one has GPT-2's structure where it matters to MS-CLAP: the 256
byte symbols first, in GPT-2's ``bytes_to_unicode`` order (so ``!`` is id 0 and the space ``Ġ`` is id 220, as in
GPT-2), then merges learned from a fixed caption corpus (a tiny deterministic BPE trainer), optional filler tokens
up to ``vocab_size``, and ``<|endoftext|>`` last. Pure Python: the reference environment and clapkit's both use it.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

CORPUS = [
    "a dog barks in the distance", "a man speaks while birds chirp", "rain falls on a metal roof",
    "a car passes by on a busy street", "people talk and laugh in a small room", "a bell rings twice",
    "water flows in a stream near the forest", "an engine hums and a door creaks", "thunder rumbles at night",
    "a woman sings while a piano plays", "footsteps on a wooden floor", "wind blows through the trees",
    "a crowd cheers loudly", "a baby cries and a phone rings", "a train horn sounds in the distance",
]


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte -> printable character table."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    order, codes = list(printable), list(printable)
    for b in range(256):
        if b not in printable:
            order.append(b)
            codes.append(256 + len(codes) - len(printable))
    return {b: chr(c) for b, c in zip(order, codes)}


def train_merges(corpus: list[str], count: int) -> list[tuple[str, str]]:
    """``count`` BPE merges: the most frequent adjacent pair each time (ties: the smallest pair)."""
    table = bytes_to_unicode()
    words = Counter()
    for text in corpus:
        for piece in re.findall(r" ?[A-Za-z]+| ?[0-9]+| ?[^\sA-Za-z0-9]+|\s+", text):
            words[tuple(table[b] for b in piece.encode())] += 1
    merges: list[tuple[str, str]] = []
    for _ in range(count):
        pairs = Counter()
        for word, n in words.items():
            for pair in zip(word, word[1:]):
                pairs[pair] += n
        if not pairs:
            break
        best = min(pairs, key=lambda p: (-pairs[p], p))
        merges.append(best)
        merged = Counter()
        for word, n in words.items():
            out, i = [], 0
            while i < len(word):
                if i + 1 < len(word) and (word[i], word[i + 1]) == best:
                    out.append(word[i] + word[i + 1])
                    i += 2
                else:
                    out.append(word[i])
                    i += 1
            merged[tuple(out)] += n
        words = merged
    return merges


def write_gpt2_tokenizer(directory: str | Path, merges: int = 200, vocab_size: int | None = None) -> int:
    """Write ``vocab.json``, ``merges.txt`` and ``tokenizer_config.json`` to ``directory``; return the vocab size."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    vocab = {ch: i for i, ch in enumerate(bytes_to_unicode().values())}
    learned = train_merges(CORPUS, merges)
    for a, b in learned:
        vocab.setdefault(a + b, len(vocab))
    if vocab_size is not None:  # fillers (never produced by merges, decoded as text): GPT-2's size for benchmarks
        while len(vocab) < vocab_size - 1:
            vocab[f"Ġfill{len(vocab)}"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    (directory / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    lines = "\n".join(f"{a} {b}" for a, b in learned)
    (directory / "merges.txt").write_text("#version: 0.2\n" + lines + "\n", encoding="utf-8")
    config = {"model_max_length": 1024, "tokenizer_class": "GPT2Tokenizer", "bos_token": "<|endoftext|>",
              "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>"}
    (directory / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")
    return len(vocab)
