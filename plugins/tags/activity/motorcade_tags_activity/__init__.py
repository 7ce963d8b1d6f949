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
        from sqlglot import exp

        from motorcade.tags.query import TagQuery

        s = context.settings
        weights = s["weights"]
        if not weights:
            raise ConfigError("[tags.activity] weights is empty", hint="give at least one event name a weight")
        q = TagQuery(context)  # one definition, rendered for the engine that computes the tags
        weight, named = q.weight_of("c.name", weights)
        _, wanted = q.weight_of("e.name", weights)
        q.set(cap=int(s["cap_per_event"]), now=context.as_of_epoch,
              since=context.as_of_epoch - int(s["window_days"]) * 86400)
        counts = q.where(exp.select("e.person_id", "e.name", "count(*) AS n").from_("events AS e"),
                         wanted, "e.ts >= :since AND e.ts < :now AND e.person_id IS NOT NULL",
                         q.person_filter("e.person_id")).group_by("e.person_id", "e.name")
        scores = exp.select("c.person_id", exp.alias_(exp.Sum(this=exp.Mul(
            this=weight, expression=exp.Least(this=exp.column("n", "c"), expressions=[exp.Placeholder(this="cap")]))),
            "score")).from_("counts AS c").group_by("c.person_id")
        tree = q.where(exp.select("p.id", exp.Greatest(this=exp.Coalesce(this=exp.column("score", "s"), expressions=[
            exp.Literal.number(0)]), expressions=[exp.Literal.number(0)])).from_("people AS p").join(
            "scores AS s", on="s.person_id = p.id", join_type="left"), q.person_filter("p.id"))
        tree = tree.with_("counts", as_=counts).with_("scores", as_=scores)
        high = float(s["high_threshold"])
        for person_id, activity in q.rows(tree):
            activity = round(float(activity), 4)
            yield person_id, "activity_score", activity
            yield person_id, "activity_level", "high" if activity >= high else "low"


@motorcade.hookimpl
def register_tag_calculators(register):
    register(ActivityTags())
