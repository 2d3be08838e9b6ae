"""`lstm-backtest paper`: the backtest's LSTMStrategy on a live-style feed, on backtrader's
broker, with a journal that survives a crash.

The same config as `run`: the same data checks, features (computed online, bar by bar),
walk-forward folds (trained as the bars arrive), strategy rules and costs. In parity
mode each fold trains at its bar, so a replay gives the backtest's orders, fills and
equity; otherwise folds train in the background and take over when ready.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import backtrader as bt
import numpy as np
import pandas as pd

from ..backtest import make_cerebro
from ..backtest.strategies import LSTMStrategy
from ..config import ExperimentConfig, dump_config, resolve_path
from ..data import load_exogenous
from ..errors import ConfigError, DataWarning
from ..evaluation.metrics import infer_periods_per_year, strategy_metrics
from ..experiment import load_experiment_inputs, seed_everything, strategy_params
from ..features import build_features, warmup_bars
from ..forecaster import torch_threads
from ..graph import load_sectors
from ..online_features import OnlineFeatures
from ..sentiment import load_sentiment
from .feeds import BarFeed, ChainSource, ReplaySource, TailSource
from .forecaster import LiveForecaster
from .journal import Journal

SOURCES = ("replay", "tail")


def parse_source(source: str) -> tuple[str, list[str]]:
    """'replay' (the config's data), 'replay:FILE[,FILE]' or 'tail:FILE[,FILE]'."""
    name, _, files = source.partition(":")
    if name not in SOURCES or (name == "tail" and not files):
        raise ConfigError(f"--source {source!r}: give replay (the config's data), "
                          f"replay:FILE or tail:FILE (several files: comma-separated, "
                          f"NAME=FILE to name a ticker).")
    return name, [f for f in files.split(",") if f]


class JournaledStrategy(LSTMStrategy):
    """LSTMStrategy that journals each bar: its row's hash, forecast, target, the orders
    placed at its open, the fills, the model swaps and the account (see journal.py)."""

    params = (("journal", None), ("latency", None), ("refresh", None))

    def start(self) -> None:
        super().start()
        for data in self.datas:  # the broker sums positions in the order they were made:
            self.broker.getposition(data)  # the datas' order, as in a backtest (bit for bit)
        self._new_orders: list[tuple] = []
        self._new_fills: list[tuple] = []
        self._new_events: list[tuple] = []
        for book in self._books.values():
            if book.online is not None:
                book.online.on_event = self._event

    def _event(self, kind: str, details: dict) -> None:
        self._new_events.append((len(self._new_events), kind, json.dumps(details, default=str)))

    def orders_placed(self, orders: dict) -> None:
        super().orders_placed(orders)
        for data, order in orders.items():
            self._new_orders.append((len(self._new_orders), data._name,
                                 "buy" if order.isbuy() else "sell", float(order.created.size),
                                 float(order.created.price)))

    def notify_order(self, order: bt.Order) -> None:
        super().notify_order(order)
        if order.status == order.Completed:
            ex = order.executed
            self._new_fills.append((len(self._new_fills), order.data._name,
                                "buy" if order.isbuy() else "sell", float(ex.size),
                                float(ex.price), float(ex.comm)))

    def next(self) -> None:
        if self.p.refresh is not None:
            self.p.refresh()  # exogenous and news files that grew since the last bar
        super().next()
        latency = self.p.latency
        if latency is not None:
            latency.append(time.perf_counter() - max(d.delivered_at for d in self.datas))
        bars = []
        for data, book in self._books.items():
            online = book.online
            row = online.row_of(data._name) if online is not None else None
            digest = hashlib.sha256(row.tobytes()).hexdigest()[:16] if row is not None else ""
            forecast = online.forecast_of(data._name) if online is not None else math.nan
            status = data._getstatusname(book.status) if book.status is not None else "LIVE"
            bars.append((data._name, str(bt.num2date(data.datetime[0])), data.open[0],
                         data.high[0], data.low[0], data.close[0], data.volume[0], status,
                         digest, forecast, book.position.target))
        broker = self.broker
        self.p.journal.step(len(self), {
            "bars": bars, "orders": self._new_orders, "fills": self._new_fills,
            "account": [(str(bt.num2date(self.datas[0].datetime[0])), broker.getvalue(),
                         broker.getcash())],
            "events": self._new_events})
        self._new_orders, self._new_fills, self._new_events = [], [], []


@dataclass
class PaperResult:
    """A paper run: its folder, the journal's tables, and its metrics."""

    folder: Path
    equity: pd.DataFrame
    fills: pd.DataFrame
    orders: pd.DataFrame
    metrics: dict
    resumed_bars: int
    latency: list[float]


def _meta(config: ExperimentConfig, source: str, parity: bool) -> dict:
    resolved = json.dumps(dataclasses.asdict(config), default=str, sort_keys=True)
    return {"config": hashlib.sha256(resolved.encode()).hexdigest()[:16], "source": source,
            "parity": parity}


def paper(config: ExperimentConfig, source: str, out: str | Path, *, parity: bool = False,
          speed: float | None = None, idle: float | None = None,
          say: Callable[[str], None] = lambda line: None,
          latency: list | None = None) -> PaperResult:
    """Run LSTMStrategy on `source` (see `parse_source`) into the run folder `out`.

    Resumes the folder's journal when it has one (the journaled bars are replayed and
    checked, then the source goes on after them). `idle`: a tail source ends after this
    many seconds without a new row. Returns when the source ends.
    """
    feed_kind, files = parse_source(source)
    if files:
        config = dataclasses.replace(config, data=dataclasses.replace(config.data,
                                                                      paths=files))
    with torch_threads(config.threads):
        return _paper(config, feed_kind, source, Path(out), parity, speed, idle, say, latency)


def _paper(config: ExperimentConfig, feed_kind: str, source: str, out: Path, parity: bool,
           speed: float | None, idle: float | None, say: Callable[[str], None],
           latency: list | None) -> PaperResult:
    seed_everything(config.train.seed)
    if feed_kind == "replay" and not parity and not speed:
        warnings.warn("paper: a replay as fast as possible with folds trained in the "
                      "background: each fold takes over late, maybe after the last bar "
                      "(a trainer needs seconds); give --parity to train at the bar as the "
                      "backtest does, or --speed to pace the bars.", DataWarning,
                      stacklevel=2)
    inputs = load_experiment_inputs(config)  # validates the files as `run` does
    journal = Journal(out, _meta(config, source, parity))
    try:
        if not (out / "config.yaml").exists():  # what `lstm-backtest report` rebuilds from
            (out / ".config.yaml.tmp").write_text(dump_config(config))
            (out / ".config.yaml.tmp").replace(out / "config.yaml")
        resumed = journal.last_seq
        if resumed:
            say(f"resuming: {resumed} journaled bar(s) replayed and checked first")
        cerebro = make_cerebro(config.broker)
        online, features_of = {}, {}
        calendar = next(iter(inputs.bars.values())).index
        d = config.data
        multi = config.model.multi_asset
        for ticker, frame in inputs.bars.items():
            features = features_of[ticker] = OnlineFeatures(
                inputs.feature_config, exogenous=inputs.exogenous, exog_lag=d.macro_lag,
                exog_prefix="macro_", exog_transform=d.macro_transform, news=inputs.news,
                sentiment_ticker=ticker if inputs.news is not None else None,
                half_life=d.sentiment_half_life, close_time=d.close_time,
                volume=d.volume != "none")
            if not multi:
                online[ticker] = _forecaster(config, journal, features, ticker, out, parity)
            done = journal.bars(ticker)
            after = done[-1][0][0] if done else None
            if feed_kind == "replay":
                live = ReplaySource(frame, speed, after=after)
            else:
                live = TailSource(Path(frame.attrs["source"]), _tail_loader(config),
                                  after=after, idle=idle)
            cerebro.adddata(BarFeed(source=ChainSource(done, live)), name=ticker)
        if multi:  # one model for all assets, stepped once a bar
            sectors = (load_sectors(resolve_path(config.data.sectors))
                       if config.data.sectors else None)
            online = _forecaster(config, journal, features_of, "all", out, parity, sectors)
        # the bar spacing as known before trading starts (it scales vol-targeted sizes)
        first_trade = min(len(calendar) - 1, warmup_bars(build_features(
            next(iter(inputs.bars.values())), inputs.feature_config))
            + config.train.min_train_bars)
        params = strategy_params(config, calendar, calendar[first_trade],
                                 infer_periods_per_year(calendar[:max(first_trade, 2)]))
        params.pop("trade_start", None)
        growing = GrowingInputs(config, list(features_of.values()))
        cerebro.addstrategy(JournaledStrategy, journal=journal, online=online,
                            latency=latency, refresh=growing if growing.files else None,
                            **params)
        cerebro.run()
        for forecaster in (online.values() if isinstance(online, dict) else [online]):
            forecaster.close()
        return _result(journal, out, resumed, latency or [])
    finally:
        journal.close()


class GrowingInputs:
    """The macro and headline files of a run, re-read when they change while it runs; the
    new rows reach every ticker's online features (joined as-of by availability time, so
    a row counts from when it is known, as in the backtest)."""

    def __init__(self, config: ExperimentConfig, features: list[OnlineFeatures]) -> None:
        self.features = features
        self.clock_tz = config.data.clock_tz
        self.files = {what: resolve_path(path) for what, path in
                      (("macro", config.data.macro), ("news", config.data.sentiment)) if path}
        self._stamps = {what: self._stamp(path) for what, path in self.files.items()}

    @staticmethod
    def _stamp(path: Path) -> tuple | None:
        try:
            stat = path.stat()
        except FileNotFoundError:
            return None
        return stat.st_size, stat.st_mtime_ns

    def __call__(self) -> None:
        for what, path in self.files.items():
            stamp = self._stamp(path)
            if stamp == self._stamps[what]:
                continue
            self._stamps[what] = stamp
            if what == "macro":
                table = load_exogenous(path)
                for features in self.features:
                    features.extend_exogenous(table)
            else:
                news = load_sentiment(path, clock_tz=self.clock_tz)
                for features in self.features:
                    features.extend_news(news)


def _forecaster(config: ExperimentConfig, journal: Journal, features: object, label: str,
                out: Path, parity: bool, sectors: dict | None = None) -> LiveForecaster:
    """The live walk-forward of one ticker (or of all, for a multi-asset model), told
    where a journaled run's background folds took over."""
    swaps = {d["fold"]: d["position"] for _, what, d in journal.events()
             if what == "swap" and d.get("ticker") == label}
    first = label if label != "all" else next(iter(features))
    return LiveForecaster(features, config.model, config.train, device=config.device,
                          checkpoints=out / "models", background=not parity, label=label,
                          replay_swaps=swaps, journaled_bars=len(journal.bars(first)),
                          sectors=sectors)


def _tail_loader(config: ExperimentConfig) -> dict:
    """load_ohlcv's arguments from the data section (one file: no alignment)."""
    loader = config.data.loader()
    loader.pop("align", None)
    return loader


def _result(journal: Journal, out: Path, resumed: int, latency: list[float]) -> PaperResult:
    """Write equity.csv, fills.csv, orders.csv and metrics.json from the journal."""
    account = journal.frame("account")
    equity = account.assign(date=pd.to_datetime(account["date"])).set_index("date")[
        ["value", "cash"]]
    fills, orders = journal.frame("fills"), journal.frame("orders")
    swaps = [e for e in journal.events() if e[1] == "swap"]
    metrics: dict = {"bars": len(equity), "fills": len(fills), "model_swaps": len(swaps)}
    if swaps and len(equity) > 1:
        start = max(0, min(s for s, _, _ in swaps) - 1)  # the bar before the first model
        curve = equity["value"].iloc[start:]
        if len(curve) > 1:
            metrics.update(strategy_metrics(curve, periods_per_year=infer_periods_per_year(
                pd.DatetimeIndex(curve.index))))
    equity.to_csv(out / "equity.csv")
    fills.to_csv(out / "fills.csv", index=False)
    orders.to_csv(out / "orders.csv", index=False)
    (out / "metrics.json").write_text(json.dumps(
        {k: (v if not isinstance(v, float) or np.isfinite(v) else None)
         for k, v in metrics.items()}, indent=2, default=str))
    return PaperResult(out, equity, fills, orders, metrics, resumed, latency)
