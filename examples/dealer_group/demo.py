"""`make demo`: the whole loop on the example dealer group, against local mail and webhook servers.

generate data -> ingest every source (cleaning, quarantine, One-ID) -> compute tags -> compute
segments -> run campaigns and triggers (guard rails, outbox, channels) -> simulated customers respond
-> funnel, uplift, attribution and portrait reports. Prints a report and writes out/report.html (with charts) next to it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import secrets
import shutil
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import click  # noqa: E402

from generate import generate  # noqa: E402
from receivers import SmtpReceiver, WebhookReceiver  # noqa: E402
from journey_days import DAYS as JOURNEY_DAYS, run_days  # noqa: E402
from responses import simulate  # noqa: E402

import httpx  # noqa: E402
from motorcade_sources_segment_http.server import BackgroundServer, running_collector  # noqa: E402

REPORT_DAYS = 30  # the conversion window of the uplift report
os.environ.setdefault("COLUMNS", "150")  # wide tables even when the output is not a terminal


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def heading(text: str) -> None:
    click.secho(f"\n== {text} ", fg="cyan", bold=True)


def fresh_project_state() -> str:
    """Start from nothing: no data, no output, an empty store. Returns where the store is (for the log).

    The store is the project's ``database`` setting, ``${MOTORCADE_DATABASE:-motorcade.db}``: the SQLite
    file is deleted; a PostgreSQL database is emptied of the Motorcade store a previous demo left there
    (a database holding tables that are not a Motorcade store is refused, untouched)."""
    from motorcade.config import load_config

    for path in (HERE / "data", HERE / "out"):
        shutil.rmtree(path, ignore_errors=True)
    database = load_config(HERE / "motorcade.toml").database
    if database.split("://", 1)[0].lower() not in ("postgresql", "postgres"):
        for path in HERE.glob("motorcade.db*"):
            path.unlink()
        return "SQLite (motorcade.db)"
    from motorcade.store.postgres import redact

    empty_postgres_store(database)
    return f"PostgreSQL ({redact(database)})"


def empty_postgres_store(url: str) -> None:
    """Drop the tables of the Motorcade store in the PostgreSQL database ``url`` (the demo's own database)."""
    import psycopg

    try:
        with psycopg.connect(url, autocommit=True) as conn:
            tables = [r[0] for r in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() ORDER BY tablename")]
            if tables and "schema_version" not in tables:
                raise click.ClickException(
                    f"the database holds tables that are not a Motorcade store ({', '.join(tables[:5])}"
                    f"{', ...' if len(tables) > 5 else ''}); the demo empties the database it runs on, so give "
                    "it one of its own: createdb motorcade_demo, then MOTORCADE_DATABASE=postgresql://.../"
                    "motorcade_demo")
            if tables:
                conn.execute("DROP TABLE " + ", ".join(f'"{t}"' for t in tables) + " CASCADE")
                # and the store's own functions (its migrations create them with the tables)
                for (function,) in conn.execute(
                        "SELECT p.oid::regprocedure::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
                        "WHERE n.nspname = current_schema() AND p.proname LIKE 'motorcade\\_%'").fetchall():
                    conn.execute(f"DROP FUNCTION IF EXISTS {function} CASCADE")
    except psycopg.Error as exc:
        raise click.ClickException(f"the demo's PostgreSQL database cannot be reached: {exc}") from None


def main() -> int:
    from motorcade.cli import main as motorcade
    from motorcade.pipeline import pinned_as_of, run_pipeline
    from motorcade.project import find_project

    started = time.perf_counter()
    timings: dict[str, float] = {}
    where = fresh_project_state()

    heading("1. Generate the example dealer group (seeded, small)")
    click.echo(f"  the store: {where}")
    t = time.perf_counter()
    manifest = generate(HERE / "data", size="small", seed=42)["manifest"]
    timings["generate"] = time.perf_counter() - t
    truth = manifest["truth"]
    click.echo(f"  {truth['stores']} stores, {truth['advisors']} advisors, {truth['persons']:,} real people behind "
               f"{sum(truth['persons_in_source'].values()):,} source appearances, {truth['cars']:,} cars; "
               f"data ends {manifest['as_of']}")

    secret = secrets.token_hex(16)
    with SmtpReceiver() as smtp, WebhookReceiver(secret) as gateway, contextlib.ExitStack() as stack:
        collector_port = free_port()
        public_url = f"http://127.0.0.1:{collector_port}"
        os.environ.update(DEMO_SMTP_PORT=str(smtp.port), DEMO_WEBHOOK_URL=gateway.url, DEMO_WEBHOOK_SECRET=secret,
                          DEMO_PUBLIC_URL=public_url)
        click.echo(f"  local SMTP server on 127.0.0.1:{smtp.port}, messaging gateway (webhook) at {gateway.url}")
        project = find_project(HERE)
        as_of = pinned_as_of(project)
        # motorcade collect's server (short links, receipts) on the demo's clock
        demo_clock = {"now": as_of}
        collector = stack.enter_context(running_collector(project, idle_seconds=0.05))
        collector.tracking.clock = lambda: demo_clock["now"]
        stack.enter_context(BackgroundServer(collector.app, port=collector_port))
        client = stack.enter_context(httpx.Client(base_url=public_url, follow_redirects=False, timeout=30))
        click.echo(f"  motorcade collect (short links and receipts) at {public_url}")

        heading(f"2. motorcade pipeline (as of {as_of.isoformat()})")
        results = run_pipeline(project, as_of=as_of, log=click.echo)
        for result in results:
            timings[result.stage] = result.seconds

        heading("3. Customers respond over HTTP (gateway receipts, short links followed, workshop visits via DMS)")
        t = time.perf_counter()
        responses = simulate(project, as_of, HERE / "out" / "responses.jsonl", client=client, clock=demo_clock,
                             secret=secret, gateway_keys=list(gateway.keys))
        timings["responses"] = time.perf_counter() - t
        click.echo(f"  {responses['delivered']:,} delivery receipts posted by the gateway, {responses['clicked']:,} "
                   f"short links followed ({responses['bot_hits']:,} link-scanner hits kept apart), "
                   f"{responses['follow_up_events']:,} follow-up events ingested")

        heading(f"4. Journeys over {JOURNEY_DAYS} simulated days (motorcade run once a day; customers act in between)")
        t = time.perf_counter()
        journey_totals = run_days(project, as_of, click.echo)
        timings["journeys"] = time.perf_counter() - t
        click.echo(f"  {journey_totals['leads']:,} new leads, {journey_totals['clicked']:,} journey messages opened, "
                   f"{journey_totals['service_visit']:,} workshop visits, {journey_totals['test_drive']:,} test "
                   f"drives")
        journey_day = (as_of + dt.timedelta(days=REPORT_DAYS + 1)).date().isoformat()
        for name in ("lapsed_owner_recall", "test_drive_nurture"):
            motorcade([*["--project", str(HERE)], "journeys", "status", name, "--as-of", journey_day])

        heading(f"5. Feedback: funnel and uplift of the recall campaign, {REPORT_DAYS} days on; attribution of "
                "orders; portrait of the lapsed owners")
        t = time.perf_counter()
        # the first day every recall recipient's 30-day window has closed
        report_day = (as_of + dt.timedelta(days=REPORT_DAYS + 1)).date().isoformat()
        out = HERE / "out"
        project_args = ["--project", str(HERE)]
        codes = [
            motorcade([*project_args, "report", "funnel", "recall_funnel", "--campaign", "lapsed_recall"]),
            motorcade([*project_args, "report", "funnel", "recall_delivery", "--campaign", "lapsed_recall"]),
            motorcade([*project_args, "report", "funnel", "recall_funnel", "--campaign", "lapsed_recall",
                       "--format", "html", "--out", str(out / "funnel.html")]),
            motorcade([*project_args, "report", "uplift", "lapsed_recall", "--event", "service_visit", "--days",
                       str(REPORT_DAYS), "--as-of", report_day]),
            motorcade([*project_args, "report", "uplift", "lapsed_recall", "--event", "service_visit", "--days",
                       str(REPORT_DAYS), "--as-of", report_day, "--format", "html", "--out",
                       str(out / "uplift.html")]),
            # which touches led to orders (seed 004's 归因分析), and what sets the lapsed owners apart (车主画像)
            motorcade([*project_args, "report", "attribution", "--conversion", "order", "--within", "90",
                       "--as-of", report_day, "--format", "html", "--out", str(out / "attribution.html")]),
            motorcade([*project_args, "report", "portrait", "lapsed_owners", "--against", "owners",
                       "--attribute", "gender", "--format", "html", "--out", str(out / "portrait.html")]),
        ]
        timings["reports"] = time.perf_counter() - t

        heading("6. A store's view: the store manager of SH001 sees only the store's customers")
        codes += store_view(motorcade, project_args, as_of.isoformat())

        heading("7. Summary")
        from summary import build_summary, print_summary, write_html

        summary = build_summary(project, manifest, results, smtp=smtp, gateway=gateway, responses=responses,
                                timings=timings, as_of=as_of)
        print_summary(summary)
        from motorcade.journeys.observe import journey_sections

        journeys = journey_sections(project.store, project.rules(), as_of=dt.datetime.fromisoformat(journey_day).replace(
            tzinfo=project.timezone), tz=project.timezone)
        page = write_html(summary, out / "report.html", links={"Funnel": "funnel.html", "Uplift": "uplift.html",
                                                               "Attribution": "attribution.html",
                                                               "Portrait": "portrait.html"},
                          extra_sections=journeys)
        stack.close()  # the HTTP server and the collector before the store
        project.close()
    click.echo(f"\nHTML report: {page}")
    click.echo(f"Demo finished in {time.perf_counter() - started:.1f} s")
    return 0 if not any(codes) else 1


def store_view(motorcade, project_args: list[str], as_of: str) -> list[int]:
    """Store users (docs/access.md): the group's view and SH001's side by side, and the audit log."""
    codes = [
        motorcade([*project_args, "users", "add", "sh001_manager", "--display-name", "SH001 店总",
                   "--role", "store_manager", "--store", "SH001"]),
        motorcade([*project_args, "users", "add", "group_analyst", "--role", "analyst"]),
    ]
    click.echo("  the group (local owner, group_admin):")
    codes.append(motorcade([*project_args, "status"]))
    click.echo("  SH001's store manager: the same command counts only the store's customers")
    as_store = [*project_args, "--as", "sh001_manager"]
    codes += [
        motorcade([*as_store, "status"]),
        motorcade([*as_store, "segments", "members", "sh001_lapsed_owners", "--limit", "5"]),
        motorcade([*as_store, "report", "churn", "--store", "SH001", "--limit", "5", "--as-of", as_of]),
    ]
    click.echo("  another store's report is refused:")
    motorcade([*as_store, "report", "churn", "--store", "BJ001", "--as-of", as_of])  # exits 1, as it should
    click.echo("  the audit log (latest entries):")
    codes.append(motorcade([*project_args, "audit", "--limit", "6"]))
    return [code for code in codes if code]


if __name__ == "__main__":
    try:
        sys.exit(main())
    except click.ClickException as exc:  # what the operator must fix, without a traceback
        exc.show()
        sys.exit(exc.exit_code)
