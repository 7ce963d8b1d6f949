"""Owned-channel (私域) activity over the last 90 days: ``activity_score`` and ``activity_level``.

activity_score = the sum over event names of ``weight × min(count in the window, cap_per_event)``, floored
at 0 (an unfollow weighs negative). The cap keeps one noisy signal (a script refreshing the app) from
dominating. activity_level is ``high`` when the score reaches ``high_threshold``, else ``low``.

Every person gets both tags (no activity = score 0, level low), so the intent × activity quadrant
covers everyone.
"""

from __future__ import annotations

from typing import Any, Iterator

import motorcade
from motorcade.errors import ConfigError
from motorcade.tags.base import TagCalculator, TagContext, TagDefinition

__version__ = "0.1.0"


class ActivityTags(TagCalculator):
    name = "activity"
    version = "1"
    supported_engines = ("sqlite", "postgres")  # SQLite text, rendered per engine (context.sql)
    depends_on_events = ("app_login", "touchpoint_visit", "share", "message_click", "wechat_follow",
                         "wechat_unfollow")
    default_settings = {
        "window_days": 90,
        "weights": {"app_login": 1.0, "touchpoint_visit": 1.0, "share": 3.0, "message_click": 2.0,
                    "wechat_follow": 5.0, "wechat_unfollow": -5.0},
        "cap_per_event": 20,  # at most this many events of one name count
        "high_threshold": 10.0,  # activity_score >= this -> "high"
    }
    produces = (
        TagDefinition("activity_score", "number", "Weighted owned-channel activity over the window (>= 0)",
                      title="私域活跃分"),
        TagDefinition("activity_level", "string", "Owned-channel activity level", title="私域活跃度",
                      allowed_values=("low", "high")),
    )

    def input_events(self, settings: dict[str, Any]) -> tuple[str, ...]:
        return tuple(settings["weights"])

    def compute(self, context: TagContext) -> Iterator[tuple[int, str, Any]]:
        s = context.settings
        weights = s["weights"]
        if not weights:
            raise ConfigError("[tags.activity] weights is empty", hint="give at least one event name a weight")
        values = ", ".join(f"(:n{i}, :w{i})" for i in range(len(weights)))
        params: dict[str, Any] = {}
        for i, (name, weight) in enumerate(weights.items()):
            params[f"n{i}"], params[f"w{i}"] = name, float(weight)
        events_filter, filter_params = context.person_filter("e.person_id")
        people_filter, _ = context.person_filter("p.id")
        params.update(filter_params, cap=int(s["cap_per_event"]), now=context.as_of_epoch,
                      since=context.as_of_epoch - int(s["window_days"]) * 86400)
        sql = (
            f"WITH w(name, weight) AS (VALUES {values}), "
            "counts AS (SELECT e.person_id, e.name, count(*) AS n FROM events e "
            "WHERE e.name IN (SELECT name FROM w) AND e.ts >= :since AND e.ts < :now "
            f"AND e.person_id IS NOT NULL{events_filter} GROUP BY e.person_id, e.name), "
            "scores AS (SELECT c.person_id, sum(w.weight * min(c.n, :cap)) AS score FROM counts c "
            "JOIN w ON w.name = c.name GROUP BY c.person_id) "
            "SELECT p.id, max(coalesce(s.score, 0), 0) FROM people p LEFT JOIN scores s ON s.person_id = p.id "
            f"WHERE 1 = 1{people_filter}"
        )
        high = float(s["high_threshold"])
        for person_id, activity in context.store.query(context.sql(sql), params):
            activity = round(float(activity), 4)
            yield person_id, "activity_score", activity
            yield person_id, "activity_level", "high" if activity >= high else "low"


@motorcade.hookimpl
def register_tag_calculators(register):
    register(ActivityTags())
