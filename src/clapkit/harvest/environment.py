"""Acoustic environments of ambience files: a path that says it is an ambience (``ambient/``, ``amb_``,
``atmosphere``, ``soundscape``, ...) and names a place (``forest``, ``city``, ``tavern``, ``cave`` ...) gets the
ontology's environment class: "Outside, rural or natural", "Outside, urban or manmade", "Inside, public space",
"Inside, large room or hall" or "Inside, small room". Both words are needed: "forest" alone may be a level name,
and an ambience without a place says nothing of where it is. Only the file name and its two nearest directories
count (as for every other rule)."""

from __future__ import annotations

import re

from clapkit.harvest.words import path_segments, split_words

AMBIENCE = frozenset("ambient ambience ambiance ambiences ambients amb ambs atmosphere atmospheres atmos atmo "
                     "soundscape soundscapes backdrop environment environments env background backgrounds".split())
_PLACES = """
Outside, rural or natural: forest forests woods woodland jungle meadow meadows field fields countryside farm farmland
  swamp swamps marsh marshes nature wilderness mountain mountains valley lake lakeside desert grassland grasslands
  prairie savanna savannah garden outdoor outdoors outside rural wild wildlands canyon hills hill
Outside, urban or manmade: city cities town towns street streets urban downtown market marketplace harbor harbour
  docks dock port factory industrial industry construction suburb suburbs village square plaza
Inside, public space: tavern taverns inn pub shop shops store restaurant cafe office offices mall library museum
  classroom school hospital station lobby
Inside, large room or hall: hall halls church cathedral temple throne arena warehouse hangar
Inside, small room: room rooms bedroom kitchen bathroom cabin
"""
PLACES: dict[str, str] = {}
for _line in re.sub(r"\n\s+", " ", _PLACES.strip()).splitlines():
    _name, _, _words = _line.partition(": ")
    for _word in _words.split():
        PLACES.setdefault(_word, _name)
MAX_DIR_DEPTH = 2


def environment_of(source_path: str) -> tuple[str, str] | None:
    """``("amb+forest", "Outside, rural or natural")`` for an ambience file of a known place, else ``None``; the
    place nearest the file name wins."""
    segments = path_segments(source_path)[-(MAX_DIR_DEPTH + 1):]
    words = [w for segment in segments for w in split_words(segment)]
    ambience = next((w for w in words if w in AMBIENCE), None)
    if ambience is None:
        return None
    place = next((w for w in reversed(words) if w in PLACES), None)
    return (f"{ambience}+{place}", PLACES[place]) if place else None
