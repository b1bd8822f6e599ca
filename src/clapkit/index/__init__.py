"""Sound index: a FAISS vector index over a library's embeddings (exact or approximate, chosen by size), with stable
ids, incremental add/remove, and the identity of the model it was built with. Built on the embedding store."""

from clapkit.index.build import BuildReport, build_from_vectors, build_index, remove_from_index
from clapkit.index.library import Hit, IndexModelMismatchError, Item, SoundIndex
from clapkit.index.search import IndexSearcher, Tag, default_tag_labels
from clapkit.index.vectors import APPROXIMATE_FROM, EXACT, IVF, VectorIndex, choose_kind

__all__ = [
    "APPROXIMATE_FROM",
    "EXACT",
    "IVF",
    "BuildReport",
    "Hit",
    "IndexModelMismatchError",
    "IndexSearcher",
    "Item",
    "SoundIndex",
    "Tag",
    "VectorIndex",
    "build_from_vectors",
    "build_index",
    "choose_kind",
    "default_tag_labels",
    "remove_from_index",
]
