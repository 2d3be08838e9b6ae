"""CPU threads benchmark: torch with 1 thread vs all cores, on an idle and on a busy machine.

Each case runs in a fresh process: a small walk-forward training (real AAPL features,
the default sequence LSTM) and a batch forecast over 20,000 bars. "busy" starts one
spinning process per core first, as a parallel sweep or another user would. Prints
seconds per case and the ratio of all-cores to one thread (> 1: one thread is faster).

    python bench/bench_threads.py [--repeats N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

WORKLOAD = """
import sys, time, warnings
sys.path.insert(0, {root!r})
import numpy as np, torch
torch.set_num_threads({threads})
from lstm_strategy import ModelConfig, TrainConfig, build_features, load_ohlcv, make_target
from lstm_strategy import walk_forward
bars = load_ohlcv({root!r} + "/data/AAPL.csv").loc["2003":"2007"]
features, target = build_features(bars), make_target(bars["Close"], 1)
start = time.perf_counter()
result = walk_forward(features, target, ModelConfig(), TrainConfig(min_train_bars=500,
                      step=250, epochs=3, patience=5), device="cpu", progress=False)
train_s = time.perf_counter() - start
rows = np.tile(features.dropna().to_numpy(), (20, 1))[:20_000]
forecaster = result.folds[-1].forecaster
start = time.perf_counter()
forecaster.forecast_rows(rows)
print(train_s, time.perf_counter() - start)
"""


def run_case(threads: int) -> tuple[float, float]:
    code = WORKLOAD.format(root=str(ROOT), threads=threads)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    return float(out[0]), float(out[1])


def spinners(count: int) -> list[subprocess.Popen]:
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    print(f"{cores} cores; cases: threads 1 and {cores}, idle and with {cores} busy "
          f"process(es); median of {args.repeats}")
    results = {}
    for load in ("idle", "busy"):
        busy = spinners(cores) if load == "busy" else []
        try:
            time.sleep(0.5 if busy else 0.0)
            for threads in (1, cores):
                runs = [run_case(threads) for _ in range(args.repeats)]
                results[load, threads] = tuple(statistics.median(r[k] for r in runs)
                                               for k in (0, 1))
        finally:
            for proc in busy:
                proc.kill()
                proc.wait()
    print(f"\n{'case':24s} {'train s':>9s} {'forecast s':>11s}")
    for (load, threads), (train_s, forecast_s) in results.items():
        print(f"{load + ', ' + str(threads) + ' thread(s)':24s} {train_s:9.2f} {forecast_s:11.3f}")
    for load in ("idle", "busy"):
        one, many = results[load, 1], results[load, cores]
        print(f"{load}: {cores} threads / 1 thread = {many[0] / one[0]:.2f}x training, "
              f"{many[1] / one[1]:.2f}x forecast  (> 1: one thread is faster)")


if __name__ == "__main__":
    main()
