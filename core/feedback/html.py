"""Self-contained HTML reports: tables and inline SVG charts, no scripts, no network at view time.

A report is a title and a list of :class:`Section` (a heading, optional text, a :class:`Table` and/or a
chart). :func:`render_report` turns them into one HTML page; the same sections print in the terminal
through :mod:`motorcade.feedback.terminal`. Anyone can build sections (the demo does) and reuse it::

    from motorcade.feedback.html import BarChart, Section, Series, Table, render_report
    page = render_report("Recall campaign", [
        Section("Sends", table=Table(("status", "sends"), (("sent", "120"), ("failed", "3")))),
        Section("Conversion", chart=BarChart(("treatment", "holdout"), (Series("rate", (0.21, 0.12)),),
                                             percent=True)),
    ])
"""

from __future__ import annotations

import datetime as dt
import html
import math
from typing import Sequence, Union

import attrs

PALETTE = ("#2f6db5", "#e07b24", "#3a9a5b", "#c23b3b", "#7f5fb5", "#8c6d46", "#d36fb0", "#6f6f6f",
           "#a8a830", "#2aa3b5")


def _tuple(value):
    return tuple(value)


def _rows(value):
    return tuple(tuple(row) for row in value)


@attrs.frozen
class Table:
    """Display cells (already formatted text). ``shade`` (same shape, 0..1 or None) colours cells as a
    heat map; ``numeric`` names the columns aligned to the right (default: all but the first)."""

    columns: tuple[str, ...] = attrs.field(converter=_tuple)
    rows: tuple[tuple[str, ...], ...] = attrs.field(converter=_rows)
    shade: tuple[tuple[float | None, ...], ...] | None = attrs.field(default=None)
    numeric: tuple[int, ...] | None = None

    def is_numeric(self, index: int) -> bool:
        return index > 0 if self.numeric is None else index in self.numeric


@attrs.frozen
class Series:
    """One named series of values (None = no value), with optional interval bounds per value."""

    name: str
    values: tuple[float | None, ...] = attrs.field(converter=_tuple)
    lower: tuple[float | None, ...] | None = attrs.field(default=None)
    upper: tuple[float | None, ...] | None = attrs.field(default=None)


@attrs.frozen
class BarChart:
    """Grouped vertical bars: one group per category, one bar per series; whiskers from lower/upper."""

    categories: tuple[str, ...] = attrs.field(converter=_tuple)
    series: tuple[Series, ...] = attrs.field(converter=_tuple)
    percent: bool = False
    y_label: str = ""


@attrs.frozen
class LineChart:
    """Lines over shared x labels; a None value breaks the line (e.g. a period not yet observed)."""

    x_labels: tuple[str, ...] = attrs.field(converter=_tuple)
    series: tuple[Series, ...] = attrs.field(converter=_tuple)
    percent: bool = False
    y_label: str = ""
    x_label: str = ""


Chart = Union[BarChart, LineChart]


@attrs.frozen
class Section:
    title: str
    text: str | None = None
    table: Table | None = None
    chart: Chart | None = None


# ---- SVG -----------------------------------------------------------------------------------------

WIDTH, HEIGHT = 760, 320
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 16, 72


def _esc(text) -> str:
    return html.escape(str(text), quote=True)


def _nice_max(value: float, percent: bool) -> float:
    """The top of the axis: four gridline steps of a round size (1, 2, 2.5 or 5 × 10^k) covering value."""
    if value <= 0 or not math.isfinite(value):
        return 1.0
    raw = value / 4
    magnitude = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 2.5, 5, 10):
        if raw <= factor * magnitude * (1 + 1e-9):
            top = 4 * factor * magnitude
            return min(top, 1.0) if percent and value <= 1 and top > 1 else top
    return 40 * magnitude


def _fmt(value: float, percent: bool) -> str:
    if percent:
        shown = value * 100
        if abs(shown) >= 10 and abs(shown - round(shown)) < 0.05:
            return f"{shown:.0f}%"
        return f"{shown:.1f}%" if abs(shown) >= 1 or shown == 0 else f"{shown:.2f}%"
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.2f}"


def _axes(top_value: float, percent: bool, y_label: str, bottom_value: float = 0.0) -> list[str]:
    plot_h = HEIGHT - TOP - BOTTOM
    parts = []
    for i in range(5):
        frac = i / 4
        value = bottom_value + (top_value - bottom_value) * frac
        y = TOP + plot_h * (1 - frac)
        parts.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>')
        parts.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" class="tick">{_esc(_fmt(value, percent))}</text>')
    if y_label:
        parts.append(f'<text transform="translate(14,{TOP + plot_h / 2:.0f}) rotate(-90)" text-anchor="middle" '
                     f'class="axis-label">{_esc(y_label)}</text>')
    return parts


def _legend(series: Sequence[Series]) -> list[str]:
    if len(series) < 2:
        return []
    parts, x = [], LEFT
    y = HEIGHT - 14
    for i, s in enumerate(series):
        colour = PALETTE[i % len(PALETTE)]
        parts.append(f'<rect x="{x}" y="{y - 9}" width="10" height="10" fill="{colour}"/>')
        parts.append(f'<text x="{x + 14}" y="{y}" class="tick">{_esc(s.name)}</text>')
        x += 24 + 7 * len(str(s.name))
    return parts


def _x_label(x: float, text: str, rotate: bool) -> str:
    y = HEIGHT - BOTTOM + 14
    if rotate:
        return (f'<text transform="translate({x:.1f},{y}) rotate(-30)" text-anchor="end" class="tick">'
                f'{_esc(text)}</text>')
    return f'<text x="{x:.1f}" y="{y}" text-anchor="middle" class="tick">{_esc(text)}</text>'


def bar_chart_svg(chart: BarChart) -> str:
    """Inline SVG for a bar chart (hover a bar for its exact value)."""
    values = [v for s in chart.series for v in (*s.values, *(s.upper or ()), *(s.lower or ())) if v is not None]
    low = min([0.0, *values])
    top = _nice_max(max([0.0, *values]), chart.percent)
    bottom = -_nice_max(-low, chart.percent) if low < 0 else 0.0
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    n_cat, n_ser = max(len(chart.categories), 1), max(len(chart.series), 1)
    group_w = plot_w / n_cat
    bar_w = min(48.0, group_w * 0.8 / n_ser)

    def y_of(value: float) -> float:
        return TOP + plot_h * (top - value) / (top - bottom)

    parts = _axes(top, chart.percent, chart.y_label, bottom)
    rotate = n_cat > 6 or max((len(c) for c in chart.categories), default=0) * n_cat > 90
    for ci, category in enumerate(chart.categories):
        gx = LEFT + group_w * ci + (group_w - bar_w * n_ser) / 2
        for si, s in enumerate(chart.series):
            value = s.values[ci] if ci < len(s.values) else None
            if value is None:
                continue
            colour = PALETTE[si % len(PALETTE)]
            x = gx + si * bar_w
            y0, y1 = y_of(max(value, 0.0)), y_of(min(value, 0.0))
            tip = f"{category} · {s.name}: {_fmt(value, chart.percent)}"
            lower = s.lower[ci] if s.lower else None
            upper = s.upper[ci] if s.upper else None
            if lower is not None and upper is not None:
                tip += f" ({_fmt(lower, chart.percent)} – {_fmt(upper, chart.percent)})"
            parts.append(f'<rect x="{x + 1:.1f}" y="{y0:.1f}" width="{bar_w - 2:.1f}" height="{max(y1 - y0, 0.5):.1f}" '
                         f'fill="{colour}"><title>{_esc(tip)}</title></rect>')
            if lower is not None and upper is not None:
                cx = x + bar_w / 2
                parts.append(f'<line x1="{cx:.1f}" x2="{cx:.1f}" y1="{y_of(lower):.1f}" y2="{y_of(upper):.1f}" class="whisker"/>')
                for bound in (lower, upper):
                    parts.append(f'<line x1="{cx - 5:.1f}" x2="{cx + 5:.1f}" y1="{y_of(bound):.1f}" '
                                 f'y2="{y_of(bound):.1f}" class="whisker"/>')
            if n_ser == 1 or bar_w >= 34:
                label_y = (y0 - 4) if value >= 0 else (y1 + 12)
                if lower is not None and upper is not None:  # keep the label clear of the whisker
                    label_y = (min(y0, y_of(upper)) - 4) if value >= 0 else (max(y1, y_of(lower)) + 12)
                parts.append(f'<text x="{x + bar_w / 2:.1f}" y="{label_y:.1f}" text-anchor="middle" class="value">'
                             f'{_esc(_fmt(value, chart.percent))}</text>')
        parts.append(_x_label(LEFT + group_w * (ci + 0.5), category, rotate))
    parts.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y_of(0):.1f}" y2="{y_of(0):.1f}" class="axis"/>')
    parts.extend(_legend(chart.series))
    return _svg(parts)


def line_chart_svg(chart: LineChart) -> str:
    """Inline SVG for a line chart."""
    values = [v for s in chart.series for v in s.values if v is not None]
    top = _nice_max(max([0.0, *values]), chart.percent)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    n = max(len(chart.x_labels), 1)
    step = plot_w / max(n - 1, 1)

    def xy(i: int, value: float) -> tuple[float, float]:
        return LEFT + step * i if n > 1 else LEFT + plot_w / 2, TOP + plot_h * (1 - value / top)

    parts = _axes(top, chart.percent, chart.y_label)
    every = max(1, math.ceil(n / 16))
    for i, label in enumerate(chart.x_labels):
        if i % every == 0:
            parts.append(_x_label(xy(i, 0)[0], label, n > 12 and max(len(x) for x in chart.x_labels) > 3))
    if chart.x_label:
        parts.append(f'<text x="{LEFT + plot_w / 2:.0f}" y="{HEIGHT - 26}" text-anchor="middle" class="axis-label">'
                     f'{_esc(chart.x_label)}</text>')
    for si, s in enumerate(chart.series):
        colour = PALETTE[si % len(PALETTE)]
        run: list[str] = []
        runs = []
        for i, value in enumerate(s.values):
            if value is None:
                if run:
                    runs.append(run)
                run = []
                continue
            x, y = xy(i, value)
            run.append(f"{x:.1f},{y:.1f}")
            label = chart.x_labels[i] if i < len(chart.x_labels) else i
            parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{colour}"><title>'
                         f'{_esc(f"{s.name} · {label}: {_fmt(value, chart.percent)}")}</title></circle>')
        if run:
            runs.append(run)
        for points in runs:
            if len(points) > 1:
                parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{" ".join(points)}"/>')
    parts.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{TOP + plot_h}" y2="{TOP + plot_h}" class="axis"/>')
    parts.extend(_legend(chart.series))
    return _svg(parts)


def _svg(parts: list[str]) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" width="100%" '
            f'style="max-width:{WIDTH}px" role="img">' + "".join(parts) + "</svg>")


def chart_svg(chart: Chart) -> str:
    if isinstance(chart, BarChart):
        return bar_chart_svg(chart)
    if isinstance(chart, LineChart):
        return line_chart_svg(chart)
    raise TypeError(f"no renderer for chart type {type(chart).__name__}")


# ---- page -------------------------------------------------------------------------------------------

STYLE = """
body{font-family:-apple-system,"Segoe UI","PingFang SC","Noto Sans CJK SC","Microsoft YaHei",sans-serif;
margin:2em auto;max-width:980px;color:#222;padding:0 1em}
h1{font-size:1.6em;margin-bottom:.2em}h2{font-size:1.2em;margin-top:1.8em;border-bottom:1px solid #ddd}
.meta{color:#666;font-size:.9em}p.text{white-space:pre-line;color:#333}
table{border-collapse:collapse;margin:.6em 0;font-size:.9em}
th,td{border:1px solid #ddd;padding:.3em .6em}th{background:#f3f5f8;text-align:left}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
svg .grid{stroke:#eee}svg .axis{stroke:#888}svg .whisker{stroke:#222;stroke-width:1.5}
svg text{font-size:11px;fill:#444}svg .value{font-size:10px;fill:#222}svg .axis-label{font-size:12px;fill:#333}
"""


def _table_html(table: Table) -> str:
    head = "".join(f"<th>{_esc(c)}</th>" for c in table.columns)
    body = []
    for r, row in enumerate(table.rows):
        cells = []
        for c, cell in enumerate(row):
            cls = ' class="num"' if table.is_numeric(c) else ""
            style = ""
            if table.shade is not None and r < len(table.shade) and c < len(table.shade[r]):
                level = table.shade[r][c]
                if level is not None:
                    level = min(max(float(level), 0.0), 1.0)
                    style = f' style="background:rgba(47,109,181,{0.08 + 0.62 * level:.2f})"'
            cells.append(f"<td{cls}{style}>{_esc(cell)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def render_report(title: str, sections: Sequence[Section], *, subtitle: str | None = None,
                  generated_at: dt.datetime | None = None) -> str:
    """One self-contained HTML page (inline CSS and SVG; nothing is fetched when it is opened)."""
    generated_at = generated_at or dt.datetime.now(dt.timezone.utc)
    out = [
        "<!DOCTYPE html>",
        '<html lang="zh-CN"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_esc(title)}</title><style>{STYLE}</style></head><body>",
        f"<h1>{_esc(title)}</h1>",
    ]
    if subtitle:
        out.append(f'<p class="meta">{_esc(subtitle)}</p>')
    out.append(f'<p class="meta">Generated {_esc(generated_at.isoformat(timespec="seconds"))} by Motorcade</p>')
    for section in sections:
        out.append(f"<section><h2>{_esc(section.title)}</h2>")
        if section.text:
            out.append(f'<p class="text">{_esc(section.text)}</p>')
        if section.chart is not None:
            out.append(f'<figure>{chart_svg(section.chart)}</figure>')
        if section.table is not None:
            out.append(_table_html(section.table))
        out.append("</section>")
    out.append("</body></html>")
    return "\n".join(out)
