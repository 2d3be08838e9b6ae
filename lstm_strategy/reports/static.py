"""Static PNG charts (matplotlib) for `report.static: true`: papers and e-mail.

Imported only where PNGs are asked for: an interactive report never loads matplotlib.
"""

from __future__ import annotations

import base64
import io
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.dates as mdates
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter

from ..evaluation.metrics import (
    drawdown_series,
    naive_forecasts,
    rolling_sharpe,
)
from ..experiment import ExperimentResult
from .run_charts import MAX_OVERLAID, equity_curves, periods_per_year, rolling_span

CHARTS = ("equity", "drawdown", "trades", "forecast", "rolling_sharpe")
_COLORS = {"lstm": "C0", "buy_and_hold": "C7", "sma_cross": "C2", "naive_forecast": "C1"}


def _plain_scale(ax: plt.Axes, low: float, high: float) -> None:
    """Prices and growth in plain numbers ("2", "50", "1.24", never "2x10^0"): a log axis
    over a wide range (labels at 1-2-5 steps within two decades), a linear one over a
    narrow range, where a log axis would have no tick to label."""
    plain = FuncFormatter(lambda value, _: f"{value:,.4g}")
    if low > 0 and high / low > 3:
        ax.set_yscale("log")
        decades = math.log10(high / low)
        ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0) if decades < 2.5
                                              else (1.0,)))
        ax.yaxis.set_minor_formatter(NullFormatter())
    ax.yaxis.set_major_formatter(plain)


def _legend_outside(ax: plt.Axes, **kwargs: object) -> None:
    """The legend right of the plot, never over the data."""
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, **kwargs)


def _plot_curves(ax: plt.Axes, result: ExperimentResult, transform) -> None:
    """One line per strategy, the LSTM strategy drawn heavier."""
    curves = equity_curves(result)
    for name in curves:
        ax.plot(curves.index, transform(curves[name]), label=name, color=_COLORS.get(name),
                lw=1.6 if name == "lstm" else 1.0)


def _chart_equity(result: ExperimentResult, ax: plt.Axes) -> None:
    _plot_curves(ax, result, lambda equity: equity / equity.iloc[0])
    growth = equity_curves(result)
    growth = growth / growth.iloc[0]
    _plain_scale(ax, float(growth.min().min()), float(growth.max().max()))
    ax.set_ylabel("growth of 1" + (" (log scale)" if ax.get_yscale() == "log" else ""))
    ax.set_title("Equity: LSTM strategy vs baselines (same data, dates and costs)")
    _legend_outside(ax)


def _chart_drawdown(result: ExperimentResult, ax: plt.Axes) -> None:
    _plot_curves(ax, result, lambda equity: -100 * drawdown_series(equity))
    ax.set_ylabel("drawdown (%)")
    ax.set_title("Drawdown from the running peak")
    _legend_outside(ax)


MAX_TRADE_PANELS = 6  # tickers drawn in the trades chart (the first ones, said in the title)


def _chart_trades(result: ExperimentResult, axes: list[plt.Axes]) -> None:
    """Each ticker's price with the LSTM strategy's fills, one panel per ticker."""
    fills = result.backtests["lstm"].fills
    tickers = list(result.bars)
    for ax, ticker in zip(axes, tickers, strict=False):
        close = result.bars[ticker]["Close"].loc[result.trade_start:]
        ax.plot(close.index, close, color="0.3", lw=0.8, label=f"{ticker} close")
        mine = fills[fills["ticker"] == ticker]
        for side, marker, color in (("buy", "^", "g"), ("sell", "v", "r")):
            rows = mine[mine["side"] == side]
            ax.scatter(rows["date"], rows["price"], marker=marker, color=color, s=18,
                       zorder=3, label=f"{side} fills ({len(rows)})")
        _plain_scale(ax, float(close.min()), float(close.max()))
        ax.set_title(f"{ticker}: price with the LSTM strategy's fills")
        _legend_outside(ax)
        ax.grid(alpha=0.3)
    if len(tickers) > len(axes):
        axes[0].set_title(f"{tickers[0]}: price with the LSTM strategy's fills (first "
                          f"{len(axes)} of {len(tickers)} tickers; all fills in orders.csv)")


def _chart_forecast(result: ExperimentResult, axes: tuple[plt.Axes, plt.Axes]) -> None:
    """Forecast vs realised (every ticker, by colour) and rolling directional accuracy."""
    preds = result.predictions.dropna()
    scatter, rolling = axes
    center = 0.5 if result.config.model.head == "direction" else 0.0
    horizon = result.config.train.horizon
    window, label = rolling_span(result)
    tickers = list(result.bars)
    pooled = len(tickers) > MAX_OVERLAID  # many tickers: one cloud, the mean accuracy
    hits, naive_hits = [], []
    for k, ticker in enumerate(tickers):
        one = preds[preds["ticker"] == ticker].set_index("date")
        scatter.scatter(one["prediction"], one["target"], s=4, alpha=0.25 if pooled else 0.4,
                        color="C0" if pooled else f"C{k % 10}",
                        label=ticker if 1 < len(tickers) <= MAX_OVERLAID else None)
        hit = ((one["prediction"] > center) == (one["target"] > 0)).astype(float)
        last = naive_forecasts(result.bars[ticker]["Close"], horizon)["naive_last"]
        naive_hit = ((last.reindex(one.index) > 0) == (one["target"] > 0)).astype(float)
        hits.append(hit)
        naive_hits.append(naive_hit)
        if pooled:
            continue
        name = f" {ticker}" if len(tickers) > 1 else ""
        rolling.plot(hit.rolling(window).mean(), label=f"model{name}", color=f"C{k % 10}",
                     lw=1.2)
        rolling.plot(naive_hit.rolling(window).mean(), label=f"naive (last return){name}",
                     color=f"C{k % 10}" if len(tickers) > 1 else "C1", lw=0.8, ls=":")
    if pooled:
        for series, name, style in ((hits, "model", "-"),
                                    (naive_hits, "naive (last return)", ":")):
            mean = pd.concat(series, axis=1).mean(axis=1).rolling(window).mean()
            rolling.plot(mean, label=f"{name}, mean of {len(tickers)} tickers", ls=style,
                         color="C0" if style == "-" else "C1", lw=1.2)
    scatter.axhline(0, color="0.6", lw=0.6)
    scatter.axvline(center, color="0.6", lw=0.6)
    scatter.xaxis.set_major_locator(MaxNLocator(5))
    scatter.set_xlabel("forecast")
    scatter.set_ylabel(f"realised {horizon}-bar log return")
    scatter.set_title(f"{', '.join(tickers[:4])}{' ...' if len(tickers) > 4 else ''}: "
                      f"forecast vs realised")
    if 1 < len(tickers) <= MAX_OVERLAID:
        _legend_outside(scatter, fontsize=8, markerscale=3)
    rolling.axhline(0.5, color="0.5", lw=0.6, ls="--")
    rolling.set_ylabel(f"directional accuracy, trailing {label}", fontsize=9)
    rolling.xaxis.set_major_formatter(mdates.ConciseDateFormatter(rolling.xaxis.get_major_locator()))
    rolling.set_title("Rolling directional accuracy (dotted: naive last return)")
    _legend_outside(rolling, fontsize=8)


def _chart_rolling_sharpe(result: ExperimentResult, ax: plt.Axes) -> None:
    periods = periods_per_year(result)
    window, label = rolling_span(result)
    _plot_curves(ax, result, lambda equity: rolling_sharpe(equity, periods, window))
    # the scale follows the LSTM strategy and buy & hold: a baseline at -40 leaves the plot
    # rather than flattening the rest
    shown = pd.concat([rolling_sharpe(result.backtests[n].equity["value"], periods, window)
                       for n in ("lstm", "buy_and_hold") if n in result.backtests])
    shown = shown[np.isfinite(shown)]
    if len(shown):
        low, high = float(shown.min()), float(shown.max())
        pad = 0.1 * max(high - low, 0.5)
        ax.set_ylim(min(low, 0.0) - pad, max(high, 0.0) + pad)
    ax.axhline(0, color="0.5", lw=0.6)
    ax.set_ylabel(f"Sharpe, trailing {label}")
    ax.set_title("Rolling Sharpe ratio (scaled to the LSTM strategy and buy & hold)")
    _legend_outside(ax)


def write_charts(result: ExperimentResult, folder: Path) -> list[Path]:
    """Render every chart as a PNG in `folder`; returns their paths."""
    paths = []
    for name in CHARTS:
        if name == "forecast":
            fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
            _chart_forecast(result, tuple(axes))
        elif name == "trades":
            panels = min(len(result.bars), MAX_TRADE_PANELS)
            fig, axes = plt.subplots(panels, 1, figsize=(12, 4.5 * panels), squeeze=False)
            _chart_trades(result, list(axes[:, 0]))
        else:
            fig, ax = plt.subplots(figsize=(12, 4.5))
            {"equity": _chart_equity, "drawdown": _chart_drawdown,
             "rolling_sharpe": _chart_rolling_sharpe}[name](result, ax)
            ax.grid(alpha=0.3)
        fig.tight_layout()
        path = folder / f"{name}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        paths.append(path)
    return paths


def inline_png(fig: plt.Figure) -> str:
    """A figure as a self-contained <img> tag (base64 PNG), the figure closed."""
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    data = base64.b64encode(buffer.getvalue()).decode()
    return f'<img alt="chart" src="data:image/png;base64,{data}">'


