#!/usr/bin/env bash
# Set up .venv if needed, then run the default backtest on the shipped data (args pass through).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/lstm-backtest run "$@"
