"""Cached frozen-tower features of the default-model recipe: aiSFX is frozen, so its 512-d clip features are computed
ONCE per view and the heads then train in minutes.

Per training clip ``views`` augmented ``augment.augment_view`` crops of ``CROP_SECONDS`` (optionally also the clip
as the shipped model sees it: the first 5 s, shorter clips repeated; held-out clips get that view only).
Two-source mixtures (``augment.mix_pair``) get one feature each. MiniLM embeddings (384-d, normalised;
the text tower is frozen too) are cached for every distinct text. Everything is seeded per clip (from its file), so
the result does not depend on threads, chunking or row order; every clip's features are cached as they finish, so
an interrupted run resumes and a grown corpus costs only its new clips.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch

from clapkit.errors import AudioError
from clapkit.recipes import augment

log = logging.getLogger(__name__)

CROP_SECONDS = 3.0
MAX_SECONDS = 30.0  # longer files: only their first 30 s are read for crops
CHUNK = 32


def _tower_features(model, waveforms: list[np.ndarray], clip_samples: int) -> np.ndarray:
    from clapkit.audio.fusion import prepare_batch

    config = dataclasses.replace(model.config.frontend, clip_samples=clip_samples)
    batch = prepare_batch(waveforms, config, fusion=False, train=False)
    with torch.inference_mode():
        return model.module.audio_tower(batch.features).float().numpy()


def _load(path: str, sample_rate: int) -> np.ndarray:
    from clapkit.audio.io import load_audio

    x = load_audio(path, sample_rate)
    return x[: int(MAX_SECONDS * sample_rate)]


def _key(*parts: object) -> str:
    return hashlib.sha1("|".join(str(p) for p in parts).encode()).hexdigest()


def _file_key(path: str) -> str:
    """The file's identity: device, inode, size and mtime (a hard link to a cached file is the same file)."""
    try:
        stat = Path(path).stat()
    except OSError:
        return f"missing:{path}"
    return f"{stat.st_dev}:{stat.st_ino}:{stat.st_size}:{stat.st_mtime_ns}"


def _seed(key: str) -> list[int]:
    return [int(key[i : i + 8], 16) for i in range(0, 16, 8)]


def _views_of(path: str, keys: Sequence[str], sample_rate: int, backgrounds: Sequence[np.ndarray] = (),
              room: bool = False) -> tuple[np.ndarray | None, list[np.ndarray], str]:
    """The waveform (for the clean view) and one augmented crop per key in ``keys`` (each seeded by its key; noise
    from ``backgrounds`` or coloured noise)."""
    try:
        x = _load(path, sample_rate)
    except AudioError as exc:
        return None, [], str(exc)
    if len(x) == 0 or not np.any(x):
        return None, [], f"{path}: silent"
    crop_samples = int(CROP_SECONDS * sample_rate)
    crops = [augment.augment_view(x, sample_rate, np.random.default_rng(_seed(k)), crop_samples, backgrounds,
                                  room)[0] for k in keys]
    return x, crops, ""


def load_backgrounds(rows: Sequence[dict[str, Any]], sample_rate: int) -> tuple[list[np.ndarray], str]:
    """The waveforms of background clips (``rows``; unreadable or silent ones left out) and a key naming the set."""
    out, names = [], []
    for row in rows:
        try:
            x = _load(row["audio"], sample_rate)
        except AudioError:
            continue
        if len(x) and np.any(x):
            out.append(x)
            names.append(_file_key(row["audio"]))
    return out, _key("backgrounds", *names) if out else ""


def clip_features(model, rows: Sequence[dict[str, Any]], cache: Path, views: int, seed: int = 0,
                  quiet: bool = False, what: str = "clips", clean: bool = True,
                  backgrounds: tuple[list[np.ndarray], str] = ([], ""),
                  room: bool = False) -> tuple[np.ndarray, dict[str, str]]:
    """(len(rows), views, 512) float32 (NaN: a clip that could not be read) and ``{audio path: reason}`` of the
    skipped clips. With ``clean``, view 0 is the clip as the shipped model sees it and views 1.. are augmented;
    without, all ``views`` are augmented crops. Every view is cached as ``cache/<key>.npy`` (key: the file's identity
    and the view: clean, or augmented number k with the seed), so a grown corpus only costs its new clips and hard
    links hit the cache. ``backgrounds`` (``load_backgrounds``) are mixed in as noise; their key is part of every
    augmented view's key, and so is ``room`` (``augment.augment_view``) when on."""
    from tqdm import tqdm

    cache = Path(cache)
    cache.mkdir(parents=True, exist_ok=True)
    rate = model.config.frontend.sample_rate
    noise, noise_key = backgrounds
    clean_samples, crop_samples = model.config.frontend.clip_samples, int(CROP_SECONDS * rate)
    files = [_file_key(r["audio"]) for r in rows]
    first = 1 if clean else 0
    keys = [([_key(f, "clean", clean_samples)] if clean else [])
            + [_key(f, "aug", k, seed, CROP_SECONDS, *([noise_key] if noise_key else []),
                    *(["room"] if room else []))
               for k in range(1, views + 1 - first)] for f in files]
    bad = {f: (cache / f"{_key(f)}.skip").read_text() for f in set(files) if (cache / f"{_key(f)}.skip").is_file()}
    todo = [i for i, ks in enumerate(keys) if files[i] not in bad and not all((cache / f"{k}.npy").is_file()
                                                                             for k in ks)]
    with ThreadPoolExecutor(2) as pool:
        for start in tqdm(range(0, len(todo), CHUNK), desc=f"aiSFX features ({what}, {views} view(s))",
                          disable=quiet, unit="chunk"):
            chunk = todo[start : start + CHUNK]
            need = {i: [k for k in keys[i] if not (cache / f"{k}.npy").is_file()] for i in chunk}
            jobs = [(rows[i]["audio"], [k for k in need[i] if not (clean and k == keys[i][0])]) for i in chunk]
            loaded = list(pool.map(lambda job: _views_of(job[0], job[1], rate, noise, room), jobs))
            for i, (x, _, reason) in zip(chunk, loaded):
                if x is None:
                    bad[files[i]] = reason
                    (cache / f"{_key(files[i])}.skip").write_text(reason)
                    log.warning("skipped %s: %s", rows[i]["audio"], reason)
            whole = [(i, x) for i, (x, _, _) in zip(chunk, loaded) if x is not None and clean and keys[i][0] in need[i]]
            if whole:
                for (i, _), f in zip(whole, _tower_features(model, [x for _, x in whole], clean_samples)):
                    np.save(cache / f"{keys[i][0]}.npy", f)
            crops = [(k, v) for (_, aug), (x, vs, _) in zip(jobs, loaded) if x is not None for k, v in zip(aug, vs)]
            if crops:
                for (k, _), f in zip(crops, _tower_features(model, [v for _, v in crops], crop_samples)):
                    np.save(cache / f"{k}.npy", f)
    out = np.full((len(rows), views, 512), np.nan, np.float32)
    for i, ks in enumerate(keys):
        if files[i] not in bad:
            out[i] = np.stack([np.load(cache / f"{k}.npy") for k in ks])
    return out, {r["audio"]: bad[f] for r, f in zip(rows, files) if f in bad}


def mixture_features(model, rows: Sequence[dict[str, Any]], pairs: Sequence[tuple[int, int]], cache: Path,
                     seed: int = 0, quiet: bool = False) -> np.ndarray:
    """(len(pairs), 512): one ``mix_pair`` crop of each pair of training clips (NaN: unreadable), cached per pair."""
    from tqdm import tqdm

    cache = Path(cache)
    cache.mkdir(parents=True, exist_ok=True)
    rate = model.config.frontend.sample_rate
    crop_samples = int(CROP_SECONDS * rate)
    keys = [_key("mix", _file_key(rows[i]["audio"]), _file_key(rows[j]["audio"]), seed, CROP_SECONDS)
            for i, j in pairs]

    def make(k: int) -> np.ndarray | None:
        i, j = pairs[k]
        try:
            a, b = _load(rows[i]["audio"], rate), _load(rows[j]["audio"], rate)
        except AudioError:
            return None
        if not (np.any(a) and np.any(b)):
            return None
        return augment.mix_pair(a, b, np.random.default_rng(_seed(keys[k])), crop_samples)

    todo = [k for k, key in enumerate(keys) if not (cache / f"{key}.npy").is_file()
            and not (cache / f"{key}.skip").is_file()]
    with ThreadPoolExecutor(2) as pool:
        for start in tqdm(range(0, len(todo), CHUNK), desc="aiSFX features (mixtures)", disable=quiet,
                          unit="chunk"):
            ks = todo[start : start + CHUNK]
            mixes = list(pool.map(make, ks))
            for k, m in zip(ks, mixes):
                if m is None:
                    (cache / f"{keys[k]}.skip").write_text("unreadable")
            ok = [(k, m) for k, m in zip(ks, mixes) if m is not None]
            if ok:
                feats = _tower_features(model, [m for _, m in ok], crop_samples)
                for (k, _), f in zip(ok, feats):
                    np.save(cache / f"{keys[k]}.npy", f)
    out = np.full((len(pairs), 512), np.nan, np.float32)
    for k, key in enumerate(keys):
        if (cache / f"{key}.npy").is_file():
            out[k] = np.load(cache / f"{key}.npy")
    return out


def text_embeddings(model, texts: Sequence[str], out: Path, quiet: bool = False,
                    batch_size: int = 128) -> np.ndarray:
    """MiniLM's normalised mean-pooled embeddings (the frozen text tower, before any head) of ``texts``; a store of
    every text embedded so far (``out.npy`` + ``out.json``) means a re-run embeds only new texts."""
    from tqdm import tqdm

    final, listing = Path(out).with_suffix(".npy"), Path(out).with_suffix(".json")
    known: list[str] = json.loads(listing.read_text()) if final.is_file() and listing.is_file() else []
    store = np.load(final) if known else np.zeros((0, model.config.text.width), np.float32)
    index = {t: i for i, t in enumerate(known)}
    new = sorted({t for t in texts if t not in index}, key=lambda t: (len(t), t))  # length buckets: less padding
    fresh = np.zeros((len(new), model.config.text.width), np.float32)
    for start in tqdm(range(0, len(new), batch_size), desc="MiniLM text embeddings", disable=quiet or not new,
                      unit="batch"):
        tokens = model.tokenize(new[start : start + batch_size])
        with torch.inference_mode():
            pooled = model.module.text_tower(tokens["input_ids"], tokens["attention_mask"])
        fresh[start : start + len(pooled)] = torch.nn.functional.normalize(pooled, dim=-1).float().numpy()
    if new:
        store = np.concatenate([store, fresh])
        known += new
        index.update({t: len(index) + i for i, t in enumerate(new)})
        np.save(final, store)
        listing.write_text(json.dumps(known) + "\n")
    return store[[index[t] for t in texts]]
