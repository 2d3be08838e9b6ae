"""A fast evaluator of CrossSectionalStrategy on precomputed forecasts, equal to backtrader's.

The same broker model as the single-asset evaluator (`fastsim._Broker`: orders checked
against one running cash balance, executed at the next open or the signal close,
slipped and capped by the bar's range, percent commission, whole or fractional units)
and the same selection functions as the strategy (`decision.rank_targets`,
`decision.topk_dropout_targets`), so the trades are backtrader's to the last digit
(tests/test_crosssection.py). Python only where something happens: a rebalance and the
bar its orders fill; the equity line is computed for all bars at once afterwards, in the
broker's order of additions. Broker costs beyond one commission rate (Qlib's sell rate and
minimum) are refused with the reason.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from .decision import book_targets, check_book
from .fastsim import (
    FastResult,
    _Broker,
    _broker_value,
    _equity_frame,
    _equity_index,
    _frames,
    _order_targets,
)

BOOK_DEFAULTS = {"top_k": 5, "allow_short": False, "rebalance": 5, "weighting": "equal",
                 "gross": 1.0, "max_turnover": 0.0, "book": "rank", "n_drop": 1}


class BookEvaluator:
    """One forecast panel, many book points: arrays prepared once."""

    def __init__(self, bars: Mapping[str, pd.DataFrame],
                 forecasts: Mapping[str, pd.Series] | pd.DataFrame) -> None:
        self.tickers = list(bars)
        self.index = bars[self.tickers[0]].index
        for ticker in self.tickers[1:]:
            if not bars[ticker].index.equals(self.index):
                raise ValueError(f"BookEvaluator: {ticker}'s bars are on another calendar "
                                 f"than {self.tickers[0]}'s; put them on one calendar first "
                                 f"(load_many(..., align='inner' or 'ffill')).")
        self.arrays = tuple(np.ascontiguousarray(np.column_stack(
            [bars[t][k].to_numpy(float) for t in self.tickers]))
            for k in ("Open", "High", "Low", "Close"))
        self.closes = self.arrays[3]
        self.rows = tuple(a.tolist() for a in self.arrays)  # the reference loop's
        self.forecasts = np.ascontiguousarray(np.column_stack([
            pd.Series(forecasts[t]).reindex(self.index).to_numpy(float)
            for t in self.tickers]))

    def run(self, *, cash: float = 100_000.0, commission_bps: float = 5.0,
            slippage_bps: float = 2.0, fill: str = "next_open", fractional: bool = False,
            trade_start: pd.Timestamp | None = None, compiled: bool = True,
            **book: object) -> FastResult:
        """CrossSectionalStrategy(**book) with this broker: equity, fills, trades.

        `compiled` runs the Numba loop (`_fastkernel.run_book`); False the reference loop
        here, the same model in Python (tests hold both to backtrader).
        """
        unknown = set(book) - set(BOOK_DEFAULTS)
        if unknown:
            raise ValueError(f"BookEvaluator: {sorted(unknown)} are not the book's params "
                             f"({sorted(BOOK_DEFAULTS)}).")
        p = {**BOOK_DEFAULTS, **book}
        check_book(top_k=p["top_k"], weighting=p["weighting"], gross=p["gross"],
                   max_turnover=p["max_turnover"], rebalance=p["rebalance"], book=p["book"],
                   n_drop=p["n_drop"])
        index = self.index
        start = 0 if trade_start is None else int(index.searchsorted(pd.Timestamp(trade_start)))
        if compiled:
            from . import _fastkernel

            out = _fastkernel.run_book(
                *self.arrays, self.forecasts, start, int(p["top_k"]), bool(p["allow_short"]),
                int(p["rebalance"]), 0 if p["weighting"] == "equal" else 1, float(p["gross"]),
                float(p["max_turnover"]), p["book"] == "topk_dropout", int(p["n_drop"]),
                float(cash), commission_bps / 1e4, slippage_bps / 1e4, fill == "close",
                bool(fractional))
            rows = pd.DatetimeIndex(_equity_index(index, start), name="date")
            return _frames(out, self.tickers, index, rows, self.closes, start, cash)
        dates = list(index)
        comm, slip, close_fill = commission_bps / 1e4, slippage_bps / 1e4, fill == "close"
        close_rows = self.rows[3]
        broker = _Broker(self.tickers, dates, self.rows, cash, comm, slip, close_fill)
        positions = broker.positions
        snapshots = [(-1, [0.0] * len(self.tickers), [0.0] * len(self.tickers), cash)]
        deferred, since = None, None
        rules = {k: v for k, v in p.items() if k != "rebalance"}
        for bar in range(len(index)):
            if deferred is not None:  # cheat-on-open: sized at this open
                broker.orders = _order_targets(deferred[0], positions, self.rows[0][bar],
                                               deferred[1], broker.cash, comm, slip,
                                               fractional, bar)
                deferred = None
            if broker.orders or broker.working:
                broker.step(bar)
                snapshots.append((bar, [q.size for q in positions],
                                  [q.price for q in positions], broker.cash))
            if bar < start:
                continue
            if since is not None and since + 1 < p["rebalance"]:
                since += 1
                continue
            since = 0
            value = _broker_value(broker.cash, positions, close_rows[bar])
            held = np.array([q.size * c / value if value > 0 else 0.0
                             for q, c in zip(positions, close_rows[bar], strict=True)])
            target = book_targets(self.forecasts[bar], held, **rules)
            moves = [(i, float(w)) for i, (w, h) in enumerate(zip(target, held, strict=True))
                     if w != h]
            if moves and close_fill:
                broker.orders = _order_targets(moves, positions, close_rows[bar], value,
                                               broker.cash, comm, slip, fractional, bar)
            elif moves:
                deferred = (moves, value)
        values, cash_line, gross = self._equity(snapshots)
        equity = _equity_frame(values, cash_line, gross,
                               pd.DatetimeIndex(_equity_index(index, start), name="date"),
                               start, cash)
        return broker.result(equity)

    def _equity(self, snapshots: list[tuple]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Value, cash and gross exposure at every close, from the positions after each
        bar the broker acted on, added asset by asset as BackBroker and EquityRecorder add
        (left to right), so each bar's value is the one the broker reports."""
        bars = np.array([s[0] for s in snapshots])
        which = np.searchsorted(bars, np.arange(len(self.index)), side="right") - 1
        sizes = np.array([s[1] for s in snapshots])[which]
        prices = np.array([s[2] for s in snapshots])[which]
        cash_line = np.array([s[3] for s in snapshots])[which]
        unlevered = np.zeros(len(self.index))
        gross = np.zeros(len(self.index))
        for i in range(len(self.tickers)):
            size, close = sizes[:, i], self.closes[:, i]
            value = size * close
            unrealised = size * (close - prices[:, i]) * 1.0
            long = value > 0
            unlevered = unlevered + np.where(long, (value - unrealised) / 1.0, value)
            unlevered = unlevered + np.where(long, unrealised, 0.0)
            gross = gross + np.abs(size) * close
        return cash_line + unlevered, cash_line, gross


def warm_up() -> None:
    """Compile the book's loop (or load it from Numba's disk cache), as `fastsim.warm_up`
    does for LSTMStrategy's; `scripts/setup.sh` calls both when it installs."""
    index = pd.date_range("2000-01-03", periods=12, freq="B")
    bars = {t: pd.DataFrame({k: np.linspace(10.0, 11.0 + i, len(index))
                             for k in ("Open", "High", "Low", "Close")}, index=index)
            for i, t in enumerate("AB")}
    evaluator = BookEvaluator(bars, {t: f["Close"].pct_change() for t, f in bars.items()})
    for book in ("rank", "topk_dropout"):
        evaluator.run(top_k=1, rebalance=2, book=book)
