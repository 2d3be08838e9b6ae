"""The run report's interactive charts and tearsheet tables: what they show equals what the
run folder's files say, by hand; time charts zoom together; the page is self-contained."""

from __future__ import annotations

import html
import re

import numpy as np
import pandas as pd
import pytest
from bokeh.models import ColumnDataSource, DatetimeAxis, HoverTool, Tabs
from bokeh.plotting import figure

from lstm_strategy import load_config, run_experiment
from lstm_strategy.evaluation.tables import monthly_means, positions, worst_drawdowns
from lstm_strategy.reports.charts import Page
from lstm_strategy.reports.run import render_html, write_run
from lstm_strategy.reports.run_charts import run_charts

from .conftest import ROOT, tiny_overrides

FOUR = [str(ROOT / "data" / "sp32" / f"{t}.csv") for t in ("XOM", "CVX", "JPM", "BAC")]


@pytest.fixture(scope="module")
def one() -> object:
    return run_experiment(load_config(None, tiny_overrides(), device="cpu"), progress=False)


@pytest.fixture(scope="module")
def four() -> object:
    overrides = tiny_overrides(**{"model.kind": "lstm_gnn", "model.graph_k": "2"})
    config = load_config(None, overrides, device="cpu")
    import dataclasses
    config = dataclasses.replace(config, data=dataclasses.replace(config.data, paths=FOUR))
    return run_experiment(config, progress=False)


def test_worst_drawdowns_are_the_deepest_periods_by_hand() -> None:
    index = pd.date_range("2020-01-01", periods=9)
    equity = pd.Series([1, 2, 1.5, 1.8, 2.2, 1.1, 1.2, 3, 2.9], index=index)
    table = worst_drawdowns(equity, n=5)
    assert list(table["depth"]) == pytest.approx([1.1 / 2.2 - 1, 1.5 / 2 - 1, 2.9 / 3 - 1])
    assert list(table["peak"]) == [index[4], index[1], index[7]]
    assert list(table["trough"]) == [index[5], index[2], index[8]]
    assert list(table["recovery"][:2]) == [index[7], index[4]] and table["recovery"][2] is pd.NaT
    assert list(table["bars"]) == [3, 3, 1]
    assert len(worst_drawdowns(equity, n=2)) == 2
    assert worst_drawdowns(pd.Series([1.0, 2.0, 3.0], index=index[:3])).empty


def test_positions_from_the_fills_are_the_backtests_exposure(one: object) -> None:
    """Shares held (from orders) times the close is the exposure backtrader reported."""
    lstm = one.backtests["lstm"]
    held = positions(lstm.fills, lstm.equity.index, ["AAPL"])["AAPL"]
    close = one.bars["AAPL"]["Close"].reindex(held.index)
    assert (held != 0).sum() > 20
    np.testing.assert_allclose((held * close).abs().fillna(0.0), lstm.equity["gross_exposure"],
                               rtol=1e-9, atol=1e-6)


def test_monthly_means_by_hand() -> None:
    index = pd.to_datetime(["2020-01-02", "2020-01-03", "2020-02-03", "2021-03-01"])
    table = monthly_means(pd.Series([0.1, 0.3, -0.2, 0.05], index=index))
    assert table.loc[2020, "Jan"] == pytest.approx(0.2)
    assert table.loc[2020, "Feb"] == pytest.approx(-0.2) and np.isnan(table.loc[2020, "Mar"])
    assert table.loc[2020, "Year"] == pytest.approx(0.2 / 3)
    assert table.loc[2021, "Mar"] == pytest.approx(0.05)


def _figures(model: object) -> list:
    return list(model.select({"type": figure}))


def test_time_charts_zoom_together_and_equity_toggles_log_and_linear(one: object) -> None:
    page = Page()
    run_charts(one, page)
    figures = [f for m in page.models.values() for f in _figures(m)]
    timed = [f for f in figures if isinstance(f.xaxis[0], DatetimeAxis)]
    assert len(timed) >= 8
    assert all(f.x_range is timed[0].x_range for f in timed)  # one range: zoom one, all follow
    toggle = next(iter(page.models["equity"].select({"type": Tabs})))
    assert [t.title for t in toggle.tabs] == ["log scale", "linear scale"]
    scales = [type(next(iter(_figures(t.child))).y_scale).__name__ for t in toggle.tabs]
    assert scales == ["LogScale", "LinearScale"]


def test_hover_on_a_fill_names_its_date_side_size_price_and_forecast(one: object) -> None:
    page = Page()
    run_charts(one, page)
    fills = one.backtests["lstm"].fills
    preds = one.predictions.set_index("date")["prediction"]
    index = one.bars["AAPL"].index
    trades = _figures(page.models["trades"])[0]
    hover = next(h for h in trades.select({"type": HoverTool}) if len(h.renderers) == 2)
    assert [name for name, _ in hover.tooltips] == ["date", "side", "size", "price", "forecast"]
    for side in ("buy", "sell"):
        source = next(s for s in trades.select({"type": ColumnDataSource})
                      if list(s.data.get("side", []))[:1] == [side])
        mine = fills[fills["side"] == side]
        assert len(mine) > 3
        np.testing.assert_array_equal(source.data["price"], mine["price"].to_numpy())
        np.testing.assert_array_equal(source.data["size"], mine["size"].abs().to_numpy())
        days = pd.to_datetime(source.data["x"], unit="ms")
        assert list(days) == list(pd.to_datetime(mine["date"]))
        decided = index[index.get_indexer(days) - 1]  # the bar the order was placed on
        np.testing.assert_array_equal(source.data["forecast"], preds.reindex(decided).to_numpy())


def test_the_page_is_self_contained_and_says_every_section(one: object, tmp_path) -> None:
    out = write_run(one, tmp_path / "run")
    page = (out / "report.html").read_text()
    assert not re.search(r"<script[^>]+src=", page)  # BokehJS inlined: opens offline
    assert "cdn.bokeh.org" not in page and (out / "report.html").stat().st_size < 5e6
    for section in ("Equity and the excess over buy &amp; hold", "Drawdowns (the five worst",
                    "Exposure and holdings", "Prices and fills", "Forecasts against what",
                    "Rolling Sharpe ratio", "95% band of chance", "peak</th><th>trough"):
        assert section.replace("&amp;", "&") in page or section in page, section
    assert not list(out.glob("*.png"))  # interactive by default: no PNG files
    # the page's trade list is trades.csv, row for row
    table = page[page.index('<table class="trades">'):]
    table = table[:table.index("</table>")]
    rows = [re.findall(r"<td>([^<]*)</td>", r) for r in table.split("<tr>")[2:]]
    trades = pd.read_csv(out / "trades.csv")
    assert len(rows) == len(trades) > 3
    for row, (_, trade) in zip(rows, trades.iterrows(), strict=True):
        cells = dict(zip(trades.columns, row, strict=True))
        assert cells["entry_date"] == trade["entry_date"][:10]
        assert float(cells["exit_price"].replace(",", "")) == pytest.approx(
            trade["exit_price"], rel=1e-5)
        assert float(cells["pnl_net"].replace(",", "")) == pytest.approx(trade["pnl_net"],
                                                                         abs=0.006)
        assert float(cells["size"].replace(",", "")) == trade["size"]


def test_static_reports_embed_pngs_for_papers_and_email(tmp_path) -> None:
    config = load_config(None, tiny_overrides(**{"report.static": "true"}), device="cpu")
    out = write_run(run_experiment(config, progress=False), tmp_path / "static")
    page = (out / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 5 and "Bokeh.embed" not in page
    assert {p.name for p in out.glob("*.png")} == {"equity.png", "drawdown.png", "trades.png",
                                                    "forecast.png", "rolling_sharpe.png"}


def test_many_assets_get_a_ticker_selector_holdings_rank_ic_and_each_folds_graph(
        four: object) -> None:
    page = Page()
    sections = run_charts(four, page)
    selector = next(iter(page.models["trades"].select({"type": Tabs})))
    assert [t.title for t in selector.tabs] == ["XOM", "CVX", "JPM", "BAC"]
    holdings = next(f for f in _figures(page.models["exposure"]) if "Holdings" in f.title.text)
    bars = next(s for s in holdings.select({"type": ColumnDataSource}) if "ticker" in s.data)
    assert set(bars.data["ticker"]) <= {"XOM", "CVX", "JPM", "BAC"} and len(bars.data["ticker"])
    assert "Rank IC by month" in sections["rank_ic"]
    graphs = four.walk_forward["XOM"].folds
    rows = re.findall(r"<tr><td>(\d{4}-\d\d-\d\d)</td><td>(\d+)</td>", sections["graph"])
    assert len(rows) == len(graphs) and all(int(n) > 0 for _, n in rows)
    page_html = render_html(four)
    assert "The graph each fold learnt from" in page_html and "Rank IC across tickers" in page_html


SWITCH = """<script>
window.addEventListener("load", () => { const poll = () => {
  const doc = Bokeh.documents[0];
  if (!doc || !doc.is_idle) { setTimeout(poll, 20); return; }
  const select = doc.get_model_by_name("ticker_select");
  select.value = "JPM";  // its CustomJS runs asynchronously: read the chart a moment later
  setTimeout(() => {
    const fig = doc.get_model_by_name("price_chart");
    const marks = fig.renderers.map(r => r.data_source.get_length());
    document.body.dataset.switched = fig.title.text + "|" + marks.join(",");
  }, 500);
}; poll(); });
</script>"""


def test_the_ticker_selector_switches_the_chart_in_a_browser(four: object, tmp_path,
                                                              monkeypatch) -> None:
    """With more tickers than tabs, one chart and a selector: choosing JPM in Chromium
    shows JPM's title, closes and fills."""
    from lstm_strategy.reports import run_charts as module
    from lstm_strategy.reports.run import html_page

    from .test_browser import CHROMIUM, open_in_chromium

    if CHROMIUM is None:
        pytest.skip("no chromium on this machine (Debian: apt install chromium)")
    monkeypatch.setattr(module, "MAX_TICKER_TABS", 2)
    page = Page()
    path = tmp_path / "selector.html"
    text = html_page("t", page.add("trades", module.trades_chart(four, page)), page)
    end = text.rindex("</body>")  # BokehJS itself holds the string "</body>"
    path.write_text(text[:end] + SWITCH + text[end:])
    dom, log = open_in_chromium(path)
    switched = re.search(r'data-switched="([^"]*)"', dom)
    assert switched, f"the page never switched: {log[-2000:]}"
    title, lengths = html.unescape(switched.group(1)).split("|")
    fills = four.backtests["lstm"].fills
    jpm = fills[fills["ticker"] == "JPM"]
    closes = len(four.bars["JPM"]["Close"].loc[four.trade_start:])
    assert title.startswith("JPM: close")
    assert lengths == f"{closes},{(jpm['side'] == 'buy').sum()},{(jpm['side'] == 'sell').sum()}"


def test_interactive_reports_load_no_matplotlib() -> None:
    """matplotlib (0.6 s to import) only where PNGs are asked for (report.static)."""
    import subprocess
    import sys

    code = ("import sys; import lstm_strategy.reports.run, lstm_strategy.reports.sweep, "
            "lstm_strategy.reports.compare, lstm_strategy.reports.live; "
            "print('matplotlib' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=ROOT).stdout.strip()
    assert out == "False"
