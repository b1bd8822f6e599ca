"""Throughput of ``clapkit embed``: files/s on N generated ten-second clips, LAION HTSAT-tiny, random weights.

    python benchmarks/embed_throughput.py --clips 200

Writes the clips (48 kHz 16-bit WAV, tone + noise, a fresh seed per clip) to a temporary folder, measures decoding
alone (the worker threads, no model) and then runs the real command in a subprocess:
``clapkit embed DIR --model laion-htsat-tiny-bert --weights random --out STORE`` (the BERT text tower uses the bundled
vocabulary, so no tokenizer is needed). Prints a table; the embed rate is the job's own (model loading excluded).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import soundfile as sf


def write_clips(folder: Path, count: int, seconds: float, rate: int = 48000) -> list[Path]:
    t = np.arange(int(seconds * rate)) / rate
    paths = []
    for i in range(count):
        rng = np.random.default_rng(i)
        x = 0.3 * np.sin(2 * np.pi * rng.uniform(100, 4000) * t) + 0.05 * rng.standard_normal(t.size)
        path = folder / f"clip-{i:04d}.wav"
        sf.write(path, x.astype(np.float32), rate, subtype="PCM_16")
        paths.append(path)
    return paths


def decode_rate(paths: list[Path], model: str, workers: int) -> float:
    from clapkit.jobs import decode_for_model
    from clapkit.registry import get_config

    config = get_config(model)
    started = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(lambda p: decode_for_model(str(p), config), paths))
    return len(paths) / (time.perf_counter() - started)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--model", default="laion-htsat-tiny-bert")
    parser.add_argument("--weights", default="random")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1))
    args = parser.parse_args()
    import torch

    with tempfile.TemporaryDirectory(prefix="clapkit-bench-") as tmp:
        folder = Path(tmp) / "clips"
        folder.mkdir()
        paths = write_clips(folder, args.clips, args.seconds)
        decoded = decode_rate(paths, args.model, args.workers)
        command = [sys.executable, "-m", "clapkit.cli", "embed", str(folder), "--model", args.model,
                   "--weights", args.weights, "--out", str(Path(tmp) / "store"), "--batch-size",
                   str(args.batch_size), "--workers", str(args.workers), "--no-progress"]  # fmt: skip
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True)
        wall = time.perf_counter() - started
        if done.returncode != 0:
            print(done.stderr, file=sys.stderr)
            return done.returncode
        found = re.search(r"embedded (\d+) file\(s\) in ([\d.]+) s \(([\d.]+) files/s\)", done.stderr)
        embedded, job_seconds, rate = int(found[1]), float(found[2]), float(found[3])
    header = ["clips", "clip s", "model", "batch", "workers", "torch threads", "decode only files/s",
              "embed files/s", "job s", "wall s (incl. start-up)"]  # fmt: skip
    row = [embedded, f"{args.seconds:g}", args.model, args.batch_size, args.workers, torch.get_num_threads(),
           f"{decoded:.1f}", f"{rate:.2f}", f"{job_seconds:.1f}", f"{wall:.1f}"]  # fmt: skip
    widths = [max(len(str(h)), len(str(v))) for h, v in zip(header, row)]
    print(" | ".join(str(h).ljust(w) for h, w in zip(header, widths)))
    print("-|-".join("-" * w for w in widths))
    print(" | ".join(str(v).ljust(w) for v, w in zip(row, widths)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
