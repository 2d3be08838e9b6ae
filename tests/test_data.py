"""Loading the shipped data, and one clear error per kind of bad input."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lstm_strategy import DataError, load_exogenous, load_many, load_ohlcv
from lstm_strategy.data import DataWarning

from .conftest import DATA

GOOD = "Date,Open,High,Low,Close,Volume\n"
ROWS = [
    "2020-01-02,10,11,9,10.5,1000",
    "2020-01-03,10.5,11.5,10,11,1200",
    "2020-01-06,11,12,10.5,11.5,900",
    "2020-01-07,11.5,12,11,11.2,1100",
]


def write(tmp_path: Path, rows: list[str], header: str = GOOD, name: str = "X.csv") -> Path:
    path = tmp_path / name
    path.write_text(header + "\n".join(rows) + "\n")
    return path


@pytest.mark.parametrize("ticker,rows,first,last", [
    ("AAPL", 3270, "2000-03-01", "2013-03-01"),
    ("IBM", 3270, "2000-03-01", "2013-03-01"),
    ("MSFT", 3270, "2000-03-01", "2013-03-01"),
    ("GOOG", 2148, "2004-08-19", "2013-03-01"),
])
def test_shipped_files_load_unchanged(ticker: str, rows: int, first: str, last: str) -> None:
    bars = load_ohlcv(DATA / f"{ticker}.csv")
    raw = pd.read_csv(DATA / f"{ticker}.csv", index_col="Date", parse_dates=True)
    assert list(bars.columns) == ["Open", "High", "Low", "Close", "Volume"]
    assert isinstance(bars.index, pd.DatetimeIndex) and bars.index.is_monotonic_increasing
    assert len(bars) == rows
    assert str(bars.index[0].date()) == first and str(bars.index[-1].date()) == last
    np.testing.assert_array_equal(bars.to_numpy(), raw[bars.columns].to_numpy(dtype=float))


def test_parquet_round_trip(tmp_path: Path, aapl: pd.DataFrame) -> None:
    path = tmp_path / "AAPL.parquet"
    aapl.iloc[:200].to_parquet(path)
    pd.testing.assert_frame_equal(load_ohlcv(path), aapl.iloc[:200], check_freq=False)


def test_frame_input_other_spellings_and_adj_close() -> None:
    frame = pd.DataFrame({
        "timestamp": ["2020-01-02", "2020-01-03"], "OPEN": [10.0, 20.0], "high": [11.0, 22.0],
        "Low": [9.0, 18.0], "close": [10.0, 20.0], "Adj Close": [5.0, 10.0],
        "vol": [100.0, 200.0]})
    bars = load_ohlcv(frame)
    # adjusted by Adj Close / Close = 0.5: prices halve, volume doubles
    np.testing.assert_allclose(bars.loc["2020-01-02"].to_numpy(), [5.0, 5.5, 4.5, 5.0, 200.0])
    raw = load_ohlcv(frame, adjust=False)
    assert list(raw.columns) == ["Open", "High", "Low", "Close", "Volume"]
    assert raw["Close"].iloc[1] == 20.0


def test_intraday_timestamps(tmp_path: Path) -> None:
    rows = ["2020-01-02 09:30:00,10,11,9,10.5,100", "2020-01-02 09:35:00,10.5,11,10,10.8,50"]
    bars = load_ohlcv(write(tmp_path, rows))
    assert bars.index[1] - bars.index[0] == pd.Timedelta(minutes=5)


def expect_error(path_or_frame: object, *fragments: str, **kwargs: object) -> str:
    with pytest.raises(DataError) as info:
        load_ohlcv(path_or_frame, **kwargs)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    return message


def test_missing_column(tmp_path: Path) -> None:
    path = write(tmp_path, ["2020-01-02,10,11,9,10.5"], header="Date,Open,High,Low,Close\n")
    expect_error(path, str(path), "missing column(s) ['Volume']", "Expected Date, Open")


def test_missing_date_column(tmp_path: Path) -> None:
    path = write(tmp_path, ["10,11,9,10.5,5"], header="Open,High,Low,Close,Volume\n")
    expect_error(path, str(path), "no date column", "'Date'")


def test_unparsable_date(tmp_path: Path) -> None:
    path = write(tmp_path, [ROWS[0], "2020-13-45,10,11,9,10.5,5", ROWS[2]])
    expect_error(path, str(path), "unparsable", "line 3", "'2020-13-45'", "ISO dates")


def test_duplicate_date(tmp_path: Path) -> None:
    path = write(tmp_path, [ROWS[0], ROWS[1], ROWS[1]])
    expect_error(path, str(path), "duplicate timestamp 2020-01-03", "lines 3, 4", "two rows for one bar",
                 "full timestamp")


def test_unsorted_dates_are_sorted_with_a_warning(tmp_path: Path) -> None:
    path = write(tmp_path, [ROWS[1], ROWS[0], ROWS[2]])
    with pytest.warns(DataWarning, match="not in ascending order; sorted"):
        bars = load_ohlcv(path)
    assert bars.index.is_monotonic_increasing
    assert bars["Close"].tolist() == [10.5, 11.0, 11.5]


def test_unsorted_dates_rejected_when_sorting_is_off(tmp_path: Path) -> None:
    path = write(tmp_path, [ROWS[1], ROWS[0], ROWS[2]])
    expect_error(path, str(path), "not in ascending order", "line 3", "Sort the file",
                 sort=False)


def test_nan_value(tmp_path: Path) -> None:
    path = write(tmp_path, [ROWS[0], "2020-01-03,10.5,11.5,10,,1200", ROWS[2]])
    expect_error(path, str(path), "column 'Close'", "line 3", "NaN", "forward-fill")


def test_infinite_value(tmp_path: Path) -> None:
    path = write(tmp_path, [ROWS[0], "2020-01-03,10.5,inf,10,11,1200"])
    expect_error(path, str(path), "infinite", "column 'High'", "line 3")


def test_non_numeric_value(tmp_path: Path) -> None:
    path = write(tmp_path, [ROWS[0], "2020-01-03,10.5,11.5,10,abc,1200"])
    expect_error(path, str(path), "column 'Close'", "'abc'", "line 3")


def test_non_positive_price(tmp_path: Path) -> None:
    path = write(tmp_path, [ROWS[0], "2020-01-03,0,11.5,0,11,1200"])
    expect_error(path, str(path), "non-positive price", "line 3", "> 0")


def test_high_below_low(tmp_path: Path) -> None:
    path = write(tmp_path, [ROWS[0], ROWS[1], "2020-01-06,11,10,12,11,900"])
    expect_error(path, str(path), "High below Low", "line 4")


def test_close_outside_range(tmp_path: Path) -> None:
    path = write(tmp_path, [ROWS[0], "2020-01-03,10.5,11.5,10,13,1200"])
    expect_error(path, str(path), "Close outside [Low, High]", "line 3")


def test_negative_volume(tmp_path: Path) -> None:
    path = write(tmp_path, [ROWS[0], ROWS[1], ROWS[2], "2020-01-07,11.5,12,11,11.2,-5"])
    expect_error(path, str(path), "negative value in column 'Volume'", "line 5")


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.csv"
    path.write_text("")
    expect_error(path, str(path), "the file is empty")


def test_header_only(tmp_path: Path) -> None:
    path = write(tmp_path, [], header=GOOD)
    expect_error(path, str(path), "no data rows")


def test_too_few_rows(tmp_path: Path) -> None:
    path = write(tmp_path, ROWS)
    expect_error(path, str(path), "4 rows, but at least 100", "min_train_bars", min_rows=100)


def test_missing_file(tmp_path: Path) -> None:
    expect_error(tmp_path / "nope.csv", "nope.csv", "no such file")


def test_corrupt_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes(b'Date,Open\n"2020-01-02,1\n\x00\xff\xfe garbage "" ,,\n')
    with pytest.raises(DataError, match=str(path)):
        load_ohlcv(path)


def test_error_points_at_the_original_line_after_sorting(tmp_path: Path) -> None:
    path = write(tmp_path, [ROWS[1], ROWS[0], "2020-01-06,11,12,10.5,-1,900"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        expect_error(path, "line 4")


def test_align_on_common_calendar_with_shorter_goog() -> None:
    with pytest.warns(DataWarning, match="outside the common span"):
        bars = load_many([DATA / "GOOG.csv", DATA / "AAPL.csv", DATA / "MSFT.csv"])
    assert list(bars) == ["GOOG", "AAPL", "MSFT"]
    index = bars["GOOG"].index
    assert str(index[0].date()) == "2004-08-19" and len(index) == 2148
    for frame in bars.values():
        assert frame.index.equals(index)
    aapl = load_ohlcv(DATA / "AAPL.csv")
    pd.testing.assert_frame_equal(bars["AAPL"], aapl.loc[index], check_freq=False)


@pytest.fixture
def gappy(aapl: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """AAPL and MSFT where MSFT lacks one day inside the common span."""
    msft = load_ohlcv(DATA / "MSFT.csv").iloc[:60]
    return {"AAPL": aapl.iloc[:60], "MSFT": msft.drop(msft.index[30])}


def test_align_inner_drops_days_not_all_traded(gappy: dict) -> None:
    missing = gappy["AAPL"].index[30]
    with pytest.warns(DataWarning, match=f"MSFT lacks 1 day.*{missing.date()}"):
        bars = load_many(gappy, align="inner")
    assert len(bars["AAPL"]) == 59 and missing not in bars["AAPL"].index


def test_align_ffill_fills_with_previous_close(gappy: dict) -> None:
    missing = gappy["AAPL"].index[30]
    with pytest.warns(DataWarning, match="filled missing bars with the previous close"):
        bars = load_many(gappy, align="ffill")
    row = bars["MSFT"].loc[missing]
    previous = bars["MSFT"].iloc[29]["Close"]
    assert row[["Open", "High", "Low", "Close"]].tolist() == [previous] * 4
    assert row["Volume"] == 0


def test_align_strict_refuses(gappy: dict) -> None:
    with pytest.raises(DataError, match=r"MSFT lacks 1 day.*align='inner'"):
        load_many(gappy, align="strict")


def test_macro_file_keeps_its_gaps() -> None:
    macro = load_exogenous(DATA / "macro_us_daily.csv")
    assert list(macro.columns) == ["ust_3m", "ust_2y", "ust_10y", "wti_usd"]
    assert len(macro) == 5613 and macro.isna().any().any()


def test_macro_file_with_text_value(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    path.write_text("Date,rate\n2020-01-02,1.5\n2020-01-03,n/a?\n")
    with pytest.raises(DataError, match=r"column 'rate'.*'n/a\?'.*line 3"):
        load_exogenous(path)


@pytest.fixture(scope="module")
def aapl_head() -> pd.DataFrame:
    return load_ohlcv(DATA / "AAPL.csv").iloc[:60]


def _rewrite_dates(bars: pd.DataFrame, path: Path, fmt: str) -> Path:
    out = bars.copy()
    out.index = out.index.strftime(fmt)
    out.to_csv(path, index_label="Date")
    return path


@pytest.mark.parametrize("fmt,dayfirst", [("%d.%m.%Y", True), ("%m/%d/%Y", False)])
def test_day_month_dates_that_read_both_ways_are_refused_then_accepted(
        tmp_path: Path, aapl_head: pd.DataFrame, fmt: str, dayfirst: bool) -> None:
    """Never a silent guess: dates <= 12 in both fields need to be told their order."""
    ambiguous = aapl_head.loc["2000-03-01":"2000-03-10"]  # every field <= 12
    path = _rewrite_dates(ambiguous, tmp_path / "AMB.csv", fmt)
    with pytest.raises(DataError, match=r"AMB\.csv: column 'Date' has dates such as .* read "
                                        r"both day-first and month-first.*data\.date_format"):
        load_ohlcv(path)
    for told in ({"dayfirst": dayfirst}, {"date_format": fmt}):
        assert load_ohlcv(path, **told).index.equals(ambiguous.index)
    # a whole month settles the order by itself (a field above 12), said in a warning
    path = _rewrite_dates(aapl_head, tmp_path / "MONTH.csv", fmt)
    with pytest.warns(DataWarning, match=f"read as {'day' if dayfirst else 'month'}-first"):
        assert load_ohlcv(path).index.equals(aapl_head.index)


def test_mixed_day_and_month_first_dates_are_refused(tmp_path: Path) -> None:
    path = write(tmp_path, ["13.01.2020,10,11,9,10.5,1000", "01.14.2020,10,11,9,10.5,1000"])
    with pytest.raises(DataError, match="mixes day-first and month-first"):
        load_ohlcv(path)


def test_a_tokyo_daily_file_keeps_its_dates(tmp_path: Path, aapl_head: pd.DataFrame) -> None:
    path = _rewrite_dates(aapl_head, tmp_path / "TOKYO.csv", "%Y-%m-%dT00:00:00+09:00")
    with pytest.warns(DataWarning, match="kept each bar's local wall clock"):
        bars = load_ohlcv(path)
    assert bars.index.equals(aapl_head.index)  # not moved to the previous day (UTC)


def test_intraday_offsets_keep_wall_clock_or_convert_to_a_zone(tmp_path: Path) -> None:
    stamps = pd.date_range("2021-03-12 09:00", periods=6, freq="h", tz="America/New_York")
    frame = pd.DataFrame({"Open": 1.0, "High": 1.0, "Low": 1.0, "Close": 1.0, "Volume": 1.0},
                         index=[t.isoformat() for t in stamps])
    frame.to_csv(tmp_path / "NY.csv", index_label="Date")
    with pytest.warns(DataWarning):
        local = load_ohlcv(tmp_path / "NY.csv")
        utc = load_ohlcv(tmp_path / "NY.csv", tz="UTC")
    assert local.index[0] == pd.Timestamp("2021-03-12 09:00")
    assert utc.index[0] == pd.Timestamp("2021-03-12 14:00")
    autumn = pd.date_range("2021-11-07 00:00", periods=4, freq="h", tz="America/New_York")
    frame.iloc[:4].set_axis([t.isoformat() for t in autumn]).to_csv(tmp_path / "FALL.csv",
                                                                     index_label="Date")
    with pytest.raises(DataError, match=r"clocks went back.*data\.tz"):
        load_ohlcv(tmp_path / "FALL.csv")


def test_yfinance_multi_row_header_loads(tmp_path: Path, aapl_head: pd.DataFrame) -> None:
    """The CSV today's yfinance writes: Price / Ticker / Date rows above the data."""
    lines = ["Price,Close,High,Low,Open,Volume", "Ticker,AAPL,AAPL,AAPL,AAPL,AAPL", "Date,,,,,"]
    lines += [f"{d.date()},{r.Close},{r.High},{r.Low},{r.Open},{r.Volume}"
              for d, r in aapl_head.iterrows()]
    (tmp_path / "YF.csv").write_text("\n".join(lines) + "\n")
    bars = load_ohlcv(tmp_path / "YF.csv")
    pd.testing.assert_frame_equal(bars, aapl_head, check_freq=False)
    # errors still point at the file's own lines (three header rows)
    lines[3 + 5] = lines[3 + 5].replace(f",{aapl_head.Volume.iloc[5]}", ",-1")
    (tmp_path / "YF.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match="negative value in column 'Volume' at line 9"):
        load_ohlcv(tmp_path / "YF.csv")


def test_semicolon_csv_with_decimal_commas_loads(tmp_path: Path, aapl_head: pd.DataFrame
                                                 ) -> None:
    lines = ["Date;Open;High;Low;Close;Volume"]
    for d, r in aapl_head.iterrows():
        cells = [repr(float(v)).replace(".", ",") for v in (r.Open, r.High, r.Low, r.Close)]
        lines.append(";".join([str(d.date()), *cells, str(int(r.Volume))]))
    (tmp_path / "SEMI.csv").write_text("\n".join(lines) + "\n")
    bars = load_ohlcv(tmp_path / "SEMI.csv")
    np.testing.assert_allclose(bars.to_numpy(), aapl_head.to_numpy(), rtol=1e-12)
    (tmp_path / "NODATE.csv").write_text("When;Open;High;Low;Close;Volume\nx;1;1;1;1;1\n")
    with pytest.raises(DataError, match=r"no date column \(read as semicolon-separated\)"):
        load_ohlcv(tmp_path / "NODATE.csv")
