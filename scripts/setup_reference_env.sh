#!/usr/bin/env bash
# Create .venv-ref: the reference implementations (laion_clap, msclap, transformers) for the parity tests and
# benchmarks. Never needed at run time.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv-ref/bin/python ] || "$PY" -m venv .venv-ref
.venv-ref/bin/pip install -q --disable-pip-version-check torch==2.13.0
.venv-ref/bin/pip install -q --disable-pip-version-check torch==2.13.0 laion-clap==1.1.7 msclap==1.3.4 \
    transformers==4.57.6 pillow
