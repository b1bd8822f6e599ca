"""Small English grammar helpers for template captions: articles, plurals, verb forms, "and" lists.

Rule-based and dependency-free; good enough for sound-event nouns and verbs ("an owl hooting", "two geese honking",
"dogs, rain and a car horn"), not a general morphology engine.
"""

from __future__ import annotations

import re

_IRREGULAR_PLURALS = {
    "man": "men", "woman": "women", "child": "children", "person": "people", "mouse": "mice", "goose": "geese",
    "foot": "feet", "tooth": "teeth", "ox": "oxen", "wolf": "wolves", "knife": "knives", "leaf": "leaves",
    "calf": "calves", "half": "halves", "shelf": "shelves", "hoof": "hooves", "die": "dice", "louse": "lice",
    "sheep": "sheep", "deer": "deer", "fish": "fish", "moose": "moose", "cattle": "cattle", "aircraft": "aircraft",
    "series": "series", "species": "species", "bison": "bison", "swine": "swine", "kid": "kids",
}
_O_ES_PLURALS = {"potato", "tomato", "echo", "hero", "veto", "torpedo", "mosquito", "volcano", "tornado"}
_PLURAL_ONLY = {"cattle", "people", "children", "men", "women", "geese", "mice", "feet", "teeth", "police", "scissors",
                "clothes", "bagpipes", "maracas", "cymbals", "fireworks", "footsteps", "dishes", "timpani"}
_SINGULAR_S = {"bus", "gas", "glass", "grass", "bass", "chorus", "hiss", "news", "blues", "bows", "harp",
               "class", "kiss", "moss", "boss", "cross", "series", "species", "lens", "iris", "bonus", "virus",
               "walrus", "octopus", "cactus", "circus", "christmas", "applause", "noise", "cheese", "goose"}
_MASS_NOUNS = {
    "rain", "water", "wind", "thunder", "music", "speech", "static", "silence", "noise", "applause", "laughter",
    "traffic", "hail", "steam", "fire", "smoke", "air", "sand", "gravel", "snow", "ice", "mud", "chatter", "babble",
    "hubbub", "gunfire", "artillery", "jazz", "rock", "pop", "blues", "reggae", "techno", "funk", "soul", "opera",
    "hip hop", "gospel", "country", "folk", "disco", "ambient", "electronica", "dubstep", "drum and bass", "house",
    "reverberation", "echo", "feedback", "hum", "buzz", "white noise", "pink noise", "bird song", "birdsong",
    "machinery", "equipment", "wildlife", "rustle", "surf", "crosstalk", "dialogue", "conversation", "singing",
    "cheering", "crying", "sobbing", "whispering", "humming", "breathing", "snoring", "clapping", "typing",
}
_ARTICLE_AN_EXCEPTIONS = ("uni", "use", "usu", "uti", "ure", "uro", "eu", "ewe", "one", "once", "ukulele", "u-")
_ARTICLE_AN_SILENT_H = ("hour", "honest", "honor", "honour", "heir")
_DETERMINERS = {"a", "an", "the", "some", "several", "two", "three", "many", "few", "a few", "this", "that", "these",
                "those", "his", "her", "its", "their", "my", "your", "our", "one", "someone", "somebody"}
_VOWELS = "aeiou"


def indefinite_article(phrase: str) -> str:
    """"a" or "an" for the first word of ``phrase`` by its (approximate) sound: an owl, a ukulele, an hour, an MRI."""
    word = phrase.strip().split(" ")[0] if phrase.strip() else ""
    lower = word.lower()
    if not lower:
        return "a"
    if lower.startswith(_ARTICLE_AN_SILENT_H):
        return "an"
    if lower.startswith(_ARTICLE_AN_EXCEPTIONS):
        return "a"
    if word.isupper() and len(word) > 1:  # acronyms read letter by letter: an MRI, an FM radio, a DJ
        return "an" if lower[0] in "aefhilmnorsx" else "a"
    return "an" if lower[0] in _VOWELS else "a"


def with_article(phrase: str) -> str:
    """``"owl"`` -> ``"an owl"``."""
    return f"{indefinite_article(phrase)} {phrase}"


def pluralize_word(word: str) -> str:
    lower = word.lower()
    if lower in _IRREGULAR_PLURALS:
        plural = _IRREGULAR_PLURALS[lower]
        return plural.capitalize() if word[:1].isupper() else plural
    if re.search(r"(s|x|z|ch|sh)$", lower):
        return word + "es"
    if re.search(r"[^aeiou]y$", lower):
        return word[:-1] + "ies"
    if lower in _O_ES_PLURALS:
        return word + "es"
    return word + "s"


def pluralize(phrase: str) -> str:
    """Pluralise a noun phrase by its head (last word): ``"car horn"`` -> ``"car horns"``, ``"goose"`` -> ``"geese"``.
    Phrases that are already plural or uncountable are returned unchanged."""
    if is_plural(phrase) or is_mass_noun(phrase):
        return phrase
    head, _, last = phrase.rpartition(" ")
    return f"{head} {pluralize_word(last)}".strip()


def is_plural(phrase: str) -> bool:
    """Heuristic: the head (last word) is a known plural, or ends in "s" without being a known singular in -s."""
    last = phrase.lower().split()[-1] if phrase.split() else ""
    if last in _PLURAL_ONLY or last in set(_IRREGULAR_PLURALS.values()) - set(_IRREGULAR_PLURALS):
        return True
    if last in _SINGULAR_S or last in _IRREGULAR_PLURALS or len(last) < 3:
        return False
    return last.endswith("s") and not last.endswith(("ss", "us", "is", "ous"))


def is_mass_noun(phrase: str) -> bool:
    """Heuristic: uncountable sounds take no article ("rain", "white noise", "rock music", "clapping")."""
    lower = phrase.lower().strip()
    last = lower.split()[-1] if lower else ""
    if lower in _MASS_NOUNS or last in _MASS_NOUNS:
        return True
    return last.endswith("ing") and len(last) > 5 and last not in {"ring", "building", "ceiling", "wedding", "string"}


def noun_phrase(phrase: str, plural: bool = False, quantifier: str = "") -> str:
    """``"dog"`` -> ``"a dog"``; plural -> ``"dogs"`` or ``"two dogs"``; mass and plural nouns take no article."""
    if is_mass_noun(phrase):
        return phrase
    if plural or is_plural(phrase):
        words = pluralize(phrase)
        return f"{quantifier} {words}".strip()
    return with_article(phrase)


def _doubles_final_consonant(verb: str) -> bool:
    # one-syllable consonant-vowel-consonant verbs double: run -> running, hum -> humming, but not howl, bark, honk
    v = verb.lower()
    if len(v) < 3 or v[-1] in "wxy" or v[-1] in _VOWELS:
        return False
    vowel_groups = re.findall(r"[aeiou]+", v)
    return len(vowel_groups) == 1 and len(vowel_groups[0]) == 1 and v[-2] in _VOWELS and v[-3] not in _VOWELS


def gerund(verb: str) -> str:
    """``bark`` -> ``barking``, ``hum`` -> ``humming``, ``gobble`` -> ``gobbling``, ``lie`` -> ``lying``."""
    v = verb
    lower = v.lower()
    if lower.endswith("ing") and len(lower) > 5:
        return v
    if lower.endswith("ie"):
        return v[:-2] + "ying"
    if lower.endswith("e") and not lower.endswith(("ee", "ye", "oe")) and len(lower) > 2:
        return v[:-1] + "ing"
    if _doubles_final_consonant(lower):
        return v + v[-1] + "ing"
    return v + "ing"


def third_person(verb: str) -> str:
    """``bark`` -> ``barks``, ``buzz`` -> ``buzzes``, ``cry`` -> ``cries``, ``go`` -> ``goes``."""
    lower = verb.lower()
    if re.search(r"(s|x|z|ch|sh|[^o]o)$", lower):
        return verb + "es"
    if re.search(r"[^aeiou]y$", lower):
        return verb[:-1] + "ies"
    return verb + "s"


def join_and(items: list[str], conjunction: str = "and") -> str:
    """``["a", "b", "c"]`` -> ``"a, b and c"``."""
    items = [i for i in items if i]
    if len(items) <= 1:
        return "".join(items)
    return f"{', '.join(items[:-1])} {conjunction} {items[-1]}"


def capitalize_first(text: str) -> str:
    """Upper-case the first letter only (``"a DJ mix"`` -> ``"A DJ mix"``)."""
    for i, char in enumerate(text):
        if char.isalpha():
            return text[:i] + char.upper() + text[i + 1 :]
    return text


def starts_with_determiner(phrase: str) -> bool:
    words = phrase.lower().split()
    return bool(words) and (words[0] in _DETERMINERS or " ".join(words[:2]) in _DETERMINERS)


def fix_articles(text: str) -> str:
    """Repair "a"/"an" before the following word after words were swapped (``"a owl"`` -> ``"an owl"``)."""

    def repair(match: re.Match[str]) -> str:
        article, space, word = match.group(1), match.group(2), match.group(3)
        wanted = indefinite_article(word)
        if article[0].isupper():
            wanted = wanted.capitalize()
        return f"{wanted}{space}{word}"

    return re.sub(r"\b([Aa]n?)(\s+)([A-Za-z][\w'-]*)", repair, text)
