"""Online features: one bar in, the row `build_features` gives for that bar out."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from lstm_strategy import load_ohlcv
from lstm_strategy.data import load_exogenous
from lstm_strategy.errors import DataError
from lstm_strategy.features import FeatureConfig, build_features
from lstm_strategy.online_features import OnlineFeatures, prove_window
from lstm_strategy.sentiment import load_sentiment, sentiment_feature

from .conftest import DATA, hourly_bars

TOLERANCE = 1e-9  # max relative difference per value


def assert_rows_equal(online: pd.DataFrame, batch: pd.DataFrame) -> None:
    """Per feature: the same NaN pattern, and values within TOLERANCE (relative)."""
    assert list(online.columns) == list(batch.columns)
    for name in batch.columns:
        got, want = online[name].to_numpy(), batch[name].to_numpy()
        nan_got, nan_want = np.isnan(got), np.isnan(want)
        first = np.flatnonzero(nan_got != nan_want)
        assert not len(first), (f"{name}: NaN pattern differs first at "
                                f"{batch.index[first[0]]} (online {got[first[0]]}, "
                                f"batch {want[first[0]]})")
        known = ~nan_want
        assert known.any(), f"{name}: never defined on these bars"
        rel = np.abs(got[known] - want[known]) / np.maximum(np.abs(want[known]), 1e-300)
        exact_zero = want[known] == 0
        rel[exact_zero] = np.abs(got[known][exact_zero])
        worst = int(np.argmax(rel))
        assert rel[worst] <= TOLERANCE, (f"{name}: relative difference {rel[worst]:.2e} at "
                                         f"{batch.index[known][worst]}")


def monthly(bars: pd.DataFrame) -> pd.DataFrame:
    return bars.resample("MS").agg({"Open": "first", "High": "max", "Low": "min",
                                    "Close": "last", "Volume": "sum"})


@pytest.fixture(scope="module")
def series(aapl: pd.DataFrame) -> dict[str, pd.DataFrame]:
    holed = aapl.loc["2008-01-01":"2011-12-31"]
    return {
        "daily": aapl,
        "hourly": hourly_bars(pd.bdate_range("2008-05-01", "2008-08-29")),
        "monthly": monthly(aapl),
        "gap": holed.drop(holed.loc["2009-06-01":"2009-11-30"].index),
        "ibm": load_ohlcv(DATA / "IBM.csv"),
    }


@pytest.mark.parametrize("name", ["daily", "hourly", "monthly", "gap", "ibm"])
def test_online_rows_equal_build_features_on_every_bar(series: dict, name: str) -> None:
    bars = series[name]
    assert_rows_equal(OnlineFeatures().frame(bars), build_features(bars))


def test_online_rows_follow_other_windows(aapl: pd.DataFrame) -> None:
    config = FeatureConfig(rsi_window=7, macd_fast=5, macd_slow=35, macd_signal=4,
                           bb_window=10, bb_dev=1.5, atr_window=5, obv_window=9,
                           ema_window=3, sma_window=100, stoch_window=5, stoch_smooth=5,
                           adx_window=6, cci_window=8, roc_window=30, vol_window=2)
    bars = aapl.iloc[:1500]
    assert_rows_equal(OnlineFeatures(config).frame(bars), build_features(bars, config))


@pytest.mark.parametrize("transform", ["level", "diff"])
@pytest.mark.parametrize("spacing", ["daily", "hourly"])
def test_online_exogenous_and_sentiment_join_as_the_batch_does(
        series: dict, transform: str, spacing: str) -> None:
    bars = series[spacing]
    macro = load_exogenous(DATA / "macro_us_daily.csv")
    news = load_sentiment(DATA / "sentiment_example.csv", clock_tz="America/New_York")
    if spacing == "hourly":  # headlines on these days, so the feature moves
        news = news.assign(timestamp=pd.date_range("2008-05-02", periods=len(news),
                                                   freq="7h"))
    batch = build_features(bars, exogenous=macro, exog_prefix="macro_",
                           exog_transform=transform)
    batch["sentiment"] = sentiment_feature(bars.index, news, "AAPL")
    assert batch["sentiment"].abs().max() > 0
    online = OnlineFeatures(exogenous=macro, exog_prefix="macro_", exog_transform=transform,
                            news=news, sentiment_ticker="AAPL")
    assert_rows_equal(online.frame(bars), batch)


def test_exogenous_and_news_that_arrive_while_running_join_by_availability(
        aapl: pd.DataFrame) -> None:
    """Sources that grow: each row is handed over only once it is published; the rows are
    those of the whole table joined at once."""
    bars = aapl.loc["2006-01-01":"2008-12-31"]
    macro = load_exogenous(DATA / "macro_us_daily.csv").loc[:"2008-12-31"]
    news = load_sentiment(DATA / "sentiment_example.csv", clock_tz="America/New_York")
    news = news.assign(timestamp=pd.date_range("2006-02-01 09:30", periods=len(news),
                                               freq="9D", tz=None))
    batch = build_features(bars, exogenous=macro, exog_prefix="macro_")
    batch["sentiment"] = sentiment_feature(bars.index, news, "AAPL")
    online = OnlineFeatures(exogenous=macro.iloc[:1], exog_prefix="macro_",
                            news=news.iloc[:0], sentiment_ticker="AAPL")
    rows = []
    for when, bar in zip(bars.index, bars[["Open", "High", "Low", "Close", "Volume"]]
                         .to_numpy(float), strict=True):
        online.extend_exogenous(macro.loc[:when - pd.Timedelta(days=1)])  # published so far
        # headlines arrived by the bar's close (16:00), when its row is computed
        online.extend_news(news[news["timestamp"] <= when + pd.Timedelta(hours=16)])
        rows.append(online.update(when, *bar))
    assert_rows_equal(pd.DataFrame(rows, index=bars.index, columns=list(online.columns)),
                      batch)


def test_features_without_online_form_recompute_over_a_proven_window(
        aapl: pd.DataFrame) -> None:
    bars = aapl.iloc[:110]
    config = FeatureConfig(set="alpha158")
    window = prove_window(bars.iloc[:100], config, check_rows=4)
    assert window >= 61  # Alpha158's longest window is 60 bars
    with pytest.warns(UserWarning, match=f"recomputed each bar over the last {window} bars"):
        online = OnlineFeatures(config, window=window)
    assert_rows_equal(online.frame(bars), build_features(bars, config))
    with pytest.raises(DataError, match="window= trailing bars"):
        OnlineFeatures(config)
    with pytest.raises(DataError, match="too few to prove"):
        prove_window(bars.iloc[:40], config)


def test_a_repeated_or_out_of_order_bar_is_refused(aapl: pd.DataFrame) -> None:
    online = OnlineFeatures()
    bars = aapl.iloc[:3]
    online.frame(bars)
    for when in (bars.index[-1], bars.index[0]):
        with pytest.raises(DataError, match=f"bar {when} does not follow"):
            online.update(when, 1.0, 1.0, 1.0, 1.0, 1.0)


def test_no_warning_for_the_default_set(aapl: pd.DataFrame) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        OnlineFeatures().frame(aapl.iloc[:50])
