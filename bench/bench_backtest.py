"""Backtest throughput (bars/s) on >= 10,000 bars, side by side in one run.

  noop        backtrader with a strategy that does nothing
  floor       backtrader placing the LSTM strategy's orders from a precomputed array
  lstm_batch  LSTMStrategy reading batch forecasts from a feed line   (target >= 0.8x floor)
  lstm_stream LSTMStrategy stepping the LSTM once per bar
  naive_win   a strategy calling the window model on the last 60 bars every bar (tutorials)

Training is excluded from the throughput and reported separately. The bars are a seeded
synthetic random walk (the shipped files hold 3,270 bars each); the model is the default
sequence LSTM (hidden 64, 2 layers), trained walk-forward for one epoch per fold.

    python bench/bench_backtest.py [--bars 12000] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import backtrader as bt
import numpy as np
import pandas as pd
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lstm_strategy import (  # noqa: E402
    LSTMStrategy,
    ModelConfig,
    TrainConfig,
    build_features,
    make_feed,
    make_target,
    walk_forward,
)
from lstm_strategy.backtest import make_cerebro  # noqa: E402
from lstm_strategy.forecaster import resolve_device  # noqa: E402
from lstm_strategy.models import build_model  # noqa: E402


def synthetic_bars(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 50 * np.exp(np.cumsum(rng.normal(0.0003, 0.015, n)))
    open_ = close * np.exp(rng.normal(0, 0.004, n))
    high = np.maximum(open_, close) * (1 + np.abs(rng.normal(0, 0.006, n)))
    low = np.minimum(open_, close) * (1 - np.abs(rng.normal(0, 0.006, n)))
    volume = rng.integers(100_000, 1_000_000, n).astype(float)
    return pd.DataFrame({"Open": open_, "High": high, "Low": low, "Close": close,
                         "Volume": volume}, index=pd.bdate_range("1980-01-02", periods=n))


class Noop(bt.Strategy):
    def next(self) -> None:
        pass


class FromArray(bt.Strategy):
    """The floor: orders from a precomputed target array, nothing else."""

    params = (("targets", None),)

    def __init__(self) -> None:
        self._i = 0
        self._last = 0.0
        self.fills = 0

    def notify_order(self, order: bt.Order) -> None:
        self.fills += order.status == order.Completed

    def next(self) -> None:
        target = self.p.targets[self._i]
        self._i += 1
        if target != self._last:
            self.order_target_percent(target=target)
            self._last = target


class NaiveWindow(bt.Strategy):
    """What tutorials do: every bar, scale the last 60 feature rows and call the model."""

    params = (("model", None), ("features", None), ("mean", None), ("std", None),
              ("device", None), ("window", 60), ("start", 0))

    def __init__(self) -> None:
        self._i = 0
        self._long = False

    @torch.no_grad()
    def next(self) -> None:
        i = self._i
        self._i += 1
        if i < self.p.start:
            return
        rows = (self.p.features[i - self.p.window + 1:i + 1] - self.p.mean) / self.p.std
        x = torch.as_tensor(rows, dtype=torch.float32, device=self.p.device).unsqueeze(0)
        forecast = float(self.p.model(x)[0].item())
        if forecast > 0 and not self._long:
            self.order_target_percent(target=0.95)
            self._long = True
        elif forecast <= 0 and self._long:
            self.order_target_percent(target=0.0)
            self._long = False


def run_once(bars: pd.DataFrame, extra: pd.DataFrame | None, strategy: type,
             **params: object) -> tuple[float, bt.Strategy]:
    cerebro = make_cerebro()
    cerebro.adddata(make_feed(bars, extra, name="X"))
    cerebro.addstrategy(strategy, **params)
    start = time.perf_counter()
    strat = cerebro.run()[0]
    return time.perf_counter() - start, strat


def timed_runs(runs: dict[str, tuple], repeats: int) -> tuple[dict[str, float], dict]:
    """Median seconds per named run, the runs interleaved so drift hits all alike."""
    times: dict[str, list[float]] = {name: [] for name in runs}
    strategies = {}
    for _ in range(repeats):
        for name, (bars, extra, strategy, params) in runs.items():
            seconds, strategies[name] = run_once(bars, extra, strategy, **params)
            times[name].append(seconds)
    return {name: statistics.median(t) for name, t in times.items()}, strategies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bars", type=int, default=12_000)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (the project's default, 1; 0 = one per core)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    bars = synthetic_bars(args.bars)
    features = build_features(bars)
    target = make_target(bars["Close"], 1)
    model_config = ModelConfig()
    train_config = TrainConfig(epochs=1, step=1000, min_train_bars=1000)
    started = time.perf_counter()
    result = walk_forward(features, target, model_config, train_config, device=device,
                          progress=False)
    train_s = time.perf_counter() - started
    start = result.first_forecast_date
    n = len(bars)
    print(f"{n} bars, device {device}, torch threads {torch.get_num_threads()}; walk-forward "
          f"training ({len(result.folds)} folds x 1 epoch) took {train_s:.1f}s (excluded)")

    forecast_line = result.predictions.rename("forecast").to_frame()
    _, batch = run_once(bars, forecast_line, LSTMStrategy, trade_start=start)
    records = batch.record_frame().set_index("date")["target"]
    targets = records.reindex(bars.index).fillna(0.0).to_numpy()
    rows, strategies = timed_runs({
        "noop": (bars, None, Noop, {}),
        "floor": (bars, None, FromArray, {"targets": targets}),
        "lstm_batch": (bars, forecast_line, LSTMStrategy, {"trade_start": start}),
    }, args.repeats)
    floor_s, batch_s = rows["floor"], rows["lstm_batch"]
    if strategies["floor"].fills != len(batch.fills):
        raise SystemExit(f"the floor placed {strategies['floor'].fills} fills, "
                         f"LSTMStrategy {len(batch.fills)}")
    rows["lstm_stream"], _ = run_once(bars, features, LSTMStrategy, trade_start=start,
                                      stream=result.stream(),
                                      feature_lines=tuple(features.columns))
    window_model = build_model(features.shape[1], ModelConfig(kind="window")).to(device).eval()
    values = features.to_numpy()
    rows["naive_window"], _ = run_once(bars, None, NaiveWindow, model=window_model,
                                       features=values, mean=np.nanmean(values, 0),
                                       std=np.nanstd(values, 0), device=device,
                                       start=int(features.index.get_loc(start)))

    print(f"\n{'strategy':14s} {'bars/s':>10s} {'us/bar':>9s} {'vs floor':>9s}")
    for name in ("noop", "floor", "lstm_batch", "lstm_stream", "naive_window"):
        seconds = rows[name]
        print(f"{name:14s} {n / seconds:10,.0f} {seconds / n * 1e6:9.1f} "
              f"{floor_s / seconds:8.2f}x")
    print(f"\nLSTMStrategy batch / floor bars/s: {floor_s / batch_s:.2f}x (target >= 0.8x); "
          f"{len(batch.fills)} fills")
    if args.json:
        args.json.write_text(json.dumps({"bars": n, "train_s": train_s,
                                         "seconds": rows}, indent=2))


if __name__ == "__main__":
    main()
