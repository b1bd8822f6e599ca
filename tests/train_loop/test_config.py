"""TrainConfig: YAML/JSON round trips, command-line overrides, type coercion and clear errors."""

from __future__ import annotations

import dataclasses
import json

import pytest

from clapkit.cli import main
from clapkit.errors import ConfigError
from clapkit.train.config import TrainConfig, apply_overrides


def custom_config() -> TrainConfig:
    return TrainConfig.from_dict({
        "data": {"train": "train.jsonl", "val": "val.jsonl", "captions": {"p_original": 0.5}, "num_workers": 3},
        "model": {"name": "laion-pann6", "freeze_text": True, "overrides": {"frontend": {"clip_samples": 96000}}},
        "optim": {"lr": 3e-4, "betas": [0.9, 0.98], "grad_clip_norm": 1.0, "accumulation_steps": 2},
        "batch_size": 64, "max_steps": 123, "local_loss": True, "distributed": "fsdp", "seed": 11,
    })


@pytest.mark.parametrize("suffix", [".yaml", ".yml", ".json"])
def test_save_and_load_round_trip(tmp_path, suffix):
    config = custom_config()
    path = config.save(tmp_path / f"run{suffix}")
    loaded = TrainConfig.from_file(path)
    assert loaded == config
    assert loaded.optim.betas == (0.9, 0.98)  # a tuple again, as the dataclass declares
    if suffix == ".json":
        assert json.loads(path.read_text())["model"]["overrides"] == {"frontend": {"clip_samples": 96000}}


def test_yaml_scientific_notation_and_null_are_read_by_field_type(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("optim:\n  lr: 5e-4\n  grad_clip_norm: null\nmax_steps: '200'\nlocal_loss: yes\n")
    config = TrainConfig.from_file(path)
    assert config.optim.lr == 5e-4 and isinstance(config.optim.lr, float)
    assert config.optim.grad_clip_norm is None
    assert config.max_steps == 200 and config.local_loss is True


def test_overrides_in_both_spellings():
    config = apply_overrides(custom_config(), [
        "optim.lr=1e-3", "--max_steps", "7", "--optim.warmup-steps=3", "model.freeze_audio=true",
        "--model.overrides.audio.spec_augment", "false", "data.val=null", "--optim.betas", "[0.8, 0.9]",
    ])
    assert config.optim.lr == 1e-3
    assert config.max_steps == 7
    assert config.optim.warmup_steps == 3
    assert config.model.freeze_audio is True
    assert config.model.overrides == {"frontend": {"clip_samples": 96000}, "audio": {"spec_augment": False}}
    assert config.data.val is None
    assert config.optim.betas == (0.8, 0.9)
    assert config.batch_size == 64  # untouched keys keep their values


@pytest.mark.parametrize(("overrides", "message"), [
    (["optim.lrr=1"], "lrr"),
    (["bogus=1"], "bogus"),
    (["optim.lr=fast"], "optim.lr"),
    (["batch_size=2.5"], "batch_size"),
    (["precision=fp8"], "precision"),
    (["--max_steps"], "no value"),
    (["max_steps"], "key=value"),
    (["optim.lr.x=1"], "optim.lr"),
    (["keep_last=0"], "keep_last"),
])
def test_bad_overrides_name_the_key(overrides, message):
    with pytest.raises(ConfigError, match=message):
        apply_overrides(TrainConfig(), overrides)


def test_bad_files_are_clear(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        TrainConfig.from_file(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("optim: [1, 2\n")
    with pytest.raises(ConfigError, match="bad.yaml"):
        TrainConfig.from_file(bad)
    unknown = tmp_path / "unknown.json"
    unknown.write_text('{"optim": {"learning_rate": 1}}')
    with pytest.raises(ConfigError, match="learning_rate"):
        TrainConfig.from_file(unknown)


def test_train_command_prints_the_resolved_config(tmp_path, capsys):
    path = custom_config().save(tmp_path / "c.yaml")
    assert main(["train", "--print-config", "optim.lr=2e-4", "--config", str(path), "--seed", "5"]) == 0
    printed = capsys.readouterr().out
    import yaml

    resolved = TrainConfig.from_dict(yaml.safe_load(printed))
    expected = custom_config()
    assert resolved == expected.replace(seed=5, optim=dataclasses.replace(expected.optim, lr=2e-4))


def test_train_command_without_data_fails_cleanly(tmp_path, capsys):
    assert main(["train", f"output_dir={tmp_path / 'out'}"]) == 2
    assert "no training data" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
