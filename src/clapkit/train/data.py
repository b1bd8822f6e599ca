"""Training datasets: the map-style :class:`ManifestDataset` over a manifest (read by ``clapkit.train.manifests``)
and the item checks every dataset shares. Webdataset tar shards live in ``clapkit.train.shards``.

Every dataset yields the same item dict::

    {"id": str, "waveform": np.ndarray (float32, mono, at the dataset's sample_rate),
     "captions": list[str] (>= 1), "keywords": list[str], "rewrites": list[str]}

Bad items (no caption, unreadable, missing, empty or silent audio) are skipped, counted per reason (``.skipped``) and
logged once each on ``clapkit.train``; nothing crashes.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch.utils.data

from clapkit.audio.io import is_silent, load_audio
from clapkit.errors import AudioError, ClapkitError
from clapkit.train.manifests import (
    Manifest,
    ManifestEntry,
    SkipCounter,
    as_manifest,
    read_folder,
    read_manifest,
    text_list,
)

# the manifest readers lived here before the split into manifests.py; importing them from here keeps working
__all__ = ["SILENCE_THRESHOLD_DB", "ItemChecks", "Manifest", "ManifestDataset", "ManifestEntry", "SkipCounter",
           "audio_error_reason", "make_item", "read_folder", "read_manifest", "text_list"]

SILENCE_THRESHOLD_DB = -90.0


def make_item(identifier: str, waveform: np.ndarray, captions: Iterable[str], keywords: Iterable[str] = (),
              rewrites: Iterable[str] = ()) -> dict[str, Any]:
    """The item dict every dataset yields."""
    return {"id": str(identifier), "waveform": np.ascontiguousarray(waveform, dtype=np.float32),
            "captions": list(captions), "keywords": list(keywords), "rewrites": list(rewrites)}


def audio_error_reason(error: AudioError) -> str:
    """Skip-count reason for an :class:`AudioError`: ``missing``, ``empty`` or ``undecodable``."""
    text = error.reason.lower()
    if "not found" in text:
        return "missing"
    if "empty" in text or "no samples" in text or "no audio samples" in text or "length 0" in text:
        return "empty"
    return "undecodable"


@dataclass
class ItemChecks:
    """The checks every dataset applies before yielding an item (shared by manifests and shards)."""

    skip_silent: bool = True
    silence_threshold_db: float = SILENCE_THRESHOLD_DB
    keywords_as_caption: bool = False
    seed: int = 0
    _captioner: Any = field(default=None, init=False, repr=False)

    def captions_for(self, captions: list[str], keywords: list[str]) -> list[str]:
        """The captions, or an offline keyword caption (fixed by ``seed`` and the keywords) when allowed."""
        if captions or not (self.keywords_as_caption and keywords):
            return captions
        if self._captioner is None:
            from clapkit.train.captions import KeywordCaptioner

            self._captioner = KeywordCaptioner(seed=self.seed)
        return [self._captioner.caption(keywords)]

    def audio_problem(self, waveform: np.ndarray) -> str | None:
        if waveform.size == 0:
            return "empty"
        if self.skip_silent and is_silent(waveform, self.silence_threshold_db):
            return "silent"
        return None


class ManifestDataset(torch.utils.data.Dataset):
    """Map-style dataset over a manifest, a folder, a :class:`Manifest` or a list of entries.

    ``dataset[i]`` decodes entry ``i`` to ``sample_rate`` and returns the item dict. A bad item (missing, undecodable,
    empty, silent, no caption) is counted in ``.skipped``, logged once, remembered, and replaced by the next good
    entry (wrapping around), so a DataLoader never sees an exception for bad data. Counts are per process (each
    DataLoader worker keeps its own).
    """

    def __init__(
        self,
        source: str | os.PathLike[str] | Manifest | Sequence[ManifestEntry],
        sample_rate: int,
        *,
        root: str | os.PathLike[str] | None = None,
        skip_silent: bool = True,
        silence_threshold_db: float = SILENCE_THRESHOLD_DB,
        keywords_as_caption: bool = False,
        seed: int = 0,
    ):
        manifest = as_manifest(source, root)
        self.entries = manifest.entries
        self.manifest_skipped = manifest.skipped
        self.sample_rate = int(sample_rate)
        self.checks = ItemChecks(skip_silent, silence_threshold_db, keywords_as_caption, seed)
        self.skipped = SkipCounter()
        self._bad: set[int] = set()
        if not self.entries:
            raise ClapkitError(f"{manifest.source}: no usable entries (skipped: {manifest.skipped.summary()})")

    def __len__(self) -> int:
        return len(self.entries)

    def load(self, index: int) -> dict[str, Any] | None:
        """Item ``index``, or ``None`` (counted and logged) when it is bad."""
        entry = self.entries[index]
        where = f"{entry.id} ({entry.audio})"
        captions = self.checks.captions_for(list(entry.captions), list(entry.keywords))
        if not captions:
            self.skipped.skip("no_caption", where)
            return None
        try:
            waveform = load_audio(entry.audio, self.sample_rate)
        except AudioError as exc:
            self.skipped.skip(audio_error_reason(exc), where, exc.reason)
            return None
        problem = self.checks.audio_problem(waveform)
        if problem:
            self.skipped.skip(problem, where)
            return None
        return make_item(entry.id, waveform, captions, entry.keywords, entry.rewrites)

    def __getitem__(self, index: int) -> dict[str, Any]:
        n = len(self.entries)
        if not -n <= index < n:
            raise IndexError(f"index {index} out of range for {n} entries")
        index %= n
        for step in range(n):
            i = (index + step) % n
            if i in self._bad:
                continue
            item = self.load(i)
            if item is not None:
                return item
            self._bad.add(i)
        raise ClapkitError(f"no usable items: all {n} entries are bad (skipped: {self.skipped.summary()})")
