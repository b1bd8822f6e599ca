"""The ``clapkit`` command. Subcommands live in ``clapkit.commands.*`` (each module's ``add_parsers(sub)``); they
parse arguments and call into the library, nothing more."""

from __future__ import annotations

import argparse
import importlib
import sys

from clapkit.errors import ClapkitError

COMMAND_MODULES = [
    "clapkit.commands.models",
    "clapkit.commands.download",
    "clapkit.commands.demo",
    "clapkit.commands.recipe",
    "clapkit.commands.inference",
    "clapkit.commands.evaluate",
    "clapkit.commands.train",
    "clapkit.commands.data",
    "clapkit.commands.convert",
    "clapkit.commands.index",
    "clapkit.commands.caption",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="clapkit", description="CLAP models: embed, classify and search audio.")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).add_parsers(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ClapkitError as exc:
        print(f"clapkit: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("clapkit: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
