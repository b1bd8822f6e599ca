"""The family records drive detection, the help text and convert's formats: adding a family is adding a record."""

from __future__ import annotations

import argparse

import pytest
import torch

import clapkit.checkpoints as checkpoints
from clapkit.checkpoints import FAMILIES, FAMILIES_HELP, WRITABLE, CheckpointFamily, load_weights
from clapkit.commands import convert
from clapkit.errors import CheckpointError
from clapkit.registry import get_config


def test_help_and_convert_formats_come_from_the_records():
    assert all(family.title in FAMILIES_HELP for family in FAMILIES)
    assert WRITABLE == tuple(f.name for f in FAMILIES if f.save is not None)
    assert {"laion", "msclap", "hf", "clapkit"} <= set(WRITABLE) and "clapcap" not in WRITABLE
    parser = argparse.ArgumentParser()
    convert.add_parsers(parser.add_subparsers())
    action = next(a for a in parser._subparsers._group_actions[0].choices["convert"]._actions if a.dest == "to")
    assert tuple(action.choices) == WRITABLE
    assert len({f.name for f in FAMILIES}) == len(FAMILIES)


def test_a_new_record_is_detected_without_touching_the_loader(tmp_path, monkeypatch):
    config = get_config("clapkit-default")
    torch.save({"tiny.x": torch.ones(2)}, tmp_path / "new.pt")
    toy = CheckpointFamily(
        "toy", "Toy CLAP", "keys tiny.*", lambda sd: "tiny.x" in sd,
        infer_config=lambda sd, path: config.replace(description=f"detected from {path.name}"),
        to_clapkit=lambda sd, cfg: {"renamed." + k: v for k, v in sd.items()})
    with pytest.raises(CheckpointError, match="unknown checkpoint family"):
        load_weights(tmp_path / "new.pt")
    monkeypatch.setattr(checkpoints, "FAMILIES", (*FAMILIES, toy))
    detected, state = load_weights(tmp_path / "new.pt")
    assert detected.description == "detected from new.pt" and list(state) == ["renamed.tiny.x"]


def test_a_refusing_record_names_the_file_and_the_reason(tmp_path, monkeypatch):
    # a file clapkit recognises but does not load as a CLAP model: its record refuses it with the reason
    torch.save({"model": {"vocoder.conv.weight": torch.zeros(1)}}, tmp_path / "voc.pth")
    vocoder = CheckpointFamily(
        "vocoder", "A vocoder", "keys vocoder.*", lambda sd: any(k.startswith("vocoder.") for k in sd),
        refuse=lambda source: CheckpointError(f"{source}: this is a vocoder, not a CLAP model"))
    monkeypatch.setattr(checkpoints, "FAMILIES", (vocoder, *FAMILIES))
    with pytest.raises(CheckpointError, match=r"voc\.pth: this is a vocoder, not a CLAP model"):
        load_weights(tmp_path / "voc.pth")
