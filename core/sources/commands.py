"""CLI commands of the sources stage (added to the root CLI by motorcade.cli): ingest, quarantine."""

from __future__ import annotations

import json
import sys

import click

from ..cli_types import ROW_ID, SQLITE_INTEGER_MAX
from ..masking import mask_free_text, mask_message

# How much of a quarantined raw row is shown: cut before it is masked (a field can be megabytes long).
RAW_SHOWN = 200
RAW_SHOWN_JSON = 4000
REASON_SHOWN = 500  # a reason quotes the value it is about, which can be as long as the field


def mask_text(text: str, limit: int | None = RAW_SHOWN) -> str:
    """A quarantined raw row, cut to ``limit`` characters, with its personal data masked
    (MOTORCADE_SHOW_PII=1 shows it)."""
    return mask_free_text(text, limit=limit)


def _state():
    return click.get_current_context().obj


@click.command()
@click.argument("sources", nargs=-1)
@click.option("--all", "all_sources", is_flag=True, help="Ingest every configured source, in config order.")
@click.option("--json", "as_json", is_flag=True, help="Print the summaries as JSON.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def ingest(sources: tuple[str, ...], all_sources: bool, as_json: bool, quiet: bool) -> None:
    """Read SOURCES (names of [sources.*] in motorcade.toml): clean, stitch identities, write.

    Bad rows go to quarantine with the reason (see `motorcade quarantine list`). Re-running a
    source is safe: what is already stored is not written twice.
    """
    from ..errors import UsageError
    from ..analytics.ingest import ingest_opened, into_engine
    from .ingest import open_source, project_ingestor

    project = _state().project
    names = list(project.config.sources) if all_sources else list(sources)
    if not names:
        raise UsageError("name the sources to ingest, or pass --all",
                         hint=f"configured: {', '.join(project.config.sources) or 'none'}")
    # Every source is opened (its settings and mapping checked) before the first row is read and before
    # any progress bar starts: a configuration error stops the run with nothing half done.
    opened = [open_source(project, name) for name in names]
    ingestor = project_ingestor(project)
    show_bar = not (quiet or as_json) and sys.stderr.isatty()  # no bar frames in piped output
    results = []
    for source in opened:
        name = source.name
        if not show_bar or into_engine(source):
            summary = ingest_opened(project, source, ingestor)
        else:
            summary = _ingest_with_bar(ingestor, source)
        results.append(summary)
        if not as_json:
            click.echo(
                f"{name}: read {summary.read:,}, written {summary.written:,} (events {summary.events:,}, "
                f"already stored {summary.duplicates:,})"
                + (f", stores/advisors/cars {summary.reference:,}" if summary.reference else "")
                + f", people created {summary.people_created:,}, "
                f"merged {summary.merged:,}, flagged identifiers {summary.flagged:,}, "
                f"quarantined {summary.rejected:,} ({summary.quarantined:,} new)"
                + (f", identifiers dropped {summary.identifiers_dropped:,}" if summary.identifiers_dropped else "")
                + f" in {summary.seconds:.1f} s ({summary.rows_per_second:,.0f} rows/s)"
            )
            for warning in summary.warnings():
                click.echo(warning)
    if as_json:
        click.echo(json.dumps([s.as_dict() for s in results], ensure_ascii=False))
    if any(s.rejected for s in results) and not as_json:
        click.echo("Rows in quarantine: `motorcade quarantine list` shows them with the reason.")
    if any(s.identifiers_dropped for s in results) and not as_json:
        click.echo("Identifiers dropped (did not clean): `motorcade identity rejected` shows them with the reason.")
    if any(s.flagged for s in results) and not as_json:
        click.echo("Identifiers flagged (link nobody): `motorcade identity flagged` shows them with the reason.")


def _ingest_with_bar(ingestor, source):
    """Ingest ``source`` under a progress bar on stderr: rows read against the source's estimate of its
    size (with a time estimate) where it has one, else a running count."""
    from rich.console import Console
    from rich.progress import (BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn,
                               TimeRemainingColumn)

    total = source.size_hint()
    with Progress(SpinnerColumn(), TextColumn("[bold]{task.description}"), BarColumn(),
                  TextColumn("{task.completed:>10,} rows"), TextColumn("{task.fields[rate]:>9} rows/s"),
                  TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
                  console=Console(stderr=True), transient=False) as bar:
        task = bar.add_task(source.name, total=total or None, rate="-")

        def progress(n: int) -> None:
            bar.advance(task, n)
            state = bar.tasks[0]
            if state.total is not None and state.completed > state.total:
                bar.update(task, total=None)  # the estimate was short: count on without a bar
            elapsed = state.elapsed or 0
            bar.update(task, rate=f"{state.completed / elapsed:,.0f}" if elapsed else "-")

        summary = ingestor.ingest(source, progress=progress)
        bar.update(task, total=summary.read, completed=summary.read)
    return summary


@click.group()
def quarantine() -> None:
    """Rows that could not be used, with the reason: list them, retry them after a fix."""


@quarantine.command("list")
@click.option("--source", help="Only this source.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(0, SQLITE_INTEGER_MAX),
              help="At most this many rows (0 = all).")
@click.option("--summary", "as_summary", is_flag=True, help="Counts per source and reason instead of rows.")
@click.option("--all", "include_resolved", is_flag=True, help="Include rows a retry has fixed.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def quarantine_list(source: str | None, limit: int, as_summary: bool, include_resolved: bool, as_json: bool) -> None:
    """List quarantined rows (personal data in the raw row and in the reason masked; MOTORCADE_SHOW_PII=1
    shows it). A raw row is shown cut to 200 characters (4,000 with --json)."""
    store = _state().project.store
    if as_summary:
        counts: dict[tuple[str, str], int] = {}
        for s, r, n in store.quarantine_summary():
            if not source or s == source:
                key = (s, mask_message(r, REASON_SHOWN))  # reasons that differ only in a masked value count together
                counts[key] = counts.get(key, 0) + n
        rows = [(s, r, n) for (s, r), n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]
        if as_json:
            click.echo(json.dumps([{"source": s, "reason": r, "count": n} for s, r, n in rows], ensure_ascii=False))
            return
        for s, r, n in rows:
            click.echo(f"{n:>8,}  {s:<16} {r}")
        return
    rows = store.list_quarantine(source=source, include_resolved=include_resolved, limit=limit or None)
    if as_json:
        click.echo(json.dumps([
            {"id": r.id, "source": r.source, "position": r.position, "reason": mask_message(r.reason, RAW_SHOWN_JSON),
             "raw": mask_text(r.raw, RAW_SHOWN_JSON),
             "resolved": r.resolved} for r in rows], ensure_ascii=False))
        return
    if not rows:
        click.echo("Quarantine is empty." if not source else f"No quarantined rows for {source}.")
        return
    for r in rows:
        fixed = " (fixed)" if r.resolved else ""
        click.echo(f"#{r.id} {r.source} {r.position}: {mask_message(r.reason, REASON_SHOWN)}{fixed}")
        click.echo(f"    {mask_text(r.raw)}")


@quarantine.command("retry")
@click.option("--source", help="Only this source.")
@click.option("--id", "row_ids", multiple=True, type=ROW_ID, help="Only these quarantine row ids.")
def quarantine_retry(source: str | None, row_ids: tuple[int, ...]) -> None:
    """Re-read quarantined rows with the current mapping and guards; fixed rows are written."""
    outcomes = retry_quarantined(_state().project, source, row_ids)
    for name, n, ok in outcomes:
        if ok is None:
            click.echo(f"{name}: no longer configured; {n} row(s) left in quarantine")
        else:
            click.echo(f"{name}: retried {n:,}, fixed {ok:,}, still quarantined {n - ok:,}")
    if not sum(n for _, n, ok in outcomes if ok is not None):
        click.echo("Nothing to retry.")


def retry_quarantined(project, source: str | None = None, row_ids=()) -> list[tuple[str, int, int | None]]:
    """Re-read quarantined rows (of ``source``, or these ``row_ids``) with the current mapping and guards;
    fixed rows are written. Per source: ``(name, rows retried, rows fixed)``; fixed is None for a source no
    longer configured (its rows stay in quarantine)."""
    from .ingest import open_source, project_ingestor

    rows = project.store.list_quarantine(source=source)
    if row_ids:
        rows = [r for r in rows if r.id in set(row_ids)]
    by_source: dict[str, list] = {}
    for r in rows:
        by_source.setdefault(r.source, []).append(r)
    ingestor = project_ingestor(project) if by_source else None
    outcomes: list[tuple[str, int, int | None]] = []
    for name, group in by_source.items():
        if name not in project.config.sources:
            outcomes.append((name, len(group), None))
            continue
        n, ok = ingestor.retry(open_source(project, name), group)
        outcomes.append((name, n, ok))
    return outcomes

COMMANDS: list = [ingest, quarantine]
