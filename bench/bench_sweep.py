"""Sweep benchmark: 2 model configs x 25 strategy points on one ticker (strategies/sweep_example.yaml).

Measured in one run, every figure against a reference from the same run:
  - the first sweep (cold forecast cache), 1 and 2 workers: wall time, trainings (must be 2)
  - the same command again (resume, nothing left) and the same sweep in a new folder (warm
    cache: no training, every backtest again): target >= 10x faster than the first run
  - 1 vs 2 workers: target >= 1.6x on 2 cores
  - local processes vs a local Ray, warm cache: overhead per trial
  - the reference: retrain per point (what a plain loop over run_experiment does)

    python bench/bench_sweep.py [--reference-points N] [--skip-ray]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lstm_strategy.experiment import run_experiment  # noqa: E402
from lstm_strategy.sweep import load_sweep, sweep  # noqa: E402

SWEEP = ROOT / "strategies" / "sweep_example.yaml"


def timed(label: str, fn) -> tuple[float, object]:
    started = time.perf_counter()
    out = fn()
    seconds = time.perf_counter() - started
    print(f"  {label:52s} {seconds:8.1f} s", flush=True)
    return seconds, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference-points", type=int, default=50,
                        help="points of the retrain-per-point loop to time (50: all)")
    parser.add_argument("--skip-ray", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    config = load_sweep(SWEEP)
    points = config.plan()
    print(f"{len(points)} trials: {len(set(p['model.hidden_size'] for p in points))} model "
          f"configs x {len(points) // 2} strategy points; {os.cpu_count()} cores, 1 torch "
          f"thread per worker")
    work = Path(tempfile.mkdtemp(prefix="bench-sweep-"))
    results = {}
    for workers in (1, 2):
        os.environ["LSTM_STRATEGY_CACHE"] = str(work / f"cache{workers}")
        seconds, out = timed(f"first sweep, cold cache, {workers} worker(s)", lambda w=workers:
                             sweep(config, work / f"cold{w}", workers=w, progress=False,
                                   report=None))
        results[f"cold_{workers}"] = seconds
        assert out.trainings == 2, out.trainings
    os.environ["LSTM_STRATEGY_CACHE"] = str(work / "cache1")
    seconds, out = timed("the same command again (same folder: all trials done)",
                         lambda: sweep(config, work / "cold1", progress=False, report=None))
    results["resume"] = seconds
    assert out.trainings == 0
    for workers in (1, 2):
        seconds, out = timed(f"same sweep, new folder, warm cache, {workers} worker(s)",
                             lambda w=workers: sweep(config, work / f"warm{w}", workers=w,
                                                     progress=False, report=None))
        results[f"warm_{workers}"] = seconds
        assert out.trainings == 0
    if not args.skip_ray:
        seconds, _ = timed("same sweep, warm cache, local Ray, 2 workers (incl. start)",
                           lambda: sweep(config, work / "ray", workers=2, backend="ray",
                                         progress=False, report=None))
        results["ray_2"] = seconds
    n_ref = min(args.reference_points, len(points))

    def retrain_loop() -> None:
        for point in points[:n_ref]:
            run_experiment(config.experiment(point), progress=False, use_cache=False)

    seconds, _ = timed(f"reference: retrain per point, {n_ref} point(s)", retrain_loop)
    results["reference"] = seconds * len(points) / n_ref
    n = len(points)
    print(f"\ntrainings in the first sweep: 2 (of {n} points)")
    print(f"rerun of the same command vs first run: {results['cold_1'] / results['resume']:.0f}x "
          f"faster (target >= 10x); the same sweep in a new folder (warm cache, 50 backtests "
          f"again): {results['cold_1'] / results['warm_1']:.1f}x")
    print(f"1 vs 2 workers, cold: {results['cold_1'] / results['cold_2']:.2f}x; warm: "
          f"{results['warm_1'] / results['warm_2']:.2f}x (target >= 1.6x)")
    if "ray_2" in results:
        print(f"Ray vs local processes (2 workers, warm): "
              f"{(results['ray_2'] - results['warm_2']) / n * 1000:.0f} ms more per trial "
              f"(Ray start-up included)")
    print(f"retrain per point ({'measured' if n_ref == n else f'{n_ref} timed, scaled'}): "
          f"{results['reference']:.0f} s vs the sweep's {results['cold_1']:.0f} s = "
          f"{results['reference'] / results['cold_1']:.1f}x")


if __name__ == "__main__":
    main()
