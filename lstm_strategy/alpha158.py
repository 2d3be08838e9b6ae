"""Qlib's Alpha158 feature family (`features.set: alpha158`), causal, from OHLCV alone.

The formulas of Qlib's `Alpha158DL` (qlib/contrib/data/loader.py): nine k-bar shapes,
the open, high and low over the close, and 29 rolling operators over 5, 10, 20, 30 and
60 bars (ROC, MA, STD, BETA, RSQR, RESI, MAX, MIN, QTLU, QTLD, RANK, RSV, IMAX, IMIN,
IMXD, CORR, CORD, CNTP, CNTN, CNTD, SUMP, SUMN, SUMD, VMA, VSTD, WVMA, VSUMP, VSUMN,
VSUMD). Written here with pandas and NumPy because Qlib's expression engine needs its
own data store. Where this differs from Qlib, on purpose:
- VWAP0 is left out: OHLCV bars carry no VWAP (157 features, not 158);
- a rolling value needs its whole window (Qlib's operators accept a partial one with
  min_periods=1), so the warm-up rows are NaN and `warmup_bars` counts them;
- RANK is pandas' average percentile rank of the last close in its window.
Without volume (`data.volume: none`) the eight volume operators are left out. Every
value at bar t reads bars <= t only (tests/test_features.py cuts and compares each).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

WINDOWS = (5, 10, 20, 30, 60)
EPS = 1e-12
VOLUME_OPERATORS = ("CORR", "CORD", "VMA", "VSTD", "WVMA", "VSUMP", "VSUMN", "VSUMD")


def _regression(values: pd.Series, window: int) -> tuple[np.ndarray, ...]:
    """Slope, R-squared and last residual of each window regressed on time (0..window-1)."""
    y = values.to_numpy(float)
    out = [np.full(len(y), np.nan) for _ in range(3)]
    if len(y) < window:
        return tuple(out)
    windows = np.lib.stride_tricks.sliding_window_view(y, window)
    t = np.arange(window, dtype=float)
    t_centred = t - t.mean()
    y_centred = windows - windows.mean(axis=1, keepdims=True)
    # row-wise sums, not a matrix product: a BLAS product rounds by how many rows it has
    slope = (y_centred * t_centred).sum(axis=1) / (t_centred * t_centred).sum()
    fitted_last = windows.mean(axis=1) + slope * t_centred[-1]
    residual = windows[:, -1] - fitted_last
    total = (y_centred ** 2).sum(axis=1)
    explained = slope ** 2 * (t_centred * t_centred).sum()
    with np.errstate(invalid="ignore", divide="ignore"):
        rsquare = np.where(total > 0, explained / total, np.nan)
    for target, values_ in zip(out, (slope, rsquare, residual), strict=True):
        target[window - 1:] = values_
    return tuple(out)


def _arg_extreme(values: pd.Series, window: int, largest: bool) -> pd.Series:
    """1-based position of the window's maximum (or minimum), 1 = the oldest bar."""
    y = values.to_numpy(float)
    out = np.full(len(y), np.nan)
    if len(y) >= window:
        windows = np.lib.stride_tricks.sliding_window_view(y, window)
        out[window - 1:] = (windows.argmax(axis=1) if largest else windows.argmin(axis=1)) + 1
    return pd.Series(out, index=values.index)


def alpha158(bars: pd.DataFrame, volume: bool = True) -> dict[str, pd.Series]:
    """The Alpha158 columns (name -> Series on the bars' index), warm-up rows NaN."""
    o, h, lo, c, v = (bars[k].astype(float) for k in ("Open", "High", "Low", "Close", "Volume"))
    span = h - lo + EPS
    top, bottom = np.maximum(o, c), np.minimum(o, c)
    out: dict[str, pd.Series] = {
        "KMID": (c - o) / o, "KLEN": (h - lo) / o, "KMID2": (c - o) / span,
        "KUP": (h - top) / o, "KUP2": (h - top) / span,
        "KLOW": (bottom - lo) / o, "KLOW2": (bottom - lo) / span,
        "KSFT": (2 * c - h - lo) / o, "KSFT2": (2 * c - h - lo) / span,
        "OPEN0": o / c, "HIGH0": h / c, "LOW0": lo / c,
    }
    change = c - c.shift(1)
    up, down = change.clip(lower=0), (-change).clip(lower=0)
    log_volume = np.log(v + 1)
    ratio = c / c.shift(1)
    volume_change = v - v.shift(1)
    weighted = (ratio - 1).abs() * v
    for d in WINDOWS:
        roll = c.rolling(d)
        slope, rsquare, residual = _regression(c, d)
        highest, lowest = h.rolling(d).max(), lo.rolling(d).min()
        imax, imin = _arg_extreme(h, d, True), _arg_extreme(lo, d, False)
        moves = change.abs().rolling(d).sum() + EPS
        rows = {
            "ROC": c.shift(d) / c, "MA": roll.mean() / c, "STD": roll.std() / c,
            "BETA": pd.Series(slope, index=c.index) / c,
            "RSQR": pd.Series(rsquare, index=c.index),
            "RESI": pd.Series(residual, index=c.index) / c,
            "MAX": highest / c, "MIN": lowest / c,
            "QTLU": roll.quantile(0.8) / c, "QTLD": roll.quantile(0.2) / c,
            "RANK": roll.rank(pct=True), "RSV": (c - lowest) / (highest - lowest + EPS),
            "IMAX": imax / d, "IMIN": imin / d, "IMXD": (imax - imin) / d,
            "CNTP": (c > c.shift(1)).astype(float).where(c.shift(1).notna()).rolling(d).mean(),
            "CNTN": (c < c.shift(1)).astype(float).where(c.shift(1).notna()).rolling(d).mean(),
            "SUMP": up.rolling(d).sum() / moves, "SUMN": down.rolling(d).sum() / moves,
            "SUMD": (up.rolling(d).sum() - down.rolling(d).sum()) / moves,
        }
        rows["CNTD"] = rows["CNTP"] - rows["CNTN"]
        if volume:
            volume_moves = volume_change.abs().rolling(d).sum() + EPS
            vup, vdown = volume_change.clip(lower=0), (-volume_change).clip(lower=0)
            rows.update({
                "CORR": c.rolling(d).corr(log_volume),
                "CORD": ratio.rolling(d).corr(np.log(v / v.shift(1) + 1)),
                "VMA": v.rolling(d).mean() / (v + EPS), "VSTD": v.rolling(d).std() / (v + EPS),
                "WVMA": weighted.rolling(d).std() / (weighted.rolling(d).mean() + EPS),
                "VSUMP": vup.rolling(d).sum() / volume_moves,
                "VSUMN": vdown.rolling(d).sum() / volume_moves,
                "VSUMD": (vup.rolling(d).sum() - vdown.rolling(d).sum()) / volume_moves,
            })
        for name, series in rows.items():
            out[f"{name}{d}"] = series
    return {k: s.replace([np.inf, -np.inf], np.nan).astype("float64") for k, s in out.items()}
