"""The contrastive loss against a direct computation: one process, and gathered over 2 gloo processes."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from clapkit.train.loss import MAX_LOGIT_SCALE, ContrastiveLoss, clamp_logit_scale_, contrastive_loss


def embeddings(n: int, dim: int = 16, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    audio = torch.nn.functional.normalize(torch.randn(n, dim, generator=generator, dtype=torch.float64), dim=-1)
    text = torch.nn.functional.normalize(audio + 0.8 * torch.randn(n, dim, generator=generator, dtype=torch.float64),
                                         dim=-1)
    return audio, text


def direct_loss(audio: torch.Tensor, text: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """-1/2N sum_i [ log softmax_j(s a_i.t_j)[i] + log softmax_j(s t_i.a_j)[i] ], written out term by term."""
    s = torch.clamp(scale, max=MAX_LOGIT_SCALE)
    n = audio.shape[0]
    total = audio.new_zeros(())
    for i in range(n):
        audio_row = torch.stack([s * torch.dot(audio[i], text[j]) for j in range(n)])
        text_row = torch.stack([s * torch.dot(text[i], audio[j]) for j in range(n)])
        total = total + (audio_row[i] - torch.log(torch.exp(audio_row).sum()))
        total = total + (text_row[i] - torch.log(torch.exp(text_row).sum()))
    return -total / (2 * n)


def direct_gradients(audio, text, scale):
    a, t, s = (x.detach().clone().requires_grad_(True) for x in (audio, text, scale))
    loss = direct_loss(a, t, s)
    loss.backward()
    return loss.detach(), a.grad, t.grad, s.grad


def test_loss_and_gradients_match_the_direct_formula():
    audio, text = embeddings(6)
    scale = torch.tensor(1 / 0.07, dtype=torch.float64)
    expected, grad_audio, grad_text, grad_scale = direct_gradients(audio, text, scale)
    a, t, s = (x.clone().requires_grad_(True) for x in (audio, text, scale))
    loss = ContrastiveLoss()(a, t, s)
    loss.backward()
    torch.testing.assert_close(loss.detach(), expected, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(a.grad, grad_audio, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(t.grad, grad_text, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(s.grad, grad_scale, rtol=1e-10, atol=1e-12)
    assert loss.item() < math.log(6)  # matching pairs are closer than chance: a loss below the uniform log N


def test_loss_is_symmetric_and_lowest_for_aligned_pairs():
    audio, text = embeddings(5, seed=1)
    scale = torch.tensor(20.0, dtype=torch.float64)
    assert contrastive_loss(audio, text, scale).item() == pytest.approx(contrastive_loss(text, audio, scale).item())
    assert contrastive_loss(audio, audio, scale) < contrastive_loss(audio, text, scale)


def test_logit_scale_is_clamped_at_100():
    audio, text = embeddings(4, seed=2)
    at_limit = contrastive_loss(audio, text, torch.tensor(100.0, dtype=torch.float64))
    above = torch.tensor(250.0, dtype=torch.float64, requires_grad=True)
    loss = contrastive_loss(audio, text, above)
    torch.testing.assert_close(loss, at_limit)
    loss.backward()
    assert above.grad.item() == 0.0  # beyond the clamp the temperature gets no gradient

    module = nn.Module()
    module.logit_scale_a = nn.Parameter(torch.tensor(math.log(400.0)))
    module.logit_scale_t = nn.Parameter(torch.tensor(-1.0))
    module.weight = nn.Parameter(torch.tensor(9.0))
    clamp_logit_scale_(module)
    assert module.logit_scale_a.exp().item() == pytest.approx(100.0)
    assert module.logit_scale_t.item() == 0.0
    assert module.weight.item() == 9.0


def test_mismatched_shapes_are_refused():
    audio, text = embeddings(4)
    with pytest.raises(ValueError, match="same"):
        contrastive_loss(audio, text[:3], torch.tensor(10.0))


# ------------------------------------------------------------------------------------------- 2 gloo processes
SIZES = (3, 5)  # ranks hold different numbers of pairs


def _worker(rank: int, world_size: int, rendezvous: str, out_dir: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{rendezvous}", rank=rank, world_size=world_size)
    try:
        audio, text = embeddings(sum(SIZES), seed=7)
        start = sum(SIZES[:rank])
        mine = slice(start, start + SIZES[rank])
        results = {}
        for local_loss in (False, True):
            a = audio[mine].clone().requires_grad_(True)
            t = text[mine].clone().requires_grad_(True)
            s = torch.tensor(1 / 0.07, dtype=torch.float64, requires_grad=True)
            loss = contrastive_loss(a, t, s, local_loss=local_loss)
            loss.backward()
            results[f"local={local_loss}"] = {"loss": loss.detach(), "audio": a.grad, "text": t.grad, "scale": s.grad}
        torch.save(results, f"{out_dir}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_gathered_and_local_loss_on_two_processes_match_the_direct_formula(tmp_path):
    mp.spawn(_worker, args=(2, str(tmp_path / "rendezvous"), str(tmp_path)), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]
    audio, text = embeddings(sum(SIZES), seed=7)
    expected, grad_audio, grad_text, grad_scale = direct_gradients(audio, text, torch.tensor(1 / 0.07,
                                                                                         dtype=torch.float64))
    world_size = 2
    for mode in ("local=False", "local=True"):
        losses = [r[mode]["loss"] for r in ranks]
        if mode == "local=False":  # every rank computes the loss of the whole gathered batch
            for loss in losses:
                torch.testing.assert_close(loss, expected, rtol=1e-12, atol=1e-12)
        else:  # each rank its share; the mean over ranks is the global loss
            assert not torch.allclose(losses[0], losses[1])
            torch.testing.assert_close(torch.stack(losses).mean(), expected, rtol=1e-12, atol=1e-12)
        # gathering with gradients: each rank's embeddings get the gradient of the sum of the ranks' losses,
        # i.e. world_size x the global loss's gradient (DDP then averages parameter gradients over ranks)
        got_audio = torch.cat([r[mode]["audio"] for r in ranks]) / world_size
        got_text = torch.cat([r[mode]["text"] for r in ranks]) / world_size
        torch.testing.assert_close(got_audio, grad_audio, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(got_text, grad_text, rtol=1e-10, atol=1e-12)
        mean_scale_grad = torch.stack([r[mode]["scale"] for r in ranks]).mean()
        torch.testing.assert_close(mean_scale_grad, grad_scale, rtol=1e-10, atol=1e-12)
    assert np.isfinite(expected.item())
