#!/usr/bin/env bash
# Create .venv with clapkit installed (editable) and its test tools. Safe to re-run.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
# torch first and alone, pinned: the CPU wheel on this machine (a looser spec pulls a multi-GB CUDA build)
.venv/bin/pip install -q --disable-pip-version-check torch==2.13.0
.venv/bin/pip install -q --disable-pip-version-check -e ".[test]" "torch==2.13.0"
# open-clip-torch only ships the CLIP BPE vocabulary the CLIP-text tokenizer reads (the package is never imported)
.venv/bin/pip install -q --disable-pip-version-check --no-deps open-clip-torch
# aiSFX's pretrained sound-effects CNN starts the default model's recipe (`clapkit recipe default-model`); its own pins
# (numpy 1.23, librosa 0.9) would break the environment and it is never imported, so: no dependencies
.venv/bin/pip install -q --disable-pip-version-check --no-deps aisfx==0.1.2
