"""Multi-asset models: what the graph layers cost, training per fold, memory at scale.

1. Per-bar batch-forecast cost of the LSTM-GNN against the pooled LSTM (the same LSTM
   without graph layers) at 32, 500 and 2,000 assets (synthetic features), hidden 32,
   1 layer, 20 features, over a top-5 correlation graph of one-factor returns (hubs, as
   real universes have): the model's own choice of propagation, and each of dense
   (torch-geometric's DenseGCNConv), sparse (a sparse product over the links) and
   gather (a padded [assets, slots] neighbour index), medians of alternating repeats
   (targets: graph layers < +50% at 500, < +100% at 2,000).
2. Training time of one walk-forward fold for the 32 sp32 assets (2000-2009, the
   sp32_compare settings, a fixed 5 epochs): per-asset LSTMs (32 models), pooled, LSTM-GNN.
3. Folds in parallel: the sp32 walk-forward (pooled and LSTM-GNN) sequential against 2
   local worker processes and against a local Ray with 2 CPUs; forecasts compared bit
   for bit (target >= 1.6x with 2 workers).
4. The cross-sectional book on sp32 per point: backtrader against the compiled book
   evaluator (fastbook.BookEvaluator), fills compared (target >= 100x).
5. Peak memory (RSS) for 500 assets x 5,000 bars: batch forecasts and one training epoch
   of the LSTM-GNN, each in a fresh process.

    python bench/bench_multiasset.py [--device cpu|cuda] [--repeats N] [--assets 32,500,2000]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lstm_strategy import ModelConfig, TrainConfig  # noqa: E402
from lstm_strategy.forecaster import full_precision  # noqa: E402
from lstm_strategy.models import build_model  # noqa: E402

FEATURES, HIDDEN, BARS = 20, 32, 1024


def factor_graph(assets: int) -> np.ndarray:
    from lstm_strategy.graph import correlation_graph

    rng = np.random.default_rng(0)
    returns = (rng.uniform(0.2, 1.5, assets) * rng.standard_normal((300, 1))
               + rng.standard_normal((300, assets)))
    return correlation_graph(returns, 5, 0.0, 252)


def model(kind: str, assets: int, device: str, propagation: str | None = None
          ) -> torch.nn.Module:
    torch.manual_seed(0)
    built = build_model(FEATURES, ModelConfig(kind=kind, hidden_size=HIDDEN, num_layers=1),
                        assets)
    if built.uses_graph:
        if propagation is not None:
            built.propagation = propagation
        built.set_graph(factor_graph(assets))
    return built.to(device).eval()


def synchronise(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def forecast_cost(assets: int, device: str, repeats: int) -> None:
    x = torch.randn(BARS, assets, FEATURES, device=device)
    chosen = model("lstm_gnn", assets, device)
    models = {"pooled": model("pooled", assets, device),
              f"lstm_gnn ({chosen.propagation}, the model's choice)": chosen}
    for way in ("dense", "sparse", "gather"):
        if way != chosen.propagation and not (way == "gather" and assets > 500):
            models[f"lstm_gnn ({way})"] = model("lstm_gnn", assets, device, way)
    times: dict[str, list[float]] = {kind: [] for kind in models}
    with torch.no_grad(), full_precision(torch.device(device)):
        for m in models.values():
            m.forecast_segment(x, 256, 256)  # warm up
        for _ in range(repeats):
            for kind, m in models.items():
                synchronise(device)
                started = time.perf_counter()
                m.forecast_segment(x, 256, 256)
                synchronise(device)
                times[kind].append(time.perf_counter() - started)
    per_bar = {k: statistics.median(v) / BARS for k, v in times.items()}
    links = int(factor_graph(assets).sum())
    print(f"{assets} assets ({links} links), batch forecasts on {device}: pooled "
          f"{per_bar['pooled'] * 1e6:.1f} us/bar")
    for kind, cost in per_bar.items():
        if kind != "pooled":
            spread = [t / p - 1 for t, p in zip(times[kind], times["pooled"], strict=True)]
            print(f"  {kind}: {cost * 1e6:.1f} us/bar, the graph layers add "
                  f"{cost / per_bar['pooled'] - 1:+.0%} (repeats {min(spread):+.0%} to "
                  f"{max(spread):+.0%})")
    if device.startswith("cuda"):
        try:
            gpu_breakdown({"pooled": models["pooled"], "lstm_gnn": chosen}, assets, device)
        except RuntimeError as exc:  # a measurement aid only: say why and go on
            print(f"  GPU breakdown failed: {exc}")


def gpu_breakdown(models: dict, assets: int, device: str) -> None:
    """Where a GPU's time goes: the kernels' own time (profiler) per bar, for each model;
    the rest of the wall-clock time is launching them from Python."""
    from torch.profiler import ProfilerActivity, profile

    x = torch.randn(BARS, assets, FEATURES, device=device)
    kernel: dict[str, float] = {}
    with torch.no_grad(), full_precision(torch.device(device)):
        for kind, m in models.items():
            with profile(activities=[ProfilerActivity.CUDA]) as prof:
                m.forecast_segment(x, 256, 256)
                synchronise(device)
            kernel[kind] = sum(getattr(e, "self_device_time_total", 0.0)
                               for e in prof.key_averages()) / BARS
    print(f"  GPU kernel time per bar: pooled {kernel['pooled']:.2f} us, LSTM-GNN "
          f"{kernel['lstm_gnn']:.2f} us ({kernel['lstm_gnn'] / kernel['pooled'] - 1:+.0%})")


def sp32_bars(start: str, end: str) -> dict:
    """The 32 sp32 stocks' bars from `start` to `end`."""
    from lstm_strategy import load_many

    tickers = sorted(p.stem for p in (ROOT / "data" / "sp32").glob("*.csv") if p.stem != "sectors")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bars = load_many({t: ROOT / "data" / "sp32" / f"{t}.csv" for t in tickers})
    return {t: f.loc[start:end] for t, f in bars.items()}


def fold_training(device: str) -> None:
    from lstm_strategy.features import FeatureConfig, build_features, make_target
    from lstm_strategy.training import Panel, fit_fold

    bars = sp32_bars("2000-01-01", "2009-12-31")
    tickers = list(bars)
    features = {t: build_features(f, FeatureConfig()) for t, f in bars.items()}
    targets = {t: make_target(f["Close"], 1) for t, f in bars.items()}
    train = TrainConfig(min_train_bars=756, step=252, epochs=5, patience=99, context_bars=250,
                        bptt=64, burn_in=20, batch_streams=8)
    names = list(next(iter(features.values())).columns)
    panel = Panel.from_assets(features, targets)
    retrain = len(next(iter(bars.values()))) - 1
    rows = slice(0, int(np.searchsorted(panel.pos, retrain)))
    timings = {}
    warm = slice(0, int(np.searchsorted(panel.pos, 800)))  # device and kernel set-up, untimed
    fit_fold(panel, names, warm, 800, ModelConfig(kind="lstm_gnn", hidden_size=HIDDEN,
                                                  num_layers=1),
             TrainConfig(min_train_bars=500, epochs=1, context_bars=250, bptt=64, burn_in=20,
                         batch_streams=8), torch.device(device), seed=0)
    for kind in ("pooled", "lstm_gnn"):
        started = time.perf_counter()
        fit_fold(panel, names, rows, retrain, ModelConfig(kind=kind, hidden_size=HIDDEN,
                                                          num_layers=1), train,
                 torch.device(device), seed=0)
        timings[kind] = time.perf_counter() - started
    started = time.perf_counter()
    for ticker in tickers:
        single = Panel.from_frames(features[ticker], targets[ticker])
        fit_fold(single, names, slice(0, int(np.searchsorted(single.pos, retrain))), retrain,
                 ModelConfig(hidden_size=HIDDEN, num_layers=1), train, torch.device(device),
                 seed=0)
    timings["per-asset"] = time.perf_counter() - started
    print(f"one fold, 32 assets x {rows.stop} bars, 5 epochs on {device}: per-asset LSTMs "
          f"{timings['per-asset']:.1f} s (32 models), pooled {timings['pooled']:.1f} s, "
          f"LSTM-GNN {timings['lstm_gnn']:.1f} s")


def sp32_panel() -> tuple[dict, dict]:
    from lstm_strategy.features import FeatureConfig, build_features, make_target

    bars = sp32_bars("2000-01-01", "2017-03-29")
    features = {t: build_features(f, FeatureConfig()) for t, f in bars.items()}
    return features, {t: make_target(f["Close"], 1) for t, f in bars.items()}


def parallel_folds() -> None:
    """The sp32 walk-forward's folds: in this process, on 2 local workers, on Ray."""
    from lstm_strategy import walk_forward
    from lstm_strategy.sweep.backends import LazyBackend

    features, targets = sp32_panel()
    train = TrainConfig(min_train_bars=756, step=252, epochs=15, patience=3,
                        context_bars=250, bptt=64, burn_in=20, batch_streams=8)
    for kind in ("pooled", "lstm_gnn"):
        config = ModelConfig(kind="lstm_gnn", hidden_size=32, num_layers=1,
                             graph_k=4).with_kind(kind)
        runs, seconds = {}, {}
        for name in ("sequential", "local x2", "ray x2"):
            backend = None if name == "sequential" else LazyBackend(name.split()[0], 2)
            if name == "ray x2":
                try:
                    import ray  # noqa: F401
                except ImportError:
                    print("  Ray is not installed: skipped (pip install 'lstm-strategy[ray]')")
                    continue
            started = time.perf_counter()
            runs[name] = walk_forward(features, targets, config, train, device="cpu",
                                      progress=False, backend=backend)
            seconds[name] = time.perf_counter() - started
            if backend is not None:
                backend.close()
        folds = len(runs["sequential"].folds)
        line = ", ".join(
            f"{name} {t:.1f} s ({seconds['sequential'] / t:.2f}x, forecasts "
            f"{'bit-equal' if runs[name].predictions.equals(runs['sequential'].predictions) else 'DIFFER'})"
            for name, t in seconds.items() if name != "sequential")
        print(f"sp32 walk-forward, {kind}, {folds} folds: sequential "
              f"{seconds['sequential']:.1f} s; {line}")


def book_points(repeats: int) -> None:
    """CrossSectionalStrategy on sp32 (32 assets, 2003-2017) with random forecasts, both
    books: backtrader against the compiled book evaluator, per point, fills compared."""
    import pandas as pd

    from lstm_strategy import CrossSectionalStrategy, backtest
    from lstm_strategy.backtest.fastbook import BookEvaluator

    bars = sp32_bars("2003-01-01", "2017-03-29")
    rng = np.random.default_rng(0)
    forecasts = {t: pd.Series(rng.standard_normal(len(f)), index=f.index)
                 for t, f in bars.items()}
    evaluator = BookEvaluator(bars, forecasts)
    for book in ("rank", "topk_dropout"):
        params = {"top_k": 5, "allow_short": True, "rebalance": 5, "book": book}
        evaluator.run(**params)  # compile or load the loop
        slow_t, fast_t = [], []
        for _ in range(max(1, repeats // 2)):
            started = time.perf_counter()
            slow = backtest(bars, CrossSectionalStrategy, cross_check=False,
                            forecasts=forecasts, **params)
            slow_t.append(time.perf_counter() - started)
            started = time.perf_counter()
            fast = evaluator.run(**params)
            fast_t.append(time.perf_counter() - started)
        same = (np.array_equal(fast.fills[["size", "price", "commission"]].to_numpy(),
                               slow.fills[["size", "price", "commission"]].to_numpy())
                and np.array_equal(fast.equity.to_numpy(), slow.equity.to_numpy()))
        slow_s, fast_s = statistics.median(slow_t), statistics.median(fast_t)
        print(f"sp32 book point ({book}, {len(fast.fills)} fills): backtrader "
              f"{slow_s * 1e3:.0f} ms, book evaluator {fast_s * 1e3:.1f} ms: "
              f"{slow_s / fast_s:.0f}x (target >= 100x); fills and equity "
              f"{'identical' if same else 'DIFFERENT'}")


def memory_child(task: str, device: str) -> None:
    """In a fresh process: one job on 500 assets x 5,000 bars; prints peak RSS in MB."""
    assets, bars = 500, 5000
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    x = torch.randn(bars, assets, FEATURES, device=device)
    m = model("lstm_gnn", assets, device)
    if task == "forecast":
        with torch.no_grad(), full_precision(torch.device(device)):
            m.forecast_segment(x, 256, 256)
    else:
        from lstm_strategy.training import train_epochs

        labels = torch.randn(bars, assets, device=device)
        train = torch.ones(bars, assets, dtype=torch.bool, device=device)
        config = TrainConfig(epochs=1, bptt=64, burn_in=20, batch_streams=8)
        used = torch.zeros_like(train)
        for _ in train_epochs(m, x, labels, train, train, config,
                              torch.nn.MSELoss(reduction="none"), np.random.default_rng(0), used):
            pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    gpu = torch.cuda.max_memory_allocated() / 2**20 if device.startswith("cuda") else None
    print(json.dumps({"before": before, "peak": peak, "gpu": gpu}))


def memory(device: str) -> None:
    for task in ("forecast", "train"):
        out = subprocess.run([sys.executable, __file__, "--memory-child", task, "--device",
                              device], check=True, capture_output=True, text=True).stdout
        figures = json.loads(out.strip().splitlines()[-1])
        gpu = f", GPU peak {figures['gpu']:.0f} MB" if figures["gpu"] is not None else ""
        what = "batch forecasts" if task == "forecast" else "one training epoch"
        print(f"500 assets x 5,000 bars, LSTM-GNN {what} on {device}: peak RSS "
              f"{figures['peak']:.0f} MB (process start {figures['before']:.0f} MB; the "
              f"input panel alone is {500 * 5000 * FEATURES * 4 / 2**20:.0f} MB){gpu}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--assets", default="32,500,2000",
                        help="universe sizes for the cost part")
    parser.add_argument("--parts", default="cost,fold,parallel,book,memory",
                        help="which parts to run")
    parser.add_argument("--memory-child", choices=["forecast", "train"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(1)  # the project's setting (BENCHMARKS.md: threads)
    if args.memory_child:
        memory_child(args.memory_child, args.device)
        return
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), device {args.device}")
    parts = args.parts.split(",")
    if "cost" in parts:
        for assets in map(int, args.assets.split(",")):
            forecast_cost(assets, args.device, args.repeats)
    if "fold" in parts:
        fold_training(args.device)
    if "parallel" in parts and args.device == "cpu":
        parallel_folds()
    if "book" in parts and args.device == "cpu":
        book_points(args.repeats)
    if "memory" in parts:
        memory(args.device)


if __name__ == "__main__":
    main()
