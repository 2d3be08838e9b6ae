"""Loading and validating OHLCV bars and exogenous series.

Every check names the file, the row (as a line number of the file, header = line 1) or
column, and what to do. Repairs (sorting, dropping non-common days) are announced with a
warning, never done silently.
"""

from __future__ import annotations

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
_DATE_NAMES = ("date", "datetime", "timestamp", "time", "dt", "day")
# Relative slack for High/Low checks: adjusted prices are rounded to a few decimals.
_PRICE_TOL = 1e-6


def _norm(name: str) -> str:
    return "".join(ch for ch in str(name).lower() if ch.isalnum())


def _line(position: int) -> int:
    """File line of a data row (header is line 1)."""
    return int(position) + 2


def _rows_text(positions: Sequence[int], limit: int = 5) -> str:
    lines = ", ".join(str(_line(p)) for p in positions[:limit])
    more = f" and {len(positions) - limit} more" if len(positions) > limit else ""
    return f"line {lines}{more}" if len(positions) == 1 else f"lines {lines}{more}"


def _read_table(path: Path) -> pd.DataFrame:
    if not path.exists():
        raise DataError(f"{path}: no such file. Check the path (it is read relative to "
                        f"the current directory, {Path.cwd()}).")
    if path.is_dir():
        raise DataError(f"{path}: is a folder, not a CSV or parquet file.")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: the file is empty. Expected a header such as "
                        f"'Date,Open,High,Low,Close,Volume' and one row per bar.")
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(path)
        return pd.read_csv(path)
    except pd.errors.EmptyDataError as exc:
        raise DataError(f"{path}: the file has no columns. Expected a header such as "
                        f"'Date,Open,High,Low,Close,Volume'.") from exc
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        kind = "parquet" if suffix in (".parquet", ".pq") else "CSV"
        raise DataError(f"{path}: cannot be parsed as {kind} "
                        f"({first}). Check that it is a comma-separated text file with one "
                        f"header line.") from exc


def _date_column(frame: pd.DataFrame) -> str | None:
    for col in frame.columns:
        if _norm(col) in _DATE_NAMES:
            return col
    return None


def _parse_dates(values: pd.Series | pd.Index, source: str, column: str) -> pd.DatetimeIndex:
    raw = pd.Series(values)
    parsed = pd.to_datetime(raw, errors="coerce", format="mixed")
    bad = np.flatnonzero(parsed.isna().to_numpy())
    if len(bad):
        sample = raw.iloc[bad[0]]
        raise DataError(f"{source}: column '{column}' has {len(bad)} unparsable date(s) at "
                        f"{_rows_text(bad)} (first: {sample!r}). Use ISO dates such as "
                        f"2013-03-01 or 2013-03-01 15:30:00, or remove those rows.")
    index = pd.DatetimeIndex(parsed)
    if index.tz is not None:
        index = index.tz_convert("UTC").tz_localize(None)
    return index


def load_ohlcv(
    source: str | Path | pd.DataFrame,
    *,
    name: str | None = None,
    min_rows: int = 1,
    adjust: bool = True,
    sort: bool = True,
) -> pd.DataFrame:
    """Read and validate one ticker's bars; returns Open/High/Low/Close/Volume on a DatetimeIndex.

    `source` is a CSV/parquet path or a frame (dates in a column or the index). Common
    column spellings are accepted; with an `Adj Close` column and `adjust=True`, Open,
    High and Low are scaled by Adj Close / Close, Close becomes Adj Close and Volume is
    scaled by the inverse (split/dividend adjustment). `min_rows` is the fewest bars the
    caller can use (lookback + training window). Unsorted dates are sorted with a warning
    (or rejected with `sort=False`); every other problem raises `DataError`.
    """
    if isinstance(source, pd.DataFrame):
        label = name or "input frame"
        frame = source.copy()
        if _date_column(frame) is None:
            if not isinstance(frame.index, pd.DatetimeIndex) and frame.index.name is None:
                frame.index.name = "Date"
            frame = frame.reset_index()
    else:
        path = Path(source)
        label = str(path)
        frame = _read_table(path)
        if _date_column(frame) is None and isinstance(frame.index, pd.DatetimeIndex):
            frame = frame.reset_index()  # parquet written with the dates as index
    if frame.empty:
        raise DataError(f"{label}: no data rows. Expected one row per bar under the header.")

    date_col = _date_column(frame)
    if date_col is None:
        raise DataError(f"{label}: no date column. Name one of the columns 'Date' (or "
                        f"Datetime/Timestamp), or pass a frame with a DatetimeIndex. "
                        f"Columns found: {list(frame.columns)}.")
    found = [str(c) for c in frame.columns if c != date_col]
    rename: dict[str, str] = {}
    for col in frame.columns:
        key = _norm(col)
        if key in _ALIASES and _ALIASES[key] not in rename.values():
            rename[col] = _ALIASES[key]
    frame = frame.rename(columns=rename)
    missing = [c for c in OHLCV if c not in frame.columns]
    if missing:
        raise DataError(f"{label}: missing column(s) {missing}. Expected Date, Open, High, "
                        f"Low, Close, Volume (any case; 'Adj Close' optional). Columns found: "
                        f"{found}.")

    index = _parse_dates(frame[date_col], label, str(date_col))
    keep = [*OHLCV, "Adj Close"] if "Adj Close" in frame.columns else OHLCV
    values = frame[keep].reset_index(drop=True)
    for col in keep:
        values[col] = _numeric(values[col], label, "Fix or remove those rows.")
    values = values.astype("float64")
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
        values = values.drop(columns="Adj Close")

    if len(values) < min_rows:
        raise DataError(f"{label}: {len(values)} rows, but at least {min_rows} are needed "
                        f"(feature warm-up + lookback + first training window). Supply "
                        f"more history or shrink train.min_train_bars / model.window.")
    values.attrs["source"] = label
    return values


def _numeric(column: pd.Series, label: str, fix: str) -> pd.Series:
    """The column as numbers; a value that is not one (empty cells aside) is an error."""
    if pd.api.types.is_numeric_dtype(column):
        return column
    converted = pd.to_numeric(column, errors="coerce")
    bad = np.flatnonzero(converted.isna().to_numpy() & column.notna().to_numpy())
    if len(bad):
        raise DataError(f"{label}: column '{column.name}' has non-numeric value "
                        f"{column.iloc[bad[0]]!r} at {_rows_text(bad)}. {fix}")
    return converted


def _check_finite(values: pd.DataFrame, label: str) -> None:
    arr = values.to_numpy()
    bad = ~np.isfinite(arr)
    if bad.any():
        rows, cols = np.nonzero(bad)
        col = values.columns[cols[0]]
        kind = "NaN (empty)" if np.isnan(arr[rows[0], cols[0]]) else "infinite"
        raise DataError(f"{label}: {bad.sum()} missing or infinite value(s); first is "
                        f"{kind} in column '{col}' at {_rows_text(rows[:1])}. Fill them "
                        f"(e.g. forward-fill from the previous bar) or remove those rows.")


def _check_dates(index: pd.DatetimeIndex, label: str, sort: bool) -> None:
    dup = index.duplicated(keep=False)
    if dup.any():
        positions = np.flatnonzero(dup)
        raise DataError(f"{label}: duplicate date {index[positions[0]]} at "
                        f"{_rows_text(positions)}. Keep one row per bar (e.g. "
                        f"df[~df.index.duplicated(keep='last')]).")
    if not sort and not index.is_monotonic_increasing:
        back = int(np.flatnonzero(np.diff(index.asi8) < 0)[0]) + 1
        raise DataError(f"{label}: dates are not in ascending order ({index[back]} at "
                        f"{_rows_text([back])} comes after {index[back - 1]}). Sort the "
                        f"file by date, or load with sort=True.")


def _check_prices(values: pd.DataFrame, label: str, positions: np.ndarray) -> None:
    def fail(mask: np.ndarray, what: str, fix: str) -> None:
        rows = np.sort(positions[np.flatnonzero(mask)])
        raise DataError(f"{label}: {what} at {_rows_text(rows)}. {fix}")

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


def load_many(
    sources: Mapping[str, str | Path | pd.DataFrame] | Sequence[str | Path],
    *,
    align: str = "inner",
    min_rows: int = 1,
    adjust: bool = True,
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
                            adjust=adjust) for t, s in sources.items()}
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
        if len(frame) < min_rows:
            raise DataError(f"{frame.attrs['source']}: {len(frame)} rows on the common "
                            f"calendar, at least {min_rows} needed.")
    return spans


def load_exogenous(source: str | Path | pd.DataFrame, *, name: str | None = None) -> pd.DataFrame:
    """Read a table of numeric series by date (e.g. macro data); empty cells stay NaN.

    Dates must parse, be unique and ascending (sorted with a warning); every other column
    must be numeric. Gaps are expected (holidays differ between markets) and are filled
    only forward, at join time.
    """
    if isinstance(source, pd.DataFrame):
        label = name or "exogenous frame"
        frame = source.copy()
        if _date_column(frame) is None:
            frame.index.name = frame.index.name or "Date"
            frame = frame.reset_index()
    else:
        label = str(source)
        frame = _read_table(Path(source))
    if frame.empty:
        raise DataError(f"{label}: no data rows.")
    date_col = _date_column(frame)
    if date_col is None:
        raise DataError(f"{label}: no date column. Name the first column 'Date'.")
    index = _parse_dates(frame[date_col], label, str(date_col))
    _check_dates(index, label, sort=True)
    values = frame.drop(columns=[date_col])
    if values.shape[1] == 0:
        raise DataError(f"{label}: no value columns besides '{date_col}'.")
    for col in values.columns:
        converted = _numeric(values[col], label, "Leave missing values empty.")
        inf = np.flatnonzero(np.isinf(converted.to_numpy(dtype=float)))
        if len(inf):
            raise DataError(f"{label}: column '{col}' is infinite at {_rows_text(inf)}.")
        values[col] = converted.astype("float64")
    values.index = index
    values.index.name = "Date"
    if not index.is_monotonic_increasing:
        warnings.warn(f"{label}: dates were not in ascending order; sorted them.",
                      DataWarning, stacklevel=2)
        values = values.sort_index(kind="stable")
    values.attrs["source"] = label
    return values
