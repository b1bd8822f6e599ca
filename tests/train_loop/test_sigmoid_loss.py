"""The sigmoid (SigLIP) loss: against a direct formula on one process and over 2 gloo processes, the trainer on 2 DDP
processes against one process on the same global batch, and a short run that learns a tiny synthetic task."""

from __future__ import annotations

import math

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import clapkit
from clapkit.errors import ConfigError
from clapkit.train.checkpointing import list_checkpoints
from clapkit.train.config import TrainConfig
from clapkit.train.loop import train
from clapkit.train.loss import SigmoidLoss, sigmoid_loss
from clapkit.train.metrics import read_metrics
from clapkit.train.modeling import add_logit_bias, build_model
from tests.train_loop.runs import final_weights, run_training, write_config
from tests.train_loop.test_loss import embeddings
from tests.train_loop.tiny import tiny_config_dict

pytestmark = pytest.mark.filterwarnings("ignore:Initializing zero-element tensors:UserWarning")


def direct_sigmoid_loss(audio, text, scale, bias):
    """-1/N sum_ij log(1 / (1 + exp(-z_ij (s a_i.t_j + b)))), z = +1 on the diagonal, -1 elsewhere, pair by pair."""
    n = audio.shape[0]
    total = audio.new_zeros(())
    for i in range(n):
        for j in range(n):
            z = 1.0 if i == j else -1.0
            total = total + torch.log(1 / (1 + torch.exp(-z * (scale * torch.dot(audio[i], text[j]) + bias))))
    return -total / n


def direct_gradients(audio, text, scale, bias):
    tensors = [x.detach().clone().requires_grad_(True) for x in (audio, text, scale, bias)]
    loss = direct_sigmoid_loss(*tensors)
    loss.backward()
    return loss.detach(), *(t.grad for t in tensors)


def test_loss_and_gradients_match_the_direct_formula():
    audio, text = embeddings(6, seed=3)
    scale, bias = torch.tensor(7.0, dtype=torch.float64), torch.tensor(-4.0, dtype=torch.float64)
    expected, *grads = direct_gradients(audio, text, scale, bias)
    tensors = [x.clone().requires_grad_(True) for x in (audio, text, scale, bias)]
    loss = SigmoidLoss()(*tensors)
    loss.backward()
    torch.testing.assert_close(loss.detach(), expected, rtol=1e-12, atol=1e-12)
    for got, want in zip((t.grad for t in tensors), grads, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)
    # matched pairs lower the loss; the scale is clamped at 100 like the contrastive one
    assert sigmoid_loss(audio, audio, scale, bias) < sigmoid_loss(audio, audio.flip(0), scale, bias)
    big = torch.tensor(500.0, dtype=torch.float64)
    torch.testing.assert_close(sigmoid_loss(audio, text, big, bias), direct_sigmoid_loss(audio, text, 100.0, bias))
    with pytest.raises(ValueError, match="same \\(N, D\\) shape"):
        sigmoid_loss(audio, text[:3], scale, bias)


SIZES = (3, 5)  # ranks hold different numbers of pairs


def _worker(rank: int, rendezvous: str, out_dir: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{rendezvous}", rank=rank, world_size=2)
    try:
        audio, text = embeddings(sum(SIZES), seed=7)
        mine = slice(sum(SIZES[:rank]), sum(SIZES[: rank + 1]))
        a, t = audio[mine].clone().requires_grad_(True), text[mine].clone().requires_grad_(True)
        s = torch.tensor(9.0, dtype=torch.float64, requires_grad=True)
        b = torch.tensor(-3.0, dtype=torch.float64, requires_grad=True)
        loss = sigmoid_loss(a, t, s, b)
        loss.backward()
        torch.save({"loss": loss.detach(), "audio": a.grad, "text": t.grad, "scale": s.grad, "bias": b.grad},
                   f"{out_dir}/rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_two_gloo_processes_match_the_direct_formula(tmp_path):
    mp.spawn(_worker, args=(str(tmp_path / "rendezvous"), str(tmp_path)), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]
    audio, text = embeddings(sum(SIZES), seed=7)
    expected, g_audio, g_text, g_scale, g_bias = direct_gradients(
        audio, text, torch.tensor(9.0, dtype=torch.float64), torch.tensor(-3.0, dtype=torch.float64))
    assert not torch.allclose(ranks[0]["loss"], ranks[1]["loss"])  # each rank its own rows
    torch.testing.assert_close(torch.stack([r["loss"] for r in ranks]).mean(), expected, rtol=1e-12, atol=1e-12)
    # texts are gathered with gradients: each rank's embeddings get the gradient of the sum of the ranks' losses,
    # i.e. world_size x the global loss's (DDP then averages over ranks); scale and bias: the mean over ranks
    torch.testing.assert_close(torch.cat([r["audio"] for r in ranks]) / 2, g_audio, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(torch.cat([r["text"] for r in ranks]) / 2, g_text, rtol=1e-10, atol=1e-12)
    for key, want in (("scale", g_scale), ("bias", g_bias)):
        torch.testing.assert_close(torch.stack([r[key] for r in ranks]).mean(), want, rtol=1e-10, atol=1e-12)


# ------------------------------------------------------------------------------------------------- the trainer
SIGMOID = {"loss.kind": "sigmoid"}
CHANGES = {"max_steps": 2, "checkpoint_every": 2, "eval_every": 100, "data.factory_args": {"size": 16,
           "max_seconds": 1.6}, "optim.lr": 0.01, "optim.eps": 1.0, "optim.warmup_steps": 0,
           "optim.grad_clip_norm": 5.0, **SIGMOID}  # eps = 1: see test_distributed.py
TOLERANCE = 1e-5


def test_ddp_on_two_processes_matches_one_process(tmp_path):
    one = TrainConfig.from_dict(tiny_config_dict(str(tmp_path / "one"), **CHANGES))
    torch.manual_seed(one.seed)
    config, initial = build_model(one.model)
    add_logit_bias(config, initial)
    train(one)
    expected = final_weights(tmp_path / "one")
    assert expected["logit_bias"].item() != -10.0 and initial.logit_bias.item() == -10.0
    assert initial.logit_scale_a.item() == pytest.approx(math.log(10))
    run_training(write_config(tmp_path, "ddp", **CHANGES), 2)
    got = final_weights(tmp_path / "ddp")
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        if value.is_floating_point() and value.numel() and "running_" not in key:
            assert (got[key] - value).abs().max().item() <= TOLERANCE, key
    losses = [r["loss"] for r in read_metrics(tmp_path / "ddp", "train")]
    assert losses == pytest.approx([r["loss"] for r in read_metrics(tmp_path / "one", "train")], rel=TOLERANCE)
    trained = clapkit.load(list_checkpoints(tmp_path / "ddp")[-1][1])  # records logit_bias, loads strictly
    assert trained.config.logit_bias and trained.module.logit_bias.item() == pytest.approx(got["logit_bias"].item())


def test_a_short_run_learns_a_synthetic_pairing_task():
    """Two linear encoders, 32 classes: "audio" = a class prototype + noise in 24-d, "text" = the class's one-hot.
    Trained with the sigmoid loss (learnable scale and bias from 10 / -10), the loss falls and retrieval on fresh
    samples is far above chance (R@1 1/32)."""
    generator = torch.Generator().manual_seed(0)
    classes, dim = 32, 24
    prototypes = torch.randn(classes, dim, generator=generator)
    audio_encoder, text_encoder = torch.nn.Linear(dim, 16), torch.nn.Linear(classes, 16)
    scale, bias = torch.nn.Parameter(torch.tensor(math.log(10.0))), torch.nn.Parameter(torch.tensor(-10.0))
    params = [*audio_encoder.parameters(), *text_encoder.parameters(), scale, bias]
    optimizer = torch.optim.Adam(params, lr=0.05)

    def pairs(n):
        labels = torch.randperm(classes, generator=generator)[:n]
        audio = prototypes[labels] + 0.5 * torch.randn(n, dim, generator=generator)
        return audio, torch.nn.functional.one_hot(labels, classes).float()

    def embed(audio, text):
        normalize = torch.nn.functional.normalize
        return normalize(audio_encoder(audio), dim=-1), normalize(text_encoder(text), dim=-1)

    losses = []
    for _ in range(150):
        a, t = embed(*pairs(16))
        loss = sigmoid_loss(a, t, scale.exp(), bias)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert sum(losses[-10:]) / 10 < 0.3 * sum(losses[:10]) / 10, losses[::15]
    with torch.no_grad():
        a, t = embed(*pairs(classes))
        recall_at_1 = ((a @ t.T).argmax(1) == torch.arange(classes)).float().mean().item()
    assert recall_at_1 > 0.5  # chance: 1/32
    assert bias.item() != -10.0 and scale.item() != math.log(10.0)  # both learned


def test_unknown_loss_kind_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="loss.kind must be one of"):
        TrainConfig.from_dict(tiny_config_dict(str(tmp_path), **{"loss.kind": "hinge"}))
