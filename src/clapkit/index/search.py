"""Querying a sound index with its model: text search, similar sounds, zero-shot tags and timelines of long files.

:class:`IndexSearcher` binds a model to an index and refuses a model other than the one the index was built with
(the weights fingerprint and config hash of ``clapkit.identity.model_identity`` must match). Calls into the model are
serialised by a lock (tokenizers and CPU thread pools do not like concurrent callers); vector search is not.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from clapkit.errors import CheckpointError, ClapkitError
from clapkit.index.library import Hit, SoundIndex
from clapkit.loading import load_reproducibly
from clapkit.locate import LocateResult, embed_windows, score_windows

DEFAULT_PROMPT = "This is a sound of {}."
MAX_LABELS = 1000


def default_tag_labels() -> list[str]:
    """The AudioSet classes (bundled ontology) that can label a sound: not abstract, not blacklisted; each by its
    first synonym ("fire engine", "dog", ...)."""
    from clapkit.ontology import default_ontology

    labels: dict[str, None] = {}
    for entry in default_ontology():
        if not entry.abstract and not entry.blacklisted and entry.synonyms:
            labels.setdefault(entry.synonyms[0], None)
    return list(labels)


@dataclass(frozen=True)
class Tag:
    label: str
    probability: float


def load_index_model(
    index: SoundIndex,
    model: str | None = None,
    weights: str | None = None,
    tokenizer: str | None = None,
    device: str = "cpu",
    trust_pickle: bool = False,
):
    """The model to query ``index`` with: the one recorded in its ``index.json`` (source, weights, tokenizer; the
    seed for random weights), or the one given. The caller checks it is the same model (:class:`IndexSearcher`)."""
    return load_recorded_model(index.model, int(index.info.get("seed", 0)), model, weights, tokenizer, device,
                               trust_pickle)


def load_recorded_model(
    recorded: dict,
    seed: int = 0,
    model: str | None = None,
    weights: str | None = None,
    tokenizer: str | None = None,
    device: str = "cpu",
    trust_pickle: bool = False,
):
    """The model an identity (``clapkit.identity.model_identity``, as an index or a store records it) names: its
    source, weights and tokenizer (random weights seeded with ``seed``), unless ``model`` is given."""
    if model is None:
        model, weights, tokenizer = recorded["source"], recorded.get("weights"), tokenizer or recorded.get("tokenizer")
    if weights is not None and weights != "random" and not os.path.exists(weights):
        raise CheckpointError(f"{weights}: the weights file the embeddings were made with is not there; pass --weights")
    return load_reproducibly(model, weights=weights, seed=seed, tokenizer=tokenizer, device=device,
                             trust_pickle=trust_pickle)


class _SerialModel:
    """A model whose embedding calls take a lock (the rest is passed through)."""

    def __init__(self, model, lock: threading.Lock):
        self._model, self._lock = model, lock

    def __getattr__(self, name: str):
        return getattr(self._model, name)

    def embed_waveforms(self, waveforms: list[np.ndarray], batch_size: int = 8) -> np.ndarray:
        with self._lock:
            return self._model.embed_waveforms(waveforms, batch_size=batch_size)

    def embed_text(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        with self._lock:
            return self._model.embed_text(texts, batch_size=batch_size)

    def label_embeddings(self, labels: Sequence[str], prompt: str | Sequence[str] = DEFAULT_PROMPT) -> np.ndarray:
        with self._lock:
            return self._model.label_embeddings(labels, prompt)


class IndexSearcher:
    """An index and the model it was built with. ``labels``: the tag vocabulary (default: AudioSet classes, embedded
    on first use); ``timeline_cache``: how many long files keep their window embeddings in memory."""

    def __init__(
        self,
        index: SoundIndex,
        model,
        *,
        labels: Sequence[str] | None = None,
        prompt: str = DEFAULT_PROMPT,
        timeline_cache: int = 16,
    ):
        from clapkit.identity import model_identity

        index.check_model(model_identity(model, source=model.config.name))
        self.index = index
        self.model = _SerialModel(model, threading.Lock())
        self.prompt = prompt
        self._labels = list(labels) if labels is not None else None
        self._label_embeddings: np.ndarray | None = None
        self._label_lock = threading.Lock()
        self._windows: OrderedDict[int, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = OrderedDict()
        self._windows_size = max(1, int(timeline_cache))
        self._windows_lock = threading.Lock()
        self._item_locks: dict[int, threading.Lock] = {}

    # ------------------------------------------------------------------------------------------------ search
    def embed_text(self, text: str) -> np.ndarray:
        return self.model.embed_text([text])[0]

    def embed_waveform(self, waveform: np.ndarray) -> np.ndarray:
        """The embedding of one waveform at the model's sample rate."""
        return self.model.embed_waveforms([np.asarray(waveform, dtype=np.float32)], batch_size=1)[0]

    def search_text(self, text: str, k: int = 10) -> list[Hit]:
        """Items matching ``text``: by embedding; with captions in the index, caption matches boost and add items
        (``clapkit.index.captions``); a captioning model (no text encoder) searches the captions alone."""
        from clapkit.index.captions import search_with_captions

        no_text_encoder = getattr(self.model.config, "caption", None) is not None
        if no_text_encoder or self.index.has_captions:
            return search_with_captions(self.index, text, k, None if no_text_encoder else self.embed_text)
        return self.index.search(self.embed_text(text), k)

    def search_waveform(self, waveform: np.ndarray, k: int = 10) -> list[Hit]:
        return self.index.search(self.embed_waveform(waveform), k)

    def similar_to(self, item_id: int, k: int = 10) -> list[Hit]:
        """The ``k`` items most similar to an indexed item, leaving the item itself out."""
        return self.index.search(self.index.embedding(item_id), k, exclude=[int(item_id)])

    # -------------------------------------------------------------------------------------------------- tags
    @property
    def labels(self) -> list[str]:
        if self._labels is None:
            self._labels = default_tag_labels()
        return self._labels

    def _default_label_embeddings(self) -> np.ndarray:
        with self._label_lock:
            if self._label_embeddings is None:
                self._label_embeddings = self.model.label_embeddings(self.labels, self.prompt)
            return self._label_embeddings

    def tags(self, embedding: np.ndarray, labels: Sequence[str] | None = None, k: int = 5) -> list[Tag]:
        """Zero-shot tags of an audio embedding: the ``k`` most probable ``labels`` (softmax over the labels of the
        model's logits; default labels: :attr:`labels`)."""
        if labels is None:
            labels, label_embeddings = self.labels, self._default_label_embeddings()
        else:
            labels = list(dict.fromkeys(label.strip() for label in labels if label.strip()))
            if not labels or len(labels) > MAX_LABELS:
                raise ClapkitError(f"give between 1 and {MAX_LABELS} labels, got {len(labels)}")
            label_embeddings = self.model.label_embeddings(labels, self.prompt)
        probabilities = self.model.probabilities(np.asarray(embedding).reshape(1, -1), label_embeddings)[0]
        order = np.argsort(-probabilities, kind="stable")[: max(1, int(k))]
        return [Tag(labels[i], float(probabilities[i])) for i in order]

    # ---------------------------------------------------------------------------------------------- timeline
    def _window_embeddings(self, item_id: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        with self._windows_lock:
            if item_id in self._windows:
                self._windows.move_to_end(item_id)
                return self._windows[item_id]
            item_lock = self._item_locks.setdefault(item_id, threading.Lock())
        with item_lock:  # one computation per file, however many requests wait for it
            with self._windows_lock:
                if item_id in self._windows:
                    return self._windows[item_id]
            starts, ends, embeddings, silent = [], [], [], []
            for batch in embed_windows(self.model, self.index.items[item_id].path):
                starts.append(batch.starts)
                ends.append(batch.ends)
                embeddings.append(batch.embeddings)
                silent.append(batch.silent)
            value = tuple(np.concatenate(x) for x in (starts, ends, embeddings, silent))
        with self._windows_lock:
            self._windows[item_id] = value
            self._item_locks.pop(item_id, None)
            while len(self._windows) > self._windows_size:
                self._windows.popitem(last=False)
        return value

    def timeline(self, item_id: int, text: str, threshold: float | None = None) -> LocateResult:
        """Where in an indexed file ``text`` matches: ``clapkit.locate`` windows (the model's clip, 50% overlap)
        scored against the text, and the ranges that stand out (adaptive threshold unless one is given). Window
        embeddings are cached per file, so asking again with another text costs one text embedding."""
        if int(item_id) not in self.index.items:
            raise ClapkitError(f"no item with id {item_id}")
        starts, ends, embeddings, silent = self._window_embeddings(int(item_id))
        return score_windows(text, starts, ends, embeddings, self.embed_text(text), silent, threshold)
