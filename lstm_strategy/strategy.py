"""LSTMStrategy: forecasts in, target positions out, orders through backtrader's broker.

The strategy reads a forecast for each bar from one of three sources, first found wins:
a `forecast` line on the data feed (see `make_feed`), the `forecasts` param (a pandas
Series by date, or a dict of them by data name), or the `stream` param (an object with
`step(date, row)`, fed the feed's `feature_lines` each bar). A forecast for bar t is
made at t's close; the order it causes fills by the broker's rule (next open by default).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

import backtrader as bt
import numpy as np
import pandas as pd

from .predictor import one_thread_per_worker

SIZINGS = ("fixed", "vol_target", "confidence", "sizer")


@dataclass
class _Book:
    """Per-data trading state."""

    clock: object = None  # the feed's datetime line
    line: object = None  # the feed's forecast line, when it has one
    forecasts: dict | None = None
    stream: object | None = None
    feature_lines: list | None = None  # the feed's feature lines, in the model's order
    direction: int = 0  # -1 short, 0 flat, +1 long (as decided; fills follow)
    target: float = 0.0  # target fraction of equity
    entry_bar: int = -1
    entry_price: float = math.nan
    blocked: int = 0  # direction stopped out; re-entry waits for the signal to reset
    pending: object | None = None
    history: deque | None = None
    nan_forecasts: int = 0


class RecordingStrategy(bt.Strategy):
    """A strategy that keeps its fills and closed trades as plain dicts for reports."""

    def start(self) -> None:
        self.fills: list[dict] = []
        self.closed_trades: list[dict] = []
        self.rejections: list[dict] = []

    def _record_order(self, order: bt.Order) -> None:
        if order.status == order.Completed:
            ex = order.executed
            self.fills.append({
                "date": bt.num2date(ex.dt), "ticker": order.data._name,
                "side": "buy" if order.isbuy() else "sell", "size": ex.size,
                "price": ex.price, "value": abs(ex.size) * ex.price, "commission": ex.comm,
            })
        elif order.status in (order.Margin, order.Rejected, order.Canceled, order.Expired):
            self.rejections.append({
                "signal_date": bt.num2date(order.created.dt), "ticker": order.data._name,
                "status": order.getstatusname(), "size": order.created.size,
                "signal_close": order.created.price,
            })

    @property
    def rejected_orders(self) -> int:
        """Orders the broker refused (Margin, Rejected) or that were cancelled or expired."""
        return len(self.rejections)

    def notify_order(self, order: bt.Order) -> None:
        self._record_order(order)

    def notify_trade(self, trade: bt.Trade) -> None:
        if not trade.isclosed:
            return
        self.closed_trades.append({
            "ticker": trade.data._name,
            "entry_date": bt.num2date(trade.dtopen), "exit_date": bt.num2date(trade.dtclose),
            "direction": "long" if trade.long else "short",
            "entry_price": trade.price, "bars": trade.barlen,
            "pnl": trade.pnl, "pnl_net": trade.pnlcomm, "status": "closed",
        })

    def stop(self) -> None:
        """Keep each position still open at the end as a trade marked to the last close."""
        self.open_trades: list[dict] = []
        for data in self.datas:
            for trades in self._trades[data].values():
                for trade in trades:
                    if not trade.isopen:
                        continue
                    unrealised = trade.size * (data.close[0] - trade.price)
                    self.open_trades.append({
                        "ticker": data._name, "entry_date": bt.num2date(trade.dtopen),
                        "exit_date": bt.num2date(data.datetime[0]),
                        "direction": "long" if trade.size > 0 else "short",
                        "entry_price": trade.price, "bars": len(data) - trade.baropen,
                        "pnl": trade.pnl + unrealised,
                        "pnl_net": trade.pnl + unrealised - trade.commission,
                        "status": "open",
                    })

    @property
    def trades(self) -> list[dict]:
        """Closed trades, then the positions still open at the end (marked to market)."""
        return self.closed_trades + getattr(self, "open_trades", [])

    def order_targets(self, targets: list[tuple[bt.DataBase, float]]) -> dict:
        """Order each data to a target fraction of equity; returns the orders by data.

        Reductions go first (the broker fills in submission order) and a purchase is
        capped at the cash on hand plus what this bar's reductions free at the close's
        price, less the commission and slippage the purchase will pay, so an equal-weight
        entry after other positions have grown buys what it can afford instead of being
        rejected bar after bar.
        """
        broker = self.broker
        value = broker.getvalue()
        planned = []
        for data, fraction in targets:
            held = self.getposition(data).size * data.close[0]
            planned.append((fraction * value - held, data, fraction * value, held))
        cash = broker.getcash()
        slip = broker.p.slip_perc or 0.0
        orders = {}
        for change, data, target_value, held in sorted(planned, key=lambda p: p[0]):
            price = data.close[0]
            comm = broker.getcommissioninfo(data).getcommission(1.0, price) / price
            if change > 0 and held >= 0:
                affordable = max(cash, 0.0) / ((1.0 + comm) * (1.0 + slip))
                target_value = held + min(change, affordable)
                cash -= (target_value - held) * (1.0 + comm) * (1.0 + slip)
            else:  # a sale (or a short growing) frees its value less slippage and commission
                cash -= (target_value - held) * (1.0 - slip) * (1.0 - comm)
            orders[data] = self.order_target_value(data=data, target=target_value)
        return orders

    def trade_start_num(self) -> float:
        """The `trade_start` param as backtrader's float date (-inf when unset)."""
        start = getattr(self.p, "trade_start", None)
        if start is None:
            return -math.inf
        return bt.date2num(pd.Timestamp(start).to_pydatetime())


class LSTMStrategy(RecordingStrategy):
    """Trade each data feed on its forecast: thresholds -> direction, sizing -> target percent."""

    params = (
        ("forecasts", None),  # pd.Series by date, or {data name: Series}
        ("stream", None),  # object with step(date, row) -> forecast, or {data name: object}
        ("feature_lines", ()),  # feed lines holding the raw features (stream mode)
        ("center", 0.0),  # neutral forecast: 0 for returns, 0.5 for up-probabilities
        ("entry_threshold", 0.0),  # enter when signal > this (long) or < -this (short)
        ("exit_threshold", 0.0),  # leave a long when signal <= this, a short when >= -this
        ("zscore_window", 0),  # > 0: signal = z-score of the forecast over this many bars
        ("allow_short", False),
        ("sizing", "fixed"),  # fixed | vol_target | confidence | sizer (the cerebro's sizer)
        ("fraction", 0.95),  # fraction of equity per position (split across datas)
        ("target_vol", 0.15),  # annualised volatility target (vol_target sizing)
        ("vol_window", 20),  # bars of returns for the volatility estimate
        ("confidence_scale", 0.0),  # |signal| at which confidence sizing reaches full size
        ("max_position", 1.0),  # cap on |target| as a fraction of equity
        ("stop_loss", 0.0),  # exit when the close moves this fraction against the entry
        ("take_profit", 0.0),  # exit when the close moves this fraction in favour
        ("min_hold_bars", 0),  # bars a position is held before a signal may close it
        ("rebalance_band", 0.05),  # re-size only when the target moves more than this
        ("trade_start", None),  # first date that may trade (earlier bars only warm up)
        ("periods_per_year", 252),
        ("record", True),  # keep a per-bar log of forecasts and targets
    )

    def __init__(self) -> None:
        p = self.p
        if p.sizing not in SIZINGS:
            raise ValueError(f"sizing={p.sizing!r}; choose one of {SIZINGS}.")
        if p.sizing == "confidence" and p.confidence_scale <= 0:
            raise ValueError("sizing='confidence' needs confidence_scale > 0 (the |signal| "
                             "that earns a full position).")
        if not 0 < p.fraction <= p.max_position:
            raise ValueError(f"fraction={p.fraction} must be in (0, max_position={p.max_position}].")
        if p.exit_threshold > p.entry_threshold:
            raise ValueError("exit_threshold must not exceed entry_threshold.")
        self._start_num = self.trade_start_num()
        one_thread_per_worker()  # a worker of optstrategy or a pool steps models on one core
        self._books: dict = {}
        for data in self.datas:
            book = _Book(clock=data.lines.datetime)
            if "forecast" in data.lines.getlinealiases():
                book.line = data.lines.forecast
            else:
                book.forecasts = self._lookup(data)
                if book.forecasts is None:
                    book.stream = self._pick(p.stream, data)
                    if book.stream is None:
                        raise ValueError(
                            f"no forecast source for data {data._name!r}: give the feed a "
                            f"'forecast' line, or pass forecasts= or stream=.")
                    missing = [n for n in p.feature_lines
                               if n not in data.lines.getlinealiases()]
                    if missing or not p.feature_lines:
                        raise ValueError(f"stream mode needs feature_lines present on the feed; "
                                         f"missing {missing or 'all'}.")
                    book.feature_lines = [getattr(data.lines, n) for n in p.feature_lines]
            if p.zscore_window > 0:
                book.history = deque(maxlen=p.zscore_window)
            self._books[data] = book
        self.per_data_fraction = p.fraction / len(self.datas)
        self.records: list[tuple] = []
        # params read every bar, kept as plain attributes (backtrader's params are slow)
        self._record, self._sizing, self._min_hold = p.record, p.sizing, p.min_hold_bars
        self._band = p.rebalance_band * self.per_data_fraction
        self._entry, self._exit, self._short = p.entry_threshold, p.exit_threshold, p.allow_short
        self._center, self._stops = p.center, bool(p.stop_loss or p.take_profit)

    @staticmethod
    def _pick(value: object, data: bt.DataBase) -> object:
        if isinstance(value, Mapping):
            return value.get(data._name)
        return value

    def _lookup(self, data: bt.DataBase) -> dict | None:
        series = self._pick(self.p.forecasts, data)
        if series is None:
            return None
        series = pd.Series(series).dropna()
        nums = [bt.date2num(ts.to_pydatetime()) for ts in pd.DatetimeIndex(series.index)]
        return dict(zip(nums, series.to_numpy(dtype=float), strict=True))

    # -- forecasts -----------------------------------------------------------------
    def _forecast(self, data: bt.DataBase, book: _Book) -> float:
        """The forecast from a `forecasts` series or the stream (a forecast line is read inline)."""
        if book.forecasts is not None:
            return book.forecasts.get(book.clock[0], math.nan)
        row = np.array([line[0] for line in book.feature_lines])
        return book.stream.step(pd.Timestamp(data.datetime.datetime(0)), row)

    def _signal(self, forecast: float, book: _Book) -> float:
        if book.history is None:
            return forecast - self._center
        book.history.append(forecast)
        if len(book.history) < book.history.maxlen:
            return math.nan
        values = np.fromiter(book.history, float)
        std = values.std()
        return (forecast - values.mean()) / std if std > 0 else 0.0

    # -- decisions -----------------------------------------------------------------
    def _direction(self, signal: float, book: _Book, held_bars: int) -> int:
        current = book.direction
        if current != 0 and held_bars < self._min_hold:
            return current
        entry, exit_ = self._entry, self._exit
        wants = 1 if signal > entry else (-1 if (self._short and signal < -entry) else 0)
        if book.blocked == 1 and signal <= exit_:
            book.blocked = 0
        if book.blocked == -1 and signal >= -exit_:
            book.blocked = 0
        if wants == book.blocked:
            wants = 0
        if current == 1 and wants == 0 and signal > exit_:
            return 1
        if current == -1 and wants == 0 and signal < -exit_:
            return -1
        return wants

    def _size(self, data: bt.DataBase, signal: float) -> float:
        p = self.p
        base = self.per_data_fraction
        if p.sizing == "vol_target":
            closes = np.asarray(data.close.get(size=p.vol_window + 1))
            if len(closes) <= p.vol_window:
                return 0.0
            vol = np.diff(np.log(closes)).std(ddof=1) * math.sqrt(p.periods_per_year)
            base = base * (p.target_vol / vol if vol > 0 else 1.0)
        elif p.sizing == "confidence":
            base = base * min(1.0, abs(signal) / p.confidence_scale)
        return min(base, p.max_position / len(self.datas))

    def _stopped(self, data: bt.DataBase, book: _Book) -> bool:
        if book.direction == 0 or not self._stops:
            return False
        p = self.p
        if math.isnan(book.entry_price):
            return False
        move = book.direction * (data.close[0] / book.entry_price - 1.0)
        return bool((p.stop_loss and move <= -p.stop_loss) or
                    (p.take_profit and move >= p.take_profit))

    def next(self) -> None:
        orders = []
        record = self._record
        for data, book in self._books.items():
            now = book.clock[0]
            if now < self._start_num:
                if book.stream is not None:
                    self._forecast(data, book)  # keep the recurrent state moving
                continue
            forecast = book.line[0] if book.line is not None else self._forecast(data, book)
            if not math.isfinite(forecast):
                book.nan_forecasts += 1
                if record:
                    self.records.append((data._name, now, forecast, math.nan, book.target))
                continue
            signal = forecast - self._center if book.history is None else self._signal(
                forecast, book)
            if book.pending is not None:  # an order is still in flight: decide once it is done
                if record:
                    self.records.append((data._name, now, forecast, signal, book.target))
                continue
            held = len(data) - book.entry_bar if self._min_hold and book.entry_bar >= 0 else 0
            if self._stops and self._stopped(data, book):
                book.blocked = book.direction
                direction = 0
            elif signal != signal:  # NaN: the z-score is still warming up
                direction = book.direction
            else:
                direction = self._direction(signal, book, held)
            if direction == 0:
                target = 0.0
            elif direction == book.direction and self._sizing in ("fixed", "sizer"):
                target = book.target
            elif self._sizing == "sizer":
                target = float(direction)  # the cerebro's sizer decides how much
            else:
                target = direction * self._size(data, signal)
            if direction != book.direction:
                book.entry_bar = len(data) if direction else -1
                book.entry_price = math.nan
            if direction != book.direction or abs(target - book.target) > self._band:
                orders.append((data, target))
                book.direction, book.target = direction, target
            if record:
                self.records.append((data._name, now, forecast, signal, book.target))
        if orders and self._sizing == "sizer":
            self._orders_by_sizer(orders)
        elif orders:
            for data, order in self.order_targets(orders).items():
                self._books[data].pending = order

    def _orders_by_sizer(self, orders: list[tuple[bt.DataBase, float]]) -> None:
        """Close what is held against the new direction, then buy or sell what the sizer says."""
        for data, direction in sorted(orders, key=lambda order: order[1]):
            book = self._books[data]
            if self.getposition(data).size:
                book.pending = self.close(data=data)
            if direction > 0:
                book.pending = self.buy(data=data)
            elif direction < 0:
                book.pending = self.sell(data=data)

    # -- broker events ---------------------------------------------------------------
    def notify_order(self, order: bt.Order) -> None:
        if order.status in (order.Submitted, order.Accepted):
            return
        self._record_order(order)
        book = self._books.get(order.data)
        # the broker notifies with clones of the order: match on its ref
        if book is not None and book.pending is not None and book.pending.ref == order.ref:
            book.pending = None
        if book is None:
            return
        if order.status == order.Completed:
            if math.isnan(book.entry_price) and book.direction != 0:
                book.entry_price = order.executed.price
        elif order.status in (order.Margin, order.Rejected, order.Canceled, order.Expired):
            # fall back to the position actually held; the signal retries on the next bar
            size = self.getposition(order.data).size
            book.direction = int(np.sign(size))
            value = self.broker.getvalue()
            book.target = size * order.data.close[0] / value if value > 0 else 0.0

    # -- results ---------------------------------------------------------------------
    @property
    def nan_forecasts(self) -> int:
        """Bars on or after trade_start whose forecast was NaN/inf (no order placed)."""
        return sum(b.nan_forecasts for b in self._books.values())

    def record_frame(self) -> pd.DataFrame:
        """Per-bar log: ticker, date, forecast, signal and target fraction of equity."""
        frame = pd.DataFrame(self.records,
                             columns=["ticker", "date", "forecast", "signal", "target"])
        frame["date"] = [bt.num2date(d) for d in frame["date"]]
        return frame


class EquityRecorder(bt.Analyzer):
    """Portfolio value, cash and gross exposure at each bar's close."""

    def start(self) -> None:
        self.rows: list[tuple] = []

    def next(self) -> None:
        broker = self.strategy.broker
        value = broker.getvalue()
        gross = sum(abs(self.strategy.getposition(d).size) * d.close[0]
                    for d in self.strategy.datas)
        self.rows.append((self.strategy.datetime[0], value, broker.getcash(), gross))

    def get_analysis(self) -> pd.DataFrame:
        frame = pd.DataFrame(self.rows, columns=["date", "value", "cash", "gross_exposure"])
        frame["date"] = [bt.num2date(d) for d in frame["date"]]  # converted once, at the end
        return frame.set_index("date")
