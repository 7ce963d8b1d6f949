"""Planner statistics: event and tag range sizes without reading the ranges, kept up to date."""

from __future__ import annotations

import datetime as dt
import zoneinfo

from hypothesis import given, settings
from hypothesis import strategies as st

from motorcade.dsl.rules import rule_set_from_text
from motorcade.model import Event
from motorcade.segments.plan import plan_segment
from motorcade.store.sqlite import SQLiteStore
from motorcade.store.stats import EVENT_DELTA_LIMIT

DAY = 86400
BASE = 1_790_000_000 - 1_790_000_000 % DAY  # a UTC midnight


def _events(store, rows, start=0):
    with store.transaction():
        store.insert_events([Event(person_id=1, name=name, ts=dt.datetime.fromtimestamp(ts, dt.timezone.utc),
                                   source="t", dedup_key=f"k{start + i}") for i, (name, ts) in enumerate(rows)])


def _exact(rows, names, low, high):
    return sum(1 for n, ts in rows if n in names and (low is None or ts >= low) and ts <= high)


@settings(max_examples=40, deadline=None)
@given(offsets=st.lists(st.tuples(st.sampled_from(["a", "b", "c"]), st.integers(0, 20 * DAY)), max_size=60),
       split=st.integers(0, 60), lo_day=st.integers(0, 20), hi_day=st.integers(0, 20))
def test_whole_day_ranges_are_counted_exactly_before_and_after_a_refresh(tmp_path_factory, offsets, split, lo_day,
                                                                          hi_day):
    store = SQLiteStore(tmp_path_factory.mktemp("stats") / "s.db")
    rows = [(n, BASE + o) for n, o in offsets]
    _events(store, rows[:split])
    with store.transaction():
        store.refresh_plan_stats()
    _events(store, rows[split:], start=split)  # not refreshed yet: counted from the newest rows
    low, high = BASE + lo_day * DAY, BASE + hi_day * DAY + DAY - 1
    for names in (["a"], ["a", "c"]):
        assert store.event_range_estimate(names, low, high) == _exact(rows, names, low, high)
        assert store.event_range_estimate(names, None, high) == _exact(rows, names, None, high)
    with store.transaction():
        store.refresh_plan_stats()
    assert store.event_range_estimate(["b"], low, high) == _exact(rows, ["b"], low, high)
    store.close()


def test_a_cut_day_counts_by_its_share_and_stale_statistics_mean_probe(tmp_path):
    store = SQLiteStore(tmp_path / "s.db")
    assert store.event_range_estimate(["a"], None, BASE) is None  # never refreshed: unknown
    _events(store, [("a", BASE + i * 60) for i in range(1440)])  # one a minute all day
    with store.transaction():
        store.refresh_plan_stats()
    assert store.event_range_estimate(["a"], BASE + DAY // 2, BASE + DAY - 1) == 720
    _events(store, [("a", BASE + DAY + i) for i in range(EVENT_DELTA_LIMIT + 1)], start=1440)
    assert store.event_range_estimate(["a"], None, BASE + 2 * DAY) is None  # too far behind: probe


def test_tag_values_are_counted_when_written_and_a_score_is_not(tmp_path):
    store = SQLiteStore(tmp_path / "s.db")
    at = dt.datetime(2026, 11, 20, tzinfo=dt.timezone.utc)
    for _ in range(3):
        store.create_person()
    store.write_tag_values([(1, "level", "high"), (2, "level", "high"), (3, "level", 2)], tags=["level"],
                           calculator="t", calculator_version="1", computed_at=at)
    assert store.tag_range_estimate("level", ["high"]) == 2
    assert store.tag_range_estimate("level", ["high", 2]) == 3
    assert store.tag_range_estimate("level", ["2"]) == 0  # the text "2" is not the number 2
    store.write_tag_values([(1, "level", "low")], tags=["level"], calculator="t", calculator_version="1",
                           computed_at=at, person_ids=[1])
    assert store.tag_range_estimate("level", ["high"]) == 1
    people = [store.create_person() for _ in range(1001)]
    store.write_tag_values([(p, "score", p / 7) for p in people], tags=["score"], calculator="t",
                           calculator_version="1", computed_at=at)
    assert store.tag_range_estimate("score", [1.0]) is None  # too many values to count: probe
    assert store.tag_range_estimate("never", ["x"]) is None
    with store.transaction():  # values written before the statistics existed are counted at the next refresh
        store.conn.execute("DELETE FROM plan_stats")
        store.conn.execute("DELETE FROM tag_value_counts")
        store.refresh_plan_stats()
    assert store.tag_range_estimate("level", ["high"]) == 1
    assert store.tag_range_estimate("score", [1.0]) is None


def test_plans_size_candidates_by_the_statistics(tmp_path):
    store = SQLiteStore(tmp_path / "s.db")
    as_of = dt.datetime.fromtimestamp(BASE + 10 * DAY, zoneinfo.ZoneInfo("Asia/Shanghai"))
    assert store.create_person() == 1
    _events(store, [("view", BASE + i * 600) for i in range(1000)] + [("order", BASE + 9 * DAY)])
    with store.transaction():
        store.refresh_plan_stats()
    rules = rule_set_from_text("segment s { where did view in last 30 days and did order in last 30 days }")
    query = plan_segment(store, rules, "s", as_of, "Asia/Shanghai")
    assert query.driver.startswith("drive from events(name, ts) for did order (~1 rows by the planner statistics)")
    assert store.query_person_ids(query.sql(), query.params) == [1]


def test_how_far_the_statistics_are_behind(tmp_path):
    store = SQLiteStore(tmp_path / "s.db")
    _events(store, [("a", BASE + i) for i in range(5)])
    assert store.plan_stats_behind() == 5
    with store.transaction():
        store.refresh_plan_stats()
    assert store.plan_stats_behind() == 0
