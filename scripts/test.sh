#!/usr/bin/env bash
# Set up .venv if needed, then lint and run the test suite (args go to pytest).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# the report tests open every page in headless Chromium; Debian's package where we may
# install it (they skip, saying so, where it is absent)
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "[test] installing Debian's chromium for the browser tests" >&2
  timeout 600 sh -c 'apt-get install -y -q chromium >/dev/null 2>&1 ||
    { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium >/dev/null 2>&1; }' ||
    echo "[test] chromium could not be installed: the browser tests will skip" >&2
fi
.venv/bin/ruff check .
exec .venv/bin/python -m pytest "$@"
