"""Zero-shot prompts: label cleanup, the papers' templates, template ensembles and per-class prompt sets.

A class is represented by the mean of the L2-normalised text embeddings of its prompts, re-normalised (the
"prompt ensemble" of CLIP; with one template this is just that prompt's embedding). Per-class prompt sets (one
list of prompts per class) cover both template ensembles and ReCLAP's descriptive prompts (``clapkit.eval.reclap``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

import numpy as np

from clapkit.errors import ClapkitError

TEMPLATES: dict[str, tuple[str, ...]] = {
    # LAION-CLAP's zero-shot evaluation (eval_zeroshot_classification.py): every dataset except GTZAN
    "laion": ("This is a sound of {}.",),
    # ... and GTZAN
    "laion-music": ("This is a {} song.",),
    # MS-CLAP's ESC-50 benchmark example (examples/zero_shot_classification.py, "ESC50 Accuracy: 93.9%")
    "ms-clap": ("this is the sound of {}",),
    # MS-CLAP's single-file example (examples/zero_shot_predictions.py)
    "ms-clap-predictions": ("this is a sound of {}",),
    "label": ("{}",),
    # clapkit's ensemble: varied phrasings of the same statement, averaged
    "ensemble": (
        "This is a sound of {}.",
        "A sound of {}.",
        "The sound of {}.",
        "A recording of {}.",
        "An audio clip of {}.",
        "{} can be heard.",
        "A recording of {} in the background.",
        "A close-up recording of {}.",
    ),
}


class PromptError(ClapkitError, ValueError):
    """A prompt template or prompt set is malformed."""


def clean_label(label: str, lowercase: bool = True) -> str:
    """Dataset label -> words: underscores to spaces, whitespace collapsed, lower case ("Dog_bark" -> "dog bark").
    Hyphens and other characters are kept ("hip-hop")."""
    text = re.sub(r"\s+", " ", label.replace("_", " ")).strip()
    return text.lower() if lowercase else text


def resolve_templates(names_or_templates: str | Sequence[str]) -> list[str]:
    """Template-set names from ``TEMPLATES`` and/or literal templates containing ``{}`` -> list of templates."""
    items = [names_or_templates] if isinstance(names_or_templates, str) else list(names_or_templates)
    templates: list[str] = []
    for item in items:
        if item in TEMPLATES:
            templates += [t for t in TEMPLATES[item] if t not in templates]
        elif "{}" in item:
            if item not in templates:
                templates.append(item)
        else:
            raise PromptError(f"{item!r} is neither a template set ({', '.join(TEMPLATES)}) nor a template with {{}}")
    if not templates:
        raise PromptError("no prompt templates given")
    return templates


def format_prompts(labels: Sequence[str], templates: Sequence[str]) -> list[list[str]]:
    """One list of prompts per label: every template filled with the label."""
    return [[t.format(label) for t in templates] for label in labels]


def class_embeddings(
    embed_texts: Callable[[list[str]], np.ndarray], prompts_per_class: Sequence[Sequence[str]]
) -> np.ndarray:
    """(C, D) class embeddings: mean of each class's normalised prompt embeddings, re-normalised.

    ``embed_texts`` maps a list of texts to L2-normalised embeddings (e.g. ``model.embed_text``); all prompts are
    embedded in one call.
    """
    if not prompts_per_class or any(len(p) == 0 for p in prompts_per_class):
        raise PromptError("every class needs at least one prompt")
    flat = [text for prompts in prompts_per_class for text in prompts]
    embeddings = np.asarray(embed_texts(flat), dtype=np.float64)
    embeddings = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)
    out, start = [], 0
    for prompts in prompts_per_class:
        mean = embeddings[start : start + len(prompts)].mean(axis=0)
        out.append(mean / np.linalg.norm(mean))
        start += len(prompts)
    return np.stack(out).astype(np.float32)
