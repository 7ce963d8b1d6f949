"""Customer value: RFM per store, aggregated and weighted into the group-level value.

For every (person, store) pair, over ``service_visit`` and ``order`` events in the last ``window_days``:

* recency: whole days (24 hours, as ``in last N days`` in the rule language) from the latest such event
  to ``as_of``;
* frequency: distinct local days with such an event (two records of one visit count once), each event's
  day taken in the project's time zone at that event's own UTC offset (exact across daylight saving);
* monetary: the sum of the events' ``amount`` property, in exact money: each amount counts to the cent
  (rounded half away from zero to 0.01) and the sum is exact, so 17.90 + 27.98 is 45.88.

Each figure becomes a 1–5 score by four cut points: configured ones, or by default the 20/40/60/80th
percentiles (nearest rank) of that figure over all (person, store) pairs. A higher frequency or monetary
scores higher (score = 1 + the number of cut points the value is above); a smaller recency scores higher
(1 + the number of cut points the value is below). Equal figures always get equal scores: the figures are
whole days, day counts and whole cents, compared exactly (configured monetary cut points are read to the
cent too).

The store value score is the weighted mean of the three scores (``weights``). ``store_value_score`` and the
three ``store_*_score`` tags are kept per (person, store): a person's own value is the one at their top
store, and a rule scoped to a store (``scope store "SH01"``) reads the value at that store. The group value score is
the weighted sum of a person's store value scores, each store weighted by the person's spend there times
the store's ``store_weights`` entry (default 1), normalised to sum to one; when the person spent nothing
(e.g. free service visits only), visit days take the place of spend. Both stay within 1–5.
"""

from __future__ import annotations

import math
from decimal import ROUND_HALF_UP, Decimal
from collections import defaultdict
from typing import Any, Iterator

import motorcade
from motorcade.errors import ConfigError
from motorcade.tags.base import TagCalculator, TagContext, TagDefinition

__version__ = "0.1.0"

LEVELS = ("low", "medium", "high")


def quintile_cut_points(values: list[float]) -> list[float]:
    """The 20/40/60/80th percentiles (nearest rank) of ``values``."""
    ordered = sorted(values)
    n = len(ordered)
    return [ordered[max(math.ceil(k * n / 5) - 1, 0)] for k in (1, 2, 3, 4)] if n else []


def score(value: float, cut_points: list[float], *, higher_is_better: bool) -> int:
    if higher_is_better:
        return 1 + sum(1 for c in cut_points if value > c)
    return 1 + sum(1 for c in cut_points if value < c)


def to_cents(amount: float) -> int:
    """An amount in whole cents as the query counts it: ``round(amount * 100)``, half away from zero."""
    return int(Decimal(float(amount) * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _cut_points_setting(settings: dict[str, Any], key: str) -> list[float] | None:
    points = settings[key]
    if not points:
        return None
    if (len(points) != 4 or not all(isinstance(p, (int, float)) for p in points)
            or list(points) != sorted(points)):
        raise ConfigError(
            f"[tags.value] {key} = {points!r}: expected four ascending numbers, or [] for quintiles")
    return [float(p) for p in points]


class ValueTags(TagCalculator):
    name = "value"
    version = "3"  # 2: exact money (cents), local days at each event's own UTC offset; 3: values per store
    depends_on_events = ("service_visit", "order")
    default_settings = {
        "window_days": 1095,  # events older than this (days before as_of) are ignored
        "store_properties": ["store_id", "store"],  # event properties naming the store, first present wins
        "amount_property": "amount",  # event property with the amount (CNY)
        "recency_cut_points": [],  # four ascending day counts; [] = quintiles of the population
        "frequency_cut_points": [],  # four ascending visit-day counts; [] = quintiles
        "monetary_cut_points": [],  # four ascending amounts; [] = quintiles
        "weights": {"recency": 1.0, "frequency": 1.0, "monetary": 1.0},  # of the 1–5 scores in a store's value
        "store_weights": {},  # store id -> weight in the group value (default 1.0)
        "levels": {"high": 4.0, "medium": 2.5},  # group_value_score >= high -> "high", >= medium -> "medium"
    }
    produces = (
        TagDefinition("rfm_recency_days", "number", "Days since the latest service visit or order at any store",
                      title="最近消费间隔(天)"),
        TagDefinition("rfm_frequency", "number", "Distinct days with a service visit or order, summed over stores",
                      title="消费频次"),
        TagDefinition("rfm_monetary", "number", "Sum of service and order amounts over all stores", title="消费金额"),
        TagDefinition("store_count", "number", "Number of the group's stores the person used", title="到店门店数"),
        TagDefinition("top_store", "string", "The store where the person's store value score is highest",
                      title="主力门店"),
        TagDefinition("store_value_score", "number", "Store value score (1–5): at the top store; in a rule "
                      "scoped to a store, at that store", title="门店价值分", value_range=(1, 5), per_store=True),
        TagDefinition("store_r_score", "number", "Recency score (1–5): at the top store; in a store's rule, "
                      "at that store", title="门店R分", value_range=(1, 5), per_store=True),
        TagDefinition("store_f_score", "number", "Frequency score (1–5): at the top store; in a store's rule, "
                      "at that store", title="门店F分", value_range=(1, 5), per_store=True),
        TagDefinition("store_m_score", "number", "Monetary score (1–5): at the top store; in a store's rule, "
                      "at that store", title="门店M分", value_range=(1, 5), per_store=True),
        TagDefinition("group_value_score", "number", "Group-level value: spend-weighted sum of store value scores",
                      title="集团价值分", value_range=(1, 5)),
        TagDefinition("value_level", "string", "Group value level from group_value_score", title="用户价值等级",
                      allowed_values=LEVELS),
    )

    def pairs(self, context: TagContext, *, restrict: bool) -> list[tuple]:
        """(person_id, store, recency days, local days, monetary in cents) per person and store; one
        set-based SELECT. Each amount is rounded to the cent before the sum, so the sum is exact."""
        from sqlglot import exp

        from motorcade.tags.query import TagQuery

        s = context.settings
        q = TagQuery(context)  # one definition, rendered for the engine that computes the tags
        stores = [q.json_text("properties", p, "[tags.value] store_properties") for p in s["store_properties"]]
        store_expr = stores[0] if len(stores) == 1 else exp.Coalesce(this=stores[0], expressions=stores[1:])
        amount = q.json_number("properties", s["amount_property"], "[tags.value] amount_property")
        cents = q.round_half_away(exp.Mul(this=amount, expression=exp.Literal.number(100)))
        q.set(now=context.as_of_epoch, since=context.as_of_epoch - int(s["window_days"]) * 86400)
        names = [q.bind(n) for n in self.depends_on_events]
        # the store expression is grouped by as itself, not by its alias (ClickHouse and PostgreSQL differ there)
        tree = q.where(
            exp.select("person_id", exp.alias_(store_expr, "store_key"), "max(ts) AS last_ts",
                       exp.alias_(exp.Count(this=exp.Distinct(expressions=[q.local_day("ts")])), "visit_days"),
                       exp.alias_(exp.Coalesce(this=exp.Sum(this=exp.Cast(this=cents, to=exp.DataType.build("BIGINT"))),
                                               expressions=[exp.Literal.number(0)]), "cents"))
            .from_("events"),
            exp.In(this=exp.column("name"), expressions=names),
            "ts >= :since AND ts < :now AND person_id IS NOT NULL",
            q.person_filter("person_id") if restrict else None).group_by("person_id", store_expr.copy())
        now = context.as_of_epoch
        return [(r[0], None if r[1] is None else str(r[1]), (now - r[2]) // 86400, r[3], int(r[4]))
                for r in q.rows(tree)]

    def compute(self, context: TagContext) -> Iterator[tuple[int, str, Any]]:
        s = context.settings
        configured = {k: _cut_points_setting(s, f"{k}_cut_points") for k in ("recency", "frequency", "monetary")}
        # Quintiles need the whole population; configured cut points let an incremental run read only its people.
        restrict = all(v is not None for v in configured.values())
        rows = self.pairs(context, restrict=restrict)
        cuts = {
            "recency": configured["recency"] or quintile_cut_points([r[2] for r in rows]),
            "frequency": configured["frequency"] or quintile_cut_points([r[3] for r in rows]),
            "monetary": ([to_cents(c) for c in configured["monetary"]] if configured["monetary"]
                         else quintile_cut_points([r[4] for r in rows])),
        }
        weights = s["weights"]
        weight_sum = float(weights["recency"] + weights["frequency"] + weights["monetary"])
        if weight_sum <= 0:
            raise ConfigError("[tags.value] weights must add up to more than 0")
        store_weights = s["store_weights"]
        by_person: dict[int, list[tuple]] = defaultdict(list)
        for person_id, store, recency, days, monetary in rows:
            if context.wants(person_id):
                by_person[person_id].append((store, recency, days, monetary))
        high, medium = float(s["levels"]["high"]), float(s["levels"]["medium"])
        for person_id, stores in by_person.items():
            scored = []
            for store, recency, days, monetary in stores:
                r = score(recency, cuts["recency"], higher_is_better=False)
                f = score(days, cuts["frequency"], higher_is_better=True)
                m = score(monetary, cuts["monetary"], higher_is_better=True)
                value = (weights["recency"] * r + weights["frequency"] * f + weights["monetary"] * m) / weight_sum
                scored.append((store, recency, days, monetary, r, f, m, value))
            yield person_id, "rfm_recency_days", min(x[1] for x in scored)
            yield person_id, "rfm_frequency", sum(x[2] for x in scored)
            yield person_id, "rfm_monetary", sum(x[3] for x in scored) / 100
            known = [x for x in scored if x[0] is not None]
            yield person_id, "store_count", len(known)
            for store, _, _, _, r, f, m, value in known:  # the value at each store (a store's rules read it)
                yield person_id, "store_value_score", round(value, 2), store
                yield person_id, "store_r_score", r, store
                yield person_id, "store_f_score", f, store
                yield person_id, "store_m_score", m, store
            if known:
                top = min(known, key=lambda x: (-x[7], -x[3], x[1], x[0]))
                yield person_id, "top_store", top[0]
                yield person_id, "store_value_score", round(top[7], 2)
                yield person_id, "store_r_score", top[4]
                yield person_id, "store_f_score", top[5]
                yield person_id, "store_m_score", top[6]
            basis = [float(store_weights.get(x[0], 1.0)) * max(x[3], 0) for x in scored]
            if sum(basis) <= 0:
                basis = [float(store_weights.get(x[0], 1.0)) * x[2] for x in scored]
            total = sum(basis)
            group = sum(b * x[7] for b, x in zip(basis, scored)) / total if total > 0 else \
                sum(x[7] for x in scored) / len(scored)
            group = min(max(round(group, 2), 1.0), 5.0)
            yield person_id, "group_value_score", group
            yield person_id, "value_level", "high" if group >= high else "medium" if group >= medium else "low"


@motorcade.hookimpl
def register_tag_calculators(register):
    register(ValueTags())
