"""The intent × activity quadrant, after its upstream tags, on hand-made tag values."""

import datetime as dt

import pytest

from motorcade.store import SQLiteStore
from motorcade.tags.base import TagCalculator, TagDefinition
from motorcade.tags.engine import TagError, compute_tags
from motorcade_tags_quadrant import QuadrantTags

AS_OF = dt.datetime(2026, 11, 20, 8, 0, tzinfo=dt.timezone.utc)
LEVELS = {1: ("high", "high"), 2: ("high", "low"), 3: ("low", "high"), 4: ("low", "low"), 5: ("medium", "high"),
          6: ("high", None)}


class Upstream(TagCalculator):
    """Stands in for the intent and activity calculators with fixed levels."""

    name = "upstream"
    produces = (TagDefinition("intent_level", "string", "i"), TagDefinition("activity_level", "string", "a"))

    def compute(self, context):
        for person, (intent, activity) in LEVELS.items():
            yield person, "intent_level", intent
            yield person, "activity_level", activity


@pytest.fixture
def store(tmp_path):
    s = SQLiteStore(tmp_path / "quadrant.db")
    for _ in LEVELS:
        s.create_person()
    yield s
    s.close()


def quadrants(store):
    return {p: dict((t.tag, t.value) for t in store.tags_of(p)).get("intent_activity_quadrant") for p in LEVELS}


def test_four_layers_after_the_upstream_tags(store):
    results = compute_tags(store, {"quadrant": QuadrantTags(), "upstream": Upstream()}, as_of=AS_OF)
    assert [r.calculator for r in results] == ["upstream", "quadrant"]
    assert quadrants(store) == {1: "高意向高活跃", 2: "高意向低活跃", 3: "低意向高活跃", 4: "低意向低活跃",
                                5: "低意向高活跃", 6: None}


def test_medium_intent_can_count_as_high(store):
    compute_tags(store, {"quadrant": QuadrantTags(), "upstream": Upstream()}, as_of=AS_OF,
                 settings={"quadrant": {"high_intent_levels": ["high", "medium"]}})
    assert quadrants(store)[5] == "高意向高活跃"


def test_quadrant_without_its_inputs_names_the_missing_tag(store):
    with pytest.raises(TagError, match="depends on tag 'intent_level'"):
        compute_tags(store, {"quadrant": QuadrantTags()}, as_of=AS_OF)
