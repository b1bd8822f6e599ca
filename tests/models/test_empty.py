"""Building a model for a checkpoint without random weights first (``clapkit.models.empty``)."""

from __future__ import annotations

import threading

import torch
from torch import nn

import clapkit
from clapkit.checkpoints.io import load_state_dict_strict
from clapkit.models.clap import ClapNetwork
from clapkit.models.empty import on_meta, parameters_on_meta
from clapkit.registry import get_config


def test_parameters_go_to_meta_and_buffers_stay_real():
    with parameters_on_meta():
        module = ClapNetwork(get_config("laion-htsat-tiny"))
    assert all(p.is_meta for p in module.parameters())
    index = dict(module.named_buffers())["audio_tower.layers.0.blocks.0.attn.relative_position_index"]
    assert not index.is_meta and index.max() > 0  # computed in __init__, kept
    assert nn.Linear(2, 2).weight.device.type == "cpu"  # outside the block: as usual


def test_assigned_weights_give_the_same_model():
    torch.manual_seed(0)
    reference = ClapNetwork(get_config("clapkit-default")).eval()
    state = {k: v.half() if v.is_floating_point() else v for k, v in reference.state_dict().items()}
    with parameters_on_meta():
        module = ClapNetwork(get_config("clapkit-default"))
    load_state_dict_strict(module, state, "test", assign=True)
    module.eval()
    assert on_meta(module) == [] and all(p.dtype == torch.float32 for p in module.parameters())
    assert all(p.requires_grad for p in module.parameters())
    features = torch.randn(2, 1, 64, 96)
    ids = torch.tensor([[101, 2000, 3000, 102], [101, 2500, 102, 0]])
    with torch.no_grad():
        for ours, theirs in ((module.encode_audio(features), reference.encode_audio(features)),
                             (module.encode_text(ids, ids.ne(0)), reference.encode_text(ids, ids.ne(0)))):
            assert (ours - theirs).abs().max() < 2e-3  # fp16 round trip of the weights only


def test_other_threads_are_not_affected():
    built, entered, release = {}, threading.Event(), threading.Event()

    def hold():
        with parameters_on_meta():
            entered.set()
            release.wait(30)

    holder = threading.Thread(target=hold)
    holder.start()
    entered.wait(30)
    built["other"] = nn.Linear(3, 3)
    release.set()
    holder.join()
    assert built["other"].weight.device.type == "cpu"
    assert nn.Module.register_parameter.__module__ == "torch.nn.modules.module"  # restored afterwards


def test_load_of_the_default_model_leaves_nothing_on_meta():
    model = clapkit.load("default")
    assert on_meta(model.module) == []
