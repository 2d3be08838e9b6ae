"""Features are causal (truncation), warm-up is visible, exogenous data is lagged, feeds carry lines."""

from __future__ import annotations

import warnings

import backtrader as bt
import numpy as np
import pandas as pd
import pytest
import ta

from lstm_strategy import build_features, load_exogenous, make_feed, make_target, warmup_bars
from lstm_strategy.features import (
    DEFAULT_FEATURES,
    FEATURES,
    NON_CAUSAL_TA,
    FeatureConfig,
    exog_staleness_warning,
    join_exogenous,
)

from .conftest import DATA, random_cuts


def test_every_default_feature_is_causal_by_truncation(aapl: pd.DataFrame) -> None:
    bars = aapl.iloc[:1200]
    full = build_features(bars)
    assert list(full.columns) == list(DEFAULT_FEATURES)
    for cut in random_cuts(bars.index, 12, seed=1):
        short = build_features(bars.loc[:cut])
        pd.testing.assert_frame_equal(short, full.loc[:cut], check_exact=True,
                                      check_freq=False, obj=f"features cut at {cut.date()}")


def test_every_registered_feature_is_causal_with_other_windows(aapl: pd.DataFrame) -> None:
    bars = aapl.iloc[300:900]
    config = FeatureConfig(names=tuple(FEATURES), rsi_window=7, macd_fast=5, macd_slow=13,
                           bb_window=10, atr_window=5, sma_window=30, adx_window=7)
    full = build_features(bars, config)
    for cut in random_cuts(bars.index, 6, seed=2):
        pd.testing.assert_frame_equal(build_features(bars.loc[:cut], config), full.loc[:cut],
                                      check_exact=True, check_freq=False)


def test_noncausal_ta_indicators_are_the_excluded_ones(aapl: pd.DataFrame) -> None:
    """Run every `ta` indicator through the truncation test: exactly NON_CAUSAL_TA fail.

    KST pads its rate-of-change terms with the mean of the whole series (the future) and
    the visual Ichimoku spans are shifted forward by design; none of our features use them.
    """
    bars = aapl.iloc[:700]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        full = ta.add_all_ta_features(bars.copy(), "Open", "High", "Low", "Close", "Volume")
        failing = set()
        for cut in (250, 420, 613):
            short = ta.add_all_ta_features(bars.iloc[:cut].copy(), "Open", "High", "Low",
                                           "Close", "Volume")
            for column in short.columns:
                if not np.array_equal(short[column].to_numpy(), full[column].iloc[:cut].to_numpy(),
                                      equal_nan=True):
                    failing.add(column)
    assert failing == set(NON_CAUSAL_TA)


def test_warmup_rows_are_nan_then_complete(aapl: pd.DataFrame) -> None:
    features = build_features(aapl)
    warm = warmup_bars(features)
    assert features.index.equals(aapl.index)  # nothing dropped
    assert warm == 49  # the 50-bar SMA distance is the slowest feature
    assert features.iloc[warm - 1].isna().any()
    assert features.iloc[warm:].notna().all().all()


def test_target_is_forward_log_return_and_not_a_feature(aapl: pd.DataFrame) -> None:
    close = aapl["Close"]
    target = make_target(close, horizon=5)
    assert target.iloc[10] == pytest.approx(np.log(close.iloc[15] / close.iloc[10]))
    assert target.iloc[-5:].isna().all() and target.iloc[:-5].notna().all()
    features = build_features(aapl)
    for column in features:
        assert not np.allclose(features[column].fillna(0), target.fillna(0))


def test_exogenous_join_lags_by_one_bar(aapl: pd.DataFrame) -> None:
    macro = load_exogenous(DATA / "macro_us_daily.csv")
    joined = join_exogenous(aapl.index, macro, lag=1)
    day, next_day = aapl.index[100], aapl.index[101]
    # the value dated `day` is first seen on the next bar
    assert joined.loc[next_day, "ust_10y"] == macro.ffill().loc[day, "ust_10y"]
    assert joined.loc[day, "ust_10y"] == macro.ffill().loc[:day].iloc[-2]["ust_10y"]


def test_exogenous_join_with_calendar_lag(aapl: pd.DataFrame) -> None:
    quarterly = load_exogenous(DATA / "macro_us_quarterly.csv")
    joined = join_exogenous(aapl.index, quarterly, lag="45D")
    # 2009Q2 (dated 2009-06-30) becomes known 45 days later, on 2009-08-14
    assert joined.loc["2009-08-13", "realgdp"] == quarterly.loc["2009-03-31", "realgdp"]
    assert joined.loc["2009-08-14", "realgdp"] == quarterly.loc["2009-06-30", "realgdp"]


@pytest.mark.parametrize("lag,path", [(1, "macro_us_daily.csv"), ("45D", "macro_us_quarterly.csv"),
                                      (2, "macro_us_daily.csv")])
def test_exogenous_join_is_causal_by_truncation(aapl: pd.DataFrame, lag: object,
                                                path: str) -> None:
    macro = load_exogenous(DATA / path)
    full = build_features(aapl, exogenous=macro, exog_lag=lag, exog_transform="diff")
    for cut in random_cuts(aapl.index, 8, seed=3):
        # the exogenous file is cut too: nothing published after T may matter
        short = build_features(aapl.loc[:cut], exogenous=macro.loc[:cut], exog_lag=lag,
                               exog_transform="diff")
        pd.testing.assert_frame_equal(short, full.loc[:cut], check_exact=True, check_freq=False)


def test_stale_exogenous_series_is_reported(aapl: pd.DataFrame) -> None:
    quarterly = load_exogenous(DATA / "macro_us_quarterly.csv")
    message = exog_staleness_warning(aapl.index, quarterly, "macro_us_quarterly.csv")
    assert message is not None and "2009-09-30" in message and "macro_us_daily" in message
    daily = load_exogenous(DATA / "macro_us_daily.csv")
    assert exog_staleness_warning(aapl.index, daily, "daily") is None


def test_unknown_feature_name_is_an_error() -> None:
    with pytest.raises(ValueError, match=r"unknown feature.*'rsii'"):
        FeatureConfig(names=("rsii",))


def test_feed_carries_extra_lines_into_backtrader(aapl: pd.DataFrame) -> None:
    bars = aapl.iloc[:80]
    features = build_features(bars)[["rsi", "log_ret_1"]]
    seen = []

    class Reader(bt.Strategy):
        def next(self) -> None:
            seen.append((self.data.datetime.date(0), self.data.rsi[0], self.data.log_ret_1[0]))

    cerebro = bt.Cerebro(stdstats=False)
    cerebro.adddata(make_feed(bars, features, name="AAPL"))
    cerebro.addstrategy(Reader)
    cerebro.run()
    frame = pd.DataFrame(seen, columns=["date", "rsi", "log_ret_1"])
    assert len(frame) == len(bars)
    np.testing.assert_array_equal(frame["rsi"].to_numpy(), features["rsi"].to_numpy())
    np.testing.assert_array_equal(frame["log_ret_1"].to_numpy(), features["log_ret_1"].to_numpy())


def test_fast_feed_matches_backtraders_pandas_feed(aapl: pd.DataFrame) -> None:
    bars = aapl.iloc[:120]

    class Reader(bt.Strategy):
        def start(self) -> None:
            self.rows = []

        def next(self) -> None:
            d = self.data
            self.rows.append((d.datetime[0], d.open[0], d.high[0], d.low[0], d.close[0],
                              d.volume[0]))

    def read(feed: bt.feeds.PandasData) -> list:
        cerebro = bt.Cerebro(stdstats=False)
        cerebro.adddata(feed)
        cerebro.addstrategy(Reader)
        return cerebro.run()[0].rows

    ours = read(make_feed(bars, fromdate=bars.index[10].to_pydatetime()))
    theirs = read(bt.feeds.PandasData(dataname=bars, fromdate=bars.index[10].to_pydatetime()))
    assert len(ours) == 110 and ours == theirs
