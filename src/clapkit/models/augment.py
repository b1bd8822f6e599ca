"""SpecAugment (Park et al. 2019) as PANN/LAION apply it: zeroed time and mel-bin stripes, training mode only.
Shared by the HTSAT, PANN and sfxcnn towers."""

from __future__ import annotations

import torch
from torch import Tensor, nn


def drop_stripes(batch: int, length: int, max_width: int, stripes: int, device: torch.device) -> Tensor:
    """Boolean mask (batch, length), True where dropped: ``stripes`` stripes per item of width in [0, max_width)."""
    positions = torch.arange(length, device=device)
    dropped = torch.zeros(batch, length, dtype=torch.bool, device=device)
    for _ in range(stripes):
        width = torch.randint(0, max_width, (batch, 1), device=device)
        start = (torch.rand(batch, 1, device=device) * (length - width).clamp(min=1)).long()
        dropped |= (positions >= start) & (positions < start + width)
    return dropped


class SpecAugment(nn.Module):
    """Zero random time stripes and mel-bin stripes of (B, C, T, n_mels), the same for all channels of an item.

    Active in training mode only. Defaults are PANN's (torchlibrosa SpecAugmentation): 2 time stripes of width < 64
    and 2 frequency stripes of width < 8. Randomness comes from torch's global generator.
    """

    def __init__(
        self, time_drop_width: int = 64, time_stripes: int = 2, freq_drop_width: int = 8, freq_stripes: int = 2
    ):
        super().__init__()
        self.time_drop_width = time_drop_width
        self.time_stripes = time_stripes
        self.freq_drop_width = freq_drop_width
        self.freq_stripes = freq_stripes

    def forward(self, x: Tensor) -> Tensor:
        if not self.training:
            return x
        batch, _, frames, bins = x.shape
        time = drop_stripes(batch, frames, self.time_drop_width, self.time_stripes, x.device)
        freq = drop_stripes(batch, bins, self.freq_drop_width, self.freq_stripes, x.device)
        dropped = time[:, None, :, None] | freq[:, None, None, :]
        return x.masked_fill(dropped, 0.0)
