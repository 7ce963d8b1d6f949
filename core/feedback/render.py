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


def report_json(report) -> str:
    return json.dumps(report.to_dict(), ensure_ascii=False, indent=2, default=str)


def emit(report, fmt: str = "table", out: str | Path | None = None, *, console=None) -> str | None:
    """Print or write ``report``. With ``out`` the HTML/JSON goes to that file (and a table format still
    prints in the terminal and writes HTML when ``out`` ends in .html). Returns the path written, if any."""
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
    except OSError as exc:
        raise MotorcadeError(f"cannot write the report to {path}: {exc.strerror}",
                             hint="choose a writable --out path") from None
    return str(path)
