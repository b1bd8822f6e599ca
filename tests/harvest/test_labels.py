"""Path words -> AudioSet classes: the rules of clapkit.harvest.labels on made-up paths (no audio, no MiniLM)."""

from __future__ import annotations

import pytest

from clapkit.harvest.aliases import COMBOS, alias_table
from clapkit.harvest.labels import Labeler
from clapkit.harvest.licences import parse_copyright
from clapkit.harvest.words import path_words, split_words
from clapkit.ontology import default_ontology


@pytest.fixture(scope="module")
def labeler() -> Labeler:
    return Labeler(default_ontology(), None)


def test_every_alias_and_combo_class_exists():
    names = {e.name for e in default_ontology()}
    assert not {v for v in alias_table().values() if v not in names}
    assert not {c[2] for c in COMBOS if c[2] not in names}


def test_words():
    assert split_words("FootStepStone1") == ["foot", "step", "stone", "1"]
    assert path_words("usr/share/games/lugaru/Sounds/FootStepStone1.ogg", "lugaru-data") == ["foot", "step", "stone"]
    assert path_words("usr/share/games/0ad/public.zip!audio/actor/fauna/animal/cattle_01.ogg", "0ad-data") == [
        "actor", "cattle"]  # archive members: the member path; category words ("animal") are generic


@pytest.mark.parametrize("path, labels, rule", [
    ("x/sounds/Crow1.wav", ["Crow"], "name"),                       # exact synonym beats the stem of "crowing"
    ("x/sounds/rooster_crow.wav", ["Crowing, cock-a-doodle-doo", "Chicken, rooster"], "combo"),
    ("x/sounds/glass_break1.wav", ["Shatter", "Glass"], "combo"),
    ("x/sounds/windgust_11.ogg", ["Wind"], "compound wind+gust"),
    ("x/sounds/mouseclick.wav", ["Clicking"], "compound mouse+click"),
    ("x/sounds/hit3.wav", ["Thump, thud"], "alias"),
    ("x/sounds/keyboard.ogg", ["Computer keyboard"], "alias"),       # the alias table wins over "Keyboard (musical)"
    ("x/sounds/maledeath.ogg", ["Groan"], "combo"),
    ("x/weapons/fire_rifle.wav", ["Gunshot, gunfire"], "alias"),     # "fire" next to a gun is not flames
])
def test_label_rules(labeler, path, labels, rule):
    result = labeler.label("pkg", path)
    assert [e.name for e in result.labels] == labels
    assert f"[{rule} " in result.evidence


@pytest.mark.parametrize("path", [
    "x/be/sounds/x.ogg",                     # "be" is not a bee: short words match exactly only
    "x/sounds/theme.ogg",                    # music genres never come from one word
    "x/sounds/select_unit.ogg",              # UI words mislead
    "Aircraft/c172/Instruments/Sounds/flarm1.wav",  # a class word three directories up does not count
])
def test_unmapped(labeler, path):
    assert labeler.label("pkg", path).labels == []


def test_package_rules(labeler):
    prompt = labeler.label("asterisk-core-sounds-it-wav", "usr/share/asterisk/sounds/it/vm-intro.wav")
    assert [e.name for e in prompt.labels] == ["Male speech, man speaking", "Speech"]
    assert prompt.speech == ("Italian", "male")
    digit = labeler.label("asterisk-core-sounds-en-wav", "usr/share/asterisk/sounds/en/digits/7.wav")
    assert digit.spoken == "seven"
    word = labeler.label("ktuberling-data", "usr/share/ktuberling/sounds/lt/spectacles.ogg")
    assert word.speech == ("Lithuanian", "") and [e.name for e in word.labels] == ["Speech"]
    assert labeler.label("wesnoth-1.16-data", "usr/share/games/wesnoth/data/core/sounds/wolf-die.ogg").labels[0].name \
        == "Howl"
    assert labeler.label("tuxpaint-stamps-default", "usr/share/tuxpaint/stamps/a/cat_desc.ogg").drop


def test_licence_paragraphs():
    copyright = parse_copyright(
        "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\nFiles: *\nLicense: GPL-2+\n\n"
        "Files: data/sfx/* debian/*\nLicense: CC-BY-SA-3.0\n\nFiles: data/sfx/birds/*\nLicense: CC0-1.0\n")
    assert copyright.licence_of("usr/share/games/g/sfx/boom.ogg") == "CC-BY-SA-3.0"
    assert copyright.licence_of("usr/share/games/g/sfx/birds/lark.ogg") == "CC0-1.0"
    assert copyright.licence_of("usr/share/games/g/music/a.ogg") == "GPL-2+"
    assert copyright.summary == "GPL-2+; CC-BY-SA-3.0; CC0-1.0"
    text = parse_copyright("This package is licensed under the GNU General Public License, version 2 or later.")
    assert text.summary == "GPL-2" and not text.dep5


@pytest.mark.parametrize("path, labels", [
    ("usr/share/games/btanks/data/sounds/ambient/forest.ogg", ["Outside, rural or natural"]),
    ("usr/share/games/x/sounds/amb_city2.wav", ["Outside, urban or manmade"]),
    ("usr/share/games/x/sounds/ambience/tavern_loop.ogg", ["Inside, public space"]),
    ("usr/share/games/x/sounds/ambient/forest_birds.ogg", ["Bird", "Outside, rural or natural"]),  # one more label
    ("usr/share/games/x/sounds/forest.ogg", []),           # a place without "ambience" may be a level name
    ("usr/share/games/x/sounds/ambient/hum3.ogg", ["Hum"]),  # an ambience without a place says nothing of where
])
def test_environment_of_ambience_files(labeler, path, labels):
    result = labeler.label("pkg", path)
    assert [e.name for e in result.labels] == labels
    if "Outside" in " ".join(labels) or "Inside" in " ".join(labels):
        assert "[environment " in result.evidence


@pytest.mark.parametrize("package, path, labels", [
    ("megaglest-data", "usr/share/games/megaglest/tilesets/forest/sounds/night.ogg", ["Outside, rural or natural"]),
    ("wesnoth-1.16-data", "usr/share/games/wesnoth/1.16/data/core/sounds/ambient/morning.ogg",
     ["Outside, rural or natural"]),
    ("widelands-data", "usr/share/games/widelands/data/sound/farm/farm_animal_00.ogg",
     ["Livestock, farm animals, working animals"]),
    ("widelands-data", "usr/share/games/widelands/data/sound/smiths/toolsmith_01.ogg", ["Hammer"]),
    ("lincity-ng-data", "usr/share/games/lincity-ng/sounds/SportsCroud2.wav", ["Crowd"]),
    ("lincity-ng-data", "usr/share/games/lincity-ng/sounds/ResidentialHigh1.wav", ["Outside, urban or manmade"]),
    ("ufoai-sound", "usr/share/games/ufoai/base/0snd.pk3!sound/ambience/tv_static.ogg", ["Static"]),
    ("sonic-pi-samples", "usr/share/sonic-pi/samples/vinyl_backspin.flac", ["Scratching (performance technique)"]),
    ("sonic-pi-samples", "usr/share/sonic-pi/samples/bd_haus.flac", ["Bass drum"]),  # the older rules still apply
    ("scratch", "usr/share/scratch/Media/Sounds/Instruments/Dijjeridoo.mp3", ["Didgeridoo"]),
    ("qabcs-data", "usr/share/qabcs/abcs/all/noises/erhu.ogg", ["Bowed string instrument"]),
    ("qabcs-data", "usr/share/qabcs/abcs/all/noises/watch.ogg", ["Tick"]),
    ("qabcs-data", "usr/share/qabcs/abcs/all/noises/flamingo.ogg", ["Bird"]),  # the alias table
    ("qabcs-data", "usr/share/qabcs/abcs/all/noises/balloons.ogg", []),  # unclear what it sounds like: dropped
    ("clapkit-synth-noise", "usr/share/sounds/clapkit-synth-noise/mains_hum/mains_hum_03.wav", ["Mains hum"]),
])
def test_new_package_rules_and_aliases(labeler, package, path, labels):
    assert [e.name for e in labeler.label(package, path).labels] == labels


def test_qabcs_speech_rule_still_reads_the_language(labeler):
    word = labeler.label("qabcs-data", "usr/share/qabcs/abcs/fr/sounds/chat.ogg")
    assert word.speech == ("French", "")


@pytest.mark.parametrize("package, path", [
    ("a7xpg-data", "usr/share/games/a7xpg/sounds/stagestart.wav"),   # "stage" is no stag
    ("megaglest-data", "x/units/behemoth/sounds/behemoth_select1.wav"),
])
def test_no_animal_inside_other_words(labeler, package, path):
    assert labeler.label(package, path).labels == []


def test_caption_of_a_broad_class_from_a_package_rule_names_the_class(labeler):
    from clapkit.harvest.captions import Captioner

    labelling = labeler.label("hydrogen-data", "usr/share/hydrogen/data/drumkits/GMkit/tom_1.flac")
    assert [e.name for e in labelling.labels] == ["Drum"]
    caption, _ = Captioner(default_ontology()).caption("abc", labelling)
    assert "(path)" not in caption and "drum" in caption.lower()


def test_text_to_speech_is_labelled_and_captioned_as_synthetic(labeler):
    from clapkit.harvest.captions import Captioner

    tts = labeler.label("clapkit-synth-speech", "usr/share/sounds/clapkit-synth-speech/en-us_female/hello.wav")
    # the voice first (what a listener calls it), then that it is synthetic
    assert [e.name for e in tts.labels] == ["Female speech, woman speaking", "Speech synthesizer", "Speech"]
    caption, _ = Captioner(default_ontology()).caption("abc", tts)
    assert "synthetic female voice" in caption and '"hello"' in caption


@pytest.mark.parametrize("path, label", [
    ("hammond_organ/hammond_organ_note.wav", "Hammond organ"),
    ("electronic_organ/electronic_organ_scale.wav", "Electronic organ"),
    ("tubular_bells/tubular_bells_arpeggio.wav", "Tubular bells"),
    ("double_bass/double_bass_note.wav", "Double bass"),   # "bass" alone misleads; the phrase does not
    ("drum_kit/drum_kit_rock.wav", "Drum kit"),
])
def test_rendered_instrument_names_map(labeler, path, label):
    result = labeler.label("clapkit-synth-instruments", f"usr/share/sounds/clapkit-synth-instruments/{path}")
    assert result.labels[0].name == label


@pytest.mark.parametrize("package, path", [
    ("0ad-data", "usr/share/games/0ad/public.zip!audio/resource/gathering/gather_meat_02.ogg"),  # gathe+ring
    ("ufoai-sound", "usr/share/games/ufoai/base/0snd.pk3!sound/geoscape/combat-airplasma.ogg"),  # geosc+ape
    ("tuxpaint-plugins-default", "usr/share/tuxpaint/plugins/data/sounds/magic/realrainbow.ogg"),  # realrain+bow
    ("tuxpaint-stamps-default", "usr/share/tuxpaint/stamps/symbols/lowercase/s_filled_en_GB.ogg"),  # no filing
    ("megaglest-data", "usr/share/games/megaglest/techs/megapack/factions/norsemen/units/axe/sounds/"
                       "axe_thrower_select5.wav"),  # a unit's voice line
    ("wesnoth-1.16-data", "usr/share/games/wesnoth/1.16/data/core/sounds/ghoul-hit.wav"),  # a cry, not a thud
    ("hyperrogue-music", "usr/share/hyperrogue/sounds/orb-frog.ogg"),  # picking up the Orb of the Frog
    ("krank", "usr/share/games/krank/sounds/menu/water.ogg"),  # a theme loop
    ("boswars-data", "usr/share/games/boswars/sounds/units/chopper/chopper.underattack.wav"),  # a voice alert
    ("krank", "usr/share/games/krank/sounds/water/exit.wav"),  # "water" is the level's theme
    ("gigalomania-data", "usr/share/gigalomania/sound/we_re_running_out_of_elements.wav"),  # a spoken line
    ("freeorion-data", "usr/share/games/freeorion/default/data/sound/combat/multiple-pointfire1.ogg"),  # weapon
    ("lincity-ng-data", "usr/share/games/lincity-ng/sounds/ParklandLake1.wav"),  # park+land is no thud
])
def test_fixed_wrong_labels_of_the_v21_hand_check(labeler, package, path):
    assert labeler.label(package, path).labels == []


@pytest.mark.parametrize("package, path, label", [
    ("hydrogen-data", "usr/share/hydrogen/data/drumkits/GMRockKit/Splash-Hardest.wav", "Cymbal"),
    ("hydrogen-drumkits", "usr/share/hydrogen/data/drumkits/ForzeeStereo/HiHatFoot-1.wav", "Hi-hat"),
    ("pkg", "usr/share/games/x/sounds/alienwind.ogg", "Wind"),      # compounds still work: alien+wind
    ("pkg", "usr/share/games/x/sounds/crossbow2.ogg", "Arrow"),     # an alias word itself is no compound
    ("0ad-data", "usr/share/games/0ad/public.zip!audio/ambient/dayscape/day_temperate_11.ogg",
     "Outside, rural or natural"),                                  # not "tempe+rate" -> a rat
    ("0ad-data", "usr/share/games/0ad/public.zip!audio/ambient/water/wavecrash_21.ogg", "Waves, surf"),
    ("0ad-data", "usr/share/games/0ad/public.zip!audio/ambient/weather/snowstorm_10.ogg", "Wind"),
    ("nexuiz-data", "usr/share/games/nexuiz/data/sound/desertfactory/windhowling_loop.ogg", "Howl (wind)"),
    ("gigalomania-data", "usr/share/gigalomania/sound/bomb.wav", "Explosion"),
])
def test_drum_kit_names_and_kept_compounds(labeler, package, path, label):
    assert labeler.label(package, path).labels[0].name == label
