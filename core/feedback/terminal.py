"""Print report sections in the terminal with rich (tables; bar charts as a column of bars)."""

from __future__ import annotations

from typing import Sequence

from .html import BarChart, Section

BAR_WIDTH = 30


def print_report(title: str, sections: Sequence[Section], *, console=None, subtitle: str | None = None) -> None:
    from rich.console import Console
    from rich.table import Table as RichTable

    console = console or Console()
    console.print(f"[bold]{title}[/bold]")
    if subtitle:
        console.print(subtitle, style="dim")
    for section in sections:
        console.print()
        console.print(f"[bold underline]{section.title}[/bold underline]")
        if section.text:
            console.print(section.text)
        if section.table is not None:
            table = RichTable(show_header=True, header_style="bold")
            for i, column in enumerate(section.table.columns):
                table.add_column(column, justify="right" if section.table.is_numeric(i) else "left")
            for row in section.table.rows:
                table.add_row(*(str(cell) for cell in row))
            console.print(table)
        elif isinstance(section.chart, BarChart):
            console.print(bar_lines(section.chart))


def bar_lines(chart: BarChart) -> str:
    """A text rendering of a bar chart (for charts that come without a table)."""
    values = [v for s in chart.series for v in s.values if v is not None]
    top = max([abs(v) for v in values] + [1e-12])
    width = max((len(c) for c in chart.categories), default=0)
    lines = []
    for ci, category in enumerate(chart.categories):
        for s in chart.series:
            value = s.values[ci] if ci < len(s.values) else None
            if value is None:
                continue
            label = f"{category} {s.name}" if len(chart.series) > 1 else category
            shown = f"{value * 100:.1f}%" if chart.percent else f"{value:,.4g}"
            lines.append(f"{label.ljust(width + 12)} {'█' * round(BAR_WIDTH * abs(value) / top)} {shown}")
    return "\n".join(lines)
