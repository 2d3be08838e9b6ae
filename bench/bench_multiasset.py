"""Multi-asset models: what the graph layers cost, training per fold, memory at scale.

1. Per-bar batch-forecast cost of the LSTM-GNN against the pooled LSTM (the same LSTM
   without graph layers), for 32 assets and for 500 (synthetic features), hidden 32,
   1 layer, 20 features: medians of alternating repeats (target: graph layers < +50%).
2. Training time of one walk-forward fold for the 32 sp32 assets (2000-2009, the
   sp32_compare settings, a fixed 5 epochs): per-asset LSTMs (32 models), pooled, LSTM-GNN.
3. Peak memory (RSS) for 500 assets x 5,000 bars: batch forecasts and one training epoch
   of the LSTM-GNN, each in a fresh process.

    python bench/bench_multiasset.py [--device cpu|cuda] [--repeats N]
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


def model(kind: str, assets: int, device: str) -> torch.nn.Module:
    torch.manual_seed(0)
    built = build_model(FEATURES, ModelConfig(kind=kind, hidden_size=HIDDEN, num_layers=1),
                        assets).to(device).eval()
    if built.uses_graph:
        rng = np.random.default_rng(0)
        links = (rng.random((assets, assets)) < min(1.0, 8 / assets)).astype(float)
        built.set_graph(np.maximum(links, links.T) * (1 - np.eye(assets)))
    return built


def synchronise(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def forecast_cost(assets: int, device: str, repeats: int) -> None:
    x = torch.randn(BARS, assets, FEATURES, device=device)
    models = {kind: model(kind, assets, device) for kind in ("pooled", "lstm_gnn")}
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
    print(f"{assets} assets, batch forecasts on {device}: pooled {per_bar['pooled'] * 1e6:.2f} "
          f"us/bar, LSTM-GNN {per_bar['lstm_gnn'] * 1e6:.2f} us/bar: the graph layers add "
          f"{per_bar['lstm_gnn'] / per_bar['pooled'] - 1:+.0%} (target < +50%)")
    if device.startswith("cuda"):
        try:
            gpu_breakdown(models, assets, device)
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


def fold_training(device: str) -> None:
    from lstm_strategy import load_many
    from lstm_strategy.features import FeatureConfig, build_features, make_target
    from lstm_strategy.training import Panel, fit_fold

    tickers = sorted(p.stem for p in (ROOT / "data" / "sp32").glob("*.csv") if p.stem != "sectors")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bars = load_many({t: ROOT / "data" / "sp32" / f"{t}.csv" for t in tickers})
    bars = {t: f.loc["2000-01-01":"2009-12-31"] for t, f in bars.items()}
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
    parser.add_argument("--assets", default="32,500", help="universe sizes for the cost part")
    parser.add_argument("--memory-child", choices=["forecast", "train"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(1)  # the project's setting (BENCHMARKS.md: threads)
    if args.memory_child:
        memory_child(args.memory_child, args.device)
        return
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), device {args.device}")
    for assets in map(int, args.assets.split(",")):
        forecast_cost(assets, args.device, args.repeats)
    fold_training(args.device)
    memory(args.device)


if __name__ == "__main__":
    main()
