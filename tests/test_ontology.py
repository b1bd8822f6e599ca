"""The bundled AudioSet ontology: synonyms and fuzzy label lookup."""

from __future__ import annotations

import pytest

from clapkit.ontology import Ontology, default_ontology, normalize_label, split_synonyms, stem


def test_loads_the_bundled_ontology():
    ontology = default_ontology()
    assert len(ontology) == 632
    bark = ontology.get("Bark")
    assert bark.parents == ("Dog",) and bark.synonyms == ("bark",)
    assert "dog" in bark.description.lower()
    assert ontology.get(bark.id) is bark
    assert [a.name for a in ontology.ancestors(bark)] == ["Dog", "Domestic animals, pets", "Animal"]
    assert ontology.is_under(bark, "Animal") and not ontology.is_under(bark, "Music")
    assert bark.id in ontology.get("Dog").child_ids
    with pytest.raises(KeyError):
        ontology.get("no such class")


def test_synonyms_are_the_cleaned_parts_of_the_name():
    assert split_synonyms("Vehicle horn, car horn, honking") == ("vehicle horn", "car horn", "honking")
    assert split_synonyms("Roaring cats (lions, tigers)") == ("roaring cats",)
    assert split_synonyms("Dishes, pots, and pans") == ("dishes", "pots", "pans")
    assert split_synonyms("Bee, wasp, etc.") == ("bee", "wasp")
    assert split_synonyms("Telephone dialing, DTMF") == ("telephone dialing", "DTMF")
    assert normalize_label("Dentist's_drill--X") == "dentist drill x"
    assert stem("barking") == stem("barks") == stem("bark") and stem("crying") == stem("cries") == "cry"


@pytest.mark.parametrize("label,name", [
    ("dog_bark", "Bark"),
    ("Dog", "Dog"),
    ("car_horn", "Vehicle horn, car horn, honking"),
    ("crying_baby", "Baby cry, infant cry"),
    ("church_bells", "Church bell"),
    ("clock_tick", "Tick"),
    ("laughing", "Laughter"),
    ("chirping_birds", "Chirp, tweet"),
    ("hand_saw", "Sawing"),
    ("engine_idling", "Idling"),
    ("airplane", "Fixed-wing aircraft, airplane"),
    ("footsteps", "Walk, footsteps"),
    ("dgo barkk", "Bark"),
])
def test_find_fuzzy_labels(label, name):
    assert default_ontology().find(label).name == name


def test_find_gives_up_rather_than_guessing():
    ontology = default_ontology()
    assert ontology.find("xyzzy") is None and ontology.find("") is None
    assert ontology.find("cow") is None or ontology.find("cow").name != "Crow"  # no 3-letter spelling guesses


def test_load_a_custom_ontology(tmp_path):
    path = tmp_path / "o.json"
    path.write_text('[{"id": "/x/1", "name": "Beep, bleep", "child_ids": ["/x/2"]}, {"id": "/x/2", "name": "Tone"}]')
    ontology = Ontology.load(path)
    assert ontology.find("bleeps").name == "Beep, bleep" and ontology.get("Tone").parents == ("Beep, bleep",)
