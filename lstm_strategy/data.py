"""Loading and validating OHLCV bars and exogenous series.

Every check names the file, the row (as a line number of the file, header = line 1) or
column, and what to do. Repairs (sorting, dropping non-common days) are announced with a
warning, never done silently.
"""

from __future__ import annotations

import csv
import re
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import DataError, DataWarning

OHLCV = ["Open", "High", "Low", "Close", "Volume"]

_ALIASES = {
    "open": "Open", "o": "Open",
    "high": "High", "h": "High",
    "low": "Low", "l": "Low",
    "close": "Close", "c": "Close", "last": "Close", "price": "Close",
    "volume": "Volume", "vol": "Volume", "v": "Volume",
    "adjclose": "Adj Close", "adjustedclose": "Adj Close",
}
_TICK_VOLUME = ("tickvol", "tickvolume", "ticks")
_DATE_NAMES = ("date", "datetime", "timestamp", "time", "dt", "day")
_DAY_NAMES = ("date", "day")  # with a separate time column these hold the day only
_TIME_NAMES = ("time",)
_VOLUME_SUFFIX = {"K": 1e3, "M": 1e6, "B": 1e9, "T": 1e12}
# Relative slack for High/Low checks: adjusted prices are rounded to a few decimals.
_PRICE_TOL = 1e-6


def _norm(name: str) -> str:
    return "".join(ch for ch in str(name).lower() if ch.isalnum())


class _Label(str):
    """A source's name in messages, and the file line of its first data row."""

    first_line: int = 2

    def __new__(cls, text: str, first_line: int = 2) -> _Label:
        label = super().__new__(cls, text)
        label.first_line = first_line
        return label


def _rows_text(positions: Sequence[int], label: str = "", limit: int = 5) -> str:
    """"line 7" or "lines 7, 9 and 3 more": file lines of data rows (header lines counted)."""
    first = getattr(label, "first_line", 2)
    lines = ", ".join(str(int(p) + first) for p in positions[:limit])
    more = f" and {len(positions) - limit} more" if len(positions) > limit else ""
    return f"line {lines}{more}" if len(positions) == 1 else f"lines {lines}{more}"


_DELIMITERS = ",;\t|"


def _sniff_csv(path: Path) -> tuple[str, str, int, str]:
    """(delimiter, decimal mark, header rows to skip after the first, what the file looks like).

    Recognises semicolon, tab and pipe delimited files (with a decimal comma when
    semicolons separate the fields) and the multi-row header that yfinance writes
    (Price / Ticker / Date rows above the data).
    """
    with path.open(newline="", encoding="utf-8-sig", errors="replace") as handle:
        sample = handle.read(64 * 1024)
    lines = sample.splitlines()
    try:
        delimiter = csv.Sniffer().sniff("\n".join(lines[:20]), delimiters=_DELIMITERS).delimiter
    except csv.Error:
        delimiter = ","
    decimal = "."
    described = {",": "comma-separated", ";": "semicolon-separated", "\t": "tab-separated",
                 "|": "pipe-separated"}[delimiter]
    if delimiter == ";" and re.search(r";-?\d+,\d+", sample):
        decimal = ","
        described += " with decimal commas"
    cells = [line.split(delimiter) for line in lines[:3]]
    skip = 0
    if (len(cells) >= 2 and _norm(cells[0][0]) == "price" and _norm(cells[1][0]) == "ticker"):
        skip = 1
        described += ", yfinance multi-row header (Price / Ticker rows)"
        if len(cells) >= 3 and _norm(cells[2][0]) in _DATE_NAMES and not any(
                c.strip() for c in cells[2][1:]):
            skip = 2
    return delimiter, decimal, skip, described


_DAY_CELL = re.compile(r"^\d{4}[.\-/]\d{1,2}[.\-/]\d{1,2}$|^\d{8}$")
_TIME_CELL = re.compile(r"^\d{1,2}:\d{2}(:\d{2})?$")
_NUMBER_CELL = re.compile(r"^-?\d+([.,]\d+)?$")


def _headerless_names(path: Path, delimiter: str) -> list[str] | None:
    """Column names for a file whose first line is already a bar (MT4's history CSV:
    date, time, open, high, low, close, volume), or None when the file has a header."""
    with path.open(newline="", encoding="utf-8-sig", errors="replace") as handle:
        first = handle.readline().strip()
    cells = [c.strip().strip('"') for c in first.split(delimiter)]
    if len(cells) < 6 or not _DAY_CELL.match(cells[0]):
        return None
    timed = bool(_TIME_CELL.match(cells[1]))
    values = cells[2:] if timed else cells[1:]
    if not all(_NUMBER_CELL.match(v) for v in values):
        return None
    names = ["Date", *(["Time"] if timed else []), "Open", "High", "Low", "Close", "Volume"]
    if len(cells) != len(names):
        return None
    return names


def _read_table(path: Path) -> tuple[pd.DataFrame, _Label]:
    if not path.exists():
        raise DataError(f"{path}: no such file. Check the path (it is read relative to "
                        f"the current directory, {Path.cwd()}).")
    if path.is_dir():
        raise DataError(f"{path}: is a folder, not a CSV or parquet file.")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: the file is empty. Expected a header such as "
                        f"'Date,Open,High,Low,Close,Volume' and one row per bar.")
    suffix = path.suffix.lower()
    described = "parquet"
    try:
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(path), _Label(str(path))
        delimiter, decimal, skip, described = _sniff_csv(path)
        names = _headerless_names(path, delimiter)
        if names is not None:
            frame = pd.read_csv(path, sep=delimiter, decimal=decimal, header=None,
                                names=names, encoding="utf-8-sig")
            described += f", no header line (read as MT4-style columns {', '.join(names)})"
            warnings.warn(f"{path}: no header line; read the columns as {', '.join(names)} "
                          f"(the MetaTrader 4 history layout). Add a header line if they "
                          f"are in another order.", DataWarning, stacklevel=3)
            label = _Label(str(path), first_line=1)
        else:
            frame = pd.read_csv(path, sep=delimiter, decimal=decimal, encoding="utf-8-sig",
                                skiprows=range(1, 1 + skip) if skip else None)
            if skip:  # yfinance: the first header cell says "Price"; the first column: dates
                frame = frame.rename(columns={frame.columns[0]: "Date"})
            label = _Label(str(path), first_line=2 + skip)
        frame.attrs["format"] = described
        return frame, label
    except pd.errors.EmptyDataError as exc:
        raise DataError(f"{path}: the file has no columns. Expected a header such as "
                        f"'Date,Open,High,Low,Close,Volume'.") from exc
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"{path}: cannot be parsed as {described} "
                        f"({first}). Check that it is a text table with one header line "
                        f"(comma, semicolon or tab separated) or a parquet file.") from exc


def _date_column(frame: pd.DataFrame) -> str | None:
    for col in frame.columns:
        if _norm(col) in _DATE_NAMES:
            return col
    return None


def _time_column(frame: pd.DataFrame, date_col: object) -> object | None:
    """A separate time-of-day column beside a date column (MetaTrader, broker exports)."""
    if _norm(date_col) not in _DAY_NAMES:
        return None
    return next((c for c in frame.columns if c != date_col and _norm(c) in _TIME_NAMES), None)


def _clock_text(values: pd.Series, label: str, column: str) -> pd.Series:
    """Times of day as HH:MM:SS text; integers are HHMMSS (Stooq) or HHMM when none > 2359."""
    if pd.api.types.is_numeric_dtype(values):
        if values.isna().any() or (values % 1 != 0).any():
            bad = int(np.flatnonzero((values.isna() | (values % 1 != 0)).to_numpy())[0])
            raise DataError(f"{label}: column '{column}' has time {values.iloc[bad]!r} at "
                            f"{_rows_text([bad], label)}; write times as HH:MM or HH:MM:SS.")
        digits = values.astype("int64")
        width = 6 if (digits > 2359).any() else 4
        text = digits.astype(str).str.zfill(width)
        return (text.str[:2] + ":" + text.str[2:4] + ":" + (text.str[4:6] if width == 6
                                                              else "00"))
    return values.astype(str).str.strip()


def _day_text(values: pd.Series) -> pd.Series:
    """Dates as text, YYYYMMDD integers and YYYY.MM.DD (MetaTrader) written as ISO dates."""
    text = values.astype(str).str.strip()
    if pd.api.types.is_numeric_dtype(values):
        text = values.astype("Int64").astype(str)
    return text.str.replace(r"^(\d{4})(\d{2})(\d{2})$", r"\1-\2-\3", regex=True
                            ).str.replace(r"^(\d{4})\.(\d{1,2})\.(\d{1,2})", r"\1-\2-\3",
                                          regex=True)


def _combine_date_time(frame: pd.DataFrame, date_col: object, time_col: object,
                       label: str) -> pd.Series:
    """One timestamp text per row from a date column and a time-of-day column."""
    days = _day_text(frame[date_col])
    times = _clock_text(frame[time_col], label, str(time_col))
    warnings.warn(f"{label}: combined column '{date_col}' (day) and '{time_col}' (time of "
                  f"day) into each bar's timestamp.", DataWarning, stacklevel=4)
    return days + " " + times


_EPOCH_UNITS = (("s", 1e8, 1e11), ("ms", 1e11, 1e14), ("us", 1e14, 1e17), ("ns", 1e17, 1e20))


def _numeric_dates(raw: pd.Series, source: str, column: str, tz: str | None
                   ) -> pd.DatetimeIndex | None:
    """Dates written as numbers: YYYYMMDD, or Unix epoch times in s, ms, us or ns (by
    magnitude, read as UTC). None when the column is not numbers; numbers that are
    neither are refused rather than read as nanoseconds since 1970."""
    if pd.api.types.is_bool_dtype(raw):
        return None
    if pd.api.types.is_numeric_dtype(raw):
        numbers = raw.astype("float64")
    else:
        text = raw.astype(str).str.strip()
        if not text.str.fullmatch(r"-?\d+(\.\d+)?").all():
            return None
        numbers = text.astype("float64")
    if numbers.isna().any():
        bad = np.flatnonzero(numbers.isna().to_numpy())
        raise DataError(f"{source}: column '{column}' is empty at {_rows_text(bad, source)}. "
                        f"Fill in those dates or remove the rows.")
    size = numbers.abs()
    if ((numbers % 1 == 0) & (size >= 1e7) & (size < 1e8)).all():
        parsed = pd.to_datetime(numbers.astype("int64").astype(str), format="%Y%m%d",
                                errors="coerce")
        if parsed.notna().all():
            return pd.DatetimeIndex(parsed)
    for unit, low, high in _EPOCH_UNITS:
        if ((size >= low) & (size < high)).all():
            exact = raw if pd.api.types.is_integer_dtype(raw) else (
                raw.astype(str).str.strip().astype("int64")
                if not pd.api.types.is_numeric_dtype(raw) and (numbers % 1 == 0).all()
                else numbers)  # integers stay integers: ns times exceed float64's 2**53
            instants = pd.to_datetime(exact, unit=unit, utc=True)
            zone = tz or "UTC"
            warnings.warn(f"{source}: column '{column}' holds Unix epoch times in {unit} "
                          f"({numbers.iloc[0]:.0f} = {instants.iloc[0]}); read as UTC"
                          + (f" and converted to {tz} (data.tz)" if tz else
                             "; set data.tz to put the bars on an exchange's clock")
                          + ".", DataWarning, stacklevel=4)
            return pd.DatetimeIndex(instants.dt.tz_convert(zone).dt.tz_localize(None))
    raise DataError(f"{source}: column '{column}' holds numbers such as {numbers.iloc[0]:g} "
                    f"(from {numbers.min():g} to {numbers.max():g}) that are neither dates "
                    f"written YYYYMMDD nor Unix epoch times of one unit (seconds ~1e9, "
                    f"milliseconds ~1e12, microseconds ~1e15, nanoseconds ~1e18). Write the "
                    f"dates as ISO text (2013-03-01 or 2013-03-01 15:30:00).")


_NUMERIC_DATE = re.compile(r"^\s*(\d{1,2})[./-](\d{1,2})[./-](\d{2,4})\b")


def _day_month_order(raw: pd.Series, label: str, column: str) -> bool | None:
    """For dates written d/m/y or m/d/y: True if day first, False if month first, None if not such dates.

    A field above 12 settles the order; when no row settles it the dates read both ways
    and the file is refused rather than guessed (pandas would guess row by row).
    """
    text = raw.astype(str)
    fields = text.str.extract(_NUMERIC_DATE)
    matched = fields[0].notna()
    if not matched.any():
        return None
    first = fields.loc[matched, 0].astype(int)
    second = fields.loc[matched, 1].astype(int)
    day_first = bool((first > 12).any())
    month_first = bool((second > 12).any())
    if day_first and month_first:
        row = int(np.flatnonzero(matched.to_numpy())[0])
        raise DataError(f"{label}: column '{column}' mixes day-first and month-first dates "
                        f"(e.g. {text.iloc[row]!r} at {_rows_text([row], label)}). Write one "
                        f"order throughout, or ISO dates (2013-03-01).")
    if day_first or month_first:
        return day_first
    sample = text[matched].iloc[0]
    raise DataError(f"{label}: column '{column}' has dates such as {sample!r} that read both "
                    f"day-first and month-first, and no row tells which. Say which: "
                    f"data.date_format: '%d.%m.%Y' (or data.dayfirst: true / false; "
                    f"load_ohlcv(..., date_format=..., dayfirst=...)), or write ISO dates.")


def _parse_dates(values: pd.Series | pd.Index, source: str, column: str, *,
                 date_format: str | None = None, dayfirst: bool | None = None,
                 tz: str | None = None) -> pd.DatetimeIndex:
    """Parse a date column strictly: one format for the whole column, never a per-row guess.

    ISO dates parse as they are. Numeric day/month dates need an order: given
    (`date_format` or `dayfirst`) or settled by a field above 12 (said in a warning).
    Timestamps with a UTC offset keep their local wall clock (an exchange's daily bar
    stays on its date) unless `tz` names the zone to convert them to.
    """
    raw = pd.Series(values).reset_index(drop=True)
    if not date_format and not pd.api.types.is_datetime64_any_dtype(raw):
        numeric = _numeric_dates(raw, source, column, tz)
        if numeric is not None:
            return numeric
        raw = _day_text(raw) if raw.astype(str).str.match(r"^\s*\d{4}\.\d{1,2}\.\d{1,2}"
                                                          ).all() else raw
    how = {"format": date_format} if date_format else None
    if how is None and not pd.api.types.is_datetime64_any_dtype(raw):
        if pd.to_datetime(raw, errors="coerce", format="ISO8601", utc=True).notna().all():
            how = {"format": "ISO8601"}
        else:
            order = dayfirst
            if order is None:
                order = _day_month_order(raw, source, column)
                if order is not None:
                    warnings.warn(f"{source}: column '{column}' read as "
                                  f"{'day' if order else 'month'}-first dates (a field above "
                                  f"12 settles it); set data.dayfirst to make it explicit.",
                                  DataWarning, stacklevel=3)
            how = {"format": "mixed", "dayfirst": bool(order)}
    how = how or {}
    try:
        parsed = pd.to_datetime(raw, errors="coerce", **how)
    except ValueError as exc:
        if "timezone" not in str(exc).lower() and "offset" not in str(exc).lower():
            raise DataError(f"{source}: data.date_format={date_format!r} cannot parse column "
                            f"'{column}' ({exc}).") from exc
        parsed = None  # UTC offsets that differ by row (daylight saving)
    offsets = parsed is None or parsed.dtype == object or getattr(parsed.dt, "tz", None)
    if offsets:
        instants = pd.to_datetime(raw, errors="coerce", utc=True, **how)
        wall = pd.Series([pd.Timestamp(v).tz_localize(None) if isinstance(v, str) else
                          (v.tz_localize(None) if isinstance(v, pd.Timestamp) and v.tz
                           else v) for v in raw], dtype="datetime64[ns]") \
            if parsed is None or parsed.dtype == object else parsed.dt.tz_localize(None)
        wall = wall.astype(f"datetime64[{instants.dt.unit}]")
        daily = bool((wall.dropna() == wall.dropna().dt.normalize()).all())
        if not tz and wall.duplicated().any() and not instants.duplicated().any():
            row = int(np.flatnonzero(wall.duplicated().to_numpy())[0])
            raise DataError(f"{source}: column '{column}' repeats the local time "
                            f"{raw.iloc[row]!r} at {_rows_text([row], source)} (clocks went "
                            f"back for daylight saving). Set data.tz (e.g. UTC or "
                            f"America/New_York) to put the bars on one clock.")
        if tz and not daily:
            parsed = instants.dt.tz_convert(tz).dt.tz_localize(None)
            note = f"converted to {tz} (data.tz)"
        else:
            parsed = wall
            note = ("kept each bar's local wall clock, so a daily bar stays on its exchange "
                    "date" + ("; data.tz applies to intraday bars only" if tz else
                              "; set data.tz to convert intraday bars to one zone"))
        warnings.warn(f"{source}: column '{column}' has UTC offsets: {note}.", DataWarning,
                      stacklevel=3)
    bad = np.flatnonzero(parsed.isna().to_numpy())
    if len(bad):
        sample = raw.iloc[bad[0]]
        raise DataError(f"{source}: column '{column}' has {len(bad)} unparsable date(s) at "
                        f"{_rows_text(bad, source)} (first: {sample!r}). Use ISO dates such "
                        f"as 2013-03-01 or 2013-03-01 15:30:00, give data.date_format, or "
                        f"remove those rows.")
    return pd.DatetimeIndex(parsed)


def load_ohlcv(
    source: str | Path | pd.DataFrame,
    *,
    name: str | None = None,
    min_rows: int = 1,
    adjust: bool = True,
    sort: bool = True,
    date_format: str | None = None,
    dayfirst: bool | None = None,
    tz: str | None = None,
    volume: bool = True,
) -> pd.DataFrame:
    """Read and validate one ticker's bars; returns Open/High/Low/Close/Volume on a DatetimeIndex.

    `source` is a CSV/parquet path or a frame (dates in a column or the index). Common
    column spellings are accepted; with an `Adj Close` column and `adjust=True`, Open,
    High and Low are scaled by Adj Close / Close, Close becomes Adj Close and Volume is
    scaled by the inverse (split/dividend adjustment). `min_rows` is the fewest bars the
    caller can use (lookback + training window). Unsorted dates are sorted with a warning
    (or rejected with `sort=False`); every other problem raises `DataError`.

    CSV files may be comma, semicolon (decimal comma too), tab or pipe separated, or
    carry yfinance's multi-row header. Dates are never guessed row by row: d/m/y vs m/d/y
    needs `date_format` or `dayfirst` unless a field above 12 settles it. Timestamps with
    UTC offsets keep their local wall clock; `tz` converts intraday ones to a zone.
    Numeric dates are YYYYMMDD or Unix epoch times (unit from the magnitude, read as UTC);
    a separate time-of-day column (MetaTrader, broker exports) is joined to the date;
    MetaTrader's headerless history CSV and its <DATE>/<TICKVOL>/<VOL> exports read as
    they are. `volume=False` reads files without volume (FX, indices): Volume is 0 and
    `attrs["volume"]` is False, so volume features are left out. Volumes like 3.83M read
    with their K/M/B suffix. Every such reading is said in a DataWarning.
    """
    if isinstance(source, pd.DataFrame):
        label = _Label(name or "input frame")
        frame = source.copy()
        if _date_column(frame) is None:
            if not isinstance(frame.index, pd.DatetimeIndex) and frame.index.name is None:
                frame.index.name = "Date"
            frame = frame.reset_index()
    else:
        path = Path(source)
        frame, label = _read_table(path)
        if _date_column(frame) is None and isinstance(frame.index, pd.DatetimeIndex):
            frame = frame.reset_index()  # parquet written with the dates as index
    if frame.empty:
        raise DataError(f"{label}: no data rows. Expected one row per bar under the header.")

    date_col = _date_column(frame)
    if date_col is None:
        seen = frame.attrs.get("format")
        raise DataError(f"{label}: no date column{f' (read as {seen})' if seen else ''}. "
                        f"Name one of the columns 'Date' (or Datetime/Timestamp), or pass a "
                        f"frame with a DatetimeIndex. Columns found: {list(frame.columns)}.")
    time_col = _time_column(frame, date_col)
    found = [str(c) for c in frame.columns if c != date_col]
    rename: dict[str, str] = {}
    tick_col = None
    for col in frame.columns:
        key = _norm(col)
        if key in _ALIASES and _ALIASES[key] not in rename.values():
            rename[col] = _ALIASES[key]
        elif key in _TICK_VOLUME and tick_col is None:
            tick_col = col
    frame = frame.rename(columns=rename)
    if volume:
        _volume_from_ticks(frame, tick_col, label)
    elif "Volume" in frame.columns or tick_col is not None:
        warnings.warn(f"{label}: volume left out (data.volume: none); the file's volume "
                      f"column is not read.", DataWarning, stacklevel=2)
    needed = OHLCV if volume else OHLCV[:4]
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        fix = (" Files without volume (FX, indices): set data.volume: none "
               "(load_ohlcv(..., volume=False)); volume features are then left out."
               if missing == ["Volume"] else "")
        raise DataError(f"{label}: missing column(s) {missing}. Expected Date, Open, High, "
                        f"Low, Close, Volume (any case; 'Adj Close' optional). Columns found: "
                        f"{found}.{fix}")

    dates = (frame[date_col] if time_col is None
             else _combine_date_time(frame, date_col, time_col, label))
    shown = str(date_col) if time_col is None else f"{date_col}' + '{time_col}"
    index = _parse_dates(dates, label, shown, date_format=date_format,
                         dayfirst=dayfirst, tz=tz)
    keep = [*needed, "Adj Close"] if "Adj Close" in frame.columns else list(needed)
    values = frame[keep].reset_index(drop=True)
    for col in keep:
        values[col] = (_volume_numbers(values[col], label) if col == "Volume" else
                       _numeric(values[col], label, "Fix or remove those rows."))
    values = values.astype("float64")
    if not volume:
        values["Volume"] = 0.0
    _check_finite(values, label)
    _check_dates(index, label, sort)

    values.index = index
    values.index.name = "Date"
    if not index.is_monotonic_increasing:
        order = np.argsort(index.to_numpy(), kind="stable")
        warnings.warn(f"{label}: dates were not in ascending order; sorted them "
                      f"({int((np.diff(index.asi8) < 0).sum())} step(s) backwards).",
                      DataWarning, stacklevel=2)
        values = values.iloc[order]
        # keep the original file positions so later errors still point at the right line
        positions = order
    else:
        positions = np.arange(len(values))
    _check_prices(values, label, positions)

    if "Adj Close" in values.columns:
        if adjust:
            factor = values["Adj Close"] / values["Close"]
            for col in ("Open", "High", "Low"):
                values[col] = values[col] * factor
            values["Close"] = values["Adj Close"]
            values["Volume"] = values["Volume"] / factor
            changed = int((factor != 1.0).sum())
            if changed:
                warnings.warn(f"{label}: prices adjusted by 'Adj Close' / 'Close' (splits and "
                              f"dividends) on {changed} of {len(values)} bars, factor "
                              f"{factor.min():.4g}..{factor.max():.4g}; Volume divided by "
                              f"the same factor. Set data.adjust: false (load_ohlcv(..., "
                              f"adjust=False)) to trade the raw prices.", DataWarning,
                              stacklevel=2)
        values = values.drop(columns="Adj Close")

    if len(values) < min_rows:
        raise DataError(f"{label}: {len(values)} rows, but at least {min_rows} are needed "
                        f"(feature warm-up + lookback + first training window). Supply "
                        f"more history or shrink train.min_train_bars / model.window.")
    values.attrs["source"] = label
    values.attrs["volume"] = volume
    return values


def _volume_from_ticks(frame: pd.DataFrame, tick_col: object, label: str) -> None:
    """MetaTrader's <VOL> is all zero for FX: trade on <TICKVOL> then, and say so."""
    if tick_col is None:
        return
    if "Volume" not in frame.columns:
        frame["Volume"] = frame[tick_col]
        warnings.warn(f"{label}: no volume column; using tick volume '{tick_col}' as Volume.",
                      DataWarning, stacklevel=3)
    elif (pd.to_numeric(frame["Volume"], errors="coerce").fillna(0) == 0).all():
        frame["Volume"] = frame[tick_col]
        warnings.warn(f"{label}: the volume column is zero on every bar (FX in MetaTrader); "
                      f"using tick volume '{tick_col}' as Volume.", DataWarning, stacklevel=3)


def _volume_numbers(column: pd.Series, label: str) -> pd.Series:
    """Volumes as numbers: plain, or with thousands separators or K/M/B suffixes
    (Investing.com's '3.83M'); said in a warning when suffixes were read."""
    if pd.api.types.is_numeric_dtype(column):
        return column
    text = column.astype(str).str.strip().str.replace(",", "", regex=False)
    parts = text.str.extract(r"^(-?\d+(?:\.\d+)?)\s*([KMBTkmbt]?)$")
    readable = parts[0].notna() & column.notna()
    if readable.sum() == column.notna().sum() and (parts[1] != "").any():
        scale = parts[1].str.upper().map(lambda unit: _VOLUME_SUFFIX.get(unit, 1.0))
        warnings.warn(f"{label}: column 'Volume' read with K/M/B suffixes (e.g. "
                      f"{column.dropna().iloc[0]!r} = {float(parts[0].iloc[0]) * scale.iloc[0]:g}"
                      f").", DataWarning, stacklevel=3)
        return (parts[0].astype(float) * scale).where(column.notna())
    if readable.sum() == column.notna().sum():
        return parts[0].astype(float).where(column.notna())
    return _numeric(column, label, "Fix or remove those rows.")


def _numeric(column: pd.Series, label: str, fix: str) -> pd.Series:
    """The column as numbers; a value that is not one (empty cells aside) is an error."""
    if pd.api.types.is_numeric_dtype(column):
        return column
    converted = pd.to_numeric(column, errors="coerce")
    text = column.astype(str).str.strip()
    grouped = text.str.fullmatch(r"-?\d{1,3}(,\d{3})+(\.\d+)?")
    if grouped.any():  # thousands separators in a comma-decimal-point file: "1,234.50"
        converted = converted.where(~grouped, pd.to_numeric(
            text.where(grouped).str.replace(",", "", regex=False), errors="coerce"))
    bad = np.flatnonzero(converted.isna().to_numpy() & column.notna().to_numpy())
    if len(bad):
        raise DataError(f"{label}: column '{column.name}' has non-numeric value "
                        f"{column.iloc[bad[0]]!r} at {_rows_text(bad, label)}. {fix}")
    return converted


def _check_finite(values: pd.DataFrame, label: str) -> None:
    arr = values.to_numpy()
    bad = ~np.isfinite(arr)
    if bad.any():
        rows, cols = np.nonzero(bad)
        col = values.columns[cols[0]]
        kind = "NaN (empty)" if np.isnan(arr[rows[0], cols[0]]) else "infinite"
        raise DataError(f"{label}: {bad.sum()} missing or infinite value(s); first is "
                        f"{kind} in column '{col}' at {_rows_text(rows[:1], label)}. Fill them "
                        f"(e.g. forward-fill from the previous bar) or remove those rows.")


def _check_dates(index: pd.DatetimeIndex, label: str, sort: bool) -> None:
    dup = index.duplicated(keep=False)
    if dup.any():
        positions = np.flatnonzero(dup)
        raise DataError(f"{label}: duplicate timestamp {index[positions[0]]} at "
                        f"{_rows_text(positions, label)}: two rows for one bar. If they are "
                        f"different bars (intraday bars whose time of day is missing or in a "
                        f"column not named Time), write each bar's full timestamp "
                        f"(2020-01-02 09:30) in the date column; if one is a repeat, delete "
                        f"it after checking which row is right.")
    if not sort and not index.is_monotonic_increasing:
        back = int(np.flatnonzero(np.diff(index.asi8) < 0)[0]) + 1
        raise DataError(f"{label}: dates are not in ascending order ({index[back]} at "
                        f"{_rows_text([back], label)} comes after {index[back - 1]}). Sort the "
                        f"file by date, or load with sort=True.")


def _check_prices(values: pd.DataFrame, label: str, positions: np.ndarray) -> None:
    def fail(mask: np.ndarray, what: str, fix: str) -> None:
        rows = np.sort(positions[np.flatnonzero(mask)])
        raise DataError(f"{label}: {what} at {_rows_text(rows, label)}. {fix}")

    prices = values[["Open", "High", "Low", "Close"]]
    nonpos = (prices <= 0).any(axis=1).to_numpy()
    if nonpos.any():
        col = prices.columns[(prices.to_numpy() <= 0)[np.flatnonzero(nonpos)[0]]][0]
        fail(nonpos, f"non-positive price in column '{col}'",
             "Prices must be > 0; fix the source or remove those rows.")
    high, low = values["High"].to_numpy(), values["Low"].to_numpy()
    slack = _PRICE_TOL * high
    mask = high < low - slack
    if mask.any():
        fail(mask, "High below Low", "Check the column order (Open, High, Low, Close).")
    for col in ("Close", "Open"):
        price = values[col].to_numpy()
        mask = (price > high + slack) | (price < low - slack)
        if mask.any():
            fail(mask, f"{col} outside [Low, High]",
                 "Each bar needs Low <= Open, Close <= High; fix the source rows.")
    if "Adj Close" in values.columns and (values["Adj Close"] <= 0).any():
        fail((values["Adj Close"] <= 0).to_numpy(), "non-positive value in 'Adj Close'",
             "Adjusted closes must be > 0.")
    neg = (values["Volume"] < 0).to_numpy()
    if neg.any():
        fail(neg, "negative value in column 'Volume'", "Volume must be >= 0.")


GAP_FACTOR = 5  # a step this many times the usual bar spacing...
GAP_MIN = pd.Timedelta(days=7)  # ...and longer than a week (weekends, holidays, 9/11) is a gap


def gap_after(index: pd.DatetimeIndex) -> np.ndarray:
    """True at each bar that follows a hole in the data: a step much longer than the spacing.

    A step is a gap when it exceeds both GAP_FACTOR times the median step of the bars
    before it and GAP_MIN, so weekends, holidays, overnight breaks of intraday bars and
    the four-day closure after 2001-09-11 are not gaps, but a missing month of daily bars
    is. Only earlier bars set the threshold: the verdict on a bar never depends on later
    data (a truncation-safe rule).
    """
    out = np.zeros(len(index), dtype=bool)
    if len(index) < 3:
        return out
    steps = pd.Series(np.diff(index.as_unit("ns").asi8).astype("float64"))  # nanoseconds
    usual = steps.expanding().median().shift(1)
    limit = np.maximum(GAP_FACTOR * usual.to_numpy(), float(GAP_MIN.value))
    out[1:] = (steps.to_numpy() > limit) & usual.notna().to_numpy()
    return out


def describe_gaps(index: pd.DatetimeIndex, label: str) -> list[str]:
    """One line per gap: where it starts and ends and how long it is."""
    after = np.flatnonzero(gap_after(index))
    return [f"{label}: gap in the data from {index[i - 1]} to {index[i]} "
            f"({(index[i] - index[i - 1]).days} days without a bar)" for i in after]


def stamp(moment: pd.Timestamp) -> str:
    """A bar's time as text: the date alone for daily bars, date and time for intraday ones."""
    moment = pd.Timestamp(moment)
    return str(moment.date()) if moment == moment.normalize() else moment.isoformat(sep=" ")


def ticker_from_path(path: str | Path) -> str:
    """The ticker a file holds, from its name (data/AAPL.csv -> AAPL)."""
    return Path(path).stem.upper()


_NAMED = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._^\-]*)=(.+)$")


def split_source(entry: str | Path) -> tuple[str, str]:
    """A data entry as (ticker, path): "NVDA=data/nvda-1999-2014.csv" names the ticker;
    a plain path takes it from the file name (data/AAPL.csv -> AAPL)."""
    text = str(entry)
    match = _NAMED.match(text)
    if match and not Path(text).exists():
        return match.group(1).upper(), match.group(2)
    return ticker_from_path(text), text


def load_many(
    sources: Mapping[str, str | Path | pd.DataFrame] | Sequence[str | Path],
    *,
    align: str = "inner",
    min_rows: int = 1,
    adjust: bool = True,
    date_format: str | None = None,
    dayfirst: bool | None = None,
    tz: str | None = None,
    volume: bool = True,
) -> dict[str, pd.DataFrame]:
    """Load several tickers and put them on one calendar.

    The calendar spans the dates that all tickers cover (latest first date to earliest
    last date). Inside it, `align` decides about a day some tickers lack: "inner" keeps
    only days every ticker traded, "ffill" keeps every day and fills a missing bar with
    the previous close (O=H=L=C, volume 0), "strict" raises. Trimmed and dropped days are
    reported in a warning.
    """
    if align not in ("inner", "ffill", "strict"):
        raise DataError(f"align={align!r} is not one of 'inner', 'ffill', 'strict'.")
    if not isinstance(sources, Mapping):
        sources = {ticker_from_path(p): p for p in sources}
    if not sources:
        raise DataError("no data files given. Pass at least one CSV or parquet path.")
    frames = {t: load_ohlcv(s, name=None if not isinstance(s, pd.DataFrame) else t,
                            adjust=adjust, date_format=date_format, dayfirst=dayfirst, tz=tz,
                            volume=volume)
              for t, s in sources.items()}
    if len(frames) == 1:
        (ticker, frame), = frames.items()
        if len(frame) < min_rows:
            raise DataError(f"{frame.attrs.get('source', ticker)}: {len(frame)} rows, at "
                            f"least {min_rows} needed.")
        return frames
    start = max(f.index[0] for f in frames.values())
    end = min(f.index[-1] for f in frames.values())
    if start > end:
        raise DataError(f"the files share no dates: latest start {start.date()} is after "
                        f"the earliest end {end.date()}. Load tickers with overlapping history.")
    notes = []
    spans = {}
    for ticker, frame in frames.items():
        inside = frame.loc[start:end]
        trimmed = len(frame) - len(inside)
        if trimmed:
            notes.append(f"{ticker}: {trimmed} bar(s) outside the common span")
        spans[ticker] = inside
    union = spans[next(iter(spans))].index
    for frame in spans.values():
        union = union.union(frame.index)
    lacking = {t: union.difference(f.index) for t, f in spans.items()}
    if any(len(v) for v in lacking.values()):
        worst = max(lacking, key=lambda t: len(lacking[t]))
        desc = (f"{worst} lacks {len(lacking[worst])} day(s) the others traded "
                f"(first {lacking[worst][0].date()})")
        if align == "strict":
            raise DataError(f"{spans[worst].attrs.get('source', worst)}: {desc}. Use "
                            f"align='inner' to drop such days or 'ffill' to fill them.")
        if align == "inner":
            common = union
            for frame in spans.values():
                common = common.intersection(frame.index)
            notes.append(f"{desc}; kept the {len(common)} days all tickers traded")
            spans = {t: f.loc[common] for t, f in spans.items()}
        else:
            filled = {}
            for ticker, frame in spans.items():
                out = frame.reindex(union)
                close = out["Close"].ffill()
                gap = out["Close"].isna()
                for col in ("Open", "High", "Low", "Close"):
                    out[col] = out[col].fillna(close)
                out.loc[gap, "Volume"] = 0.0
                filled[ticker] = out
            notes.append(f"{desc}; filled missing bars with the previous close")
            spans = filled
    if notes:
        warnings.warn("aligning tickers on a common calendar " f"{start.date()}..{end.date()}: "
                      + "; ".join(notes) + ".", DataWarning, stacklevel=2)
    for ticker, frame in spans.items():
        frame.attrs["source"] = frames[ticker].attrs.get("source", ticker)
        frame.attrs["volume"] = frames[ticker].attrs.get("volume", True)
        if len(frame) < min_rows:
            raise DataError(f"{frame.attrs['source']}: {len(frame)} rows on the common "
                            f"calendar, at least {min_rows} needed.")
    return spans


def load_exogenous(source: str | Path | pd.DataFrame, *, name: str | None = None,
                   date_format: str | None = None, dayfirst: bool | None = None
                   ) -> pd.DataFrame:
    """Read a table of numeric series by date (e.g. macro data); empty cells stay NaN.

    Dates must parse, be unique and ascending (sorted with a warning); every other column
    must be numeric. Gaps are expected (holidays differ between markets) and are filled
    only forward, at join time.
    """
    if isinstance(source, pd.DataFrame):
        label = _Label(name or "exogenous frame")
        frame = source.copy()
        if _date_column(frame) is None:
            frame.index.name = frame.index.name or "Date"
            frame = frame.reset_index()
    else:
        frame, label = _read_table(Path(source))
    if frame.empty:
        raise DataError(f"{label}: no data rows.")
    date_col = _date_column(frame)
    if date_col is None:
        raise DataError(f"{label}: no date column. Name the first column 'Date'.")
    index = _parse_dates(frame[date_col], label, str(date_col), date_format=date_format,
                         dayfirst=dayfirst)
    _check_dates(index, label, sort=True)
    values = frame.drop(columns=[date_col])
    if values.shape[1] == 0:
        raise DataError(f"{label}: no value columns besides '{date_col}'.")
    for col in values.columns:
        converted = _numeric(values[col], label, "Leave missing values empty.")
        inf = np.flatnonzero(np.isinf(converted.to_numpy(dtype=float)))
        if len(inf):
            raise DataError(f"{label}: column '{col}' is infinite at {_rows_text(inf, label)}.")
        values[col] = converted.astype("float64")
    values.index = index
    values.index.name = "Date"
    if not index.is_monotonic_increasing:
        warnings.warn(f"{label}: dates were not in ascending order; sorted them.",
                      DataWarning, stacklevel=2)
        values = values.sort_index(kind="stable")
    values.attrs["source"] = label
    return values
