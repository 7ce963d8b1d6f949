"""The activity calculator on hand-made events in a real SQLite store, with exact expected values."""

import datetime as dt

import pytest

from motorcade.model import Event
from motorcade.store import SQLiteStore
from motorcade.tags.engine import compute_tags
from motorcade_tags_activity import ActivityTags

UTC = dt.timezone.utc
AS_OF = dt.datetime(2026, 11, 20, 8, 0, tzinfo=UTC)


def events(person, name, days_ago_list):
    return [Event(name=name, ts=AS_OF - dt.timedelta(days=d), person_id=person, source="test",
                  dedup_key=f"{person}-{name}-{d}") for d in days_ago_list]


@pytest.fixture
def store(tmp_path):
    s = SQLiteStore(tmp_path / "activity.db")
    p1, p2, p3, p4 = (s.create_person() for _ in range(4))
    s.insert_events([
        *events(p1, "app_login", [1, 2, 3]), *events(p1, "share", [4, 5]), *events(p1, "wechat_follow", [6]),
        *events(p2, "app_login", [i / 10 + 0.01 for i in range(25)]),  # 25 logins: capped at 20
        *events(p3, "wechat_unfollow", [7]), *events(p3, "app_login", [100]),  # the login is outside 90 days
        *events(p4, "test_drive", [1]),  # not an owned-channel event
    ])
    s.people = (p1, p2, p3, p4)
    yield s
    s.close()


def values(store, tag):
    return [dict((t.tag, t.value) for t in store.tags_of(p))[tag] for p in store.people]


def test_activity_with_defaults(store):
    compute_tags(store, {"activity": ActivityTags()}, as_of=AS_OF)
    assert values(store, "activity_score") == [3 * 1 + 2 * 3 + 5, 20, 0, 0]  # unfollow -5 floors at 0
    assert values(store, "activity_level") == ["high", "high", "low", "low"]


def test_activity_with_configured_weights_cap_and_threshold(store):
    settings = {"activity": {"weights": {"share": 0.5}, "cap_per_event": 2, "high_threshold": 9}}
    compute_tags(store, {"activity": ActivityTags()}, as_of=AS_OF, settings=settings)
    assert values(store, "activity_score") == [2 * 1 + 2 * 0.5 + 5, 2, 0, 0]
    assert values(store, "activity_level") == ["low", "low", "low", "low"]


def test_incremental_activity_touches_only_the_person_with_new_events(store):
    p1, p2, p3, p4 = store.people
    compute_tags(store, {"activity": ActivityTags()}, as_of=AS_OF)
    store.insert_events(events(p4, "share", [1, 2, 3, 4]) + events(p3, "order", [1]))
    result = compute_tags(store, {"activity": ActivityTags()}, as_of=AS_OF, incremental=True)[0]
    assert (result.mode, result.people, result.rows_written) == ("incremental", 1, 2)
    assert values(store, "activity_score") == [14, 20, 0, 12]
