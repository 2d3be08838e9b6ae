"""Several forecasters on one universe, walk-forward, side by side in Qlib's terms.

`lstm-backtest compare` trains each model kind of `compare.models` (a model per asset for
single-asset kinds, one for all of them for pooled and lstm_gnn), with and without the
macro series (`compare.macro`), on the same bars and schedule. Over the bars every one
of them forecasts, it reports the forecasts' daily cross-sectional IC and rank IC and
their ICIR, the directional accuracy beside the naive forecasts', the top-k minus
bottom-k spread and Qlib's long-short return (half the spread of the top and bottom
20%), and the cross-sectional strategy (`portfolio.*`) traded on each in backtrader
with the configured costs: annualised return, information ratio against equal-weight
buy & hold of the universe, Sharpe, maximum drawdown and turnover.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .backtest import BacktestResult, BuyAndHold, CrossSectionalStrategy, backtest
from .config import ExperimentConfig
from .errors import ConfigError, DataError
from .evaluation.metrics import (
    ic_summary,
    infer_periods_per_year,
    long_short_returns,
    naive_forecasts,
    panel_ic,
    qlib_long_short_returns,
)
from .experiment import forecast_all, load_experiment_data, seed_everything
from .features import make_target
from .forecaster import torch_threads

LABELS = {"sequence": "per-asset LSTM", "window": "per-asset window LSTM",
          "pooled": "pooled LSTM", "lstm_gnn": "LSTM-GNN"}
BENCHMARK = "equal-weight buy & hold"


@dataclass
class Variant:
    """One model kind, with or without macro: its forecasts (dates x tickers)."""

    name: str
    kind: str
    macro: bool
    config: ExperimentConfig
    forecasts: pd.DataFrame
    trained: int
    seconds: float


@dataclass
class ComparisonResult:
    """Every variant's forecasts, strategy backtests and the comparison table."""

    config: ExperimentConfig
    bars: dict[str, pd.DataFrame]
    realised: pd.DataFrame  # the label of each bar and ticker (forward log return)
    start: pd.Timestamp  # first bar every variant forecasts: the compared span's start
    variants: dict[str, Variant]
    backtests: dict[str, BacktestResult]  # by variant name, and the benchmark
    daily_ic: dict[str, pd.DataFrame]
    table: pd.DataFrame
    notes: list[str] = field(default_factory=list)


def variant_name(kind: str, macro: bool) -> str:
    return f"{LABELS.get(kind, kind)}{'' if macro else ', no macro'}"


def run_comparison(config: ExperimentConfig, *,
                   progress: bool | Callable[[str], None] | None = None,
                   say: Callable[[str], None] = lambda line: None,
                   use_cache: bool = True) -> ComparisonResult:
    """Train, forecast, trade and compare every variant of `config.compare`."""
    if len(config.data.paths) < 2 * config.portfolio.top_k:
        raise ConfigError(f"portfolio.top_k={config.portfolio.top_k} needs at least "
                          f"{2 * config.portfolio.top_k} tickers in data.paths; "
                          f"{len(config.data.paths)} given.")
    with torch_threads(config.threads):
        return _compare(config, progress, say, use_cache)


def _inputs(config: ExperimentConfig, macro: bool) -> tuple[ExperimentConfig, tuple]:
    if macro and not config.data.macro:
        raise ConfigError("compare.macro includes true but data.macro is null; name a macro "
                          "file or set compare.macro: [false].")
    variant = dataclasses.replace(config, data=dataclasses.replace(
        config.data, macro=config.data.macro if macro else None))
    bars, features, notes = load_experiment_data(variant)
    columns = next(iter(features.values())).columns
    if macro and not any(str(c).startswith("macro_") for c in columns):
        raise DataError(f"the macro series ({config.data.macro}) was left out (it does not "
                        f"cover the bars); end the data where it ends (data.end) or set "
                        f"compare.macro: [false].")
    return variant, (bars, features, notes)


def _compare(config: ExperimentConfig, progress: object, say: Callable[[str], None],
             use_cache: bool) -> ComparisonResult:
    inputs = {macro: _inputs(config, macro) for macro in config.compare.macro}
    bars, _, notes = next(iter(inputs.values()))[1]
    targets = {t: make_target(f["Close"], config.train.horizon) for t, f in bars.items()}
    variants: dict[str, Variant] = {}
    for model_kind in config.compare.models:
        for macro, (base, (_, features, _)) in inputs.items():
            name = variant_name(model_kind, macro)
            experiment = dataclasses.replace(base, model=base.model.with_kind(model_kind))
            say(f"{name}: walk-forward")
            started = time.perf_counter()
            seed_everything(experiment.train.seed)
            results, _, trained = forecast_all(experiment, features, targets,
                                               use_cache=use_cache, progress=progress)
            forecasts = pd.DataFrame({t: results[t].predictions for t in bars})
            variants[name] = Variant(name, model_kind, macro, experiment, forecasts, trained,
                                     time.perf_counter() - started)
    start = max(v.forecasts.dropna(how="any").index[0] for v in variants.values())
    realised = pd.DataFrame(targets)
    calendar = next(iter(bars.values())).index
    ppy = infer_periods_per_year(calendar[calendar < start])
    say(f"backtests: the cross-sectional strategy on each variant and {BENCHMARK}, "
        f"from {start.date()}")
    backtests = {BENCHMARK: backtest(bars, BuyAndHold, broker=config.broker,
                                     trade_start=start, name=BENCHMARK, cross_check=False)}
    portfolio = dataclasses.asdict(config.portfolio)
    rows, daily_ic = [], {}
    naive = _naive(bars, config.train.horizon)
    for name, variant in variants.items():
        backtests[name] = backtest(
            bars, CrossSectionalStrategy, broker=config.broker, trade_start=start, name=name,
            cross_check=False, extra={t: variant.forecasts[t].rename("forecast").to_frame()
                                      for t in bars}, **portfolio)
        daily_ic[name] = panel_ic(variant.forecasts.loc[start:], realised.loc[start:])
        rows.append(_row(variant, realised.loc[start:], daily_ic[name], naive, start,
                         backtests[name], backtests[BENCHMARK], ppy, config))
    rows.append(_row(None, realised.loc[start:], None, naive, start, backtests[BENCHMARK],
                     backtests[BENCHMARK], ppy, config))
    notes = [n for n in notes if "warm-up bar" not in n]
    notes.append("survivorship: the universe is what it is today (e.g. sp32: 2021 index "
                 "members), so buy & hold of it, and long books on it, are biased upward.")
    return ComparisonResult(config, bars, realised, start, variants, backtests, daily_ic,
                            pd.DataFrame(rows).set_index("model"), notes)


def _naive(bars: dict[str, pd.DataFrame], horizon: int) -> dict[str, pd.DataFrame]:
    per_ticker = {t: naive_forecasts(f["Close"], horizon) for t, f in bars.items()}
    return {name: pd.DataFrame({t: per_ticker[t][name] for t in bars})
            for name in ("naive_last", "naive_drift")}


def _accuracy(forecasts: pd.DataFrame, realised: pd.DataFrame, center: float = 0.0
              ) -> float | None:
    """Share of (bar, ticker) pairs where the forecast's side of `center` matches the sign."""
    f, r = forecasts.align(realised, join="inner")
    both = f.notna().to_numpy() & r.notna().to_numpy()
    if not both.any():
        return None
    return float(((f.to_numpy() > center) == (r.to_numpy() > 0))[both].mean())


def _row(variant: Variant | None, realised: pd.DataFrame, daily: pd.DataFrame | None,
         naive: dict[str, pd.DataFrame], start: pd.Timestamp, run: BacktestResult,
         benchmark: BacktestResult, ppy: float, config: ExperimentConfig) -> dict:
    row: dict = {"model": variant.name if variant else BENCHMARK,
                 "macro": variant.macro if variant else None}
    if variant is not None:
        center = 0.5 if variant.config.model.head == "direction" else 0.0
        forecasts = variant.forecasts.loc[start:]
        summary = ic_summary(daily)
        k = config.portfolio.top_k
        long_short = long_short_returns(forecasts, realised, k)
        qlib_spread = qlib_long_short_returns(forecasts, realised)
        row.update({
            "ic": summary["ic_mean"], "rank_ic": summary["rank_ic_mean"],
            "icir": summary["icir"], "rank_icir": summary["rank_icir"],
            "directional_accuracy": _accuracy(forecasts, realised, center),
            "naive_directional_accuracy": max(
                _accuracy(frame.loc[start:], realised) or 0.0 for frame in naive.values()),
            f"long_short_top{k}": (float(long_short.mean() * ppy / config.train.horizon)
                                   if len(long_short) else None),
            "qlib_long_short": (float(qlib_spread.mean() * ppy / config.train.horizon)
                                if len(qlib_spread) else None),
        })
    metrics = run.metrics
    returns = run.equity["value"].pct_change()
    active = (returns - benchmark.equity["value"].pct_change()).dropna()
    spread = active.std(ddof=1)
    row.update({
        "annual_return": metrics.get("cagr"),
        "information_ratio": (float(active.mean() / spread * math.sqrt(ppy))
                              if variant is not None and spread > 0 else None),
        "sharpe": metrics.get("sharpe"), "max_drawdown": metrics.get("max_drawdown"),
        "turnover": metrics.get("turnover"),
        "trainings": variant.trained if variant else None,
        "seconds": round(variant.seconds, 1) if variant else None,
    })
    return row


def markdown_table(table: pd.DataFrame) -> str:
    """The comparison as a Markdown table, percentages and ratios as a person reads them."""
    from .evaluation.metrics import format_metric

    shown = [c for c in table.columns if c not in ("macro", "trainings", "seconds")]
    head = "| model | " + " | ".join(shown) + " |"
    rule = "|---|" + "---:|" * len(shown)
    body = ["| " + str(name) + " | " + " | ".join(
        format_metric(c, row[c]) if row[c] is not None and not (
            isinstance(row[c], float) and np.isnan(row[c])) else "–" for c in shown) + " |"
        for name, row in table.iterrows()]
    return "\n".join([head, rule, *body])
