"""Predictor benchmark: forecast and training cost against bare PyTorch, in one run.

Prints ratios against references measured in the same process (machines are noisy):
  - batch inference per bar vs a bare nn.LSTM pass over the same segment (target <= 1.3x)
  - the naive per-bar windowed call (what tutorials do) vs our per-bar forecast (>= 50x)
  - training targets/s vs a bare PyTorch loop doing the same work (target <= 1.2x time)
  - peak memory for 100,000 bars x 20 features (target < 1 GB)

    python bench/bench_predictor.py [--device cpu|cuda] [--bars N] [--quick]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lstm_strategy import ModelConfig, TrainConfig, build_features, load_ohlcv  # noqa: E402
from lstm_strategy.forecaster import (  # noqa: E402
    Forecaster,
    Scaler,
    full_precision,
    resolve_device,
)
from lstm_strategy.models import build_model  # noqa: E402
from lstm_strategy.training import train_epochs  # noqa: E402

HIDDEN, LAYERS, WINDOW = 64, 2, 60


def median_times(fns: tuple, repeats: int, sync: bool) -> list[float]:
    """Median seconds of each function, timed alternately (drift hits all alike) after a warm-up."""
    for fn in fns:
        fn()
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for fn, bucket in zip(fns, times, strict=True):
            if sync:
                torch.cuda.synchronize()
            start = time.perf_counter()
            fn()
            if sync:
                torch.cuda.synchronize()
            bucket.append(time.perf_counter() - start)
    return [statistics.median(bucket) for bucket in times]


def timeit(fn, repeats: int, sync: bool) -> float:
    return median_times((fn,), repeats, sync)[0]


def feature_matrix(n_features: int, bars: int) -> np.ndarray:
    """AAPL's real features (complete rows), tiled to `bars` rows and `n_features` columns."""
    aapl = load_ohlcv(ROOT / "data" / "AAPL.csv")
    feats = build_features(aapl).dropna().to_numpy()
    reps_cols = -(-n_features // feats.shape[1])
    feats = np.tile(feats, (1, reps_cols))[:, :n_features]
    reps_rows = -(-bars // len(feats))
    return np.tile(feats, (reps_rows, 1))[:bars].astype(np.float64)


def bench_inference(device: torch.device, bars: int, repeats: int) -> dict:
    sync = device.type == "cuda"
    x = feature_matrix(16, bars)
    torch.manual_seed(0)
    config = ModelConfig(hidden_size=HIDDEN, num_layers=LAYERS)
    model = build_model(x.shape[1], config)
    forecaster = Forecaster(model, config, [f"f{i}" for i in range(x.shape[1])],
                            Scaler(x.mean(0), x.std(0)), 0.02, 1, device)

    # ours, batch mode: raw rows in, forecasts (numpy) out, one device pass; the bare
    # reference: the same nn.LSTM + head on pre-scaled tensors already on the device
    lstm, head = forecaster.model.lstm, forecaster.model.head
    scaled = ((torch.as_tensor(x, dtype=torch.float32) - torch.as_tensor(x.mean(0), dtype=torch.float32))
              / torch.as_tensor(x.std(0), dtype=torch.float32)).to(device).unsqueeze(0)

    @torch.no_grad()
    def bare() -> torch.Tensor:
        out, _ = lstm(scaled)
        return head(out)

    ours, bare_s = median_times((lambda: forecaster.forecast_rows(x), bare), repeats, sync)

    # streaming: one step per bar (state on the device, one number back per bar)
    stream_bars = min(bars, 2000)

    def streaming() -> None:
        stream = forecaster.stream()
        for row in x[:stream_bars]:
            stream.step(row)

    stream_s = timeit(streaming, max(1, repeats // 3), sync)

    # on a GPU: what stepping with the state on the device costs (the stream steps on the host)
    device_step_s = None
    if device.type != "cpu":
        @torch.no_grad()
        def device_steps() -> None:
            state = forecaster.model.stream_start()
            for row in x[:stream_bars]:
                raw, state = forecaster.model.stream_step(forecaster.scale(row[None, :])[0], state)
                float(forecaster.output(raw).item())

        device_step_s = timeit(device_steps, max(1, repeats // 3), sync)

    # the tutorial way: per bar, the window model on the last 60 bars, batch 1
    wconfig = ModelConfig(kind="window", hidden_size=HIDDEN, num_layers=LAYERS, window=WINDOW)
    window_model = build_model(x.shape[1], wconfig).to(device).eval()
    scaled_rows = scaled[0]
    naive_bars = min(bars, 500)

    @torch.no_grad()
    def naive_window() -> None:
        for t in range(WINDOW, WINDOW + naive_bars):
            float(window_model(scaled_rows[t - WINDOW:t].unsqueeze(0))[0].item())

    naive_s = timeit(naive_window, max(1, repeats // 3), sync)

    # windows in batches of 256 (what a careful window-model user does)
    wforecaster = Forecaster(window_model, wconfig, forecaster.feature_names,
                             Scaler(x.mean(0), x.std(0)), 0.02, 1, device)
    batched_s = timeit(lambda: wforecaster.forecast_rows(x[:20_000], batch_size=256),
                       max(1, repeats // 3), sync)

    per_bar = {
        "ours_batch_us": ours / bars * 1e6,
        "bare_lstm_pass_us": bare_s / bars * 1e6,
        "ours_streaming_us": stream_s / stream_bars * 1e6,
        "device_resident_step_us": (device_step_s / stream_bars * 1e6
                                    if device_step_s is not None else None),
        "naive_window_batch1_us": naive_s / naive_bars * 1e6,
        "window_batches_of_256_us": batched_s / min(bars, 20_000) * 1e6,
    }
    per_bar["batch_vs_bare_ratio"] = per_bar["ours_batch_us"] / per_bar["bare_lstm_pass_us"]
    per_bar["speedup_batch_vs_naive"] = per_bar["naive_window_batch1_us"] / per_bar["ours_batch_us"]
    per_bar["speedup_stream_vs_naive"] = (per_bar["naive_window_batch1_us"]
                                          / per_bar["ours_streaming_us"])
    return per_bar


def bench_training(device: torch.device, repeats: int) -> dict:
    """One epoch of sequence training: our loop vs a bare loop doing the same chunks."""
    sync = device.type == "cuda"
    x_np = feature_matrix(16, 16_384)
    config = TrainConfig(epochs=1, batch_streams=16, bptt=64, burn_in=20, val_fraction=0.0)
    mconfig = ModelConfig(hidden_size=HIDDEN, num_layers=LAYERS)
    x = torch.as_tensor((x_np - x_np.mean(0)) / x_np.std(0), dtype=torch.float32, device=device)
    y = torch.randn(len(x), device=device)
    train = torch.ones(len(x), dtype=torch.bool, device=device)
    val = torch.zeros_like(train)

    def ours() -> None:
        torch.manual_seed(0)
        model = build_model(x.shape[1], mconfig).to(device)
        for _ in train_epochs(model, x, y, train, val, config, nn.MSELoss(reduction="none"),
                              np.random.default_rng(0), torch.zeros_like(train)):
            pass

    def bare() -> None:
        torch.manual_seed(0)
        model = build_model(x.shape[1], mconfig).to(device)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        streams, length = 16, len(x) // 16
        xs = x[:streams * length].reshape(streams, length, -1)
        ys = y[:streams * length].reshape(streams, length)
        state = None
        for start in range(0, length, 64):
            out, state = model(xs[:, start:start + 64], state)
            state = tuple(s.detach() for s in state)
            loss = nn.functional.mse_loss(out[:, 20 if start == 0 else 0:],
                                          ys[:, start:start + 64][:, 20 if start == 0 else 0:])
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()

    ours_s, bare_s = median_times((ours, bare), repeats, sync)
    targets = len(x) - 16 * 20
    return {"ours_targets_per_s": targets / ours_s, "bare_targets_per_s": targets / bare_s,
            "time_ratio_ours_vs_bare": ours_s / bare_s}


MEMORY_SCRIPT = """
import resource, sys, numpy as np, torch
sys.path.insert(0, {root!r})
from lstm_strategy import ModelConfig, TrainConfig
from lstm_strategy.training import Panel, fit_fold
from lstm_strategy.forecaster import resolve_device
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
rng = np.random.default_rng(0)
x = rng.normal(size=(100_000, 20))
y = rng.normal(0, 0.02, size=100_000)
panel = Panel(x, y, np.arange(100_000))
names = [f"f{{i}}" for i in range(20)]
device = resolve_device({device!r})
forecaster = fit_fold(panel, names, slice(0, 100_000), 100_000,
                      ModelConfig(hidden_size=64, num_layers=2),
                      TrainConfig(epochs=1, val_fraction=0.1), device, seed=0).forecaster
forecaster.forecast_rows(x)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
gpu = torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else 0.0
print(base / 1024, peak / 1024, gpu)
"""


def bench_memory(device: torch.device) -> dict:
    """Peak RSS of a fresh process training one epoch on, and forecasting, 100k x 20."""
    code = MEMORY_SCRIPT.format(root=str(ROOT), device=str(device))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"the memory measurement failed:\n{done.stderr[-3000:]}")
    base, peak, gpu = map(float, done.stdout.split())
    return {"rss_after_imports_mb": base, "peak_rss_mb": peak, "peak_gpu_mb": gpu}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (the project's default, 1; 0 = one per core)")
    parser.add_argument("--bars", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke test")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    bars = 3000 if args.quick else args.bars
    repeats = 2 if args.quick else args.repeats
    print(f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} "
          f"torch threads, torch {torch.__version__}, device {device}"
          + (f" ({torch.cuda.get_device_name()})" if device.type == "cuda" else ""))
    print(f"model: sequence LSTM, 16 features, hidden {HIDDEN}, {LAYERS} layers; window {WINDOW}")
    with full_precision(device):  # the arithmetic forecasts and training use (no TF32)
        results = {"device": str(device), "inference": bench_inference(device, bars, repeats),
                   "training": bench_training(device, repeats)}
    if not args.quick:
        results["memory"] = bench_memory(device)
    inf, tr = results["inference"], results["training"]
    print("\ninference, per bar (us)")
    for key in ("ours_batch_us", "bare_lstm_pass_us", "ours_streaming_us",
                "window_batches_of_256_us", "naive_window_batch1_us"):
        print(f"  {key:28s} {inf[key]:10.2f}")
    if inf["device_resident_step_us"] is not None:
        print(f"  {'device_resident_step_us':28s} {inf['device_resident_step_us']:10.2f}  "
              "(a step with the state on the GPU; the stream steps on the host)")
    print(f"  batch / bare nn.LSTM pass     {inf['batch_vs_bare_ratio']:10.2f}x  (target <= 1.3x)")
    print(f"  naive windowed / ours batch   {inf['speedup_batch_vs_naive']:10.0f}x  (target >= 50x)")
    print(f"  naive windowed / ours stream  {inf['speedup_stream_vs_naive']:10.1f}x")
    print("\ntraining (targets/s)")
    print(f"  ours {tr['ours_targets_per_s']:,.0f}   bare {tr['bare_targets_per_s']:,.0f}   "
          f"time ratio {tr['time_ratio_ours_vs_bare']:.2f}x  (target <= 1.2x)")
    if "memory" in results:
        mem = results["memory"]
        print(f"\npeak memory, 100,000 bars x 20 features (train 1 epoch + forecast): "
              f"{mem['peak_rss_mb']:.0f} MB RSS (imports alone {mem['rss_after_imports_mb']:.0f} "
              f"MB), GPU {mem['peak_gpu_mb']:.0f} MB  (target < 1 GB)")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
