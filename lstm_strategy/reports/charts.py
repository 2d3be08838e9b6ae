"""Interactive charts for every report: Bokeh, self-contained (BokehJS inlined, no network).

Bokeh rather than Plotly, measured (bench/bench_report_libs.py, BENCHMARKS.md): the same
charts inlined are 3.4-3.6x smaller with Bokeh (1.6 MB for AAPL's 3,270 bars against 5.6 MB;
Plotly's bundle alone is 4.8 MB, so no Plotly page meets the 5 MB limit) and first paint in
Chromium 2.1-2.3x sooner. Every time chart of a page shares one x range (zoom one, all
follow); legends sit right of the plot and hide a line when clicked.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
from bokeh.embed import components
from bokeh.embed.bundle import bundle_for_objs_and_resources
from bokeh.models import (
    BoxAnnotation,
    ColumnDataSource,
    FactorRange,
    HoverTool,
    NumeralTickFormatter,
    Range1d,
    Span,
    TabPanel,
    Tabs,
)
from bokeh.plotting import figure
from bokeh.resources import Resources

PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22", "#17becf")
STRATEGY_COLORS = {"lstm": PALETTE[0], "buy_and_hold": PALETTE[7], "sma_cross": PALETTE[2],
                   "naive_forecast": PALETTE[1]}
TOOLS = "xpan,xwheel_zoom,box_zoom,reset,save"
PLAIN = "0,0.[00]"  # 1,234.56 / 2 / 0.5: never 2x10^0
PERCENT = "0.[0]%"
HEIGHT = 300


def color(k: int) -> str:
    return PALETTE[k % len(PALETTE)]


def epoch_ms(index: pd.Index) -> np.ndarray:
    """Datetimes as the milliseconds since 1970 (UTC) that Bokeh's datetime axes take."""
    values = pd.DatetimeIndex(index)
    if values.tz is not None:
        values = values.tz_convert("UTC").tz_localize(None)
    return values.to_numpy().astype("datetime64[ms]").astype(np.int64).astype(float)


def date_format(index: pd.Index) -> str:
    """Hover's date format: with the time of day for intraday bars."""
    values = pd.DatetimeIndex(index)
    intraday = len(values) > 1 and (values[1:] - values[:-1]).median() < pd.Timedelta(hours=20)
    return "%F %H:%M" if intraday else "%F"


class Page:
    """The charts of one page: time charts share an x range; `html()` embeds them all."""

    def __init__(self) -> None:
        self.models: dict[str, object] = {}
        self.x_range = None

    def time_figure(self, title: str, *, y_format: str = PLAIN, log: bool = False,
                    height: int = HEIGHT, factors: Sequence[str] | None = None) -> figure:
        """A datetime figure linked to the page's other time charts (`factors`: a
        categorical y axis, one row per factor)."""
        linked = {"x_range": self.x_range} if self.x_range is not None else {}
        if factors is not None:
            linked["y_range"] = FactorRange(*factors)
        else:
            linked["y_axis_type"] = "log" if log else "linear"
        fig = figure(title=title, x_axis_type="datetime", height=height,
                     sizing_mode="stretch_width", tools=TOOLS, **linked)
        self.x_range = self.x_range or fig.x_range
        if factors is None:
            fig.yaxis.formatter = NumeralTickFormatter(format=y_format)
        fig.toolbar.logo = None
        return fig

    def add(self, name: str, model: object) -> str:
        """Register a figure or layout; returns the placeholder `html()` fills in."""
        self.models[name] = model
        return f"<!--chart:{name}-->"

    def html(self, page: str) -> tuple[str, str]:
        """(what goes in <head>: BokehJS inlined and the charts' data, the page with every
        placeholder replaced by its chart)."""
        if not self.models:
            return "", page
        script, divs = components(self.models)
        bundle = bundle_for_objs_and_resources(list(self.models.values()),
                                               Resources(mode="inline", log_level="warn"))
        for name, div in divs.items():
            page = page.replace(f"<!--chart:{name}-->", f'<div class="chart">{div}</div>')
        return bundle.scripts() + script, page


def legend_outside(fig: figure) -> None:
    """The legend (of glyphs drawn with a legend_label) right of the plot, never over the
    data; a click hides a line."""
    legend = fig.legend[0]
    legend.click_policy = "hide"
    legend.label_text_font_size = "9pt"
    fig.add_layout(legend, "right")


def lines(fig: figure, index: pd.Index, columns: dict[str, pd.Series | np.ndarray], *,
          y_format: str = PLAIN, colors: dict[str, str] | None = None,
          widths: dict[str, float] | None = None, dashed: Sequence[str] = ()) -> None:
    """One line per column over `index`, with a hover giving the date and each value."""
    data = {"x": epoch_ms(index)}
    names = list(columns)
    for k, name in enumerate(names):  # float32: half the page, still 7 digits on hover
        data[f"y{k}"] = np.asarray(columns[name], dtype=np.float32)
    source = ColumnDataSource(data)
    renderers = []
    for k, name in enumerate(names):
        renderers.append(fig.line("x", f"y{k}", source=source, legend_label=name,
                                  color=(colors or {}).get(name, color(k)),
                                  line_width=(widths or {}).get(name, 1.3),
                                  line_dash="dotted" if name in dashed else "solid"))
    numeral = "{" + y_format + "}"
    fig.add_tools(HoverTool(renderers=renderers[:1], mode="vline", formatters={"@x": "datetime"},
                            tooltips=[("date", "@x{" + date_format(index) + "}")] + [
                                (name, f"@y{k}{numeral}") for k, name in enumerate(names)]))
    legend_outside(fig)


def zero_line(fig: figure, at: float = 0.0, dash: str = "dashed") -> None:
    fig.add_layout(Span(location=at, dimension="width", line_color="#888", line_width=1,
                        line_dash=dash))


def band(fig: figure, low: float, high: float, label: str) -> None:
    """A shaded horizontal band (the range chance alone gives), named in the title."""
    fig.add_layout(BoxAnnotation(bottom=low, top=high, fill_color="#999", fill_alpha=0.15,
                                 line_alpha=0))
    fig.title.text += f" (grey: {label})"


def clamp_y(fig: figure, values: np.ndarray, pad: float = 0.1, include: float | None = 0.0
            ) -> None:
    """A y range that fits `values` (not every line drawn): a baseline far off cannot
    flatten what is read."""
    finite = np.asarray(values, dtype=float)
    finite = finite[np.isfinite(finite)]
    if not len(finite):
        return
    low, high = float(finite.min()), float(finite.max())
    if include is not None:
        low, high = min(low, include), max(high, include)
    margin = pad * max(high - low, 1e-9)
    fig.y_range = Range1d(low - margin, high + margin)


def tabs(panels: dict[str, object]) -> object:
    """A selector between charts (log / linear, one ticker or another)."""
    if len(panels) == 1:
        return next(iter(panels.values()))
    return Tabs(tabs=[TabPanel(child=child, title=title) for title, child in panels.items()],
                sizing_mode="stretch_width")


def heatmap(table: pd.DataFrame, title: str, *, value_format: str = "{:.3g}",
            x_label: str = "", y_label: str = "", objective: str = "value") -> figure:
    """A grid of values (rows x columns of `table`) coloured by value, each cell labelled
    and with a hover."""
    from bokeh.palettes import Viridis256
    from bokeh.transform import linear_cmap

    xs = [_label(c) for c in table.columns]
    ys = [_label(i) for i in table.index]
    cells = [(x, y, float(table.iloc[r, c])) for r, y in enumerate(ys)
             for c, x in enumerate(xs)]
    cells = [cell for cell in cells if np.isfinite(cell[2])]
    values = np.array([v for _, _, v in cells]) if cells else np.array([0.0])
    source = ColumnDataSource({"x": [c[0] for c in cells], "y": [c[1] for c in cells],
                               "value": values[: len(cells)],
                               "text": [value_format.format(c[2]) for c in cells],
                               "ink": ["white" if v < np.median(values) else "black"
                                       for v in values[: len(cells)]]})
    fig = figure(title=title, x_range=xs, y_range=ys, height=max(260, 34 * len(ys) + 90),
                 width=max(420, 62 * len(xs) + 120), tools="hover,save",
                 tooltips=[(x_label or "column", "@x"), (y_label or "row", "@y"),
                           (objective, "@text")])
    fig.rect("x", "y", 1, 1, source=source, line_color=None,
             fill_color=linear_cmap("value", Viridis256, float(values.min()),
                                    float(values.max()) + 1e-12))
    fig.text("x", "y", text="text", source=source, text_align="center",
             text_baseline="middle", text_font_size="8pt", text_color="ink")
    fig.xaxis.axis_label, fig.yaxis.axis_label = x_label, y_label
    fig.xaxis.major_label_orientation = 0.8
    fig.toolbar.logo = None
    return fig


def _label(value: object) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def heat_cell(value: float, text: str, full: float) -> str:
    """A table cell on green (positive) or red (negative), full colour at `full`."""
    if value != value:
        return "<td></td>"
    strength = min(abs(value) / full, 1.0)
    fade = int(255 - 120 * strength)
    rgb = (255, fade, fade) if value < 0 else (fade, 255, fade)
    return f'<td style="background: rgb{rgb}">{html.escape(text)}</td>'


def heat_table(table: pd.DataFrame, fmt: Callable[[float], str], full: float) -> str:
    """A year x month table (returns, IC) with each value written on its colour."""
    head = "".join(f"<th>{c}</th>" for c in ["", *table.columns])
    rows = "".join(
        f"<tr><th>{name}</th>" + "".join(
            heat_cell(v, fmt(v) if v == v else "", full) for v in values)
        + "</tr>" for name, values in zip(table.index, table.to_numpy(dtype=float), strict=True))
    return f"<table><tr>{head}</tr>{rows}</table>"
