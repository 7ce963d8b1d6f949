"""The central property: compiled SQL on a real SQLite file returns exactly the reference evaluator's set.

Hypothesis generates random condition ASTs (every condition node, every window, every kind of value,
``and``/``or``/``not`` nested inside ``has car where`` and ``count(... where ...)``) and random people with
tags, attributes, cars, relations, consents and events placed on and around the window edges (instants
on ``as_of - N unit`` +/- 1 s, dates on ``today - N days/years`` +/- 1 day; typed values too: a date and a
date-time attribute, a date event property, a boolean and a date tag, a person's ``age`` from the date of
birth); the rows go into a real store file, the evaluator reads them back through the store -> Dataset
loader, and both answers must be the same set of ids — for the plain full-scan query and for the plan the
compiler chooses (driven from an index). What the evaluator refuses, the compiler must refuse too.

The compiler shares code with the evaluator (window bounds, local dates) and the Dataset loader shares
the compiler's list of relation kinds, so a bug in the shared part passes that comparison on both sides.
The second property checks windows, local dates and relations against an oracle of its own, written
here from docs/dsl.md and docs/compiler.md in a few lines and importing nothing from the compiler or
the evaluator.
"""

from __future__ import annotations

import calendar
import datetime as dt
import os
import zoneinfo

import pytest
from sqlglot import exp
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from motorcade.dsl import ast
from motorcade.dsl.evaluate import EvaluationError, Evaluator, evaluate_segment
from motorcade.dsl.evaluate import Scope as EvalScope
from motorcade.dsl.format import fmt_cond
from motorcade.dsl.rules import RuleSet
from motorcade.model import Advisor, Car, Consent, Event, Ownership, Store
from motorcade.segments.compiler import Compiler, Scope, SQLiteCompiler, col, compile_condition, property_keys
from motorcade.segments.dialects import get_dialect
from motorcade.segments.dataset import load_dataset
from motorcade.segments.plan import plan_segment
from motorcade.store import open_store
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
    """A date: anywhere in the last two years, or on a ``today - N days/years`` edge +/- 1 day."""
    edge = draw(st.sampled_from(["any", "days", "years"]))
    if edge == "any":
        return ast.Literal(base + dt.timedelta(days=draw(day_offsets)))
    amount = draw(st.sampled_from(AMOUNTS + [5]))
    day = base - dt.timedelta(days=amount) if edge == "days" else years_before(base, amount)
    return ast.Literal(day + dt.timedelta(days=draw(st.sampled_from([-1, 0, 1]))))


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
    event_cond = tree(st.one_of(predicates(event_fields, vals), predicates(st.sampled_from(TAGS).map(ast.TagRef),
                                                                          vals)), 2)
    aggregates = st.one_of(
        st.builds(ast.Aggregate, st.sampled_from(["count", "first", "last"]), st.sampled_from(EVENTS), st.none(),
                  st.none() | event_cond, wins),
        st.builds(ast.Aggregate, st.sampled_from(["sum", "avg", "min", "max"]), st.sampled_from(EVENTS),
                  st.just("amount"), st.none() | event_cond, wins),
    )
    car_fields = st.sampled_from(["brand", "model", "model_year", "purchase_date", "store", "age", "vin"]
                                 ).map(ast.FieldRef)
    # the owner's own attributes inside `has car where` too (ClickHouse joins the people row in there)
    car_cond = tree(predicates(st.one_of(car_fields, car_fields, st.sampled_from(ATTRS).map(ast.ProfileRef)), vals), 2)
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


# The test's own time arithmetic, from docs/dsl.md §3 (nothing imported from the evaluator or compiler).
FIXED = {"minutes": dt.timedelta(minutes=1), "hours": dt.timedelta(hours=1), "days": dt.timedelta(days=1),
         "weeks": dt.timedelta(weeks=1)}


def years_before(day: dt.date, years: int) -> dt.date:
    """The same month and day ``years`` earlier, 29 February -> 28 February."""
    return day.replace(year=day.year - years, day=min(day.day, calendar.monthrange(day.year - years, day.month)[1]))


def n_ago(amount: int, unit: str, as_of: dt.datetime, zone: zoneinfo.ZoneInfo) -> dt.datetime:
    """``N unit ago``: fixed units subtract seconds; months and years move the local wall clock back by
    calendar months, clamped to the month's last day, read back in the project zone."""
    if unit in FIXED:
        return as_of - amount * FIXED[unit]
    local = as_of.astimezone(zone).replace(tzinfo=None)
    month_index = local.year * 12 + local.month - 1 - amount * (12 if unit == "years" else 1)
    year, month = month_index // 12, month_index % 12 + 1
    return local.replace(year=year, month=month, day=min(local.day, calendar.monthrange(year, month)[1]),
                         tzinfo=zone)


def edge_instants(as_of, tz):
    """Instants on and next to the window edges the conditions can produce."""
    zone = zoneinfo.ZoneInfo(tz)
    out = [as_of]
    for unit in UNITS:
        for amount in AMOUNTS:
            out.append(n_ago(amount, unit, as_of, zone))
    local = as_of.astimezone(zone).date()
    for days in (0, 1, 2, 30):
        out.append(dt.datetime(*(local - dt.timedelta(days=days)).timetuple()[:3], tzinfo=zone))
    return out


JSON_VALUES = st.sampled_from([*STRING_POOL, -3, 0, 1, 2, 3, 7, 12, 0.5, 2.5, -1.5, True, False, None, (1, 2)]).map(
    lambda v: list(v) if isinstance(v, tuple) else v)
TAG_VALUES = st.sampled_from([*STRING_POOL, -3, 0, 1, 3, 7, 12, 2.5, None])
RELATION_KINDS = ["selling_store", "service_store", "store", "sales_advisor", "service_advisor", "advisor", "friend"]


def day_near(today: dt.date):
    """None, any day of the last ~11 years, or a ``today - N days/years`` edge +/- 1 day."""
    amounts = st.sampled_from(AMOUNTS + [5])
    near = st.sampled_from([-1, 0, 1]).map(lambda d: dt.timedelta(days=d))
    return st.one_of(
        st.none(),
        st.integers(-4000, 30).map(lambda d: today + dt.timedelta(days=d)),
        st.builds(lambda n, d: today - dt.timedelta(days=n) + d, amounts, near),
        st.builds(lambda n, d: years_before(today, n) + d, amounts, near))


@st.composite
def people(draw, as_of, tz, max_people=6, extra_edges=()):
    """A population drawn through Hypothesis (so a failure shrinks to the few rows that matter): values,
    times and cars sit on and around the edges (``extra_edges``: more instants to sit on)."""
    edges = edge_instants(as_of, tz) + list(extra_edges)
    today = as_of.astimezone(zoneinfo.ZoneInfo(tz)).date()
    near = st.sampled_from([0, 0, 1, -1]).map(lambda s: dt.timedelta(seconds=s))
    on_edges = [st.builds(lambda e, d: e + d, st.sampled_from(edges), near)]
    if extra_edges:  # the edges of the condition at hand: most worth sitting on
        on_edges += [st.builds(lambda e, d: e + d, st.sampled_from(list(extra_edges)), near)] * 3
    instant = st.one_of(*on_edges,
                        st.integers(-800 * 86400, 5 * 86400).map(lambda s: as_of + dt.timedelta(seconds=s))
                        ).map(lambda t: t.replace(microsecond=0))  # the store keeps whole seconds (docs/compiler.md)
    days = day_near(today)
    # Typed values as the store keeps them (ISO text): a date on and around the edges a condition can draw
    # (N years back for `age`, Feb 29), text that is not a real date, an instant in several spellings.
    anniversary = st.builds(
        lambda years, shift: (dt.date(today.year - years, today.month, min(today.day, 28))
                              + dt.timedelta(days=shift)).isoformat(),
        st.sampled_from([0, 1, 2, 3, 7, 12, 25]), st.sampled_from([-1, 0, 0, 1]))
    iso_day = st.one_of(anniversary, days.filter(lambda d: d is not None).map(lambda d: d.isoformat()),
                        st.sampled_from(["2000-02-29", "2021-02-30", "2021-13-01", "soon", "0000-01-01"]))
    iso_instant = st.builds(
        lambda t, hours, form: form(t.astimezone(dt.timezone(dt.timedelta(hours=hours))).isoformat()),
        instant, st.sampled_from([0, 8, -5]),
        st.sampled_from([lambda x: x, lambda x: x, lambda x: x[:19], lambda x: x.replace("T", " ")]))
    typed_or_json = {"birth_date": st.one_of(iso_day, iso_day, iso_day, JSON_VALUES),
                     "seen": st.one_of(iso_instant, iso_instant, iso_instant,
                                       st.just("2021-01-01T24:00:00+00:00"), JSON_VALUES)}
    tag_strategies = {"flag": st.sampled_from([0, 1, 1, 2, "x", 2.5, None]),
                      "since": st.one_of(iso_day, iso_day, TAG_VALUES)}
    property_strategies = {"due": st.one_of(iso_day, iso_day, iso_day, JSON_VALUES)}

    def keyed(names, strategy_of, default, max_size):
        return st.lists(st.sampled_from(names), max_size=max_size, unique=True).flatmap(
            lambda keys: st.fixed_dictionaries({k: strategy_of.get(k, default) for k in keys}))

    car = st.tuples(st.sampled_from(["BMW", "MINI"]), st.sampled_from(["X5", "X3", "Cooper"]),
                    st.none() | st.integers(2010, 2026), days, st.sampled_from([None, "S1"]), days, days)
    event = st.tuples(st.sampled_from(EVENTS), instant,
                      keyed(["amount", "channel", "flag", "due"], property_strategies, JSON_VALUES, 3))
    person = st.tuples(
        keyed(ATTRS[:-1], typed_or_json, JSON_VALUES, 5),
        keyed(TAGS[:-1], tag_strategies, TAG_VALUES, 3),
        st.lists(car, max_size=2),
        st.lists(st.tuples(st.sampled_from(RELATION_KINDS), st.sampled_from(["S1", "S2", "A1", "5"])), max_size=3),
        st.dictionaries(st.sampled_from(["sms", "wecom", "*"]), st.booleans(), max_size=3),
        st.lists(event, max_size=8))
    return draw(st.lists(person, min_size=1, max_size=max_people))


def load(store: SQLiteStore, population, as_of) -> list[int]:
    """Write ``population`` into the store (after emptying it); the people's ids in order."""
    conn = store.conn
    ids = []
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
            ids.append(pid)
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
    return ids


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    s = SQLiteStore(tmp_path_factory.mktemp("agree") / "agree.db")
    yield s
    s.close()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def operational_store(request):
    """The operational store the property runs on: SQLite, and PostgreSQL (a throwaway server,
    tests/conftest.py), whose plans the compiler renders in PostgreSQL's dialect."""
    if request.param == "sqlite":
        yield request.getfixturevalue("store")
        return
    s = open_store(request.getfixturevalue("pg_cluster").create_database())
    yield s
    s.close()


@st.composite
def cases(draw):
    as_of, tz = draw(st.sampled_from(AS_OFS))
    base = draw(conditions(as_of, tz, allow_segment=False, depth=1))
    main = draw(conditions(as_of, tz))
    return as_of, tz, base, main, draw(people(as_of, tz))


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
    compiler = Compiler(rule_set, as_of, tz, store.value_types(), store.dialect)
    value = compiler.truth(cond, Scope("p")) if only_true else compiler.cond(cond, Scope("p"))
    query = exp.select(col("p", "id"), exp.alias_(value, "v")).from_(exp.to_table("people").as_("p"))
    rows = store.query(get_dialect(store.dialect).render(query, compiler.params), compiler.params)
    return {r[0]: None if r[1] is None else bool(r[1]) for r in rows}


@settings(max_examples=int(os.environ.get("AGREEMENT_EXAMPLES", "200")), deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example,
                                 HealthCheck.function_scoped_fixture])
@given(case=cases())
def test_compiled_sql_agrees_with_the_reference_evaluator(operational_store, case):
    store = operational_store
    as_of, tz, base, main, population = case
    rule_set = RuleSet(segments={"base": ast.Segment("base", None, base), "main": ast.Segment("main", None, main)})
    load(store, population, as_of)
    dataset = load_dataset(store)
    note(f"where {fmt_cond(main)}\nbase: {fmt_cond(base)}")
    evaluator = Evaluator(rule_set, dataset, as_of, tz)
    truths = []
    for cond in (main, base):
        try:
            truths += [(c, {pid: evaluator.cond(c, EvalScope(person)) for pid, person in dataset.people.items()})
                       for c in person_scope_conditions(cond)]
        except EvaluationError as refused:
            # a rule the language rejects (e.g. `3 days` outside a car's age): the compiler must refuse it too
            note(f"evaluator refused {fmt_cond(cond)}: {refused}")
            with pytest.raises(EvaluationError):
                compile_condition(rule_set, cond, as_of, tz, dialect=store.dialect)
            return
    expected = evaluate_segment(rule_set, "main", dataset, as_of, tz)
    # Every condition of the tree, three-valued, person by person: a wrong NULL under a NOT shows here.
    for cond, expected_truth in truths:
        assert sql_truth(store, rule_set, cond, as_of, tz) == expected_truth, fmt_cond(cond)
        true_ones = {pid for pid, v in sql_truth(store, rule_set, cond, as_of, tz, only_true=True).items() if v}
        assert true_ones == {pid for pid, v in expected_truth.items() if v is True}, fmt_cond(cond)
    compiled = compile_condition(rule_set, main, as_of, tz, store.value_types(), dialect=store.dialect)
    note(compiled.sql(pretty=True))
    assert {r[0] for r in store.query(compiled.sql(), compiled.params)} == expected
    planned = plan_segment(store, rule_set, "main", as_of, tz)
    note(planned.sql(pretty=True))
    assert {r[0] for r in store.query(planned.sql(), planned.params)} == expected


# ---- the test's own oracle for windows, local dates and relations --------------------------------
# Written from the docs, importing nothing from the evaluator or the compiler: a bug they share (both
# read evaluate.window_interval; the Dataset loader reads the compiler's relation kinds) shows here.

SET_KINDS = {"store": {"selling_store", "service_store", "store"},  # docs/compiler.md, `store` / `advisor`
             "advisor": {"sales_advisor", "service_advisor", "advisor"}}
OPS = {"=": lambda a, b: a == b, "!=": lambda a, b: a != b, "<": lambda a, b: a < b, "<=": lambda a, b: a <= b,
       ">": lambda a, b: a > b, ">=": lambda a, b: a >= b}


def is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def own_compare(value, op, right):
    """docs/dsl.md: null on either side is unknown; values of different kinds are unequal, not ordered."""
    if value is None:
        return None
    if is_number(value) == is_number(right) and (is_number(value) or type(value) is type(right)):
        return OPS[op](value, right)
    return {"=": False, "!=": True}.get(op)


def own_window(window, as_of, zone):
    """docs/dsl.md §4 as a predicate on an event's instant; a date is compared on the event's local date."""
    def bound(point):
        if isinstance(point, ast.Ago):
            return "instant", n_ago(point.amount, point.unit, as_of, zone)
        value = point.value
        if isinstance(value, dt.datetime):
            return "instant", value if value.tzinfo else value.replace(tzinfo=zone)
        return "date", value

    def test(point, op):
        kind, at = bound(point)
        if kind == "instant":
            return lambda ts: OPS[op](ts, at)
        return lambda ts: OPS[op](ts.astimezone(zone).date(), at)

    if window is None:
        return lambda ts: True
    if isinstance(window, ast.LastN):
        start = n_ago(window.amount, window.unit, as_of, zone)
        return lambda ts: start <= ts <= as_of
    if isinstance(window, ast.BetweenTimes):
        low, high = test(window.start, ">="), test(window.end, "<=")
        return lambda ts: low(ts) and high(ts)
    return test(window.point, {ast.Since: ">=", ast.After: ">", ast.Before: "<"}[type(window)])


def own_and(values):
    return False if any(v is False for v in values) else None if any(v is None for v in values) else True


def own_truth(cond, person, as_of, tz, *, car=None, event=None):
    """Three-valued truth of ``cond`` for one generated person (the raw tuples, not the Dataset loader)."""
    zone = zoneinfo.ZoneInfo(tz)
    today = as_of.astimezone(zone).date()
    _attrs, _tags, cars, relations, _consents, events = person
    again = lambda c, **kw: own_truth(c, person, as_of, tz, **({"car": car, "event": event} | kw))  # noqa: E731
    if isinstance(cond, ast.And):
        return own_and([again(c) for c in cond.items])
    if isinstance(cond, ast.Or):
        return not_(own_and([not_(again(c)) for c in cond.items]))
    if isinstance(cond, ast.Not):
        return not_(again(cond.item))
    if event is not None:  # event scope: `amount`
        return (event[2].get("amount") is None) != cond.negated if isinstance(cond, ast.IsNull) else \
            own_compare(event[2].get("amount"), cond.op, cond.value.value)
    if car is not None:  # car scope: brand, purchase_date, age
        brand, _model, _year, bought, _shop, _frm, _to = car
        if isinstance(cond, ast.IsNull):
            return (bought is None) != cond.negated
        if cond.subject.name == "brand":
            return own_compare(brand, cond.op, cond.value.value)
        if cond.subject.name == "purchase_date":
            return own_compare(bought, cond.op, cond.value.value)
        age = None if bought is None else today.year - bought.year - ((today.month, today.day) < (bought.month,
                                                                                                  bought.day))
        return own_compare(age, cond.op, cond.value.amount if isinstance(cond.value, ast.Duration)
                           else cond.value.value)

    def matching(name, window, where=None):
        inside = own_window(window, as_of, zone)
        return [e for e in events if e[0] == name and e[1] <= as_of and inside(e[1])
                and (where is None or again(where, event=e) is True)]

    if isinstance(cond, ast.Did):
        return not matching(cond.event, cond.window) if cond.negated else bool(matching(cond.event, cond.window))
    if isinstance(cond, ast.HasCar):
        owned = [c for c in cars if (c[5] is None or c[5] <= today) and (c[6] is None or today < c[6])]
        return bool(owned) if cond.where is None else any(again(cond.where, car=c) is True for c in owned)
    if isinstance(cond.subject, ast.Aggregate):  # count(E [where C]) [window] CMP n
        agg = cond.subject
        return own_compare(len(matching(agg.event, agg.window, agg.where)), cond.op, cond.value.value)
    targets = {target for kind, target in relations if kind in SET_KINDS[cond.subject.name]}
    if isinstance(cond, ast.IsNull):
        return (not targets) != cond.negated
    if isinstance(cond, ast.InList):
        return any(i.value in targets for i in cond.items) != cond.negated
    return (cond.value.value in targets) == (cond.op == "=")


def not_(value):
    return None if value is None else not value


@st.composite
def oracle_conditions(draw, as_of, tz):
    """Conditions the oracle above covers: windows of every kind, counts with nested event conditions,
    `has car where` with nested car conditions on dates and ages, `store` / `advisor` sets."""
    base_dt = as_of.astimezone(zoneinfo.ZoneInfo(tz)).replace(tzinfo=None)
    today = base_dt.date()
    ops = st.sampled_from(ast.COMPARE_OPS)
    amounts = st.sampled_from(AMOUNTS)
    points = st.one_of(st.builds(ast.Ago, amounts, st.sampled_from(UNITS)), date_literal(today),
                       datetime_literal(base_dt))
    kinds_of_window = {"none": st.none(), "last": st.builds(ast.LastN, amounts, st.sampled_from(UNITS)),
                       "between": st.builds(ast.BetweenTimes, points, points), "before": st.builds(ast.Before, points),
                       "after": st.builds(ast.After, points), "since": st.builds(ast.Since, points)}
    wins = st.sampled_from(["none", "last", "last", "last", "between", "before", "after", "since"]).flatmap(
        kinds_of_window.__getitem__)
    amount = st.just(ast.FieldRef("amount"))
    event_cond = tree(st.one_of(st.builds(ast.Compare, amount, ops, st.sampled_from([-1, 0, 2, 3, 7]).map(ast.Literal)),
                                st.builds(ast.IsNull, amount, st.booleans())), 2)
    car_cond = tree(st.one_of(
        st.builds(ast.Compare, st.just(ast.FieldRef("age")), ops,
                  st.builds(ast.Duration, st.sampled_from(AMOUNTS + [5]), st.just("years"))
                  | st.sampled_from(AMOUNTS + [5]).map(ast.Literal)),
        st.builds(ast.Compare, st.just(ast.FieldRef("purchase_date")), ops, date_literal(today)),
        st.builds(ast.Compare, st.just(ast.FieldRef("brand")), st.sampled_from(["=", "!="]),
                  st.sampled_from(["BMW", "MINI"]).map(ast.Literal)),
        st.builds(ast.IsNull, st.just(ast.FieldRef("purchase_date")), st.booleans())), 2)
    sets = st.sampled_from(["store", "advisor"]).map(ast.FieldRef)
    targets = st.sampled_from(["S1", "S2", "A1", "5"]).map(ast.Literal)
    leaves = {
        "did": st.builds(ast.Did, st.sampled_from(EVENTS), wins, st.booleans()),
        "count": st.builds(ast.Compare, st.builds(ast.Aggregate, st.just("count"), st.sampled_from(EVENTS), st.none(),
                                                  st.none() | event_cond, wins),
                           ops, st.integers(0, 3).map(ast.Literal)),
        "car": st.builds(ast.HasCar, st.none() | car_cond),
        "set": st.one_of(st.builds(ast.Compare, sets, st.sampled_from(["=", "!="]), targets),
                         st.builds(ast.InList, sets, st.lists(targets, min_size=1, max_size=2), st.booleans()),
                         st.builds(ast.IsNull, sets, st.booleans())),
    }
    return draw(tree(st.sampled_from(list(leaves)).flatmap(leaves.__getitem__), 2))


def edges_of(cond, as_of, tz):
    """Instants the condition's own windows turn on (dates: their local midnights), to put events on."""
    zone = zoneinfo.ZoneInfo(tz)
    out = []
    for node in ast.walk(cond):
        if isinstance(node, (ast.LastN, ast.Ago)):
            out.append(n_ago(node.amount, node.unit, as_of, zone))
        elif isinstance(node, ast.Literal) and isinstance(node.value, dt.datetime):
            out.append(node.value if node.value.tzinfo else node.value.replace(tzinfo=zone))
        elif isinstance(node, ast.Literal) and isinstance(node.value, dt.date):
            for day in (node.value, node.value + dt.timedelta(days=1)):
                out.append(dt.datetime(day.year, day.month, day.day, tzinfo=zone))
    return out


@st.composite
def oracle_cases(draw):
    as_of, tz = draw(st.sampled_from(AS_OFS))
    cond = draw(oracle_conditions(as_of, tz))
    return as_of, tz, cond, draw(people(as_of, tz, extra_edges=edges_of(cond, as_of, tz)))


@settings(max_examples=int(os.environ.get("AGREEMENT_EXAMPLES", "200")) // 2, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example,
                                 HealthCheck.function_scoped_fixture])
@given(case=oracle_cases())
def test_windows_local_dates_and_relations_match_the_tests_own_oracle(store, case):
    """Evaluator, compiled SQL and plan against :func:`own_truth`, condition by condition.

    Mutants it catches (both pass the evaluator-vs-compiler property above, being shared by the two sides):
    ``service_store`` dropped from the compiler's STORE_RELATIONS; ``in last N`` exclusive at the start."""
    as_of, tz, cond, population = case
    note(f"where {fmt_cond(cond)}")
    ids = load(store, population, as_of)
    rule_set = RuleSet(segments={"main": ast.Segment("main", None, cond)})
    dataset = load_dataset(store)
    evaluator = Evaluator(rule_set, dataset, as_of, tz)
    for sub in person_scope_conditions(cond):
        mine = {pid: own_truth(sub, person, as_of, tz) for pid, person in zip(ids, population)}
        assert {pid: evaluator.cond(sub, EvalScope(dataset.people[pid])) for pid in ids} == mine, fmt_cond(sub)
        assert sql_truth(store, rule_set, sub, as_of, tz) == mine, fmt_cond(sub)
    expected = {pid for pid, person in zip(ids, population) if own_truth(cond, person, as_of, tz) is True}
    compiled = compile_condition(rule_set, cond, as_of, tz)
    assert {r[0] for r in store.query(compiled.sql(), compiled.params)} == expected
    planned = plan_segment(store, rule_set, "main", as_of, tz)
    assert {r[0] for r in store.query(planned.sql(), planned.params)} == expected


# ---- recommendations: the compiled query and `recommendation R includes` against the evaluator ---------
# A generated `recommend` rule (per person, or per car with car fields and person conditions mixed), its
# ranked items from the compiled query (motorcade.segments.recommend) and from the evaluator; and a segment
# that uses it, compiled and planned.

RECOMMENDED_ITEMS = ["major_service", "minor_service", "tyres"]


@st.composite
def recommendation_cases(draw):
    as_of, tz = draw(st.sampled_from(AS_OFS))
    per_car = draw(st.booleans())
    base_dt = as_of.astimezone(zoneinfo.ZoneInfo(tz)).replace(tzinfo=None)
    car_fields = st.sampled_from(["brand", "model", "model_year", "purchase_date", "store", "age"]).map(ast.FieldRef)
    car_leaf = predicates(car_fields, values(base_dt.date(), base_dt))
    whens = []
    for _ in range(draw(st.integers(1, 4))):
        if per_car:  # a car field, a person condition, or both
            shape = draw(st.sampled_from(["car", "person", "and", "or"]))
            # in car scope a bare `store` / `age` is the car's; `advisor` is no car field (`check` rejects it)
            person_cond = conditions(as_of, tz, allow_segment=False, depth=0).filter(
                lambda c: not any(isinstance(n, ast.FieldRef) and n.name == "advisor" for n in ast.walk(c)))
            parts = [draw(car_leaf) if shape != "person" else None, draw(person_cond) if shape != "car" else None]
            parts = [p for p in parts if p is not None]
            when = parts[0] if len(parts) == 1 else (ast.And(parts) if shape == "and" else ast.Or(parts))
        else:
            when = draw(conditions(as_of, tz, allow_segment=False, depth=1))
        whens.append(ast.RecommendWhen(when, ast.Literal(draw(st.sampled_from(RECOMMENDED_ITEMS)))))
    probe = ast.Recommended("pkg", draw(st.lists(st.sampled_from(RECOMMENDED_ITEMS), max_size=2, unique=True)))
    other = draw(conditions(as_of, tz, allow_segment=False, depth=0))
    main = [probe, ast.Not(probe), ast.And([probe, other]), ast.Or([ast.Not(probe), other])][draw(st.integers(0, 3))]
    return as_of, tz, ast.Recommend("pkg", None, per_car, whens), main, draw(people(as_of, tz))


@settings(max_examples=int(os.environ.get("AGREEMENT_EXAMPLES", "200")) // 4, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example,
                                 HealthCheck.function_scoped_fixture, HealthCheck.filter_too_much])
@given(case=recommendation_cases())
def test_recommendations_agree_with_the_reference_evaluator(store, case):
    from motorcade.dsl.evaluate import evaluate_recommendations
    from motorcade.segments.recommend import compute_recommendations

    as_of, tz, rule, main, population = case
    rule_set = RuleSet(segments={"main": ast.Segment("main", None, main)}, recommendations={"pkg": rule})
    load(store, population, as_of)
    dataset = load_dataset(store)
    note("\n".join(f"when {fmt_cond(w.when)} then {w.then.value}" for w in rule.rules)
         + f"\nper car: {rule.per_car}\nwhere {fmt_cond(main)}")
    try:
        expected = evaluate_recommendations(rule_set, "pkg", dataset, as_of, tz)
        members = evaluate_segment(rule_set, "main", dataset, as_of, tz)
    except EvaluationError as refused:
        note(f"evaluator refused: {refused}")
        with pytest.raises(EvaluationError):
            compute_recommendations(store, rule_set, "pkg", as_of, tz)
            compile_condition(rule_set, main, as_of, tz)
        return
    assert compute_recommendations(store, rule_set, "pkg", as_of, tz) == expected
    some = sorted(expected)[:2]
    assert compute_recommendations(store, rule_set, "pkg", as_of, tz, some) == {p: expected[p] for p in some}
    compiled = compile_condition(rule_set, main, as_of, tz, store.value_types())
    assert {r[0] for r in store.query(compiled.sql(), compiled.params)} == members
    planned = plan_segment(store, rule_set, "main", as_of, tz)
    assert {r[0] for r in store.query(planned.sql(), planned.params)} == members


# ---- the same property on the analytics engines ------------------------------------------------
# The rows go into the SQLite store as above, are mirrored into DuckDB / ClickHouse (chdb, in-process)
# by the analytics mirror, and every condition's three-valued result, the full-scan query and the plan
# compiled in that engine's dialect must equal the evaluator's on the same rows.

ENGINES = {"duckdb": lambda: pytest.importorskip("motorcade.analytics").DuckDBEngine(":memory:"),
           "clickhouse": lambda: pytest.importorskip("motorcade.analytics").ClickHouseEngine()}


@pytest.fixture(scope="module", params=sorted(ENGINES))
def engine(request):
    pytest.importorskip(request.param if request.param == "duckdb" else "chdb")
    e = ENGINES[request.param]()
    yield e
    e.close()


def engine_truth(engine, store, rule_set, cond, as_of, tz, *, only_true: bool = False) -> dict[int, bool | None]:
    compiler = Compiler(rule_set, as_of, tz, store.value_types(), engine.dialect)
    value = compiler.truth(cond, Scope("p")) if only_true else compiler.cond(cond, Scope("p"))
    query = exp.select(col("p", "id"), exp.alias_(value, "v")).from_(exp.to_table("people").as_("p"))
    rows = engine.query(compiler.d.render(query, compiler.params), compiler.params)
    return {int(r[0]): None if r[1] is None else bool(r[1]) for r in rows}


@settings(max_examples=int(os.environ.get("AGREEMENT_EXAMPLES", "200")) // 2, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example,
                                 HealthCheck.function_scoped_fixture])
@given(case=cases())
def test_compiled_sql_agrees_with_the_reference_evaluator_on_each_engine(store, engine, case):
    from motorcade.analytics.segments import plan_on_engine

    as_of, tz, base, main, population = case
    rule_set = RuleSet(segments={"base": ast.Segment("base", None, base), "main": ast.Segment("main", None, main)})
    load(store, population, as_of)
    # load() deletes and rewrites every event: copy them all; the event properties the rules read go into
    # typed columns, which the plan reads (compute_segments mirrors the same way)
    engine.mirror(store, incremental=False, properties=property_keys(rule_set))
    dataset = load_dataset(store)
    note(f"where {fmt_cond(main)}\nbase: {fmt_cond(base)}")
    evaluator = Evaluator(rule_set, dataset, as_of, tz)
    truths = []
    for cond in (main, base):
        try:
            truths += [(c, {pid: evaluator.cond(c, EvalScope(person)) for pid, person in dataset.people.items()})
                       for c in person_scope_conditions(cond)]
        except EvaluationError:
            with pytest.raises(EvaluationError):
                compile_condition(rule_set, cond, as_of, tz, dialect=engine.dialect)
            return
    expected = evaluate_segment(rule_set, "main", dataset, as_of, tz)
    for cond, expected_truth in truths:
        assert engine_truth(engine, store, rule_set, cond, as_of, tz) == expected_truth, fmt_cond(cond)
        true_ones = {pid for pid, v in engine_truth(engine, store, rule_set, cond, as_of, tz, only_true=True).items()
                     if v}
        assert true_ones == {pid for pid, v in expected_truth.items() if v is True}, fmt_cond(cond)
    compiled = compile_condition(rule_set, main, as_of, tz, store.value_types(), dialect=engine.dialect)
    note(compiled.sql(pretty=True))
    assert set(engine.person_ids(compiled)) == expected
    planned = plan_on_engine(store, engine, rule_set, "main", as_of, tz)
    note(planned.sql(pretty=True))
    assert set(engine.person_ids(planned)) == expected
