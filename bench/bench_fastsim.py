"""Fast evaluator vs backtrader: seconds per strategy point on one cached forecast set.

AAPL (one ticker) and AAPL, MSFT, IBM (three), 2000-2013 (3,270 bars), the naive
forecast, a spread of strategy points; both engines run the same points in this
process, alternating, and give the same fills (checked). Then the whole 1,000-point
one-ticker sweep from the CLI (2 workers, the default experiment with a small model):
once with training, once more into a new folder on the cached forecasts ("after
training"), against backtrader's per-point time measured above.

    python bench/bench_fastsim.py [--points N] [--no-sweep]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lstm_strategy import LSTMStrategy, backtest, load_many  # noqa: E402
from lstm_strategy.backtest.fastsim import FastEvaluator  # noqa: E402
from lstm_strategy.config import BrokerConfig  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=10)
    parser.add_argument("--no-sweep", action="store_true", help="skip the whole-sweep timing")
    args = parser.parse_args()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        three = load_many([ROOT / "data" / f"{t}.csv" for t in ("AAPL", "MSFT", "IBM")])
    broker = BrokerConfig()
    rng = np.random.default_rng(0)
    for label, bars in (("1 ticker", {"AAPL": three["AAPL"]}), ("3 tickers", three)):
        forecasts = {t: np.log(f["Close"]).diff() for t, f in bars.items()}
        started = time.perf_counter()
        evaluator = FastEvaluator(bars, forecasts)
        evaluator.run()  # compiles on first use (cached on disk afterwards)
        print(f"{label}: first call (compile or load the cache, prepare) "
              f"{time.perf_counter() - started:.2f} s")
        slow, fast = [], []
        for _ in range(args.points):
            params = {"entry_threshold": float(rng.choice([0.0, 0.001, 0.002])),
                      "min_hold_bars": int(rng.choice([0, 5, 10])),
                      "allow_short": bool(rng.integers(2))}
            started = time.perf_counter()
            ref = backtest(bars, LSTMStrategy, broker=broker, forecasts=forecasts,
                           record=False, cross_check=False, **params)
            slow.append(time.perf_counter() - started)
            started = time.perf_counter()
            out = evaluator.run(**params)
            fast.append(time.perf_counter() - started)
            assert len(out.fills) == len(ref.fills)
        s, f = statistics.median(slow), statistics.median(fast)
        print(f"{label}: backtrader {s * 1000:.0f} ms/point, fast evaluator {f * 1000:.2f} "
              f"ms/point: {s / f:.0f}x ({args.points} points, medians)")
        grid = [{"entry_threshold": e, "min_hold_bars": h, "allow_short": short,
                 "stop_loss": stop, "rebalance_band": band}
                for e in np.linspace(0, 0.004, 10) for h in (0, 2, 5, 10, 20)
                for short in (False, True) for stop in (0.0, 0.03, 0.06, 0.1, 0.2)
                for band in (0.05, 0.2)][:1000]
        started = time.perf_counter()
        for params in grid:
            evaluator.run(**params)
        print(f"{label}: {len(grid)} strategy points on one forecast set, one core: "
              f"{time.perf_counter() - started:.1f} s")
        if label == "1 ticker":
            per_point = s
    if not args.no_sweep:
        whole_sweep(per_point)


SWEEP = """\
base: default
set:
  model.hidden_size: 16
  train.epochs: 5
vary:
  strategy.entry_threshold: {low: 0.0, high: 0.0045, step: 0.0005}
  strategy.min_hold_bars: [0, 2, 5, 10, 20]
  strategy.stop_loss: [0.0, 0.03, 0.06, 0.1, 0.2]
  strategy.allow_short: [false, true]
  strategy.rebalance_band: [0.05, 0.2]
search: grid
workers: 2
"""


def whole_sweep(backtrader_per_point: float) -> None:
    """`lstm-backtest sweep` of 1,000 points: with training, then on cached forecasts with
    the loop compiled afresh (an empty Numba cache) and with it loaded from Numba's cache."""
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        (folder / "sweep.yaml").write_text(SWEEP)
        runs = (("with training, compiling", "fresh"),
                ("after training, compiling the loop", "fresh2"),
                ("after training, loop compiled before (Numba's disk cache)", "fresh2"))
        for run, (what, numba) in enumerate(runs):
            env = {**os.environ, "LSTM_STRATEGY_CACHE": str(folder / "cache"),
                   "NUMBA_CACHE_DIR": str(folder / numba)}
            started = time.perf_counter()
            subprocess.run([sys.executable, "-m", "lstm_strategy", "sweep", "--config",
                            str(folder / "sweep.yaml"), "--out", str(folder / f"out{run}"),
                            "--quiet"], check=True, env=env, cwd=ROOT,
                           stdout=subprocess.DEVNULL)
            wall = time.perf_counter() - started
            reference = backtrader_per_point * 1000 / 2
            print(f"1,000-point sweep, 1 ticker, 2 workers, {what}: {wall:.1f} s wall (CLI "
                  f"start-up included); backtrader's points alone, 2 workers: "
                  f"{reference:.0f} s ({reference / wall:.0f}x)")


if __name__ == "__main__":
    main()
