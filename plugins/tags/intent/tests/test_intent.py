"""The intent calculator (time decay, reset on order, purchase power) on hand-made data, exact values."""

import datetime as dt

import pytest

from motorcade.model import Event
from motorcade.store import SQLiteStore
from motorcade.tags.engine import compute_tags
from motorcade_tags_intent import IntentTags

UTC = dt.timezone.utc
AS_OF = dt.datetime(2026, 11, 20, 8, 0, tzinfo=UTC)


def event(person, name, days_ago, **props):
    return Event(name=name, ts=AS_OF - dt.timedelta(days=days_ago), person_id=person, properties=props,
                 source="test", dedup_key=f"{person}-{name}-{days_ago}")


@pytest.fixture
def store(tmp_path):
    s = SQLiteStore(tmp_path / "intent.db")
    people = [s.create_person(attrs) for attrs in (
        {}, {}, {}, {"income_band": "30-50万"}, {"income_band": "<30万"}, {"income_band": "unknown"})]
    p1, p2, p3, p4, p5, p6 = people
    s.insert_events([
        event(p1, "test_drive", 30), event(p1, "lead_submit", 60),  # 5×½ + 3×¼ = 3.25
        event(p2, "reservation", 30), event(p2, "test_drive", 30.0), event(p2, "lead_submit", 30),  # (8+5+3)×½ = 8
        event(p2, "configurator_view", 400),  # outside the 365-day window
        event(p3, "test_drive", 10), event(p3, "order", 5, amount=450000),  # ordered since: converted
        event(p5, "order", 500, amount=250000),
        event(p6, "share", 1),
    ])
    s.people = people
    yield s
    s.close()


def values(store, tag):
    return [dict((t.tag, t.value) for t in store.tags_of(p)).get(tag) for p in store.people]


def test_intent_scores_levels_and_purchase_power(store):
    compute_tags(store, {"intent": IntentTags()}, as_of=AS_OF)
    assert values(store, "intent_score") == [3.25, 8.0, 0.0, 0.0, 0.0, 0.0]
    assert values(store, "intent_level") == ["medium", "high", "low", "low", "low", "low"]
    # income band and the largest order: the stronger signal wins; no signal, no value
    assert values(store, "purchase_power") == [None, None, "high", "medium", "medium", None]


def test_half_life_and_levels_are_configurable(store):
    settings = {"intent": {"half_life_days": 60, "levels": {"high": 10.0}, "reset_on_order": False}}
    compute_tags(store, {"intent": IntentTags()}, as_of=AS_OF, settings=settings)
    score = values(store, "intent_score")
    assert score[0] == round(5 * 0.5 ** 0.5 + 3 * 0.5, 4)
    assert score[1] == round(16 * 0.5 ** 0.5, 4)
    assert score[2] == round(5 * 0.5 ** (10 / 60), 4)  # no reset on order
    assert values(store, "intent_level")[:3] == ["medium", "high", "medium"]  # 3.85, 11.31, 4.45
