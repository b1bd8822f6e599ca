"""Head kinds of the v2 default model: a linear audio head, an identity text head (MiniLM's space), and the optional
hubness correction (a stored centre subtracted on the text side); configs with a separate text head round-trip."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from clapkit.config import HeadConfig, ModelConfig
from clapkit.errors import ConfigError
from clapkit.models.heads import CentredProjection, build_projection
from clapkit.recipes.headtrain import HeadOptions, Heads, export_state
from clapkit.registry import get_config


def test_identity_linear_and_centred_heads():
    x = torch.randn(3, 8)
    assert torch.equal(build_projection(HeadConfig("identity"), 8, 8)(x), x)
    assert isinstance(build_projection(HeadConfig("linear"), 8, 4), torch.nn.Linear)
    with pytest.raises(ConfigError, match="identity projection head"):
        build_projection(HeadConfig("identity"), 8, 4)
    centred = build_projection(HeadConfig("identity", centre=True), 8, 8)
    assert isinstance(centred, CentredProjection) and set(centred.state_dict()) == {"centre"}
    centred.centre.copy_(torch.full((8,), 0.1))
    assert torch.allclose(centred(x), torch.nn.functional.normalize(x, dim=-1) - 0.1)


def test_separate_text_head_round_trips():
    config = get_config("clapkit-default").replace(joint_dim=384, head=HeadConfig("linear"),
                                                   text_head=HeadConfig("identity", centre=True))
    again = ModelConfig.from_dict(config.to_dict())
    assert again == config and again.text_head.centre
    assert ModelConfig.from_dict({**config.to_dict(), "text_head": None}).text_head is None


@pytest.mark.parametrize("centre", [False, True])
def test_export_folds_standardisation_and_keeps_the_text_side(centre):
    torch.manual_seed(0)
    mean, std = np.random.default_rng(0).normal(size=16), np.random.default_rng(1).uniform(0.5, 2, 16)
    heads = Heads(HeadOptions(centre=centre), mean, std, np.full(6, 0.05), 6)
    state, audio_config, text_config = export_state(heads)
    audio = build_projection(audio_config, 16, 6)
    audio.load_state_dict({k.split(".", 1)[1]: v for k, v in state.items() if k.startswith("audio_projection.")})
    x = torch.randn(5, 16)
    expected = heads.embed_audio(x)
    assert torch.allclose(torch.nn.functional.normalize(audio(x), dim=-1), expected, atol=1e-5)
    text = build_projection(text_config, 6, 6)
    text.load_state_dict({k.split(".", 1)[1]: v for k, v in state.items() if k.startswith("text_projection.")})
    t = torch.randn(4, 6)
    assert torch.allclose(torch.nn.functional.normalize(text(t), dim=-1), heads.embed_text(t), atol=1e-6)
    assert text_config.centre == centre


def _tiny_data(seed: int = 0):
    from clapkit.recipes.headtrain import TrainData

    rng = np.random.default_rng(seed)
    text = rng.normal(size=(4, 8)).astype(np.float32)
    text /= np.linalg.norm(text, axis=1, keepdims=True)
    classes = [f"c{i % 4}" for i in range(24)]
    features = (rng.normal(size=(24, 1, 16)) + np.repeat(np.eye(4, 16) * 3, 6, axis=0)[:, None]).astype(np.float32)
    return TrainData(features=features, captions=[[i % 4] for i in range(24)], classes=classes,
                     packages=["p"] * 24, text=text, mix_features=np.zeros((0, 16), np.float32), mix_captions=[])


def test_input_dropout_only_while_training_and_changes_the_fit():
    from clapkit.recipes.headtrain import train_heads

    base = HeadOptions(steps=30, batch_size=16, warmup=5, p_mix=0.0)
    heads = Heads(HeadOptions(input_dropout=0.5), np.zeros(16), np.ones(16), np.zeros(8), 8)
    x = torch.randn(5, 16)
    heads.train()
    torch.manual_seed(1)
    a, b = heads.embed_audio(x), heads.embed_audio(x)
    assert not torch.allclose(a, b)  # features are dropped at random while training
    heads.eval()
    plain = torch.nn.functional.normalize(heads.audio(x), dim=-1)
    assert torch.equal(heads.embed_audio(x), plain) and torch.equal(heads.embed_audio(x), plain)
    data = _tiny_data()
    no_drop, _ = train_heads(data, base)
    drop, losses = train_heads(data, HeadOptions(**{**base.__dict__, "input_dropout": 0.5}))
    again, losses_again = train_heads(data, HeadOptions(**{**base.__dict__, "input_dropout": 0.5}))
    assert losses == losses_again and torch.equal(drop.audio.weight, again.audio.weight)  # seeded
    assert not torch.allclose(drop.audio.weight, no_drop.audio.weight)
    assert not drop.training
