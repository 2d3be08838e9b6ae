"""backtrader data feeds that carry extra lines (features, forecasts) beside OHLCV."""

from __future__ import annotations

import keyword
from functools import cache

import backtrader as bt
import pandas as pd

from .data import DataError

_RESERVED = {"datetime", "open", "high", "low", "close", "volume", "openinterest"}


@cache
def feed_class(extra_lines: tuple[str, ...]) -> type[bt.feeds.PandasData]:
    """A PandasData subclass with one line per extra column, matched by name."""
    for line in extra_lines:
        if not line.isidentifier() or keyword.iskeyword(line) or line.lower() in _RESERVED:
            raise DataError(f"column {line!r} cannot be a backtrader line: use a Python "
                            f"identifier that is not one of {sorted(_RESERVED)}.")
    name = "PandasFeed_" + "_".join(extra_lines)[:60] if extra_lines else "PandasFeed"
    return type(name, (bt.feeds.PandasData,), {
        "lines": extra_lines,
        "params": tuple((line, -1) for line in extra_lines),
    })


def make_feed(
    ohlcv: pd.DataFrame,
    extra: pd.DataFrame | pd.Series | None = None,
    *,
    name: str | None = None,
    **params: object,
) -> bt.feeds.PandasData:
    """A backtrader feed of OHLCV plus `extra` columns as lines (NaN where a value is absent).

    `extra` is reindexed onto the bars, so a forecast series that starts later simply
    reads NaN before it starts. Pass backtrader feed params (e.g. `fromdate`) as keywords.
    """
    frame = ohlcv[["Open", "High", "Low", "Close", "Volume"]].copy()
    lines: tuple[str, ...] = ()
    if extra is not None:
        extra_frame = extra.to_frame() if isinstance(extra, pd.Series) else extra
        lines = tuple(str(c) for c in extra_frame.columns)
        frame = frame.join(extra_frame.reindex(frame.index).astype("float64"))
    return feed_class(lines)(dataname=frame, name=name, **params)
