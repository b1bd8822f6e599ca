"""ClapNetwork: audio tower + text tower + projection heads + temperature(s), as one ``nn.Module``."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from clapkit.config import AudioTowerConfig, ModelConfig
from clapkit.errors import ConfigError
from clapkit.models.heads import build_projection
from clapkit.models.text import TextTower


def build_audio_tower(config: AudioTowerConfig) -> nn.Module:
    if config.kind == "htsat":
        from clapkit.models.htsat import HTSAT

        return HTSAT(config)
    if config.kind == "pann":
        from clapkit.models.pann import PANN

        return PANN(config)
    if config.kind == "sfxcnn":
        from clapkit.models.sfxcnn import SfxCNN

        return SfxCNN(config)
    raise ConfigError(f"unknown audio tower kind {config.kind!r}; known: 'htsat', 'pann', 'sfxcnn'")


class ClapNetwork(nn.Module):
    """Towers and heads. ``encode_audio``/``encode_text`` return L2-normalised joint embeddings.

    Temperatures are stored as logs, as in CLIP/LAION: ``logit_scale_a`` and ``logit_scale_t`` (LAION; the audio one
    is used for audio-text logits) or a single ``logit_scale`` (MS-CLAP). With ``config.logit_bias`` the module also
    holds ``logit_bias`` (SigLIP's sigmoid loss: scale init 10, bias init -10).
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.audio_tower = build_audio_tower(config.audio)
        self.text_tower = TextTower(config.text)
        self.audio_projection = build_projection(config.head, config.audio.embed_dim, config.joint_dim)
        self.text_projection = build_projection(config.text_head or config.head, config.text.width, config.joint_dim)
        init = math.log(1 / 0.07)
        if config.separate_logit_scales:
            self.logit_scale_a = nn.Parameter(torch.tensor(init))
            self.logit_scale_t = nn.Parameter(torch.tensor(init))
        else:
            self.logit_scale = nn.Parameter(torch.tensor(init))
        if config.logit_bias:
            self.logit_bias = nn.Parameter(torch.tensor(-10.0))
            with torch.no_grad():
                for name in ("logit_scale_a", "logit_scale_t", "logit_scale"):
                    if hasattr(self, name):
                        getattr(self, name).fill_(math.log(10.0))

    @property
    def audio_logit_scale(self) -> torch.Tensor:
        """The log temperature used for audio-to-text logits."""
        return self.logit_scale_a if self.config.separate_logit_scales else self.logit_scale

    @property
    def text_logit_scale(self) -> torch.Tensor:
        return self.logit_scale_t if self.config.separate_logit_scales else self.logit_scale

    def audio_features(self, features: torch.Tensor, is_longer: torch.Tensor | None = None) -> torch.Tensor:
        """Projected, un-normalised audio embedding (B, joint_dim)."""
        return self.audio_projection(self.audio_tower(features, is_longer))

    def text_features(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.text_projection(self.text_tower(input_ids, attention_mask))

    def encode_audio(self, features: torch.Tensor, is_longer: torch.Tensor | None = None) -> torch.Tensor:
        return F.normalize(self.audio_features(features, is_longer), dim=-1)

    def encode_text(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        return F.normalize(self.text_features(input_ids, attention_mask), dim=-1)

    def forward(
        self,
        features: torch.Tensor,
        is_longer: torch.Tensor | None,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, ...]:
        """Training forward: (audio_embeddings, text_embeddings, audio_logit_scale.exp(), text_logit_scale.exp()),
        and ``logit_bias`` fifth when the model has one (returned from forward so that DDP/FSDP see it used)."""
        outputs = (
            self.encode_audio(features, is_longer),
            self.encode_text(input_ids, attention_mask),
            self.audio_logit_scale.exp(),
            self.text_logit_scale.exp(),
        )
        # a view, not the leaf itself: DDP's search for used parameters follows grad_fn from the outputs
        return (*outputs, self.logit_bias.view(())) if self.config.logit_bias else outputs


ClapModule = ClapNetwork  # the former name, kept so no public API breaks
