"""Rules that words alone get wrong: music and dialogue directories, real speech packages, and per-package fixes.

A package rule is ``(regex on the source path, archive members' ``!`` read as ``/``, action)``; the first matching
rule of the package wins. Actions:
``("drop", reason)``; ``("labels", "Class; Class")`` (replaces the word matches);
``("speech", language, voice[, "words"[, "synthetic"]])`` (speech: voice "female", "male" or "" to read it from the
path; "words": the file name is what is said; "synthetic": text-to-speech, labelled "Speech synthesizer" too).
Package names are matched as regexes too, so
``asterisk-core-sounds-.*`` covers every language.
"""

from __future__ import annotations

import re

MUSIC_DIRS = frozenset("music musics bgm soundtrack soundtracks songs song tracks track jukebox ingame_music".split())
VOICE_DIRS = frozenset("voice voices vo speech dialog dialogs dialogue dialogues narration narrator narrations "
                       "taunts taunt announcer announcers tutorial tutorials commentary coms".split())
# human sounds that may sit in a voice directory and are not dialogue
NON_DIALOGUE = ("Laughter", "Screaming", "Cough", "Groan", "Grunt", "Breathing", "Gasp", "Sigh", "Yawn", "Cheering",
                "Sneeze", "Snoring", "Crying, sobbing", "Whistling", "Burping, eructation", "Hiccup", "Yell", "Shout")
MAX_SECONDS_UNLESS_AMBIENT = 60.0
SPEECH_CAP = 150  # real-speech clips kept per package (deterministic choice)

LANGUAGES = {
    "ar": "Arabic", "ast": "Asturian", "be": "Belarusian", "bg": "Bulgarian", "hi": "Hindi", "is": "Icelandic",
    "kk": "Kazakh", "mr": "Marathi", "id": "Indonesian", "ms": "Malay", "th": "Thai", "vi": "Vietnamese",
    "bs": "Bosnian", "ca": "Catalan", "cs": "Czech", "da": "Danish",
    "de": "German", "el": "Greek", "en": "English", "en_gb": "English", "en_us": "English", "eo": "Esperanto",
    "es": "Spanish", "et": "Estonian", "eu": "Basque", "fi": "Finnish", "fr": "French", "ga": "Irish",
    "gl": "Galician", "he": "Hebrew", "hu": "Hungarian", "it": "Italian", "ja": "Japanese", "ko": "Korean",
    "lt": "Lithuanian", "lv": "Latvian", "nb": "Norwegian", "nds": "Low German", "nl": "Dutch", "nn": "Norwegian",
    "pl": "Polish", "pt": "Portuguese", "pt_br": "Portuguese", "ro": "Romanian", "ru": "Russian", "sk": "Slovak",
    "sl": "Slovenian", "sr": "Serbian", "sv": "Swedish", "tr": "Turkish", "uk": "Ukrainian", "wa": "Walloon",
    "zh": "Chinese", "zh_cn": "Chinese", "zh_tw": "Chinese",
}

PACKAGE_RULES: dict[str, list[tuple[str, tuple[str, ...]]]] = {
    r"asterisk-core-sounds-en-wav": [(r".", ("speech", "English", "female"))],
    r"asterisk-core-sounds-es-wav": [(r".", ("speech", "Spanish", "female"))],
    r"asterisk-core-sounds-fr-wav": [(r".", ("speech", "French", "female"))],
    r"asterisk-core-sounds-it-wav": [(r".", ("speech", "Italian", "male"))],
    r"asterisk-core-sounds-ru-wav": [(r".", ("speech", "Russian", "female"))],
    r"asterisk-prompt-it-menardi-wav": [(r".", ("speech", "Italian", "female"))],
    r"ktuberling-data": [(r"/sounds/(?P<lang>[a-z]{2,3}(_[a-z]{2})?)/", ("speech", "{lang}", ""))],
    r"kajongg": [(r"/voices/(?P<lang>[a-z]{2})/(fe)?male\d/", ("speech", "{lang}", ""))],
    r"clapkit-synth-noise": [(r"/white_noise/", ("labels", "White noise")), (r"/pink_noise/", ("labels", "Pink noise")),
                             (r"/brown_noise/", ("labels", "Noise")), (r"/mains_hum/", ("labels", "Mains hum")),
                             (r"/static/", ("labels", "Static")), (r"/dtmf/", ("labels", "Telephone dialing, DTMF")),
                             (r"/dial_tone/", ("labels", "Dial tone")), (r"/busy_signal/", ("labels", "Busy signal")),
                             (r"/reversing_beeps/", ("labels", "Reversing beeps"))],
    r"clapkit-synth-speech": [(r".", ("speech", "English", "", "words", "synthetic"))],  # espeak-ng
    r"csmash-data": [(r"/(zero|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|"
                      r"fifteen|sixteen|seventeen|eighteen|nineteen|twenty|thirty|forty|love|deuce)\.wav$",
                      ("speech", "English", "", "words"))],
    r"tuxpaint-stamps-default": [(r"_desc", ("drop", "narration (description of the stamp)"))],
    r"wesnoth-.*": [(r"/ambient/(morning|night)\.", ("labels", "Outside, rural or natural")),
                    (r"-hit(-\d+)?\.(ogg|wav)$", ("drop", "no label: a unit's cry when hit (package rule)")),
                    (r"wolf.*growl", ("labels", "Growling; Canidae, dogs, wolves")),
                    (r"wolf", ("labels", "Howl; Canidae, dogs, wolves"))],
    r"bucklespring-data": [(r"\.wav$", ("labels", "Typing; Computer keyboard"))],
    r"hydrogen-drumkits.*|hydrogen-data|lmms-common|sonic-pi-samples": [
        (r"crash", ("labels", "Crash cymbal")), (r"ride", ("labels", "Cymbal")), (r"splash", ("labels", "Cymbal")),
        (r"hi-?hat.?foot|hh.?foot|hihat.?pedal", ("labels", "Hi-hat")),
        (r"/(sn|sd)[-_ \d]", ("labels", "Snare drum")), (r"/bd[-_ \d]", ("labels", "Bass drum")),
        (r"/rd[-_ \d]", ("labels", "Cymbal")), (r"/(tm|tom)[-_ \d]", ("labels", "Drum")),
        (r"/cb[-_ \d]", ("labels", "Cowbell")), (r"sidestick|rimshot", ("labels", "Rimshot"))],
    r"flightgear-data-base": [(r"/mk-viii/", ("speech", "English", "male")),
                              (r"/tcas/female/", ("speech", "English", "female"))],
    r"torcs-data": [(r"out_of_road|axle|locked|clkdtmb", ("drop", "no label: game-specific noise (package rule)")),
                    (r"/sound/[^/]+\.wav$", ("labels", "Engine; Car"))],
    r"0ad-data": [(r"audio/voice/", ("drop", "game voice line (dialogue)")),
                  (r"/singlesteps/", ("labels", "Walk, footsteps")),
                  (r"/ambient/dayscape/", ("labels", "Outside, rural or natural")),  # "day_temperate": birds, wind
                  (r"/actor/mounted/.*step", ("labels", "Clip-clop; Horse")),
                  (r"/resource/mining/", ("labels", "Hammer; Chop"))],
    r"megaglest-data": [(r"_(ack|select)\d*[a-z]?\.wav$", ("drop", "game voice line (dialogue)")),
                        (r"/tilesets/[^/]+/sounds/(day|night|nightime|sunny_day|desertday)\.",
                         ("labels", "Outside, rural or natural"))],  # the day/night ambience of a landscape
    r"widelands-data": [(r"/animals/stag_", ("labels", "Wild animals")),
                        (r"/farm/farm_animal", ("labels", "Livestock, farm animals, working animals")),
                        (r"/smiths/(tool)?smith_", ("labels", "Hammer")), (r"/sawmill/sawmill_", ("labels", "Sawing"))],
    r"lincity-ng-data": [(r"/Blacksmith\d*\.", ("labels", "Hammer")), (r"/SportsCroud\d*\.", ("labels", "Crowd")),
                         (r"/(Residential(High|Med|Low)|Harbor|Market(Full|Med))\d*\.",
                          ("labels", "Outside, urban or manmade")),
                         (r"/(Organic)?Farm\d*\.", ("labels", "Outside, rural or natural"))],
    r"ufoai-sound": [(r"/ambience/tv_news", ("labels", "Television")), (r"/ambience/tv_static", ("labels", "Static"))],
    r"supertuxkart-data": [(r"/sfx/lenautile_restaurant\.", ("labels", "Inside, public space"))],
    r"sonic-pi-samples": [(r"/vinyl_(backspin|rewind|scratch)\.", ("labels", "Scratching (performance technique)")),
                          (r"/bd_", ("labels", "Bass drum")), (r"/sn_", ("labels", "Snare drum")),
                          (r"/guit_", ("labels", "Guitar")), (r"/tabla_", ("labels", "Tabla")),
                          (r"/drum_cymbal", ("labels", "Cymbal"))],
    r"scratch": [(r"/Dijjeridoo\.", ("labels", "Didgeridoo")), (r"/Vocals/BeatBox\d", ("labels", "Beatboxing")),
                 (r"/Vocals/Singer\d", ("labels", "Singing"))],
    r"qabcs-data": [(r"/abcs/(?P<lang>[a-z]{2,3})/sounds/", ("speech", "{lang}", "")),
                    (r"/noises/(erhu|gamba|rabel|youhikko)\.", ("labels", "Bowed string instrument")),
                    (r"/noises/(lute|yueqin|topshuur)\.", ("labels", "Plucked string instrument")),
                    (r"/noises/(quena|ney|xun|washint|zurna|dulzaina|zhaleyka|recorder)\.",
                     ("labels", "Wind instrument, woodwind instrument")),
                    (r"/noises/natural_horn\.", ("labels", "French horn")),
                    (r"/noises/squeezebox\.", ("labels", "Accordion")), (r"/noises/yangqin\.", ("labels", "Zither")),
                    (r"/noises/(cuica|changu|ipu)\.", ("labels", "Drum")),
                    (r"/noises/moth\.", ("labels", "Insect")),  # not an alias: "behemoth"
                    (r"/noises/spoons\.", ("labels", "Cutlery, silverware")), (r"/noises/pen\.", ("labels", "Writing")),
                    (r"/noises/watch\.", ("labels", "Tick")), (r"/noises/rubber_ball\.", ("labels", "Bouncing")),
                    (r"/noises/excavator\.", ("labels", "Heavy engine (low frequency)")),
                    (r"/noises/tractor\.", ("labels", "Engine")), (r"/noises/skateboard\.", ("labels", "Skateboard"))],
    r"hyperrogue-music": [(r"/orb-", ("drop", "no label: orbs are named after their power (package rule)"))],
    r"krank": [(r".", ("drop", "no label: words are level themes (water, space, summer) (package rule)"))],
    r"gigalomania-data": [(r"/sound/[a-z]+(_[a-z]+){2,}\.wav$", ("drop", "game voice line (dialogue)"))],
    r"boswars-data": [(r"\.(underattack|ready|completed|select|action|help)\.wav$",
                       ("drop", "game voice line (dialogue)"))],
    r"hedgewars-data": [(r"/hog_", ("drop", "no label: 'hog' is a hedgehog here (package rule)"))],
    r"gcompris-qt-data": [(r"/instruments/resource/horn\.", ("labels", "French horn")),
                          (r"/melody/resource/xylofon", ("labels", "Marimba, xylophone")),
                          (r"/LRHeart_beat", ("labels", "Heart sounds, heartbeat")),
                          (r"/LR(Weird|Fireballs|LaPause)|/chronos/|/ballcatch/|/morse_code/silence",
                           ("drop", "no label: the name says nothing of the sound (package rule)"))],
    r"openclonk-data": [(r"/Music\.ocg/", ("drop", "music track (music directory)")),
                        (r"/Mooq\.ocg/Snort", ("labels", "Snort")),
                        (r"/Mooq\.ocg/Munch", ("labels", "Chewing, mastication")),
                        (r"/(Mooq|Wipf|Puka|LavaCore|Zap)\.ocg/(?!Hiss)",
                         ("drop", "no label: a made-up creature's cry (package rule)")),
                        (r"/(CrystalCommunicator|UI\.ocg/NextWave|Lorry\.ocg/|Fire\.ocg/(Smoke|Blowout|Fireball))",
                         ("drop", "no label: the words name a game object, not the sound (package rule)")),
                        (r"/(Arrow|Bow)\.ocg/Shoot", ("labels", "Arrow")),
                        (r"/Fire\.ocg/Fuse", ("labels", "Hiss")), (r"/Fire\.ocg/Spark", ("labels", "Crackle")),
                        (r"/Liquids\.ocg/Swim", ("labels", "Splash, splatter")),
                        (r"/Disasters\.ocg/Earthquake", ("labels", "Rumble")),
                        (r"/Structures\.ocg/FanLoop", ("labels", "Mechanical fan"))],
    r"fillets-ng-data.*": [(r"/sound/([^/]+/)?[a-z]{2}/[^/]+$", ("drop", "game voice line (dialogue)"))],
}
_COMPILED = [(re.compile(p), [(re.compile(r, re.IGNORECASE), a) for r, a in rules])
             for p, rules in PACKAGE_RULES.items()]


def package_rule(package: str, source_path: str) -> tuple[tuple[str, ...], dict[str, str]] | None:
    """The action of the first rule of ``package`` matching ``source_path``, with the regex's named groups. An
    archive member's path is matched with its ``!`` as ``/`` (``a.zip!Fire/x.ogg`` -> ``a.zip/Fire/x.ogg``), so a
    rule on a directory (``/Fire/``) finds it at the top of the archive as well as deeper."""
    path = source_path.replace("!", "/")
    for name, rules in _COMPILED:
        if name.fullmatch(package):
            for regex, action in rules:
                match = regex.search(path)
                if match:
                    return action, {k: v for k, v in match.groupdict().items() if v}
    return None


def directory_drop(dirs: list[str]) -> str | None:
    """``"music track (music directory)"`` / ``"game voice line (dialogue)"`` for paths in such directories."""
    if any(d in MUSIC_DIRS for d in dirs):
        return "music track (music directory)"
    if any(d in VOICE_DIRS for d in dirs):
        return "game voice line (dialogue)"
    return None
