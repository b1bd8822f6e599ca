"""Helpers for tests that run ``clapkit train`` in subprocesses (one process, or torchrun)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from safetensors.torch import load_file

from clapkit.train.checkpointing import list_checkpoints
from clapkit.train.config import TrainConfig
from tests.train_loop.tiny import tiny_config_dict

REPO = Path(__file__).resolve().parents[2]


def write_config(directory: Path, name: str, **changes: Any) -> Path:
    output = directory / name
    return TrainConfig.from_dict(tiny_config_dict(str(output), **changes)).save(directory / f"{name}.yaml")


def environment() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.update({"OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", "PYTHONWARNINGS": "ignore"})
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    return env


def train_command(config: Path, processes: int = 1, *overrides: str) -> list[str]:
    if processes == 1:
        return [sys.executable, "-m", "clapkit.cli", "train", "--config", str(config), *overrides]
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}",
            "-m", "clapkit.cli", "train", "--config", str(config), *overrides]


def run_training(config: Path, processes: int = 1, *overrides: str, timeout: float = 600) -> None:
    done = subprocess.run(train_command(config, processes, *overrides), env=environment(), cwd=REPO,
                          capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"training failed:\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}"


def final_weights(output_dir: Path) -> dict:
    checkpoints = list_checkpoints(output_dir)
    assert checkpoints, f"no checkpoint in {output_dir}"
    return load_file(checkpoints[-1][1] / "model.safetensors")
