"""One caption per clip from its labels, the words that gave them and the package's context (real speech: the
language and voice; a broad class named by a specific word: the word), through clapkit's offline keyword-to-caption
templates, plus rule-based rewrites (``clapkit.train.captions.Rewriter``). Seeded by the clip id: deterministic."""

from __future__ import annotations

import random

from clapkit.harvest.labels import Labelling
from clapkit.ontology import Ontology
from clapkit.train.captions import Rewriter
from clapkit.train.templates import template_caption

# classes so broad that the file's own word says more ("an elephant" rather than "wild animals")
BROAD = frozenset({"Wild animals", "Bird", "Insect", "Canidae, dogs, wolves", "Rodents, rats, mice", "Drum",
                   "Livestock, farm animals, working animals", "Domestic animals, pets"})
SURFACES = ("snow", "gravel", "grass", "sand", "wood", "metal", "stone", "carpet", "tile", "dirt", "ice", "mud",
            "leaves", "water", "concrete", "marble", "wooden")


class Captioner:
    def __init__(self, ontology: Ontology, rewrites: int = 2, seed: int = 0):
        self.ontology = ontology
        self.rewrites = rewrites
        self.seed = seed
        self.rewriter = Rewriter(None, ontology, seed=seed)

    def caption(self, clip_id: str, labelling: Labelling) -> tuple[str, list[str]]:
        rng = random.Random(f"{self.seed}\x1f{clip_id}")
        if labelling.speech is not None:
            text = _speech_caption(labelling, rng)
        else:
            keywords = [e.name for e in labelling.labels]
            primary = next((m for m in labelling.matches if m.entry == labelling.labels[0]), None)
            if primary is not None and primary.entry.name in BROAD and primary.rule not in ("name", "package"):
                keywords[0] = primary.word
            text = template_caption(keywords, rng, self.ontology, max_keywords=3)
            if labelling.labels[0].name == "Walk, footsteps":
                surface = next((w for w in labelling.keywords if w in SURFACES), None)
                if surface:
                    text = f"{text} on {'wood' if surface == 'wooden' else surface}"
        rewrites = self.rewriter.rewrite(text, self.rewrites) if self.rewrites else []
        return text, rewrites


def _speech_caption(labelling: Labelling, rng: random.Random) -> str:
    language, voice = labelling.speech or ("", "")
    who = {"female": "a woman", "male": "a man"}.get(voice, "a person")
    if any(label.name == "Speech synthesizer" for label in labelling.labels):
        who = {"female": "a synthetic female voice", "male": "a synthetic male voice"}.get(voice, "a synthetic voice")
    if labelling.spoken:
        forms = [f"{who} saying \"{labelling.spoken}\" in {language}", f"{who} says the word \"{labelling.spoken}\"",
                 f"the {language} word \"{labelling.spoken}\" spoken by {who}"]
    else:
        forms = [f"{who} speaking {language}", f"{who} speaks in {language}", f"a recording of {who} talking in "
                 f"{language}", f"{language} speech by {who}"]
    text = rng.choice(forms)
    return text[0].upper() + text[1:]
