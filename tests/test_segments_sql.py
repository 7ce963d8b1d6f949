"""DSL -> SQL for the SQLite target: a table of cases (sqlglot's validate_all style), plan shapes, binding."""

from __future__ import annotations

import datetime as dt
import zoneinfo

import pytest

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
    # a bool is a kind of its own (tags store them as integers): per kind
    'tag level in ["a", true]': (
        "(SELECT CASE WHEN t1.value IS NULL THEN NULL WHEN TYPEOF(t1.value) IN ('text') THEN t1.value IN (:v2) "
        "WHEN 0 THEN t1.value IN (:v3) ELSE 0 END FROM tag_values AS t1 WHERE t1.tag = :v1 AND t1.person_id = p.id)",
        {"v1": "level", "v2": "a", "v3": 1}),
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
