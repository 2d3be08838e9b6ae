"""What writing a run folder costs: `write_run` (CSVs, PNG charts, report.html) against the
default experiment's own time, and the report's size.

Target (#24): the report adds no more than 20% to the default run's time; the file under
5 MB. The run is measured with its forecasts from the cache (the second run of the same
inputs) and without (a cold cache), so the ratio is given against both.

    python bench/bench_reports.py [--repeats N]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    os.environ["LSTM_STRATEGY_CACHE"] = tempfile.mkdtemp(prefix="bench-reports-cache-")
    import torch

    from lstm_strategy import load_config, run_experiment

    try:
        from lstm_strategy.reports.run import write_run
    except ImportError:  # before reports/ existed (to measure an older commit)
        from lstm_strategy.evaluation.report import write_run

    torch.set_num_threads(1)
    config = load_config(None, device="cpu")
    started = time.perf_counter()
    result = run_experiment(config, progress=False)
    cold = time.perf_counter() - started
    cached, writes, sizes = [], [], []
    for _ in range(args.repeats):
        started = time.perf_counter()
        result = run_experiment(config, progress=False)
        cached.append(time.perf_counter() - started)
        folder = Path(tempfile.mkdtemp()) / "run"
        started = time.perf_counter()
        write_run(result, folder)
        writes.append(time.perf_counter() - started)
        sizes.append((folder / "report.html").stat().st_size)
        shutil.rmtree(folder.parent, ignore_errors=True)
    write, warm = statistics.median(writes), statistics.median(cached)
    print(f"default run: {cold:.1f} s with training, {warm:.1f} s from the forecast cache")
    print(f"write_run: {write:.2f} s = {write / cold:.0%} of the run with training, "
          f"{write / warm:.0%} of the cached run; report.html {max(sizes) / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
