"""Your own model against the built-in one, and the audit's wall time, in one run.

- Training throughput and batch forecast cost of the example GRU (examples/user_models.py,
  through `SequenceModel`) against the built-in sequence LSTM of the same size (hidden 64,
  2 layers), on AAPL's 3,270 bars, one torch thread, alternating, medians (target: the
  GRU within 1.3x of the LSTM's time). Beside them, to tell the framework's cost from the
  layer's: the same nn.LSTM as a user model (SequenceModel) against the built-in, and
  bare nn.GRU / nn.LSTM passes over the same rows (torch's CPU GRU has no fused kernel).
- `lstm-backtest audit` of the default config with its default settings, from the CLI
  (target: under 2 minutes on 2 cores).

    python bench/bench_user_models.py [--repeats N] [--no-audit]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from torch import nn  # noqa: E402

from lstm_strategy import ModelConfig, TrainConfig, build_features, load_ohlcv  # noqa: E402
from lstm_strategy.features import make_target  # noqa: E402
from lstm_strategy.models import SequenceModel  # noqa: E402
from lstm_strategy.training import fit_forecaster  # noqa: E402

GRU = f"{ROOT / 'examples' / 'user_models.py'}:GRUForecaster"


class UserLSTM(SequenceModel):
    """The built-in's nn.LSTM, written as a user model: what SequenceModel itself costs."""

    def __init__(self, n_features: int, config: object) -> None:
        super().__init__(n_features, config)
        self.lstm = nn.LSTM(n_features, 64, 2, batch_first=True)
        self.head = nn.Linear(64, 1)

    def forward(self, x: torch.Tensor, state: object = None) -> tuple:
        out, state = self.lstm(x, state)
        return self.head(out).squeeze(-1), state


def bare_pass(layer: nn.Module, rows: np.ndarray) -> float:
    """Seconds per bar of a bare layer over the rows in 256-step calls (no framework)."""
    x = torch.tensor(rows, dtype=torch.float32)
    with torch.no_grad():
        layer(x[None, :256])
        started = time.perf_counter()
        for _ in range(5):
            state = None
            for start in range(0, len(x), 256):
                _, state = layer(x[None, start:start + 256], state)
    return (time.perf_counter() - started) / 5 / len(x)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-audit", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    bars = load_ohlcv(ROOT / "data" / "AAPL.csv")
    features = build_features(bars)
    target = make_target(bars["Close"], 1)
    train = TrainConfig(epochs=3, patience=10, min_train_bars=500, step=126)
    models = {"built-in SequenceLSTM": ModelConfig(hidden_size=64, num_layers=2),
              "example GRU (SequenceModel)": ModelConfig(
                  kind=GRU, params={"hidden_size": 64, "layers": 2}),
              "nn.LSTM as a user model": ModelConfig(kind="__main__:UserLSTM")}
    fit_times = {name: [] for name in models}
    forecast_times = {name: [] for name in models}
    rows = features.dropna().to_numpy()
    for _ in range(args.repeats):
        for name, model in models.items():  # alternating, so drift hits both alike
            started = time.perf_counter()
            forecaster = fit_forecaster(features, target, model, replace(train), device="cpu")
            fit_times[name].append(time.perf_counter() - started)
            forecaster.forecast_rows(rows[:512])  # warm
            started = time.perf_counter()
            for _ in range(5):
                forecaster.forecast_rows(rows)
            forecast_times[name].append((time.perf_counter() - started) / 5 / len(rows))
    labels = int(np.isfinite(target.to_numpy()).sum())
    base = "built-in SequenceLSTM"
    print(f"{len(bars)} bars, {features.shape[1]} features, hidden 64 x 2 layers, 3 epochs, "
          f"one thread, {args.repeats} alternating repeats (medians)")
    for name in models:
        fit = statistics.median(fit_times[name])
        per_bar = statistics.median(forecast_times[name]) * 1e6
        print(f"  {name:30s} training {fit:6.2f} s ({3 * labels / fit:,.0f} targets/s), "
              f"batch forecast {per_bar:5.1f} us/bar")
    def ratio(times: dict, name: str) -> float:
        return statistics.median(times[name]) / statistics.median(times[base])

    for name, what in (("example GRU (SequenceModel)", "GRU / built-in LSTM"),
                       ("nn.LSTM as a user model", "user LSTM / built-in LSTM")):
        print(f"  {what}: training {ratio(fit_times, name):.2f}x, forecast "
              f"{ratio(forecast_times, name):.2f}x (target <= 1.3x)")
    gru = bare_pass(nn.GRU(rows.shape[1], 64, 2, batch_first=True).eval(), rows)
    lstm = bare_pass(nn.LSTM(rows.shape[1], 64, 2, batch_first=True).eval(), rows)
    print(f"  bare torch, no framework: nn.GRU {gru * 1e6:.1f} us/bar, nn.LSTM "
          f"{lstm * 1e6:.1f} us/bar ({gru / lstm:.1f}x: the layer, not the framework)")
    if args.no_audit:
        return
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "lstm_strategy", "audit", "--quiet"],
                          cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - started
    verdict = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr
    print(f"audit of the default config from the CLI: {wall:.1f} s wall (target < 120 s), "
          f"exit {done.returncode}: {verdict}")


if __name__ == "__main__":
    main()
