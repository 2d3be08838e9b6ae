"""Sweep commands as a user times them: wall seconds of `python -m lstm_strategy sweep`.

strategies/sweep_example.yaml (2 model configs x 25 strategy points), interleaved repeats:
  - the first sweep (empty forecast cache: two trainings), once
  - the same command again in its folder, nothing to do: target <= 1.5 s
  - the same sweep in a new folder, forecasts cached (50 points again): target <= 4 s
  - for scale, in the same run: `python -c pass` and `python -c "import torch"`

    python bench/bench_sweep_cli.py [--repeats N]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def wall(args: list[str], env: dict) -> float:
    start = time.perf_counter()
    subprocess.run(args, cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-sweep-cli-"))
    env = {**os.environ, "LSTM_STRATEGY_CACHE": str(work / "cache")}
    sweep = [sys.executable, "-m", "lstm_strategy", "sweep", "--config", "sweep_example",
             "--quiet", "--out"]
    try:
        first = wall([*sweep, str(work / "first")], env)
        times: dict[str, list[float]] = {"python": [], "torch": [], "rerun": [], "new": []}
        for i in range(args.repeats):
            times["python"].append(wall([sys.executable, "-c", "pass"], env))
            times["torch"].append(wall([sys.executable, "-c", "import torch"], env))
            times["rerun"].append(wall([*sweep, str(work / "first")], env))
            times["new"].append(wall([*sweep, str(work / f"new{i}")], env))
        print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} "
              f"cores; sweep_example (50 points, workers 2), {args.repeats} interleaved "
              f"repeats, medians (min-max)")
        print(f"  first sweep, empty forecast cache      {first:6.2f} s")
        labels = {"rerun": "rerun in its folder, nothing to do", "new":
                  "new folder, forecasts cached", "python": "python -c pass",
                  "torch": "python -c 'import torch'"}
        for key in ("rerun", "new", "python", "torch"):
            print(f"  {labels[key]:38s} {statistics.median(times[key]):6.2f} s "
                  f"({min(times[key]):.2f}-{max(times[key]):.2f})")
        rerun, new = (statistics.median(times[k]) for k in ("rerun", "new"))
        print(f"  targets: rerun <= 1.5 s {'met' if rerun <= 1.5 else 'NOT met'}; "
              f"new folder <= 4 s {'met' if new <= 4 else 'NOT met'}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
