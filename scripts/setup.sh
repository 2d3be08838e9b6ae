#!/usr/bin/env bash
# Create (or refresh) the project-local virtualenv .venv with the package and dev tools.
# torch first, pinned, so nothing pulls a multi-GB CUDA build on a CPU machine.
# Override: TORCH_SPEC="torch==2.5.1+cu121" PIP_EXTRA_INDEX_URL=... bash scripts/setup.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check -q)
if ! "$VENV/bin/python" -c "import torch" >/dev/null 2>&1; then
  if [ -z "${TORCH_SPEC:-}" ]; then
    if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
      TORCH_SPEC="torch>=2.2"
    else
      TORCH_SPEC="torch==2.13.0"
    fi
  fi
  echo "[setup] installing $TORCH_SPEC" >&2
  "${PIP[@]}" install "$TORCH_SPEC"
fi
stamp="$VENV/.lstm-strategy-setup"
want=$(cat setup.cfg pyproject.toml | cksum)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ] || ! "$VENV/bin/python" -c "import lstm_strategy" >/dev/null 2>&1; then
  echo "[setup] installing lstm-strategy and its dependencies into $VENV" >&2
  "${PIP[@]}" install -e ".[dev]"
  # compile the fast evaluator's loops and the streaming step now, into Numba's disk
  # cache, so a first sweep here does not wait for them (13 s from nothing)
  "$VENV/bin/python" -c "from lstm_strategy.backtest.fastsim import warm_up; warm_up()
from lstm_strategy.backtest.fastbook import warm_up as book; book()
from lstm_strategy.models._hoststep import warm_up as step; step()" || true
  echo "$want" > "$stamp"
fi
