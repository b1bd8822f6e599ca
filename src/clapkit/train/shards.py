"""Webdataset-layout tar shards: :func:`write_shards` and the streaming :class:`ShardDataset`.

Layout (what the ``webdataset`` package and LAION-CLAP's loader read; written and read here with the standard
library's ``tarfile``, so no extra dependency)::

    out_dir/shard-000000.tar   000000000.flac  000000000.json  000000001.flac  000000001.json ...
    out_dir/sizes.json         {"shard-000000.tar": 1000, ...}   (items per shard, as LAION/open_clip expect)

Each ``.json`` holds ``{"id", "text": [captions], "tag": [keywords], "rewrites": [...], "original_path",
"sample_rate", "num_samples"}`` ("text" and "tag" are LAION's names). Audio is FLAC (16-bit PCM, mono, at the model
rate: LAION quantises to int16 anyway) or the original file's bytes (``sample_rate=None``).

Reading (:class:`ShardDataset`): the *rank stream* is a deterministic function of ``(seed, epoch, rank,
world_size)``: the shard order is shuffled per epoch, shards are split across ranks (or, when there are fewer shards
than ranks, items are), and a shuffle buffer mixes items. DataLoader workers take turns over that one stream in chunks
of ``worker_chunk`` items, so the stream does not depend on the number of workers. A state is ``{"epoch",
"items_consumed", "shard_index", ...}``; resuming replays only tar headers (no audio is decoded) to the position.
"""

from __future__ import annotations

import glob
import io
import json
import os
import random
import re
import tarfile
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile
import torch.utils.data

from clapkit.audio.io import load_audio, prepare_waveform
from clapkit.errors import AudioError, ClapkitError
from clapkit.inputs import AUDIO_EXTENSIONS
from clapkit.train.data import ItemChecks, audio_error_reason, make_item
from clapkit.train.manifests import SkipCounter, log, row_captions, text_list
from clapkit.train.shard_writer import ShardWriteResult, write_shards

__all__ = ["ShardDataset", "ShardEntry", "ShardWriteResult", "decode_audio_bytes", "list_shards", "scan_shard",
           "write_shards"]

# a shard member's audio: any extension of the one list (FLAC first: what ``write_shards`` stores)
SHARD_AUDIO_EXTENSIONS = ("flac", *(e[1:] for e in AUDIO_EXTENSIONS if e != ".flac"))
_BRACES = re.compile(r"\{(\d+)\.\.(\d+)\}")


def list_shards(spec: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]) -> list[Path]:
    """Shard paths from a folder (its ``*.tar``), a glob, a brace range (``data-{000000..000099}.tar``) or a list of
    any of these; sorted within each spec, in the given order across a list."""
    if isinstance(spec, (list, tuple)):
        return [p for s in spec for p in list_shards(s)]
    text = str(spec)
    match = _BRACES.search(text)
    if match:
        first, last = match.group(1), match.group(2)
        width = len(first)
        numbers = range(int(first), int(last) + 1)
        names = [text[: match.start()] + f"{i:0{width}d}" + text[match.end() :] for i in numbers]
        return [p for name in names for p in list_shards(name)]
    path = Path(text)
    if path.is_dir():
        return sorted(path.glob("*.tar"))
    if any(c in text for c in "*?["):
        return [Path(p) for p in sorted(glob.glob(text))]
    if not path.is_file():
        raise ClapkitError(f"shard {path} not found")
    return [path]


@dataclass(frozen=True)
class ShardEntry:
    """One item inside a shard: ``members`` maps extension -> (data offset, size)."""

    shard: int  # index into the rank's shard order
    path: str
    key: str
    members: dict[str, tuple[int, int]]


def _split_name(name: str) -> tuple[str, str]:
    folder, _, base = name.rpartition("/")
    key, _, extension = base.partition(".")
    return (f"{folder}/{key}" if folder else key), extension.lower()


def scan_shard(path: str | os.PathLike[str], shard: int, skipped: SkipCounter | None = None) -> list[ShardEntry]:
    """The items of one tar shard from its headers only (no data is read): consecutive members with the same key
    form one item, as in webdataset. A truncated or corrupt shard gives the items before the damage."""
    entries: list[ShardEntry] = []
    current_key, members = None, {}
    try:
        with tarfile.open(path, "r:") as tar:
            for info in tar:
                if not info.isfile():
                    continue
                key, extension = _split_name(info.name)
                if key != current_key and current_key is not None:
                    entries.append(ShardEntry(shard, str(path), current_key, members))
                    members = {}
                current_key = key
                members[extension] = (info.offset_data, info.size)
    except (tarfile.TarError, OSError) as exc:
        if skipped is not None:
            skipped.skip("bad_shard", str(path), f"{exc}; using the {len(entries)} items before the damage")
    if current_key is not None:
        entries.append(ShardEntry(shard, str(path), current_key, members))
    return entries


def _read_member(path: str, offset: int, size: int) -> bytes:
    with open(path, "rb") as f:
        f.seek(offset)
        data = f.read(size)
    if len(data) != size:
        raise OSError(f"member truncated ({len(data)} of {size} bytes)")
    return data


def decode_audio_bytes(data: bytes, extension: str, sample_rate: int, source: str) -> np.ndarray:
    """Audio file bytes -> float32 mono at ``sample_rate`` (soundfile in memory; other formats via a temporary file
    and :func:`clapkit.audio.io.load_audio`, which can use ffmpeg)."""
    try:
        x, rate = soundfile.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except (soundfile.SoundFileError, RuntimeError, TypeError):
        with tempfile.NamedTemporaryFile(suffix=f".{extension}") as tmp:
            tmp.write(data)
            tmp.flush()
            return load_audio(tmp.name, sample_rate)
    return prepare_waveform(x.T, rate, sample_rate, source=source)


def _distributed_rank() -> tuple[int, int]:
    try:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            return dist.get_rank(), dist.get_world_size()
    except (ImportError, RuntimeError):
        pass
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))



def _buffer_shuffle(entries: Iterator[ShardEntry], size: int, rng: random.Random) -> Iterator[ShardEntry]:
    """Shuffle buffer: fill ``size`` items, then each new item takes the place of a random one, which is yielded."""
    buffer: list[ShardEntry] = []
    for entry in entries:
        if len(buffer) < size:
            buffer.append(entry)
            continue
        i = rng.randrange(size)
        yield buffer[i]
        buffer[i] = entry
    rng.shuffle(buffer)
    yield from buffer


class ShardDataset(torch.utils.data.IterableDataset):
    """Stream items (the dict of ``clapkit.train.data``) from webdataset-layout tar shards.

    ``shards``: a folder, glob, brace range or list (see :func:`list_shards`). Per epoch (``set_epoch``, like
    ``DistributedSampler``) the shard order is shuffled with ``seed``; rank ``r`` of ``world_size`` (explicit, else
    ``torch.distributed`` when initialised, else ``RANK``/``WORLD_SIZE``, else 0/1) reads shards ``r::world_size`` of
    that order, or every ``world_size``-th item when there are fewer shards than ranks: ranks never share an item and
    together cover all. A ``shuffle_buffer``-item buffer mixes items across shards (``shuffle=False``: file order).

    DataLoader workers split the rank stream in turns of ``worker_chunk`` items; with ``worker_chunk`` equal to the
    DataLoader's batch size the DataLoader returns the rank stream in order, so ``state_dict(items_taken=n)`` (n items
    taken from the DataLoader since the epoch started or resumed) is an exact position. Without workers
    ``state_dict()`` knows the position itself. ``load_state_dict`` resumes that epoch at that position.

    Bad items are skipped and counted in ``.skipped`` (per process). ``on_bad_item="repeat"`` instead yields the
    worker's previous good item again, so every stream position gives exactly one item: positions stay exact with
    DataLoader workers even when bad items remain in the shards.
    """

    def __init__(
        self,
        shards: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
        sample_rate: int,
        *,
        shuffle: bool = True,
        shuffle_buffer: int = 1000,
        seed: int = 0,
        epoch: int = 0,
        rank: int | None = None,
        world_size: int | None = None,
        worker_chunk: int = 1,
        skip_silent: bool = True,
        silence_threshold_db: float = -90.0,
        keywords_as_caption: bool = False,
        on_bad_item: str = "skip",
    ):
        super().__init__()
        self.shards = [str(p) for p in list_shards(shards)]
        if not self.shards:
            raise ClapkitError(f"no .tar shards found in {shards}")
        if on_bad_item not in ("skip", "repeat"):
            raise ClapkitError(f"on_bad_item must be 'skip' or 'repeat', got {on_bad_item!r}")
        if (rank is None) != (world_size is None):
            raise ClapkitError("give both rank and world_size, or neither (then torch.distributed or RANK/WORLD_SIZE)")
        self.sample_rate = int(sample_rate)
        self.shuffle = shuffle
        self.shuffle_buffer = max(1, int(shuffle_buffer))
        self.seed = int(seed)
        self.epoch = int(epoch)
        self._rank, self._world_size = rank, world_size
        self.worker_chunk = max(1, int(worker_chunk))
        self.on_bad_item = on_bad_item
        self.checks = ItemChecks(skip_silent, silence_threshold_db, keywords_as_caption, seed)
        self.skipped = SkipCounter()
        self._resume: dict[str, int] | None = None
        self._position = 0  # rank-stream entries of this epoch consumed in this process
        self._shard_index = 0  # position in the rank's shard order of the shard being read

    @property
    def rank(self) -> int:
        return self._rank_world()[0]

    @property
    def world_size(self) -> int:
        return self._rank_world()[1]

    def _rank_world(self) -> tuple[int, int]:
        rank, world_size = (self._rank, self._world_size) if self._rank is not None else _distributed_rank()
        if world_size < 1 or not 0 <= rank < world_size:
            raise ClapkitError(f"rank {rank} is not in [0, world_size={world_size})")
        return int(rank), int(world_size)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch (shuffle order); call it before iterating each epoch."""
        if int(epoch) != self.epoch:
            self._position, self._shard_index = 0, 0
        self.epoch = int(epoch)

    def rank_shards(self, epoch: int | None = None) -> tuple[list[str], bool]:
        """This rank's shards in reading order for ``epoch``, and whether items (not shards) are split across ranks."""
        rank, world_size = self._rank_world()
        order = list(self.shards)
        if self.shuffle:
            random.Random(f"{self.seed}|shards|{self.epoch if epoch is None else epoch}").shuffle(order)
        if len(order) >= world_size:
            return order[rank::world_size], False
        return order, True

    def stream(self, epoch: int | None = None) -> Iterator[ShardEntry]:
        """The rank stream of ``epoch``: item locations in the order this rank consumes them (headers only)."""
        epoch = self.epoch if epoch is None else epoch
        rank, world_size = self._rank_world()
        shards, split_items = self.rank_shards(epoch)

        def entries() -> Iterator[ShardEntry]:
            counter = 0
            for index, path in enumerate(shards):
                self._shard_index = index
                for entry in scan_shard(path, index, self.skipped):
                    if not split_items or counter % world_size == rank:
                        yield entry
                    counter += 1

        if not self.shuffle or self.shuffle_buffer <= 1:
            return entries()
        return _buffer_shuffle(entries(), self.shuffle_buffer, random.Random(f"{self.seed}|items|{epoch}|{rank}"))

    def _start_position(self) -> int:
        if self._resume is not None and self._resume["epoch"] == self.epoch:
            return self._resume["items_consumed"]
        return 0

    def items(self, worker_id: int = 0, num_workers: int = 1) -> Iterator[dict[str, Any]]:
        """The items worker ``worker_id`` of ``num_workers`` yields this epoch (``__iter__`` asks the DataLoader)."""
        start = self._start_position()
        self._position = start
        last, pending = None, 0
        for position, entry in enumerate(self.stream()):
            if position < start or (position // self.worker_chunk) % num_workers != worker_id:
                continue
            item = self.load(entry)
            self._position = position + 1
            if item is None:
                if self.on_bad_item == "repeat":
                    if last is None:
                        pending += 1
                    else:
                        yield dict(last)
                continue
            for _ in range(pending):
                yield dict(item)
            pending, last = 0, item
            yield item
        if self._resume is not None and self._resume["epoch"] == self.epoch:
            self._resume = None  # the resumed epoch is complete; iterating again starts the epoch over

    def __iter__(self) -> Iterator[dict[str, Any]]:
        info = torch.utils.data.get_worker_info()
        return self.items(info.id, info.num_workers) if info is not None else self.items()

    def load(self, entry: ShardEntry) -> dict[str, Any] | None:
        """Decode one shard item to the item dict, or ``None`` (counted and logged) when it is bad."""
        where = f"{Path(entry.path).name}:{entry.key}"
        extension = next((e for e in SHARD_AUDIO_EXTENSIONS if e in entry.members), None)
        if "json" not in entry.members or extension is None:
            self.skipped.skip("bad_item", where, f"needs audio and .json members, has {sorted(entry.members)}")
            return None
        try:
            metadata = json.loads(_read_member(entry.path, *entry.members["json"]))
            if not isinstance(metadata, dict):
                raise ValueError("metadata is not a JSON object")
            keywords = text_list(next((metadata[k] for k in ("tag", "tags", "keywords") if metadata.get(k)), None))
            rewrites = text_list(metadata.get("rewrites"))
            identifier = str(metadata.get("id") or entry.key)
            captions = row_captions(metadata)
        except (OSError, ValueError) as exc:
            self.skipped.skip("bad_item", where, str(exc))
            return None
        captions = self.checks.captions_for(captions, keywords)
        if not captions:
            self.skipped.skip("no_caption", where)
            return None
        try:
            data = _read_member(entry.path, *entry.members[extension])
            waveform = decode_audio_bytes(data, extension, self.sample_rate, where)
        except AudioError as exc:
            self.skipped.skip(audio_error_reason(exc), where, exc.reason)
            return None
        except OSError as exc:
            self.skipped.skip("undecodable", where, str(exc))
            return None
        problem = self.checks.audio_problem(waveform)
        if problem:
            self.skipped.skip(problem, where)
            return None
        return make_item(identifier, waveform, captions, keywords, rewrites)

    def state_dict(self, items_taken: int | None = None) -> dict[str, Any]:
        """The position in this rank's stream: ``{"epoch", "items_consumed", "shard_index", ...}``.

        Without arguments: what this process consumed (iteration without DataLoader workers). With DataLoader workers,
        pass ``items_taken``, the items taken from the DataLoader since this epoch started or resumed (exact with
        ``worker_chunk`` = batch size and no skipped item, or ``on_bad_item="repeat"``); ``shard_index`` is then
        unknown (``None``). The other keys pin the stream so that a mismatching resume is refused.
        """
        rank, world_size = self._rank_world()
        position = self._position if items_taken is None else self._start_position() + int(items_taken)
        return {"epoch": self.epoch, "items_consumed": position,
                "shard_index": self._shard_index if items_taken is None else None, "seed": self.seed, "rank": rank,
                "world_size": world_size, "num_shards": len(self.shards), "shuffle": self.shuffle,
                "shuffle_buffer": self.shuffle_buffer}

    def load_state_dict(self, state: dict[str, Any], strict: bool = True) -> None:
        """Resume: the next iteration of ``state["epoch"]`` starts after ``state["items_consumed"]`` stream items
        (replaying headers only). ``strict`` refuses a state from another seed, world size, rank, shard count or
        shuffle setting, since its positions would mean other items."""
        rank, world_size = self._rank_world()
        current = {"seed": self.seed, "rank": rank, "world_size": world_size, "num_shards": len(self.shards),
                   "shuffle": self.shuffle, "shuffle_buffer": self.shuffle_buffer}
        different = {k: (state.get(k), v) for k, v in current.items() if k in state and state[k] != v}
        if different:
            message = "data state does not match this dataset: " + ", ".join(
                f"{k} was {old} now {new}" for k, (old, new) in different.items())
            if strict:
                raise ClapkitError(message + "; resuming would not give the remaining items (strict=False to force)")
            log.warning("%s; resuming anyway", message)
        self.epoch = int(state["epoch"])
        self._resume = {"epoch": self.epoch, "items_consumed": int(state["items_consumed"])}
        self._position = self._resume["items_consumed"]
        self._shard_index = int(state.get("shard_index") or 0)

    def num_items(self) -> int:
        """Items in all shards (from ``sizes.json`` beside them when it lists every shard, else by scanning)."""
        sizes: dict[str, int] = {}
        for folder in {str(Path(p).parent) for p in self.shards}:
            sizes_path = Path(folder) / "sizes.json"
            if sizes_path.is_file():
                try:
                    sizes.update({str(Path(folder) / k): int(v) for k, v in json.loads(sizes_path.read_text()).items()})
                except (ValueError, TypeError, AttributeError):
                    pass
        return sum(sizes[p] if p in sizes else len(scan_shard(p, 0)) for p in self.shards)
