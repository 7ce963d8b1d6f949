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


UNITS = ("", "%", "pp")  # plain numbers; shares (0.25 -> 25.0%); differences of shares (0.05 -> +5.0 pp)


def _unit(chart) -> str:
    if chart.unit not in UNITS:
        raise ValueError(f"unknown chart unit {chart.unit!r}; use one of {UNITS}")
    return chart.unit or ("%" if chart.percent else "")


@attrs.frozen
class BarChart:
    """Grouped vertical bars: one group per category, one bar per series; whiskers from lower/upper.

    ``unit``: ``""`` numbers, ``"%"`` shares (``percent=True`` says the same), ``"pp"`` differences of
    shares in percentage points (as the report tables write them)."""

    categories: tuple[str, ...] = attrs.field(converter=_tuple)
    series: tuple[Series, ...] = attrs.field(converter=_tuple)
    percent: bool = False
    y_label: str = ""
    unit: str = ""


@attrs.frozen
class LineChart:
    """Lines over shared x labels; a None value breaks the line (e.g. a period not yet observed)."""

    x_labels: tuple[str, ...] = attrs.field(converter=_tuple)
    series: tuple[Series, ...] = attrs.field(converter=_tuple)
    percent: bool = False
    y_label: str = ""
    x_label: str = ""
    unit: str = ""


Chart = Union[BarChart, LineChart]


@attrs.frozen
class Section:
    title: str
    text: str | None = None
    table: Table | None = None
    chart: Chart | None = None
    svg: str | None = None  # a drawing made elsewhere (trusted markup, e.g. a journey graph), shown as is


# ---- SVG -----------------------------------------------------------------------------------------
#
# The layout is computed from the text it has to hold: the left margin from the widest tick label, the
# band under the plot from the longest category label (rotated when the labels do not fit side by
# side, shortened with "…" beyond MAX_LABEL_PX, the full text in a tooltip), the legend wrapped into
# rows. Text widths are estimated (a CJK character is one em wide, others about 0.6 em) so nothing is
# drawn outside the viewBox; tests check every label's estimated box against it.

WIDTH = 760
PLOT_HEIGHT = 232
TOP, RIGHT = 18, 16
TICK_PX, VALUE_PX, AXIS_LABEL_PX = 11, 10, 12  # font sizes (also in STYLE)
MAX_LABEL_PX = 150.0
ROTATE_DEGREES = 35


def _esc(text) -> str:
    return html.escape(str(text), quote=True)


def text_width(text: str, size: float = TICK_PX) -> float:
    """Estimated width in px of ``text`` at font ``size``: wide (CJK) characters 1 em, others 0.62 em."""
    import unicodedata

    return sum(size * (1.0 if unicodedata.east_asian_width(ch) in ("W", "F") else 0.62) for ch in str(text))


def _shorten(text: str, limit: float, size: float = TICK_PX) -> str:
    text = str(text)
    if text_width(text, size) <= limit:
        return text
    while text and text_width(text + "…", size) > limit:
        text = text[:-1]
    return text + "…"


def nice_ticks(low: float, high: float, *, count: int = 4) -> list[float]:
    """Round, evenly spaced axis ticks covering [min(low, 0), max(high, 0)], zero among them: about
    ``count`` steps of 1, 2, 2.5 or 5 × 10^k."""
    low, high = min(low, 0.0), max(high, 0.0)
    if not (math.isfinite(low) and math.isfinite(high)) or high - low < 1e-9:
        return [0.0, 0.25, 0.5, 0.75, 1.0]  # nothing (or next to nothing) to show
    raw = (high - low) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 2.5, 5, 10, 20):
        step = factor * magnitude
        first, last = math.floor(low / step + 1e-9), math.ceil(high / step - 1e-9)
        if last - first <= count + 1:
            break
    return [round(i * step, 12) for i in range(first, last + 1)]


def _decimals(step: float, scale: float) -> int:
    """Decimals needed to write multiples of ``step`` (times ``scale``) exactly."""
    for places in range(0, 6):
        shown = step * scale * 10 ** places
        if abs(shown - round(shown)) < 1e-6:
            return places
    return 6


def _fmt(value: float, unit: str, places: int | None = None) -> str:
    """A value as the report tables write it: 20.5%, +4.1 pp, 1,234 or 12.50."""
    if unit == "%":
        return f"{value * 100:.{1 if places is None else places}f}%"
    if unit == "pp":
        shown = value * 100
        if abs(shown) < 0.5 * 10 ** -(1 if places is None else places):
            return "0 pp" if places == 0 else f"{0:.{1 if places is None else places}f} pp"
        return f"{shown:+.{1 if places is None else places}f} pp"
    if places is not None:
        return f"{value:,.{places}f}"
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.2f}"


def _tick_texts(ticks: list[float], unit: str) -> list[str]:
    step = ticks[1] - ticks[0] if len(ticks) > 1 else 1.0
    return [_fmt(t, unit, _decimals(step, 100 if unit in ("%", "pp") else 1)) for t in ticks]


@attrs.frozen
class _Frame:
    """Where a chart's parts go (computed from the text it holds)."""

    left: float
    right: float
    ticks: tuple[float, ...]
    tick_texts: tuple[str, ...]
    label_band: float  # height under the plot for the category labels
    rotate: bool
    labels: tuple[str, ...]  # shown (possibly shortened) category labels
    legend_rows: tuple[tuple[tuple[int, str, float], ...], ...]  # (series index, text, x) per row
    x_title: str
    extra_gap: float  # room under the plot for the value labels of negative bars

    @property
    def plot_w(self) -> float:
        return WIDTH - self.left - self.right

    @property
    def bottom(self) -> float:
        return TOP + PLOT_HEIGHT

    @property
    def labels_y(self) -> float:
        return self.bottom + self.extra_gap + TICK_PX + 4

    @property
    def title_y(self) -> float:
        return self.bottom + self.extra_gap + self.label_band + AXIS_LABEL_PX + 4

    @property
    def legend_y(self) -> float:
        return self.title_y + (6 if self.x_title else -AXIS_LABEL_PX)

    @property
    def height(self) -> float:
        return math.ceil(self.legend_y + 18 * len(self.legend_rows) + 6)

    def y_of(self, value: float) -> float:
        low, high = self.ticks[0], self.ticks[-1]
        return TOP + PLOT_HEIGHT * (high - value) / (high - low)


def _frame(values: list[float], unit: str, y_label: str, labels: Sequence[str], series: Sequence[Series], *,
           at_edges: bool, every: int = 1, x_title: str = "", extra_gap: float = 0.0) -> _Frame:
    """The layout. ``at_edges``: the first and last labels sit on the plot's edges (line charts), else in
    the middle of equal slots (bar charts); ``every``: only every N-th label is drawn."""
    ticks = nice_ticks(min([0.0, *values]), max([0.0, *values]))
    tick_texts = _tick_texts(ticks, unit)
    base_left = 8 + (AXIS_LABEL_PX + 8 if y_label else 0) + max(text_width(t) for t in tick_texts) + 8
    shown = [_shorten(label, MAX_LABEL_PX) for label in labels]
    drawn = [label for i, label in enumerate(shown) if i % every == 0]
    widest = max((text_width(label) for label in drawn), default=0.0)
    angle = math.radians(ROTATE_DEGREES)
    left, right = base_left, float(RIGHT)
    n = max(len(labels), 1)
    for _ in range(3):  # the slot depends on the margins and the margins on the labels: settle it
        plot_w = WIDTH - left - right
        gap = plot_w / max(n - 1, 1) if at_edges else plot_w / n  # between neighbouring labels
        edge = 0.0 if at_edges else gap / 2  # from the plot's side to the first/last label's anchor
        rotate = widest > gap * every * 0.92
        # the room each drawn label needs left of the plot (rotated labels end down and to the left of
        # their anchor; level ones stick out by half their width) and right of it
        need_left, need_right = [], []
        for i, label in enumerate(shown):
            if i % every:
                continue
            w = text_width(label)
            from_left, from_right = edge + i * gap, edge + (len(shown) - 1 - i) * gap
            if rotate:
                need_left.append(w * math.cos(angle) + TICK_PX * math.sin(angle) - from_left + 4)
            else:
                need_left.append(w / 2 - from_left + 4)
                need_right.append(w / 2 - from_right + 4)
        left = max([base_left, *need_left])
        right = max([float(RIGHT), *need_right])
    if rotate:
        band = widest * math.sin(angle) + TICK_PX * math.cos(angle) + 10
    else:
        band = TICK_PX + 10
    rows, row, x = [], [], 0.0
    if len(series) > 1:
        for i, s in enumerate(series):
            name = _shorten(s.name, 200)
            width = 14 + text_width(name) + 16
            if row and x + width > WIDTH - right - left:
                rows.append(tuple(row))
                row, x = [], 0.0
            row.append((i, name, x))
            x += width
        rows.append(tuple(row))
    return _Frame(left, right, tuple(ticks), tuple(tick_texts), band, rotate, tuple(shown), tuple(rows), x_title,
                  extra_gap)


def _axes(frame: _Frame, y_label: str) -> list[str]:
    parts = []
    for value, text in zip(frame.ticks, frame.tick_texts):
        y = frame.y_of(value)
        parts.append(f'<line x1="{frame.left:.1f}" x2="{WIDTH - frame.right:.1f}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>')
        parts.append(f'<text x="{frame.left - 6:.1f}" y="{y + 4:.1f}" text-anchor="end" class="tick">'
                     f'{_esc(text)}</text>')
    if y_label:
        label = _shorten(y_label, PLOT_HEIGHT, AXIS_LABEL_PX)
        parts.append(f'<text transform="translate({8 + AXIS_LABEL_PX:.0f},{TOP + PLOT_HEIGHT / 2:.0f}) rotate(-90)" '
                     f'text-anchor="middle" class="axis-label">{_esc(label)}<title>{_esc(y_label)}</title></text>')
    zero = frame.y_of(0.0)
    parts.append(f'<line x1="{frame.left:.1f}" x2="{WIDTH - frame.right:.1f}" y1="{zero:.1f}" y2="{zero:.1f}" class="axis"/>')
    return parts


def _legend(frame: _Frame) -> list[str]:
    parts = []
    for r, row in enumerate(frame.legend_rows):
        y = frame.legend_y + 18 * r + 12
        for i, name, x in row:
            colour = PALETTE[i % len(PALETTE)]
            parts.append(f'<rect x="{frame.left + x:.1f}" y="{y - 9:.1f}" width="10" height="10" fill="{colour}"/>')
            parts.append(f'<text x="{frame.left + x + 14:.1f}" y="{y:.1f}" class="tick">{_esc(name)}</text>')
    return parts


def _x_label(frame: _Frame, x: float, shown: str, full: str) -> str:
    y = frame.labels_y
    tip = f"<title>{_esc(full)}</title>" if shown != full else ""
    if frame.rotate:
        return (f'<text transform="translate({x:.1f},{y - 4:.1f}) rotate(-{ROTATE_DEGREES})" text-anchor="end" '
                f'class="tick">{_esc(shown)}{tip}</text>')
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="middle" class="tick">{_esc(shown)}{tip}</text>'


def bar_chart_svg(chart: BarChart) -> str:
    """Inline SVG for a bar chart (hover a bar for its exact value)."""
    unit = _unit(chart)
    values = [v for s in chart.series for v in (*s.values, *(s.upper or ()), *(s.lower or ())) if v is not None]
    n_cat, n_ser = max(len(chart.categories), 1), max(len(chart.series), 1)
    negative_labels = any(v is not None and v < 0 for s in chart.series for v in s.values)
    frame = _frame(values, unit, chart.y_label, chart.categories, chart.series, at_edges=False,
                   extra_gap=VALUE_PX + 4 if negative_labels else 0.0)
    group_w = frame.plot_w / n_cat
    bar_w = min(48.0, group_w * 0.8 / n_ser)
    room = (group_w if n_ser == 1 else bar_w) - 2  # a value label is drawn only where it fits over its bar
    y_of = frame.y_of
    parts = _axes(frame, chart.y_label)
    for ci, category in enumerate(chart.categories):
        gx = frame.left + group_w * ci + (group_w - bar_w * n_ser) / 2
        for si, s in enumerate(chart.series):
            value = s.values[ci] if ci < len(s.values) else None
            if value is None:
                continue
            colour = PALETTE[si % len(PALETTE)]
            x = gx + si * bar_w
            y0, y1 = y_of(max(value, 0.0)), y_of(min(value, 0.0))
            tip = f"{category} · {s.name}: {_fmt(value, unit)}"
            lower = s.lower[ci] if s.lower else None
            upper = s.upper[ci] if s.upper else None
            if lower is not None and upper is not None:
                tip += f" ({_fmt(lower, unit)} – {_fmt(upper, unit)})"
            parts.append(f'<rect x="{x + 1:.1f}" y="{y0:.1f}" width="{bar_w - 2:.1f}" height="{max(y1 - y0, 0.5):.1f}" '
                         f'fill="{colour}"><title>{_esc(tip)}</title></rect>')
            if lower is not None and upper is not None:
                cx = x + bar_w / 2
                parts.append(f'<line x1="{cx:.1f}" x2="{cx:.1f}" y1="{y_of(lower):.1f}" y2="{y_of(upper):.1f}" class="whisker"/>')
                for bound in (lower, upper):
                    parts.append(f'<line x1="{cx - 5:.1f}" x2="{cx + 5:.1f}" y1="{y_of(bound):.1f}" '
                                 f'y2="{y_of(bound):.1f}" class="whisker"/>')
            if text_width(_fmt(value, unit), VALUE_PX) <= room:
                label_y = (y0 - 4) if value >= 0 else (y1 + VALUE_PX + 2)
                if lower is not None and upper is not None:  # keep the label clear of the whisker
                    label_y = (min(y0, y_of(upper)) - 4) if value >= 0 else (max(y1, y_of(lower)) + VALUE_PX + 2)
                parts.append(f'<text x="{x + bar_w / 2:.1f}" y="{label_y:.1f}" text-anchor="middle" class="value">'
                             f'{_esc(_fmt(value, unit))}</text>')
        parts.append(_x_label(frame, frame.left + group_w * (ci + 0.5), frame.labels[ci], category))
    parts.extend(_legend(frame))
    return _svg(parts, frame.height)


def line_chart_svg(chart: LineChart) -> str:
    """Inline SVG for a line chart."""
    unit = _unit(chart)
    values = [v for s in chart.series for v in s.values if v is not None]
    n = max(len(chart.x_labels), 1)
    every = max(1, math.ceil(n / 16))
    frame = _frame(values, unit, chart.y_label, chart.x_labels, chart.series, at_edges=True, every=every,
                   x_title=chart.x_label)
    step = frame.plot_w / max(n - 1, 1)

    def xy(i: int, value: float) -> tuple[float, float]:
        return (frame.left + step * i if n > 1 else frame.left + frame.plot_w / 2), frame.y_of(value)

    parts = _axes(frame, chart.y_label)
    for i, label in enumerate(chart.x_labels):
        if i % every == 0:
            parts.append(_x_label(frame, xy(i, 0)[0], frame.labels[i], label))
    if chart.x_label:
        title = _shorten(chart.x_label, frame.plot_w, AXIS_LABEL_PX)
        parts.append(f'<text x="{frame.left + frame.plot_w / 2:.0f}" y="{frame.title_y:.1f}" text-anchor="middle" '
                     f'class="axis-label">{_esc(title)}</text>')
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
                         f'{_esc(f"{s.name} · {label}: {_fmt(value, unit)}")}</title></circle>')
        if run:
            runs.append(run)
        for points in runs:
            if len(points) > 1:
                parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{" ".join(points)}"/>')
    parts.extend(_legend(frame))
    return _svg(parts, frame.height)


def _svg(parts: list[str], height: float) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height:.0f}" width="100%" '
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
td:first-child{white-space:nowrap}.table-wrap{overflow-x:auto;max-width:100%}
nav.reports{font-size:.9em;margin:.4em 0}nav.reports a{margin-right:1em}
footer{color:#888;font-size:.8em;margin-top:2.5em;border-top:1px solid #eee;padding-top:.6em}
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


GENERATOR = '<meta name="generator" content="Motorcade report">'  # marks the pages link_pages may rewrite
NAV_START, NAV_END = "<!-- motorcade:nav -->", "<!-- /motorcade:nav -->"
CJK_NOTE = ("Chinese text on this page needs a CJK font on the viewing machine (Noto Sans CJK, PingFang SC or "
            "Microsoft YaHei); without one it shows as empty boxes. The page embeds no fonts so it stays small "
            "and works offline.")


def _has_cjk(text: str) -> bool:
    import unicodedata

    return any(unicodedata.east_asian_width(ch) in ("W", "F") for ch in text)


def nav_html(links: Sequence[tuple[str, str | None]]) -> str:
    """The links bar between report pages: ``(label, href)``; href None = this page (not a link)."""
    if not links:
        return NAV_START + NAV_END
    items = [f"<a href=\"{_esc(href)}\">{_esc(label)}</a>" if href else f"<strong>{_esc(label)}</strong>"
             for label, href in links]
    return f'{NAV_START}<nav class="reports">Reports: {" ".join(items)}</nav>{NAV_END}'


def render_report(title: str, sections: Sequence[Section], *, subtitle: str | None = None,
                  generated_at: dt.datetime | None = None,
                  links: Sequence[tuple[str, str | None]] = ()) -> str:
    """One self-contained HTML page (inline CSS and SVG; nothing is fetched when it is opened).

    ``links``: ``(label, relative href)`` of related report pages, shown as a bar under the title
    (:func:`motorcade.feedback.render.link_pages` fills it for the pages written into one folder)."""
    generated_at = generated_at or dt.datetime.now(dt.timezone.utc)
    out = [
        "<!DOCTYPE html>",
        '<html lang="zh-CN"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        GENERATOR,
        f"<title>{_esc(title)}</title><style>{STYLE}</style></head><body>",
        f"<h1>{_esc(title)}</h1>",
        nav_html(links),
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
        if section.svg is not None:
            out.append(f'<figure class="wide">{section.svg}</figure>')
        if section.table is not None:
            out.append(f'<div class="table-wrap">{_table_html(section.table)}</div>')
        out.append("</section>")
    if _has_cjk("\n".join(out)):
        out.append(f'<footer>{_esc(CJK_NOTE)}</footer>')
    out.append("</body></html>")
    return "\n".join(out)
