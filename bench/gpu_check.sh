#!/usr/bin/env bash
# The checks a machine with an NVIDIA GPU runs: the CUDA tests, the three benchmarks that
# take --device cuda, then the whole suite. Logs go to $OUT (or ./gpu-results).
#   PYTHON=python3 bash bench/gpu_check.sh
# Needs the project's dependencies importable by $PYTHON. On the device tool's CUDA image
# (Python 3.12, its own torch and torch-geometric) that meant carrying cp312 wheels of
# backtrader, optuna, alembic, SQLAlchemy, Mako, colorlog, vaderSentiment, finvader 1.0.4
# (installed with --ignore-requires-python; only its lexicon files are read) and a wheel
# of ta built from its sdist (`pip wheel --no-deps ta==0.11.0`); Ray was left out.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-gpu-results}
py=${PYTHON:-python3}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
started=$(date +%s)
stamp() { echo "[gpu_check] $1 at +$(( $(date +%s) - started )) s" | tee -a "$out/steps.log"; }
{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  nproc
  "$py" -c "import sys, torch; print(sys.version.split()[0], torch.__version__, 'cuda',
torch.version.cuda, torch.cuda.get_device_name())"
} 2>&1 | tee "$out/machine.txt"
stamp "cuda tests"
timeout 240 "$py" -m pytest -q -p no:cacheprovider -rs tests/test_cuda.py 2>&1 | tee "$out/cuda_tests.log"
stamp "bench_predictor"
timeout 120 "$py" bench/bench_predictor.py --device cuda --repeats 3 2>&1 | tee "$out/bench_predictor.log"
stamp "bench_backtest"
timeout 120 "$py" bench/bench_backtest.py --device cuda --repeats 3 2>&1 | tee "$out/bench_backtest.log"
stamp "bench_multiasset"
timeout 180 "$py" bench/bench_multiasset.py --device cuda --repeats 5 --assets 32,500,2000 2>&1 | tee "$out/bench_multiasset.log"
stamp "whole suite"
timeout "${SUITE_TIMEOUT:-240}" "$py" -m pytest -q -p no:cacheprovider -n 8 \
  --ignore=tests/test_install.py 2>&1 | tee "$out/suite.log"
stamp "done"
