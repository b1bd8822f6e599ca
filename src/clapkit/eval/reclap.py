"""ReCLAP prompt augmentation (Ghosh et al., 2024): describe each class's sound, place it in scenes, average.

Instead of one abstract template ("This is a sound of organ."), each class gets prompts that describe the sound by
its acoustic traits in diverse scenes ("the organ's deep, resonant tones filling a cathedral"). Per class: a
*describer* lists traits and scenes; ``num_prompts`` (trait, scene) pairs are sampled without replacement (seeded
by the label, so runs are reproducible), each pair becomes one sentence, and the class embedding is the mean of the
sentences' normalised embeddings (``prompts.class_embeddings``).

Describers:
- ``OntologyDescriber`` (offline default): traits from the AudioSet ontology (the class's description, the names
  of its sub-classes, its synonyms), scenes from a fixed list of acoustic settings, sentences from fixed frames.
- ``LanguageModelDescriber``: any text generator with ``generate(prompts: list[str]) -> list[str]`` (clapkit's
  ``textgen`` backends: an OpenAI-compatible chat endpoint or a local transformers model, both cached to a file)
  writes the traits, the scenes and the sentences, in ReCLAP's two stages.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

SCENES = (
    "in a quiet room",
    "outdoors, in the distance",
    "close to the microphone",
    "on a busy city street",
    "in a large hall with echo",
    "in the countryside",
    "in a small enclosed space",
    "over wind and background noise",
    "late at night",
    "in a crowded public place",
)

FRAMES = (
    "The sound of {label}, {trait}, {scene}.",
    "{label} heard {scene}: {trait}.",
    "A recording of {label} {scene}, {trait}.",
)


@dataclass(frozen=True)
class SoundDescription:
    label: str
    traits: tuple[str, ...]
    scenes: tuple[str, ...]


class Describer(Protocol):
    name: str

    def describe(self, labels: Sequence[str]) -> list[SoundDescription]: ...

    def compose(self, requests: Sequence[tuple[str, str, str]]) -> list[str]: ...


def _frame(label: str, trait: str, scene: str) -> str:
    frame = FRAMES[zlib.crc32(f"{label}|{trait}|{scene}".encode()) % len(FRAMES)]
    text = frame.format(label=label, trait=trait, scene=scene)
    return text[0].upper() + text[1:]


class OntologyDescriber:
    """Offline traits from the bundled AudioSet ontology (CC BY-SA 4.0); labels it cannot place keep just the label."""

    name = "ontology"

    def __init__(self, ontology=None, max_traits: int = 8, scenes: Sequence[str] = SCENES):
        if ontology is None:
            from clapkit.ontology import default_ontology

            ontology = default_ontology()
        self.ontology = ontology
        self.max_traits = max_traits
        self.scenes = tuple(scenes)

    def traits(self, label: str) -> tuple[str, ...]:
        entry = self.ontology.find(label)
        if entry is None:
            return (label,)
        traits: list[str] = []
        description = _short_description(entry.description)
        if description:
            traits.append(description)
        for child in self.ontology.children_of(entry):
            if not child.blacklisted and child.synonyms:
                traits.append(f"like {child.synonyms[0]}")
        traits += [f"also called {s}" for s in entry.synonyms if s.lower() != label.lower()]
        unique = list(dict.fromkeys(t for t in traits if t))
        return tuple(unique[: self.max_traits]) or (label,)

    def describe(self, labels: Sequence[str]) -> list[SoundDescription]:
        return [SoundDescription(label, self.traits(label), self.scenes) for label in labels]

    def compose(self, requests: Sequence[tuple[str, str, str]]) -> list[str]:
        return [_frame(label, trait, scene) for label, trait, scene in requests]


def _short_description(text: str, max_words: int = 14) -> str:
    """First clause of an ontology description, lower-cased, at most ``max_words`` words."""
    first = re.split(r"(?<=[.;])\s|,?\s(?:such as|e\.g\.|including)\s", text.strip(), maxsplit=1)[0].rstrip(".;")
    words = first.split()
    if not words:
        return ""
    if len(words) > max_words:  # cut at a clause boundary rather than mid-phrase
        head = " ".join(words[:max_words])
        clauses = ("which", "that", "usually", "designed", "where")
        cut = max(head.rfind(","), *(head.find(f" {w} ", 20) for w in clauses))
        words = (head[:cut] if cut > 20 else head).rstrip(",").split()
    words[0] = words[0] if words[0].isupper() and len(words[0]) > 1 else words[0].lower()
    return " ".join(words[:max_words])


# clapkit's text backends return one line per prompt, so lists are asked for on one line, separated by semicolons
TRAITS_QUESTION = ("List {k} distinct acoustic characteristics of the sound of \"{label}\": how it sounds (pitch, "
                   "loudness, timbre, rhythm, texture, duration). Answer on one line: {k} short phrases separated by "
                   "semicolons.")
SCENES_QUESTION = ("List {k} different everyday scenes or places where the sound of \"{label}\" can be heard. "
                   "Answer on one line: {k} short phrases separated by semicolons.")
SENTENCE_REQUEST = ("Write one short sentence (under 20 words) that describes the sound of \"{label}\" as {trait}, "
                    "heard {scene}. Describe only what is heard. Reply with the sentence only.")
SYSTEM_PROMPT = "You describe sounds for audio research. Answer exactly in the requested format, with no preamble."


def parse_lines(text: str, limit: int) -> list[str]:
    """A language model's list answer (one item per line or ``;``-separated) -> up to ``limit`` distinct items,
    bullets, numbering and quotes removed."""
    items: list[str] = []
    for line in re.split(r"[\n;]", text):
        item = re.sub(r"^\s*(?:[-*\u2022]+|\d+[.)]|\(\d+\))\s*", "", line).strip().strip("\"'").strip()
        item = item.rstrip(".").strip()
        if item and item.lower() not in (i.lower() for i in items):
            items.append(item)
    return items[:limit]


def language_model_describer(
    kind: str, model: str | None, url: str | None = None, cache: str | None = None, seed: int = 0
) -> LanguageModelDescriber:
    """A describer over clapkit's text backends: ``kind`` "openai" (an OpenAI-compatible chat endpoint at ``url``
    serving ``model``; the bearer token, if the server needs one, from ``$OPENAI_API_KEY``) or "local" (a
    transformers seq2seq model directory ``model``). Answers are cached in the JSONL file ``cache``."""
    import os

    from clapkit.textgen import CachedGenerator, ChatEndpoint, Seq2SeqModel, TextGenerationError

    if kind == "openai":
        backend = ChatEndpoint(url or "", model or "", api_key=os.environ.get("OPENAI_API_KEY"),
                               system_prompt=SYSTEM_PROMPT, max_tokens=160, seed=seed)
    elif kind == "local":
        if not model:
            raise TextGenerationError("--reclap local needs --llm-model DIR (a transformers seq2seq model folder)")
        backend = Seq2SeqModel(model, max_new_tokens=96)
    else:
        raise TextGenerationError(f"unknown language-model backend {kind!r}; use 'openai' or 'local'")
    generator = CachedGenerator(backend, cache) if cache else backend
    return LanguageModelDescriber(generator, name=f"{kind}:{model}")


class LanguageModelDescriber:
    """ReCLAP's LLM prompts through a text generator (``generate(list[str]) -> list[str]``, cached by the backend)."""

    def __init__(self, generator, num_traits: int = 5, num_scenes: int = 5, name: str = "language-model"):
        self.generator = generator
        self.num_traits = num_traits
        self.num_scenes = num_scenes
        self.name = name

    def describe(self, labels: Sequence[str]) -> list[SoundDescription]:
        questions = [TRAITS_QUESTION.format(k=self.num_traits, label=label) for label in labels]
        questions += [SCENES_QUESTION.format(k=self.num_scenes, label=label) for label in labels]
        answers = self.generator.generate(questions)
        out = []
        for i, label in enumerate(labels):
            traits = parse_lines(answers[i], self.num_traits) or [label]
            scenes = parse_lines(answers[len(labels) + i], self.num_scenes) or list(SCENES[: self.num_scenes])
            out.append(SoundDescription(label, tuple(traits), tuple(scenes)))
        return out

    def compose(self, requests: Sequence[tuple[str, str, str]]) -> list[str]:
        answers = self.generator.generate([SENTENCE_REQUEST.format(label=l, trait=t, scene=s) for l, t, s in requests])
        sentences = []
        for (label, trait, scene), answer in zip(requests, answers):
            sentence = " ".join(str(answer).split()).strip("\"' ")
            if not sentence:
                sentences.append(_frame(label, trait, scene))
            else:
                sentences.append(sentence if sentence[-1] in ".!?" else sentence + ".")
        return sentences


def sample_pairs(description: SoundDescription, num_prompts: int, seed: int = 0) -> list[tuple[str, str]]:
    """``num_prompts`` distinct (trait, scene) pairs spread over the traits: traits in a random order, each with its
    scenes in a random order, taken round-robin (every trait is used once before any is used twice). The RNG is
    seeded by ``seed`` and the label, so a class gets the same prompts whatever classes are evaluated with it."""
    rng = np.random.default_rng([seed, zlib.crc32(description.label.encode())])
    traits = [description.traits[i] for i in rng.permutation(len(description.traits))]
    scenes = {t: [description.scenes[i] for i in rng.permutation(len(description.scenes))] for t in traits}
    pairs = [(t, scenes[t][r]) for r in range(len(description.scenes)) for t in traits]
    return pairs[:num_prompts]


def reclap_prompt_sets(
    labels: Sequence[str], describer: Describer, num_prompts: int = 8, seed: int = 0
) -> list[list[str]]:
    """One list of ``num_prompts`` descriptive prompts per label (fewer when a class has fewer trait x scene pairs)."""
    if num_prompts < 1:
        raise ValueError("num_prompts must be at least 1")
    descriptions = describer.describe(list(labels))
    requests = [[(d.label, t, s) for t, s in sample_pairs(d, num_prompts, seed)] for d in descriptions]
    flat = describer.compose([r for group in requests for r in group])
    out, start = [], 0
    for group in requests:
        out.append(flat[start : start + len(group)])
        start += len(group)
    return out
