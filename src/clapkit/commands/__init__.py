"""Subcommands of the ``clapkit`` command; the argument helpers they share (model options, inputs, failures)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from clapkit.errors import CheckpointError
from clapkit.inputs import parse_extensions  # noqa: F401 (commands import it from here too)

DEFAULT_MODEL = "default"
# clapkit.fast.BACKENDS, written out: the CLI must not import torch to build its parser (tests/fast checks they agree)
FAST_BACKENDS = ("auto", "bf16", "int8", "openvino", "onnxruntime", "onnxruntime-int8")


def add_model_options(parser: argparse.ArgumentParser, default: str | None = DEFAULT_MODEL) -> None:
    """--model/--weights/--tokenizer/--device/--trust-pickle, shared by every command that loads a model."""
    parser.add_argument(
        "--model",
        default=default,
        required=default is None,
        help="'default' (clapkit's offline model, the default), a model name (`clapkit models`), a public "
        "checkpoint name or hub repo id fetched with `clapkit download` (`clapkit models --public`), a checkpoint "
        "file or a directory",
    )
    parser.add_argument("--weights", help="checkpoint for a model name, or 'random'")
    parser.add_argument("--tokenizer", help="local tokenizer directory (RoBERTa/GPT-2 towers need one)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--trust-pickle", action="store_true", help="allow full unpickling of a trusted checkpoint")
    parser.add_argument("--fast", choices=FAST_BACKENDS,
                        help="fast CPU audio path (inference only): auto (the backend measured best here), bf16, int8, "
                        "openvino, onnxruntime, onnxruntime-int8 (docs/performance.md)")


def load_model(args: argparse.Namespace):
    """The model of the model options (``--weights random`` seeded with ``--seed``, ``cuda`` -> the rank's GPU),
    with a clear error for a weights file that is not there."""
    from clapkit.checkpoints import FAMILIES_HELP
    from clapkit.jobs import device_for_rank
    from clapkit.loading import load_reproducibly

    if args.weights and args.weights != "random" and not Path(args.weights).exists():
        raise CheckpointError(
            f"{args.weights}: weights file not found. Put the checkpoint there or pass its path with --weights "
            f"(or use a public checkpoint by name: `clapkit download 630k-audioset-best`, then --model "
            f"630k-audioset-best; `clapkit models --public` lists them), or --weights random for an untrained "
            f"model. {FAMILIES_HELP}"
        )
    return load_reproducibly(
        args.model, weights=args.weights, seed=getattr(args, "seed", 0), tokenizer=args.tokenizer,
        device=device_for_rank(args.device), trust_pickle=args.trust_pickle, fast=getattr(args, "fast", None),
    )


def absolute_if_path(value: str | None) -> str | None:
    """Paths are recorded absolute (in store.json, index.json: so they work from any folder); names are kept."""
    return os.path.abspath(value) if value and os.path.exists(value) else value


def report_failures(failures, what: str = "skipped", shown: int = 20) -> None:
    """The inputs a job skipped, on stderr (the first ``shown`` of them)."""
    if failures:
        print(f"clapkit: {what} {len(failures)} input(s):", file=sys.stderr)
        for failure in failures[:shown]:
            print(f"  {failure.source}: {failure.reason}", file=sys.stderr)
        if len(failures) > shown:
            print(f"  ... and {len(failures) - shown} more", file=sys.stderr)


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1 (``--top-k 0`` or ``-5`` is refused by the parser, exit 2)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def add_quiet(parser: argparse.ArgumentParser) -> None:
    """``--quiet`` (alias ``--no-progress``): no progress bar on stderr."""
    parser.add_argument("--quiet", "--no-progress", dest="no_progress", action="store_true",
                        help="no progress bar on stderr")  # fmt: skip


def require_some(done: int, failures, what: str = "processed") -> None:
    """The exit rule of every command that takes files: inputs that fail are reported and skipped, and the job
    exits 0 while at least one input worked; when none did (every input missing or unusable) it is an error
    (exit 2) listing the first failures."""
    from clapkit.errors import ClapkitError

    if done == 0 and failures:
        shown = "; ".join(f"{f.source}: {f.reason}" for f in list(failures)[:5])
        more = f" (and {len(failures) - 5} more)" if len(failures) > 5 else ""
        raise ClapkitError(f"no input could be {what}: {shown}{more}")
