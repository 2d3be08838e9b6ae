"""What writing the reports costs, interactive (Bokeh, the default) against static (PNG,
`report.static: true`, what every report was before #24's item 1): time and file size.

    default run        `write_run` against the default experiment's own time (with training
                       and from the forecast cache)
    32-asset run       a pooled LSTM on sp32 (2000-2017), its `write_run`
    32-asset compare   `strategies/sp32_compare.yaml`, its `write_comparison`

Target (#24): the report adds no more than 20% to the default run's time; every report
file under 5 MB. The 32-asset run and comparison train tiny models (hidden 8, 1 epoch,
a retrain every 500 bars): what a report draws depends on the bars, the tickers and the
variants, not on how good the forecasts are.

    python bench/bench_reports.py [--repeats N] [--skip-32]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
TINY = ["model.hidden_size=8", "model.num_layers=1", "train.epochs=1", "train.step=500",
        "report.save_models=false"]


def _static(config: object, static: bool) -> object:
    return dataclasses.replace(config, report=dataclasses.replace(config.report, static=static))


def _measure(write, result: object, name: str, repeats: int) -> dict:
    """Median seconds and the largest size of `name` for write(result, folder), both ways."""
    out = {}
    for static in (True, False):
        subject = dataclasses.replace(result, config=_static(result.config, static))
        times, sizes = [], []
        for _ in range(repeats):
            folder = Path(tempfile.mkdtemp()) / "out"
            started = time.perf_counter()
            write(subject, folder)
            times.append(time.perf_counter() - started)
            sizes.append((folder / name).stat().st_size / 1e6)
            shutil.rmtree(folder.parent, ignore_errors=True)
        out["static" if static else "interactive"] = (statistics.median(times), max(sizes))
    return out


def _line(label: str, row: dict, against: tuple[float, float] | None = None) -> None:
    for kind in ("static", "interactive"):
        seconds, size = row[kind]
        share = (f" = {seconds / against[0]:.0%} of the run with training, "
                 f"{seconds / against[1]:.0%} of the cached run" if against else "")
        print(f"{label:<18} {kind:<12} {seconds:6.2f} s, {size:5.2f} MB{share}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-32", action="store_true")
    args = parser.parse_args()
    os.environ["LSTM_STRATEGY_CACHE"] = tempfile.mkdtemp(prefix="bench-reports-cache-")
    import torch

    from lstm_strategy import load_config, run_experiment
    from lstm_strategy.compare import run_comparison
    from lstm_strategy.reports.compare import write_comparison
    from lstm_strategy.reports.run import write_run

    torch.set_num_threads(1)
    config = load_config(None, device="cpu")
    started = time.perf_counter()
    result = run_experiment(config, progress=False)
    cold = time.perf_counter() - started
    cached = []
    for _ in range(args.repeats):
        started = time.perf_counter()
        result = run_experiment(config, progress=False)
        cached.append(time.perf_counter() - started)
    warm = statistics.median(cached)
    print(f"default run: {cold:.1f} s with training, {warm:.1f} s from the forecast cache")
    _line("default run", _measure(write_run, result, "report.html", args.repeats), (cold, warm))
    if args.skip_32:
        return
    sp32 = ROOT / "strategies" / "sp32_compare.yaml"
    from lstm_strategy.config import ModelConfig

    pooled = load_config(sp32, TINY, device="cpu")
    pooled = dataclasses.replace(pooled, model=ModelConfig(kind="pooled", hidden_size=8,
                                                           num_layers=1))
    started = time.perf_counter()
    result = run_experiment(pooled, progress=False)
    print(f"32-asset pooled run: {time.perf_counter() - started:.1f} s")
    _line("32-asset run", _measure(write_run, result, "report.html", args.repeats))
    compare = load_config(sp32, TINY, device="cpu")
    started = time.perf_counter()
    comparison = run_comparison(compare, progress=False)
    print(f"32-asset comparison: {time.perf_counter() - started:.1f} s")
    _line("32-asset compare", _measure(write_comparison, comparison, "compare_report.html",
                                       args.repeats))


if __name__ == "__main__":
    main()
