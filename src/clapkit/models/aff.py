"""Attentional feature fusion (Dai et al., WACV 2021) as LAION-CLAP uses it to merge a clip's global view with its
local chunks.

``AFF`` reproduces LAION's ``feature_fusion.AFF`` in 2-D and 1-D (state-dict keys ``local_att.*`` and ``global_att.*``).
``fuse_local_chunks`` is the HTSAT fusion patch embedding's local branch: it embeds the three local chunks of each
longer clip with ``mel_conv2d`` and lays them side by side along time so they line up with the global patch grid.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class AFF(nn.Module):
    """Fuse two maps, (B, C, H, W) with ``dims=2`` or (B, C, T) with ``dims=1``:
    ``2 * x * w + 2 * residual * (1 - w)``, ``w = sigmoid(local + global attention)``.

    The local attention is a per-position bottleneck (1x1 convs, ``channels // r`` wide); the global attention is the
    same bottleneck over the averaged map. LAION's ``AFF(type='2D')`` and ``AFF(type='1D')``, same state-dict keys
    (``local_att.*``, ``global_att.*``). A batch of one is duplicated in training mode (as LAION does) so the batch
    norms see more than one value per channel; in eval mode they use running statistics and it is not needed.
    """

    def __init__(self, channels: int = 64, r: int = 4, dims: int = 2):
        super().__init__()
        if dims not in (1, 2):
            raise ValueError(f"AFF fuses 1-D or 2-D maps, not {dims}-D")
        conv, norm, pool = (nn.Conv2d, nn.BatchNorm2d, nn.AdaptiveAvgPool2d) if dims == 2 else (
            nn.Conv1d, nn.BatchNorm1d, nn.AdaptiveAvgPool1d)
        inter = channels // r

        def bottleneck() -> list[nn.Module]:
            return [conv(channels, inter, kernel_size=1), norm(inter), nn.ReLU(inplace=True),
                    conv(inter, channels, kernel_size=1), norm(channels)]

        self.local_att = nn.Sequential(*bottleneck())
        self.global_att = nn.Sequential(pool(1), *bottleneck())

    def forward(self, x: Tensor, residual: Tensor) -> Tensor:
        mixed = x + residual
        single = self.training and mixed.shape[0] == 1
        if single:
            mixed = torch.cat([mixed, mixed])
        weight = torch.sigmoid(self.local_att(mixed) + self.global_att(mixed))
        if single:
            weight = weight[:1]
        return 2 * x * weight + 2 * residual * (1 - weight)


def fuse_local_chunks(mel_conv2d: nn.Conv2d, chunks: Tensor, width: int) -> Tensor:
    """Embed local chunks (K, n_chunks, H, W) into one (K, C, H', width) map, chunk maps side by side along time.

    Each chunk goes through ``mel_conv2d`` alone (a conv whose time stride is ``n_chunks`` times the global patch
    stride, so the chunks together span about as many patches as the global view). The concatenation is cut or
    zero-padded on the right to ``width`` patches, exactly as LAION's ``PatchEmbed`` does.
    """
    count, n_chunks, height, frames = chunks.shape
    embedded = mel_conv2d(chunks.reshape(count * n_chunks, 1, height, frames))
    _, channels, rows, cols = embedded.shape
    embedded = embedded.view(count, n_chunks, channels, rows, cols).permute(0, 2, 3, 1, 4).reshape(
        count, channels, rows, n_chunks * cols
    )
    if embedded.shape[-1] < width:
        return F.pad(embedded, (0, width - embedded.shape[-1]))
    return embedded[..., :width]
