"""Features are causal (truncation), warm-up is visible, exogenous data is lagged, feeds carry lines."""

from __future__ import annotations

import warnings

import backtrader as bt
import numpy as np
import pandas as pd
import pytest
import ta

from lstm_strategy import DataError, build_features, load_exogenous, make_feed, make_target, warmup_bars
from lstm_strategy.features import (
    DEFAULT_FEATURES,
    FEATURES,
    NON_CAUSAL_TA,
    FeatureConfig,
    exog_coverage_problem,
    join_exogenous,
)

from .conftest import DATA, hourly_bars, random_cuts


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


def test_exogenous_daily_value_is_used_from_the_first_bar_after_its_day(aapl: pd.DataFrame
                                                                         ) -> None:
    macro = load_exogenous(DATA / "macro_us_daily.csv")
    joined = join_exogenous(aapl.index, macro)
    known = macro.ffill()
    # every bar sees the latest value dated strictly before its own date
    for day in aapl.index[1::97]:
        assert joined.loc[day, "ust_10y"] == known.loc[:day - pd.Timedelta(days=1)].iloc[-1][
            "ust_10y"]
    # where both calendars agree this is the previous bar's value (the old one-bar rule);
    # after a day the exchange was shut but the macro figure was published (Good Friday,
    # 2001-09-11..14) the newer figure is legitimately known, and only there do they differ
    ffilled = macro.sort_index().ffill()
    asof = ffilled.index.searchsorted(aapl.index, side="right") - 1
    one_bar = pd.DataFrame(ffilled.to_numpy()[asof], index=aapl.index,
                           columns=macro.columns).shift(1)
    # before the first bar the old rule had nothing; the figure of the day before is known
    previous_bar = pd.Series(aapl.index, index=aapl.index).shift(1).fillna(pd.Timestamp(0))
    differs = ~((joined == one_bar) | (joined.isna() & one_bar.isna())).all(axis=1)
    for day in aapl.index[differs.to_numpy()]:
        between = macro.index[(macro.index > previous_bar[day]) & (macro.index < day)]
        assert len(between), f"{day.date()} differs without a figure published in between"
    assert differs.sum() == 7


def test_exogenous_join_with_calendar_lag(aapl: pd.DataFrame) -> None:
    quarterly = load_exogenous(DATA / "macro_us_quarterly.csv")
    joined = join_exogenous(aapl.index, quarterly, lag="45D")
    # 2009Q2 (dated 2009-06-30) is known 45 days after that day ends: Saturday 2009-08-15
    assert joined.loc["2009-08-14", "realgdp"] == quarterly.loc["2009-03-31", "realgdp"]
    assert joined.loc["2009-08-17", "realgdp"] == quarterly.loc["2009-06-30", "realgdp"]


def test_exogenous_lag_in_bars_is_refused(aapl: pd.DataFrame) -> None:
    macro = load_exogenous(DATA / "macro_us_daily.csv")
    with pytest.raises(DataError, match="not a number of bars"):
        join_exogenous(aapl.index, macro, lag=1)


@pytest.mark.parametrize("spacing", ["hourly", "daily", "monthly"])
def test_changing_one_exogenous_value_moves_nothing_before_it_is_known(aapl: pd.DataFrame,
                                                                        spacing: str) -> None:
    """Perturbation: the value dated D may move features only from the first bar after D ends."""
    macro = load_exogenous(DATA / "macro_us_daily.csv")
    day = pd.Timestamp("2008-06-11")
    if spacing == "hourly":
        bars = hourly_bars(pd.bdate_range("2008-05-01", "2008-07-31"))
    elif spacing == "daily":
        bars = aapl.loc["2008-01-01":"2008-12-31"]
    else:
        bars = aapl.resample("MS").agg({"Open": "first", "High": "max", "Low": "min",
                                        "Close": "last", "Volume": "sum"}).loc["2006":"2010"]
        day = pd.Timestamp("2008-05-30")  # the last figure dated before the June bar
    changed = macro.copy()
    changed.loc[day, "ust_10y"] += 1.0
    for transform in ("level", "diff"):
        base = build_features(bars, exogenous=macro, exog_transform=transform)
        moved = build_features(bars, exogenous=changed, exog_transform=transform)
        differs = ~((base == moved) | (base.isna() & moved.isna())).all(axis=1)
        first_known = bars.index[bars.index >= day + pd.Timedelta(days=1)][0]
        assert differs.any() and bars.index[differs.to_numpy()][0] == first_known
        if spacing == "hourly":
            assert first_known == pd.Timestamp("2008-06-12 00:00")


@pytest.mark.parametrize("lag,path", [("0D", "macro_us_daily.csv"),
                                      ("45D", "macro_us_quarterly.csv"),
                                      ("1B", "macro_us_daily.csv")])
def test_exogenous_join_is_causal_by_truncation(aapl: pd.DataFrame, lag: object,
                                                path: str) -> None:
    macro = load_exogenous(DATA / path)
    full = build_features(aapl, exogenous=macro, exog_lag=lag, exog_transform="diff")
    for cut in random_cuts(aapl.index, 8, seed=3):
        # the exogenous file is cut too: nothing published after T may matter
        short = build_features(aapl.loc[:cut], exogenous=macro.loc[:cut], exog_lag=lag,
                               exog_transform="diff")
        pd.testing.assert_frame_equal(short, full.loc[:cut], check_exact=True, check_freq=False)


def test_exogenous_coverage_is_measured_per_series(aapl: pd.DataFrame) -> None:
    quarterly = load_exogenous(DATA / "macro_us_quarterly.csv")
    problem = exog_coverage_problem(aapl.index, quarterly)
    assert problem is not None and "realgdp stops 2009-09-30" in problem
    daily = load_exogenous(DATA / "macro_us_daily.csv")
    assert exog_coverage_problem(aapl.index, daily) is None
    # one series that stops early is stale although the file's rows go on
    daily.loc["2011-01-01":, "wti_usd"] = np.nan
    problem = exog_coverage_problem(aapl.index, daily)
    assert problem is not None and "wti_usd stops" in problem and "ust_10y" not in problem
    late = aapl.index.shift(1, freq="3650D")  # bars 2010-2023: the file starts long before
    assert "stops 2017-03-29" in exog_coverage_problem(late, load_exogenous(
        DATA / "macro_us_daily.csv"))


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
