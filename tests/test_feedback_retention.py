"""Retention cohorts: the SQL counts agree with a plain-Python recomputation on generated histories;
the owners' return-to-workshop view is checked by hand."""

import datetime as dt
import tempfile
import zoneinfo
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from motorcade.errors import MotorcadeError
from motorcade.feedback.retention import compute_retention
from motorcade.model import Car, Event, Ownership, Store
from motorcade.store import open_store

UTC = dt.timezone.utc
SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")
BASE = int(dt.datetime(2025, 1, 1, tzinfo=UTC).timestamp())
DAY = 86400


def local_month(ts: int) -> tuple[int, int]:
    local = dt.datetime.fromtimestamp(ts, SHANGHAI)
    return local.year, local.month


def reference_cohorts(histories, cohort_event, return_event, until, periods):
    """{cohort "YYYY-MM": (size, active per period, cumulative per period)} before censoring."""
    cohorts = {}
    for person, events in histories.items():
        ordered = sorted((e for e in events if e["ts"] <= until), key=lambda e: (e["ts"], e["id"]))
        firsts = [e for e in ordered if e["name"] == cohort_event]
        if not firsts:
            continue
        first = firsts[0]
        year, month = local_month(first["ts"])
        key = f"{year:04d}-{month:02d}"
        entry = cohorts.setdefault(key, {"size": 0, "active": {}, "first": {}})
        entry["size"] += 1
        seen = set()
        for e in ordered:
            if e["name"] != return_event or (e["ts"], e["id"]) <= (first["ts"], first["id"]):
                continue
            y, m = local_month(e["ts"])
            seen.add((y * 12 + m) - (year * 12 + month))
        for n in seen:
            entry["active"][n] = entry["active"].get(n, 0) + 1
        if seen:
            entry["first"][min(seen)] = entry["first"].get(min(seen), 0) + 1
    return cohorts


event_st = st.tuples(st.sampled_from(["purchase", "service_visit", "app_login"]), st.integers(0, 420 * 24))
histories_st = st.lists(st.lists(event_st, max_size=10), min_size=1, max_size=10)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(people=histories_st, as_of_day=st.integers(30, 450), cohort_event=st.sampled_from(["purchase", "service_visit"]),
       periods=st.integers(0, 14))
def test_cohort_counts_match_an_independent_recomputation(people, as_of_day, cohort_event, periods):
    as_of = dt.datetime.fromtimestamp(BASE + as_of_day * DAY + 3600 * 5, UTC)
    until = int(as_of.timestamp())
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(Path(tmp) / "r.db")
        histories = {}
        for events in people:
            pid = store.create_person()
            store.insert_events([Event(name, dt.datetime.fromtimestamp(BASE + hours * 3600, UTC), pid, {}, "g",
                                       f"{pid}-{n}") for n, (name, hours) in enumerate(events)])
            histories[pid] = [{"name": e.name, "ts": int(e.ts.timestamp()), "id": e.id} for e in store.events_of(pid)]
        report = compute_retention(store, return_event="service_visit", cohort_event=cohort_event, periods=periods,
                                   as_of=as_of, tz=SHANGHAI)
        store.close()
    expected = reference_cohorts(histories, cohort_event, "service_visit", until, periods)
    y, m = local_month(until)
    as_of_index = y * 12 + m
    assert [c.cohort for c in report.cohorts] == sorted(expected)
    for c in report.cohorts:
        e = expected[c.cohort]
        assert c.size == e["size"]
        cy, cm = map(int, c.cohort.split("-"))
        running = 0
        for n in range(periods + 1):
            running += e["first"].get(n, 0)
            if cy * 12 + cm + n > as_of_index:
                assert c.active[n] is None and c.cumulative[n] is None
            else:
                assert c.active[n] == e["active"].get(n, 0)
                assert c.cumulative[n] == running
    # the "all cohorts" curve weighs each cohort by its size, over the cohorts that reached period N
    for n, value in enumerate(report.curve(cumulative=True)):
        reached = [c for c in report.cohorts if c.cumulative[n] is not None]
        total = sum(c.size for c in reached)
        assert value == (sum(c.cumulative[n] for c in reached) / total if total else None)


def test_return_to_workshop_for_owners(tmp_path):
    store = open_store(tmp_path / "owners.db")
    store.upsert_stores([Store("S1", "一店", "集团"), Store("S2", "二店", "集团")])
    bought = [dt.date(2025, 1, 10), dt.date(2025, 1, 31), dt.date(2025, 2, 5), dt.date(2025, 2, 20)]
    visits = [[dt.date(2025, 3, 1), dt.date(2025, 9, 1)], [dt.date(2025, 2, 1)], [], [dt.date(2025, 2, 21)]]
    for i, (day, dates) in enumerate(zip(bought, visits)):
        pid = store.create_person()
        store.set_relation(pid, "service_store", "S1" if i < 2 else "S2")
        vin = f"LBV0000000000000{i}"
        store.upsert_cars([Car(vin, "BMW", "X3", purchase_date=day, store_id="S1")])
        store.add_ownership(Ownership(pid, vin, day))
        store.insert_events([Event("service_visit", dt.datetime.combine(v, dt.time(10), SHANGHAI), pid, {}, "dms",
                                   f"{pid}-{v}") for v in dates])
    as_of = dt.datetime(2025, 4, 15, tzinfo=SHANGHAI)
    report = compute_retention(store, return_event="service_visit", periods=4, as_of=as_of, tz=SHANGHAI)
    assert report.title.startswith("Return to workshop")
    rows = {c.cohort: c for c in report.cohorts}
    assert rows["2025-01"].size == 2 and rows["2025-02"].size == 2
    assert rows["2025-01"].active == (0, 1, 1, 0, None)  # the September visit is after as_of
    assert rows["2025-01"].cumulative == (0, 1, 2, 2, None)
    assert rows["2025-02"].active == (1, 0, 0, None, None)
    assert rows["2025-02"].cumulative == (1, 1, 1, None, None)
    assert report.curve(cumulative=True)[:3] == [0.25, 0.5, 0.75]
    s2 = compute_retention(store, return_event="service_visit", periods=4, as_of=as_of, tz=SHANGHAI, store_id="S2")
    assert [(c.cohort, c.size) for c in s2.cohorts] == [("2025-02", 2)]
    later = compute_retention(store, return_event="service_visit", periods=8, as_of=dt.datetime(2025, 12, 1, tzinfo=UTC),
                              tz=SHANGHAI)
    assert {c.cohort: c.active[8] for c in later.cohorts} == {"2025-01": 1, "2025-02": 0}
    sections = later.sections()
    assert sections[1].chart is not None and sections[0].table.shade is not None
    with pytest.raises(MotorcadeError, match="--periods"):
        compute_retention(store, return_event="service_visit", periods=-1)


def test_an_empty_store_says_so(tmp_path):
    report = compute_retention(open_store(tmp_path / "e.db"), return_event="service_visit", cohort_event="purchase")
    assert report.cohorts == () and report.curve(cumulative=True) == [None] * 13
    (section,) = report.sections()
    assert "No person in this view has a `purchase` event" in section.text


NEW_YORK = zoneinfo.ZoneInfo("America/New_York")


def test_cohort_months_are_local_months_across_a_dst_change(tmp_path):
    """as_of is in summer (UTC−4); a purchase at 23:30 on 31 January (UTC−5) is a January cohort, and a
    return at 23:30 on 28 February belongs to period 1, whatever offset as_of has."""
    store = open_store(tmp_path / "dst.db")
    pid = store.create_person()
    owner = store.create_person()
    store.upsert_cars([Car("LBV0000000000DST1", "BMW", "X3")])
    store.add_ownership(Ownership(owner, "LBV0000000000DST1", dt.date(2026, 2, 1)))  # midnight of 1 Feb, local
    store.insert_events([
        Event("purchase", dt.datetime(2026, 1, 31, 23, 30, tzinfo=NEW_YORK), pid, {}, "t", "1"),
        Event("service_visit", dt.datetime(2026, 2, 28, 23, 30, tzinfo=NEW_YORK), pid, {}, "t", "2"),
        Event("service_visit", dt.datetime(2026, 2, 1, 0, 30, tzinfo=NEW_YORK), owner, {}, "t", "3"),
    ])
    as_of = dt.datetime(2026, 7, 1, 12, tzinfo=NEW_YORK)
    report = compute_retention(store, return_event="service_visit", cohort_event="purchase", periods=3, as_of=as_of,
                               tz=NEW_YORK)
    assert [(c.cohort, c.active[:3]) for c in report.cohorts] == [("2026-01", (0, 1, 0))]
    owners = compute_retention(store, return_event="service_visit", periods=1, as_of=as_of, tz=NEW_YORK)
    assert [(c.cohort, c.active) for c in owners.cohorts] == [("2026-02", (1, 0))]  # the visit is after midnight
