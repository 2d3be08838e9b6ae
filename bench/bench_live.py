"""Live path costs, each against a reference measured in the same run.

- Online features (default set) per bar on AAPL's 3,270 bars, against recomputing
  `build_features` on the whole history at 3,000 bars (the naive live loop: one bar's
  cost) and on a 500-bar trailing window (targets: <= 50 us per bar, >= 100x the
  whole-history recompute).
- Bar-to-decision latency of the paper runner (bar delivered by the feed -> the bar's
  features, forecast, decision and journal commit done), p50 / p99, bars where a fold
  trained left out, for 1 asset (sequence LSTM) and for 32 (the pooled LSTM: every asset
  in one model call a bar). Target for 1 asset: p99 <= 2 ms. Measured in background mode
  (the live mode: one model step a bar; parity mode re-runs the batch chunk for models
  without a host stepper, and is reported beside it for 32 assets).
- Replay throughput in bars/s of `paper --parity` against `run` (batch) of the same config.

    python bench/bench_live.py [--repeats N]
"""

from __future__ import annotations

import argparse
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lstm_strategy import load_config, load_ohlcv, run_experiment  # noqa: E402
from lstm_strategy.features import build_features  # noqa: E402
from lstm_strategy.live import paper  # noqa: E402
from lstm_strategy.online_features import OnlineFeatures  # noqa: E402

TINY = ["model.hidden_size=8", "model.num_layers=1", "train.epochs=2",
        "train.min_train_bars=300", "train.step=100", "report.save_models=false"]


def features(repeats: int) -> None:
    bars = load_ohlcv(ROOT / "data" / "AAPL.csv")
    online = []
    for _ in range(repeats):
        feats = OnlineFeatures()
        started = time.perf_counter()
        feats.frame(bars)
        online.append((time.perf_counter() - started) / len(bars))
    whole, window = [], []
    for _ in range(repeats):
        started = time.perf_counter()
        build_features(bars.iloc[:3000])
        whole.append(time.perf_counter() - started)
        started = time.perf_counter()
        build_features(bars.iloc[2500:3000])
        window.append(time.perf_counter() - started)
    o, w, t = (statistics.median(x) for x in (online, whole, window))
    print(f"online features: {o * 1e6:.1f} us/bar; whole-history recompute at 3,000 bars "
          f"{w * 1e3:.2f} ms ({w / o:.0f}x); 500-bar window {t * 1e3:.2f} ms ({t / o:.0f}x)")


def talipp_check() -> None:
    """Where talipp's indicators equal ta's (the reason the online features are our own)."""
    try:
        import ta
        from talipp.indicators import ADX, ATR, BB, EMA, RSI, SMA
        from talipp.ohlcv import OHLCV
    except ImportError:
        print("talipp: not installed (pip install -e '.[bench]' to compare it with ta)")
        return
    bars = load_ohlcv(ROOT / "data" / "AAPL.csv")
    close = bars["Close"].tolist()
    ohlcv = [OHLCV(*row) for row in bars[["Open", "High", "Low", "Close", "Volume"]]
             .to_numpy()]
    atr = ta.volatility.AverageTrueRange(bars["High"], bars["Low"], bars["Close"], 14)
    adx = ta.trend.ADXIndicator(bars["High"], bars["Low"], bars["Close"], 14)
    cases = {
        "EMA 20": (EMA(20, close), ta.trend.EMAIndicator(bars["Close"], 20).ema_indicator()),
        "SMA 50": (SMA(50, close), ta.trend.SMAIndicator(bars["Close"], 50).sma_indicator()),
        "RSI 14": (RSI(14, close), ta.momentum.RSIIndicator(bars["Close"], 14).rsi()),
        "ATR 14": (ATR(14, ohlcv), atr.average_true_range().mask(bars.index < bars.index[14])),
        "ADX 14": ([x if x is None else x.adx for x in ADX(14, 14, ohlcv)],
                   adx.adx().mask(bars.index < bars.index[28])),
        "BB upper 20": ([x if x is None else x.ub for x in BB(20, 2.0, close)],
                        ta.volatility.BollingerBands(bars["Close"], 20, 2.0).bollinger_hband()),
    }
    for name, (theirs, ours) in cases.items():
        got = np.array([np.nan if v is None else float(v) for v in theirs])
        want = ours.to_numpy(float)
        both = ~np.isnan(got) & ~np.isnan(want)
        rel = np.abs(got[both] - want[both]) / np.abs(want[both])
        print(f"talipp vs ta, {name}: max relative difference {rel.max():.1e}, "
              f"{int((rel > 1e-9).sum())} bars over 1e-9, NaN pattern differs on "
              f"{int((np.isnan(got) != np.isnan(want)).sum())} bar(s)")


def latency(tickers: list[str], label: str, kind: str = "sequence", parity: bool = False,
            speed: float | None = None) -> None:
    paths = [str(ROOT / "data" / t) for t in tickers]
    config = load_config(None, [*TINY, "data.start=2008-01-01", "data.end=2011-12-31",
                                f"data.paths=[{', '.join(paths)}]", f"model.kind={kind}"],
                         device="cpu")
    folder = Path(tempfile.mkdtemp())
    lat: list[float] = []
    try:
        result = paper(config, "replay", folder / "p", parity=parity, latency=lat,
                       speed=speed)
        from lstm_strategy.live.journal import Journal

        journal = Journal(folder / "p", {})
        trained = {seq for seq, kind, _ in journal.events() if kind == "swap"}
        journal.close()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    # lat[i] is step i+1; a fold trains at the close of the bar before its swap is logged
    kept = np.array([x for i, x in enumerate(lat) if i + 1 not in trained]) * 1e3
    mode = "parity" if parity else "live"
    print(f"bar-to-decision latency, {label} ({kind}, {mode}): p50 {np.percentile(kept, 50):.3f} ms, "
          f"p99 {np.percentile(kept, 99):.3f} ms over {len(kept)} bars "
          f"({len(lat) - len(kept)} training bars left out; {result.metrics['fills']} fills)")


def throughput() -> None:
    config = load_config(None, TINY, device="cpu")
    started = time.perf_counter()
    run_experiment(config, progress=False, use_cache=False)
    batch = time.perf_counter() - started
    folder = Path(tempfile.mkdtemp())
    try:
        started = time.perf_counter()
        result = paper(config, "replay", folder / "p", parity=True)
        live = time.perf_counter() - started
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    bars = result.metrics["bars"]
    print(f"replay of {bars} bars (tiny model, 40 folds, trained in both): paper --parity "
          f"{live:.1f} s ({bars / live:.0f} bars/s) vs run {batch:.1f} s (with its four "
          f"backtests and report data): {live / batch:.2f}x the batch time")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"machine: {platform.processor() or platform.machine()}, "
          f"{torch.get_num_threads()} torch thread, python {platform.python_version()}")
    features(args.repeats)
    talipp_check()
    latency(["AAPL.csv"], "1 asset", parity=True)
    latency(["AAPL.csv"], "1 asset", speed=100)
    sp32 = sorted(p.name for p in (ROOT / "data" / "sp32").glob("*.csv") if p.name != "sectors.csv")
    names = [f"sp32/{name}" for name in sp32]
    latency(names, f"{len(sp32)} assets", kind="pooled", parity=True)
    latency(names, f"{len(sp32)} assets", kind="pooled", speed=100)
    throughput()


if __name__ == "__main__":
    main()
