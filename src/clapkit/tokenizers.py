"""Tokenizers for the text towers, loaded from local files only.

- bert (BERT, MiniLM): bundled, ``clapkit/assets/bert-base-uncased-vocab.txt``.
- roberta (also BART's: the same byte-level BPE), gpt2, t5 (Flan-T5's sentencepiece): a local directory with the
  tokenizer files (``vocab.json`` + ``merges.txt``, ``spiece.model`` or ``tokenizer.json``), given as ``tokenizer=``
  or found under ``$CLAPKIT_TOKENIZERS/<roberta-base|gpt2|flan-t5-large>``.
- clip: a local directory, or ``bpe_simple_vocab_16e6.txt.gz`` from an installed ``open_clip_torch`` / ``laion_clap``
  distribution (read as a file, never imported).

Captions are padded to the longest in the batch (not to the context length): the towers mask padding, so the
embeddings are the same as with LAION's pad-to-77 and far cheaper. (The BART and T5 towers average over pad positions
too: they pad to the context length themselves, see ``models/text.py``.)
"""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Sequence
from importlib import metadata, resources
from pathlib import Path

import torch

from clapkit.config import TextTowerConfig
from clapkit.errors import TokenizerError
from clapkit.files import write_text_atomic

_HUB_NAMES = {"roberta": "roberta-base", "gpt2": "gpt2", "bert": "bert-base-uncased", "clip": "clip",
              "t5": "flan-t5-large"}


class TextTokenizer:
    """Turns captions into ``input_ids``/``attention_mask`` tensors for one text tower."""

    def __init__(self, hf_tokenizer, kind: str, context_length: int):
        self.hf_tokenizer = hf_tokenizer
        self.kind = kind
        self.context_length = context_length

    def __call__(self, texts: list[str]) -> dict[str, torch.Tensor]:
        texts = validate_captions(texts)
        if self.kind == "gpt2":  # MS-CLAP 2023 appends the end-of-text token to every caption
            texts = [t + " <|endoftext|>" for t in texts]
        enc = self.hf_tokenizer(
            texts, padding="longest", truncation=True, max_length=self.context_length, return_tensors="pt"
        )
        ids = enc["input_ids"]
        if self.kind == "clip":  # open_clip pads with 0 (a real '!' stays '!</w>', id 256)
            ids = ids.masked_fill(enc["attention_mask"] == 0, 0)
        return {"input_ids": ids, "attention_mask": enc["attention_mask"]}


    def unknown_only(self, texts: Sequence[str]) -> list[str]:
        """The texts this vocabulary knows nothing of: every token is the unknown token (or there are none), so the
        text tower sees the same input for all of them (e.g. emoji for a BERT vocabulary). Byte-level BPE
        vocabularies (CLIP, GPT-2, RoBERTa) know every text: always []."""
        unk = getattr(self.hf_tokenizer, "unk_token_id", None)
        found = []
        for text in texts:
            ids = self.hf_tokenizer(text, add_special_tokens=False)["input_ids"]
            if not ids or (unk is not None and all(i == unk for i in ids)):
                found.append(text)
        return found


def validate_captions(texts) -> list[str]:
    if isinstance(texts, str):
        texts = [texts]
    texts = list(texts)
    if not texts:
        raise TokenizerError("no captions given: pass a non-empty list of strings")
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TokenizerError(f"caption[{i}] is a {type(text).__name__}, not a string: {text!r}")
        if not text.strip():
            raise TokenizerError(f"caption[{i}] is empty: give each caption some words")
    return texts


def load_tokenizer(config: TextTowerConfig, path: str | Path | None = None) -> TextTokenizer:
    """The tokenizer for ``config`` from ``path`` (a local directory), or from what ships offline."""
    kind = config.tokenizer
    if path is None:
        path = _find_local(kind)
    if path is None:
        raise TokenizerError(_missing_message(kind))
    path = Path(path)
    if not path.exists():
        raise TokenizerError(f"tokenizer directory {path} does not exist. {_missing_message(kind)}")
    return TextTokenizer(_from_files(kind, path), kind, config.context_length)


def _find_local(kind: str) -> Path | None:
    root = os.environ.get("CLAPKIT_TOKENIZERS")
    if root and (Path(root) / _HUB_NAMES[kind]).is_dir():
        return Path(root) / _HUB_NAMES[kind]
    if kind == "bert":
        return Path(str(resources.files("clapkit") / "assets" / "bert-base-uncased-vocab.txt"))
    if kind == "clip":
        return _find_clip_bpe()
    return _find_in_hub_cache(kind)


def _find_in_hub_cache(kind: str) -> Path | None:
    """The tokenizer's hub repo (``clapkit.public.TOKENIZERS``) in the local Hugging Face cache; no network."""
    from clapkit.public import TOKENIZERS

    if kind not in TOKENIZERS:
        return None
    from clapkit.hub import cached_tokenizer_dir

    return cached_tokenizer_dir(TOKENIZERS[kind])


def _find_clip_bpe() -> Path | None:
    for dist in ("open_clip_torch", "laion_clap"):
        try:
            files = metadata.files(dist) or []
        except metadata.PackageNotFoundError:
            continue
        for f in files:
            if f.name == "bpe_simple_vocab_16e6.txt.gz":
                return Path(f.locate())
    return None


def _missing_message(kind: str) -> str:
    name = _HUB_NAMES.get(kind, kind)
    return (
        f"no {kind} tokenizer available offline. Fetch it into the Hugging Face cache with `clapkit download {name}`"
        " (clapkit then finds it there), or save one where clapkit can read it, e.g. on a machine with access: "
        f"`AutoTokenizer.from_pretrained('{name}').save_pretrained('tokenizers/{name}')`, copy that folder here and "
        f"pass tokenizer='tokenizers/{name}' (or set CLAPKIT_TOKENIZERS=tokenizers). Without a tokenizer, "
        f"model.encode_text(input_ids, attention_mask) still works on pre-tokenised input."
    )


class BertWordPiece:
    """BERT's uncased WordPiece tokenizer made with the ``tokenizers`` library itself: the same normaliser,
    pre-tokeniser, WordPiece model and ``[CLS] ... [SEP]`` template that transformers' ``BertTokenizerFast(vocab,
    do_lower_case=True)`` assembles (``tests/test_tokenizers.py`` compares the ids), without importing transformers
    (seconds of start-up). Called like a transformers tokenizer with right padding to the longest caption."""

    def __init__(self, vocab_file: Path):
        from tokenizers import Tokenizer, normalizers, pre_tokenizers, processors
        from tokenizers.models import WordPiece

        try:
            tokenizer = Tokenizer(WordPiece.from_file(str(vocab_file), unk_token="[UNK]", max_input_chars_per_word=100))
        except Exception as exc:  # the Rust library raises a bare Exception for unreadable files
            raise ValueError(str(exc)) from None
        specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        ids = {token: tokenizer.token_to_id(token) for token in specials}
        if None in ids.values():
            lacking = [token for token, i in ids.items() if i is None]
            raise ValueError(f"{vocab_file} is not a BERT vocabulary (it lacks {lacking})")
        tokenizer.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True,
                                                          strip_accents=None, lowercase=True)
        tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tokenizer.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
            special_tokens=[("[CLS]", ids["[CLS]"]), ("[SEP]", ids["[SEP]"])])
        tokenizer.add_special_tokens(specials)  # written in a caption they are those tokens, as in transformers
        self.tokenizer, self.pad_id, self.unk_token_id = tokenizer, ids["[PAD]"], ids["[UNK]"]

    def __call__(self, texts: str | list[str], padding: str = "longest", truncation: bool = False,
                 max_length: int | None = None, return_tensors: str | None = None,
                 add_special_tokens: bool = True) -> dict:
        """As transformers' tokenizers: a caption or a list; with ``return_tensors="pt"`` right-padded tensors."""
        wanted = {"max_length": max_length} if truncation and max_length else None
        if (self.tokenizer.truncation or {}).get("max_length") != (wanted or {}).get("max_length"):
            if wanted:
                self.tokenizer.enable_truncation(max_length)
            else:
                self.tokenizer.no_truncation()
        batch = [texts] if isinstance(texts, str) else list(texts)
        ids = [e.ids for e in self.tokenizer.encode_batch(batch, add_special_tokens=add_special_tokens)]
        if return_tensors != "pt":
            masks = [[1] * len(row) for row in ids]
            return {"input_ids": ids[0], "attention_mask": masks[0]} if isinstance(texts, str) else \
                {"input_ids": ids, "attention_mask": masks}
        longest = max(len(row) for row in ids)
        input_ids = torch.full((len(ids), longest), self.pad_id, dtype=torch.long)
        attention_mask = torch.zeros((len(ids), longest), dtype=torch.long)
        for i, row in enumerate(ids):
            input_ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
            attention_mask[i, : len(row)] = 1
        return {"input_ids": input_ids, "attention_mask": attention_mask}


def _from_files(kind: str, path: Path):
    try:
        if kind == "bert":
            return BertWordPiece(path / "vocab.txt" if path.is_dir() else path)
        from transformers import AutoTokenizer

        if kind == "clip" and path.name.endswith(".txt.gz"):
            return _clip_from_bpe(path)
        tok = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    except (OSError, ValueError) as exc:
        raise TokenizerError(
            f"could not read a {kind} tokenizer from {path}: {exc}. {_missing_message(kind)}"
        ) from None
    if kind == "gpt2" and tok.pad_token is None:
        tok.add_special_tokens({"pad_token": "!"})  # as MS-CLAP does: '!' is id 0
    return tok


def _clip_from_bpe(bpe_path: Path):
    """Build CLIP's tokenizer from the original ``bpe_simple_vocab_16e6.txt.gz`` merges file."""
    from transformers import CLIPTokenizer

    cache = Path(os.environ.get("CLAPKIT_CACHE", Path.home() / ".cache" / "clapkit")) / "clip-tokenizer"
    if not (cache / "vocab.json").exists():
        lines = gzip.open(bpe_path, "rt", encoding="utf-8").read().split("\n")
        merges = lines[1 : 49152 - 256 - 2 + 1]
        alphabet = list(_bytes_to_unicode().values())
        vocab = alphabet + [c + "</w>" for c in alphabet] + ["".join(m.split()) for m in merges]
        vocab += ["<|startoftext|>", "<|endoftext|>"]
        cache.mkdir(parents=True, exist_ok=True)
        write_text_atomic(cache / "merges.txt", "#version: 0.2\n" + "\n".join(merges) + "\n")
        write_text_atomic(cache / "vocab.json", json.dumps({t: i for i, t in enumerate(vocab)}))  # last: the marker
    # pad with an existing special token: pad_token="!" would make every '!' in a caption a special token (id 0);
    # TextTokenizer writes open_clip's pad id 0 into the padded positions
    return CLIPTokenizer(str(cache / "vocab.json"), str(cache / "merges.txt"), pad_token="<|endoftext|>")


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's reversible byte -> printable character table."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    codes = list(printable)
    order = list(printable)
    for b in range(256):
        if b not in printable:
            order.append(b)
            codes.append(256 + len(codes) - len(printable))
    return {b: chr(c) for b, c in zip(order, codes)}
