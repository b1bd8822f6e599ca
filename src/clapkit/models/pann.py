"""PANN audio towers (CNN6, CNN10, CNN14) as used by LAION-CLAP and MS-CLAP 2022, fusion-aware.

Input: the log-mel in dB, (B, C, T, n_mels); C=1, or C=4 with feature fusion ([global, front, middle, back]).
Output: the pooled clip embedding LAION calls ``output_dict["embedding"]``: per-frame features (mean over mel bins)
pooled as max + mean over time, then ``relu(fc1(.))`` (dropout 0.5 before and after ``fc1`` in training).

State-dict keys are LAION's ``audio_branch`` keys without its ``spectrogram_extractor.*``/``logmel_extractor.*``
front end (clapkit's front end is separate).  ``fc_audioset`` (AudioSet tagging head) is kept so checkpoints round
trip; it plays no part in the embedding.  MS-CLAP 2022's ``audio_encoder.base`` is the same CNN14 (same key names)
without SpecAugment: ``AudioTowerConfig(kind="pann", variant="cnn14", embed_dim=2048, spec_augment=False)``.

Fusion (LAION, CNN14 only; LAION's CNN6/CNN10 have none): the channels 1..3 of "longer" items are turned into a
local feature map and fused into the global one.  ``aff_2d``/``daf_2d``: after ``conv_block1`` (``mel_conv2d`` +
``fusion_model``); ``aff_1d``/``daf_1d``: on the mel frames before the CNN (``mel_conv1d`` + ``fusion_model``);
``channel_map``: all four channels go into ``conv_block1``.  LAION marks one random item of an all-short batch as
longer (so the fusion layers always get gradients); clapkit does that in training mode only: at evaluation an item's
output depends only on itself and its ``is_longer`` flag.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from clapkit.config import AudioTowerConfig
from clapkit.errors import ConfigError
from clapkit.models.aff import AFF
from clapkit.models.augment import SpecAugment

# variant -> (kernel size, convolutions per block, block widths)
PANN_VARIANTS: dict[str, tuple[int, int, tuple[int, ...]]] = {
    "cnn6": (5, 1, (64, 128, 256, 512)),
    "cnn10": (3, 2, (64, 128, 256, 512, 1024)),
    "cnn14": (3, 2, (64, 128, 256, 512, 1024, 2048)),
}
FUSION_TYPES_2D = ("aff_2d", "daf_2d")
FUSION_TYPES_1D = ("aff_1d", "daf_1d")
FUSION_TYPES = (*FUSION_TYPES_2D, *FUSION_TYPES_1D, "channel_map")
_POOLED_BLOCKS = 5  # blocks after the 5th (CNN14's conv_block6) do not pool


def _init_layer(layer: nn.Module) -> None:
    """PANN's initialisation: Xavier-uniform weights, zero bias."""
    nn.init.xavier_uniform_(layer.weight)
    if getattr(layer, "bias", None) is not None:
        nn.init.zeros_(layer.bias)


class ConvBlock(nn.Module):
    """``num_convs`` x (conv k x k, batch norm, ReLU), then 2x2 average pooling (PANN's ConvBlock / ConvBlock5x5)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, num_convs: int = 2):
        super().__init__()
        padding = kernel_size // 2
        two = num_convs == 2  # registration order as PANN's: conv1, conv2, bn1, bn2
        self.conv1 = nn.Conv2d(in_channels, out_channels, kernel_size, padding=padding, bias=False)
        self.conv2 = nn.Conv2d(out_channels, out_channels, kernel_size, padding=padding, bias=False) if two else None
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.bn2 = nn.BatchNorm2d(out_channels) if two else None
        for conv in (self.conv1, self.conv2):
            if conv is not None:
                _init_layer(conv)

    def forward(self, x: Tensor, pool: bool = True, max_pool: bool = False) -> Tensor:
        x = F.relu_(self.bn1(self.conv1(x)))
        if self.conv2 is not None:
            x = F.relu_(self.bn2(self.conv2(x)))
        if not pool:
            return x
        return F.max_pool2d(x, kernel_size=2) if max_pool else F.avg_pool2d(x, kernel_size=2)


def _fit_length(x: Tensor, length: int, dim: int) -> Tensor:
    """Zero-pad or truncate ``x`` along ``dim`` to ``length``."""
    size = x.shape[dim]
    if size >= length:
        return x.narrow(dim, 0, length)
    pad_shape = list(x.shape)
    pad_shape[dim] = length - size
    return torch.cat([x, x.new_zeros(pad_shape)], dim=dim)


class PANN(nn.Module):
    """CNN6 / CNN10 / CNN14 audio tower; ``forward(features, is_longer) -> (B, embed_dim)``.

    ``config.embed_dim`` is the width of ``fc1`` (LAION: 512 / 1024 / 2048 = the last block's width; MS-CLAP 2022:
    ``out_emb`` = 2048).
    """

    def __init__(self, config: AudioTowerConfig):
        super().__init__()
        if config.variant not in PANN_VARIANTS:
            raise ConfigError(f"unknown PANN variant {config.variant!r}; known: {sorted(PANN_VARIANTS)}")
        kernel_size, num_convs, widths = PANN_VARIANTS[config.variant]
        self.fusion_type: str | None = None
        if config.enable_fusion:
            if config.variant != "cnn14":
                raise ConfigError(f"feature fusion exists for PANN cnn14 only (LAION), not {config.variant!r}")
            if config.fusion_type not in FUSION_TYPES:
                raise ConfigError(f"PANN fusion_type {config.fusion_type!r} is not supported; known: {FUSION_TYPES}")
            self.fusion_type = config.fusion_type
        self.config = config
        self.embed_dim = config.embed_dim
        self.spec_augmenter = SpecAugment() if config.spec_augment else None
        self.bn0 = nn.BatchNorm2d(config.n_mels)
        self.block_names: list[str] = []
        in_channels = 4 if self.fusion_type == "channel_map" else 1
        for index, width in enumerate(widths, start=1):
            name = f"conv_block{index}"
            self.add_module(name, ConvBlock(in_channels, width, kernel_size, num_convs))
            self.block_names.append(name)
            in_channels = width
        self.fc1 = nn.Linear(widths[-1], config.embed_dim)
        self.fc_audioset = nn.Linear(config.embed_dim, config.num_classes)
        _init_layer(self.fc1)
        _init_layer(self.fc_audioset)
        self.fusion_model: nn.Module | None = None
        if self.fusion_type in FUSION_TYPES_1D:
            n_mels = config.n_mels
            self.mel_conv1d = nn.Sequential(nn.Conv1d(n_mels, n_mels, 5, stride=3, padding=2), nn.BatchNorm1d(n_mels))
            if self.fusion_type == "aff_1d":
                self.fusion_model = AFF(channels=n_mels, dims=1)
        elif self.fusion_type in FUSION_TYPES_2D:
            self.mel_conv2d = nn.Sequential(
                nn.Conv2d(1, widths[0], kernel_size=5, stride=(6, 2), padding=2),
                nn.BatchNorm2d(widths[0]),
                nn.ReLU(inplace=True),
            )
            if self.fusion_type == "aff_2d":
                self.fusion_model = AFF(channels=widths[0])

    def forward(self, features: Tensor, is_longer: Tensor | None = None) -> Tensor:
        """features: log-mel in dB (B, C, T, n_mels); is_longer: (B,) or (B, 1) bool, used with fusion only."""
        x = self._check_features(features)
        longer = self._longer_indices(is_longer, x.shape[0], x.device)
        x = self.bn0(x.transpose(1, 3)).transpose(1, 3)  # batch norm over mel bins
        if self.fusion_type in FUSION_TYPES_1D:
            x = self._fuse_frames(x, longer)
        if self.spec_augmenter is not None and self.training:
            x = self.spec_augmenter(x)
        if self.fusion_type in FUSION_TYPES_2D:
            x = self._first_block_fused(x, longer)
        else:
            x = self.conv_block1(x)
        x = F.dropout(x, p=0.2, training=self.training)
        for index, name in enumerate(self.block_names[1:], start=2):
            x = getattr(self, name)(x, pool=index <= _POOLED_BLOCKS)
            x = F.dropout(x, p=0.2, training=self.training)
        x = x.mean(dim=3)  # (B, channels, frames)
        x = x.amax(dim=2) + x.mean(dim=2)
        x = F.dropout(x, p=0.5, training=self.training)
        x = F.relu_(self.fc1(x))
        return F.dropout(x, p=0.5, training=self.training)

    def _check_features(self, features: Tensor) -> Tensor:
        channels = 4 if self.fusion_type is not None else 1
        if features.dim() != 4 or features.shape[1] != channels or features.shape[3] != self.config.n_mels:
            fusion = f"fusion ({self.fusion_type})" if self.fusion_type else "no fusion"
            raise ValueError(
                f"PANN {self.config.variant} with {fusion} expects log-mel features (B, {channels}, T, "
                f"{self.config.n_mels}), got {tuple(features.shape)}"
            )
        return features

    def _longer_indices(self, is_longer: Tensor | None, batch: int, device: torch.device) -> Tensor:
        """Indices of the items whose local chunks are fused (fusion only)."""
        if self.fusion_type is None or self.fusion_type == "channel_map":
            return torch.zeros(0, dtype=torch.long, device=device)
        if is_longer is None:
            longer = torch.zeros(batch, dtype=torch.bool, device=device)
        else:
            longer = is_longer.reshape(-1).to(device=device, dtype=torch.bool)
            if longer.numel() != batch:
                raise ValueError(f"is_longer has {longer.numel()} entries for a batch of {batch}")
        if self.training and not bool(longer.any()):
            longer = longer.clone()  # LAION: mark one random item so the fusion layers are trained every step
            longer[torch.randint(0, batch, (1,), device=device)] = True
        return torch.nonzero(longer).flatten()

    def _fuse_frames(self, x: Tensor, longer: Tensor) -> Tensor:
        """1-D fusion on mel frames: (B, 4, T, F) -> (B, 1, T, F)."""
        global_x = x[:, 0].transpose(1, 2)  # (B, F, T)
        if longer.numel() > 0:
            local = x[longer, 1:]  # (L, 3, T, F)
            count, chunks, frames, bins = local.shape
            local = self.mel_conv1d(local.reshape(count * chunks, frames, bins).transpose(1, 2))  # (L*3, F, T')
            local = local.reshape(count, chunks, bins, -1).transpose(1, 2).flatten(2)  # (L, F, 3*T')
            local = _fit_length(local, frames, dim=2)
            fused = self._fuse(global_x[longer], local)
            global_x = global_x.index_copy(0, longer, fused)
        return global_x.transpose(1, 2)[:, None]

    def _first_block_fused(self, x: Tensor, longer: Tensor) -> Tensor:
        """2-D fusion: conv_block1 on the global channel, fused with ``mel_conv2d`` of the local chunks."""
        global_x = self.conv_block1(x[:, :1])  # (B, C1, T/2, F/2)
        if longer.numel() == 0:
            return global_x
        local = x[longer, 1:]  # (L, 3, T, F)
        count, chunks, frames, bins = local.shape
        local = self.mel_conv2d(local.reshape(count * chunks, 1, frames, bins))  # (L*3, C1, T', F')
        local = local.reshape(count, chunks, *local.shape[1:]).transpose(1, 2).flatten(2, 3)  # (L, C1, 3*T', F')
        local = _fit_length(local, global_x.shape[2], dim=2)
        fused = self._fuse(global_x[longer], local)
        return global_x.index_copy(0, longer, fused)

    def _fuse(self, x: Tensor, residual: Tensor) -> Tensor:
        if self.fusion_model is None:  # daf_*: direct addition
            return x + residual
        return self.fusion_model(x, residual)
