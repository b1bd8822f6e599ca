"""Caption augmentation for training: keyword-to-caption, debiasing and ReCLAP rewrites.

- :class:`KeywordCaptioner`: tags -> a natural caption, offline (grammar-aware templates over AudioSet synonyms, see
  ``clapkit.train.templates``) or through any ``clapkit.textgen`` backend (local seq2seq model, OpenAI-compatible
  chat server; wrap it in ``CachedGenerator`` so each prompt is generated once).
- :class:`Debiaser`: "woman"/"man" -> "person", "boy"/"girl" -> "child" (plurals, possessives, case, articles), as
  LAION-CLAP did for its generated captions; the word map is configurable.
- :class:`Rewriter`: N rewrites per caption, offline (``clapkit.train.paraphrase``) or through a backend.
- :class:`CaptionAugmenter`: what the training loop calls per item: the original caption with probability
  ``p_original`` (0.4, as ReCLAP), otherwise one of the item's rewrites; debiased.

Items are the dicts the datasets yield: ``{"id", "waveform", "captions", "keywords", "rewrites"}``.
"""

from __future__ import annotations

import logging
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from clapkit.errors import ClapkitError
from clapkit.ontology import Ontology, default_ontology
from clapkit.textgen import TextGenerator, clean_generation
from clapkit.train.english import indefinite_article
from clapkit.train.paraphrase import Paraphraser
from clapkit.train.templates import template_caption

log = logging.getLogger(__name__)

DEFAULT_WORD_MAP: dict[str, str] = {
    "woman": "person", "man": "person", "women": "people", "men": "people",
    "boy": "child", "girl": "child", "boys": "children", "girls": "children",
}
KEYWORD_PROMPT = (
    "Write one short, natural English sentence (at most 20 words) describing an audio recording that contains these "
    "sounds: {keywords}. Describe only what can be heard. Reply with the sentence only."
)
REWRITE_PROMPT = (
    "Rewrite this description of an audio recording so that it describes the same sounds in a different way: "
    "{style}. Keep it one sentence, do not add sound sources that are not mentioned.\n"
    "Description: {caption}\nRewritten description:"
)
REWRITE_STYLES = (
    "use different words",
    "change the sentence structure",
    "describe how the sounds sound (loudness, pitch, texture, rhythm)",
    "make it shorter",
    "make it more detailed about the acoustic qualities",
    "describe it as a listener would",
)


class Debiaser:
    """Replace gendered words by neutral ones: ``"A woman's laugh"`` -> ``"A person's laugh"``.

    ``word_map`` maps lower-case words to replacements (default :data:`DEFAULT_WORD_MAP`); matches are whole words
    in any case ("MAN", "Man", "man"), keep the case pattern, handle possessives ("girls'" -> "children's") and fix a
    preceding "a"/"an". Hyphenated compounds ("man-made") are left alone.
    """

    def __init__(self, word_map: Mapping[str, str] | None = None):
        self.word_map = {k.lower(): v for k, v in (DEFAULT_WORD_MAP if word_map is None else word_map).items()}
        words = sorted(self.word_map, key=len, reverse=True)
        self._pattern = (
            re.compile(r"\b(?:(an?)(\s+))?(?<![\w-])(" + "|".join(map(re.escape, words)) + r")('s|')?(?![\w-])",
                       re.IGNORECASE)
            if words else None
        )

    def __call__(self, text: str) -> str:
        if self._pattern is None:
            return text
        return self._pattern.sub(self._replace, text)

    def _replace(self, match: re.Match[str]) -> str:
        article, space, word, possessive = match.group(1), match.group(2) or "", match.group(3), match.group(4)
        replacement = _match_case(word, self.word_map[word.lower()])
        if possessive == "'" and not word.lower().endswith("s"):
            replacement += "'"  # a closing quote, not a possessive: 'the man'
        elif possessive:
            replacement += "'" if replacement.lower().endswith("s") else "'s"
        if article:
            new_article = indefinite_article(replacement)
            article = _match_case(article, new_article) if article.lower() != new_article else article
            return f"{article}{space}{replacement}"
        return replacement


def _match_case(source: str, target: str) -> str:
    if source.isupper() and len(source) > 1:
        return target.upper()
    if source[:1].isupper():
        return target[:1].upper() + target[1:]
    return target


def debias(text: str, word_map: Mapping[str, str] | None = None) -> str:
    """:class:`Debiaser` as a function (builds the pattern each call; keep a ``Debiaser`` in loops)."""
    return Debiaser(word_map)(text)


def _seeded(seed: int, *parts: object) -> random.Random:
    """A ``random.Random`` fixed by the seed and the text it is for (string seeds are hashed with SHA-512, so this
    does not depend on PYTHONHASHSEED)."""
    return random.Random("\x1f".join([str(seed), *map(str, parts)]))


class KeywordCaptioner:
    """Keywords -> one caption. ``backend=None`` uses the offline templates; any ``TextGenerator`` gets
    ``prompt_template.format(keywords="a, b, c")`` (a seq2seq model fine-tuned on bare keywords wants
    ``prompt_template="{keywords}"``). Empty backend outputs fall back to the templates.

    Without an ``rng``, the offline caption is fixed by ``seed`` and the keywords.
    """

    def __init__(self, backend: TextGenerator | None = None, ontology: Ontology | None = None, *, seed: int = 0,
                 prompt_template: str = KEYWORD_PROMPT, max_keywords: int = 5):
        self.backend = backend
        self.ontology = ontology
        self.seed = seed
        self.prompt_template = prompt_template
        self.max_keywords = max_keywords

    def _offline(self, keywords: Sequence[str], rng: random.Random | None) -> str:
        rng = rng or _seeded(self.seed, "keywords", *keywords)
        return template_caption(keywords, rng, self.ontology or default_ontology(), self.max_keywords)

    def caption(self, keywords: Sequence[str], rng: random.Random | None = None) -> str:
        return self.captions([keywords], rng)[0]

    def captions(self, keyword_lists: Sequence[Sequence[str]], rng: random.Random | None = None) -> list[str]:
        """One caption per keyword list (backends get all prompts in one ``generate`` call)."""
        lists = [[str(k) for k in kws if str(k).strip()] for kws in keyword_lists]
        for kws in lists:
            if not kws:
                raise ClapkitError("keyword-to-caption needs at least one keyword per item")
        if self.backend is None:
            return [self._offline(kws, rng) for kws in lists]
        prompts = [self.prompt_template.format(keywords=", ".join(_readable(k) for k in kws)) for kws in lists]
        outputs = self.backend.generate(prompts)
        captions = []
        for kws, output in zip(lists, outputs):
            text = clean_generation(output)
            if not text:
                log.warning("empty generated caption for keywords %s; using the offline template", kws)
                text = self._offline(kws, rng)
            captions.append(text)
        return captions


def _readable(keyword: str) -> str:
    return " ".join(keyword.replace("_", " ").split())


class Rewriter:
    """N rewrites per caption (ReCLAP). ``backend=None`` uses the rule-based :class:`Paraphraser`; a backend gets N
    prompts per caption, one per style in ``styles`` (cycled), so each rewrite differs and caches separately.
    Duplicates and copies of the original are dropped and the rest is topped up with offline rewrites, so a caption
    gets ``n`` rewrites unless even the rules run out. Offline results are fixed by ``seed`` and the caption."""

    def __init__(self, backend: TextGenerator | None = None, ontology: Ontology | None = None, *, seed: int = 0,
                 prompt_template: str = REWRITE_PROMPT, styles: Sequence[str] = REWRITE_STYLES):
        self.backend = backend
        self.seed = seed
        self.prompt_template = prompt_template
        self.styles = tuple(styles) or ("use different words",)
        self._ontology = ontology
        self._paraphraser: Paraphraser | None = None

    @property
    def paraphraser(self) -> Paraphraser:
        if self._paraphraser is None:
            self._paraphraser = Paraphraser(self._ontology)
        return self._paraphraser

    def rewrite(self, caption: str, n: int) -> list[str]:
        return self.rewrite_many([caption], n)[0]

    def rewrite_many(self, captions: Sequence[str], n: int) -> list[list[str]]:
        if n <= 0:
            return [[] for _ in captions]
        generated: list[list[str]] = [[] for _ in captions]
        if self.backend is not None:
            prompts = [self.prompt_template.format(caption=c, style=self.styles[i % len(self.styles)], index=i + 1)
                       for c in captions for i in range(n)]
            outputs = self.backend.generate(prompts)
            for j in range(len(captions)):
                generated[j] = [clean_generation(o) for o in outputs[j * n : (j + 1) * n]]
        results = []
        for caption, candidates in zip(captions, generated):
            kept: list[str] = []
            for text in candidates:
                if text and _key(text) != _key(caption) and all(_key(text) != _key(k) for k in kept):
                    kept.append(text)
            if len(kept) < n:
                extra = self.paraphraser.paraphrases(caption, n + len(kept), _seeded(self.seed, "rewrite", caption))
                kept += [e for e in extra if all(_key(e) != _key(k) for k in kept)][: n - len(kept)]
            results.append(kept[:n])
        return results


def _key(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", " ", text.lower()).strip()


@dataclass
class CaptionAugmenter:
    """Choose the training caption of one item: ``choose(item, rng)``.

    With probability ``p_original`` (ReCLAP: 0.4) one of ``item["captions"]``, otherwise one of ``item["rewrites"]``
    (items without rewrites always give an original, unless ``paraphrase_missing`` makes one on the fly with the
    offline paraphraser). The choice is then debiased when ``debias`` (``word_map`` overrides the default map).
    All randomness comes from ``rng``: the same seed gives the same captions.
    """

    p_original: float = 0.4
    debias: bool = True
    word_map: Mapping[str, str] | None = None
    paraphrase_missing: bool = False
    _debiaser: Debiaser | None = field(default=None, init=False, repr=False)
    _paraphraser: Paraphraser | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if not 0.0 <= float(self.p_original) <= 1.0:
            raise ClapkitError(f"p_original must be a probability in [0, 1], got {self.p_original}")
        if self.debias:
            self._debiaser = Debiaser(self.word_map)

    def choose(self, item: Mapping[str, Any], rng: random.Random) -> str:
        captions = [c for c in item.get("captions") or [] if isinstance(c, str) and c.strip()]
        rewrites = [r for r in item.get("rewrites") or [] if isinstance(r, str) and r.strip()]
        if not captions and not rewrites:
            raise ClapkitError(f"item {item.get('id', '?')!r} has no caption to choose from")
        take_original = rng.random() < self.p_original
        if not rewrites and self.paraphrase_missing and captions:
            if self._paraphraser is None:
                self._paraphraser = Paraphraser()
            rewrites = [self._paraphraser.paraphrase(rng.choice(captions), rng)]
        if (take_original and captions) or not rewrites:
            text = rng.choice(captions)
        else:
            text = rng.choice(rewrites)
        return self._debiaser(text) if self._debiaser is not None else text
