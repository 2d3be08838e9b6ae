"""Backtests and whole experiments: data -> features -> walk-forward -> strategies -> metrics."""

from __future__ import annotations

import math
import random
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import backtrader as bt
import numpy as np
import pandas as pd
import torch

from strategies.baselines import BuyAndHold, SmaCross

from .config import BrokerConfig, ExperimentConfig, resolve_path
from .data import (
    DataError,
    describe_gaps,
    gap_after,
    load_exogenous,
    load_many,
    stamp,
    ticker_from_path,
)
from .features import build_features, exog_staleness_warning, make_target, warmup_bars
from .feed import make_feed
from .metrics import (
    forecast_report,
    infer_periods_per_year,
    naive_forecasts,
    strategy_metrics,
)
from .predictor import torch_threads
from .strategy import EquityRecorder, LSTMStrategy
from .train import WalkForwardResult, walk_forward


def make_cerebro(broker: BrokerConfig | None = None) -> bt.Cerebro:
    """A Cerebro whose broker has the configured cash, commission, slippage and fill rule."""
    broker = broker or BrokerConfig()
    cerebro = bt.Cerebro(stdstats=False, maxcpus=1)
    cerebro.broker.setcash(broker.cash)
    cerebro.broker.setcommission(commission=broker.commission_bps / 1e4)
    close_fill = broker.fill == "close"
    if broker.slippage_bps:
        # slip_match caps a slipped price at the executing bar's high/low. For a close fill
        # that bar is the *next* one (backtrader executes cheat-on-close orders a bar
        # later at the signal bar's close), so the cap would price the fill from the
        # future: close fills take close x (1 +- slippage) as it is (slip_out).
        cerebro.broker.set_slippage_perc(broker.slippage_bps / 1e4, slip_open=True,
                                         slip_limit=True, slip_match=True,
                                         slip_out=close_fill)
    if close_fill:
        cerebro.broker.set_coc(True)
    return cerebro


@dataclass
class BacktestResult:
    """One strategy's run: equity per bar, fills, closed trades, its metrics."""

    name: str
    equity: pd.DataFrame  # value, cash, gross_exposure per bar (from the start point)
    fills: pd.DataFrame
    trades: pd.DataFrame
    metrics: dict
    records: pd.DataFrame | None = None
    nan_forecasts: int = 0
    rejected_orders: int = 0
    analyzers: dict = field(default_factory=dict)  # backtrader's analyzers, whole feed
    strategy: bt.Strategy | None = field(default=None, repr=False)


def backtest(
    bars: Mapping[str, pd.DataFrame],
    strategy: type[bt.Strategy],
    *,
    extra: Mapping[str, pd.DataFrame | pd.Series] | None = None,
    broker: BrokerConfig | None = None,
    trade_start: pd.Timestamp | None = None,
    name: str | None = None,
    setup: Callable[[bt.Cerebro], None] | None = None,
    **params: object,
) -> BacktestResult:
    """Run `strategy` over `bars` (ticker -> OHLCV) in a fresh Cerebro and collect results.

    `extra` adds lines to each ticker's feed (e.g. a `forecast` column). Metrics cover the
    bars from `trade_start` on, starting from the value at the bar before it. `setup`
    may add a user's own analyzers or sizers to the Cerebro.
    """
    cerebro = make_cerebro(broker)
    for ticker, frame in bars.items():
        cerebro.adddata(make_feed(frame, (extra or {}).get(ticker), name=ticker))
    if trade_start is not None:
        params["trade_start"] = trade_start
    calendar = next(iter(bars.values())).index
    periods_per_year = infer_periods_per_year(calendar)
    cerebro.addstrategy(strategy, **params)
    cerebro.addanalyzer(EquityRecorder, _name="equity")
    cerebro.addanalyzer(bt.analyzers.Returns, _name="bt_returns")
    cerebro.addanalyzer(bt.analyzers.DrawDown, _name="bt_drawdown")
    cerebro.addanalyzer(bt.analyzers.TradeAnalyzer, _name="bt_trades")
    timeframe, compression = backtrader_timeframe(calendar)
    cerebro.addanalyzer(bt.analyzers.SharpeRatio, _name="bt_sharpe", timeframe=timeframe,
                        compression=compression, factor=periods_per_year, riskfreerate=0.0,
                        annualize=True, stddev_sample=True)
    if setup is not None:
        setup(cerebro)
    strat = cerebro.run()[0]
    equity = strat.analyzers.equity.get_analysis()
    cash = cerebro.broker.startingcash
    if trade_start is not None and (equity.index < pd.Timestamp(trade_start)).any():
        equity = equity.loc[equity.index[equity.index < pd.Timestamp(trade_start)][-1]:]
    else:
        start = pd.DataFrame({"value": [cash], "cash": [cash], "gross_exposure": [0.0]},
                             index=[equity.index[0] - _bar_spacing(calendar)])
        equity = pd.concat([start, equity])
    equity.index.name = "date"
    fills = pd.DataFrame(strat.fills, columns=["date", "ticker", "side", "size", "price",
                                               "value", "commission"])
    trades = pd.DataFrame(strat.trades, columns=[
        "ticker", "entry_date", "exit_date", "direction", "entry_price", "bars", "pnl",
        "pnl_net", "status"])
    metrics = strategy_metrics(equity["value"], trades=trades, fills=fills,
                               exposure=equity["gross_exposure"],
                               periods_per_year=periods_per_year,
                               gaps=calendar[gap_after(calendar)])
    metrics["rejected_orders"] = strat.rejected_orders
    records = strat.record_frame() if hasattr(strat, "record_frame") else None
    nan_count = getattr(strat, "nan_forecasts", 0)
    if hasattr(strat, "nan_forecasts"):
        metrics["nan_forecasts"] = nan_count
    return BacktestResult(name or strategy.__name__, equity, fills, trades, metrics,
                          records, nan_count, strat.rejected_orders, _analyzer_summary(strat),
                          strat)


def _bar_spacing(index: pd.DatetimeIndex) -> pd.Timedelta:
    """The usual step between bars (median; one day for a single bar)."""
    return pd.Series(index).diff().median() if len(index) > 1 else pd.Timedelta(days=1)


def backtrader_timeframe(index: pd.DatetimeIndex) -> tuple[int, int]:
    """backtrader's (timeframe, compression) for bars with this spacing (for its analyzers)."""
    step = _bar_spacing(index)
    if step >= pd.Timedelta(days=28):
        return bt.TimeFrame.Months, 1
    if step >= pd.Timedelta(days=5):
        return bt.TimeFrame.Weeks, 1
    if step >= pd.Timedelta(hours=20):
        return bt.TimeFrame.Days, 1
    return bt.TimeFrame.Minutes, max(1, round(step / pd.Timedelta(minutes=1)))


def _analyzer_summary(strat: bt.Strategy) -> dict:
    """backtrader's own analyzers over the whole feed, to cross-check our metrics."""
    trades = strat.analyzers.bt_trades.get_analysis()
    closed = trades.get("total", {}).get("closed", 0)
    still_open = trades.get("total", {}).get("open", 0)
    return {
        "total_return": math.expm1(strat.analyzers.bt_returns.get_analysis()["rtot"]),
        "max_drawdown": strat.analyzers.bt_drawdown.get_analysis()["max"]["drawdown"] / 100,
        "sharpe": strat.analyzers.bt_sharpe.get_analysis()["sharperatio"],
        "n_trades": closed + still_open,
        "n_closed_trades": closed,
        "win_rate_closed": trades["won"]["total"] / closed if closed else None,
        "scope": "the whole feed: Sharpe includes the flat bars before trade_start and "
                 "returns across holes in the data",
    }


@dataclass
class ExperimentResult:
    """Everything a run produced; `report.write_run` turns it into a run folder."""

    config: ExperimentConfig
    bars: dict[str, pd.DataFrame]
    features: dict[str, pd.DataFrame]
    walk_forward: dict[str, WalkForwardResult]
    predictions: pd.DataFrame  # date, ticker, prediction, target
    backtests: dict[str, BacktestResult]
    forecast_metrics: dict
    trade_start: pd.Timestamp
    notes: list[str] = field(default_factory=list)

    @property
    def metrics(self) -> dict:
        """metrics.json's content: strategies, forecasts, notes."""
        return {
            "strategy": self.backtests["lstm"].metrics,
            "backtrader_analyzers": self.backtests["lstm"].analyzers,
            "baselines": {k: v.metrics for k, v in self.backtests.items() if k != "lstm"},
            "forecast": self.forecast_metrics,
            "period": {"trade_start": stamp(self.trade_start),
                       "end": stamp(max(f.index[-1] for f in self.bars.values()))},
            "notes": self.notes,
        }

    def summary_table(self) -> pd.DataFrame:
        """Strategy vs baselines, the headline numbers."""
        keys = ["total_return", "cagr", "sharpe", "max_drawdown", "n_trades", "exposure"]
        rows = {name: {k: r.metrics.get(k) for k in keys} for name, r in self.backtests.items()}
        return pd.DataFrame(rows).T


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and PyTorch so the same config gives the same numbers."""
    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002 - user code may draw from the legacy global RNG
    torch.manual_seed(seed)


def load_experiment_data(config: ExperimentConfig) -> tuple[dict[str, pd.DataFrame],
                                                            dict[str, pd.DataFrame], list[str]]:
    """Validated bars and features per ticker, plus notes for the report."""
    notes: list[str] = []
    paths = {ticker_from_path(p): resolve_path(p) for p in config.data.paths}
    if len(paths) != len(config.data.paths):
        raise DataError(f"data.paths names a ticker twice: {list(config.data.paths)}.")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        bars = load_many(paths, align=config.data.align)
    notes += [str(w.message) for w in caught]
    if config.data.start or config.data.end:
        bars = {t: f.loc[config.data.start:config.data.end] for t, f in bars.items()}
    for ticker, frame in bars.items():
        gaps = describe_gaps(frame.index, frame.attrs.get("source", ticker))
        if gaps and config.data.gaps == "refuse":
            raise DataError(f"{gaps[0]}{f' (and {len(gaps) - 1} more)' if len(gaps) > 1 else ''}"
                            f". Fill the hole, cut the data around it with data.start / "
                            f"data.end, or set data.gaps: exclude to keep the labels and "
                            f"returns that span it out of training and metrics.")
        notes += [f"{g}; labels and returns across it are left out of training and "
                  f"metrics (features after it still look back across it)" for g in gaps]
    exog = None
    if config.data.macro:
        exog = load_exogenous(resolve_path(config.data.macro))
    features = {}
    for ticker, frame in bars.items():
        feats = build_features(frame, config.features, exogenous=exog,
                               exog_lag=config.data.macro_lag, exog_prefix="macro_",
                               exog_transform=config.data.macro_transform)
        features[ticker] = feats
        warm = warmup_bars(feats)
        needed = warm + config.train.min_train_bars + config.train.step
        if len(frame) < needed:
            raise DataError(f"{frame.attrs.get('source', ticker)}: {len(frame)} bars, but "
                            f"{needed} are needed ({warm} feature warm-up + "
                            f"{config.train.min_train_bars} train.min_train_bars + "
                            f"{config.train.step} train.step). Supply more history or "
                            f"lower train.min_train_bars.")
        notes.append(f"{ticker}: {warm} warm-up bar(s) before every feature is defined.")
    if exog is not None:
        stale = exog_staleness_warning(next(iter(bars.values())).index, exog, config.data.macro)
        if stale:
            warnings.warn(stale, stacklevel=2)
            notes.append(stale)
    return bars, features, notes


def run_experiment(config: ExperimentConfig | None = None, *, progress: bool | None = None,
                   log: Callable[[str], None] | None = None) -> ExperimentResult:
    """The whole experiment: walk-forward forecasts, LSTMStrategy and baselines, metrics."""
    config = config or ExperimentConfig()
    with torch_threads(config.threads):
        return _run_experiment(config, progress, log or (lambda message: None))


def _run_experiment(config: ExperimentConfig, progress: bool | None,
                    say: Callable[[str], None]) -> ExperimentResult:
    seed_everything(config.train.seed)
    bars, features, notes = load_experiment_data(config)
    say(f"data: {', '.join(f'{t} {len(f)} bars' for t, f in bars.items())}")
    results: dict[str, WalkForwardResult] = {}
    targets: dict[str, pd.Series] = {}
    for ticker in bars:
        targets[ticker] = make_target(bars[ticker]["Close"], config.train.horizon)
        say(f"walk-forward training for {ticker} ({config.model.kind} model)")
        results[ticker] = walk_forward(features[ticker], targets[ticker], config.model,
                                       config.train, device=config.device, progress=progress)
    trade_start = max(r.first_forecast_date for r in results.values())
    center = 0.5 if config.model.head == "direction" else 0.0
    history = next(iter(bars.values())).index
    # the bar spacing as known when trading starts (it scales vol-targeted positions)
    params = {**config.strategy.params(), "center": center,
              "periods_per_year": infer_periods_per_year(history[history < trade_start])}
    broker = config.broker

    say("backtests: LSTM strategy and baselines")
    if config.strategy.mode == "stream":
        names = list(features[next(iter(bars))].columns)
        extra = {t: features[t] for t in bars}
        lstm = backtest(bars, LSTMStrategy, extra=extra, broker=broker, trade_start=trade_start,
                        name="lstm", stream={t: results[t].stream() for t in bars},
                        feature_lines=tuple(names), **params)
    else:
        extra = {t: results[t].predictions.rename("forecast").to_frame() for t in bars}
        lstm = backtest(bars, LSTMStrategy, extra=extra, broker=broker, trade_start=trade_start,
                        name="lstm", **params)
    naive_params = dict(params, center=0.0)
    if config.model.head == "direction":
        naive_params.update(entry_threshold=0.0, exit_threshold=0.0)
    naive = {t: naive_forecasts(bars[t]["Close"], config.train.horizon)["naive_last"]
             for t in bars}
    backtests = {
        "lstm": lstm,
        "buy_and_hold": backtest(bars, BuyAndHold, broker=broker, trade_start=trade_start,
                                 name="buy_and_hold"),  # the whole book, always
        "sma_cross": backtest(bars, SmaCross, broker=broker, trade_start=trade_start,
                              name="sma_cross", fast=config.baselines.sma_fast,
                              slow=config.baselines.sma_slow, fraction=config.strategy.fraction,
                              allow_short=config.strategy.allow_short),
        "naive_forecast": backtest(bars, LSTMStrategy, broker=broker, trade_start=trade_start,
                                   name="naive_forecast", forecasts=naive, **naive_params),
    }
    rows = []
    forecast = {}
    for ticker in bars:
        pred = results[ticker].predictions
        oos = pred.index >= trade_start
        forecast[ticker] = forecast_report(pred[oos], targets[ticker][oos],
                                           bars[ticker]["Close"], config.train.horizon,
                                           center=center, head=config.model.head)
        rows.append(pd.DataFrame({"date": pred.index, "ticker": ticker,
                                  "prediction": pred.to_numpy(),
                                  "target": targets[ticker].to_numpy()})[oos])
    predictions = pd.concat(rows, ignore_index=True)
    if lstm.nan_forecasts:
        notes.append(f"{lstm.nan_forecasts} bar(s) had no finite forecast; no order was placed.")
    if any(b.rejected_orders for b in backtests.values()):
        notes.append("rejected orders (not enough cash at the fill price): " + ", ".join(
            f"{k} {b.rejected_orders}" for k, b in backtests.items() if b.rejected_orders))
    forecast_out = forecast[next(iter(bars))] if len(bars) == 1 else forecast
    return ExperimentResult(config, bars, features, results, predictions, backtests,
                            forecast_out, trade_start, notes)
