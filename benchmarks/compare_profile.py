"""Helpers of ``benchmarks/compare_worker.py`` (clapkit sides): where one batch's time goes, and the zero-shot check
of the fast path on the sound corpus."""

from __future__ import annotations

import csv
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F


def _best(fn, repeats: int = 3) -> float:
    """Best wall time in ms of ``repeats`` calls (after one untimed call)."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e3 * min(times)


def audio_profile(model, waves: np.ndarray) -> dict:
    """ms per batch for each step of ``embed_audio`` (front end, image, patch embedding, each Swin stage, head)."""
    from clapkit.audio.fusion import prepare_batch

    tower, module = model.module.audio_tower, model.module
    rows: dict[str, float] = {}
    rows["front end (checks, int16 round trip, repeat-pad, STFT, mel, dB)"] = _best(
        lambda: prepare_batch(model.load_waveforms(waves, 48000)[0], model.config.frontend, fusion=False))
    feats = prepare_batch(list(waves), model.config.frontend, fusion=False).features
    with torch.inference_mode():
        image = lambda: tower.spectrogram_image(tower.bn0(feats.transpose(1, 3)).transpose(1, 3))  # noqa: E731
        rows["bn0 + bicubic stretch + fold to image"] = _best(image)
        img = image()
        rows["patch embedding (4x4 conv as matmul, layer norm)"] = _best(lambda: tower.patch_embed(img))
        x = tower.patch_embed(img)
        for i, stage in enumerate(tower.layers):
            rows[f"Swin stage {i + 1} ({len(stage.blocks)} blocks{' + patch merging' if stage.downsample else ''})"] = (
                _best(lambda stage=stage, x=x: stage(x)))
            x = stage(x)
        rows["final norm + mean pool + projection MLP + L2"] = _best(
            lambda: F.normalize(module.audio_projection(tower.norm(x).mean(1)), dim=-1))
        rows["total embed_audio (one call)"] = _best(lambda: model.embed_audio(waves, sample_rate=48000,
                                                                               batch_size=len(waves)))
    return rows


def top_ops(fn, count: int = 8) -> list[tuple[str, float]]:
    """The ``count`` most expensive operators (self CPU ms) of one call of ``fn``."""
    from torch.profiler import profile

    fn()
    with profile() as prof:
        fn()
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    return [(e.key, round(e.self_cpu_time_total / 1e3, 1)) for e in events[:count]]


def text_profile(model, captions: list[str]) -> dict:
    """ms per batch of 32 captions: tokenizer, embeddings, transformer layers, pooler, projection."""
    hf = model.module.text_tower.model
    rows: dict[str, float] = {"tokenizer (pad to longest)": _best(lambda: model.tokenize(captions))}
    tokens = model.tokenize(captions)
    ids, mask = tokens["input_ids"], tokens["attention_mask"]
    with torch.inference_mode():
        rows["embeddings"] = _best(lambda: hf.embeddings(input_ids=ids, token_type_ids=None))
        rows[f"{len(hf.encoder.layer)} transformer layers + pooler + projection (by difference)"] = 0.0
        total = _best(lambda: model.module.encode_text(ids, mask))
        rows[f"{len(hf.encoder.layer)} transformer layers + pooler + projection (by difference)"] = round(
            total - rows["embeddings"], 1)
        rows["total encode_text"] = total
    rows["sequence length"] = int(ids.shape[1])
    return rows


def train_profile(side) -> dict:
    """ms of each phase of the clapkit training step (batch 8): forward parts, loss, backward, AdamW."""
    from compare_worker import captions, waveforms

    from clapkit.audio.fusion import prepare_batch
    from clapkit.train.loss import ContrastiveLoss
    from clapkit.train.modeling import parameter_groups

    model = side.laion
    module, config = model.module, model.config
    wave, tokens = list(waveforms(8, 101)), model.tokenize(captions(8, 7))
    optimizer = torch.optim.AdamW(parameter_groups(module, 0.0), lr=1e-5, fused=True)
    rng, rows = np.random.default_rng(0), {}
    module.train()
    for _ in range(2):
        stamps = [time.perf_counter()]
        batch = prepare_batch(wave, config.frontend, fusion=False, train=True, generator=rng)
        stamps.append(time.perf_counter())
        audio = F.normalize(module.audio_features(batch.features, batch.is_longer), dim=-1)
        stamps.append(time.perf_counter())
        text = F.normalize(module.text_features(tokens["input_ids"], tokens["attention_mask"]), dim=-1)
        stamps.append(time.perf_counter())
        loss = ContrastiveLoss()(audio, text, module.audio_logit_scale.exp())
        stamps.append(time.perf_counter())
        loss.backward()
        stamps.append(time.perf_counter())
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        stamps.append(time.perf_counter())
        names = ["front end (train crops)", "audio forward (SpecAugment, drop path)",
                 f"text forward (L={tokens['input_ids'].shape[1]})", "loss", "backward (both towers)", "AdamW step"]
        for name, a, b in zip(names, stamps, stamps[1:], strict=False):
            rows[name] = min(rows.get(name, 1e9), round(1e3 * (b - a), 1))
    module.eval()
    return rows


def profile_clapkit(side, inputs: dict) -> dict:
    waves = inputs["audio_b8"]
    out = {"audio_b8": audio_profile(side.laion, waves)}
    with torch.inference_mode():
        out["audio_b8_top_ops"] = top_ops(lambda: side.laion.embed_audio(waves, sample_rate=48000, batch_size=8))
    if side.hf is not None:
        out["text_b32"] = text_profile(side.hf, inputs["text_b32"])
        out["train_b8"] = train_profile(side)
        out["train_b8_top_ops"] = top_ops(side.train_step, count=12)  # fp32, the step the ratio is taken on
        with torch.inference_mode():
            out["text_b32_top_ops"] = top_ops(lambda: side.hf.embed_text(inputs["text_b32"], batch_size=32))
    return out


def read_corpus(corpus: Path, limit: int | None) -> list[tuple[str, list[Path], list[str], list[str]]]:
    """[(set name, clip paths, class of each clip, class names)] for each ``<corpus>/<set>/meta.csv``."""
    sets = []
    for meta in sorted(corpus.glob("*/meta.csv")):
        with open(meta, newline="") as handle:
            rows = list(csv.DictReader(handle))
        if limit:
            rows = rows[:: max(1, len(rows) // limit)][:limit]
        classes = sorted({row["class"] for row in rows})
        sets.append((meta.parent.name, [meta.parent / row["path"] for row in rows], [row["class"] for row in rows],
                     classes))
    return sets


def zeroshot_check(side, corpus: Path, limit: int | None) -> dict:
    """fp32 vs accelerated audio embeddings on every corpus clip: cosine, and argmax over the class prompts."""
    if not (corpus / "debian" / "meta.csv").exists() and not list(corpus.glob("*/meta.csv")):
        return {"error": f"sound corpus not found at {corpus} (build one: clapkit data harvest --download PKG ... "
                         f"--out {corpus}/debian, docs/corpus.md); zero-shot check skipped"}
    fp32, fast = side.load_laion(), side.laion
    out = {"clips": 0, "changed": 0, "cos_min": 1.0, "cos_mean": 0.0, "sets": {}}
    cos_sum = 0.0
    for name, paths, labels, classes in read_corpus(corpus, limit):
        waves, _ = fp32.load_waveforms([str(p) for p in paths])
        text = fp32.label_embeddings(classes)
        ref, acc = fp32.embed_waveforms(waves), fast.embed_waveforms(waves)
        cos = (ref * acc).sum(1) / np.linalg.norm(ref, axis=1) / np.linalg.norm(acc, axis=1)
        ref_scores, acc_scores = ref @ text.T, acc @ text.T
        ref_pick, acc_pick = ref_scores.argmax(1), acc_scores.argmax(1)
        changed = ref_pick != acc_pick
        top2 = np.sort(ref_scores, axis=1)[:, -2:]
        margin = top2[:, 1] - top2[:, 0]  # fp32 cosine gap between the best and the second-best class
        error = float(np.abs(acc_scores - ref_scores).max())  # the largest change of any class score
        out["sets"][name] = {"clips": len(paths), "classes": len(classes), "changed": int(changed.sum()),
                             "score_error_max": error, "margin_quantiles": np.quantile(margin, [0, 0.1, 0.5]).tolist(),
                             "clips_margin_below_2x_error": int((margin < 2 * error).sum()),
                             "changed_margin_above_2x_error": int((changed & (margin >= 2 * error)).sum()),
                             "cos_min": float(cos.min()), "fp32_accuracy": float(
                                 np.mean([classes[i] == label for i, label in zip(ref_pick, labels, strict=True)]))}
        out["clips"] += len(paths)
        out["changed"] += int(changed.sum())
        out["cos_min"] = min(out["cos_min"], float(cos.min()))
        cos_sum += float(cos.sum())
    out["cos_mean"] = cos_sum / max(1, out["clips"])
    return out
