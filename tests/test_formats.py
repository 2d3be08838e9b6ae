"""The files users bring: a corpus made from the shipped data, each read to the same bars
or refused with a line that names the fix; none misread."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lstm_strategy import DataError, load_config, load_ohlcv
from lstm_strategy.cli import main
from lstm_strategy.errors import DataWarning
from lstm_strategy.experiment import load_experiment_data

from .conftest import DATA, tiny_overrides

COLUMNS = ["Open", "High", "Low", "Close", "Volume"]


@pytest.fixture(scope="module")
def daily() -> pd.DataFrame:
    """200 real AAPL daily bars: the source every daily file is made from."""
    return load_ohlcv(DATA / "AAPL.csv").iloc[:200].copy()


@pytest.fixture(scope="module")
def hourly(daily: pd.DataFrame) -> pd.DataFrame:
    """The same real prices on an hourly clock (7 bars a day, 09:00..15:00)."""
    days = pd.bdate_range("2021-03-01", periods=40)
    index = pd.DatetimeIndex([d + pd.Timedelta(hours=9 + h) for d in days for h in range(7)])
    frame = pd.concat([daily, daily]).iloc[:len(index)].copy()
    frame.index = index
    frame.index.name = "Date"
    return frame


@pytest.fixture(scope="module")
def monthly(daily: pd.DataFrame) -> pd.DataFrame:
    """Real prices on month starts (a monthly file), 60 bars."""
    frame = daily.iloc[:60].copy()
    frame.index = pd.date_range("2005-01-01", periods=60, freq="MS", name="Date")
    return frame


def _rows(frame: pd.DataFrame, stamp: Callable[[pd.Timestamp], list[str]], sep: str = ",",
          price: Callable[[float], str] = repr, volume: Callable[[float], str] | None = None
          ) -> list[str]:
    volume = volume or (lambda v: str(int(v)))
    return [sep.join([*stamp(t), *(price(float(r[c])) for c in COLUMNS[:4]),
                      volume(float(r["Volume"]))]) for t, r in frame.iterrows()]


def _write(path: Path, header: str | None, rows: list[str], newline: str = "\n",
           bom: bool = False) -> Path:
    text = newline.join(([header] if header is not None else []) + rows) + newline
    path.write_bytes(("\ufeff" if bom else "").encode() + text.encode())
    return path


def _epoch(unit: str) -> Callable[[pd.Timestamp], list[str]]:
    scale = {"s": 10**9, "ms": 10**6, "us": 10**3, "ns": 1}[unit]
    return lambda t: [str(t.value // scale)]


def _iso(t: pd.Timestamp) -> list[str]:
    return [t.isoformat(sep=" ") if t != t.normalize() else str(t.date())]


def _corpus(tmp: Path, daily: pd.DataFrame, hourly: pd.DataFrame, monthly: pd.DataFrame
            ) -> dict[str, tuple]:
    """name -> (path, load kwargs, the bars it must read to)."""
    files: dict[str, tuple] = {}

    def add(name: str, expected: pd.DataFrame, header: str | None, rows: list[str],
            kwargs: dict | None = None, **options: object) -> None:
        files[name] = (_write(tmp / f"{name}.csv", header, rows, **options), kwargs or {},
                       expected)

    add("iso", daily, "Date,Open,High,Low,Close,Volume", _rows(daily, _iso))
    for unit in ("s", "ms", "us", "ns"):
        add(f"epoch_{unit}", daily, "timestamp,open,high,low,close,volume",
            _rows(daily, _epoch(unit)))
        add(f"epoch_{unit}_hourly", hourly, "timestamp,open,high,low,close,volume",
            _rows(hourly, _epoch(unit)))
    add("epoch_ms_monthly", monthly, "timestamp,open,high,low,close,volume",
        _rows(monthly, _epoch("ms")))
    add("mt5_monthly", monthly, "<DATE>\t<TIME>\t<OPEN>\t<HIGH>\t<LOW>\t<CLOSE>\t<TICKVOL>\t<VOL>",
        ["\t".join([t.strftime("%Y.%m.%d"), "00:00", *(repr(float(r[c])) for c in COLUMNS[:4]),
                    "1", str(int(r["Volume"]))]) for t, r in monthly.iterrows()])
    add("tradingview", hourly, "time,open,high,low,close,Volume", _rows(hourly, _epoch("s")))
    add("date_time_columns", hourly, "Date,Time,Open,High,Low,Close,Volume",
        _rows(hourly, lambda t: [str(t.date()), t.strftime("%H:%M")]))
    add("mt4_headerless", hourly, None,
        _rows(hourly, lambda t: [t.strftime("%Y.%m.%d"), t.strftime("%H:%M")]))
    ticks = hourly.copy()
    add("mt5_tab_zero_vol", ticks, "<DATE>\t<TIME>\t<OPEN>\t<HIGH>\t<LOW>\t<CLOSE>\t<TICKVOL>"
        "\t<VOL>\t<SPREAD>",
        ["\t".join([t.strftime("%Y.%m.%d"), t.strftime("%H:%M:%S"),
                    *(repr(float(r[c])) for c in COLUMNS[:4]), str(int(r["Volume"])), "0",
                    "12"]) for t, r in ticks.iterrows()])
    add("mt5_daily", daily, "<DATE>\t<OPEN>\t<HIGH>\t<LOW>\t<CLOSE>\t<TICKVOL>\t<VOL>\t<SPREAD>",
        ["\t".join([t.strftime("%Y.%m.%d"), *(repr(float(r[c])) for c in COLUMNS[:4]), "7",
                    str(int(r["Volume"])), "0"]) for t, r in daily.iterrows()])
    add("stooq_intraday", hourly,
        "<TICKER>,<PER>,<DATE>,<TIME>,<OPEN>,<HIGH>,<LOW>,<CLOSE>,<VOL>,<OPENINT>",
        [",".join(["AAPL.US", "60", t.strftime("%Y%m%d"), t.strftime("%H%M%S"),
                   *(repr(float(r[c])) for c in COLUMNS[:4]), str(int(r["Volume"])), "0"])
         for t, r in hourly.iterrows()])
    add("yyyymmdd", daily, "Date,Open,High,Low,Close,Volume",
        _rows(daily, lambda t: [t.strftime("%Y%m%d")]))
    rounded = daily.copy()
    rounded["Volume"] = [round(v / 1e6, 2) * 1e6 for v in daily["Volume"]]
    investing = [",".join([f'"{t.strftime("%b %d, %Y")}"',
                           *(f'"{float(r[c]):,.2f}"' for c in ("Close", "Open", "High", "Low")),
                           f'"{r["Volume"] / 1e6:.2f}M"', '"0.12%"'])
                 for t, r in rounded.iloc[::-1].iterrows()]
    inv_expected = rounded.copy()
    for c in COLUMNS[:4]:
        inv_expected[c] = [round(v, 2) for v in daily[c]]
    add("investing", inv_expected, '"Date","Price","Open","High","Low","Vol.","Change %"',
        investing)
    add("yfinance", daily, "Price,Close,High,Low,Open,Volume",
        ["Ticker,AAPL,AAPL,AAPL,AAPL,AAPL", "Date,,,,,"] + [
            ",".join([str(t.date()), *(repr(float(r[c])) for c in ("Close", "High", "Low",
                                                                    "Open")),
                      str(int(r["Volume"]))]) for t, r in daily.iterrows()])
    add("semicolon_decimal_comma_en", daily, "Date;Open;High;Low;Close;Volume",
        _rows(daily, lambda t: [t.strftime("%d.%m.%Y")], sep=";",
              price=lambda v: repr(v).replace(".", ",")))
    add("lowercase", daily, "date,open,high,low,close,volume", _rows(daily, _iso))
    add("bom_crlf", daily, "Date,Open,High,Low,Close,Volume", _rows(daily, _iso),
        newline="\r\n", bom=True)
    add("pipe", daily, "Date|Open|High|Low|Close|Volume", _rows(daily, _iso, sep="|"))
    add("no_volume_refused", None, "Date,Open,High,Low,Close",
        [",".join([str(t.date()), *(repr(float(r[c])) for c in COLUMNS[:4])])
         for t, r in daily.iterrows()])
    flat = daily.copy()
    flat["Volume"] = 0.0
    add("no_volume_allowed", flat, "Date,Open,High,Low,Close",
        [",".join([str(t.date()), *(repr(float(r[c])) for c in COLUMNS[:4])])
         for t, r in daily.iterrows()], {"volume": False})
    utc = hourly.copy()
    add("offsets_across_dst", utc, "Datetime,Open,High,Low,Close,Volume",
        _rows(hourly, lambda t: [t.tz_localize("America/New_York").tz_convert("UTC").isoformat()]),
        {"tz": "America/New_York"})
    add("daily_offsets", daily, "Date,Open,High,Low,Close,Volume",
        _rows(daily, lambda t: [t.isoformat() + "-05:00"]))
    add("excel_serials_refused", None, "Date,Open,High,Low,Close,Volume",
        _rows(daily, lambda t: [str((t - pd.Timestamp("1899-12-30")).days)]))
    add("ambiguous_day_month_refused", None, "Date,Open,High,Low,Close,Volume",
        _rows(daily.iloc[:8], lambda t: [t.strftime("%m/%d/%Y")]))
    add("duplicate_hours_refused", None, "Date,Open,High,Low,Close,Volume",
        _rows(hourly, lambda t: [str(t.date())]))
    parquet = tmp / "parquet.parquet"
    daily.to_parquet(parquet)
    files["parquet"] = (parquet, {}, daily)
    return files


REFUSALS = {
    "no_volume_refused": ("missing column(s) ['Volume']", "data.volume: none"),
    "excel_serials_refused": ("neither dates written YYYYMMDD nor Unix epoch", "ISO text"),
    "ambiguous_day_month_refused": ("read both day-first and month-first", "data.date_format"),
    "duplicate_hours_refused": ("duplicate timestamp", "full timestamp"),
}


def test_corpus_every_file_reads_to_its_bars_or_is_refused_with_the_fix(
        tmp_path: Path, daily: pd.DataFrame, hourly: pd.DataFrame,
        monthly: pd.DataFrame) -> None:
    files = _corpus(tmp_path, daily, hourly, monthly)
    assert len(files) >= 20
    for name, (path, kwargs, expected) in files.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DataWarning)
            if expected is None:
                with pytest.raises(DataError) as info:
                    load_ohlcv(path, **kwargs)
                message = str(info.value)
                assert str(path) in message, name
                for fragment in REFUSALS[name]:
                    assert fragment in message, f"{name}: {fragment!r} not in {message!r}"
                assert "duplicated(keep" not in message  # never a fix that drops bars
                continue
            bars = load_ohlcv(path, **kwargs)
        assert list(bars.columns) == COLUMNS, name
        assert bars.index.equals(expected.index), (
            f"{name}: {bars.index[:2].tolist()} != {expected.index[:2].tolist()}")
        np.testing.assert_allclose(bars.to_numpy(), expected[COLUMNS].to_numpy(),
                                   rtol=1e-12, atol=0, err_msg=name)


@pytest.mark.parametrize("unit", ["s", "ms", "us", "ns"])
def test_epoch_times_are_read_by_magnitude_as_utc_and_said(
        tmp_path: Path, hourly: pd.DataFrame, unit: str) -> None:
    path = _write(tmp_path / "e.csv", "timestamp,open,high,low,close,volume",
                  _rows(hourly, _epoch(unit)))
    with pytest.warns(DataWarning, match=f"Unix epoch times in {unit} .* read as UTC"):
        bars = load_ohlcv(path)
    assert bars.index[0] == hourly.index[0]  # not 1970-01-01 00:00:00.95
    with pytest.warns(DataWarning, match="converted to Asia/Tokyo"):
        tokyo = load_ohlcv(path, tz="Asia/Tokyo")
    assert tokyo.index[0] == hourly.index[0] + pd.Timedelta(hours=9)


def test_mt5_zero_volume_uses_tick_volume_and_says_so(tmp_path: Path,
                                                       hourly: pd.DataFrame) -> None:
    rows = ["\t".join([t.strftime("%Y.%m.%d"), t.strftime("%H:%M"),
                       *(repr(float(r[c])) for c in COLUMNS[:4]), "55", "0", "3"])
            for t, r in hourly.iloc[:30].iterrows()]
    path = _write(tmp_path / "EURUSD.csv",
                  "<DATE>\t<TIME>\t<OPEN>\t<HIGH>\t<LOW>\t<CLOSE>\t<TICKVOL>\t<VOL>\t<SPREAD>",
                  rows)
    with pytest.warns(DataWarning, match="zero on every bar .* tick volume '<TICKVOL>'"):
        bars = load_ohlcv(path)
    assert (bars["Volume"] == 55).all()
    assert bars.index[1] - bars.index[0] == pd.Timedelta(hours=1)  # the time is kept


def test_volume_suffixes_and_adjustment_are_said(tmp_path: Path, daily: pd.DataFrame) -> None:
    rows = [f"{t.date()},{float(r.Open)!r},{float(r.High)!r},{float(r.Low)!r},"
            f"{float(r.Close)!r},{float(r.Close) / 2!r},{r.Volume / 1e3:.1f}K"
            for t, r in daily.iloc[:20].iterrows()]
    path = _write(tmp_path / "ORCL.csv", "Date,Open,High,Low,Close,Adj Close,Volume", rows)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        bars = load_ohlcv(path)
    said = " ".join(str(w.message) for w in caught)
    assert "K/M/B suffixes" in said
    assert "adjusted by 'Adj Close' / 'Close'" in said and "factor 0.5..0.5" in said
    assert "data.adjust: false" in said
    np.testing.assert_allclose(bars["Close"], daily["Close"].iloc[:20] / 2, rtol=1e-12)
    raw = load_ohlcv(path, adjust=False)
    np.testing.assert_allclose(raw["Close"], daily["Close"].iloc[:20], rtol=1e-12)


def test_check_names_repairs_and_runs_without_volume(tmp_path: Path, daily: pd.DataFrame,
                                                     capsys: pytest.CaptureFixture) -> None:
    aapl = load_ohlcv(DATA / "AAPL.csv").loc["2008-01-01":"2011-12-31"]
    path = tmp_path / "fx.csv"
    _write(path, "timestamp,open,high,low,close",
           [",".join([str(t.value // 10**9), *(repr(float(r[c])) for c in COLUMNS[:4])])
            for t, r in aapl.iterrows()])
    overrides = tiny_overrides(**{"data.macro": "null"})
    args = ["check", "--data", str(path), *(part for o in overrides for part in ("--set", o))]
    assert main(args) == 2
    assert "data.volume: none" in capsys.readouterr().err
    assert main([*args, "--set", "data.volume=none"]) == 0
    out = capsys.readouterr()
    assert "Unix epoch times in s" in out.out + out.err
    assert "volume features ['obv_slope', 'volume_z'] left out" in out.out
    config = load_config(None, [*tiny_overrides(**{"data.macro": "null"}), "data.volume=none"],
                         **{"data.paths": [str(path)]})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        bars, features, _notes = load_experiment_data(config)
    assert "volume_z" not in features["FX"] and "obv_slope" not in features["FX"]
    assert (bars["FX"]["Volume"] == 0).all()


def test_named_tickers_and_a_sample_file_used_in_place_of_a_missing_one(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = tmp_path / "nvda-1999-2014.csv"
    source.write_bytes((DATA / "MSFT.csv").read_bytes())
    config = load_config(None, [*tiny_overrides()], **{"data.paths": [f"NVDA={source}"]})
    assert config.data.sources() == {"NVDA": str(source)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        bars, _, _ = load_experiment_data(config)
    assert list(bars) == ["NVDA"]
    monkeypatch.chdir(tmp_path)  # data/AAPL.csv is not here: the package's sample is used
    config = load_config(None, tiny_overrides())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _, _, notes = load_experiment_data(config)
    assert any("data/AAPL.csv is not in the current directory" in n and "sample file" in n
               for n in notes)
    assert any("data/AAPL.csv is not in the current directory" in str(w.message)
               for w in caught)


def test_costs_far_above_the_bar_range_are_said(hourly: pd.DataFrame, tmp_path: Path) -> None:
    aapl = load_ohlcv(DATA / "AAPL.csv").loc["2008-01-01":"2011-12-31"]
    calm = aapl.copy()  # an FX-like market: bars a few bps wide
    mid = calm["Close"]
    calm["High"], calm["Low"] = mid * 1.0005, mid * 0.9995
    calm["Open"] = mid
    path = tmp_path / "EURUSD.csv"
    calm.to_csv(path)
    config = load_config(None, tiny_overrides(**{"data.macro": "null"}),
                         **{"data.paths": [str(path)]})
    with pytest.warns(DataWarning, match="round trip costs 14 bps"):
        _, _, notes = load_experiment_data(config)
    assert any("costs, not forecasts, decide the result" in n for n in notes)
    cheap = load_config(None, [*tiny_overrides(**{"data.macro": "null"}),
                               "broker.commission_bps=0.5", "broker.slippage_bps=0.2"],
                        **{"data.paths": [str(path)]})
    _, _, notes = load_experiment_data(cheap)
    assert not any("round trip" in n for n in notes)
    _, _, notes = load_experiment_data(load_config(None, tiny_overrides()))
    assert not any("round trip" in n for n in notes)  # daily equities at the defaults


def test_check_says_when_an_expanding_window_costs_a_multiple_of_a_rolling_one(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """A long hourly file retrained often: `check` names the cost and what a rolling
    window changes; the shipped daily default says nothing of the kind."""
    from .conftest import hourly_bars

    bars = hourly_bars(pd.date_range("2021-01-04", periods=250, freq="D"))  # 6,000 bars
    path = tmp_path / "EURUSD.csv"
    bars.rename_axis("Date").to_csv(path)
    overrides = tiny_overrides(**{"data.macro": "null", "data.start": "null",
                                  "data.end": "null"})  # retrain every 100 bars from 300
    args = ["check", "--data", str(path), *(part for o in overrides for part in ("--set", o))]
    assert main(args) == 0
    out = capsys.readouterr().out
    note = next(line for line in out.splitlines() if "train.train_window: null" in line)
    assert "--set train.train_window=600" in note and "x what" in note
    ratio = float(note.split("bars in all, ")[1].split("x what")[0])
    assert ratio > 3
    assert main([*args, "--set", "train.train_window=600"]) == 0
    assert "train.train_window: null" not in capsys.readouterr().out
    assert main(["check"]) == 0
    assert "train.train_window: null" not in capsys.readouterr().out
