"""The sound-effects CNN of aiSFX (Ma & Lerch, ISMIR 2022), the audio tower of the clapkit default model.

Four blocks of (3x3 conv, batch norm, ReLU) x 2 with widths 64/128/256/512 (the DCASE cross-task baseline "CNN9"),
2x2 max pooling after the first three; the clip embedding is the block-4 feature map averaged over mel bins, then
max-pooled over time (512-d). It is fully convolutional: any number of frames >= 8 gives one 512-d vector.
aiSFX trained it on professional sound-effects libraries (UCS categories) from 96-band log-compressed mels of 44.1 kHz
audio (``AudioFrontendConfig(scaling="log10_1p")``); ``clapkit.checkpoints.aisfx`` converts its released weights.

State-dict keys: ``conv_block{1..4}.{conv1,conv2,bn1,bn2}.*``, aiSFX's ``embedding_net.*`` keys without the prefix.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from clapkit.config import AudioTowerConfig
from clapkit.errors import AudioError, ConfigError
from clapkit.models.augment import SpecAugment
from clapkit.models.pann import ConvBlock

SFXCNN_VARIANTS: dict[str, tuple[int, ...]] = {"cnn8": (64, 128, 256, 512)}
MIN_FRAMES = 8  # three 2x2 poolings


class SfxCNN(nn.Module):
    """``forward(features (B, 1, T, n_mels) or (B, T, n_mels), is_longer=None) -> (B, 512)``."""

    def __init__(self, config: AudioTowerConfig):
        super().__init__()
        if config.variant not in SFXCNN_VARIANTS:
            raise ConfigError(f"unknown sfxcnn variant {config.variant!r}; known: {sorted(SFXCNN_VARIANTS)}")
        if config.enable_fusion:
            raise ConfigError("the sfxcnn tower has no feature fusion: it takes any length directly")
        widths = SFXCNN_VARIANTS[config.variant]
        if config.embed_dim != widths[-1]:
            raise ConfigError(f"sfxcnn {config.variant} embeds to {widths[-1]} dimensions, not {config.embed_dim}")
        self.config = config
        self.embed_dim = widths[-1]
        # ~43 frames/s at 44.1 kHz, hop 1024: narrower time stripes than PANN's 64 (at 100 frames/s)
        self.spec_augmenter = (SpecAugment(time_drop_width=16, time_stripes=2, freq_drop_width=8, freq_stripes=2)
                               if config.spec_augment else None)
        self.block_names = [f"conv_block{i}" for i in range(1, len(widths) + 1)]
        in_channels = 1
        for name, width in zip(self.block_names, widths):
            self.add_module(name, ConvBlock(in_channels, width, kernel_size=3, num_convs=2))
            in_channels = width

    def forward(self, features: Tensor, is_longer: Tensor | None = None) -> Tensor:
        x = features[:, None] if features.dim() == 3 else features
        if x.dim() != 4 or x.shape[1] != 1:
            raise AudioError("features",
                             f"sfxcnn takes (B, 1, frames, mels) or (B, frames, mels), got {tuple(x.shape)}")
        if x.shape[2] < MIN_FRAMES:
            raise AudioError("features", f"{x.shape[2]} frames is too short for sfxcnn (needs >= {MIN_FRAMES})")
        if self.spec_augmenter is not None:
            x = self.spec_augmenter(x)
        last = self.block_names[-1]
        if not self.training and not torch.is_grad_enabled():
            return self._inference(x)
        for name in self.block_names:
            x = getattr(self, name)(x, pool=name != last, max_pool=True)
        return x.mean(dim=3).amax(dim=2)

    def _inference(self, x: Tensor) -> Tensor:
        """The same function for evaluation without autograd, faster on CPU: channels-last (NHWC) tensors, for which
        oneDNN's 3x3 convolutions run ~1.3-1.5x faster here (benchmarks/default_model.py), with each batch norm
        folded into its convolution's weights and bias (equal to ~1e-6)."""
        x = x.contiguous(memory_format=torch.channels_last)
        layers = self._folded_layers()
        for index, (weight, bias) in enumerate(layers):
            if index == 0 and torch.is_autocast_enabled("cpu"):
                # under bf16 autocast (clapkit.fast "bf16") the input layer stays fp32: rounding the log-mel input to
                # bf16 costs the most (held-out decisions changed 10 -> 6 of 637) and this layer is ~0.3 % of the work
                with torch.autocast("cpu", enabled=False):
                    x = F.relu_(F.conv2d(x, weight, bias, padding=weight.shape[-1] // 2))
                continue
            x = F.relu_(F.conv2d(x, weight, bias, padding=weight.shape[-1] // 2))
            if index % 2 == 1 and index < len(layers) - 1:
                x = F.max_pool2d(x, kernel_size=2)
        return x.float().mean(dim=3).amax(dim=2)  # pooled in fp32 also under bf16 autocast (a no-op in fp32)

    def _folded_layers(self) -> list[tuple[Tensor, Tensor]]:
        """(weight, bias) of each convolution with its batch norm folded in, channels-last; cached until any weight
        or statistic changes (an in-place update bumps a tensor's version, a new tensor has a new address)."""
        blocks = [getattr(self, name) for name in self.block_names]
        pairs = [pair for b in blocks for pair in ((b.conv1, b.bn1), (b.conv2, b.bn2))]
        tensors = [t for conv, bn in pairs for t in (conv.weight, bn.weight, bn.bias, bn.running_mean, bn.running_var)]
        key = tuple((t.data_ptr(), t._version, t.device, t.dtype) for t in tensors)
        cached = getattr(self, "_folded_cache", None)
        if cached is None or cached[0] != key:
            layers = []
            for conv, bn in pairs:
                scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
                weight = (conv.weight * scale[:, None, None, None]).contiguous(memory_format=torch.channels_last)
                layers.append((weight, bn.bias - bn.running_mean * scale))
            cached = self._folded_cache = (key, layers)
        return cached[1]
