"""The measured choice on unfreezing aiSFX's top block (``conv_block4``, 3.5 M of its 4.7 M parameters).

A short run on a class-balanced subset: block-3 feature maps are computed once (blocks 1-3 stay frozen in both arms),
then two arms train for the same steps from the same start with the same batches: (a) block 4 frozen + a linear head,
(b) block 4 trained at ``tower_lr`` (batch norms keep their statistics) + a linear head. Text: MiniLM, frozen,
identity head. Measured: zero-shot among the held-out classes and text-to-audio R@10 on their clips.
"""

from __future__ import annotations

import copy
import math
import time
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from clapkit.recipes.headtrain import soft_contrastive

CROP_FRAMES_SECONDS = 3.0


def _block3_maps(model, waveforms: list[np.ndarray], clip_samples: int) -> torch.Tensor:
    import dataclasses

    from clapkit.audio.fusion import prepare_batch

    config = dataclasses.replace(model.config.frontend, clip_samples=clip_samples)
    x = prepare_batch(waveforms, config, fusion=False, train=False).features
    tower = model.module.audio_tower
    with torch.inference_mode():
        for name in tower.block_names[:-1]:
            x = getattr(tower, name)(x, pool=True, max_pool=True)
    return x.half()


def _top(tower, maps: torch.Tensor) -> torch.Tensor:
    x = getattr(tower, tower.block_names[-1])(maps.float(), pool=False, max_pool=True)
    return x.mean(dim=3).amax(dim=2)


def compare(model, train_rows: Sequence[dict[str, Any]], captions: Sequence[Sequence[int]], text: np.ndarray,
            eval_rows: Sequence[dict[str, Any]], eval_prompts: np.ndarray, eval_captions: np.ndarray,
            per_class: int = 6, steps: int = 150, batch_size: int = 32, lr: float = 1e-3, tower_lr: float = 1e-4,
            seed: int = 0) -> dict[str, Any]:
    """``eval_prompts``: MiniLM embeddings of the held-out class prompts (sorted class order); ``eval_captions``: of
    each eval clip's caption. Returns both arms' numbers and wall times."""
    from clapkit.audio.io import load_audio
    from clapkit.recipes.corpus import readable_label

    rate = model.config.frontend.sample_rate
    by_class: dict[str, list[int]] = defaultdict(list)
    for i, row in enumerate(train_rows):
        by_class[row["class"]].append(i)
    subset = [i for c in sorted(by_class) for i in by_class[c][:per_class]]
    crop = int(CROP_FRAMES_SECONDS * rate)
    maps = torch.cat([_block3_maps(model, [load_audio(train_rows[i]["audio"], rate)[:crop] for i in subset[s:s + 32]],
                                   crop) for s in range(0, len(subset), 32)])
    eval_maps = torch.cat([_block3_maps(model, [load_audio(r["audio"], rate) for r in eval_rows[s:s + 32]],
                                        model.config.frontend.clip_samples) for s in range(0, len(eval_rows), 32)])
    classes = sorted({readable_label(r["class"]) for r in eval_rows})
    targets = np.array([classes.index(readable_label(r["class"])) for r in eval_rows])
    text_t = torch.as_tensor(text)
    results = {"subset_clips": len(subset), "steps": steps, "batch_size": batch_size}
    for arm, train_top in (("block 4 frozen", False), ("block 4 trained", True)):
        torch.manual_seed(seed)
        rng = np.random.default_rng(seed)
        tower = copy.deepcopy(model.module.audio_tower).eval()
        for p in tower.parameters():
            p.requires_grad_(train_top and any(p is q for q in getattr(tower, tower.block_names[-1]).parameters()))
        with torch.no_grad():
            start_feats = torch.cat([_top(tower, maps[s:s + 64]) for s in range(0, len(maps), 64)])
        mean, std = start_feats.mean(0), start_feats.std(0) + 1e-5
        head = torch.nn.Linear(start_feats.shape[1], text.shape[1])
        scale = torch.nn.Parameter(torch.tensor(math.log(1 / 0.07)))
        groups = [{"params": [*head.parameters(), scale], "lr": lr}]
        if train_top:
            groups.append({"params": [p for p in tower.parameters() if p.requires_grad], "lr": tower_lr})
        optimizer = torch.optim.AdamW(groups, weight_decay=0.01)
        t0 = time.time()
        for _step in range(steps):
            idx = rng.integers(0, len(subset), size=batch_size)
            ids = torch.as_tensor([captions[subset[i]][int(rng.integers(len(captions[subset[i]])))] for i in idx])
            feats = _top(tower, maps[torch.as_tensor(idx)]) if train_top else start_feats[torch.as_tensor(idx)]
            audio = F.normalize(head((feats - mean) / std), dim=-1)
            loss = soft_contrastive(audio, text_t[ids], ids, scale.exp().clamp(max=100))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            emb = torch.cat([_top(tower, eval_maps[s:s + 64]) for s in range(0, len(eval_maps), 64)])
            emb = F.normalize(head((emb - mean) / std), dim=-1).numpy().astype(np.float64)
        zero_shot = float(np.mean(np.argmax(emb @ eval_prompts.T, axis=1) == targets))
        sims = eval_captions @ emb.T  # each clip's own caption as the query
        ranks = (sims > np.diag(sims)[:, None]).sum(axis=1)
        results[arm] = {"zero_shot_heldout": zero_shot, "r10_own_clip": float(np.mean(ranks < 10)),
                        "train_seconds": round(time.time() - t0, 1)}
    return results
