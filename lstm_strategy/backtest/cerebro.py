"""backtrader at the boundary: a configured Cerebro, and `backtest()` for one strategy run.

`backtest(bars, StrategyClass, **params)` runs a strategy over one feed per ticker with the
configured broker (cash, commission, slippage, fill rule), records equity, fills and
trades, and computes the metrics, with backtrader's own analyzers beside them as a
cross-check.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import backtrader as bt
import pandas as pd

from ..data import gap_after
from ..evaluation.metrics import infer_periods_per_year, strategy_metrics
from .feed import make_feed
from .strategies import EquityRecorder

if TYPE_CHECKING:
    from ..config import BrokerConfig

class FractionalCommInfo(bt.CommInfoBase):
    """Stock-like percentage commission that lets orders trade fractional units.

    backtrader sizes orders in whole units (`getsize` truncates), so one bitcoin at
    40,000 leaves a 95% target of 100,000 only 80% invested; crypto and FX trade
    fractions. Selected by `broker.fractional`.
    """

    def getsize(self, price: float, cash: float) -> float:
        return self.p.leverage * (cash / price)


class QlibCommInfo(FractionalCommInfo):
    """Qlib's costs: buys pay `commission`, sells `sell_commission` (Qlib's open_cost and
    close_cost, on traded value), and every fill at least `min_commission` in cash.

    backtrader charges a fill that reverses a position as two (the close and the open),
    so a reversal pays the minimum on each. Whole units unless `fractional`.
    """

    params = (("sell_commission", 0.0), ("min_commission", 0.0), ("fractional", False),
              ("percabs", True))

    def _getcommission(self, size: float, price: float, pseudoexec: bool) -> float:
        if not size:
            return 0.0
        rate = self.p.commission if size > 0 else self.p.sell_commission
        return max(abs(size) * price * rate, self.p.min_commission)

    def getsize(self, price: float, cash: float) -> float:
        if self.p.fractional:
            return super().getsize(price, cash)
        return bt.CommInfoBase.getsize(self, price, cash)

    def cost_terms(self) -> tuple[float, float, float]:
        """(buy rate, sell rate, minimum) for sizing orders within the cash."""
        return self.p.commission, self.p.sell_commission, self.p.min_commission


def make_cerebro(broker: BrokerConfig | None = None) -> bt.Cerebro:
    """A Cerebro whose broker has the configured cash, commission, slippage and fill rule.

    With next-open fills it runs cheat-on-open: strategies decide at a bar's close and
    size their orders at the next bar's open, the price they fill at (the open is the only
    value of the new bar they read), so a gap up never leaves a purchase short of cash.
    """
    if broker is None:
        from ..config import BrokerConfig  # config imports the rules from this package
        broker = BrokerConfig()
    # next-open fills: cheat-on-open, so orders are sized at the open they fill at
    # (RecordingStrategy.next_open); the broker executes them at that same open
    cerebro = bt.Cerebro(stdstats=False, maxcpus=1, cheat_on_open=broker.fill != "close")
    cerebro.broker.setcash(broker.cash)
    if not broker.one_rate:
        sell = broker.commission_bps if broker.sell_commission_bps is None else \
            broker.sell_commission_bps
        cerebro.broker.addcommissioninfo(QlibCommInfo(
            commission=broker.commission_bps / 1e4, sell_commission=sell / 1e4,
            min_commission=broker.min_commission, fractional=broker.fractional))
    elif broker.fractional:
        cerebro.broker.addcommissioninfo(FractionalCommInfo(
            commission=broker.commission_bps / 1e4, percabs=True))
    else:
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
    engine: str = "backtrader"  # or "fast": the compiled evaluator (`forecast_backtest`)


def backtest(
    bars: Mapping[str, pd.DataFrame],
    strategy: type[bt.Strategy],
    *,
    extra: Mapping[str, pd.DataFrame | pd.Series] | None = None,
    broker: BrokerConfig | None = None,
    trade_start: pd.Timestamp | None = None,
    name: str | None = None,
    setup: Callable[[bt.Cerebro], None] | None = None,
    cross_check: bool = True,
    **params: object,
) -> BacktestResult:
    """Run `strategy` over `bars` (ticker -> OHLCV) in a fresh Cerebro and collect results.

    `extra` adds lines to each ticker's feed (e.g. a `forecast` column). Metrics cover the
    bars from `trade_start` on, starting from the value at the bar before it. `setup`
    may add a user's own analyzers or sizers to the Cerebro. `cross_check` adds
    backtrader's own analyzers (Returns, DrawDown, TradeAnalyzer, SharpeRatio) beside our
    metrics; sweeps leave them out (a quarter of a backtest's time).
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
    if cross_check:
        cerebro.addanalyzer(bt.analyzers.Returns, _name="bt_returns")
        cerebro.addanalyzer(bt.analyzers.DrawDown, _name="bt_drawdown")
        cerebro.addanalyzer(bt.analyzers.TradeAnalyzer, _name="bt_trades")
        timeframe, compression = backtrader_timeframe(calendar)
        cerebro.addanalyzer(bt.analyzers.SharpeRatio, _name="bt_sharpe", timeframe=timeframe,
                            compression=compression, factor=periods_per_year,
                            riskfreerate=0.0, annualize=True, stddev_sample=True)
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
    metrics = run_metrics(equity, fills, trades, calendar, periods_per_year,
                          strat.rejected_orders)
    records = strat.record_frame() if hasattr(strat, "record_frame") else None
    nan_count = getattr(strat, "nan_forecasts", 0)
    if hasattr(strat, "nan_forecasts"):
        metrics["nan_forecasts"] = nan_count
    return BacktestResult(name or strategy.__name__, equity, fills, trades, metrics,
                          records, nan_count, strat.rejected_orders,
                          _analyzer_summary(strat) if cross_check else {}, strat)


def run_metrics(equity: pd.DataFrame, fills: pd.DataFrame, trades: pd.DataFrame,
                calendar: pd.DatetimeIndex, periods_per_year: float,
                rejected_orders: int) -> dict:
    """A run's metrics as `backtest` reports them (whichever engine traded it): over the
    calendar's holes, then the orders the broker refused."""
    metrics = strategy_metrics(equity["value"], trades=trades, fills=fills,
                               exposure=equity["gross_exposure"],
                               periods_per_year=periods_per_year,
                               gaps=calendar[gap_after(calendar)])
    metrics["rejected_orders"] = rejected_orders
    return metrics


def forecast_backtest(
    bars: Mapping[str, pd.DataFrame],
    forecasts: Mapping[str, pd.Series],
    *,
    broker: BrokerConfig | None = None,
    trade_start: pd.Timestamp | None = None,
    name: str | None = None,
    **params: object,
) -> BacktestResult:
    """LSTMStrategy on given forecasts, as `backtest(bars, LSTMStrategy, forecasts=...)`
    gives it (equity, fills, trades, metrics), from the compiled evaluator where it can
    serve the params and its compiled loop is in Numba's disk cache (a cold compile
    costs more than backtrader's run), else from backtrader; `engine` says which.

    For baselines beside the user's own strategy: a naive-forecast run trades more than
    the model's, and was two fifths of a cached run's time. The evaluator gives
    backtrader's fills exactly (tests/test_fastsim.py); it keeps no records or analyzers.
    """
    from . import _fastkernel, fastsim
    from .strategies import LSTMStrategy

    compiled = hasattr(_fastkernel.run, "py_func")
    if fastsim.unsupported(params, broker) or (compiled and not fastsim.kernel_cached()):
        return backtest(bars, LSTMStrategy, broker=broker, trade_start=trade_start, name=name,
                        forecasts=forecasts, **params)
    from ..config import BrokerConfig

    broker = broker or BrokerConfig()
    calendar = next(iter(bars.values())).index
    evaluator = fastsim.FastEvaluator(bars, forecasts)
    run = evaluator.run(cash=broker.cash, commission_bps=broker.commission_bps,
                        slippage_bps=broker.slippage_bps, fill=broker.fill,
                        fractional=broker.fractional, trade_start=trade_start, **params)
    metrics = run_metrics(run.equity, run.fills, run.trades, calendar,
                          infer_periods_per_year(calendar), run.rejected_orders)
    start = 0 if trade_start is None else int(calendar.searchsorted(pd.Timestamp(trade_start)))
    nan_count = int((~evaluator.finite[start:]).sum())  # bars LSTMStrategy skips, as it counts
    metrics["nan_forecasts"] = nan_count
    return BacktestResult(name or "LSTMStrategy", run.equity, run.fills, run.trades, metrics,
                          None, nan_count, run.rejected_orders, engine="fast")


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
