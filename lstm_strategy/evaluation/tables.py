"""Tearsheet tables from a run's equity, fills and trades: pure functions, frames in and out.

Monthly and yearly returns (quantstats' table), what costs took (commission and
slippage, and their share of the gross pnl), and the trade list with its size and exit
price (backtrader's trades carry neither; both follow from the fills and the pnl).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def period_returns(equity: pd.Series) -> pd.DataFrame:
    """Returns by calendar month (a row per year, a column per month) and by year ("Year"),
    compounded from the equity curve: each period's last value over the previous period's
    last value (the first period over the curve's first value). Months without a bar are
    NaN."""
    equity = equity.dropna()
    if equity.empty:
        return pd.DataFrame(columns=[*MONTHS, "Year"])
    month_end = equity.groupby([equity.index.year, equity.index.month]).last()
    before = month_end.shift(1)
    before.iloc[0] = equity.iloc[0]
    monthly = (month_end / before - 1.0).unstack()
    monthly = monthly.reindex(columns=range(1, 13))
    monthly.columns = list(MONTHS)
    year_end = equity.groupby(equity.index.year).last()
    year_before = year_end.shift(1)
    year_before.iloc[0] = equity.iloc[0]
    monthly["Year"] = year_end / year_before - 1.0
    monthly.index.name = "year"
    return monthly


def costs_paid(fills: pd.DataFrame, bars: dict[str, pd.DataFrame], trades: pd.DataFrame,
               fill: str = "next_open") -> dict:
    """Commission and slippage paid over the run, and their share of the gross pnl.

    Slippage is what each fill's price gave away against the price it would have had
    without slippage: the fill bar's open for next-open fills, the signal bar's close for
    close fills (the bar before the one backtrader dates the fill on).
    """
    commission = float(fills["commission"].sum()) if len(fills) else 0.0
    slippage = 0.0
    for row in fills.itertuples(index=False):
        frame = bars[row.ticker]
        at = frame.index.get_loc(pd.Timestamp(row.date))
        reference = (frame["Open"].iloc[at] if fill != "close"
                     else frame["Close"].iloc[max(at - 1, 0)])
        slippage += abs(row.price - reference) * abs(row.size)
    pnl = float(trades["pnl"].sum()) if len(trades) else 0.0  # after slippage, before commission
    gross = pnl + slippage
    share = (commission + slippage) / gross if gross > 0 else np.nan
    return {"commission": commission, "slippage": slippage, "total": commission + slippage,
            "gross_pnl": gross, "net_pnl": pnl - commission, "cost_share_of_gross": share}


def _segments(fills: pd.DataFrame) -> list[tuple[float, float]]:
    """One ticker's fills in order cut into trades where the position returns to zero or
    crosses it (one order may close a long and open a short, as backtrader's trades do):
    (largest position held, quantity closed) for each."""
    segments, held, peak, closed = [], 0.0, 0.0, 0.0
    for row in fills.itertuples(index=False):
        change = abs(row.size) if row.side == "buy" else -abs(row.size)
        if held and np.sign(change) != np.sign(held):
            closing = min(abs(change), abs(held))
            closed += closing
            if abs(change) >= abs(held) - 1e-12:  # flat, or through zero
                segments.append((peak, closed))
                held, peak, closed = held + change, 0.0, 0.0
                if abs(held) > 1e-12:
                    peak = abs(held)
                continue
        held += change
        peak = max(peak, abs(held))
    if peak:
        segments.append((peak, closed))  # still open at the end
    return segments


def trade_list(trades: pd.DataFrame, fills: pd.DataFrame,
               marks: dict[str, float] | None = None) -> pd.DataFrame:
    """The trades with their size (the largest position held), exit price (the average
    price the closed quantity left at, from the pnl; an open trade's is the last close it
    is marked to, `marks` by ticker) and the commission paid.

    The fills of each ticker are cut into trades where its position returns to zero (a
    reversal is two orders, the close and the new entry), matched in order to the trades.
    """
    out = trades.copy()
    sizes = np.full(len(trades), np.nan)
    exits = np.full(len(trades), np.nan)
    for ticker, mine in trades.groupby("ticker", sort=False):
        ordered = mine.sort_values("entry_date", kind="stable")
        segments = _segments(fills[fills["ticker"] == ticker])
        for (label, row), (peak, closed) in zip(ordered.iterrows(), segments, strict=False):
            at = trades.index.get_loc(label)
            sign = 1.0 if row["direction"] == "long" else -1.0
            sizes[at] = peak
            if row["status"] == "open":
                exits[at] = (marks or {}).get(ticker, np.nan)
            elif closed:
                exits[at] = row["entry_price"] + row["pnl"] / (sign * closed)
    out.insert(out.columns.get_loc("entry_price") + 1, "exit_price", exits)
    out.insert(out.columns.get_loc("direction") + 1, "size", sizes)
    out["commission"] = out["pnl"] - out["pnl_net"]
    return out


def worst_drawdowns(equity: pd.Series, n: int = 5) -> pd.DataFrame:
    """The `n` deepest drawdown periods, deepest first (quantstats' table): the peak they
    fell from, the trough, the recovery (the first bar back at the peak; NaT while still
    under water), the depth and the bars from peak to recovery (or to the end)."""
    equity = equity.dropna()
    columns = ["peak", "trough", "recovery", "depth", "bars"]
    if equity.empty:
        return pd.DataFrame(columns=columns)
    peak = equity.cummax()
    under = (equity < peak).to_numpy()
    rows, at = [], 0
    values = equity.to_numpy()
    while at < len(values):
        if not under[at]:
            at += 1
            continue
        start = at - 1 if at > 0 else 0  # the peak's bar
        end = at
        while end < len(values) and under[end]:
            end += 1
        trough = start + int(np.argmin(values[start:end]))
        rows.append({"peak": equity.index[start], "trough": equity.index[trough],
                     "recovery": equity.index[end] if end < len(values) else pd.NaT,
                     "depth": float(values[trough] / values[start] - 1.0),
                     "bars": (end if end < len(values) else len(values) - 1) - start})
        at = end
    table = pd.DataFrame(rows, columns=columns)
    return table.sort_values("depth", kind="stable").head(n).reset_index(drop=True)


def positions(fills: pd.DataFrame, index: pd.DatetimeIndex, tickers: list[str]
              ) -> pd.DataFrame:
    """Shares held of each ticker at the end of every bar of `index`, from the fills (a
    fill counts from the bar backtrader dates it on)."""
    held = pd.DataFrame(0.0, index=index, columns=list(tickers))
    if len(fills):
        signed = np.where(fills["side"] == "buy", 1.0, -1.0) * fills["size"].abs()
        change = (pd.DataFrame({"date": pd.to_datetime(fills["date"]), "ticker": fills["ticker"],
                                "size": signed})
                  .pivot_table(index="date", columns="ticker", values="size", aggfunc="sum"))
        change = change.reindex(index=index, columns=held.columns).fillna(0.0)
        held = change.cumsum()
    return held


def monthly_means(series: pd.Series) -> pd.DataFrame:
    """The mean of a daily series by calendar month: a row per year, a column per month
    and the year's mean ("Year"), as Qlib shows its monthly IC."""
    series = series.dropna()
    if series.empty:
        return pd.DataFrame(columns=[*MONTHS, "Year"])
    table = series.groupby([series.index.year, series.index.month]).mean().unstack()
    table = table.reindex(columns=range(1, 13))
    table.columns = list(MONTHS)
    table["Year"] = series.groupby(series.index.year).mean()
    table.index.name = "year"
    return table
