"""The demo's closing report: what each stage did, as terminal tables and one HTML page with charts."""

from __future__ import annotations

import collections
import re
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table as RichTable


def reason_kind(reason: str) -> str:
    """A quarantine reason without its row-specific details: the kind of problem, for counting."""
    text = re.sub(r"'[^']*'", "'…'", reason)
    text = re.sub(r": line \d+ column \d+ \(char \d+\)", "", text)
    return re.sub(r"(?<!ISO )\b\d+\b", "N", text)


def _count(store, sql: str, params=()) -> int:
    return store.query(sql, params)[0][0]


def _recommendations(project, as_of) -> list[tuple[str, int, int]]:
    """(item, owners, owners with it first) of the `service_package` recommendation at ``as_of``."""
    from motorcade.dsl.evaluate import person_items
    from motorcade.segments.recommend import compute_recommendations

    rule_set = project.rules()
    rule = rule_set.recommendations.get("service_package")
    if rule is None or as_of is None:
        return []
    ranked = compute_recommendations(project.store, rule_set, "service_package", as_of, project.timezone)
    people, first = dict.fromkeys(rule.items(), 0), dict.fromkeys(rule.items(), 0)
    for items in ranked.values():
        ordered = person_items(items)
        for item in ordered:
            people[item] += 1
        first[ordered[0]] += 1
    return [(item, people[item], first[item]) for item in rule.items()]


def build_summary(project, manifest, results, *, smtp, gateway, responses, timings, as_of=None) -> dict[str, Any]:
    """Everything the report shows, read back from the store (not from the stages' own claims)."""
    from motorcade.tags.engine import health_report

    store = project.store
    truth = manifest["truth"]
    by_stage = {r.stage: r for r in results}
    segments = sorted(((r.name, r.size) for r in by_stage["segments"].details), key=lambda x: -x[1]) \
        if "segments" in by_stage else []
    sends = store.query(
        "SELECT channel, status, coalesce(reason, '') AS reason, count(*) FROM outbox "
        "GROUP BY channel, status, reason ORDER BY channel, status, count(*) DESC, reason")
    holdout = _count(store, "SELECT count(*) FROM audience_snapshots WHERE arm = 'holdout'")
    return {
        "identity": {
            "source records": _count(store, "SELECT count(*) FROM identity_records"),
            "people after One-ID": _count(store, "SELECT count(*) FROM people"),
            "profiles expected (planted truth)": truth["expected_profiles"],
            "merges logged": _count(store, "SELECT count(*) FROM person_merges"),
            "identifiers flagged (shared too widely)": _count(store, "SELECT count(*) FROM identifiers WHERE flagged = 1"),
            "cars": _count(store, "SELECT count(*) FROM cars"),
            "ownerships": _count(store, "SELECT count(*) FROM ownerships"),
            "events": _count(store, "SELECT count(*) FROM events"),
        },
        "quarantine": _quarantine_kinds(store),
        "tags": [(row["tag"], row["calculator"], row["coverage"], row["count"]) for row in health_report(store)],
        "segments": segments,
        "sends": [tuple(r) for r in sends],
        "holdout": holdout,
        "delivered": {
            "e-mails received by the SMTP server": len(smtp.messages),
            "webhook keys received by the gateway": len(gateway.keys),
            "webhook keys received more than once": sum(1 for n in gateway.keys.values() if n > 1),
            "webhook requests with a bad signature": gateway.rejected,
            "advisor call tasks": _count(store, "SELECT count(*) FROM advisor_tasks"),
            "delivery receipts posted to /r/webhook": responses["delivered"],
            "short links followed (GET /s/<code>)": responses["clicked"],
            "link-scanner hits kept apart (not clicks)": responses["bot_hits"],
            "follow-up events": responses["follow_up_events"],
        },
        "timings": timings,
        "recommendations": _recommendations(project, as_of),
    }


def _quarantine_kinds(store) -> list[tuple[str, str, int]]:
    kinds: collections.Counter[tuple[str, str]] = collections.Counter()
    for source, reason, n in store.quarantine_summary():
        kinds[(source, reason_kind(reason))] += n
    return [(source, kind, n) for (source, kind), n in sorted(kinds.items(), key=lambda kv: (-kv[1], kv[0]))]


def print_summary(summary: dict[str, Any]) -> None:
    console = Console()

    def table(title: str, columns: tuple[str, ...], rows) -> None:
        t = RichTable(title=title, title_justify="left")
        for i, column in enumerate(columns):
            t.add_column(column, justify="left" if i == 0 else "right")
        for row in rows:
            t.add_row(*(f"{v:,}" if isinstance(v, int) else str(v) for v in row))
        console.print(t)

    table("One-ID", ("", "count"), summary["identity"].items())
    table("Quarantined rows", ("source", "reason", "rows"), summary["quarantine"])
    table("Tag health", ("tag", "calculator", "coverage", "people"),
          [(t, c, f"{cov:.1%}", n) for t, c, cov, n in summary["tags"]])
    table("Segments", ("segment", "members"), summary["segments"])
    table("Sends per channel, status and guard-rail reason", ("channel", "status", "reason", "sends"),
          summary["sends"])
    console.print(f"People held out as control groups: {summary['holdout']:,}")
    table("Delivered to the local servers", ("", "count"), summary["delivered"].items())
    table("Time per stage", ("stage", "seconds"), [(k, f"{v:.2f}") for k, v in summary["timings"].items()])


def write_html(summary: dict[str, Any], path: Path, *, links: dict[str, str], extra_sections=()) -> Path:
    from motorcade.feedback.html import BarChart, Section, Series, Table, render_report

    status_totals: dict[str, int] = {}
    channel_totals: dict[str, int] = {}
    for channel, status, _reason, n in summary["sends"]:
        status_totals[status] = status_totals.get(status, 0) + n
        channel_totals[channel] = channel_totals.get(channel, 0) + n
    by_source: dict[str, int] = {}
    for source, _reason, n in summary["quarantine"]:
        by_source[source] = by_source.get(source, 0) + n
    sections = [
        Section("One-ID", text="Source records stitched into people (person–car–advisor–store).",
                table=Table(("", "count"), [(k, f"{v:,}") for k, v in summary["identity"].items()])),
        Section("Quarantined rows", text="Rows that could not be used, with the reason; nothing is dropped silently.",
                chart=BarChart(list(by_source), [Series("rows", list(by_source.values()))], y_label="rows per source"),
                table=Table(("source", "reason", "rows"), [(s, r, f"{n:,}") for s, r, n in summary["quarantine"]])),
        Section("Tag coverage",
                chart=BarChart([t for t, *_ in summary["tags"]], [Series("coverage", [c for _, _, c, _ in
                                                                                    summary["tags"]])],
                               percent=True, y_label="people with a value"),
                table=Table(("tag", "calculator", "coverage", "people"),
                            [(t, c, f"{cov:.1%}", f"{n:,}") for t, c, cov, n in summary["tags"]])),
        Section("Segment sizes",
                chart=BarChart([s for s, _ in summary["segments"]], [Series("members", [n for _, n in
                                                                                      summary["segments"]])],
                               y_label="members"),
                table=Table(("segment", "members"), [(s, f"{n:,}") for s, n in summary["segments"]])),
        Section("Sends", text=f"{summary['holdout']:,} people held out as control groups (recorded, not sent).",
                chart=BarChart(list(status_totals), [Series("sends", list(status_totals.values()))], y_label="sends"),
                table=Table(("channel", "status", "reason", "sends"),
                            [(c, s, r or "-", f"{n:,}") for c, s, r, n in summary["sends"]])),
        Section("Delivered to the local servers",
                table=Table(("", "count"), [(k, f"{v:,}") for k, v in summary["delivered"].items()])),
        Section("Recommended service packages (维保套餐)",
                text="`recommend service_package` in rules/owners.mc, per car: owners who get each package, and for "
                     "how many it is the first (the one the recall message names).",
                chart=BarChart([i for i, *_ in summary.get("recommendations", [])],
                               [Series("owners", [n for _, n, _ in summary.get("recommendations", [])]),
                                Series("first", [f for *_, f in summary.get("recommendations", [])])],
                               y_label="owners"),
                table=Table(("package", "owners", "first for"),
                            [(i, f"{n:,}", f"{f:,}") for i, n, f in summary.get("recommendations", [])])),
        Section("Time per stage",
                chart=BarChart(list(summary["timings"]), [Series("seconds", list(summary["timings"].values()))],
                               y_label="seconds"),
                table=Table(("stage", "seconds"), [(k, f"{v:.2f}") for k, v in summary["timings"].items()])),
        *extra_sections,  # the journeys drawn as graphs with counts (motorcade.journeys.observe)
        Section("More", text=" · ".join(f"{name}: {target}" for name, target in links.items())),
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_report("Motorcade demo — example dealer group", sections,
                                  subtitle="collect → One-ID → tags → segments → actions → feedback"),
                    encoding="utf-8")
    from motorcade.feedback.render import link_pages

    link_pages(path.parent)  # the summary, funnel and uplift pages link to each other
    return path
