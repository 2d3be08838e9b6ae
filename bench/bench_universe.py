"""An index-size universe end to end: a synthetic 500-asset x 5,000-bar panel through
features, walk-forward training (pooled LSTM and LSTM-GNN), the cross-sectional books on
the fast evaluator, and backtrader for the check (the same fills, bit for bit).

Prices: daily log returns from one market factor plus sector factors plus noise (betas
drawn per asset), OHLCV bars around them; no signal is planted, so IC near zero is the
honest answer. Prints the seconds of each stage, peak RSS, the books' turnover and
after-cost return, and the fast evaluator's time per point against backtrader's.

    python bench/bench_universe.py [--assets 500] [--bars 5000] [--no-backtrader]
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lstm_strategy import CrossSectionalStrategy, ModelConfig, TrainConfig, backtest  # noqa: E402
from lstm_strategy.backtest.fastbook import BookEvaluator  # noqa: E402
from lstm_strategy.config import BrokerConfig  # noqa: E402
from lstm_strategy.evaluation.metrics import panel_ic  # noqa: E402
from lstm_strategy.features import FeatureConfig, build_features, make_target  # noqa: E402
from lstm_strategy.training import walk_forward  # noqa: E402


def synthetic_panel(assets: int, bars: int, seed: int = 0) -> dict[str, pd.DataFrame]:
    """OHLCV bars of `assets` stocks on one business-day calendar, factor-driven."""
    rng = np.random.default_rng(seed)
    index = pd.bdate_range("2000-01-03", periods=bars)
    sectors = rng.integers(0, 10, assets)
    market = rng.normal(0.0003, 0.01, bars)
    sector_moves = rng.normal(0.0, 0.006, (bars, 10))
    returns = (rng.uniform(0.5, 1.5, assets) * market[:, None] + sector_moves[:, sectors]
               + rng.normal(0.0, 0.012, (bars, assets)))
    close = 50.0 * np.exp(np.cumsum(returns, axis=0))
    gap = np.exp(rng.normal(0.0, 0.003, (bars, assets)))
    open_ = np.vstack([close[:1], close[:-1]]) * gap
    spread = np.abs(rng.normal(0.0, 0.006, (bars, assets)))
    high = np.maximum(open_, close) * (1 + spread)
    low = np.minimum(open_, close) * (1 - spread)
    volume = rng.integers(10_000, 1_000_000, (bars, assets)).astype(float)
    return {f"S{i:04d}": pd.DataFrame({"Open": open_[:, i], "High": high[:, i],
                                       "Low": low[:, i], "Close": close[:, i],
                                       "Volume": volume[:, i]}, index=index)
            for i in range(assets)}


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assets", type=int, default=500)
    parser.add_argument("--bars", type=int, default=5000)
    parser.add_argument("--no-backtrader", action="store_true",
                        help="skip the backtrader check (hours at 2,000 assets)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    started = time.perf_counter()
    bars = synthetic_panel(args.assets, args.bars)
    features = {t: build_features(f, FeatureConfig()) for t, f in bars.items()}
    targets = {t: make_target(f["Close"], 1) for t, f in bars.items()}
    print(f"{args.assets} assets x {args.bars} bars: data and features "
          f"{time.perf_counter() - started:.0f} s, peak RSS {peak_mb():.0f} MB")
    train = TrainConfig(min_train_bars=1000, step=1000, epochs=3, patience=2,
                        context_bars=250, bptt=64, burn_in=20, batch_streams=8)
    realised = pd.DataFrame(targets)
    forecasts = {}
    for kind in ("pooled", "lstm_gnn"):
        config = ModelConfig(kind="lstm_gnn", hidden_size=16, num_layers=1, graph_k=5,
                             graph_window=252).with_kind(kind)
        began = time.perf_counter()
        result = walk_forward(features, targets, config, train, device="cpu", progress=False)
        forecasts[kind] = result.predictions
        seconds = time.perf_counter() - began
        ic = panel_ic(result.predictions.dropna(how="all"), realised)
        how = f", graph layers {result.folds[0].forecaster.model.propagation}" \
            if kind == "lstm_gnn" else ""
        print(f"  {kind}: {len(result.folds)} folds in {seconds:.0f} s{how}; mean daily IC "
              f"{ic['ic'].mean():+.4f} (no signal planted); peak RSS {peak_mb():.0f} MB")
    broker = BrokerConfig()
    for kind, frame in forecasts.items():
        start = frame.dropna(how="any").index[0]
        evaluator = BookEvaluator(bars, frame)
        for book in ("rank", "topk_dropout"):
            params = {"top_k": 50, "allow_short": True, "rebalance": 5, "book": book,
                      "n_drop": 5}
            kwargs = {"cash": 10_000_000.0, "commission_bps": broker.commission_bps,
                      "slippage_bps": broker.slippage_bps, "trade_start": start}
            evaluator.run(**kwargs, **params)  # compile or load the loop
            began = time.perf_counter()
            fast = evaluator.run(**kwargs, **params)
            fast_s = time.perf_counter() - began
            value = fast.equity["value"]
            years = (value.index[-1] - value.index[0]).days / 365.25
            traded = fast.fills["value"].sum() / value.mean() / years
            line = (f"  {kind}, {book} book: fast evaluator {fast_s * 1e3:.0f} ms, "
                    f"{len(fast.fills)} fills, turnover {traded:.1f}x a year, after costs "
                    f"{(value.iloc[-1] / value.iloc[0]) ** (1 / years) - 1:+.1%} a year")
            if not args.no_backtrader:
                began = time.perf_counter()
                slow = backtest(bars, CrossSectionalStrategy, cross_check=False,
                                broker=BrokerConfig(cash=10_000_000.0), forecasts=frame,
                                trade_start=start, **params)
                slow_s = time.perf_counter() - began
                same = (fast.fills.reset_index(drop=True).equals(
                    slow.fills.reset_index(drop=True).astype(fast.fills.dtypes.to_dict()))
                    and np.array_equal(fast.equity.to_numpy(), slow.equity.to_numpy()))
                line += (f"; backtrader {slow_s:.0f} s ({slow_s / fast_s:.0f}x), fills and "
                         f"equity {'identical' if same else 'DIFFERENT'}")
            print(line, flush=True)
    print(f"total {time.perf_counter() - started:.0f} s, peak RSS {peak_mb():.0f} MB")


if __name__ == "__main__":
    main()
