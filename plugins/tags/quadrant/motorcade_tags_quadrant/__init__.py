"""The seeds' four layers of intent × activity (意向 × 活跃): ``intent_activity_quadrant``.

A person is 高意向 (high intent) when their ``intent_level`` is one of ``high_intent_levels`` (default:
``high`` only) and 高活跃 (highly active) when their ``activity_level`` is one of ``high_activity_levels``
(default ``high``). The four values are 高意向高活跃, 高意向低活跃, 低意向高活跃 and 低意向低活跃.
People missing either tag get no value. Depends on the intent and activity calculators.
"""

from __future__ import annotations

from typing import Any, Iterator

import motorcade
from motorcade.tags.base import TagCalculator, TagContext, TagDefinition

__version__ = "0.1.0"

QUADRANTS = ("高意向高活跃", "高意向低活跃", "低意向高活跃", "低意向低活跃")


class QuadrantTags(TagCalculator):
    name = "quadrant"
    version = "1"
    depends_on_tags = ("intent_level", "activity_level")
    default_settings = {
        "high_intent_levels": ["high"],
        "high_activity_levels": ["high"],
    }
    produces = (
        TagDefinition("intent_activity_quadrant", "string", "Intent × activity layer of the seeds",
                      title="意向×活跃分层", allowed_values=QUADRANTS),
    )

    def compute(self, context: TagContext) -> Iterator[tuple[int, str, Any]]:
        s = context.settings
        high_intent, high_activity = set(s["high_intent_levels"]), set(s["high_activity_levels"])
        # a store function, not SQL text: it runs on every store engine
        pairs = context.store.tag_value_pairs("intent_level", "activity_level", person_ids=context.person_ids)
        for person_id, intent, activity in pairs:
            layer = ("高意向" if intent in high_intent else "低意向") + ("高活跃" if activity in high_activity else "低活跃")
            yield person_id, "intent_activity_quadrant", layer


@motorcade.hookimpl
def register_tag_calculators(register):
    register(QuadrantTags())
