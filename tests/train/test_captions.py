"""Keyword-to-caption, debiasing, rule-based rewrites and the training-time caption choice."""

from __future__ import annotations

import random
import re

import pytest

from clapkit.errors import ClapkitError
from clapkit.train.captions import CaptionAugmenter, Debiaser, KeywordCaptioner, Rewriter, debias
from clapkit.train.english import gerund, indefinite_article, join_and, pluralize, third_person
from clapkit.train.paraphrase import Paraphraser, looks_like_clause
from clapkit.train.templates import SoundPhrase, phrases_caption, template_caption


def test_english_helpers():
    assert [indefinite_article(w) for w in ("owl", "dog", "hour", "ukulele", "MRI", "euphonium")] == \
        ["an", "a", "an", "a", "an", "a"]
    assert [pluralize(w) for w in ("car horn", "goose", "bus", "baby", "rain", "footsteps")] == \
        ["car horns", "geese", "buses", "babies", "rain", "footsteps"]
    assert [gerund(w) for w in ("bark", "hum", "gobble", "lie", "howl")] == \
        ["barking", "humming", "gobbling", "lying", "howling"]
    assert [third_person(w) for w in ("bark", "buzz", "cry", "moo")] == ["barks", "buzzes", "cries", "moos"]
    assert join_and(["a dog", "rain", "an owl"]) == "a dog, rain and an owl"


def test_phrase_grammar():
    dog = SoundPhrase("dog", "barking", "bark")
    assert dog.noun_phrase() == "a dog barking"
    assert dog.noun_phrase(plural=True, quantifier="two") == "two dogs barking"
    assert dog.clause() == "a dog is barking" and dog.clause(plural=True) == "dogs are barking"
    assert dog.clause(finite=True) == "a dog barks" and dog.clause(plural=True, finite=True) == "dogs bark"
    assert SoundPhrase("owl").noun_phrase() == "an owl" and SoundPhrase("rain").noun_phrase() == "rain"
    assert SoundPhrase("people", "cheering").clause() == "people are cheering"
    two = phrases_caption([SoundPhrase("owl"), SoundPhrase("rain")], random.Random(0), plural_probability=0)
    assert "an owl" in two.lower() and "rain" in two.lower() and two[0].isupper()


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z]+", text.lower()))


def test_keyword_captions_use_the_ontology():
    captions = [template_caption(["Dog", "Bark", "Animal", "Domestic animals, pets"], random.Random(s))
                for s in range(30)]
    assert all("dog" in c.lower() for c in captions)
    assert not any("animal" in c.lower() for c in captions)  # ancestors of "Bark" are covered by it
    assert any("barking" in c or "barks" in c for c in captions)  # the vocalization becomes the dog's verb
    assert all(not re.search(r"\ba [aeiou]", c.lower()) for c in captions)
    kinds = [template_caption(["owl", "rain"], random.Random(s)) for s in range(40)]
    assert all({"owl", "rain"} <= _words(c) or {"owls", "rain"} <= _words(c) for c in kinds)
    assert any(" and " in c for c in kinds) and any("an owl" in c.lower() for c in kinds)
    assert len(set(kinds)) > 5  # templates, plurals and verbs vary
    assert "mystery gizmo" in template_caption(["mystery_gizmo"], random.Random(0)).lower()  # unknown labels stay


def test_keyword_captioner_is_deterministic_given_a_seed():
    keywords = ["Guitar", "Applause", "car_horn"]
    assert KeywordCaptioner(seed=1).caption(keywords) == KeywordCaptioner(seed=1).caption(keywords)
    by_seed = {KeywordCaptioner(seed=s).caption(keywords) for s in range(12)}
    assert len(by_seed) > 3
    rng_a, rng_b = random.Random(5), random.Random(5)
    assert KeywordCaptioner().captions([keywords, ["rain"]], rng_a) == KeywordCaptioner().captions(
        [keywords, ["rain"]], rng_b)
    with pytest.raises(ClapkitError):
        KeywordCaptioner().caption(["  "])


class _Backend:
    def __init__(self, outputs):
        self.outputs, self.prompts = outputs, []

    def generate(self, prompts):
        self.prompts += prompts
        return [self.outputs(p) for p in prompts]


def test_keyword_captioner_with_a_backend_and_fallback():
    backend = _Backend(lambda p: '"A dog barks in the rain."' if "dog" in p else "")
    captions = KeywordCaptioner(backend).captions([["dog", "rain"], ["owl"]])
    assert captions[0] == "A dog barks in the rain."  # quotes removed
    assert "owl" in captions[1].lower()  # empty output -> offline template
    assert "dog, rain" in backend.prompts[0]


@pytest.mark.parametrize("text,expected", [
    ("A man speaks while a woman laughs", "A person speaks while a person laughs"),
    ("MEN and Women cheer", "PEOPLE and People cheer"),
    ("The girls' voices and a boy's laugh", "The children's voices and a child's laugh"),
    ("A woman's heels click", "A person's heels click"),
    ("Man-made noise near a snowman; a manly voice", "Man-made noise near a snowman; a manly voice"),
])
def test_debiasing(text, expected):
    assert debias(text) == expected


def test_debiasing_word_map_is_configurable():
    assert Debiaser({"man": "adult", "dog": "animal"})("A man walks a dog") == "An adult walks an animal"
    assert Debiaser({})("A man") == "A man"


def test_paraphraser_rewrites():
    paraphraser = Paraphraser()
    caption = "A dog barks while a man is talking in the background."
    rewrites = paraphraser.paraphrases(caption, 5, random.Random(0))
    assert len(rewrites) == 5 and len(set(rewrites)) == 5 and caption not in rewrites
    assert rewrites == paraphraser.paraphrases(caption, 5, random.Random(0))
    assert all(r.endswith(".") and r[0].isupper() for r in rewrites)
    many = paraphraser.paraphrases(caption, 8, random.Random(1)) + rewrites
    assert any(r.startswith("A man is") or r.startswith("In the background") for r in many)  # reordered
    assert any("speaking" in r or "chatting" in r for r in many)  # synonym swap
    swapped = paraphraser.swap_synonyms("Bird song and gunshots", random.Random(0), probability=1.0)
    assert swapped != "Bird song and gunshots" and swapped.split()[0] == "Bird"
    assert paraphraser.reframe("The sound of rain", random.Random(3)).lower().count("rain") == 1
    assert looks_like_clause("A dog barks") and not looks_like_clause("Two dogs barking in the distance")


def test_rewriter_offline_and_with_a_backend():
    offline = Rewriter(seed=2)
    assert offline.rewrite("Rain falls on a roof", 3) == Rewriter(seed=2).rewrite("Rain falls on a roof", 3)
    backend = _Backend(lambda p: "Rewritten: same" if "shorter" in p else f"variant {len(p)}")
    rewrites = Rewriter(backend, styles=("use different words", "make it shorter", "repeat")).rewrite("Rain", 3)
    assert len(rewrites) == 3 and rewrites[0].startswith("variant")
    assert len(backend.prompts) == 3 and "make it shorter" in backend.prompts[1]
    assert Rewriter().rewrite_many(["a", "b"], 0) == [[], []]


def test_augmenter_draws_the_original_with_probability_p():
    item = {"id": "x", "captions": ["original one", "original two"], "rewrites": ["rewrite a", "rewrite b"]}
    rng = random.Random(0)
    draws = [CaptionAugmenter().choose(item, rng) for _ in range(4000)]
    share = sum(d.startswith("original") for d in draws) / len(draws)
    assert abs(share - 0.4) < 0.03  # 4.6 standard deviations
    assert {"original one", "original two", "rewrite a", "rewrite b"} == set(draws)
    rng = random.Random(0)
    share_08 = sum(CaptionAugmenter(p_original=0.8).choose(item, rng).startswith("original") for _ in range(2000))
    assert abs(share_08 / 2000 - 0.8) < 0.03
    assert {CaptionAugmenter(p_original=0.0).choose(item, random.Random(s)) for s in range(50)} <= set(item["rewrites"])
    again = [CaptionAugmenter().choose(item, r) for r in [random.Random(9)] for _ in range(20)]
    assert again == [CaptionAugmenter().choose(item, r) for r in [random.Random(9)] for _ in range(20)]


def test_augmenter_debiases_and_handles_missing_rewrites():
    item = {"id": "y", "captions": ["A woman sings"], "rewrites": []}
    assert {CaptionAugmenter().choose(item, random.Random(s)) for s in range(20)} == {"A person sings"}
    assert CaptionAugmenter(debias=False).choose(item, random.Random(0)) == "A woman sings"
    made = {CaptionAugmenter(p_original=0.0, paraphrase_missing=True, debias=False).choose(item, random.Random(s))
            for s in range(20)}
    assert "A woman sings" not in made and all("sings" in m or "singing" in m for m in made)
    with pytest.raises(ClapkitError, match="no caption"):
        CaptionAugmenter().choose({"id": "z", "captions": [], "rewrites": []}, random.Random(0))
    with pytest.raises(ClapkitError, match="probability"):
        CaptionAugmenter(p_original=1.5)
