"""The embedding store: a folder of embeddings with their file paths, written by ``clapkit embed``, read by search.

Layout of ``DIR`` (documented in ``docs/inference.md``)::

    store.json       what made the embeddings: format version, model name/source/fingerprint, dimension, audio input
    embeddings.npy   float32 (N, D), L2-normalised, row i is the file on row i of index.csv (np.load(mmap_mode="r"))
    index.csv        row,path,duration_seconds,silent   sorted by path (absolute), one row per embedded file
    errors.csv       path,reason   inputs that failed and have not succeeded since
    parts/           batches written by running or interrupted jobs, not yet merged (part-*.npz)

A job writes every batch as one ``parts/part-*.npz`` (written to a temporary name, then renamed: a batch is there
whole or not at all). A merge folds the parts into ``embeddings.npy``/``index.csv``/``errors.csv`` (temporary files,
renamed embeddings first, index last; an interrupted merge is rolled forward or discarded by the next one) and only
then deletes the parts it read. Merges hold an exclusive ``fcntl`` lock on ``DIR/.lock``; readers a shared one.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import math
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from clapkit.errors import ClapkitError
from clapkit.files import atomic_write, locked, read_format_file
from clapkit.identity import describe_model, same_model
from clapkit.inputs import Failure

STORE_FORMAT = "clapkit-embeddings"
STORE_VERSION = 1
INFO_FILE, EMBEDDINGS_FILE, INDEX_FILE, ERRORS_FILE, PARTS_DIR = (
    "store.json",
    "embeddings.npy",
    "index.csv",
    "errors.csv",
    "parts",
)
_PARTIAL = {name: f".{name}.partial" for name in (EMBEDDINGS_FILE, INDEX_FILE, ERRORS_FILE)}
_SEARCH_BLOCK = 65536
STALE_SECONDS = 3600  # a temporary part file this old was left by a killed process


# ------------------------------------------------------------------------------------------------------ locking



# ------------------------------------------------------------------------------------------------ store.json
def prepare_store(directory: str | os.PathLike[str], info: dict) -> Path:
    """Create ``directory`` (and ``parts/``) for embeddings described by ``info``, or check an existing store holds
    embeddings of the same model (fingerprint and config) and dimension; raise ``ClapkitError`` when it does not."""
    out = Path(directory)
    if out.exists() and not out.is_dir():
        raise ClapkitError(f"{out}: --out must be a folder, and this is a file; choose another path")
    if out.is_dir() and not (out / INFO_FILE).exists():
        others = [p.name for p in out.iterdir() if p.name not in (PARTS_DIR, ".lock") and not p.name.startswith(".")]
        if others:
            raise ClapkitError(
                f"{out} is a folder with other files ({', '.join(sorted(others)[:3])}, ...) and not an "
                "embedding store; choose a new or empty folder for --out"
            )
    (out / PARTS_DIR).mkdir(parents=True, exist_ok=True)
    info = {"format": STORE_FORMAT, "version": STORE_VERSION, **info}
    path = out / INFO_FILE
    if not path.exists():
        atomic_write(path, lambda tmp: tmp.write_text(json.dumps(info, indent=2) + "\n"))
    existing = read_info(out)
    old, new = existing.get("model", {}), info["model"]
    if existing.get("embedding_dim") != info["embedding_dim"] or not same_model(old, new):
        raise ClapkitError(
            f"{out} holds embeddings of model {describe_model(old)}, but this run uses {describe_model(new)}. "
            "Embeddings of different models cannot be mixed: pass the same --model/--weights as before, or choose "
            "another --out."
        )
    return out


def read_info(directory: str | os.PathLike[str]) -> dict:
    return read_format_file(
        directory, INFO_FILE, STORE_FORMAT, STORE_VERSION, what="an embedding store",
        create=f"create one with `clapkit embed PATHS --model M --out {directory}`",
        redo="remove the folder and embed again", redo_new="embed into a new folder",
    )


# ------------------------------------------------------------------------------------------------------- parts
@dataclass
class Part:
    """One batch of a job: embedded files (``paths``, ``embeddings (n, D)``, ``durations``, ``silent``) and the
    files of the batch that failed."""

    paths: list[str]
    embeddings: np.ndarray
    durations: np.ndarray
    silent: np.ndarray
    failures: list[Failure]

    @classmethod
    def of_failures(cls, failures: Sequence[Failure], dim: int) -> Part:
        """A part recording failures only (inputs that were not found)."""
        return cls([], np.zeros((0, dim), np.float32), np.zeros(0), np.zeros(0, bool), list(failures))


def write_part(directory: str | os.PathLike[str], part: Part) -> Path:
    """Write one batch atomically as ``parts/part-<hash of its files>.npz``."""
    names = sorted(part.paths + [f.source for f in part.failures])
    key = hashlib.sha1("\n".join(names).encode()).hexdigest()[:16]
    path = Path(directory) / PARTS_DIR / f"part-{key}.npz"
    arrays = {
        "paths": np.array(part.paths, dtype=str),
        "embeddings": np.asarray(part.embeddings, dtype=np.float32),
        "durations": np.asarray(part.durations, dtype=np.float64),
        "silent": np.asarray(part.silent, dtype=bool),
        "failed_paths": np.array([f.source for f in part.failures], dtype=str),
        "failed_reasons": np.array([f.reason for f in part.failures], dtype=str),
        "written_at": np.array(time.time()),
    }

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as handle:
            np.savez(handle, **arrays)

    atomic_write(path, write)
    return path


def _read_part(path: Path) -> dict[str, np.ndarray] | None:
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except FileNotFoundError:  # merged away by another process meanwhile
        return None
    except Exception as exc:
        raise ClapkitError(f"{path}: unreadable part ({exc}); delete this file and re-run the job") from None


def _part_files(out: Path) -> list[Path]:
    folder = out / PARTS_DIR
    return sorted(folder.glob("part-*.npz")) if folder.is_dir() else []


# ------------------------------------------------------------------------------------------------- CSV helpers
def _read_index(out: Path) -> tuple[list[str], np.ndarray, np.ndarray]:
    path = out / INDEX_FILE
    if not path.exists():
        return [], np.zeros(0), np.zeros(0, dtype=bool)
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    durations = np.array([float(r["duration_seconds"]) if r["duration_seconds"] else math.nan for r in rows])
    return [r["path"] for r in rows], durations, np.array([r["silent"] == "true" for r in rows], dtype=bool)


def _read_errors(out: Path) -> dict[str, str]:
    path = out / ERRORS_FILE
    if not path.exists():
        return {}
    with open(path, newline="", encoding="utf-8") as handle:
        return {r["path"]: r["reason"] for r in csv.DictReader(handle)}


def _write_csv(path: Path, header: Sequence[str], rows: Iterator[Sequence[Any]]) -> None:
    """Write a CSV under its partial name, fsynced: ``merge_parts`` renames the partial files into place together."""
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
        handle.flush()
        os.fsync(handle.fileno())


# ------------------------------------------------------------------------------------------------------- state
@dataclass
class StoreState:
    """What a job needs to resume: ``done`` (path -> duration in seconds, nan if unknown) and ``failed`` paths."""

    done: dict[str, float]
    failed: set[str]


def read_state(directory: str | os.PathLike[str]) -> StoreState:
    """Files embedded so far (merged or still in parts) and files whose last attempt failed."""
    out = Path(directory)
    with locked(out, exclusive=False):
        paths, durations, _ = _read_index(out)
        done = dict(zip(paths, durations.tolist()))
        failed = set(_read_errors(out))
        for file in _part_files(out):
            data = _read_part(file)
            if data is not None:
                done.update(zip(data["paths"].tolist(), data["durations"].tolist()))
                failed.update(data["failed_paths"].tolist())
    return StoreState(done=done, failed=failed - set(done))


def _recover(out: Path) -> None:
    """Finish or discard a merge that was interrupted (see the module docstring for the order of the renames)."""
    partial = {name: out / tmp for name, tmp in _PARTIAL.items()}
    if partial[INDEX_FILE].exists() and not partial[EMBEDDINGS_FILE].exists():
        os.replace(partial[INDEX_FILE], out / INDEX_FILE)  # embeddings were renamed already: roll forward
    for tmp in partial.values():
        if tmp.exists():
            tmp.unlink()


def merge_parts(directory: str | os.PathLike[str]) -> int:
    """Fold ``parts/`` into the merged files, sorted by path; return the number of files in the store."""
    out = Path(directory)
    dim = int(read_info(out)["embedding_dim"])
    with locked(out, exclusive=True):
        _recover(out)
        old_paths, old_durations, old_silent = _read_index(out)
        old = np.load(out / EMBEDDINGS_FILE, mmap_mode="r") if old_paths else np.zeros((0, dim), np.float32)
        if len(old) != len(old_paths):
            raise ClapkitError(
                f"{out}: {EMBEDDINGS_FILE} has {len(old)} rows but {INDEX_FILE} {len(old_paths)}; "
                "the store is damaged: delete both files and re-run the job (parts are kept)"
            )
        parts = [(f, d) for f in _part_files(out) if (d := _read_part(f)) is not None]
        if not parts:
            return len(old_paths)
        parts.sort(key=lambda item: (float(item[1]["written_at"]), item[0].name))
        # path -> (source, row): source -1 is the merged store, k the k-th part; later parts win
        where = {p: (-1, i) for i, p in enumerate(old_paths)}
        meta = {p: (old_durations[i], old_silent[i]) for i, p in enumerate(old_paths)}
        errors = _read_errors(out)
        for k, (file, data) in enumerate(parts):
            if len(data["paths"]) and data["embeddings"].shape[1:] != (dim,):
                raise ClapkitError(f"{file}: embeddings of width {data['embeddings'].shape[1]}, the store's are {dim}")
            for i, p in enumerate(data["paths"].tolist()):
                where[p], meta[p] = (k, i), (data["durations"][i], data["silent"][i])
            errors.update(zip(data["failed_paths"].tolist(), data["failed_reasons"].tolist()))
        partial = {name: out / tmp for name, tmp in _PARTIAL.items()}
        _write_csv(
            partial[ERRORS_FILE], ("path", "reason"), ((p, r) for p, r in sorted(errors.items()) if p not in where)
        )
        os.replace(partial[ERRORS_FILE], out / ERRORS_FILE)
        if any(len(d["paths"]) for _, d in parts):  # parts holding only failures leave the embeddings as they are
            _write_merged(out, dim, where, meta, [old] + [d["embeddings"] for _, d in parts])
        for file, _ in parts:
            file.unlink(missing_ok=True)
        _remove_stale_temporaries(out / PARTS_DIR)
    return len(where)


def _remove_stale_temporaries(folder: Path) -> None:
    """Half-written parts of killed processes (``.part-*.tmp``); recent ones may belong to a running rank."""
    for tmp in folder.glob(".part-*.tmp"):
        with contextlib.suppress(OSError):
            if time.time() - tmp.stat().st_mtime > STALE_SECONDS:
                tmp.unlink()


def _write_merged(out: Path, dim: int, where: dict, meta: dict, sources: list[np.ndarray]) -> None:
    """Write embeddings and index sorted by path; ``where[path] = (k, row)`` in ``sources[k + 1]``."""
    paths = sorted(where)
    by_source: dict[int, list[tuple[int, int]]] = {}
    for target_row, p in enumerate(paths):
        source, row = where[p]
        by_source.setdefault(source, []).append((target_row, row))
    partial = {name: out / tmp for name, tmp in _PARTIAL.items()}
    target = np.lib.format.open_memmap(partial[EMBEDDINGS_FILE], mode="w+", dtype=np.float32, shape=(len(paths), dim))
    for source, rows in by_source.items():
        for start in range(0, len(rows), _SEARCH_BLOCK):
            block = np.array(rows[start : start + _SEARCH_BLOCK], dtype=np.int64).reshape(-1, 2)
            target[block[:, 0]] = sources[source + 1][block[:, 1]]
    target.flush()
    del target
    _write_csv(
        partial[INDEX_FILE],
        ("row", "path", "duration_seconds", "silent"),
        (
            (i, p, "" if math.isnan(meta[p][0]) else repr(float(meta[p][0])), "true" if meta[p][1] else "false")
            for i, p in enumerate(paths)
        ),
    )
    os.replace(partial[EMBEDDINGS_FILE], out / EMBEDDINGS_FILE)
    os.replace(partial[INDEX_FILE], out / INDEX_FILE)


# ------------------------------------------------------------------------------------------------------ reading
@dataclass(frozen=True)
class Match:
    """A search result: the file, its cosine similarity to the query and its row in the store."""

    path: str
    score: float
    row: int


class EmbeddingStore:
    """A merged store opened for reading. ``embeddings`` is memory-mapped: opening costs nothing whatever its size."""

    def __init__(self, directory: str | os.PathLike[str]):
        self.directory = Path(directory)
        self.info = read_info(self.directory)
        if (self.directory / _PARTIAL[INDEX_FILE]).exists():  # a merge was interrupted after its first rename
            try:
                with locked(self.directory, exclusive=True):
                    _recover(self.directory)
            except OSError as exc:
                raise ClapkitError(
                    f"{self.directory}: an interrupted merge cannot be finished ({exc}); re-run "
                    "`clapkit embed` on it with write access"
                ) from None
        with locked(self.directory, exclusive=False):
            self.paths, self.durations, self.silent = _read_index(self.directory)
            dim = int(self.info["embedding_dim"])
            self.embeddings = (
                np.load(self.directory / EMBEDDINGS_FILE, mmap_mode="r")
                if self.paths
                else np.zeros((0, dim), np.float32)
            )
            self.errors = [Failure(p, r) for p, r in _read_errors(self.directory).items()]
            self.pending_parts = len(_part_files(self.directory))
        if len(self.embeddings) != len(self.paths):
            raise ClapkitError(f"{self.directory}: {len(self.embeddings)} embeddings but {len(self.paths)} index rows")
        self._rows = {p: i for i, p in enumerate(self.paths)}

    def __len__(self) -> int:
        return len(self.paths)

    def __repr__(self) -> str:
        return f"EmbeddingStore({str(self.directory)!r}, files={len(self)}, model={self.info['model']['name']!r})"

    def embedding(self, path: str | os.PathLike[str]) -> np.ndarray | None:
        """The stored embedding of ``path`` (any spelling of it), or None."""
        row = self._rows.get(os.path.abspath(os.path.normpath(str(path))))
        return None if row is None else np.array(self.embeddings[row])

    def search(self, query: np.ndarray, top_k: int = 10, exclude: Sequence[str] = ()) -> list[Match]:
        """The ``top_k`` files most similar (cosine) to an L2-normalised ``query (D,)``, best first; ties by path.

        Scans the memory-mapped embeddings in blocks, so memory stays small for any store size."""
        query = np.asarray(query, dtype=np.float32).reshape(-1)
        if query.shape[0] != self.embeddings.shape[1]:
            raise ClapkitError(f"query has {query.shape[0]} dimensions, the store {self.embeddings.shape[1]}")
        skip = {self._rows[p] for p in (os.path.abspath(str(e)) for e in exclude) if p in self._rows}
        best_rows, best_scores = np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        for start in range(0, len(self), _SEARCH_BLOCK):
            scores = np.asarray(self.embeddings[start : start + _SEARCH_BLOCK]) @ query
            rows = np.arange(start, start + len(scores))
            keep = np.isin(rows, list(skip), invert=True) if skip else slice(None)
            best_rows, best_scores = (
                np.concatenate([best_rows, rows[keep]]),
                np.concatenate([best_scores, scores[keep]]),
            )
            if len(best_rows) > top_k:
                order = np.lexsort((best_rows, -best_scores))[:top_k]
                best_rows, best_scores = best_rows[order], best_scores[order]
        order = np.lexsort((best_rows, -best_scores))[:top_k]
        return [Match(self.paths[r], float(s), int(r)) for r, s in zip(best_rows[order], best_scores[order])]
