"""The fast backends (``clapkit.fast.accelerate``) per model family on this CPU: speed, closeness to fp32, decisions.

    OMP_WAIT_POLICY=PASSIVE python benchmarks/fast_path.py --corpus /work/corpus_v2      # ~15 min on 2 cores
    python benchmarks/fast_path.py --rounds 1 --backends bf16 --models default           # quick
    ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 FBGEMM_ENABLE_INSTRUCTIONS=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2 \
        python benchmarks/fast_path.py ...                # as on an AVX2 CPU (docs/performance.md says what each does)

Models: ``default`` (``clapkit.load("default")``: aiSFX CNN8, trained) and ``laion-htsat-tiny`` (LAION HTSAT-tiny,
seed-0 random weights: the architecture of ``benchmarks/compare.py``). For each model, fp32 and every backend are
built once; every round then runs each (backend, batch) once, one after the other (interleaved, so slow spells of a
shared machine hit all alike). Timed: ``embed_waveforms`` (waveform in, front end included). Reported: median and
best clips/s, CPU ms per clip (process time, all threads; the steadiest column on a shared machine), the CPU speed-up
over fp32, the cosine of each clip's embedding to its fp32 embedding (min/mean over the timed clips), build time.

Decisions (``--corpus``, the default model only, whose decisions mean something): the held-out-class clips of the
recipe's fixed split (``clapkit.recipes.corpus.split_corpus``), zero-shot over the held-out labels with prompts "This
is a sound of {label}." (fp32 text); counted: clips whose top class differs between the backend and fp32.

``bf16-autocast`` (not a backend; for the before/after of the fused bf16 path, interleaved in the same rounds): the
``bf16`` backend with ``clapkit.models.fused.BF16`` and ``clapkit.models.swin.BMM_ATTENTION`` off while it runs, i.e.
its linears through ``F.linear`` under autocast with GELU and the residual add as separate passes, and SDPA attention.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

MODELS = ("default", "laion-htsat-tiny")
# the environment variables that cap the instruction set (the emulation of an AVX2 CPU in docs/performance.md)
ISA_CAPS = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "FBGEMM_ENABLE_INSTRUCTIONS", "MKL_ENABLE_INSTRUCTIONS")
BACKENDS = ("fp32", "bf16", "int8", "openvino", "onnxruntime", "onnxruntime-int8", "bf16-autocast")


def load(name: str):
    import clapkit

    if name == "default":
        return clapkit.load("default")
    torch.manual_seed(0)
    return clapkit.load(name, weights="random")


def synthetic(model, count: int, seed: int = 0) -> list[np.ndarray]:
    frontend = model.config.frontend
    rng = np.random.default_rng(seed)
    t = np.arange(frontend.clip_samples) / frontend.sample_rate
    return [(0.05 * rng.standard_normal(t.size) + 0.3 * np.sin(2 * np.pi * rng.uniform(100, 4000) * t))
            .astype(np.float32) for _ in range(count)]


def build(model, backend: str):
    from clapkit.fast import accelerate

    if backend == "fp32":
        return model, 0.0
    start = time.perf_counter()
    with warnings.catch_warnings(), variant(backend):
        warnings.simplefilter("ignore")
        fast = accelerate(model, "bf16" if backend == "bf16-autocast" else backend)
    return fast, time.perf_counter() - start


@contextlib.contextmanager
def variant(backend: str):
    """``bf16-autocast``: the fused bf16 linears and the bf16 batched-product attention off (module docstring)."""
    from clapkit.models import fused, swin

    saved = fused.BF16, swin.BMM_ATTENTION
    if backend == "bf16-autocast":
        fused.BF16, swin.BMM_ATTENTION = False, False
    try:
        yield
    finally:
        fused.BF16, swin.BMM_ATTENTION = saved


def timed(fn) -> tuple[float, float]:
    cpu, wall = time.process_time(), time.perf_counter()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def heldout(corpus: Path, limit: int | None):
    from clapkit.recipes.corpus import ZERO_SHOT_TEMPLATE, read_corpus, readable_label, split_corpus

    split = split_corpus(read_corpus(corpus))
    classes = sorted({readable_label(c) for c in split["heldout"]})
    rows = split["heldout_classes"][:limit] if limit else split["heldout_classes"]
    targets = np.array([classes.index(readable_label(r["class"])) for r in rows])
    return [r["audio"] for r in rows], targets, [ZERO_SHOT_TEMPLATE.format(c) for c in classes]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--backends", nargs="+", default=list(BACKENDS[1:-1]), choices=BACKENDS[1:])
    parser.add_argument("--batches", nargs="+", type=int, default=[1, 8])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--corpus", type=Path, help="corpus v2 folder (meta.csv) for the decision count")
    parser.add_argument("--corpus-limit", type=int, help="at most this many held-out clips")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"{_cpu()}, torch {torch.__version__}, {args.threads} threads, load average at start "
          f"{os.getloadavg()[0]:.2f}; {args.rounds} rounds", flush=True)
    speed, decisions = [], []
    for name in args.models:
        model = load(name)
        waves = synthetic(model, max(args.batches))
        sides = {}
        for backend in ["fp32", *args.backends]:
            sides[backend] = build(model, backend)
            print(f"{name}: built {backend} in {sides[backend][1]:.1f} s", flush=True)
        embeddings = {}
        for backend, (fast, _) in sides.items():  # the embeddings, then a warm-up of every batch size
            with variant(backend):
                embeddings[backend] = fast.embed_waveforms(waves, batch_size=max(args.batches))
                for batch in args.batches:
                    fast.embed_waveforms(waves[:batch], batch_size=batch)
        times: dict = {}
        for _ in range(args.rounds):
            for backend, (fast, _) in sides.items():
                for batch in args.batches:
                    with variant(backend):
                        times.setdefault((backend, batch), []).append(
                            timed(lambda f=fast, w=waves[:batch], b=batch: f.embed_waveforms(w, batch_size=b)))
        load_end = os.getloadavg()[0]
        for (backend, batch), values in times.items():
            wall, cpu = [v[0] for v in values], [v[1] for v in values]
            cos = (embeddings[backend] * embeddings["fp32"]).sum(1)
            cpu_ms = 1e3 * statistics.median(cpu) / batch
            speed.append((name, backend, batch, batch / statistics.median(wall), batch / min(wall), cpu_ms,
                          cos.min(), cos.mean(), sides[backend][1], load_end))
        if args.corpus is not None and name == "default":
            decisions += decide(model, sides, args.corpus, args.corpus_limit)
        del sides
    print("\n| model | backend | batch | clips/s median | clips/s best | CPU ms/clip | CPU vs fp32 | cos min | "
          "cos mean "
          "| build s | load avg |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    fp32 = {(r[0], r[2]): r[5] for r in speed if r[1] == "fp32"}
    for r in speed:
        print(f"| {r[0]} | {r[1]} | {r[2]} | {r[3]:.2f} | {r[4]:.2f} | {r[5]:.1f} | {fp32[(r[0], r[2])] / r[5]:.2f}x "
              f"| {r[6]:.5f} | {r[7]:.5f} | {r[8]:.1f} | {r[9]:.1f} |")
    if decisions:
        print("\n| model | backend | held-out clips | classes | decisions changed | unchanged | top-1 fp32 | "
              "top-1 backend | cos min | cos mean | target |")
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        for r in decisions:
            unchanged = 1 - r[4] / r[2]
            print(f"| {r[0]} | {r[1]} | {r[2]} | {r[3]} | {r[4]} | {100 * unchanged:.2f} % | {100 * r[5]:.1f} % | "
                  f"{100 * r[6]:.1f} % | {r[7]:.5f} | {r[8]:.5f} | >= 99 % unchanged and cos >= 0.995: "
                  f"{'met' if unchanged >= 0.99 and r[7] >= 0.995 else 'NOT met'} |")
    print(f"\nload average at the end {os.getloadavg()[0]:.2f}")
    return 0


def decide(model, sides: dict, corpus: Path, limit: int | None) -> list[tuple]:
    paths, targets, prompts = heldout(corpus, limit)
    print(f"decisions: {len(paths)} held-out clips, {len(prompts)} held-out labels; decoding ...", flush=True)
    waves, _ = model.load_waveforms(paths)
    text = model.embed_text(prompts)
    out, reference = [], None
    for backend, (fast, _) in sides.items():
        start = time.perf_counter()
        with variant(backend):
            audio = fast.embed_waveforms(waves, batch_size=8)
        print(f"decisions: {backend} embedded in {time.perf_counter() - start:.0f} s", flush=True)
        chosen = (audio @ text.T).argmax(1)
        if reference is None:
            reference = (audio, chosen)
            continue
        cos = (audio * reference[0]).sum(1)
        out.append(("default", backend, len(paths), len(prompts), int((chosen != reference[1]).sum()),
                    float((reference[1] == targets).mean()), float((chosen == targets).mean()), cos.min(), cos.mean()))
    return out


def _cpu() -> str:
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")), "?")
    simd = [f for f in ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile") if f" {f}" in info]
    from clapkit.fast import native_bf16

    caps = " ".join(f"{k}={os.environ[k]}" for k in ISA_CAPS if k in os.environ)
    return (f"{model}, {os.cpu_count()} CPUs, {'/'.join(simd)}; ATen capability "
            f"{torch.backends.cpu.get_cpu_capability()}, native bf16 {native_bf16()}"
            f"{'; caps: ' + caps if caps else ''}")


if __name__ == "__main__":
    sys.exit(main())
