"""How one person moves through a journey's flow graph: a pure function of the person's state and what the
world answers (conditions, events), shared by the engine (:mod:`motorcade.journeys.engine`) and rule tests.

Before every step the goal and ``exit when`` are checked: a person whose goal event arrived (within the
goal's window after entering) is *converted*, one for whom ``exit when`` holds has *exited*. Then the step
runs: a send is planned and the person moves on; a wait parks the person until it is due (waits count from
the moment the person reaches them); ``wait for`` parks the person until the event arrives or the upper
bound passes, whichever is first; ``if`` evaluates its condition for the person now; ``split`` draws a stable
arm from the person, the journey and the step. The person advances until a wait parks them or the flow ends.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any, Protocol

import attrs

from motorcade.dsl import ast
from motorcade.dsl.evaluate import shift
from motorcade.dsl.journey import END, Flow

# A flow has no cycles, so a person takes at most one pass over its nodes per call; this guards the loop.
_MAX_HOPS = 10_000


@attrs.define
class PersonState:
    """Where one entry of one person stands. Times are aware datetimes."""

    person_id: int
    entry: int
    step: str
    status: str  # active | completed | exited | converted | holdout
    entered_at: dt.datetime
    due_at: dt.datetime | None = None
    waiting_since: dt.datetime | None = None


@attrs.frozen
class Taken:
    """One step taken: the outcome (``sent``, ``waited``, ``event``, ``timeout``, ``then``, ``else``, ``arm2``,
    ``exit``, ``goal``, ``exit when``) and the step it leads to (None when the person left the journey)."""

    step: str
    outcome: str
    next_step: str | None
    at: dt.datetime
    detail: dict[str, Any] = attrs.field(factory=dict)


class World(Protocol):
    """What the stepper asks about a person at ``now``."""

    now: dt.datetime
    tz: dt.tzinfo

    def condition(self, person_id: int, cond) -> tuple[bool, dict[str, Any]]:
        """Whether a person-scope condition holds now, and what was seen (for ``explain``)."""

    def first_event(self, person_id: int, event: str, where, after: dt.datetime, until: dt.datetime
                    ) -> dt.datetime | None:
        """The time of the person's first ``event`` (matching ``where``) with after < ts <= until, or None."""


def split_arm(person_id: int, journey: str, step: str, percents: list[float]) -> int:
    """The arm (1-based) a person takes at a split: the same for the same person, journey and step."""
    digest = hashlib.sha256(f"split\0{journey}\0{step}\0{person_id}".encode()).digest()
    point = int.from_bytes(digest[:8], "big") / 2**64 * sum(percents)
    total = 0.0
    for number, percent in enumerate(percents, start=1):
        total += percent
        if point < total:
            return number
    return len(percents)


def next_time_of_day(now: dt.datetime, at: dt.time, tz: dt.tzinfo) -> dt.datetime:
    """The first instant strictly after ``now`` whose local time in ``tz`` is ``at``."""
    local = now.astimezone(tz)
    candidate = dt.datetime.combine(local.date(), at).replace(tzinfo=tz)
    if candidate <= local:
        candidate = dt.datetime.combine(local.date() + dt.timedelta(days=1), at).replace(tzinfo=tz)
    return candidate.astimezone(dt.timezone.utc)


def advance(journey: ast.Journey, flow: Flow, state: PersonState, world: World
            ) -> tuple[list[Taken], list[tuple[str, ast.SendStep]]]:
    """Move ``state`` (in place) as far as it goes at ``world.now``. Returns the steps taken and the sends
    to plan, as ``(step id, send step)``."""
    now = world.now
    taken: list[Taken] = []
    sends: list[tuple[str, ast.SendStep]] = []
    pid = state.person_id
    hops = 0
    goal = journey.goal
    # the goal counts up to now, within its window after entering (the same for every hop of this call)
    goal_until = None if goal is None else min(now, shift(state.entered_at, goal.within.amount, goal.within.unit,
                                                          world.tz))

    def move(outcome: str, target: str | None, detail: dict | None = None) -> None:
        taken.append(Taken(state.step, outcome, target, now, detail or {}))
        state.waiting_since = None
        state.due_at = now
        if target is not None:
            state.step = target

    while state.status == "active" and hops < _MAX_HOPS:
        hops += 1
        if state.step == END:
            state.status, state.due_at = "completed", None
            break
        if goal is not None:
            reached = world.first_event(pid, goal.event, goal.where, state.entered_at, goal_until)
            if reached is not None:
                move("goal", None, {"event": goal.event, "at": reached.isoformat()})
                state.status, state.due_at = "converted", None
                break
        if journey.exit_when is not None:
            holds, seen = world.condition(pid, journey.exit_when)
            if holds:
                move("exit when", None, seen)
                state.status, state.due_at = "exited", None
                break
        node = flow.nodes[state.step]
        step = node.step
        if node.kind == "send":
            sends.append((node.id, step))
            move("sent", node.edges["next"])
        elif node.kind in ("wait", "wait_until", "wait_for"):
            if state.waiting_since is None:  # the person reaches the wait now
                state.waiting_since = now
                if node.kind == "wait":
                    state.due_at = shift(now, step.duration.amount, step.duration.unit, world.tz)
                elif node.kind == "wait_until":
                    state.due_at = next_time_of_day(now, step.at, world.tz)
                else:
                    state.due_at = shift(now, step.up_to.amount, step.up_to.unit, world.tz)
                break  # only an event after the person reached the wait counts
            if node.kind == "wait_for":
                arrived = world.first_event(pid, step.event, step.where, state.waiting_since,
                                            min(now, state.due_at))
                if arrived is not None:
                    move("event", node.edges["event"], {"event": step.event, "at": arrived.isoformat()})
                    continue
                if state.due_at <= now:
                    move("timeout", node.edges["timeout"])
                    continue
                break
            if state.due_at > now:
                break
            move("waited", node.edges["next"])
        elif node.kind == "if":
            holds, seen = world.condition(pid, step.cond)
            move("then" if holds else "else", node.edges["then" if holds else "else"], seen)
        elif node.kind == "split":
            arm = split_arm(pid, journey.name, node.id, [a.percent for a in step.arms])
            move(f"arm{arm}", node.edges[f"arm{arm}"])
        elif node.kind == "exit":
            move("exit", None)
            state.status, state.due_at = "exited", None
        else:  # pragma: no cover - build_flow makes only the kinds above
            raise AssertionError(node.kind)
    return taken, sends
