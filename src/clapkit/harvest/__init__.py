"""Corpus v2: harvest licence-clean, labelled sound clips from Debian packages (docs/corpus.md).

``harvest(sources, out)`` extracts .deb files, finds their audio (loose files and zip-format archive members),
labels each file from its path words with AudioSet classes (ontology names and synonyms, a game-sound vocabulary,
descriptions, MiniLM near misses, per-package rules), decodes to 48 kHz mono FLAC, de-duplicates and writes
``meta.csv``/``skipped.csv``/``packages.csv``/``licences/``. Nothing in the library imports this package.
"""

from clapkit.harvest.run import HarvestResult, harvest

__all__ = ["HarvestResult", "harvest"]
