"""The run report's interactive charts and the tables that go with them.

Equity against the baselines (log or linear), the excess over buy & hold, the drawdowns
with the worst five listed, exposure and holdings, each ticker's price with the fills (a
hover names the forecast that caused each), forecast against realised with rolling
directional accuracy and IC beside the naive forecast and the band chance gives, the
rolling Sharpe; for several assets the daily and monthly rank IC, and for graph models the
links each fold learnt. Every time chart follows the others' zoom.
"""

from __future__ import annotations

import html
import math
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from bokeh.layouts import column, row
from bokeh.models import BoxAnnotation, ColumnDataSource, HoverTool

from ..data import stamp
from ..evaluation.metrics import (
    describe_span,
    drawdown_series,
    infer_periods_per_year,
    naive_forecasts,
    panel_ic,
    rolling_sharpe,
    rolling_window,
)
from ..evaluation.tables import monthly_means, positions, worst_drawdowns
from ..experiment import ExperimentResult
from . import charts
from .charts import PERCENT, STRATEGY_COLORS, Page

if TYPE_CHECKING:
    from ..training import WalkForwardResult

MAX_OVERLAID = 3  # more tickers than this: forecast charts pool them
MAX_TICKER_TABS = 8  # more tickers: one price-and-fills chart with a ticker selector
MAX_POINTS = 5_000  # forecast-vs-realised points drawn (a random sample beyond)
TOP_LINKS = 8


def model_runs(result: ExperimentResult) -> dict[str, WalkForwardResult]:
    """The run's walk-forwards by ticker; a multi-asset model's as one, named "all"."""
    runs = result.walk_forward
    if not result.config.model.multi_asset:
        return runs
    first = next(iter(runs.values()))
    return {"all": type(first)(
        first.index, first.folds, pd.DataFrame({t: r.predictions for t, r in runs.items()}),
        first.model_config, first.train_config)}


def equity_curves(result: ExperimentResult) -> pd.DataFrame:
    """Every strategy's equity, a column each (the static charts draw the same)."""
    return pd.DataFrame({name: b.equity["value"] for name, b in result.backtests.items()})


def periods_per_year(result: ExperimentResult) -> float:
    return infer_periods_per_year(next(iter(result.bars.values())).index)


def rolling_span(result: ExperimentResult) -> tuple[int, str]:
    """The rolling charts' window in bars, and what it spans in words."""
    periods = periods_per_year(result)
    bars = len(next(iter(result.backtests.values())).equity)
    window = rolling_window(periods, bars)
    return window, f"{window} bars, {describe_span(window, periods)}"


def _widths(names: list[str]) -> dict[str, float]:
    return {name: 2.2 if name == "lstm" else 1.2 for name in names}


def equity_chart(result: ExperimentResult, page: Page) -> object:
    """Growth of 1 for every strategy, log and linear (tabs), and the excess over buy & hold."""
    growth = equity_curves(result)
    growth = growth / growth.iloc[0]
    names = list(growth)
    panels = {}
    for log in (True, False):
        fig = page.time_figure("Equity: LSTM strategy vs baselines (same data, dates and "
                               "costs), growth of 1", log=log)
        charts.lines(fig, growth.index, {n: growth[n] for n in names},
                     colors=STRATEGY_COLORS, widths=_widths(names))
        panels["log scale" if log else "linear scale"] = fig
    out = [charts.tabs(panels)]
    if "buy_and_hold" in growth:
        excess = growth["lstm"] / growth["buy_and_hold"] - 1.0
        fig = page.time_figure("Excess over buy & hold: LSTM growth / buy & hold growth - 1",
                               y_format=PERCENT, height=220)
        charts.lines(fig, excess.index, {"LSTM over buy & hold": excess}, y_format=PERCENT)
        charts.zero_line(fig)
        out.append(fig)
    return column(out, sizing_mode="stretch_width")


def drawdown_chart(result: ExperimentResult, page: Page) -> tuple[object, str]:
    """Under water from the running peak; the LSTM strategy's worst five shaded and listed."""
    curves = equity_curves(result)
    under = {n: -drawdown_series(curves[n]) for n in curves}
    fig = page.time_figure("Drawdown from the running peak (shaded: the LSTM strategy's "
                           "five worst)", y_format=PERCENT)
    charts.lines(fig, curves.index, under, y_format=PERCENT, colors=STRATEGY_COLORS,
                 widths=_widths(list(curves)))
    worst = worst_drawdowns(curves["lstm"])
    end = charts.epoch_ms(curves.index[-1:])[0]
    for r in worst.itertuples():
        right = charts.epoch_ms([r.recovery])[0] if r.recovery is not pd.NaT else end
        fig.add_layout(BoxAnnotation(left=charts.epoch_ms([r.peak])[0], right=right,
                                     fill_color="#d62728", fill_alpha=0.08, line_alpha=0))
    return fig, _worst_html(worst)


def _worst_html(worst: pd.DataFrame) -> str:
    if worst.empty:
        return "<p>No drawdown: the LSTM strategy's equity never fell below its peak.</p>"
    rows = "".join(
        f"<tr><td>{k + 1}</td><td>{stamp(r.peak)}</td><td>{stamp(r.trough)}</td>"
        f"<td>{stamp(r.recovery) if r.recovery is not pd.NaT else 'not yet'}</td>"
        f"<td>{r.depth:.1%}</td><td>{r.bars:,}</td></tr>" for k, r in enumerate(worst.itertuples()))
    return ("<table><tr><th>#</th><th>peak</th><th>trough</th><th>recovered</th>"
            f"<th>depth</th><th>bars under water</th></tr>{rows}</table>")


def _held(result: ExperimentResult) -> pd.DataFrame:
    lstm = result.backtests["lstm"]
    return positions(lstm.fills, lstm.equity.index, list(result.bars))


def exposure_chart(result: ExperimentResult, page: Page) -> object:
    """Gross exposure over time, and what was held: shares of one to three tickers, or a
    timeline of the holdings (long green, short red) for more."""
    equity = result.backtests["lstm"].equity
    exposure = equity["gross_exposure"] / equity["value"]
    fig = page.time_figure("LSTM strategy: gross exposure (position value / equity)",
                           y_format=PERCENT, height=220)
    charts.lines(fig, equity.index, {"gross exposure": exposure}, y_format=PERCENT)
    held = _held(result)
    if len(result.bars) <= MAX_OVERLAID:
        shares = page.time_figure("LSTM strategy: position (shares; negative: short)",
                                  height=220)
        charts.lines(shares, held.index, {t: held[t] for t in held})
        charts.zero_line(shares)
        return column([fig, shares], sizing_mode="stretch_width")
    return column([fig, holdings_chart(held, page)], sizing_mode="stretch_width")


def holdings_chart(held: pd.DataFrame, page: Page) -> object:
    """One bar per ticker and stretch of constant position (the book's holdings over time)."""
    spans = {"left": [], "right": [], "ticker": [], "shares": [], "color": []}
    index = held.index
    for ticker in held:
        values = held[ticker].to_numpy()
        change = np.flatnonzero(np.diff(values) != 0) + 1
        starts = np.concatenate([[0], change])
        ends = np.concatenate([change, [len(values)]])
        for a, b in zip(starts, ends, strict=True):
            if values[a] == 0:
                continue
            right = index[b] if b < len(index) else index[-1]
            spans["left"].append(index[a])
            spans["right"].append(right)
            spans["ticker"].append(ticker)
            spans["shares"].append(float(values[a]))
            spans["color"].append("#2ca02c" if values[a] > 0 else "#d62728")
    for side in ("left", "right"):
        spans[side] = list(charts.epoch_ms(pd.DatetimeIndex(spans[side]))) if spans[side] else []
    tickers = list(held)[::-1]
    fig = page.time_figure("Holdings over time (green long, red short; hover for the shares)",
                           height=max(220, 16 * len(tickers) + 80), factors=tickers)
    bars = fig.hbar(y="ticker", left="left", right="right", height=0.8, color="color",
                    alpha=0.7, source=ColumnDataSource(spans))
    fmt = charts.date_format(index)
    fig.add_tools(HoverTool(renderers=[bars], formatters={"@left": "datetime",
                                                          "@right": "datetime"},
                            tooltips=[("ticker", "@ticker"), ("shares", "@shares{0,0.[0000]}"),
                                      ("from", "@left{" + fmt + "}"),
                                      ("to", "@right{" + fmt + "}")]))
    return fig


def _forecast_before(result: ExperimentResult, ticker: str, dates: pd.Series) -> np.ndarray:
    """The forecast of the bar before each fill (the bar its order was decided on)."""
    preds = result.predictions
    mine = preds[preds["ticker"] == ticker].set_index("date")["prediction"]
    index = result.bars[ticker].index
    at = index.get_indexer(pd.to_datetime(dates)) - 1
    decided = index[np.clip(at, 0, None)]
    return np.where(at >= 0, mine.reindex(decided).to_numpy(dtype=float), np.nan)


def _ticker_data(result: ExperimentResult, ticker: str) -> tuple[dict, dict, dict]:
    """A ticker's close line, and its buy and sell fills with what a hover shows."""
    close = result.bars[ticker]["Close"].loc[result.trade_start:]
    line = {"x": charts.epoch_ms(close.index), "y": close.to_numpy(np.float32)}
    fills = result.backtests["lstm"].fills
    mine = fills[fills["ticker"] == ticker]
    sides = []
    for side in ("buy", "sell"):
        rows = mine[mine["side"] == side]
        sides.append({"x": charts.epoch_ms(pd.to_datetime(rows["date"])),
                      "price": rows["price"].to_numpy(float),
                      "size": rows["size"].abs().to_numpy(float),
                      "forecast": _forecast_before(result, ticker, rows["date"]),
                      "side": [side] * len(rows)})
    return line, sides[0], sides[1]


def _price_figure(page: Page, title: str, log: bool, fmt: str, line: dict, buys: dict,
                  sells: dict) -> tuple[object, list[ColumnDataSource]]:
    fig = page.time_figure(title, log=log)
    sources = [ColumnDataSource(line), ColumnDataSource(buys), ColumnDataSource(sells)]
    fig.line("x", "y", source=sources[0], color="#555", line_width=1.2, legend_label="close")
    marks = [fig.scatter("x", "price", source=source, marker=marker, color=ink, size=9,
                         legend_label=f"{side} fills")
             for source, side, marker, ink in ((sources[1], "buy", "triangle", "#2ca02c"),
                                              (sources[2], "sell", "inverted_triangle",
                                               "#d62728"))]
    fig.add_tools(HoverTool(renderers=marks, formatters={"@x": "datetime"}, tooltips=[
        ("date", "@x{" + fmt + "}"), ("side", "@side"), ("size", "@size{0,0.[0000]}"),
        ("price", "@price{0,0.[0000]}"), ("forecast", "@forecast{0.[000000]}")]))
    charts.legend_outside(fig)
    return fig, sources


def _wide(close: np.ndarray) -> bool:
    """A log price axis for a series that moves more than tenfold."""
    low, high = float(np.nanmin(close)), float(np.nanmax(close))
    return low > 0 and high / low > 10


def trades_chart(result: ExperimentResult, page: Page) -> object:
    """Each ticker's close with the LSTM strategy's fills (a hover names each fill's date,
    side, size, price and the forecast that caused it): a tab per ticker, or for many
    tickers one chart and a ticker selector (one chart is far cheaper to draw and embed)."""
    tickers = list(result.bars)
    data = {t: _ticker_data(result, t) for t in tickers}
    fmt = charts.date_format(result.bars[tickers[0]].index)

    def title(ticker: str) -> str:
        buys, sells = len(data[ticker][1]["x"]), len(data[ticker][2]["x"])
        return (f"{ticker}: close with the LSTM strategy's fills ({buys} buys, {sells} "
                "sells; hover a marker)")

    if len(tickers) <= MAX_TICKER_TABS:
        return charts.tabs({t: _price_figure(page, title(t), _wide(data[t][0]["y"]), fmt,
                                             *data[t])[0] for t in tickers})
    from bokeh.models import CustomJS, Select

    log = any(_wide(d[0]["y"]) for d in data.values())
    fig, shown = _price_figure(page, title(tickers[0]), log, fmt, *data[tickers[0]])
    # tickers on one calendar share one x column (a close column each); else a source each
    first = data[tickers[0]][0]["x"]
    shared = all(np.array_equal(data[t][0]["x"], first) for t in tickers)
    closes = ColumnDataSource({"x": first, **{f"c{k}": data[t][0]["y"]
                                              for k, t in enumerate(tickers)}} if shared
                              else {"x": first[:0]})
    own = None if shared else {t: ColumnDataSource(data[t][0]) for t in tickers}
    fills = {t: [ColumnDataSource(data[t][1]), ColumnDataSource(data[t][2])] for t in tickers}
    select = Select(title=f"Ticker ({len(tickers)})", value=tickers[0], options=tickers,
                    width=220, name="ticker_select")
    fig.name = "price_chart"
    select.js_on_change("value", CustomJS(
        args={"shown": shown, "closes": closes, "own": own, "fills": fills, "tickers": tickers,
              "titles": {t: title(t) for t in tickers}, "fig": fig},
        code="""const t = cb_obj.value;
shown[0].data = own ? {...own[t].data}
                    : {x: closes.data.x, y: closes.data["c" + tickers.indexOf(t)]};
shown[1].data = {...fills[t][0].data};
shown[2].data = {...fills[t][1].data};
fig.title.text = titles[t];"""))
    return column([select, fig], sizing_mode="stretch_width")


def forecast_charts(result: ExperimentResult, page: Page) -> object:
    """Forecast vs realised, and rolling directional accuracy and IC against the naive
    last-return forecast, each with the band chance alone gives (95%)."""
    preds = result.predictions.dropna()
    center = 0.5 if result.config.model.head == "direction" else 0.0
    horizon = result.config.train.horizon
    window, label = rolling_span(result)
    tickers = list(result.bars)
    pooled = len(tickers) > MAX_OVERLAID
    scatter = charts.figure(title="Forecast vs realised", height=340, width=480,
                            tools="box_zoom,wheel_zoom,reset,save")
    scatter.toolbar.logo = None
    accuracy, ic = {}, {}
    keep = min(1.0, MAX_POINTS / max(len(preds), 1))  # the cloud's shape, not every point
    if keep < 1.0:
        scatter.title.text += f" ({MAX_POINTS:,} of {len(preds):,}, at random)"
    rng = np.random.default_rng(0)
    for k, ticker in enumerate(tickers):
        one = preds[preds["ticker"] == ticker].set_index("date")
        drawn = one[rng.random(len(one)) < keep] if keep < 1.0 else one
        source = ColumnDataSource({"forecast": drawn["prediction"].to_numpy(np.float32),
                                   "realised": drawn["target"].to_numpy(np.float32)})
        scatter.scatter("forecast", "realised", source=source, size=3,
                        alpha=0.25 if pooled else 0.45,
                        color=charts.color(0 if pooled else k),
                        **({"legend_label": ticker} if 1 < len(tickers) <= MAX_OVERLAID else {}))
        last = naive_forecasts(result.bars[ticker]["Close"], horizon)["naive_last"]
        naive = last.reindex(one.index)
        accuracy[ticker] = (((one["prediction"] > center) == (one["target"] > 0)).astype(float),
                            ((naive > 0) == (one["target"] > 0)).astype(float))
        ic[ticker] = (one["prediction"].rolling(window).corr(one["target"]),
                      naive.rolling(window).corr(one["target"]))
    scatter.xaxis.axis_label = "forecast"
    scatter.yaxis.axis_label = f"realised {horizon}-bar log return"
    if 1 < len(tickers) <= MAX_OVERLAID:
        charts.legend_outside(scatter)
    figures = []
    for title, pairs, middle, half in (
            ("directional accuracy", accuracy, 0.5, 1.96 * 0.5 / math.sqrt(window)),
            ("IC (correlation of forecast and realised)", ic, 0.0, 1.96 / math.sqrt(window))):
        columns = {}
        if pooled:
            roll = (lambda s: s.rolling(window).mean()) if "accuracy" in title else (lambda s: s)
            for k, name in enumerate(("model", "naive (last return)")):
                mean = pd.concat([roll(p[k]) for p in pairs.values()], axis=1).mean(axis=1)
                columns[f"{name}, mean of {len(tickers)}"] = mean
        else:
            for ticker, (model, naive) in pairs.items():
                name = f" {ticker}" if len(tickers) > 1 else ""
                if "accuracy" in title:
                    model, naive = model.rolling(window).mean(), naive.rolling(window).mean()
                columns[f"model{name}"] = model
                columns[f"naive{name}"] = naive
        frame = pd.DataFrame(columns)
        fig = page.time_figure(f"Rolling {title}, trailing {label}", height=260)
        charts.lines(fig, frame.index, {c: frame[c] for c in frame},
                     dashed=[c for c in frame if c.startswith("naive")])
        charts.band(fig, middle - half, middle + half, "95% band of chance")
        charts.zero_line(fig, middle)
        figures.append(fig)
    return column([row([scatter], sizing_mode="inherit"), *figures],
                  sizing_mode="stretch_width")


def sharpe_chart(result: ExperimentResult, page: Page) -> object:
    periods = periods_per_year(result)
    window, label = rolling_span(result)
    curves = equity_curves(result)
    sharpe = {n: rolling_sharpe(curves[n], periods, window) for n in curves}
    fig = page.time_figure(f"Rolling Sharpe ratio, trailing {label} (scaled to the LSTM "
                           "strategy and buy & hold)", height=260)
    charts.lines(fig, curves.index, sharpe, colors=STRATEGY_COLORS, widths=_widths(list(curves)))
    charts.clamp_y(fig, np.concatenate([sharpe[n].to_numpy(float) for n in ("lstm", "buy_and_hold")
                                        if n in sharpe]))
    charts.zero_line(fig)
    return fig


def rank_ic(result: ExperimentResult, page: Page) -> tuple[object, str] | None:
    """Daily cross-sectional rank IC (and its trailing mean), and its monthly means as a
    table (Qlib's views); None for fewer than three tickers."""
    if len(result.bars) < 3:
        return None
    preds = result.predictions.dropna()
    forecasts = preds.pivot_table(index="date", columns="ticker", values="prediction")
    realised = preds.pivot_table(index="date", columns="ticker", values="target")
    daily = panel_ic(forecasts, realised)
    if daily.empty:
        return None
    window, label = rolling_span(result)
    fig = page.time_figure(f"Daily rank IC across the {len(result.bars)} tickers (line: "
                           f"trailing mean, {label})", height=260)
    source = ColumnDataSource({"x": charts.epoch_ms(daily.index),
                               "rank_ic": daily["rank_ic"].to_numpy(float)})
    width = float(np.median(np.diff(source.data["x"]))) * 0.8 if len(daily) > 1 else 8.64e7
    fig.vbar(x="x", top="rank_ic", width=width, source=source, color="#9ecae1")
    charts.lines(fig, daily.index, {"trailing mean": daily["rank_ic"].rolling(window,
                                                                              min_periods=1).mean()})
    charts.zero_line(fig)
    return fig, charts.heat_table(monthly_means(daily["rank_ic"]), "{:.3f}".format, full=0.1)


def graph_links(result: ExperimentResult) -> str:
    """For graph models: each fold's strongest links between assets (what it learnt from)."""
    parts = []
    for wf in model_runs(result).values():
        graphs = wf.graphs() if result.config.model.multi_asset else {}
        if not graphs:
            continue
        rows = []
        for retrain, adjacency in graphs.items():
            weights = adjacency.to_numpy(float)
            symmetric = np.allclose(weights, weights.T)
            pairs = [(weights[i, j], adjacency.index[i], adjacency.columns[j])
                     for i in range(len(weights)) for j in range(len(weights))
                     if i != j and weights[i, j] > 0 and (not symmetric or i < j)]
            pairs.sort(key=lambda p: -p[0])
            links = ", ".join(f"{a}{'–' if symmetric else '→'}{b} ({w:.2f})"
                              for w, a, b in pairs[:TOP_LINKS]) or "no link"
            rows.append(f"<tr><td>{stamp(retrain)}</td><td>{len(pairs)}</td>"
                        f"<td style='text-align:left'>{html.escape(links)}</td></tr>")
        parts.append("<table><tr><th>retrained</th><th>links</th><th>strongest links "
                     f"(top {TOP_LINKS}, weight)</th></tr>{''.join(rows)}</table>")
    return "".join(parts)


def run_charts(result: ExperimentResult, page: Page) -> dict[str, str]:
    """Every chart and chart table of the run report, by section (placeholders in `page`)."""
    out = {"equity": page.add("equity", equity_chart(result, page))}
    drawdown, worst = drawdown_chart(result, page)
    out["drawdown"] = page.add("drawdown", drawdown) + worst
    out["exposure"] = page.add("exposure", exposure_chart(result, page))
    out["trades"] = page.add("trades", trades_chart(result, page))
    out["forecast"] = page.add("forecast", forecast_charts(result, page))
    out["sharpe"] = page.add("sharpe", sharpe_chart(result, page))
    cross = rank_ic(result, page)
    if cross is not None:
        out["rank_ic"] = page.add("rank_ic", cross[0]) + "<h3>Rank IC by month</h3>" + cross[1]
    links = graph_links(result)
    if links:
        out["graph"] = links
    return out
