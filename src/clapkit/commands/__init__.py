"""Subcommands of the ``clapkit`` command; shared argument helpers."""

from __future__ import annotations

import argparse

DEFAULT_MODEL = "default"


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
    parser.add_argument("--fast", choices=("int8",), help="int8 audio tower (faster on CPU, inference only)")


def load_model(args: argparse.Namespace):
    import clapkit

    return clapkit.load(
        args.model, weights=args.weights, tokenizer=args.tokenizer, device=args.device, trust_pickle=args.trust_pickle,
        fast=getattr(args, "fast", None),
    )
