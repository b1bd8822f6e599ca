"""Several processes train like one: torchrun with 2 CPU processes (gloo) gives the same update as one process on the
same global batch, with DDP and with FSDP; batch norm statistics are those of the global batch."""

from __future__ import annotations

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from clapkit.train.checkpointing import load_train_state
from clapkit.train.config import TrainConfig
from clapkit.train.distributed import GlobalBatchNorm, convert_batchnorm
from clapkit.train.loop import train
from clapkit.train.metrics import read_metrics
from clapkit.train.modeling import build_model
from tests.train_loop.runs import final_weights, run_training, write_config
from tests.train_loop.tiny import tiny_config_dict

# the tiny HTSAT's classifier convolution (unused by CLAP) has a zero-size kernel at a 64x64 spectrogram image
pytestmark = pytest.mark.filterwarnings("ignore:Initializing zero-element tensors:UserWarning")


# AdamW's first steps divide each gradient by its own magnitude, which turns float noise in gradients that are zero in
# exact arithmetic (e.g. attention key biases) into full-size updates. eps = 1 keeps the update proportional to the
# gradient, so the comparison sees the gradient's scale and not that noise.
CHANGES = {"max_steps": 2, "checkpoint_every": 2, "eval_every": 100, "data.factory_args": {"size": 16,
           "max_seconds": 1.6}, "optim.lr": 0.01, "optim.eps": 1.0, "optim.warmup_steps": 0,
           "optim.accumulation_steps": 2, "optim.grad_clip_norm": 5.0}
TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def one_process(tmp_path_factory):
    directory = tmp_path_factory.mktemp("one")
    config = TrainConfig.from_dict(tiny_config_dict(str(directory / "run"), **CHANGES))
    torch.manual_seed(config.seed)
    _, initial = build_model(config.model)
    train(config)
    return initial.state_dict(), final_weights(directory / "run"), read_metrics(directory / "run", "train")


def assert_same_update(one_process, output_dir):
    initial, expected, expected_rows = one_process
    got = final_weights(output_dir)
    assert got.keys() == expected.keys()
    moved = max((expected[k] - initial[k]).abs().max().item() for k in expected if expected[k].is_floating_point()
                and expected[k].numel() and "running_" not in k)
    assert moved > 100 * TOLERANCE  # the steps changed the weights far more than the tolerance
    for key, value in expected.items():
        if not value.is_floating_point() or not value.numel():
            assert torch.equal(got[key], value), key
        elif "running_" in key:  # batch-norm statistics are O(100) in dB: compare relatively
            torch.testing.assert_close(got[key], value, rtol=TOLERANCE, atol=TOLERANCE, msg=key)
        else:
            assert (got[key] - value).abs().max().item() <= TOLERANCE, key
    rows = read_metrics(output_dir, "train")
    assert [r["loss"] for r in rows] == pytest.approx([r["loss"] for r in expected_rows], rel=TOLERANCE)
    assert load_train_state(sorted((output_dir / "checkpoints").iterdir())[-1])["world_size"] == 2


def test_ddp_with_local_loss_matches_one_process(one_process, tmp_path):
    config = write_config(tmp_path, "ddp", local_loss=True, **CHANGES)
    run_training(config, 2)
    assert_same_update(one_process, tmp_path / "ddp")


def test_fsdp_matches_one_process(one_process, tmp_path):
    config = write_config(tmp_path, "fsdp", distributed="fsdp", **CHANGES)
    run_training(config, 2)
    assert_same_update(one_process, tmp_path / "fsdp")


# ---------------------------------------------------------------------------------------- batch norm over ranks
def _batchnorm_worker(rank: int, rendezvous: str, out_dir: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{rendezvous}", rank=rank, world_size=2)
    try:
        torch.manual_seed(0)
        x = torch.randn(6, 3, 4, 5) * 3 + 1
        weight = torch.randn(6, 3, 4, 5)
        bn = convert_batchnorm(torch.nn.Sequential(torch.nn.BatchNorm2d(3)))[0]
        assert isinstance(bn, GlobalBatchNorm)
        with torch.no_grad():
            bn.weight.copy_(torch.tensor([0.5, 1.0, 2.0]))
        mine = slice(0, 2) if rank == 0 else slice(2, 6)  # uneven: 2 and 4 items
        local = x[mine].clone().requires_grad_(True)
        out = bn(local)
        (out * weight[mine]).sum().backward()
        torch.save({"out": out.detach(), "grad": local.grad, "weight_grad": bn.weight.grad,
                    "running_mean": bn.running_mean, "running_var": bn.running_var}, f"{out_dir}/bn{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_global_batchnorm_equals_batchnorm_on_the_whole_batch(tmp_path):
    mp.spawn(_batchnorm_worker, args=(str(tmp_path / "rendezvous"), str(tmp_path)), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"bn{r}.pt", weights_only=True) for r in range(2)]
    torch.manual_seed(0)
    x = (torch.randn(6, 3, 4, 5) * 3 + 1).requires_grad_(True)
    weight = torch.randn(6, 3, 4, 5)
    bn = torch.nn.BatchNorm2d(3)
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([0.5, 1.0, 2.0]))
    out = bn(x)
    (out * weight).sum().backward()
    torch.testing.assert_close(torch.cat([r["out"] for r in ranks]), out.detach(), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(torch.cat([r["grad"] for r in ranks]), x.grad, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(ranks[0]["weight_grad"] + ranks[1]["weight_grad"], bn.weight.grad, rtol=1e-5,
                               atol=1e-5)
    for r in ranks:
        torch.testing.assert_close(r["running_mean"], bn.running_mean, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(r["running_var"], bn.running_var, rtol=1e-5, atol=1e-6)
