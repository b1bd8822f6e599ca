"""The ``clapkit`` command. Subcommands live in ``clapkit.commands.*`` (each module's ``add_parsers(sub)``); they
parse arguments and call into the library, nothing more."""

from __future__ import annotations

import argparse
import importlib
import sys
import warnings

from clapkit.errors import ClapkitError, ClapkitWarning, os_reason

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


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """clapkit's own warnings as one plain line; others as Python prints them."""
    if issubclass(category, ClapkitWarning):
        print(f"clapkit: warning: {message}", file=sys.stderr)
    else:
        sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))


def main(argv: list[str] | None = None) -> int:
    """Run a command. The one error path of every command: a ClapkitError, or an operating-system error on a file
    (permission denied, a folder that is a file, a full disk, ...), is printed as ``clapkit: error: ...`` with exit
    status 2, never as a traceback."""
    args = build_parser().parse_args(argv)
    warnings.showwarning = _show_warning
    try:
        return int(args.func(args) or 0)
    except ClapkitError as exc:
        print(f"clapkit: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        where = exc.filename if exc.filename is not None else "a file"
        print(f"clapkit: error: {where}: {os_reason(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("clapkit: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
