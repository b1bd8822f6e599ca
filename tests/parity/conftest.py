"""Parity fixtures: the references are built by ``tests/parity/reference_*.py`` in the reference environment.

Once per test session, in a temporary directory (or in ``$CLAPKIT_PARITY_DIR`` to keep them between sessions: they
are rebuilt there when any file of the harness changed). The builders use only ``tests/parity/offline.py`` and
``refkit.py``: nothing outside the repository. A missing reference environment is a test failure with instructions,
never a skip.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
TOLERANCE = 1e-4
MEASURED: list[tuple[str, str, float]] = []


def _reference_python() -> Path:
    return Path(os.environ.get("CLAPKIT_REF_PYTHON", ROOT / ".venv-ref" / "bin" / "python"))


def _harness_hash() -> str:
    digest = hashlib.sha256()
    for path in sorted(HERE.glob("*.py")):
        if not path.name.startswith("test_"):
            digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()[:16]


def _build(script: Path, out: Path, python: Path) -> subprocess.Popen:
    log = open(out / f"{script.stem}.log", "w")  # noqa: SIM115 (closed by the caller through .stdout)
    return subprocess.Popen([str(python), str(script), "--out", str(out)], stdout=log, stderr=subprocess.STDOUT)


@pytest.fixture(scope="session")
def parity_dir(tmp_path_factory):
    """Every ``reference_*.py`` run once (two at a time) into one directory shared by all parity tests; removed at
    the end of the session unless it is ``$CLAPKIT_PARITY_DIR`` (the references take ~12 GB)."""
    keep = os.environ.get("CLAPKIT_PARITY_DIR")
    out = Path(keep) if keep else tmp_path_factory.mktemp("parity")
    try:
        yield _built(out)
    finally:
        if not keep:
            shutil.rmtree(out, ignore_errors=True)


def _built(out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    stamp, version = out / "harness.json", _harness_hash()
    if stamp.exists() and json.loads(stamp.read_text()).get("hash") == version:
        return out
    python = _reference_python()
    if not python.exists():
        pytest.fail(
            f"reference environment not found at {python}: run `bash scripts/setup_reference_env.sh` "
            "(or set CLAPKIT_REF_PYTHON to a Python with laion-clap 1.1.7, msclap 1.3.4 and transformers 4.57.6)"
        )
    scripts = sorted(HERE.glob("reference_*.py"), key=lambda p: (p.stem != "reference_laion", p.stem))
    running = [(scripts[0], _build(scripts[0], out, python))]  # the longest one beside all the others in turn
    for script in scripts[1:]:
        done = _build(script, out, python)
        done.wait()
        running.append((script, done))
    for script, process in running:
        if process.wait() != 0:
            log = (out / f"{script.stem}.log").read_text()
            pytest.fail(f"{script.name} failed (exit {process.returncode}):\n{log[-4000:]}")
    for script, _ in running:
        sys.stderr.write((out / f"{script.stem}.log").read_text()[-600:])
    stamp.write_text(json.dumps({"hash": version}))
    return out


def record(model: str, what: str, expected: np.ndarray, actual: np.ndarray, tolerance: float = TOLERANCE) -> float:
    """Store and assert the max abs difference between reference and clapkit outputs."""
    diff = max_diff(model, what, expected, actual)
    MEASURED.append((model, what, diff))
    print(f"[parity] {model:28s} {what:40s} max|diff| = {diff:.2e}")
    assert diff <= tolerance, f"{model} {what}: max abs difference {diff:.3g} > {tolerance}"
    return diff


def max_diff(model: str, what: str, expected: np.ndarray, actual: np.ndarray) -> float:
    expected, actual = np.asarray(expected, dtype=np.float64), np.asarray(actual, dtype=np.float64)
    assert expected.shape == actual.shape, f"{model} {what}: shape {actual.shape} != reference {expected.shape}"
    return float(np.abs(expected - actual).max())


def assert_input_sensitive(model: str, first: np.ndarray, second: np.ndarray, what: str = "audio") -> float:
    """Two different inputs must give embeddings at least 100x the tolerance apart, or parity proves little.

    Captions: 10x. HF's randomly initialised text tower (std-0.02 init, the pooled first token) keeps two captions only
    3e-3 apart even perturbed (LAION and MS-CLAP text: 1.5e-2 .. 1.2e-1); its text is still checked on the same ids."""
    gap = float(np.abs(np.asarray(first, np.float64) - np.asarray(second, np.float64)).max())
    factor = 100 if what == "audio" else 10
    MEASURED.append((model, f"input sensitivity ({what}, want >= {factor * TOLERANCE:.0e})", gap))
    assert gap >= factor * TOLERANCE, f"{model}: two different {what} inputs differ by only {gap:.3g}"
    return gap


def pytest_terminal_summary(terminalreporter):
    if MEASURED:
        terminalreporter.section("parity: max abs differences (clapkit vs reference)")
        for model, what, diff in MEASURED:
            terminalreporter.write_line(f"{model:28s} {what:52s} {diff:.2e}")
