"""Many strategy points on one forecast set: `FastEvaluator.run_many` (one compiled call,
no frames) against a loop of `run()` (frames per point). Not here yet: the same grid
through vectorbt's engines (#26 asks for it; vectorbt is not installed on this machine).

AAPL 2000-2013 (3,270 bars), the naive forecast (last log return), the default broker; a
1,000-point grid (entry 10 x exit 5 x min hold 5 x long-only or long-short x 2 sizes).
One core (Numba's serial loop; NUMBA_NUM_THREADS=1). Medians of interleaved repeats.

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


if __name__ == "__main__":
    main()
