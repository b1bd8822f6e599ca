"""Captions in a sound index: written by a captioning model (MS-CLAP clapcap) for each indexed file, stored in the
item table, shown on the service page and searched as text.

Text search with captions (``search_with_captions``): the query's words are matched against each caption (lower
case, letters and digits, a final "s" ignored, a few function words left out); ``match`` = the share of the query's
words found. The embedding search's candidates (the best ``max(k, 50)``) and every item whose caption matches are
ranked by ``cosine + CAPTION_BOOST * match``; so a caption that says what was asked lifts a sound, and a sound the
embedding search missed can still be found by its caption. A model without a text encoder (a captioning model)
ranks by ``match`` alone.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from clapkit.index.library import Hit, SoundIndex
from clapkit.inputs import Failure

CAPTION_BOOST = 0.2
CANDIDATES = 50
STOPWORDS = frozenset("a an the of in on at to and or with by for is are be from this that it its".split())


@dataclass
class CaptionReport:
    captioned: int = 0
    already: int = 0
    failures: list[Failure] = field(default_factory=list)


def caption_index(index: SoundIndex, captioner, options=None, *, progress: bool = False) -> CaptionReport:
    """Caption every item of ``index`` without a caption (files that cannot be read are reported), then commit."""
    from tqdm import tqdm

    from clapkit.captioning import DecodingOptions, caption_files

    options = options or DecodingOptions()
    todo = [item for item in index.items.values() if not item.caption]
    report = CaptionReport(already=len(index) - len(todo))
    bar = tqdm(total=len(todo), unit="file", desc="caption", disable=not progress, dynamic_ncols=True)
    by_path = {item.path: item.id for item in todo}
    try:
        for item in todo:
            result = caption_files(captioner, [item.path], options)
            report.failures.extend(result.failures)
            for path, caption in zip(result.paths, result.captions):
                index.set_caption(by_path[path], caption)
                report.captioned += 1
            bar.update(1)
    finally:
        bar.close()
    if report.captioned:
        index.save()
    return report


def words(text: str) -> set[str]:
    found = set()
    for word in re.findall(r"[a-z0-9]+", text.lower()):
        if word in STOPWORDS:
            continue
        found.add(word[:-1] if len(word) > 3 and word.endswith("s") else word)
    return found


def caption_match(query_words: set[str], caption: str | None) -> float:
    """The share of ``query_words`` that ``caption`` contains (0 without a caption)."""
    if not caption or not query_words:
        return 0.0
    return len(query_words & words(caption)) / len(query_words)


def search_with_captions(
    index: SoundIndex, query: str, k: int, embed_text: Callable[[str], np.ndarray] | None
) -> list[Hit]:
    """Text search over embeddings and captions (module docstring); ``embed_text`` None: captions only."""
    query_words = words(query)
    matches = {i: m for i, item in index.items.items() if (m := caption_match(query_words, item.caption)) > 0}
    if embed_text is None:
        ranked = sorted(matches.items(), key=lambda pair: (-pair[1], pair[0]))[:k]
        return [Hit(index.items[i], float(m)) for i, m in ranked]
    vector = embed_text(query)
    scores = {hit.item.id: hit.score for hit in index.search(vector, max(k, CANDIDATES))}
    for item_id in matches:
        if item_id not in scores:
            scores[item_id] = float(index.embedding(item_id) @ vector)
    boosted = {i: s + CAPTION_BOOST * matches.get(i, 0.0) for i, s in scores.items()}
    ranked = sorted(boosted.items(), key=lambda pair: (-pair[1], pair[0]))[:k]
    return [Hit(index.items[i], float(s)) for i, s in ranked]
