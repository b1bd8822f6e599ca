"""Offline keyword-to-caption: grammar-aware templates over AudioSet ontology synonyms, no model needed.

``["Dog", "Bark", "Rain", "Animal"]`` -> e.g. "A dog barking with rain in the background". Steps:

1. resolve each keyword in the ontology (id, name, synonym or fuzzy label); keywords that are ancestors of another
   keyword are dropped ("Animal", "Dog" are covered by "Bark");
2. turn each into a :class:`SoundPhrase`: a synonym chosen at random, and where the ontology suggests an action a
   subject + verb: animal vocalisations take their animal ("a dog barking", "a bird chirping"), human sounds a person
   ("someone coughing", "people cheering"), instruments are played, vehicles pass by, machines run, rain falls;
3. fill a template: articles (a/an), sometimes plurals ("two dogs barking"), "and" lists, "with ... in the
   background", "the sound of ...", "... can be heard", clauses with agreement ("dogs are barking").

Everything is drawn from the ``random.Random`` passed in, so a seed fixes the caption.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass

from clapkit.ontology import Ontology, OntologyEntry, default_ontology
from clapkit.train.english import (
    capitalize_first,
    gerund,
    is_mass_noun,
    is_plural,
    join_and,
    noun_phrase,
    third_person,
)

# synonyms that are correct but odd in a caption
UNUSABLE_SYNONYMS = {"ass", "bovinae", "canidae", "eructation", "mastication", "DTMF", "airscrew", "auto racing"}
_PRONOUNS = {"someone", "somebody", "people"}
_SOURCE_DESCRIPTION = ("sounds associated with", "sounds of", "any sounds", "sounds made by", "the sound of the ",
                       "sounds produced by", "sounds caused by")
_NOUN_SUFFIXES = ("tion", "sion", "ment", "ness", "ity", "ance", "ence", "ure", "ter", "ism", "ogy", "ics", "bell",
                  "sound", "sounds", "noise", "music", "speech", "song", "voice", "animal", "animals")
_NOT_GERUNDS = {"building", "ceiling", "string", "wedding", "something", "morning", "evening", "clothing"}
_PART_HEADS = {"horn", "alarm", "windows", "squeal", "brake", "beeps", "whistle", "noise", "toot", "skidding",
               "propeller", "siren"}
_PERSON_WORDS = {"baby", "infant", "child", "children", "kid", "kids", "man", "woman", "person", "people", "crowd",
                 "girl", "boy", "men", "women"}
_HUMAN_VERBS = {"shout", "bellow", "whoop", "yell", "giggle", "snicker", "sigh", "groan", "grunt", "yawn", "wheeze",
                "gasp", "pant", "snort", "cough", "sneeze", "sniff", "run", "shuffle", "hiccup", "burp", "chant",
                "chuckle", "chortle", "whimper", "wail", "moan", "cry", "laugh", "whistle", "scream", "whisper", "hum",
                "sing", "clap", "cheer", "boo", "chatter", "babble", "gargle", "bite", "chew", "walk", "fart"}
# verbs per sound type: (ontology class, gerunds; "" keeps the bare noun); the first class the entry is under wins
SOURCE_VERBS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Rain", ("", "falling", "pouring down")),
    ("Wind", ("", "blowing", "gusting")),
    ("Thunder", ("", "rumbling")),
    ("Fire", ("", "crackling", "burning")),
    ("Stream", ("", "flowing", "babbling")),
    ("Waterfall", ("", "rushing")),
    ("Waves, surf", ("", "crashing", "breaking")),
    ("Aircraft", ("", "flying overhead", "passing overhead")),
    ("Motor vehicle (road)", ("", "driving by", "passing by", "approaching")),
    ("Rail transport", ("", "passing by", "approaching")),
    ("Vehicle", ("", "passing by")),
    ("Engine", ("", "running")),
    ("Power tool", ("", "running", "whirring")),
    ("Vacuum cleaner", ("", "running")),
    ("Mechanical fan", ("", "running", "whirring")),
    ("Air conditioning", ("", "running", "humming")),
    ("Siren", ("", "wailing", "blaring")),
    ("Alarm", ("", "going off", "sounding")),
    ("Bell", ("", "ringing", "chiming")),
    ("Musical instrument", ("", "", "playing", "being played")),
)


@dataclass(frozen=True)
class SoundPhrase:
    """A sound as words: ``subject`` (noun phrase without article), optional ``gerund`` and base ``verb``."""

    subject: str
    gerund: str = ""
    verb: str = ""

    @property
    def countable(self) -> bool:
        return self.subject not in _PRONOUNS and not is_mass_noun(self.subject) and not is_plural(self.subject)

    def noun_phrase(self, plural: bool = False, quantifier: str = "") -> str:
        """"a dog barking", "two dogs barking", "rain falling", "someone coughing"."""
        subject = self.subject if self.subject in _PRONOUNS else noun_phrase(self.subject, plural, quantifier)
        return f"{subject} {self.gerund}".strip()

    def clause(self, plural: bool = False, finite: bool = False) -> str | None:
        """"a dog is barking" / "dogs are barking", or with ``finite`` and a known verb "a dog barks"; ``None``
        without a verb."""
        if not self.gerund:
            return None
        subject = self.subject if self.subject in _PRONOUNS else noun_phrase(self.subject, plural)
        many = plural or self.subject == "people" or (self.subject not in _PRONOUNS and is_plural(self.subject))
        if finite and self.verb:
            return f"{subject} {self.verb if many else third_person(self.verb)}"
        return f"{subject} {'are' if many else 'is'} {self.gerund}"


def usable_synonyms(entry: OntologyEntry) -> list[str]:
    synonyms = [s for s in entry.synonyms if s not in UNUSABLE_SYNONYMS and re.fullmatch(r"[A-Za-z][A-Za-z' -]*", s)]
    return synonyms or [entry.synonyms[0] if entry.synonyms else entry.name.lower()]


def resolve_keywords(keywords: Sequence[str], ontology: Ontology) -> list[OntologyEntry | str]:
    """Ontology entries for the keywords (unknown ones stay strings), without duplicates and without entries that
    are ancestors of another keyword's entry."""
    resolved: list[OntologyEntry | str] = []
    for keyword in keywords:
        keyword = str(keyword).strip()
        if not keyword:
            continue
        try:
            entry: OntologyEntry | str | None = ontology.get(keyword)
        except KeyError:
            entry = ontology.find(keyword)
        entry = entry if entry is not None else " ".join(keyword.replace("_", " ").split()).lower()
        if entry not in resolved:
            resolved.append(entry)
    entries = [e for e in resolved if isinstance(e, OntologyEntry)]
    covered = {a.id for e in entries for a in ontology.ancestors(e)}
    return [e for e in resolved if not (isinstance(e, OntologyEntry) and e.id in covered)]


def _is_source(entry: OntologyEntry) -> bool:
    return entry.description.lower().startswith(_SOURCE_DESCRIPTION)


def _verb_like(word: str) -> bool:
    return word.isalpha() and len(word) >= 3 and not word.lower().endswith(_NOUN_SUFFIXES)


def _vocalization(entry: OntologyEntry, ontology: Ontology, word: str) -> SoundPhrase | None:
    """An animal's call as subject + verb ("a dog barking"), when the ontology places it under its animal."""
    if entry.child_ids or _is_source(entry) or " " in word or not (_verb_like(word) or word.endswith("ing")):
        return None
    animal = next((a for a in ontology.ancestors(entry) if _is_source(a) and a.name != "Animal"), None)
    if animal is None:
        return None
    subject = usable_synonyms(animal)[0]
    if word.endswith("ing") and len(word) > 5:
        return SoundPhrase(subject, word)
    return SoundPhrase(subject, gerund(word), word)


def _event_in_name(words: list[str]) -> SoundPhrase | None:
    """Names that already hold an action: "man speaking", "car passing by", "train wheels squealing"."""
    for i in range(1, len(words)):
        word = words[i]
        if word.endswith("ing") and len(word) > 5 and word not in _NOT_GERUNDS:
            return SoundPhrase(" ".join(words[:i]), " ".join(words[i:]))
    return None


def _source_verbs(entry: OntologyEntry, ontology: Ontology, head: str) -> tuple[str, ...]:
    for name, gerunds in SOURCE_VERBS:
        if entry.name == name or (ontology.is_under(entry, name) and head not in _PART_HEADS):
            return gerunds
    return ("",)


def entry_phrase(entry: OntologyEntry, ontology: Ontology, rng: random.Random) -> SoundPhrase:
    """One :class:`SoundPhrase` for an ontology entry, with random synonym and verb choices."""
    synonym = rng.choice(usable_synonyms(entry))
    words = synonym.split()
    event = _event_in_name(words)
    if event is not None:
        return event
    if ontology.is_under(entry, "Animal"):
        phrase = _vocalization(entry, ontology, synonym)
        if phrase is not None:
            return phrase
        calls = [p for c in ontology.children_of(entry) if (p := _vocalization(c, ontology, usable_synonyms(c)[0]))]
        if calls and _is_source(entry) and rng.random() < 0.5:  # "dog" -> sometimes "a dog barking"
            return SoundPhrase(synonym, rng.choice(calls).gerund)
        return SoundPhrase(synonym)
    if ontology.is_under(entry, "Human sounds"):
        return _human_phrase(entry, ontology, words, rng)
    parent = next((p for p in ontology.parents_of(entry) if " " not in usable_synonyms(p)[0]), None)
    if parent is not None and len(words) == 1 and not entry.child_ids and not ontology.is_under(entry, "Music"):
        source = usable_synonyms(parent)[0]  # a sound of a thing: "an engine idling", "a door knock"
        if synonym.endswith("ing") and len(synonym) > 5:
            return SoundPhrase(source, synonym)
        if _verb_like(synonym) and rng.random() < 0.6:
            return SoundPhrase(f"{source} {synonym}")
    gerunds = _source_verbs(entry, ontology, words[-1])
    if ontology.is_under(entry, "Music genre") and "music" not in synonym and rng.random() < 0.5:
        return SoundPhrase(f"{synonym} music")
    return SoundPhrase(synonym, rng.choice(gerunds))


def _human_phrase(entry: OntologyEntry, ontology: Ontology, words: list[str], rng: random.Random) -> SoundPhrase:
    """Human sounds: "someone coughing", "a baby crying", "people cheering", or the bare noun ("laughter")."""
    if len(words) == 2 and words[0] in _PERSON_WORDS and words[1] in _HUMAN_VERBS:
        return SoundPhrase(words[0], gerund(words[1]), words[1])  # "baby cry" -> "a baby crying"
    verb = words[0].lower()
    if len(words) == 1 and not entry.child_ids and rng.random() < 0.7:
        subject = "people" if ontology.is_under(entry, "Human group actions") else rng.choice(["someone", "person"])
        if verb.endswith("ing") and len(verb) > 5:
            return SoundPhrase(subject, verb)
        if verb in _HUMAN_VERBS:
            return SoundPhrase(subject, gerund(verb), verb)
    return SoundPhrase(" ".join(words))


def keyword_phrase(item: OntologyEntry | str, ontology: Ontology, rng: random.Random) -> SoundPhrase:
    if isinstance(item, OntologyEntry):
        return entry_phrase(item, ontology, rng)
    words = item.split()
    if len(words) > 1 and words[-1].endswith("ing") and len(words[-1]) > 5:
        return SoundPhrase(" ".join(words[:-1]), words[-1])  # "dog barking" (not in the ontology)
    return SoundPhrase(item)


_SINGLE_NOUN_TEMPLATES = ("{np}", "the sound of {np}", "{np} can be heard", "you can hear {np}",
                          "a recording of {np}", "an audio clip of {np}")
_SINGLE_CLAUSE_TEMPLATES = ("{clause}", "{finite}")
_MULTI_TEMPLATES = ("{list}", "the sound of {list}", "{list} can be heard", "you can hear {list}",
                    "a recording of {list}", "{first} with {rest} in the background", "{first} along with {rest}",
                    "a mix of {list}")
_QUANTIFIERS = ("", "", "two", "several", "some")


def _noun_phrase(phrase: SoundPhrase, rng: random.Random, plural_probability: float) -> tuple[str, bool]:
    plural = phrase.countable and rng.random() < plural_probability
    return phrase.noun_phrase(plural, rng.choice(_QUANTIFIERS) if plural else ""), plural


def phrases_caption(phrases: Sequence[SoundPhrase], rng: random.Random, plural_probability: float = 0.2) -> str:
    """Fill a random template with the phrases (one: noun phrase or clause; several: an "and" list and friends)."""
    if not phrases:
        raise ValueError("no keywords to make a caption from")
    if len(phrases) == 1:
        phrase = phrases[0]
        np, plural = _noun_phrase(phrase, rng, plural_probability)
        templates = _SINGLE_NOUN_TEMPLATES + (_SINGLE_CLAUSE_TEMPLATES if phrase.gerund else ())
        template = rng.choice(templates)
        clause = phrase.clause(plural) or np
        finite = phrase.clause(plural, finite=True) or clause
        text = template.format(np=np, clause=clause, finite=finite)
    else:
        nps = [_noun_phrase(p, rng, plural_probability)[0] for p in phrases]
        template = rng.choice(_MULTI_TEMPLATES)
        first_clause = phrases[0].clause()
        if first_clause and rng.random() < 0.25:
            template, nps[0] = "{first} while {rest} can be heard", first_clause
        text = template.format(list=join_and(nps), first=nps[0], rest=join_and(nps[1:]))
    return capitalize_first(" ".join(text.split()))


def template_caption(
    keywords: Sequence[str],
    rng: random.Random,
    ontology: Ontology | None = None,
    max_keywords: int = 5,
    plural_probability: float = 0.2,
) -> str:
    """An offline caption for ``keywords`` (see the module docstring); the same ``rng`` state gives the same caption.

    At most ``max_keywords`` sounds are named (the first ones, after dropping ancestors and duplicates).
    """
    ontology = ontology or default_ontology()
    resolved = resolve_keywords(keywords, ontology)[: max(1, max_keywords)]
    if not resolved:
        raise ValueError(f"no usable keywords in {list(keywords)!r}")
    phrases = [keyword_phrase(item, ontology, rng) for item in resolved]
    return phrases_caption(phrases, rng, plural_probability)
