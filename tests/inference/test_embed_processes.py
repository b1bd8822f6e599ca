"""``clapkit embed`` as real processes: killed with SIGKILL and resumed, and sharded over 2 ranks with torchrun."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np

from clapkit.jobs import run_embed_job
from clapkit.store import EmbeddingStore
from tests.audio_fixtures import write_clips


def _embed_command(model_dir, audio, out, batch_size):
    return ["-m", "clapkit.cli", "embed", str(audio), "--model", str(model_dir), "--out", str(out),
            "--batch-size", str(batch_size), "--workers", "1", "--no-progress"]  # fmt: skip


def _environment():
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    env.pop("RANK", None)
    env.pop("WORLD_SIZE", None)
    return env


def test_a_killed_job_resumes_to_the_uninterrupted_store(tmp_path, micro_model, micro_model_dir):
    audio, out = tmp_path / "audio", tmp_path / "store"
    write_clips(audio, 160, seconds=(1.0, 2.0, 0.5))
    batches = 160 // 2
    job = subprocess.Popen([sys.executable, *_embed_command(micro_model_dir, audio, out, 2)], env=_environment(),
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    parts = out / "parts"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and job.poll() is None:
        if parts.is_dir() and len(list(parts.glob("part-*.npz"))) >= 3:
            break
        time.sleep(0.005)
    assert job.poll() is None, f"the job ended before it could be killed: {job.stderr.read().decode()[-2000:]}"
    os.kill(job.pid, signal.SIGKILL)
    job.wait()
    job.stderr.close()
    written = len(list(parts.glob("part-*.npz")))
    assert 3 <= written < batches and not (out / "embeddings.npy").exists()

    resumed = run_embed_job(micro_model, [audio], out, batch_size=2, progress=False)
    assert resumed.merged and resumed.already_done == 2 * written and resumed.embedded == 160 - 2 * written
    reference = run_embed_job(micro_model, [audio], tmp_path / "reference", batch_size=2, progress=False)
    assert reference.stored == 160
    assert (out / "index.csv").read_text() == (tmp_path / "reference" / "index.csv").read_text()
    np.testing.assert_array_equal(EmbeddingStore(out).embeddings, EmbeddingStore(tmp_path / "reference").embeddings)
    assert not list(parts.glob("part-*.npz"))


def test_torchrun_with_two_ranks_gives_the_single_process_store(tmp_path, micro_model, micro_model_dir):
    audio = tmp_path / "audio"
    write_clips(audio, 24, seconds=(1.0, 3.0, 0.5, 2.0))
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "--module"]
    done = subprocess.run([*launcher, *_embed_command(micro_model_dir, audio, tmp_path / "sharded", 3)[1:]],
                          env=_environment(), capture_output=True, text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "rank 0/2" in done.stderr and "rank 1/2" in done.stderr and "24 file(s) in embeddings.npy" in done.stderr
    run_embed_job(micro_model, [audio], tmp_path / "single", batch_size=3, progress=False)
    sharded, single = EmbeddingStore(tmp_path / "sharded"), EmbeddingStore(tmp_path / "single")
    assert sharded.paths == single.paths and len(single) == 24
    np.testing.assert_array_equal(sharded.embeddings, single.embeddings)
