"""Embedding cache for evaluation: one ``.npz`` per model fingerprint (``clapkit.identity.model_fingerprint``) and
modality under a cache folder.

Audio embeddings are keyed per file by (absolute path, size, modification time), text embeddings by the exact
text, so a second evaluation with other prompts, another subset or another task re-embeds nothing it has seen.
Files hold plain arrays (``allow_pickle=False``) and are replaced atomically.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from clapkit.files import atomic_open
from clapkit.identity import model_fingerprint  # noqa: F401 (public here, as before)


def file_key(path: str | Path) -> str:
    path = Path(path).resolve()
    stat = path.stat()
    return f"{path}|{stat.st_size}|{stat.st_mtime_ns}"


class EmbeddingCache:
    """Per-model store of embeddings. ``directory=None`` disables caching (everything is computed)."""

    def __init__(self, directory: str | Path | None, fingerprint: str):
        self.directory = Path(directory) if directory is not None else None
        self.fingerprint = fingerprint
        self.hits = 0
        self.misses = 0

    def _file(self, kind: str) -> Path | None:
        return None if self.directory is None else self.directory / f"{kind}-{self.fingerprint[:20]}.npz"

    def _load(self, kind: str) -> dict[str, np.ndarray]:
        path = self._file(kind)
        if path is None or not path.is_file():
            return {}
        with np.load(path, allow_pickle=False) as data:
            return dict(zip(data["keys"].tolist(), data["embeddings"]))

    def _save(self, kind: str, table: dict[str, np.ndarray]) -> None:
        path = self._file(kind)
        if path is None or not table:
            return
        keys = sorted(table)
        embeddings = np.stack([table[k] for k in keys]).astype(np.float32)
        with atomic_open(path, "wb") as handle:
            np.savez(handle, keys=np.array(keys, dtype=str), embeddings=embeddings)

    def lookup(
        self, kind: str, keys: Sequence[str], compute: Callable[[list[int]], np.ndarray]
    ) -> np.ndarray:
        """Embeddings (N, D) for ``keys``; ``compute(indices)`` embeds the ones not cached (rows in that order)."""
        table = self._load(kind)
        todo = [i for i, k in enumerate(keys) if k not in table]
        self.hits += len(keys) - len(todo)
        self.misses += len(todo)
        if todo:
            fresh = np.asarray(compute(todo), dtype=np.float32)
            new = {keys[i]: row for i, row in zip(todo, fresh)}
            table.update({k: row for k, row in new.items() if np.isfinite(row).all()})  # NaN rows: failed, not kept
            self._save(kind, table)
            table.update(new)
        return np.stack([table[k] for k in keys]).astype(np.float32)

    def stats(self) -> dict[str, object]:
        return {"directory": None if self.directory is None else str(self.directory), "fingerprint": self.fingerprint,
                "hits": self.hits, "misses": self.misses}


def default_cache_dir() -> Path:
    """``$CLAPKIT_CACHE/eval`` or ``~/.cache/clapkit/eval``."""
    base = os.environ.get("CLAPKIT_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "clapkit")
    return Path(base) / "eval"


SAVE_EVERY = 256  # audio files embedded between cache writes


def embed_audio_files(
    model, paths: Sequence[str | Path], cache: EmbeddingCache, batch_size: int = 8, progress: bool = False
) -> tuple[np.ndarray, dict[str, str]]:
    """Audio embeddings (N, D) of files, cached; files that cannot be decoded get NaN rows and are returned as
    ``{path: reason}`` so the caller can leave them out and report them."""
    from clapkit.audio.io import load_audio
    from clapkit.errors import AudioError

    unreadable: dict[str, str] = {}

    def compute(indices: list[int]) -> np.ndarray:
        rows = np.full((len(indices), model.config.joint_dim), np.nan, dtype=np.float32)
        chunks = range(0, len(indices), batch_size)
        if progress:
            from tqdm import tqdm

            chunks = tqdm(chunks, desc="embedding audio", unit="batch")
        for start in chunks:
            waveforms, slots = [], []
            for slot in range(start, min(start + batch_size, len(indices))):
                path = str(paths[indices[slot]])
                try:
                    waveforms.append(load_audio(path, model.sample_rate))
                    slots.append(slot)
                except AudioError as exc:
                    unreadable[path] = exc.reason
            if waveforms:
                rows[slots] = model.embed_waveforms(waveforms, batch_size=batch_size)
        return rows

    keys = [file_key(p) for p in paths]
    parts = []
    for start in range(0, len(keys), SAVE_EVERY):  # save as we go: an interrupted run keeps what it embedded
        parts.append(cache.lookup("audio", keys[start : start + SAVE_EVERY],
                                  lambda idx, offset=start: compute([offset + i for i in idx])))
    return np.concatenate(parts) if parts else np.zeros((0, model.config.joint_dim), np.float32), unreadable


def embed_texts(model, texts: Sequence[str], cache: EmbeddingCache, batch_size: int = 64) -> np.ndarray:
    """Text embeddings (M, D), cached per exact text."""
    texts = list(texts)
    return cache.lookup("text", texts, lambda idx: model.embed_text([texts[i] for i in idx], batch_size=batch_size))


def dataset_audio_embeddings(model, dataset, cache: EmbeddingCache, batch_size: int = 8, progress: bool = False):
    """(dataset without undecodable clips, their embeddings (N, D), {path: reason} of the clips left out)."""
    embeddings, unreadable = embed_audio_files(model, [c.path for c in dataset.clips], cache, batch_size, progress)
    keep = np.isfinite(embeddings).all(axis=1)
    if keep.all():
        return dataset, embeddings, unreadable
    kept = [c for c, k in zip(dataset.clips, keep) if k]
    if not kept:
        from clapkit.eval.datasets import DatasetError

        raise DatasetError(f"{dataset.name}: no clip could be decoded (first error: {next(iter(unreadable.items()))})")
    note = f"{int((~keep).sum())} undecodable clips left out"
    return dataset.replace_clips(kept, note), embeddings[keep], unreadable
