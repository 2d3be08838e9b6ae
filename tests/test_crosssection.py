"""The cross-sectional strategy: exact trades on a hand-made forecast matrix, its rules."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lstm_strategy import ConfigError, CrossSectionalStrategy, backtest
from lstm_strategy.backtest import rank_targets, topk_dropout_targets
from lstm_strategy.backtest.fastsim import unsupported
from lstm_strategy.config import BrokerConfig, PortfolioConfig

DATES = pd.bdate_range("2021-01-04", periods=6)
# forecasts by bar: A leads, then B, then C
FORECASTS = {"A": [3.0, 3.0, 1.0, 1.0, 2.0, 2.0],
             "B": [2.0, 2.0, 3.0, 3.0, 1.0, 1.0],
             "C": [1.0, 1.0, 2.0, 2.0, 3.0, 3.0]}
FREE = BrokerConfig(commission_bps=0.0, slippage_bps=0.0, fill="close")


def flat_bars(price: float = 100.0) -> dict[str, pd.DataFrame]:
    frame = pd.DataFrame({k: price for k in ("Open", "High", "Low", "Close")}, index=DATES)
    frame["Volume"] = 1e6
    return {t: frame.copy() for t in FORECASTS}


def fills_by_bar(result: object) -> list[dict]:
    fills = result.fills
    return [{row.ticker: row.size for row in group.itertuples()}
            for _, group in fills.groupby("date", sort=True)]


def run(**params: object) -> object:
    forecasts = {t: pd.Series(v, index=DATES) for t, v in FORECASTS.items()}
    return backtest(flat_bars(), CrossSectionalStrategy, broker=FREE, cross_check=False,
                    forecasts=forecasts, **params)


def test_long_short_rotation_trades_exactly_the_hand_computed_sizes() -> None:
    result = run(top_k=1, allow_short=True, rebalance=2)
    # half the book long the top asset, half short the bottom one, every other bar;
    # flat prices, no costs: 50,000 / 100 = 500 shares a leg
    assert fills_by_bar(result) == [
        {"A": 500.0, "C": -500.0},  # A up, C down
        {"A": -1000.0, "B": 500.0, "C": 500.0},  # B up, A down
        {"A": 500.0, "B": -1000.0, "C": 500.0},  # C up, B down
    ]
    assert list(result.fills["date"].unique()) == [DATES[0], DATES[2], DATES[4]]
    assert result.equity["value"].iloc[-1] == pytest.approx(100_000.0)


def test_the_turnover_cap_moves_every_weight_the_same_share_of_the_way() -> None:
    result = run(top_k=1, allow_short=True, rebalance=2, max_turnover=0.5)
    # bar 0 wants A 0.5, C -0.5 from flat: turnover 1.0, capped to 0.5: half way
    # bar 2 wants A 0.25 -> -0.5, B 0 -> 0.5, C -0.25 -> 0: turnover 1.5, so a third of
    # the way: A 0 (sell 250), B 1/6 (16,666.67 of 100,000: 166 whole shares), C -1/6
    # (buy back 83.33: 83)
    assert fills_by_bar(result)[:2] == [{"A": 250.0, "C": -250.0},
                                        {"A": -250.0, "B": 166.0, "C": 83.0}]


def test_long_only_top_two_with_forecast_weights() -> None:
    result = run(top_k=2, allow_short=False, rebalance=6, weighting="forecast")
    # bar 0: A 3, B 2 above the mean 2: only A is above it, so A carries all the weight
    assert fills_by_bar(result) == [{"A": 1000.0}]
    # the forecasts as one frame (a column per data) trade the same
    frame = pd.DataFrame(FORECASTS, index=DATES)
    again = backtest(flat_bars(), CrossSectionalStrategy, broker=FREE, cross_check=False,
                     forecasts=frame, top_k=2, allow_short=False, rebalance=6,
                     weighting="forecast")
    assert fills_by_bar(again) == fills_by_bar(result)


def test_rank_targets_by_hand() -> None:
    forecasts = np.array([0.02, -0.01, np.nan, 0.005, -0.03])
    held = np.zeros(5)
    equal = rank_targets(forecasts, held, top_k=2, allow_short=True)
    np.testing.assert_allclose(equal, [0.25, -0.25, 0.0, 0.25, -0.25])
    # forecast weights: the mean of the finite four is -0.00375; longs 0.02375 and 0.00875
    scaled = rank_targets(forecasts, held, top_k=2, allow_short=False, weighting="forecast")
    np.testing.assert_allclose(scaled, [0.02375 / 0.0325, 0.0, 0.0, 0.00875 / 0.0325, 0.0])
    # too few finite forecasts for two legs of two: one each
    np.testing.assert_allclose(rank_targets(np.array([1.0, np.nan, -1.0]), np.zeros(3),
                                            top_k=2, allow_short=True), [0.5, 0.0, -0.5])
    with pytest.raises(ConfigError, match="weighting"):
        rank_targets(forecasts, held, top_k=1, allow_short=False, weighting="rank")


# -- Qlib's TopkDropout book --------------------------------------------------------------
# five bars (a close fill needs the bar after the order); bar 4 repeats bar 3
ROTATION = {"A": [5.0, 4.0, 1.0, 1.0, 1.0], "B": [4.0, 2.0, 3.0, 3.0, 3.0],
            "C": [3.0, 5.0, 2.0, 2.0, 2.0], "D": [2.0, 3.0, 5.0, 5.0, 5.0],
            "E": [1.0, 1.0, 4.0, 4.0, 4.0]}


def dropout_run(prices: dict[str, list[float]] | None = None, broker: BrokerConfig = FREE,
                **params: object) -> object:
    dates = DATES[:5]
    bars = {}
    for ticker in ROTATION:
        close = (prices or {}).get(ticker, [100.0] * 5)
        frame = pd.DataFrame({k: close for k in ("Open", "High", "Low", "Close")}, index=dates)
        frame["Volume"] = 1e6
        bars[ticker] = frame
    forecasts = {t: pd.Series(v, index=dates) for t, v in ROTATION.items()}
    return backtest(bars, CrossSectionalStrategy, broker=broker, cross_check=False,
                    forecasts=forecasts, book="topk_dropout", **params)


def test_topk_dropout_replaces_at_most_n_drop_holdings_a_rebalance() -> None:
    result = dropout_run(top_k=2, n_drop=1, allow_short=False, rebalance=1)
    # bar 0: buy the top two, A and B (50,000 each at 100: 500 shares).
    # bar 1 (C 5, A 4, D 3, B 2): the buy list is the best one not held, C; of A, B and C
    #   B ranks lowest, so B goes and C comes; A, still held, is not traded.
    # bar 2 (D 5, E 4, B 3, C 2, A 1): the rank book would swap both; this one sells A only
    #   (lowest of C, A and the buy list D) and buys D. bar 3: C (2) goes for E (4).
    assert fills_by_bar(result) == [{"A": 500.0, "B": 500.0}, {"B": -500.0, "C": 500.0},
                                    {"A": -500.0, "D": 500.0}, {"C": -500.0, "E": 500.0}]
    ranked = run_rotation_rank_book()
    assert fills_by_bar(ranked)[2] == {"A": -500.0, "C": -500.0, "D": 500.0, "E": 500.0}


def run_rotation_rank_book() -> object:
    dates = DATES[:5]
    frame = pd.DataFrame({k: 100.0 for k in ("Open", "High", "Low", "Close")}, index=dates)
    frame["Volume"] = 1e6
    return backtest({t: frame.copy() for t in ROTATION}, CrossSectionalStrategy, broker=FREE,
                    cross_check=False, forecasts={t: pd.Series(v, index=dates)
                                                  for t, v in ROTATION.items()},
                    top_k=2, allow_short=False, rebalance=1)


def test_topk_dropout_leaves_holdings_kept_untouched_and_buys_with_what_is_left() -> None:
    # A closes at 150 on bar 1: the book is worth 125,000 with A 60% of it. The rank book
    # would trim A to half; this one keeps A's 500 shares and buys C with the 40% left.
    prices = {"A": [100.0, 150.0, 150.0, 150.0, 150.0]}
    fills = fills_by_bar(dropout_run(prices, top_k=2, n_drop=1, allow_short=False,
                                     rebalance=1))
    assert fills[1] == {"B": -500.0, "C": 500.0}


def test_topk_dropout_targets_by_hand() -> None:
    forecasts = np.array([0.03, np.nan, 0.01, -0.02, 0.02, -0.04])
    # held: long assets 1 (no forecast now) and 2; short asset 3
    held = np.array([0.0, 0.25, 0.25, -0.25, 0.0, 0.0])
    target = topk_dropout_targets(forecasts, held, top_k=2, n_drop=1, allow_short=True)
    # long leg: the buy list is asset 0 (0.03); of 0, 2 and 1, asset 1 (no forecast) ranks
    # lowest: sold, and 0 bought with the long half less asset 2's 0.25. Short leg (the
    # rule on -forecast): the buy list is the two lowest not held, 5 (-0.04) and 4 (-0.02);
    # the worst of 5, 3 and 4 is 4, not held, so 3 stays and 5 fills the leg to two.
    np.testing.assert_allclose(target, [0.25, 0.0, 0.25, -0.25, 0.0, -0.25])
    # a first rebalance is the top k, equal weights, like the rank book's
    np.testing.assert_allclose(
        topk_dropout_targets(forecasts, np.zeros(6), top_k=1, n_drop=1, allow_short=True),
        rank_targets(forecasts, np.zeros(6), top_k=1, allow_short=True))
    # n_drop 0 never replaces a holding
    np.testing.assert_allclose(topk_dropout_targets(forecasts, held, top_k=2, n_drop=0,
                                                    allow_short=False), held)
    with pytest.raises(ConfigError, match="weighting"):
        PortfolioConfig(book="topk_dropout", weighting="forecast")
    with pytest.raises(ConfigError, match="book="):
        PortfolioConfig(book="dropout")


def test_qlib_costs_charge_buys_and_sells_their_rates_and_a_minimum() -> None:
    broker = BrokerConfig(commission_bps=5.0, sell_commission_bps=10.0, min_commission=30.0,
                          slippage_bps=0.0, fill="close")
    fills = dropout_run(broker=broker, top_k=2, n_drop=1, allow_short=False,
                        rebalance=1).fills
    first, second = (fills[fills["date"] == d] for d in DATES[:2])
    # A: 500 x 100 at 5 bps is 25, under the minimum: 30. B is sized so its cost, the
    # minimum included, fits the 49,970 left: 499 shares, 30 commission.
    assert first.set_index("ticker")["size"].to_dict() == {"A": 500.0, "B": 499.0}
    assert first["commission"].tolist() == [30.0, 30.0]
    sold = second[second["size"] < 0].iloc[0]
    assert (sold["ticker"], sold["commission"]) == ("B", pytest.approx(499 * 100 * 10e-4))
    assert unsupported({}, broker) and not unsupported({}, BrokerConfig())


@pytest.mark.parametrize("fill", ["next_open", "close"])
def test_the_book_evaluator_trades_exactly_as_backtrader(fill: str) -> None:
    """Every fill and every bar's equity of CrossSectionalStrategy in backtrader, from the
    fast book evaluator, on real prices with random forecasts (some missing)."""
    import warnings

    from lstm_strategy import load_many
    from lstm_strategy.backtest.fastbook import BookEvaluator

    from .conftest import DATA

    tickers = ["XOM", "CVX", "JPM", "BAC", "KO", "PEP", "INTC", "CSCO"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bars = load_many({t: DATA / "sp32" / f"{t}.csv" for t in tickers})
    bars = {t: f.loc["2008-06-01":"2009-12-31"] for t, f in bars.items()}
    rng = np.random.default_rng(3)
    forecasts = {}
    for ticker, frame in bars.items():
        values = rng.standard_normal(len(frame))
        values[rng.random(len(frame)) < 0.05] = np.nan
        forecasts[ticker] = pd.Series(values, index=frame.index)
    broker = BrokerConfig(fill=fill, commission_bps=5.0, slippage_bps=20.0)
    start = bars["XOM"].index[20]
    evaluator = BookEvaluator(bars, forecasts)
    for params in ({"book": "rank", "allow_short": True, "max_turnover": 0.8},
                   {"book": "rank", "allow_short": False, "weighting": "forecast"},
                   {"book": "topk_dropout", "allow_short": True, "n_drop": 1},
                   {"book": "topk_dropout", "allow_short": False, "n_drop": 2}):
        params = {"top_k": 2, "rebalance": 3, **params}
        slow = backtest(bars, CrossSectionalStrategy, broker=broker, cross_check=False,
                        forecasts=forecasts, trade_start=start, **params)
        assert len(slow.fills) > 50, params
        for compiled in (True, False):  # the Numba loop and the reference loop
            fast = evaluator.run(cash=broker.cash, commission_bps=broker.commission_bps,
                                 slippage_bps=broker.slippage_bps, fill=fill,
                                 trade_start=start, compiled=compiled, **params)
            pd.testing.assert_frame_equal(fast.fills.reset_index(drop=True),
                                          slow.fills.reset_index(drop=True), check_exact=True,
                                          check_dtype=False, check_datetimelike_compat=True)
            pd.testing.assert_frame_equal(fast.equity, slow.equity, check_exact=True,
                                          check_freq=False)
            pd.testing.assert_frame_equal(fast.trades.reset_index(drop=True),
                                          slow.trades.reset_index(drop=True),
                                          check_dtype=False, check_datetimelike_compat=True)
