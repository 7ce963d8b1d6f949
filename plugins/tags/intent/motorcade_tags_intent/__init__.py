"""Purchase intent with time decay (``intent_score``, ``intent_level``) and ``purchase_power``.

intent_score = the sum over lead submissions, configurator views, test drives and reservations in the last
``window_days`` of ``weight × 0.5 ^ (age in days / half_life_days)``: a test drive yesterday counts almost
fully, one two half-lives ago a quarter. A person who has ordered since their latest intent signal has
converted: their score is 0 (they are an owner-to-be, not a prospect to chase). intent_level is ``high``
at or above ``levels.high``, ``medium`` at or above ``levels.medium``, else ``low``. Everyone gets a value.

purchase_power combines what a person declared with what they did (the seeds' "high purchase power"):
the income band in their attributes (``income_attribute``, mapped by ``income_bands``) and the largest
order amount they have placed (``order_amount``: >= high -> high, >= medium -> medium, else low). The
stronger signal wins; people with neither signal get no value (unknown is not "low").
"""

from __future__ import annotations

from typing import Any, Iterator

import motorcade
from motorcade.errors import ConfigError
from motorcade.tags.base import TagCalculator, TagContext, TagDefinition

__version__ = "0.1.0"

POWER = ("low", "medium", "high")


class IntentTags(TagCalculator):
    name = "intent"
    version = "1"
    supported_engines = ("sqlite", "postgres")  # SQLite text, rendered per engine (context.sql)
    depends_on_events = ("lead_submit", "configurator_view", "test_drive", "reservation", "order")
    default_settings = {
        "window_days": 365,
        "half_life_days": 30.0,
        "weights": {"lead_submit": 3.0, "configurator_view": 1.0, "test_drive": 5.0, "reservation": 8.0},
        "reset_on_order": True,  # an order after the latest signal sets the score to 0
        "levels": {"high": 8.0, "medium": 3.0},
        "income_attribute": "income_band",
        "income_bands": {"<30万": "low", "30-50万": "medium", "50-100万": "high", ">100万": "high"},
        "order_amount": {"high": 400000, "medium": 200000},  # CNY, the `amount` of order events
    }
    produces = (
        TagDefinition("intent_score", "number", "Time-decayed purchase-intent score (>= 0)", title="购买意向分"),
        TagDefinition("intent_level", "string", "Purchase-intent level", title="购买意向等级",
                      allowed_values=("low", "medium", "high")),
        TagDefinition("purchase_power", "string", "Purchase power from income band and past order amounts",
                      title="购买能力", allowed_values=POWER),
    )

    def input_events(self, settings: dict[str, Any]) -> tuple[str, ...]:
        return (*settings["weights"], "order")

    def compute(self, context: TagContext) -> Iterator[tuple[int, str, Any]]:
        s = context.settings
        weights = s["weights"]
        half_life = float(s["half_life_days"])
        if half_life <= 0 or not weights:
            raise ConfigError("[tags.intent] half_life_days must be > 0 and weights non-empty")
        attribute = str(s["income_attribute"])
        if not attribute.replace("_", "").isalnum():
            raise ConfigError(f"[tags.intent] income_attribute {attribute!r} is not an attribute name")
        values = ", ".join(f"(:n{i}, :w{i})" for i in range(len(weights)))
        params: dict[str, Any] = {}
        for i, (name, weight) in enumerate(weights.items()):
            params[f"n{i}"], params[f"w{i}"] = name, float(weight)
        events_filter, filter_params = context.person_filter("e.person_id")
        orders_filter, _ = context.person_filter("o.person_id")
        people_filter, _ = context.person_filter("p.id")
        params.update(filter_params, now=context.as_of_epoch,
                      since=context.as_of_epoch - int(s["window_days"]) * 86400,
                      ln2_over_half_life=0.6931471805599453 / (half_life * 86400.0))
        # One pass over the intent signals, one over orders, joined to everyone.
        sql = (
            f"WITH w(name, weight) AS (VALUES {values}), "
            "signals AS (SELECT e.person_id, sum(w.weight * exp(-(:now - e.ts) * :ln2_over_half_life)) AS score, "
            "max(e.ts) AS last_signal FROM events e JOIN w ON w.name = e.name "
            "WHERE e.name IN (SELECT name FROM w) AND e.ts >= :since AND e.ts < :now "
            f"AND e.person_id IS NOT NULL{events_filter} GROUP BY e.person_id), "
            "orders AS (SELECT o.person_id, max(o.ts) AS last_order, "
            f"max(CAST({context.json_value_sql('o.properties', 'amount')} AS REAL)) AS top_amount FROM events o "
            f"WHERE o.name = 'order' AND o.ts < :now AND o.person_id IS NOT NULL{orders_filter} "
            "GROUP BY o.person_id) "
            f"SELECT p.id, s.score, s.last_signal, o.last_order, o.top_amount, "
            f"{context.json_value_sql('p.attributes', attribute)} FROM people p "
            "LEFT JOIN signals s ON s.person_id = p.id LEFT JOIN orders o ON o.person_id = p.id "
            f"WHERE 1 = 1{people_filter}"
        )
        high, medium = float(s["levels"]["high"]), float(s["levels"]["medium"])
        bands = s["income_bands"]
        amount_high, amount_medium = float(s["order_amount"]["high"]), float(s["order_amount"]["medium"])
        rows = context.store.query(context.sql(sql), params)
        for person_id, score, last_signal, last_order, top_amount, income in rows:
            score = float(score or 0.0)
            if s["reset_on_order"] and last_order is not None and last_signal is not None and last_order >= last_signal:
                score = 0.0
            score = round(score, 4)
            yield person_id, "intent_score", score
            yield person_id, "intent_level", "high" if score >= high else "medium" if score >= medium else "low"
            signals = []
            if income is not None and str(income) in bands:
                signals.append(POWER.index(bands[str(income)]))
            if top_amount is not None:
                signals.append(2 if top_amount >= amount_high else 1 if top_amount >= amount_medium else 0)
            if signals:
                yield person_id, "purchase_power", POWER[max(signals)]


@motorcade.hookimpl
def register_tag_calculators(register):
    register(IntentTags())
