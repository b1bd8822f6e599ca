"""Captioning (MS-CLAP clapcap layout): loading by detection, decoding rules, determinism, the command line.

A small captioner (HTSAT with one block per stage, a 1-layer GPT-2 of width 64, a 2-layer mapper) with perturbed
random weights, written in msclap's clapcap layout; the offline byte-level vocabulary of tests/parity/gpt2_vocab.py.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import clapkit
from clapkit.captioning import DecodingOptions, beam_search, caption_ids, stop_token_id
from clapkit.checkpoints import clapcap
from clapkit.config import CaptionConfig
from clapkit.errors import ConfigError
from clapkit.inference import ClapPipeline
from clapkit.models.caption import CaptionNetwork
from clapkit.models.clap import ClapNetwork
from clapkit.registry import get_config
from tests.audio_fixtures import write_audio
from tests.parity.gpt2_vocab import write_gpt2_tokenizer

RATE = 44100


def small_captioner_config(mapper: str = "transformer"):
    base = get_config("ms-clap-clapcap")
    hf = {**base.text.hf_config, "vocab_size": 453, "n_positions": 128, "n_embd": 64, "n_layer": 1, "n_head": 1,
          "bos_token_id": 452, "eos_token_id": 452}
    text = dataclasses.replace(base.text, hf_config=hf, width=64, context_length=128)
    audio = dataclasses.replace(base.audio, depths=(1, 1, 1, 1), num_heads=(2, 2, 2, 2))
    if mapper == "transformer":
        caption = CaptionConfig(prefix_length=4, clip_length=3, prefix_dim=64, num_layers=2, hidden=128)
    else:
        caption = CaptionConfig(mapper="mlp", prefix_length=5, clip_length=0, prefix_dim=64, num_layers=0,
                                num_heads=0, hidden=96)
    return base.replace(text=text, audio=audio, caption=caption, joint_dim=64)


def perturbed_network(config, seed: int = 0) -> CaptionNetwork:
    torch.manual_seed(seed)
    network = CaptionNetwork(config).eval()
    with torch.no_grad():
        for name, tensor in network.named_parameters():
            scale = 0.02
            if name.startswith("decoder."):
                scale = 0.3 if name.endswith(("wte.weight", "wpe.weight")) else 0.2
            tensor.add_(scale * torch.randn_like(tensor))
        network.decoder.wte.weight[220] *= 1.6
    return network


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("gpt2-vocab")
    assert write_gpt2_tokenizer(directory) == 453
    return directory


@pytest.fixture(scope="module")
def clapcap_file(tmp_path_factory):
    """A small captioner saved as msclap saves clapcap_weights_2023.pth; lm_head differs from wte (msclap's load
    leaves lm_head's values in the tied tensor)."""
    config = small_captioner_config()
    network = perturbed_network(config)
    state = clapcap.from_clapkit(network.state_dict(), config)
    state["gpt.lm_head.weight"] = state["gpt.transformer.wte.weight"] + 0.01
    state["gpt.transformer.h.0.attn.bias"] = torch.ones(1, 1, 128, 128)  # a stale buffer of older transformers
    path = tmp_path_factory.mktemp("clapcap") / "clapcap_weights_2023.pth"
    torch.save({"model": state}, path)
    return path, config, state


@pytest.fixture(scope="module")
def captioner(clapcap_file, tokenizer_dir):
    return clapkit.load(clapcap_file[0], tokenizer=tokenizer_dir)


def waves(seed: int = 0):
    rng = np.random.default_rng(seed)
    out = []
    for seconds in (1.5, 7.0, 9.0):
        t = np.arange(int(seconds * RATE)) / RATE
        out.append((0.3 * np.sin(2 * np.pi * rng.uniform(100, 2000) * t) + 0.05 * rng.standard_normal(t.size))
                   .astype(np.float32))
    return out


def test_clapcap_layout_is_detected_with_its_geometry(clapcap_file, captioner):
    path, config, state = clapcap_file
    assert captioner.config.caption == config.caption
    assert captioner.config.text.hf_config == config.text.hf_config
    assert (captioner.config.audio.depths, captioner.config.audio.num_heads) == ((1, 1, 1, 1), (2, 2, 2, 2))
    loaded = captioner.module.state_dict()
    assert torch.equal(loaded["decoder.wte.weight"], state["gpt.lm_head.weight"])
    assert torch.equal(loaded["mapper.prefix_const"], state["clap_project.prefix_const"])


def test_mlp_mapper_is_read_from_the_keys(tmp_path):
    config = small_captioner_config("mlp")
    network = perturbed_network(config, seed=1)
    torch.save({"model": clapcap.from_clapkit(network.state_dict(), config)}, tmp_path / "mlp.pth")
    model = clapkit.load(tmp_path / "mlp.pth")
    assert model.config.caption == config.caption
    features = torch.randn(1, 1, 1024, 64)
    with torch.inference_mode():
        assert torch.allclose(model.module.prefix(features), network.prefix(features), atol=1e-6)
    assert model.module.prefix(features).shape == (1, 5, 64)


def greedy_without_cache(network, prefix, stop_id, length):
    """Greedy decoding by re-running the whole sequence each step (as msclap does), written independently."""
    sequence, ids = prefix, []
    for _ in range(length):
        hidden = network.decoder(inputs_embeds=sequence).last_hidden_state[:, -1]
        token = int(F.linear(hidden, network.decoder.wte.weight).argmax())
        ids.append(token)
        if token == stop_id:
            break
        sequence = torch.cat((sequence, network.decoder.wte.weight[token][None, None]), dim=1)
    return ids


def test_beam_one_is_greedy_decoding_and_stops_at_the_space(captioner):
    network = captioner.module
    stop_id = stop_token_id(captioner.tokenizer.hf_tokenizer, captioner.config.caption.stop_text)
    assert stop_id == 220
    torch.manual_seed(5)
    with torch.inference_mode():
        for _ in range(4):
            prefix = torch.randn(1, 4, 64)
            expected = greedy_without_cache(network, prefix, stop_id, 30)
            assert beam_search(network, prefix, stop_id, DecodingOptions(1, 30, 1.0)) == expected


def test_beam_search_rules(captioner):
    network = captioner.module
    torch.manual_seed(6)
    prefix = torch.randn(1, 4, 64)
    with torch.inference_mode():
        cut = beam_search(network, prefix, 220, DecodingOptions(5, 3, 1.0))
        full = beam_search(network, prefix, 220, DecodingOptions(5, 67, 1.0))
        assert len(cut) <= 3 and 1 <= len(full) <= 67
        assert full.count(220) <= 1 and (220 not in full or full[-1] == 220)  # the stop token ends a caption
        assert beam_search(network, prefix, 220, DecodingOptions(5, 67, 1.0)) == full  # deterministic


def test_captions_are_deterministic_and_batch_independent(captioner):
    clips = waves()
    together = captioner.caption(clips, sample_rate=RATE, beam_size=3, entry_length=20)
    alone = [captioner.caption([c], sample_rate=RATE, beam_size=3, entry_length=20)[0] for c in clips]
    reversed_order = captioner.caption(clips[::-1], sample_rate=RATE, beam_size=3, entry_length=20)
    assert together == alone == reversed_order[::-1]
    assert all(isinstance(c, str) and c for c in together)
    assert all(c[:1] == c[:1].upper() and c[1:] == c[1:].lower() for c in together)  # str.capitalize


def test_caption_ids_of_long_audio_use_the_first_clip(captioner):
    clip = waves()[2]  # 9 s: clapkit captions the first 7 s (msclap: a random 7 s window)
    options, stop = DecodingOptions(2, 15, 1.0), 220
    assert caption_ids(captioner, [clip], options, stop) == caption_ids(captioner, [clip[: 7 * RATE]], options, stop)


def test_bad_options_and_models_that_cannot_caption(captioner):
    clip = waves()[0]
    with pytest.raises(ConfigError, match="temperature must be > 0"):
        captioner.caption([clip], sample_rate=RATE, temperature=0)
    with pytest.raises(ConfigError, match="beam_size"):
        captioner.caption([clip], sample_rate=RATE, beam_size=0)
    with pytest.raises(ConfigError, match="no text encoder"):
        captioner.embed_text(["a dog"])
    from tests.small_models import small_config

    clap = ClapPipeline(ClapNetwork(small_config()), small_config())
    with pytest.raises(ConfigError, match="cannot write captions"):
        clap.caption([clip], sample_rate=RATE)


def test_saved_captioner_round_trips(captioner, tmp_path, tokenizer_dir):
    captioner.save(tmp_path / "saved")
    again = clapkit.load(tmp_path / "saved", tokenizer=tokenizer_dir)
    assert again.config == captioner.config
    clip = waves()[0]
    assert again.caption([clip], sample_rate=RATE, entry_length=10) == captioner.caption([clip], sample_rate=RATE,
                                                                                        entry_length=10)


def test_caption_command_skips_bad_files(clapcap_file, tokenizer_dir, tmp_path, capsys):
    from clapkit.cli import main

    good = []
    for i, clip in enumerate(waves()[:2]):
        good.append(tmp_path / f"clip{i}.wav")
        write_audio(good[-1], clip, RATE)
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"not audio at all")
    command = ["caption", *map(str, good), str(bad), "--model", str(clapcap_file[0]), "--tokenizer",
               str(tokenizer_dir), "--entry-length", "8", "--quiet"]
    assert main([*command, "--json"]) == 0
    done = capsys.readouterr()
    lines = [json.loads(line) for line in done.out.splitlines()]
    assert [row["path"] for row in lines] == [str(p) for p in good]
    assert all(row["caption"] for row in lines)
    assert "broken.wav" in done.err and "skipped 1 input" in done.err
    assert main(command) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["path", "caption"] and len(table) == 3
    assert main([*command[:3], "--model", "default"]) == 2
    assert "cannot write captions" in capsys.readouterr().err
