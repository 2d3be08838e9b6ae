"""Every report opens in a real browser (Debian's headless `chromium`): no console message,
and every chart decoded (the page's own load check, `data-charts="shown/all"`)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from lstm_strategy import load_ohlcv
from lstm_strategy.cli import main

from .conftest import DATA, hourly_bars, tiny_overrides
from .test_sweep import sweep_file

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no chromium on this machine "
                                "(Debian: apt install chromium)")
TINY = [part for value in tiny_overrides() for part in ("--set", value)]


def open_in_chromium(page: Path) -> tuple[str, str]:
    """The page's DOM after load, and what the browser logged."""
    done = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
                           "--enable-logging=stderr", "--v=0", "--virtual-time-budget=5000",
                           "--dump-dom", page.as_uri()], capture_output=True, text=True,
                          timeout=120, check=False)
    return done.stdout, done.stderr


def assert_renders(page: Path, charts: int) -> None:
    dom, log = open_in_chromium(page)
    found = re.search(r'data-charts="(\d+)/(\d+)"', dom)
    assert found, f"{page.name}: the load check never ran"
    shown, total = map(int, found.groups())
    assert total >= charts and shown == total, f"{page.name}: {shown} of {total} charts shown"
    # BokehJS always logs that it set its log level (to "warn": nothing else is logged)
    console = [line for line in log.splitlines() if ":CONSOLE" in line
               and "setting log level to: 'warn'" not in line]
    assert console == [], f"{page.name}: {console}"


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("reports")
    aapl = load_ohlcv(DATA / "AAPL.csv")
    hourly = root / "EURUSD_H1.csv"
    hourly_bars(pd.bdate_range("2008-01-01", "2008-03-31")).rename_axis("Date").to_csv(hourly)
    monthly = root / "AAPL_M.csv"
    aapl.resample("MS").agg({"Open": "first", "High": "max", "Low": "min", "Close": "last",
                             "Volume": "sum"}).rename_axis("Date").to_csv(monthly)
    sp4 = [str(DATA / "sp32" / f"{t}.csv") for t in ("XOM", "CVX", "JPM", "BAC")]
    runs = {
        "daily": [],
        "hourly": ["--data", str(hourly), "--set", "data.macro=null", "--set",
                   "data.start=null", "--set", "data.end=null"],
        "monthly": ["--data", str(monthly), "--set", "data.macro=null", "--set",
                    "data.start=null", "--set", "data.end=null", "--set",
                    "train.min_train_bars=60", "--set", "train.step=12", "--set",
                    "train.context_bars=12"],
        "four_assets": ["--data", *sp4, "--set", "model.kind=pooled"],
    }
    out = {}
    for name, extra in runs.items():
        out[name] = root / name
        assert main(["run", "--out", str(out[name]), "--quiet", *TINY, *extra]) == 0, name
    assert main(["sweep", "--config", str(sweep_file(root)), "--out", str(root / "sweep"),
                 "--quiet"]) == 0
    out["sweep"] = root / "sweep"
    return out


@pytest.mark.parametrize("name", ["daily", "hourly", "monthly", "four_assets"])
def test_a_run_report_renders_every_chart_in_chromium(folders: dict, name: str) -> None:
    assert_renders(folders[name] / "report.html", charts=10)


def test_the_sweep_report_renders_every_chart_in_chromium(folders: dict) -> None:
    assert_renders(folders["sweep"] / "sweep_report.html", charts=3)


def test_a_broken_chart_is_caught(tmp_path: Path) -> None:
    """The check can fail: a page with an image that does not decode."""
    page = tmp_path / "broken.html"
    from lstm_strategy.reports.run import BROWSER_CHECK

    page.write_text(f'<!doctype html><html><body><img src="missing.png">{BROWSER_CHECK}'
                    f"</body></html>")
    with pytest.raises(AssertionError, match="0 of 1 charts shown"):
        assert_renders(page, charts=1)


def test_a_chart_without_data_is_caught(tmp_path: Path) -> None:
    """The check can fail for an interactive chart too: a figure that draws nothing."""
    from bokeh.plotting import figure

    from lstm_strategy.reports.charts import Page
    from lstm_strategy.reports.run import html_page

    page = Page()
    drawn = page.time_figure("drawn")
    drawn.line([0.0, 8.64e7], [1.0, 2.0])
    empty = figure(title="empty")
    empty.line([], [])
    path = tmp_path / "empty.html"
    path.write_text(html_page("t", page.add("a", drawn) + page.add("b", empty), page))
    with pytest.raises(AssertionError, match="1 of 2 charts shown"):
        assert_renders(path, charts=2)
