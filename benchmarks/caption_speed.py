"""Captions per second on CPU: clapkit's ``model.caption`` beside msclap 1.3.4's ``generate_caption``, same weights.

    .venv/bin/python benchmarks/caption_speed.py [--clips 3] [--beam-size 5] [--entry-length 67] [--threads 2]

clapkit builds the real-size captioner (``ms-clap-clapcap``: HTSAT-tiny, transformer mapper, GPT-2 124M) with
random weights and writes it in msclap's layout; msclap (the reference environment, ``.venv-ref``) loads that file
with ``CLAPWrapper(version='clapcap')`` offline (GPT-2 built from its config; a byte-level vocabulary padded to
GPT-2's 50257 tokens). Both caption the same 7 s clips (files at 44.1 kHz, so neither resamples). A random GPT-2
rarely emits the stop token, so every caption runs to ``entry_length`` tokens: the worst case for both. The table
gives seconds per caption, captions per second, and whether the captions are identical.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "parity"))

GPT2_SMALL = {"n_positions": 1024, "n_embd": 768, "n_layer": 12, "n_head": 12}
VOCAB = 50257


def make_clips(directory: Path, count: int) -> list[str]:
    import numpy as np
    import soundfile as sf

    paths = []
    for i in range(count):
        rng = np.random.default_rng(i)
        t = np.arange(7 * 44100) / 44100
        wave = 0.3 * np.sin(2 * np.pi * (200 + 150 * i) * t) + 0.05 * rng.standard_normal(t.size)
        paths.append(str(directory / f"clip{i}.wav"))
        sf.write(paths[-1], wave.astype("float32"), 44100, subtype="FLOAT")
    return paths


def msclap_worker(args: argparse.Namespace) -> None:
    """In .venv-ref: time msclap's generate_caption on the clips, one call per clip."""
    from reference_clapcap import install_offline

    install_offline(Path(args.tokenizer), VOCAB, GPT2_SMALL)
    import torch
    from msclap.CLAPWrapper import CLAPWrapper

    torch.set_num_threads(args.threads)
    wrapper = CLAPWrapper(model_fp=args.weights, version="clapcap", use_cuda=False)
    captions, seconds = [], []
    for path in args.clips:
        start = time.perf_counter()
        captions += wrapper.generate_caption([path], resample=True, beam_size=args.beam_size,
                                             entry_length=args.entry_length)
        seconds.append(time.perf_counter() - start)
    print(json.dumps({"captions": captions, "seconds": seconds}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clips", type=int, default=3)
    parser.add_argument("--beam-size", type=int, default=5)
    parser.add_argument("--entry-length", type=int, default=67)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip-msclap", action="store_true")
    parser.add_argument("--msclap-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--weights", help=argparse.SUPPRESS)
    parser.add_argument("--tokenizer", help=argparse.SUPPRESS)
    parser.add_argument("--clip-paths", dest="clips_given", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.msclap_worker:
        args.clips = args.clips_given
        msclap_worker(args)
        return

    import torch
    from gpt2_vocab import write_gpt2_tokenizer

    import clapkit
    from clapkit.checkpoints import clapcap

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        write_gpt2_tokenizer(tmp / "gpt2", vocab_size=VOCAB)
        torch.manual_seed(0)
        random_model = clapkit.load("ms-clap-clapcap", weights="random")
        weights = tmp / "clapcap_random.pth"
        torch.save({"model": clapcap.from_clapkit(random_model.module.state_dict(), random_model.config)}, weights)
        del random_model
        model = clapkit.load(weights, tokenizer=tmp / "gpt2")
        clips = make_clips(tmp, args.clips)
        ours, our_seconds = [], []
        for path in clips:
            start = time.perf_counter()
            ours += model.caption([path], beam_size=args.beam_size, entry_length=args.entry_length)
            our_seconds.append(time.perf_counter() - start)
        rows = [("clapkit model.caption", our_seconds)]
        same = None
        if not args.skip_msclap:
            python = os.environ.get("CLAPKIT_REF_PYTHON", str(ROOT / ".venv-ref" / "bin" / "python"))
            command = [python, __file__, "--msclap-worker", "--weights", str(weights), "--tokenizer", str(tmp / "gpt2"),
                       "--beam-size", str(args.beam_size), "--entry-length", str(args.entry_length),
                       "--threads", str(args.threads), "--clip-paths", *clips]
            done = subprocess.run(command, capture_output=True, text=True)
            if done.returncode != 0:
                raise SystemExit(f"msclap worker failed:\n{done.stderr[-3000:]}")
            theirs = json.loads(done.stdout.strip().splitlines()[-1])
            rows.append(("msclap generate_caption", theirs["seconds"]))
            same = theirs["captions"] == ours
    print(f"captioning {args.clips} clip(s) of 7 s, beam {args.beam_size}, entry_length {args.entry_length}, "
          f"{args.threads} thread(s), torch {torch.__version__}")
    print(f"{'implementation':26s} {'s/caption':>10s} {'captions/s':>11s}")
    for name, seconds in rows:
        mean = sum(seconds) / len(seconds)
        print(f"{name:26s} {mean:10.2f} {1 / mean:11.3f}")
    if same is not None:
        print(f"identical captions: {same}")


if __name__ == "__main__":
    main()
