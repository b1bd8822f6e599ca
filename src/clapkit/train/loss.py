"""The losses of CLAP training: contrastive (CLIP/LAION) and sigmoid (SigLIP).

Contrastive: symmetric cross-entropy over audio-text similarities with a learnable temperature.

For a batch of N pairs with L2-normalised audio embeddings ``a_i`` and text embeddings ``t_j`` and the exp'd logit
scale ``s`` (init 1/0.07, at most 100), ``logits[i, j] = s * a_i . t_j`` and

    loss = ( CE(logits, diag) + CE(logits.T, diag) ) / 2

where ``CE`` is the mean cross-entropy of each row against its matching column. Across ranks the embeddings are
gathered WITH gradients (:func:`gather_with_grad`), so every rank's embeddings get the gradient of the whole batch's
loss. ``local_loss=True`` computes only this rank's rows (its audio against every text, its texts against every audio):
the same loss on average over ranks and the same gradients, with logits of ``local x global`` instead of
``global x global`` (LAION/open_clip's ``--local-loss``).

The temperature is clamped twice, as in CLIP/LAION: the loss never uses a scale above ``max_logit_scale`` and, after
each optimizer step, :func:`clamp_logit_scale_` puts the stored log scale back into ``[0, log(max_logit_scale)]``.

Sigmoid (Zhai et al. 2023, "Sigmoid Loss for Language Image Pre-Training"): every audio-text pair of the global batch
is a binary decision, ``z_ij = +1`` for the matching pair (i = j) and ``-1`` otherwise, with a learnable scale ``s``
(stored as a log, init log 10) and bias ``b`` (init -10):

    loss = -1/N * sum_ij log sigmoid( z_ij * (s * a_i . t_j + b) )

normalised as SigLIP does (summed over all N x N pairs, divided by the number of audio rows N; big_vision's
``mean over rows of the sum over columns``). Across ranks the text embeddings are all-gathered with gradients and each
rank scores its own audio rows against every text (local x global logits): the same pairs and gradients as
open_clip's neighbour exchange, in one collective. Each rank returns its share ``world_size / N_global * sum of its
rows``, so the mean over ranks (what DDP's gradient averaging optimises) is the global loss.
"""

from __future__ import annotations

import math

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

MAX_LOGIT_SCALE = 100.0


class _GatherWithGrad(torch.autograd.Function):
    """All-gather along dim 0 (rows may differ in number per rank); backward sums every rank's gradient of the
    gathered tensor and returns this rank's rows, so the gradient is that of the sum of all ranks' losses."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor, sizes: list[int], rank: int) -> torch.Tensor:  # type: ignore[override]
        ctx.sizes, ctx.rank = sizes, rank
        largest = max(sizes)
        padded = tensor.new_zeros((largest, *tensor.shape[1:]))
        padded[: tensor.shape[0]] = tensor
        parts = [torch.empty_like(padded) for _ in sizes]
        dist.all_gather(parts, padded.contiguous())
        return torch.cat([part[:size] for part, size in zip(parts, sizes, strict=True)])

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        grad = grad.contiguous().clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        start = sum(ctx.sizes[: ctx.rank])
        return grad[start : start + ctx.sizes[ctx.rank]], None, None


def gathered_sizes(local_size: int, device: torch.device) -> list[int]:
    """Batch size of every rank (one tiny all-gather)."""
    size = torch.tensor([local_size], device=device, dtype=torch.long)
    sizes = [torch.zeros_like(size) for _ in range(dist.get_world_size())]
    dist.all_gather(sizes, size)
    return [int(s.item()) for s in sizes]


def gather_with_grad(tensor: torch.Tensor, sizes: list[int] | None = None) -> torch.Tensor:
    """Concatenate ``tensor`` of every rank along dim 0, in rank order, keeping gradients to this rank's rows.

    Works with gloo (CPU) and nccl; ranks may hold different numbers of rows. Without an initialised process group
    (or with one rank) it returns ``tensor`` itself.
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return tensor
    if sizes is None:
        sizes = gathered_sizes(tensor.shape[0], tensor.device)
    return _GatherWithGrad.apply(tensor, sizes, dist.get_rank())


def contrastive_loss(
    audio_embeddings: torch.Tensor,
    text_embeddings: torch.Tensor,
    logit_scale: torch.Tensor,
    *,
    local_loss: bool = False,
    max_logit_scale: float = MAX_LOGIT_SCALE,
) -> torch.Tensor:
    """Symmetric cross-entropy of matching audio-text pairs, over the global batch when a process group is running.

    ``audio_embeddings``/``text_embeddings``: (N_local, D), L2-normalised, row i of one matches row i of the other.
    ``logit_scale``: the exp'd temperature (a scalar tensor), clamped at ``max_logit_scale`` here.
    Returns a scalar: on one process the loss of the batch; on several, with ``local_loss=False``, the loss of the
    global batch (the same on every rank); with ``local_loss=True``, this rank's share, such that the mean over ranks
    is the global loss (each rank's rows are weighted by ``world_size / N_global``).
    """
    if audio_embeddings.shape != text_embeddings.shape or audio_embeddings.ndim != 2:
        raise ValueError(
            f"contrastive loss needs audio and text embeddings of the same (N, D) shape, got "
            f"{tuple(audio_embeddings.shape)} and {tuple(text_embeddings.shape)}"
        )
    scale = logit_scale.clamp(max=max_logit_scale)
    distributed = dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1
    if not distributed:
        logits = scale * audio_embeddings @ text_embeddings.T
        labels = torch.arange(logits.shape[0], device=logits.device)
        return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2

    sizes = gathered_sizes(audio_embeddings.shape[0], audio_embeddings.device)
    all_audio = gather_with_grad(audio_embeddings, sizes)
    all_text = gather_with_grad(text_embeddings, sizes)
    total = sum(sizes)
    if not local_loss:
        logits = scale * all_audio @ all_text.T
        labels = torch.arange(total, device=logits.device)
        return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2
    rank, world_size = dist.get_rank(), dist.get_world_size()
    start = sum(sizes[:rank])
    labels = torch.arange(start, start + sizes[rank], device=audio_embeddings.device)
    audio_to_text = scale * audio_embeddings @ all_text.T
    text_to_audio = scale * text_embeddings @ all_audio.T
    summed = F.cross_entropy(audio_to_text, labels, reduction="sum") + F.cross_entropy(
        text_to_audio, labels, reduction="sum"
    )
    return summed * (world_size / (2 * total))


class ContrastiveLoss(nn.Module):
    """:func:`contrastive_loss` as a module (holds ``local_loss`` and ``max_logit_scale``)."""

    def __init__(self, local_loss: bool = False, max_logit_scale: float = MAX_LOGIT_SCALE):
        super().__init__()
        self.local_loss = local_loss
        self.max_logit_scale = max_logit_scale

    def forward(
        self, audio_embeddings: torch.Tensor, text_embeddings: torch.Tensor, logit_scale: torch.Tensor
    ) -> torch.Tensor:
        return contrastive_loss(
            audio_embeddings,
            text_embeddings,
            logit_scale,
            local_loss=self.local_loss,
            max_logit_scale=self.max_logit_scale,
        )


def sigmoid_loss(
    audio_embeddings: torch.Tensor,
    text_embeddings: torch.Tensor,
    logit_scale: torch.Tensor,
    logit_bias: torch.Tensor,
    *,
    max_logit_scale: float = MAX_LOGIT_SCALE,
) -> torch.Tensor:
    """SigLIP's pairwise sigmoid loss over the global batch (see the module docstring).

    ``logit_scale``: the exp'd scale (clamped at ``max_logit_scale``); ``logit_bias``: the additive bias. On one
    process the loss of the batch; on several, this rank's share (mean over ranks = the global batch's loss).
    """
    if audio_embeddings.shape != text_embeddings.shape or audio_embeddings.ndim != 2:
        raise ValueError(
            f"sigmoid loss needs audio and text embeddings of the same (N, D) shape, got "
            f"{tuple(audio_embeddings.shape)} and {tuple(text_embeddings.shape)}"
        )
    scale = logit_scale.clamp(max=max_logit_scale)
    local = audio_embeddings.shape[0]
    distributed = dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1
    start, weight, all_text = 0, 1.0 / local, text_embeddings
    if distributed:
        sizes = gathered_sizes(local, audio_embeddings.device)
        all_text = gather_with_grad(text_embeddings, sizes)
        start = sum(sizes[: dist.get_rank()])
        weight = dist.get_world_size() / sum(sizes)
    logits = scale * audio_embeddings @ all_text.T + logit_bias
    labels = -torch.ones_like(logits)
    rows = torch.arange(local, device=logits.device)
    labels[rows, start + rows] = 1.0
    return -F.logsigmoid(labels * logits).sum() * weight


class SigmoidLoss(nn.Module):
    """:func:`sigmoid_loss` as a module (holds ``max_logit_scale``)."""

    def __init__(self, max_logit_scale: float = MAX_LOGIT_SCALE):
        super().__init__()
        self.max_logit_scale = max_logit_scale

    def forward(
        self,
        audio_embeddings: torch.Tensor,
        text_embeddings: torch.Tensor,
        logit_scale: torch.Tensor,
        logit_bias: torch.Tensor,
    ) -> torch.Tensor:
        return sigmoid_loss(
            audio_embeddings, text_embeddings, logit_scale, logit_bias, max_logit_scale=self.max_logit_scale
        )


@torch.no_grad()
def clamp_logit_scale_(module: nn.Module, max_logit_scale: float = MAX_LOGIT_SCALE) -> None:
    """Put every ``logit_scale*`` parameter (stored as a log) back into ``[0, log(max_logit_scale)]``, in place."""
    upper = math.log(max_logit_scale)
    for name, parameter in module.named_parameters():
        if name.rsplit(".", 1)[-1].startswith("logit_scale"):
            parameter.clamp_(0.0, upper)
