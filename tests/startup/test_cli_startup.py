"""Start-up: the CLI and ``import clapkit`` import nothing heavy until a command needs it, and the default model's
path never imports transformers. (Import checks in a fresh interpreter, no timings: those are in
benchmarks/startup.py.)"""

from __future__ import annotations

import argparse
import importlib
import json
import subprocess
import sys
import textwrap

from clapkit.cli import COMMANDS, build_parser

HEAVY = ("torch", "transformers", "numpy", "soundfile", "sklearn")


def _imported_after(code: str) -> dict:
    program = textwrap.dedent(code) + textwrap.dedent(f"""
        import json, sys
        print(json.dumps({{"heavy": [m for m in {HEAVY!r} if m in sys.modules],
                          "commands": sorted(m for m in sys.modules if m.startswith("clapkit.commands."))}}))
    """)
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_help_imports_no_command_module_and_nothing_heavy():
    seen = _imported_after("""
        import contextlib, io
        import clapkit, clapkit.cli
        with contextlib.redirect_stdout(io.StringIO()) as out:
            try:
                clapkit.cli.main(["--help"])
            except SystemExit:
                pass
        assert "classify" in out.getvalue() and "zero-shot classify" in out.getvalue()
    """)
    assert seen == {"heavy": [], "commands": []}


def test_a_command_imports_only_its_own_module():
    seen = _imported_after("""
        import clapkit.cli
        args = clapkit.cli.build_parser(["models"]).parse_args(["models"])
        assert args.func.__module__ == "clapkit.commands.models"
    """)
    assert seen["commands"] == ["clapkit.commands.models"]
    assert "torch" not in seen["heavy"]


def _subcommands(parser):
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    return {choice.dest: choice.help for choice in sub._choices_actions}


def test_command_table_matches_the_command_modules():
    """``COMMANDS`` (listed by --help without importing) has each module's commands with the modules' own help."""
    assert _subcommands(build_parser()) == {name: help_text for name, (_, help_text) in COMMANDS.items()}
    for module in {m for m, _ in COMMANDS.values()}:
        parser = argparse.ArgumentParser()
        importlib.import_module(module).add_parsers(parser.add_subparsers())
        assert set(_subcommands(parser)) == {name for name, (m, _) in COMMANDS.items() if m == module}, module


def test_default_model_runs_without_transformers():
    seen = _imported_after("""
        import clapkit, numpy as np
        model = clapkit.load("default")
        text = model.embed_text(["a dog barking", "rain on a window"])
        audio = model.embed_audio(np.zeros(22050, np.float32) + 0.01, sample_rate=44100)
        assert text.shape == (2, 384) and audio.shape == (1, 384)  # v2: MiniLM's own space
        assert type(model.module.text_tower.model).__module__ == "clapkit.models.bert"
    """)
    assert "transformers" not in seen["heavy"] and "sklearn" not in seen["heavy"]
