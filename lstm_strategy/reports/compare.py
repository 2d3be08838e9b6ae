"""The comparison folder: table (CSV and Markdown), daily IC, equity, forecasts, report.

    comparison.csv / comparison.md   one row per model variant and the benchmark
    daily_ic.csv                     each variant's daily IC and rank IC
    equity.csv                       each variant's strategy and the benchmark, per bar
    forecasts.parquet                every variant's forecasts (columns variant|ticker)
    config.yaml, compare_report.html (the table and two charts, self-contained)
"""

from __future__ import annotations

import html
from pathlib import Path

import pandas as pd

from ..compare import BENCHMARK, ComparisonResult, markdown_table
from ..config import dump_config
from ..evaluation.metrics import format_metric
from ..evaluation.tables import monthly_means, positions
from . import charts
from .charts import Page
from .run import html_page, write_folder
from .run_charts import holdings_chart


def write_comparison(result: ComparisonResult, out: str | Path, *, overwrite: bool = False
                     ) -> Path:
    """Write the comparison folder atomically (see the module docstring)."""
    return write_folder(out, lambda folder: _contents(result, folder), overwrite=overwrite)


def _contents(result: ComparisonResult, folder: Path) -> None:
    result.table.to_csv(folder / "comparison.csv")
    (folder / "comparison.md").write_text(markdown_table(result.table) + "\n")
    daily = pd.concat(result.daily_ic, axis=1)
    daily.columns = [f"{variant}: {column}" for variant, column in daily.columns]
    daily.index.name = "date"
    daily.to_csv(folder / "daily_ic.csv")
    equity = pd.concat({n: b.equity["value"] for n, b in result.backtests.items()}, axis=1)
    equity.index.name = "date"
    equity.to_csv(folder / "equity.csv")
    forecasts = pd.concat({n: v.forecasts for n, v in result.variants.items()}, axis=1)
    forecasts.columns = [f"{variant}|{ticker}" for variant, ticker in forecasts.columns]
    forecasts.to_parquet(folder / "forecasts.parquet")
    (folder / "config.yaml").write_text(dump_config(result.config))
    (folder / "compare_report.html").write_text(_html(result, equity))


def _figure(fig: object) -> str:
    from .static import inline_png

    return f"<figure>{inline_png(fig)}</figure>"


def _growth(equity: pd.DataFrame) -> dict[str, pd.Series]:
    return {name: equity[name] / equity[name].dropna().iloc[0] for name in equity.columns}


def _cumulative_ic(result: ComparisonResult) -> pd.DataFrame:
    return pd.DataFrame({name: daily["rank_ic"].fillna(0).cumsum()
                         for name, daily in result.daily_ic.items()})


EQUITY_TITLE = "Cross-sectional strategy on each model's forecasts vs {}, growth of 1"
IC_TITLE = "Cumulative daily rank IC (a steady climb is a steady edge)"


def _interactive(result: ComparisonResult, equity: pd.DataFrame, page: Page) -> str:
    fig = page.time_figure(EQUITY_TITLE.format(BENCHMARK), log=True)
    colors = {name: charts.color(k) for k, name in enumerate(result.daily_ic)}
    charts.lines(fig, equity.index, _growth(equity), dashed=[BENCHMARK],
                 colors={**colors, BENCHMARK: "#555"})
    ic = _cumulative_ic(result)
    cumulative = page.time_figure(IC_TITLE, height=300)
    charts.lines(cumulative, ic.index, {c: ic[c] for c in ic}, y_format="0.[0]", colors=colors)
    charts.zero_line(cumulative)
    held = {}
    for name, result_bt in result.backtests.items():
        if name == BENCHMARK:
            continue
        shares = positions(result_bt.fills, result_bt.equity.index, list(result.bars))
        held[name] = holdings_chart(shares, page)
    monthly = "".join(
        f"<h3>{html.escape(name)}</h3>"
        + charts.heat_table(monthly_means(daily["rank_ic"]), "{:.3f}".format, full=0.1)
        for name, daily in result.daily_ic.items())
    return (page.add("equity", fig) + page.add("rank_ic", cumulative)
            + "<h2>Each book's holdings over time (a tab per model)</h2>"
            + page.add("holdings", charts.tabs(held))
            + f"<h2>Rank IC by month</h2>{monthly}")


def _charts(result: ComparisonResult, equity: pd.DataFrame) -> str:
    from .static import plt

    fig, ax = plt.subplots(figsize=(12, 4.5))
    for name, growth in _growth(equity).items():
        benchmark = name == BENCHMARK
        ax.plot(growth.index, growth, lw=1.0 if benchmark else 1.3,
                ls="--" if benchmark else "-", color="0.3" if benchmark else None, label=name)
    ax.set_yscale("log")
    ax.set_ylabel("growth of 1 (log scale)")
    ax.set_title(EQUITY_TITLE.format(BENCHMARK))
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.grid(alpha=0.3)
    charts_html = _figure(fig)
    fig, ax = plt.subplots(figsize=(12, 4))
    ic = _cumulative_ic(result)
    for name in ic:
        ax.plot(ic.index, ic[name], lw=1.2, label=name)
    ax.axhline(0, color="0.5", lw=0.8)
    ax.set_ylabel("cumulative daily rank IC")
    ax.set_title(IC_TITLE)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.grid(alpha=0.3)
    return charts_html + _figure(fig)


def _html(result: ComparisonResult, equity: pd.DataFrame) -> str:
    table = result.table.drop(columns="macro")  # the model's name says it
    head = "".join(f"<th>{html.escape(str(c).replace('_', ' '))}</th>"
                   for c in ["model", *table.columns])
    body = "".join(
        f"<tr><td>{html.escape(str(name))}</td>" + "".join(
            f"<td>{html.escape(format_metric(c, v) if v is not None else '–')}</td>"
            for c, v in row.items()) + "</tr>" for name, row in table.astype(object).iterrows())
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in result.notes)
    end = next(iter(result.bars.values())).index[-1]
    cfg = result.config
    page = None if cfg.report.static else Page()
    shown = _charts(result, equity) if page is None else _interactive(result, equity, page)
    body = f"""<h1>Model comparison: {html.escape(cfg.name)}</h1>
<p>{len(result.bars)} assets; every model forecasts walk-forward out of sample, and all are
compared on the same bars, {result.start.date()} to {end.date()}. IC and rank IC are the
daily cross-sectional correlations of forecasts with the next {cfg.train.horizon}-bar
log returns (Qlib's definitions); ICIR = mean / std of the daily values.
{html.escape(_book_text(cfg))} The information ratio is against {BENCHMARK}.</p>
<table><tr>{head}</tr>{body}</table>
<h2>Notes</h2><ul>{notes}</ul>
{shown}"""
    return html_page(f"lstm-strategy comparison: {cfg.name}", body, page, style=STYLE)


def _book_text(cfg: object) -> str:
    """The cross-sectional book and its costs, in a sentence or two."""
    p, b = cfg.portfolio, cfg.broker
    sides = f"long the top {p.top_k}" + (f" and short the bottom {p.top_k}"
                                         if p.allow_short else "")
    if p.book == "topk_dropout":
        book = (f"The strategy (Qlib's TopkDropout book) holds {sides}; every "
                f"{p.rebalance} bars it replaces at most {p.n_drop} holding(s) a side, "
                f"those ranked lowest, with the best not held.")
    else:
        book = f"The strategy ranks the assets every {p.rebalance} bars, {sides}."
    sell = b.commission_bps if b.sell_commission_bps is None else b.sell_commission_bps
    costs = (f"{b.commission_bps:g} bps commission" if sell == b.commission_bps else
             f"{b.commission_bps:g} bps commission on buys and {sell:g} on sells")
    least = f", at least {b.min_commission:g} a fill" if b.min_commission else ""
    return f"{book} Costs: {costs}{least}, {b.slippage_bps:g} bps slippage."


STYLE = """body{font-family:sans-serif;margin:2em;max-width:1250px}table{border-collapse:collapse}
td,th{border:1px solid #ccc;padding:3px 7px;text-align:right;font-size:13px}
th{font-size:12px}td:first-child{text-align:left;white-space:nowrap}
img{max-width:100%}"""
