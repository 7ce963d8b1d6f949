"""`motorcade run` and `motorcade serve`: plan what is due, then dispatch what is due.

Planning (campaign slots, event triggers, segment triggers) is done by the worker holding the
``scheduler`` lease; every worker dispatches (claims are transactions, so two dispatchers never send
the same row). Planning is idempotent by construction (deterministic run ids and idempotency keys), so
the lease only saves work -- it is not what prevents double sends.
"""

from __future__ import annotations

import datetime as dt
import logging
import signal
import threading
from typing import Any, Callable

import attrs

from motorcade.dsl import ast
from motorcade.errors import MotorcadeError

from .dispatcher import Dispatcher
from .planner import PlanningStopped, Renderer, plan_campaign, process_event_trigger, process_segment_trigger
from .schedule import latest_slot, period_start, slot_text
from .settings import ActivationContext

SCHEDULER_LEASE = "scheduler"
# Tracebacks of unexpected errors go to this logger; the operator sees one line per error.
logger = logging.getLogger("motorcade.activation")


@attrs.define
class RunReport:
    """What one pass did."""

    planned_runs: list[dict[str, Any]] = attrs.field(factory=list)
    trigger_firings: dict[str, int] = attrs.field(factory=dict)
    dispatched: dict[str, int] = attrs.field(factory=dict)
    errors: list[str] = attrs.field(factory=list)
    planner: bool = False  # whether this worker held the scheduler lease
    stopped: dict[str, int] = attrs.field(factory=dict)  # "status: reason" -> sends a guard rail stopped
    notes: list[str] = attrs.field(factory=list)  # why a campaign or trigger planned nothing this pass

    def as_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


def record_revision(ctx: ActivationContext) -> None:
    files = {rf.filename: rf.source for rf in ctx.rule_set.files}
    with ctx.store.transaction():
        ctx.store.record_rule_revision(ctx.revision, files, at=ctx.now())


def plan_due(ctx: ActivationContext, report: RunReport) -> None:
    """Plan every due campaign slot and process every trigger's new events and segment changes."""
    now = ctx.now()
    renderer = Renderer(ctx)
    horizon = dt.timedelta(hours=ctx.settings.catch_up_hours)
    for name, rule in sorted(ctx.rule_set.campaigns.items()):
        if ctx.stopping():
            return
        if rule.schedule is None:
            continue
        try:
            slot = latest_slot(rule.schedule, now, ctx.tz, horizon=horizon)
            if slot is None:
                report.notes.append(f"campaign {name}: no slot due (none within the last "
                                    f"{ctx.settings.catch_up_hours:g} h, catch_up_hours)")
                continue
            if ctx.store.get_run(f"campaign:{name}:{slot_text(slot)}") is not None:
                report.notes.append(f"campaign {name}: the slot {slot.astimezone(ctx.tz):%Y-%m-%d %H:%M} was "
                                    "planned already")
                continue
            result = plan_campaign(ctx, name, slot, renderer=renderer)
            if result is not None:
                report.planned_runs.append(result)
        except PlanningStopped:
            return
        except MotorcadeError as exc:
            report.errors.append(f"campaign {name}: {exc}")
            ctx.log(f"campaign {name}: {exc}")
        except Exception as exc:  # noqa: BLE001 -- one campaign's defect must not stop the others
            report.errors.append(f"campaign {name}: unexpected {type(exc).__name__}: {exc}")
            logger.exception("campaign %s: unexpected error while planning", name)
    for name, rule in sorted(ctx.rule_set.triggers.items()):
        if ctx.stopping():
            return
        try:
            if isinstance(rule.on, ast.OnEvent):
                totals = process_event_trigger(ctx, name, renderer=renderer)
            elif isinstance(rule.on, ast.OnSegment):
                totals = process_segment_trigger(ctx, name, renderer=renderer)
            else:
                continue
            report.trigger_firings[name] = report.trigger_firings.get(name, 0) + totals["fired"]
            if not totals["fired"]:
                what = "events" if isinstance(rule.on, ast.OnEvent) else "segment changes"
                report.notes.append(f"trigger {name}: no new {what} that fire it")
        except PlanningStopped:
            return
        except MotorcadeError as exc:
            report.errors.append(f"trigger {name}: {exc}")
            ctx.log(f"trigger {name}: {exc}")
        except Exception as exc:  # noqa: BLE001 -- one trigger's defect must not stop the others
            report.errors.append(f"trigger {name}: unexpected {type(exc).__name__}: {exc}")
            logger.exception("trigger %s: unexpected error while planning", name)


def run_campaigns_now(ctx: ActivationContext, names) -> list[dict[str, Any]]:
    """What `motorcade run --campaign NAME` does: plan each campaign's run for the current period now.

    The run is the one of the scheduled period ``now`` falls in (see :func:`period_start`): if the
    scheduled pass, another manual run or another worker planned it already, nothing new is planned.
    """
    from motorcade.access.actions import ACT, require_rule_scope

    for name in names:  # a store's staff run only their stores' campaigns
        if name in ctx.rule_set.campaigns:
            require_rule_scope(ctx.store.access, ACT, "campaign", ctx.rule_set.campaigns[name])
    record_revision(ctx)
    out = []
    now = ctx.now()
    for name in names:
        result = plan_campaign(ctx, name, now)
        if result is None:
            rule = ctx.rule_set.campaigns[name]
            slot = period_start(rule.schedule, now, ctx.tz)
            result = {"campaign": name, "run_id": f"campaign:{name}:{slot_text(slot)}", "planned": 0,
                      "note": f"already planned for this period (the slot at "
                              f"{slot.astimezone(ctx.tz).strftime('%Y-%m-%d %H:%M %Z')})"}
        else:
            result = {"campaign": name, **result}
        out.append(result)
    return out


def run_once(ctx: ActivationContext, *, dispatch: bool = True, plan: bool = True) -> RunReport:
    """One pass: plan (if this worker gets the scheduler lease) and dispatch everything due now."""
    report = RunReport()
    if plan or dispatch:  # planning every due rule and delivering everyone's sends is the group's work
        from motorcade.access import ACT, Scope

        ctx.store.require_access(ACT, "plan every due campaign and trigger and deliver the group's sends",
                                 Scope.everyone())
    if plan:
        record_revision(ctx)
        if ctx.store.acquire_lease(SCHEDULER_LEASE, ctx.worker_id, ttl_seconds=ctx.settings.scheduler_lease_seconds,
                                   now=ctx.now()):
            report.planner = True
            try:
                plan_due(ctx, report)
            finally:
                ctx.store.release_lease(SCHEDULER_LEASE, ctx.worker_id)
        else:
            report.notes.append("another worker holds the planning lease: it plans what is due")
    if dispatch and not ctx.stopping():
        dispatcher = Dispatcher(ctx)
        try:
            report.dispatched = dispatcher.dispatch_due()
        finally:
            dispatcher.close()
        report.errors.extend(f"sends deferred: {problem}" for problem in dispatcher.problems)
        report.stopped = {f"{status}: {reason}" if reason else status: n
                          for (status, reason), n in sorted(dispatcher.stopped.items())}
    return report


def next_wakeup(ctx: ActivationContext) -> dt.datetime:
    """When `serve` should look again: the next due send, the next schedule slot, or the poll interval."""
    now = ctx.now()
    candidates = [now + dt.timedelta(seconds=ctx.settings.poll_seconds)]
    due = ctx.store.next_due_at()
    if due is not None:
        candidates.append(max(now, due))
    return min(candidates)


def serve(make_context: Callable[[], ActivationContext], *, stop: threading.Event | None = None,
          max_passes: int | None = None, log: Callable[[str], None] = lambda m: None) -> int:
    """Run passes until ``stop`` is set (SIGINT/SIGTERM set it when called from the main thread).

    Sleeps until the next due send or the poll interval -- never busy-waits. The rules are reloaded
    every pass, so a pass always uses one immutable snapshot and an edit takes effect at the next pass.
    Returns the number of passes made.
    """
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
    passes = 0
    while not stop.is_set() and (max_passes is None or passes < max_passes):
        passes += 1
        try:
            ctx = make_context()
            ctx.stop = stop
            report = run_once(ctx)
            if report.planned_runs or any(report.dispatched.values()):
                log(f"pass {passes}: planned {len(report.planned_runs)} runs, dispatched {report.dispatched}")
            for error in report.errors:
                log(f"error: {error}")
            wake = next_wakeup(ctx)
            delay = max(0.05, (wake - ctx.now()).total_seconds())
        except MotorcadeError as exc:  # a broken rule file: keep serving, try again after the poll interval
            log(f"error: {exc}")
            delay = 5.0
        except Exception as exc:  # noqa: BLE001 -- serve never dies from one pass's failure
            log(f"error: unexpected {type(exc).__name__} in pass {passes}: {exc}; retrying")
            logger.exception("serve: pass %d failed", passes)
            delay = 5.0
        stop.wait(min(delay, 60.0))
    return passes
