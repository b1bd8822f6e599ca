"""HTSAT (Chen et al., ICASSP 2022), the Swin-transformer audio tower of LAION-CLAP, with its fusion patch embedding.

Reproduces LAION-CLAP's ``HTSAT_Swin_Transformer`` in eval mode and loads its ``audio_branch`` weights as they are
(same state-dict keys and persistent buffers), except for the STFT/mel extractors: clapkit's front end is separate, so
the tower takes the log-mel in dB, (B, 1, T, n_mels), or for fusion models the stacked views (B, 4, T, n_mels)
``[global, front, middle, back]`` with ``is_longer`` (B,) saying which clips have real local chunks.

Pipeline: batch norm over mel bins, SpecAugment (training only), the time axis stretched to ``spec_size * freq_ratio``
frames and folded into ``freq_ratio`` stacked strips (a ``spec_size`` square image), 4x4 patches (plus the attentional
fusion of the local chunks for longer clips), four Swin stages, layer norm, and the mean over all tokens: LAION's
``output_dict["embedding"]`` (the classifier head ``tscam_conv``/``head`` is kept for checkpoint round trips only).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from clapkit.config import AudioTowerConfig
from clapkit.errors import ConfigError
from clapkit.models.aff import AFF, fuse_local_chunks
from clapkit.models.augment import SpecAugment
from clapkit.models.swin import SwinStage

FUSION_TYPES = ("aff_2d",)
LONG_INPUTS = ("error", "msclap_crops")
# msclap's HTSAT (MS-CLAP 2023) hard-codes its evaluation crops of inputs longer than the image: 689 frames every 344
MSCLAP_CROP_FRAMES = 689
MSCLAP_CROP_HOP = 344

# LAION's create_htsat_model geometry; ``embed_dim`` is the pooled width, htsat_embed_dim * 2 ** (stages - 1)
HTSAT_GEOMETRY: dict[str, dict] = {
    "tiny": {"htsat_embed_dim": 96, "depths": (2, 2, 6, 2), "num_heads": (4, 8, 16, 32), "embed_dim": 768},
    "base": {"htsat_embed_dim": 128, "depths": (2, 2, 12, 2), "num_heads": (4, 8, 16, 32), "embed_dim": 1024},
    "large": {"htsat_embed_dim": 256, "depths": (2, 2, 12, 2), "num_heads": (4, 8, 16, 32), "embed_dim": 2048},
}


def htsat_config(variant: str = "tiny", **changes) -> AudioTowerConfig:
    """``AudioTowerConfig`` for HTSAT tiny/base/large (LAION geometry); ``changes`` override any field."""
    if variant not in HTSAT_GEOMETRY:
        raise ConfigError(f"unknown HTSAT variant {variant!r}; known: {sorted(HTSAT_GEOMETRY)}")
    return AudioTowerConfig(kind="htsat", variant=variant, **{**HTSAT_GEOMETRY[variant], **changes})


class PatchEmbed(nn.Module):
    """4x4 patch embedding of the spectrogram image, with LAION's 2-D fusion branch (``mel_conv2d`` + AFF) for longer
    clips. Returns tokens (B, L, C) in the window order of the first Swin block (windows of ``window_size`` patches).

    ``proj`` is LAION's stride-4 conv; it is applied as one matrix product over patches gathered straight into window
    order (same sums, and no channels-first map to transpose)."""

    def __init__(self, image_size: int, patch_size: int, embed_dim: int, window_size: int, fusion: bool = False):
        super().__init__()
        self.patch_size = patch_size
        self.grid = image_size // patch_size
        self.window_size = min(window_size, self.grid)
        self.proj = nn.Conv2d(1, embed_dim, kernel_size=patch_size, stride=patch_size)
        self.norm = nn.LayerNorm(embed_dim)
        self.fusion = fusion
        if fusion:
            self.mel_conv2d = nn.Conv2d(1, embed_dim, kernel_size=(patch_size, 3 * patch_size),
                                        stride=(patch_size, 3 * patch_size))
            self.fusion_model = AFF(channels=embed_dim, r=4)

    def forward(self, image: Tensor, longer: Tensor | None = None) -> Tensor:
        """image: (B, 1 or 4, S, S); longer: indices of the clips whose local chunks (channels 1-3) are fused."""
        batch, p, w = image.shape[0], self.patch_size, self.window_size
        windows = self.grid // w
        patches = image[:, 0].reshape(batch, windows, w, p, windows, w, p).permute(0, 1, 4, 2, 5, 3, 6)
        weight = self.proj.weight.view(self.proj.out_channels, p * p)
        tokens = F.linear(patches.reshape(-1, p * p), weight, self.proj.bias).view(batch, self.grid**2, -1)
        if self.fusion and longer is not None and longer.numel() > 0:
            maps = self._token_map(tokens[longer])
            local = fuse_local_chunks(self.mel_conv2d, image[longer, 1:], self.grid)
            tokens = tokens.index_copy(0, longer, self._map_tokens(self.fusion_model(maps, local)))
        return self.norm(tokens)

    def _token_map(self, tokens: Tensor) -> Tensor:
        """Window-ordered tokens (K, L, C) -> patch map (K, C, grid, grid)."""
        count, _, dim = tokens.shape
        w, windows = self.window_size, self.grid // self.window_size
        grid = tokens.view(count, windows, windows, w, w, dim).permute(0, 5, 1, 3, 2, 4)
        return grid.reshape(count, dim, self.grid, self.grid)

    def _map_tokens(self, patch_map: Tensor) -> Tensor:
        """Patch map (K, C, grid, grid) -> window-ordered tokens (K, L, C)."""
        count, dim = patch_map.shape[:2]
        w, windows = self.window_size, self.grid // self.window_size
        tokens = patch_map.view(count, dim, windows, w, windows, w).permute(0, 2, 4, 3, 5, 1)
        return tokens.reshape(count, self.grid**2, dim)


class HTSAT(nn.Module):
    """HTSAT audio tower: log-mel (B, C, T, n_mels) -> pooled embedding (B, ``num_features``).

    ``config.enable_fusion`` with ``fusion_type='aff_2d'`` builds LAION's fusion model (C = 4); otherwise C = 1.
    """

    def __init__(self, config: AudioTowerConfig):
        super().__init__()
        self.config = config
        stages = len(config.depths)
        if len(config.num_heads) != stages:
            raise ConfigError(f"HTSAT depths {config.depths} and num_heads {config.num_heads} differ in length")
        if config.long_input not in LONG_INPUTS or (config.long_input != "error" and config.enable_fusion):
            raise ConfigError(f"HTSAT long_input {config.long_input!r} must be one of {LONG_INPUTS} (and 'error' with "
                              "fusion)")
        if config.enable_fusion and config.fusion_type not in FUSION_TYPES:
            raise ConfigError(f"HTSAT fusion_type {config.fusion_type!r} is not supported; supported: {FUSION_TYPES}")
        if config.spec_size % config.n_mels:
            raise ConfigError(f"HTSAT spec_size {config.spec_size} is not a multiple of n_mels {config.n_mels}")
        self.num_features = config.htsat_embed_dim * 2 ** (stages - 1)
        if config.embed_dim != self.num_features:
            raise ConfigError(f"HTSAT embed_dim {config.embed_dim} must be htsat_embed_dim * 2 ** (stages - 1) = "
                              f"{self.num_features}")
        self.fusion = config.enable_fusion
        self.freq_ratio = config.spec_size // config.n_mels
        grid = config.spec_size // config.patch_size
        for i in range(stages):
            size = grid // 2**i
            if size % min(config.window_size, size) or (i < stages - 1 and size % 2):
                raise ConfigError(f"HTSAT stage {i} patch grid {size} does not tile into windows of "
                                  f"{config.window_size} or halve for patch merging")

        self.bn0 = nn.BatchNorm2d(config.n_mels)
        self.spec_augmenter = SpecAugment() if config.spec_augment else None
        self.patch_embed = PatchEmbed(config.spec_size, config.patch_size, config.htsat_embed_dim, config.window_size,
                                      fusion=self.fusion)
        rates = torch.linspace(0, config.drop_path_rate, sum(config.depths)).tolist()
        self.layers = nn.ModuleList()
        for i, (depth, heads) in enumerate(zip(config.depths, config.num_heads, strict=True)):
            size = grid // 2**i
            first = sum(config.depths[:i])
            self.layers.append(SwinStage(config.htsat_embed_dim * 2**i, (size, size), depth, heads, config.window_size,
                                         drop_path_rates=rates[first : first + depth], downsample=i < stages - 1))
        for stage, following in zip(self.layers, list(self.layers[1:]) + [None], strict=True):
            stage.link(None if following is None else following.input_order())
        self.norm = nn.LayerNorm(self.num_features)
        head_rows = config.spec_size // 2 ** (stages - 1) // config.patch_size // self.freq_ratio
        self.tscam_conv = nn.Conv2d(self.num_features, config.num_classes, kernel_size=(head_rows, 3), padding=(0, 1))
        self.head = nn.Linear(config.num_classes, config.num_classes)
        self.apply(_init_weights)

    @classmethod
    def from_variant(cls, variant: str = "tiny", **changes) -> HTSAT:
        return cls(htsat_config(variant, **changes))

    def forward(self, features: Tensor, is_longer: Tensor | None = None) -> Tensor:
        """features: log-mel in dB (B, C, T, n_mels), T <= spec_size * freq_ratio (1001 frames for 10 s);
        is_longer: (B,) or (B, 1) bool, fusion models only. Returns (B, num_features)."""
        self._check_features(features)
        longer = self._longer_indices(features, is_longer)
        x = self.bn0(features.transpose(1, 3)).transpose(1, 3)
        if self.training and self.spec_augmenter is not None:
            x = self.spec_augmenter(x)
        if x.shape[2] > self.config.spec_size * self.freq_ratio:  # only with long_input="msclap_crops"
            return self._forward_crops(x)
        return self._embed(x, longer)

    def _embed(self, x: Tensor, longer: Tensor | None = None) -> Tensor:
        """Normalised log-mel (B, C, T <= image frames, F) -> pooled embedding (B, num_features)."""
        x = self.patch_embed(self.spectrogram_image(x), longer)
        for stage in self.layers:
            x = stage(x)
        return self.norm(x).mean(dim=1)

    def _forward_crops(self, x: Tensor) -> Tensor:
        """msclap's HTSAT on more frames than the image holds (after bn0 and SpecAugment, as msclap does).

        Evaluation: crops of 689 frames starting at ``range(0, T - 689 - 1, 344)`` (at 44.1 kHz / hop 320: two crops
        for 8 s = 1103 frames, three for 10 s = 1379 frames), each stretched to the image like any short input; the
        embedding is the mean of the crops' pooled embeddings (msclap averages ``latent_output``). Training: one random
        crop of the image's frame count.
        """
        batch, frames = x.shape[0], x.shape[2]
        if self.training:
            size = self.config.spec_size * self.freq_ratio
            starts = torch.randint(0, frames - size, (batch,)).tolist()  # msclap: randint(0, frames - size - 1)
            return self._embed(torch.stack([item[:, s : s + size] for item, s in zip(x, starts, strict=True)]))
        starts = range(0, frames - MSCLAP_CROP_FRAMES - 1, MSCLAP_CROP_HOP)
        crops = torch.stack([x[:, :, s : s + MSCLAP_CROP_FRAMES] for s in starts], dim=1)  # (B, K, C, 689, F)
        return self._embed(crops.flatten(0, 1)).view(batch, len(starts), -1).mean(dim=1)

    def spectrogram_image(self, x: Tensor) -> Tensor:
        """(B, C, T, F) -> (B, C, spec_size, spec_size): time stretched (bicubic) to ``spec_size * freq_ratio``
        frames, then cut into ``freq_ratio`` consecutive time strips stacked along frequency (LAION's
        ``reshape_wav2img``): ``image[r * F + f, t] = x[r * spec_size + t, f]``."""
        batch, channels, frames, bins = x.shape
        target_frames, target_bins = self.config.spec_size * self.freq_ratio, self.config.spec_size // self.freq_ratio
        if frames < target_frames:
            x = F.interpolate(x, (target_frames, bins), mode="bicubic", align_corners=True)
        if bins < target_bins:
            x = F.interpolate(x, (x.shape[2], target_bins), mode="bicubic", align_corners=True)
        strip = target_frames // self.freq_ratio
        x = x.reshape(batch, channels, self.freq_ratio, strip, target_bins).transpose(3, 4)
        return x.reshape(batch, channels, self.freq_ratio * target_bins, strip)

    def _check_features(self, features: Tensor) -> None:
        if features.ndim != 4:
            raise ValueError(f"HTSAT expects log-mel features (B, C, T, n_mels), got shape {tuple(features.shape)}")
        channels = (1, 4) if self.fusion else (1,)
        limit = self.config.spec_size * self.freq_ratio
        batch, c, frames, bins = features.shape
        if c not in channels:
            raise ValueError(f"HTSAT{' (fusion)' if self.fusion else ''} expects {' or '.join(map(str, channels))} "
                             f"feature channels, got {c}")
        too_long = frames > limit and self.config.long_input == "error"
        if too_long or bins > self.config.spec_size // self.freq_ratio:
            raise ValueError(f"HTSAT takes at most {limit} frames of {self.config.n_mels} mel bins, got "
                             f"{frames}x{bins}; crop or fuse longer audio in the front end")

    def _longer_indices(self, features: Tensor, is_longer: Tensor | None) -> Tensor | None:
        """Indices of the clips whose local chunks are fused. In training, if no clip is longer one is picked at
        random (LAION's rule, so the fusion branch always gets gradients); eval uses ``is_longer`` as given."""
        if not self.fusion:
            return None
        batch = features.shape[0]
        if is_longer is None:
            longer = torch.zeros(batch, dtype=torch.bool, device=features.device)
        else:
            longer = is_longer.reshape(-1).to(device=features.device, dtype=torch.bool)
            if longer.numel() != batch:
                raise ValueError(f"is_longer has {longer.numel()} entries for a batch of {batch}")
        if self.training and not bool(longer.any()):
            longer = longer.clone()
            longer[torch.randint(0, batch, (1,))] = True
        index = torch.nonzero(longer).flatten()
        if index.numel() and features.shape[1] != 4:
            raise ValueError("HTSAT fusion needs 4 feature channels [global, front, middle, back] for longer clips")
        return index


def _init_weights(module: nn.Module) -> None:
    """LAION's initialisation: truncated-normal linear weights (std 0.02), zero biases, unit layer norms."""
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)

