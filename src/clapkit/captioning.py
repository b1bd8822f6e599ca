"""Captions from a captioning model (MS-CLAP clapcap): the prefix, msclap's beam search, the text.

The decoding rules are msclap 1.3.4's ``CLAPWrapper.generate_caption`` / ``_generate_beam`` (docs/captioning.md):

- scores are ``log(softmax(logits / temperature))`` (float32); the first step takes the ``beam_size`` best tokens
  after the prefix, each beam of length 1;
- every later step: a stopped beam can only continue with token 0 at no cost and does not grow; every other beam
  grows by one; the ``beam_size`` best continuations over all beams are chosen by **total log-probability divided
  by the beam's length** (length normalisation), and a beam's score is then that average times its length;
- a beam stops when it emits the stop token, the first token of ``' <|endoftext|>'`` (GPT-2's space, id 220, not
  ``<|endoftext|>``: msclap's rule, kept); the stop token is part of the caption (its trailing space);
- decoding ends after ``entry_length`` tokens or when every beam has stopped; the caption is the beam with the best
  ``score / length`` (ties: the lower beam index), decoded by the tokenizer and passed through ``str.capitalize``
  (first letter upper case, the rest lower case).

Unlike msclap, the decoder keeps its key/value cache (reordered with the beams) instead of re-running the whole
sequence each step: the same computation, in float rounding. Each clip is captioned alone (its own forward pass
and beam search), so a caption never depends on the other clips of a call.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from clapkit.errors import ClapkitError, ConfigError, TokenizerError
from clapkit.inputs import AUDIO_EXTENSIONS, Failure, discover_inputs


@dataclass(frozen=True)
class DecodingOptions:
    beam_size: int = 5
    entry_length: int = 67
    temperature: float = 1.0

    def check(self, vocab_size: int) -> None:
        if not 1 <= int(self.beam_size) <= vocab_size:
            raise ConfigError(f"beam_size must be between 1 and the vocabulary size {vocab_size}, "
                              f"got {self.beam_size}")
        if int(self.entry_length) < 1:
            raise ConfigError(f"entry_length (the most tokens of a caption) must be at least 1, "
                              f"got {self.entry_length}")
        if not self.temperature > 0:
            raise ConfigError(
                f"temperature must be > 0, got {self.temperature} (msclap silently uses 1.0 for temperature <= 0)"
            )


def can_caption(model) -> bool:
    """True for a model with a captioning head (``clapkit.load('clapcap_weights_2023.pth')``)."""
    return getattr(model.config, "caption", None) is not None


def cannot_caption_message(model) -> str:
    return (
        f"model {model.config.name!r} cannot write captions: it is a CLAP embedding model. Captions come from "
        "MS-CLAP's captioning model: load clapcap_weights_2023.pth (e.g. --model clapcap_weights_2023.pth)"
    )


def stop_token_id(tokenizer, stop_text: str) -> int:
    """msclap's stop token: the first token of ``stop_text`` as the tokenizer encodes it."""
    ids = tokenizer.encode(stop_text)
    if not ids:
        raise TokenizerError(f"the tokenizer encodes the stop text {stop_text!r} to no tokens")
    return int(ids[0])


@torch.inference_mode()
def beam_search(network, prefix: torch.Tensor, stop_id: int, options: DecodingOptions) -> list[int]:
    """The token ids of the best caption continuing ``prefix (1, P, width)`` (msclap's rules; module docstring)."""
    decoder, beams = network.decoder, int(options.beam_size)
    temperature = float(options.temperature)
    out = decoder(inputs_embeds=prefix, use_cache=True)
    cache = out.past_key_values
    logprobs = (network.logits(out.last_hidden_state[:, -1]) / temperature).softmax(-1).log()  # (1, V)
    scores, first = logprobs[0].topk(beams)
    tokens = first[:, None]
    lengths = torch.ones(beams, device=prefix.device)
    stopped = first == stop_id
    cache.batch_repeat_interleave(beams)
    vocab = logprobs.shape[-1]
    for _ in range(int(options.entry_length) - 1):
        if bool(stopped.all()):
            break
        out = decoder(inputs_embeds=network.token_embeddings(tokens[:, -1:]), past_key_values=cache, use_cache=True)
        cache = out.past_key_values
        logprobs = (network.logits(out.last_hidden_state[:, -1]) / temperature).softmax(-1).log()  # (beams, V)
        logprobs[stopped] = -float("inf")
        logprobs[stopped, 0] = 0.0
        totals = scores[:, None] + logprobs
        lengths = lengths + (~stopped).to(lengths.dtype)
        averages, flat = (totals / lengths[:, None]).view(-1).topk(beams)
        source, token = flat // vocab, flat % vocab
        lengths = lengths[source]
        scores = averages * lengths
        tokens = torch.cat((tokens[source], token[:, None]), dim=1)
        stopped = stopped[source] | (token == stop_id)
        cache.reorder_cache(source)
    final = scores / lengths
    best = int(torch.argsort(final, descending=True, stable=True)[0])
    return tokens[best, : int(lengths[best])].tolist()


def caption_ids(model, waveforms: Sequence[np.ndarray], options: DecodingOptions, stop_id: int) -> list[list[int]]:
    """Token ids of each waveform's caption (already at the model's rate); each clip alone."""
    from clapkit.audio.fusion import prepare_batch

    if not can_caption(model):
        raise ConfigError(cannot_caption_message(model))
    network = model.module
    options.check(int(network.decoder.config.vocab_size))
    results = []
    with torch.inference_mode():
        for waveform in waveforms:
            batch = prepare_batch([waveform], model.config.frontend, fusion=False, train=False)
            prefix = network.prefix(batch.features.to(model.device), batch.is_longer.to(model.device))
            results.append(beam_search(network, prefix, stop_id, options))
    return results


def decode_caption(tokenizer, ids: Sequence[int]) -> str:
    """msclap's text of a caption: the tokenizer's decoding, then ``str.capitalize``."""
    return tokenizer.decode(list(ids)).capitalize()


def _hf_tokenizer(model):
    if model.tokenizer is None:
        from clapkit.tokenizers import _missing_message

        raise TokenizerError(
            f"captions are GPT-2 tokens and need its tokenizer to become text. {_missing_message('gpt2')}"
        )
    return model.tokenizer.hf_tokenizer


def caption_waveforms(model, waveforms: Sequence[np.ndarray], options: DecodingOptions) -> list[str]:
    tokenizer = _hf_tokenizer(model)
    stop_id = stop_token_id(tokenizer, model.config.caption.stop_text)
    return [decode_caption(tokenizer, ids) for ids in caption_ids(model, waveforms, options, stop_id)]


@dataclass
class CaptionResult:
    """Captions of files: ``paths`` and ``captions`` row-aligned (inputs in discovery order), and the failures."""

    paths: list[str]
    captions: list[str]
    failures: list[Failure]


def caption_files(
    model,
    sources: Iterable[str | os.PathLike[str]],
    options: DecodingOptions | None = None,
    *,
    files_from: str | None = None,
    extensions: Sequence[str] = AUDIO_EXTENSIONS,
    progress: bool = False,
) -> CaptionResult:
    """Caption files, folders and patterns; a file that cannot be read is reported with its reason and skipped."""
    from tqdm import tqdm

    from clapkit.jobs import _reason, decode_for_model

    options = options or DecodingOptions()
    if not can_caption(model):
        raise ConfigError(cannot_caption_message(model))
    tokenizer = _hf_tokenizer(model)
    stop_id = stop_token_id(tokenizer, model.config.caption.stop_text)
    discovery = discover_inputs(sources, files_from=files_from, extensions=extensions)
    if not discovery.paths and not discovery.failures:
        raise ClapkitError("no inputs: give audio files, folders or patterns")
    result = CaptionResult([], [], list(discovery.failures))
    for path in tqdm(discovery.paths, unit="file", desc="caption", disable=not progress, dynamic_ncols=True):
        try:
            waveform = decode_for_model(path, model.config)
        except Exception as exc:  # this file's problem, not the job's
            result.failures.append(Failure(path, _reason(exc)))
            continue
        (ids,) = caption_ids(model, [waveform], options, stop_id)
        result.paths.append(path)
        result.captions.append(decode_caption(tokenizer, ids))
    return result
