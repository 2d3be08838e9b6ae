"""The cross-sectional strategy: exact trades on a hand-made forecast matrix, its rules."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lstm_strategy import ConfigError, CrossSectionalStrategy, backtest
from lstm_strategy.backtest import rank_targets
from lstm_strategy.config import BrokerConfig

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
