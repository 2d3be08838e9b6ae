"""The paper run's report: the backtest report of the bars the runner saw, with the
reconciliation of the paper run against that backtest at the top.

`lstm-backtest report RUN` (and `paper` at the end of its source) writes
RUN/report.html and RUN/reconciliation.csv from the journal, while the runner runs or
after it stopped: the journal is read, never locked or written.
"""

from __future__ import annotations

import dataclasses
import html
import sqlite3
import tempfile
from pathlib import Path

import pandas as pd

from ..config import load_config
from ..errors import DataError
from ..experiment import ExperimentResult, run_experiment
from . import charts
from .charts import Page
from .run import model_runs, render_html


@dataclasses.dataclass
class Reconciliation:
    """The paper run against the backtest of the same bars."""

    table: pd.DataFrame  # date, paper_value, backtest_value, difference
    summary: dict

    def line(self) -> str:
        s = self.summary
        return (f"paper vs backtest of the same {s['bars']} bars: fills {s['paper_fills']} / "
                f"{s['backtest_fills']} ({s['matching_fills']} identical), final value "
                f"{s['paper_final']:,.2f} / {s['backtest_final']:,.2f}, largest equity "
                f"difference {s['max_difference']:.6g}"
                + (f", first at {s['first_difference']}" if s["first_difference"] else ""))


def _journal(folder: Path) -> dict[str, pd.DataFrame]:
    path = folder / "journal.sqlite"
    if not path.exists():
        raise DataError(f"{folder}: no journal.sqlite; give the --out folder of a paper run.")
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        return {t: pd.read_sql_query(f"SELECT * FROM {t} ORDER BY seq", db)
                for t in ("bars", "fills", "account", "events")}


def reconcile(paper: dict[str, pd.DataFrame], backtest: ExperimentResult) -> Reconciliation:
    """Fill by fill and bar by bar, the paper journal against the backtest."""
    lstm = backtest.backtests["lstm"]
    account = paper["account"].assign(date=pd.to_datetime(paper["account"]["date"]))
    value = account.set_index("date")["value"]
    bt_value = lstm.equity["value"]
    common = bt_value.index.intersection(value.index)
    table = pd.DataFrame({"paper_value": value.loc[common], "backtest_value": bt_value.loc[common]})
    table["difference"] = table["paper_value"] - table["backtest_value"]
    table.index.name = "date"
    moved = table.index[table["difference"] != 0]
    fills = paper["fills"]
    keys = ["ticker", "side", "size", "price", "commission"]
    mine = [tuple(r) for r in fills[keys].itertuples(index=False)]
    theirs = [tuple(r) for r in lstm.fills[keys].itertuples(index=False)]
    matching = sum(a == b for a, b in zip(mine, theirs, strict=False))
    events = paper["events"]
    folds = sum(len(r.folds) for r in model_runs(backtest).values())
    summary = {
        "paper_swaps": int((events["kind"] == "swap").sum()), "backtest_folds": folds,
        "bars": len(account), "compared_bars": len(table),
        "paper_fills": len(mine), "backtest_fills": len(theirs), "matching_fills": matching,
        "paper_final": float(value.iloc[-1]) if len(value) else float("nan"),
        "backtest_final": float(bt_value.iloc[-1]),
        "max_difference": float(table["difference"].abs().max()) if len(table) else 0.0,
        "first_difference": str(moved[0].date()) if len(moved) else None,
    }
    return Reconciliation(table, summary)


def _section(rec: Reconciliation, page: Page | None) -> str:
    s = rec.summary
    rows = [("bars journaled", s["bars"]), ("bars compared (backtest span)", s["compared_bars"]),
            ("fills: paper / backtest", f"{s['paper_fills']} / {s['backtest_fills']}"),
            ("identical fills (in order)", s["matching_fills"]),
            ("models that took over: paper / backtest folds",
             f"{s['paper_swaps']} / {s['backtest_folds']}"),
            ("final value: paper / backtest",
             f"{s['paper_final']:,.2f} / {s['backtest_final']:,.2f}"),
            ("largest equity difference", f"{s['max_difference']:.6g}"),
            ("first bar whose equity differs", s["first_difference"] or "none")]
    body = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>"
                   for k, v in rows)
    verdict = ("The paper run equals the backtest of the same bars, bit for bit."
               if s["max_difference"] == 0 and s["matching_fills"] == s["backtest_fills"]
               == s["paper_fills"] else
               "The paper run differs from the backtest of the same bars (expected outside "
               "--parity: folds trained in the background take over later"
               + (", and none was ready before the bars ended" if not s["paper_swaps"]
                  else "") + ").")
    title = "Portfolio value: the paper run over the backtest of the same bars"
    if page is not None:
        fig = page.time_figure(title)
        charts.lines(fig, rec.table.index, {"backtest": rec.table["backtest_value"],
                                            "paper run": rec.table["paper_value"]},
                     colors={"backtest": "#bbbbbb", "paper run": "#1f77b4"},
                     widths={"backtest": 4.0, "paper run": 1.3})
        chart = page.add("reconciliation", fig)
    else:
        from .static import inline_png, plt

        fig, ax = plt.subplots(figsize=(12, 4))
        ax.plot(rec.table.index, rec.table["backtest_value"], label="backtest", lw=2.5,
                color="#bbbbbb")
        ax.plot(rec.table.index, rec.table["paper_value"], label="paper run", lw=1.0,
                color="#1f77b4")
        ax.set_ylabel("portfolio value")
        ax.set_title(title)
        ax.ticklabel_format(axis="y", style="plain")
        ax.grid(alpha=0.3)
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
        chart = f"<figure>{inline_png(fig)}</figure>"
    return (f"<h2>Paper run vs backtest of the same bars</h2><p>{html.escape(verdict)}</p>"
            f"<table>{body}</table>{chart}")


def write_live_report(folder: str | Path) -> Reconciliation:
    """Write FOLDER/report.html and FOLDER/reconciliation.csv from the journal."""
    folder = Path(folder)
    journal = _journal(folder)
    if not len(journal["account"]):
        raise DataError(f"{folder}: the journal holds no bar yet; report when it has some.")
    config = load_config(folder / "config.yaml")
    with tempfile.TemporaryDirectory(prefix="lstm-report-") as tmp:
        paths = []
        for ticker, rows in journal["bars"].groupby("ticker", sort=False):
            frame = rows.assign(Date=pd.to_datetime(rows["date"]))[
                ["Date", "open", "high", "low", "close", "volume"]]
            frame.columns = ["Date", "Open", "High", "Low", "Close", "Volume"]
            path = Path(tmp) / f"{ticker}.csv"
            frame.to_csv(path, index=False)
            paths.append(f"{ticker}={path}")
        data = dataclasses.replace(config.data, paths=paths, start=None, end=None,
                                   adjust=False)
        backtest = run_experiment(dataclasses.replace(config, data=data), progress=False)
        rec = reconcile(journal, backtest)
        static = config.report.static
        page = None if static else Page()
        pngs = None
        if static and config.report.charts:
            from .static import write_charts

            pngs = write_charts(backtest, Path(tmp))
        page = render_html(backtest, pngs, title="Paper run report", top=_section(rec, page),
                           page=page)
    rec.table.to_csv(folder / "reconciliation.csv")
    tmp_page = folder / ".report.html.tmp"
    tmp_page.write_text(page)
    tmp_page.replace(folder / "report.html")
    return rec
