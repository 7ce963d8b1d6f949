"""The journey engine: let people in (entry, re-entry, holdout), then advance everyone whose step is due, in
batches, each batch ONE transaction (its state changes, path records and outbox rows together).

A crash at any point therefore either kept a batch whole or lost it whole: on restart the lost batch is
advanced again from the same states, and its sends get the same idempotency keys
(``journey:NAME:e<entry>:p<person>:s<step>``), so no step is skipped and no send is planned twice. Sends
go through the outbox like every campaign's, so the guard rails (consent, quiet hours, frequency cap,
channel fallback, channel limits) apply at delivery.

Versions: a journey's version is a hash of its canonical text. A person finishes the journey on the version
they entered (the text of every version entered is kept in the store); an edit applies to people who enter
after it. A version whose text can no longer be read falls back to the current version at the step of the
same id, or exits the person (outcome ``version gone``).
"""

from __future__ import annotations

import datetime as dt
import gc
import hashlib
from typing import Any

import attrs

from motorcade.activation.guardrails import in_holdout
from motorcade.activation.planner import (
    PlanningError, Renderer, _enqueue, last_segment_change_id, segment_changes_since, send_key,
)
from motorcade.activation.schedule import latest_slot, slot_text
from motorcade.activation.settings import ActivationContext
from motorcade.dsl import ast
from motorcade.dsl.data import Dataset, EventData, PersonData
from motorcade.dsl.errors import DslError
from motorcade.dsl.evaluate import Evaluator, Scope, shift
from motorcade.dsl.format import fmt_cond, format_rule
from motorcade.dsl.journey import END, Flow, build_flow
from motorcade.dsl.parser import parse_text
from motorcade.store.codec import epoch, from_epoch

from .stepper import PersonState, advance


def journey_version(journey: ast.Journey) -> str:
    """The version of a journey: the first 16 hex digits of the sha256 of its canonical text."""
    return hashlib.sha256(format_rule(journey).encode("utf-8")).hexdigest()[:16]


def run_id_of(name: str) -> str:
    return f"journey:{name}"


@attrs.frozen
class SendRule:
    """What the activation planner's renderer needs of a rule, for one send step of a journey."""

    name: str
    via: ast.Via
    origin_kind: str = "journey"
    transactional: bool = False
    quiet_hours: ast.QuietHours | None = None


def _seen(tree) -> list[dict[str, Any]]:
    """The leaves of an explain tree: each condition and the value it saw (for `journeys explain`)."""
    out, stack = [], [tree]
    while stack and len(out) < 12:
        node = stack.pop()
        if node.children:
            stack.extend(reversed(node.children))
        else:
            out.append({"condition": node.text, "result": node.result, "seen": node.seen})
    return out


class StoreWorld:
    """What the stepper asks, answered from the store for one batch of people at ``now``."""

    def __init__(self, ctx: ActivationContext, now: dt.datetime, events: dict[int, list[tuple]]):
        self.ctx = ctx
        self.now = now
        self.tz = ctx.tz
        self.events = events
        self._people: dict[int, PersonData] = {}
        self._types = ctx.store.value_types()

    def person(self, person_id: int) -> PersonData:
        from motorcade.activation.people import person_data

        if person_id not in self._people:
            self._people[person_id] = person_data(self.ctx.store, person_id, as_of=self.now)
        return self._people[person_id]

    def condition(self, person_id: int, cond) -> tuple[bool, dict[str, Any]]:
        person = self.person(person_id)
        evaluator = Evaluator(self.ctx.rule_set, Dataset.of(person), self.now, self.tz)
        tree = evaluator.explain_cond(cond, Scope(person))
        return tree.result is True, {"condition": fmt_cond(cond), "result": tree.result, "seen": _seen(tree)}

    def first_event(self, person_id, event, where, after, until):
        events = self.events.get(person_id)
        if not events:
            return None
        low, high = epoch(after), epoch(until)
        for event_id, name, ts, properties in events:
            if name != event or ts <= low or ts > high:
                continue
            if where is not None:
                data = EventData(name, from_epoch(ts), self._types.event(properties), id=event_id)
                evaluator = Evaluator(self.ctx.rule_set, Dataset.of(PersonData(person_id)), self.now, self.tz)
                if evaluator.cond(where, Scope(PersonData(person_id), event=data)) is not True:
                    continue
            return from_epoch(ts)
        return None


class BatchReads:
    """The store as a batch of sends reads it: what the template context and the addresses of the batch's
    people need (the person with identifiers, tags, ownerships, relations, identifiers of one type) read
    in one query per table for the whole batch instead of several per person, each table on first use
    (a template that never reads tags costs no read of tags); stores, advisors and cars are read once per
    batch. Everything else (and the person of an id merged into another) goes to the store itself. The
    objects are the store's own, so a template sees exactly what it would see without the batch."""

    def __init__(self, store, person_ids):
        self._store = store
        self._ids = sorted(set(person_ids))
        self._id_set = set(self._ids)
        self._tables: dict[str, dict[int, Any]] = {}
        self._shared: dict[tuple[str, str], Any] = {}
        self._merged = {r[0] for chunk in self._chunks()
                        for r in store.conn.execute(f"SELECT old_id FROM person_merges WHERE old_id IN "
                                                    f"({','.join('?' * len(chunk))})", chunk).fetchall()}

    def _chunks(self):
        for start in range(0, len(self._ids), 500):
            yield self._ids[start:start + 500]

    def _rows(self, sql: str, *params) -> list[tuple]:
        """``sql`` (with ``{marks}`` for the ids) over every chunk of the batch's ids."""
        out = []
        for chunk in self._chunks():
            out.extend(self._store.conn.execute(sql.format(marks=",".join("?" * len(chunk))),
                                                [*chunk, *params]).fetchall())
        return out

    def _table(self, name: str) -> dict[int, Any]:
        if name not in self._tables:
            self._tables[name] = getattr(self, f"_read_{name}")()
        return self._tables[name]

    def _read_people(self) -> dict[int, Any]:
        from motorcade.model import Identifier, Person
        from motorcade.store.codec import from_iso, loads

        identifiers: dict[int, list] = {pid: [] for pid in self._ids}
        for pid, kind, value in self._rows("SELECT person_id, type, value FROM identifiers WHERE person_id IN "
                                           "({marks}) ORDER BY person_id, type, value"):
            identifiers[pid].append(Identifier(kind, value))
        return {pid: Person(id=pid, attributes=loads(attributes), identifiers=tuple(identifiers[pid]),
                            created_at=from_iso(created))
                for pid, attributes, created in self._rows("SELECT id, attributes, created_at FROM people "
                                                           "WHERE id IN ({marks})")}

    def _read_tags(self) -> dict[int, list]:
        from motorcade.model import TagValue
        from motorcade.store.codec import from_iso

        out: dict[int, list] = {pid: [] for pid in self._ids}
        for r in self._rows("SELECT person_id, tag, value, computed_at, calculator, calculator_version FROM tag_values "
                            "WHERE person_id IN ({marks}) ORDER BY person_id, tag"):
            out[r[0]].append(TagValue(r[0], r[1], r[2], from_iso(r[3]), r[4], r[5]))
        return out

    def _read_ownerships(self) -> dict[int, list]:
        from motorcade.model import Ownership
        from motorcade.store.codec import from_date_text

        out: dict[int, list] = {pid: [] for pid in self._ids}
        for r in self._rows("SELECT person_id, vin, valid_from, valid_to, source FROM ownerships "
                            "WHERE person_id IN ({marks}) ORDER BY person_id, valid_from"):
            out[r[0]].append(Ownership(r[0], r[1], from_date_text(r[2]), from_date_text(r[3]), r[4]))
        return out

    def _read_relations(self) -> dict[int, list]:
        out: dict[int, list] = {pid: [] for pid in self._ids}
        for pid, kind, target in self._rows("SELECT person_id, kind, target_id FROM person_relations "
                                            "WHERE person_id IN ({marks}) ORDER BY person_id, kind, target_id"):
            out[pid].append((kind, target))
        return out

    def _batched(self, person_id: int) -> bool:
        return person_id in self._id_set and person_id not in self._merged

    def get_person(self, person_id: int):
        return self._table("people").get(person_id) if self._batched(person_id) else self._store.get_person(person_id)

    def tags_of(self, person_id: int):
        return list(self._table("tags")[person_id]) if self._batched(person_id) else self._store.tags_of(person_id)

    def ownerships_of(self, person_id: int):
        if self._batched(person_id):
            return list(self._table("ownerships")[person_id])
        return self._store.ownerships_of(person_id)

    def relations_of(self, person_id: int):
        if self._batched(person_id):
            return list(self._table("relations")[person_id])
        return self._store.relations_of(person_id)

    def identifiers_of(self, person_id: int, type_: str) -> list[str]:
        if not self._batched(person_id):
            return self._store.identifiers_of(person_id, type_)
        name = f"identifiers:{type_}"
        if name not in self._tables:
            found: dict[int, list] = {pid: [] for pid in self._ids}
            for pid, value in self._rows("SELECT person_id, value FROM identifiers WHERE person_id IN ({marks}) "
                                         "AND type = ? AND flagged = 0 ORDER BY person_id, value", type_):
                found[pid].append(value)
            self._tables[name] = found
        return list(self._tables[name][person_id])

    def _once(self, kind: str, key: str, read):
        if (kind, key) not in self._shared:
            self._shared[(kind, key)] = read(key)
        return self._shared[(kind, key)]

    def get_store(self, store_id: str):
        return self._once("store", store_id, self._store.get_store)

    def get_advisor(self, advisor_id: str):
        return self._once("advisor", advisor_id, self._store.get_advisor)

    def get_car(self, vin: str):
        return self._once("car", vin, self._store.get_car)

    def __getattr__(self, name: str):
        return getattr(self._store, name)


class JourneyRunner:
    """Entry and advancement of one journey for one pass of `run`/`serve`."""

    def __init__(self, ctx: ActivationContext, name: str, renderer: Renderer | None = None):
        self.ctx = ctx
        self.store = ctx.store
        self.name = name
        self.journey: ast.Journey = ctx.rule_set.journeys[name]
        self.version = journey_version(self.journey)
        self.flow = build_flow(self.journey)
        self.renderer = renderer or Renderer(ctx)
        self._versions: dict[str, tuple[ast.Journey, Flow] | None] = {self.version: (self.journey, self.flow)}
        self._send_rules: dict[int, tuple[ast.SendStep, SendRule, list[str] | None]] = {}
        self.totals = {"entered": 0, "holdout": 0, "steps": 0, "sends": 0, "completed": 0, "exited": 0,
                       "converted": 0}

    # -- set-up --
    def prepare(self) -> None:
        if self.journey.entry is None:
            raise PlanningError(f"journey {self.name!r} has no `entry`", hint="add e.g. `entry on entering segment S`")
        for node in self.flow.nodes.values():
            if node.kind == "send":
                self.renderer.require_sound_templates(SendRule(self.name, node.step.via))
        now = self.ctx.now()
        with self.store.transaction():
            self.store.record_journey_version(self.name, self.version, format_rule(self.journey), at=now)
            self.store.create_run(run_id_of(self.name), origin_kind="journey", origin=self.name,
                                  revision=self.ctx.revision, scheduled_for=None, started_at=now, status="running")

    def version_of(self, version: str) -> tuple[ast.Journey, Flow] | None:
        if version not in self._versions:
            text = self.store.journey_version_text(self.name, version)
            found = None
            if text is not None:
                try:
                    rules = parse_text(text, f"<journey {self.name} version {version}>").rules
                    journey = next(r for r in rules if isinstance(r, ast.Journey))
                    found = (journey, build_flow(journey))
                except (DslError, StopIteration):
                    found = None
            self._versions[version] = found
        return self._versions[version]

    # -- entering --
    def enter(self) -> None:
        entry = self.journey.entry
        if isinstance(entry, ast.EntrySegment):
            self._enter_from_segment_changes(entry)
        elif isinstance(entry, ast.EntryEvent):
            self._enter_from_events(entry)
        elif isinstance(entry, ast.EntrySchedule):
            self._enter_on_schedule(entry)

    def admit(self, candidates: list[tuple[int, dt.datetime]]) -> int:
        """Let people in (inside the caller's transaction), applying the journey's store scope, the re-entry
        rule and the holdout."""
        journey = self.journey
        if journey.scope is not None and not journey.scope.group:  # `scope store "SH01"`: its stores' people
            from motorcade.access.actions import rule_scope

            inside = set(self.store.people_in(rule_scope(journey), [pid for pid, _ in candidates]))
            candidates = [(pid, at) for pid, at in candidates if pid in inside]
        history = self.store.journey_entry_history(self.name, [pid for pid, _ in candidates])
        policy = journey.reentry or ast.JourneyReentry("once")
        rows = []
        clock = self.ctx.now()
        now = epoch(clock)
        for pid, at in candidates:
            at = min(at, clock)  # a change stamped later than the clock (a pinned pipeline) enters now
            previous = history.get(pid)
            if previous is not None:
                last_entry, last_entered, active = previous
                if policy.kind == "once" or active:
                    continue
                if policy.kind == "again after" and shift(from_epoch(last_entered), policy.after.amount,
                                                          policy.after.unit, self.ctx.tz) > at:
                    continue
            entry_number = (previous[0] if previous else 0) + 1
            held_out = in_holdout(pid, run_id_of(self.name), journey.holdout)
            status = "holdout" if held_out else ("active" if self.flow.start != END else "completed")
            rows.append({"journey": self.name, "person_id": pid, "entry": entry_number, "version": self.version,
                         "arm": "holdout" if held_out else "treatment", "step": self.flow.start, "status": status,
                         "entered_at": epoch(at), "due_at": epoch(at) if status == "active" else None,
                         "waiting_since": None, "updated_at": now})
            history[pid] = (entry_number, epoch(at), status == "active")
        inserted = self.store.add_journey_states(rows)
        self.totals["entered"] += inserted
        self.totals["holdout"] += sum(1 for r in rows if r["arm"] == "holdout")
        return inserted

    def _enter_from_segment_changes(self, entry: ast.EntrySegment) -> None:
        store, ctx = self.store, self.ctx
        cursor_name = f"journey:{self.name}:segment_change_id"
        now = ctx.now()
        with store.transaction():
            cursor = store.get_activation_cursor(cursor_name)
            changes = segment_changes_since(store, entry.segment, int(cursor or 0))
            if cursor is None:  # a new journey lets in recent entrants only, never the whole history
                earliest = now - dt.timedelta(hours=ctx.settings.trigger_lookback_hours)
                changes = [c for c in changes if c[3] is None or c[3] >= earliest]
            candidates = [(store.resolve_person_id(pid), at or now) for _, pid, change, at in changes
                          if change == "enter"]
            self.admit(candidates)
            high_water = max([c[0] for c in changes] + [int(cursor or 0)] + (
                [last_segment_change_id(store, entry.segment)] if cursor is None else []))
            store.set_activation_cursor(cursor_name, str(high_water), at=now)

    def _enter_from_events(self, entry: ast.EntryEvent) -> None:
        store, ctx = self.store, self.ctx
        cursor_name = f"journey:{self.name}:event_id"
        if not store.events_deduplicated():
            return
        types = store.value_types()
        while True:
            now = ctx.now()
            with store.transaction():
                cursor = store.get_activation_cursor(cursor_name)
                start = int(cursor) if cursor is not None else store.first_event_id_since(
                    now - dt.timedelta(hours=ctx.settings.trigger_lookback_hours))
                events = store.events_after(start, [entry.event], limit=ctx.settings.trigger_batch)
                caught_up = len(events) < ctx.settings.trigger_batch
                high_water = store.max_event_id() if caught_up else events[-1][0]
                candidates = []
                for event_id, person_id, name, ts, properties in events:
                    if person_id is None:
                        continue
                    pid = store.resolve_person_id(person_id)
                    if entry.where is not None:
                        data = EventData(name, ts, types.event(properties), id=event_id)
                        evaluator = Evaluator(ctx.rule_set, Dataset.of(PersonData(pid)), max(ts, now), ctx.tz)
                        if evaluator.cond(entry.where, Scope(PersonData(pid), event=data)) is not True:
                            continue
                    candidates.append((pid, ts))
                self.admit(candidates)
                store.set_activation_cursor(cursor_name, str(max([high_water, start] + [e[0] for e in events])),
                                            at=now)
            if caught_up or ctx.stopping():
                return

    def _enter_on_schedule(self, entry: ast.EntrySchedule) -> None:
        store, ctx = self.store, self.ctx
        now = ctx.now()
        slot = latest_slot(entry.schedule, now, ctx.tz,
                           horizon=dt.timedelta(hours=ctx.settings.catch_up_hours))
        if slot is None:
            return
        cursor_name = f"journey:{self.name}:slot"
        if store.get_activation_cursor(cursor_name) == slot_text(slot):
            return
        if store.last_segment_run(entry.segment) is None:
            raise PlanningError(f"journey {self.name!r}: segment {entry.segment!r} has never been computed",
                                hint="run `motorcade segments compute` (or the pipeline) first; the slot stays due")
        with store.transaction():
            if store.get_activation_cursor(cursor_name) == slot_text(slot):
                return
            self.admit([(pid, slot) for pid in store.segment_member_ids(entry.segment)])
            store.set_activation_cursor(cursor_name, slot_text(slot), at=now)

    # -- advancing --
    def _event_names(self) -> set[str]:
        names = set()
        for journey, flow in (v for v in self._versions.values() if v is not None):
            if journey.goal is not None:
                names.add(journey.goal.event)
            names.update(node.step.event for node in flow.nodes.values() if node.kind == "wait_for")
        return names

    def advance(self) -> None:
        store, ctx = self.store, self.ctx
        after = (0, 0)
        first = True
        batch = ctx.settings.trigger_batch
        while not ctx.stopping():
            now = ctx.now()
            with store.transaction():
                rows = store.due_journey_states(self.name, now, limit=batch, after=after)
                if first:  # people waiting for an event that has arrived (their wait has not timed out yet)
                    for node in self.flow.nodes.values():
                        if node.kind == "wait_for":
                            rows.extend(store.journey_waits_with_event(self.name, node.id, node.step.event, now))
                    rows.extend(self._waits_of_older_versions(now))
                if not rows:
                    return
                self._advance_rows(rows, now)
            first = False
            due_rows = [r for r in rows if r["due_at"] is not None and r["due_at"] <= epoch(now)]
            if len(due_rows) < batch:
                return
            after = (due_rows[-1]["person_id"], due_rows[-1]["entry"])

    def _waits_of_older_versions(self, now: dt.datetime) -> list[dict[str, Any]]:
        out = []
        for version in self.store.journey_active_versions(self.name, besides=self.version):
            found = self.version_of(version)
            if found is None:
                continue
            for node in found[1].nodes.values():
                if node.kind == "wait_for":
                    out.extend(r for r in self.store.journey_waits_with_event(self.name, node.id, node.step.event, now)
                               if r["version"] == version)
        return out

    def _advance_rows(self, rows: list[dict[str, Any]], now: dt.datetime) -> None:
        # A batch makes a few hundred thousand short-lived objects (rows, states, contexts, sends): without the
        # cyclic collector running over them again and again a batch takes about a sixth less CPU (measured
        # with benchmarks/bench_journeys.py). What it would collect is collected after the batch.
        was_enabled = gc.isenabled()
        gc.disable()
        try:
            self._advance_batch(rows, now)
        finally:
            if was_enabled:
                gc.enable()

    def _advance_batch(self, rows: list[dict[str, Any]], now: dt.datetime) -> None:
        store, ctx = self.store, self.ctx
        seen_keys = set()
        rows = [r for r in rows if (k := (r["person_id"], r["entry"])) not in seen_keys and not seen_keys.add(k)]
        for row in rows:
            self.version_of(row["version"])
        since = min(r["entered_at"] for r in rows)
        events = store.journey_events([r["person_id"] for r in rows], self._event_names(), since=since,
                                      until=epoch(now))
        world = StoreWorld(ctx, now, events)
        self._reads = BatchReads(store, [r["person_id"] for r in rows]) if self._has_sends(rows) else store
        updates, path, sends = [], [], []
        positions: dict[int, dict[str, int]] = {}  # flow -> step id -> its position (the outbox's step column)
        now_epoch = epoch(now)
        times: dict[int | None, dt.datetime | None] = {None: None, now_epoch: now}  # epoch -> datetime, per batch

        def time_of(seconds: int | None) -> dt.datetime | None:
            if seconds not in times:
                times[seconds] = from_epoch(seconds)
            return times[seconds]

        def seconds_of(at: dt.datetime | None) -> int | None:
            return now_epoch if at is now else None if at is None else epoch(at)

        for row in rows:
            found = self.version_of(row["version"])
            journey, flow = found if found is not None else (self.journey, self.flow)
            state = PersonState(row["person_id"], row["entry"], row["step"], row["status"],
                                time_of(row["entered_at"]), time_of(row["due_at"]), time_of(row["waiting_since"]))
            if state.step != END and state.step not in flow.nodes:
                taken, planned = [], []
                path.append(self._path_row(state, "version gone", None, now_epoch, {"version": row["version"]}))
                state.status = "exited"
            else:
                taken, planned = advance(journey, flow, state, world)
            for step in taken:
                path.append(self._path_row(state, step.outcome, step.next_step, seconds_of(step.at), step.detail,
                                           step.step))
            if planned and id(flow) not in positions:
                positions[id(flow)] = {node_id: index for index, node_id in enumerate(flow.nodes)}
            for step_id, send_step in planned:
                sends.append(self._send(state, step_id, positions[id(flow)][step_id], send_step, now))
            self.totals["steps"] += len(taken)
            if state.status in ("completed", "exited", "converted"):
                self.totals[state.status] += 1
            updates.append({"journey": self.name, "person_id": state.person_id, "entry": state.entry,
                            "step": state.step, "status": state.status, "due_at": seconds_of(state.due_at),
                            "waiting_since": seconds_of(state.waiting_since), "updated_at": now_epoch})
        store.update_journey_states(updates)
        store.add_journey_path(path)
        self.totals["sends"] += _enqueue(ctx, sends, now)

    def _has_sends(self, rows) -> bool:
        return any(node.kind == "send" for version in {r["version"] for r in rows}
                   for node in (self.version_of(version) or (None, self.flow))[1].nodes.values())

    def _path_row(self, state, outcome, next_step, at: int, detail, step=None) -> dict[str, Any]:
        return {"journey": self.name, "person_id": state.person_id, "entry": state.entry,
                "step": state.step if step is None else step, "outcome": outcome, "next_step": next_step,
                "at": at, "detail": detail}

    def _send(self, state: PersonState, step_id: str, position: int, step: ast.SendStep, now: dt.datetime
              ) -> dict[str, Any]:
        if id(step) not in self._send_rules:  # per send step: its rule and quiet hours, made once per pass
            rule = SendRule(self.name, step.via)
            self._send_rules[id(step)] = (step, rule, _quiet(rule, self.ctx))
        _step, rule, quiet = self._send_rules[id(step)]
        payload = {"arm": "treatment", "transactional": False, "quiet_hours": quiet,
                   "journey_step": step_id, "entry": state.entry,
                   "steps": self.renderer.steps(rule, state.person_id, now, reads=self._reads)}
        failed = [s["error"] for s in payload["steps"] if s.get("template_failed")]
        first = step.via.steps[0]
        return {
            "idempotency_key": send_key("journey", self.name, f"e{state.entry}", state.person_id, step_id),
            "origin_kind": "journey", "origin": self.name, "run_id": run_id_of(self.name),
            "person_id": state.person_id, "step": position, "channel": first.channel, "template": first.template,
            "revision": self.ctx.revision, "status": "dead" if failed else "planned",
            "reason": "; ".join(failed)[:4000] if failed else None, "not_before": None, "payload": payload,
        }


def _quiet(rule, ctx):
    from motorcade.activation.planner import _quiet_hours

    return _quiet_hours(rule, ctx)


def reacts_to_events(journey: ast.Journey) -> bool:
    """Whether new events can move people in ``journey`` at once: it lets people in on an event
    (`entry on EVENT`) or has a `wait for EVENT` step. The collector's processor advances these journeys
    right after it ingests (the real-time path); `run`/`serve` advance every journey."""
    if isinstance(journey.entry, ast.EntryEvent):
        return True
    return any(node.kind == "wait_for" for node in build_flow(journey).nodes.values())


def process_journey(ctx: ActivationContext, name: str, *, renderer: Renderer | None = None,
                    realtime: bool = False) -> dict[str, int]:
    """One pass of journey ``name``: let new people in, then advance everyone due. Returns counts.

    ``realtime`` (the collector's processor, after new events): only an `entry on EVENT` lets people in
    (segment and schedule entries wait for `run`/`serve`); advancing is the same. Both paths take each batch
    in one write transaction that reads the states it changes, so a pass of `run` and one of the processor at
    the same time advance each person once (the second sees the states the first wrote)."""
    runner = JourneyRunner(ctx, name, renderer)
    runner.prepare()
    runner.advance()  # first, so that people who finish now may enter again in this pass
    if not realtime or isinstance(runner.journey.entry, ast.EntryEvent):
        runner.enter()
    runner.advance()
    if any(runner.totals.values()):
        totals = runner.totals
        ctx.log(f"journey {name}: {totals['entered']} entered ({totals['holdout']} held out), {totals['steps']} "
                f"steps taken, {totals['sends']} sends planned")
    return runner.totals
