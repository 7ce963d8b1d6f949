"""Render any report object (``title``, ``subtitle``, ``sections()``, ``to_dict()``) as a table, JSON or HTML."""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import MotorcadeError
from .html import render_report
from .terminal import print_report

FORMATS = ("table", "json", "html")


def report_html(report) -> str:
    return render_report(report.title, report.sections(), subtitle=report.subtitle)


def combined_html(title: str, reports, *, subtitle: str | None = None) -> str:
    """One page holding several reports (e.g. the demo's funnel and uplift), each section titled by its report."""
    from .html import Section

    sections = []
    for report in reports:
        for section in report.sections():
            sections.append(Section(f"{report.title} — {section.title}",
                                    text="\n".join(t for t in (report.subtitle, section.text) if t),
                                    table=section.table, chart=section.chart))
    return render_report(title, sections, subtitle=subtitle)


def link_pages(directory: str | Path) -> list[Path]:
    """Give every Motorcade report page in ``directory`` a links bar to all the others (by page title).

    Only pages written by :func:`motorcade.feedback.html.render_report` (they carry its generator tag) are
    touched, and only between their navigation markers. Returns the pages, sorted by file name."""
    import html as html_lib
    import re

    from .html import GENERATOR, NAV_END, NAV_START, nav_html

    pages = {}
    for path in sorted(Path(directory).glob("*.html")):
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        if GENERATOR in text and NAV_START in text and NAV_END in text:
            title = re.search(r"<title>(.*?)</title>", text, flags=re.S)
            pages[path] = (html_lib.unescape(title.group(1)) if title else path.stem, text)
    if len(pages) < 2:
        return list(pages)
    for path, (_, text) in pages.items():
        links = [(label, None if other == path else other.name) for other, (label, _) in pages.items()]
        start, end = text.index(NAV_START), text.index(NAV_END) + len(NAV_END)
        updated = text[:start] + nav_html(links) + text[end:]
        if updated != text:
            path.write_text(updated, encoding="utf-8")
    return list(pages)


def report_json(report) -> str:
    return json.dumps(report.to_dict(), ensure_ascii=False, indent=2, default=str)


def emit(report, fmt: str = "table", out: str | Path | None = None, *, console=None) -> str | None:
    """Print or write ``report``. With ``out`` the HTML/JSON goes to that file (and a table format still
    prints in the terminal and writes HTML when ``out`` ends in .html); the report pages in that folder then
    link to each other (:func:`link_pages`). Returns the path written, if any."""
    if fmt not in FORMATS:
        raise MotorcadeError(f"unknown report format {fmt!r}", hint=f"use one of {', '.join(FORMATS)}")
    text = None
    if fmt == "table":
        print_report(report.title, report.sections(), console=console, subtitle=report.subtitle)
        if out is not None:
            text = report_json(report) if str(out).endswith(".json") else report_html(report)
    elif fmt == "json":
        text = report_json(report)
    else:
        text = report_html(report)
    if text is None:
        return None
    if out is None:
        import click

        click.echo(text)
        return None
    path = Path(out)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        if path.suffix == ".html":
            link_pages(path.parent)  # report pages written into one folder link to each other
    except OSError as exc:
        raise MotorcadeError(f"cannot write the report to {path}: {exc.strerror}",
                             hint="choose a writable --out path") from None
    return str(path)
