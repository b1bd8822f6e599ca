"""The public CLAP checkpoints clapkit knows by name: where each lives on the Hugging Face hub and what it is for.

This table is the one place the names are defined: ``clapkit models --public``, the README's table and
``clapkit.load(NAME)`` / ``clapkit download NAME`` (``clapkit.hub``) all read it. Pure data, no
``huggingface_hub`` import: checking whether a string is a hub name stays cheap on the path of ``load(path)``.

Numbers are the anchors' own published ones, with their source; "(?)" marks a fact we could not confirm.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

LAION_README = "LAION-CLAP README (github.com/LAION-AI/CLAP)"
LAION_LICENCE = "CC0-1.0 (lukewys/laion_clap model card; LAION-AI/CLAP repository licence)"
HF_LICENCE = "Apache-2.0 (model card)"
MS_LICENCE = "MIT (microsoft/CLAP repository and the msclap package)"


@dataclass(frozen=True)
class PublicCheckpoint:
    name: str
    repo: str  # hub repo id
    filename: str | None  # a single weights file in ``repo``; None: the repo is a transformers directory
    family: str  # laion | msclap | clapcap | hf
    architecture: str  # clapkit registry name of what the file holds (`clapkit models`)
    tokenizer: str  # hub repo of the tokenizer; "in repo" (HF directories ship theirs) or "bundled"
    licence: str
    good_for: str
    numbers: str  # published numbers, with their source

    @property
    def tokenizer_repo(self) -> str | None:
        return None if self.tokenizer in ("in repo", "bundled") else self.tokenizer


def _laion(name, architecture, good_for, numbers):
    return PublicCheckpoint(name, "lukewys/laion_clap", f"{name}.pt", "laion", architecture, "roberta-base",
                            LAION_LICENCE, good_for, numbers)


def _hf(repo, architecture, good_for, numbers):
    return PublicCheckpoint(repo, repo, None, "hf", architecture, "in repo", HF_LICENCE, good_for, numbers)


PUBLIC: tuple[PublicCheckpoint, ...] = (
    _laion("630k-best", "laion-htsat-tiny", "general audio clips up to 10 s (LAION-Audio-630K only)",
           f"{LAION_README}: recommended 'for general audio less than 10-sec'; trained on LAION-Audio-630K"),
    _laion("630k-audioset-best", "laion-htsat-tiny",
           "general audio clips up to 10 s; laion_clap's default non-fusion model",
           f"{LAION_README}: ESC-50 fold-1 zero-shot R@1 0.9275, mAP@10 0.9556 with the pip default (this file); "
           "trained on LAION-Audio-630K + AudioSet"),
    _laion("630k-fusion-best", "laion-htsat-tiny-fusion", "variable-length audio (fusion; LAION-Audio-630K only)",
           f"{LAION_README}: recommended 'for general audio with variable-length'"),
    _laion("630k-audioset-fusion-best", "laion-htsat-tiny-fusion",
           "variable-length audio (fusion); laion_clap's default fusion model",
           f"{LAION_README}: ESC-50 fold-1 zero-shot R@1 0.9050, mAP@10 0.9407 with the pip fusion default "
           "(this file)"),
    _laion("music_audioset_epoch_15_esc_90.14", "laion-htsat-base", "music (HTSAT-base, not fusion)",
           f"{LAION_README}: zero-shot ESC-50 90.14%, GTZAN 64%; music + AudioSet + LAION-Audio-630K"),
    _laion("music_speech_epoch_15_esc_89.25", "laion-htsat-base", "music and speech (HTSAT-base, not fusion)",
           f"{LAION_README}: zero-shot ESC-50 89.25%, GTZAN 73%; music + speech + LAION-Audio-630K"),
    _laion("music_speech_audioset_epoch_15_esc_89.98", "laion-htsat-base",
           "speech, music and general audio (HTSAT-base, not fusion; ~4M training samples)",
           f"{LAION_README}: zero-shot ESC-50 89.98%, GTZAN 73%; music + speech + AudioSet + LAION-Audio-630K"),
    PublicCheckpoint("CLAP_weights_2022", "microsoft/msclap", "CLAP_weights_2022.pth", "msclap", "ms-clap-2022",
                     "bundled", MS_LICENCE, "general audio, 5 s clips at 44.1 kHz (Cnn14 + BERT)",
                     "MS-CLAP paper (Elizalde et al., ICASSP 2023): zero-shot ESC-50 82.6% (?); 128k training "
                     "pairs"),
    PublicCheckpoint("CLAP_weights_2023", "microsoft/msclap", "CLAP_weights_2023.pth", "msclap", "ms-clap-2023",
                     "gpt2", MS_LICENCE, "general audio, 7 s clips at 44.1 kHz (HTSAT + GPT-2); msclap's default",
                     "microsoft/CLAP README: zero-shot ESC-50 93.9% (version 2023); paper arXiv:2309.05767"),
    PublicCheckpoint("clapcap_weights_2023", "microsoft/msclap", "clapcap_weights_2023.pth", "clapcap",
                     "ms-clap-clapcap", "gpt2", MS_LICENCE,
                     "audio captioning (2023 audio encoder + GPT-2 decoder): model.caption, clapkit caption",
                     "microsoft/CLAP README: 'the audio captioning model that uses the 2023 encoders'"),
    _hf("laion/clap-htsat-unfused", "laion-htsat-tiny", "general audio up to 10 s; transformers' CLAP port",
        "transformers port of a LAION HTSAT-tiny + RoBERTa checkpoint (which .pt it was converted from: ?)"),
    _hf("laion/clap-htsat-fused", "laion-htsat-tiny-fusion", "variable-length audio (fusion); transformers port",
        "transformers port of a LAION HTSAT-tiny fusion checkpoint (which .pt: ?)"),
    _hf("laion/larger_clap_general", "laion-htsat-base", "speech, music and general audio; transformers port",
        f"port of music_speech_audioset_epoch_15_esc_89.98 (?): {LAION_README} ESC-50 89.98%, GTZAN 73%"),
    _hf("laion/larger_clap_music", "laion-htsat-base", "music; transformers port",
        f"port of music_audioset_epoch_15_esc_90.14 (?): {LAION_README} ESC-50 90.14%, GTZAN 64%"),
    _hf("laion/larger_clap_music_and_speech", "laion-htsat-base", "music and speech; transformers port",
        f"port of music_speech_epoch_15_esc_89.25 (?): {LAION_README} ESC-50 89.25%, GTZAN 73%"),
)

# tokenizer kind (TextTowerConfig.tokenizer) -> the hub repo its files come from; "bert" also ships with clapkit
TOKENIZERS: dict[str, str] = {
    "roberta": "roberta-base", "bert": "bert-base-uncased", "gpt2": "gpt2", "bart": "facebook/bart-base",
    "t5": "google/flan-t5-large",
}  # fmt: skip
TOKENIZER_LICENCES = {
    "roberta-base": "MIT", "bert-base-uncased": "Apache-2.0", "gpt2": "MIT", "facebook/bart-base": "Apache-2.0",
    "google/flan-t5-large": "Apache-2.0",
}  # fmt: skip

_WEIGHT_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt", ".safetensors")
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+(/[\w./-]+\.(pt|pth|bin|ckpt|safetensors))?$")


def markdown_table() -> str:
    """The table as Markdown (the README's copy is this text: ``clapkit models --public --markdown``)."""
    rows = ["| name | hub file | architecture | tokenizer | licence | good for; published numbers |",
            "|---|---|---|---|---|---|"]
    for e in PUBLIC:
        where = f"`{e.repo}/{e.filename}`" if e.filename else f"`{e.repo}` (transformers directory)"
        rows.append(f"| `{e.name}` | {where} | {e.architecture} ({e.family}) | {e.tokenizer} | "
                    f"{e.licence.split(' (')[0]} | {e.good_for}; {e.numbers} |")
    return "\n".join(rows) + "\n"


def find_public(name: str) -> PublicCheckpoint | None:
    """The entry called ``name`` (or whose file is ``name``, e.g. ``630k-audioset-best.pt``)."""
    for entry in PUBLIC:
        if name in (entry.name, entry.filename):
            return entry
    return None


def looks_like_hub_name(name: str) -> bool:
    """True for a public name, a hub repo id ``ORG/NAME`` or a file in one ``ORG/NAME/FILE.pt`` that is not a local
    path (a local file or directory always wins, as in transformers)."""
    if Path(name).exists():
        return False
    if find_public(name) is not None or name in TOKENIZERS.values():
        return True
    # "dir/file.pt" is a missing local file, not a repo id (repo names may hold dots, not weights suffixes)
    return bool(_REPO_ID.match(name)) and not (name.count("/") == 1 and name.endswith(_WEIGHT_SUFFIXES))
