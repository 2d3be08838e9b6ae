"""Sentiment: finance-aware scores offline, headline timing as-of in time, decay by hand."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lstm_strategy import DataError, load_config, run_experiment
from lstm_strategy.sentiment import load_sentiment, score_texts, sentiment_feature

from .conftest import DATA, ROOT, tiny_overrides


def test_finance_headlines_score_the_right_way_round_offline() -> None:
    plunge, beat = score_texts(["Shares plunge after profit warning",
                                "beats estimates, raises guidance"])
    assert plunge < 0 < 0.3 < beat  # plain VADER reads the first one as +0.40
    code = ("import sys; from lstm_strategy.sentiment import score_texts; "
            "score_texts(['x']); print('nltk' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=ROOT)
    assert out.stdout.strip() == "False"  # finvader's NLTK download is never triggered


def _events(rows: list[tuple[str, str, float]]) -> pd.DataFrame:
    return load_sentiment(pd.DataFrame(rows, columns=["timestamp", "ticker", "score"]))


def test_a_headline_after_the_close_moves_the_next_bar_not_this_one() -> None:
    days = pd.DatetimeIndex(["2020-03-02", "2020-03-03", "2020-03-04"])
    after = sentiment_feature(days, _events([("2020-03-02 16:01", "X", 0.8)]), "X")
    assert list(after.to_numpy() != 0) == [False, True, True]
    at_close = sentiment_feature(days, _events([("2020-03-02 16:00", "X", 0.8)]), "X")
    assert at_close.iloc[0] == pytest.approx(0.8)
    hours = pd.date_range("2020-03-02 09:00", periods=4, freq="h")  # bars stamped at open
    hourly = sentiment_feature(hours, _events([("2020-03-02 10:30", "*", -0.5)]), "X")
    assert list(hourly.to_numpy() != 0) == [False, True, True, True]  # 10:00 bar closes 11:00
    other = sentiment_feature(days, _events([("2020-03-02 12:00", "Y", 0.8)]), "X")
    assert (other == 0).all()  # another ticker's news does not count


def test_decay_by_hand_with_three_headlines() -> None:
    events = _events([("2020-03-02 10:00", "X", 0.6), ("2020-03-02 15:00", "*", -0.2),
                      ("2020-03-03 12:00", "X", 0.9)])
    days = pd.DatetimeIndex(["2020-03-02", "2020-03-03", "2020-03-06"])
    feature = sentiment_feature(days, events, "X", half_life="1D")

    def weight(close: str, stamp: str) -> float:
        return 0.5 ** ((pd.Timestamp(close) - pd.Timestamp(stamp)) / pd.Timedelta("1D"))

    expected = []
    for close, known in (("2020-03-02 16:00", 2), ("2020-03-03 16:00", 3),
                         ("2020-03-06 16:00", 3)):
        rows = events.iloc[:known]
        w = np.array([weight(close, str(t)) for t in rows["timestamp"]])
        expected.append(float(w @ rows["score"].to_numpy()) / max(1.0, w.sum()))
    np.testing.assert_allclose(feature.to_numpy(), expected, rtol=1e-12)
    # by hand for the first bar: weights 0.5**(6/24) and 0.5**(1/24), sum above 1
    w1, w2 = 0.5 ** 0.25, 0.5 ** (1 / 24)
    assert feature.iloc[0] == pytest.approx((0.6 * w1 - 0.2 * w2) / (w1 + w2))


def test_changing_one_headline_moves_nothing_before_it_is_known() -> None:
    days = pd.bdate_range("2020-01-01", periods=60)
    stamps = days[::3] + pd.Timedelta(hours=18)
    base = [(str(t), "X", 0.1 * (i % 7 - 3)) for i, t in enumerate(stamps)]
    changed = list(base)
    changed[10] = (changed[10][0], "X", 0.99)
    a = sentiment_feature(days, _events(base), "X")
    b = sentiment_feature(days, _events(changed), "X")
    known_from = days[days + pd.Timedelta(hours=16) >= pd.Timestamp(changed[10][0])][0]
    assert (a[days < known_from] == b[days < known_from]).all()
    assert a[known_from] != b[known_from]


def test_bad_sentiment_files_are_named(tmp_path: Path) -> None:
    path = tmp_path / "news.csv"
    path.write_text("when,ticker,text\n2020-01-01,X,hello\n")
    with pytest.raises(DataError, match="needs columns timestamp, ticker"):
        load_sentiment(path)
    path.write_text("timestamp,ticker,score\n2020-01-01,X,0.5\nyesterday,X,0.1\n")
    with pytest.raises(DataError, match="unparsable timestamp 'yesterday' on line 3"):
        load_sentiment(path)
    path.write_text("timestamp,ticker,score\n2020-01-01,X,1.5\n")
    with pytest.raises(DataError, match=r"score on line 2 must be a number in \[-1, 1\]"):
        load_sentiment(path)


def test_the_illustrative_example_feeds_a_run_and_says_so() -> None:
    events = load_sentiment(DATA / "sentiment_example.csv")
    assert events.attrs["illustrative"] and len(events) > 30
    config = load_config(None, tiny_overrides(**{"data.sentiment": "data/sentiment_example.csv"}),
                         device="cpu")
    result = run_experiment(config, progress=False)
    feature = result.features["AAPL"]["sentiment"]
    assert (feature != 0).sum() > 100 and feature.abs().max() <= 1
    assert any("ILLUSTRATIVE" in note for note in result.notes)


def test_offsets_are_honoured_across_daylight_saving(tmp_path: Path) -> None:
    # 2010-03-14: New York moves from -05:00 to -04:00; a US feed carries both offsets
    path = tmp_path / "news.csv"
    path.write_text("timestamp,ticker,score\n"
                    "2010-03-10 14:30-08:00,X,0.5\n"  # 17:30 in New York: after the close
                    "2010-03-12 15:59-05:00,X,0.4\n"  # before the close
                    "2010-03-15 16:30-04:00,X,-0.3\n"  # 16:30 EDT: after the close
                    "2010-03-16 19:00Z,X,0.2\n"  # 15:00 EDT: before the close
                    "2010-03-17 15:00,X,0.1\n")  # naive: on the bars' clock already
    events = load_sentiment(path)
    assert [str(t) for t in events["timestamp"]] == [
        "2010-03-10 17:30:00", "2010-03-12 15:59:00", "2010-03-15 16:30:00",
        "2010-03-16 15:00:00", "2010-03-17 15:00:00"]
    days = pd.bdate_range("2010-03-09", "2010-03-18")
    feature = sentiment_feature(days, events, "X")
    assert feature["2010-03-10"] == 0  # the -08:00 headline is not on its own date's bar
    assert feature["2010-03-11"] > 0
    before = feature["2010-03-15"]
    assert feature["2010-03-16"] < before  # the EDT after-close headline moved the next bar
    tokyo = load_sentiment(path, clock_tz="Asia/Tokyo")
    assert str(tokyo["timestamp"].iloc[0]) == "2010-03-11 07:30:00"


def test_a_hash_in_a_headline_is_text_not_a_comment(tmp_path: Path) -> None:
    path = tmp_path / "news.csv"
    path.write_text("# my feed\ntimestamp,ticker,text\n"
                    "2010-03-10 10:00,X,shares plunge #1 worst day after profit warning\n")
    events = load_sentiment(path)
    assert events["score"].iloc[0] == pytest.approx(
        score_texts(["shares plunge #1 worst day after profit warning"])[0])
    assert events["score"].iloc[0] < -0.3


def test_headlines_per_ticker_and_unmatched_tickers_are_said(tmp_path: Path) -> None:
    news = tmp_path / "news.csv"
    news.write_text("timestamp,ticker,score\n2009-01-05 10:00,NVDA,0.5\n"
                    "2009-01-06 10:00,NVDA,0.2\n2009-01-07 10:00,*,0.1\n")
    source = tmp_path / "nvda-1999-2014.csv"
    source.write_bytes((DATA / "AAPL.csv").read_bytes())
    plain = load_config(None, tiny_overrides(**{"data.sentiment": str(news)}),
                        **{"data.paths": [str(source)]})
    from lstm_strategy.experiment import load_experiment_data

    with pytest.warns(UserWarning, match="match no data ticker"):
        _, features, notes = load_experiment_data(plain)
    line = next(n for n in notes if n.startswith("sentiment headlines per ticker"))
    assert "NVDA-1999-2014 1" in line and "2 headline(s) for ['NVDA']" in line
    assert "NAME=path" in line
    named = load_config(None, tiny_overrides(**{"data.sentiment": str(news)}),
                        **{"data.paths": [f"NVDA={source}"]})
    _, features, notes = load_experiment_data(named)
    line = next(n for n in notes if n.startswith("sentiment headlines per ticker"))
    assert "NVDA 3" in line and "match no data ticker" not in line
    assert (features["NVDA"]["sentiment"] != 0).any()
