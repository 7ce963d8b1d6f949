"""DSL -> SQL for the SQLite target: a table of cases (sqlglot's validate_all style), plan shapes, binding."""

from __future__ import annotations

import datetime as dt
import zoneinfo

import pytest

from motorcade.dsl.data import ValueTypes
from motorcade.dsl.evaluate import Unsupported, evaluate_segment
from motorcade.dsl.rules import rule_set_from_text
from motorcade.model import Event
from motorcade.segments.compiler import Scope, SQLiteCompiler
from motorcade.segments.dataset import load_dataset
from motorcade.segments.plan import plan_segment
from motorcade.store.sqlite import SQLiteStore

AS_OF = dt.datetime(2026, 11, 20, tzinfo=zoneinfo.ZoneInfo("Asia/Shanghai"))
HI = 1795104000  # AS_OF in epoch seconds: every event condition stops there

# DSL condition -> (SQL for the SQLite target, bound parameters)
CASES = {
    # tag values keep their SQLite type: a text never equals a number, so = needs no kind test
    'tag intent_level = "high"': (
        "(SELECT t1.value = :v2 FROM tag_values AS t1 WHERE t1.tag = :v1 AND t1.person_id = p.id)",
        {"v1": "intent_level", "v2": "high"}),
    'tag score >= 3': (
        "(SELECT CASE WHEN t1.value IS NULL THEN NULL WHEN TYPEOF(t1.value) IN ('integer', 'real') "
        "THEN t1.value >= :v2 ELSE NULL END FROM tag_values AS t1 WHERE t1.tag = :v1 AND t1.person_id = p.id)",
        {"v1": "score", "v2": 3}),
    "profile.is_owner = true": (
        "CASE WHEN JSON_EXTRACT(p.attributes, :v1) IS NULL THEN NULL WHEN JSON_TYPE(p.attributes, :v1) IN "
        "('true', 'false') THEN JSON_EXTRACT(p.attributes, :v1) = :v2 ELSE 0 END",
        {"v1": '$."is_owner"', "v2": 1}),
    "not did order in last 180 days": (
        "NOT (EXISTS(SELECT 1 FROM events AS e1 WHERE ((e1.person_id = p.id AND e1.name = :v1) "
        "AND e1.ts >= :v2) AND e1.ts <= :v3))",
        {"v1": "order", "v2": HI - 180 * 86400, "v3": HI}),
    "count(share) in last 90 days >= 3": (
        "(SELECT COUNT(*) FROM events AS e1 WHERE ((e1.person_id = p.id AND e1.name = :v1) AND e1.ts >= :v2) "
        "AND e1.ts <= :v3) >= :v4",
        {"v1": "share", "v2": HI - 90 * 86400, "v3": HI, "v4": 3}),
    # whole years of age: bought on or before today five years back
    "has car where age >= 5 years": (
        "EXISTS(SELECT 1 FROM ownerships AS o1 JOIN cars AS c2 ON c2.vin = o1.vin WHERE ((o1.person_id = p.id "
        "AND (o1.valid_from IS NULL OR o1.valid_from <= :v1)) AND (o1.valid_to IS NULL OR o1.valid_to > :v2)) "
        "AND c2.purchase_date <= :v3)",
        {"v1": "2026-11-20", "v2": "2026-11-20", "v3": "2021-11-20"}),
    'has car where model in ["X3", "X5"]': (
        "EXISTS(SELECT 1 FROM ownerships AS o1 JOIN cars AS c2 ON c2.vin = o1.vin WHERE ((o1.person_id = p.id "
        "AND (o1.valid_from IS NULL OR o1.valid_from <= :v1)) AND (o1.valid_to IS NULL OR o1.valid_to > :v2)) "
        "AND c2.model IN (:v3, :v4))",
        {"v1": "2026-11-20", "v2": "2026-11-20", "v3": "X3", "v4": "X5"}),
    # a value equals only the items of its own kind
    'tag level in ["a", 2]': (
        "(SELECT t1.value IN (:v2, :v3) FROM tag_values AS t1 WHERE t1.tag = :v1 AND t1.person_id = p.id)",
        {"v1": "level", "v2": 2, "v3": "a"}),
    # a bool is a kind of its own (an undeclared tag holds no booleans): per kind, true matches nothing
    'tag level in ["a", true]': (
        "(SELECT CASE WHEN t1.value IS NULL THEN NULL WHEN TYPEOF(t1.value) IN ('text') THEN t1.value IN (:v2) "
        "ELSE 0 END FROM tag_values AS t1 WHERE t1.tag = :v1 AND t1.person_id = p.id)",
        {"v1": "level", "v2": "a"}),
    'store in ["S1"]': (
        "EXISTS(SELECT 1 FROM person_relations AS r1 WHERE (r1.person_id = p.id AND r1.kind IN (:v1, :v2, :v3)) "
        "AND r1.target_id IN (:v4))",
        {"v1": "selling_store", "v2": "service_store", "v3": "store", "v4": "S1"}),
    "did lead_submit then test_drive within 14 days": (
        "EXISTS(SELECT 1 FROM events AS s1 WHERE ((s1.person_id = p.id AND s1.name = :v4) AND s1.ts <= :v5) "
        "AND EXISTS(SELECT 1 FROM events AS s2 WHERE (((s2.person_id = p.id AND s2.name = :v1) AND s2.ts <= :v2) "
        "AND s2.ts > s1.ts) AND s2.ts <= s1.ts + :v3))",
        {"v1": "test_drive", "v2": HI, "v3": 14 * 86400, "v4": "lead_submit", "v5": HI}),
    # a date stands for the whole local day: before 2026-01-01 00:00 Asia/Shanghai
    "last(service_visit) < 2026-01-01": (
        "(SELECT MAX(e1.ts) FROM events AS e1 WHERE (e1.person_id = p.id AND e1.name = :v1) AND e1.ts <= :v2) < :v3",
        {"v1": "service_visit", "v2": HI, "v3": 1767196800}),
    'profile.city contains "海"': (
        "CASE WHEN JSON_TYPE(p.attributes, :v1) IN ('text') THEN INSTR(JSON_EXTRACT(p.attributes, :v1), :v2) > 0 "
        "ELSE NULL END",
        {"v1": '$."city"', "v2": "海"}),
    "in segment base": (
        "COALESCE(EXISTS(SELECT 1 FROM events AS e1 WHERE (e1.person_id = p.id AND e1.name = :v1) "
        "AND e1.ts <= :v2), 0)",
        {"v1": "x", "v2": HI}),
}


def _compile(condition: str):
    rule_set = rule_set_from_text(f"segment base {{ where did x }}\nsegment s {{ where {condition} }}")
    compiler = SQLiteCompiler(rule_set, AS_OF, "Asia/Shanghai")
    return compiler.cond(rule_set.segments["s"].where, Scope("p")).sql(dialect="sqlite"), compiler.params


@pytest.mark.parametrize("condition", list(CASES))
def test_dsl_to_sqlite(condition):
    sql, params = _compile(condition)
    assert (sql, params) == CASES[condition]


def test_unsupported_node_is_named_not_guessed():
    rule_set = rule_set_from_text("segment s { where did a then b within 2 months }")
    # a fixed offset has no zone name for the store's calendar function: the compiler says so
    compiler = SQLiteCompiler(rule_set, AS_OF, dt.timezone(dt.timedelta(hours=8)))
    with pytest.raises(Unsupported, match="unsupported: Sequence within months"):
        compiler.cond(rule_set.segments["s"].where, Scope("p"))


def test_calendar_months_move_each_first_step_on_the_local_wall_clock(tmp_path):
    store = SQLiteStore(tmp_path / "m.db")
    tz = zoneinfo.ZoneInfo("Asia/Shanghai")
    local = lambda *a: dt.datetime(*a, tzinfo=tz)  # noqa: E731
    with store.transaction():
        # bought Jan 31 local: a month later is Feb 28 (clamped), not Mar 3
        for pid, second in ((store.create_person(), local(2026, 2, 28, 10)), (store.create_person(), local(2026, 3, 1, 10))):
            store.insert_events([Event(person_id=pid, name="a", ts=local(2026, 1, 31, 10), source="t", dedup_key=f"{pid}a"),
                                 Event(person_id=pid, name="b", ts=second, source="t", dedup_key=f"{pid}b")])
    rule_set = rule_set_from_text("segment s { where did a then b within 1 months }")
    query = plan_segment(store, rule_set, "s", AS_OF, "Asia/Shanghai")
    assert "MOTORCADE_ADD_MONTHS" in query.sql().upper()
    assert store.query_person_ids(query.sql(), query.params) == [1]
    assert evaluate_segment(rule_set, "s", load_dataset(store), AS_OF, "Asia/Shanghai") == {1}


@pytest.fixture
def store(tmp_path):
    s = SQLiteStore(tmp_path / "plan.db")
    with s.transaction():
        for i in range(40):
            pid = s.create_person({"n": i})
            events = [Event(person_id=pid, name="share", ts=AS_OF - dt.timedelta(days=k + 1), source="t",
                            dedup_key=f"{pid}-s{k}") for k in range(i % 5)]
            if i % 7 == 0:
                events.append(Event(person_id=pid, name="lead_submit", ts=AS_OF - dt.timedelta(days=2), source="t",
                                    dedup_key=f"{pid}-l"))
            s.insert_events(events)
        s.write_tag_values([(pid, "intent_level", "high" if pid % 3 == 0 else "low") for pid in range(1, 41)],
                           tags=["intent_level"], calculator="t", calculator_version="1", computed_at=AS_OF)
    yield s
    s.close()


def test_plan_drives_from_the_smallest_index_range(store):
    rule_set = rule_set_from_text("""
        segment a { where count(share) in last 90 days >= 3 and did lead_submit in last 90 days }
        segment b { where tag intent_level = "high" and count(share) in last 90 days >= 1 }
        segment c { where profile.n >= 0 or did share }
    """)
    dataset = load_dataset(store)
    for name, shape in (("a", "drive from events(name, ts) for did lead_submit"),
                        ("b", "drive from tag_values(tag, value)"), ("c", "scan people")):
        query = plan_segment(store, rule_set, name, AS_OF, "Asia/Shanghai")
        assert query.driver.startswith(shape), query.driver
        members = {r[0] for r in store.query(query.sql(), query.params)}
        assert members == evaluate_segment(rule_set, name, dataset, AS_OF, "Asia/Shanghai")
        plan = " ".join(r[3] for r in store.query("EXPLAIN QUERY PLAN " + query.sql(), query.params))
        if name == "a":
            assert "events_name_ts" in plan and "events_person_name_ts" in plan
        if name == "b":
            assert "tag_values_tag_value" in plan


def test_dsl_text_never_reaches_the_sql(store):
    hostile = "x'); DROP TABLE people; --"
    rule_set = rule_set_from_text(f'segment s {{ where tag intent_level != "{hostile}" and profile.n = 3 }}')
    query = plan_segment(store, rule_set, "s", AS_OF, "Asia/Shanghai")
    assert "DROP" not in query.sql() and hostile in query.params.values()
    assert [r[0] for r in store.query(query.sql(), query.params)] == [4]
    assert store.query("SELECT count(*) FROM people")[0][0] == 40


def test_plan_reads_people_only_while_a_merge_waits_to_settle(store):
    """Settled identity: every person id in the events names a person, so the plan skips `people`.
    A merge not yet settled leaves events naming the merged-away id: the plan must check `people` then."""
    rule_set = rule_set_from_text("segment s { where did lead_submit in last 90 days }")
    with store.transaction():  # an event that names nobody is nobody's
        store.insert_events([Event(person_id=None, name="lead_submit", ts=AS_OF - dt.timedelta(days=1), source="t",
                                   dedup_key="nobody")])
    settled = plan_segment(store, rule_set, "s", AS_OF, "Asia/Shanghai")
    assert "people" not in settled.sql()
    assert store.query_person_ids(settled.sql(), settled.params) == [1, 8, 15, 22, 29, 36]
    with store.transaction():
        store.merge_people(1, [8], reason="test")  # person 8's events still name 8 until settled
    pending = plan_segment(store, rule_set, "s", AS_OF, "Asia/Shanghai")
    assert "people" in pending.sql()
    assert [r[0] for r in store.query(pending.sql(), pending.params)] == [1, 15, 22, 29, 36]
    # without the check the merged-away id would come back: the check is what keeps it out
    assert 8 in [r[0] for r in store.query(settled.sql(), settled.params)]
    with store.transaction():
        store.settle_identity()
    again = plan_segment(store, rule_set, "s", AS_OF, "Asia/Shanghai")
    assert "people" not in again.sql()
    assert [r[0] for r in store.query(again.sql(), again.params)] == [1, 15, 22, 29, 36]
    assert evaluate_segment(rule_set, "s", load_dataset(store), AS_OF, "Asia/Shanghai") == {1, 15, 22, 29, 36}


def test_a_top_level_or_is_a_union_of_driven_plans(store):
    rule_set = rule_set_from_text("""
        segment s { where (tag intent_level = "high" and count(share) in last 90 days >= 2)
                          or did lead_submit in last 90 days or profile.n = 39 }
        segment t { where tag intent_level = "high" or did lead_submit in last 90 days }
        segment u { where (tag intent_level = "high" and profile.n >= 20) or did lead_submit in last 90 days }
    """)
    dataset = load_dataset(store)
    for name, union in (("s", False), ("t", True), ("u", True)):
        query = plan_segment(store, rule_set, name, AS_OF, "Asia/Shanghai")
        assert query.driver.startswith("union of") is union, query.driver
        assert set(store.query_person_ids(query.sql(), query.params)) == \
            evaluate_segment(rule_set, name, dataset, AS_OF, "Asia/Shanghai")
    # `profile.n = 39` has no index: the whole condition is checked person by person
    assert plan_segment(store, rule_set, "s", AS_OF, "Asia/Shanghai").driver.startswith("scan people")


def test_rows_written_for_a_merged_or_unknown_person_name_a_person(tmp_path):
    """Segment plans read no `people` once identity is settled: every writer must keep person ids alive."""
    from motorcade.model import Car, Consent, Ownership

    store = SQLiteStore(tmp_path / "live.db")
    with store.transaction():
        a, b = store.create_person(), store.create_person()
        store.upsert_cars([Car("VIN1", "BMW", "X5", 2020, dt.date(2020, 1, 1), None)])
        store.add_ownership(Ownership(b, "VIN1", dt.date(2020, 1, 1), None, "dms"))  # no identity record
        store.merge_people(a, [b], reason="test")
        store.settle_identity()
        store.write_tag_values([(a, "level", "high"), (999, "level", "high")], tags=["level"], calculator="t",
                               calculator_version="1", computed_at=AS_OF)
        store.insert_events([Event(person_id=b, name="share", ts=AS_OF - dt.timedelta(days=1), source="t",
                                   dedup_key="after-merge"),
                             Event(person_id=999, name="share", ts=AS_OF - dt.timedelta(days=1), source="t",
                                   dedup_key="nobody")])
        assert store.set_consent(Consent(b, "sms", False, AS_OF, "unsubscribe"))  # the survivor's opt-out
        assert not store.set_consent(Consent(999, "sms", False, AS_OF, "unsubscribe"))
    assert store.identity_settled()
    rule_set = rule_set_from_text("""
        segment owners { where has car }
        segment high { where tag level = "high" }
        segment sharers { where did share }
    """)
    dataset = load_dataset(store)
    for name, expected in (("owners", [a]), ("high", [a]), ("sharers", [a])):
        query = plan_segment(store, rule_set, name, AS_OF, "Asia/Shanghai")
        assert "people" not in query.sql()
        assert store.query_person_ids(query.sql(), query.params) == expected, name
        assert evaluate_segment(rule_set, name, dataset, AS_OF, "Asia/Shanghai") == set(expected)
    assert store.query("SELECT person_id, channel, granted FROM consents")[0][:] == (a, "sms", 0)
    assert [tuple(r) for r in store.query("SELECT person_id FROM events ORDER BY dedup_key")] == [(a,), (None,)]


def test_a_store_from_before_is_repaired_once(tmp_path):
    store = SQLiteStore(tmp_path / "old.db", migrate=False)
    store.migrate(upto=5)
    with store.transaction():
        a, b = store.create_person(), store.create_person()
        store.merge_people(a, [b], reason="test")
        conn = store.conn  # (settling is today's code: it needs today's schema; nothing to settle here)
        conn.execute("DELETE FROM identity_dirty")
        # rows as earlier writers could leave them: naming b (merged) and 999 (nobody)
        conn.execute("INSERT INTO events (person_id, name, ts, source, dedup_key) VALUES (?, 'x', 1, 't', 'k1')", (b,))
        conn.execute("INSERT INTO events (person_id, name, ts, source, dedup_key) VALUES (999, 'x', 1, 't', 'k2')")
        conn.execute("INSERT INTO consents (person_id, channel, granted, ts) VALUES (?, 'sms', 0, 5)", (b,))
        conn.execute("INSERT INTO tag_values (tag, person_id, value, computed_at, calculator, calculator_version) "
                     "VALUES ('level', 999, 'high', '', 't', '1')")
    assert store.migrate(upto=6) == ["m006_every_person_id_names_a_person"]
    assert [tuple(r) for r in store.query("SELECT person_id FROM events ORDER BY dedup_key")] == [(a,), (None,)]
    assert [tuple(r) for r in store.query("SELECT person_id, granted FROM consents")] == [(a, 0)]
    assert store.query("SELECT count(*) FROM tag_values")[0][0] == 0


# ---- edges the mutation run of the compiler found no test for (tests/MUTANTS.md, core/segments/compiler.py) ----
# Each condition's three-valued result, person by person, is the reference evaluator's, and the people it is
# true for are written out here by hand: instants and dates compared with every operator on and next to the
# value, lists of dates, sequences at exactly their `within` and one second past it, a car's age far outside
# the ISO years, and the logic of nothing (an empty `and` / `or` built in Python).

TZ = zoneinfo.ZoneInfo("Asia/Shanghai")
T = dt.datetime(2026, 11, 1, 10, 0, tzinfo=TZ)  # a whole second
SECOND = dt.timedelta(seconds=1)
# who did what: name -> [(event, instant)], and one car bought 2020-01-01
EDGE_PEOPLE = {
    "order_before": [("order", T - SECOND)], "order_at": [("order", T)], "order_after": [("order", T + SECOND)],
    # the local day 2026-11-01 and the seconds on either side of it
    "visit_prev": [("visit", dt.datetime(2026, 10, 31, 23, 59, 59, tzinfo=TZ))],
    "visit_start": [("visit", dt.datetime(2026, 11, 1, tzinfo=TZ))],
    "visit_end": [("visit", dt.datetime(2026, 11, 1, 23, 59, 59, tzinfo=TZ))],
    "visit_next": [("visit", dt.datetime(2026, 11, 2, tzinfo=TZ))],
    # `a then b`: b exactly one unit after a, or one second more
    **{f"{unit}{'_over' if over else ''}": [("a", T - dt.timedelta(days=30)),
                                             ("b", T - dt.timedelta(days=30) + length + over * SECOND)]
       for unit, length in (("minutes", dt.timedelta(minutes=1)), ("hours", dt.timedelta(hours=1)),
                            ("days", dt.timedelta(days=1)), ("weeks", dt.timedelta(weeks=1)))
       for over in (False, True)},
    "years": [("a", dt.datetime(2025, 3, 1, 10, tzinfo=TZ)), ("b", dt.datetime(2026, 3, 1, 10, tzinfo=TZ))],
    "years_over": [("a", dt.datetime(2025, 3, 1, 10, tzinfo=TZ)), ("b", dt.datetime(2026, 3, 1, 10, 0, 1, tzinfo=TZ))],
    "vip": [],  # profile.vip = true (a boolean is not the number 1)
    # a declared boolean tag holds 0 / 1 as booleans, other numbers stay numbers; a declared date tag holds ISO days
    "flag0": [], "flag1": [], "flag2": [], "flag_text": [], "since_day": [], "since_text": [],
    # declared date / date-time attributes: ISO text is a day / an instant, other text a string; `age` from birth_date
    "born": [], "born_next_day": [], "born_text": [], "seen_at": [], "seen_text": [],
    # events at as_of itself and an hour after it (invisible: events after as_of do not count)
    "ping_before": [("ping", AS_OF - SECOND)], "ping_at_as_of": [("ping", AS_OF)],
    "ping_future": [("ping", AS_OF + dt.timedelta(hours=1))],
    "in_s1": [],  # a store relation to S1: `store = "S1"`
    "ticks": [("tick", T - dt.timedelta(days=1)), ("tick", T)],  # first and last differ
    "buyer": [("buy", T - dt.timedelta(days=2), {"amount": 100}), ("buy", T - dt.timedelta(days=1), {"amount": 300})],
    "car_owner": [],  # bought 2020-01-01: 6 years old
    # bought the day before, on, and the day after today six years back: 6, 6 and 5 years old
    "car_day_before": [], "car_on_day": [], "car_day_after": [],
}
CARS = {"car_owner": dt.date(2020, 1, 1), "car_day_before": dt.date(2020, 11, 19), "car_on_day": dt.date(2020, 11, 20),
        "car_day_after": dt.date(2020, 11, 21)}
SIX = {"car_owner", "car_day_before", "car_on_day"}
ATTRIBUTES = {"vip": {"vip": True}, "born": {"birth_date": "2000-11-20"}, "born_next_day": {"birth_date": "2000-11-21"},
              "born_text": {"birth_date": "soon"}, "seen_at": {"seen": "2026-11-01T10:00:00+08:00"},
              "seen_text": {"seen": "later"}}
TAGS = {"flag0": ("flag", 0), "flag1": ("flag", 1), "flag2": ("flag", 2), "flag_text": ("flag", "x"),
        "since_day": ("since", "2026-11-01"), "since_text": ("since", "soon")}


@pytest.fixture(scope="module")
def edge_store(tmp_path_factory):
    from motorcade.model import Car, Ownership

    s = SQLiteStore(tmp_path_factory.mktemp("edges") / "edges.db")
    ids = {}
    with s.transaction():
        for n, (name, events) in enumerate(EDGE_PEOPLE.items()):
            ids[name] = pid = s.create_person({"name": name, **ATTRIBUTES.get(name, {})})
            s.insert_events([Event(person_id=pid, name=event, ts=ts, source="t", dedup_key=f"{n}-{k}",
                                   properties=props[0] if props else {})
                             for k, (event, ts, *props) in enumerate(events)])
        from motorcade.tags.base import TagDefinition

        s.define_value_types({"birth_date": "date", "seen": "datetime"}, scope="attribute", source="test")
        s.define_tags([TagDefinition("flag", "boolean", "flag"), TagDefinition("since", "date", "since")],
                      calculator="test", calculator_version="1")
        s.write_tag_values([(ids[name], tag, value) for name, (tag, value) in TAGS.items()], tags=[], calculator="test",
                           calculator_version="1", computed_at=AS_OF, person_ids=[])
        s.set_relation(ids["in_s1"], "store", "S1")
        for name, bought in CARS.items():
            s.upsert_cars([Car(f"VIN-{name}", "BMW", "X5", 2020, bought, None)])
            s.add_ownership(Ownership(ids[name], f"VIN-{name}", bought, None, "dms"))
    yield s, ids
    s.close()


def _truth_per_person(store, rule_set, cond) -> dict[int, bool | None]:
    from sqlglot import exp

    from motorcade.segments.compiler import Compiler, col
    from motorcade.segments.dialects import get_dialect

    compiler = Compiler(rule_set, AS_OF, "Asia/Shanghai", store.value_types())
    query = exp.select(col("p", "id"), exp.alias_(compiler.cond(cond, Scope("p")), "v")).from_(
        exp.to_table("people").as_("p"))
    return {r[0]: None if r[1] is None else bool(r[1])
            for r in store.query(get_dialect("sqlite").render(query, compiler.params), compiler.params)}


def _ast(node, *args):
    from motorcade.dsl import ast

    return getattr(ast, node)(*args)


def _order(op, instant):
    from motorcade.dsl import ast

    return ast.Compare(ast.Aggregate("last", "order"), op, ast.Literal(instant))


def _visit(op, day):
    from motorcade.dsl import ast

    return ast.Compare(ast.Aggregate("last", "visit"), op, ast.Literal(day))


HALF = T + dt.timedelta(milliseconds=500)  # between two whole seconds: never equal to a stored ts
NOV1 = dt.date(2026, 11, 1)
GAPS = [unit + over for unit in ("minutes", "hours", "days", "weeks") for over in ("", "_over")]  # shortest first
EDGE_CASES = [
    # an instant against ts (whole seconds), every operator, on the second and between two
    (_order("<", T), {"order_before"}), (_order("<=", T), {"order_before", "order_at"}),
    (_order(">", T), {"order_after"}), (_order(">=", T), {"order_at", "order_after"}),
    (_order("=", T), {"order_at"}), (_order("!=", T), {"order_before", "order_after"}),
    (_order("<", HALF), {"order_before", "order_at"}), (_order("<=", HALF), {"order_before", "order_at"}),
    (_order(">", HALF), {"order_after"}), (_order(">=", HALF), {"order_after"}),
    (_order("=", HALF), set()), (_order("!=", HALF), {"order_before", "order_at", "order_after"}),
    # a window's ends between two whole seconds: the seconds on the right side of them
    (_ast("Did", "order", _ast("After", _ast("Literal", HALF))), {"order_after"}),
    (_ast("Did", "order", _ast("Since", _ast("Literal", HALF))), {"order_after"}),
    (_ast("Did", "order", _ast("Before", _ast("Literal", HALF))), {"order_before", "order_at"}),
    (_ast("Did", "order", _ast("BetweenTimes", _ast("Literal", T - SECOND / 2), _ast("Literal", HALF))), {"order_at"}),
    # a window ending at or after as_of: an exclusive end at as_of leaves as_of out, a later end stops at as_of
    (_ast("Did", "ping", _ast("Before", _ast("Literal", AS_OF))), {"ping_before"}),
    (_ast("Did", "ping", _ast("Before", _ast("Literal", AS_OF + dt.timedelta(days=1)))), {"ping_before", "ping_at_as_of"}),
    (_ast("Did", "ping", _ast("BetweenTimes", _ast("Literal", AS_OF - SECOND), _ast("Literal", AS_OF))),
     {"ping_before", "ping_at_as_of"}),
    (_ast("Did", "ping", _ast("BetweenTimes", _ast("Literal", AS_OF), _ast("Literal", AS_OF + dt.timedelta(days=2)))),
     {"ping_at_as_of"}),
    ("did ping", {"ping_before", "ping_at_as_of"}),
    # a date is the whole local day
    (_visit("=", NOV1), {"visit_start", "visit_end"}), (_visit("!=", NOV1), {"visit_prev", "visit_next"}),
    (_visit("<", NOV1), {"visit_prev"}), (_visit("<=", NOV1), {"visit_prev", "visit_start", "visit_end"}),
    (_visit(">", NOV1), {"visit_next"}), (_visit(">=", NOV1), {"visit_start", "visit_end", "visit_next"}),
    # a list of dates: each item is a whole local day; no item, no match
    ("last(visit) in [2026-11-01, 2026-11-03]", {"visit_start", "visit_end"}),
    ("last(visit) not in [2026-11-01, 2026-11-03]", {"visit_prev", "visit_next"}),
    ("last(visit) in [2026-11-02, 2026-10-31]", {"visit_prev", "visit_next"}),
    # `within` counts its unit in seconds (months and years on the calendar): at the limit is in, a second past is out
    *[(f"did a then b within 1 {unit}", {*GAPS[:2 * i], unit}) for i, unit in enumerate(("minutes", "hours", "days",
                                                                                        "weeks", "years"))],
    ("did a then b within 2 weeks", set(GAPS)),
    # a car's age in whole years, also where today minus the age leaves the ISO years (0001-9999)
    ("has car where age >= 6", SIX), ("has car where age > 5", SIX), ("has car where age > 6", set()),
    ("has car where age < 6", {"car_day_after"}), ("has car where age <= 5", {"car_day_after"}),
    ("has car where age <= 6", set(CARS)), ("has car where age = 6", SIX), ("has car where age != 6", {"car_day_after"}),
    ("has car where age = 5", {"car_day_after"}), ("has car where age != 5", SIX),
    ("has car where age >= -7974", set(CARS)), ("has car where age < 10000", set(CARS)),
    ("has car where age >= 2030", set()), ("has car where age <= 2025", set(CARS)),
    # an instant written in another offset, or without one (the project's zone), is the same instant
    (_order("=", T.astimezone(dt.timezone.utc)), {"order_at"}), (_order("=", T.replace(tzinfo=None)), {"order_at"}),
    (_order(">", (T - SECOND).astimezone(dt.timezone(dt.timedelta(hours=-5)))), {"order_at", "order_after"}),
    # a declared boolean tag: 0 / 1 are false / true, not numbers; a declared date tag: ISO text is a day, not a string
    ("tag flag = true", {"flag1"}), ("tag flag = false", {"flag0"}), ("tag flag = 1", set()), ("tag flag = 2", {"flag2"}),
    ("tag flag != true", {"flag0", "flag2", "flag_text"}), ("tag flag in [true, 2]", {"flag1", "flag2"}),
    ('tag flag = "x"', {"flag_text"}), ("tag flag > 1", {"flag2"}),
    ("tag since = 2026-11-01", {"since_day"}), ('tag since = "2026-11-01"', set()), ('tag since = "soon"', {"since_text"}),
    ("tag since < 2026-11-02", {"since_day"}), ('tag since != "soon"', {"since_day"}),
    # declared date and date-time attributes, and a person's age (whole years, counted like a birthday)
    ("profile.birth_date = 2000-11-20", {"born"}), ("profile.birth_date < 2000-11-21", {"born"}),
    ('profile.birth_date = "2000-11-20"', set()), ('profile.birth_date = "soon"', {"born_text"}),
    ('profile.birth_date != "soon"', {"born", "born_next_day"}),
    ("age >= 26", {"born"}), ("age = 25", {"born_next_day"}), ("age < 26", {"born_next_day"}),
    ("profile.seen = 2026-11-01", {"seen_at"}), (_ast("Compare", _ast("ProfileRef", "seen"), "=", _ast("Literal", T)),
                                                {"seen_at"}),
    (_ast("Compare", _ast("ProfileRef", "seen"), ">", _ast("Literal", T - SECOND)), {"seen_at"}),
    (_ast("Compare", _ast("ProfileRef", "seen"), "<", _ast("Literal", T)), set()),
    ('profile.seen = "later"', {"seen_text"}), ('profile.seen = "2026-11-01T10:00:00+08:00"', set()),
    ("sum(buy.amount) = 400", {"buyer"}), ("avg(buy.amount) = 200", {"buyer"}), ("min(buy.amount) = 100", {"buyer"}),
    ("max(buy.amount) = 300", {"buyer"}),
    ("first(tick) < 2026-11-01T09:00:00", {"ticks"}), ("last(tick) < 2026-11-01T09:00:00", set()),
    # kinds that do not compare: = is false, != true, an ordering unknown; a date attribute against an instant
    # compares the instant's local date
    (_order("=", True), set()), (_order("!=", True), {"order_before", "order_at", "order_after"}),
    (_ast("Compare", _ast("ProfileRef", "vip"), "<", _ast("Literal", T)), set()),
    (_ast("Compare", _ast("ProfileRef", "vip"), "!=", _ast("Literal", T)), {"vip"}),
    ("profile.vip < 2026-11-01", set()), ("profile.vip != 2026-11-01", {"vip"}),
    (_ast("Compare", _ast("ProfileRef", "birth_date"), "=", _ast("Literal", dt.datetime(2000, 11, 20, 23, tzinfo=TZ))),
     {"born"}),
    ("profile.birth_date = true", set()), ("profile.birth_date != true", {"born", "born_next_day", "born_text"}),
    ("profile.seen in [2026-11-01T10:00:00, 2026-11-02]", {"seen_at"}),
    # between, is null and text matches, on a value, a tag (looked up: no row is null) and a person's stores
    ("last(order) between 2026-11-01T10:00:00 and 2026-11-01T10:00:01", {"order_at", "order_after"}),
    ("tag flag is null", set(EDGE_PEOPLE) - {"flag0", "flag1", "flag2", "flag_text"}),
    ("tag flag is not null", {"flag0", "flag1", "flag2", "flag_text"}),
    ("profile.vip is not null", {"vip"}), ("profile.vip is null", set(EDGE_PEOPLE) - {"vip"}),
    ("store is null", set(EDGE_PEOPLE) - {"in_s1"}), ("store is not null", {"in_s1"}),
    ('profile.seen contains "ate"', {"seen_text"}), ('profile.seen starts with "2026"', set()),
    ('profile.name starts with "der_a"', set()), ('profile.name contains "der_a"', {"order_at", "order_after"}),
    ('has car where model contains "X"', set(CARS)), ('has car where model_year contains "20"', set()),
    # a person's stores: a set, = is membership, != its negation; ids are strings
    ('store = "S1"', {"in_s1"}), ('store != "S1"', set(EDGE_PEOPLE) - {"in_s1"}), ("store = 5", set()),
    # a boolean attribute equals `true`, never the number 1 (JSON keeps the kind SQL's = would lose)
    ("profile.vip = true", {"vip"}), ("profile.vip = 1", set()), ("profile.vip != 1", {"vip"}),
    # nothing to hold: an empty `and` is true, an empty `or` false, a list of no dates matches no date
    (_ast("And", []), set(EDGE_PEOPLE)), (_ast("Or", []), set()),
    (_ast("InList", _ast("Aggregate", "last", "visit"), []), set()),
    (_ast("InList", _ast("Aggregate", "last", "visit"), [], True), {"visit_prev", "visit_start", "visit_end", "visit_next"}),
]


@pytest.mark.parametrize("condition, members", EDGE_CASES, ids=lambda c: c if isinstance(c, str) else None)
def test_edges_of_instants_dates_lists_sequences_and_ages_give_the_evaluators_answer(edge_store, condition, members):
    from motorcade.dsl import ast
    from motorcade.dsl.evaluate import Evaluator
    from motorcade.dsl.evaluate import Scope as EvalScope
    from motorcade.dsl.rules import RuleSet

    store, ids = edge_store
    cond = rule_set_from_text(f"segment s {{ where {condition} }}").segments["s"].where \
        if isinstance(condition, str) else condition
    rule_set = RuleSet(segments={"s": ast.Segment("s", None, cond)})
    dataset = load_dataset(store)
    evaluator = Evaluator(rule_set, dataset, AS_OF, "Asia/Shanghai")
    expected = {pid: evaluator.cond(cond, EvalScope(person)) for pid, person in dataset.people.items()}
    assert {pid for pid, v in expected.items() if v is True} == {ids[m] for m in members}
    assert _truth_per_person(store, rule_set, cond) == expected


def test_segments_that_refer_to_each_other_in_a_cycle_are_refused_with_the_cycle():
    from motorcade.segments.compiler import CompileError, compile_condition

    rule_set = rule_set_from_text("segment a { where in segment b }\nsegment b { where did x and in segment c }\n"
                                  "segment c { where in segment a }")
    # c's condition is `in segment a`: a, b, c, then a again
    with pytest.raises(CompileError, match="in a cycle: a -> b -> c -> a\n"):
        compile_condition(rule_set, rule_set.segments["c"].where, AS_OF, "Asia/Shanghai")


def test_a_segment_scoped_to_a_store_holds_only_that_stores_people_where_another_segment_uses_it(tmp_path):
    """`in segment X` of a segment X with `scope store "S1"`: a store relation of any kind the access scope
    counts, or an advisor of the store (docs/access.md); `scope group` and no scope: everyone. (A segment's
    own scope is applied after its plan, by compute; inside another segment the compiler applies it.)"""
    from motorcade.model import Advisor, Store

    store = SQLiteStore(tmp_path / "scoped.db")
    relations = {"selling": ("selling_store", "S1"), "service": ("service_store", "S1"), "store": ("store", "S1"),
                 "home": ("home_store", "S1"), "lead": ("lead_store", "S1"), "advised": ("sales_advisor", "A1"),
                 "service_advised": ("service_advisor", "A1"), "other_store": ("store", "S2"),
                 "other_advisor": ("advisor", "A2"), "friend": ("friend", "S1"), "nobody": None}
    ids = {}
    with store.transaction():
        store.upsert_stores([Store("S1", "s1", "g"), Store("S2", "s2", "g")])
        store.upsert_advisors([Advisor("A1", "a1", "S1"), Advisor("A2", "a2", "S2")])
        for name, relation in relations.items():
            ids[name] = pid = store.create_person({})
            store.insert_events([Event(person_id=pid, name="x", ts=AS_OF - dt.timedelta(days=1), source="t",
                                       dedup_key=name)])
            if relation:
                store.set_relation(pid, *relation)
    rule_set = rule_set_from_text('segment mine { scope store "S1" where did x }\n'
                                  'segment both { scope store "S1", "S2" where did x }\n'
                                  'segment all_stores { scope group where did x }\nsegment plain { where did x }\n'
                                  + "".join(f"segment in_{n} {{ where in segment {n} }}\n"
                                            f"segment out_{n} {{ where not in segment {n} }}\n"
                                            for n in ("mine", "both", "all_stores", "plain")))
    dataset = load_dataset(store)
    s1 = {ids[n] for n in ("selling", "service", "store", "home", "lead", "advised", "service_advised")}
    everyone = set(ids.values())
    for name, members in (("mine", s1), ("both", s1 | {ids["other_store"], ids["other_advisor"]}),
                          ("all_stores", everyone), ("plain", everyone)):
        for segment, expected in ((f"in_{name}", members), (f"out_{name}", everyone - members)):
            assert evaluate_segment(rule_set, segment, dataset, AS_OF, "Asia/Shanghai") == expected, segment
            for force_scan in (True, False):
                query = plan_segment(store, rule_set, segment, AS_OF, "Asia/Shanghai", force_scan=force_scan)
                assert set(store.query_person_ids(query.sql(), query.params)) == expected, (segment, force_scan)


def test_a_duration_other_than_years_is_refused_outside_an_age():
    from motorcade.segments.compiler import CompileError, compile_condition

    for unit in ("minutes", "hours", "days", "weeks", "months"):
        rule_set = rule_set_from_text(f"segment s {{ where has car where age >= 3 {unit} }}")
        with pytest.raises(CompileError, match=f"`3 {unit}` can only be compared with an age in years"):
            compile_condition(rule_set, rule_set.segments["s"].where, AS_OF, "Asia/Shanghai")
    rule_set = rule_set_from_text("segment s { where has car where age >= 3 years }")
    assert "purchase_date" in compile_condition(rule_set, rule_set.segments["s"].where, AS_OF, "Asia/Shanghai").sql()


@pytest.mark.parametrize("name", ["abc", "Age", "agf", "zed"])
def test_an_unknown_bare_name_is_refused_not_read_as_an_age(name):
    """Only `age` (and `store` / `advisor`, and a car's fields inside `has car where`) is a bare name: a typo on
    either side of it in sort order must be refused (mutants compared the name with `<=` / `>=`)."""
    from motorcade.segments.compiler import CompileError, compile_condition

    for condition, message in ((f"{name} >= 3", f"unknown name `{name}` in a person condition"),
                               (f"has car where {name} >= 3", f"cars have no field `{name}`")):
        rule_set = rule_set_from_text(f"segment s {{ where {condition} }}")
        with pytest.raises(CompileError, match=message):
            compile_condition(rule_set, rule_set.segments["s"].where, AS_OF, "Asia/Shanghai")


@pytest.mark.parametrize("condition", ["profile.vip = true", "age >= 30"])
def test_an_attribute_or_age_on_a_row_without_attributes_is_refused_as_a_plan_error(condition):
    """`profile.x` and `age` read the people row's attributes. A scope whose person is a driver row (an
    ownership or event row: `person_key` is `person_id`) has none, so the compiler refuses them there as a plan
    error instead of writing SQL that fails in the engine (mutants compared `person_key` with `<`: the guard never
    fired)."""
    rule_set = rule_set_from_text(f"segment s {{ where {condition} }}")
    where = rule_set.segments["s"].where
    compiler = SQLiteCompiler(rule_set, AS_OF, "Asia/Shanghai", ValueTypes(attributes={"birth_date": "date"}))
    with pytest.raises(Unsupported, match=r"outside a people row \(plan error\)"):
        compiler.cond(where, Scope("o", person_key="person_id"))
    assert "p.attributes" in compiler.cond(where, Scope("p")).sql(dialect="sqlite")


def test_age_without_a_declared_date_of_birth_is_missing_for_everyone(store):
    """`age` counts from `birth_date` only where it is declared a date (the store's value types): without the
    declaration no one has an age, whatever the attribute holds (a mutant compared the type name with `<` / `>`)."""
    from motorcade.dsl.evaluate import Evaluator
    from motorcade.dsl.evaluate import Scope as EvalScope

    with store.transaction():
        store.create_person({"birth_date": "2000-01-01"})
    for types in ({}, {"birth_date": "datetime"}):
        if types:
            with store.transaction():
                store.define_value_types(types, scope="attribute", source="test")
        rule_set = rule_set_from_text("segment s { where age >= 0 or age < 0 }")
        cond = rule_set.segments["s"].where
        dataset = load_dataset(store)
        evaluator = Evaluator(rule_set, dataset, AS_OF, "Asia/Shanghai")
        assert {evaluator.cond(cond, EvalScope(p)) for p in dataset.people.values()} == {None}
        assert set(_truth_per_person(store, rule_set, cond).values()) == {None}


def test_a_per_store_tag_reads_the_store_of_the_innermost_scoped_segment(tmp_path):
    """A per-store tag is read at the store of the segment whose condition holds it, also when that segment is
    used (`in segment`) by a segment scoped to another store (a mutant read the outermost segment's store)."""
    from motorcade.dsl.evaluate import evaluate_segment
    from motorcade.tags.base import TagDefinition

    store = SQLiteStore(tmp_path / "per_store.db")
    with store.transaction():
        store.define_tags([TagDefinition("value", "number", "value", per_store=True)], calculator="test",
                          calculator_version="1")
        both, only_s1 = store.create_person({}), store.create_person({})
        for pid in (both, only_s1):
            store.set_relation(pid, "store", "S1")
        store.set_relation(both, "store", "S2")
        store.write_store_tag_values([(both, "value", 1, "S1"), (both, "value", 5, "S2"), (only_s1, "value", 5, "S1")],
                                     tags=["value"], calculator="test", calculator_version="1", computed_at=AS_OF)
    rule_set = rule_set_from_text('segment s2_valued { scope store "S2" where tag value >= 4 }\n'
                                  'segment s1_of_s2 { scope store "S1" where not in segment s2_valued }\n'
                                  'segment top { where not in segment s1_of_s2 }')
    dataset = load_dataset(store)
    # s2_valued: `both` (5 at S2); s1_of_s2: S1's people not in it: `only_s1`; top: everyone else
    for name, members in (("s2_valued", {both}), ("s1_of_s2", {only_s1}), ("top", {both})):
        assert evaluate_segment(rule_set, name, dataset, AS_OF, "Asia/Shanghai") == members, name
    for force_scan in (True, False):
        query = plan_segment(store, rule_set, "top", AS_OF, "Asia/Shanghai", force_scan=force_scan)
        assert set(store.query_person_ids(query.sql(), query.params)) == {both}, force_scan


@pytest.mark.parametrize("condition", ['store > "S1"', 'store <= "S1"', 'store between "S1" and "S2"'])
def test_a_persons_stores_take_only_membership_tests(condition):
    from motorcade.segments.compiler import CompileError, compile_condition

    rule_set = rule_set_from_text(f"segment s {{ where {condition} }}")
    with pytest.raises(CompileError, match="`store` (only supports =, !=, in, not in, is null|does not support between)"):
        compile_condition(rule_set, rule_set.segments["s"].where, AS_OF, "Asia/Shanghai")
