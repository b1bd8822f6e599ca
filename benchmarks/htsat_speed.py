"""fp32 HTSAT-tiny audio path on this CPU: the matmul peak, FLOPs per clip, and what each speed step buys.

    OMP_WAIT_POLICY=PASSIVE python benchmarks/htsat_speed.py              # ~5 min on 2 busy cores
    OMP_WAIT_POLICY=PASSIVE python benchmarks/htsat_speed.py --compile    # also torch.compile (inductor) on top

Peak: the best of ``--peak-repeats`` 2048^3 fp32 products through ``torch.mm`` (MKL) and oneDNN, as GFLOP per wall
second and per CPU second (CPU time of all threads: steadier on a shared machine), and of the same product through
``clapkit.fast``'s int8 dynamic linear (activation quantisation included), for the int8 limit. FLOPs per 10 s clip:
counted by ``torch.utils.flop_counter`` on the tower (the linears), plus the window attention (4 * windows * heads *
N^2 * d per block; the counter does not see CPU flash attention). Limit = peak / FLOPs per clip. The ablation runs
``embed_audio`` (waveform in, LAION HTSAT-tiny geometry, seed-0 random weights) at batch 1 and 8 for each step,
interleaved round by round, by switching the steps on one after the other; ``% of limit`` is per CPU second.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compare_worker import waveforms  # noqa: E402

from clapkit.inference import ClapPipeline  # noqa: E402
from clapkit.models import fused, swin  # noqa: E402
from clapkit.models.clap import ClapModule  # noqa: E402
from clapkit.registry import get_config  # noqa: E402

# step name -> (fused.ONEDNN, fused.EPILOGUES, fused.PACK, swin.CACHE_BIAS); each row adds one step to the previous
STEPS = {
    "eager, MKL addmm linears (before)": (False, False, False, False),
    "+ oneDNN linears": (True, False, False, False),
    "+ fused epilogues (GELU, residual add)": (True, True, False, False),
    "+ packed oneDNN weights": (True, True, True, False),
    "+ cached attention bias (= default)": (True, True, True, True),
}
DEFAULT = "+ cached attention bias (= default)"


INT8 = "int8 dynamic linear (clapkit.fast int8)"  # a peak, not an fp32 one: the int8 limit line, not the fp32 limit


def peak(repeats: int) -> dict:
    from clapkit.fast import quantize_linears

    n = 2048
    a, b, zero = torch.randn(n, n), torch.randn(n, n), torch.zeros(n)
    int8 = quantize_linears(torch.nn.Sequential(torch.nn.Linear(n, n)), min_features=0).eval()
    out = {}
    for name, fn in (("torch.mm (MKL)", lambda: torch.mm(a, b)),
                     ("oneDNN", lambda: torch.ops.mkldnn._linear_pointwise(a, b, zero, "none", [], "")),
                     (INT8, lambda: int8(a))):
        fn()
        walls, cpus = [], []
        for _ in range(repeats):
            wall, cpu = time.perf_counter(), time.process_time()
            fn()
            walls.append(time.perf_counter() - wall)
            cpus.append(time.process_time() - cpu)
        out[name] = {"wall": 2 * n**3 / min(walls) / 1e9, "cpu": 2 * n**3 / min(cpus) / 1e9}
    return out


def flops_per_clip(pipeline: ClapPipeline) -> tuple[float, float]:
    """(linear GFLOP, attention GFLOP) per 10 s clip of the tower."""
    from torch.utils.flop_counter import FlopCounterMode

    from clapkit.audio.fusion import prepare_batch

    tower = pipeline.module.audio_tower
    features = prepare_batch(list(waveforms(1, 11)), pipeline.config.frontend, fusion=False).features
    previous, fused.ONEDNN = fused.ONEDNN, False  # the counter sees aten.addmm, not oneDNN's op
    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), counter:
        tower(features)
    fused.ONEDNN = previous
    attention = 0
    for stage in tower.layers:
        for block in stage.blocks:
            height, width = block.resolution
            tokens = block.window_size**2
            heads, dim = block.attn.num_heads, block.attn.dim
            attention += 4 * (height * width // tokens) * heads * tokens**2 * (dim // heads)
    return counter.get_total_flops() / 1e9, attention / 1e9


def measure(pipeline: ClapPipeline, batches: dict, rounds: int, steps: dict) -> dict:
    times: dict = {}
    for _ in range(rounds):
        for batch, waves in batches.items():
            for name, run in steps.items():
                run(waves)  # untimed call: switching a step must not time its first call
                wall, cpu = time.perf_counter(), time.process_time()
                run(waves)
                times.setdefault((name, batch), []).append((time.perf_counter() - wall, time.process_time() - cpu))
    return {key: {"clips_s": len(batches[key[1]]) / statistics.median(w for w, _ in v),
                  "best": len(batches[key[1]]) / min(w for w, _ in v),
                  "cpu_ms": 1e3 * statistics.median(c for _, c in v) / len(batches[key[1]])}
            for key, v in times.items()}


def switch(switches: tuple[bool, bool, bool, bool]) -> None:
    fused.ONEDNN, fused.EPILOGUES, fused.PACK, swin.CACHE_BIAS = switches


def step_runner(pipeline: ClapPipeline, switches: tuple[bool, bool, bool, bool]):
    def run(waves: np.ndarray) -> np.ndarray:
        switch(switches)
        return pipeline.embed_audio(waves, sample_rate=48000, batch_size=len(waves))
    return run


def compiled_runner(pipeline: ClapPipeline):
    """torch.compile (inductor, weight freezing) of the eager tower (inductor packs the weights for oneDNN and fuses
    the epilogues itself; it cannot trace clapkit's own packed weights); compile time kept."""
    import torch._inductor.config as inductor

    inductor.freezing = True
    tower = pipeline.module.audio_tower
    compiled = torch.compile(tower, dynamic=False)
    compile_s: dict[int, float] = {}

    def run(waves: np.ndarray) -> np.ndarray:
        switch(STEPS[next(iter(STEPS))])
        pipeline.module.audio_tower = compiled
        try:
            if len(waves) not in compile_s:
                start = time.perf_counter()
                out = pipeline.embed_audio(waves, sample_rate=48000, batch_size=len(waves))
                compile_s[len(waves)] = time.perf_counter() - start
                return out
            return pipeline.embed_audio(waves, sample_rate=48000, batch_size=len(waves))
        finally:
            pipeline.module.audio_tower = tower
    return run, compile_s


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--peak-repeats", type=int, default=8)
    parser.add_argument("--compile", action="store_true", help="also measure torch.compile on top (minutes)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = get_config("laion-htsat-tiny")
    torch.manual_seed(0)
    pipeline = ClapPipeline(ClapModule(config), config)
    batches = {1: waveforms(1, 11), 8: waveforms(8, 12)}
    steps = {name: step_runner(pipeline, switches) for name, switches in STEPS.items()}
    compile_s = {}
    if args.compile:
        steps["torch.compile (inductor, freezing) of the eager path"], compile_s = compiled_runner(pipeline)
    reference = steps[next(iter(STEPS))](batches[8])
    diffs = {name: float(np.abs(run(batches[8]) - reference).max()) for name, run in steps.items()}
    peaks = peak(args.peak_repeats)
    linear_gflop, attention_gflop = flops_per_clip(pipeline)
    gflop = linear_gflop + attention_gflop
    results = measure(pipeline, batches, args.rounds, steps)
    best_cpu = max(p["cpu"] for name, p in peaks.items() if name != INT8)
    print(f"{torch.__version__}, {args.threads} threads, CPU capability {torch.backends.cpu.get_cpu_capability()}, "
          f"load average {os.getloadavg()[0]:.2f} at the end; {args.rounds} rounds")
    for name, p in peaks.items():
        kind = "" if name == INT8 else "fp32 "
        print(f"peak 2048^3 {kind}{name}: {p['wall']:.0f} G(FL)OP/s wall, {p['cpu']:.0f} per CPU-second "
              f"(x{args.threads} threads = {args.threads * p['cpu']:.0f} on a quiet machine)")
    print(f"FLOPs per 10 s clip: {linear_gflop:.2f} GFLOP linears + {attention_gflop:.2f} attention = {gflop:.2f}; "
          f"limit {args.threads * best_cpu / gflop:.1f} clips/s on {args.threads} quiet threads "
          f"({1e3 * gflop / best_cpu:.0f} CPU ms per clip at the best peak)")
    int8_ms = 1e3 * (linear_gflop / peaks[INT8]["cpu"] + attention_gflop / best_cpu)
    print(f"int8 limit (linears at the int8 peak, attention at the fp32 one, nothing else): "
          f"{args.threads * 1e3 / int8_ms:.1f} clips/s on {args.threads} quiet threads ({int8_ms:.0f} CPU ms per clip)")
    if compile_s:
        print("torch.compile first call (compile included): "
              + ", ".join(f"b{b} {s:.0f} s" for b, s in sorted(compile_s.items())))
    print("\n| step | b1 clips/s (median) | b1 CPU ms/clip | b8 clips/s (median) | b8 CPU ms/clip | b8 % of limit "
          "(CPU) | b8 vs before (CPU) | max abs diff |\n|---|---|---|---|---|---|---|---|")
    first = results[(next(iter(steps)), 8)]["cpu_ms"]
    for name in steps:
        one, eight = results[(name, 1)], results[(name, 8)]
        efficiency = 100 * gflop / best_cpu * 1e3 / eight["cpu_ms"]
        print(f"| {name} | {one['clips_s']:.2f} | {one['cpu_ms']:.0f} | {eight['clips_s']:.2f} | {eight['cpu_ms']:.0f}"
              f" | {efficiency:.0f} % | {first / eight['cpu_ms']:.2f}x | {diffs[name]:.1e} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
