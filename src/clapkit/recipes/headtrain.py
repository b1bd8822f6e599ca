"""Training the default model's heads on cached features (``features``): minutes on a CPU, bit-reproducible on one
machine (another CPU instruction set rounds differently: another draw within the seed spread).

Audio: standardised aiSFX features (mean/std of the training views), with dropout on them while training
(``input_dropout``: a head that cannot lean on a few feature dimensions names recordings from other sources better)
-> a linear or 2-layer MLP head. Text: MiniLM's normalised embedding -> the identity (LiT-style: MiniLM's 384-d
space stays fixed, the audio side learns to point into it) or a trainable MLP; optionally centred by the mean
embedding of the training captions (hubness correction; shipped as the text head's ``centre`` buffer). Loss:
symmetric contrastive with a learned temperature, where rows that share a caption count as positives of each other
(soft targets). Batches: ``augment.balanced_weights`` over the clips (or uniform), a random cached view, a random
caption of the clip; a share ``p_mix`` are two-source mixtures.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from clapkit.config import HeadConfig
from clapkit.models.heads import build_projection
from clapkit.recipes.augment import balanced_weights

MAX_LOGIT_SCALE = math.log(100.0)


@dataclass(frozen=True)
class HeadOptions:
    audio_head: str = "linear"  # "linear" | "laion_mlp"
    text_head: str = "identity"  # "identity" | "laion_mlp"
    centre: bool = False  # subtract the mean training-caption embedding on the text side
    balanced: bool = True
    balance_power: float = 0.0  # with balanced: a class drawn in proportion to (its clips) ** balance_power
    p_mix: float = 0.2
    input_dropout: float = 0.0  # dropout on the standardised aiSFX features while training (none at inference)
    steps: int = 1000
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 0.01
    warmup: int = 100
    seed: int = 0


@dataclass
class TrainData:
    features: np.ndarray  # (N, K, 512), NaN rows for clips that failed to decode
    captions: list[list[int]]  # per clip: indices into ``text``
    classes: list[str]
    packages: list[str]
    text: np.ndarray  # (T, 384) normalised MiniLM embeddings
    mix_features: np.ndarray  # (M, 512)
    mix_captions: list[list[int]]


class Heads(torch.nn.Module):
    def __init__(self, options: HeadOptions, mean: np.ndarray, std: np.ndarray, centre: np.ndarray, text_width: int):
        super().__init__()
        self.options = options
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32))
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32))
        self.register_buffer("centre", torch.as_tensor(centre if options.centre else np.zeros(text_width),
                                                       dtype=torch.float32))
        self.audio = build_projection(HeadConfig(options.audio_head), len(mean), text_width)
        self.text = build_projection(HeadConfig(options.text_head), text_width, text_width)
        self.logit_scale = torch.nn.Parameter(torch.tensor(math.log(1 / 0.07)))

    def embed_audio(self, features: torch.Tensor) -> torch.Tensor:
        x = (features - self.mean) / self.std
        if self.training and self.options.input_dropout:
            x = F.dropout(x, self.options.input_dropout)
        return F.normalize(self.audio(x), dim=-1)

    def embed_text(self, minilm: torch.Tensor) -> torch.Tensor:
        """``minilm``: normalised MiniLM embeddings; the shipped text head computes the same (``export_state``)."""
        return F.normalize(self.text(F.normalize(minilm, dim=-1) - self.centre), dim=-1)

    @torch.no_grad()
    def audio_numpy(self, features: np.ndarray) -> np.ndarray:
        return self.embed_audio(torch.as_tensor(features, dtype=torch.float32)).numpy()

    @torch.no_grad()
    def text_numpy(self, minilm: np.ndarray) -> np.ndarray:
        return self.embed_text(torch.as_tensor(minilm, dtype=torch.float32)).numpy()


def soft_contrastive(audio: torch.Tensor, text: torch.Tensor, ids: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Symmetric cross-entropy where every row with the same caption id is a positive (targets spread evenly)."""
    logits = scale * audio @ text.T
    positive = (ids[:, None] == ids[None, :]).float()
    target = positive / positive.sum(dim=1, keepdim=True)
    a2t = -(target * F.log_softmax(logits, dim=1)).sum(dim=1).mean()
    t2a = -(target * F.log_softmax(logits.T, dim=1)).sum(dim=1).mean()
    return (a2t + t2a) / 2


def train_heads(data: TrainData, options: HeadOptions) -> tuple[Heads, list[float]]:
    torch.manual_seed(options.seed)
    rng = np.random.default_rng(options.seed)
    views = data.features.shape[1]
    valid = np.nonzero(np.isfinite(data.features[:, 0, 0]))[0]
    flat = data.features[valid, :views].reshape(-1, data.features.shape[2])
    flat = flat[np.isfinite(flat[:, 0])]
    mean, std = flat.mean(axis=0), flat.std(axis=0) + 1e-5
    centre = data.text[sorted({i for c in valid for i in data.captions[c]})].mean(axis=0)
    heads = Heads(options, mean, std, centre, data.text.shape[1])
    if options.balanced:
        weights = balanced_weights([data.classes[i] for i in valid], [data.packages[i] for i in valid],
                                   options.balance_power)
    else:
        weights = np.full(len(valid), 1.0 / len(valid))
    mix_ok = np.nonzero(np.isfinite(data.mix_features[:, 0]))[0] if len(data.mix_features) else np.zeros(0, int)
    n_mix = int(round(options.batch_size * options.p_mix)) if len(mix_ok) else 0
    features = torch.as_tensor(np.nan_to_num(data.features), dtype=torch.float32)
    mix_features = torch.as_tensor(np.nan_to_num(data.mix_features), dtype=torch.float32)
    text = torch.as_tensor(data.text)
    params = [p for p in heads.parameters() if p.requires_grad]
    decay = [p for p in params if p.ndim >= 2]
    rest = [p for p in params if p.ndim < 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": options.weight_decay},
                                   {"params": rest, "weight_decay": 0.0}], lr=options.lr)
    losses = []
    for step in range(options.steps):
        lr = options.lr * min(1.0, (step + 1) / options.warmup) * 0.5 * (1 + math.cos(math.pi * step / options.steps))
        for group in optimizer.param_groups:
            group["lr"] = lr
        clips = valid[rng.choice(len(valid), size=options.batch_size - n_mix, p=weights)]
        view = rng.integers(0, views, size=len(clips))
        view = np.where(np.isfinite(data.features[clips, view, 0]), view, 0)
        ids = [data.captions[c][int(rng.integers(len(data.captions[c])))] for c in clips]
        batch = features[torch.as_tensor(clips), torch.as_tensor(view)]
        if n_mix:
            mixes = mix_ok[rng.integers(0, len(mix_ok), size=n_mix)]
            ids += [data.mix_captions[m][int(rng.integers(len(data.mix_captions[m])))] for m in mixes]
            batch = torch.cat([batch, mix_features[torch.as_tensor(mixes)]])
        ids_t = torch.as_tensor(ids)
        loss = soft_contrastive(heads.embed_audio(batch), heads.embed_text(text[ids_t]), ids_t,
                                heads.logit_scale.exp())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            heads.logit_scale.clamp_(max=MAX_LOGIT_SCALE)
        losses.append(float(loss.detach()))
    return heads.eval(), losses


def export_state(heads: Heads) -> tuple[dict[str, torch.Tensor], HeadConfig, HeadConfig]:
    """The heads as ``ClapNetwork`` keys (``audio_projection.*``, ``text_projection.*``, logit scales), with the
    audio standardisation folded into the first linear layer, and the two head configs. Only an identity text head
    ships (a trained text head saw normalised MiniLM embeddings; the shipped tower gives them un-normalised)."""
    if heads.options.text_head != "identity":
        raise ValueError(f"only an identity text head ships, not {heads.options.text_head!r} (measured only)")
    state: dict[str, torch.Tensor] = {}
    audio = {k: v.detach().clone() for k, v in heads.audio.state_dict().items()}
    first = "weight" if heads.options.audio_head == "linear" else "0.weight"
    bias = first.replace("weight", "bias")
    weight = audio[first] / heads.std[None, :]
    audio[bias] = audio[bias] - weight @ heads.mean
    audio[first] = weight
    state.update({f"audio_projection.{k}": v.contiguous() for k, v in audio.items()})
    text_config = HeadConfig(heads.options.text_head, centre=heads.options.centre)
    inner = {k: v.detach().clone() for k, v in heads.text.state_dict().items()}
    if heads.options.centre:
        state.update({f"text_projection.inner.{k}": v for k, v in inner.items()})
        state["text_projection.centre"] = heads.centre.detach().clone()
    else:
        state.update({f"text_projection.{k}": v for k, v in inner.items()})
    scale = heads.logit_scale.detach().clone()
    state["logit_scale_a"], state["logit_scale_t"] = scale, scale.clone()
    return state, HeadConfig(heads.options.audio_head), text_config


def variant(options: HeadOptions, **changes) -> HeadOptions:
    return dataclasses.replace(options, **changes)


def caption_table(groups: Sequence[Sequence[str]]) -> tuple[list[str], list[list[int]]]:
    """Distinct texts (first-seen order) and each group's indices into them."""
    index: dict[str, int] = {}
    ids = [[index.setdefault(t, len(index)) for t in group] for group in groups]
    return list(index), ids
