"""CLI commands of the activation stage (added to the root CLI by motorcade.cli): run, serve, sends."""

from __future__ import annotations

import json

import click

from motorcade.cli_types import COUNT, PERSON_ID
from motorcade.masking import mask_identifier, mask_message, pii_visible
from motorcade.model import RETRYABLE_STATES


def _context(project, *, log=None):
    from .settings import ActivationContext

    return ActivationContext.for_project(project, log=log)


@click.command()
@click.option("--once", is_flag=True, help="One pass and exit (for cron). This is also the default.")
@click.option("--campaign", "campaigns", multiple=True, metavar="NAME",
              help="Plan a run of this campaign now (whatever its schedule), then dispatch. Repeatable.")
@click.option("--no-dispatch", is_flag=True, help="Plan only; leave the sends in the outbox.")
@click.option("--json", "as_json", is_flag=True, help="Print the pass's report as JSON.")
@click.pass_obj
def run(state, once: bool, campaigns: tuple[str, ...], no_dispatch: bool, as_json: bool) -> None:
    """Execute what is due: scheduled campaigns, event and segment triggers, then deliver due sends.

    Safe to run from cron while another `run` or `serve` is running: planning takes a lease and
    every send is claimed in a transaction.
    """
    from .runner import run_campaigns_now, run_once

    project = state.project
    messages: list[str] = []
    ctx = _context(project, log=messages.append if as_json else click.echo)
    extra = run_campaigns_now(ctx, campaigns) if campaigns else []
    if campaigns and not project.access.is_group:  # a store's run plans its campaigns; the group delivers
        from .runner import RunReport

        report = RunReport()
        ctx.log("planned only (the group's `run` or `serve` delivers the sends)")
    else:
        report = run_once(ctx, dispatch=not no_dispatch)
    project.audit_affected["runs"] = [{k: r.get(k) for k in ("campaign", "run_id", "planned", "note")}
                                      for r in extra]
    report.planned_runs[:0] = [r for r in extra if "note" not in r]
    for result in extra:
        if "note" in result:
            ctx.log(f"campaign {result['campaign']}: {result['note']}; nothing new planned ({result['run_id']})")
    if as_json:
        click.echo(json.dumps({**report.as_dict(), "log": messages}, ensure_ascii=False, default=str))
    else:
        d = report.dispatched
        stopped: dict[str, int] = {}
        for key, n in report.stopped.items():
            status = key.split(":", 1)[0]
            stopped[status] = stopped.get(status, 0) + n
        click.echo(f"planned {len(report.planned_runs)} campaign runs "
                   f"({sum(r.get('planned', 0) for r in report.planned_runs):,} sends); trigger firings: "
                   f"{sum(report.trigger_firings.values())}; "
                   f"sent {d.get('sent', 0)}, retrying {d.get('failed', 0)}, dead {d.get('dead', 0)}"
                   + "".join(f", {status} {n}" for status, n in sorted(stopped.items())))
        for key, n in report.stopped.items():
            click.echo(f"  {n:>6,} {mask_message(key)}")
        for name, totals in report.journeys.items():
            if any(totals.values()):
                click.echo(f"journey {name}: {totals['entered']:,} entered ({totals['holdout']:,} held out), "
                           f"{totals['steps']:,} steps taken, {totals['sends']:,} sends planned; "
                           f"{totals['converted']:,} converted, {totals['exited']:,} exited, "
                           f"{totals['completed']:,} completed")
        if report.planned_runs:  # this pass's campaign sends as they stand now, by status and reason
            for status, reason, n in ctx.store.run_send_outcomes(r["run_id"] for r in report.planned_runs):
                click.echo(f"  {n:>6,} {status}" + (f": {mask_message(reason)}" if reason else "")
                           + "  (this pass's campaign runs)")
        if not report.planned_runs and not sum(report.trigger_firings.values()) and not any(
                any(t.values()) for t in report.journeys.values()):
            click.echo("nothing was planned:" if report.notes else "nothing was planned (no campaign or trigger)")
            for note in report.notes:
                click.echo(f"  {note}")
        for error in report.errors:
            click.secho(f"error: {error}", fg="red", err=True)
    if report.errors:
        raise click.exceptions.Exit(1)


@click.command()
@click.option("--max-passes", type=int, default=None, help="Stop after this many passes (tests, smoke checks).")
@click.pass_obj
def serve(state, max_passes: int | None) -> None:
    """Run until stopped (Ctrl-C / SIGTERM): plan and deliver as things become due, sleeping in between.

    Any number of `serve` and `run` processes may share a project.
    """
    from .runner import serve as serve_loop

    project = state.project
    click.echo(f"serving project {project.config.name}; Ctrl-C to stop")

    def make_context():
        # fresh rules each pass: a pass uses one immutable snapshot, an edit applies from the next pass
        return _context(project, log=click.echo)

    passes = serve_loop(make_context, max_passes=max_passes, log=click.echo)
    click.echo(f"stopped after {passes} passes")


@click.group()
def sends() -> None:
    """Inspect the outbox: list sends, retry dead letters, show statistics."""


def _mask_address(send) -> str:
    steps = send["payload"].get("steps") or []
    chosen = send["payload"].get("chosen", 0)
    if not steps or chosen >= len(steps) or not steps[chosen].get("address"):
        return "-"
    address = steps[chosen]["address"]
    return address if pii_visible() else mask_identifier("", address)


@sends.command("list")
@click.option("--status", help="planned, deferred, claimed, sent, failed, dead, suppressed, holdout")
@click.option("--origin", help="Campaign or trigger name.")
@click.option("--person", "person_id", type=PERSON_ID, help="Person id.")
@click.option("--run", "run_id", help="Run id.")
@click.option("--limit", type=COUNT, default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines (addresses masked unless MOTORCADE_SHOW_PII=1).")
@click.pass_obj
def sends_list(state, status, origin, person_id, run_id, limit, as_json) -> None:
    """List sends, newest first, with their state and reason."""
    rows = state.project.store.list_sends(status=status, origin=origin, person_id=person_id, run_id=run_id,
                                          limit=limit)
    for send in rows:
        item = {k: send[k] for k in ("idempotency_key", "origin_kind", "origin", "person_id", "channel", "template",
                                     "status", "attempts", "reason", "revision", "updated_at")}
        item["revision"] = item["revision"][:12]
        item["reason"] = mask_message(item["reason"])  # provider answers can echo the body
        item["address"] = _mask_address(send)
        if as_json:
            click.echo(json.dumps(item, ensure_ascii=False))
        else:
            click.echo(f"{item['status']:<10} {item['idempotency_key']}  {item['channel']}/{item['template']} "
                       f"to {item['address']}  attempts={item['attempts']}"
                       + (f"  reason: {item['reason']}" if item["reason"] else ""))
    if not rows and not as_json:
        click.echo("no sends match")


@sends.command("retry")
@click.argument("keys", nargs=-1)
@click.option("--status", default="dead", show_default=True, type=click.Choice(RETRYABLE_STATES),
              help="Retry sends in this state.")
@click.option("--origin", help="Only this campaign or trigger.")
@click.option("--all", "retry_all", is_flag=True, help="Retry every send in --status (without listing keys).")
@click.pass_obj
def sends_retry(state, keys, status, origin, retry_all) -> None:
    """Put dead letters (or other stopped sends) back in the outbox; the next `run` delivers them.

    The idempotency key does not change, so a provider that received an earlier attempt deduplicates it.
    """
    if not keys and not retry_all:
        raise click.UsageError("give idempotency keys, or --all to retry every send in --status")
    store = state.project.store
    with store.transaction():
        count = store.retry_sends(keys=keys or None, status=status, origin=origin)
    click.echo(f"{count} sends put back to planned")


@sends.command("stats")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def sends_stats(state, as_json) -> None:
    """Counts of sends per campaign or trigger, channel and state."""
    rows = state.project.store.send_stats()
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False))
        return
    if not rows:
        click.echo("the outbox is empty")
        return
    for r in rows:
        click.echo(f"{r['origin_kind']:<8} {r['origin']:<28} {r['channel']:<12} {r['status']:<10} {r['count']:>8,}")


@sends.command("tracking")
@click.option("--origin", help="Only the links of this campaign or trigger.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def sends_tracking(state, origin, as_json) -> None:
    """Short-link and open-pixel hits (people and bots) and receipts refused, by channel and reason
    (bad signature, replayed, unknown message, malformed)."""
    store = state.project.store
    hits = store.link_hit_counts(origin=origin)
    refused = store.receipt_rejection_counts()
    if as_json:
        click.echo(json.dumps({"hits": hits, "receipts_refused": [
            {"channel": c, "reason": r, "count": n} for (c, r), n in sorted(refused.items())]}))
        return
    click.echo(f"link clicks {hits['click']:,}, pixel opens {hits['open']:,}, bot and scanner hits {hits['bot']:,}")
    if not refused:
        click.echo("no receipt refused")
    for (channel, reason), count in sorted(refused.items()):
        click.echo(f"receipts refused  {channel:<12} {reason:<16} {count:>8,}")


COMMANDS: list = [run, serve, sends]
