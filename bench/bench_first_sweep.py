"""A first sweep on a fresh machine (Numba's cache empty) against one whose cache is warm,
both training their model (fresh forecast caches): the compile is off the critical path
when the first costs no more than the second plus 1 s (#26).

bench_fastsim.py's 1,000-point sweep (the default experiment, hidden 16, 5 epochs,
2 workers) from the CLI; the two kinds interleaved, medians of N.

    python bench/bench_first_sweep.py [--repeats N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
from bench_fastsim import SWEEP  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    times: dict[str, list[float]] = {"empty Numba cache": [], "warm Numba cache": []}
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        (folder / "sweep.yaml").write_text(SWEEP)
        warm = folder / "numba-warm"
        subprocess.run([sys.executable, "-c", "from lstm_strategy.backtest.fastsim import "
                        "warm_up; warm_up()"], check=True, cwd=ROOT,
                       env={**os.environ, "NUMBA_CACHE_DIR": str(warm)})
        for run in range(args.repeats):
            for kind in times:
                numba = warm if kind.startswith("warm") else folder / f"numba-empty-{run}"
                env = {**os.environ, "NUMBA_CACHE_DIR": str(numba),
                       "LSTM_STRATEGY_CACHE": str(folder / f"cache-{kind[:4]}-{run}")}
                started = time.perf_counter()
                subprocess.run([sys.executable, "-m", "lstm_strategy", "sweep", "--config",
                                str(folder / "sweep.yaml"), "--out",
                                str(folder / f"out-{kind[:4]}-{run}"), "--quiet"],
                               check=True, env=env, cwd=ROOT, stdout=subprocess.DEVNULL)
                times[kind].append(time.perf_counter() - started)
    empty, hot = (statistics.median(v) for v in times.values())
    for kind, values in times.items():
        print(f"first sweep (training), {kind}: {statistics.median(values):.1f} s "
              f"({', '.join(f'{v:.1f}' for v in values)})")
    print(f"empty - warm: {empty - hot:+.1f} s (target <= +1 s)")


if __name__ == "__main__":
    main()
