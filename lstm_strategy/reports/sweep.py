"""sweep_report.html: the ranked trials, how much of the best is luck, and its hold-out.

One self-contained page: the top trials, the Deflated Sharpe Ratio and the Probability
of Backtest Overfitting, the chosen config's in-sample and hold-out results side by
side, a heatmap of the objective over two swept keys, and the top configs' equity
curves against buy & hold.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ..data import stamp
from ..evaluation.metrics import format_metric
from . import charts
from .charts import Page
from .run import html_page

if TYPE_CHECKING:
    from ..sweep.runner import SweepResult

TOP = 5
FEW_TRADES = 10  # a hold-out with fewer trades than this gets a caution
DSR_LEVEL = 0.95


def luck_sentence(dsr: float | None, pbo: float | None, n_trials: int | None) -> str:
    """The Deflated Sharpe Ratio and the Probability of Backtest Overfitting read together,
    in one sentence written from the figures (the README's reading, generated)."""
    if dsr is None or dsr != dsr or pbo is None or pbo != pbo:
        return ("Not enough trials that traded to tell skill from luck (DSR and PBO need "
                "several).")
    trials = f"{n_trials} trials" if n_trials else "the trials"
    beats = dsr >= DSR_LEVEL
    ranks = pbo < 0.5
    if beats and ranks:
        return (f"Skill, as far as these figures can say: the best trial's Sharpe is beyond "
                f"what {trials} without skill reach by chance (DSR {dsr:.2f} >= "
                f"{DSR_LEVEL}), and the in-sample ranking carried out of sample (PBO "
                f"{pbo:.2f} < 0.5).")
    if beats:
        return (f"An edge, but not the ranking's: the best trial's Sharpe is beyond what "
                f"{trials} without skill reach by chance (DSR {dsr:.2f}), yet the ranking "
                f"among them carries no information out of sample (PBO {pbo:.2f} >= 0.5): "
                f"what the trials share (such as holding the asset) may be real, choosing "
                f"among them by this sweep is fitting noise.")
    if ranks:
        return (f"Luck cannot be ruled out: the best trial's Sharpe is within what {trials} "
                f"without skill reach by chance (DSR {dsr:.2f} < {DSR_LEVEL}), though the "
                f"ranking held up somewhat out of sample (PBO {pbo:.2f}).")
    return (f"Luck and overfitting: the best trial's Sharpe is within what {trials} without "
            f"skill reach by chance (DSR {dsr:.2f} < {DSR_LEVEL}) and the ranking does not "
            f"carry out of sample (PBO {pbo:.2f} >= 0.5).")
SHOWN = ("total_return", "cagr", "sharpe", "sortino", "max_drawdown", "n_trades", "exposure")


def _grid(result: SweepResult) -> tuple[pd.DataFrame, list[str]] | None:
    """The objective's mean over the other keys, on a grid of the first two swept keys."""
    keys = [k for k in result.config.keys() if result.table[k].nunique() > 1][:2]
    done = result.table[result.table["status"] == "COMPLETE"]
    if len(keys) < 2 or done.empty:
        return None
    grid = done.pivot_table(index=keys[0], columns=keys[1], values=result.config.objective,
                            aggfunc="mean")
    return grid, keys


def _heatmap(result: SweepResult, page: Page | None) -> str:
    found = _grid(result)
    if found is None:
        return "<p>(a heatmap needs two swept keys with several values)</p>"
    grid, keys = found
    objective = result.config.objective
    title = f"in-sample {objective} (mean over the other keys)"
    if page is not None:
        return page.add("heatmap", charts.heatmap(grid, title, x_label=keys[1], y_label=keys[0],
                                                  objective=objective))
    from .static import inline_png, plt

    fig, ax = plt.subplots(figsize=(7, 5))
    image = ax.imshow(grid.to_numpy(dtype=float), cmap="viridis", aspect="auto", origin="lower")
    ax.set_xticks(range(len(grid.columns)), [f"{v:g}" if isinstance(v, float) else str(v)
                                             for v in grid.columns], rotation=45)
    ax.set_yticks(range(len(grid.index)), [f"{v:g}" if isinstance(v, float) else str(v)
                                           for v in grid.index])
    values = grid.to_numpy(dtype=float)
    finite = values[np.isfinite(values)]
    middle = float(np.median(finite)) if len(finite) else 0.0
    for (row, col), value in np.ndenumerate(values):
        if np.isfinite(value):
            ax.text(col, row, f"{value:.3g}", ha="center", va="center", fontsize=8,
                    color="black" if value >= middle else "white")
    ax.set_xlabel(keys[1])
    ax.set_ylabel(keys[0])
    ax.set_title(title)
    fig.colorbar(image, ax=ax)
    return inline_png(fig)


def _parallel(result: SweepResult, page: Page | None) -> str:
    """Every completed trial as a line across its swept values and its objective (a
    parallel-coordinates view: which values the good trials share)."""
    done = result.table[result.table["status"] == "COMPLETE"]
    keys = [k for k in result.config.keys() if done[k].nunique() > 1]
    objective = result.config.objective
    if page is None or done.empty or not keys:
        return "" if page is None else "<p>(one swept value: nothing to draw)</p>"
    from bokeh.models import ColumnDataSource, FixedTicker, HoverTool, Range1d
    from bokeh.palettes import Viridis256
    from bokeh.transform import linear_cmap

    axes = [*keys, objective]
    positions, labels = {}, {}
    for name in axes:
        values = done[name]
        if pd.api.types.is_numeric_dtype(values):
            low, high = float(values.min()), float(values.max())
            positions[name] = (values.astype(float) - low) / (high - low or 1.0)
            labels[name] = (f"{low:.4g}", f"{high:.4g}")
        else:
            order = sorted(values.astype(str).unique())
            positions[name] = values.astype(str).map(
                {v: k / max(len(order) - 1, 1) for k, v in enumerate(order)})
            labels[name] = (order[0], order[-1])
    score = done[objective].astype(float).to_numpy()
    source = ColumnDataSource({
        "xs": [list(range(len(axes)))] * len(done),
        "ys": [[float(positions[a].iloc[k]) for a in axes] for k in range(len(done))],
        "score": score, "trial": done["trial"].astype(int).to_numpy(),
        "params": [json_params({k: done[k].iloc[j] for k in keys}) for j in range(len(done))],
        "text": [f"{v:.4g}" for v in score]})
    fig = charts.figure(title=f"All {len(done)} completed trials: swept values and in-sample "
                        f"{objective} (each axis from its lowest to its highest value)",
                        height=360, sizing_mode="stretch_width", tools="save,reset,box_zoom")
    fig.toolbar.logo = None
    lines = fig.multi_line("xs", "ys", source=source, line_width=1.6, line_alpha=0.7,
                           color=linear_cmap("score", Viridis256, float(np.nanmin(score)),
                                             float(np.nanmax(score)) + 1e-12),
                           hover_line_color="#d62728", hover_line_width=3)
    fig.add_tools(HoverTool(renderers=[lines], tooltips=[("trial", "@trial"),
                                                         ("params", "@params"),
                                                         (objective, "@text")]))
    fig.xaxis.ticker = FixedTicker(ticks=list(range(len(axes))))
    fig.xaxis.major_label_overrides = {k: name for k, name in enumerate(axes)}
    fig.yaxis.visible = False
    fig.y_range = Range1d(-0.12, 1.12)
    fig.x_range = Range1d(-0.3, len(axes) - 0.7)
    for k, name in enumerate(axes):
        fig.line([k, k], [0, 1], color="#444", line_width=1)
        fig.text([k, k], [-0.08, 1.04], text=list(labels[name]), text_align="center",
                 text_font_size="8pt")
    return page.add("parallel", fig)


def _top_curves(result: SweepResult) -> tuple[pd.DataFrame, object] | None:
    """Growth of 1 of the top configs (as the sweep's engine ran them: backtrader's equity
    where the sweep rechecked them) and buy & hold, and where the hold-out starts."""
    from ..sweep.tasks import backtest_task

    done = result.table[result.table["status"] == "COMPLETE"].sort_values(
        result.config.objective, ascending=result.config.direction == "minimize").head(TOP)
    if done.empty:
        return None
    curves = {}
    for rank, row in enumerate(done.itertuples(), 1):
        equity = result.curves.get(int(row.trial))
        if equity is None:
            params = {k: done.loc[row.Index, k] for k in result.config.keys()}
            tree = result.config.experiment({k: v.item() if hasattr(v, "item") else v
                                             for k, v in params.items()}).to_dict()
            # the sweep's own engine: the fast evaluator's points are rechecked elsewhere
            equity = backtest_task(tree, _trial_keys(result, int(row.trial), tree),
                                   result.config.holdout, keep_equity=True,
                                   engine=result.config.engine)["equity"]
        curves[f"#{rank}: trial {row.trial}"] = equity / equity.iloc[0]
    hold = _hold(result)["equity"]
    curves["buy & hold"] = hold / hold.iloc[0]
    start = (result.best or {}).get("holdout_start")
    return pd.DataFrame(curves), pd.Timestamp(start) if start is not None else None


def _trial_keys(result: SweepResult, trial: int, tree: dict) -> dict:
    """A trial's forecast-cache keys (trained again only for a result without them)."""
    from ..sweep.tasks import train_task

    return result.forecast_keys.get(trial) or train_task(tree)["keys"]


def _hold(result: SweepResult) -> dict:
    """Buy & hold beside the chosen config (sweep.tasks.buy_and_hold_task): the sweep's,
    computed on its workers, or computed here."""
    from ..sweep.tasks import buy_and_hold_task

    best = result.best or {}
    if result.buy_and_hold is None and best.get("params"):
        tree = result.config.experiment(best["params"]).to_dict()
        result.buy_and_hold = buy_and_hold_task(tree, _trial_keys(result, int(best["trial"]),
                                                                  tree),
                                                best.get("holdout_start"))
    return result.buy_and_hold or {}


def _equity_curves(result: SweepResult, page: Page | None) -> str:
    found = _top_curves(result)
    if found is None:
        return ""
    curves, holdout = found
    title = (f"Top {len(curves.columns) - 1} configs by in-sample {result.config.objective} "
             f"vs buy & hold, growth of 1")
    if page is not None:
        fig = page.time_figure(title + " (red line: the hold-out starts)", log=True)
        charts.lines(fig, curves.index, {c: curves[c] for c in curves}, dashed=["buy & hold"],
                     colors={"buy & hold": "#555"},
                     widths={curves.columns[0]: 2.2})
        if holdout is not None:
            from bokeh.models import Span
            fig.add_layout(Span(location=charts.epoch_ms([holdout])[0], dimension="height",
                                line_color="#d62728", line_dash="dotted", line_width=1.5))
        return page.add("equity", fig)
    from .static import inline_png, plt

    fig, ax = plt.subplots(figsize=(12, 4.5))
    for k, name in enumerate(curves.columns):
        hold = name == "buy & hold"
        ax.plot(curves.index, curves[name], lw=1.6 if k == 0 else 1.0 if hold else 0.9,
                color="0.4" if hold else None, ls="--" if hold else "-", label=name)
    if holdout is not None:
        ax.axvline(holdout, color="r", lw=0.8, ls=":")
        ax.text(holdout, ax.get_ylim()[1], " hold-out", color="r", va="top", fontsize=9)
    ax.set_yscale("log")
    ax.set_ylabel("growth of 1 (log scale)")
    ax.set_title(title)
    ax.legend(loc="upper left", fontsize=9)
    ax.grid(alpha=0.3)
    return inline_png(fig)


def _cell(column: str, value: object) -> str:
    """Metrics as a person reads them; swept values and trial numbers as they are."""
    if column in SHOWN:
        return format_metric(column, value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return "–" if value is None or (isinstance(value, float) and value != value) else f"{value}"


def _table(frame: pd.DataFrame) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_cell(str(c), v))}</td>"
                                    for c, v in row.items()) + "</tr>"
                   for _, row in frame.astype(object).iterrows())
    return f"<table><tr>{head}</tr>{body}</table>"


def write_sweep_report(result: SweepResult) -> None:
    """Write sweep_report.html into the sweep folder."""
    config, table = result.config, result.table
    objective = config.objective
    done = table[table["status"] == "COMPLETE"].sort_values(
        objective, ascending=config.direction == "minimize")
    columns = ["trial", *config.keys(), *[c for c in SHOWN if c in done]]
    best = result.best or {}
    side = pd.DataFrame({"in sample": best.get("metrics") or {},
                         "hold-out": best.get("holdout") or {}}).reindex(list(SHOWN))
    dsr, pbo = result.dsr or {}, result.pbo or {}
    failed = table[table["status"] == "FAIL"]
    hold = _buy_and_hold(result)
    side_html = "".join(
        f"<tr><th>{k}</th><td>{format_metric(k, v['in sample'])}</td>"
        f"<td>{format_metric(k, v['hold-out'])}</td>"
        f"<td>{format_metric(k, hold[0].get(k))}</td>"
        f"<td>{format_metric(k, hold[1].get(k))}</td></tr>" for k, v in side.iterrows())
    holdout_trades = (best.get("holdout") or {}).get("n_trades")
    caution = ""
    if holdout_trades is not None and holdout_trades < FEW_TRADES:
        caution = (f'<p style="color: #a00"><b>Caution:</b> the chosen config traded '
                   f"{int(holdout_trades)} time(s) in the hold-out; too few for its hold-out "
                   f"numbers to say much (fewer than {FEW_TRADES}).</p>")
    start = best.get("holdout_start")
    start = stamp(start) if start is not None else "–"
    reading = luck_sentence(dsr.get("dsr"), pbo.get("pbo"), dsr.get("n_trials"))
    static = config.experiment(best.get("params") or {}).report.static
    page = None if static else Page()
    body = f"""<h1>Sweep: {len(table)} trials ({len(failed)} failed), ranked by in-sample {objective}</h1>
<p>Search: {config.search}; swept keys: {html.escape(", ".join(config.keys()))}. The last
{config.holdout:.0%} of the trading period (from {start}) is a hold-out
that the ranking never sees.</p>
<h2>How much of the best is luck</h2>
<p><b>{html.escape(reading)}</b></p>
<p><b>Deflated Sharpe Ratio {format_metric("dsr", dsr.get("dsr"))}</b>: the probability that
the best trial's true Sharpe ratio beats the best that {dsr.get("n_trials")} unskilled trials
would reach by chance (expected best per-bar Sharpe
{format_metric("x", dsr.get("expected_max_sharpe_per_bar"))} against its
{format_metric("x", dsr.get("sharpe_per_bar"))}). Below 0.95 the result is not
distinguishable from selection luck.<br>
<b>Probability of Backtest Overfitting {format_metric("pbo", pbo.get("pbo"))}</b> over
{pbo.get("n_splits")} combinatorial splits of the in-sample bars: how often the in-sample
winner ranks below the median out of sample (0.5: the ranking carries no information).<br>
Both count only trials that traded: {_left_out(dsr, pbo)}</p>
<h2>The chosen config: in sample and on the hold-out</h2>
<p>Trial {best.get("trial")}: {html.escape(json_params(best.get("params") or {}))}</p>
<table><tr><th></th><th>in sample (ranked)</th><th>hold-out (never ranked)</th>
<th>buy &amp; hold, in sample</th><th>buy &amp; hold, hold-out</th></tr>
{side_html}</table>{caution}
<h2>Top trials</h2>{_table(done[columns].head(20))}
<h2>Equity of the top configs</h2>{_equity_curves(result, page)}
<h2>Objective over two swept keys</h2>{_heatmap(result, page)}
{"<h2>Every trial</h2>" + _parallel(result, page) if page is not None else ""}
<h2>Failed trials</h2>{_failed_html(failed, config.keys())}"""
    tmp = result.folder / "sweep_report.html.tmp"
    tmp.write_text(html_page("lstm-strategy sweep", body, page))
    tmp.replace(result.folder / "sweep_report.html")


def _failed_html(failed: pd.DataFrame, keys: list[str]) -> str:
    return _table(failed[["trial", *keys, "error"]]) if len(failed) else "<p>none</p>"


def _buy_and_hold(result: SweepResult) -> tuple[dict, dict]:
    """Buy & hold's metrics on the chosen config's bars, in sample and on the hold-out."""
    hold = _hold(result)
    return hold.get("in_sample") or {}, hold.get("holdout") or {}


def _left_out(dsr: dict, pbo: dict) -> str:
    """The rule DSR and PBO share, with how many trials it left out."""
    count = max(int(dsr.get("n_left_out") or 0), int(pbo.get("n_left_out") or 0))
    if not count:
        return "every completed trial traded, so none was left out."
    return (f"{count} completed trial(s) never traded (a flat equity curve has no Sharpe "
            f"ratio) and are left out of both.")


def json_params(params: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in params.items())
