"""Walk-forward training cost against history length: the schedule's growth exponent.

Walk-forward over 1k-8k bars (real features of the four shipped stocks, one after the
other on an hourly calendar), retraining every 250 bars from 500, expanding and rolling
(1,000 bars), one torch thread. Prints per length the wall time, the share of it spent
in validation (target <= 10%), and the log-log slope of time against bars for each
schedule (the expanding one grows about as bars^2; rolling target <= 1.2).

    python bench/bench_training.py [--sizes 1000 2000 4000 8000] [--epochs 4]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lstm_strategy import (  # noqa: E402
    ModelConfig,
    TrainConfig,
    build_features,
    load_ohlcv,
    make_target,
    walk_forward,
)
from lstm_strategy.models import ForecastModel  # noqa: E402


def long_history(bars: int) -> tuple[pd.DataFrame, pd.Series]:
    """Real features and targets, stock after stock, on one hourly calendar of `bars` rows."""
    parts, targets = [], []
    for ticker in ("AAPL", "MSFT", "GOOG", "IBM"):
        frame = load_ohlcv(ROOT / "data" / f"{ticker}.csv")
        feats = build_features(frame)
        keep = feats.notna().all(axis=1)
        parts.append(feats[keep])
        targets.append(make_target(frame["Close"], 1)[keep])
    features, target = pd.concat(parts), pd.concat(targets)
    if bars > len(features):
        raise SystemExit(f"--sizes: at most {len(features)} bars of real features here")
    index = pd.date_range("2001-01-01", periods=bars, freq="h")
    return (features.iloc[:bars].set_axis(index), target.iloc[:bars].set_axis(index))


class ValidationClock:
    """Wall time spent in every model class's validation_loss while installed."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._saved: list[tuple[type, object]] = []

    def __enter__(self) -> ValidationClock:
        for cls in _subclasses(ForecastModel):
            if "validation_loss" in vars(cls):
                original = vars(cls)["validation_loss"]
                self._saved.append((cls, original))
                cls.validation_loss = self._timed(original)
        return self

    def _timed(self, fn):
        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - start
        return timed

    def __exit__(self, *exc: object) -> None:
        for cls, original in self._saved:
            cls.validation_loss = original


def _subclasses(cls: type) -> list[type]:
    out = [cls]
    for sub in cls.__subclasses__():
        out += _subclasses(sub)
    return out


def slope(sizes: list[int], seconds: list[float]) -> float:
    """Least-squares slope of log(seconds) against log(bars)."""
    return float(np.polyfit(np.log(sizes), np.log(seconds), 1)[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 2000, 4000, 8000])
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--window", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--hidden", type=int, default=32)
    parser.add_argument("--layers", type=int, default=1)
    parser.add_argument("--context", type=int, default=100)
    args = parser.parse_args()
    torch.set_num_threads(1)
    model = ModelConfig(hidden_size=args.hidden, num_layers=args.layers)
    base = TrainConfig(min_train_bars=500, step=250, epochs=args.epochs, patience=args.epochs,
                       context_bars=args.context)
    schedules = {"expanding": base, "rolling": replace(base, train_window=args.window)}
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"torch {torch.__version__}, one thread; sequence LSTM hidden {args.hidden} x "
          f"{args.layers}, {args.epochs} epochs a fold, retrain every 250 bars from 500, "
          f"context {args.context}, rolling window {args.window}")
    warm = long_history(1000)
    walk_forward(*warm, model, base, device="cpu", progress=False)  # first-call costs out
    results: dict[str, list[float]] = {name: [] for name in schedules}
    for bars in args.sizes:
        features, target = long_history(bars)
        for name, config in schedules.items():
            runs = []
            for _ in range(args.repeats):  # the quickest repeat: noise only adds time
                with ValidationClock() as clock:
                    start = time.perf_counter()
                    walk_forward(features, target, model, config, device="cpu",
                                 progress=False)
                    runs.append((time.perf_counter() - start, clock))
            wall, clock = min(runs, key=lambda run: run[0])
            results[name].append(wall)
            print(f"  {bars:6d} bars {name:9s} {wall:7.2f} s, validation "
                  f"{clock.seconds / wall:5.1%} of it")
    for name, seconds in results.items():
        print(f"  {name}: time grows as bars^{slope(args.sizes, seconds):.2f}")


if __name__ == "__main__":
    main()
