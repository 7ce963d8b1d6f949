"""Planning: turn a due campaign slot, a matching event or a segment change into outbox rows.

A run's activation_runs row, its audience snapshot, one outbox row per planned send, the ``queued``
feedback events and the cursor it advances are written in ONE transaction. Keys are deterministic::

    campaign:<name>:<slot>:p<person>:s<step>        (slot = the schedule slot, UTC, e.g. 20261123T0200Z)
    trigger:<name>:e<event id>:p<person>:s<step>     (event triggers)
    trigger:<name>:c<change id>:p<person>:s<step>    (segment enter/leave triggers)

so planning the same thing twice (two workers, a crash and a restart) inserts nothing new.

Messages are rendered here, once, for every step of the ``via`` chain the person has an address for,
and stored in the row's payload: a retry re-sends exactly the same bytes, and editing a template or a
rule never changes a run already planned.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from motorcade.dsl import ast
from motorcade.dsl.data import Dataset, EventData
from motorcade.dsl.evaluate import shift, trigger_fires
from motorcade.errors import MotorcadeError
from motorcade.store.codec import iso

from .feedback import write_feedback
from .guardrails import in_holdout
from .people import address_of, template_context
from .schedule import period_start, slot_text
from .settings import ActivationContext
from .templates import HELPERS, RenderLimits, TemplateError, TemplateStore
from .tracking import LinkMaker, store_links

# A campaign's audience is read this many people at a time (motorcade.journeys.engine.BatchReads): a few
# queries per batch instead of several per person, which on a PostgreSQL store are round trips each.
READ_BATCH = 500

class PlanningError(MotorcadeError):
    """A campaign or trigger cannot be planned (no audience, no `via`, unknown segment)."""


class PlanningStopped(PlanningError):
    """The worker was asked to stop while planning: nothing of this run was written (the slot stays due)."""


# -- segment memberships (written by the segment stage: motorcade.segments.compute_segments) ------------


def _in_rule_scope(store, rule, person_ids: list[int]) -> list[int]:
    """A store-scoped campaign or trigger reaches only its stores' people (``scope store "SH01"``)."""
    from motorcade.access.actions import rule_scope

    return store.people_in(rule_scope(rule), person_ids)


def segment_member_ids(store, segment: str) -> list[int]:
    return list(store.segment_member_ids(segment))


def segment_changes_since(store, segment: str, after_id: int) -> list[tuple[int, int, str, dt.datetime | None]]:
    """``(change id, person id, 'enter'|'leave', at)`` after ``after_id``, in id order."""
    return [(int(cid), int(pid), str(change), dt.datetime.fromisoformat(at) if isinstance(at, str) else at)
            for cid, pid, change, at in store.segment_changes_since(segment, after_id)]


def last_segment_change_id(store, segment: str) -> int:
    return int(store.last_segment_change_id(segment) or 0)


# -- building sends ---------------------------------------------------------------------------------


def send_key(origin_kind: str, origin: str, occasion: str, person_id: int, step: int = 0) -> str:
    return f"{origin_kind}:{origin}:{occasion}:p{person_id}:s{step}"


def _quiet_hours(rule, ctx: ActivationContext) -> list[str] | None:
    """The quiet window this send obeys: the rule's own, else the project's (transactional: only the rule's)."""
    if rule.quiet_hours is not None:
        if rule.quiet_hours.start is None:
            return None  # `quiet hours off`
        return [rule.quiet_hours.start.strftime("%H:%M"), rule.quiet_hours.end.strftime("%H:%M")]
    if rule.transactional or ctx.guardrails.quiet_hours is None:
        return None
    start, end = ctx.guardrails.quiet_hours
    return [start.strftime("%H:%M"), end.strftime("%H:%M")]


class Renderer:
    """Renders every ``via`` step of a rule for a person (once per planning pass, templates cached).

    A rule whose templates `motorcade check` reports broken (missing, a syntax error, a name or field
    that does not exist) is refused before anything is planned for it. A template that fails for one
    person (an exception, a render limit) fails that person's send only: it is dead-lettered.
    """

    def __init__(self, ctx: ActivationContext):
        self.ctx = ctx
        settings = ctx.settings
        self.templates = TemplateStore(ctx.project_dir / settings.templates, RenderLimits(
            seconds=settings.render_seconds, max_chars=settings.render_max_chars, max_loops=settings.render_max_loops))
        self._names: tuple[set[str] | None, set[str] | None] | None = None
        self._refused: dict[str, str | None] = {}
        self._roots: dict[tuple[tuple[str, str], ...], frozenset[str] | None] = {}
        self._roots_by_via: dict[int, tuple[Any, frozenset[str] | None]] = {}  # id(via) -> (via, roots)

    def require_sound_templates(self, rule) -> None:
        """Raise :class:`PlanningError` if a channel of the rule is expected but not loaded (its plugin failed
        to load), or `motorcade check` reports a problem with the rule's templates."""
        from .check import known_names, rule_template_problems

        for step in rule.via.steps:
            missing = self.ctx.channel_not_loaded(step.channel)
            if missing:
                raise PlanningError(f"{_kind(rule)} {rule.name!r} is not planned: {missing}",
                                    hint="nothing is lost: the slot stays due and trigger events wait")
        # keyed by the templates too: a journey's send steps share the journey's name
        key = f"{_kind(rule)}:{rule.name}:" + ",".join(f"{s.channel}/{s.template}" for s in rule.via.steps)
        if key not in self._refused:
            if self._names is None:
                self._names = known_names(self.ctx.store, self.ctx.registry, self.ctx.source_settings)
            attributes, tags = self._names
            tags = None if tags is None else set(tags) | set(self.ctx.rule_set.tags)
            problems = [p for p in rule_template_problems(rule, self.templates, registry=self.ctx.registry,
                                                          attributes=attributes, tags=tags,
                                                          public_url=self.ctx.settings.public_url,
                                                          recommendations=set(self.ctx.rule_set.recommendations))
                        if p.severity == "error"]  # warnings (SMS segments) do not stop a rule
            self._refused[key] = "; ".join(str(p) for p in problems[:3]) + (
                f" (and {len(problems) - 3} more)" if len(problems) > 3 else "") if problems else None
        if self._refused[key]:
            raise PlanningError(f"{_kind(rule)} {rule.name!r} is not planned: its templates are broken: "
                                f"{self._refused[key]}",
                                hint="fix them (`motorcade check` lists every problem); nothing is lost: "
                                     "the slot stays due and trigger events wait")

    def _roots_of(self, rule) -> frozenset[str] | None:
        """The context names the rule's templates read (None: all); the context is built with these only."""
        known = self._roots_by_via.get(id(rule.via))
        if known is not None and known[0] is rule.via:
            return known[1]
        key = tuple((s.channel, s.template) for s in rule.via.steps)
        if key not in self._roots:
            roots: set[str] | None = set()
            for channel, template in key:
                try:
                    found = self.templates.roots(template, channel)
                except TemplateError:
                    found = None  # rendering reports it
                if found is None:
                    roots = None
                    break
                roots |= found
            self._roots[key] = None if roots is None else frozenset(roots)
        self._roots_by_via[id(rule.via)] = (rule.via, self._roots[key])
        return self._roots[key]

    def steps(self, rule, person_id: int, now: dt.datetime, event_properties: dict | None = None, *,
              reads=None) -> list[dict]:
        """Render every step of the rule for the person. ``reads`` answers the person reads in place of the
        store (a batch that read its people at once: :class:`motorcade.journeys.engine.BatchReads`)."""
        ctx = self.ctx
        reads = ctx.store if reads is None else reads
        context = None
        out = []
        for step in rule.via.steps:
            entry: dict[str, Any] = {"channel": step.channel, "template": step.template}
            try:
                channel_class = ctx.registry.channel_class(step.channel)
            except MotorcadeError as exc:
                entry["error"] = f"channel {step.channel!r} is not installed ({exc.hint or exc.message})"
                out.append(entry)
                continue
            address_type = channel_class.capabilities.address_type
            address = address_of(reads, person_id, address_type)
            if address is None:
                entry["error"] = f"no {address_type}"
                out.append(entry)
                continue
            roots = self._roots_of(rule)
            if context is None:
                context = template_context(reads, person_id, origin_kind=_kind(rule), origin=rule.name, now=now,
                                           tz=ctx.tz, event_properties=event_properties, rule_set=ctx.rule_set,
                                           roots=roots)
            links = None
            if roots is None or not roots.isdisjoint(HELPERS):
                links = LinkMaker(ctx.settings.public_url)  # this step's track() / open_pixel() codes
                context.update(track=links.track, open_pixel=links.open_pixel)
            try:
                rendered = self.templates.render(step.template, step.channel, context)
            except TemplateError as exc:
                entry["error"] = f"template: {exc.message}"
                entry["template_failed"] = True
                out.append(entry)
                continue
            entry.update(address=address, subject=rendered.subject, body=rendered.body,
                         store_id=(context["store"] or {}).get("id"))
            if links is not None and links.links:
                entry.update(links=links.links, params=links.params())
            out.append(entry)
        return out


def _kind(rule) -> str:
    return "campaign" if isinstance(rule, ast.Campaign) else getattr(rule, "origin_kind", "trigger")


def _send(rule, run_id: str, occasion: str, person_id: int, revision: str, payload: dict[str, Any],
          not_before: dt.datetime | None = None) -> dict[str, Any]:
    first = rule.via.steps[0]
    kind = _kind(rule)
    failed = [s["error"] for s in payload.get("steps", []) if s.get("template_failed")]
    return {
        "idempotency_key": send_key(kind, rule.name, occasion, person_id, 0),
        "origin_kind": kind, "origin": rule.name, "run_id": run_id, "person_id": person_id, "step": 0,
        "channel": first.channel, "template": first.template, "revision": revision,
        # a template that failed for this person dead-letters this send only, with the error
        "status": "dead" if failed else "planned", "reason": "; ".join(failed)[:4000] if failed else None,
        "not_before": not_before, "payload": payload,
    }


def _enqueue(ctx: ActivationContext, sends: list[dict[str, Any]], now: dt.datetime) -> int:
    inserted = set(ctx.store.enqueue_sends(sends, at=now))
    store_links(ctx.store, sends, inserted, at=now)
    write_feedback(ctx.store, [(s, "queued", now, {}) for s in sends
                               if s["idempotency_key"] in inserted and s["payload"]["arm"] == "treatment"])
    dead = [s for s in sends if s["idempotency_key"] in inserted and s["status"] == "dead"]
    write_feedback(ctx.store, [(s, "failed", now, {"detail": s["reason"][:500]}) for s in dead])
    for send in dead[:3]:
        ctx.log(f"{send['origin_kind']} {send['origin']}: send {send['idempotency_key']} dead-lettered: {send['reason']}")
    if len(dead) > 3:
        ctx.log(f"... and {len(dead) - 3} more sends dead-lettered by template errors (motorcade sends list --status dead)")
    return len(inserted)


# -- campaigns --------------------------------------------------------------------------------------


def plan_campaign(ctx: ActivationContext, name: str, slot: dt.datetime, *, renderer: Renderer | None = None
                  ) -> dict[str, Any] | None:
    """Plan the run of campaign ``name`` for the scheduled period ``slot`` falls in; None if it was planned before.

    ``slot`` may be any moment: the run is keyed by the slot that opens its period
    (:func:`~motorcade.activation.schedule.period_start`), so a scheduled pass, a manual run and a rerun a
    minute later all plan the same run, and a campaign reaches a person at most once per period.
    """
    rule = ctx.rule_set.campaigns.get(name)
    if rule is None:
        raise PlanningError(f"no campaign named {name!r} in the rules (revision {ctx.revision[:12]})")
    if not rule.audience:
        raise PlanningError(f"campaign {name!r} has no `audience`", hint="add `audience SEGMENT_NAME`")
    if rule.via is None:
        raise PlanningError(f"campaign {name!r} has no `via`", hint='add `via CHANNEL template "NAME"`')
    renderer = renderer or Renderer(ctx)
    store = ctx.store
    now = ctx.now()
    slot = period_start(rule.schedule, slot, ctx.tz)
    slot_id = slot_text(slot)
    run_id = f"campaign:{name}:{slot_id}"
    cursor_name = f"campaign:{name}:segment_change_id"
    if store.get_run(run_id) is not None:
        return None
    if store.last_segment_run(rule.audience) is None:  # planning now would spend the slot on an empty audience
        raise PlanningError(f"campaign {name!r}: segment {rule.audience!r} has never been computed",
                            hint="run `motorcade segments compute` (or the pipeline) first; the slot stays due")
    renderer.require_sound_templates(rule)
    # Read and render in a read transaction (one consistent snapshot; writers are not blocked meanwhile) ...
    with store.transaction(immediate=False):
        members = segment_member_ids(store, rule.audience)
        high_water = last_segment_change_id(store, rule.audience)
        previous = store.get_activation_cursor(cursor_name)
        if rule.send_to == "new" and previous is not None:
            current = set(members)
            entered = {pid for _, pid, change, _ in segment_changes_since(store, rule.audience, int(previous))
                       if change == "enter"}
            members = sorted(entered & current)
        members = _in_rule_scope(store, rule, members)
        quiet = _quiet_hours(rule, ctx)
        snapshot, sends = [], []
        reads = None
        for index, pid in enumerate(members):
            if ctx.stopping():
                raise PlanningStopped(f"campaign {name!r}: stopped while planning run {run_id}; the slot stays due")
            if index % READ_BATCH == 0:  # the next people's reads in a few queries, not several per person
                from motorcade.journeys.engine import BatchReads

                reads = BatchReads(store, members[index:index + READ_BATCH])
            arm = "holdout" if in_holdout(pid, name, rule.holdout) else "treatment"
            snapshot.append((pid, arm))
            payload = {"arm": arm, "transactional": bool(rule.transactional), "quiet_hours": quiet,
                       "holdout_percent": rule.holdout,
                       "steps": [{"channel": st.channel, "template": st.template, "error": "holdout: not rendered"}
                                 for st in rule.via.steps] if arm == "holdout" else renderer.steps(rule, pid, now, reads=reads)}
            sends.append(_send(rule, run_id, slot_id, pid, ctx.revision, payload))
    # ... then write the run, its snapshot, its outbox rows and the advanced cursor in ONE write transaction.
    with store.transaction():
        if not store.create_run(run_id, origin_kind="campaign", origin=name, revision=ctx.revision,
                                scheduled_for=slot, started_at=now):
            return None  # another worker planned this slot meanwhile
        if store.get_activation_cursor(cursor_name) != previous:
            raise PlanningError(f"campaign {name!r}: its segment cursor moved while run {run_id} was being planned",
                                hint="another worker planned a run of this campaign; the next pass retries")
        store.set_activation_cursor(cursor_name, str(high_water), at=now)
        store.add_audience_snapshot(run_id, snapshot)
        planned = _enqueue(ctx, sends, now)
        store.finish_run(run_id, status="planned", audience_size=len(members), finished_at=ctx.now())
    holdout = sum(1 for _, arm in snapshot if arm == "holdout")
    ctx.log(f"campaign {name}: run {run_id} planned {planned} sends ({holdout} in holdout) for {len(members)} people")
    return {"run_id": run_id, "audience": len(members), "planned": planned, "holdout": holdout}


# -- triggers ---------------------------------------------------------------------------------------


def _wait_until(rule: ast.Trigger, fired_at: dt.datetime, tz) -> dt.datetime | None:
    if rule.wait is None:
        return None
    return shift(fired_at, rule.wait.amount, rule.wait.unit, tz)


def _plan_firing(ctx: ActivationContext, rule: ast.Trigger, renderer: Renderer, occasion: str, person_id: int,
                 fired_at: dt.datetime, now: dt.datetime, event_properties: dict | None) -> dict[str, Any]:
    renderer.require_sound_templates(rule)  # raises inside the batch's transaction: the cursor does not move
    run_id = f"trigger:{rule.name}:{occasion}"
    ctx.store.create_run(run_id, origin_kind="trigger", origin=rule.name, revision=ctx.revision,
                         scheduled_for=fired_at, started_at=now, status="planned")
    ctx.store.add_audience_snapshot(run_id, [(person_id, "treatment")])
    ctx.store.finish_run(run_id, status="planned", audience_size=1, finished_at=now)
    payload = {"arm": "treatment", "transactional": bool(rule.transactional), "quiet_hours": _quiet_hours(rule, ctx),
               "fired_at": iso(fired_at), "steps": renderer.steps(rule, person_id, now, event_properties)}
    return _send(rule, run_id, occasion, person_id, ctx.revision, payload,
                 not_before=_wait_until(rule, fired_at, ctx.tz))


def process_event_trigger(ctx: ActivationContext, name: str, *, renderer: Renderer | None = None) -> dict[str, int]:
    """Handle events newer than the trigger's high-water mark, one transaction per batch."""
    from .people import person_data

    rule = ctx.rule_set.triggers[name]
    if rule.via is None:
        raise PlanningError(f"trigger {name!r} has no `via`", hint='add `via CHANNEL template "NAME"`')
    renderer = renderer or Renderer(ctx)
    store = ctx.store
    cursor_name = f"trigger:{name}:event_id"
    totals = {"events": 0, "fired": 0, "planned": 0}
    if not store.events_deduplicated():  # a first bulk load's duplicates and ids are not final yet
        ctx.log(f"trigger {name}: waiting for a large event load to finish")
        return totals
    while True:
        now = ctx.now()
        with store.transaction():
            cursor = store.get_activation_cursor(cursor_name)
            if cursor is None:
                start = store.first_event_id_since(now - dt.timedelta(hours=ctx.settings.trigger_lookback_hours))
            else:
                start = int(cursor)
            events = store.events_after(start, [rule.on.event], limit=ctx.settings.trigger_batch)
            # Inside this write transaction no other writer is active: every event id up to max_event_id()
            # is committed and visible, so a trigger whose event is rare skips past the others for good.
            caught_up = len(events) < ctx.settings.trigger_batch
            high_water = store.max_event_id() if caught_up else events[-1][0]
            if not events:
                if cursor is None or high_water > start:
                    store.set_activation_cursor(cursor_name, str(max(start, high_water)), at=now)
                return totals
            sends = []
            fired_in_batch: dict[int, list[dt.datetime]] = {}
            for event_id, person_id, event_name, ts, properties in events:
                totals["events"] += 1
                if person_id is None:
                    continue
                person_id = store.resolve_person_id(person_id)
                if not _in_rule_scope(store, rule, [person_id]):
                    continue  # a store-scoped trigger does not fire for other stores' people
                data = person_data(store, person_id, as_of=max(ts, now))
                previous = store.trigger_firings(name, person_id) + fired_in_batch.get(person_id, [])
                decision = trigger_fires(
                    ctx.rule_set, name, Dataset.of(data), person_id,
                    event=EventData(event_name, ts, store.value_types().event(properties), id=event_id),
                    previous_firings=previous, tz=ctx.tz,
                )
                if not decision.fires:
                    continue
                totals["fired"] += 1
                fired_in_batch.setdefault(person_id, []).append(ts)
                sends.append(_plan_firing(ctx, rule, renderer, f"e{event_id}", person_id, ts, now, properties))
            totals["planned"] += _enqueue(ctx, sends, now)
            store.set_activation_cursor(cursor_name, str(max(high_water, events[-1][0])), at=now)
        if caught_up or ctx.stopping():
            break
    if totals["fired"]:
        ctx.log(f"trigger {name}: {totals['events']} events, fired {totals['fired']}, planned {totals['planned']}")
    return totals


def process_segment_trigger(ctx: ActivationContext, name: str, *, renderer: Renderer | None = None
                            ) -> dict[str, int]:
    """Handle segment enter/leave changes newer than the trigger's high-water mark (one transaction)."""
    from .people import person_data

    rule = ctx.rule_set.triggers[name]
    if rule.via is None:
        raise PlanningError(f"trigger {name!r} has no `via`", hint='add `via CHANNEL template "NAME"`')
    renderer = renderer or Renderer(ctx)
    store = ctx.store
    on: ast.OnSegment = rule.on
    cursor_name = f"trigger:{name}:segment_change_id"
    totals = {"changes": 0, "fired": 0, "planned": 0}
    now = ctx.now()
    with store.transaction():
        cursor = store.get_activation_cursor(cursor_name)
        changes = segment_changes_since(store, on.segment, int(cursor or 0))
        if cursor is None:  # a new trigger reacts to recent changes only, never to the whole history
            earliest = now - dt.timedelta(hours=ctx.settings.trigger_lookback_hours)
            changes = [c for c in changes if c[3] is None or c[3] >= earliest]
        sends = []
        fired_in_pass: dict[int, list[dt.datetime]] = {}
        for change_id, person_id, change, at in changes:
            totals["changes"] += 1
            if change != on.change:
                continue
            at = at or now
            person_id = store.resolve_person_id(person_id)
            if not _in_rule_scope(store, rule, [person_id]):
                continue  # a store-scoped trigger does not fire for other stores' people
            data = person_data(store, person_id, as_of=max(at, now))
            previous = store.trigger_firings(name, person_id) + fired_in_pass.get(person_id, [])
            decision = trigger_fires(ctx.rule_set, name, Dataset.of(data), person_id, segment_change=(change, on.segment),
                                     as_of=at, previous_firings=previous, tz=ctx.tz)
            if not decision.fires:
                continue
            totals["fired"] += 1
            fired_in_pass.setdefault(person_id, []).append(at)
            sends.append(_plan_firing(ctx, rule, renderer, f"c{change_id}", person_id, at, now, None))
        totals["planned"] = _enqueue(ctx, sends, now)
        high_water = max([c[0] for c in changes] + [int(cursor or 0), last_segment_change_id(store, on.segment)
                                                     if cursor is None else 0])
        store.set_activation_cursor(cursor_name, str(high_water), at=now)
    if totals["fired"]:
        ctx.log(f"trigger {name}: {totals['changes']} segment changes, fired {totals['fired']}")
    return totals
