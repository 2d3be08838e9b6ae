"""LSTMStrategy: exact orders and fills for hand-made forecasts, sizing, stops, metrics vs analyzers."""

from __future__ import annotations

import math

import backtrader as bt
import numpy as np
import pandas as pd
import pytest

from lstm_strategy import (
    LSTMStrategy,
    backtest,
    build_features,
    make_feed,
    make_target,
    walk_forward,
)
from lstm_strategy.backtest import BuyAndHold, SmaCross
from lstm_strategy.config import BrokerConfig, load_config
from lstm_strategy.evaluation.metrics import infer_periods_per_year

from .conftest import TINY_MODEL, TINY_TRAIN, hourly_bars

NO_COSTS = BrokerConfig(cash=100_000.0, commission_bps=0.0, slippage_bps=0.0)
COMMISSION = BrokerConfig(cash=100_000.0, commission_bps=5.0, slippage_bps=0.0)


@pytest.fixture(scope="module")
def bars(aapl: pd.DataFrame) -> pd.DataFrame:
    return aapl.iloc[:30]


def forecast_series(bars: pd.DataFrame, values: list[float]) -> pd.Series:
    return pd.Series(values + [values[-1]] * (len(bars) - len(values)), index=bars.index)


# +: bars 0-4, -: 5-9, +: 10-14, NaN: 15, -: 16 on
PATTERN = [0.01] * 5 + [-0.01] * 5 + [0.01] * 5 + [math.nan] + [-0.01] * 4


def test_long_only_orders_fill_at_next_open_with_commission(bars: pd.DataFrame) -> None:
    result = backtest({"AAPL": bars}, LSTMStrategy, broker=COMMISSION,
                      forecasts=forecast_series(bars, PATTERN), fraction=0.95)
    fills = result.fills
    opens = bars["Open"].to_numpy()
    assert list(fills["date"].dt.date) == [bars.index[i].date() for i in (1, 6, 11, 17)]
    assert list(fills["side"]) == ["buy", "sell", "buy", "sell"]
    np.testing.assert_allclose(fills["price"], opens[[1, 6, 11, 17]], rtol=0, atol=1e-12)
    # 95% of the equity at the signal close, in shares at the open the order fills at
    size1 = math.floor(0.95 * 100_000 / opens[1])
    assert fills["size"].iloc[0] == size1 and fills["size"].iloc[1] == -size1
    np.testing.assert_allclose(fills["commission"], fills["value"] * 5e-4, rtol=1e-12)
    cash_after = (100_000 + size1 * (opens[6] - opens[1]) - fills["commission"].iloc[:2].sum())
    size2 = math.floor(0.95 * cash_after / opens[11])
    assert fills["size"].iloc[2] == size2
    trades = result.trades
    assert len(trades) == 2 and list(trades["direction"]) == ["long", "long"]
    assert trades["pnl"].iloc[0] == pytest.approx(size1 * (opens[6] - opens[1]))
    assert trades["pnl_net"].iloc[0] == pytest.approx(
        size1 * (opens[6] - opens[1]) - fills["commission"].iloc[:2].sum())
    assert result.nan_forecasts == 1  # bar 15: no order, counted
    assert result.equity["value"].iloc[-1] == pytest.approx(
        cash_after + size2 * (opens[17] - opens[11]) - fills["commission"].iloc[2:].sum())


def test_long_short_flips_through_zero(bars: pd.DataFrame) -> None:
    result = backtest({"AAPL": bars}, LSTMStrategy, broker=NO_COSTS, allow_short=True,
                      forecasts=forecast_series(bars, PATTERN), fraction=0.5)
    fills = result.fills
    opens = bars["Open"].to_numpy()
    assert list(fills["date"].dt.date) == [bars.index[i].date() for i in (1, 6, 11, 17)]
    assert list(fills["side"]) == ["buy", "sell", "buy", "sell"]
    position = fills["size"].cumsum().to_numpy()
    assert position[0] > 0 and position[1] < 0 and position[2] > 0 and position[3] < 0
    # after each flip the new position is about half the equity at the signal bar's close,
    # in shares at the next open (where it fills)
    values = result.equity["value"]
    for k, signal_bar in enumerate((0, 5, 10, 16)):
        equity = values.loc[bars.index[signal_bar]]
        assert abs(abs(position[k]) - 0.5 * equity / opens[signal_bar + 1]) <= 1.0
    assert list(result.trades["direction"]) == ["long", "short", "long", "short"]
    assert list(result.trades["status"]) == ["closed"] * 3 + ["open"]


def test_slippage_and_fill_on_close(bars: pd.DataFrame) -> None:
    slip = BrokerConfig(cash=100_000.0, commission_bps=0.0, slippage_bps=10.0)
    result = backtest({"AAPL": bars}, LSTMStrategy, broker=slip,
                      forecasts=forecast_series(bars, PATTERN))
    opens = bars["Open"].to_numpy()
    assert result.fills["price"].iloc[0] == pytest.approx(opens[1] * 1.001)
    assert result.fills["price"].iloc[1] == pytest.approx(opens[6] * 0.999)
    on_close = BrokerConfig(cash=100_000.0, commission_bps=0.0, slippage_bps=0.0, fill="close")
    result = backtest({"AAPL": bars}, LSTMStrategy, broker=on_close,
                      forecasts=forecast_series(bars, PATTERN))
    assert list(result.fills["date"].dt.date) == [bars.index[i].date() for i in (0, 5, 10, 16)]
    np.testing.assert_allclose(result.fills["price"], bars["Close"].to_numpy()[[0, 5, 10, 16]])


@pytest.fixture(scope="module")
def three_stocks() -> dict[str, pd.DataFrame]:
    import warnings

    from lstm_strategy import load_many

    from .conftest import DATA
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bars = load_many([DATA / f"{t}.csv" for t in ("AAPL", "MSFT", "IBM")])
    return {t: f.loc["2003":"2009"] for t, f in bars.items()}


def _naive(bars: dict[str, pd.DataFrame]) -> dict[str, pd.Series]:
    return {t: np.log(f["Close"]).diff() for t, f in bars.items()}


def test_close_fills_are_at_the_signal_bars_close(three_stocks: dict) -> None:
    """Never priced from the next bar's range (backtrader's slip_match would cap them there)."""
    slip = 2e-4
    broker = BrokerConfig(fill="close", commission_bps=5.0, slippage_bps=slip * 1e4)
    for name, strategy, params in (("sma", SmaCross, {}),
                                   ("naive", LSTMStrategy, {"forecasts": _naive(three_stocks),
                                                            "allow_short": True})):
        fills = backtest(three_stocks, strategy, broker=broker, **params).fills
        assert len(fills) > 50, name
        close = np.array([three_stocks[t].loc[d, "Close"]
                          for t, d in zip(fills["ticker"], fills["date"], strict=True)])
        expected = close * np.where(fills["side"] == "buy", 1 + slip, 1 - slip)
        np.testing.assert_allclose(fills["price"], expected, rtol=1e-12, err_msg=name)


def test_no_margin_rejections_when_positions_grow_and_cash_is_short(three_stocks: dict
                                                                    ) -> None:
    """Equal weights, costs on: purchases leave room for commission and slippage."""
    naive = _naive(three_stocks)
    for fill in ("close", "next_open"):
        broker = BrokerConfig(fill=fill, commission_bps=5.0, slippage_bps=2.0)
        runs = {"sma": backtest(three_stocks, SmaCross, broker=broker, fraction=1.0),
                "naive": backtest(three_stocks, LSTMStrategy, broker=broker, forecasts=naive,
                                  fraction=0.95),
                "hold": backtest(three_stocks, BuyAndHold, broker=broker, fraction=1.0)}
        for name, run in runs.items():
            assert len(run.fills) >= 3, name
            if fill == "close":
                assert run.rejected_orders == 0, (name, run.strategy.rejections[:3])
                continue
            # filled at the next open: only a gap up past the room left can still refuse one
            for rejection in run.strategy.rejections:
                frame = three_stocks[rejection["ticker"]]
                signal = frame.index.get_loc(pd.Timestamp(rejection["signal_date"]))
                gap = frame["Open"].iloc[signal + 1] / frame["Close"].iloc[signal] - 1
                assert gap > 0, (name, rejection)


def test_entry_threshold_and_forecast_line(bars: pd.DataFrame) -> None:
    forecasts = forecast_series(bars, [0.004] * 10 + [0.02] * 10)
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(make_feed(bars, forecasts.rename("forecast"), name="AAPL"))
    cerebro.addstrategy(LSTMStrategy, entry_threshold=0.01)
    strat = cerebro.run()[0]
    assert [f["date"].date() for f in strat.fills] == [bars.index[11].date()]


def test_min_hold_bars_delays_the_exit(bars: pd.DataFrame) -> None:
    forecasts = forecast_series(bars, [0.01, 0.01, -0.01])
    result = backtest({"AAPL": bars}, LSTMStrategy, broker=NO_COSTS, forecasts=forecasts,
                      min_hold_bars=5)
    # entered on bar 0's signal; the exit waits until 5 bars have passed (bar 5), fills at 6
    assert list(result.fills["date"].dt.date) == [bars.index[i].date() for i in (1, 6)]


def test_stop_loss_exits_and_blocks_reentry_until_the_signal_resets(aapl: pd.DataFrame) -> None:
    window = aapl.loc["2000-09-01":"2000-12-29"]  # includes AAPL's 52% fall on 2000-09-29
    values = [0.01] * len(window)
    reset = window.index.get_loc(pd.Timestamp("2000-11-01"))
    values[reset] = -0.01
    forecasts = pd.Series(values, index=window.index)
    result = backtest({"AAPL": window}, LSTMStrategy, broker=NO_COSTS, forecasts=forecasts,
                      stop_loss=0.10)
    fills = result.fills
    entry = fills["price"].iloc[0]
    closes = window["Close"]
    after_entry = closes.loc[fills["date"].iloc[0]:]
    stop_bar = after_entry.index[(after_entry <= entry * 0.90).to_numpy().argmax()]
    next_bar = window.index[window.index.get_loc(stop_bar) + 1]
    assert fills["side"].iloc[1] == "sell" and fills["date"].iloc[1] == next_bar
    # no re-entry while the forecast stays positive; re-entry after it dipped on `reset`
    assert fills["date"].iloc[2] == window.index[reset + 2]
    assert fills["side"].iloc[2] == "buy"


def test_vol_target_sizing(bars: pd.DataFrame) -> None:
    result = backtest({"AAPL": bars}, LSTMStrategy, broker=NO_COSTS, sizing="vol_target",
                      target_vol=0.10, vol_window=20, forecasts=forecast_series(bars, [0.01]),
                      trade_start=bars.index[21])
    closes = bars["Close"].to_numpy()
    vol = np.diff(np.log(closes[1:22])).std(ddof=1) * math.sqrt(252)  # 20 returns to bar 21
    expected = math.floor(0.95 * 0.10 / vol * 100_000 / bars["Open"].iloc[22])
    assert result.fills["size"].iloc[0] == expected


def test_confidence_sizing_scales_with_the_signal(bars: pd.DataFrame) -> None:
    forecasts = forecast_series(bars, [0.005])
    result = backtest({"AAPL": bars}, LSTMStrategy, broker=NO_COSTS, sizing="confidence",
                      confidence_scale=0.01, forecasts=forecasts)
    expected = math.floor(0.95 * 0.5 * 100_000 / bars["Open"].iloc[1])
    assert result.fills["size"].iloc[0] == expected


def test_bad_params_are_refused(bars: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match=r"confidence_scale=0\.0 must be > 0 with sizing=confidence"):
        backtest({"AAPL": bars}, LSTMStrategy, forecasts=forecast_series(bars, [0.01]),
                 sizing="confidence")
    with pytest.raises(ValueError, match="no forecast source"):
        backtest({"AAPL": bars}, LSTMStrategy)


def test_metrics_agree_with_backtrader_analyzers(aapl: pd.DataFrame) -> None:
    window = aapl.iloc[500:1300]
    naive = np.log(window["Close"] / window["Close"].shift(1))
    result = backtest({"AAPL": window}, LSTMStrategy, broker=COMMISSION, forecasts=naive,
                      allow_short=True)
    metrics, analyzers = result.metrics, result.analyzers
    assert metrics["n_trades"] > 50
    assert metrics["total_return"] == pytest.approx(analyzers["total_return"], rel=1e-9)
    assert metrics["max_drawdown"] == pytest.approx(analyzers["max_drawdown"], rel=1e-9)
    assert metrics["sharpe"] == pytest.approx(analyzers["sharpe"], rel=1e-9)
    assert metrics["n_trades"] == analyzers["n_trades"]  # closed, and the one still open
    closed = result.trades[result.trades["status"] == "closed"]
    assert len(closed) == analyzers["n_closed_trades"]
    assert (closed["pnl_net"] > 0).mean() == pytest.approx(analyzers["win_rate_closed"],
                                                           rel=1e-12)


def test_a_position_open_at_the_end_is_a_trade(aapl: pd.DataFrame) -> None:
    """In the market and losing, yet no closed trade: it must not report 0 trades."""
    window = aapl.loc["2000-09-01":"2000-12-29"]  # AAPL fell by more than half
    result = backtest({"AAPL": window}, LSTMStrategy, broker=COMMISSION,
                      forecasts=pd.Series(0.01, index=window.index), fraction=0.3)
    assert len(result.fills) == 1 and result.metrics["total_return"] < -0.1
    assert result.metrics["n_trades"] == 1 and result.metrics["n_open_trades"] == 1
    assert result.metrics["win_rate"] == 0.0
    trade = result.trades.iloc[0]
    fill = result.fills.iloc[0]
    assert trade["status"] == "open" and trade["exit_date"] == window.index[-1]
    assert trade["pnl"] == pytest.approx(fill["size"] * (window["Close"].iloc[-1] - fill["price"]))
    assert trade["pnl_net"] == pytest.approx(trade["pnl"] - fill["commission"])


def test_user_analyzers_and_optstrategy(bars: pd.DataFrame) -> None:
    forecasts = forecast_series(bars, [0.004] * 10 + [0.02] * 10)
    cerebro = bt.Cerebro(stdstats=False, optreturn=False, maxcpus=1)
    cerebro.adddata(make_feed(bars, forecasts.rename("forecast"), name="AAPL"))
    cerebro.optstrategy(LSTMStrategy, entry_threshold=[0.0, 0.01, 0.05])
    cerebro.addanalyzer(bt.analyzers.TradeAnalyzer, _name="trades")
    runs = cerebro.run()
    first_fill = [run[0].fills[0]["date"].date() if run[0].fills else None for run in runs]
    assert first_fill == [bars.index[1].date(), bars.index[11].date(), None]


@pytest.mark.parametrize("source", ["line", "forecasts"])
def test_optstrategy_with_backtraders_default_processes(aapl: pd.DataFrame, source: str) -> None:
    """bt.Cerebro() uses every core: feeds and params must pickle to its worker processes."""
    window = aapl.iloc[:400]
    naive = np.log(window["Close"]).diff()

    def sweep(maxcpus: int | None) -> list[tuple]:
        cerebro = bt.Cerebro() if maxcpus is None else bt.Cerebro(maxcpus=maxcpus)
        if source == "line":
            cerebro.adddata(make_feed(window, naive.rename("forecast"), name="AAPL"))
            cerebro.optstrategy(LSTMStrategy, entry_threshold=[0.0, 0.005, 0.01])
        else:
            cerebro.adddata(make_feed(window, name="AAPL"))
            cerebro.optstrategy(LSTMStrategy, forecasts=[naive],
                                entry_threshold=[0.0, 0.005, 0.01])
        cerebro.addanalyzer(bt.analyzers.Returns, _name="returns")
        cerebro.addanalyzer(bt.analyzers.TradeAnalyzer, _name="trades")
        return [(run[0].p.entry_threshold, run[0].analyzers.returns.get_analysis()["rtot"],
                 run[0].analyzers.trades.get_analysis()["total"]["total"]) for run in
                cerebro.run()]

    parallel = sweep(None if source == "line" else 2)
    assert parallel == sweep(1)
    assert len({rtot for _, rtot, _ in parallel}) == 3  # three different backtests


def test_feed_classes_unpickle_in_a_fresh_process() -> None:
    """A spawned worker (macOS, Windows) rebuilds a feed class from its pickled name."""
    import pickle
    import subprocess
    import sys

    from lstm_strategy.backtest.feed import feed_class
    blob = pickle.dumps(feed_class(("forecast", "log_ret_1", "rsi__14")))
    code = ("import pickle, sys; cls = pickle.loads(sys.stdin.buffer.read()); "
            "print(cls.__name__, cls.lines.getlinealiases()[-3:])")
    out = subprocess.run([sys.executable, "-c", code], input=blob, capture_output=True,
                         check=True).stdout.decode()
    assert "('forecast', 'log_ret_1', 'rsi__14')" in out


def test_baselines(aapl: pd.DataFrame) -> None:
    window = aapl.iloc[:300]
    hold = backtest({"AAPL": window}, BuyAndHold, broker=NO_COSTS, trade_start=window.index[100],
                    fraction=0.95)  # all in would meet a gap up: retried a bar later
    assert len(hold.fills) == 1 and hold.fills["date"].iloc[0] == window.index[101]
    assert hold.equity.index[0] == window.index[99]  # metrics start the bar before trading
    cross = backtest({"AAPL": window}, SmaCross, broker=NO_COSTS, fast=10, slow=30, fraction=0.5)
    assert cross.rejected_orders == 0
    fast = window["Close"].rolling(10).mean()
    slow = window["Close"].rolling(30).mean()
    side = (fast > slow).astype(int).to_numpy()
    # the first decision is at bar 29 (both SMAs defined); each change fills on the next open
    changed = [i for i in range(29, len(window) - 1)
               if side[i] != (side[i - 1] if i > 29 else 0)]
    assert list(cross.fills["date"]) == [window.index[i + 1] for i in changed]
    assert list(cross.fills["side"]) == ["buy" if side[i] else "sell" for i in changed]


def test_stream_mode_trades_like_batch_mode(aapl_small: pd.DataFrame) -> None:
    features = build_features(aapl_small)
    result = walk_forward(features, make_target(aapl_small["Close"], 1), TINY_MODEL, TINY_TRAIN,
                          device="cpu", progress=False)
    start = result.first_forecast_date
    batch = backtest({"AAPL": aapl_small}, LSTMStrategy, broker=COMMISSION, trade_start=start,
                     extra={"AAPL": result.predictions.rename("forecast").to_frame()})
    stream = backtest({"AAPL": aapl_small}, LSTMStrategy, broker=COMMISSION, trade_start=start,
                      extra={"AAPL": features}, stream=result.stream(),
                      feature_lines=tuple(features.columns))
    pd.testing.assert_frame_equal(batch.fills, stream.fills)
    np.testing.assert_allclose(stream.records["forecast"], batch.records["forecast"], atol=1e-6)


def test_a_buy_on_a_gap_up_fills_sized_at_the_open(aapl: pd.DataFrame) -> None:
    # 2001-04-19 opened about 4% above the 2001-04-18 close: sized at that close, a 99%
    # order would be short of cash at the fill; sized at the open it fills there
    window = aapl.loc["2001-03-01":"2001-05-31"]
    start = pd.Timestamp("2001-04-18")
    gap_open = window.loc["2001-04-19", "Open"]
    assert gap_open > 1.01 * window.loc["2001-04-18", "Close"]
    costs = BrokerConfig(commission_bps=5.0, slippage_bps=2.0)
    for broker in (NO_COSTS, costs):
        hold = backtest({"AAPL": window}, BuyAndHold, broker=broker, trade_start=start,
                        fraction=0.99)
        assert hold.rejected_orders == 0 and hold.metrics["rejected_orders"] == 0
        fill = hold.fills.iloc[0]
        assert fill["date"] == pd.Timestamp("2001-04-19")  # the baseline starts on time
        assert fill["size"] == math.floor(0.99 * 100_000 / gap_open)
        assert fill["value"] + fill["commission"] <= 100_000
    # a user's own Cerebro without cheat-on-open sizes at the close: backtrader refuses
    # the buy at the gapped open, the refusal is counted and the order retried next bar
    plain = backtest({"AAPL": window}, BuyAndHold, broker=NO_COSTS, trade_start=start,
                     fraction=0.99, setup=lambda cerebro: cerebro.p.__setattr__(
                         "cheat_on_open", False))
    assert plain.rejected_orders == 1 and plain.metrics["rejected_orders"] == 1
    assert len(plain.fills) == 1 and plain.fills["date"].iloc[0] == pd.Timestamp("2001-04-20")


def test_purchases_are_capped_at_available_cash() -> None:
    index = pd.bdate_range("2020-01-01", periods=30)
    ramp = np.linspace(10, 20, 30)  # A doubles: its position grows past its equal weight
    a = pd.DataFrame({"Open": ramp, "High": ramp, "Low": ramp, "Close": ramp,
                      "Volume": 1e6}, index=index)
    b = pd.DataFrame({"Open": 10.0, "High": 10.0, "Low": 10.0, "Close": 10.0, "Volume": 1e6},
                     index=index)
    forecasts = {"A": pd.Series(0.01, index=index),
                 "B": pd.Series([-0.01] * 20 + [0.01] * 10, index=index)}
    result = backtest({"A": a, "B": b}, LSTMStrategy, broker=NO_COSTS, forecasts=forecasts,
                      fraction=0.95)
    assert result.rejected_orders == 0
    fills = result.fills.set_index("ticker")
    cash_at_20 = 100_000 - fills.loc["A", "size"] * a["Open"].iloc[1]
    equity_at_20 = cash_at_20 + fills.loc["A", "size"] * a["Close"].iloc[20]
    assert 0.475 * equity_at_20 > cash_at_20  # the equal-weight target is not affordable
    assert fills.loc["B", "size"] == math.floor(cash_at_20 / 10.0)


def test_take_profit_exits_in_favour(aapl: pd.DataFrame) -> None:
    window = aapl.loc["2004-06-01":"2004-12-31"]  # AAPL roughly doubled in this half-year
    result = backtest({"AAPL": window}, LSTMStrategy, broker=NO_COSTS,
                      forecasts=pd.Series(0.01, index=window.index), take_profit=0.15)
    fills = result.fills
    entry = fills["price"].iloc[0]
    after = window["Close"].loc[fills["date"].iloc[0]:]
    hit = after.index[(after >= entry * 1.15).to_numpy().argmax()]
    assert fills["side"].iloc[1] == "sell"
    assert fills["date"].iloc[1] == window.index[window.index.get_loc(hit) + 1]
    assert result.trades["pnl"].iloc[0] > 0


def test_max_position_caps_vol_target_sizing(bars: pd.DataFrame) -> None:
    result = backtest({"AAPL": bars}, LSTMStrategy, broker=NO_COSTS, sizing="vol_target",
                      target_vol=5.0, fraction=0.5, max_position=0.6,
                      forecasts=forecast_series(bars, [0.01]), trade_start=bars.index[21])
    assert result.fills["size"].iloc[0] == math.floor(0.6 * 100_000 / bars["Open"].iloc[22])


def test_periods_per_year_follows_the_bar_spacing(aapl: pd.DataFrame) -> None:
    assert infer_periods_per_year(aapl.index) == 252  # exchange days, holidays and all
    weekdays = pd.bdate_range("2020-01-01", periods=600)  # no holidays: 261 a year
    assert infer_periods_per_year(weekdays) == pytest.approx(365.25 * 5 / 7, rel=0.01)
    assert infer_periods_per_year(pd.date_range("2020-01-03", periods=60, freq="W-FRI")) == 52
    assert infer_periods_per_year(pd.date_range("2020-01-31", periods=40, freq="ME")) == 12
    assert infer_periods_per_year(pd.date_range("2020-01-01", periods=900, freq="D")) == 365
    equity_hours = pd.DatetimeIndex([d + pd.Timedelta(hours=h) for d in aapl.index[:500]
                                     for h in range(10, 17)])  # 7 bars a session
    assert infer_periods_per_year(equity_hours) == pytest.approx(252 * 7, rel=0.01)
    fx_hours = hourly_bars(pd.bdate_range("2019-01-01", "2020-12-31")).index  # 24 x 5 days
    assert infer_periods_per_year(fx_hours) == pytest.approx(24 * 365.25 * 5 / 7, rel=0.01)
    holed = aapl.index.delete(slice(500, 700))  # a hole counts neither as bars nor as time
    assert infer_periods_per_year(holed) == 252


def _monthly(aapl: pd.DataFrame) -> pd.DataFrame:
    return aapl.resample("MS").agg({"Open": "first", "High": "max", "Low": "min",
                                    "Close": "last", "Volume": "sum"})


@pytest.mark.parametrize("spacing", ["monthly", "hourly"])
def test_annualisation_follows_the_bar_spacing(aapl: pd.DataFrame, spacing: str) -> None:
    """Sharpe, volatility, backtrader's cross-check and the rolling chart, for any spacing."""
    from lstm_strategy.evaluation.metrics import rolling_sharpe

    bars = _monthly(aapl) if spacing == "monthly" else hourly_bars(
        pd.bdate_range("2019-01-01", "2019-12-31"))
    periods = 12 if spacing == "monthly" else infer_periods_per_year(bars.index)
    if spacing == "hourly":
        assert 6100 < periods < 6400  # FX hours: not 252 x 24 = 6,048
    result = backtest({"X": bars}, BuyAndHold, broker=NO_COSTS)
    returns = result.equity["value"].pct_change().dropna()
    expected = returns.mean() / returns.std(ddof=1) * math.sqrt(periods)
    assert result.metrics["sharpe"] == pytest.approx(expected, rel=1e-9)
    assert result.metrics["volatility"] == pytest.approx(returns.std(ddof=1) * math.sqrt(periods))
    # backtrader's analyzer, told the same spacing, agrees (it sees the same bars)
    assert result.analyzers["sharpe"] == pytest.approx(expected, rel=1e-6)
    years = (bars.index[-1] - result.equity.index[0]) / pd.Timedelta(days=365.25)
    total = result.metrics["total_return"]
    assert result.metrics["cagr"] == pytest.approx((1 + total) ** (1 / years) - 1, rel=1e-9)
    rolling = rolling_sharpe(result.equity["value"], periods)
    assert rolling.notna().sum() > len(bars) / 3  # the chart has a line to draw


def test_users_own_sizer(bars: pd.DataFrame) -> None:
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(make_feed(bars, forecast_series(bars, PATTERN).rename("forecast"), name="A"))
    cerebro.addstrategy(LSTMStrategy, sizing="sizer", allow_short=True)
    cerebro.addsizer(bt.sizers.FixedSize, stake=100)
    strat = cerebro.run()[0]
    fills = pd.DataFrame(strat.fills)
    # long 100 on bar 0's signal; on bar 5 close it and go short 100: two fills at bar 6
    assert list(fills["size"]) == [100, -100, -100, 100, 100, -100, -100]
    assert list(fills["date"].dt.date) == [bars.index[i].date() for i in (1, 6, 6, 11, 11, 17, 17)]


def test_a_sizer_added_but_not_used_is_warned_about(bars: pd.DataFrame) -> None:
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(make_feed(bars, forecast_series(bars, PATTERN).rename("forecast"), name="A"))
    cerebro.addstrategy(LSTMStrategy)
    cerebro.addsizer(bt.sizers.FixedSize, stake=100)
    with pytest.warns(UserWarning, match="ignores it; pass sizing='sizer'"):
        cerebro.run()


def test_fractional_units_fill_the_target(aapl: pd.DataFrame) -> None:
    """A 'bitcoin' at tens of thousands: whole units leave a 95% target far under-invested."""
    coin = aapl.iloc[:40].copy()
    coin[["Open", "High", "Low", "Close"]] *= 10_000  # AAPL's moves at a crypto price level
    forecasts = pd.Series(0.01, index=coin.index)
    invested = {}
    for fractional in (False, True):
        broker = BrokerConfig(commission_bps=5.0, slippage_bps=2.0, fractional=fractional)
        result = backtest({"BTC": coin}, LSTMStrategy, broker=broker, forecasts=forecasts,
                          fraction=0.95)
        fill = result.fills.iloc[0]  # sized at the next open, where it fills
        invested[fractional] = fill["size"] * coin["Open"].iloc[1] / 100_000
        assert result.rejected_orders == 0
    assert invested[False] < 0.85  # whole coins only
    assert invested[True] == pytest.approx(0.95, rel=1e-9)
    assert load_config(None, ["broker.fractional=true"]).broker.fractional
