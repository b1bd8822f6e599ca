"""HTSAT tower: shapes, LAION state-dict layout, token-order bookkeeping, determinism, fusion and training behaviour."""

from __future__ import annotations

import pytest
import torch

from clapkit.errors import ConfigError
from clapkit.models import swin
from clapkit.models.htsat import HTSAT, htsat_config
from clapkit.models.swin import merge_order, shifted_window_mask, window_order


def log_mel(batch: int, channels: int = 1, frames: int = 1001, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, channels, frames, 64, generator=generator) * 20 - 40


@pytest.fixture(scope="module")
def tiny() -> HTSAT:
    torch.manual_seed(0)
    return HTSAT(htsat_config("tiny")).eval()


@pytest.fixture(scope="module")
def tiny_fusion() -> HTSAT:
    torch.manual_seed(1)
    model = HTSAT(htsat_config("tiny", enable_fusion=True)).eval()
    with torch.no_grad():  # non-trivial batch-norm statistics so the fusion branch is not a near no-op
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.normal_(0, 0.5)
                module.running_var.uniform_(0.5, 1.5)
    return model


def test_tiny_output_shape_and_finite(tiny: HTSAT) -> None:
    with torch.inference_mode():
        out = tiny(log_mel(2))
    assert out.shape == (2, 768)
    assert torch.isfinite(out).all()
    assert tiny.num_features == 768


def test_base_output_shape_and_key_layout() -> None:
    model = HTSAT(htsat_config("base")).eval()
    with torch.inference_mode():
        out = model(log_mel(1, frames=400))  # shorter clips are stretched to 1024 frames
    assert out.shape == (1, 1024)
    sd = model.state_dict()
    assert len(sd) == 284  # LAION base audio_branch: 287 entries minus the 3 extractor weights
    assert sd["layers.2.blocks.11.attn_mask"].shape == (4, 64, 64)
    assert sd["patch_embed.proj.weight"].shape == (128, 1, 4, 4)


def test_state_dict_layout_matches_laion(tiny: HTSAT) -> None:
    sd = tiny.state_dict()
    # LAION tiny audio_branch has 200 entries; clapkit drops the 3 STFT/mel extractor weights
    assert len(sd) == 197
    assert not any(k.startswith(("spectrogram_extractor", "logmel_extractor")) for k in sd)
    assert sd["layers.0.blocks.0.attn.relative_position_bias_table"].shape == (225, 4)
    assert sd["layers.0.blocks.0.attn.relative_position_index"].dtype == torch.int64
    assert sd["layers.0.blocks.1.attn_mask"].shape == (64, 64, 64)
    assert sd["layers.1.blocks.1.attn_mask"].shape == (16, 64, 64)
    assert sd["layers.2.blocks.5.attn_mask"].shape == (4, 64, 64)
    assert "layers.0.blocks.0.attn_mask" not in sd  # unshifted blocks have none
    assert "layers.3.blocks.1.attn_mask" not in sd  # the 8x8 last stage is one window: never shifted
    assert sd["patch_embed.proj.weight"].shape == (96, 1, 4, 4)
    assert sd["layers.2.downsample.reduction.weight"].shape == (768, 1536)
    assert sd["tscam_conv.weight"].shape == (527, 768, 2, 3)
    assert sd["head.weight"].shape == (527, 527)
    assert sd["bn0.running_mean"].shape == (64,)
    assert not any("output_order" in k for k in sd)  # the token gathers are not saved
    assert not any(k.startswith("patch_embed.fusion_model") or "mel_conv2d" in k for k in sd)


def test_fusion_key_layout(tiny_fusion: HTSAT) -> None:
    sd = tiny_fusion.state_dict()
    assert len(sd) == 227
    assert sd["patch_embed.mel_conv2d.weight"].shape == (96, 1, 4, 12)
    assert sd["patch_embed.fusion_model.local_att.0.weight"].shape == (24, 96, 1, 1)
    assert sd["patch_embed.fusion_model.global_att.5.running_var"].shape == (96,)


def test_state_dict_round_trip(tiny: HTSAT) -> None:
    copy = HTSAT(htsat_config("tiny")).eval()
    copy.load_state_dict(tiny.state_dict(), strict=True)
    x = log_mel(1, seed=3)
    with torch.inference_mode():
        assert torch.equal(copy(x), tiny(x))


def test_eval_is_deterministic_and_batch_independent(tiny: HTSAT) -> None:
    x = log_mel(3, seed=4)
    with torch.inference_mode():
        batch = tiny(x)
        alone = [tiny(x[i : i + 1]) for i in range(3)]
        again = tiny(x[2:3])
    assert torch.equal(alone[2], again)
    assert (batch - torch.cat(alone)).abs().max() <= 1e-5


def test_autograd_path_matches_inference_path(tiny: HTSAT) -> None:
    # without autograd, blocks scatter chunks into place and run GELU in place; with it they gather out of place
    x = log_mel(1, seed=10)
    with torch.inference_mode():
        fast = tiny(x)
    with torch.enable_grad():
        recorded = tiny(x.requires_grad_())
    assert recorded.requires_grad
    assert (recorded.detach() - fast).abs().max() <= 1e-6


def test_chunk_size_does_not_change_output(tiny: HTSAT, monkeypatch: pytest.MonkeyPatch) -> None:
    # 7-window chunks straddle clips and the shifted-mask period (64, 16, 4 windows per clip in the first 3 stages)
    x = log_mel(2, seed=11)
    with torch.inference_mode():
        default = tiny(x)
    monkeypatch.setattr(swin, "CHUNK_TOKENS", 7 * 64)
    with torch.inference_mode():
        scattered = tiny(x)  # chunks scattered into the output order
    with torch.enable_grad():
        gathered = tiny(x).detach()  # chunks concatenated, then gathered
    assert (scattered - default).abs().max() <= 1e-5
    assert (gathered - default).abs().max() <= 1e-5


def test_window_order_matches_roll_and_partition() -> None:
    image = torch.arange(16 * 16).view(16, 16)
    rolled = torch.roll(image, shifts=(-4, -4), dims=(0, 1))
    windows = [rolled[r : r + 8, c : c + 8].reshape(-1) for r in (0, 8) for c in (0, 8)]
    assert torch.equal(window_order(16, 16, 8, 4), torch.cat(windows))
    assert torch.equal(window_order(8, 8, 8, 0), torch.arange(64))


def test_merge_order_groups_two_by_two_neighbours() -> None:
    order = merge_order(4, 4, torch.arange(4))
    # merged token 0 takes (0,0), (1,0), (0,1), (1,1); merged token 1 starts at column 2
    assert order[:8].tolist() == [0, 4, 1, 5, 2, 6, 3, 7]


def test_shifted_window_mask_blocks_wrapped_regions() -> None:
    mask = shifted_window_mask(16, 16, 8, 4)
    assert mask.shape == (4, 64, 64)
    assert (mask[0] == 0).all()  # the top-left window holds no wrapped tokens
    assert set(mask[3].unique().tolist()) == {-100.0, 0.0}
    assert torch.equal(mask, mask.transpose(1, 2))


def test_fusion_ignores_local_chunks_of_clips_that_are_not_longer(tiny_fusion: HTSAT) -> None:
    x = log_mel(2, channels=4, seed=5)
    other = x.clone()
    other[:, 1:] = log_mel(2, channels=3, seed=6)
    longer = torch.tensor([True, False])
    with torch.inference_mode():
        out = tiny_fusion(x, longer)
        out_other = tiny_fusion(other, longer)
        global_only = tiny_fusion(x[:, :1])
    # clip 1 (not longer) sees only its global channel; clip 0 (longer) fuses its local chunks
    assert (out[1] - out_other[1]).abs().max() <= 1e-5
    assert (out[1] - global_only[1]).abs().max() <= 1e-5
    assert (out[0] - out_other[0]).abs().max() > 1e-3
    assert (out[0] - global_only[0]).abs().max() > 1e-3


def test_fusion_training_marks_one_clip_longer_when_none_is(tiny_fusion: HTSAT) -> None:
    seen: list[int] = []
    hook = tiny_fusion.patch_embed.fusion_model.register_forward_hook(lambda m, args, out: seen.append(len(out)))
    x = log_mel(2, channels=4, seed=7)
    none = torch.zeros(2, dtype=torch.bool)
    try:
        with torch.no_grad():
            tiny_fusion(x, none)
            assert seen == []  # eval: is_longer is taken as given
            tiny_fusion.train()
            tiny_fusion(x, none)
    finally:
        tiny_fusion.eval()
        hook.remove()
    assert seen == [1]
    assert not none.any()  # the caller's tensor is not modified


def test_spec_augment_only_in_training() -> None:
    torch.manual_seed(2)
    model = HTSAT(htsat_config("tiny", drop_path_rate=0.0))
    x = log_mel(1, seed=8)
    with torch.no_grad():
        model.eval()
        reference = model(x)
        model.train()
        for module in model.modules():  # keep batch norm on running statistics: only SpecAugment differs
            if isinstance(module, torch.nn.BatchNorm2d):
                module.eval()
        torch.manual_seed(0)
        augmented = model(x)
        model.spec_augmenter = None
        plain = model(x)
    assert (plain - reference).abs().max() <= 1e-5
    assert (augmented - reference).abs().max() > 1e-4


def test_gradients_flow(tiny_fusion: HTSAT) -> None:
    tiny_fusion.train()
    try:
        tiny_fusion.zero_grad()
        out = tiny_fusion(log_mel(2, channels=4, seed=9), torch.tensor([True, False]))  # one fused, one not
        out.pow(2).sum().backward()
    finally:
        tiny_fusion.eval()
    for name in ("patch_embed.proj.weight", "patch_embed.mel_conv2d.weight",
                 "patch_embed.fusion_model.local_att.0.weight", "layers.0.blocks.1.attn.relative_position_bias_table",
                 "layers.3.blocks.1.mlp.fc2.weight", "norm.weight", "bn0.weight"):
        grad = tiny_fusion.get_parameter(name).grad
        assert grad is not None and grad.abs().sum() > 0, name
    assert tiny_fusion.tscam_conv.weight.grad is None  # classifier head kept for checkpoints only


def test_config_and_input_errors(tiny: HTSAT) -> None:
    with pytest.raises(ConfigError, match="fusion_type"):
        HTSAT(htsat_config("tiny", enable_fusion=True, fusion_type="iaff_1d"))
    with pytest.raises(ConfigError, match="embed_dim"):
        HTSAT(htsat_config("tiny", embed_dim=512))
    with pytest.raises(ConfigError, match="variant"):
        htsat_config("huge")
    with pytest.raises(ValueError, match="at most 1024 frames"):
        tiny(log_mel(1, frames=1100))
    with pytest.raises(ValueError, match="channels"):
        tiny(log_mel(1, channels=4))
