#!/usr/bin/env bash
# Set up both environments if needed, lint, and run the whole test suite (parity tests included).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/setup_test.sh
bash scripts/setup_reference_env.sh
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
.venv/bin/ruff check src tests benchmarks
.venv/bin/python -m pytest tests -q "$@"
