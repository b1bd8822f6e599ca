"""Write webdataset-layout tar shards from a manifest (see ``clapkit.train.shards`` for the layout and reader)."""

from __future__ import annotations

import concurrent.futures
import io
import json
import os
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile

from clapkit.audio.io import load_audio
from clapkit.errors import AudioError, ClapkitError
from clapkit.files import commit, temporary_beside, write_text_atomic
from clapkit.train.data import ItemChecks, audio_error_reason
from clapkit.train.manifests import Manifest, ManifestEntry, SkipCounter, as_manifest, log


@dataclass
class ShardWriteResult:
    shards: list[Path]
    items: int
    skipped: SkipCounter = field(default_factory=SkipCounter)
    sizes_path: Path | None = None


def _encode(entry: ManifestEntry, sample_rate: int | None, checks: ItemChecks) -> tuple[str, Any]:
    """``("ok", (ext, audio bytes, metadata))`` or ``(reason, detail)`` for one entry (runs in worker processes)."""
    try:
        if sample_rate is None:
            try:
                rate = int(soundfile.info(entry.audio).samplerate)
            except (soundfile.SoundFileError, RuntimeError, OSError):
                rate = 48000  # ffmpeg-only formats: decode at some rate just to validate
            waveform = load_audio(entry.audio, rate)
            data = Path(entry.audio).read_bytes()
            extension = Path(entry.audio).suffix.lower().lstrip(".") or "bin"
        else:
            rate = sample_rate
            waveform = load_audio(entry.audio, rate)
            buffer = io.BytesIO()
            soundfile.write(buffer, np.clip(waveform, -1.0, 1.0), rate, format="FLAC", subtype="PCM_16")
            data, extension = buffer.getvalue(), "flac"
    except AudioError as exc:
        return audio_error_reason(exc), exc.reason
    except OSError as exc:
        return "undecodable", str(exc)
    problem = checks.audio_problem(waveform)
    if problem:
        return problem, ""
    metadata = {"id": entry.id, "text": list(entry.captions), "tag": list(entry.keywords),
                "rewrites": list(entry.rewrites), "original_path": entry.audio, "sample_rate": rate,
                "num_samples": int(waveform.size)}
    return "ok", (extension, data, metadata)


def _add_member(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), 0o644, 0
    tar.addfile(info, io.BytesIO(data))


def write_shards(
    source: str | os.PathLike[str] | Manifest | Sequence[ManifestEntry],
    out_dir: str | os.PathLike[str],
    *,
    sample_rate: int | None = 48000,
    max_items_per_shard: int = 1000,
    prefix: str = "shard",
    root: str | os.PathLike[str] | None = None,
    skip_silent: bool = True,
    silence_threshold_db: float = -90.0,
    workers: int = 1,
    overwrite: bool = False,
) -> ShardWriteResult:
    """Write the entries of a manifest (file, folder, :class:`Manifest` or entry list) as webdataset tar shards.

    Audio is decoded, checked (missing, undecodable, empty, silent items are skipped and counted), and stored as
    16-bit FLAC at ``sample_rate`` or, with ``sample_rate=None``, as the original file's bytes. Shards hold at most
    ``max_items_per_shard`` items, are written to a temporary name and renamed when complete, and are listed with
    their sizes in ``sizes.json``. ``workers`` > 1 decodes in that many processes (output order is unchanged).
    """
    manifest = as_manifest(source, root)
    if max_items_per_shard < 1:
        raise ClapkitError(f"max_items_per_shard must be at least 1, got {max_items_per_shard}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    existing = sorted(out.glob(f"{prefix}-*.tar"))
    if existing and not overwrite:
        raise ClapkitError(f"{out} already holds {len(existing)} {prefix}-*.tar shards; pass overwrite=True "
                           "(CLI --overwrite) or choose another folder")
    for old in existing:
        old.unlink()
    result = ShardWriteResult([], 0, SkipCounter(manifest.skipped))
    checks = ItemChecks(skip_silent, silence_threshold_db)
    sizes: dict[str, int] = {}
    tar: tarfile.TarFile | None = None
    tmp_path = final_path = None

    def close_shard() -> None:
        nonlocal tar
        if tar is not None:
            tar.close()
            commit(tmp_path, final_path)
            result.shards.append(final_path)
            tar = None

    with concurrent.futures.ProcessPoolExecutor(workers) if workers > 1 else _InProcess() as pool:
        encoded = pool.map(_encode, manifest.entries, [sample_rate] * len(manifest.entries),
                           [checks] * len(manifest.entries), chunksize=8)
        for entry, (status, payload) in zip(manifest.entries, encoded):
            if status != "ok":
                result.skipped.skip(status, f"{entry.id} ({entry.audio})", payload)
                continue
            if tar is None or sizes[final_path.name] >= max_items_per_shard:
                close_shard()
                final_path = out / f"{prefix}-{len(result.shards):06d}.tar"
                tmp_path = temporary_beside(final_path)
                tar = tarfile.open(tmp_path, "w", format=tarfile.PAX_FORMAT)
                sizes[final_path.name] = 0
            extension, data, metadata = payload
            key = f"{result.items:09d}"
            _add_member(tar, f"{key}.{extension}", data)
            _add_member(tar, f"{key}.json", json.dumps(metadata, ensure_ascii=False).encode("utf-8"))
            sizes[final_path.name] += 1
            result.items += 1
    close_shard()
    result.sizes_path = out / "sizes.json"
    write_text_atomic(result.sizes_path, json.dumps(sizes, indent=1) + "\n")
    log.info("wrote %d items in %d shards to %s (skipped: %s)", result.items, len(result.shards), out,
             result.skipped.summary())
    return result


class _InProcess:
    """``ProcessPoolExecutor``'s ``map`` without processes."""

    def __enter__(self) -> _InProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def map(self, fn, *iterables, chunksize: int = 1):  # noqa: ARG002 - same signature as the executor
        return map(fn, *iterables)
