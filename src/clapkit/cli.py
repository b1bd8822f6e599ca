"""The ``clapkit`` command. Subcommands live in ``clapkit.commands.*`` (each module's ``add_parsers(sub)``); they
parse arguments and call into the library, nothing more.

Start-up is kept short: only the module of the command being run is imported (``clapkit --help`` imports none of
them, and nothing imports torch before a command needs it). ``COMMANDS`` names each command's module and its
one-line help for the top-level listing; ``tests/test_cli_startup.py`` keeps it equal to the modules' own parsers.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import warnings

from clapkit.errors import ClapkitError, ClapkitWarning, os_reason

# command -> (module that defines it, one-line help shown by `clapkit --help`)
COMMANDS: dict[str, tuple[str, str]] = {
    "models": ("clapkit.commands.models", "list the named model configs (--public: the public checkpoints)"),
    "info": ("clapkit.commands.models", "describe a model or checkpoint"),
    "download": ("clapkit.commands.download",
                 "fetch public checkpoints (`clapkit models --public`), hub repos or tokenizers into the HF cache"),
    "demo": ("clapkit.commands.demo", "classify and search the bundled example clips with the default model"),
    "recipe": ("clapkit.commands.recipe", "reproducible recipes (the default model)"),
    "embed": ("clapkit.commands.inference", "embed audio files into a resumable embedding store (--out DIR)"),
    "classify": ("clapkit.commands.inference", "zero-shot classify audio files with text labels"),
    "search": ("clapkit.commands.inference", "search an embedding store by text or by a similar sound"),
    "locate": ("clapkit.commands.inference", "find where a text matches in a long recording (streamed windows)"),
    "formats": ("clapkit.commands.inference", "audio formats this machine decodes"),
    "eval": ("clapkit.commands.evaluate", "evaluate a model: zero-shot, retrieval, linear probe"),
    "train": ("clapkit.commands.train", "train or fine-tune a CLAP model from a YAML/JSON config"),
    "data": ("clapkit.commands.data", "prepare training data: webdataset shards, keyword captions, rewrites"),
    "convert": ("clapkit.commands.convert",
                "rewrite a checkpoint in another format (reclap, laion, msclap, hf, clapkit); weights unchanged"),
    "index": ("clapkit.commands.index", "build and update a searchable sound index (FAISS) of audio files"),
    "serve": ("clapkit.commands.index", "serve a sound index: web page + HTTP API (127.0.0.1 by default)"),
    "caption": ("clapkit.commands.caption", "write a caption for each audio file (MS-CLAP clapcap model)"),
}
COMMAND_MODULES = list(dict.fromkeys(module for module, _ in COMMANDS.values()))
DESCRIPTION = "CLAP models: embed, classify and search audio."


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The parser for ``argv``: the chosen command's module adds its real subparsers; with no known command (or
    ``argv=None``, which builds them all) every other command is listed from ``COMMANDS`` without importing it."""
    parser = argparse.ArgumentParser(prog="clapkit", description=DESCRIPTION)
    sub = parser.add_subparsers(dest="command", required=True)
    if argv is None:
        modules = COMMAND_MODULES
    else:
        chosen = next((a for a in argv if not a.startswith("-")), None)
        modules = [COMMANDS[chosen][0]] if chosen in COMMANDS else []
    for name in modules:
        importlib.import_module(name).add_parsers(sub)
    for command, (module, help_text) in COMMANDS.items():
        if module not in modules:
            sub.add_parser(command, help=help_text)  # listed only: never parsed (it is not the chosen command)
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
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(argv).parse_args(argv)
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
