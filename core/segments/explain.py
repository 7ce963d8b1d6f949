"""``motorcade explain``: the plan of a segment, and why one person is (not) in it."""

from __future__ import annotations

import datetime as dt
import time

import attrs

from motorcade.dsl.errors import did_you_mean
from motorcade.dsl.evaluate import ExplainNode, explain_person
from motorcade.errors import MotorcadeError

from .compiler import Compiler, Scope, col, select_
from .dialects import get_dialect
from .compute import evaluate_members, parse_as_of
from .dataset import load_dataset


@attrs.frozen
class SegmentExplanation:
    segment: str
    as_of: dt.datetime
    sql: str | None
    params: dict
    plan: str  # the plan shape chosen
    query_plan: list[str]  # the engine's plan of the query (store.explain_query), indented
    size: int
    sample: list[str]  # person ids of a few members
    seconds: float


def shown(person_id: int) -> str:
    """A person id as output shows it. Internal person ids are not masked: they name nobody outside the store,
    appear in every send's idempotency key, and an operator passes them back (`explain --person 42`); the
    identifiers, names and phones of a person are what is masked."""
    return str(person_id)


def require_segment(rule_set, segment: str) -> None:
    """Raise "unknown segment" with `check`'s did-you-mean hint (or the list of segments) for a name not in the rules."""
    if segment not in rule_set.segments:
        raise MotorcadeError(f"unknown segment `{segment}`", did_you_mean(segment, rule_set.segments)
                             or f"segments: {', '.join(sorted(rule_set.segments)) or 'none'}")


def explain_segment(project, segment: str, as_of=None, *, sample: int = 5) -> SegmentExplanation:
    tz = project.timezone
    as_of = parse_as_of(as_of, tz)
    rule_set = project.rules()
    require_segment(rule_set, segment)
    store = project.store
    started = time.perf_counter()
    members, plan, query = evaluate_members(store, rule_set, segment, as_of, tz)
    seconds = time.perf_counter() - started
    query_plan: list[str] = []
    if query is not None:
        query_plan = store.explain_query(query.sql(dialect=store.dialect), query.params)
    return SegmentExplanation(segment, as_of, query.sql(dialect=store.dialect, pretty=True) if query else None,
                              dict(query.params) if query else {}, plan, query_plan, len(members),
                              [shown(p) for p in members[:sample]], seconds)


@attrs.frozen
class PersonExplanation:
    segment: str
    person_id: int
    as_of: dt.datetime
    tree: ExplainNode
    sql_member: bool  # what the compiled SQL says (must equal tree.result)
    stored: dict | None  # the stored membership from the last computation, if any


def explain_person_in_segment(project, segment: str, person_id: int, as_of=None) -> PersonExplanation:
    """The condition tree for one person (values seen, pass / fail / null per condition) by the reference
    evaluator over the person's rows, cross-checked with the compiled SQL for the same person."""
    tz = project.timezone
    as_of = parse_as_of(as_of, tz)
    rule_set = project.rules()
    store = project.store
    require_segment(rule_set, segment)
    resolved = store.resolve_person_id(person_id)
    store.require_person_in_scope(resolved)
    dataset = load_dataset(store, [resolved])
    if resolved not in dataset.people:
        raise MotorcadeError(f"no person with id {person_id} in {store.location}",
                             "check the id (e.g. from `motorcade explain SEGMENT` samples with MOTORCADE_SHOW_PII=1)")
    tree = explain_person(rule_set, segment, dataset, resolved, as_of, tz)
    dialect = get_dialect(getattr(store, "dialect", "sqlite"))
    compiler = Compiler(rule_set, as_of, tz, store.value_types(), dialect.name)
    from sqlglot import exp

    condition = compiler.segment_condition(segment, Scope("p"))
    query = select_(exp.alias_(condition, "v")).from_(exp.to_table("people").as_("p"), copy=False).where(
        exp.EQ(this=col("p", "id"), expression=compiler.bind(resolved)), copy=False)
    rows = store.query(dialect.render(query, compiler.params), compiler.params)
    sql_member = bool(rows and rows[0][0] == 1)
    return PersonExplanation(segment, resolved, as_of, tree, sql_member,
                             store.segment_membership(segment, resolved))


# ---- recommendations ------------------------------------------------------------------------------


@attrs.frozen
class RecommendationExplanation:
    recommendation: str
    person_id: int
    as_of: dt.datetime
    tree: ExplainNode  # by the reference evaluator: per car (per car), per rule, the condition tree
    ranked: list  # what the compiled SQL gives (RecommendedItem), the production path
    sql_agrees: bool


def explain_person_recommendation(project, name: str, person_id: int, as_of=None) -> RecommendationExplanation:
    """Why one person gets each item of recommendation ``name``: the evaluator's tree (the rule that chose
    each item, the conditions with the values seen), cross-checked with the compiled rules."""
    from motorcade.dsl.evaluate import evaluate_recommendations, explain_recommendation

    from .recommend import compute_recommendations, require_recommendation

    tz = project.timezone
    as_of = parse_as_of(as_of, tz)
    rule_set = project.rules()
    require_recommendation(rule_set, name)
    store = project.store
    resolved = store.resolve_person_id(person_id)
    dataset = load_dataset(store, [resolved])
    if resolved not in dataset.people:
        raise MotorcadeError(f"no person with id {person_id} in {store.path}",
                             "check the id (e.g. from `motorcade explain SEGMENT` samples with MOTORCADE_SHOW_PII=1)")
    tree = explain_recommendation(rule_set, name, dataset, resolved, as_of, tz)
    ranked = compute_recommendations(store, rule_set, name, as_of, tz, [resolved]).get(resolved, [])
    expected = evaluate_recommendations(rule_set, name, dataset, as_of, tz).get(resolved, [])
    return RecommendationExplanation(name, resolved, as_of, tree, ranked, ranked == expected)


@attrs.frozen
class RecommendationSummary:
    recommendation: str
    as_of: dt.datetime
    sql: str
    people: int  # people with at least one item
    by_item: list  # (item, people, people with it first)
    seconds: float


def explain_recommendation_summary(project, name: str, as_of=None) -> RecommendationSummary:
    """The compiled SQL of recommendation ``name`` and, over everyone, how many people get each item."""
    from motorcade.dsl.evaluate import person_items

    from .recommend import compute_recommendations, recommendation_query, require_recommendation

    tz = project.timezone
    as_of = parse_as_of(as_of, tz)
    rule_set = project.rules()
    rule = require_recommendation(rule_set, name)
    store = project.store
    started = time.perf_counter()
    ranked = compute_recommendations(store, rule_set, name, as_of, tz)
    seconds = time.perf_counter() - started
    people = {item: 0 for item in rule.items()}
    first = dict(people)
    for items in ranked.values():
        ordered = person_items(items)
        for item in ordered:
            people[item] += 1
        first[ordered[0]] += 1
    sql, _ = recommendation_query(store, rule_set, name, as_of, tz)
    return RecommendationSummary(name, as_of, sql, len(ranked), [(i, people[i], first[i]) for i in rule.items()],
                                 seconds)
