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
spacing after their stamp. Timestamps are wall-clock times in the bars' own convention.
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


def load_sentiment(source: str | Path | pd.DataFrame) -> pd.DataFrame:
    """Headlines or scores as a frame (timestamp, ticker, score), validated and sorted.

    A file whose first line starts with "# illustrative" is marked so (attrs
    ["illustrative"]): every result that uses it says so.
    """
    illustrative = False
    if isinstance(source, pd.DataFrame):
        frame, label = source.copy(), "sentiment frame"
    else:
        path = Path(source)
        if not path.is_file():
            raise DataError(f"{path}: no such sentiment file.")
        label = str(path)
        with path.open(encoding="utf-8") as handle:
            illustrative = handle.readline().lower().startswith(ILLUSTRATIVE_MARK)
        frame = pd.read_csv(path, comment="#")
    columns = {c.lower(): c for c in frame.columns}
    missing = [c for c in ("timestamp", "ticker") if c not in columns]
    if missing or not ({"text", "score"} & set(columns)):
        raise DataError(f"{label}: needs columns timestamp, ticker (or * for market-wide) and "
                        f"text or score; found {list(frame.columns)}.")
    stamps = pd.to_datetime(frame[columns["timestamp"]], errors="coerce", format="ISO8601")
    bad = np.flatnonzero(stamps.isna().to_numpy())
    if len(bad):
        raise DataError(f"{label}: unparsable timestamp {frame.iloc[bad[0]][columns['timestamp']]!r}"
                        f" on line {bad[0] + 2 + illustrative}; use ISO times such as "
                        f"2010-04-20 16:35.")
    if "score" in columns:
        score = pd.to_numeric(frame[columns["score"]], errors="coerce")
        if score.isna().any() or not score.between(-1, 1).all():
            row = int(np.flatnonzero((score.isna() | ~score.between(-1, 1)).to_numpy())[0])
            raise DataError(f"{label}: score on line {row + 2 + illustrative} must be a number "
                            f"in [-1, 1].")
    else:
        score = pd.Series(score_texts(frame[columns["text"]].fillna("")), index=frame.index)
    out = pd.DataFrame({"timestamp": stamps.dt.tz_localize(None) if stamps.dt.tz else stamps,
                        "ticker": frame[columns["ticker"]].astype(str).str.upper(),
                        "score": score.astype(float)})
    out = out.sort_values("timestamp", kind="stable").reset_index(drop=True)
    out.attrs["illustrative"] = illustrative
    out.attrs["source"] = label
    return out


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
