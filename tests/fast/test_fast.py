"""clapkit.fast: int8 acceleration stays close to fp32, is deterministic, leaves the original alone, and refuses
what it cannot do."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from clapkit.errors import ConfigError
from clapkit.fast import accelerate, quantizable
from clapkit.inference import ClapPipeline
from clapkit.models.clap import ClapNetwork
from clapkit.tokenizers import load_tokenizer
from tests.small_models import small_config

CAPTIONS = ["a dog barks", "rain falls on a metal roof in the night", "a man speaks"]


@pytest.fixture(scope="module")
def model() -> ClapPipeline:
    config = small_config(htsat_embed_dim=32, embed_dim=256, depths=(2, 2, 2, 2), num_heads=(2, 4, 8, 16))
    torch.manual_seed(0)
    return ClapPipeline(ClapNetwork(config), config, load_tokenizer(config.text, None))


@pytest.fixture(scope="module")
def clips() -> np.ndarray:
    rng = np.random.default_rng(0)
    t = np.arange(48000 * 3) / 48000
    tones = np.sin(2 * np.pi * rng.uniform(100, 3000, (4, 1)) * t)
    return (0.05 * rng.standard_normal(tones.shape) + 0.3 * tones).astype(np.float32)


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


@pytest.mark.parametrize("min_features", [1, 192])
def test_int8_audio_close_to_fp32(model, clips, min_features):
    fast = accelerate(model, min_features=min_features)
    reference = model.embed_audio(clips, sample_rate=48000)
    ours = fast.embed_audio(clips, sample_rate=48000)
    assert ours.shape == reference.shape
    assert cosine(reference, ours).min() >= 0.995
    assert np.abs(ours - reference).max() > 0  # really quantised, not a copy


def test_only_eligible_linears_are_quantised_and_original_untouched(model):
    before = {k: v.clone() for k, v in model.module.state_dict().items()}
    fast = accelerate(model, min_features=192)
    tower = fast.module.audio_tower
    quantised = {n for n, m in tower.named_modules() if isinstance(m, torch.ao.nn.quantized.dynamic.Linear)}
    assert quantised == quantizable(model.module.audio_tower, 192) and quantised
    assert all(type(m) is nn.Linear for m in fast.module.text_tower.modules() if isinstance(m, nn.Linear))
    assert not any(isinstance(m, torch.ao.nn.quantized.dynamic.Linear) for m in model.module.modules())
    for key, value in model.module.state_dict().items():
        assert torch.equal(value, before[key])
    assert fast.acceleration == "int8"


def test_accelerated_model_refuses_to_save(model, tmp_path):
    with pytest.raises(ConfigError, match="cannot be saved"):
        accelerate(model).save(tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_text_untouched_by_default_and_close_when_quantised(model):
    exact = accelerate(model).embed_text(CAPTIONS)
    np.testing.assert_array_equal(exact, model.embed_text(CAPTIONS))
    both = accelerate(model, towers=("audio", "text"), min_features=1).embed_text(CAPTIONS)
    assert cosine(model.embed_text(CAPTIONS), both).min() >= 0.99


def test_deterministic_and_batch_size_robust(model, clips):
    fast = accelerate(model)
    first = fast.embed_audio(clips, sample_rate=48000, batch_size=4)
    np.testing.assert_array_equal(first, fast.embed_audio(clips, sample_rate=48000, batch_size=4))
    singles = fast.embed_audio(clips, sample_rate=48000, batch_size=1)
    # the int8 activation range is per call, so batch mates move a clip only within quantisation noise
    assert cosine(first, singles).min() >= 0.999


@pytest.mark.parametrize("kwargs, message", [({"mode": "int4"}, "unknown acceleration mode 'int4'"),
                                             ({"towers": ("vision",)}, "towers must be"),
                                             ({"towers": ()}, "towers must be")])
def test_bad_arguments_raise_clear_errors(model, kwargs, message):
    with pytest.raises(ConfigError, match=message):
        accelerate(model, **kwargs)


def test_load_and_cli_take_fast(tmp_path):
    import clapkit
    from clapkit.checkpoints import save_clapkit
    from clapkit.cli import build_parser

    config = small_config()
    torch.manual_seed(0)
    directory = save_clapkit(tmp_path / "m", config, ClapNetwork(config).state_dict())
    plain, fast = clapkit.load(directory), clapkit.load(directory, fast="int8")
    assert not any(isinstance(m, nn.Linear) and type(m) is not nn.Linear for m in plain.module.modules())
    assert type(fast.module.audio_tower) is type(plain.module.audio_tower)
    quantised = [m for m in fast.module.audio_tower.modules() if "quantized" in type(m).__module__]
    assert quantised
    with pytest.raises(ConfigError):
        clapkit.load(directory, fast="int3")
    args = build_parser().parse_args(["embed", "x.wav", "--fast", "int8", "--out", "o"])
    assert args.fast == "int8" and args.model == "default"
