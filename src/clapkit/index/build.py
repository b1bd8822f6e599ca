"""Build and update a sound index from audio files: embed what is new into the embedding store (resumable, cached:
``clapkit.jobs.run_embed_job``), then add and remove vectors in the FAISS index without rebuilding it."""

from __future__ import annotations

import fnmatch
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from clapkit.errors import ClapkitError
from clapkit.identity import describe_model, model_identity, same_model
from clapkit.index.library import STORE_DIR, IndexModelMismatchError, Item, SoundIndex
from clapkit.index.vectors import APPROXIMATE_FROM
from clapkit.inputs import AUDIO_EXTENSIONS, Failure, discover_inputs

ADD_CHUNK = 65536  # vectors read from the store and added at a time


@dataclass
class BuildReport:
    """What one ``build``/``add`` did: files found, embedded now or reused from the store, added to and removed from
    the index, and the inputs that failed."""

    directory: Path
    inputs: int
    embedded: int
    reused: int
    added: list[Item] = field(default_factory=list)
    removed: list[Item] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    items: int = 0
    kind: str = ""
    seconds: float = 0.0


def build_index(
    model,
    sources: Iterable[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    *,
    store: str | os.PathLike[str] | None = None,
    model_source: str | None = None,
    weights: str | None = None,
    tokenizer: str | None = None,
    remove_missing: bool = True,
    approximate_from: int | None = None,
    files_from: str | None = None,
    extensions: Sequence[str] = AUDIO_EXTENSIONS,
    batch_size: int = 8,
    workers: int | None = None,
    progress: bool = True,
    extra_info: dict | None = None,
) -> BuildReport:
    """Make the index at ``out`` hold the audio files of ``sources`` (files, folders, patterns).

    New files are embedded into the embedding store (``out/embeddings`` unless ``store`` names another one, e.g. a
    store written by ``clapkit embed``); files the store holds already are not embedded again, and an interrupted
    build resumes where it stopped. Then the new files' vectors are added to the FAISS index and, with
    ``remove_missing``, files indexed before but no longer among ``sources`` are removed. An existing index must have
    been built with the same model (weights and config), else :class:`IndexModelMismatchError`.
    """
    from clapkit.jobs import DEFAULT_WORKERS, Shard, run_embed_job
    from clapkit.store import EmbeddingStore

    started = time.perf_counter()
    directory = Path(out)
    existing = SoundIndex.open(directory) if SoundIndex.exists(directory) else None
    if directory.exists() and not directory.is_dir():
        raise ClapkitError(f"{directory}: --out must be a folder, and this is a file")
    if existing is not None and store is not None and existing.store_directory != Path(store):
        raise ClapkitError(
            f"{directory} was built from the embedding store {existing.store_directory}, not {store}; leave --store out"
        )
    store_directory = existing.store_directory if existing is not None else Path(store or directory / STORE_DIR)
    if store_directory is None:
        raise ClapkitError(f"{directory} was built from vectors, not files: it has no embedding store to add files to")
    if existing is not None:  # before embedding anything
        existing.check_model(model_identity(model, model_source or model.config.name))
    discovery = discover_inputs(sources, files_from=files_from, extensions=extensions)
    if not discovery.paths:
        reasons = "; ".join(f"{f.source}: {f.reason}" for f in discovery.failures[:10]) or "no inputs given"
        raise ClapkitError(f"no audio files to index ({reasons})")
    job = run_embed_job(
        model,
        discovery.paths,
        store_directory,
        model_source=model_source,
        weights=weights,
        tokenizer=tokenizer,
        extensions=extensions,
        batch_size=batch_size,
        workers=workers or DEFAULT_WORKERS,
        shard=Shard(),
        progress=progress,
    )
    embeddings = EmbeddingStore(store_directory)
    index = existing
    if index is None:
        recorded = str(store_directory) if store is not None else STORE_DIR
        index = SoundIndex.create(
            directory,
            embeddings.info["model"],
            int(embeddings.info["embedding_dim"]),
            store=os.path.abspath(recorded) if store is not None else recorded,
            approximate_from=APPROXIMATE_FROM if approximate_from is None else approximate_from,
            extra=extra_info,
        )
    elif not same_model(index.model, embeddings.info["model"]):
        raise IndexModelMismatchError(
            f"{directory} was built with model {describe_model(index.model)}, its store holds embeddings of "
            f"{describe_model(embeddings.info['model'])}; build a new index into another --out"
        )
    elif approximate_from is not None:
        index.info["approximate_from"] = int(approximate_from)
    report = BuildReport(directory, len(discovery.paths), job.embedded, 0, failures=list(discovery.failures))
    report.failures.extend(job.failures)
    row_of = {path: row for row, path in enumerate(embeddings.paths)}
    wanted = [p for p in discovery.paths if p in row_of]
    if remove_missing:
        keep = set(wanted)
        report.removed = sorted((i for i in index.items.values() if i.path not in keep), key=lambda i: i.path)
        index.remove(item.id for item in report.removed)
    new = [p for p in wanted if index.item_for_path(p) is None]
    report.reused = max(len(new) - job.embedded, 0)  # added from embeddings the store held already
    for start in range(0, len(new), ADD_CHUNK):
        chunk = new[start : start + ADD_CHUNK]
        rows = np.array([row_of[p] for p in chunk], dtype=np.int64)
        order = np.argsort(rows)  # read the memory-mapped store in file order
        vectors = np.asarray(embeddings.embeddings[rows[order]], dtype=np.float32)
        paths = [chunk[i] for i in order]
        ids = index.add(paths, vectors, embeddings.durations[rows[order]].tolist())
        report.added.extend(index.items[i] for i in ids)
    index.save()
    report.items, report.kind, report.seconds = len(index), index.kind, time.perf_counter() - started
    return report


def matches_any(path: str, selectors: Sequence[str]) -> bool:
    """True when ``path`` is one of ``selectors`` (absolute paths), lies under one (a folder), or matches one (a glob
    pattern with ``*``, ``?`` or ``[``)."""
    for selector in selectors:
        if any(c in selector for c in "*?["):
            if fnmatch.fnmatchcase(path, selector):
                return True
        elif path == selector or path.startswith(selector.rstrip(os.sep) + os.sep):
            return True
    return False


def remove_from_index(directory: str | os.PathLike[str], selectors: Iterable[str | os.PathLike[str]]) -> list[Item]:
    """Remove the indexed files named by ``selectors`` (files, folders, glob patterns; the files need not exist any
    more) and commit; return the removed items. Their embeddings stay in the store (adding them back is instant)."""
    index = SoundIndex.open(directory)
    absolute = [os.path.abspath(os.path.expanduser(str(s))) for s in selectors]
    gone = sorted((i for i in index.items.values() if matches_any(i.path, absolute)), key=lambda i: i.path)
    if gone:
        index.remove(item.id for item in gone)
        index.save()
    return gone


def build_from_vectors(
    directory: str | os.PathLike[str],
    model: dict,
    paths: Sequence[str],
    embeddings: np.ndarray,
    durations: Sequence[float] | None = None,
    *,
    approximate_from: int = APPROXIMATE_FROM,
) -> SoundIndex:
    """An index of precomputed ``embeddings`` (rows of unit vectors) for ``paths``, recorded as embeddings of
    ``model`` (an identity dict, ``clapkit.identity.model_identity``). For benchmarks and for vectors made elsewhere."""
    embeddings = np.asarray(embeddings, dtype=np.float32)
    index = SoundIndex.create(directory, model, embeddings.shape[1], approximate_from=approximate_from)
    index.add(list(paths), embeddings, durations)
    index.save()
    return index
