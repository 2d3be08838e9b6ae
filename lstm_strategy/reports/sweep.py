"""sweep_report.html: the ranked trials, how much of the best is luck, and its hold-out.

One self-contained page: the top trials, the Deflated Sharpe Ratio and the Probability
of Backtest Overfitting, the chosen config's in-sample and hold-out results side by
side, a heatmap of the objective over two swept keys, and the top configs' equity
curves against buy & hold.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ..backtest import BuyAndHold, backtest
from ..data import stamp
from ..evaluation.metrics import format_metric
from .run import BROWSER_CHECK, inline_png

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


def _heatmap(result: SweepResult) -> str:
    keys = [k for k in result.config.keys() if result.table[k].nunique() > 1][:2]
    done = result.table[result.table["status"] == "COMPLETE"]
    if len(keys) < 2 or done.empty:
        return "<p>(a heatmap needs two swept keys with several values)</p>"
    objective = result.config.objective
    grid = done.pivot_table(index=keys[0], columns=keys[1], values=objective, aggfunc="mean")
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
    ax.set_title(f"in-sample {objective} (mean over the other keys)")
    fig.colorbar(image, ax=ax)
    return inline_png(fig)


def _equity_curves(result: SweepResult) -> str:
    from ..sweep.tasks import backtest_task, train_task

    done = result.table[result.table["status"] == "COMPLETE"].sort_values(
        result.config.objective, ascending=result.config.direction == "minimize").head(TOP)
    if done.empty:
        return ""
    fig, ax = plt.subplots(figsize=(12, 4.5))
    first = None
    for rank, row in enumerate(done.itertuples(), 1):
        params = {k: done.loc[row.Index, k] for k in result.config.keys()}
        experiment = result.config.experiment({k: v.item() if hasattr(v, "item") else v
                                               for k, v in params.items()})
        tree = experiment.to_dict()
        keys = result.forecast_keys.get(int(row.trial)) or train_task(tree)["keys"]
        # the sweep's own engine: the fast evaluator's points are rechecked against backtrader
        outcome = backtest_task(tree, keys, result.config.holdout, keep_equity=True,
                                engine=result.config.engine)
        equity = outcome["equity"]
        ax.plot(equity.index, equity / equity.iloc[0], lw=1.6 if rank == 1 else 0.9,
                label=f"#{rank}: trial {row.trial}")
        first = first or (experiment, outcome, keys)
    experiment, outcome, keys = first
    bars, start = _bars_and_start(experiment, keys)
    hold = backtest(bars, BuyAndHold, broker=experiment.broker, trade_start=start)
    ax.plot(hold.equity.index, hold.equity["value"] / hold.equity["value"].iloc[0], color="0.4",
            lw=1.0, ls="--", label="buy & hold")
    if outcome["holdout_start"] is not None:
        ax.axvline(outcome["holdout_start"], color="r", lw=0.8, ls=":")
        ax.text(outcome["holdout_start"], ax.get_ylim()[1], " hold-out", color="r",
                va="top", fontsize=9)
    ax.set_yscale("log")
    ax.set_ylabel("growth of 1 (log scale)")
    ax.set_title(f"Top {len(done)} configs by in-sample {result.config.objective} vs buy & hold")
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
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>lstm-strategy sweep</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1250px; color: #222; }}
table {{ border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.85em; }}
th, td {{ border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: right; }}
img {{ max-width: 100%; }}
</style></head><body>
<h1>Sweep: {len(table)} trials ({len(failed)} failed), ranked by in-sample {objective}</h1>
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
<h2>Equity of the top configs</h2>{_equity_curves(result)}
<h2>Objective over two swept keys</h2>{_heatmap(result)}
<h2>Failed trials</h2>{_table(failed[["trial", *config.keys(), "error"]]) if len(failed) else "<p>none</p>"}
{BROWSER_CHECK}
</body></html>
"""
    tmp = result.folder / "sweep_report.html.tmp"
    tmp.write_text(page)
    tmp.replace(result.folder / "sweep_report.html")


def _bars_and_start(experiment: object, keys: dict) -> tuple[dict, pd.Timestamp]:
    """A trial's bars and its first forecast date (where its strategy may trade)."""
    from ..config import config_from_dict
    from ..sweep.tasks import _predictions, bars_for

    bars = bars_for(config_from_dict(experiment.to_dict()))
    return bars, max(_predictions(k).first_valid_index() for k in keys.values())


def _buy_and_hold(result: SweepResult) -> tuple[dict, dict]:
    """Buy & hold's metrics on the chosen config's bars, in sample and on the hold-out."""
    from ..sweep.tasks import train_task

    best = result.best or {}
    if not best.get("params"):
        return {}, {}
    experiment = result.config.experiment(best["params"])
    keys = result.forecast_keys.get(int(best["trial"])) or train_task(
        experiment.to_dict())["keys"]
    bars, start = _bars_and_start(experiment, keys)
    split = best.get("holdout_start")
    calendar = next(iter(bars.values())).index
    inside = {t: f.loc[:split].iloc[:-1] if split is not None else f for t, f in bars.items()}
    first = backtest(inside, BuyAndHold, broker=experiment.broker, trade_start=start,
                     cross_check=False).metrics
    if split is None:
        return first, {}
    before = calendar[calendar < pd.Timestamp(split)]
    outside = {t: f.loc[before[-1]:] for t, f in bars.items()} if len(before) else bars
    second = backtest(outside, BuyAndHold, broker=experiment.broker,
                      trade_start=pd.Timestamp(split), cross_check=False).metrics
    return first, second


def _left_out(dsr: dict, pbo: dict) -> str:
    """The rule DSR and PBO share, with how many trials it left out."""
    count = max(int(dsr.get("n_left_out") or 0), int(pbo.get("n_left_out") or 0))
    if not count:
        return "every completed trial traded, so none was left out."
    return (f"{count} completed trial(s) never traded (a flat equity curve has no Sharpe "
            f"ratio) and are left out of both.")


def json_params(params: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in params.items())
