"""Parity fixtures: reference outputs come from the reference environment (built by scripts/setup_reference_env.sh).

The reference models are built with random weights by ``tests/parity/reference_laion.py`` in that environment,
once per checkout (cached in ``.cache/parity``, or ``$CLAPKIT_PARITY_DIR``). A missing reference environment is a
test failure with instructions, never a skip.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
MEASURED: list[tuple[str, str, float]] = []


def _reference_python() -> Path:
    return Path(os.environ.get("CLAPKIT_REF_PYTHON", ROOT / ".venv-ref" / "bin" / "python"))


@pytest.fixture(scope="session")
def parity_dir() -> Path:
    """Run every ``tests/parity/reference_*.py`` whose outputs are missing or older than the script."""
    out = Path(os.environ.get("CLAPKIT_PARITY_DIR", ROOT / ".cache" / "parity"))
    python = _reference_python()
    for script in sorted(Path(__file__).parent.glob("reference_*.py")):
        manifest = out / f"manifest_{script.stem}.json"
        if manifest.exists() and manifest.stat().st_mtime >= script.stat().st_mtime:
            continue
        if not python.exists():
            pytest.fail(
                f"reference environment not found at {python}: run `bash scripts/setup_reference_env.sh` "
                "(or set CLAPKIT_REF_PYTHON to a Python with laion-clap 1.1.7, msclap 1.3.4 and transformers 4.57.6)"
            )
        result = subprocess.run([str(python), str(script), "--out", str(out)], capture_output=True, text=True)
        if result.returncode != 0:
            pytest.fail(f"{script.name} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
        manifest.write_text(json.dumps({"script": script.name, "log": result.stdout[-2000:]}))
    return out


def record(model: str, what: str, expected: np.ndarray, actual: np.ndarray, tolerance: float = 1e-4) -> float:
    """Store and assert the max abs difference between reference and clapkit outputs."""
    expected, actual = np.asarray(expected, dtype=np.float64), np.asarray(actual, dtype=np.float64)
    assert expected.shape == actual.shape, f"{model} {what}: shape {actual.shape} != reference {expected.shape}"
    diff = float(np.abs(expected - actual).max())
    MEASURED.append((model, what, diff))
    print(f"[parity] {model:28s} {what:40s} max|diff| = {diff:.2e}")
    assert diff <= tolerance, f"{model} {what}: max abs difference {diff:.3g} > {tolerance}"
    return diff


def pytest_terminal_summary(terminalreporter):
    if MEASURED:
        terminalreporter.section("parity: max abs differences (clapkit vs reference)")
        for model, what, diff in MEASURED:
            terminalreporter.write_line(f"{model:28s} {what:40s} {diff:.2e}")
