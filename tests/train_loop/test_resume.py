"""kill -9 during training, then resume: the same weights as a run that was never interrupted."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import torch

from clapkit.train.checkpointing import list_checkpoints
from clapkit.train.metrics import read_metrics
from tests.train_loop.runs import REPO, environment, final_weights, run_training, train_command, write_config
from tests.train_loop.tiny import tiny_model_overrides

MAX_STEPS = 10


def test_kill_and_resume_reaches_the_uninterrupted_weights(tmp_path):
    # randomness everywhere: crops of clips up to 1.6 s, caption choice, SpecAugment, dropout, drop path, a worker
    changes = {"max_steps": MAX_STEPS, "checkpoint_every": 1, "keep_last": 2, "eval_every": 100,
               "data.num_workers": 1, "data.factory_args": {"size": 16, "max_seconds": 1.6},
               "model.overrides": tiny_model_overrides(dropout=0.1, spec_augment=True)}
    reference = write_config(tmp_path, "reference", **changes)
    interrupted = write_config(tmp_path, "interrupted", **changes)
    run_training(reference)

    process = subprocess.Popen(train_command(interrupted), env=environment(), cwd=REPO, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    output = tmp_path / "interrupted"
    deadline = time.monotonic() + 300
    try:
        while not any(step >= 2 for step, _ in list_checkpoints(output)):
            assert process.poll() is None, "training ended before it could be interrupted"
            assert time.monotonic() < deadline, "no checkpoint appeared"
            time.sleep(0.01)
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait()
    assert process.returncode == -signal.SIGKILL
    killed_at = list_checkpoints(output)[-1][0]
    assert killed_at < MAX_STEPS, "the run finished before the kill; nothing was resumed"

    run_training(interrupted)  # resume="auto" continues from the newest complete checkpoint
    expected, resumed = final_weights(tmp_path / "reference"), final_weights(output)
    assert list_checkpoints(output)[-1][0] == MAX_STEPS
    assert expected.keys() == resumed.keys()
    different = [key for key in expected if not torch.equal(expected[key], resumed[key])]
    assert not different, f"resumed weights differ from the uninterrupted run in {different[:5]}"
    # the metrics read as one run: every step once, the same losses
    rows, reference_rows = read_metrics(output, "train"), read_metrics(tmp_path / "reference", "train")
    assert [r["step"] for r in rows] == list(range(1, MAX_STEPS + 1))
    assert [r["loss"] for r in rows] == [r["loss"] for r in reference_rows]
