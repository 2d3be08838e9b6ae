"""News sentiment as a per-bar feature: text -> score -> decayed per-bar mean, as-of in time.

Input is a CSV of (timestamp, ticker, text) or pre-scored (timestamp, ticker, score);
ticker `*` is market-wide and counts for every ticker. Text is scored offline by VADER
(`vaderSentiment`) with the two finance lexicons of the `finvader` package merged in
(SentiBignomics scaled by 0.1, as finvader itself does, and Henry's word list): plain
VADER reads "Shares plunge after profit warning" as +0.40, the merged lexicon as -0.05.
finvader's own entry point downloads an NLTK lexicon at import, so its two lexicon files
are read directly and nothing is fetched.

Timing: a headline stamped at time s counts for the first bar whose close is at or after
s (a headline after a bar's close moves the next bar, never this one). Daily bars
(stamped at midnight) close at `close_time` on their date; intraday bars close one bar
spacing after their stamp. A timestamp with a UTC offset (2010-03-10 14:30-08:00, or
Z) is an instant: it is converted to the bars' clock (`clock_tz`: data.tz, else
data.exchange_tz, America/New_York by default), so offsets that change with daylight
saving within one file are right on both sides of the change. A timestamp without an
offset is taken as a wall-clock time on the bars' clock already.
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import DataError

ILLUSTRATIVE_MARK = "# illustrative"


@functools.cache
def _analyzer() -> object:
    try:
        import vaderSentiment.vaderSentiment as vader
    except ImportError as exc:
        raise DataError("scoring sentiment text needs vaderSentiment and finvader: pip "
                        "install 'lstm-strategy[sentiment]' (or give pre-scored rows with a "
                        "'score' column).") from exc
    analyzer = vader.SentimentIntensityAnalyzer()
    spec = importlib.util.find_spec("finvader")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("scoring sentiment text needs the finvader package (its finance "
                        "lexicons): pip install 'lstm-strategy[sentiment]'.")
    folder = Path(next(iter(spec.submodule_search_locations)))

    def lexicon(module: str, function: str) -> dict:
        loader = importlib.util.spec_from_file_location(f"_finvader_{module}",
                                                        folder / f"{module}.py")
        found = importlib.util.module_from_spec(loader)
        loader.loader.exec_module(found)  # the lexicon file only: no NLTK download
        return getattr(found, function)()

    analyzer.lexicon.update({k: v * 0.1 for k, v in lexicon("SentiBignomics", "lexicon1").items()})
    analyzer.lexicon.update(lexicon("Henry", "lexicon2"))
    return analyzer


def score_texts(texts: list[str] | pd.Series) -> np.ndarray:
    """VADER compound scores in [-1, 1] with the finance lexicons merged in."""
    analyzer = _analyzer()
    return np.array([analyzer.polarity_scores(str(text))["compound"] for text in texts])


_OFFSET = r"(?:Z|[+-]\d{2}:?\d{2})$"


def _stamps(raw: pd.Series, clock_tz: str, label: str, first_line: int) -> pd.Series:
    """Headline times on the bars' clock: offsets honoured (converted to `clock_tz`), naive
    stamps taken as they are; one file may mix offsets (daylight saving) and naive stamps."""
    text = raw.astype(str).str.strip()
    offset = text.str.contains(_OFFSET, regex=True) & text.str.contains(r"\d[T ]\d", regex=True)
    out = pd.Series(pd.NaT, index=raw.index, dtype="datetime64[ns]")
    if offset.any():
        instants = pd.to_datetime(text[offset], errors="coerce", format="ISO8601", utc=True)
        out[offset] = instants.dt.tz_convert(clock_tz).dt.tz_localize(None).astype(
            "datetime64[ns]")
    if (~offset).any():
        out[~offset] = pd.to_datetime(text[~offset], errors="coerce", format="ISO8601"
                                      ).astype("datetime64[ns]")
    bad = np.flatnonzero(out.isna().to_numpy())
    if len(bad):
        raise DataError(f"{label}: unparsable timestamp {raw.iloc[bad[0]]!r} on line "
                        f"{bad[0] + first_line}; use ISO times such as 2010-04-20 16:35 "
                        f"(on the bars' clock) or 2010-04-20 16:35-04:00 (with its offset).")
    return out


def _read_news(path: Path) -> tuple[pd.DataFrame, int]:
    """The headline table and the file line of its first row; full-line '#' comments
    are skipped, a '#' inside a headline is text."""
    with path.open(encoding="utf-8-sig") as handle:
        lines = handle.read().splitlines()
    skip = 0
    while skip < len(lines) and lines[skip].lstrip().startswith("#"):
        skip += 1
    try:
        frame = pd.read_csv(path, skiprows=skip, encoding="utf-8-sig", dtype=str,
                            keep_default_na=False, na_values=[""])
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"{path}: cannot be read as a CSV of headlines ({first}). Quote "
                        f"headlines that hold commas or quotes (\"...\"), one per line.") from exc
    return frame, skip + 2


def load_sentiment(source: str | Path | pd.DataFrame, *, clock_tz: str = "America/New_York"
                   ) -> pd.DataFrame:
    """Headlines or scores as a frame (timestamp, ticker, score), validated and sorted.

    Timestamps with an offset are converted to the bars' clock `clock_tz`; naive ones
    are on it already (see the module docstring). A file whose first line starts with
    "# illustrative" is marked so (attrs["illustrative"]): every result that uses it
    says so.
    """
    illustrative = False
    first_line = 2
    if isinstance(source, pd.DataFrame):
        frame, label = source.copy(), "sentiment frame"
    else:
        path = Path(source)
        if not path.is_file():
            raise DataError(f"{path}: no such sentiment file.")
        label = str(path)
        with path.open(encoding="utf-8-sig") as handle:
            illustrative = handle.readline().lower().startswith(ILLUSTRATIVE_MARK)
        frame, first_line = _read_news(path)
    columns = {str(c).lower().strip(): c for c in frame.columns}
    missing = [c for c in ("timestamp", "ticker") if c not in columns]
    if missing or not ({"text", "score"} & set(columns)):
        raise DataError(f"{label}: needs columns timestamp, ticker (or * for market-wide) and "
                        f"text or score; found {list(frame.columns)}.")
    raw = frame[columns["timestamp"]]
    stamps = (_stamps(raw, clock_tz, label, first_line)
              if not pd.api.types.is_datetime64_any_dtype(raw) else
              (raw.dt.tz_convert(clock_tz).dt.tz_localize(None) if raw.dt.tz else raw))
    if "score" in columns:
        score = pd.to_numeric(frame[columns["score"]], errors="coerce")
        if score.isna().any() or not score.between(-1, 1).all():
            row = int(np.flatnonzero((score.isna() | ~score.between(-1, 1)).to_numpy())[0])
            raise DataError(f"{label}: score on line {row + first_line} must be a number "
                            f"in [-1, 1].")
    else:
        score = pd.Series(score_texts(frame[columns["text"]].fillna("")), index=frame.index)
    out = pd.DataFrame({"timestamp": stamps,
                        "ticker": frame[columns["ticker"]].astype(str).str.upper(),
                        "score": score.astype(float)})
    out = out.sort_values("timestamp", kind="stable").reset_index(drop=True)
    out.attrs["illustrative"] = illustrative
    out.attrs["source"] = label
    return out


def sentiment_usage(events: pd.DataFrame, tickers: list[str]) -> str:
    """How many headlines each ticker gets (its own and market-wide '*'), and which
    headline tickers match no data name (they are not used)."""
    counts = events["ticker"].value_counts()
    market = int(counts.get("*", 0))
    used = ", ".join(f"{t} {int(counts.get(t.upper(), 0)) + market}" for t in tickers)
    unknown = sorted(set(counts.index) - {t.upper() for t in tickers} - {"*"})
    line = f"sentiment headlines per ticker (own + {market} market-wide): {used}"
    if unknown:
        dropped = int(counts[unknown].sum())
        line += (f"; {dropped} headline(s) for {unknown} match no data ticker and are not "
                 f"used (a ticker is its file name, e.g. nvda-1999.csv is NVDA-1999; name "
                 f"it with NAME=path in data.paths or --data)")
    return line + "."


def bar_closes(index: pd.DatetimeIndex, close_time: str = "16:00") -> pd.DatetimeIndex:
    """When each bar closes: daily bars at `close_time` on their date, intraday bars one
    spacing after their stamp."""
    if len(index) and bool((index == index.normalize()).all()):
        return index + pd.Timedelta(close_time + ":00" if close_time.count(":") == 1
                                    else close_time)
    step = pd.Series(index).diff().median() if len(index) > 1 else pd.Timedelta(hours=1)
    return index + step


def sentiment_feature(index: pd.DatetimeIndex, events: pd.DataFrame, ticker: str, *,
                      half_life: str | pd.Timedelta = "3D", close_time: str = "16:00"
                      ) -> pd.Series:
    """The news sentiment known at each bar's close, decayed with a half-life.

    Each headline for `ticker` or `*` stamped at s <= the bar's close c weighs
    w = 0.5 ** ((c - s) / half_life); the feature is sum(w * score) / max(1, sum(w)):
    the mean score of fresh news, fading towards 0 (neutral) as the news ages.
    """
    mine = events[events["ticker"].isin([ticker.upper(), "*"])]
    closes = bar_closes(index, close_time).as_unit("ns").asi8
    stamps = mine["timestamp"].to_numpy("datetime64[ns]").astype("int64")
    scores = mine["score"].to_numpy(float)
    scale = float(pd.Timedelta(half_life).value)
    if not scale > 0:
        raise DataError(f"sentiment half-life {half_life!r} must be a positive duration.")
    out = np.zeros(len(index))
    weighted = weight = 0.0  # decayed sums as of the previous close
    taken, previous = 0, None
    for row, close in enumerate(closes):
        if previous is not None:
            fade = 0.5 ** ((close - previous) / scale)
            weighted, weight = weighted * fade, weight * fade
        arrived = np.searchsorted(stamps, close, side="right")
        if arrived > taken:  # headlines in (previous close, this close]
            fresh = 0.5 ** ((close - stamps[taken:arrived]) / scale)
            weighted += float(fresh @ scores[taken:arrived])
            weight += float(fresh.sum())
            taken = arrived
        out[row] = weighted / max(1.0, weight)
        previous = close
    return pd.Series(out, index=index, name="sentiment")
