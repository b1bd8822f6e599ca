"""Training checkpoints: written atomically every N steps, the last K kept, and enough state to resume EXACTLY.

``OUTPUT/checkpoints/step_00001200/`` holds
  ``config.json`` + ``model.safetensors``  the model (``clapkit.load`` reads the directory as it is),
  ``train_config.yaml``                     the training config of the run,
  ``train_state.pt``                        optimizer, scheduler, grad scaler, step, every rank's RNG states
                                            (Python, numpy, torch CPU and CUDA) and data position; only tensors,
                                            lists, dicts, strings and numbers, so it loads with ``weights_only=True``.
A checkpoint is assembled in a hidden temporary directory and renamed into place, so a crash (even ``kill -9``) never
leaves a half-written ``step_*`` directory; leftovers of interrupted writes are removed at the next save.
"""

from __future__ import annotations

import os
import random
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from clapkit.checkpoints import save_clapkit
from clapkit.config import ModelConfig
from clapkit.errors import CheckpointError
from clapkit.train.config import TrainConfig

STATE_FILE = "train_state.pt"
CONFIG_FILE = "train_config.yaml"
FORMAT_VERSION = 1
_STEP_DIR = re.compile(r"^step_(\d+)$")


def checkpoint_root(output_dir: str | Path) -> Path:
    return Path(output_dir) / "checkpoints"


def list_checkpoints(output_dir: str | Path) -> list[tuple[int, Path]]:
    """Complete checkpoints of a run, oldest first, as (step, directory)."""
    root = checkpoint_root(output_dir)
    if not root.is_dir():
        return []
    found = []
    for path in root.iterdir():
        match = _STEP_DIR.match(path.name)
        if match and (path / STATE_FILE).is_file() and (path / "model.safetensors").is_file():
            found.append((int(match.group(1)), path))
    return sorted(found)


def latest_checkpoint(output_dir: str | Path) -> Path | None:
    found = list_checkpoints(output_dir)
    return found[-1][1] if found else None


def save_checkpoint(output_dir: str | Path, step: int, model_config: ModelConfig, train_config: TrainConfig,
                    model_state: dict[str, torch.Tensor], train_state: dict[str, Any], keep_last: int) -> Path:
    """Write ``step_{step}`` atomically, then delete all but the ``keep_last`` newest checkpoints."""
    root = checkpoint_root(output_dir)
    root.mkdir(parents=True, exist_ok=True)
    for stale in root.glob(".step_*.tmp*"):  # left by a process killed while writing
        shutil.rmtree(stale, ignore_errors=True)
    final = root / f"step_{step:08d}"
    staging = root / f".step_{step:08d}.tmp{os.getpid()}"
    if staging.exists():
        shutil.rmtree(staging)
    save_clapkit(staging, model_config, model_state)
    torch.save({**train_state, "format_version": FORMAT_VERSION, "step": step}, staging / STATE_FILE)
    train_config.save(staging / CONFIG_FILE)
    _fsync_tree(staging)
    if final.exists():  # re-running steps after resuming from an older checkpoint
        retired = root / f".step_{step:08d}.tmp{os.getpid()}.old"
        os.replace(final, retired)
        os.replace(staging, final)
        shutil.rmtree(retired, ignore_errors=True)
    else:
        os.replace(staging, final)
    _fsync_directory(root)
    prune_checkpoints(output_dir, keep_last)
    return final


def prune_checkpoints(output_dir: str | Path, keep_last: int) -> list[Path]:
    """Delete all but the ``keep_last`` newest complete checkpoints; returns the deleted directories."""
    found = list_checkpoints(output_dir)
    doomed = [path for _, path in found[: max(0, len(found) - keep_last)]]
    for path in doomed:
        shutil.rmtree(path, ignore_errors=True)
    return doomed


def load_train_state(checkpoint: str | Path) -> dict[str, Any]:
    path = Path(checkpoint) / STATE_FILE
    if not path.is_file():
        raise CheckpointError(f"{checkpoint}: no {STATE_FILE}; resume from a directory written by clapkit train")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if state.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{path}: training state format {state.get('format_version')} is not "
                              f"{FORMAT_VERSION}; resume with the clapkit version that wrote it")
    return state


def _fsync_tree(directory: Path) -> None:
    for path in directory.iterdir():
        if path.is_file():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())


def _fsync_directory(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# ------------------------------------------------------------------------------------------------------ RNG states
def capture_rng_state() -> dict[str, Any]:
    """This process's Python, numpy and torch (CPU, CUDA) RNG states as weights_only-loadable values."""
    version, internal, gauss = random.getstate()
    kind, keys, position, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": [version, list(internal), gauss],
        "numpy": [kind, torch.from_numpy(np.asarray(keys, dtype=np.int64)), int(position), int(has_gauss),
                  float(cached)],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, position, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), position, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
