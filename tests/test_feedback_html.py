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
    assert "-5.0%" in svg and "(-12% – 2.0%)" in svg
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
