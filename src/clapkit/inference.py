"""ClapPipeline: the user-facing model: embed audio and text, classify, compare. Returns numpy arrays."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from clapkit.config import ModelConfig
from clapkit.errors import AudioError, ClapkitWarning, ConfigError, TokenizerError
from clapkit.models.clap import ClapNetwork

AudioInput = Any  # a path, a list of paths, a 1-D/2-D array, or a list of 1-D arrays



def probabilities_from_logits(logits: np.ndarray, multi_label: bool = False) -> np.ndarray:
    """Zero-shot probabilities from (N, L) logits, in float64: a softmax over the labels (one label per clip), or one
    sigmoid per label with ``multi_label`` (any number of labels may apply)."""
    logits = np.asarray(logits, np.float64)
    if multi_label:
        return 1.0 / (1.0 + np.exp(-logits))
    logits = logits - logits.max(axis=1, keepdims=True)
    probs = np.exp(logits)
    return probs / probs.sum(axis=1, keepdims=True)


class ClapPipeline:
    """A CLAP model ready for inference. ``module`` is the ``nn.Module``; ``config`` its ``ModelConfig``."""

    def __init__(self, module: ClapNetwork, config: ModelConfig, tokenizer=None, device: str | torch.device = "cpu"):
        self.module = module.to(device).eval()
        self.config = config
        self.tokenizer = tokenizer
        self.device = torch.device(device)

    def __repr__(self) -> str:
        return f"ClapPipeline({self.config.name!r}, family={self.config.family!r}, device={str(self.device)!r})"

    @property
    def sample_rate(self) -> int:
        return self.config.frontend.sample_rate

    # ----------------------------------------------------------------------------------------------- audio
    def load_waveforms(self, inputs: AudioInput, sample_rate: int | None = None) -> tuple[list[np.ndarray], list[str]]:
        """Decode/validate inputs to float32 mono at the model's rate; returns (waveforms, source names)."""
        from clapkit.audio.io import load_audio, prepare_waveform

        if isinstance(inputs, (str, Path)):
            inputs = [inputs]
        if isinstance(inputs, np.ndarray) or torch.is_tensor(inputs):
            array = np.asarray(inputs.detach().cpu() if torch.is_tensor(inputs) else inputs)
            inputs = [array] if array.ndim == 1 else list(array)
        if not isinstance(inputs, Sequence) or len(inputs) == 0:
            raise AudioError("input", "no audio given: pass file paths, a list of 1-D arrays or a 2-D (N, T) array")
        waveforms, sources = [], []
        for i, item in enumerate(inputs):
            if isinstance(item, (str, Path)):
                waveforms.append(load_audio(item, self.sample_rate))
                sources.append(str(item))
            else:
                source = f"array[{i}]"
                if sample_rate is None:
                    raise AudioError(
                        source, f"in-memory audio needs sample_rate= (this model runs at {self.sample_rate} Hz)"
                    )
                array = item.detach().cpu().numpy() if torch.is_tensor(item) else np.asarray(item)
                waveforms.append(prepare_waveform(array, sample_rate, self.sample_rate, source))
                sources.append(source)
        return waveforms, sources

    @torch.inference_mode()
    def embed_waveforms(self, waveforms: list[np.ndarray], batch_size: int = 8) -> np.ndarray:
        """Embed decoded waveforms (already at the model's rate). Eval-time: deterministic, batch-independent."""
        from clapkit.audio.fusion import prepare_batch

        out = []
        for start in range(0, len(waveforms), batch_size):
            batch = prepare_batch(
                waveforms[start : start + batch_size],
                self.config.frontend,
                fusion=self.config.audio.enable_fusion,
                train=False,
            )
            embedding = self.module.encode_audio(batch.features.to(self.device), batch.is_longer.to(self.device))
            out.append(embedding.float().cpu().numpy())
        return np.concatenate(out, axis=0)

    def embed_audio(self, inputs: AudioInput, sample_rate: int | None = None, batch_size: int = 8) -> np.ndarray:
        """L2-normalised audio embeddings, ``np.ndarray (N, D)``, for files or arrays."""
        waveforms, _ = self.load_waveforms(inputs, sample_rate)
        return self.embed_waveforms(waveforms, batch_size)

    # ------------------------------------------------------------------------------------------------ text
    def tokenize(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        if self.tokenizer is None:
            from clapkit.tokenizers import _missing_message

            raise TokenizerError(
                f"model {self.config.name!r} has no tokenizer. {_missing_message(self.config.text.tokenizer)}"
            )
        return self.tokenizer(list(texts) if not isinstance(texts, str) else [texts])

    @torch.inference_mode()
    def encode_text(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Torch-level: pre-tokenised ids (B, L) -> L2-normalised embeddings (B, D)."""
        input_ids = torch.as_tensor(input_ids).to(self.device)
        if attention_mask is not None:
            attention_mask = torch.as_tensor(attention_mask).to(self.device)
        return self.module.encode_text(input_ids, attention_mask)

    @torch.inference_mode()
    def encode_audio(self, features: torch.Tensor, is_longer: torch.Tensor | None = None) -> torch.Tensor:
        """Torch-level: front-end features (B, C, T, n_mels) -> L2-normalised embeddings (B, D)."""
        return self.module.encode_audio(
            features.to(self.device), None if is_longer is None else is_longer.to(self.device)
        )

    def warn_unknown(self, texts: Sequence[str], what: str = "text") -> None:
        """Warn (:class:`clapkit.errors.ClapkitWarning`) about texts made only of tokens the vocabulary does not
        know: they all get the same embedding, so their scores mean nothing."""
        unknown = self.tokenizer.unknown_only(list(texts)) if self.tokenizer is not None else []
        if unknown:
            shown = ", ".join(repr(t) for t in unknown[:5]) + (" ..." if len(unknown) > 5 else "")
            warnings.warn(
                f"{what}(s) {shown}: the text tower's vocabulary knows none of their tokens (all unknown), so they "
                "all get the same embedding and their scores mean nothing; use words it knows (English)",
                ClapkitWarning,
                stacklevel=3,
            )

    def embed_text(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """L2-normalised text embeddings, ``np.ndarray (M, D)``."""
        texts = [texts] if isinstance(texts, str) else list(texts)
        out = []
        for start in range(0, len(texts), batch_size):
            tokens = self.tokenize(texts[start : start + batch_size])
            out.append(self.encode_text(tokens["input_ids"], tokens["attention_mask"]).float().cpu().numpy())
        return np.concatenate(out, axis=0)

    # ------------------------------------------------------------------------------------------- compare
    @property
    def logit_scale(self) -> float:
        """exp of the audio logit scale: the temperature-inverse used for audio-text logits."""
        return float(self.module.audio_logit_scale.detach().exp().cpu())

    def similarity(self, audio_embeddings: np.ndarray, text_embeddings: np.ndarray) -> np.ndarray:
        """Logits (N, M) = logit_scale * cosine similarity."""
        return self.logit_scale * np.asarray(audio_embeddings) @ np.asarray(text_embeddings).T

    def classify(
        self,
        inputs: AudioInput,
        labels: Sequence[str],
        prompt: str | Sequence[str] = "This is a sound of {}.",
        multi_label: bool = False,
        sample_rate: int | None = None,
        batch_size: int = 8,
    ) -> np.ndarray:
        """Zero-shot class probabilities (N, L): softmax over labels, or per-label sigmoid with ``multi_label``.

        Several prompt templates are averaged (mean of the normalised text embeddings, re-normalised).
        """
        text = self.label_embeddings(labels, prompt)
        audio = self.embed_audio(inputs, sample_rate, batch_size)
        return self.probabilities(audio, text, multi_label)

    def probabilities(
        self, audio_embeddings: np.ndarray, label_embeddings: np.ndarray, multi_label: bool = False
    ) -> np.ndarray:
        """Zero-shot probabilities (N, L) from embeddings: softmax of the logits over the labels (one label per clip),
        or one sigmoid per label with ``multi_label`` (any number of labels may apply)."""
        return probabilities_from_logits(self.similarity(audio_embeddings, label_embeddings), multi_label)

    def label_embeddings(
        self, labels: Sequence[str], prompt: str | Sequence[str] = "This is a sound of {}."
    ) -> np.ndarray:
        """One L2-normalised text embedding per label: the mean over the prompt templates (a prompt ensemble) of the
        embeddings of ``template.format(label)``, re-normalised. Every template must contain ``{}``."""
        templates = [prompt] if isinstance(prompt, str) else list(prompt)
        labels = list(labels)
        if not labels:
            raise ConfigError(
                "classify needs at least one label: pass labels=[...] (CLI: --labels a,b or --labels-file F)"
            )
        if not templates or any("{}" not in t for t in templates):
            raise ConfigError(
                f"prompt templates {templates!r}: each must contain {{}} where the label goes, "
                "e.g. 'This is a sound of {}.'"
            )
        self.warn_unknown(labels, "label")
        stacked = np.stack([self.embed_text([t.format(label) for label in labels]) for t in templates])
        mean = stacked.mean(axis=0)
        return mean / np.linalg.norm(mean, axis=1, keepdims=True)

    # -------------------------------------------------------------------------------------------- caption
    def caption(
        self,
        inputs: AudioInput,
        sample_rate: int | None = None,
        beam_size: int = 5,
        entry_length: int = 67,
        temperature: float = 1.0,
    ) -> list[str]:
        """One caption per file or waveform (MS-CLAP's captioning model only: ``clapkit.load(clapcap file)``).

        msclap's ``generate_caption`` rules (beam search with length normalisation, stop token, capitalisation;
        docs/captioning.md). Deterministic; each clip is captioned on its own, so the result does not depend on the
        other inputs. A CLAP embedding model raises ``ConfigError``.
        """
        from clapkit.captioning import DecodingOptions, can_caption, cannot_caption_message, caption_waveforms

        if not can_caption(self):
            raise ConfigError(cannot_caption_message(self))
        waveforms, _ = self.load_waveforms(inputs, sample_rate)
        return caption_waveforms(self, waveforms, DecodingOptions(beam_size, entry_length, temperature))

    # ---------------------------------------------------------------------------------------------- save
    def save(self, directory: str | Path) -> Path:
        """Write ``config.json`` + ``model.safetensors`` (clapkit format) to ``directory``."""
        from clapkit.checkpoints import save_clapkit

        return save_clapkit(directory, self.config, self.module.state_dict())


def top_labels(probabilities: np.ndarray, labels: Sequence[str], k: int = 5) -> list[list[tuple[str, float]]]:
    """The ``k`` most probable labels of each row of ``probabilities (N, L)``, best first (ties: label order)."""
    labels = list(labels)
    probabilities = np.asarray(probabilities)
    if probabilities.ndim != 2 or probabilities.shape[1] != len(labels):
        raise ValueError(f"probabilities of shape {probabilities.shape} do not match {len(labels)} labels")
    k = max(1, min(int(k), len(labels)))
    order = np.argsort(-probabilities, axis=1, kind="stable")[:, :k]
    return [[(labels[j], float(row[j])) for j in idx] for row, idx in zip(probabilities, order)]


ClapModel = ClapPipeline  # the former name, kept so no public API breaks
