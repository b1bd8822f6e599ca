"""Offline rule-based caption rewrites (ReCLAP-style augmentation without a language model).

Three operations, combined at random (all randomness from the ``random.Random`` passed in):

- **synonym swaps**: sound names from the AudioSet ontology ("bird song" -> "bird call", "gunshot" -> "gunfire")
  plus a small hand-made lexicon of caption words ("loud" -> "noisy", "talking" -> "speaking");
- **clause reordering**: "A dog barks while rain falls" -> "Rain falls while a dog barks"; "A bell rings in the
  distance" -> "In the distance, a bell rings";
- **framings**: "the sound of ...", "... can be heard", "It sounds like ...", "In this recording, ..." (the framing
  fits the caption: noun phrases and clauses take different ones; an existing framing is removed first).
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping, Sequence

from clapkit.ontology import Ontology, default_ontology
from clapkit.train.english import capitalize_first, fix_articles, is_plural, pluralize
from clapkit.train.templates import UNUSABLE_SYNONYMS, usable_synonyms

CAPTION_SYNONYMS: dict[str, tuple[str, ...]] = {
    "loud": ("noisy", "booming"), "loudly": ("noisily",), "quiet": ("soft", "faint"), "quietly": ("softly", "faintly"),
    "soft": ("quiet", "gentle"), "distant": ("far-off", "faraway"), "nearby": ("close by",), "close by": ("nearby",),
    "fast": ("quick", "rapid"), "quickly": ("rapidly",), "rapidly": ("quickly",), "slowly": ("gradually",),
    "big": ("large",), "large": ("big",), "small": ("little",), "little": ("small",), "high-pitched": ("shrill",),
    "low-pitched": ("deep",), "repeatedly": ("over and over", "again and again"), "continuously": ("constantly",),
    "constantly": ("continuously",), "briefly": ("for a moment",), "talking": ("speaking", "chatting"),
    "speaking": ("talking",), "talks": ("speaks",), "speaks": ("talks",), "passes by": ("goes by", "drives past"),
    "passing by": ("going by", "driving past"), "plays": ("performs",), "playing": ("performing",),
    "shouting": ("yelling",), "yelling": ("shouting",), "noise": ("sound",), "noises": ("sounds",),
    "heavy": ("strong",),
}
_NP_FRAMINGS = ("the sound of {c}", "{c} can be heard", "a recording of {c}", "an audio clip of {c}",
                "you can hear {c}", "{c} is audible", "a clip featuring {c}")
_CLAUSE_FRAMINGS = ("in this recording, {c}", "in this audio clip, {c}", "it sounds like {c}", "here, {c}",
                    "you can hear that {c}")
_FRAMING_PREFIXES = ("the sound of", "sound of", "sounds of", "a recording of", "an audio clip of", "audio of",
                     "you can hear that", "you can hear", "in this recording,", "in this audio clip,", "in this clip,",
                     "it sounds like", "it sounds as if", "here,", "a clip featuring", "there is", "there are")
_FRAMING_SUFFIXES = ("can be heard", "is audible", "are audible", "is heard", "are heard")
_SWAPPABLE_CONNECTORS = (" while ", " as ", ", and ", " and ")
_FRONTABLE = ("in the background", "in the distance", "in the foreground", "nearby", "outside", "at the same time",
              "in the rain", "at night", "far away")
_ADVERB_START = re.compile(r"^(then|and|also|so|later|finally|again|but|or|suddenly|soon)\b", re.IGNORECASE)
_AUXILIARIES = {"is", "are", "was", "were", "can", "could", "has", "have", "had", "will", "would", "be", "being",
                "does", "do", "did", "gets", "get", "keeps"}
_NOT_VERBS_BEFORE = {"a", "an", "the", "of", "and", "or", "with", "in", "on", "at", "by", "from", "to", "two",
                     "three", "several", "some", "many", "few", "its", "their", "his", "her", "loud", "soft", "small",
                     "large", "distant", "various", "multiple", "other", "for", "into", "over", "under", "near"}
_DETERMINER_START = re.compile(r"^(a|an|the|some|several|two|three|many|someone|somebody|people|it|this|there|he|she"
                               r"|they|we|you|one)\b", re.IGNORECASE)


def looks_like_clause(text: str) -> bool:
    """Heuristic: the caption has a finite verb ("A dog barks", "Rain is falling"), as opposed to a noun phrase ("A
    dog barking", "Footsteps on gravel"). Errs towards "clause", whose framings also read well around noun phrases."""
    words = re.findall(r"[a-z'-]+", text.lower())
    if any(w in _AUXILIARIES for w in words):
        return True
    for prev, word in zip(words, words[1:]):
        if prev not in _NOT_VERBS_BEFORE and re.fullmatch(r"[a-z]+[^s'u]s", word) and not word.endswith("ous"):
            return True
    return False


class Paraphraser:
    """Rule-based caption rewrites; see the module docstring. ``extra_synonyms`` adds to the built-in lexicon."""

    def __init__(self, ontology: Ontology | None = None, extra_synonyms: Mapping[str, Sequence[str]] | None = None):
        self.ontology = ontology or default_ontology()
        self.synonyms: dict[str, tuple[str, ...]] = {k: tuple(v) for k, v in CAPTION_SYNONYMS.items()}
        for entry in self.ontology:
            if entry.blacklisted or entry.abstract:
                continue
            names = [s for s in usable_synonyms(entry) if s not in UNUSABLE_SYNONYMS and not s[:1].isupper()]
            for name in names:
                others = tuple(o for o in names if o != name and o.endswith("ing") == name.endswith("ing")
                               and is_plural(o) == is_plural(name))
                if others and name not in self.synonyms:
                    self.synonyms[name] = others
        for key, values in (extra_synonyms or {}).items():
            self.synonyms[key.lower()] = tuple(values)
        plural_forms = {}
        for key, values in self.synonyms.items():
            if " " not in key or not key.endswith("ing"):
                plural = pluralize(key)
                if plural != key and plural not in self.synonyms and not is_plural(key):
                    plural_forms[plural] = tuple(pluralize(v) for v in values)
        self.synonyms.update(plural_forms)
        keys = sorted(self.synonyms, key=len, reverse=True)
        self._pattern = re.compile(r"(?<![\w-])(" + "|".join(re.escape(k) for k in keys) + r")(?![\w-])", re.IGNORECASE)

    def swap_synonyms(self, caption: str, rng: random.Random, probability: float = 0.6) -> str:
        """Replace each known word or sound name with a synonym with ``probability`` (at least one if any)."""
        matches = list(self._pattern.finditer(caption))
        if not matches:
            return caption
        forced = rng.randrange(len(matches))
        out, last = [], 0
        for i, match in enumerate(matches):
            if i != forced and rng.random() >= probability:
                continue
            found = match.group(0)
            choice = rng.choice(self.synonyms[found.lower()])
            if found[:1].isupper():
                choice = capitalize_first(choice)
            before = caption[last : match.start()]
            article = re.search(r"\b([Aa]n?)(\s+)$", before)  # "a owl" -> "an owl", only right before the swap
            if article:
                before = before[: article.start()] + fix_articles(article.group(0) + choice)[: -len(choice)]
            out.append(before + choice)
            last = match.end()
        out.append(caption[last:])
        return "".join(out)

    def reorder(self, caption: str, rng: random.Random) -> str:
        """Swap two clauses joined by while/as/and, or front a trailing place phrase; unchanged if neither fits."""
        body, end = _split_end(caption)
        options = []
        lower = body.lower()
        for connector in _SWAPPABLE_CONNECTORS:
            parts = body.split(connector) if connector in lower else []
            if len(parts) == 2 and all(_is_clause_part(p.strip()) for p in parts):
                a, b = (p.strip() for p in parts)
                options.append(f"{capitalize_first(b)}{connector}{_lower_first(a)}")
        for phrase in _FRONTABLE if looks_like_clause(body) else ():
            if lower.endswith(" " + phrase) and len(lower) > len(phrase) + 3:
                rest = body[: -len(phrase)].rstrip(" ,")
                options.append(f"{capitalize_first(phrase)}, {_lower_first(rest)}")
        return rng.choice(options) + end if options else caption

    def reframe(self, caption: str, rng: random.Random) -> str:
        """Remove any framing ("The sound of ...") and put the caption in another one that fits it."""
        body, end = _split_end(caption)
        core = _strip_framing(body)
        framings = _CLAUSE_FRAMINGS if looks_like_clause(core) else _NP_FRAMINGS
        current = body.lower()
        choices = [f for f in framings if f.format(c=_lower_first(core)).lower() != current] or list(framings)
        framing = rng.choice(choices)
        text = framing.format(c=_lower_first(core))
        if is_plural(core.split(" ")[0] if core else "") and " is audible" in text:
            text = text.replace(" is audible", " are audible")
        return capitalize_first(text) + end

    def paraphrase(self, caption: str, rng: random.Random) -> str:
        """One random rewrite: each operation with probability 1/2 (a reframing if nothing else changed it)."""
        text = caption
        if rng.random() < 0.5:
            text = self.swap_synonyms(text, rng)
        if rng.random() < 0.5:
            text = self.reorder(text, rng)
        if rng.random() < 0.5 or _same(text, caption):
            text = self.reframe(text, rng)
        return " ".join(text.split())

    def paraphrases(self, caption: str, n: int, rng: random.Random) -> list[str]:
        """Up to ``n`` distinct rewrites, none equal to ``caption`` (fewer only when the rules run out)."""
        results: list[str] = []
        for _ in range(max(0, n) * 8):
            if len(results) >= n:
                break
            text = self.paraphrase(caption, rng)
            if text and not _same(text, caption) and not any(_same(text, r) for r in results):
                results.append(text)
        return results


def _is_clause_part(text: str) -> bool:
    """A side of "X and Y" that can move: it has its own subject ("a dog barks"), not "then stops"."""
    if _DETERMINER_START.match(text):
        return True
    return len(text.split()) >= 2 and looks_like_clause(text) and not _ADVERB_START.match(text)


def _same(a: str, b: str) -> bool:
    return re.sub(r"[^a-z0-9]+", " ", a.lower()).strip() == re.sub(r"[^a-z0-9]+", " ", b.lower()).strip()


def _split_end(caption: str) -> tuple[str, str]:
    stripped = caption.strip()
    match = re.search(r"[.!?]+$", stripped)
    return (stripped[: match.start()], match.group(0)) if match else (stripped, "")


def _lower_first(text: str) -> str:
    words = text.split(" ", 1)
    first = words[0]
    if first.isupper() and len(first) > 1:  # acronyms stay
        return text
    return first[:1].lower() + first[1:] + (" " + words[1] if len(words) > 1 else "")


def _strip_framing(text: str) -> str:
    core = text.strip()
    lower = core.lower()
    for prefix in _FRAMING_PREFIXES:
        if lower.startswith(prefix + " ") and len(core) > len(prefix) + 2:
            core = core[len(prefix) :].strip(" ,")
            break
    lower = core.lower()
    for suffix in _FRAMING_SUFFIXES:
        if lower.endswith(" " + suffix) and len(core) > len(suffix) + 2:
            core = core[: -len(suffix)].strip(" ,")
            break
    return core
