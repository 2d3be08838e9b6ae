"""The default run end to end (`python -m lstm_strategy run`), against an older revision.

Both checkouts run the same command with an empty forecast cache (and a warm Numba cache,
as on any machine after its first run), interleaved; prints the median wall time of
each, the ratio, and whether the two runs traded alike (trades.csv, orders.csv and
metrics' numbers equal). The reference revision is checked out in a temporary git
worktree (default: the one before this session's changes).

    python bench/bench_default_run.py [--against REV] [--repeats N]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]


def run_once(checkout: Path, scratch: Path) -> tuple[float, Path]:
    """Wall seconds of one default run from `checkout`, with a fresh forecast cache."""
    out = Path(tempfile.mkdtemp(dir=scratch))
    env = {**os.environ, "LSTM_STRATEGY_CACHE": str(out / "cache"),
           "NUMBA_CACHE_DIR": str(scratch / f"numba-{checkout.name}"),
           "PYTHONPATH": str(checkout)}
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "lstm_strategy", "run", "--quiet", "--out",
                    str(out / "run")], cwd=checkout, env=env, check=True,
                   stdout=subprocess.DEVNULL)
    return time.perf_counter() - start, out / "run"


def same_trades(a: Path, b: Path) -> bool:
    """Both runs made the same fills and trades and the same strategy and baseline metrics."""
    for name in ("trades.csv", "orders.csv"):
        if not pd.read_csv(a / name).equals(pd.read_csv(b / name)):
            return False
    metrics = [json.loads((run / "metrics.json").read_text()) for run in (a, b)]
    return all(metrics[0][key] == metrics[1][key] for key in ("strategy", "baselines"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", default="ae7d11c")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="bench-default-"))
    reference = scratch / "reference"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "-q", "--detach",
                    str(reference), args.against], check=True)
    try:
        checkouts = {"reference": reference, "this": ROOT}
        for checkout in checkouts.values():  # first runs fill the Numba caches
            run_once(checkout, scratch)
        times: dict[str, list[float]] = {name: [] for name in checkouts}
        runs: dict[str, Path] = {}
        for _ in range(args.repeats):
            for name, checkout in checkouts.items():
                seconds, runs[name] = run_once(checkout, scratch)
                times[name].append(seconds)
        ref, this = (statistics.median(times[k]) for k in ("reference", "this"))
        print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} "
              f"cores; default run, empty forecast cache, {args.repeats} interleaved repeats")
        for name in checkouts:
            label = f"{args.against} (reference)" if name == "reference" else "this checkout"
            print(f"  {label:28s} median {statistics.median(times[name]):6.2f} s "
                  f"({min(times[name]):.2f}-{max(times[name]):.2f})")
        print(f"  this checkout is {1 - this / ref:.0%} faster (target >= 25%); "
              f"same trades: {same_trades(runs['reference'], runs['this'])}")
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force",
                        str(reference)], check=False)
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
