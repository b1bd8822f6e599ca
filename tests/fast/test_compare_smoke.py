"""benchmarks/compare.py runs end to end against the reference environment and prints its Markdown tables."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from tests.parity.conftest import ROOT, _reference_python


def test_compare_quick_prints_table(tmp_path):
    python = _reference_python()
    if not python.exists():
        pytest.fail(f"reference environment not found at {python}: run `bash scripts/setup_reference_env.sh` "
                    "or set CLAPKIT_REF_PYTHON")
    corpus = tmp_path / "corpus"  # missing on purpose: the run must say so and go on
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "compare.py"), "--quick", "--no-train",
                             "--no-profile", "--ref-python", str(python), "--corpus", str(corpus),
                             "--json", str(tmp_path / "out.json")],
                            capture_output=True, text=True, cwd=ROOT, env=env, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert "| measurement | side | median | best | CPU ms/item | ratio median |" in out
    for row in ("audio b1", "audio b8", "text b32 vs transformers"):
        assert row in out
    assert "| | clapkit fp32 |" in out and re.search(r"\| \| clapkit fast \((bf16|int8)\) \|", out)
    assert "| audio_b8 | clapkit |" in out and "sound corpus not found" in out
    assert "train step" not in out
    assert (tmp_path / "out.json").exists()
