"""The value calculator on hand-made events in a real SQLite store, with exact expected figures."""

import datetime as dt

import pytest

from motorcade.model import Event
from motorcade.store import SQLiteStore
from motorcade.tags.engine import compute_tags
from motorcade_tags_value import ValueTags, quintile_cut_points, score

UTC = dt.timezone.utc
AS_OF = dt.datetime(2026, 11, 20, 8, 0, tzinfo=UTC)


def event(person, name, days_ago, **props):
    ts = AS_OF - dt.timedelta(days=days_ago)
    return Event(name=name, ts=ts, person_id=person, properties=props, source="test",
                 dedup_key=f"{person}-{name}-{days_ago}-{sorted(props.items())}")


@pytest.fixture
def store(tmp_path):
    s = SQLiteStore(tmp_path / "value.db")
    a, b, c, d = (s.create_person() for _ in range(4))
    s.insert_events([
        event(a, "service_visit", 10, store="S1", amount=1000),
        event(a, "service_visit", 10.01, store="S1", amount=500),  # same day, a second record: one visit day
        event(a, "order", 100, store_id="S2", amount="300000"),  # store_id wins; text amounts are numbers
        event(b, "service_visit", 200, store="S1", amount=2000),
        event(c, "service_visit", 30, store="S2", amount=800),
        event(c, "service_visit", 2000, store="S2", amount=99999),  # outside the 1095-day window
        event(c, "app_login", 1),  # not a value event
        event(d, "service_visit", -1, store="S1", amount=5),  # after as_of: ignored
    ])
    s.people = (a, b, c, d)
    yield s
    s.close()


def tags(store, person):
    return {t.tag: t.value for t in store.tags_of(person)}


def test_quintile_cut_points_and_scores():
    assert quintile_cut_points([10, 30, 100, 200]) == [10, 30, 100, 200]
    assert quintile_cut_points(list(range(1, 11))) == [2, 4, 6, 8]
    assert [score(v, [2, 4, 6, 8], higher_is_better=True) for v in (1, 2, 3, 9)] == [1, 1, 2, 5]
    assert [score(v, [2, 4, 6, 8], higher_is_better=False) for v in (1, 2, 3, 9)] == [5, 4, 4, 1]


def test_rfm_with_population_quintiles(store):
    a, b, c, d = store.people
    compute_tags(store, {"value": ValueTags()}, as_of=AS_OF)
    # pairs: (a,S1) 10 days/1 day/1500, (a,S2) 100/1/300000, (b,S1) 200/1/2000, (c,S2) 30/1/800
    # recency cuts [10,30,100,200] -> R 4,2,1,3; frequency all 1 -> F 1; monetary cuts -> M 2,4,3,1
    assert tags(store, a) == {
        "rfm_recency_days": 10, "rfm_frequency": 2, "rfm_monetary": 301500, "store_count": 2,
        "top_store": "S2",  # both stores score 7/3; the tie goes to the larger spend
        "store_value_score": 2.33, "store_r_score": 2, "store_f_score": 1, "store_m_score": 4,
        "group_value_score": 2.33, "value_level": "low",
    }
    assert tags(store, b) == {
        "rfm_recency_days": 200, "rfm_frequency": 1, "rfm_monetary": 2000, "store_count": 1, "top_store": "S1",
        "store_value_score": 1.67, "store_r_score": 1, "store_f_score": 1, "store_m_score": 3,
        "group_value_score": 1.67, "value_level": "low",
    }
    assert tags(store, c)["rfm_monetary"] == 800 and tags(store, c)["store_r_score"] == 3
    assert tags(store, d) == {}


def test_configured_cut_points_weights_and_levels(store):
    a, b, c, _ = store.people
    settings = {"value": {
        "recency_cut_points": [30, 90, 180, 365], "frequency_cut_points": [1, 2, 3, 5],
        "monetary_cut_points": [1000, 5000, 20000, 100000], "store_weights": {"S1": 100.0},
        "levels": {"high": 4.0, "medium": 2.9},
    }}
    compute_tags(store, {"value": ValueTags()}, as_of=AS_OF, settings=settings)
    got = tags(store, a)
    # (a,S1): R5 F1 M2 -> 8/3; (a,S2): R3 F1 M5 -> 3.0; weights: spend × store weight = 100×1500 and 300000
    assert (got["top_store"], got["store_value_score"]) == ("S2", 3.0)
    assert got["group_value_score"] == round((150000 * 8 / 3 + 300000 * 3.0) / 450000, 2) == 2.89
    assert got["value_level"] == "low"  # 2.89 < medium 2.9
    compute_tags(store, {"value": ValueTags()}, as_of=AS_OF, settings={"value": {**settings["value"],
                                                                                 "store_weights": {}}})
    assert tags(store, a)["group_value_score"] == round((1500 * 8 / 3 + 300000 * 3.0) / 301500, 2) == 3.0
    assert tags(store, a)["value_level"] == "medium"
    assert tags(store, b)["store_value_score"] == round((2 + 1 + 2) / 3, 2)  # 200 days: R2; 2000: M2


def test_incremental_with_configured_cut_points_reads_only_changed_people(store):
    a, b, c, _ = store.people
    settings = {"value": {"recency_cut_points": [30, 90, 180, 365], "frequency_cut_points": [1, 2, 3, 5],
                          "monetary_cut_points": [1000, 5000, 20000, 100000]}}
    compute_tags(store, {"value": ValueTags()}, as_of=AS_OF, settings=settings)
    before_a = store.tags_of(a)
    store.insert_events([event(b, "service_visit", 5, store="S1", amount=30000)])
    result = compute_tags(store, {"value": ValueTags()}, as_of=AS_OF, settings=settings, incremental=True)[0]
    assert (result.mode, result.people) == ("incremental", 1)
    assert tags(store, b)["rfm_frequency"] == 2 and tags(store, b)["rfm_monetary"] == 32000
    assert store.tags_of(a) == before_a


def test_bad_cut_points_are_a_config_error(store):
    from motorcade.tags.engine import TagError
    from motorcade.errors import ConfigError

    with pytest.raises((ConfigError, TagError), match="expected four ascending numbers"):
        compute_tags(store, {"value": ValueTags()}, as_of=AS_OF, settings={"value": {"recency_cut_points": [3, 1]}})
