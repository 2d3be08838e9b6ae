"""Forecast quality and strategy performance, as plain functions of series.

Forecast metrics always come with the naive forecasts beside them (zero return, last
return), so a report says whether the model beat doing nothing clever.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd

from ..data import gap_after


def _clean(value: float) -> float | None:
    """JSON-friendly float: NaN/inf become None."""
    value = float(value)
    return value if math.isfinite(value) else None


def forecast_metrics(prediction: pd.Series, target: pd.Series, *, center: float = 0.0,
                     head: str = "regression") -> dict:
    """RMSE, MAE, directional accuracy and IC (Spearman rank correlation) where both exist.

    Directional accuracy counts bars where (prediction > center) equals (target > 0). For
    a direction head (up-probabilities) RMSE and MAE are not defined and come back None.
    """
    both = pd.concat([prediction.rename("p"), target.rename("t")], axis=1).dropna()
    p, t = both["p"], both["t"]
    if len(both) == 0:
        return {"n": 0, "rmse": None, "mae": None, "directional_accuracy": None, "ic": None}
    regression = head == "regression"
    ic = p.rank().corr(t.rank()) if p.nunique() > 1 and t.nunique() > 1 else math.nan
    return {
        "n": len(both),
        "rmse": _clean(np.sqrt(((p - t) ** 2).mean())) if regression else None,
        "mae": _clean((p - t).abs().mean()) if regression else None,
        "directional_accuracy": _clean(((p > center) == (t > 0)).mean()),
        "ic": _clean(ic),
    }


def naive_forecasts(close: pd.Series, horizon: int = 1) -> dict[str, pd.Series]:
    """The honest baselines, each known at bar t's close.

    naive_zero: no change (RMSE's benchmark); naive_last: the last `horizon`-bar log
    return carried forward; naive_drift: the mean of all past `horizon`-bar log returns
    (in a rising market, "always up": the benchmark for directional accuracy).
    """
    last = np.log(close / close.shift(horizon))
    return {"naive_zero": pd.Series(0.0, index=close.index), "naive_last": last,
            "naive_drift": last.expanding(min_periods=20).mean()}


def forecast_report(prediction: pd.Series, target: pd.Series, close: pd.Series,
                    horizon: int = 1, *, center: float = 0.0, head: str = "regression") -> dict:
    """Model vs naive forecasts on the same bars (where the model made a forecast).

    `close` may span more history than `prediction`: the naive forecasts use all of it.
    """
    scored = prediction.notna() & target.notna()
    report = {"model": forecast_metrics(prediction[scored], target[scored], center=center,
                                        head=head)}
    for name, naive in naive_forecasts(close, horizon).items():
        naive = naive.reindex(prediction.index)  # from the whole history, scored on the same bars
        report[name] = forecast_metrics(naive[scored], target[scored])
    best_naive = max(report[k]["directional_accuracy"] or 0 for k in ("naive_last", "naive_drift"))
    report["beats_naive_directional"] = bool(
        (report["model"]["directional_accuracy"] or 0) > best_naive)
    model = report["model"]
    if head == "regression" and model["rmse"] is not None:
        report["beats_naive_zero_rmse"] = bool(model["rmse"] < report["naive_zero"]["rmse"])
    return report


CONVENTIONAL_PERIODS = {12: 0.05, 52: 0.05, 252: 0.03, 365: 0.03}  # per year, tolerance
YEAR = pd.Timedelta(days=365.25)


def infer_periods_per_year(index: pd.DatetimeIndex) -> float:
    """Bars per year, measured from the bars themselves: steps per year of time they cover.

    Holes in the data (`data.gap_after`) count neither as steps nor as time. A measured
    figure close to a convention (12 monthly, 52 weekly, 252 exchange days, 365 calendar
    days) is reported as that convention; anything else, hourly FX or crypto bars say,
    as measured (FX hours: about 6,200 a year, not 252 x 24).
    """
    if len(index) < 3:
        return 252.0
    steps = np.diff(pd.DatetimeIndex(index).as_unit("ns").asi8)
    kept = ~gap_after(pd.DatetimeIndex(index))[1:]
    covered = pd.Timedelta(int(steps[kept].sum()), unit="ns")
    if covered <= pd.Timedelta(0):
        return 252.0
    measured = kept.sum() / (covered / YEAR)
    for conventional, tolerance in CONVENTIONAL_PERIODS.items():
        if abs(measured / conventional - 1) <= tolerance:
            return float(conventional)
    return float(measured)


def rolling_window(periods_per_year: float, n_bars: int | None = None) -> int:
    """Bars in about six months (at least 6), or a quarter of a shorter run's bars."""
    window = max(6, round(periods_per_year / 2))
    if n_bars is not None:
        window = min(window, max(6, n_bars // 4))
    return window


def describe_span(bars: int, periods_per_year: float) -> str:
    """About how much time `bars` bars cover, in words ("~6 months", "~3 days")."""
    days = bars / periods_per_year * 365.25
    if days >= 60:
        return f"~{days / 30.44:.0f} months"
    if days >= 2:
        return f"~{days:.0f} days"
    return f"~{days * 24:.0f} hours"


def max_drawdown(equity: pd.Series) -> float:
    """Largest peak-to-trough fall as a positive fraction of the peak."""
    peak = equity.cummax()
    return float((1.0 - equity / peak).max()) if len(equity) else 0.0


def drawdown_series(equity: pd.Series) -> pd.Series:
    """Fall below the running peak at each bar (a positive fraction)."""
    return 1.0 - equity / equity.cummax()


def bar_returns(equity: pd.Series) -> pd.Series:
    """`equity.pct_change().dropna()`, in NumPy (sweeps take it for every point)."""
    values = equity.to_numpy(dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        change = values[1:] / values[:-1] - 1.0
    kept = ~np.isnan(change)
    return pd.Series(change[kept], index=equity.index[1:][kept], name=equity.name)


def strategy_metrics(
    equity: pd.Series,
    *,
    trades: pd.DataFrame | None = None,
    fills: pd.DataFrame | None = None,
    exposure: pd.Series | None = None,
    periods_per_year: float | None = None,
    gaps: pd.DatetimeIndex | None = None,
) -> dict:
    """Performance of an equity curve (one value per bar, the first being the starting value).

    `gaps` are bars that follow a hole in the data (`data.gap_after`): their returns
    span the hole, so they count in the total return and drawdown but not in the per-bar
    statistics (volatility, Sharpe, Sortino).

    `trades` may hold positions still open at the end (status "open", marked to the last
    close): they count in n_trades and win_rate, and n_open_trades says how many.
    Sharpe and Sortino use a zero risk-free rate and the sample standard deviation;
    volatility is annualised with `periods_per_year`; CAGR uses the exact time spanned. Turnover is
    traded value per year as a multiple of mean equity. `exposure` is the gross position
    value per bar, from which the share of bars with a position is taken.
    `periods_per_year` defaults to what the index's spacing implies (`infer_periods_per_year`).
    """
    # numpy on the values (a sweep scores thousands of curves); pandas' formulas exactly
    values = equity.to_numpy(dtype=float)
    index = pd.DatetimeIndex(equity.index)
    per_bar = bar_returns(equity)
    returns = per_bar.to_numpy()
    if gaps is not None and len(gaps):
        returns = returns[~per_bar.index.isin(gaps)]
    years = (index[-1] - index[0]) / YEAR if len(values) > 1 else 0.0
    mean = returns.sum() / len(returns) if len(returns) else math.nan
    std = (math.sqrt(((mean - returns) ** 2).sum() / (len(returns) - 1))
           if len(returns) > 1 else math.nan)
    downside = (math.sqrt((np.minimum(returns, 0.0) ** 2).sum() / len(returns))
                if len(returns) else math.nan)
    mdd = float((1.0 - values / np.maximum.accumulate(values)).max()) if len(values) else 0.0
    counts = None
    if trades is not None and len(trades):
        counts = (len(trades), int((trades["pnl_net"].to_numpy(dtype=float) > 0).sum()),
                  int((trades["status"].to_numpy() == "open").sum()) if "status" in trades
                  else 0)
    held = None
    if exposure is not None and len(exposure):
        if not exposure.index.equals(equity.index):
            exposure = exposure.reindex(equity.index).fillna(0)
        held = int((exposure.to_numpy() > 0).sum())
    traded = None
    if fills is not None:
        traded = float(fills["value"].to_numpy(dtype=float).sum()) if len(fills) else 0.0
    return finish_metrics(
        first=values[0], last=values[-1], n_bars=len(values), values_sum=values.sum(),
        years=years, mean=mean, std=std, downside=downside, mdd=mdd,
        ann=math.sqrt(periods_per_year or infer_periods_per_year(index)), trades=counts,
        held_bars=held, traded=traded)


def finish_metrics(*, first: float, last: float, n_bars: int, values_sum: float, years: float,
                   mean: float, std: float, downside: float, mdd: float, ann: float,
                   trades: tuple[int, int, int] | None, held_bars: int | None,
                   traded: float | None) -> dict:
    """`strategy_metrics`' dict from its ingredients: the one place its formulas live, so
    the fast evaluator's frame-free scores (`FastEvaluator.run_many`) equal it exactly.

    `trades`: (count, count with positive net pnl, count still open); `held_bars`: bars
    with a position; `traded`: the fills' total value (None: not known).
    """
    total = last / first - 1.0
    cagr = (1.0 + total) ** (1.0 / years) - 1.0 if years > 0 and total > -1 else math.nan
    metrics = {
        "total_return": _clean(total),
        "cagr": _clean(cagr),
        "volatility": _clean(std * ann),
        "sharpe": _clean(mean / std * ann) if std > 0 else None,
        "sortino": _clean(mean / downside * ann) if downside > 0 else None,
        "max_drawdown": _clean(mdd),
        "calmar": _clean(cagr / mdd) if mdd > 0 and math.isfinite(cagr) else None,
        "n_trades": 0,
        "n_open_trades": 0,
        "win_rate": None,
        "exposure": None,
        "turnover": None,
        "final_value": _clean(last),
        "n_bars": n_bars,
    }
    if trades is not None and trades[0]:
        metrics["n_trades"] = trades[0]
        metrics["win_rate"] = _clean(trades[1] / trades[0])
        metrics["n_open_trades"] = trades[2]
    if held_bars is not None and n_bars:
        metrics["exposure"] = _clean(held_bars / n_bars)
    if traded is not None:
        metrics["turnover"] = (_clean(traded / (values_sum / n_bars) / years)
                               if years > 0 else None)
    return metrics


def rolling_sharpe(equity: pd.Series, periods_per_year: float, window: int | None = None
                   ) -> pd.Series:
    """Annualised Sharpe ratio over a trailing window of bars (default: about six months)."""
    window = window or rolling_window(periods_per_year, len(equity))
    returns = equity.pct_change()
    mean = returns.rolling(window).mean()
    std = returns.rolling(window).std()
    return mean / std.replace(0.0, np.nan) * math.sqrt(periods_per_year)


PERCENT_METRICS = {"total_return", "cagr", "volatility", "max_drawdown", "win_rate",
                   "exposure", "directional_accuracy"}
COUNT_METRICS = {"n_trades", "n_open_trades", "n", "n_bars", "rejected_orders",
                 "nan_forecasts", "trainings"}


def format_metric(key: str, value: object) -> str:
    """A metric as a person reads it: 15.52 -> "+1,552.1%" for returns, 42.0 -> "42" trades."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if key in COUNT_METRICS:
        return f"{round(value):,d}"
    if key in ("total_return", "cagr", "annual_return") or key.startswith(
            ("long_short", "qlib_long_short")):
        return f"{value:+,.1%}"
    if key in PERCENT_METRICS or key.endswith("directional_accuracy"):
        return f"{value:.1%}"
    if key in ("ic", "rank_ic"):
        return f"{value:.4f}"
    if key == "turnover":
        return f"{value:,.1f}x / yr"
    if key in ("rmse", "mae"):
        return f"{value:.5f}"
    if key == "final_value":
        return f"{value:,.0f}"
    if key == "seconds":
        return f"{value:,.0f} s"
    return f"{value:,.3f}" if abs(value) < 1000 else f"{value:,.0f}"


def panel_ic(forecasts: pd.DataFrame, realised: pd.DataFrame) -> pd.DataFrame:
    """Daily cross-sectional IC (Pearson) and rank IC (Spearman), as Qlib reports them.

    Both frames are dates x tickers; a date counts where at least two tickers have a
    forecast and a realised return, and neither side is constant among them. Ranks are
    taken among those tickers (ties averaged), all dates at once.
    """
    forecasts, realised = forecasts.align(realised, join="inner")
    both = forecasts.notna() & realised.notna()
    f, r = forecasts.where(both), realised.where(both)
    ok = ((both.sum(axis=1) >= 2) & (f.nunique(axis=1) >= 2) & (r.nunique(axis=1) >= 2)
          ).to_numpy()
    out = pd.DataFrame({"ic": _row_corr(f.to_numpy(float), r.to_numpy(float)),
                        "rank_ic": _row_corr(f.rank(axis=1).to_numpy(float),
                                             r.rank(axis=1).to_numpy(float))},
                       index=forecasts.index)
    return out[ok]


def _row_corr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson correlation of each row of `a` with the same row of `b`, NaN cells left out
    (both have NaN in the same cells)."""
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # rows without a value: NaN
        da = a - np.nanmean(a, axis=1, keepdims=True)
        db = b - np.nanmean(b, axis=1, keepdims=True)
        return (np.nansum(da * db, axis=1)
                / np.sqrt(np.nansum(da * da, axis=1) * np.nansum(db * db, axis=1)))


def ic_summary(daily: pd.DataFrame) -> dict:
    """Mean IC and rank IC and their information ratios (mean / std of the daily values)."""
    out = {"n_days": len(daily)}
    for column in ("ic", "rank_ic"):
        values = daily[column].dropna() if column in daily else pd.Series(dtype=float)
        std = values.std(ddof=1)
        out[f"{column}_mean"] = _clean(values.mean()) if len(values) else None
        out[f"{column}ir"] = _clean(values.mean() / std) if len(values) > 1 and std > 0 else None
    return out


def qlib_long_short_returns(forecasts: pd.DataFrame, realised: pd.DataFrame,
                            quantile: float = 0.2) -> pd.Series:
    """Qlib's `calc_long_short_return` (qlib.contrib.eva.alpha) with dropna=True: each
    date, half the gap between the mean realised return of the top `quantile` of the
    forecasts and that of the bottom `quantile` (int(n * quantile) assets each, n the
    assets with both a forecast and a realised return; ties keep the earlier asset)."""
    forecasts, realised = forecasts.align(realised, join="inner")
    out = {}
    for date in forecasts.index:
        both = forecasts.loc[date].notna() & realised.loc[date].notna()
        count = int(int(both.sum()) * quantile)
        if count < 1:
            continue
        pred = forecasts.loc[date][both]
        label = realised.loc[date][both]
        top = pred.nlargest(count, keep="first").index
        bottom = pred.nsmallest(count, keep="first").index
        out[date] = float((label[top].mean() - label[bottom].mean()) / 2)
    return pd.Series(out, name="qlib_long_short", dtype=float)


def long_short_returns(forecasts: pd.DataFrame, realised: pd.DataFrame, k: int) -> pd.Series:
    """Each date's mean realised return of the top-k forecasts minus that of the bottom k
    (the full spread: twice what Qlib's `calc_long_short_return` reports for k assets,
    see `qlib_long_short_returns`)."""
    forecasts, realised = forecasts.align(realised, join="inner")
    out = {}
    for date in forecasts.index:
        both = forecasts.loc[date].notna() & realised.loc[date].notna()
        if both.sum() < 2 * k:
            continue
        order = forecasts.loc[date][both].sort_values(kind="stable")
        top, bottom = order.index[-k:], order.index[:k]
        out[date] = float(realised.loc[date, top].mean() - realised.loc[date, bottom].mean())
    return pd.Series(out, name=f"long_short_top{k}", dtype=float)
