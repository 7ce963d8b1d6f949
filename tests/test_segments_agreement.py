"""The central property: compiled SQL on a real SQLite file returns exactly the reference evaluator's set.

Hypothesis generates random condition ASTs (every condition node, every window, every kind of value)
and random people with tags, attributes, cars, relations, consents and events placed on and around the
window edges (typed values too: a date and a date-time attribute, a date event property, a boolean and a
date tag, a person's ``age`` from the date of birth); the rows go into a real store file, the evaluator reads them back through the store ->
Dataset loader, and both answers must be the same set of ids — for the plain full-scan query and for
the plan the compiler chooses (driven from an index).
"""

from __future__ import annotations

import datetime as dt
import os
import random
import zoneinfo

import pytest
from sqlglot import exp
from hypothesis import HealthCheck, assume, given, note, settings
from hypothesis import strategies as st

from motorcade.dsl import ast
from motorcade.dsl.evaluate import EvaluationError, Evaluator, ago, evaluate_segment
from motorcade.dsl.evaluate import Scope as EvalScope
from motorcade.dsl.format import fmt_cond
from motorcade.dsl.rules import RuleSet
from motorcade.model import Advisor, Car, Consent, Event, Ownership, Store
from motorcade.segments.compiler import Scope, SQLiteCompiler, col, compile_condition
from motorcade.segments.dataset import load_dataset
from motorcade.segments.plan import plan_segment
from motorcade.store.sqlite import SQLiteStore
from motorcade.tags.base import TagDefinition

EVENTS = ["view", "share", "order"]
TAGS = ["level", "score", "flag", "since", "gone"]
ATTRS = ["city", "age", "vip", "note", "items", "birth_date", "seen", "gone"]
# declared types (the store's value_types): ISO text is a date / an instant, a boolean tag's 0 / 1 booleans
ATTRIBUTE_TYPES = {"birth_date": "date", "seen": "datetime"}
PROPERTY_TYPES = {"due": "date"}
TAG_TYPES = {"flag": "boolean", "since": "date"}
UNITS = list(ast.TIME_UNITS)
AMOUNTS = [0, 1, 2, 3, 7]
AS_OFS = [
    (dt.datetime(2026, 3, 31, 12, 0, tzinfo=zoneinfo.ZoneInfo("Asia/Shanghai")), "Asia/Shanghai"),
    (dt.datetime(2026, 11, 20, 0, 0, tzinfo=zoneinfo.ZoneInfo("Asia/Shanghai")), "Asia/Shanghai"),
    (dt.datetime(2024, 2, 29, 23, 59, 59, 500000, tzinfo=zoneinfo.ZoneInfo("Asia/Shanghai")), "Asia/Shanghai"),
    (dt.datetime(2026, 3, 9, 1, 30, tzinfo=zoneinfo.ZoneInfo("America/New_York")), "America/New_York"),
]

# ---- values and windows ------------------------------------------------------------------------

STRING_POOL = ["上海", "北京", "Shanghai", "shang", "", "high", "low", "X5", "S1", "A1"]
strings = st.sampled_from(STRING_POOL)
numbers = st.one_of(st.integers(-3, 12), st.sampled_from([0.5, 2.5, -1.5]))
day_offsets = st.integers(-800, 3)


@st.composite
def date_literal(draw, base: dt.date):
    return ast.Literal(base + dt.timedelta(days=draw(day_offsets)))


@st.composite
def datetime_literal(draw, base: dt.datetime):
    instant = base + dt.timedelta(days=draw(st.integers(-400, 2)), seconds=draw(st.sampled_from([0, 1, -1, 3600])))
    if draw(st.booleans()):
        return ast.Literal(instant.replace(tzinfo=None))  # naive: project time zone
    return ast.Literal(instant.astimezone(dt.timezone(dt.timedelta(hours=draw(st.sampled_from([0, 8, -5]))))))


def values(base_date, base_dt):
    return st.one_of(
        strings.map(ast.Literal), numbers.map(ast.Literal), st.booleans().map(ast.Literal),
        date_literal(base_date), datetime_literal(base_dt),
        st.builds(ast.Ago, st.sampled_from(AMOUNTS), st.sampled_from(UNITS)),
        st.builds(ast.Duration, st.sampled_from(AMOUNTS), st.just("years")),
    )


def time_points(base_date, base_dt):
    return st.one_of(st.builds(ast.Ago, st.sampled_from(AMOUNTS), st.sampled_from(UNITS)),
                     date_literal(base_date), datetime_literal(base_dt))


def windows(base_date, base_dt):
    points = time_points(base_date, base_dt)
    return st.none() | st.one_of(
        st.builds(ast.LastN, st.sampled_from(AMOUNTS), st.sampled_from(UNITS)),
        st.builds(ast.BetweenTimes, points, points),
        st.builds(ast.Before, points), st.builds(ast.After, points), st.builds(ast.Since, points))


# ---- conditions ----------------------------------------------------------------------------------


def predicates(subjects, vals, ops=ast.COMPARE_OPS, between=True):
    literals = st.one_of(strings.map(ast.Literal), numbers.map(ast.Literal), st.booleans().map(ast.Literal))
    options = [
        st.builds(ast.Compare, subjects, st.sampled_from(ops), vals),
        st.builds(ast.InList, subjects, st.lists(literals, max_size=3), st.booleans()),
        st.builds(ast.IsNull, subjects, st.booleans()),
        st.builds(ast.TextMatch, subjects, st.sampled_from(["contains", "starts with"]),
                  st.sampled_from(["上", "Sh", "", "hig", "X"])),
    ]
    if between:
        options.append(st.builds(ast.Between, subjects, vals, vals))
    return st.one_of(*options)


def tree(leaves, depth):
    """Conditions up to ``depth`` levels of and / or / not over ``leaves`` (branch picked explicitly:
    ``one_of`` would flatten the leaves' own alternatives and starve and / or / not)."""
    if depth == 0:
        return leaves
    inner = tree(leaves, depth - 1)
    shapes = {
        "leaf": leaves,
        "and": st.builds(ast.And, st.lists(inner, min_size=2, max_size=3)),
        "or": st.builds(ast.Or, st.lists(inner, min_size=2, max_size=3)),
        "not": st.builds(ast.Not, inner),
    }
    return st.sampled_from(["leaf", "and", "or", "not"]).flatmap(shapes.__getitem__)


@st.composite
def conditions(draw, as_of, tz, allow_segment=True, depth=2):
    base_dt = as_of.astimezone(zoneinfo.ZoneInfo(tz)).replace(tzinfo=None)
    base_date = base_dt.date()
    vals = values(base_date, base_dt)
    wins = windows(base_date, base_dt)
    event_fields = st.sampled_from(["amount", "channel", "flag", "due", "gone"]).map(ast.FieldRef)
    event_cond = st.one_of(predicates(event_fields, vals), predicates(st.sampled_from(TAGS).map(ast.TagRef), vals))
    aggregates = st.one_of(
        st.builds(ast.Aggregate, st.sampled_from(["count", "first", "last"]), st.sampled_from(EVENTS), st.none(),
                  st.none() | event_cond, wins),
        st.builds(ast.Aggregate, st.sampled_from(["sum", "avg", "min", "max"]), st.sampled_from(EVENTS),
                  st.just("amount"), st.none() | event_cond, wins),
    )
    car_fields = st.sampled_from(["brand", "model", "model_year", "purchase_date", "store", "age", "vin"]
                                 ).map(ast.FieldRef)
    car_cond = predicates(car_fields, vals)
    scalar_subjects = st.one_of(st.sampled_from(TAGS).map(ast.TagRef), st.sampled_from(ATTRS).map(ast.ProfileRef),
                                aggregates, st.just(ast.FieldRef("age")))
    set_subjects = st.sampled_from(["store", "advisor"]).map(ast.FieldRef)
    leaves = {
        "compare": st.builds(ast.Compare, scalar_subjects, st.sampled_from(ast.COMPARE_OPS), vals),
        "predicate": predicates(scalar_subjects, vals),
        "set": predicates(set_subjects, st.one_of(strings.map(ast.Literal), numbers.map(ast.Literal)),
                          ops=("=", "!="), between=False),
        "did": st.builds(ast.Did, st.sampled_from(EVENTS), wins, st.booleans()),
        "did_any": st.builds(ast.DidAny, st.lists(st.sampled_from(EVENTS), min_size=1, max_size=3), wins),
        "sequence": st.builds(ast.Sequence, st.lists(st.sampled_from(EVENTS), min_size=2, max_size=3),
                              st.none() | st.builds(ast.Duration, st.sampled_from([1, 2, 30]),
                                                    st.sampled_from(["minutes", "hours", "days", "weeks", "months",
                                                                     "years"])), wins),
        "car": st.builds(ast.HasCar, st.none() | car_cond),
        "consent": st.builds(ast.ConsentCond, st.sampled_from(["consented", "unsubscribed"]),
                             st.sampled_from(["sms", "wecom"])),
    }
    if allow_segment:
        leaves["segment"] = st.just(ast.InSegment("base"))
    # Picked explicitly so each kind of leaf is common (one_of would weigh them by their inner branches).
    kinds = ["compare", "compare", "predicate", "predicate", *leaves]
    leaf = st.sampled_from(kinds).flatmap(leaves.__getitem__)
    return draw(tree(leaf, depth))


# ---- data ----------------------------------------------------------------------------------------


def edge_instants(as_of, tz):
    """Instants on and next to the window edges the conditions can produce."""
    zone = zoneinfo.ZoneInfo(tz)
    out = [as_of]
    for unit in UNITS:
        for amount in AMOUNTS:
            out.append(ago(amount, unit, as_of, zone))
    local = as_of.astimezone(zone).date()
    for days in (0, 1, 2, 30):
        out.append(dt.datetime(*(local - dt.timedelta(days=days)).timetuple()[:3], tzinfo=zone))
    return out


def people(seed: int, as_of, tz):
    """A random population drawn from one seed (hypothesis spends its choices on the conditions; data
    drawn through it made the examples too large). Values, times and cars sit on and around the edges."""
    rng = random.Random(seed)
    edges = edge_instants(as_of, tz)
    today = as_of.astimezone(zoneinfo.ZoneInfo(tz)).date()

    def json_value():
        return rng.choice([rng.choice(STRING_POOL), rng.randint(-3, 12), rng.choice([0.5, 2.5, -1.5]),
                           rng.random() < 0.5, None, [1, 2]])

    def iso_day():
        """A date on and around the edges a condition can draw (N years back, Feb 29), as stored: ISO text."""
        if rng.random() < 0.5:
            years = rng.choice([0, 1, 2, 3, 7, 12, 25])
            base = dt.date(today.year - years, today.month, min(today.day, 28))
            if today.month == 2 and today.day == 29 and rng.random() < 0.5:
                base = dt.date(2000, 2, 29)
            return (base + dt.timedelta(days=rng.choice([-1, 0, 0, 1]))).isoformat()
        return rng.choice([(today + dt.timedelta(days=rng.randint(-900, 3))).isoformat(), "2000-02-29",
                           "2021-02-30", "2021-13-01", "soon", "0000-01-01"])

    def iso_instant():
        instant = instant_near()
        offset = dt.timezone(dt.timedelta(hours=rng.choice([0, 8, -5])))
        text = instant.astimezone(offset).replace(microsecond=0).isoformat()
        return rng.choice([text, text, text, text[:19], text.replace("T", " "), "2021-01-01T24:00:00+00:00"])

    def attribute_value(name):
        if name == "birth_date" and rng.random() < 0.8:
            return iso_day()
        if name == "seen" and rng.random() < 0.8:
            return iso_instant()
        return json_value()

    def tag_value(name):
        if name == "flag":
            return rng.choice([0, 1, 1, 2, "x", 2.5, None])
        if name == "since" and rng.random() < 0.7:
            return iso_day()
        return rng.choice([rng.choice(STRING_POOL), rng.randint(-3, 12), 2.5, None])

    def day():
        return None if rng.random() < 0.2 else today + dt.timedelta(days=rng.randint(-4000, 30))

    def instant_near():
        if rng.random() < 0.6:
            return rng.choice(edges) + dt.timedelta(seconds=rng.choice([0, 0, 1, -1]))
        return as_of + dt.timedelta(seconds=rng.randint(-800 * 86400, 5 * 86400))

    def instant():
        if rng.random() < 0.6:
            return rng.choice(edges) + dt.timedelta(seconds=rng.choice([0, 0, 1, -1]))
        return as_of + dt.timedelta(seconds=rng.randint(-800 * 86400, 5 * 86400))

    out = []
    for _ in range(rng.randint(1, 10)):
        attrs_ = {k: attribute_value(k) for k in rng.sample(ATTRS[:-1], rng.randint(0, 5))}
        tags = {k: tag_value(k) for k in rng.sample(TAGS[:-1], rng.randint(0, 3))}
        cars = [(rng.choice(["BMW", "MINI"]), rng.choice(["X5", "X3", "Cooper"]),
                 rng.choice([None, rng.randint(2010, 2026)]), day(), rng.choice([None, "S1"]), day(), day())
                for _ in range(rng.randint(0, 2))]
        relations = [(rng.choice(["selling_store", "sales_advisor", "service_store", "friend"]),
                      rng.choice(["S1", "S2", "A1", "5"])) for _ in range(rng.randint(0, 3))]
        consents = {k: rng.random() < 0.5 for k in rng.sample(["sms", "wecom", "*"], rng.randint(0, 3))}
        events = [(rng.choice(EVENTS), instant(),
                   {k: iso_day() if k == "due" and rng.random() < 0.8 else json_value()
                    for k in rng.sample(["amount", "channel", "flag", "due"], rng.randint(0, 3))})
                  for _ in range(rng.randint(0, 10))]
        out.append((attrs_, tags, cars, relations, consents, events))
    return out


def load(store: SQLiteStore, population, as_of) -> None:
    conn = store.conn
    with store.transaction():
        for table in ("events", "consents", "person_relations", "ownerships", "cars", "tag_values", "people",
                      "advisors", "stores"):
            conn.execute(f"DELETE FROM {table}")
        store.upsert_stores([Store("S1", "s1", "g"), Store("S2", "s2", "g")])
        store.define_value_types(ATTRIBUTE_TYPES, scope="attribute", source="test")
        store.define_value_types(PROPERTY_TYPES, scope="property", source="test")
        store.define_tags([TagDefinition(name, kind, name) for name, kind in TAG_TYPES.items()], calculator="test",
                          calculator_version="1")
        store.upsert_advisors([Advisor("A1", "a1", "S1")])
        seq = 0
        for attrs_, tags, cars, relations, consents, events in population:
            pid = store.create_person(attrs_)
            store.write_tag_values([(pid, t, v) for t, v in tags.items()], tags=[], calculator="test",
                                   calculator_version="1", computed_at=as_of, person_ids=[])
            for i, (brand, model, year, bought, shop, frm, to) in enumerate(cars):
                vin = f"VIN{pid}x{i}"
                store.upsert_cars([Car(vin, brand, model, year, bought, shop)])
                store.add_ownership(Ownership(pid, vin, frm, to, "test"))
            for kind, target in relations:
                store.set_relation(pid, kind, target)
            for channel, granted in consents.items():
                store.set_consent(Consent(pid, channel, granted, as_of, "test"))
            for name, ts, props in events:
                seq += 1
                store.insert_events([Event(person_id=pid, name=name, ts=ts, properties=props, source="t",
                                           dedup_key=str(seq))])


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    s = SQLiteStore(tmp_path_factory.mktemp("agree") / "agree.db")
    yield s
    s.close()


@st.composite
def cases(draw):
    as_of, tz = draw(st.sampled_from(AS_OFS))
    base = draw(conditions(as_of, tz, allow_segment=False, depth=1))
    main = draw(conditions(as_of, tz))
    return as_of, tz, base, main, people(draw(st.integers(0, 2**32)), as_of, tz)


def person_scope_conditions(cond):
    """``cond`` and every condition under it reached through and / or / not (all in person scope)."""
    yield cond
    if isinstance(cond, (ast.And, ast.Or)):
        for item in cond.items:
            yield from person_scope_conditions(item)
    elif isinstance(cond, ast.Not):
        yield from person_scope_conditions(cond.item)


def sql_truth(store, rule_set, cond, as_of, tz, *, only_true: bool = False) -> dict[int, bool | None]:
    """Each person's three-valued result of ``cond`` as the compiled SQL computes it (``only_true``: the
    form plans use for top-level conjuncts, exact only about TRUE)."""
    compiler = SQLiteCompiler(rule_set, as_of, tz, store.value_types())
    value = compiler.truth(cond, Scope("p")) if only_true else compiler.cond(cond, Scope("p"))
    query = exp.select(col("p", "id"), exp.alias_(value, "v")).from_(exp.to_table("people").as_("p"))
    rows = store.query(query.sql(dialect="sqlite"), compiler.params)
    return {r[0]: None if r[1] is None else bool(r[1]) for r in rows}


@settings(max_examples=int(os.environ.get("AGREEMENT_EXAMPLES", "200")), deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example,
                                 HealthCheck.function_scoped_fixture])
@given(case=cases())
def test_compiled_sql_agrees_with_the_reference_evaluator(store, case):
    as_of, tz, base, main, population = case
    rule_set = RuleSet(segments={"base": ast.Segment("base", None, base), "main": ast.Segment("main", None, main)})
    load(store, population, as_of)
    dataset = load_dataset(store)
    note(f"where {fmt_cond(main)}\nbase: {fmt_cond(base)}")
    try:
        expected = evaluate_segment(rule_set, "main", dataset, as_of, tz)
        evaluator = Evaluator(rule_set, dataset, as_of, tz)
        truths = [(cond, {pid: evaluator.cond(cond, EvalScope(person)) for pid, person in dataset.people.items()})
                  for cond in [*person_scope_conditions(main), *person_scope_conditions(base)]]
    except EvaluationError:
        assume(False)  # a rule the language rejects (e.g. `3 days` outside a car's age): both must refuse
    # Every condition of the tree, three-valued, person by person: a wrong NULL under a NOT shows here.
    for cond, expected_truth in truths:
        assert sql_truth(store, rule_set, cond, as_of, tz) == expected_truth, fmt_cond(cond)
        true_ones = {pid for pid, v in sql_truth(store, rule_set, cond, as_of, tz, only_true=True).items() if v}
        assert true_ones == {pid for pid, v in expected_truth.items() if v is True}, fmt_cond(cond)
    compiled = compile_condition(rule_set, main, as_of, tz, store.value_types())
    note(compiled.sql(pretty=True))
    assert {r[0] for r in store.query(compiled.sql(), compiled.params)} == expected
    planned = plan_segment(store, rule_set, "main", as_of, tz)
    note(planned.sql(pretty=True))
    assert {r[0] for r in store.query(planned.sql(), planned.params)} == expected
