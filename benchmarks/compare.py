"""clapkit vs laion_clap / transformers on this CPU, side by side, same weights, interleaved in one run.

    OMP_WAIT_POLICY=PASSIVE python benchmarks/compare.py                # full run (~10 min on 2 cores)
    python benchmarks/compare.py --quick --no-train --corpus-limit 8    # smoke run (~1 min)

Three worker processes stay alive for the whole run (see ``compare_worker.py``): the reference (laion_clap 1.1.7 +
transformers, under the reference Python: ``--ref-python``, else ``$CLAPKIT_REF_PYTHON``, else
``.venv-ref/bin/python``), clapkit fp32 and clapkit fast (``clapkit.fast.accelerate``, ``--fast-backend``, default
auto), both under this Python. The reference builds the models with seed-0 random weights and saves them; the clapkit
workers load those files. Only one worker computes at a time: every round runs each task once on each side, one
after the other, so slow spells of a shared machine hit both sides alike. Reported per task and side: median and
best wall time over the rounds, CPU time (all threads) per item, and the ratios. Then: max abs difference of the
embeddings, peak RSS (VmHWM) of each worker, the profile of one clapkit batch, and the fast path's zero-shot
decisions on the sound corpus (``--corpus``, default /tmp/soundcorpus).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
ITEMS = {"audio_b1": 1, "audio_b8": 8, "text_b32": 32, "text_laion_b32": 32, "train_b8": 8, "train_bf16_b8": 8}
LABELS = {
    "audio_b1": "audio b1, clips/s (waveform in, preprocessing included)",
    "audio_b8": "audio b8, clips/s (waveform in, preprocessing included)",
    "text_b32": "text b32 vs transformers ClapModel, captions/s (tokenisation included)",
    "text_laion_b32": "text b32 vs laion_clap (pads to 77), captions/s",
    "train_b8": "train step b8 (fwd+loss+bwd+AdamW), steps/s",
    "train_bf16_b8": "train step b8, clapkit with bf16 autocast (opt-in) vs reference fp32, steps/s",
}
REFERENCE_TASK = {"train_bf16_b8": "train_b8"}  # clapkit-only variants, compared with this reference task
CLAPKIT_ONLY = set(REFERENCE_TASK)
SIDE_NAMES = {"clapkit": "clapkit fp32", "fast": "clapkit fast"}
TARGETS = {("clapkit", "audio_b1"): 1.5, ("clapkit", "audio_b8"): 1.5, ("clapkit", "text_b32"): 1.3,
           ("clapkit", "train_b8"): 2.0, ("clapkit", "train_bf16_b8"): 2.0, ("fast", "audio_b1"): 2.5,
           ("fast", "audio_b8"): 2.5}


class Worker:
    def __init__(self, name: str, python: str, side: str, workdir: Path, threads: int, fast_backend: str = "auto"):
        self.name = name
        command = [python, str(HERE / "compare_worker.py"), "--side", side, "--workdir", str(workdir),
                   "--threads", str(threads), "--fast-mode", fast_backend]
        self.log = workdir / f"{name}.log"  # a file, not a pipe: a chatty worker must never block on stderr
        with open(self.log, "w") as log:
            self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
                                            text=True, cwd=ROOT)
        self.info: dict = {}

    def wait_ready(self) -> None:
        self.info = self._read()

    def _read(self) -> dict:
        line = self.process.stdout.readline()
        if not line:
            self.process.wait(timeout=30)
            raise RuntimeError(f"worker {self.name} died:\n{self.log.read_text()[-3000:]}")
        return json.loads(line)

    def ask(self, **command) -> dict:
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()
        return self._read()

    def close(self) -> None:
        """Ask the worker to quit; kill it if it does not (e.g. still waiting for checkpoints of a dead reference)."""
        if self.process.poll() is None:
            try:
                self.process.stdin.write(json.dumps({"op": "quit"}) + "\n")
                self.process.stdin.flush()
            except OSError:
                pass
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def reference_python(given: str | None) -> str:
    python = given or os.environ.get("CLAPKIT_REF_PYTHON") or str(ROOT / ".venv-ref" / "bin" / "python")
    if not Path(python).exists():
        sys.exit(f"reference Python not found at {python}: run `bash scripts/setup_reference_env.sh` or pass "
                 "--ref-python / set CLAPKIT_REF_PYTHON (laion-clap 1.1.7, transformers 4.57.6)")
    return python


def summarize(times: list[dict], items: int) -> dict:
    wall, cpu = [t["wall"] for t in times], [t["cpu"] for t in times]
    return {"median": items / statistics.median(wall), "best": items / min(wall),
            "cpu_ms_per_item": 1e3 * statistics.median(cpu) / items, "n": len(wall)}


def machine() -> str:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor())
    flags = Path("/proc/cpuinfo").read_text()
    simd = [f for f in ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "avx_vnni", "amx_tile")
            if f" {f}" in flags]
    return (f"{model}, {os.cpu_count()} logical CPUs, {'/'.join(simd)}, Python {platform.python_version()}, "
            f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}, load average at start "
            f"{os.getloadavg()[0]:.2f}")


def table(results: dict, sides: list[str]) -> list[str]:
    lines = ["| measurement | side | median | best | CPU ms/item | ratio median | ratio best | CPU ratio | target |",
             "|---|---|---|---|---|---|---|---|---|"]
    for task, label in LABELS.items():
        ref = results.get(("reference", REFERENCE_TASK.get(task, task)))
        if ref is None:
            continue
        unit = 1 if not task.startswith("train") else 1 / ITEMS[task]  # train: steps/s, CPU s per step
        if task not in REFERENCE_TASK:
            lines.append(f"| {label} | reference | {ref['median'] * unit:.3g} | {ref['best'] * unit:.3g} | "
                         f"{ref['cpu_ms_per_item']:.4g} | 1 | 1 | 1 | |")
        for side in sides:
            ours = results.get((side, task))
            if ours is None:
                continue
            target = TARGETS.get((side, task))
            ratio, best, cpu = (ours["median"] / ref["median"], ours["best"] / ref["best"],
                                ref["cpu_ms_per_item"] / ours["cpu_ms_per_item"])
            verdict = "" if target is None else f">= {target}: {'met' if min(ratio, best) >= target else 'NOT met'}"
            name = "clapkit bf16 autocast (opt-in)" if task in REFERENCE_TASK else SIDE_NAMES[side]
            lines.append(f"| | {name} | {ours['median'] * unit:.3g} | {ours['best'] * unit:.3g} | "
                         f"{ours['cpu_ms_per_item']:.4g} | **{ratio:.2f}x** | {best:.2f}x | {cpu:.2f}x | {verdict} |")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ref-python", help="Python of the reference environment")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds (each task once per side per round)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--corpus", type=Path, default=Path("/tmp/soundcorpus"))
    parser.add_argument("--corpus-limit", type=int, help="clips per corpus set for the zero-shot check (default all)")
    parser.add_argument("--no-train", action="store_true", help="skip the training step")
    parser.add_argument("--no-fast", action="store_true", help="skip the fast path")
    parser.add_argument("--fast-backend", default="auto", help="clapkit.fast backend of the fast worker (default "
                        "auto: what accelerate picks on this machine)")
    parser.add_argument("--no-profile", action="store_true")
    parser.add_argument("--quick", action="store_true", help="one round, no warm-up (smoke test)")
    parser.add_argument("--json", type=Path, help="also write all numbers here")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.warmup = 1, 0
    ref_python = reference_python(args.ref_python)
    tasks = [t for t in ITEMS if not (args.no_train and t.startswith("train"))]
    sides = ["clapkit"] + ([] if args.no_fast else ["fast"])
    print(f"machine: {machine()}", flush=True)
    with tempfile.TemporaryDirectory(prefix="clapkit-compare-") as tmp:
        workers = {"reference": Worker("reference", ref_python, "reference", Path(tmp), args.threads)}
        for side in sides:
            workers[side] = Worker(side, sys.executable, side, Path(tmp), args.threads, args.fast_backend)
        try:
            for worker in workers.values():  # the clapkit workers wait for the reference's checkpoint files
                worker.wait_ready()
            report = run(args, workers, tasks, sides)
        finally:
            for worker in workers.values():
                worker.close()
    if args.json:
        args.json.write_text(json.dumps(report, indent=1, default=str))
    return 0


def side_tasks(side: str, tasks: list[str]) -> list[str]:
    if side == "fast":
        return [t for t in tasks if t.startswith("audio")]
    return [t for t in tasks if side == "clapkit" or t not in CLAPKIT_ONLY]


def run(args, workers: dict, tasks: list[str], sides: list[str]) -> dict:
    if "fast" in workers:
        SIDE_NAMES["fast"] = f"clapkit fast ({workers['fast'].info.get('acceleration')})"
    for worker in workers.values():
        print(f"{worker.name}: built in {worker.info['build_s']:.1f} s, torch {worker.info['torch']}, "
              f"{worker.info['threads']} threads", flush=True)
    # embeddings first: the training step updates each side's weights (differently: SpecAugment, dropout)
    diffs = {}
    for task in ("audio_b8", "text_b32", "text_laion_b32"):
        ref = np.asarray(workers["reference"].ask(op="embed", task=task)["embedding"])
        ref = ref / np.linalg.norm(ref, axis=1, keepdims=True)
        for side in sides:
            if task in side_tasks(side, tasks):
                ours = np.asarray(workers[side].ask(op="embed", task=task)["embedding"])
                cos = float(((ours / np.linalg.norm(ours, axis=1, keepdims=True)) * ref).sum(1).min())
                diffs[(side, task)] = {"max_abs": float(np.abs(ours - ref).max()), "cos_min": cos}
    for _ in range(args.warmup):
        for task in tasks:
            for name, worker in workers.items():
                if task in side_tasks(name, tasks):
                    worker.ask(op="run", task=task)
    memory = {name: worker.ask(op="mem") for name, worker in workers.items()}  # after warm-up of inference + train
    times: dict[tuple[str, str], list] = {}
    for round_ in range(args.rounds):
        for task in tasks:
            for name, worker in workers.items():
                if task in side_tasks(name, tasks):
                    times.setdefault((name, task), []).append(worker.ask(op="run", task=task))
        print(f"round {round_ + 1}/{args.rounds} done", flush=True)
    results = {key: summarize(value, ITEMS[key[1]]) for key, value in times.items()}
    memory = {name: worker.ask(op="mem") for name, worker in workers.items()}
    lines = [f"Interleaved rounds: {args.rounds} (+{args.warmup} warm-up), torch threads {args.threads}. "
             "Throughput in items/s (train: steps/s); ratio = clapkit / reference (CPU ratio: reference CPU ms / "
             "clapkit CPU ms); a target counts as met when both the median and the best ratio reach it.", ""]
    lines += table(results, sides)
    lines += ["", "| embeddings vs reference | side | max abs diff | min cosine | target |", "|---|---|---|---|---|"]
    for (side, task), d in diffs.items():
        target = "cos >= 0.995" if side == "fast" else "max abs <= 1e-4"
        met = d["cos_min"] >= 0.995 if side == "fast" else d["max_abs"] <= 1e-4
        lines.append(f"| {task} | {side} | {d['max_abs']:.2e} | {d['cos_min']:.6f} | {target}: "
                     f"{'met' if met else 'NOT met'} |")
    lines += ["", "| worker | peak RSS MiB (VmHWM) | vs reference |", "|---|---|---|"]
    for name, mem in memory.items():
        ratio = mem["VmHWM"] / memory["reference"]["VmHWM"]
        lines.append(f"| {name} | {mem['VmHWM']:.0f} | {ratio:.2f}x |")
    lines.append("")
    lines.append("(reference: laion_clap HTSAT-tiny + transformers ClapModel in one process; clapkit: the same two "
                 "models; fast: the accelerated HTSAT-tiny model alone; each after the same work of this run.)")
    report = {"results": {f"{k[0]}:{k[1]}": v for k, v in results.items()}, "memory": memory,
              "diffs": {f"{k[0]}:{k[1]}": v for k, v in diffs.items()}, "machine": machine()}
    print("\n" + "\n".join(lines), flush=True)
    if not args.no_profile:
        profile = workers["clapkit"].ask(op="profile")
        report["profile"] = profile
        print("\nProfile of one clapkit batch (best of 3, ms per batch):", flush=True)
        for section, rows in profile.items():
            print(f"\n{section}:")
            items = rows.items() if isinstance(rows, dict) else rows
            for key, value in items:
                print(f"  {key}: {value:.1f}" if isinstance(value, float) else f"  {key}: {value}")
    lines = []
    if not args.no_fast:
        print(f"\nzero-shot check of the fast path on {args.corpus} (fp32 and fast embeddings of every clip) ...",
              flush=True)
        zs = workers["fast"].ask(op="zeroshot", corpus=str(args.corpus), limit=args.corpus_limit)
        report["zeroshot"] = zs
        lines.append("")
        if "error" in zs:
            lines.append(f"Zero-shot check: {zs['error']}")
        else:
            lines.append(f"Zero-shot check of the fast path on {args.corpus}: {zs['clips']} clips, changed decisions "
                         f"{zs['changed']} ({'met' if zs['changed'] == 0 else 'NOT met'}), cosine to fp32 min "
                         f"{zs['cos_min']:.5f} mean {zs['cos_mean']:.5f}; per set: "
                         + "; ".join(f"{n}: {s['clips']} clips, {s['classes']} classes, {s['changed']} changed"
                                     for n, s in zs["sets"].items()))
            for n, s in zs["sets"].items():
                quantiles = "/".join(f"{q:.1e}" for q in s["margin_quantiles"])
                lines.append(f"- {n}: fp32 decision margin (best - second class cosine) min/10%/median {quantiles}; "
                             f"largest fast-path change of a class score {s['score_error_max']:.1e}; "
                             f"{s['clips_margin_below_2x_error']} clips have a margin below twice that; changed "
                             f"decisions among the other clips: {s['changed_margin_above_2x_error']}")
    print("\n" + "\n".join(lines), flush=True)
    return report


if __name__ == "__main__":
    sys.exit(main())
