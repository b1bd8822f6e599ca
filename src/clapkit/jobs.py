"""Embedding many files: decoding in worker threads, batches of similar length, the resumable sharded store job.

Pipeline: a thread pool decodes files (libsndfile and soxr release the GIL, so threads decode in parallel while the
model runs); up to ``prefetch`` batches are decoded ahead of the one the model is on, so decoded audio in memory is
bounded by ``(prefetch + 1) * batch_size`` files. Files are put into batches by duration (read from the headers), so
a batch holds files of similar length. A file that fails to decode is reported with its reason and the batch goes on
without it.

Non-fusion models only look at the first clip of a file (LAION's evaluation crop), so only that much is decoded
(streamed, whatever the file's length); fusion models see the whole file.

Determinism: the batches are a fixed function of the whole input list (sorted by duration, then path) and the batch
size; rank ``r`` of ``W`` takes batches ``r, r + W, ...``. So a sharded run computes exactly the batches a
single-process run does, and the merged store is identical; a different batch size changes embeddings by float
rounding only (<= 1e-5).
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from clapkit.audio.io import is_silent, load_audio, stream_windows
from clapkit.config import ModelConfig
from clapkit.errors import AudioError, ClapkitError
from clapkit.identity import model_identity, weights_fingerprint  # noqa: F401 (also public here, as before)
from clapkit.inputs import AUDIO_EXTENSIONS, Failure, discover_inputs, probe_duration
from clapkit.store import Part, merge_parts, prepare_store, read_state, write_part
from clapkit.version import __version__

DEFAULT_WORKERS = min(4, os.cpu_count() or 1)
PROGRESS_DELAY_SECONDS = 2.0  # progress bars appear once a job has run this long (short jobs stay quiet)


# ----------------------------------------------------------------------------------------------------- sharding
@dataclass(frozen=True)
class Shard:
    """This process's part of a multi-process job: ``rank`` in ``0 .. world_size - 1``."""

    rank: int = 0
    world_size: int = 1

    def __post_init__(self) -> None:
        if self.world_size < 1 or not 0 <= self.rank < self.world_size:
            raise ClapkitError(f"rank {self.rank} of world size {self.world_size}: need 0 <= rank < world size >= 1")

    @classmethod
    def from_env(cls) -> Shard:
        """From ``RANK`` and ``WORLD_SIZE`` (set by torchrun, SLURM wrappers, ...); rank 0 of 1 when unset."""
        try:
            return cls(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)))
        except ValueError:
            raise ClapkitError(
                f"RANK={os.environ.get('RANK')!r} and WORLD_SIZE={os.environ.get('WORLD_SIZE')!r} must be integers"
            ) from None

    def take(self, batches: Sequence[list[str]]) -> list[list[str]]:
        return list(batches[self.rank :: self.world_size])


def device_for_rank(device: str, local_rank: int | None = None) -> str:
    """``"cuda"`` becomes ``"cuda:LOCAL_RANK"`` (one GPU per process under torchrun); anything else is kept."""
    if local_rank is None:
        local_rank = int(os.environ.get("LOCAL_RANK", 0))
    return f"cuda:{local_rank}" if device == "cuda" else device


# ------------------------------------------------------------------------------------------------------ batching
def plan_batches(paths: Sequence[str], durations: Sequence[float], batch_size: int) -> list[list[str]]:
    """Batches of similar duration: sort by (duration, path), unknown durations last, and cut every ``batch_size``."""
    if batch_size < 1:
        raise ClapkitError(f"batch size must be at least 1, got {batch_size}")
    order = sorted(zip(paths, durations), key=lambda item: (math.inf if math.isnan(item[1]) else item[1], item[0]))
    ordered = [p for p, _ in order]
    return [ordered[i : i + batch_size] for i in range(0, len(ordered), batch_size)]


def probe_durations(
    paths: Sequence[str], workers: int = DEFAULT_WORKERS, known: dict[str, float] | None = None
) -> list[float]:
    """Durations from the file headers (in parallel); ``known`` ones are not read again."""
    known = known or {}
    unknown = [p for p in paths if p not in known]
    with ThreadPoolExecutor(max(1, workers)) as pool:
        probed = dict(zip(unknown, pool.map(probe_duration, unknown)))
    return [known[p] if p in known else probed[p] for p in paths]


def decode_for_model(path: str, config: ModelConfig) -> np.ndarray:
    """The waveform the model needs from ``path``: the whole file for fusion models, else the first clip plus one
    sample (so a longer file is still seen as longer), streamed without decoding the rest."""
    frontend = config.frontend
    if config.audio.enable_fusion:
        return load_audio(path, frontend.sample_rate)
    window = frontend.clip_samples + 1
    with contextlib.closing(stream_windows(path, frontend.sample_rate, window, window)) as windows:
        for _, waveform in windows:
            return waveform
    raise AudioError(path, "contains no audio samples")  # pragma: no cover - stream_windows raises first


def _reason(exc: BaseException) -> str:
    return exc.reason if isinstance(exc, AudioError) else f"{type(exc).__name__}: {exc}"


@dataclass
class EmbeddedBatch:
    """One batch done: the files embedded (``paths``, ``embeddings (n, D)``, ``silent``) and the ones that failed."""

    paths: list[str]
    embeddings: np.ndarray
    silent: np.ndarray
    failures: list[Failure]


def embed_batches(
    model, batches: Iterable[list[str]], *, workers: int = DEFAULT_WORKERS, prefetch: int = 2
) -> Iterator[EmbeddedBatch]:
    """Decode in ``workers`` threads, ``prefetch`` batches ahead, and embed batch after batch, in the given order."""
    pool = ThreadPoolExecutor(max(1, workers), thread_name_prefix="clapkit-decode")
    queued: deque[tuple[list[str], list[Future]]] = deque()
    source = iter(batches)

    def submit_next() -> None:
        batch = next(source, None)
        if batch is not None:
            queued.append((batch, [pool.submit(decode_for_model, p, model.config) for p in batch]))

    try:
        for _ in range(max(0, prefetch) + 1):
            submit_next()
        while queued:
            batch, futures = queued.popleft()
            paths, waveforms, failures = [], [], []
            for path, future in zip(batch, futures):
                try:
                    waveforms.append(future.result())
                    paths.append(path)
                except Exception as exc:  # any decoding problem is this file's, not the job's
                    failures.append(Failure(path, _reason(exc)))
            if waveforms:
                embeddings = model.embed_waveforms(waveforms, batch_size=len(waveforms))
            else:
                embeddings = np.zeros((0, model.config.joint_dim), dtype=np.float32)
            silent = np.array([is_silent(w) for w in waveforms], dtype=bool)
            submit_next()  # only now: while the model ran, at most ``prefetch`` batches were decoding ahead of it
            yield EmbeddedBatch(paths, embeddings, silent, failures)
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


@dataclass
class EmbeddingResult:
    """Embeddings in memory: ``paths`` sorted, ``embeddings (N, D)`` row-aligned, and every input that failed."""

    paths: list[str]
    embeddings: np.ndarray
    failures: list[Failure]


def embed_files(
    model,
    sources: Iterable[str | os.PathLike[str]],
    *,
    files_from: str | None = None,
    extensions: Sequence[str] = AUDIO_EXTENSIONS,
    batch_size: int = 8,
    workers: int = DEFAULT_WORKERS,
    prefetch: int = 2,
    progress: bool = False,
) -> EmbeddingResult:
    """Embed files, folders, patterns and list files in memory (no store); bad inputs are reported, not raised.
    ``progress``: a bar on stderr (shown once the job has run 2 s)."""
    from tqdm import tqdm

    discovery = discover_inputs(sources, files_from=files_from, extensions=extensions)
    batches = plan_batches(discovery.paths, probe_durations(discovery.paths, workers), batch_size)
    found: dict[str, np.ndarray] = {}
    failures = list(discovery.failures)
    bar = tqdm(total=len(discovery.paths), unit="file", desc="embed", disable=not progress,
               delay=PROGRESS_DELAY_SECONDS, dynamic_ncols=True)  # fmt: skip
    try:
        for done in embed_batches(model, batches, workers=workers, prefetch=prefetch):
            found.update(zip(done.paths, done.embeddings))
            failures.extend(done.failures)
            bar.update(len(done.paths) + len(done.failures))
    finally:
        bar.close()
    paths = [p for p in discovery.paths if p in found]
    embeddings = np.stack([found[p] for p in paths]) if paths else np.zeros((0, model.config.joint_dim), np.float32)
    return EmbeddingResult(paths, embeddings, failures)


# ------------------------------------------------------------------------------------------------------ the job
@dataclass
class EmbedReport:
    """What one process of ``clapkit embed`` did."""

    directory: Path
    inputs: int  # files found (all ranks)
    embedded: int  # embedded by this process in this run
    already_done: int  # this process's files skipped because a previous run embedded them
    failures: list[Failure] = field(default_factory=list)  # this run's failures (inputs not found, undecodable)
    merged: bool = False  # this process merged the store (every file of the job is done or failed)
    stored: int = 0  # files in the merged store (when merged)
    seconds: float = 0.0
    shard: Shard = field(default_factory=Shard)


def store_info(model, model_source: str, weights: str | None, tokenizer: str | None) -> dict:
    """``store.json`` content (besides format/version) for embeddings of ``model``."""
    frontend = model.config.frontend
    return {
        "embedding_dim": model.config.joint_dim,
        "dtype": "float32",
        "model": model_identity(model, model_source, weights, tokenizer),
        "audio": {
            "sample_rate": frontend.sample_rate,
            "clip_seconds": frontend.clip_seconds,
            "input": "whole file (fusion)" if model.config.audio.enable_fusion else "first clip",
        },
        "clapkit_version": __version__,
    }


def run_embed_job(
    model,
    sources: Iterable[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    *,
    model_source: str | None = None,
    weights: str | None = None,
    tokenizer: str | None = None,
    files_from: str | None = None,
    extensions: Sequence[str] = AUDIO_EXTENSIONS,
    batch_size: int = 8,
    workers: int = DEFAULT_WORKERS,
    prefetch: int = 2,
    shard: Shard | None = None,
    progress: bool = True,
) -> EmbedReport:
    """Embed every input into the store at ``out``; resumable, shardable (see the module docstring).

    Files already in the store (merged or in parts) are skipped; files that failed before are tried again. Each batch
    is written atomically as it is done, so an interrupted job loses at most the batches in flight. The process that
    finds every file of the job done or failed merges the parts into ``embeddings.npy``/``index.csv``/``errors.csv``.
    ``model_source``/``weights``/``tokenizer`` are recorded in ``store.json`` so search can load the model again.
    """
    started = time.perf_counter()
    shard = shard or Shard.from_env()
    discovery = discover_inputs(sources, files_from=files_from, extensions=extensions)
    if not discovery.paths:
        reasons = "; ".join(f"{f.source}: {f.reason}" for f in discovery.failures[:10]) or "no inputs given"
        raise ClapkitError(f"no audio files to embed ({reasons})")
    directory = prepare_store(out, store_info(model, model_source or model.config.name, weights, tokenizer))
    state = read_state(directory)
    durations = probe_durations(discovery.paths, workers, known=state.done)
    duration_of = dict(zip(discovery.paths, durations))
    mine = shard.take(plan_batches(discovery.paths, durations, batch_size))
    todo = [pending for batch in mine if (pending := [p for p in batch if p not in state.done])]
    report = EmbedReport(directory, len(discovery.paths), 0, sum(map(len, mine)) - sum(map(len, todo)), shard=shard)
    if shard.rank == 0 and discovery.failures:
        write_part(directory, Part.of_failures(discovery.failures, model.config.joint_dim))  # for errors.csv
        report.failures.extend(discovery.failures)
    bar = _progress_bar(sum(map(len, todo)), shard, progress)
    try:
        for done in embed_batches(model, todo, workers=workers, prefetch=prefetch):
            write_part(
                directory,
                Part(
                    done.paths,
                    done.embeddings,
                    np.array([duration_of[p] for p in done.paths]),
                    done.silent,
                    done.failures,
                ),
            )
            report.embedded += len(done.paths)
            report.failures.extend(done.failures)
            bar.update(len(done.paths) + len(done.failures))
            if done.failures:
                bar.set_postfix(failed=len(report.failures), refresh=False)
    finally:
        bar.close()
    state = read_state(directory)
    if all(p in state.done or p in state.failed for p in discovery.paths):
        report.stored, report.merged = merge_parts(directory), True
    report.seconds = time.perf_counter() - started
    return report


def _progress_bar(total: int, shard: Shard, enabled: bool):
    from tqdm import tqdm

    label = "embed" if shard.world_size == 1 else f"embed rank {shard.rank}/{shard.world_size}"
    return tqdm(total=total, unit="file", desc=label, disable=not enabled, smoothing=0.1, dynamic_ncols=True)
