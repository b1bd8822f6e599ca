import pytest
import torch

from clapkit import CheckpointError
from clapkit.checkpoints import laion, load_weights
from clapkit.models.clap import ClapNetwork
from clapkit.registry import get_config


def _laion_keys_for(config_name: str) -> dict[str, torch.Tensor]:
    """A LAION-layout state dict (with the extras LAION files carry) built from our module's weights."""
    module = ClapNetwork(get_config(config_name))
    state = laion.from_clapkit(module.state_dict())
    state["audio_branch.spectrogram_extractor.stft.conv_real.weight"] = torch.zeros(513, 1, 1024)
    state["audio_branch.logmel_extractor.melW"] = torch.zeros(513, 64)
    state["text_transform.sequential.0.weight"] = torch.zeros(512, 512)
    state["text_branch.embeddings.position_ids"] = torch.arange(514)[None]
    return {"module." + k: v for k, v in state.items()}, module


@pytest.mark.parametrize("name", ["laion-htsat-tiny-clip", "laion-pann14-fusion"])
def test_detect_convert_and_invert(name, tmp_path):
    state, module = _laion_keys_for(name)
    assert laion.is_laion(state)
    config = laion.infer_config(state, "x.pt")
    assert (config.audio.kind, config.audio.variant, config.audio.enable_fusion, config.text.kind) == (
        module.config.audio.kind,
        module.config.audio.variant,
        module.config.audio.enable_fusion,
        module.config.text.kind,
    )
    converted = laion.to_clapkit(state)
    ours = module.state_dict()
    assert set(converted) == set(ours)  # extractor, *_transform, position_ids dropped; CLIP qkv split
    assert all(torch.equal(converted[k], ours[k]) for k in ours)
    torch.save({"state_dict": state, "epoch": 1}, tmp_path / "ckpt.pt")
    detected, weights = load_weights(tmp_path / "ckpt.pt")
    assert detected.audio == config.audio and set(weights) == set(ours)


def test_clip_in_proj_is_split_in_q_k_v_order():
    state, _ = _laion_keys_for("laion-htsat-tiny-clip")
    in_proj = state["module.text_branch.resblocks.3.attn.in_proj_weight"]
    converted = laion.to_clapkit(state)
    prefix = "text_tower.model.text_model.encoder.layers.3.self_attn."
    assert torch.equal(converted[prefix + "k_proj.weight"], in_proj[512:1024])


def test_unknown_family_lists_families(tmp_path):
    torch.save({"encoder.weight": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match=r"unknown checkpoint family.*'encoder'.*LAION-CLAP"):
        load_weights(tmp_path / "other.pt")
