"""A whole experiment: data -> features -> walk-forward forecasts -> strategy and baselines -> metrics."""

from __future__ import annotations

import dataclasses
import random
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from .backtest import BacktestResult, BuyAndHold, LSTMStrategy, SmaCross, backtest
from .backtest.cerebro import forecast_backtest
from .cache import asset_key, cached_walk_forward, forecast_key, is_cached
from .config import DEFAULT_MACRO, ExperimentConfig, resolve_path
from .data import describe_gaps, load_exogenous, load_many, stamp
from .errors import ConfigError, DataError, DataWarning
from .evaluation.metrics import forecast_report, infer_periods_per_year, naive_forecasts
from .features import (
    VOLUME_FEATURES,
    build_features,
    exog_coverage_problem,
    make_target,
    warmup_bars,
)
from .graph import load_sectors
from .sentiment import load_sentiment, sentiment_feature, sentiment_usage

if TYPE_CHECKING:
    from .training import WalkForwardResult


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


def strategy_params(config: ExperimentConfig, calendar: pd.DatetimeIndex,
                    trade_start: pd.Timestamp, periods_per_year: float | None = None) -> dict:
    """LSTMStrategy's params for a run: the configured rules, the neutral forecast, and the
    bar spacing as known when trading starts (it scales vol-targeted positions; pass
    `periods_per_year` when it is already known for the bars before `trade_start`)."""
    center = 0.5 if config.model.head == "direction" else 0.0
    if periods_per_year is None:
        periods_per_year = infer_periods_per_year(calendar[calendar < trade_start])
    return {**config.strategy.params(), "center": center, "periods_per_year": periods_per_year}


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and PyTorch so the same config gives the same numbers."""
    random.seed(seed)
    np.random.seed(seed)  # noqa: NPY002 - user code may draw from the legacy global RNG
    import torch

    torch.manual_seed(seed)


@dataclass
class ExperimentInputs:
    """What features are built from: the bars, the exogenous table, the headlines, the
    feature settings in force, and the notes loading them gave."""

    bars: dict[str, pd.DataFrame]
    exogenous: pd.DataFrame | None
    news: pd.DataFrame | None
    feature_config: object
    notes: list[str]


def load_experiment_data(config: ExperimentConfig) -> tuple[dict[str, pd.DataFrame],
                                                            dict[str, pd.DataFrame], list[str]]:
    """Validated bars and features per ticker, plus notes for the report."""
    inputs = load_experiment_inputs(config)
    bars, notes = inputs.bars, inputs.notes
    features = experiment_features(config, inputs)
    for ticker, frame in bars.items():
        warm = warmup_bars(features[ticker])
        needed = warm + config.train.min_train_bars + config.train.step
        if len(frame) < needed:
            raise DataError(f"{frame.attrs.get('source', ticker)}: {len(frame)} bars, but "
                            f"{needed} are needed ({warm} feature warm-up + "
                            f"{config.train.min_train_bars} train.min_train_bars + "
                            f"{config.train.step} train.step). Supply more history or "
                            f"lower train.min_train_bars.")
        notes.append(f"{ticker}: {warm} warm-up bar(s) before every feature is defined.")
    return bars, features, notes


def experiment_features(config: ExperimentConfig, inputs: ExperimentInputs
                        ) -> dict[str, pd.DataFrame]:
    """The feature frame of every ticker from these inputs (the audit feeds it cut and
    perturbed copies)."""
    data, events = config.data, inputs.news
    features = {}
    for ticker, frame in inputs.bars.items():
        feats = build_features(frame, inputs.feature_config, exogenous=inputs.exogenous,
                               exog_lag=data.macro_lag, exog_prefix="macro_",
                               exog_transform=data.macro_transform, news=events)
        if events is not None:
            feats["sentiment"] = sentiment_feature(
                frame.index, events, ticker, half_life=data.sentiment_half_life,
                close_time=data.close_time)
        features[ticker] = feats
    return features


def load_experiment_inputs(config: ExperimentConfig) -> ExperimentInputs:
    """Bars, exogenous table and headlines of a config, validated, with their notes."""
    notes: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        paths = {t: resolve_path(p) for t, p in config.data.sources().items()}
        bars = load_many(paths, **config.data.loader())
    notes += _unique(str(w.message) for w in caught)
    for line in notes:
        warnings.warn(line, DataWarning, stacklevel=2)  # the caller sees them too
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
    cost = cost_warning(bars, config.broker)
    if cost:
        notes.append(cost)
        warnings.warn(cost, DataWarning, stacklevel=2)
    feature_config = config.features
    if config.data.volume == "none":
        kept = tuple(n for n in feature_config.names if n not in VOLUME_FEATURES)
        dropped = [n for n in feature_config.names if n in VOLUME_FEATURES]
        if not kept:
            raise ConfigError(f"data.volume: none leaves no feature: features.names "
                              f"{list(feature_config.names)} all need volume.")
        if dropped:
            notes.append(f"volume features {dropped} left out (data.volume: none).")
            warnings.warn(notes[-1], DataWarning, stacklevel=2)
            feature_config = dataclasses.replace(feature_config, names=kept)
    exog = None
    if config.data.macro:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            exog = load_exogenous(resolve_path(config.data.macro))
        notes += _unique(str(w.message) for w in caught)
        calendar = next(iter(bars.values())).index
        problem = exog_coverage_problem(calendar, exog)
        fix = ("Give exogenous data that covers the bars (data.macro: FILE) or leave it out "
               "(data.macro: null)")
        if problem and config.data.macro == DEFAULT_MACRO:
            notes.append(f"macro features left out: the default {DEFAULT_MACRO} (US yields "
                         f"and oil, {exog.index[0].date()}..{exog.index[-1].date()}) does not "
                         f"cover these bars ({problem}). {fix}.")
            warnings.warn(notes[-1], stacklevel=2)
            exog = None
        elif problem:
            raise DataError(f"{exog.attrs.get('source', config.data.macro)} does not cover the "
                            f"bars: {problem}. {fix}.")
    events = None
    if config.data.sentiment:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            events = load_sentiment(resolve_path(config.data.sentiment),
                                    clock_tz=config.data.clock_tz)
        notes += _unique(str(w.message) for w in caught)
        kind = (" (ILLUSTRATIVE example headlines, not real news: no result here says "
                "anything about real sentiment)") if events.attrs.get("illustrative") else ""
        notes.append(f"sentiment feature from {events.attrs['source']}{kind}: "
                     f"{len(events)} items, half-life {config.data.sentiment_half_life}, "
                     f"daily bars close at {config.data.close_time} "
                     f"({config.data.clock_tz}).")
        notes.append(sentiment_usage(events, list(bars)))
        warnings.warn(notes[-1], DataWarning, stacklevel=2)
    return ExperimentInputs(bars, exog, events, feature_config, notes)


def _unique(lines: object) -> list[str]:
    """Lines in order, each once (a warning raised per ticker or per call is noted once)."""
    return list(dict.fromkeys(lines))


COST_SHARE = 0.25  # round-trip costs above this share of the median bar range get a warning


def cost_warning(bars: dict[str, pd.DataFrame], broker: object) -> str | None:
    """A line when a round trip's costs (commission + slippage, both sides) exceed
    COST_SHARE of the median bar's High-Low range: such costs decide the result, as the
    equity defaults (5 + 2 bps a side) do on hourly FX bars. None when they do not."""
    per_side = broker.commission_bps + broker.slippage_bps
    if per_side <= 0:
        return None
    ranges = {t: float(((f["High"] - f["Low"]) / f["Close"]).median() * 1e4)
              for t, f in bars.items()}
    worst = min(ranges, key=ranges.get)
    if not ranges[worst] > 0 or 2 * per_side <= COST_SHARE * ranges[worst]:
        return None
    return (f"costs: a round trip costs {2 * per_side:g} bps (broker.commission_bps "
            f"{broker.commission_bps:g} + broker.slippage_bps {broker.slippage_bps:g}, each "
            f"side), {2 * per_side / ranges[worst]:.0%} of {worst}'s median bar range "
            f"({ranges[worst]:.1f} bps); at that size costs, not forecasts, decide the "
            f"result. Check them against your market (liquid FX: about 0.5-1 bps a side; "
            f"US large caps: 1-5 bps) and set broker.commission_bps / slippage_bps.")


def forecast_all(config: ExperimentConfig, features: dict[str, pd.DataFrame],
                 targets: dict[str, pd.Series], *, use_cache: bool = True,
                 refresh: bool = False, progress: bool | Callable[[str], None] | None = None,
                 say: Callable[[str], None] = lambda line: None
                 ) -> tuple[dict[str, WalkForwardResult], dict[str, str], int]:
    """Walk-forward forecasts of every ticker: a model per ticker, or one for all of them
    (a multi-asset model kind). Returns the results by ticker, their forecast-cache keys
    (for `cache.cached_predictions`) and how many walk-forwards were trained (not cached).
    """
    backend = None
    if config.folds.workers > 1:
        from .sweep.backends import LazyBackend

        backend = LazyBackend(config.folds.backend, config.folds.workers, config.folds.address)
    try:
        outcome = _forecast_all(config, features, targets, use_cache, refresh, progress, say,
                                backend)
    except BaseException:
        if backend is not None:
            backend.close(cancel=True)  # no worker outlives the error
        raise
    if backend is not None:
        backend.close()
    return outcome


def cached_forecast_keys(config: ExperimentConfig, features: dict[str, pd.DataFrame],
                         targets: dict[str, pd.Series]) -> dict[str, str] | None:
    """`forecast_all`'s keys when the cache holds every result they name, else None;
    without torch (a sweep's model configs, trained before, cost a hash of their inputs)."""
    model, train, device = config.model, config.train, config.device
    if model.multi_asset:
        if config.strategy.mode == "stream":
            return None  # forecast_all says why not
        sectors = load_sectors(resolve_path(config.data.sectors)) if config.data.sectors else None
        key = forecast_key(features, targets, model, train, device, sectors)
        return {t: asset_key(key, t) for t in features} if is_cached(key) else None
    keys = {t: forecast_key(features[t], targets[t], model, train, device) for t in features}
    return keys if all(is_cached(k) for k in keys.values()) else None


def _forecast_all(config: ExperimentConfig, features: dict[str, pd.DataFrame],
                  targets: dict[str, pd.Series], use_cache: bool, refresh: bool,
                  progress: bool | Callable[[str], None] | None, say: Callable[[str], None],
                  backend: object | None
                  ) -> tuple[dict[str, WalkForwardResult], dict[str, str], int]:
    model, train, device = config.model, config.train, config.device
    if model.multi_asset:
        if config.strategy.mode == "stream":
            raise ConfigError(f"strategy.mode: stream needs a model per ticker; "
                              f"model.kind={model.kind} forecasts all assets at once (batch).")
        sectors = load_sectors(resolve_path(config.data.sectors)) if config.data.sectors else None
        key = forecast_key(features, targets, model, train, device, sectors)
        say(f"walk-forward training of one {model.kind} model for {len(features)} assets")
        panel, trained = cached_walk_forward(features, targets, model, train, device=device,
                                             use_cache=use_cache, refresh=refresh, key=key,
                                             sectors=sectors, progress=progress,
                                             label=f"{len(features)} assets", backend=backend)
        if not trained:
            say("forecasts from the cache (same data, features, model and training "
                "settings); --no-cache retrains")
        return ({t: panel.asset(t) for t in features},
                {t: asset_key(key, t) for t in features}, int(trained))
    results, keys, trained = {}, {}, 0
    for ticker in features:
        keys[ticker] = forecast_key(features[ticker], targets[ticker], model, train, device)
        say(f"walk-forward training for {ticker} ({model.kind} model)")
        results[ticker], fresh = cached_walk_forward(
            features[ticker], targets[ticker], model, train, device=device,
            use_cache=use_cache, refresh=refresh, key=keys[ticker], progress=progress,
            label=ticker, backend=backend)
        trained += fresh
        if not fresh:
            say(f"{ticker}: forecasts from the cache (same data, features, model and "
                f"training settings); --no-cache retrains")
    return results, keys, trained


def run_experiment(config: ExperimentConfig | None = None, *,
                   progress: bool | Callable[[str], None] | None = None,
                   log: Callable[[str], None] | None = None,
                   use_cache: bool = True) -> ExperimentResult:
    """The whole experiment: walk-forward forecasts, LSTMStrategy and baselines, metrics.

    `progress`: None = a bar on a terminal, a line per fold otherwise; False = silent;
    a callable receives the lines. `log` receives one line per stage. Walk-forward
    results come from the forecast cache when their inputs are identical (`use_cache`).
    """
    from .forecaster import torch_threads

    config = config or ExperimentConfig()
    with torch_threads(config.threads):
        return _run_experiment(config, progress, log or (lambda message: None), use_cache)


def _run_experiment(config: ExperimentConfig, progress: bool | Callable[[str], None] | None,
                    say: Callable[[str], None], use_cache: bool) -> ExperimentResult:
    seed_everything(config.train.seed)
    bars, features, notes = load_experiment_data(config)
    say(f"data: {', '.join(f'{t} {len(f)} bars' for t, f in bars.items())}")
    targets = {t: make_target(bars[t]["Close"], config.train.horizon) for t in bars}
    results, _, _ = forecast_all(config, features, targets, use_cache=use_cache,
                                 progress=progress, say=say)
    trade_start = max(r.first_forecast_date for r in results.values())
    center = 0.5 if config.model.head == "direction" else 0.0
    params = strategy_params(config, next(iter(bars.values())).index, trade_start)
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
        # a baseline, not what the user asked for: the compiled evaluator where it can
        "naive_forecast": forecast_backtest(bars, naive, broker=broker,
                                            trade_start=trade_start, name="naive_forecast",
                                            **naive_params),
    }
    if backtests["naive_forecast"].engine == "fast":
        notes.append("the naive-forecast baseline was traded by the compiled evaluator "
                     "(backtrader's fills exactly); the LSTM strategy and the other "
                     "baselines by backtrader.")
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
