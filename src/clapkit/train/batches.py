"""Training batches: which items each rank reads at each step, and how items become model input.

Every optimizer step ``s`` takes the global batch ``s`` of a seeded per-epoch permutation (map-style datasets) and
splits it into accumulation micro-steps and, inside each, into per-rank slices in rank order; the loss gathers the
slices back in that order, so N ranks see the batch one process would. The data position is the step itself, so a
resumed run reads exactly what the interrupted one would have. Iterable datasets (webdataset shards) are read in this
process and their position is their own ``state_dict()``.

All training randomness of an item (crop offset, fusion chunks, caption choice) comes from generators seeded by
``(seed, step, position in the global batch)``: independent of the number of ranks, of worker processes and of where
a run was resumed. (Randomness inside the model, SpecAugment, dropout, drop path, uses each rank's torch generator.)
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch

from clapkit.audio.fusion import prepare_batch
from clapkit.config import ModelConfig
from clapkit.errors import ClapkitError, ConfigError

log = logging.getLogger(__name__)


class CaptionChooser(Protocol):
    def choose(self, item: dict[str, Any], rng: random.Random) -> str: ...


class RandomCaption:
    """One of the item's own captions, uniformly."""

    def choose(self, item: dict[str, Any], rng: random.Random) -> str:
        return item["captions"][rng.randrange(len(item["captions"]))]


def build_caption_chooser(options: dict[str, Any] | None) -> CaptionChooser:
    if options is None:
        return RandomCaption()
    from clapkit.train.captions import CaptionAugmenter

    return CaptionAugmenter(**options)


@dataclass
class TrainBatch:
    features: torch.Tensor
    is_longer: torch.Tensor
    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    ids: list[str]
    skipped: int = 0

    def __len__(self) -> int:
        return len(self.ids)

    def to(self, device: torch.device) -> TrainBatch:
        move = {"device": device, "non_blocking": True}
        return TrainBatch(self.features.to(**move), self.is_longer.to(**move), self.input_ids.to(**move),
                          self.attention_mask.to(**move), self.ids, self.skipped)


def item_generators(seed: int, step: int, position: int) -> tuple[np.random.Generator, random.Random]:
    """The numpy generator (crop offset, fusion chunks) and Python RNG (caption choice) of the item at ``position``
    in the global batch of ``step``: the same whichever rank or worker reads it."""
    sequence = np.random.SeedSequence([seed, step, position])
    return np.random.default_rng(sequence), random.Random(int(sequence.generate_state(1, np.uint64)[0]))


def usable(item: dict[str, Any] | None, need_captions: bool = True) -> bool:
    """An item with audio and a caption (for training, precomputed rewrites alone also do)."""
    if item is None or item.get("waveform") is None or np.asarray(item["waveform"]).size == 0:
        return False
    return bool(item.get("captions")) or (not need_captions and bool(item.get("rewrites")))


Key = tuple[int, int]  # (optimizer step, position in the global batch)


class Collator:
    """``[((step, position), item), ...]`` -> :class:`TrainBatch`: a caption per item (``chooser``), the training
    front end (random crops of long audio, random fusion chunks) and the tokenizer. Unusable items are dropped."""

    def __init__(self, model_config: ModelConfig, tokenizer, chooser: CaptionChooser, seed: int):
        self.frontend = model_config.frontend
        self.fusion = model_config.audio.enable_fusion
        self.tokenizer = tokenizer
        self.chooser = chooser
        self.seed = seed

    def __call__(self, tagged: list[tuple[Key, dict[str, Any] | None]]) -> TrainBatch:
        kept = [(key, item) for key, item in tagged if usable(item, need_captions=False)]
        if not kept:
            raise ClapkitError(f"step {tagged[0][0][0]}: all {len(tagged)} items of this rank's batch were unusable "
                               f"(no audio or no caption); check the dataset")
        captions, waveforms, generators = [], [], []
        for (step, position), item in kept:
            generator, rng = item_generators(self.seed, step, position)
            captions.append(self.chooser.choose(item, rng))
            waveforms.append(np.asarray(item["waveform"], dtype=np.float32))
            generators.append(generator)
        features, is_longer = self._audio(waveforms, generators)
        tokens = self.tokenizer(captions)
        return TrainBatch(features, is_longer, tokens["input_ids"], tokens["attention_mask"],
                          [str(item.get("id", "")) for _, item in kept], skipped=len(tagged) - len(kept))

    def _audio(self, waveforms: list[np.ndarray], generators: list[np.random.Generator]):
        """One batched front end for clips that fit; each longer clip with its own generator (the random part)."""
        clip = self.frontend.clip_samples
        short = [i for i, w in enumerate(waveforms) if w.size <= clip]
        parts: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        if short:
            batch = prepare_batch([waveforms[i] for i in short], self.frontend, fusion=self.fusion, train=True,
                                  generator=generators[short[0]])
            parts.update({i: (batch.features[j], batch.is_longer[j]) for j, i in enumerate(short)})
        for i, wave in enumerate(waveforms):
            if i not in parts:
                batch = prepare_batch([wave], self.frontend, fusion=self.fusion, train=True, generator=generators[i])
                parts[i] = (batch.features[0], batch.is_longer[0])
        order = range(len(waveforms))
        return torch.stack([parts[i][0] for i in order]), torch.stack([parts[i][1] for i in order])


def per_rank_batch_size(batch_size: int, accumulation_steps: int, world_size: int) -> int:
    parts = accumulation_steps * world_size
    if batch_size % parts:
        raise ConfigError(f"batch_size {batch_size} (the global batch) must be divisible by accumulation_steps x "
                          f"processes = {accumulation_steps} x {world_size}")
    return batch_size // parts


class GlobalBatchSampler:
    """For steps ``start_step .. max_steps - 1`` and each micro-step, this rank's dataset indices, tagged with
    ``(step, position in the global batch)``. Epoch ``e`` is ``permutation(seed, e)``, cut into ``len // batch_size``
    global batches (the remainder is dropped), then into micro-batches, then into rank slices."""

    def __init__(self, num_items: int, batch_size: int, accumulation_steps: int, rank: int, world_size: int,
                 seed: int, start_step: int, max_steps: int, shuffle: bool = True):
        self.local = per_rank_batch_size(batch_size, accumulation_steps, world_size)
        if num_items < batch_size:
            raise ConfigError(f"the training set has {num_items} usable items, fewer than one global batch "
                              f"({batch_size}); lower batch_size")
        self.num_items, self.batch_size, self.accumulation_steps = num_items, batch_size, accumulation_steps
        self.rank, self.seed, self.shuffle = rank, seed, shuffle
        self.start_step, self.max_steps = start_step, max_steps
        self.steps_per_epoch = num_items // batch_size

    def epoch_order(self, epoch: int) -> np.ndarray:
        if not self.shuffle:
            return np.arange(self.num_items)
        return np.random.default_rng(np.random.SeedSequence([self.seed, epoch, 0x5A3])).permutation(self.num_items)

    def __len__(self) -> int:
        return max(0, self.max_steps - self.start_step) * self.accumulation_steps

    def __iter__(self) -> Iterator[list[tuple[int, Key]]]:
        order, order_epoch = None, -1
        micro = self.batch_size // self.accumulation_steps
        for step in range(self.start_step, self.max_steps):
            epoch, position = divmod(step, self.steps_per_epoch)
            if epoch != order_epoch:
                order, order_epoch = self.epoch_order(epoch), epoch
            batch = order[position * self.batch_size : (position + 1) * self.batch_size]
            for micro_step in range(self.accumulation_steps):
                part = batch[micro_step * micro : (micro_step + 1) * micro]
                first = self.rank * self.local
                offset = micro_step * micro + first
                yield [(int(index), (step, offset + i)) for i, index in enumerate(part[first : first + self.local])]


class _KeyedDataset(torch.utils.data.Dataset):
    def __init__(self, dataset):
        self.dataset = dataset

    def __getitem__(self, pair: tuple[int, Key]):
        index, key = pair
        return key, self.dataset[index]

    def __len__(self) -> int:
        return len(self.dataset)


def _worker_init(_: int) -> None:
    torch.set_num_threads(1)  # the front end in each worker; the model's threads stay in the main process


def is_iterable(dataset: Any) -> bool:
    return isinstance(dataset, torch.utils.data.IterableDataset) or not hasattr(dataset, "__getitem__")


class MapBatches:
    """Batches of a map-style dataset through a ``DataLoader`` (``num_workers`` processes); position = step."""

    def __init__(self, dataset, collator: Collator, sampler: GlobalBatchSampler, num_workers: int, pin_memory: bool):
        self.sampler = sampler
        self.loader = torch.utils.data.DataLoader(
            _KeyedDataset(dataset), batch_sampler=sampler, collate_fn=collator, num_workers=num_workers,
            worker_init_fn=_worker_init if num_workers else None, pin_memory=pin_memory,
            generator=torch.Generator().manual_seed(sampler.seed),  # never draw from the global torch generator
        )

    def __iter__(self) -> Iterator[TrainBatch]:
        return iter(self.loader)

    def state_dict(self) -> dict[str, Any]:
        return {"kind": "map", "steps_per_epoch": self.sampler.steps_per_epoch}

    def epoch(self, step: int) -> float:
        return step / self.sampler.steps_per_epoch


class StreamBatches:
    """Batches of an iterable dataset, read in this process so that ``state_dict()`` is the exact position after the
    last batch handed out. The dataset restarts (``set_epoch(e)`` if it has one) when it runs out."""

    def __init__(self, dataset, collator: Collator, local_batch: int, accumulation_steps: int, rank: int,
                 world_size: int, start_step: int, max_steps: int, state: dict[str, Any] | None = None):
        self.dataset, self.collator, self.local_batch = dataset, collator, local_batch
        self.rank, self.world_size = rank, world_size
        self.accumulation_steps, self.start_step, self.max_steps = accumulation_steps, start_step, max_steps
        self.epoch_index = 0
        self.items_seen = 0
        if state:
            self.epoch_index = int(state.get("epoch", 0))
            self.items_seen = int(state.get("items_seen", 0))
            if state.get("dataset") is not None and hasattr(dataset, "load_state_dict"):
                dataset.load_state_dict(state["dataset"])
        self._set_epoch()

    def _set_epoch(self) -> None:
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(self.epoch_index)

    def _items(self) -> Iterator[dict[str, Any]]:
        while True:
            produced = 0
            for item in self.dataset:
                produced += 1
                self.items_seen += 1
                yield item
            if produced == 0:
                raise ClapkitError("the training stream yielded no items in a whole pass; check the shards")
            self.epoch_index += 1
            self._set_epoch()

    def __iter__(self) -> Iterator[TrainBatch]:
        items = self._items()
        for step in range(self.start_step, self.max_steps):
            for micro_step in range(self.accumulation_steps):
                offset = (micro_step * self.world_size + self.rank) * self.local_batch
                yield self.collator([((step, offset + i), next(items)) for i in range(self.local_batch)])

    def state_dict(self) -> dict[str, Any]:
        dataset_state = self.dataset.state_dict() if hasattr(self.dataset, "state_dict") else None
        return {"kind": "stream", "epoch": self.epoch_index, "items_seen": self.items_seen, "dataset": dataset_state}

    def epoch(self, step: int) -> float:
        return float(self.epoch_index)
