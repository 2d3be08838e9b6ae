#!/usr/bin/env bash
# Set up .venv if needed, then lint and run the test suite (args go to pytest).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check .
exec .venv/bin/python -m pytest "$@"
