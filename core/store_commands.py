"""`motorcade store copy --to postgresql://...`: move a project's SQLite store into PostgreSQL, verified.

Kept outside :mod:`motorcade.store`, so that building the CLI imports no store (`motorcade --help` stays fast)."""

from __future__ import annotations

import click

from .as_of import as_of_option, parse_as_of


@click.group()
def store() -> None:
    """The project's operational store (docs/stores.md)."""


@store.command("copy")
@click.option("--to", "target_url", required=True, metavar="URL",
              help="The PostgreSQL database to copy into (postgresql://user@host/db); it must be empty. "
                   "Or an analytics engine (duckdb:///file.duckdb, chdb:///folder): its analytical tables are "
                   "replaced by the store's.")
@click.option("--batch", "batch_size", type=click.IntRange(1, 10_000_000), default=20_000, show_default=True,
              help="Rows per batch (progress is shown per batch).")
@click.option("--no-verify", is_flag=True, help="Skip the check (row counts, every segment's members).")
@as_of_option("The instant the verification computes every segment at (default: now).")
@click.pass_obj
def copy(state, target_url: str, batch_size: int, no_verify: bool, as_of: str | None) -> None:
    """Copy this project's SQLite store into PostgreSQL (all tables, ids kept), then verify the copy: the
    row count of every table, and every segment's members computed on both stores at the same as-of.

    Afterwards set [project] database to the URL. Exit code 1 when the verification finds a difference.

    With an analytics engine's URL (duckdb:///file.duckdb, chdb:///folder) the analytical tables (people,
    events, tag values, cars, ownerships, relations, advisors, consents) are copied into the engine instead,
    then verified the same way: row counts, and every segment's members on the store and on the engine."""
    from .store import open_store
    from .store.copy import copy_store, record_copy_outcome, verify_copy
    from .store.postgres import redact

    project = state.project
    source = project.store
    from .analytics.load import is_engine_url

    if is_engine_url(target_url):  # duckdb:///..., chdb:///...: the analytical tables into an engine
        _copy_into_engine(project, target_url, no_verify, as_of)
    if source.dialect != "sqlite":
        raise click.UsageError(f"this project's store is already {source.dialect} ({source.location})")
    target = open_store(target_url)
    try:
        click.echo(f"copying {source.location} -> {redact(target_url)}")
        last: dict[str, int] = {}

        def progress(table: str, done: int, total: int) -> None:
            if done == total or done - last.get(table, 0) >= 10 * batch_size:
                last[table] = done
                click.echo(f"  {table}: {done:,} / {total:,} rows")

        result = copy_store(source, target, batch_size=batch_size, progress=progress)
        click.echo(f"copied {sum(result.rows.values()):,} rows of {len(result.rows)} tables in {result.seconds:.1f} s")
        if no_verify:
            project.audit_affected.update(record_copy_outcome(source, target, result, None))
            raise click.exceptions.Exit(0)
        tz = project.timezone
        when = parse_as_of(as_of, tz)
        check = verify_copy(source, target, project.rules(), tz, when)
        project.audit_affected.update(record_copy_outcome(source, target, result, check))
        _echo_verify(check.counts, check.segments, "on SQLite", "on PostgreSQL",
                     audit_differs=not check.audit_chain_same)
        if not check.ok:
            click.echo("verify FAILED: do not switch [project] database to the copy", err=True)
            raise click.exceptions.Exit(1)
        click.echo(f"verify: OK at {when.isoformat()}; now set [project] database = \"{redact(target_url)}\"")
        raise click.exceptions.Exit(0)
    finally:
        target.close()


def _copy_into_engine(project, url: str, no_verify: bool, as_of: str | None) -> None:
    """`store copy --to duckdb:///... | chdb:///...`: the analytical tables, then the check."""
    from .analytics.load import copy_into_engine

    when = None if no_verify else parse_as_of(as_of, project.timezone)
    click.echo(f"copying the analytical tables of {project.store.location} -> {url}")
    result = copy_into_engine(project, url, as_of=when, progress=click.echo)
    if no_verify:
        raise click.exceptions.Exit(0)
    _echo_verify(result.counts, result.segments, "on the store", "on the engine")
    if not result.ok:
        click.echo("verify FAILED: do not set [project] analytics to this engine", err=True)
        raise click.exceptions.Exit(1)
    click.echo(f"verify: OK at {when.isoformat()}; now set [project] analytics = \"{url}\"")
    raise click.exceptions.Exit(0)


def _echo_verify(counts: dict[str, tuple[int, int]], segments: dict[str, tuple[int, int, int]], source: str,
                 target: str, *, audit_differs: bool = False) -> None:
    """A copy's check: row counts per table, then every segment's members on each side."""
    wrong = {t: c for t, c in counts.items() if c[0] != c[1]}
    click.echo(f"verify: row counts of {len(counts)} tables "
               + ("equal" if not wrong else "DIFFER: " + ", ".join(f"{t} {a:,} != {b:,}" for t, (a, b) in wrong.items())))
    if audit_differs:
        click.echo("verify: the audit log's copied entries DIFFER (the copy's own entry has another hash)")
    for name, (on_source, on_target, differ) in segments.items():
        click.echo(f"  segment {name}: {on_source:,} members {source}, {on_target:,} {target}"
                   + ("" if not differ else f", {differ:,} in only one of them"))


COMMANDS = [store]
