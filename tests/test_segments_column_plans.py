"""Plan shapes for the column stores (DuckDB, ClickHouse through chdb): set-shaped plans without probes,
and event properties read from typed columns materialised at mirror time.

The answers are the reference evaluator's: the agreement property (tests/test_segments_agreement.py) runs
these plans on both engines; here the shapes and the mirror's typed columns are pinned."""

from __future__ import annotations

import datetime as dt
import itertools
import zoneinfo

import pytest

from motorcade.analytics import open_engine
from motorcade.analytics.segments import plan_on_engine
from motorcade.dsl.rules import rule_set_from_text
from motorcade.model import Car, Consent, Event, Ownership
from motorcade.segments.compiler import property_keys
from motorcade.segments.compute import evaluate_members
from motorcade.store.sqlite import SQLiteStore
from motorcade.tags.base import TagDefinition

TZ = zoneinfo.ZoneInfo("Asia/Shanghai")
AS_OF = dt.datetime(2026, 11, 20, 12, tzinfo=TZ)
ENGINES = {"duckdb": "duckdb:///:memory:", "clickhouse": "chdb://"}
RULES = '''
segment shared_and_funnel {
  where count(share) in last 90 days >= 3 and did any of [lead_submit, test_drive, order] in last 90 days
}
segment high_intent { where tag intent_level = "high" and tag purchase_power in ["high", "very_high"]
                            and count(share) in last 90 days >= 3 and did lead_submit in last 90 days }
segment owners { where has car }
segment lapsed_owners { where in segment owners and not did service_visit in last 365 days }
segment big_orders { where count(order where amount >= 500000) in last 180 days >= 1 and consented to sms }
segment few_shares { where tag intent_level = "high" and count(share) in last 90 days < 2 }
segment amounts { where sum(order.amount) in last 180 days >= 600000 or did test_drive }
'''


@pytest.fixture
def store(tmp_path):
    s = SQLiteStore(tmp_path / "s.db")
    day = dt.timedelta(days=1)
    people = [s.create_person({}) for _ in range(8)]
    a, b, c, d, e, f, g, h = people
    history = {a: [("share", 10), ("share", 11), ("share", 12), ("lead_submit", 5)],
               b: [("share", 10), ("share", 11), ("test_drive", 100)],
               c: [("order", 20, {"amount": 650000}), ("share", 1)],
               d: [("order", 20, {"amount": "650000"}), ("service_visit", 30)],
               e: [("order", 20, {"amount": 400000}), ("order", 21, {"amount": 300000})],
               g: [("share", 3), ("share", 4), ("share", 5), ("lead_submit", 6)]}
    n = 0
    for pid, items in history.items():
        for name, ago, *props in items:
            n += 1
            s.insert_events([Event(person_id=pid, name=name, ts=AS_OF - ago * day, source="t", dedup_key=str(n),
                                   properties=props[0] if props else {})])
    s.write_tag_values([(a, "intent_level", "high"), (c, "intent_level", "high"), (g, "intent_level", "high"),
                        (h, "intent_level", "high"), (a, "purchase_power", "very_high"), (g, "purchase_power", "low")],
                       tags=[], calculator="test", calculator_version="1", computed_at=AS_OF, person_ids=[])
    for pid, channel, granted in ((c, "sms", True), (d, "sms", True), (e, "*", True), (f, "sms", True)):
        s.set_consent(Consent(pid, channel, granted, AS_OF - 50 * day, "test"))
    for pid, vin, model, bought in ((d, "V1", "X5", dt.date(2019, 1, 1)), (h, "V2", "X3", dt.date(2020, 1, 1))):
        s.upsert_cars([Car(vin, "B", model, bought.year, bought, None)])
        s.add_ownership(Ownership(pid, vin, bought, None, "test"))
    yield s
    s.close()


@pytest.fixture(scope="module")
def chdb_dir(tmp_path_factory):
    """The one folder of this module's ClickHouse engines. chdb runs one server per process, on one folder: an
    engine opened on another folder while one is open fails. `set_engine` (module scope) is open while a test's own
    `engine` is, whenever the tests run in another order than the file's (the mutation runner runs the quickest
    first), so each engine takes a database of its own in this folder."""
    return tmp_path_factory.mktemp("chdb")


_DATABASES = itertools.count(1)


def open_test_engine(name: str, chdb_dir, database: str):
    pytest.importorskip(name if name == "duckdb" else "chdb")
    if name == "clickhouse":
        return open_engine(f"chdb:///{chdb_dir}", database=database)
    return open_engine(ENGINES[name])


@pytest.fixture(params=sorted(ENGINES))
def engine(request, chdb_dir):
    e = open_test_engine(request.param, chdb_dir, f"plans_{next(_DATABASES)}")
    yield e
    e.close()


class Counting:
    """An engine whose queries are counted (the planning round trips)."""

    def __init__(self, engine):
        self.engine, self.queries = engine, 0
        self.dialect, self.name = engine.dialect, engine.name

    def query(self, sql, params=None):
        self.queries += 1
        return self.engine.query(sql, params)

    def property_columns(self):
        return self.engine.property_columns()


def test_column_store_plans_are_set_shaped_and_make_no_probe_round_trips(store, engine):
    rules = rule_set_from_text(RULES)
    engine.mirror(store, properties=property_keys(rules))
    counting = Counting(engine)
    for name in rules.segments:
        plan = plan_on_engine(store, counting, rules, name, AS_OF, TZ)
        sql = plan.sql()
        # no correlated per-person checks: semi-joins (IN) and anti-joins (NOT IN) over uncorrelated sets
        assert "EXISTS" not in sql, (name, sql)
        assert engine.person_ids(plan) == evaluate_members(store, rules, name, AS_OF, TZ)[0], name
    assert counting.queries == 0  # sizing drivers with probes is left to the row stores
    # several conditions on events: one grouped scan with a conditional count per condition
    plan = plan_on_engine(store, engine, rules, "high_intent", AS_OF, TZ)
    assert plan.driver.startswith("one scan of events (lead_submit, share) grouped by person for 2 condition(s)")
    assert plan.sql().count("FROM events") == 1


def test_property_keys_are_those_the_rules_read_from_events():
    rules = rule_set_from_text(RULES + 'segment odd { where count(visit where Mixed = 1 and channel = "x") >= 1 }')
    # a key that is not a plain lower-case name (column names fold case) stays JSON
    assert property_keys(rules) == ["amount", "channel"]


def test_the_rules_event_properties_are_typed_columns_filled_by_every_mirror(store, engine):
    rules = rule_set_from_text(RULES)
    assert engine.property_columns() == frozenset()
    engine.mirror(store, properties=["amount"])
    assert engine.property_columns() == {"amount"}
    plan = plan_on_engine(store, engine, rules, "big_orders", AS_OF, TZ)
    sql = plan.sql()
    assert "p_amount_num" in sql and "p_amount_kind" in sql and "properties" not in sql  # no JSON per row
    expected = evaluate_members(store, rules, "big_orders", AS_OF, TZ)[0]
    assert engine.person_ids(plan) == expected and len(expected) == 1  # "650000" is text, not a number
    # appended events (an incremental mirror) get their typed columns too
    late = store.create_person({})
    store.insert_events([Event(person_id=late, name="order", ts=AS_OF - dt.timedelta(days=1), source="t",
                               dedup_key="late", properties={"amount": 900000, "other": True})])
    store.set_consent(Consent(late, "sms", True, AS_OF - dt.timedelta(days=2), "test"))
    engine.mirror(store, properties=["amount"])
    assert engine.last_mirror == "incremental"
    assert engine.query(f"SELECT p_amount_kind, p_amount_num FROM events WHERE person_id = {late}") == [("number", 900000.0)]
    assert engine.person_ids(plan_on_engine(store, engine, rules, "big_orders", AS_OF, TZ)) == sorted([*expected, late])


# ---- the set forms, condition by condition (what the compiler's mutation run found no fast test for) ----
# On a column store a top-level condition takes its set form (Compiler.truth: semi-joins, anti-joins, plain
# conjunctions): here each form's people are written out by hand and must also be the reference evaluator's.
# The full three-valued form is compared with the evaluator person by person too.

SET_PEOPLE = {
    # consents: `*` is every channel, a global refusal wins, then the channel's own row, then the global one
    "sms_yes": {"consents": {"sms": True}}, "sms_no": {"consents": {"sms": False}},
    "all_yes": {"consents": {"*": True}}, "all_no": {"consents": {"*": False}},
    "all_yes_sms_no": {"consents": {"*": True, "sms": False}}, "all_no_sms_yes": {"consents": {"*": False, "sms": True}},
    # shares in the last 90 days (and one long ago), orders with an amount
    "share1": {"events": [("share", 3)]}, "share2": {"events": [("share", 3), ("share", 4)]},
    "share3": {"events": [("share", 3), ("share", 4), ("share", 5)]}, "share_old": {"events": [("share", 200)]},
    "order_big": {"events": [("order", 10, {"amount": 600000})]},
    "order_text": {"events": [("order", 10, {"amount": "600000"})]},
    "order_small": {"events": [("order", 10, {"amount": 100000}), ("share", 3)]},
    # `a then b`: a day apart, and a day and a second
    "a_then_b": {"events": [("a", 30), ("b", 29)]}, "a_then_b_late": {"events": [("a", 30), ("b", 29, {}, -1)]},
    "b_then_a": {"events": [("b", 30), ("a", 29)]},
    # cars (an X5 whose owner shared twice; an X3), tags and a profile number
    "x5_sharer": {"car": "X5", "events": [("share", 3), ("share", 4)], "attributes": {"n": 1}}, "x3": {"car": "X3"},
    "sold_x5": {"car": "X5", "sold": True},
    "high": {"tags": {"level": "high", "score": 3}, "attributes": {"n": 5}, "events": [("share", 3)]},
    "low": {"tags": {"level": "low", "score": 2}, "attributes": {"n": 4}},
    "text_n": {"tags": {"score": "3"}, "attributes": {"n": "5"}},
    # a declared date attribute (ISO text is a day) and the age counted from it, on both sides of a birthday
    "born": {"attributes": {"birth_date": "2000-11-20"}}, "born_next_day": {"attributes": {"birth_date": "2000-11-21"}},
    "born_text": {"attributes": {"birth_date": "soon"}},
    # a declared boolean tag (true is the stored 1, which `= 1` must not match; 2 stays a number) and a
    # declared date tag (ISO text is a day, which a string must not match): their kind tests stay in the
    # set form, while a plain tag's typed column needs none
    "vip_true": {"tags": {"vip": True}}, "vip_two": {"tags": {"vip": 2}},
    "since_day": {"tags": {"since": "2020-01-01"}}, "since_text": {"tags": {"since": "soon"}},
}
EVERYONE = set(SET_PEOPLE)
SHARERS = {"share1", "share2", "share3", "order_small", "x5_sharer", "high"}  # shared in the last 90 days
SET_CASES = {
    "consented to sms": {"sms_yes", "all_yes"},
    "unsubscribed from sms": {"sms_no", "all_no", "all_yes_sms_no", "all_no_sms_yes"},
    "consented to wecom": {"all_yes", "all_yes_sms_no"},
    "unsubscribed from wecom": {"all_no", "all_no_sms_yes"},
    "did share in last 90 days": SHARERS, "not did share in last 90 days": EVERYONE - SHARERS,
    "did share": SHARERS | {"share_old"},
    "did any of [order, a] in last 90 days": {"order_big", "order_text", "order_small", "a_then_b", "a_then_b_late",
                                               "b_then_a"},
    "count(share) in last 90 days >= 2": {"share2", "share3", "x5_sharer"},
    "count(share) in last 90 days > 2": {"share3"},
    "count(share) in last 90 days = 2": {"share2", "x5_sharer"},
    "count(share) in last 90 days != 0": SHARERS,
    # zero passes: people without such events are members
    "count(share) in last 90 days < 2": EVERYONE - {"share2", "share3", "x5_sharer"},
    "count(share) in last 90 days <= 1": EVERYONE - {"share2", "share3", "x5_sharer"},
    "count(share) in last 90 days = 0": EVERYONE - SHARERS,
    "count(share) in last 90 days != 1": EVERYONE - {"share1", "order_small", "high"},
    # an event filter that reads the person has no set form: checked person by person
    'count(share where tag level = "high") in last 90 days >= 1': {"high"},
    'count(share where tag level = "high") in last 90 days = 0': EVERYONE - {"high"},
    "count(order where amount >= 500000) >= 1": {"order_big"},
    "count(order where amount >= 500000) = 0": EVERYONE - {"order_big"},
    # other aggregates (not counts) and a count against a non-number have no set form: checked per person
    "sum(order.amount) in last 90 days >= 500000": {"order_big"}, "avg(order.amount) >= 500000": {"order_big"},
    "max(order.amount) >= 500000": {"order_big"}, "min(order.amount) < 500000": {"order_small"},
    "last(order) > 30 days ago": {"order_big", "order_text", "order_small"},
    "count(share) in last 90 days >= true": set(), "count(share) in last 90 days > 2.5": {"share3"},
    "did a then b within 1 days": {"a_then_b"},
    "has car": {"x5_sharer", "x3"},
    'has car where model = "X5"': {"x5_sharer"},
    'has car where model = "X5" and count(share) in last 90 days >= 2': {"x5_sharer"},
    'has car where model = "X3" and count(share) in last 90 days >= 1': set(),
    'has car where count(share) in last 90 days >= 1': {"x5_sharer"},
    # a car condition reading the profile needs the people row: checked per person
    'has car where model = "X5" and profile.n = 1': {"x5_sharer"},
    'tag level = "high"': {"high"}, 'tag level != "high"': {"low"}, "tag score >= 3": {"high"},
    'tag level in ["high", "x"]': {"high"},
    # a number is not in a list of texts (true), a text "3" is: `not in` keeps its CASE (no truth form)
    'tag score not in ["3"]': {"high", "low"}, 'tag score not in ["3", 2]': {"high"},
    "profile.n >= 5": {"high"}, "profile.n > 4": {"high"}, "profile.n < 5": {"low", "x5_sharer"},
    "profile.n <= 4": {"low", "x5_sharer"},
    "profile.n = 5": {"high"},
    "profile.birth_date = 2000-11-20": {"born"}, "profile.birth_date < 2000-11-21": {"born"},
    'profile.birth_date = "soon"': {"born_text"}, 'profile.birth_date = "2000-11-20"': set(),
    "age >= 26": {"born"}, "age = 25": {"born_next_day"}, "age < 26": {"born_next_day"},
    "tag vip = true": {"vip_true"}, "tag vip = 1": set(), "tag vip = 2": {"vip_two"}, "tag vip in [1, 2]": {"vip_two"},
    "tag since = 2020-01-01": {"since_day"}, 'tag since = "2020-01-01"': set(), 'tag since = "soon"': {"since_text"},
    'tag since in ["2020-01-01", "soon"]': {"since_text"}, "tag since < 2021-01-01": {"since_day"},
}


# the conditions whose form is still a correlated check (a subquery reading `p.id`) on a column store: every
# other one above is a semi-join, an anti-join or a plain conjunction
CORRELATED = {"did a then b within 1 days", 'has car where model = "X5" and profile.n = 1',
              'count(share where tag level = "high") in last 90 days >= 1',
              'count(share where tag level = "high") in last 90 days = 0', "sum(order.amount) in last 90 days >= 500000",
              "avg(order.amount) >= 500000", "max(order.amount) >= 500000", "min(order.amount) < 500000",
              "last(order) > 30 days ago", "count(share) in last 90 days >= true"}


@pytest.fixture(scope="module")
def set_store(tmp_path_factory):
    s = SQLiteStore(tmp_path_factory.mktemp("sets") / "s.db")
    s.define_value_types({"birth_date": "date"}, scope="attribute", source="test")
    s.define_tags([TagDefinition("vip", "boolean", "test"), TagDefinition("since", "date", "test")], calculator="test",
                  calculator_version="1")
    ids, n = {}, 0
    for name, person in SET_PEOPLE.items():
        ids[name] = pid = s.create_person(person.get("attributes", {}))
        for channel, granted in person.get("consents", {}).items():
            s.set_consent(Consent(pid, channel, granted, AS_OF - dt.timedelta(days=50), "test"))
        for event, days_ago, *more in person.get("events", []):
            n += 1
            props = more[0] if more else {}
            seconds = more[1] if len(more) > 1 else 0
            s.insert_events([Event(person_id=pid, name=event, source="t", dedup_key=str(n), properties=props,
                                   ts=AS_OF - dt.timedelta(days=days_ago, seconds=seconds))])
        if "car" in person:
            vin = f"V-{name}"
            s.upsert_cars([Car(vin, "B", person["car"], 2020, dt.date(2020, 1, 1), None)])
            s.add_ownership(Ownership(pid, vin, dt.date(2020, 1, 1), dt.date(2025, 1, 1) if person.get("sold") else None,
                                      "test"))
        s.write_tag_values([(pid, tag, value) for tag, value in person.get("tags", {}).items()], tags=[],
                           calculator="test", calculator_version="1", computed_at=AS_OF, person_ids=[])
    yield s, ids
    s.close()


@pytest.fixture(scope="module", params=sorted(ENGINES))
def set_engine(request, set_store, chdb_dir):
    e = open_test_engine(request.param, chdb_dir, "sets")
    e.mirror(set_store[0], properties=["amount"])
    yield e
    e.close()


@pytest.mark.parametrize(("condition", "names"), [
    ('tag level = "high" and not (profile.n = 4)', {"high"}),
    ('tag level in ["high", "low"] and not (profile.n = 4)', {"high"}),
    # `text_n`'s n is the text "5": `> 4` does not compare (unknown), so `not` of it is unknown too; a tag
    # range drives no plan, so the plan scans people and compiles both conjuncts in turn
    ('tag score >= "3" and not (profile.n > 4)', set()),
    ('tag score <= "3" and not (profile.n < 4)', set()),
    ('tag score >= "3" and not (profile.n = 4)', {"text_n"}),
])
def test_a_tag_conjunct_in_truth_form_leaves_the_next_conditions_three_valued(set_store, set_engine, condition, names):
    """Plans compile a segment's conjuncts one after another on one compiler; the truth form of a tag's
    semi-join must not reach the conditions after it, which may sit under a `not`."""
    store, ids = set_store
    rules = rule_set_from_text(f"segment s {{ where {condition} }}")
    expected = sorted(ids[name] for name in names)
    assert evaluate_members(store, rules, "s", AS_OF, TZ)[0] == expected
    assert evaluate_members(store, rules, "s", AS_OF, TZ, engine=set_engine)[0] == expected


@pytest.mark.parametrize("condition", list(SET_CASES))
def test_each_set_form_holds_for_the_people_written_out_and_the_evaluator(set_store, set_engine, condition):
    from sqlglot import exp

    from motorcade.dsl.evaluate import Evaluator
    from motorcade.dsl.evaluate import Scope as EvalScope
    from motorcade.segments.compiler import Compiler, Scope, col
    from motorcade.segments.dataset import load_dataset

    store, ids = set_store
    rules = rule_set_from_text(f"segment s {{ where {condition} }}")
    cond = rules.segments["s"].where
    dataset = load_dataset(store)
    evaluator = Evaluator(rules, dataset, AS_OF, TZ)
    expected = {pid: evaluator.cond(cond, EvalScope(person)) for pid, person in dataset.people.items()}
    members = {ids[name] for name in SET_CASES[condition]}
    assert {pid for pid, v in expected.items() if v is True} == members

    def engine_values(only_true):
        compiler = Compiler(rules, AS_OF, TZ, store.value_types(), set_engine.dialect,
                            property_columns=set_engine.property_columns())
        value = compiler.truth(cond, Scope("p")) if only_true else compiler.cond(cond, Scope("p"))
        query = exp.select(col("p", "id"), exp.alias_(value, "v")).from_(exp.to_table("people").as_("p"))
        rows = set_engine.query(compiler.d.render(query, compiler.params), compiler.params)
        return {int(r[0]): None if r[1] is None else bool(r[1]) for r in rows}

    assert {pid for pid, v in engine_values(True).items() if v} == members
    compiler = Compiler(rules, AS_OF, TZ, store.value_types(), set_engine.dialect)
    sql = compiler.d.render(compiler.truth(cond, Scope("p")), compiler.params)
    assert ("= p.id" in sql) == (condition in CORRELATED)
    if condition.startswith("profile.n ") or "where amount" in condition:
        # an undeclared JSON value against a literal: kind test AND comparison, pushed into the scan (no CASE)
        assert "CASE" not in sql
    if condition.startswith(("tag level", "tag score")) and "!=" not in condition and " not in " not in condition:
        # a plain tag's typed column: no three-valued CASE and no kind test inside the semi-join (measured)
        assert "CASE" not in sql and "value_kind" not in sql
    if condition.startswith(("tag vip", "tag since")):  # a declared boolean / date tag keeps its kind tests
        assert "value_kind" in sql
    if "has car where" in condition and "profile." in condition:
        # only ClickHouse, which reads the person from the ownership row there, joins the owner's people row
        assert ("people AS pp" in sql) == (set_engine.dialect == "clickhouse")
    assert engine_values(False) == expected
