"""Bokeh or Plotly for the reports' interactive charts: file size and time to first paint.

The same content in both libraries, self-contained (the library's JS inlined): for one
asset, AAPL's 3,270 bars as five growth curves and the price with its buy and sell markers
(hover on each); for 32 assets (sp32), each asset's price with its markers, linked time
axes. Each page is served from a local HTTP server and opened in headless Chromium; the page
itself reports, through a request back to the server, the milliseconds from navigation
start until every chart has drawn (Bokeh's document idle; Plotly's newPlot promises) and a
frame has been painted. Chromium starting up is not counted.

    python bench/bench_report_libs.py [--repeats N]

Needs `bokeh` (a dependency) and `plotly` (`pip install plotly`; said and skipped when
absent) and Debian's `chromium`.
"""

from __future__ import annotations

import argparse
import http.server
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import ClassVar

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from lstm_strategy import load_ohlcv  # noqa: E402

REPORT_BACK = """<script>
function reportBack() {{ requestAnimationFrame(() => requestAnimationFrame(() => {{
  new Image().src = "/done?ms=" + performance.now().toFixed(1); }})); }}
{wait}
</script>"""
BOKEH_WAIT = """window.addEventListener("load", () => { const poll = () => {
  const doc = Bokeh.documents[0];
  if (doc && doc.is_idle) reportBack(); else setTimeout(poll, 5); }; poll(); });"""


def panels(one_asset: bool) -> list[dict]:
    """What each chart shows: a list of {title, x, lines: {name: y}, buys, sells}."""
    rng = np.random.default_rng(0)
    tickers = ["AAPL"] if one_asset else sorted(p.stem for p in (ROOT / "data" / "sp32").glob(
        "*.csv") if p.stem != "sectors")
    out = []
    for ticker in tickers:
        path = ROOT / "data" / ("AAPL.csv" if one_asset else f"sp32/{ticker}.csv")
        close = load_ohlcv(path)["Close"]
        picks = np.sort(rng.choice(len(close), size=min(300, len(close) // 10), replace=False))
        out.append({"title": ticker, "x": close.index, "lines": {"close": close.to_numpy()},
                    "buys": picks[::2], "sells": picks[1::2]})
    if one_asset:
        growth = out[0]["lines"]["close"] / out[0]["lines"]["close"][0]
        out.insert(0, {"title": "growth", "x": out[0]["x"], "buys": [], "sells": [],
                       "lines": {f"strategy {k}": growth * (1 + 0.1 * k) for k in range(5)}})
    return out


def bokeh_page(charts: list[dict]) -> str:
    from bokeh.embed import file_html
    from bokeh.layouts import column
    from bokeh.models import ColumnDataSource, HoverTool
    from bokeh.plotting import figure
    from bokeh.resources import Resources

    figures, shared = [], None
    for chart in charts:
        linked = {"x_range": shared} if shared is not None else {}
        fig = figure(title=chart["title"], x_axis_type="datetime", height=260,
                     sizing_mode="stretch_width", tools="xpan,xwheel_zoom,box_zoom,reset,save",
                     **linked)
        shared = shared or fig.x_range
        for k, (name, y) in enumerate(chart["lines"].items()):
            fig.line(chart["x"], y, legend_label=name, color=f"#{(k * 40) % 256:02x}4488")
        close = next(iter(chart["lines"].values()))
        for side, marker, color in (("buys", "triangle", "green"),
                                    ("sells", "inverted_triangle", "red")):
            at = np.asarray(chart[side], dtype=int)
            if len(at) == 0:
                continue
            source = ColumnDataSource({"x": chart["x"][at], "y": close[at],
                                       "size": np.full(len(at), 10.0)})
            glyph = fig.scatter("x", "y", source=source, marker=marker, color=color, size=7)
            fig.add_tools(HoverTool(renderers=[glyph], tooltips=[("date", "@x{%F}"),
                                                                 ("price", "@y"), ("size", "@size")],
                                    formatters={"@x": "datetime"}))
        figures.append(fig)
    html = file_html(column(figures, sizing_mode="stretch_width"),
                     Resources(mode="inline", log_level="warn"), "bench")
    return html.replace("</body>", REPORT_BACK.format(wait=BOKEH_WAIT) + "</body>")


def plotly_page(charts: list[dict]) -> str:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=len(charts), cols=1, shared_xaxes=True,
                        subplot_titles=[c["title"] for c in charts], vertical_spacing=0.02)
    for row, chart in enumerate(charts, start=1):
        for name, y in chart["lines"].items():
            fig.add_trace(go.Scattergl(x=chart["x"], y=y, name=name, mode="lines"), row=row,
                          col=1)
        close = next(iter(chart["lines"].values()))
        for side, symbol, color in (("buys", "triangle-up", "green"),
                                    ("sells", "triangle-down", "red")):
            at = np.asarray(chart[side], dtype=int)
            if len(at):
                fig.add_trace(go.Scatter(x=chart["x"][at], y=close[at], mode="markers", name=side,
                                         marker={"symbol": symbol, "color": color},
                                         customdata=np.full(len(at), 10.0),
                                         hovertemplate="%{x|%Y-%m-%d} %{y} size %{customdata}"),
                              row=row, col=1)
    fig.update_layout(height=260 * len(charts), showlegend=True)
    body = fig.to_html(include_plotlyjs=True, full_html=True, div_id="chart",
                       post_script="window.plotlyDone = true;")
    wait = """window.addEventListener("load", () => { const poll = () => {
  if (window.plotlyDone) reportBack(); else setTimeout(poll, 5); }; poll(); });"""
    return body.replace("</body>", REPORT_BACK.format(wait=wait) + "</body>")


class _Catcher(http.server.SimpleHTTPRequestHandler):
    reported: ClassVar[list[float]] = []

    def do_GET(self) -> None:
        if self.path.startswith("/done?ms="):
            _Catcher.reported.append(float(self.path.split("=", 1)[1]))
            self.send_response(204)
            self.end_headers()
            return
        super().do_GET()

    def log_message(self, *args: object) -> None:
        pass


def first_paint(page: Path, chromium: str) -> float:
    """Milliseconds from navigation to every chart drawn, as the page reports it."""
    handler = lambda *a, **k: _Catcher(*a, directory=str(page.parent), **k)  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    profile = tempfile.mkdtemp(prefix="bench-chromium-")
    _Catcher.reported = []
    browser = subprocess.Popen(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={profile}",
         "--remote-debugging-port=0", "--window-size=1300,900",
         f"http://127.0.0.1:{server.server_address[1]}/{page.name}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not _Catcher.reported and time.monotonic() < deadline:
            time.sleep(0.02)
        if not _Catcher.reported:
            raise RuntimeError(f"{page.name}: never reported that its charts were drawn")
        return _Catcher.reported[0]
    finally:
        browser.kill()
        browser.wait()
        server.shutdown()
        shutil.rmtree(profile, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        sys.exit("needs Debian's chromium (apt install chromium)")
    builders = {"bokeh": bokeh_page}
    try:
        import plotly  # noqa: F401
        builders["plotly"] = plotly_page
    except ImportError:
        print("plotly is not installed (pip install plotly): only Bokeh is measured")
    folder = Path(tempfile.mkdtemp(prefix="bench-report-libs-"))
    results = {}
    for case, one in (("AAPL, 3,270 bars", True), ("sp32, 32 assets", False)):
        charts = panels(one)
        for lib, build in builders.items():
            started = time.perf_counter()
            page = folder / f"{lib}_{int(one)}.html"
            page.write_text(build(charts))
            built = time.perf_counter() - started
            paints = [first_paint(page, chromium) for _ in range(args.repeats)]
            results[(case, lib)] = {"MB": page.stat().st_size / 1e6, "build_s": built,
                                    "paint_ms": statistics.median(paints)}
    print(f"{'case':<18} {'library':<8} {'file MB':>8} {'build s':>8} {'first paint ms':>15}")
    for (case, lib), row in results.items():
        print(f"{case:<18} {lib:<8} {row['MB']:>8.2f} {row['build_s']:>8.2f} "
              f"{row['paint_ms']:>15.0f}")
    if "plotly" in builders:
        for case in ("AAPL, 3,270 bars", "sp32, 32 assets"):
            b, p = results[(case, "bokeh")], results[(case, "plotly")]
            print(f"{case}: plotly / bokeh = {p['MB'] / b['MB']:.2f}x size, "
                  f"{p['paint_ms'] / b['paint_ms']:.2f}x time to first paint")
    print(json.dumps({f"{c} | {lib}": r for (c, lib), r in results.items()}))
    shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
