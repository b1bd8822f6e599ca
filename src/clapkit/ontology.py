"""The AudioSet ontology (bundled, CC BY-SA 4.0; see ``clapkit/data/NOTICE.md``): label lookup and synonyms.

Used for offline keyword-to-caption, rule-based caption rewrites and descriptive zero-shot prompts::

    from clapkit.ontology import default_ontology
    entry = default_ontology().find("dog_bark")   # -> the "Bark" entry, whose parent is "Dog"
    entry.synonyms                                # ("bark",)
    default_ontology().find("Vehicle horn, car horn, honking").synonyms  # ("vehicle horn", "car horn", "honking")

``find`` is fuzzy-ish: exact names and synonyms first, then word overlap (light stemming, so "crying_baby" finds
"Baby cry, infant cry"), where a label word may be matched by an ancestor ("dog" in "dog_bark"), then close spelling.
"""

from __future__ import annotations

import difflib
import functools
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from clapkit.errors import ClapkitError

_MIN_SCORE = 0.34  # below this, find() gives up rather than guess
_CONTEXT_WEIGHT = 0.9  # a label word matched by an ancestor counts slightly less than one matched by the entry
_PREFIX_WEIGHT = 0.9  # "laughing" ~ "laughter": a shared prefix of 4+ letters
_HEAD_BONUS = 0.05  # "hand_saw" is a saw: prefer the entry matching the label's last word
_CLOSE_SPELLING_MIN_LENGTH = 5  # "cow" must not become "crow"


@dataclass(frozen=True)
class OntologyEntry:
    """One AudioSet class. ``synonyms`` are the comma-separated parts of ``name``, cleaned (lower-cased first word,
    parenthetical remarks, "etc." and a leading "and" removed); ``parents`` are the parents' names."""

    id: str
    name: str
    synonyms: tuple[str, ...]
    description: str
    parents: tuple[str, ...]
    parent_ids: tuple[str, ...]
    child_ids: tuple[str, ...]
    restrictions: tuple[str, ...]

    @property
    def abstract(self) -> bool:
        return "abstract" in self.restrictions

    @property
    def blacklisted(self) -> bool:
        return "blacklist" in self.restrictions


def split_synonyms(name: str) -> tuple[str, ...]:
    """``"Fire engine, fire truck (siren)"`` -> ``("fire engine", "fire truck")``; commas inside parentheses do not
    split (``"Roaring cats (lions, tigers)"`` -> ``("roaring cats",)``)."""
    parts, depth, current = [], 0, []
    for char in name:
        depth += char == "("
        depth -= char == ")"
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    synonyms: list[str] = []
    for part in parts:
        part = re.sub(r"\([^)]*\)", "", part)
        part = re.sub(r"^\s*(and|or)\s+", "", part).strip(" .")
        if not part or part.lower() == "etc":
            continue
        first, _, rest = part.partition(" ")
        if not (first.isupper() and len(first) > 1):
            first = first.lower()
        part = f"{first} {rest}".strip()
        if part not in synonyms:
            synonyms.append(part)
    return tuple(synonyms)


def normalize_label(label: str) -> str:
    """Lower case, possessive ``'s`` dropped, anything not a letter or digit becomes one space."""
    text = re.sub(r"'s(?![a-z0-9])", "", label.lower())
    return " ".join(re.sub(r"[^0-9a-z]+", " ", text).split())


def stem(word: str) -> str:
    """A deliberately light stemmer for matching labels: barking/barks/bark -> bark, crying/cries -> cry."""
    w = word.lower()
    if len(w) <= 3:
        return w
    if w.endswith("ies") and len(w) > 4:
        w = w[:-3] + "y"
    elif w.endswith("ing") and len(w) > 5:
        w = w[:-3]
    elif w.endswith("ed") and len(w) > 4:
        w = w[:-2]
    elif w.endswith("es") and w[:-2].endswith(("s", "x", "z", "ch", "sh")):
        w = w[:-2]
    elif w.endswith("s") and not w.endswith(("ss", "us", "is")):
        w = w[:-1]
    if w.endswith("e") and len(w) > 3:
        w = w[:-1]
    if len(w) > 2 and w[-1] == w[-2]:
        w = w[:-1]
    return w


def _stems(text: str) -> tuple[str, ...]:
    return tuple(stem(w) for w in normalize_label(text).split())


def _word_match(word: str, candidates: tuple[str, ...] | frozenset[str]) -> float:
    best = 0.0
    for candidate in candidates:
        if word == candidate:
            return 1.0
        short, long = sorted((word, candidate), key=len)
        if len(short) >= 4 and long.startswith(short):
            best = _PREFIX_WEIGHT
    return best


class Ontology:
    """The AudioSet ontology: entries by id and name, parents/children, and fuzzy label lookup."""

    def __init__(self, records: list[dict]):
        parent_ids: dict[str, list[str]] = {}
        for record in records:
            for child in record.get("child_ids", []):
                parent_ids.setdefault(child, []).append(record["id"])
        names = {r["id"]: r["name"] for r in records}
        self.entries: list[OntologyEntry] = []
        for r in records:
            parents = tuple(parent_ids.get(r["id"], []))
            self.entries.append(
                OntologyEntry(
                    id=r["id"], name=r["name"], synonyms=split_synonyms(r["name"]),
                    description=r.get("description", ""), parents=tuple(names[p] for p in parents if p in names),
                    parent_ids=parents, child_ids=tuple(r.get("child_ids", [])),
                    restrictions=tuple(r.get("restrictions", [])),
                )
            )
        self._by_id = {e.id: e for e in self.entries}
        self._exact: dict[str, OntologyEntry] = {}
        for e in sorted(self.entries, key=lambda e: e.blacklisted):  # usable entries win a shared name
            for text in (e.name, *e.synonyms):
                self._exact.setdefault(normalize_label(text), e)
        self._synonym_stems = {e.id: [_stems(s) for s in e.synonyms] for e in self.entries}
        ancestors = {e.id: self.ancestors(e) for e in self.entries}
        self._depth = {e.id: len(ancestors[e.id]) for e in self.entries}
        self._ancestor_stems = {
            e.id: frozenset(s for a in ancestors[e.id] for syn in a.synonyms for s in _stems(syn)) for e in self.entries
        }
        self._found: dict[str, OntologyEntry | None] = {}
        self._phrases: dict[tuple[str, ...], OntologyEntry] | None = None

    @classmethod
    def load(cls, path: str | Path | None = None) -> Ontology:
        """The bundled ontology, or an ``ontology.json`` in the AudioSet format at ``path``."""
        try:
            if path is None:
                text = resources.files("clapkit").joinpath("data/audioset_ontology.json").read_text(encoding="utf-8")
            else:
                text = Path(path).read_text(encoding="utf-8")
            records = json.loads(text)
        except (OSError, json.JSONDecodeError) as exc:
            raise ClapkitError(f"cannot read the AudioSet ontology from {path or 'the package'}: {exc}") from None
        if not isinstance(records, list) or not all(isinstance(r, dict) and "id" in r and "name" in r for r in records):
            raise ClapkitError(f"{path}: not an AudioSet ontology (a JSON list of objects with 'id' and 'name')")
        return cls(records)

    def __len__(self) -> int:
        return len(self.entries)

    def __iter__(self) -> Iterator[OntologyEntry]:
        return iter(self.entries)

    def get(self, name_or_id: str) -> OntologyEntry:
        """The entry with this id (``/m/0bt9lr``), exact name or synonym; ``KeyError`` otherwise."""
        if name_or_id in self._by_id:
            return self._by_id[name_or_id]
        entry = self._exact.get(normalize_label(name_or_id))
        if entry is None:
            raise KeyError(f"{name_or_id!r} is not an AudioSet class name, synonym or id; try Ontology.find()")
        return entry

    def parents_of(self, entry: OntologyEntry) -> list[OntologyEntry]:
        return [self._by_id[p] for p in entry.parent_ids if p in self._by_id]

    def children_of(self, entry: OntologyEntry) -> list[OntologyEntry]:
        return [self._by_id[c] for c in entry.child_ids if c in self._by_id]

    def ancestors(self, entry: OntologyEntry) -> list[OntologyEntry]:
        """All ancestors, nearest first (breadth-first over every parent)."""
        seen: dict[str, OntologyEntry] = {}
        frontier = self.parents_of(entry)
        while frontier:
            next_frontier = []
            for parent in frontier:
                if parent.id not in seen:
                    seen[parent.id] = parent
                    next_frontier.extend(self.parents_of(parent))
            frontier = next_frontier
        return list(seen.values())

    def phrase_index(self) -> dict[tuple[str, ...], OntologyEntry]:
        """Every name and synonym as a tuple of light stems (``("car", "horn")`` -> "Vehicle horn, car horn,
        honking"), for matching word sequences exactly; usable entries win a shared phrase, then the more specific
        one (so "hiss" is the cat's Hiss only if no other entry claims it first in file order)."""
        if self._phrases is None:
            phrases: dict[tuple[str, ...], OntologyEntry] = {}
            for e in sorted(self.entries, key=lambda e: (e.blacklisted, e.abstract)):
                for text in (e.name, *e.synonyms):
                    key = _stems(text)
                    if key:
                        phrases.setdefault(key, e)
            self._phrases = phrases
        return self._phrases

    def top_category(self, entry: OntologyEntry) -> OntologyEntry:
        """The top-level category (an entry without parents) ``entry`` is under: its first parent chain's root."""
        while entry.parent_ids:
            entry = self._by_id[entry.parent_ids[0]]
        return entry

    def is_under(self, entry: OntologyEntry, name: str) -> bool:
        """True when ``entry`` is the class ``name`` or one of its descendants."""
        return entry.name == name or any(a.name == name for a in self.ancestors(entry))

    def find(self, label: str) -> OntologyEntry | None:
        """The entry a free-form label most likely means, or ``None``.

        Tries, in order: an exact name or synonym (after normalising case, ``_``/``-`` and punctuation); the entry whose
        synonyms and ancestors cover most of the label's words (light stemming; a match of the label's last word, the
        head noun, and fewer extra words count; ties go to the more general entry); close spelling of a whole synonym
        (labels of 5+ characters).
        """
        key = normalize_label(label)
        if key not in self._found:
            self._found[key] = self._find(key)
        return self._found[key]

    def _find(self, key: str) -> OntologyEntry | None:
        if not key:
            return None
        if key in self._exact:
            return self._exact[key]
        words = tuple(stem(w) for w in key.split())
        best, best_rank = None, None
        for entry in self.entries:
            score = self._score(entry, words)
            if score < _MIN_SCORE:
                continue
            rank = (round(score, 6), not entry.blacklisted, not entry.abstract, -self._depth[entry.id])
            if best_rank is None or rank > best_rank:
                best, best_rank = entry, rank
        if best is not None:
            return best
        if len(key) < _CLOSE_SPELLING_MIN_LENGTH:
            return None
        close = difflib.get_close_matches(key, list(self._exact), n=1, cutoff=0.85)
        return self._exact[close[0]] if close else None

    def _score(self, entry: OntologyEntry, words: tuple[str, ...]) -> float:
        context = self._ancestor_stems[entry.id]
        best = 0.0
        for synonym in self._synonym_stems[entry.id]:
            own = [_word_match(w, synonym) for w in words]
            if not any(own):
                continue
            covered = sum(o if o else _CONTEXT_WEIGHT * _word_match(w, context) for w, o in zip(words, own))
            extra = sum(1 for s in synonym if not _word_match(s, words)) / len(synonym)
            head = _HEAD_BONUS if len(words) > 1 and own[-1] else 0.0  # English compounds end in their head noun
            best = max(best, covered / len(words) - 0.5 * extra + head)
        return best


@functools.lru_cache(maxsize=1)
def default_ontology() -> Ontology:
    """The bundled AudioSet ontology, loaded once."""
    return Ontology.load()
