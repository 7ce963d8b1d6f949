"""`make demo`: the whole loop on the example dealer group, against local mail and webhook servers.

generate data -> ingest every source (cleaning, quarantine, One-ID) -> compute tags -> compute
segments -> run campaigns and triggers (guard rails, outbox, channels) -> simulated customers respond
-> funnel and uplift reports. Prints a report and writes out/report.html (with charts) next to it.
"""

from __future__ import annotations

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
from responses import simulate  # noqa: E402

REPORT_DAYS = 30  # the conversion window of the uplift report
os.environ.setdefault("COLUMNS", "150")  # wide tables even when the output is not a terminal


def heading(text: str) -> None:
    click.secho(f"\n== {text} ", fg="cyan", bold=True)


def fresh_project_state() -> None:
    for path in (HERE / "data", HERE / "out"):
        shutil.rmtree(path, ignore_errors=True)
    for path in HERE.glob("motorcade.db*"):
        path.unlink()


def main() -> int:
    from motorcade.cli import main as motorcade
    from motorcade.pipeline import pinned_as_of, run_pipeline
    from motorcade.project import find_project

    started = time.perf_counter()
    timings: dict[str, float] = {}
    fresh_project_state()

    heading("1. Generate the example dealer group (seeded, small)")
    t = time.perf_counter()
    manifest = generate(HERE / "data", size="small", seed=42)["manifest"]
    timings["generate"] = time.perf_counter() - t
    truth = manifest["truth"]
    click.echo(f"  {truth['stores']} stores, {truth['advisors']} advisors, {truth['persons']:,} real people behind "
               f"{sum(truth['persons_in_source'].values()):,} source appearances, {truth['cars']:,} cars; "
               f"data ends {manifest['as_of']}")

    secret = secrets.token_hex(16)
    with SmtpReceiver() as smtp, WebhookReceiver(secret) as gateway:
        os.environ.update(DEMO_SMTP_PORT=str(smtp.port), DEMO_WEBHOOK_URL=gateway.url, DEMO_WEBHOOK_SECRET=secret)
        click.echo(f"  local SMTP server on 127.0.0.1:{smtp.port}, messaging gateway (webhook) at {gateway.url}")
        project = find_project(HERE)
        as_of = pinned_as_of(project)

        heading(f"2. motorcade pipeline (as of {as_of.isoformat()})")
        results = run_pipeline(project, as_of=as_of, log=click.echo)
        for result in results:
            timings[result.stage] = result.seconds

        heading("3. Customers respond (simulated: clicks via the tracking callback, workshop visits via DMS)")
        t = time.perf_counter()
        responses = simulate(project, as_of, HERE / "out" / "responses.jsonl")
        timings["responses"] = time.perf_counter() - t
        click.echo(f"  {responses['clicked']:,} clicks recorded, {responses['follow_up_events']:,} follow-up events "
                   f"ingested")

        heading(f"4. Feedback: funnel and uplift of the recall campaign, {REPORT_DAYS} days on")
        t = time.perf_counter()
        # the first day every recall recipient's 30-day window has closed
        report_day = (as_of + dt.timedelta(days=REPORT_DAYS + 1)).date().isoformat()
        out = HERE / "out"
        project_args = ["--project", str(HERE)]
        codes = [
            motorcade([*project_args, "report", "funnel", "recall_funnel", "--campaign", "lapsed_recall"]),
            motorcade([*project_args, "report", "funnel", "recall_funnel", "--campaign", "lapsed_recall",
                       "--format", "html", "--out", str(out / "funnel.html")]),
            motorcade([*project_args, "report", "uplift", "lapsed_recall", "--event", "service_visit", "--days",
                       str(REPORT_DAYS), "--as-of", report_day]),
            motorcade([*project_args, "report", "uplift", "lapsed_recall", "--event", "service_visit", "--days",
                       str(REPORT_DAYS), "--as-of", report_day, "--format", "html", "--out",
                       str(out / "uplift.html")]),
        ]
        timings["reports"] = time.perf_counter() - t

        heading("5. A store's view: the store manager of SH001 sees only the store's customers")
        codes += store_view(motorcade, project_args, as_of.isoformat())

        heading("6. Summary")
        from summary import build_summary, print_summary, write_html

        summary = build_summary(project, manifest, results, smtp=smtp, gateway=gateway, responses=responses,
                                timings=timings)
        print_summary(summary)
        page = write_html(summary, out / "report.html", links={"Funnel": "funnel.html", "Uplift": "uplift.html"})
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
    sys.exit(main())
