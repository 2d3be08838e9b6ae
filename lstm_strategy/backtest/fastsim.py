"""A fast evaluator of LSTMStrategy on precomputed forecasts, equal to backtrader's run.

It re-expresses backtrader's BackBroker for what LSTMStrategy does (target values decided
at a bar's close; with next-open fills, cheat-on-open: orders sized and cash-checked at
the next open and filled there, capped by that bar's high/low after slippage; with close
fills, sized and checked at the signal close and filled there; percent commission, whole
or fractional units, Margin rejections and the strategy's retry) and
calls the same pure trading rules (`decision.decide`). No backtrader line objects, no
per-bar method dispatch: one loop over arrays. Points it cannot model (a user's sizer,
a streaming forecast, another strategy) are refused with the reason, so a caller falls
back to backtrader. Tests hold its fills and equity to backtrader's within 1e-9.
"""

from __future__ import annotations

import functools
import math
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd

from ..evaluation.metrics import YEAR, finish_metrics, infer_periods_per_year
from .decision import RULE_PARAMS, Position, Rules, decide, left_sum

PARAM_DEFAULTS = {p.name: p.default for p in RULE_PARAMS}


def unsupported(params: Mapping[str, object], broker: object | None = None) -> str | None:
    """Why the fast evaluator cannot serve these LSTMStrategy params, or this broker
    (a BrokerConfig), with its costs (None: it can)."""
    if broker is not None and not broker.one_rate:
        return ("broker.sell_commission_bps / min_commission (Qlib's costs) are modelled "
                "by backtrader only")
    if params.get("sizing", "fixed") == "sizer":
        return "sizing='sizer' leaves sizes to a backtrader sizer"
    for key in ("stream", "feature_lines"):
        if params.get(key):
            return f"{key}: streaming forecasts step a model inside backtrader"
    unknown = set(params) - set(PARAM_DEFAULTS) - {"center", "periods_per_year", "forecasts",
                                                   "trade_start", "record"}
    if unknown:
        return f"params {sorted(unknown)} are not LSTMStrategy's trading rules"
    return None


@dataclass
class FastResult:
    """Equity per bar (from the bar before trade_start, like `backtest`) and the fills."""

    equity: pd.DataFrame  # value, cash, gross_exposure
    fills: pd.DataFrame  # date, ticker, side, size, price, value, commission
    rejections: list  # (date the broker refused it, ticker)
    trades: pd.DataFrame  # closed round trips, then positions open at the end
    @property
    def rejected_orders(self) -> int:
        return len(self.rejections)


class _Trade:
    """backtrader's Trade: one round trip, its average price, realised pnl and commission."""

    __slots__ = ("bar_open", "commission", "date_open", "long", "pnl", "price", "size")

    def __init__(self, date_open: pd.Timestamp, bar_open: int) -> None:
        self.size = self.price = self.pnl = self.commission = 0.0
        self.date_open, self.bar_open = date_open, bar_open
        self.long = True

    def update(self, size: float, price: float, commission: float) -> None:
        self.commission += commission
        old = self.size
        if not old:
            self.long = size > 0
        self.size += size
        if abs(self.size) > abs(old):
            self.price = (old * self.price + size * price) / self.size
        else:
            self.pnl += -size * (price - self.price) * 1.0


class _Position:
    """backtrader's Position.update: size, average price, and the opened/closed split."""

    __slots__ = ("price", "size")

    def __init__(self, size: float = 0.0, price: float = 0.0) -> None:
        self.size, self.price = size, price

    def update(self, size: float, price: float) -> tuple[float, float]:
        old = self.size
        self.size = new = old + size
        if not new:
            opened, closed = 0.0, size
            self.price = 0.0
        elif not old:
            opened, closed = size, 0.0
            self.price = price
        elif old > 0:
            if size > 0:
                opened, closed = size, 0.0
                self.price = (self.price * old + size * price) / new
            elif new > 0:
                opened, closed = 0.0, size
            else:
                opened, closed = new, -old
                self.price = price
        else:
            if size < 0:
                opened, closed = size, 0.0
                self.price = (self.price * old + size * price) / new
            elif new < 0:
                opened, closed = 0.0, size
            else:
                opened, closed = new, -old
                self.price = price
        return opened, closed


def simulate(bars: Mapping[str, pd.DataFrame], forecasts: Mapping[str, pd.Series], *,
             cash: float = 100_000.0, commission_bps: float = 5.0, slippage_bps: float = 2.0,
             fill: str = "next_open", fractional: bool = False,
             trade_start: pd.Timestamp | None = None, compiled: bool = True,
             **params: object) -> FastResult:
    """LSTMStrategy(forecasts=...) on `bars` (one calendar) through a model of BackBroker.

    `compiled` runs the Numba loop (_fastkernel.run); False runs the reference loop
    below, line for line the same model in plain Python (the tests hold both to
    backtrader).
    """
    if compiled:
        return _simulate_compiled(bars, forecasts, cash=cash, commission_bps=commission_bps,
                                  slippage_bps=slippage_bps, fill=fill, fractional=fractional,
                                  trade_start=trade_start, **params)
    reason = unsupported(params)
    if reason:
        raise ValueError(f"the fast evaluator cannot serve this point: {reason}")
    tickers = list(bars)
    first = bars[tickers[0]]
    index = first.index
    opens = np.column_stack([bars[t]["Open"].to_numpy(float) for t in tickers])
    highs = np.column_stack([bars[t]["High"].to_numpy(float) for t in tickers])
    lows = np.column_stack([bars[t]["Low"].to_numpy(float) for t in tickers])
    closes = np.column_stack([bars[t]["Close"].to_numpy(float) for t in tickers])
    signal_in = np.column_stack([pd.Series(forecasts[t]).reindex(index).to_numpy(float)
                                 for t in tickers])
    p = SimpleNamespace(**{**PARAM_DEFAULTS, "center": 0.0, "periods_per_year": 252,
                           **{k: v for k, v in params.items() if k in PARAM_DEFAULTS
                              or k in ("center", "periods_per_year")}})
    n = len(tickers)
    rules = Rules.from_params(p, n)
    comm, slip = commission_bps / 1e4, slippage_bps / 1e4
    close_fill = fill == "close"
    starting_cash = cash
    # plain lists in the loop: Python floats cost a fraction of NumPy scalars per access
    open_rows, high_rows, low_rows, close_rows = (
        a.tolist() for a in (opens, highs, lows, closes))
    forecast_rows = signal_in.tolist()
    dates = list(index)
    start = 0 if trade_start is None else int(np.searchsorted(index, pd.Timestamp(trade_start)))
    vol_scale = math.sqrt(p.periods_per_year)
    log_closes = np.log(closes)

    broker = _Broker(tickers, dates, (open_rows, high_rows, low_rows, close_rows), cash,
                     comm, slip, close_fill)
    positions = broker.positions
    books = [Position() for _ in range(n)]
    history = [deque(maxlen=p.zscore_window) if p.zscore_window > 0 else None
               for _ in range(n)]
    values = np.empty(len(index))
    cash_line = np.empty(len(index))
    gross = np.empty(len(index))
    value = cash

    def reject(i: int, bar: int, value_now: float) -> None:
        broker.rejections.append((dates[bar], tickers[i]))
        size = positions[i].size
        target = size * close_rows[bar][i] / value_now if value_now > 0 else 0.0
        books[i] = books[i]._replace(direction=int(np.sign(size)), target=target)

    deferred = None  # next-open fills: (targets, value) decided at the last close
    for bar in range(len(index)):
        if deferred is not None:  # cheat-on-open: the last close's targets, sized at this open
            broker.orders = _order_targets(deferred[0], positions, open_rows[bar], deferred[1],
                                           broker.cash, comm, slip, fractional, bar)
            deferred = None
        events = broker.step(bar)
        value = _broker_value(broker.cash, positions, close_rows[bar])
        for event, i, price in events:  # the strategy hears of each order
            if event == "filled":
                book = books[i]
                if math.isnan(book.entry_price) and book.direction != 0:
                    books[i] = book._replace(entry_price=price)
            else:
                reject(i, bar, value)
        # -- the strategy at the close ---------------------------------------------------
        if bar >= start:
            wanted = []
            for i in range(n):
                forecast = forecast_rows[bar][i]
                if not math.isfinite(forecast):
                    continue
                if history[i] is None:
                    signal = forecast - p.center
                else:
                    history[i].append(forecast)
                    if len(history[i]) < history[i].maxlen:
                        signal = math.nan
                    else:
                        window = np.fromiter(history[i], float)
                        std = window.std()
                        signal = (forecast - window.mean()) / std if std > 0 else 0.0
                vol = math.nan
                if rules.sizing == "vol_target" and bar >= p.vol_window:
                    returns = np.diff(log_closes[bar - p.vol_window:bar + 1, i])
                    vol = float(returns.std(ddof=1) * vol_scale)
                books[i], target = decide(books[i], bar + 1, signal, close_rows[bar][i], vol, rules)
                if target is not None:
                    wanted.append((i, target))
            if wanted and close_fill:
                broker.orders = _order_targets(wanted, positions, close_rows[bar], value,
                                               broker.cash, comm, slip, fractional, bar)
            elif wanted:
                deferred = (wanted, value)
        values[bar] = value
        cash_line[bar] = broker.cash
        gross[bar] = left_sum(abs(positions[i].size) * close_rows[bar][i] for i in range(n))
    equity = _equity_frame(values, cash_line, gross,
                           pd.DatetimeIndex(_equity_index(index, start), name="date"), start,
                           starting_cash)
    return broker.result(equity)


class _Broker:
    """backtrader's BackBroker for market orders, bar by bar: at the start of a bar it
    checks the orders submitted at the last close against one running cash balance
    (check_submitted), then executes what it accepted (slipped, capped by the bar's
    high/low, cash-checked again, partial closes kept), as the broker notifies them."""

    def __init__(self, tickers: list[str], dates: list, rows: tuple, cash: float,
                 comm: float, slip: float, close_fill: bool) -> None:
        self.tickers, self.dates = tickers, dates
        self.open_rows, self.high_rows, self.low_rows, self.close_rows = rows
        self.cash, self.comm, self.slip, self.close_fill = cash, comm, slip, close_fill
        self.check_rows = self.close_rows if close_fill else self.open_rows
        self.positions = [_Position() for _ in tickers]
        self.trades: list[_Trade | None] = [None] * len(tickers)
        self.orders: list[tuple[int, float, int]] = []  # submitted: (ticker, size, bar)
        self.working: list[list] = []  # accepted, not yet complete: [ticker, remaining,
        #                                created, executed size, average price, commission]
        self.fills: list[tuple] = []
        self.rejections: list[tuple] = []
        self.closed_trades: list[dict] = []

    def step(self, bar: int) -> list[tuple[str, int, float]]:
        """This bar's checks and executions; (kind, ticker, fill price) events in
        backtrader's notification order (kind "filled" or "margin")."""
        events: list[tuple[str, int, float]] = []
        comm, slip, cash, positions = self.comm, self.slip, self.cash, self.positions
        if self.orders:
            check = cash  # one running balance for all new orders, as check_submitted keeps
            for i, size, created in self.orders:
                price = self.check_rows[created][i]
                clone = _Position(positions[i].size, positions[i].price)
                opened, closed = clone.update(size, price)
                if closed:
                    check += -closed * price
                    check -= abs(closed) * comm * price
                if opened:
                    check -= opened * price
                    check -= abs(opened) * comm * price
                if check >= 0.0:
                    self.working.append([i, size, created, 0.0, 0.0, 0.0])
                else:
                    events.append(("margin", i, 0.0))
            self.orders = []
        still = []
        for order in self.working:
            i, size, created = order[0], order[1], order[2]
            if self.close_fill:
                base, when = self.close_rows[created][i], created
                price = base * (1 + slip) if size > 0 else base * (1 - slip)
            else:
                base, when = self.open_rows[bar][i], bar
                if not slip:
                    price = base
                elif size > 0:
                    price = min(base * (1 + slip), self.high_rows[bar][i])
                else:
                    price = max(base * (1 - slip), self.low_rows[bar][i])
            position = positions[i]
            original = position.price
            opened, closed = _Position(position.size, position.price).update(size, price)
            paid = 0.0
            running = cash
            if closed:
                running += -closed * original + (-closed) * (price - original)
                closed_comm = abs(closed) * comm * price
                running -= closed_comm
                paid += closed_comm
                cash = running
            had_open = opened
            if opened:
                running -= opened * price
                opened_comm = abs(opened) * comm * price
                running -= opened_comm
                if running < 0.0:
                    opened = 0.0
                else:
                    cash = running
                    paid += opened_comm
            executed = closed + opened
            if closed:
                trade = self.trades[i]
                trade.update(closed, price, closed_comm)
                if not trade.size:
                    _close_trade(self.closed_trades, self.tickers[i], trade, self.dates[bar],
                                 bar)
                    self.trades[i] = None
            if opened:
                if self.trades[i] is None:
                    self.trades[i] = _Trade(self.dates[bar], bar)
                self.trades[i].update(opened, price, opened_comm)
            if executed:
                position.update(executed, price)
                total = order[3] + executed
                order[4] = (order[3] * order[4] + executed * price) / total
                order[3], order[5] = total, order[5] + paid
                order[1] = size - executed  # a float residue stays, as in backtrader
            if had_open and not opened:
                events.append(("margin", i, 0.0))  # a partial close is not a fill
            elif order[1]:
                still.append(order)  # partial: the rest tries again next bar
            else:
                self.fills.append((self.dates[when], self.tickers[i],
                                   "buy" if order[3] > 0 else "sell", order[3], order[4],
                                   abs(order[3]) * order[4], order[5]))
                events.append(("filled", i, order[4]))
        self.working = still
        self.cash = cash
        return events

    def result(self, equity: pd.DataFrame) -> FastResult:
        """The run's frames: `equity`, the fills, closed trades then those still open
        (marked to the last close), the refused orders."""
        frame = pd.DataFrame(self.fills, columns=["date", "ticker", "side", "size", "price",
                                                  "value", "commission"])
        last = len(self.dates) - 1
        trades = list(self.closed_trades)
        for i, trade in enumerate(self.trades):  # open at the end: marked to the last close
            if trade is not None:
                unrealised = trade.size * (self.close_rows[last][i] - trade.price)
                trades.append({
                    "ticker": self.tickers[i], "entry_date": trade.date_open,
                    "exit_date": self.dates[last],
                    "direction": "long" if trade.size > 0 else "short",
                    "entry_price": trade.price, "bars": last - trade.bar_open,
                    "pnl": trade.pnl + unrealised,
                    "pnl_net": trade.pnl + unrealised - trade.commission, "status": "open"})
        trade_frame = pd.DataFrame(trades, columns=[
            "ticker", "entry_date", "exit_date", "direction", "entry_price", "bars", "pnl",
            "pnl_net", "status"])
        return FastResult(equity, frame, self.rejections, trade_frame)


def _signals(forecast: np.ndarray, start: int, center: float, window: int) -> np.ndarray:
    """LSTMStrategy's signal per bar from `start`: forecast - center, or its z-score over the
    last `window` finite forecasts (NaN while that window fills), with NumPy's own rounding."""
    if window <= 0:
        return forecast - center
    out = np.full(len(forecast), np.nan)
    history: deque = deque(maxlen=window)
    for bar in range(start, len(forecast)):
        value = forecast[bar]
        if not math.isfinite(value):
            continue
        history.append(value)
        if len(history) < window:
            continue
        values = np.fromiter(history, float)
        std = values.std()
        out[bar] = (value - values.mean()) / std if std > 0 else 0.0
    return out


def _vols(log_closes: np.ndarray, window: int, scale: float) -> np.ndarray:
    """The vol_target sizing's volatility per bar (NaN until `window` returns exist)."""
    out = np.full(len(log_closes), np.nan)
    for bar in range(window, len(log_closes)):
        out[bar] = float(np.diff(log_closes[bar - window:bar + 1]).std(ddof=1) * scale)
    return out


class FastEvaluator:
    """One forecast set, many strategy points: arrays prepared once, signals cached."""

    def __init__(self, bars: Mapping[str, pd.DataFrame],
                 forecasts: Mapping[str, pd.Series]) -> None:
        self.tickers = list(bars)
        self.index = bars[self.tickers[0]].index
        for ticker in self.tickers[1:]:
            if not bars[ticker].index.equals(self.index):
                raise ValueError(
                    f"FastEvaluator: {ticker}'s bars are on another calendar than "
                    f"{self.tickers[0]}'s ({len(bars[ticker])} vs {len(self.index)} bars); "
                    f"backtrader would trade each feed on its own clock. Put them on one "
                    f"calendar first (load_many(..., align='inner' or 'ffill')).")
        self.columns = {k: np.ascontiguousarray(np.column_stack(
            [bars[t][k].to_numpy(float) for t in self.tickers]))
            for k in ("Open", "High", "Low", "Close")}
        self.raw = np.column_stack([pd.Series(forecasts[t]).reindex(self.index).to_numpy(float)
                                    for t in self.tickers])
        self.finite = np.isfinite(self.raw)
        self._signals: dict[tuple, np.ndarray] = {}
        self._vols: dict[tuple, np.ndarray] = {}
        self._equity_rows: dict[int, pd.DatetimeIndex] = {}

    def signals(self, start: int, center: float, window: int) -> np.ndarray:
        key = (start, center, window)
        if key not in self._signals:
            self._signals[key] = np.ascontiguousarray(np.column_stack(
                [_signals(self.raw[:, i], start, center, window)
                 for i in range(len(self.tickers))]))
        return self._signals[key]

    def vols(self, window: int, periods_per_year: float) -> np.ndarray:
        key = (window, periods_per_year)
        if key not in self._vols:
            logs = np.log(self.columns["Close"])
            self._vols[key] = np.ascontiguousarray(np.column_stack(
                [_vols(logs[:, i], window, math.sqrt(periods_per_year))
                 for i in range(len(self.tickers))]))
        return self._vols[key]

    def run(self, *, cash: float = 100_000.0, commission_bps: float = 5.0,
            slippage_bps: float = 2.0, fill: str = "next_open", fractional: bool = False,
            trade_start: pd.Timestamp | None = None, **params: object) -> FastResult:
        """One strategy point (LSTMStrategy's params) with this broker."""
        from ._fastkernel import run

        tickers, index, columns = self.tickers, self.index, self.columns
        start = 0 if trade_start is None else int(np.searchsorted(index,
                                                                  pd.Timestamp(trade_start)))
        rule, signals, vols = self._point(params, start)
        out = run(columns["Open"], columns["High"], columns["Low"], columns["Close"], signals,
                  np.full(self.raw.shape, np.nan) if vols is None else vols, self.finite,
                  start, rule[0], rule[1], rule[2] > 0.0, int(rule[3]), rule[4], rule[5],
                  int(rule[6]), *rule[7:], float(cash), commission_bps / 1e4,
                  slippage_bps / 1e4, fill == "close", bool(fractional))
        return _frames(out, tickers, index, self.equity_index(start), columns["Close"], start,
                       float(cash))


    def equity_index(self, start: int) -> pd.DatetimeIndex:
        """The dates of the equity rows for trading from bar `start` (once per start)."""
        if start not in self._equity_rows:
            self._equity_rows[start] = pd.DatetimeIndex(_equity_index(self.index, start),
                                                        name="date")
        return self._equity_rows[start]

    def _point(self, params: Mapping[str, object], start: int) -> tuple:
        """A point's rules as the kernel takes them, and its signal and vol arrays."""
        reason = unsupported(params)
        if reason:
            raise ValueError(f"the fast evaluator cannot serve this point: {reason}")
        p = SimpleNamespace(**{**PARAM_DEFAULTS, "center": 0.0, "periods_per_year": 252,
                               **{k: v for k, v in params.items() if k in PARAM_DEFAULTS
                                  or k in ("center", "periods_per_year")}})
        rules = Rules.from_params(p, len(self.tickers))
        signals = self.signals(start, float(p.center), int(p.zscore_window))
        vols = (self.vols(int(p.vol_window), float(p.periods_per_year))
                if rules.sizing == "vol_target" else None)
        row = (float(rules.entry), float(rules.exit), float(bool(rules.allow_short)),
               float(int(rules.min_hold)), float(rules.stop_loss), float(rules.take_profit),
               float({"fixed": 0, "vol_target": 1, "confidence": 2}[rules.sizing]),
               float(rules.fraction), float(rules.target_vol), float(rules.confidence_scale),
               float(rules.max_position), float(rules.band))
        return row, signals, vols

    def run_many(self, points: Sequence[Mapping[str, object]], *, cash: float = 100_000.0,
                 commission_bps: float = 5.0, slippage_bps: float = 2.0,
                 fill: str = "next_open", fractional: bool = False,
                 trade_start: pd.Timestamp | None = None, split: pd.Timestamp | None = None,
                 periods_per_year: float | None = None, gaps: pd.DatetimeIndex | None = None,
                 returns: bool = False) -> list[dict]:
        """Score many strategy points (LSTMStrategy's params, one dict each) in one
        compiled call, without building frames: per point, in order, `metrics` (what
        `strategy_metrics` gives for `run()`'s equity, fills and trades, exactly),
        `final_value`, and with `split` (the hold-out's first bar) the in-sample metrics
        (bars before it, trades closed before it) and `holdout` (from the last bar before
        it; trades opened from it), as the sweep ranks them; `returns=True` adds the
        in-sample per-bar returns as `bar_returns` gives them (a Series by date)."""
        from ._fastkernel import STATS, run_many

        start = 0 if trade_start is None else int(np.searchsorted(self.index,
                                                                  pd.Timestamp(trade_start)))
        rows, signal_sets, vol_sets, signal_of, vol_of = [], {}, {}, [], []
        for params in points:
            row, signals, vols = self._point(params, start)
            rows.append(row)
            signal_of.append(signal_sets.setdefault(id(signals), (len(signal_sets), signals))[0])
            key = id(vols) if vols is not None else None
            vol_of.append(vol_sets.setdefault(key, (len(vol_sets), vols))[0])
        blank = np.full(self.raw.shape, np.nan)
        stacked_signals = np.stack([a for _, a in signal_sets.values()]) if rows else \
            np.empty((0, *self.raw.shape))
        stacked_vols = np.stack([blank if a is None else a for _, a in vol_sets.values()]) \
            if rows else np.empty((0, *self.raw.shape))
        gap = (self.index.isin(gaps) if gaps is not None and len(gaps)
               else np.zeros(len(self.index), bool))
        cut_bar = -1 if split is None else int(np.searchsorted(self.index, pd.Timestamp(split)))
        c = self.columns
        stats, kept, counts = run_many(
            c["Open"], c["High"], c["Low"], c["Close"], stacked_signals, stacked_vols,
            self.finite, start, np.asarray(signal_of, np.int64), np.asarray(vol_of, np.int64),
            np.asarray(rows, float).reshape(len(rows), 12), float(cash), commission_bps / 1e4,
            slippage_bps / 1e4, fill == "close", bool(fractional), gap, cut_bar, bool(returns))
        assert stats.shape[2] == STATS
        index = self.equity_index(start)
        cut = len(index) if split is None else int(index.searchsorted(pd.Timestamp(split)))
        spans = [index[:cut], index[cut - 1:]] if split is not None else [index]
        scale = [self._years_and_scale(span, periods_per_year) for span in spans]
        out = []
        for p in range(len(rows)):
            scored = [self._finish(stats[p, k], *scale[k]) for k in range(len(spans))]
            point = {"metrics": scored[0], "holdout": scored[1] if split is not None else None,
                     "final_value": float(stats[p, 1 if split is not None else 0, 1])}
            if returns:
                changes = pd.Series(kept[p, :counts[p]], index=spans[0][1:], name="value")
                point["returns"] = changes[changes.notna()]
            out.append(point)
        return out

    @staticmethod
    def _years_and_scale(span: pd.DatetimeIndex, periods_per_year: float | None
                         ) -> tuple[float, float]:
        years = (span[-1] - span[0]) / YEAR if len(span) > 1 else 0.0
        return years, math.sqrt(periods_per_year or infer_periods_per_year(span))

    @staticmethod
    def _finish(row: np.ndarray, years: float, ann: float) -> dict:
        return finish_metrics(first=row[0], last=row[1], n_bars=int(row[2]),
                              values_sum=row[3], years=years, mean=row[4], std=row[5],
                              downside=row[6], mdd=float(row[7]), ann=ann,
                              trades=(int(row[10]), int(row[11]), int(row[12])),
                              held_bars=int(row[8]), traded=float(row[9]))


def _equity_index(index: pd.DatetimeIndex, start: int) -> pd.DatetimeIndex:
    """The dates of backtest()'s equity rows: from the bar before start, or a starting
    row one bar spacing before the first bar."""
    if start > 0:
        return index[start - 1:]
    spacing = pd.Series(index).diff().median() if len(index) > 1 else pd.Timedelta(days=1)
    return index.insert(0, index[0] - spacing)


def warm_up() -> None:
    """Compile the loop (or load it from Numba's disk cache) in this process: a sweep's
    driver calls it before forking its workers, which then start with it compiled instead
    of each compiling it again."""
    index = pd.date_range("2000-01-03", periods=8, freq="B")
    close = pd.Series(np.linspace(10.0, 11.0, len(index)), index=index)
    bars = {"X": pd.DataFrame({k: close for k in ("Open", "High", "Low", "Close")})}
    evaluator = FastEvaluator(bars, {"X": close.pct_change()})
    evaluator.run()
    evaluator.run_many([{}], split=index[4], returns=True)  # what a sweep's points call


def kernel_cached() -> bool:
    """Whether Numba's disk cache (probably) holds the compiled loops: their index files
    are newer than the source. A wrong guess costs only time: `warm_up` compiles then."""
    from . import _fastkernel as kernel

    try:
        source = Path(kernel.__file__).stat().st_mtime
        return all(Path(fn._cache._cache_file._index_path).stat().st_mtime >= source
                   for fn in (kernel.run, kernel.run_many))
    except (AttributeError, OSError):
        return False


def _simulate_compiled(bars: Mapping[str, pd.DataFrame], forecasts: Mapping[str, pd.Series],
                       **kwargs: object) -> FastResult:
    reason = unsupported({k: v for k, v in kwargs.items() if k not in (
        "cash", "commission_bps", "slippage_bps", "fill", "fractional", "trade_start")})
    if reason:
        raise ValueError(f"the fast evaluator cannot serve this point: {reason}")
    return FastEvaluator(bars, forecasts).run(**kwargs)


def _equity_frame(values: np.ndarray, cash_line: np.ndarray, gross: np.ndarray,
                  rows: pd.DatetimeIndex, start: int, cash: float) -> pd.DataFrame:
    """Equity like backtest()'s on its row dates `rows` (`_equity_index`): from the bar
    before trade_start, or a starting row."""
    table = np.column_stack([values, cash_line, gross])
    table = table[start - 1:] if start > 0 else np.vstack([[cash, cash, 0.0], table])
    # one float block, built once (a sweep builds this for every point)
    return pd.DataFrame(table, index=rows, columns=["value", "cash", "gross_exposure"],
                        copy=False)


def _frames(out: tuple, tickers: list[str], index: pd.DatetimeIndex, rows: pd.DatetimeIndex,
            closes: np.ndarray, start: int, cash: float) -> FastResult:
    """The kernel's flat arrays as backtest()'s equity (on its row dates `rows`), fills
    and trades frames."""
    (values, cash_line, gross, f_bar, f_i, f_size, f_price, f_comm, t_i, t_open, t_close,
     t_long, t_price, t_pnl, t_comm, r_bar, r_i, tr_open, tr_size, tr_price, tr_pnl, tr_comm,
     tr_long, tr_bar) = out
    equity = _equity_frame(values, cash_line, gross, rows, start, cash)
    names = _words(tuple(tickers))
    fills = pd.DataFrame({"date": index[f_bar], "ticker": names.take(f_i),
                          "side": _words(("sell", "buy")).take((f_size > 0).astype(np.int64)),
                          "size": f_size,
                          "price": f_price, "value": np.abs(f_size) * f_price,
                          "commission": f_comm})
    last = len(index) - 1
    still = np.flatnonzero(tr_open)
    unrealised = tr_size[still] * (closes[last, still] - tr_price[still])
    ticker_ids = np.concatenate([t_i, still])
    opened_at = np.concatenate([t_open, tr_bar[still]])
    closed_at = np.concatenate([t_close, np.full(len(still), last)])
    pnl = np.concatenate([t_pnl, tr_pnl[still] + unrealised])
    trades = pd.DataFrame({
        "ticker": names.take(ticker_ids),
        "entry_date": index[opened_at], "exit_date": index[closed_at],
        "direction": _words(("short", "long")).take(
            np.concatenate([t_long, tr_long[still]]).astype(np.int64)),
        "entry_price": np.concatenate([t_price, tr_price[still]]),
        "bars": closed_at - opened_at, "pnl": pnl,
        "pnl_net": pnl - np.concatenate([t_comm, tr_comm[still]]),
        "status": _words(("closed", "open")).take(
            np.repeat(np.array([0, 1], np.int64), [len(t_i), len(still)]))})
    rejections = [(index[b], tickers[i]) for b, i in zip(r_bar, r_i, strict=True)]
    return FastResult(equity, fills, rejections, trades)


@functools.lru_cache(maxsize=64)
def _words(words: tuple[str, ...]) -> pd.api.extensions.ExtensionArray:
    """Words as the string array pandas makes of them, built once: frames take from it by
    index (converting every cell again was a tenth of a point's time)."""
    return pd.Series(list(words)).array


def _close_trade(out: list, ticker: str, trade: _Trade, when: pd.Timestamp, bar: int) -> None:
    out.append({"ticker": ticker, "entry_date": trade.date_open, "exit_date": when,
                "direction": "long" if trade.long else "short", "entry_price": trade.price,
                "bars": bar - trade.bar_open, "pnl": trade.pnl,
                "pnl_net": trade.pnl - trade.commission, "status": "closed"})


def _broker_value(cash: float, positions: list[_Position], closes: np.ndarray) -> float:
    """BackBroker._get_value to the last rounding: longs enter as their cost plus their
    unrealised profit, shorts as their (negative) value; order sizes hang on this number."""
    unlevered = 0.0
    for position, close in zip(positions, closes, strict=True):
        value = position.size * close
        if value > 0:
            unrealised = position.size * (close - position.price) * 1.0
            unlevered += (value - unrealised) / 1.0
            unlevered += unrealised
        else:
            unlevered += value
    return cash + unlevered


def _order_targets(wanted: list[tuple[int, float]], positions: list[_Position],
                   closes: np.ndarray, value: float, cash: float, comm: float, slip: float,
                   fractional: bool, bar: int) -> list[tuple[int, float, int]]:
    """RecordingStrategy.order_targets as sizes: target fractions of `value`, priced at
    `closes` (the signal close, or the next open with next-open fills)."""
    planned = []
    for i, fraction in wanted:
        held = positions[i].size * closes[i]
        planned.append((fraction * value - held, i, fraction * value, held))
    orders = []
    for change, i, target_value, held in sorted(planned, key=lambda row: row[0]):
        price = closes[i]
        if change > 0 and held >= 0:
            affordable = max(cash, 0.0) / ((1.0 + comm) * (1.0 + slip))
            target_value = held + min(change, affordable)
            cash -= (target_value - held) * (1.0 + comm) * (1.0 + slip)
        else:
            cash -= (target_value - held) * (1.0 - slip) * (1.0 - comm)
        size_now = positions[i].size
        if not target_value and size_now:
            orders.append((i, -size_now, bar))
            continue
        current = size_now * price
        if target_value == current:
            continue
        amount = abs(target_value - current)
        # the commission info's getsize: whole units by floor division, else fractions
        size = amount / price if fractional else float(int(amount // price))
        if size:
            orders.append((i, size if target_value > current else -size, bar))
    return orders
