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
    # months before the store's first service_visit (up to as_of) have no data
    visits = [e["ts"] for events in histories.values() for e in events if e["name"] == "service_visit"
              and e["ts"] <= until]
    data_index = (lambda ym: ym[0] * 12 + ym[1])(local_month(min(visits))) if visits else None
    assert [c.cohort for c in report.cohorts] == sorted(expected)
    for c in report.cohorts:
        e = expected[c.cohort]
        assert c.size == e["size"]
        cy, cm = map(int, c.cohort.split("-"))
        running = 0
        observed_from = None if data_index is None else max(data_index - (cy * 12 + cm), 0)
        assert c.observed_from == observed_from
        for n in range(periods + 1):
            running += e["first"].get(n, 0)
            if cy * 12 + cm + n > as_of_index or observed_from is None or n < observed_from:
                assert c.active[n] is None and c.cumulative[n] is None
            else:
                assert c.active[n] == e["active"].get(n, 0)
                assert c.cumulative[n] == (running if observed_from == 0 else None)
    # the "all cohorts" return curve is the product-limit estimate over the cohorts observed at period N: it
    # never goes down, and equals the plain pooled share while every cohort has reached N
    curve = report.curve(cumulative=True)
    shown = [v for v in curve if v is not None]
    assert shown == sorted(shown)
    for n, value in enumerate(curve):
        reached = [c for c in report.cohorts if c.cumulative[n] is not None]
        if not reached:
            assert value is None
        elif len(reached) == len(report.cohorts):
            assert value == pytest.approx(sum(c.cumulative[n] for c in reached) / sum(c.size for c in reached))


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
    walk_in = store.create_person()  # no car: the workshop's data start in January
    store.insert_events([Event("service_visit", dt.datetime(2025, 1, 2, 10, tzinfo=SHANGHAI), walk_in, {}, "dms", "w")])
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
        Event("service_visit", dt.datetime(2026, 1, 2, 10, tzinfo=NEW_YORK), store.create_person(), {}, "t", "4"),
    ])
    as_of = dt.datetime(2026, 7, 1, 12, tzinfo=NEW_YORK)
    report = compute_retention(store, return_event="service_visit", cohort_event="purchase", periods=3, as_of=as_of,
                               tz=NEW_YORK)
    assert [(c.cohort, c.active[:3]) for c in report.cohorts] == [("2026-01", (0, 1, 0))]
    owners = compute_retention(store, return_event="service_visit", periods=1, as_of=as_of, tz=NEW_YORK)
    assert [(c.cohort, c.active) for c in owners.cohorts] == [("2026-02", (1, 0))]  # the visit is after midnight


def _cohort_report(cohorts, periods, **kwargs):
    from motorcade.feedback.retention import Cohort, RetentionReport

    return RetentionReport("purchase", "purchase", periods, [Cohort(*c) for c in cohorts], "2026-06", **kwargs)


def test_the_return_curve_never_goes_down_when_recent_cohorts_drop_out():
    """A large recent cohort returns often in its first months; an old one seldom. The pooled share over
    the cohorts that reached month N fell from 30 % to 10 % at M2 when the recent cohort dropped out."""
    report = _cohort_report([("2026-03", 100, (10, 0, 0, 0), (10, 10, 10, 10)),
                             ("2026-05", 100, (50, 0, None, None), (50, 50, None, None))], 3)
    curve = report.curve(cumulative=True)
    assert curve == pytest.approx([0.3, 0.3, 0.3, 0.3])
    assert "Kaplan" in report.sections()[1].text


def test_product_limit_curve_by_hand():
    # M1: 100 - 20 = 80 at risk in A, 40 - 10 = 30 in B; 8 + 3 return -> S = 0.75 * (1 - 11/110) = 0.675
    report = _cohort_report([("2026-01", 100, (20, 8, 0), (20, 28, 28)), ("2026-04", 40, (10, 3, None),
                                                                           (10, 13, None))], 2)
    assert report.curve(cumulative=True) == pytest.approx([30 / 140, 1 - 110 / 140 * (1 - 11 / 110),
                                                           1 - 110 / 140 * (1 - 11 / 110)])


def test_months_before_the_return_data_starts_are_no_data_not_zero(tmp_path):
    """Owners bought their cars in 2020; service visits were loaded from January 2025 on. Their 2020 months
    cannot be observed: "no data", not 0 %, and those cohorts stay out of the return curve."""
    store = open_store(tmp_path / "nodata.db")
    people = []
    for i, start in enumerate([dt.date(2020, 1, 10), dt.date(2020, 1, 20), dt.date(2025, 1, 5), dt.date(2025, 1, 6)]):
        pid = store.create_person()
        vin = f"LBV000000000ND{i:03d}"
        store.upsert_cars([Car(vin, "BMW", "X3")])
        store.add_ownership(Ownership(pid, vin, start))
        people.append(pid)
    store.insert_events([
        Event("service_visit", dt.datetime(2025, 1, 20, 10, tzinfo=SHANGHAI), people[0], {}, "dms", "a"),
        Event("service_visit", dt.datetime(2025, 2, 20, 10, tzinfo=SHANGHAI), people[2], {}, "dms", "b"),
    ])
    as_of = dt.datetime(2025, 3, 15, tzinfo=SHANGHAI)
    report = compute_retention(store, return_event="service_visit", periods=2, as_of=as_of, tz=SHANGHAI)
    rows = {c.cohort: c for c in report.cohorts}
    assert rows["2020-01"].active == (None, None, None) and rows["2020-01"].cumulative == (None, None, None)
    assert rows["2020-01"].observed_from == 60
    assert rows["2025-01"].active == (0, 1, 0) and rows["2025-01"].cumulative == (0, 1, 1)
    assert report.curve(cumulative=True) == [0.0, 0.5, 0.5]  # the 2020 cohort is not counted as never returning
    section = report.sections()[0]
    assert [r[0] for r in section.table.rows] == ["2025-01", "all"]  # a cohort with no data at all is not shown
    assert "1 cohort (2020-01, 2 people) with no data in M0–M2 is not shown" in section.text
    data = report.to_dict()
    assert data["data_since"] == "2025-01"
    assert next(c for c in data["cohorts"] if c["cohort"] == "2020-01")["observed_from"] == 60
    # a cohort whose early months predate the data: later months are observed, the cumulative is not
    late = compute_retention(store, return_event="service_visit", periods=62, as_of=as_of, tz=SHANGHAI)
    old = {c.cohort: c for c in late.cohorts}["2020-01"]
    assert old.active[60] == 1 and old.active[59] is None and old.cumulative[60] is None
    row = next(r for r in late.sections()[0].table.rows if r[0] == "2020-01")
    assert row[2] == row[61] == "no data" and row[62] == "50.0%" and row[63] == "0.0%"
    row = next(r for r in late.sections()[1].table.rows if r[0] == "2020-01")
    assert set(row[2:64]) == {"no data"}  # no cumulative figures: its first returns may predate the data
