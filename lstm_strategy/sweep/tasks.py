"""The two kinds of work a sweep hands to its workers (processes or Ray tasks).

`train_task` computes (or finds in the forecast cache) the walk-forward forecasts of one
model-side config; `backtest_task` trades one strategy point on cached forecasts and
scores it on the in-sample span and, apart, on the hold-out span. Both take plain data
and return plain data, run with one torch thread, and work the same in any process.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import sys
import time
import warnings
from collections.abc import Iterator

import pandas as pd

from ..backtest import BuyAndHold, LSTMStrategy, backtest
from ..backtest.fastsim import FastEvaluator, unsupported
from ..cache import cached_predictions
from ..config import ExperimentConfig, FoldsConfig, config_from_dict, resolve_path
from ..data import gap_after, load_many
from ..evaluation.metrics import bar_returns, infer_periods_per_year, strategy_metrics
from ..experiment import (
    cached_forecast_keys,
    forecast_all,
    load_experiment_data,
    seed_everything,
    strategy_params,
)
from ..features import make_target


@contextlib.contextmanager
def _one_torch_thread() -> Iterator[None]:
    """One torch thread for the block, where torch is loaded (a point served from cached
    forecasts never loads it)."""
    if "torch" not in sys.modules:
        yield
        return
    from ..forecaster import torch_threads

    with torch_threads(1):
        yield


def train_task(config_tree: dict, refresh: bool = False) -> dict:
    """Forecasts of one model-side config, by ticker: their cache keys, and how many trained.

    They go to the forecast cache, where the backtest tasks read them; `refresh` retrains
    even when the cache holds them. Forecasts the cache holds cost no torch import.
    """
    started = time.perf_counter()
    # a sweep spreads its models over the workers; each model's folds train in its worker
    config = dataclasses.replace(config_from_dict(config_tree), folds=FoldsConfig())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bars, features, _ = load_experiment_data(config)  # draws no random numbers
        targets = {t: make_target(f["Close"], config.train.horizon) for t, f in bars.items()}
        keys = None if refresh else cached_forecast_keys(config, features, targets)
        trained = 0
        if keys is None:
            from ..forecaster import torch_threads

            with torch_threads(1):
                seed_everything(config.train.seed)
                _, keys, trained = forecast_all(config, features, targets, refresh=refresh,
                                                progress=False)
    return {"keys": keys, "trained": trained, "seconds": time.perf_counter() - started}


@functools.lru_cache(maxsize=8)
def _bars(sources: tuple[tuple[str, str], ...], start: str | None, end: str | None,
          loader: tuple[tuple[str, object], ...]) -> dict[str, pd.DataFrame]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bars = load_many({t: resolve_path(p) for t, p in sources}, **dict(loader))
    return {t: f.loc[start:end] for t, f in bars.items()}


@functools.lru_cache(maxsize=64)
def _predictions(key: str) -> pd.Series:
    return cached_predictions(key)


_EVALUATORS: dict[tuple, FastEvaluator] = {}
_CALENDARS: dict[tuple, tuple] = {}


def _calendar(calendar: pd.DatetimeIndex) -> tuple[float, pd.DatetimeIndex]:
    """Bars per year and the bars after holes, once per calendar in this process."""
    key = (calendar[0], calendar[-1], len(calendar))
    if key not in _CALENDARS:
        _CALENDARS[key] = (infer_periods_per_year(calendar), calendar[gap_after(calendar)])
    return _CALENDARS[key]


def _evaluator(paths: tuple, start: object, end: object, keys: tuple, bars: dict,
               forecasts: dict) -> FastEvaluator:
    """One prepared evaluator per forecast set in this process (points reuse its arrays)."""
    key = (paths, start, end, keys)
    if key not in _EVALUATORS:
        if len(_EVALUATORS) > 8:
            _EVALUATORS.clear()
        _EVALUATORS[key] = FastEvaluator(bars, forecasts)
    return _EVALUATORS[key]


def bars_for(config: ExperimentConfig) -> dict[str, pd.DataFrame]:
    """The experiment's bars, loaded once per process."""
    d = config.data
    return _bars(tuple(d.sources().items()), d.start, d.end, tuple(d.loader().items()))


def holdout_start(calendar: pd.DatetimeIndex, trade_start: pd.Timestamp, share: float
                  ) -> pd.Timestamp | None:
    """First bar of the hold-out: the last `share` of the bars from `trade_start` on."""
    trading = calendar[calendar >= trade_start]
    if share <= 0 or len(trading) < 4:
        return None
    return trading[round(len(trading) * (1 - share))]


def backtest_task(config_tree: dict, keys: dict[str, str], holdout: float,
                  keep_equity: bool = False, engine: str = "backtrader") -> dict:
    """Trade one strategy point on cached forecasts; metrics in sample and on the hold-out.

    The in-sample metrics (what a sweep ranks by) use only bars before the hold-out
    starts; nothing after it reaches them. Returns the in-sample per-bar returns too
    (for the Probability of Backtest Overfitting). `engine`: "backtrader", "auto" (the
    fast evaluator where it can serve the point, else backtrader, said in the result)
    or "fast" (the fast evaluator, or an error saying why it cannot).
    """
    started = time.perf_counter()
    config = config_from_dict(config_tree)
    bars = bars_for(config)
    forecasts = {t: _predictions(keys[t]).reindex(bars[t].index) for t in bars}
    trade_start = max(p.first_valid_index() for p in forecasts.values())
    calendar = next(iter(bars.values())).index
    params = strategy_params(config, calendar, trade_start,
                             periods_per_year=_calendar(calendar[calendar < trade_start])[0])
    # a stream-mode point is scored on the batch forecasts of the same walk-forward (the
    # stream steps the same models to the same forecasts, within 1e-6: tests/test_training)
    reason = unsupported(params, config.broker)
    if engine == "fast" and reason:
        raise ValueError(f"engine=fast cannot serve this point: {reason}")
    fast = engine != "backtrader" and not reason
    served = "fast" if fast else "backtrader"
    if fast:
        broker = config.broker
        evaluator = _evaluator(tuple(config.data.paths), config.data.start, config.data.end,
                               tuple(sorted(keys.items())), bars, forecasts)
        if keep_equity:  # frames only when asked: a sweep's points score in the kernel
            run = evaluator.run(cash=broker.cash, commission_bps=broker.commission_bps,
                                slippage_bps=broker.slippage_bps, fill=broker.fill,
                                fractional=broker.fractional, trade_start=trade_start,
                                **params)
    else:
        with _one_torch_thread():
            run = backtest(bars, LSTMStrategy, broker=config.broker, trade_start=trade_start,
                           name="lstm", record=False, cross_check=False,
                           extra={t: f.rename("forecast").to_frame()
                                  for t, f in forecasts.items()}, **params)
        if engine != "backtrader" and reason:
            served = f"backtrader (fast cannot: {reason})"
    if config.strategy.mode == "stream":
        served += " on batch forecasts (stream mode's forecasts, computed in one pass)"
    split = holdout_start(calendar, trade_start, holdout)
    ppy, gaps = _calendar(calendar)
    if fast and not keep_equity:  # scores without frames, in the kernel
        scored = evaluator.run_many(
            [params], cash=broker.cash, commission_bps=broker.commission_bps,
            slippage_bps=broker.slippage_bps, fill=broker.fill, fractional=broker.fractional,
            trade_start=trade_start, split=split, periods_per_year=ppy, gaps=gaps,
            returns=True)[0]
        returns = scored["returns"]
        metrics, held_out = scored["metrics"], scored["holdout"]
    else:
        metrics, held_out = score_run(run.equity, run.fills, run.trades, split, ppy, gaps)
        cut = run.equity.index.searchsorted(split) if split is not None else len(run.equity)
        returns = bar_returns(run.equity["value"].iloc[:cut])
    result = {
        "metrics": metrics, "holdout": held_out, "returns": returns,
        "trade_start": trade_start, "holdout_start": split, "engine": served,
        "seconds": time.perf_counter() - started,
    }
    if keep_equity:
        result["equity"] = run.equity["value"]
    return result


def buy_and_hold_task(config_tree: dict, keys: dict[str, str], split: object) -> dict:
    """Buy & hold on a trial's bars through backtrader, as the sweep report sets it beside
    the chosen config: from its first forecast to the end (the equity), and apart on the
    bars before the hold-out (`split`) and from it (their metrics; {} without a split)."""
    config = config_from_dict(config_tree)
    bars = bars_for(config)
    start = max(_predictions(k).first_valid_index() for k in keys.values())
    broker = config.broker
    with _one_torch_thread():
        whole = backtest(bars, BuyAndHold, broker=broker, trade_start=start, cross_check=False)
        first, second = whole.metrics, {}
        if split is not None:
            inside = {t: f.loc[:split].iloc[:-1] for t, f in bars.items()}
            first = backtest(inside, BuyAndHold, broker=broker, trade_start=start,
                             cross_check=False).metrics
            calendar = next(iter(bars.values())).index
            before = calendar[calendar < pd.Timestamp(split)]
            outside = {t: f.loc[before[-1]:] for t, f in bars.items()} if len(before) else bars
            second = backtest(outside, BuyAndHold, broker=broker,
                              trade_start=pd.Timestamp(split), cross_check=False).metrics
    return {"in_sample": first, "holdout": second, "equity": whole.equity["value"]}


def score_run(equity: pd.DataFrame, fills: pd.DataFrame, trades: pd.DataFrame,
              split: pd.Timestamp | None, periods_per_year: float,
              gaps: pd.DatetimeIndex) -> tuple[dict, dict | None]:
    """A run's metrics in sample (bars before `split`, trades closed before it) and on the
    hold-out (from the last bar before it, trades opened from it); no hold-out: None."""
    def score(part: pd.DataFrame, fills: pd.DataFrame, trades: pd.DataFrame) -> dict:
        return strategy_metrics(part["value"], trades=trades, fills=fills,
                                exposure=part["gross_exposure"],
                                periods_per_year=periods_per_year, gaps=gaps)

    if split is None:
        return score(equity, fills, trades), None
    # equity and fills are in time order: positional slices, no copies
    cut = int(equity.index.searchsorted(split))
    inside, outside = equity.iloc[:cut], equity.iloc[cut - 1:]
    at = int(fills["date"].searchsorted(split))
    # trades closed before the hold-out: a trade still open then depends on later prices
    status = trades["status"].to_numpy()
    trades_in = trades[(status == "closed") & (trades["exit_date"].to_numpy() < split)]
    trades_out = trades[trades["entry_date"].to_numpy() >= split]
    return (score(inside, fills.iloc[:at], trades_in),
            score(outside, fills.iloc[at:], trades_out))


def returns_matrix(returns: dict[int, pd.Series]) -> pd.DataFrame:
    """Per-bar in-sample returns of many trials on their common bars (for PBO)."""
    frame = pd.concat(returns, axis=1, join="inner")
    return frame.dropna()

