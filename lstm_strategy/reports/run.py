"""Run folders: metrics.json, CSVs, the resolved config and one report.html (interactive
charts, or PNGs beside it with `report.static`).

Everything is written into a temporary folder beside the target and moved into place at
the end, so a failed run never leaves a half-written folder and an existing folder is
replaced whole or not at all.
"""

from __future__ import annotations

import base64
import html
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from ..config import dump_config
from ..data import stamp
from ..errors import RunFolderExists
from ..evaluation.metrics import (
    format_metric,
)
from ..evaluation.tables import costs_paid, period_returns, trade_list
from ..experiment import ExperimentResult
from ..processes import pid_alive
from .charts import Page, heat_table
from .run_charts import MAX_OVERLAID, equity_curves, model_runs, run_charts


def _table(rows: dict[str, dict], keys: list[str]) -> str:
    head = "".join(f"<th>{html.escape(k)}</th>" for k in ["", *keys])
    body = "".join(
        "<tr><th>" + html.escape(name) + "</th>"
        + "".join(f"<td>{html.escape(format_metric(k, values.get(k)))}</td>" for k in keys)
        + "</tr>" for name, values in rows.items())
    return f"<table><tr>{head}</tr>{body}</table>"


# Every page ends with this: once loaded and once Bokeh has drawn every document, the body
# says how many of its charts are there (`data-charts="shown/all"`): an image counts when
# the browser decoded it, a Bokeh figure when its view has finished drawing and one of its
# glyphs has data. A test in headless Chromium checks them all.
BROWSER_CHECK = """<script>
window.addEventListener("load", () => {
  const images = [...document.images];
  const decoded = images.filter(i => i.complete && i.naturalWidth > 0).length;
  const say = (shown, all) => { document.body.dataset.charts = shown + "/" + all; };
  if (!window.Bokeh) { say(decoded, images.length); return; }
  const started = performance.now();
  const poll = () => {
    const docs = Bokeh.documents;
    if (!(docs.length && docs.every(d => d.is_idle))) {
      if (performance.now() - started < 30000) { setTimeout(poll, 20); return; }
      say(decoded, images.length + 1); return;
    }
    let figures = 0, drawn = 0;
    for (const doc of docs) for (const model of doc.all_models) {
      if (model.constructor.__name__ !== "Figure") continue;
      figures += 1;
      const view = doc.views_manager.find_one(model);
      const data = model.renderers.some(r => r.data_source && r.data_source.get_length() > 0);
      if (view != null && view.has_finished() && data) drawn += 1;
    }
    say(decoded + drawn, images.length + figures);
  };
  poll();
});
</script>"""


def trades_table(result: ExperimentResult) -> pd.DataFrame:
    """The LSTM strategy's trades with size, exit price and commission (trades.csv)."""
    lstm = result.backtests["lstm"]
    marks = {t: float(f["Close"].iloc[-1]) for t, f in result.bars.items()}
    return trade_list(lstm.trades, lstm.fills, marks)


def _returns_html(equity: pd.Series) -> str:
    return heat_table(period_returns(equity), lambda v: format_metric("total_return", v),
                      full=0.10)


def _costs_html(result: ExperimentResult) -> str:
    lstm = result.backtests["lstm"]
    paid = costs_paid(lstm.fills, result.bars, lstm.trades, result.config.broker.fill)
    share = paid["cost_share_of_gross"]
    cells = [("commission", f"{paid['commission']:,.2f}"), ("slippage", f"{paid['slippage']:,.2f}"),
             ("total costs", f"{paid['total']:,.2f}"),
             ("gross pnl (before costs)", f"{paid['gross_pnl']:,.2f}"),
             ("net pnl", f"{paid['net_pnl']:,.2f}"),
             ("costs / gross pnl", f"{share:.1%}" if share == share else "– (no gross gain)")]
    return "<table>" + "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in cells) + "</table>"


MAX_TRADE_ROWS = 1_000  # trades listed in the page (all of them in trades.csv)


def _trades_html(trades: pd.DataFrame) -> str:
    if trades.empty:
        return "<p>No trade.</p>"
    shown = trades.head(MAX_TRADE_ROWS)
    text = {c: shown[c].map(stamp) for c in ("entry_date", "exit_date")}
    text |= {c: shown[c].map("{:,.2f}".format) for c in ("pnl", "pnl_net", "commission")}
    text |= {c: shown[c].map("{:,.6g}".format) for c in ("size", "entry_price", "exit_price")}
    cells = pd.DataFrame({c: text.get(c, shown[c].astype(str)) for c in shown.columns})
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cells.columns)
    rows = "".join("<tr>" + "".join(f"<td>{html.escape(v)}</td>" for v in row) + "</tr>"
                   for row in cells.itertuples(index=False))
    more = (f"<p>The first {MAX_TRADE_ROWS:,} of {len(trades):,} trades; every one is in "
            f"trades.csv.</p>" if len(trades) > MAX_TRADE_ROWS else "")
    return (f'{more}<div style="max-height: 26em; overflow-y: auto"><table class="trades">'
            f"<tr>{head}</tr>{rows}</table></div>")


def _forecast_tables(per_ticker: dict[str, dict]) -> str:
    """Forecast quality against the naive forecasts: a table per ticker for a few, one row
    per ticker for many."""
    if len(per_ticker) <= MAX_OVERLAID:
        return "".join(
            f"<h3>{html.escape(t)}</h3>" + _table(
                {k: v for k, v in f.items() if isinstance(v, dict)},
                ["n", "rmse", "mae", "directional_accuracy", "ic"])
            for t, f in per_ticker.items())
    columns = [("model", "n"), ("model", "rmse"), ("naive_zero", "rmse"),
               ("model", "directional_accuracy"), ("naive_last", "directional_accuracy"),
               ("model", "ic"), ("naive_last", "ic")]
    head = "".join(f"<th>{html.escape(k if who == 'model' else f'{k} ({who})')}</th>"
                   for who, k in columns)
    rows = "".join(
        f"<tr><th>{html.escape(t)}</th>" + "".join(
            f"<td>{html.escape(format_metric(k, (f.get(who) or {}).get(k)))}</td>"
            for who, k in columns) + "</tr>" for t, f in per_ticker.items())
    return f"<table><tr><th></th>{head}</tr>{rows}</table>"


def render_html(result: ExperimentResult, charts: list[Path] | None = None, *,
                title: str = "Backtest report", top: str = "", page: Page | None = None,
                trades: pd.DataFrame | None = None) -> str:
    """One self-contained page: tables and charts, interactive (Bokeh, inlined) or, given
    `charts`, the PNGs embedded as data URIs. `top` goes above the first section; its
    interactive charts belong to `page`."""
    metrics = result.metrics
    strategy_keys = ["total_return", "cagr", "volatility", "sharpe", "sortino", "max_drawdown",
                     "calmar", "n_trades", "win_rate", "exposure", "turnover"]
    strategies = {"lstm": metrics["strategy"], **metrics["baselines"]}
    forecast = metrics["forecast"]
    per_ticker = forecast if "model" not in forecast else {next(iter(result.bars)): forecast}
    forecast_html = _forecast_tables(per_ticker)
    folds = pd.concat({t: r.fold_table() for t, r in model_runs(result).items()},
                      names=["ticker", "fold"])
    page = page or Page()
    if charts is None and result.config.report.charts:
        sections = run_charts(result, page)
        chart_html = (
            f"<h2>Equity and the excess over buy & hold</h2>{sections['equity']}"
            f"<h2>Drawdowns (the five worst below)</h2>{sections['drawdown']}"
            f"<h2>Exposure and holdings</h2>{sections['exposure']}"
            f"<h2>Prices and fills</h2>{sections['trades']}"
            f"<h2>Forecasts against what happened</h2>{sections['forecast']}"
            f"<h2>Rolling Sharpe ratio</h2>{sections['sharpe']}"
            + (f"<h2>Rank IC across tickers</h2>{sections['rank_ic']}" if "rank_ic" in sections
               else "")
            + (f"<h2>The graph each fold learnt from</h2>{sections['graph']}"
               if "graph" in sections else ""))
    else:
        chart_html = "<h2>Charts</h2>" + "".join(
            f'<figure><img alt="{p.stem}" src="data:image/png;base64,'
            f'{base64.b64encode(p.read_bytes()).decode()}"></figure>' for p in charts or [])
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in metrics["notes"])
    cfg = result.config
    body = f"""<h1>{html.escape(title)}: {html.escape(cfg.name)} ({html.escape(", ".join(result.bars))})</h1>
<p>Tickers {html.escape(", ".join(result.bars))}; out-of-sample trading from
{metrics["period"]["trade_start"]} to {metrics["period"]["end"]}; {cfg.model.kind} LSTM,
walk-forward retrain every {cfg.train.step} bars, horizon {cfg.train.horizon} bar(s);
commission {cfg.broker.commission_bps} bps, slippage {cfg.broker.slippage_bps} bps,
fills at {cfg.broker.fill.replace("_", " ")}. Charts: drag to pan, scroll or box-zoom one and
every time chart follows; click a legend entry to hide its line.</p>
{top}
<h2>Strategy vs baselines</h2>{_table(strategies, strategy_keys)}
<h2>LSTM strategy: returns by month and year</h2>{_returns_html(result.backtests["lstm"].equity["value"])}
<h2>LSTM strategy: what costs took</h2>{_costs_html(result)}
<h2>LSTM strategy: trades</h2>{_trades_html(trades_table(result) if trades is None else trades)}
<h2>Forecast quality (out of sample) vs naive forecasts</h2>{forecast_html}
{chart_html}
<h2>Notes</h2><ul>{notes}</ul>
<h2>Walk-forward folds</h2>{folds.to_html(float_format=lambda v: f"{v:.4g}")}
<h2>Resolved config</h2><pre>{html.escape(dump_config(cfg))}</pre>"""
    return html_page(f"lstm-strategy: {cfg.name}", body, page)


PAGE_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1250px; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: right; }
th:first-child { text-align: left; }
img { max-width: 100%; } figure { margin: 1em 0; } .chart { margin: 0.5em 0 1.5em; }
pre { background: #f6f6f6; padding: 1em; overflow-x: auto; font-size: 0.8em; }
"""


def html_page(title: str, body: str, page: Page | None = None, style: str = PAGE_STYLE) -> str:
    """A whole self-contained page: `body` with `page`'s charts embedded (BokehJS inlined)
    and the browser check at the end."""
    head, body = page.html(body) if page is not None else ("", body)
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>{style}</style>
{head}</head><body>
{body}
{BROWSER_CHECK}
</body></html>
"""


def _json_default(value: object) -> object:
    if isinstance(value, pd.Timestamp):
        return str(value)
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value)}")


def _write_contents(result: ExperimentResult, folder: Path) -> None:
    (folder / "metrics.json").write_text(
        json.dumps(result.metrics, indent=2, default=_json_default, allow_nan=False))
    equity_curves(result).rename_axis("date").to_csv(folder / "equity.csv")
    lstm = result.backtests["lstm"]
    trades = trades_table(result)
    trades.to_csv(folder / "trades.csv", index=False)
    lstm.fills.to_csv(folder / "orders.csv", index=False)
    result.predictions.to_csv(folder / "predictions.csv", index=False)
    (folder / "config.yaml").write_text(dump_config(result.config))
    runs = model_runs(result)
    folds = pd.concat({t: r.fold_table() for t, r in runs.items()}, names=["ticker", "fold"])
    folds.to_csv(folder / "folds.csv")
    if result.config.report.save_models:
        for ticker, wf in runs.items():
            wf.save(folder / f"models_{ticker}.pt", ticker=ticker)
    report = result.config.report
    charts = None
    if report.charts and report.static:
        from .static import write_charts  # matplotlib only where PNGs are asked for

        charts = write_charts(result, folder)
    (folder / "report.html").write_text(render_html(result, charts, trades=trades))


def check_run_folder(out: Path, *, overwrite: bool = False) -> None:
    """Refuse an `out` that is a file, or a folder holding files unless `overwrite`."""
    if out.exists() and not out.is_dir():
        raise RunFolderExists(f"{out} exists and is not a folder; choose another --out.")
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise RunFolderExists(f"{out} already holds files; choose another --out or pass "
                              f"--overwrite to replace it (it is replaced whole, only after "
                              f"the new run has been written).")




def remove_stale_temp_folders(out: Path) -> list[Path]:
    """Remove what killed runs left beside `out` (their process is gone); returns them.

    A run writes into `.NAME.PID.*.tmp` and moves an old folder aside as
    `.NAME.old-PID`; SIGKILL or a power cut can leave either behind.
    """
    removed = []
    for path in out.parent.glob(f".{out.name}.*"):
        match = re.fullmatch(rf"\.{re.escape(out.name)}\.(?:(\d+)\..*\.tmp|old-(\d+))",
                             path.name)
        if match and path.is_dir() and not pid_alive(int(match.group(1) or match.group(2))):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def write_run(result: ExperimentResult, out: str | Path, *, overwrite: bool = False) -> Path:
    """Write the run folder atomically; an existing `out` is kept unless `overwrite`."""
    return write_folder(out, lambda folder: _write_contents(result, folder), overwrite=overwrite)


def write_folder(out: str | Path, fill: Callable[[Path], None], *, overwrite: bool = False
                 ) -> Path:
    """Have `fill` write a temporary folder beside `out`, then move it into place: a failed
    or interrupted write never leaves a half-written `out`."""
    out = Path(out)
    check_run_folder(out, overwrite=overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temp_folders(out)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.{os.getpid()}.", suffix=".tmp",
                                dir=out.parent))
    try:
        fill(tmp)
        os.chmod(tmp, 0o755)
        if out.exists():
            old = out.with_name(f".{out.name}.old-{os.getpid()}")
            out.rename(old)
            tmp.rename(out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out
