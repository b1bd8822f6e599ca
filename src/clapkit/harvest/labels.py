"""Path words -> AudioSet classes, with the evidence kept.

Order of the rules for each word (first that fires wins; a word sequence of 2-3 words is tried before its words):
``package`` (a per-package rule, see ``rules.py``), ``name`` (the words are an ontology name or synonym, light
stems), ``alias`` (the game-sound vocabulary of ``aliases.py``), ``description`` (a 5+ letter word found in the
description of at most 2 classes), ``minilm`` (MiniLM cosine between the word and a class synonym >= the measured
threshold). Words in ``words.MISLEADING`` / ``aliases.IGNORED`` map through none of the single-word rules. The
primary label comes from the file name (directories add secondary labels), the most specific match, the last word on
ties (English compounds end in their head noun). Nothing matched -> no labels: the clip is dropped, not guessed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from clapkit.harvest.aliases import COMBOS, IGNORED, alias_table
from clapkit.harvest.embed import Embedder
from clapkit.harvest.environment import environment_of
from clapkit.harvest.rules import LANGUAGES, package_rule
from clapkit.harvest.words import GENERIC, MISLEADING, path_numbers, path_words
from clapkit.ontology import Ontology, OntologyEntry, normalize_label, stem

MINILM_THRESHOLD = 0.80  # chosen on a hand-checked sample of near misses (docs/corpus.md: ~82% right at >= 0.80,
#                          ~47% in [0.70, 0.80))
DESCRIPTION_AGREEMENT = 0.80  # a description word counts when MiniLM also puts the word that near that class (at
#                               0.45 the hand-check found "gather" -> Crowd, "egg" -> Gasp: too loose)
_RULE_RANK = {"package": 5, "combo": 4, "name": 3, "alias": 3, "compound": 2, "description": 2, "minilm": 1,
              "environment": 0}
_WEAPON_CLASSES = {"Gunshot, gunfire", "Machine gun", "Artillery fire", "Cap gun", "Arrow", "Explosion"}
_WEAPON_WORDS = {"laser", "weapon", "weapons", "wp", "blaster", "plasma", "rocket", "missile", "attack", "shoot"}
MAX_LABELS = 3
_NO_COMPOUND_HEADS = frozenset({"fire", "land"})  # "pointfire", "wstbfire": a weapon's; "parkland": a place
MAX_DIR_DEPTH = 2  # words of the file name and of its two nearest directories count ("Aircraft/.../Sounds" not)
NUMBER_WORDS = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
                "sixteen seventeen eighteen nineteen twenty").split()


@dataclass
class Match:
    word: str
    entry: OntologyEntry
    rule: str
    score: float = 1.0
    in_name: bool = True
    position: int = 0

    def evidence(self) -> str:
        return f"{self.word}->{self.entry.name} [{self.rule} {self.score:.2f}]"


@dataclass
class Labelling:
    """The labels of one file (primary first), the matches behind them, its keywords and, for real speech, the
    language and voice; ``drop`` says why a file is not used (then ``labels`` is empty)."""

    keywords: list[str]
    labels: list[OntologyEntry] = field(default_factory=list)
    matches: list[Match] = field(default_factory=list)
    drop: str = ""
    speech: tuple[str, str] | None = None  # (language, voice)
    spoken: str = ""  # what is said, when the file name tells

    @property
    def evidence(self) -> str:
        return "; ".join(m.evidence() for m in self.matches)


class Labeler:
    """``Labeler(ontology, embedder).label(package, source_path)``; call :meth:`prepare` with every path first so
    the MiniLM near misses are computed in one batch."""

    def __init__(self, ontology: Ontology, embedder: Embedder | None = None, threshold: float = MINILM_THRESHOLD):
        self.ontology = ontology
        self.embedder = embedder
        self.threshold = threshold
        self.phrases = {k: e for k, e in ontology.phrase_index().items()
                        if not (e.abstract or _top_only(e) or (len(k) == 1 and _only_as_phrase(ontology, e)))}
        usable = {e.id for e in ontology if not (e.abstract or _top_only(e) or _only_as_phrase(ontology, e))}
        table = alias_table()
        self.aliases = {word: ontology.get(name) for word, name in table.items()}
        self.alias_stems = {stem(word): ontology.get(name) for word, name in table.items()}
        self.exact: dict[str, OntologyEntry] = {}
        for e in sorted(ontology.entries, key=lambda e: (e.blacklisted, e.abstract)):
            for syn in e.synonyms:
                if e.id in usable and " " not in syn:
                    self.exact.setdefault(syn.lower(), e)
        self._descriptions = self._description_index()
        self._near: dict[str, tuple[OntologyEntry, float] | None] = {}

    def _description_index(self) -> dict[str, list[OntologyEntry]]:
        index: dict[str, list[OntologyEntry]] = {}
        for e in self.ontology:
            if e.abstract or e.blacklisted:
                continue
            for w in set(normalize_label(e.description).split()):
                if len(w) >= 5:
                    index.setdefault(stem(w), []).append(e)
        return {k: v for k, v in index.items() if len(v) <= 2}

    def _single(self, word: str, minilm: bool = True, compound: bool = True) -> tuple[OntologyEntry, str, float] | None:
        if word in IGNORED or word in MISLEADING or word in GENERIC or not word.isalpha() or len(word) < 3:
            return None
        if word in self.aliases:  # a word of the table wins over the ontology ("keyboard": the computer's)
            return self.aliases[word], "alias", 1.0
        if word in self.exact:  # "crow" is the bird, though "crowing" stems to it too
            return self.exact[word], "name", 1.0
        if len(word) < 4:  # short words match exactly or not at all ("be" is not a bee)
            return None
        s = stem(word)
        if (s,) in self.phrases:
            return self.phrases[(s,)], "name", 1.0
        if s in self.alias_stems:
            return self.alias_stems[s], "alias", 1.0
        if compound and len(word) >= 6:
            parts = self._compound(word)
            if parts is not None:
                return parts
        near = self._near.get(word) if minilm else None
        if len(word) >= 5 and s in self._descriptions and near is not None and near[0] in self._descriptions[s] \
                and near[1] >= DESCRIPTION_AGREEMENT:  # a description word, confirmed by MiniLM
            return near[0], "description", near[1]
        if near is not None and near[1] >= self.threshold:
            return near[0], "minilm", near[1]
        return None

    def _compound(self, word: str) -> tuple[OntologyEntry, str, float] | None:
        """``windgust`` -> wind + gust, ``mouseclick`` -> mouse + click: the longest known right part (the head),
        else a known left part followed by a generic word (``planelow``); both parts 3+ letters."""
        for i in range(3, len(word) - 2):  # longest right part first
            left, right = word[:i], word[i:]
            if word.endswith("ing") and len(right) <= 4:  # "gathe+ring": the right part is the "-ing" ending
                continue
            if len(right) == 3 and self._single(left, minilm=False, compound=False) is None \
                    and left not in GENERIC | MISLEADING:  # "geosc+ape", "realrain+bow": short heads need a known left
                continue
            if right in _NO_COMPOUND_HEADS:
                continue
            if len(right) <= 4 and right not in self.aliases and right not in self.exact:
                continue  # a short head must be a word as it stands: "tempe+rate" is no rat
            found = self._single(right, minilm=False, compound=False)
            if found is not None:
                return found[0], f"compound {left}+{right}", 1.0
        for i in range(len(word) - 3, 2, -1):
            found = self._single(word[:i], minilm=False, compound=False)
            if found is not None and word[i:] in GENERIC | MISLEADING:  # "planelow": plane + a generic word
                return found[0], f"compound {word[:i]}+{word[i:]}", 1.0
        return None

    def prepare(self, items: Iterable[tuple[str, str]]) -> None:
        """Compute MiniLM near misses for every word of these ``(package, source_path)`` no other rule maps."""
        if self.embedder is None:
            return
        todo = sorted({w for pkg, path in items for w in path_words(path, pkg)
                       if w not in self._near and len(w) >= 4 and w.isalpha()
                       and self._single(w, minilm=False) is None and w not in IGNORED | MISLEADING | GENERIC})
        if not todo:
            return
        classes = [(e, syn) for e in self.ontology
                   if not (e.abstract or e.blacklisted or _top_only(e) or _only_as_phrase(self.ontology, e)
                           or self.ontology.is_under(e, "Acoustic environment"))
                   for syn in e.synonyms if syn.lower() not in IGNORED]
        class_vectors = self.embedder([syn for _, syn in classes])
        word_vectors = self.embedder(todo)
        sims = np.asarray(word_vectors) @ np.asarray(class_vectors).T
        for word, row in zip(todo, sims):
            best = int(np.argmax(row))
            self._near[word] = (classes[best][0], float(row[best]))

    def near_miss(self, word: str) -> tuple[OntologyEntry, float] | None:
        """The best MiniLM class for ``word`` and its cosine (after :meth:`prepare`), whatever the threshold."""
        return self._near.get(word)

    def label(self, package: str, source_path: str) -> Labelling:
        words = path_words(source_path, package)
        result = Labelling(keywords=words)
        rule = package_rule(package, source_path)
        if rule is not None:
            action, groups = rule
            if action[0] == "drop":
                result.drop = action[1]
                return result
            if action[0] == "labels":
                names = [n.strip() for n in action[1].split(";")]
                result.labels = [self.ontology.get(n) for n in names]
                result.matches = [Match("(path)", e, "package") for e in result.labels]
                return result
            if action[0] == "speech":
                return self._speech(result, action, groups, source_path)
        result.matches = self._matches(source_path, package)
        result.labels = self._choose(result.matches)
        environment = environment_of(source_path)
        if environment is not None:  # where the ambience is: the label when nothing else maps, else one more
            entry = self.ontology.get(environment[1])
            if entry not in result.labels and len(result.labels) < MAX_LABELS:
                result.labels.append(entry)
                result.matches.append(Match(environment[0], entry, "environment"))
        return result

    def _matches(self, source_path: str, package: str) -> list[Match]:
        segments = source_path.split("!")[-1].split("/")
        depth: dict[str, int] = {}  # 0: the file name, 1: its directory, ...
        for d, segment in enumerate(reversed(segments)):
            for w in path_words(segment, package):
                depth.setdefault(w, d)
        name_words = {w for w, d in depth.items() if d == 0}
        words = [w for w in path_words(source_path, package) if depth.get(w, 99) <= MAX_DIR_DEPTH]
        matches: list[Match] = []
        i = 0
        while i < len(words):
            for n in (3, 2):
                if i + n <= len(words):
                    key = tuple(stem(w) for w in words[i : i + n])
                    if key in self.phrases:
                        matches.append(Match(" ".join(words[i : i + n]), self.phrases[key], "name", 1.0,
                                             words[i + n - 1] in name_words, i))
                        i += n
                        break
            else:
                found = self._single(words[i])
                if found is not None:
                    matches.append(Match(words[i], found[0], found[1], found[2], words[i] in name_words, i))
                i += 1
        pieces = set(words) | {w[:i] for w in words for i in range(3, len(w) - 2)} | {
            w[i:] for w in words for i in range(3, len(w) - 2)}  # "maledeath": male + death
        for first, second, name in COMBOS:
            a, b = sorted(first & pieces), sorted(second & pieces)
            if a and b:  # the pair replaces the second word's own meaning ("crow" next to "rooster")
                matches = [m for m in matches if m.word not in second and m.word not in (a[0] + b[0],)]
                matches.append(Match(f"{a[0]}+{b[0]}", self.ontology.get(name), "combo", 1.0, True, len(words)))
        # "fire" next to a gun is firing, not flames
        if any(m.entry.name in _WEAPON_CLASSES for m in matches) or _WEAPON_WORDS & set(words):
            matches = [m for m in matches if not (m.word == "fire" and m.entry.name == "Fire")]
        return matches

    def _choose(self, matches: list[Match]) -> list[OntologyEntry]:
        if not matches:
            return []
        pool = [m for m in matches if m.in_name] or matches
        entries = {m.entry.id for m in matches}
        def specific(m: Match) -> bool:
            return not any(self.ontology.is_under(self.ontology._by_id[other], m.entry.name)
                           for other in entries if other != m.entry.id)
        primary = max(pool, key=lambda m: (_RULE_RANK[m.rule.split()[0]], specific(m), m.score, m.position))
        labels = [primary.entry]
        for m in sorted(matches, key=lambda m: (-_RULE_RANK[m.rule.split()[0]], -m.score, m.position)):
            if m.entry not in labels and len(labels) < MAX_LABELS:
                labels.append(m.entry)
        return labels

    def _speech(self, result: Labelling, action: tuple[str, ...], groups: dict[str, str],
                source_path: str) -> Labelling:
        language = action[1].format(**groups)
        language = LANGUAGES.get(language.lower(), language)
        voice = action[2]
        if not voice and re.search(r"(^|[_/])f(emale)?[-_/\d]", source_path):
            voice = "female"
        elif not voice and re.search(r"(^|[_/])m(ale)?[-_/\d]", source_path):
            voice = "male"
        names = {"female": "Female speech, woman speaking", "male": "Male speech, man speaking"}
        result.labels = [self.ontology.get(names[voice])] if voice in names else []
        result.labels.append(self.ontology.get("Speech"))
        if len(action) > 4 and action[4] == "synthetic":  # after the voice: what people call it is speech
            result.labels.insert(1 if voice in names else 0, self.ontology.get("Speech synthesizer"))
        result.matches = [Match(f"(package: {language} speech)", e, "package") for e in result.labels]
        result.speech = (language, voice)
        stemname = re.sub(r"\.[A-Za-z0-9]+$", "", source_path.split("/")[-1])
        numbers = path_numbers(source_path)
        if "/digits/" in source_path and numbers and stemname.isdigit() and language == "English":
            value = int(numbers[0])
            result.spoken = NUMBER_WORDS[value] if value < len(NUMBER_WORDS) else str(value)
        elif len(action) > 3 and action[3] == "words" and stemname.replace("_", "").isalpha():
            result.spoken = stemname.replace("_", " ").lower()
        return result


_PHRASE_ONLY = ("Music genre", "Music mood", "Musical concepts", "Music role", "Battle cry", "Skateboard",
                "Lawn mower", "Sanding")


def _only_as_phrase(ontology: Ontology, entry: OntologyEntry) -> bool:
    """Classes a single file-name word must not give: music genres and moods ("theme", "folk"), and classes whose
    one-word synonyms are common words in game files."""
    return any(ontology.is_under(entry, name) for name in _PHRASE_ONLY)


def _top_only(entry: OntologyEntry) -> bool:
    return not entry.parent_ids  # "Animal", "Music": too broad to be a word's meaning
