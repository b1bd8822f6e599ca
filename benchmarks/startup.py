"""Start-up of the ``clapkit`` command: wall and CPU time of whole commands, run as a user runs them.

    python benchmarks/startup.py                                  # this tree, 5 interleaved rounds
    python benchmarks/startup.py --baseline-src /path/to/old/src  # and an older tree, interleaved with this one

Each round runs every command once per tree, one after the other, in a fresh interpreter (``python -m clapkit.cli``
with ``PYTHONPATH`` set to the tree's ``src``): ``--help``, ``classify`` of one bundled example clip with the default
model, and ``demo``. Reported: median and best wall time, median CPU time (user + system of the child), the number
of modules the command imported (``-X importtime``, one extra run) and whether it imported torch / transformers.
Targets (issue 19): ``--help`` <= 0.5 s, ``classify one.wav`` <= 2.5 s wall.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "src" / "clapkit" / "assets" / "examples" / "violin.flac"
COMMANDS = {
    "clapkit --help": ["--help"],
    "clapkit classify one.flac (default model)": ["classify", str(EXAMPLE), "--labels",
                                                  "violin,piano,dog barking,rain,car horn"],
    "clapkit demo": ["demo"],
}
TARGETS = {"clapkit --help": 0.5, "clapkit classify one.flac (default model)": 2.5}


def run(src: Path, argv: list[str]) -> tuple[float, float]:
    """(wall s, CPU s of the child) of one run of ``python -m clapkit.cli ARGV`` with ``src`` first on the path."""
    env = {**os.environ, "PYTHONPATH": str(src)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "clapkit.cli", *argv], env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{argv} failed under {src}:\n{done.stderr[-2000:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def imports(src: Path, argv: list[str]) -> tuple[int, list[str]]:
    env = {**os.environ, "PYTHONPATH": str(src)}
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "clapkit.cli", *argv], env=env,
                          capture_output=True, text=True)
    names = [line.split("|")[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")]
    names = [n for n in names if n and n != "package"]
    return len(names), [m for m in ("torch", "transformers", "sklearn") if m in names]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--baseline-src", type=Path, help="another tree's src/ to compare with (e.g. a git worktree)")
    parser.add_argument("--no-demo", action="store_true")
    args = parser.parse_args()
    trees = {"this tree": ROOT / "src"}
    if args.baseline_src:
        trees = {"baseline": args.baseline_src.resolve(), **trees}
    commands = {k: v for k, v in COMMANDS.items() if not (args.no_demo and k == "clapkit demo")}
    for src in trees.values():  # warm the page cache (and any first-run caches) before timing
        for argv in commands.values():
            run(src, argv)
    times: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for _ in range(args.rounds):
        for command, argv in commands.items():
            for tree, src in trees.items():
                times.setdefault((command, tree), []).append(run(src, argv))
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
          f"load average at the end {os.getloadavg()[0]:.2f}; {args.rounds} rounds\n")
    print("| command | tree | wall median s | wall best s | CPU median s | modules imported | heavy imports | target |")
    print("|---|---|---|---|---|---|---|---|")
    for command, argv in commands.items():
        for tree, src in trees.items():
            walls = [w for w, _ in times[(command, tree)]]
            cpus = [c for _, c in times[(command, tree)]]
            count, heavy = imports(src, argv)
            target = TARGETS.get(command)
            verdict = ""
            if target is not None:
                verdict = f"<= {target}: {'met' if statistics.median(walls) <= target else 'NOT met'}"
            print(f"| {command} | {tree} | {statistics.median(walls):.2f} | {min(walls):.2f} | "
                  f"{statistics.median(cpus):.2f} | {count} | {', '.join(heavy) or 'none'} | {verdict} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
