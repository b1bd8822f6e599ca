"""FAISS vector search over L2-normalised embeddings (inner product = cosine similarity), with stable ids.

Two kinds of index, chosen by size (:func:`choose_kind`):

- ``exact``: ``IndexIDMap2(IndexFlatIP)``, a brute-force scan. Recall is 1 by definition; the latency grows linearly
  with the library (about 0.15-0.25 ms per 1,000 vectors of 512 dimensions on one core of the benchmark machine).
- ``ivf``: ``IndexIVFFlat`` (inner product), an inverted file: k-means cells (``nlist`` about ``4 * sqrt(N)``), a
  query scans the ``nprobe`` nearest cells. Ids are native; vectors are kept unquantised (exact scores for the
  vectors it visits). A hash-table direct map lets a vector be read back by id.

Both kinds add vectors with caller-given int64 ids and remove them by id in place (``remove_ids``), so a library
changes without rebuilding. An ``ivf`` index whose size drifted far from the size its cells were trained on is
retrained from its own vectors (:meth:`VectorIndex.needs_retraining`, :meth:`VectorIndex.rebuilt`); so is an index
crossing the exact/approximate switch point. The switch point and ``nprobe`` come from
``benchmarks/serve_latency.py index`` (see ``docs/search-service.md``).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np

from clapkit.errors import ClapkitError

EXACT, IVF = "exact", "ivf"
KINDS = (EXACT, IVF)
# Measured by `benchmarks/serve_latency.py index` (tables in docs/search-service.md): from 30,000 vectors on, IVF with
# nprobe 16 keeps recall@10 >= 0.98 on every synthetic library tried (also the hardest: 2,000 unrelated kinds of
# sound, where IVF recall is 0.5-0.9 below 20,000 vectors), while exact search costs ~4 ms a query and grows
# linearly (8-14 ms at 50,000, ~20 ms at 100,000) against 0.15-0.25 ms for IVF.
APPROXIMATE_FROM = 30_000
DEFAULT_NPROBE = 16
MIN_NLIST, MAX_NLIST = 16, 16_384
MIN_POINTS_PER_CELL = 39
TRAINING_POINTS_PER_CELL = 64  # k-means sample: nlist * 64 vectors at most (faiss warns below 39)
RETRAIN_FACTOR = 4.0  # retrain IVF cells when the size moved 4x away from the size they were trained on


_threads_per_query: int | None = None


def set_threads_per_query(threads: int | None) -> None:
    """OpenMP threads FAISS may use for one search (None: its default, all cores). A service answering concurrent
    requests wants 1: its requests use the cores, and FAISS's threads spinning on small searches cost more than they
    save on a busy machine. Applied in the thread that searches (OpenMP's setting is per thread)."""
    global _threads_per_query
    _threads_per_query = None if threads is None else max(1, int(threads))


def _faiss():
    try:
        import faiss
    except ImportError:
        raise ClapkitError("the sound index needs faiss: pip install 'clapkit[serve]'") from None
    return faiss


def choose_kind(count: int, current: str | None = None, approximate_from: int = APPROXIMATE_FROM) -> str:
    """``exact`` below ``approximate_from`` vectors, ``ivf`` from there on. An existing ``ivf`` index stays
    approximate until it shrinks below half the switch point (no flip-flopping around it). Fewer than 624 vectors
    (16 cells of 39) are always searched exactly."""
    if count < MIN_NLIST * MIN_POINTS_PER_CELL:
        return EXACT
    if current == IVF and count >= approximate_from // 2:
        return IVF
    return IVF if count >= approximate_from else EXACT


def nlist_for(count: int) -> int:
    """IVF cells for ``count`` vectors: ``4 * sqrt(count)``, at most ``count / 39`` (so that k-means has the 39
    points per cell faiss asks for), clamped to [16, 16384]."""
    cells = min(round(4 * math.sqrt(max(count, 1))), count // MIN_POINTS_PER_CELL)
    return int(min(MAX_NLIST, max(MIN_NLIST, cells)))


@dataclass
class SearchHits:
    """Results of a batch of queries: ``ids (m, k)`` (-1 where fewer than ``k`` vectors exist) and their cosine
    ``scores (m, k)``, best first."""

    ids: np.ndarray
    scores: np.ndarray


def _as_matrix(vectors: np.ndarray, dim: int) -> np.ndarray:
    array = np.ascontiguousarray(np.asarray(vectors, dtype=np.float32))
    if array.ndim == 1:
        array = array.reshape(1, -1)
    if array.ndim != 2 or array.shape[1] != dim:
        raise ClapkitError(f"vectors of shape {array.shape} do not fit an index of {dim} dimensions")
    return array


def _as_ids(ids) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(ids, dtype=np.int64).reshape(-1))


class VectorIndex:
    """A FAISS index of one ``kind`` over ``dim``-dimensional unit vectors, addressed by int64 ids."""

    def __init__(self, faiss_index, kind: str, dim: int, trained_on: int = 0, nprobe: int = DEFAULT_NPROBE):
        if kind not in KINDS:
            raise ClapkitError(f"index kind {kind!r}: choose one of {', '.join(KINDS)}")
        self.index = faiss_index
        self.kind = kind
        self.dim = dim
        self.trained_on = trained_on  # vectors the IVF cells were trained with (0 for exact)
        self.nprobe = nprobe

    # ---------------------------------------------------------------------------------------------- making
    @classmethod
    def empty_exact(cls, dim: int) -> VectorIndex:
        faiss = _faiss()
        return cls(faiss.IndexIDMap2(faiss.IndexFlatIP(dim)), EXACT, dim)

    @classmethod
    def trained_ivf(cls, vectors: np.ndarray, nprobe: int = DEFAULT_NPROBE, seed: int = 0) -> VectorIndex:
        """An empty IVF index whose cells are trained (k-means, deterministic) on a sample of ``vectors``."""
        faiss = _faiss()
        vectors = np.ascontiguousarray(np.asarray(vectors, dtype=np.float32))
        count, dim = vectors.shape
        nlist = nlist_for(count)
        if count < nlist * MIN_POINTS_PER_CELL:
            raise ClapkitError(
                f"an IVF index needs at least {nlist * MIN_POINTS_PER_CELL} vectors to train its cells, got {count}"
            )
        sample_size = min(count, nlist * TRAINING_POINTS_PER_CELL)
        sample = vectors
        if sample_size < count:
            sample = vectors[np.sort(np.random.default_rng(seed).choice(count, sample_size, replace=False))]
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
        index.cp.seed = 1234 + seed
        index.train(sample)
        index.set_direct_map_type(faiss.DirectMap.Hashtable)
        return cls(index, IVF, dim, trained_on=count, nprobe=nprobe)

    @classmethod
    def build(
        cls, ids, vectors: np.ndarray, kind: str | None = None, dim: int | None = None, nprobe: int = DEFAULT_NPROBE
    ) -> VectorIndex:
        """A new index holding ``vectors`` under ``ids``; ``kind`` None chooses by size."""
        dim = int(dim if dim is not None else np.asarray(vectors).shape[-1])
        vectors = _as_matrix(vectors, dim) if len(vectors) else np.zeros((0, dim), np.float32)
        kind = kind or choose_kind(len(vectors))
        made = cls.trained_ivf(vectors, nprobe) if kind == IVF else cls.empty_exact(dim)
        made.add(ids, vectors)
        return made

    def rebuilt(self, ids, kind: str | None = None) -> VectorIndex:
        """The vectors of ``ids`` (all the index holds) in a fresh index of ``kind`` (default: chosen by size, see
        :func:`choose_kind`); IVF cells are trained anew."""
        ids = _as_ids(ids)
        if len(ids) != len(self):
            raise ClapkitError(f"rebuilding needs all {len(self)} ids of the index, got {len(ids)}")
        kind = kind or choose_kind(len(ids), self.kind)
        return VectorIndex.build(ids, self.vectors(ids), kind, self.dim, self.nprobe)

    def needs_retraining(self) -> bool:
        """True when an IVF index now holds 4x more or fewer vectors than its cells were trained on."""
        if self.kind != IVF or not self.trained_on:
            return False
        ratio = max(len(self), 1) / self.trained_on
        return ratio > RETRAIN_FACTOR or ratio < 1 / RETRAIN_FACTOR

    # ----------------------------------------------------------------------------------------- changing
    def __len__(self) -> int:
        return int(self.index.ntotal)

    def add(self, ids, vectors: np.ndarray) -> None:
        ids = _as_ids(ids)
        if not len(ids):
            return
        vectors = _as_matrix(vectors, self.dim)
        if len(vectors) != len(ids):
            raise ClapkitError(f"{len(vectors)} vectors but {len(ids)} ids")
        self.index.add_with_ids(vectors, ids)

    def remove(self, ids) -> int:
        """Remove the vectors of ``ids`` (unknown ids are ignored); return how many were removed."""
        ids = _as_ids(ids)
        if not len(ids):
            return 0
        return int(self.index.remove_ids(_faiss().IDSelectorArray(ids)))

    # ----------------------------------------------------------------------------------------- reading
    def vectors(self, ids) -> np.ndarray:
        """The stored vectors of ``ids`` (n, dim); raises ``ClapkitError`` for an id that is not in the index."""
        ids = _as_ids(ids)
        if not len(ids):
            return np.zeros((0, self.dim), np.float32)
        try:
            return np.asarray(self.index.reconstruct_batch(ids), dtype=np.float32)
        except RuntimeError:
            raise ClapkitError(f"some of ids {ids[:5].tolist()}... are not in the index") from None

    def search(self, queries: np.ndarray, k: int, exclude=()) -> SearchHits:
        """The ``k`` nearest vectors (largest inner product) to each query, leaving out the ids in ``exclude``."""
        faiss = _faiss()
        queries = _as_matrix(queries, self.dim)
        k = max(1, int(k))
        selector = None
        exclude = _as_ids(list(exclude))
        if len(exclude):
            selector = faiss.IDSelectorNot(faiss.IDSelectorBatch(exclude))
        if self.kind == IVF:
            params = faiss.SearchParametersIVF(nprobe=int(self.nprobe), sel=selector)
        else:
            params = faiss.SearchParameters(sel=selector) if selector is not None else None
        if _threads_per_query is not None:
            faiss.omp_set_num_threads(_threads_per_query)
        scores, ids = self.index.search(queries, k, params=params)
        if selector is not None:  # keep the selectors alive until the search is done
            del selector
        return SearchHits(ids=ids.astype(np.int64), scores=scores.astype(np.float32))

    # ------------------------------------------------------------------------------------------- files
    def save(self, path: str | os.PathLike[str]) -> None:
        _faiss().write_index(self.index, str(path))

    @classmethod
    def load(cls, path: str | os.PathLike[str], kind: str, dim: int, trained_on: int, nprobe: int) -> VectorIndex:
        faiss = _faiss()
        try:
            index = faiss.read_index(str(path))
        except RuntimeError as exc:
            message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ClapkitError(f"{path}: unreadable FAISS index ({message}); build the index again") from None
        if index.d != dim:
            raise ClapkitError(f"{path}: a FAISS index of {index.d} dimensions, index.json says {dim}")
        return cls(index, kind, dim, trained_on, nprobe)
