"""A sound index on disk: a FAISS index over the embeddings of a library of audio files, with stable ids, the
files' paths and the identity of the model that embedded them.

Layout of ``DIR`` (documented in ``docs/search-service.md``)::

    index.json             format "clapkit-index", version 1; the model (as in the embedding store's store.json);
                           embedding_dim; kind (exact|ivf), nprobe, trained_on; approximate_from; next_id;
                           generation; store (the embedding store the vectors came from)
    vectors-<gen>.faiss    the FAISS index of generation <gen> (ids = item ids)
    items-<gen>.csv        id,path,duration_seconds,caption,size,mtime_ns,realpath   one row per indexed file
                           (caption: empty unless ``clapkit index build --captions`` wrote one; size, mtime_ns,
                           realpath: the file as indexed, checked before the service reads it)
    embeddings/            the embedding store ``clapkit index build`` embeds into (``clapkit embed`` layout)

A change is committed by writing ``vectors-<gen+1>.faiss`` and ``items-<gen+1>.csv`` under temporary names (renamed
when complete), then replacing ``index.json`` (one atomic rename: the commit point), then deleting generation
``<gen>``. So a reader sees the old index or the new one, never a mix, and a crash leaves the last committed one.
Writers hold an exclusive ``fcntl`` lock on ``DIR/.lock`` for the whole change; readers a shared one while opening.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import json
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from clapkit.errors import ClapkitError
from clapkit.files import atomic_write, locked, read_format_file
from clapkit.identity import describe_model, same_model
from clapkit.index.vectors import APPROXIMATE_FROM, DEFAULT_NPROBE, EXACT, VectorIndex, choose_kind

INDEX_FORMAT = "clapkit-index"
INDEX_VERSION = 1
INFO_FILE = "index.json"
STORE_DIR = "embeddings"


class IndexModelMismatchError(ClapkitError):
    """A query or an embedding comes from another model than the one the index was built with."""


@dataclass(frozen=True)
class Item:
    """An indexed file: its stable ``id``, absolute ``path``, ``duration_seconds`` (nan if unknown), its
    ``caption`` (None unless the index was built with captions) and the ``identity`` of the file when it was indexed
    (:func:`file_identity`; None in indexes made before it was kept)."""

    id: int
    path: str
    duration_seconds: float
    caption: str | None = None
    identity: tuple[int, int, str] | None = None

    def file_state(self) -> str:
        """``"ok"``: the file on disk is the one indexed; ``"missing"``; ``"changed"``: another file (replaced,
        rewritten, or a link to elsewhere) now has this path."""
        now = file_identity(self.path)
        if now is None:
            return "missing"
        if self.identity is None:  # an older index: at least refuse what a symlink swap would serve
            return "changed" if os.path.islink(self.path) else "ok"
        return "ok" if now == self.identity else "changed"


def file_identity(path: str) -> tuple[int, int, str] | None:
    """(size, mtime in ns, real path) of a regular file, None when there is none at ``path``. The real path
    changes when the file is swapped for a symlink to another file, size or mtime when it is rewritten."""
    try:
        status = os.stat(path)
    except OSError:
        return None
    if not os.path.isfile(path):
        return None
    return status.st_size, status.st_mtime_ns, os.path.realpath(path)


@dataclass(frozen=True)
class Hit:
    """A search result: the item and its cosine similarity to the query."""

    item: Item
    score: float





class SoundIndex:
    """An index directory opened in memory: ``items`` (id -> :class:`Item`), ``vectors`` (a :class:`VectorIndex`)
    and ``info`` (index.json). Change it with :meth:`add` / :meth:`remove`, then :meth:`save`."""

    def __init__(self, directory: Path, info: dict, items: dict[int, Item], vectors: VectorIndex):
        self.directory = directory
        self.info = info
        self.items = items
        self.vectors = vectors
        self._by_path = {item.path: item.id for item in items.values()}
        self._committed: int | None = None  # the generation this object was opened at (None: a new index)

    # ---------------------------------------------------------------------------------------------- opening
    @classmethod
    def create(
        cls,
        directory: str | os.PathLike[str],
        model: dict,
        embedding_dim: int,
        *,
        store: str | None = None,
        approximate_from: int = APPROXIMATE_FROM,
        nprobe: int = DEFAULT_NPROBE,
        extra: dict | None = None,
    ) -> SoundIndex:
        """A new, empty index (not written until :meth:`save`) for embeddings of ``model`` (an identity dict)."""
        out = Path(directory)
        if (out / INFO_FILE).exists():
            raise ClapkitError(f"{out} already holds an index; open it with SoundIndex.open")
        info = {
            "format": INDEX_FORMAT,
            "version": INDEX_VERSION,
            "model": dict(model),
            "embedding_dim": int(embedding_dim),
            "kind": EXACT,
            "nprobe": int(nprobe),
            "trained_on": 0,
            "approximate_from": int(approximate_from),
            "next_id": 0,
            "generation": 0,
            "store": store,
            **(extra or {}),
        }
        return cls(out, info, {}, VectorIndex.empty_exact(int(embedding_dim)))

    @classmethod
    def exists(cls, directory: str | os.PathLike[str]) -> bool:
        return (Path(directory) / INFO_FILE).is_file()

    @classmethod
    def read_info(cls, directory: str | os.PathLike[str]) -> dict:
        return read_format_file(
            directory, INFO_FILE, INDEX_FORMAT, INDEX_VERSION, what="a sound index",
            create=f"build one with `clapkit index build PATHS --model M --out {directory}`",
            redo="build the index again", redo_new="build the index again into a new folder",
        )

    @classmethod
    def open(cls, directory: str | os.PathLike[str], nprobe: int | None = None) -> SoundIndex:
        """Open the last committed generation of the index in ``directory``."""
        out = Path(directory)
        with locked(out, exclusive=False) if out.is_dir() else contextlib.nullcontext():
            info = cls.read_info(out)
            generation = int(info["generation"])
            items = _read_items(out / f"items-{generation}.csv")
            vectors = VectorIndex.load(
                out / f"vectors-{generation}.faiss",
                info["kind"],
                int(info["embedding_dim"]),
                int(info.get("trained_on", 0)),
                int(nprobe or info.get("nprobe", DEFAULT_NPROBE)),
            )
        if len(vectors) != len(items):
            raise ClapkitError(
                f"{out}: the FAISS index holds {len(vectors)} vectors but items-{generation}.csv {len(items)} files; "
                "the index is damaged: build it again"
            )
        opened = cls(out, info, items, vectors)
        opened._committed = generation
        return opened

    # ---------------------------------------------------------------------------------------------- reading
    def __len__(self) -> int:
        return len(self.items)

    def __repr__(self) -> str:
        return (
            f"SoundIndex({str(self.directory)!r}, files={len(self)}, kind={self.kind!r}, model={self.model['name']!r})"
        )

    @property
    def kind(self) -> str:
        return self.vectors.kind

    @property
    def model(self) -> dict:
        return self.info["model"]

    @property
    def dim(self) -> int:
        return int(self.info["embedding_dim"])

    @property
    def store_directory(self) -> Path | None:
        """The embedding store the vectors came from (``None`` for an index built from vectors)."""
        store = self.info.get("store")
        if store is None:
            return None
        path = Path(store)
        return path if path.is_absolute() else self.directory / path

    def item(self, item_id: int) -> Item | None:
        return self.items.get(int(item_id))

    def item_for_path(self, path: str | os.PathLike[str]) -> Item | None:
        item_id = self._by_path.get(os.path.abspath(os.path.normpath(str(path))))
        return None if item_id is None else self.items[item_id]

    def check_model(self, identity: dict) -> None:
        """Raise :class:`IndexModelMismatchError` unless ``identity`` (``clapkit.identity.model_identity``) is the
        model the index was built with."""
        if not same_model(self.model, identity):
            raise IndexModelMismatchError(
                f"{self.directory} was built with model {describe_model(self.model)}; this query uses "
                f"{describe_model(identity)}. Embeddings of different models are not comparable: query with the "
                "index's model (leave --model out to load it), or build an index for this model."
            )

    def search(self, query: np.ndarray, k: int = 10, exclude: Iterable[int] = ()) -> list[Hit]:
        """The ``k`` items most similar (cosine) to an L2-normalised ``query (D,)``, best first."""
        return self.search_many(np.asarray(query).reshape(1, -1), k, exclude)[0]

    def search_many(self, queries: np.ndarray, k: int = 10, exclude: Iterable[int] = ()) -> list[list[Hit]]:
        if not len(self):
            return [[] for _ in range(len(np.atleast_2d(queries)))]
        hits = self.vectors.search(queries, min(int(k), len(self)), exclude=list(exclude))
        return [
            [Hit(self.items[int(i)], float(s)) for i, s in zip(row_ids, row_scores) if i >= 0 and int(i) in self.items]
            for row_ids, row_scores in zip(hits.ids, hits.scores)
        ]

    def embedding(self, item_id: int) -> np.ndarray:
        """The stored embedding of an item, ``(D,)``."""
        if int(item_id) not in self.items:
            raise ClapkitError(f"no item with id {item_id} in {self.directory}")
        return self.vectors.vectors([int(item_id)])[0]

    # --------------------------------------------------------------------------------------------- changing
    def add(self, paths: Sequence[str], embeddings: np.ndarray, durations: Sequence[float] | None = None) -> list[int]:
        """Index files with their embeddings (rows of ``embeddings``); paths already indexed are skipped. Returns
        the new ids (consecutive, never reused). Converts to the approximate kind when the size crosses
        ``approximate_from``."""
        durations = [math.nan] * len(paths) if durations is None else list(durations)
        keep = [i for i, p in enumerate(paths) if p not in self._by_path]
        if len(set(paths[i] for i in keep)) != len(keep):
            raise ClapkitError("the same path is given twice")
        first = int(self.info["next_id"])
        ids = list(range(first, first + len(keep)))
        if not keep:
            return ids
        vectors = np.asarray(embeddings, dtype=np.float32)[keep]
        self.vectors.add(ids, vectors)
        for item_id, i in zip(ids, keep):
            self.items[item_id] = Item(item_id, paths[i], float(durations[i]), identity=file_identity(paths[i]))
            self._by_path[paths[i]] = item_id
        self.info["next_id"] = first + len(keep)
        self._reshape()
        return ids

    def set_caption(self, item_id: int, caption: str | None) -> None:
        """Give an item its caption (committed by :meth:`save`)."""
        self.items[int(item_id)] = dataclasses.replace(self.items[int(item_id)], caption=caption)

    @property
    def has_captions(self) -> bool:
        return any(item.caption for item in self.items.values())

    def remove(self, item_ids: Iterable[int]) -> int:
        """Remove items by id (in place in the FAISS index); return how many were removed."""
        ids = [int(i) for i in item_ids if int(i) in self.items]
        removed = self.vectors.remove(ids)
        for item_id in ids:
            del self._by_path[self.items.pop(item_id).path]
        self._reshape()
        return removed

    def rebuild(self, kind: str | None = None) -> None:
        """Put the same vectors in a fresh FAISS index of ``kind`` (default: by size); retrains IVF cells."""
        kind = kind or choose_kind(len(self), self.kind, int(self.info["approximate_from"]))
        self.vectors = self.vectors.rebuilt(sorted(self.items), kind)
        self.info["kind"], self.info["trained_on"] = self.vectors.kind, self.vectors.trained_on

    def _reshape(self) -> None:
        """Switch kind when the size crossed the switch point; retrain IVF cells after a 4x change of size."""
        wanted = choose_kind(len(self), self.kind, int(self.info["approximate_from"]))
        if wanted != self.kind or self.vectors.needs_retraining():
            self.rebuild(wanted)

    def save(self) -> None:
        """Commit the index as a new generation (see the module docstring)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        with locked(self.directory, exclusive=True):
            on_disk = int(self.read_info(self.directory)["generation"]) if self.exists(self.directory) else None
            if on_disk != self._committed:
                raise ClapkitError(f"{self.directory} was changed by another process meanwhile; run the command again")
            new = 0 if on_disk is None else on_disk + 1
            atomic_write(self.directory / f"vectors-{new}.faiss", self.vectors.save)
            atomic_write(self.directory / f"items-{new}.csv", lambda tmp: _write_items(tmp, self.items))
            info = {**self.info, "generation": new, "kind": self.kind, "trained_on": self.vectors.trained_on}
            text = json.dumps(info, indent=2) + "\n"
            atomic_write(self.directory / INFO_FILE, lambda tmp: tmp.write_text(text))
            self.info, self._committed = info, new
            for stale in [*self.directory.glob("vectors-*.faiss"), *self.directory.glob("items-*.csv")]:
                if stale.stem.rsplit("-", 1)[-1] != str(new):
                    stale.unlink(missing_ok=True)

    def file_sizes(self) -> dict[str, int]:
        """Bytes on disk of the committed FAISS index and item table."""
        generation = self.info["generation"]
        names = {"vectors": f"vectors-{generation}.faiss", "items": f"items-{generation}.csv"}
        return {k: (self.directory / n).stat().st_size for k, n in names.items() if (self.directory / n).exists()}


def _read_items(path: Path) -> dict[int, Item]:
    if not path.is_file():
        raise ClapkitError(f"{path} is missing: the index is damaged; build it again")
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    return {int(r["id"]): _item(r) for r in rows}


def _item(row: dict) -> Item:
    duration = float(row["duration_seconds"]) if row["duration_seconds"] else math.nan
    identity = None
    if row.get("size") and row.get("mtime_ns") and row.get("realpath"):
        identity = (int(row["size"]), int(row["mtime_ns"]), row["realpath"])
    return Item(int(row["id"]), row["path"], duration, row.get("caption") or None, identity)


def _write_items(path: Path, items: dict[int, Item]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(("id", "path", "duration_seconds", "caption", "size", "mtime_ns", "realpath"))
        for item_id in sorted(items):
            item = items[item_id]
            duration = "" if math.isnan(item.duration_seconds) else f"{item.duration_seconds:.6f}"
            writer.writerow((item_id, item.path, duration, item.caption or "", *(item.identity or ("", "", ""))))
