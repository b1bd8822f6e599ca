"""Precomputing captions into a manifest (``clapkit data captions``): keyword captions for rows that have only
keywords, rewrites of every caption, debiasing; written as a new manifest so training reads them as plain data."""

from __future__ import annotations

import os

from clapkit.train.captions import Debiaser, KeywordCaptioner, Rewriter
from clapkit.train.manifests import ManifestEntry, read_manifest, write_manifest

DEBIAS_CHOICES = ("generated", "all", "none")


def precompute_captions(
    manifest: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    backend=None,
    root: str | os.PathLike[str] | None = None,
    keywords_to_caption: bool = False,
    rewrites: int = 0,
    seed: int = 0,
    debias: str = "generated",
) -> dict[str, int]:
    """Read ``manifest``, add keyword captions (``keywords_to_caption``) and ``rewrites`` rewrites per caption made by
    ``backend`` (a ``clapkit.textgen`` generator; ``None``: offline templates and rules), debias (``"generated"``
    text only, ``"all"`` text, or ``"none"``), write ``out``; returns counts."""
    manifest_data = read_manifest(manifest, root=root)
    debiaser = Debiaser() if debias != "none" else None
    entries = list(manifest_data.entries)
    counts = {"entries": len(entries), "keyword_captions": 0, "rewrites": 0,
              "skipped_rows": sum(manifest_data.skipped.values())}
    generated: dict[str, list[str]] = {e.id: [] for e in entries}
    if keywords_to_caption:
        todo = [e for e in entries if not e.captions and e.keywords]
        if todo:
            captioner = KeywordCaptioner(backend, seed=seed)
            for entry, caption in zip(todo, captioner.captions([list(e.keywords) for e in todo])):
                generated[entry.id].append(caption)
            counts["keyword_captions"] = len(todo)
    rewritten: dict[str, list[str]] = {e.id: list(e.rewrites) for e in entries}
    if rewrites > 0:
        rewriter = Rewriter(backend, seed=seed)
        pairs = [(e.id, c) for e in entries for c in (*e.captions, *generated[e.id])]
        for (identifier, _), new in zip(pairs, rewriter.rewrite_many([c for _, c in pairs], rewrites)):
            if debiaser is not None:
                new = [debiaser(r) for r in new]
            rewritten[identifier] = list(dict.fromkeys(rewritten[identifier] + new))
            counts["rewrites"] += len(new)
    out_entries = []
    for e in entries:
        originals = [debiaser(c) for c in e.captions] if debiaser is not None and debias == "all" else list(e.captions)
        made = [debiaser(c) for c in generated[e.id]] if debiaser is not None else generated[e.id]
        out_entries.append(ManifestEntry(e.id, e.audio, tuple(dict.fromkeys(originals + made)), e.keywords,
                                         tuple(rewritten[e.id])))
    write_manifest(out_entries, out)
    return counts
