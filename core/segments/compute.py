"""Compute segments through the compiler and store their memberships (the library behind
``motorcade segments compute``)."""

from __future__ import annotations

import datetime as dt
import time
from typing import Callable, Iterable

import attrs

from motorcade.dsl import ast
from motorcade.dsl.evaluate import Unsupported, evaluate_segment
from motorcade.errors import MotorcadeError

from .compiler import CompiledQuery, property_keys
from .dataset import load_dataset
from .plan import plan_segment


@attrs.frozen
class SegmentResult:
    """One segment computed at ``as_of``: its size, the change since the previous run and how."""

    name: str
    size: int
    entered: int
    left: int
    run_id: int | None  # None when not stored (members_now)
    revision: str
    as_of: dt.datetime
    computed_at: dt.datetime
    seconds: float
    plan: str
    member_ids: tuple[int, ...] = attrs.field(repr=False, converter=tuple, default=())


def dependencies(rule_set, name: str) -> list[str]:
    """Segments that ``name`` refers to with ``in segment`` (directly), in order of appearance."""
    segment = rule_set.segments.get(name)
    if segment is None:
        raise MotorcadeError(f"unknown segment `{name}`",
                             f"segments in the rules: {', '.join(sorted(rule_set.segments)) or 'none'}")
    seen = []
    for node in ast.walk(segment.where):
        if isinstance(node, ast.InSegment) and node.segment not in seen:
            seen.append(node.segment)
    return seen


def dependency_order(rule_set, names: Iterable[str]) -> list[str]:
    """``names`` ordered so a segment comes after the segments it refers to; a cycle is an error."""
    order: list[str] = []
    state: dict[str, str] = {}
    wanted = list(names)

    def visit(name: str, path: list[str]) -> None:
        if state.get(name) == "done":
            return
        if state.get(name) == "active":
            cycle = " -> ".join(path[path.index(name):] + [name])
            raise MotorcadeError(f"segments refer to each other in a cycle: {cycle}",
                                 "break the cycle: one of these segments must not use `in segment`")
        state[name] = "active"
        for dep in dependencies(rule_set, name):
            if dep not in rule_set.segments:
                raise MotorcadeError(f"segment `{name}` refers to unknown segment `{dep}`",
                                     "define it or fix the name in `in segment`")
            visit(dep, path + [name])
        state[name] = "done"
        order.append(name)

    for name in wanted:
        visit(name, [])
    return [n for n in order if n in wanted]


def parse_as_of(value, tz) -> dt.datetime:
    """An aware instant from None (now), a datetime or text (see :mod:`motorcade.as_of`)."""
    from ..as_of import parse_as_of as parse

    return parse(value, tz)


def evaluate_members(store, rule_set, name: str, as_of: dt.datetime, tz, *, engine=None
                     ) -> tuple[list[int], str, CompiledQuery | None]:
    """Member ids of segment ``name`` at ``as_of`` (sorted), the plan description and the query.

    Compiled SQL first; a condition the compiler has no rule for falls back to the reference evaluator
    over the whole store (slow, but the same answer), and the plan says so. ``engine``: an analytics
    engine holding a mirror of the analytical tables (:mod:`motorcade.analytics`): the plan is compiled
    in its dialect and runs there.
    """
    with store.read_snapshot():  # the plan's probes and checks see the rows its query reads
        try:
            if engine is not None:
                from ..analytics.segments import plan_on_engine

                query = plan_on_engine(store, engine, rule_set, name, as_of, tz)
            else:
                query = plan_segment(store, rule_set, name, as_of, tz)
        except Unsupported as exc:
            members = evaluate_segment(rule_set, name, load_dataset(store), as_of, tz)
            return _in_scope(store, rule_set, name, sorted(members)), f"reference evaluator ({exc})", None
        if engine is not None:
            try:
                members = engine.person_ids(query)
            except Exception as exc:  # the engine's own error types (duckdb.Error, chdb's RuntimeError, ...)
                raise MotorcadeError(f"segment `{name}`: the query failed on {engine.name}: {exc}",
                                     "check the analytics engine ([project] analytics, docs/engines.md); the "
                                     "last computed memberships stay in force") from exc
            members.sort()  # in place: the plan's ORDER BY has already sorted them (a copy costs ms per 100k)
            return _in_scope(store, rule_set, name, members), f"on {engine.name}: {query.driver}", query
        members = store.query_person_ids(query.sql(), query.params)
    return _in_scope(store, rule_set, name, members), query.driver, query


def _in_scope(store, rule_set, name: str, members: list[int]) -> list[int]:
    """A store-scoped segment holds only its stores' people; a scoped caller sees only their own."""
    from motorcade.access.actions import rule_scope

    return store.people_in_scope(store.people_in(rule_scope(rule_set.segments[name]), members))


def members_now(project, segment: str, as_of=None) -> list[int]:
    """Member ids of ``segment`` at ``as_of`` (default now) from the working-tree rules, without storing."""
    tz = project.timezone
    rule_set = project.rules()
    members, _, _ = evaluate_members(project.store, rule_set, segment, parse_as_of(as_of, tz), tz)
    return members


def compute_segments(project, names=None, as_of=None, *, rule_set=None,
                     progress: Callable[[str], None] | None = None) -> list[SegmentResult]:
    """Compute ``names`` (default: every segment) at ``as_of`` in dependency order and store them.

    Each segment gets a ``segment_runs`` row, its members (``entered_at`` kept for people already in,
    ``computed_at`` = now) and ``enter`` / ``leave`` rows in ``segment_changes``; the rule text of the
    revision is recorded in ``rule_revisions`` so every membership traces to the rules that made it.
    """
    tz = project.timezone
    as_of = parse_as_of(as_of, tz)
    rule_set = rule_set or project.rules(checked=True)
    wanted = list(names) if names else sorted(rule_set.segments)
    if not names and project.store.access is not None and not project.store.access.is_group:
        from motorcade.access.actions import PUBLISH, rule_scope

        held = project.store.access.scope(PUBLISH)  # every segment a store's staff may compute
        wanted = [n for n in wanted if held.covers(rule_scope(rule_set.segments[n]))]
    for name in wanted:
        if name not in rule_set.segments:
            from motorcade.dsl.errors import did_you_mean

            raise MotorcadeError(f"no segment named `{name}` in the rules", did_you_mean(name, rule_set.segments)
                                 or f"segments: {', '.join(sorted(rule_set.segments)) or 'none'}")
    store = project.store
    store.require_events_deduplicated()  # a first bulk load's duplicates would count twice
    behind = store.plan_stats_behind()
    if progress is not None and behind >= 1_000_000:
        progress(f"counting {behind:,} new events for the planner statistics (once per large load)...")
    with store.transaction():
        store.refresh_plan_stats()  # events written since the last run join the planner statistics
    engine = project.analytics
    if engine is not None:
        # the analytical tables as they are now, into the engine the plans run on (memberships come back
        # to the operational store below; triggers never wait on this)
        if progress is not None:
            progress(f"mirroring the analytical tables into {engine.name}...")
        try:
            # the event properties the rules read go into typed columns (no JSON parsed per row)
            engine.mirror(store, properties=property_keys(rule_set))
        except Exception as exc:
            raise MotorcadeError(f"copying the analytical tables into {engine.name} failed: {exc}",
                                 "check the analytics engine ([project] analytics, docs/engines.md); the "
                                 "last computed memberships stay in force") from exc
    files = {rf.filename: rf.source for rf in rule_set.files}
    store.record_rule_revision(rule_set.revision, files, at=dt.datetime.now(dt.timezone.utc))
    order = dependency_order(rule_set, wanted)
    from motorcade.access.actions import PUBLISH, require_rule_scope

    for name in order:  # a store's staff compute only their stores' segments (and what those use)
        require_rule_scope(store.access, PUBLISH, "segment", rule_set.segments[name])
    results = []
    affected = getattr(project, "audit_affected", {})
    affected.update(revision=rule_set.revision, segments={})
    for name in order:
        started = time.perf_counter()
        members, plan, _ = evaluate_members(store, rule_set, name, as_of, tz, engine=engine)
        seconds = time.perf_counter() - started
        computed_at = dt.datetime.now(dt.timezone.utc)
        run = store.record_segment_run(name, members, revision=rule_set.revision, as_of=as_of,
                                       computed_at=computed_at, duration_ms=seconds * 1000, plan=plan)
        affected["segments"][name] = run["size"]
        results.append(SegmentResult(name, run["size"], run["entered"], run["left"], run["run_id"],
                                     rule_set.revision, as_of, computed_at, seconds, plan, members))
    return results
