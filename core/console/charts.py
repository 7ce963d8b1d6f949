"""Small inline SVG charts (no script, no web font): a segment's size over its runs with entered/left bars.

Labels are text elements styled by the page's CSS, whose font list ends in the system's CJK fonts, so
Chinese titles and English labels render alike without Internet access (docs/console.md)."""

from __future__ import annotations

from markupsafe import Markup, escape

WIDTH, HEIGHT, PAD = 560, 180, 36


def size_history_svg(runs: list[dict], *, title: str) -> Markup:
    """Runs oldest first (``computed_at``, ``size``, ``entered``, ``left``; None where the caller may not
    know): a line of sizes and, under it, bars of people who entered (up) and left (down)."""
    known = [r for r in runs if r.get("size") is not None]
    if not known:
        return Markup('<p class="muted">no computation yet · 尚未计算</p>')
    n = len(runs)
    step = (WIDTH - 2 * PAD) / max(n - 1, 1)
    top = max(r["size"] for r in known) or 1
    moves = max([abs(r.get(k) or 0) for r in runs for k in ("entered", "left")] + [1])
    base = HEIGHT - PAD
    x = [PAD + i * step if n > 1 else WIDTH / 2 for i in range(n)]
    parts = [Markup('<svg class="chart" role="img" viewBox="0 0 {} {}" width="{}" height="{}" '
                    'aria-label="{}">').format(WIDTH, HEIGHT + 20, WIDTH, HEIGHT + 20, title),
             Markup("<title>{}</title>").format(title)]
    parts.append(Markup('<line x1="{}" y1="{}" x2="{}" y2="{}" class="axis"/>').format(PAD, base, WIDTH - PAD, base))
    for i, run in enumerate(runs):
        for key, sign, css in (("entered", -1, "entered"), ("left", 1, "left")):
            value = run.get(key) or 0
            if value:
                h = 24 * value / moves
                y = base - h if sign < 0 else base
                parts.append(Markup('<rect x="{:.1f}" y="{:.1f}" width="8" height="{:.1f}" class="{}">'
                                    '<title>{}: {}</title></rect>').format(x[i] - 4, y, h, css, key, value))
    points = [(x[i], base - 30 - (HEIGHT - 2 * PAD - 30) * r["size"] / top) for i, r in enumerate(runs)
              if r.get("size") is not None]
    if len(points) > 1:
        parts.append(Markup('<polyline class="size" points="{}"/>').format(
            " ".join(f"{px:.1f},{py:.1f}" for px, py in points)))
    for (px, py), run in zip(points, known):
        parts.append(Markup('<circle cx="{:.1f}" cy="{:.1f}" r="3" class="size"><title>{}: {:,}</title></circle>'
                            ).format(px, py, escape(str(run["computed_at"])[:16]), run["size"]))
    last_x, last_y = points[-1]
    parts.append(Markup('<text x="{:.1f}" y="{:.1f}" class="value">{:,}</text>').format(
        min(last_x, WIDTH - PAD - 30), max(last_y - 8, 12), known[-1]["size"]))
    for index in sorted({0, n - 1}):  # the first and the last run's date under the axis
        parts.append(Markup('<text x="{:.1f}" y="{}" class="label" text-anchor="{}">{}</text>').format(
            x[index], base + 14, "start" if index == 0 and n > 1 else "end" if n > 1 else "middle",
            str(runs[index]["computed_at"])[:10]))
    parts.append(Markup('<text x="{}" y="{}" class="label">规模 size <tspan class="size-key">━</tspan>  '
                        '进入 entered <tspan class="entered">■</tspan>  离开 left <tspan class="left">■</tspan>'
                        '</text>').format(PAD, HEIGHT + 14))
    parts.append(Markup("</svg>"))
    return Markup("").join(parts)


def bar_svg(items: list[tuple[str, int]], *, title: str) -> Markup:
    """Horizontal bars (funnel steps, counts per status) with their labels and values."""
    if not items:
        return Markup('<p class="muted">nothing yet · 暂无</p>')
    top = max(v for _, v in items) or 1
    row = 24
    parts = [Markup('<svg class="chart" role="img" viewBox="0 0 {} {}" width="{}" height="{}" aria-label="{}">'
                    '<title>{}</title>').format(WIDTH, row * len(items) + 8, WIDTH, row * len(items) + 8, title,
                                                title)]
    for i, (label, value) in enumerate(items):
        w = (WIDTH - 220) * value / top
        parts.append(Markup('<text x="0" y="{}" class="label">{}</text><rect x="160" y="{}" width="{:.1f}" '
                            'height="16" class="bar"/><text x="{:.1f}" y="{}" class="value">{:,}</text>').format(
            i * row + 16, label, i * row + 4, w, 166 + w, i * row + 16, value))
    parts.append(Markup("</svg>"))
    return Markup("").join(parts)
