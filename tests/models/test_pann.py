"""PANN audio towers: shapes, LAION key layout, fusion behaviour, train/eval, gradients.

Numerical parity with laion_clap / msclap needs the reference environment; it is checked by the parity scripts,
not here.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from clapkit.config import AudioTowerConfig
from clapkit.errors import ConfigError
from clapkit.models.augment import SpecAugment, drop_stripes
from clapkit.models.pann import PANN

EMBED_DIMS = {"cnn6": 512, "cnn10": 1024, "cnn14": 2048}


def pann_config(variant: str = "cnn14", **changes) -> AudioTowerConfig:
    return AudioTowerConfig(kind="pann", variant=variant, embed_dim=EMBED_DIMS[variant], **changes)


def log_mel(batch: int, channels: int = 1, frames: int = 64, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, channels, frames, 64, generator=generator)


def layout(config: AudioTowerConfig) -> dict[str, tuple[int, ...]]:
    """State-dict key -> shape, built on the meta device (no memory, no initialisation cost)."""
    with torch.device("meta"):
        return {k: tuple(v.shape) for k, v in PANN(config).state_dict().items()}


def calibrated(model: PANN, channels: int = 1) -> PANN:
    """Set every batch norm's running statistics from one training-mode batch, so eval outputs are O(1).

    A fresh PANN has running mean 0 / variance 1 everywhere and its embeddings are ~1e-3: too small for absolute
    tolerances to mean anything.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # cumulative average: the running statistics become this batch's statistics
    is_longer = torch.tensor([True, False, True, False]) if channels == 4 else None
    with torch.no_grad():
        model.train()(log_mel(4, channels=channels, seed=99), is_longer)
    for norm in norms:
        norm.momentum = 0.1
    return model.eval()


@pytest.fixture(scope="module")
def cnn14() -> PANN:
    torch.manual_seed(0)
    return calibrated(PANN(pann_config("cnn14")))


@pytest.fixture(scope="module")
def cnn14_fusion() -> PANN:
    torch.manual_seed(0)
    return calibrated(PANN(pann_config("cnn14", enable_fusion=True, fusion_type="aff_2d")), channels=4)


@pytest.mark.parametrize("variant", ["cnn6", "cnn10", "cnn14"])
def test_embedding_shape_per_variant(variant: str) -> None:
    model = PANN(pann_config(variant)).eval()
    with torch.inference_mode():
        out = model(log_mel(2, frames=200))
    assert out.shape == (2, EMBED_DIMS[variant])
    assert model.embed_dim == EMBED_DIMS[variant]
    assert torch.isfinite(out).all()
    assert (out >= 0).all()  # the embedding is relu(fc1(.)), as LAION's output_dict["embedding"]


def test_key_counts_match_laion_audio_branch_without_front_end() -> None:
    # laion_clap 1.1.7 audio_branch entries minus its 3 front-end tensors (2 STFT kernels + mel matrix)
    expected = {"cnn6": 33, "cnn10": 69, "cnn14": 81}
    for variant, count in expected.items():
        keys = layout(pann_config(variant)).keys()
        assert len(keys) == count
        assert not any(k.startswith(("spectrogram_extractor.", "logmel_extractor.", "spec_augmenter.")) for k in keys)


def test_cnn14_key_layout(cnn14: PANN) -> None:
    shapes = {k: tuple(v.shape) for k, v in cnn14.state_dict().items()}
    assert shapes["bn0.running_mean"] == (64,)
    assert shapes["conv_block1.conv1.weight"] == (64, 1, 3, 3)
    assert shapes["conv_block6.conv2.weight"] == (2048, 2048, 3, 3)
    assert shapes["conv_block6.bn2.num_batches_tracked"] == ()
    assert shapes["fc1.weight"] == (2048, 2048)
    assert shapes["fc_audioset.weight"] == (527, 2048)
    assert "conv_block7.conv1.weight" not in shapes
    assert list(shapes)[:6] == [
        "bn0.weight",
        "bn0.bias",
        "bn0.running_mean",
        "bn0.running_var",
        "bn0.num_batches_tracked",
        "conv_block1.conv1.weight",
    ]
    assert list(shapes)[6] == "conv_block1.conv2.weight"  # PANN registers conv1, conv2, bn1, bn2


def test_cnn6_and_cnn10_key_layout() -> None:
    cnn6 = layout(pann_config("cnn6"))
    assert cnn6["conv_block4.conv1.weight"] == (512, 256, 5, 5)
    assert "conv_block1.conv2.weight" not in cnn6 and "conv_block5.conv1.weight" not in cnn6
    assert cnn6["fc1.weight"] == (512, 512)
    cnn10 = layout(pann_config("cnn10"))
    assert cnn10["conv_block5.conv2.weight"] == (1024, 1024, 3, 3)
    assert "conv_block6.conv1.weight" not in cnn10
    assert cnn10["fc_audioset.weight"] == (527, 1024)


@pytest.mark.parametrize(
    ("fusion_type", "count", "spots"),
    [
        ("aff_2d", 116, {"mel_conv2d.0.weight": (64, 1, 5, 5), "fusion_model.global_att.5.running_var": (64,)}),
        ("daf_2d", 88, {"mel_conv2d.1.running_mean": (64,)}),
        ("aff_1d", 116, {"mel_conv1d.0.weight": (64, 64, 5), "fusion_model.local_att.0.weight": (16, 64, 1)}),
        ("daf_1d", 88, {"mel_conv1d.1.weight": (64,)}),
        ("channel_map", 81, {"conv_block1.conv1.weight": (64, 4, 3, 3)}),
    ],
)
def test_fusion_key_layout(fusion_type: str, count: int, spots: dict[str, tuple[int, ...]]) -> None:
    shapes = layout(pann_config("cnn14", enable_fusion=True, fusion_type=fusion_type))
    assert len(shapes) == count
    for key, shape in spots.items():
        assert shapes[key] == shape


def test_state_dict_round_trip_is_strict() -> None:
    torch.manual_seed(1)
    source = PANN(pann_config("cnn6")).eval()
    torch.manual_seed(2)
    target = PANN(pann_config("cnn6")).eval()
    target.load_state_dict(source.state_dict(), strict=True)
    features = log_mel(2)
    with torch.inference_mode():
        assert torch.equal(source(features), target(features))


def test_msclap_2022_form_has_no_spec_augment_and_free_fc1_width() -> None:
    # MS-CLAP 2022's Cnn14 = LAION's CNN14 without SpecAugment; fc1 width is its out_emb
    model = PANN(AudioTowerConfig(kind="pann", variant="cnn14", embed_dim=1024, spec_augment=False))
    assert model.spec_augmenter is None
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert shapes["fc1.weight"] == (1024, 2048)
    assert shapes["fc_audioset.weight"] == (527, 1024)
    with torch.inference_mode():
        assert model.eval()(log_mel(2, frames=96)).shape == (2, 1024)


def test_eval_is_deterministic_and_batch_independent(cnn14: PANN) -> None:
    features = log_mel(3)
    with torch.inference_mode():
        first = cnn14(features)
        second = cnn14(features)
        singles = torch.cat([cnn14(features[i : i + 1]) for i in range(3)])
    assert torch.equal(first, second)
    assert (first - singles).abs().max() <= 1e-5 * first.abs().max().clamp(min=1)
    assert (first[0] - first[1]).abs().max() > 1e-1  # different inputs, different embeddings


def test_fusion_eval_batch_independent_with_mixed_longer(cnn14_fusion: PANN) -> None:
    features = log_mel(3, channels=4)
    is_longer = torch.tensor([[True], [False], [True]])
    with torch.inference_mode():
        batch = cnn14_fusion(features, is_longer)
        singles = torch.cat([cnn14_fusion(features[i : i + 1], is_longer[i : i + 1]) for i in range(3)])
    assert (batch - singles).abs().max() <= 1e-5 * batch.abs().max().clamp(min=1)


@pytest.mark.parametrize("fusion_type", ["aff_2d", "aff_1d"])
def test_fusion_ignores_local_chunks_of_items_that_are_not_longer(fusion_type: str) -> None:
    torch.manual_seed(0)
    model = calibrated(PANN(pann_config("cnn14", enable_fusion=True, fusion_type=fusion_type)), channels=4)
    features = log_mel(2, channels=4)
    other_chunks = features.clone()
    other_chunks[:, 1:] = log_mel(2, channels=3, seed=5)
    is_longer = torch.tensor([True, False])
    with torch.inference_mode():
        out = model(features, is_longer)
        out_other = model(other_chunks, is_longer)
        out_none = model(features, None)  # eval: no item is marked longer at random
    assert torch.equal(out[1], out_other[1])  # short item: only the global channel counts
    assert (out[0] - out_other[0]).abs().max() > 1e-2  # longer item: its local chunks are fused in
    assert torch.equal(out_none[1], out[1])
    assert (out_none[0] - out[0]).abs().max() > 1e-2


def test_fusion_short_items_match_the_unfused_tower(cnn14_fusion: PANN) -> None:
    plain = PANN(pann_config("cnn14")).eval()
    shared = {k: v for k, v in cnn14_fusion.state_dict().items() if k in plain.state_dict()}
    plain.load_state_dict(shared, strict=True)
    features = log_mel(2, channels=4)
    with torch.inference_mode():
        fused = cnn14_fusion(features, torch.tensor([False, False]))
        unfused = plain(features[:, :1])
    assert (fused - unfused).abs().max() <= 1e-5


def test_bad_inputs_are_named(cnn14: PANN, cnn14_fusion: PANN) -> None:
    with pytest.raises(ValueError, match=r"\(B, 1, T, 64\)"):
        cnn14(log_mel(1, channels=4))
    with pytest.raises(ValueError, match=r"\(B, 4, T, 64\)"):
        cnn14_fusion(log_mel(1))
    with pytest.raises(ValueError, match="is_longer"):
        cnn14_fusion(log_mel(2, channels=4), torch.tensor([True]))


def test_bad_configs_are_rejected() -> None:
    with pytest.raises(ConfigError, match="variant"):
        PANN(AudioTowerConfig(kind="pann", variant="cnn22"))
    with pytest.raises(ConfigError, match="cnn14 only"):
        PANN(pann_config("cnn10", enable_fusion=True))
    with pytest.raises(ConfigError, match="fusion_type"):
        PANN(pann_config("cnn14", enable_fusion=True, fusion_type="iaff_2d"))


def test_training_mode_is_stochastic_and_eval_is_not() -> None:
    torch.manual_seed(0)
    model = calibrated(PANN(pann_config("cnn6")))
    features = log_mel(2)
    model.train()
    with torch.no_grad():
        a, b = model(features), model(features)
    assert (a - b).abs().max() > 1e-2
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(features), model(features))


def test_spec_augment_drops_bounded_stripes_in_training_only() -> None:
    augment = SpecAugment()
    x = torch.ones(16, 2, 300, 64)
    torch.manual_seed(0)
    out = augment.train()(x)
    dropped = out == 0
    assert torch.equal(dropped[:, 0], dropped[:, 1])  # same stripes for every channel of an item
    assert dropped.any()
    full_frames = dropped[:, 0].all(dim=2).sum(dim=1)  # time stripes zero whole frames
    full_bins = dropped[:, 0].all(dim=1).sum(dim=1)  # frequency stripes zero whole mel bins
    assert (full_frames <= 2 * 63).all() and (full_bins <= 2 * 7).all()
    assert torch.equal(augment.eval()(x), x)


def test_drop_stripes_widths_and_ranges() -> None:
    torch.manual_seed(0)
    mask = drop_stripes(batch=500, length=20, max_width=8, stripes=1, device=torch.device("cpu"))
    widths = mask.sum(dim=1)
    assert widths.max() <= 7 and widths.min() == 0
    # stripes start in [0, length - width) as torchlibrosa's: they reach the first bin but never the last one
    assert mask[:, 0].any() and mask[:, -2].any() and not mask[:, -1].any()


def test_gradients_reach_every_layer_used() -> None:
    torch.manual_seed(0)
    model = PANN(pann_config("cnn10")).train()
    model(log_mel(2, frames=64)).square().sum().backward()
    for name, parameter in model.named_parameters():
        if name.startswith("fc_audioset."):
            assert parameter.grad is None  # the tagging head is kept for checkpoints only
        else:
            assert parameter.grad is not None and torch.isfinite(parameter.grad).all(), name
            assert parameter.grad.abs().sum() > 0, name


def test_fusion_layers_train_even_when_no_item_is_longer() -> None:
    # LAION marks one random item of an all-short batch as longer in training, so the fusion layers get gradients
    torch.manual_seed(0)
    model = PANN(pann_config("cnn14", enable_fusion=True, fusion_type="aff_2d")).train()
    model(log_mel(2, channels=4, frames=64), torch.tensor([False, False])).sum().backward()
    assert model.mel_conv2d[0].weight.grad is not None
    assert model.mel_conv2d[0].weight.grad.abs().sum() > 0
    assert model.fusion_model.local_att[0].weight.grad.abs().sum() > 0
