"""The lifecycle calculator on hand-made ownerships, cars and service visits, with exact expected values."""

import datetime as dt

import pytest

from motorcade.model import Car, Event, Ownership
from motorcade.store import SQLiteStore
from motorcade.tags.engine import compute_tags
from motorcade_tags_lifecycle import LifecycleTags

CST = dt.timezone(dt.timedelta(hours=8))
AS_OF = dt.datetime(2026, 11, 20, 9, 0, tzinfo=CST)  # local date 2026-11-20


def service(person, days_ago):
    return Event(name="service_visit", ts=AS_OF - dt.timedelta(days=days_ago), person_id=person, source="test",
                 dedup_key=f"{person}-{days_ago}")


@pytest.fixture
def store(tmp_path):
    s = SQLiteStore(tmp_path / "lifecycle.db")
    people = [s.create_person() for _ in range(7)]
    prospect, new, owner, lapsed, sold, quiet, never = people
    s.upsert_cars([
        Car("VNEW", "BMW", "X1", 2026, dt.date(2026, 3, 1), None),
        Car("VOWN", "BMW", "X3", 2021, dt.date(2021, 6, 1), None),
        Car("VLAP", "BMW", "530Li", 2018, None, None),  # no purchase date: the ownership start counts
        Car("VSOLD", "BMW", "320Li", 2014, dt.date(2015, 1, 1), None),
        Car("VQUIET", "BMW", "X5", 2017, dt.date(2018, 1, 1), None),
        Car("VNEVER", "BMW", "i3", 2023, dt.date(2024, 1, 1), None),
    ])
    for person, vin, start, end in ((new, "VNEW", "2026-03-01", None), (owner, "VOWN", "2021-06-01", None),
                                    (lapsed, "VLAP", "2019-01-01", None), (sold, "VSOLD", "2015-01-01", "2020-01-01"),
                                    (quiet, "VQUIET", "2018-01-01", None), (never, "VNEVER", "2024-01-01", None)):
        s.add_ownership(Ownership(person, vin, dt.date.fromisoformat(start),
                                  end and dt.date.fromisoformat(end), "test"))
    s.insert_events([service(owner, 100), service(lapsed, 400), service(quiet, 1200), service(sold, 2500)])
    s.people = people
    yield s
    s.close()


def test_stages_car_age_and_replacement_window(store):
    compute_tags(store, {"lifecycle": LifecycleTags()}, as_of=AS_OF)
    got = [dict((t.tag, t.value) for t in store.tags_of(p)) for p in store.people]
    assert got == [
        {"lifecycle_stage": "prospect"},
        {"lifecycle_stage": "new_owner", "car_age_years": 0.7, "replacement_window": 0},
        {"lifecycle_stage": "owner", "car_age_years": 5.5, "replacement_window": 1, "days_since_service": 100},
        {"lifecycle_stage": "lapsed_owner", "car_age_years": 7.9, "replacement_window": 0, "days_since_service": 400},
        {"lifecycle_stage": "churned", "days_since_service": 2500},  # sold the car, owns none now
        {"lifecycle_stage": "churned", "car_age_years": 8.9, "replacement_window": 0, "days_since_service": 1200},
        {"lifecycle_stage": "lapsed_owner", "car_age_years": 2.9, "replacement_window": 0},  # never came back
    ]


def test_thresholds_are_configurable_and_runs_are_always_full(store):
    settings = {"lifecycle": {"lapse_after_days": 500, "replacement_min_years": 2.5, "new_owner_days": 30}}
    compute_tags(store, {"lifecycle": LifecycleTags()}, as_of=AS_OF, settings=settings)
    result = compute_tags(store, {"lifecycle": LifecycleTags()}, as_of=AS_OF, settings=settings,
                          incremental=True)[0]
    assert result.mode == "full"
    stages = [dict((t.tag, t.value) for t in store.tags_of(p)) for p in store.people]
    assert [s["lifecycle_stage"] for s in stages] == ["prospect", "owner", "owner", "owner", "churned", "churned",
                                                      "lapsed_owner"]
    assert stages[6]["replacement_window"] == 1


def test_the_date_is_the_project_time_zone_date_whatever_zone_as_of_is_given_in(tmp_path):
    """as_of 2026-03-10T02:00Z is still 9 March in New York: an ownership starting on 10 March has not begun."""
    import zoneinfo

    new_york = zoneinfo.ZoneInfo("America/New_York")
    s = SQLiteStore(tmp_path / "tz.db")
    person = s.create_person()
    s.upsert_cars([Car("VTZ", "BMW", "X1", 2026, dt.date(2026, 3, 10), None)])
    s.add_ownership(Ownership(person, "VTZ", dt.date(2026, 3, 10), None, "test"))
    try:
        as_of = dt.datetime(2026, 3, 10, 2, 0, tzinfo=dt.timezone.utc)
        compute_tags(s, {"lifecycle": LifecycleTags()}, as_of=as_of, timezone=new_york)
        assert "car_age_years" not in {t.tag: t.value for t in s.tags_of(person)}
        compute_tags(s, {"lifecycle": LifecycleTags()}, as_of=as_of.replace(hour=5), timezone=new_york)
        assert {t.tag: t.value for t in s.tags_of(person)}["car_age_years"] == 0.0
    finally:
        s.close()
