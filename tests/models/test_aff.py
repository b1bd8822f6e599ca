"""Attentional feature fusion: LAION key layout, the fusion formula, and the local-chunk embedding."""

from __future__ import annotations

import torch
from torch import nn

from clapkit.models.aff import AFF, fuse_local_chunks


def randomise_batch_norm(module: nn.Module) -> None:
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.5)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)


def test_keys_match_laion_aff_2d() -> None:
    keys = list(AFF(channels=96).state_dict())
    expected = []
    for branch, convs, norms in (("local_att", (0, 3), (1, 4)), ("global_att", (1, 4), (2, 5))):
        for conv, norm in zip(convs, norms, strict=True):
            expected += [f"{branch}.{conv}.weight", f"{branch}.{conv}.bias"]
            expected += [f"{branch}.{norm}.{n}" for n in ("weight", "bias", "running_mean", "running_var",
                                                          "num_batches_tracked")]
    assert keys == expected
    assert AFF(channels=96).state_dict()["local_att.0.weight"].shape == (24, 96, 1, 1)


def test_equal_inputs_give_twice_the_input() -> None:
    torch.manual_seed(0)
    aff = AFF(channels=16).eval()
    randomise_batch_norm(aff)
    x = torch.randn(2, 16, 5, 7)
    with torch.no_grad():
        assert torch.allclose(aff(x, x), 2 * x, atol=1e-6)


def test_output_is_a_weighted_mix_of_the_inputs() -> None:
    torch.manual_seed(1)
    aff = AFF(channels=16).eval()
    randomise_batch_norm(aff)
    x, residual = torch.randn(3, 16, 4, 4), torch.randn(3, 16, 4, 4)
    with torch.no_grad():
        out = aff(x, residual)
        # out / 2 = w * x + (1 - w) * residual with 0 < w < 1: it lies between the two inputs
        low, high = torch.minimum(x, residual), torch.maximum(x, residual)
        assert (out / 2 >= low - 1e-6).all() and (out / 2 <= high + 1e-6).all()
        assert not torch.allclose(out, x + residual, atol=1e-3)  # not a plain sum: weights vary
        # eval mode: batch items are independent
        assert torch.allclose(aff(x[1:2], residual[1:2]), out[1:2], atol=1e-6)


def test_batch_of_one_trains() -> None:
    aff = AFF(channels=8).train()
    out = aff(torch.randn(1, 8, 3, 3), torch.randn(1, 8, 3, 3))
    out.sum().backward()
    assert out.shape == (1, 8, 3, 3)
    assert aff.global_att[1].weight.grad is not None


def test_local_chunks_lie_side_by_side_and_are_zero_padded() -> None:
    torch.manual_seed(2)
    conv = nn.Conv2d(1, 6, kernel_size=(4, 12), stride=(4, 12))
    chunks = torch.randn(2, 3, 256, 256)
    with torch.no_grad():
        fused = fuse_local_chunks(conv, chunks, width=64)
        middle = conv(chunks[1, 1][None, None])[0]  # (6, 64, 21)
    assert fused.shape == (2, 6, 64, 64)
    assert torch.allclose(fused[1, :, :, 21:42], middle, atol=1e-6)
    assert (fused[..., 63] == 0).all()  # 3 x 21 = 63 columns, padded to 64
    assert fuse_local_chunks(conv, chunks, width=40).shape == (2, 6, 64, 40)


def test_one_block_fuses_sequences_with_laions_1d_keys() -> None:
    two, one = AFF(channels=16), AFF(channels=16, dims=1)
    assert list(one.state_dict()) == list(two.state_dict())  # LAION's AFF(type='1D') has the 2-D layout's keys
    assert one.state_dict()["local_att.0.weight"].shape == (4, 16, 1)
    x, residual = torch.randn(3, 16, 20), torch.randn(3, 16, 20)
    one.eval()
    with torch.no_grad():
        weight = torch.sigmoid(one.local_att(x + residual) + one.global_att(x + residual))
        assert torch.allclose(one(x, residual), 2 * x * weight + 2 * residual * (1 - weight))
