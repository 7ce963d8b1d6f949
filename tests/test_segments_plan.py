"""Plan choice (core/segments/plan.py): which condition drives, how its range was sized, what is checked per
candidate, and that every shape gives the reference evaluator's answer, on the row store (SQLite) and on a
column store (DuckDB, the set-shaped plans). Written for the surviving mutants of the module (issue 24): each
test names the mutants it kills."""

from __future__ import annotations

import datetime as dt
import zoneinfo

import pytest

from motorcade.dsl.evaluate import evaluate_segment
from motorcade.dsl.rules import rule_set_from_text
from motorcade.model import Car, Event, Ownership
from motorcade.segments.dataset import load_dataset
from motorcade.segments.plan import plan_segment
from motorcade.store.sqlite import SQLiteStore

TZ = "Asia/Shanghai"
AS_OF = dt.datetime(2026, 11, 20, 12, tzinfo=zoneinfo.ZoneInfo(TZ))

# person -> events (name, days ago); tag intent_level; car model
PEOPLE = {
    1: ([("share", 1), ("share", 2), ("share", 3), ("lead_submit", 2)], "high", "X5"),
    2: ([("share", 1), ("share", 2), ("share", 3), ("test_drive", 5)], "high", None),
    3: ([("share", 1), ("lead_submit", 5)], "low", None),
    4: ([("share", 200), ("share", 201), ("share", 202), ("order", 10)], "high", "X3"),
    5: ([], "high", "X5"),
    6: ([("share", 1), ("share", 2), ("lead_submit", 3)], None, None),
    7: ([("service_visit", 20)], None, "X3"),
    8: ([("share", 40), ("share", 41), ("share", 42), ("lead_submit", 60)], "low", None),
    9: ([("lead_submit", 100), ("share", 3)], None, None),
    # ten more people tagged low: the tag's range (12 rows) lies between two and four times lead_submit's
    # four events in the last 90 days
    **{pid: ([], "low", None) for pid in range(10, 20)},
}


def _build(path) -> SQLiteStore:
    store = SQLiteStore(path)
    day = dt.timedelta(days=1)
    with store.transaction():
        for pid, (events, _tag, model) in PEOPLE.items():
            assert store.create_person({"n": pid}) == pid
            store.insert_events([Event(person_id=pid, name=name, ts=AS_OF - ago * day, source="t",
                                       dedup_key=f"{pid}-{k}") for k, (name, ago) in enumerate(events)])
            if model:
                store.upsert_cars([Car(f"V{pid}", "B", model, 2020, dt.date(2020, 1, 1), None)])
                store.add_ownership(Ownership(pid, f"V{pid}", dt.date(2020, 1, 1), None, "test"))
    store.write_tag_values([(pid, "intent_level", tag) for pid, (_e, tag, _m) in PEOPLE.items() if tag],
                           tags=["intent_level"], calculator="t", calculator_version="1", computed_at=AS_OF)
    return store


@pytest.fixture
def store(tmp_path):
    s = _build(tmp_path / "plan.db")
    yield s
    s.close()


def _members(store, rule_set, name, **options):
    query = plan_segment(store, rule_set, name, AS_OF, TZ, **options)
    return query, set(store.query_person_ids(query.sql(), query.params))


def _expected(store, rule_set, name):
    return evaluate_segment(rule_set, name, load_dataset(store), AS_OF, TZ)


# condition -> how the plan starts (a lone indexed condition drives unsized; an exact one is not re-checked)
LONE_DRIVERS = {
    "did any of [test_drive, lead_submit] in last 90 days":
        "drive from events(name, ts) for did any of lead_submit, test_drive (the only indexed condition); "
        "check the other 0 condition(s)",
    "count(share) in last 30 days >= 3":
        "drive from events(name, ts) for count(share) >= 3 (the only indexed condition); check the other 0",
    'tag intent_level in ["high"]':
        "drive from tag_values(tag, value) for tag intent_level in ['high'] (the only indexed condition); "
        "check the other 0",
    'has car where model = "X5"':
        "drive from ownerships for has car where ... (the only indexed condition); check the other 0",
    "did share then lead_submit within 14 days":
        "drive from events(name, ts) for the first step (share) of a sequence (the only indexed condition); "
        "check the other 1",
    'tag intent_level not in ["high"]': "scan people",
    "count(share) in last 90 days >= 0": "scan people",
    "count(share) in last 90 days < 2": "scan people",
}


@pytest.mark.parametrize("condition", list(LONE_DRIVERS))
def test_each_indexed_condition_drives_alone_and_an_exact_one_is_not_checked_again(store, condition):
    """Mutants: `did any of` / `count` drivers made inexact or broken (lines 236, 248), a count with a number
    not driving (242, 245), `tag in` not driving (256, 257), `has car where` losing its car condition (148)."""
    rule_set = rule_set_from_text(f"segment s {{ where {condition} }}")
    query, members = _members(store, rule_set, "s")
    assert query.driver.startswith(LONE_DRIVERS[condition]), query.driver
    assert members == _expected(store, rule_set, "s")


def test_a_has_car_where_keeps_its_car_condition_when_it_drives(store):
    """Mutant: line 148 `if of_car` -> `if not of_car` (the ownership rows drive without the car's model)."""
    rule_set = rule_set_from_text('segment s { where has car where model = "X5" }')
    assert _members(store, rule_set, "s")[1] == {1, 5}


def test_conditions_that_cannot_drive_are_still_checked(store):
    """A `not in` list or a count that zero passes is no index range: the other condition drives and these
    are checked per candidate, once per person. Mutants: line 256 (`not in` driving with its own items), 245, 508
    (`before_grouping` True by default: the checks run per event row)."""
    rule_set = rule_set_from_text("""
        segment a { where tag intent_level not in ["high"] and did lead_submit in last 90 days }
        segment b { where count(share) in last 90 days < 2 and did lead_submit in last 90 days }
    """)
    for name, answer in (("a", {3, 8}), ("b", {3})):  # a person without the tag is in no list
        query, members = _members(store, rule_set, name)
        assert query.driver.startswith("drive from events(name, ts) for did lead_submit"), query.driver
        # the driver groups its events by person: the other condition is checked once per person, in HAVING,
        # not once per event row in WHERE
        where, having = query.sql().split(" GROUP BY ")[0], query.sql().split(" HAVING ")[1]
        assert "SELECT" not in where.removeprefix("SELECT") and "SELECT" in having
        assert members == answer == _expected(store, rule_set, name)


def test_a_repeated_condition_and_a_bare_has_car_are_dropped_but_what_follows_them_is_kept(store):
    """`A and A and B` is `A and B`; `has car and has car where ... and B` is `has car where ... and B`.
    Mutants: lines 207 and 210, `continue` -> `break` (B dropped with the repeat)."""
    rule_set = rule_set_from_text("""
        segment a { where did lead_submit in last 90 days and did lead_submit in last 90 days
                          and tag intent_level = "low" }
        segment b { where has car and has car where model = "X5" and tag intent_level = "high"
                          and did share in last 90 days }
    """)
    for name, answer in (("a", {3, 8}), ("b", {1})):
        assert _members(store, rule_set, name)[1] == answer == _expected(store, rule_set, name)


def test_an_event_row_weighs_four_tag_rows(store):
    """The statistics size both ranges: 13 people tagged low (13 index rows of tag_values) against 4
    lead_submit events in the last 90 days (each costs about 4 rows: 16): the tag drives, and the plan
    says how the range was sized. Mutants: line 65 (a tag row costing 2), 498 (`== "statistics"` -> `>`), 48
    (`EVENT_ROW_COST = 3.0`: 12, the events drive)."""
    thirteenth = store.create_person({"n": 20})
    store.write_tag_values([(thirteenth, "intent_level", "low")], tags=["intent_level"], calculator="t",
                           calculator_version="1", computed_at=AS_OF, person_ids=[thirteenth])
    with store.transaction():
        store.refresh_plan_stats()
    rule_set = rule_set_from_text('segment s { where did lead_submit in last 90 days and tag intent_level = "low" }')
    query, members = _members(store, rule_set, "s")
    assert query.driver.startswith("drive from tag_values(tag, value) for tag intent_level = 'low' "
                                   "(~13 rows by the planner statistics)"), query.driver
    assert members == {3, 8} == _expected(store, rule_set, "s")


class Recording:
    """The store, with the SQL of every query it is asked (the planner's probes) kept."""

    def __init__(self, store):
        self._store, self.queries = store, []

    def query(self, sql, params=()):
        self.queries.append(sql)
        return self._store.query(sql, params)

    def __getattr__(self, name):
        return getattr(self._store, name)


def test_a_probe_counts_only_as_far_as_could_beat_the_range_the_statistics_know(store):
    """Events not counted yet: their range is probed, but 4 tagged people (statistics) cost 4, so the probe
    stops after 4 / 4 + 1 = 2 index rows (not a whole cap of 250,000). Mutants: line 472 (`>= 0` -> `== 0`, `> 0`),
    479 (`best_cost / row_cost` -> `*`)."""
    rule_set = rule_set_from_text('segment s { where tag intent_level = "high" and did share in last 90 days }')
    recording = Recording(store)
    query = plan_segment(recording, rule_set, "s", AS_OF, TZ)
    assert len(recording.queries) == 1 and "LIMIT 2)" in recording.queries[0], recording.queries
    assert query.driver.startswith("drive from tag_values(tag, value) for tag intent_level = 'high' "
                                   "(~4 rows by the planner statistics)"), query.driver
    assert set(store.query_person_ids(query.sql(), query.params)) == {1, 2} == _expected(store, rule_set, "s")
    # nobody is tagged `none` (the statistics know it): nothing can beat an empty range, one row is enough
    empty = rule_set_from_text('segment s { where tag intent_level = "none" and did share in last 90 days }')
    recording.queries.clear()
    query = plan_segment(recording, empty, "s", AS_OF, TZ)
    assert len(recording.queries) == 1 and "LIMIT 1)" in recording.queries[0], recording.queries
    assert query.driver.startswith("drive from tag_values(tag, value) for tag intent_level = 'none' (~0 rows"), \
        query.driver


def test_on_a_tie_the_driver_that_filters_its_rows_drives(store):
    """`did share` and `count(share) >= 3` read the same range (a tie): the count drives, its grouped rows
    are fewer. Mutants: line 106 (`filtered` computed with `and`, or with `where is None`)."""
    with store.transaction():
        store.refresh_plan_stats()
    rule_set = rule_set_from_text("segment s { where did share in last 90 days and count(share) in last 90 days >= 3 }")
    query, members = _members(store, rule_set, "s")
    assert query.driver.startswith("drive from events(name, ts) for count(share) >= 3"), query.driver
    assert members == {1, 2, 8} == _expected(store, rule_set, "s")


def test_a_residual_event_property_named_like_action_does_not_bring_in_people(store):
    """Only `age` (of a person or a car) needs the people row; an event property whose name sorts before
    "age" does not. Mutant: line 175 (`n.name == "age"` -> `<=`: the plan joins people)."""
    rule_set = rule_set_from_text(
        'segment s { where tag intent_level = "high" and count(share where action = "x") in last 90 days < 1 }')
    query, members = _members(store, rule_set, "s")
    assert query.driver.startswith("drive from tag_values"), query.driver
    assert "people" not in query.sql()
    assert members == {1, 2, 4, 5} == _expected(store, rule_set, "s")


# --- column stores: set-shaped plans (DuckDB) --------------------------------------------------------------

SET_RULES = '''
segment one_did { where did lead_submit in last 90 days }
segment one_any { where did any of [lead_submit, test_drive] in last 90 days }
segment one_count { where count(share) in last 30 days >= 3 }
segment two { where count(share) in last 90 days >= 3 and did any of [lead_submit, test_drive, order] in last 90 days }
segment ever_and_recent { where did share and did lead_submit in last 90 days }
segment ever_both { where did share and did order }
segment narrow { where did share in last 7 days and did lead_submit in last 90 days }
segment high_no_share { where tag intent_level = "high" and not did share in last 90 days }
segment high_few { where tag intent_level = "high" and count(share) in last 90 days < 2 }
segment low_owner { where tag intent_level = "low" and has car }
segment none_owner { where tag intent_level = "none" and has car }
segment uncounted_owner { where tag colour = "red" and has car }
segment x5 { where has car where model = "X5" }
segment quiet { where not did share in last 90 days }
segment either { where did lead_submit in last 90 days or tag intent_level = "high" }
segment lead_low { where did lead_submit in last 90 days and tag intent_level = "low" }
segment share_then_lead { where did share then lead_submit within 14 days }
'''

# segment -> how its set plan starts
SET_SHAPES = {
    "one_did": "one scan of events (lead_submit) grouped by person for 1 condition(s); 0 other",
    "one_any": "one scan of events (lead_submit, test_drive) grouped by person for 1 condition(s); 0 other",
    "one_count": "one scan of events (share) grouped by person for 1 condition(s); 0 other",
    "two": "one scan of events (lead_submit, order, share, test_drive) grouped by person for 2 condition(s); 0 other",
    "ever_and_recent": "one scan of events (lead_submit, share) grouped by person for 2 condition(s); 0 other",
    # no window at all: no lower time bound
    "ever_both": "one scan of events (order, share) grouped by person for 2 condition(s); 0 other",
    "narrow": "one scan of events (lead_submit, share) grouped by person for 2 condition(s); 0 other",
    "high_no_share": "from tag_values(tag, value) for tag intent_level = 'high'; 1 other",
    "high_few": "from tag_values(tag, value) for tag intent_level = 'high'; 1 other",
    # the statistics: 12 people tagged low, at most 5 ownership rows
    "low_owner": "from ownerships for has car; 1 other",
    # nobody is tagged `none`: the empty range drives
    "none_owner": "from tag_values(tag, value) for tag intent_level = 'none'; 1 other",
    # a tag the statistics never counted is not taken for an empty one
    "uncounted_owner": "from ownerships for has car; 1 other",
    "x5": "from ownerships for has car where ...; 0 other",
    "quiet": "scan people",
    "either": "union of one plan per alternative",
    "lead_low": "one scan of events (lead_submit) grouped by person for 1 condition(s); 1 other",
    # a sequence's first step is only a superset: it does not drive a set plan (it would be dropped from the checks)
    "share_then_lead": "scan people",
}


@pytest.fixture
def duckdb_engine():
    pytest.importorskip("duckdb")
    from motorcade.analytics import open_engine
    engine = open_engine("duckdb:///:memory:")
    yield engine
    engine.close()


def test_column_store_plans_take_every_shape_and_give_the_evaluators_answer(store, duckdb_engine):
    """Every branch of the set-shaped plan (`_set_plan`, `_events_group`, `_positive_events`). Mutants: lines
    291-297, 339-446 (conditions grouped or not, the coarse filter and each condition's own, the HAVING
    tests, the choice among tag and ownership ranges by the statistics; 363: conditions without a window; 422: `d.exact
    and ...` -> `or`, a sequence's inexact driver chosen and its condition never checked)."""
    from motorcade.analytics.segments import plan_on_engine
    from motorcade.segments.compiler import property_keys
    rules = rule_set_from_text(SET_RULES)
    duckdb_engine.mirror(store, properties=property_keys(rules))
    recording = Recording(duckdb_engine)
    for name, shape in SET_SHAPES.items():
        plan = plan_on_engine(store, recording, rules, name, AS_OF, TZ)
        assert plan.driver.startswith(shape), (name, plan.driver)
        assert set(duckdb_engine.person_ids(plan)) == _expected(store, rules, name), name
    assert recording.queries == []  # no probes on a column store
    # a lone condition on events is tested in the scan's WHERE: no conditional count per person
    assert "CASE" not in plan_on_engine(store, duckdb_engine, rules, "one_did", AS_OF, TZ).sql()
    # the other conditions read only the person: tested on the event rows, before they are grouped (measured:
    # cheaper than grouping rows of people the check then drops). Mutant: line 454 (`before_grouping=False`).
    sql = plan_on_engine(store, duckdb_engine, rules, "lead_low", AS_OF, TZ).sql()
    assert sql.index("tag_values") < sql.index("GROUP BY"), sql
    # a forced scan reads people on a column store too
    forced = plan_on_engine(store, duckdb_engine, rules, "one_did", AS_OF, TZ, force_scan=True)
    assert forced.driver.startswith("scan people"), forced.driver
    assert set(duckdb_engine.person_ids(forced)) == {1, 3, 6, 8}


def test_a_window_of_one_instant_is_not_taken_for_an_empty_one(store):
    """`between T and T` holds the events at T: the statistics size its range (it is not empty). Mutant:
    line 100 (`first > last` -> `>=`: such a window estimated at 0 rows)."""
    with store.transaction():
        store.refresh_plan_stats()
    rule_set = rule_set_from_text("segment s { where did lead_submit between 2026-11-18 12:00 and 2026-11-18 12:00 "
                                  "and did share in last 90 days }")
    query, members = _members(store, rule_set, "s")
    assert query.driver.startswith("drive from events(name, ts) for did lead_submit (~1 rows by the planner "
                                   "statistics)"), query.driver
    assert members == {1} == _expected(store, rule_set, "s")


def test_a_range_the_statistics_do_not_know_is_counted_and_the_plan_says_so(store):
    """Events not counted by the statistics yet: both ranges are probed, lead_submit's 4 index rows drive, and
    the plan says they were counted in the index. Mutant: line 498 (`== "statistics"` -> `<=`)."""
    rule_set = rule_set_from_text("segment s { where did share in last 90 days and did lead_submit in last 90 days }")
    query, members = _members(store, rule_set, "s")
    assert query.driver.startswith("drive from events(name, ts) for did lead_submit (~4 index rows); "
                                   "check the other 1 condition(s)"), query.driver
    assert members == {1, 3, 6, 8} == _expected(store, rule_set, "s")


def test_on_a_tie_a_count_drives_before_a_tag_whose_rows_are_not_filtered(store):
    """4 people tagged high (4 tag rows) and 1 test_drive event (weighing 4): a tie; the count's grouped rows
    are filtered by its HAVING, a tag's range is exactly its rows. Mutant: line 66 (`filtered` True by default:
    the tag wins the tie)."""
    with store.transaction():
        store.refresh_plan_stats()
    rule_set = rule_set_from_text(
        'segment s { where tag intent_level = "high" and count(test_drive) in last 90 days >= 1 }')
    query, members = _members(store, rule_set, "s")
    assert query.driver.startswith("drive from events(name, ts) for count(test_drive) >= 1 (~1 rows"), query.driver
    assert members == {2} == _expected(store, rule_set, "s")


@pytest.mark.parametrize("engine", ["sqlite", "duckdb"])
def test_a_member_of_several_alternatives_is_listed_once(store, engine):
    """A top-level `or` is a UNION of one plan per alternative: person 1 is in both, and listed once. Mutant:
    line 327 (`distinct=False`: UNION ALL)."""
    rule_set = rule_set_from_text(
        'segment s { where did lead_submit in last 90 days or tag intent_level = "high" }')
    if engine == "sqlite":
        query = plan_segment(store, rule_set, "s", AS_OF, TZ)
        members = store.query_person_ids(query.sql(), query.params)
    else:
        pytest.importorskip("duckdb")
        from motorcade.analytics import open_engine
        from motorcade.analytics.segments import plan_on_engine
        duck = open_engine("duckdb:///:memory:")
        try:
            duck.mirror(store, properties=[])
            query = plan_on_engine(store, duck, rule_set, "s", AS_OF, TZ)
            members = list(duck.person_ids(query))
        finally:
            duck.close()
    assert query.driver.startswith("union of one plan per alternative"), query.driver
    assert members == [1, 2, 3, 4, 5, 6, 8] and set(members) == _expected(store, rule_set, "s")


def test_a_window_after_as_of_is_an_empty_range_and_a_window_without_a_start_is_sized(store):
    """No statistics yet. `since` a date after as_of admits no event (none is later than as_of): its range is
    known to be empty without reading the index, so it drives, and the other range is probed for one row only.
    A condition without a window (no lower bound) is probed like any other. Mutants: line 100 (`first is not
    None` -> `first is None` or `not first is not None`: the empty range probed, and a TypeError comparing
    None for a window without a start), 101 (`return 0` -> `return 1` or `return -1`)."""
    recording = Recording(store)
    future = rule_set_from_text("segment s { where did lead_submit since 2026-12-01 and did share in last 90 days }")
    query = plan_segment(recording, future, "s", AS_OF, TZ)
    assert query.driver.startswith("drive from events(name, ts) for did lead_submit (~0 rows by the planner "
                                   "statistics)"), query.driver
    assert len(recording.queries) == 1 and "LIMIT 1)" in recording.queries[0], recording.queries
    assert set(store.query_person_ids(query.sql(), query.params)) == set() == _expected(store, future, "s")
    # ever: share's 16 events are counted (weighing 64), then lead_submit's as far as 64 / 4 + 1 rows: its 5 drive
    ever = rule_set_from_text("segment s { where did share and did lead_submit }")
    recording.queries.clear()
    query = plan_segment(recording, ever, "s", AS_OF, TZ)
    assert query.driver.startswith("drive from events(name, ts) for did lead_submit (~5 index rows)"), query.driver
    assert [q.count("LIMIT") for q in recording.queries] == [1, 1] and "LIMIT 17)" in recording.queries[1]
    assert set(store.query_person_ids(query.sql(), query.params)) == {1, 3, 6, 8, 9} == _expected(store, ever, "s")


def test_a_tag_compared_with_true_or_a_date_does_not_match_a_stored_number_or_text(store):
    """Tag values are numbers or strings (an undeclared tag stores true as 1 and a date as its text): `tag vip =
    true` is nobody, and only the plain items of a list can come from the tag's index range. Mutant: line 216
    (`_plain` with `or`: true and the date looked up in tag_values, matching the 1 and the text)."""
    store.write_tag_values([(1, "vip", 1), (2, "vip", "2026-01-01"), (3, "vip", True), (4, "vip", 7)], tags=["vip"],
                           calculator="t", calculator_version="1", computed_at=AS_OF)
    rule_set = rule_set_from_text("""
        segment is_true { where tag vip = true }
        segment on_date { where tag vip = 2026-01-01 }
        segment listed { where tag vip in [true, 2026-01-01, 7] }
    """)
    for name, answer in (("is_true", set()), ("on_date", set()), ("listed", {4})):
        assert _members(store, rule_set, name)[1] == answer == _expected(store, rule_set, name), name


def test_a_store_segment_reads_a_group_segment_it_names_with_the_persons_own_tag_values(store):
    """`in segment valued` inside a segment scoped to SH01: `valued` is a group segment, so its per-store tag
    is the person's own value, not the value at SH01 (the store segment's conditions are not merged with the
    group segment's). Person 1 scores 5 but 1 at SH01, person 2 the other way round. Mutant: line 189
    (`not path or ...` -> `path or ...`: the group segment's condition inlined and read at the store)."""
    from motorcade.tags.base import TagDefinition
    with store.transaction():
        store.define_tags([TagDefinition("score", "number", "a score per store", per_store=True)], calculator="t",
                          calculator_version="1")
        for pid in PEOPLE:
            store.set_relation(pid, "selling_store", "SH01")
    store.write_tag_values([(1, "score", 5), (2, "score", 1), (3, "score", 5)], tags=["score"], calculator="t",
                           calculator_version="1", computed_at=AS_OF)
    store.write_store_tag_values([(1, "score", 1, "SH01"), (2, "score", 5, "SH01"), (3, "score", 5, "SH01")],
                                 tags=["score"], calculator="t", calculator_version="1", computed_at=AS_OF)
    rule_set = rule_set_from_text("""
        segment valued { where tag score >= 4 }
        segment sh01_sharers { scope store "SH01" where in segment valued and did share in last 90 days }
    """)
    assert _members(store, rule_set, "sh01_sharers")[1] == {1, 3} == _expected(store, rule_set, "sh01_sharers")


def test_only_a_count_drives_from_the_events_index(store):
    """`count(E) >= k` drives from E's events grouped by person; an average, a sum or a maximum of a property
    is no count of events. Person 5 ordered twice for 1, person 7 once for 3. Mutants: line 240 (`func ==
    "count"` -> `<=` or `>=`: an `avg`, or a `sum`/`max`, taken for the count of its events)."""
    day = dt.timedelta(days=1)
    with store.transaction():
        store.insert_events([Event(person_id=pid, name="order", ts=AS_OF - ago * day, source="t", dedup_key=key,
                                   properties={"amount": amount})
                             for pid, ago, amount, key in ((5, 3, 1, "o1"), (5, 4, 1, "o2"), (7, 5, 3, "o3"))])
    rule_set = rule_set_from_text("""
        segment avg_2 { where avg(order.amount) in last 90 days >= 2 }
        segment sum_3 { where sum(order.amount) in last 90 days >= 3 }
        segment max_2 { where max(order.amount) in last 90 days >= 2 }
        segment count_2 { where count(order) in last 90 days >= 2 }
    """)
    for name, answer in (("avg_2", {7}), ("sum_3", {7}), ("max_2", {7}), ("count_2", {5})):
        query, members = _members(store, rule_set, name)
        assert members == answer == _expected(store, rule_set, name), name
    assert query.driver.startswith("drive from events(name, ts) for count(order) >= 2"), query.driver


def test_a_tag_ordering_does_not_drive_from_the_equal_values(store):
    """Only `tag T = v` (and `in [...]`) reads one range of tag_values(tag, value): `tag intent_level > "high"`
    is checked per person ("low" sorts after "high"). Mutant: line 251 (`op == "="` -> `>=`: the `>`
    driven from the people tagged exactly "high")."""
    rule_set = rule_set_from_text('segment s { where tag intent_level > "high" }')
    query, members = _members(store, rule_set, "s")
    assert members == {3, 8, *range(10, 20)} == _expected(store, rule_set, "s")
    assert query.driver.startswith("scan people"), query.driver


def test_a_tag_declared_boolean_or_date_is_compared_as_declared_not_as_stored(store):
    """A boolean tag stores true as 1 and a date tag a date as ISO text (ValueTypes.tag), but a rule compares
    the declared value: `tag vip = 1` and `tag joined = "2026-01-01"` hold for nobody, so neither may be
    answered from tag_values' stored range. Mutants: line 223 (`types is not None` -> `is None`) and 225
    (`or tag in types.store_tags` -> `and`): the typed tags driven from their stored form."""
    from motorcade.tags.base import TagDefinition
    with store.transaction():
        store.define_tags([TagDefinition("vip", "boolean", "v"), TagDefinition("joined", "date", "j")],
                          calculator="t", calculator_version="1")
    store.write_tag_values([(1, "vip", True), (2, "vip", False), (3, "joined", dt.date(2026, 1, 1))],
                           tags=["vip", "joined"], calculator="t", calculator_version="1", computed_at=AS_OF)
    rule_set = rule_set_from_text("""
        segment vip_1 { where tag vip = 1 }
        segment vip_true { where tag vip = true }
        segment joined_text { where tag joined = "2026-01-01" }
        segment joined_date { where tag joined = 2026-01-01 }
    """)
    for name, answer in (("vip_1", set()), ("vip_true", {1}), ("joined_text", set()), ("joined_date", {3})):
        assert _members(store, rule_set, name)[1] == answer == _expected(store, rule_set, name), name


def test_on_a_tie_an_exact_driver_drives_before_a_sequences_first_step(store):
    """`did share then lead_submit ...` and `did share` in the same window read the same range (13 share
    events): the exact `did share` drives and is not checked again; the sequence's first step is only a
    superset. Mutants: line 488 (`not d.exact` -> `d.exact`: the sequence drives, both conditions re-checked), 238
    (`steps[0]` -> `steps[-1]` or `steps[1]`: the sequence sized by lead_submit's 4 events, called its first step's)."""
    rule_set = rule_set_from_text("segment s { where did share then lead_submit within 14 days in last 90 days "
                                  "and did share in last 90 days }")
    query, members = _members(store, rule_set, "s")
    assert query.driver.startswith("drive from events(name, ts) for did share (~13 index rows); check the other 1 "
                                   "condition(s)"), query.driver
    assert members == {1} == _expected(store, rule_set, "s")


def test_on_a_tie_a_has_car_where_drives_before_a_tag_whose_rows_are_not_filtered(store):
    """4 people tagged high (4 tag rows) and 4 ownership rows: a tie; the ownerships' `where model = "X5"`
    filters them, a tag's range is exactly its rows. Mutant: line 168 (`filtered=cond.where is not None` ->
    `is None`: the tag wins the tie)."""
    with store.transaction():
        store.refresh_plan_stats()
    rule_set = rule_set_from_text('segment s { where tag intent_level = "high" and has car where model = "X5" }')
    query, members = _members(store, rule_set, "s")
    assert query.driver.startswith("drive from ownerships for has car where ... (~4 rows by the planner "
                                   "statistics)"), query.driver
    assert members == {1, 5} == _expected(store, rule_set, "s")


def test_an_event_of_nobody_makes_no_member_of_a_column_store_plan(store, duckdb_engine):
    """An event whose person is not resolved (person_id NULL) is nobody's: the grouped scan of events keeps
    only rows with a person, also when one condition's own filter already bounds names and time. Mutant: line
    380 (`coarse[1:]` -> `coarse[2:]`: the `person_id IS NOT NULL` test dropped, NULL listed as a member)."""
    from motorcade.analytics.segments import plan_on_engine
    with store.transaction():
        store.insert_events([Event(person_id=None, name="lead_submit", ts=AS_OF - dt.timedelta(days=1), source="t",
                                   dedup_key="nobody")])
    rules = rule_set_from_text("segment s { where did lead_submit in last 90 days }")
    duckdb_engine.mirror(store, properties=[])
    plan = plan_on_engine(store, duckdb_engine, rules, "s", AS_OF, TZ)
    assert plan.driver.startswith("one scan of events (lead_submit) grouped by person for 1 condition(s)")
    assert list(duckdb_engine.person_ids(plan)) == [1, 3, 6, 8] and _expected(store, rules, "s") == {1, 3, 6, 8}
