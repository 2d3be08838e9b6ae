"""Streaming step benchmark: one forecast a bar on the host, against its FLOP floor.

Measured in one run, interleaved (machines here are noisy), hidden 64 x 2 layers on 16
features, one thread:
  - the float64 FLOP floor of one step: its multiply-adds at the GEMM rate of this core
  - the compiled host step (`ForecastStream.step`), target <= 12 us and <= 5x the floor
  - the NumPy cell it replaced (the path without Numba), for the ratio
  - what `WalkForwardStream.step` adds over the stream it drives (target <= 2 us)
and checks that the steps equal the batch forecasts within 1e-6.

    python bench/bench_stream.py [--steps N] [--repeats N]
"""

from __future__ import annotations

import os

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = "1"  # before NumPy loads its BLAS: the floor is one core's

import argparse  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lstm_strategy import ModelConfig, build_features, load_ohlcv  # noqa: E402
from lstm_strategy.forecaster import Forecaster, Scaler, WalkForwardStream  # noqa: E402
from lstm_strategy.models import build_model  # noqa: E402

HIDDEN, LAYERS, FEATURES = 64, 2, 16


def gemm_flops_per_s(repeats: int = 7) -> float:
    """float64 multiply-add rate of one core: the best of a few 512 x 512 products."""
    a, b = np.random.default_rng(0).standard_normal((2, 512, 512))
    a @ b
    best = min(_time(lambda: a @ b) for _ in range(repeats))
    return 2 * 512 ** 3 / best


def _time(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def step_flops(n_in: int, hidden: int, layers: int) -> int:
    """Multiply-adds (2 flops each) of one step: every layer's gates, then the head."""
    widths = [n_in] + [hidden] * (layers - 1)
    return sum(2 * 4 * hidden * (w + hidden) for w in widths) + 2 * hidden


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    torch.set_num_threads(1)

    feats = build_features(load_ohlcv(ROOT / "data" / "AAPL.csv")).dropna()
    x = np.tile(feats.to_numpy(), (1, 2))[:, :FEATURES].astype(np.float64)
    x = np.tile(x, (-(-args.steps // len(x)), 1))[:args.steps]
    index = pd.date_range("2000-01-03", periods=len(x), freq="B")
    torch.manual_seed(0)
    config = ModelConfig(hidden_size=HIDDEN, num_layers=LAYERS)
    forecaster = Forecaster(build_model(FEATURES, config), config,
                            [f"f{i}" for i in range(FEATURES)], Scaler(x.mean(0), x.std(0)),
                            0.02, 1, "cpu")

    def stream_steps() -> np.ndarray:
        stream = forecaster.stream()
        return np.array([stream.step(row) for row in x])

    def numpy_steps() -> np.ndarray:
        stream = forecaster.stream()
        stream._step = stream._host.numpy_step  # the NumPy cell: what runs without Numba
        return np.array([stream.step(row) for row in x])

    def walk_steps() -> np.ndarray:
        walk = WalkForwardStream([(index[0], forecaster)], context_bars=0)
        return np.array([walk.step(date, row) for date, row in zip(index, x, strict=True)])

    batch = forecaster.forecast_rows(x)
    for name, fn in (("compiled", stream_steps), ("numpy", numpy_steps),
                     ("walk-forward", walk_steps)):
        gap = float(np.max(np.abs(fn() - batch)))
        assert gap < 1e-6, f"{name} steps differ from the batch forecasts by {gap:.2e}"

    times: dict[str, list[float]] = {"floor": [], "compiled": [], "numpy": [], "walk": []}
    flops = step_flops(FEATURES, HIDDEN, LAYERS)
    for _ in range(args.repeats):
        times["floor"].append(flops / gemm_flops_per_s(3))
        times["compiled"].append(_time(stream_steps) / len(x))
        times["numpy"].append(_time(numpy_steps) / len(x))
        times["walk"].append(_time(walk_steps) / len(x))
    us = {k: statistics.median(v) * 1e6 for k, v in times.items()}
    spread = {k: (min(v) * 1e6, max(v) * 1e6) for k, v in times.items()}
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"torch {torch.__version__}, one thread; hidden {HIDDEN} x {LAYERS}, "
          f"{FEATURES} features, {len(x)} steps x {args.repeats} interleaved repeats")
    print(f"  float64 FLOP floor ({flops:,} flops a step) {us['floor']:6.2f} us")
    for key, label in (("compiled", "ForecastStream.step, compiled"),
                       ("numpy", "ForecastStream.step, NumPy cell"),
                       ("walk", "WalkForwardStream.step")):
        lo, hi = spread[key]
        print(f"  {label:38s} {us[key]:6.2f} us  ({lo:.2f}-{hi:.2f}), "
              f"{us[key] / us['floor']:.1f}x the floor")
    print(f"  compiled vs NumPy cell: {us['numpy'] / us['compiled']:.1f}x faster")
    print(f"  WalkForwardStream adds {us['walk'] - us['compiled']:.2f} us a step (target <= 2)")
    print(f"  targets: step <= 12 us {'met' if us['compiled'] <= 12 else 'NOT met'}, "
          f"<= 5x floor {'met' if us['compiled'] <= 5 * us['floor'] else 'NOT met'}")


if __name__ == "__main__":
    main()
