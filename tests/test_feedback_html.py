"""The HTML report renderer: self-contained pages, escaped text, charts that reflect the numbers."""

import re
import xml.etree.ElementTree as ET

import pytest

from motorcade.feedback.html import BarChart, LineChart, Section, Series, Table, bar_chart_svg, line_chart_svg, render_report
from motorcade.feedback.terminal import bar_lines, print_report


def _sections():
    return [
        Section("Sends", text="Two <b>lines</b>\nof text", table=Table(("status", "sends"), [("sent", "120"), ("failed", "3")])),
        Section("Conversion", chart=BarChart(("treatment", "holdout"), (
            Series("rate", (0.21, 0.12), lower=(0.18, 0.08), upper=(0.24, 0.16)),), percent=True)),
        Section("Curve", chart=LineChart(("M0", "M1", "M2", "M3"), (
            Series("2026-01", (0.1, 0.3, None, None)), Series("all", (0.1, 0.25, 0.4, 0.5))), percent=True),
            table=Table(("cohort", "M0"), [("2026-01", "10%")], shade=[[None, 0.1]])),
    ]


def test_page_is_self_contained_and_escaped():
    page = render_report("召回 <campaign> & co", _sections(), subtitle="group view")
    assert page.startswith("<!DOCTYPE html>")
    assert "召回 &lt;campaign&gt; &amp; co" in page
    assert "Two &lt;b&gt;lines&lt;/b&gt;" in page
    assert "<script" not in page
    # nothing is fetched when the page is opened: no external src/href/url()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    assert "url(" not in page and "@import" not in page
    assert page.count("<svg") == 2
    assert "background:rgba(47,109,181,0.14)" in page  # the shaded heat-map cell
    for svg in re.findall(r"<svg.*?</svg>", page, flags=re.S):
        ET.fromstring(svg)  # well-formed XML


def test_bar_heights_follow_the_values():
    svg = ET.fromstring(bar_chart_svg(BarChart(("a", "b", "c"), (Series("n", (10, 5, 0)),))))
    ns = {"s": "http://www.w3.org/2000/svg"}
    heights = [float(r.get("height")) for r in svg.findall("s:rect", ns)]
    assert heights[0] == pytest.approx(2 * heights[1])
    assert heights[2] <= 0.5
    titles = [t.text for t in svg.iter("{http://www.w3.org/2000/svg}title")]
    assert titles == ["a · n: 10", "b · n: 5", "c · n: 0"]


def test_negative_values_and_intervals_render():
    svg = bar_chart_svg(BarChart(("S1", "S2"), (Series("uplift", (-0.05, 0.1), lower=(-0.12, 0.02),
                                                       upper=(0.02, 0.18)),), percent=True))
    ET.fromstring(svg)
    assert "-5.0%" in svg and "(-12.0% – 2.0%)" in svg
    assert svg.count('class="whisker"') == 6


def test_line_chart_breaks_at_missing_values():
    svg = line_chart_svg(LineChart(("M0", "M1", "M2"), (Series("c", (0.2, None, 0.4)), Series("d", (0.1, 0.2, 0.3)))))
    root = ET.fromstring(svg)
    polylines = list(root.iter("{http://www.w3.org/2000/svg}polyline"))
    assert len(polylines) == 1  # series c has no two consecutive points
    assert len(list(root.iter("{http://www.w3.org/2000/svg}circle"))) == 5


def test_terminal_rendering_prints_tables():
    from rich.console import Console

    console = Console(record=True, width=100)
    print_report("Report", _sections(), console=console, subtitle="group view")
    text = console.export_text()
    assert "Sends" in text and "failed" in text and "2026-01" in text
    assert "treatment" in bar_lines(_sections()[1].chart)


def test_several_reports_on_one_page(tmp_path):
    from motorcade.feedback.funnel import FunnelSpec, compute_funnel
    from motorcade.feedback.render import combined_html, emit
    from motorcade.store import open_store

    store = open_store(tmp_path / "empty.db")
    funnel = compute_funnel(store, FunnelSpec("recall", ["sent", "clicked"], (7, "days"), "channel"))
    assert funnel.total.entered == 0 and all(s.from_first is None for s in funnel.total.steps[1:])
    page = combined_html("Demo", [funnel, funnel])
    assert page.count("Funnel recall — Steps") == 2 and page.count("<svg") == 2
    out = emit(funnel, "json", tmp_path / "sub" / "f.json")
    assert '"funnel": "recall"' in (tmp_path / "sub" / "f.json").read_text() and out.endswith("f.json")


# ---- layout: nothing clipped, axes cover the data, one unit style --------------------------------------

import math  # noqa: E402

from hypothesis import given, settings, strategies as st  # noqa: E402

from motorcade.feedback.html import (AXIS_LABEL_PX, PLOT_HEIGHT, TICK_PX, TOP, VALUE_PX, nice_ticks,  # noqa: E402
                                     text_width)

SVG = "{http://www.w3.org/2000/svg}"
SIZES = {"tick": TICK_PX, "value": VALUE_PX, "axis-label": AXIS_LABEL_PX}


def _text_boxes(svg_text):
    """(text, corners) of every <text>: its estimated box (width from the font size, one em high),
    anchored, translated and rotated as drawn."""
    root = ET.fromstring(svg_text)
    for node in root.iter(f"{SVG}text"):
        text = node.text or ""
        size = SIZES[node.get("class")]
        width = text_width(text, size)
        x, y, angle = float(node.get("x", 0)), float(node.get("y", 0)), 0.0
        transform = node.get("transform")
        if transform:
            tx, ty = map(float, re.search(r"translate\(([-\d.]+),([-\d.]+)\)", transform).groups())
            x, y = tx, ty
            rotation = re.search(r"rotate\(([-\d.]+)\)", transform)
            angle = math.radians(float(rotation.group(1))) if rotation else 0.0
        start = {"end": -width, "middle": -width / 2}.get(node.get("text-anchor"), 0.0)
        corners = []
        for dx in (start, start + width):
            for dy in (-0.8 * size, 0.25 * size):  # ascent above the baseline, descent below
                corners.append((x + dx * math.cos(angle) - dy * math.sin(angle),
                                y + dx * math.sin(angle) + dy * math.cos(angle)))
        yield text, corners


def _assert_inside(svg_text):
    root = ET.fromstring(svg_text)
    _, _, width, height = map(float, root.get("viewBox").split())
    for text, corners in _text_boxes(svg_text):
        for cx, cy in corners:
            assert -0.5 <= cx <= width + 0.5 and -0.5 <= cy <= height + 0.5, (text, cx, cy, width, height)


def _assert_values_apart(svg_text):
    """Value labels over bars never overlap each other."""
    root = ET.fromstring(svg_text)
    boxes = []
    for (text, corners), node in zip(_text_boxes(svg_text), root.iter(f"{SVG}text")):
        if node.get("class") == "value":
            xs, ys = [c[0] for c in corners], [c[1] for c in corners]
            boxes.append((text, min(xs), max(xs), min(ys), max(ys)))
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            overlap = a[1] < b[2] - 0.01 and b[1] < a[2] - 0.01 and a[3] < b[4] - 0.01 and b[3] < a[4] - 0.01
            assert not overlap, (a, b)


labels_st = st.text(st.sampled_from("abcxyz_0123456789 上海浦东宝马4S店销售顾问"), min_size=1, max_size=40)
value_st = st.one_of(st.none(), st.floats(-1, 1, allow_nan=False))


@settings(max_examples=60, deadline=None)
@given(categories=st.lists(labels_st, min_size=1, max_size=30), n_series=st.integers(1, 5), data=st.data(),
       unit=st.sampled_from(["", "%", "pp"]), scale=st.sampled_from([1, 100, 1e6]), y_label=labels_st)
def test_bar_chart_labels_stay_inside_and_the_axis_covers_the_data(categories, n_series, data, unit, scale,
                                                                      y_label):
    series = []
    for i in range(n_series):
        values = data.draw(st.lists(value_st, min_size=len(categories), max_size=len(categories)))
        values = [None if v is None else v * (scale if unit == "" else 1) for v in values]
        series.append(Series(data.draw(labels_st), values))
    svg = bar_chart_svg(BarChart(categories, series, unit=unit, y_label=y_label))
    _assert_inside(svg)
    _assert_values_apart(svg)
    root = ET.fromstring(svg)
    for rect in root.iter(f"{SVG}rect"):
        if rect.find(f"{SVG}title") is not None:  # a bar (legend swatches have no tooltip)
            y, h = float(rect.get("y")), float(rect.get("height"))
            assert TOP - 0.01 <= y and y + h <= TOP + PLOT_HEIGHT + 0.51


@settings(max_examples=40, deadline=None)
@given(x_labels=st.lists(labels_st, min_size=1, max_size=40), n_series=st.integers(1, 8), data=st.data(),
       x_label=labels_st)
def test_line_chart_labels_stay_inside_and_points_are_on_the_plot(x_labels, n_series, data, x_label):
    series = [Series(data.draw(labels_st), data.draw(st.lists(st.one_of(st.none(), st.floats(0, 1)),
                                                                min_size=len(x_labels), max_size=len(x_labels))))
              for _ in range(n_series)]
    svg = line_chart_svg(LineChart(x_labels, series, percent=True, y_label="returned", x_label=x_label))
    _assert_inside(svg)
    for circle in ET.fromstring(svg).iter(f"{SVG}circle"):
        assert TOP - 0.01 <= float(circle.get("cy")) <= TOP + PLOT_HEIGHT + 0.01


@given(low=st.floats(-1e9, 1e9), high=st.floats(-1e9, 1e9))
def test_nice_ticks_cover_the_data_with_round_even_steps(low, high):
    low, high = min(low, high), max(low, high)
    ticks = nice_ticks(low, high)
    span = max(high, 0) - min(low, 0)
    assert ticks[0] <= min(low, 0) + 1e-9 * max(1, span) and ticks[-1] >= max(high, 0) - 1e-9 * max(1, span)
    # (a span under 1e-9 gets the default axis [0, 1]; the check above allows for that)
    assert 0.0 in ticks and 2 <= len(ticks) <= 7
    step = ticks[1] - ticks[0]
    if span >= 1e-9:  # fitted: no empty step at either end (an axis of rates does not dip below 0 %)
        assert ticks[0] > min(low, 0) - step * (1 - 1e-9) and ticks[-1] < max(high, 0) + step * (1 - 1e-9)
        assert (ticks[0] == 0) == (low >= 0 or abs(low) < 1e-9 * step)
    steps = {round(b - a, 9) for a, b in zip(ticks, ticks[1:])}
    assert max(steps) - min(steps) <= 1e-6 * max(steps)
    if span < 1e-9:
        return  # next to nothing to show: a default axis
    if span > 0:
        assert ticks[-1] - ticks[0] <= 3 * span
        mantissa = (ticks[1] - ticks[0]) / 10 ** math.floor(math.log10(ticks[1] - ticks[0]))
        assert any(math.isclose(mantissa, m) for m in (1, 2, 2.5, 5, 10))


def test_long_and_cjk_labels_are_not_clipped():
    """The demo's tag-coverage chart: 24 long tag names; and stores named in Chinese."""
    tags = ["activity_level", "intent_activity_quadrant", "replacement_window", "days_since_service"] * 6
    coverage = bar_chart_svg(BarChart(tags, [Series("coverage", [1.0] * len(tags))], percent=True,
                                      y_label="people with a value"))
    _assert_inside(coverage)
    _assert_values_apart(coverage)  # the demo's "100.0%100.0%": labels wider than their bars
    stores = ["北京朝阳宝马4S店", "成都高新宝马城市展厅", "上海浦东奔驰4S店"] * 4
    _assert_inside(bar_chart_svg(BarChart(stores, [Series("treatment", [0.2] * 12), Series("holdout", [0.1] * 12)],
                                          percent=True)))
    _assert_inside(bar_chart_svg(BarChart(["a"], [Series("n", [1_234_567_890])], y_label="people")))


def test_differences_are_in_percentage_points_everywhere():
    svg = bar_chart_svg(BarChart(("S1", "S2"), (Series("uplift", (-0.056, 0.306), lower=(-0.4, 0.1),
                                                       upper=(0.2, 0.45)),), unit="pp", y_label="absolute uplift"))
    texts = [t for t, _ in _text_boxes(svg)]
    assert "-5.6 pp" in texts and "+30.6 pp" in texts
    assert not any(t.endswith("%") for t in texts)
    ticks = [t for t in texts if t.endswith(" pp") and t not in ("-5.6 pp", "+30.6 pp")]
    assert "0 pp" in ticks and all(re.fullmatch(r"[+-]?\d+ pp", t) for t in ticks)


# ---- pages link to each other; the CJK font note -----------------------------------------------------------

def test_report_pages_written_to_one_folder_link_to_each_other(tmp_path):
    from motorcade.feedback.render import emit, link_pages

    class Report:
        def __init__(self, title):
            self.title, self.subtitle = title, None

        def sections(self):
            return [Section("S", text="x")]

        def to_dict(self):
            return {}

    (tmp_path / "notes.html").write_text("<html><title>mine</title><body>keep me</body></html>")
    emit(Report("Funnel · recall"), "html", tmp_path / "funnel.html")
    assert "<nav" not in (tmp_path / "funnel.html").read_text()  # alone: nothing to link to
    emit(Report("Campaign uplift · recall"), "html", tmp_path / "uplift.html")
    emit(Report("Churn <warning>"), "html", tmp_path / "churn.html")
    for name in ("funnel.html", "uplift.html", "churn.html"):
        page = (tmp_path / name).read_text(encoding="utf-8")
        hrefs = re.findall(r'<a href="([^"]+)">', page)
        assert sorted(hrefs) == sorted({"funnel.html", "uplift.html", "churn.html"} - {name})
        assert "Churn &lt;warning&gt;" in page
    assert (tmp_path / "notes.html").read_text() == "<html><title>mine</title><body>keep me</body></html>"
    assert [p.name for p in link_pages(tmp_path)] == ["churn.html", "funnel.html", "uplift.html"]


def test_pages_with_chinese_text_say_they_need_a_cjk_font():
    assert "CJK font" in render_report("召回活动", [Section("S", text="x")])
    assert "CJK font" not in render_report("Recall", [Section("S", text="x")])
