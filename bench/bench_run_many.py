"""Many strategy points on one forecast set: `FastEvaluator.run_many` (one compiled call,
no frames) against a loop of `run()` (frames per point), and against vectorbt's
`Portfolio.from_signals` (one broadcast call over 1,000 columns, its Rust and its Numba
engine) where vectorbt is importable (`pip install -e '.[bench]'`; this script installs
nothing and says when it is missing).

AAPL 2000-2013 (3,270 bars), the naive forecast (last log return), the default broker; a
1,000-point grid (entry 10 x exit 5 x min hold 5 x long-only or long-short x 2 sizes).
One core (Numba's serial loop; NUMBA_NUM_THREADS=1). Medians of interleaved repeats.
The vectorbt grid is 50 entry x 5 exit x long-only/long-short x 2 sizes with no minimum
hold (from_signals has none): entries signal > entry, exits signal <= exit (shorts the
mirror), next open fills, 5 bps fees, 2 bps slippage, whole units, the size a percent of
cash (which cannot reverse a position in one order there: an opposite signal closes, the
next bar opens). Its results are compared with ours point by point (final value).

    python bench/bench_run_many.py [--repeats N]
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("NUMBA_NUM_THREADS", "1")
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from lstm_strategy import load_ohlcv  # noqa: E402
from lstm_strategy.backtest.fastsim import FastEvaluator  # noqa: E402


def grid() -> list[dict]:
    return [{"entry_threshold": e, "exit_threshold": e * x, "min_hold_bars": h,
             "allow_short": s, "fraction": f}
            for e, x, h, s, f in itertools.product(np.linspace(0.0, 0.009, 10),
                                                   (0.0, 0.25, 0.5, 0.75, 1.0),
                                                   (0, 1, 2, 5, 10), (False, True),
                                                   (0.5, 1.0))]


def vectorbt_grid() -> list[dict]:
    return [{"entry_threshold": e, "exit_threshold": e * x, "allow_short": s, "fraction": f}
            for e, x, s, f in itertools.product(np.linspace(0.0, 0.0098, 50),
                                                (0.0, 0.25, 0.5, 0.75, 1.0), (False, True),
                                                (0.5, 1.0))]


def vectorbt_signals(forecast: np.ndarray, points: list[dict]) -> dict:
    """LSTMStrategy's threshold rules as from_signals' four signal arrays, one column a
    point: decided at a bar's close, so they fill at the next bar's open."""
    entry = np.array([p["entry_threshold"] for p in points])
    exit_ = np.array([p["exit_threshold"] for p in points])
    short = np.array([p["allow_short"] for p in points])
    f = np.nan_to_num(forecast, nan=0.0)[:, None]
    known = np.isfinite(forecast)[:, None]
    return {"entries": known & (f > entry), "exits": known & (f <= exit_),
            "short_entries": known & short & (f < -entry),
            "short_exits": known & short & (f >= -exit_),
            "size": np.array([p["fraction"] for p in points])}


def run_vectorbt(vbt: object, bars: object, signals: dict, engine: str) -> object:
    """One from_signals call over every column; prices: each bar's own open (the order
    placed at the previous close fills there), so the signals move one bar later."""
    shifted = {k: np.vstack([np.zeros((1, v.shape[1]), bool), v[:-1]])
               for k, v in signals.items() if k != "size"}
    return vbt.Portfolio.from_signals(
        bars["Close"], **shifted, size=signals["size"], size_type="percent",
        price=bars["Open"], fees=5e-4, slippage=2e-4, size_granularity=1.0,
        init_cash=100_000.0, freq="1D", upon_opposite_entry="close", engine=engine)


def compare_vectorbt(evaluator: FastEvaluator, bars: object, forecast: np.ndarray,
                     scoring: dict, repeats: int) -> None:
    try:
        import vectorbt as vbt
    except ImportError:
        print("vectorbt: not importable here, not measured (pip install -e '.[bench]')")
        return
    points = vectorbt_grid()
    signals = vectorbt_signals(forecast, points)
    engines = ["numba"]
    try:
        run_vectorbt(vbt, bars, signals, "rust")
        engines.insert(0, "rust")
    except Exception as exc:  # say why, and measure what runs
        print(f"vectorbt's Rust engine did not run ({type(exc).__name__}: {exc})")
    run_vectorbt(vbt, bars, signals, "numba")  # its compile out of the timing
    evaluator.run_many(points, **scoring)
    times: dict[str, list[float]] = {k: [] for k in ("ours", *engines)}
    scored: dict[str, list[float]] = {k: [] for k in engines}
    for _ in range(repeats):
        started = time.perf_counter()
        ours = evaluator.run_many(points, **scoring)
        times["ours"].append(time.perf_counter() - started)
        for engine in engines:
            started = time.perf_counter()
            portfolio = run_vectorbt(vbt, bars, signals, engine)
            times[engine].append(time.perf_counter() - started)
            # what run_many also gives per point: the metrics a sweep ranks by
            portfolio.total_return(), portfolio.sharpe_ratio(), portfolio.max_drawdown()
            portfolio.trades.count(), portfolio.trades.win_rate()
            scored[engine].append(time.perf_counter() - started)
    theirs = portfolio.final_value().to_numpy()
    mine = np.array([r["final_value"] for r in ours])
    gap = np.abs(theirs / mine - 1)
    orders = portfolio.orders.count().to_numpy()
    fills = np.array([r["metrics"]["n_trades"] for r in ours])
    print(f"vectorbt {vbt.__version__}, the same 1,000 points in one call each "
          f"(min hold 0; medians of {repeats}):")
    mid = statistics.median(times["ours"])
    print(f"  ours, run_many (with every metric): {mid:7.3f} s")
    for engine in engines:
        theirs_s, with_metrics = (statistics.median(x[engine]) for x in (times, scored))
        print(f"  vectorbt, {engine:5s} engine:      {theirs_s:7.3f} s = {theirs_s / mid:.1f}x "
              f"ours (target >= 2x); with total return, Sharpe, drawdown, trades and win "
              f"rate as ours gives them: {with_metrics:.3f} s = {with_metrics / mid:.1f}x")
    print(f"  final values: median |ratio - 1| {np.median(gap):.2e}, within 1% at "
          f"{np.mean(gap < 0.01):.0%} of the points; points that trade in both: "
          f"{np.mean((orders > 0) == (fills > 0)):.0%} agree")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bars = {"AAPL": load_ohlcv(ROOT / "data" / "AAPL.csv")}
    forecast = np.log(bars["AAPL"]["Close"]).diff()
    evaluator = FastEvaluator(bars, {"AAPL": forecast})
    from lstm_strategy.data import gap_after
    from lstm_strategy.evaluation.metrics import infer_periods_per_year

    index = bars["AAPL"].index  # what a sweep passes: the calendar's bars a year and holes
    scoring = {"periods_per_year": infer_periods_per_year(index), "gaps": index[gap_after(index)]}
    points = grid()
    started = time.perf_counter()
    evaluator.run_many(points[:2], **scoring)
    evaluator.run()
    print(f"first calls (compile or load Numba's cache): {time.perf_counter() - started:.2f} s")
    sample = points[::50]  # 20 points for the per-point figures
    frames, single, many = [], [], []
    for _ in range(args.repeats):
        started = time.perf_counter()
        for p in sample:
            evaluator.run(**p)
        frames.append((time.perf_counter() - started) / len(sample))
        started = time.perf_counter()
        for p in sample:
            evaluator.run_many([p], **scoring)
        single.append((time.perf_counter() - started) / len(sample))
        started = time.perf_counter()
        evaluator.run_many(points, **scoring)
        many.append(time.perf_counter() - started)
    for left, right in zip(evaluator.run_many(sample, **scoring), sample, strict=True):
        assert left["final_value"] == evaluator.run(**right).equity["value"].iloc[-1]
    frame, one, grid_s = (statistics.median(x) for x in (frames, single, many))
    print(f"one point, run() with frames:      {frame * 1e3:7.3f} ms")
    print(f"one point, run_many([p]) no frames: {one * 1e3:7.3f} ms ({frame / one:.1f}x)")
    print(f"1,000 points, run_many(points):    {grid_s:7.3f} s = {grid_s:.3f} ms a point, "
          f"{frame * len(points) / grid_s:.1f}x a loop of run()")
    compare_vectorbt(evaluator, bars["AAPL"], forecast.to_numpy(), scoring, args.repeats)


if __name__ == "__main__":
    main()
