"""Anything `check` accepts, the engine evaluates without raising: the reference evaluator and the compiled
SQL (the plain query and the plan) on a small real SQLite store. Hypothesis generates ASTs (not text: text
from a grammar with ignored white space can fail to parse), with values at and beyond the engine's limits
(64-bit integers, infinite floats, dates of year 1 and 9999, spans of millions of days, deep nesting, chains
of `in segment`), and the rules `check` rejected must name where (a line and column when parsed).

``DSL_FUZZ_EXAMPLES`` sets the number of examples (CI: the default; a longer run: e.g. 5000)."""

from __future__ import annotations

import datetime as dt
import os
import zoneinfo

import pytest
from hypothesis import HealthCheck, assume, given, note, settings
from hypothesis import strategies as st

from motorcade.dsl import ast
from motorcade.dsl.check import MAX_NESTING, check
from motorcade.dsl.errors import ERROR, DslError
from motorcade.dsl.evaluate import Evaluator, Scope, evaluate_segment
from motorcade.dsl.format import format_rules
from motorcade.dsl.rules import RuleSet, build_rule_set, rule_set_from_text
from motorcade.model import Car, Consent, Event, Ownership
from motorcade.segments.compiler import compile_condition
from motorcade.segments.dataset import load_dataset
from motorcade.segments.plan import plan_segment
from motorcade.store.sqlite import SQLiteStore

AS_OF = dt.datetime(2026, 3, 31, 12, 0, tzinfo=zoneinfo.ZoneInfo("Asia/Shanghai"))
TZ = "Asia/Shanghai"
EVENTS = ["view", "order"]

# -- values: ordinary ones mostly, the engine's limits and beyond sometimes ------------------------------

huge_ints = st.sampled_from([2**63 - 1, -(2**63), 2**63, -(2**63) - 1, 10**30, -(10**30)])
ints = st.one_of(st.integers(-5, 20), st.integers(-(2**64), 2**64), huge_ints)
floats = st.one_of(st.sampled_from([0.5, -2.5, 1e308, -1e308, float("inf"), float("-inf"), 5e-324]),
                   st.floats(allow_nan=False))
dates = st.one_of(st.dates(min_value=dt.date(2020, 1, 1), max_value=dt.date(2027, 1, 1)),
                  st.sampled_from([dt.date(1, 1, 1), dt.date(999, 12, 31), dt.date(1000, 1, 1),
                                   dt.date(9998, 12, 31), dt.date(9999, 12, 31)]), st.dates())
offsets = st.sampled_from([None, dt.timezone.utc, dt.timezone(dt.timedelta(hours=14)),
                           dt.timezone(dt.timedelta(hours=-12))])
datetimes = st.builds(lambda d, h, tz: dt.datetime(d.year, d.month, d.day, h, 59, 59, tzinfo=tz),
                      dates, st.integers(0, 23), offsets)
texts = st.sampled_from(["", "上海", "x5", "%", "_", "a'b", '"'])
literals = st.one_of(ints, floats, st.booleans(), texts, dates, datetimes).map(ast.Literal)
units = st.sampled_from(ast.TIME_UNITS)
amounts = st.one_of(st.integers(0, 40), st.integers(0, 10**12),
                    st.sampled_from([366_000, 366_001, 52_285, 52_286, 12_000, 1000, 1001, 527_040_000]))
agos = st.builds(ast.Ago, amounts, units)
durations = st.builds(ast.Duration, amounts, units)
points = st.one_of(agos, dates.map(ast.Literal), datetimes.map(ast.Literal))
windows = st.none() | st.one_of(st.builds(ast.LastN, amounts, units), st.builds(ast.BetweenTimes, points, points),
                                st.builds(ast.Before, points), st.builds(ast.After, points),
                                st.builds(ast.Since, points))
values = st.one_of(literals, agos, durations)


def predicates(subjects, vals=values):
    return st.one_of(
        st.builds(ast.Compare, subjects, st.sampled_from(ast.COMPARE_OPS), vals),
        st.builds(ast.InList, subjects, st.lists(literals, max_size=3), st.booleans()),
        st.builds(ast.Between, subjects, vals, vals),
        st.builds(ast.IsNull, subjects, st.booleans()),
        st.builds(ast.TextMatch, subjects, st.sampled_from(["contains", "starts with"]), texts),
    )


def nested(leaves, depth):
    """and / or / not over ``leaves`` up to ``depth`` levels, and sometimes a long chain of `not`."""
    if depth == 0:
        return leaves
    inner = nested(leaves, depth - 1)
    return st.one_of(
        leaves,
        st.builds(ast.And, st.lists(inner, min_size=2, max_size=3)),
        st.builds(ast.Or, st.lists(inner, min_size=2, max_size=3)),
        st.builds(ast.Not, inner),
        st.builds(lambda n, c: _nots(n, c), st.integers(MAX_NESTING - 3, MAX_NESTING + 2), leaves),
    )


def _nots(n, cond):
    for _ in range(n):
        cond = ast.Not(cond)
    return cond


event_fields = st.sampled_from(["amount", "channel"]).map(ast.FieldRef)
event_conds = nested(predicates(event_fields), 1)
car_conds = nested(predicates(st.sampled_from(["brand", "model_year", "purchase_date", "age"]).map(ast.FieldRef)), 1)
aggregates = st.one_of(
    st.builds(ast.Aggregate, st.sampled_from(["count", "first", "last"]), st.sampled_from(EVENTS), st.none(),
              st.none() | event_conds, windows),
    st.builds(ast.Aggregate, st.sampled_from(["sum", "avg", "min", "max"]), st.sampled_from(EVENTS),
              st.just("amount"), st.none() | event_conds, windows),
)
subjects = st.one_of(st.sampled_from(["level", "score"]).map(ast.TagRef),
                     st.sampled_from(["age", "city", "vip"]).map(ast.ProfileRef), aggregates)


def person_conds(segment_names):
    leaves = [
        predicates(subjects),
        st.builds(ast.Did, st.sampled_from(EVENTS), windows, st.booleans()),
        st.builds(ast.DidAny, st.lists(st.sampled_from(EVENTS), min_size=1, max_size=2), windows),
        st.builds(ast.Sequence, st.lists(st.sampled_from(EVENTS), min_size=2, max_size=3), st.none() | durations,
                  windows),
        st.builds(ast.HasCar, st.none() | car_conds),
        st.builds(ast.ConsentCond, st.sampled_from(["consented", "unsubscribed"]), st.sampled_from(["sms", "*"])),
    ]
    if segment_names:
        leaves.append(st.sampled_from(segment_names).map(ast.InSegment))
    return nested(st.one_of(*leaves), 3)


@st.composite
def rule_sets(draw):
    """Segments s0..sN; each may use the later ones with `in segment` (no cycles), sometimes through a
    chain of segments that only use the next one."""
    count = draw(st.integers(1, 4))
    names = [f"s{i}" for i in range(count)]
    chain = draw(st.sampled_from([0, 0, 0, MAX_NESTING - 2, MAX_NESTING, MAX_NESTING + 1]))
    chain_names = [f"c{i}" for i in range(chain)]
    segments = []
    for i, name in enumerate(names):
        later = names[i + 1:] + chain_names[:1]
        segments.append(ast.Segment(name, None, draw(person_conds(later))))
    for i, name in enumerate(chain_names):
        where = ast.InSegment(chain_names[i + 1]) if i + 1 < chain else draw(person_conds([]))
        segments.append(ast.Segment(name, None, where))
    return build_rule_set([ast.RuleFile(segments, filename="fuzz.mc")])


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    s = SQLiteStore(tmp_path_factory.mktemp("fuzz") / "fuzz.db")
    with s.transaction():
        a = s.create_person({"age": 40, "city": "上海", "vip": True})
        b = s.create_person({"age": 2**63 - 1, "city": "", "vip": None})
        c = s.create_person({"age": -1e308, "city": "x5"})
        s.write_tag_values([(a, "level", "high"), (b, "score", 2**62), (c, "score", 0.5)], tags=[],
                           calculator="t", calculator_version="1", computed_at=AS_OF, person_ids=[])
        s.upsert_cars([Car("VIN1", "BMW", "X5", 2020, dt.date(2020, 5, 1), None),
                       Car("VIN2", "MINI", "Cooper", None, None, None)])
        s.add_ownership(Ownership(a, "VIN1", dt.date(2020, 5, 1), None, "t"))
        s.add_ownership(Ownership(b, "VIN2", None, None, "t"))
        s.set_consent(Consent(a, "sms", True, AS_OF, "t"))
        s.set_consent(Consent(b, "*", False, AS_OF, "t"))
        events = [Event("view", AS_OF - dt.timedelta(days=d), p, {"amount": amount, "channel": "app"}, "t", f"{p}-{d}")
                  for p, amount in ((a, 3), (b, 2**63 - 1), (c, -0.5)) for d in (0, 1, 40, 4000)]
        events.append(Event("order", AS_OF - dt.timedelta(hours=3), a, {"amount": 1e308}, "t", "o1"))
        s.insert_events(events)
    yield s
    s.close()


def run_engine(store, rule_set: RuleSet) -> None:
    dataset = load_dataset(store)
    evaluator = Evaluator(rule_set, dataset, AS_OF, TZ)
    for name, segment in rule_set.segments.items():
        evaluate_segment(rule_set, name, dataset, AS_OF, TZ)
        for person in dataset.people.values():
            evaluator.cond(segment.where, Scope(person))
        compiled = compile_condition(rule_set, segment.where, AS_OF, TZ)
        store.query(compiled.sql(), compiled.params)
        planned = plan_segment(store, rule_set, name, AS_OF, TZ)
        store.query(planned.sql(), planned.params)


@settings(max_examples=int(os.environ.get("DSL_FUZZ_EXAMPLES", "100")), deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much,
                                 HealthCheck.function_scoped_fixture, HealthCheck.large_base_example])
@given(rule_set=rule_sets())
def test_what_check_accepts_the_engine_evaluates_without_raising(store, rule_set):
    note(format_rules(rule_set.files[0]))
    errors = [d for d in check(rule_set) if d.severity == ERROR]
    note("\n".join(map(str, errors)))
    assume(not errors)
    run_engine(store, rule_set)


@settings(max_examples=int(os.environ.get("DSL_FUZZ_EXAMPLES", "100")) // 3, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                 HealthCheck.function_scoped_fixture, HealthCheck.large_base_example])
@given(rule_set=rule_sets())
def test_a_rule_check_rejects_is_reported_where_it_is_written(rule_set):
    """Formatted to text and parsed again, every error `check` reports names a line and column."""
    text = format_rules(rule_set.files[0])
    try:
        parsed = rule_set_from_text(text, "fuzz.mc")
    except DslError as exc:
        assert all(d.line is not None for d in exc.diagnostics), str(exc)
        return
    for diagnostic in check(parsed):
        if diagnostic.severity == ERROR:
            assert diagnostic.line is not None and diagnostic.column is not None, str(diagnostic)
            assert "^" in diagnostic.render(), str(diagnostic)
