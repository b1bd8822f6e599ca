"""Words of a source path: ``usr/share/games/lugaru/Sounds/FootStepStone1.ogg`` -> ``["foot", "step", "stone"]``.

camelCase and letter/digit runs are split, separators (``_ - . / space``) break words, install prefixes
(``usr/share/games/<game>/``) and generic words (``sounds``, ``sfx``, ``data``, file extensions, ...) are dropped.
Digits are kept separately (:func:`path_numbers`) for rules that need them (spoken digits)."""

from __future__ import annotations

import re

GENERIC = frozenset(
    "usr share games game lib local opt sound sounds snd sfx fx soundfx audio data wav ogg oga flac mp3 "
    "opus wv aif aiff zip pk3 pk4 wz pak mod mods public base baseq3 main res resource resources assets asset media "
    "effects effect samples sample wavs oggs the of and a an to in on at for with by from my your new old misc other "
    "default stereo mono hz khz bit bits kbps 44100hz 48000hz 22050hz 11025hz 16bit 8bit loop loops looped looping "
    "short long small big large medium huge tiny mini lite light heavy hard soft left right up down in out start "
    "end stop begin final alt var variant version ver take mix edit edited copy raw tmp temp test demo sfxr "
    "ambient ambience amb environment env sndfx x y z ii iii low high fast slow near far distant close animal "
    "animals fauna creature creatures instrument instruments noises ocg ocd ocf ocs rcc src activities".split()
)
# words that look like sounds but name something else in game data (UI actions, game events)
MISLEADING = frozenset(
    "training trainer select selected selection order ordered attack attacks death die dies dying dead idle trained "
    "ready "
    "move moving go menu bonus win won lose lost level score power powerup pickup item items spawn respawn hover "
    "success fail failed failure error complete completed done next back enter exit ok cancel confirm unit units "
    "building player enemy boss hero npc weapon weapons player1 player2 quest event notify notification "
    "message alert system pan pans bass roll beat drone song melody loop inside outside "
    "channel hands fill sink bay patter chord harmony music musics room theme sail writer flight dance dancing "
    "dingo cricketball filled".split()
)


def path_segments(source_path: str) -> list[str]:
    """The meaningful path segments: for archive members the member path, otherwise the path without its install
    prefix (``usr/share/games/NAME/``, ``usr/share/NAME/``, ``usr/lib/...``)."""
    path = source_path.split("!")[-1]
    parts = [p for p in path.split("/") if p]
    if "!" not in source_path:
        if parts[:1] == ["usr"]:
            parts = parts[1:]
        if parts[:1] in (["share"], ["lib"], ["local"]):
            parts = parts[1:]
        if parts[:1] == ["games"]:
            parts = parts[1:]
        if len(parts) > 1:
            parts = parts[1:]  # the program's own directory name
    if parts:
        parts[-1] = re.sub(r"\.[A-Za-z0-9]{2,5}$", "", parts[-1])
    return parts


def split_words(text: str) -> list[str]:
    """``"FootStepStone1"`` -> ``["foot", "step", "stone", "1"]``; ``"vo_teefault-03"`` -> ``["vo", "teefault",
    "03"]``; ``"HTTPServer"`` -> ``["http", "server"]``."""
    text = re.sub(r"([a-z])([A-Z])", r"\1 \2", text)
    text = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1 \2", text)
    text = re.sub(r"([A-Za-z])(\d)|(\d)([A-Za-z])", lambda m: " ".join(g for g in m.groups() if g), text)
    return [w.lower() for w in re.split(r"[^0-9A-Za-z\u00c0-\uffff]+", text) if w]


def path_words(source_path: str, package: str = "") -> list[str]:
    """The cleaned words of a path, in path order, each once; digits, generic words and words of the package name
    dropped."""
    drop = set(GENERIC) | set(split_words(package))
    out: list[str] = []
    for segment in path_segments(source_path):
        for word in split_words(segment):
            if word.isdigit() or word in drop or len(word) < 2 or word in out:
                continue
            out.append(word)
    return out


def path_numbers(source_path: str) -> list[str]:
    """Digit runs of the file name (``digits/h-40.wav`` -> ``["40"]``)."""
    return re.findall(r"\d+", path_segments(source_path)[-1] if path_segments(source_path) else "")


def path_dirs(source_path: str) -> list[str]:
    """Lower-cased directory names of the meaningful path (for the music/voice rules)."""
    return [p.lower() for p in path_segments(source_path)[:-1]]
