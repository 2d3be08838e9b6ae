"""Feature functions of your own (`features.extra`): bars in, columns out, on the bars' index.

    features:
      extra: [examples/user_features.py:gap_and_range]

A function gets the OHLCV frame; one that names `exogenous` or `news` in its signature
gets the raw exogenous table or the headlines too. Whatever it returns for bar t must be
known at t's close: `lstm-backtest audit` cuts and perturbs the data to check.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def gap_and_range(bars: pd.DataFrame) -> pd.DataFrame:
    """The overnight gap and the day's range, both relative to the previous close."""
    previous = bars["Close"].shift(1)
    return pd.DataFrame({"overnight_gap": np.log(bars["Open"] / previous),
                         "range_vs_close": (bars["High"] - bars["Low"]) / previous},
                        index=bars.index)


def trend_20(bars: pd.DataFrame) -> pd.Series:
    """The close's distance from its 20-bar mean, in 20-bar standard deviations."""
    close = bars["Close"]
    mean, std = close.rolling(20).mean(), close.rolling(20).std()
    return ((close - mean) / std).rename("trend_20")
