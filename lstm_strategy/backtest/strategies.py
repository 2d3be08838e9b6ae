"""LSTMStrategy: forecasts in, target positions out, orders through backtrader's broker.

The strategy reads a forecast for each bar from one of three sources, first found wins:
a `forecast` line on the data feed (see `make_feed`), the `forecasts` param (a pandas
Series by date, or a dict of them by data name), or the `stream` param (an object with
`step(date, row)`, fed the feed's `feature_lines` each bar). A forecast for bar t is
made at t's close; the order it causes fills by the broker's rule (next open by default).
"""

from __future__ import annotations

import math
import sys
import warnings
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field

import backtrader as bt
import numpy as np
import pandas as pd

from ..data import GAP_FACTOR
from ..errors import ConfigError
from .decision import (
    RULE_PARAMS,
    Param,
    Position,
    Rules,
    book_targets,
    check_book,
    check_rules,
    decide,
    left_sum,
    params_doc,
)


@dataclass
class _Book:
    """Per-data state: where the forecast comes from, the rules' state, the order in flight."""

    clock: object = None  # the feed's datetime line
    line: object = None  # the feed's forecast line, when it has one
    forecasts: dict | None = None
    stream: object | None = None
    feature_lines: list | None = None  # the feed's feature lines, in the model's order
    online: object | None = None  # on_bar(when, o, h, l, c, v) -> forecast (live mode)
    status: int | None = None  # the feed's last notify_data status (live feeds)
    last_num: float = -math.inf  # the last bar's date, to refuse repeats
    last_len: int = 0  # bars seen: a data without a new bar this step is left alone
    steps: deque = field(default_factory=lambda: deque(maxlen=100))  # live: recent spacings
    position: Position = field(default_factory=Position)
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
        """Order each data to a target fraction of equity; returns the orders placed now.

        The targets are fractions of the equity at this bar's close. With next-open fills
        (a Cerebro with cheat_on_open, as `make_cerebro` builds it) the orders are sized
        at the next bar's open, the price they fill at, in `next_open`: a gap up can then
        not leave a purchase short of cash, and nothing but that open is read from the
        new bar. Elsewhere (close fills, a user's plain Cerebro) they are sized at this
        close now, and a purchase may be refused when the next open gaps above it.

        Reductions go first (the broker fills in submission order) and a purchase is
        capped at the cash on hand plus what the reductions free, less the commission
        and slippage the purchase will pay, so an equal-weight entry after other
        positions have grown buys what it can afford instead of being rejected.
        """
        if self._sized_at_open():
            self._deferred = (list(targets), self.broker.getvalue())
            return {}
        return self._place(targets, [data.close[0] for data, _ in targets],
                           self.broker.getvalue())

    def _sized_at_open(self) -> bool:
        return bool(self.env.p.cheat_on_open) and not self.broker.p.coc

    def next_open(self) -> None:
        """Cheat-on-open: the orders decided at the last close, sized at this open."""
        deferred = getattr(self, "_deferred", None)
        if deferred is None:
            return
        self._deferred = None
        targets, value = deferred
        self.orders_placed(self._place(targets, [data.open[0] for data, _ in targets], value))

    def orders_placed(self, orders: dict) -> None:
        """Hook: the orders `next_open` placed for targets decided at the last close."""

    def _place(self, targets: list[tuple[bt.DataBase, float]], prices: list[float],
               value: float) -> dict:
        """Orders to the target fractions of `value`, sized at `prices` (see order_targets)."""
        broker = self.broker
        planned = []
        for (data, fraction), price in zip(targets, prices, strict=True):
            held = self.getposition(data).size * price
            planned.append((fraction * value - held, data, fraction * value, held, price))
        cash = broker.getcash()
        slip = broker.p.slip_perc or 0.0
        orders = {}
        for change, data, target_value, held, price in sorted(planned, key=lambda p: p[0]):
            info = broker.getcommissioninfo(data)
            buy_rate, sell_rate, least = _cost_terms(info, price)
            comm = buy_rate if change > 0 else sell_rate
            if change > 0 and held >= 0:
                affordable = max(cash, 0.0) / ((1.0 + comm) * (1.0 + slip))
                if least and affordable * (1.0 + slip) * comm < least:
                    affordable = max(cash - least, 0.0) / (1.0 + slip)
                target_value = held + min(change, affordable)
                cash -= (target_value - held) * (1.0 + comm) * (1.0 + slip)
            else:  # a sale (or a short growing) frees its value less slippage and commission
                cash -= (target_value - held) * (1.0 - slip) * (1.0 - comm)
            if least and target_value != held:  # the minimum, where it is more than the rate
                cash -= max(least - abs(target_value - held) * (1.0 + slip) * comm, 0.0)
            size_now = self.getposition(data).size
            if not target_value and size_now:
                orders[data] = self.close(data=data, size=size_now)
                continue
            if target_value == held:
                continue
            # backtrader's order_target_value, valued at `price` (it would value the held
            # position at the bar's close, which at the open is still to come)
            size = info.getsize(price, abs(target_value - held))
            if size:
                place = self.buy if target_value > held else self.sell
                orders[data] = place(data=data, size=size, price=price)
        return orders

    def trade_start_num(self) -> float:
        """The `trade_start` param as backtrader's float date (-inf when unset)."""
        start = getattr(self.p, "trade_start", None)
        if start is None:
            return -math.inf
        return bt.date2num(pd.Timestamp(start).to_pydatetime())


def _cost_terms(info: bt.CommInfoBase, price: float) -> tuple[float, float, float]:
    """(buy rate, sell rate, minimum per fill) of a data's commission scheme."""
    terms = getattr(info, "cost_terms", None)
    if terms is not None:
        return terms()
    rate = info.getcommission(1.0, price) / price
    return rate, rate, 0.0


WIRING_PARAMS: tuple[Param, ...] = (
    Param("forecasts", None, object,
          "forecasts by date: a pandas Series, or {data name: Series}"),
    Param("stream", None, object,
          "an object with step(date, row) -> forecast, or {data name: object} (stream mode)"),
    Param("feature_lines", (), tuple, "feed lines holding the raw features (stream mode)"),
    Param("online", None, object,
          "an object with on_bar(when, open, high, low, close, volume) -> forecast, or "
          "{data name: object}: features computed from the feed's own bars as they arrive "
          "(live mode, any feed; lstm_strategy.live.LiveForecaster); a multi-asset one "
          "(with `assets`) steps all datas at once through on_step({name: bar})"),
    Param("max_delay", None, object,
          "live feeds: a bar delivered more than this pd.Timedelta after its stamp is "
          "logged and not traded on (None: no check)"),
    Param("center", 0.0, float,
          "the neutral forecast: 0 for returns, 0.5 for up-probabilities"),
    Param("trade_start", None, object, "first date that may trade (earlier bars only warm up)"),
    Param("periods_per_year", 252, float,
          "bars per year, for the annualised volatility of vol_target sizing"),
    Param("record", True, bool, "keep a per-bar log of forecasts, signals and targets"),
)


class LSTMStrategy(RecordingStrategy):
    """Trade each data feed on its forecast: signal -> direction -> target fraction -> orders.

    Each bar, for each data: the forecast (from a `forecast` line, `forecasts` or
    `stream`) minus `center`, or its z-score, is the signal; `decision.decide` turns it
    into a direction and a target fraction of equity; targets go to the broker as orders
    (reductions first, purchases capped at the cash left after costs).
    """

    params = tuple((p.name, p.default) for p in (*WIRING_PARAMS, *RULE_PARAMS))

    def __init__(self) -> None:
        p = self.p
        try:
            check_rules({q.name: getattr(p, q.name) for q in RULE_PARAMS})
        except ConfigError as exc:
            raise ConfigError(f"LSTMStrategy: {exc}") from None
        self._start_num = self.trade_start_num()
        if "torch" in sys.modules:  # a model to step (strategies on forecasts need no torch)
            from ..forecaster import one_thread_per_worker

            one_thread_per_worker()  # a worker of optstrategy or a pool steps models on one core
        self._books: dict = {}
        self._panel = p.online if getattr(p.online, "assets", None) else None
        self._panel_out: dict = {}
        self._panel_last = -math.inf
        for data in self.datas:
            book = _Book(clock=data.lines.datetime)
            if "forecast" in data.lines.getlinealiases():
                book.line = data.lines.forecast
            elif self._panel is not None:
                book.online = self._panel
            elif self._pick(p.online, data) is not None:
                book.online = self._pick(p.online, data)
            else:
                book.forecasts = self._lookup(data)
                if book.forecasts is None:
                    book.stream = self._pick(p.stream, data)
                    if book.stream is None:
                        raise ValueError(
                            f"no forecast source for data {data._name!r}: give the feed a "
                            f"'forecast' line, or pass forecasts=, stream= or online=.")
                    missing = [n for n in p.feature_lines
                               if n not in data.lines.getlinealiases()]
                    if missing or not p.feature_lines:
                        raise ValueError(f"stream mode needs feature_lines present on the feed; "
                                         f"missing {missing or 'all'}.")
                    book.feature_lines = [getattr(data.lines, n) for n in p.feature_lines]
            if p.zscore_window > 0:
                book.history = deque(maxlen=p.zscore_window)
            self._books[data] = book
        self.rules = Rules.from_params(p, len(self.datas))
        if p.sizing != "sizer" and getattr(self.env, "sizers", None):
            warnings.warn(f"a sizer was added with cerebro.addsizer, but LSTMStrategy sizes "
                          f"its own orders (sizing={p.sizing!r}) and ignores it; pass "
                          f"sizing='sizer' to let the sizer decide how much to trade.",
                          UserWarning, stacklevel=2)
        self.records: list[tuple] = []
        self.feed_log: list[tuple] = []  # (date, ticker, what) of live-feed events
        # params read every bar, kept as plain attributes (backtrader's params are slow)
        self._record, self._center = p.record, p.center
        self._vol_target = p.sizing == "vol_target"
        self._vol_scale, self._vol_window = math.sqrt(p.periods_per_year), p.vol_window

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
        if book.online is not None and book.online is self._panel:
            return self._panel_out.get(data._name, math.nan)
        if book.online is not None:
            return book.online.on_bar(pd.Timestamp(data.datetime.datetime(0)), data.open[0],
                                      data.high[0], data.low[0], data.close[0],
                                      data.volume[0])
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

    def _vol(self, data: bt.DataBase) -> float:
        """Annualised volatility of the last `vol_window` returns (NaN while warming up)."""
        window = self._vol_window
        closes = np.asarray(data.close.get(size=window + 1))
        if len(closes) <= window:
            return math.nan
        return float(np.diff(np.log(closes)).std(ddof=1) * self._vol_scale)

    # -- live feeds -------------------------------------------------------------------
    def notify_data(self, data: bt.DataBase, status: int, *args: object, **kwargs: object
                    ) -> None:
        """A live feed's state: orders only while it is LIVE (not DELAYED backfill, not
        DISCONNECTED); the bars keep the features and the model state moving."""
        book = self._books.get(data)
        if book is not None:
            book.status = status
            self.feed_log.append((math.nan, data._name, data._getstatusname(status)))

    def _missing_bars(self, data: bt.DataBase, book: _Book, now: float) -> None:
        """Log a hole in a live feed: a step longer than GAP_FACTOR times the usual one
        (as `data.gap_after`) and half as long again as any of the last 100 (so weekends,
        holidays and overnight breaks the feed has shown before are not holes)."""
        step = now - book.last_num  # days
        if len(book.steps) >= 20:
            usual = float(np.median(book.steps))
            if step > max(GAP_FACTOR * usual, 1.5 * max(book.steps)):
                self.feed_log.append((now, data._name, (
                    f"missing bars: {step:.2f} days since the last bar, {step / usual:.0f}x "
                    f"the usual spacing, from {bt.num2date(book.last_num)} to "
                    f"{bt.num2date(now)}")))
        book.steps.append(step)

    def _held_back(self, data: bt.DataBase, book: _Book) -> str | None:
        """Why this bar of a live feed is not traded on (None: it may be)."""
        if not data.islive():
            return None
        if book.status != data.LIVE:
            return "not live" if book.status is None else data._getstatusname(book.status)
        delay = self.p.max_delay
        if delay is not None:
            late = pd.Timestamp.now(tz="UTC").tz_localize(None) - pd.Timestamp(
                data.datetime.datetime(0))
            if late > pd.Timedelta(delay):
                return f"late by {late}"
        return None

    def _panel_step(self) -> bool:
        """A multi-asset model: every data's bar in, every forecast out, once per bar."""
        now = self.datas[0].datetime[0]
        if now <= self._panel_last:
            self.feed_log.append((now, "*", "repeated or out-of-order bar refused"))
            return False
        self._panel_last = now
        self._panel_out = self._panel.on_step({
            d._name: (pd.Timestamp(d.datetime.datetime(0)), d.open[0], d.high[0], d.low[0],
                      d.close[0], d.volume[0]) for d in self.datas})
        return True

    def next(self) -> None:
        orders = []
        record, rules = self._record, self.rules
        if self._panel is not None and not self._panel_step():
            return
        for data, book in self._books.items():
            now = book.clock[0]
            if len(data) == book.last_len:
                continue  # no new bar on this data (another data moved the clock)
            book.last_len = len(data)
            if now <= book.last_num:
                self.feed_log.append((now, data._name, "repeated or out-of-order bar refused"))
                continue
            if book.last_num > -math.inf and data.islive():
                self._missing_bars(data, book, now)
            book.last_num = now
            held = self._held_back(data, book) if now >= self._start_num else None
            if now < self._start_num or held is not None:
                if book.stream is not None or book.online is not None:
                    self._forecast(data, book)  # keep the features and state moving
                if held is not None:
                    self.feed_log.append((now, data._name, f"not traded: {held}"))
                continue
            forecast = book.line[0] if book.line is not None else self._forecast(data, book)
            if not math.isfinite(forecast):
                book.nan_forecasts += 1
                if record:
                    self.records.append((data._name, now, forecast, math.nan,
                                         book.position.target))
                continue
            signal = forecast - self._center if book.history is None else self._signal(
                forecast, book)
            if book.pending is None:  # with an order in flight, decide once it is done
                vol = self._vol(data) if self._vol_target else math.nan
                book.position, target = decide(book.position, len(data), signal,
                                               data.close[0], vol, rules)
                if target is not None:
                    orders.append((data, target))
            if record:
                self.records.append((data._name, now, forecast, signal, book.position.target))
        if orders and rules.sizing == "sizer":
            self._orders_by_sizer(orders)
        elif orders:
            self.orders_placed(self.order_targets(orders))

    def orders_placed(self, orders: dict) -> None:
        for data, order in orders.items():
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
        position = book.position
        if order.status == order.Completed:
            if math.isnan(position.entry_price) and position.direction != 0:
                book.position = position._replace(entry_price=order.executed.price)
        elif order.status in (order.Margin, order.Rejected, order.Canceled, order.Expired):
            # fall back to the position actually held; the signal retries on the next bar
            size = self.getposition(order.data).size
            value = self.broker.getvalue()
            book.position = position._replace(
                direction=int(np.sign(size)),
                target=size * order.data.close[0] / value if value > 0 else 0.0)

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


class CrossSectionalStrategy(RecordingStrategy):
    """Rank the datas by forecast every `rebalance` bars; long the top k, short the bottom
    k if allowed, orders through the capped `order_targets`. `book="rank"` rebalances to
    the ranking's weights (`decision.rank_targets`); `book="topk_dropout"` is Qlib's
    TopkDropout book, which replaces at most `n_drop` holdings a leg per rebalance and
    leaves the rest untraded (`decision.topk_dropout_targets`).

    Forecasts come from each feed's `forecast` line or the `forecasts` param ({data name:
    Series}, or a frame with a column per data). A rebalance happens on the first bar at
    or after `trade_start` and every `rebalance` bars after it; the orders fill by the
    broker's rule (next open by default).
    """

    params = (("forecasts", None), ("top_k", 5), ("allow_short", False), ("rebalance", 5),
              ("weighting", "equal"), ("gross", 1.0), ("max_turnover", 0.0),
              ("book", "rank"), ("n_drop", 1), ("trade_start", None))

    def __init__(self) -> None:
        p = self.p
        try:
            check_book(top_k=p.top_k, weighting=p.weighting, gross=p.gross,
                       max_turnover=p.max_turnover, rebalance=p.rebalance, book=p.book,
                       n_drop=p.n_drop)
        except ConfigError as exc:
            raise ConfigError(f"CrossSectionalStrategy: {exc}") from None
        self._start_num = self.trade_start_num()
        self._lines, self._lookups = [], []
        for data in self.datas:
            if "forecast" in data.lines.getlinealiases():
                self._lines.append(data.lines.forecast)
                self._lookups.append(None)
                continue
            series = (p.forecasts if p.forecasts is not None else {}).get(data._name)
            if series is None:
                raise ValueError(f"no forecast for data {data._name!r}: give the feed a "
                                 f"'forecast' line or pass forecasts={{name: Series}}.")
            series = pd.Series(series).dropna()
            self._lines.append(None)
            self._lookups.append(dict(zip(
                [bt.date2num(t.to_pydatetime()) for t in pd.DatetimeIndex(series.index)],
                series.to_numpy(dtype=float), strict=True)))
        self._since = None  # bars since the last rebalance
        self.rebalances: list[tuple] = []  # (date, target weights) of each rebalance

    def _forecasts(self) -> np.ndarray:
        now = self.datetime[0]
        return np.array([line[0] if line is not None else lookup.get(now, math.nan)
                         for line, lookup in zip(self._lines, self._lookups, strict=True)])

    def next(self) -> None:
        if self.datetime[0] < self._start_num:
            return
        if self._since is not None and self._since + 1 < self.p.rebalance:
            self._since += 1
            return
        self._since = 0
        value = self.broker.getvalue()
        held = np.array([self.getposition(d).size * d.close[0] / value if value > 0 else 0.0
                         for d in self.datas])
        p = self.p
        target = book_targets(self._forecasts(), held, book=p.book, top_k=p.top_k,
                              allow_short=p.allow_short, weighting=p.weighting, gross=p.gross,
                              max_turnover=p.max_turnover, n_drop=p.n_drop)
        self.rebalances.append((bt.num2date(self.datetime[0]), target))
        moves = [(d, float(w)) for d, w, h in zip(self.datas, target, held, strict=True)
                 if w != h]
        if moves:
            self.order_targets(moves)


class EquityRecorder(bt.Analyzer):
    """Portfolio value, cash and gross exposure at each bar's close."""

    def start(self) -> None:
        self.rows: list[tuple] = []

    def next(self) -> None:
        broker = self.strategy.broker
        value = broker.getvalue()
        gross = left_sum(abs(self.strategy.getposition(d).size) * d.close[0]
                         for d in self.strategy.datas)
        self.rows.append((self.strategy.datetime[0], value, broker.getcash(), gross))

    def get_analysis(self) -> pd.DataFrame:
        frame = pd.DataFrame(self.rows, columns=["date", "value", "cash", "gross_exposure"])
        frame["date"] = [bt.num2date(d) for d in frame["date"]]  # converted once, at the end
        return frame.set_index("date")


LSTMStrategy.__doc__ = f"{LSTMStrategy.__doc__}\n{params_doc((*WIRING_PARAMS, *RULE_PARAMS))}\n"
